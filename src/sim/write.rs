//! Writing simulated MEDS files and truth tables with cfitsio (feature `des-y1`).

use std::path::{Path, PathBuf};

use fitsio::images::{ImageDescription, ImageType};
use fitsio::tables::{ColumnDataType, ColumnDescription};
use fitsio::FitsFile;

use crate::error::{Error, Result};
use crate::sim::render::{ColData, MedsData, SimTable};
use crate::sim::scene::{Scene, SimModel};

fn ferr(path: &Path, hdu: Option<&str>, e: impl std::fmt::Display) -> Error {
    Error::Fits {
        path: path.to_path_buf(),
        hdu: hdu.map(str::to_string),
        msg: e.to_string(),
    }
}

/// The temporary name used while writing `path` (same directory, so the rename is atomic).
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.sim-tmp-{}", std::process::id()))
}

/// Write to a temporary name with `f`, then rename into place.
fn atomic(path: &Path, f: impl FnOnce(&mut FitsFile, &Path) -> Result<()>) -> Result<()> {
    let tmp = temp_name(path);
    let _ = std::fs::remove_file(&tmp);
    let res = (|| {
        let mut fits = FitsFile::create(&tmp)
            .open()
            .map_err(|e| ferr(path, None, e))?;
        f(&mut fits, path)?;
        drop(fits);
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_table(fits: &mut FitsFile, path: &Path, ext: &str, t: &SimTable) -> Result<()> {
    let e = |x: fitsio::errors::Error| ferr(path, Some(ext), x);
    let mut descs = Vec::with_capacity(t.cols.len());
    for (name, repeat, data) in &t.cols {
        let (ty, rep) = match data {
            ColData::I32(_) => (ColumnDataType::Int, *repeat),
            ColData::I64(_) => (ColumnDataType::LongLong, *repeat),
            ColData::F32(_) => (ColumnDataType::Float, *repeat),
            ColData::F64(_) => (ColumnDataType::Double, *repeat),
            ColData::Str(_, w) => (ColumnDataType::String, (*w).max(1)),
        };
        descs.push(
            ColumnDescription::new(name.as_str())
                .with_type(ty)
                .that_repeats(rep)
                .create()
                .map_err(e)?,
        );
    }
    let hdu = fits.create_table(ext, &descs).map_err(e)?;
    for (name, _, data) in &t.cols {
        let name = name.as_str();
        match data {
            ColData::I32(v) => hdu.write_col(fits, name, v),
            ColData::I64(v) => hdu.write_col(fits, name, v),
            ColData::F32(v) => hdu.write_col(fits, name, v),
            ColData::F64(v) => hdu.write_col(fits, name, v),
            ColData::Str(v, w) => {
                let v: Vec<String> = v
                    .iter()
                    .map(|s| s.chars().filter(|&c| c != '\0').take(*w).collect())
                    .collect();
                hdu.write_col(fits, name, &v)
            }
        }
        .map_err(e)?;
    }
    Ok(())
}

fn write_image_f32(fits: &mut FitsFile, path: &Path, ext: &str, v: &[f32]) -> Result<()> {
    let e = |x: fitsio::errors::Error| ferr(path, Some(ext), x);
    let desc = ImageDescription {
        data_type: ImageType::Float,
        dimensions: &[v.len().max(1)],
    };
    let hdu = fits.create_image(ext, &desc).map_err(e)?;
    if !v.is_empty() {
        hdu.write_image(fits, v).map_err(e)?;
    }
    Ok(())
}

fn write_image_i32(fits: &mut FitsFile, path: &Path, ext: &str, v: &[i32]) -> Result<()> {
    let e = |x: fitsio::errors::Error| ferr(path, Some(ext), x);
    let desc = ImageDescription {
        data_type: ImageType::Long,
        dimensions: &[v.len().max(1)],
    };
    let hdu = fits.create_image(ext, &desc).map_err(e)?;
    if !v.is_empty() {
        hdu.write_image(fits, v).map_err(e)?;
    }
    Ok(())
}

/// Write one band's MEDS data to `path` (temporary name, then rename): `object_data`,
/// `image_info`, `metadata`, `image_cutouts`, `weight_cutouts`, `seg_cutouts`,
/// `bmask_cutouts`, `noise_cutouts`, `psf`.
///
/// # Errors
/// [`Error::Fits`] / [`Error::Io`] naming the file.
pub fn write_meds(path: &Path, d: &MedsData) -> Result<()> {
    atomic(path, |f, p| {
        write_table(f, p, "object_data", &d.object_data)?;
        write_table(f, p, "image_info", &d.image_info)?;
        write_table(f, p, "metadata", &d.metadata)?;
        write_image_f32(f, p, "image_cutouts", &d.image)?;
        write_image_f32(f, p, "weight_cutouts", &d.weight)?;
        write_image_i32(f, p, "seg_cutouts", &d.seg)?;
        write_image_i32(f, p, "bmask_cutouts", &d.bmask)?;
        write_image_f32(f, p, "noise_cutouts", &d.noise)?;
        write_image_f32(f, p, "psf", &d.psf)?;
        Ok(())
    })
}

/// Write one table as extension `ext` of a new FITS file (temporary name, then rename), e.g.
/// an `--obj-flags` or FoF table for `ngmixit`.
///
/// # Errors
/// [`Error::Fits`] / [`Error::Io`] naming the file.
pub fn write_table_file(path: &Path, ext: &str, t: &SimTable) -> Result<()> {
    atomic(path, |f, p| write_table(f, p, ext, t))
}

impl Scene {
    /// The truth table: `id`, `number`, `model`, `box_size`, `v`, `u`, `ra`, `dec`,
    /// `cen_offset[2]`, `g[2]`, `T`, `flux[nband]`, `fracdev`, `TdByTe` (cm only, else 0/1),
    /// `mask`, `blend_host` (-1 when none), `pars[5+nband]` (the expected fit parameters).
    ///
    /// # Errors
    /// Never for a generated scene (lengths are consistent).
    pub fn truth_table(&self) -> Result<SimTable> {
        let o = &self.objects;
        let nb = self.nband();
        let mut t = SimTable::new(o.len());
        let f64s = |f: &dyn Fn(usize) -> f64| ColData::F64((0..o.len()).map(f).collect());
        t.push("id", 1, ColData::I64(o.iter().map(|x| x.id).collect()))?;
        t.push(
            "number",
            1,
            ColData::I32(o.iter().map(|x| x.number as i32).collect()),
        )?;
        t.push(
            "model",
            1,
            ColData::Str(o.iter().map(|x| x.model.name().to_string()).collect(), 8),
        )?;
        t.push(
            "box_size",
            1,
            ColData::I32(o.iter().map(|x| x.box_size as i32).collect()),
        )?;
        t.push("v", 1, f64s(&|i| o[i].v))?;
        t.push("u", 1, f64s(&|i| o[i].u))?;
        t.push("ra", 1, f64s(&|i| o[i].ra))?;
        t.push("dec", 1, f64s(&|i| o[i].dec))?;
        t.push(
            "cen_offset",
            2,
            ColData::F64(o.iter().flat_map(|x| x.cen_offset).collect()),
        )?;
        t.push("g", 2, ColData::F64(o.iter().flat_map(|x| x.g).collect()))?;
        t.push("T", 1, f64s(&|i| o[i].t))?;
        t.push(
            "flux",
            nb,
            ColData::F64(o.iter().flat_map(|x| x.flux.clone()).collect()),
        )?;
        let cm = |i: usize| match o[i].model {
            SimModel::Cm { fracdev, tdbyte } => (fracdev, tdbyte),
            _ => (0.0, 1.0),
        };
        t.push("fracdev", 1, f64s(&|i| cm(i).0))?;
        t.push("TdByTe", 1, f64s(&|i| cm(i).1))?;
        t.push(
            "mask",
            1,
            ColData::Str(o.iter().map(|x| x.mask.name().to_string()).collect(), 12),
        )?;
        t.push(
            "blend_host",
            1,
            ColData::I64(
                o.iter()
                    .map(|x| x.blend_host.map_or(-1, |h| h as i64))
                    .collect(),
            ),
        )?;
        t.push(
            "pars",
            5 + nb,
            ColData::F64(o.iter().flat_map(|x| x.pars()).collect()),
        )?;
        Ok(t)
    }
}

/// Paths written by [`write_tile`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimFiles {
    /// One MEDS file per band, in band order.
    pub meds: Vec<PathBuf>,
    /// The truth table (extension `truth`).
    pub truth: PathBuf,
}

/// Render every band of `scene` and write `<dir>/<prefix>-<band>-meds.fits` per band and
/// `<dir>/<prefix>-truth.fits`.
///
/// # Errors
/// Rendering or writing errors.
pub fn write_tile(scene: &Scene, dir: &Path, prefix: &str) -> Result<SimFiles> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut meds = Vec::with_capacity(scene.nband());
    for (b, bt) in scene.bands.iter().enumerate() {
        let p = dir.join(format!("{prefix}-{}-meds.fits", bt.name));
        write_meds(&p, &scene.render_band(b)?)?;
        meds.push(p);
    }
    let truth = dir.join(format!("{prefix}-truth.fits"));
    write_table_file(&truth, "truth", &scene.truth_table()?)?;
    Ok(SimFiles { meds, truth })
}
