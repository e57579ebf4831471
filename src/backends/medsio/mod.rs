//! Building observations from MEDS files (ngmixer `MEDSImageIO`, spec §3.3–3.6): regions,
//! uberseg, bmask and zero-weight checks, cross-epoch outlier rejection and PSFs from the MEDS
//! `psf` HDU; with [`MedsSource::configure`] also the DES IO features ([`des`]): image flags,
//! PSFEx PSFs from psf maps ([`psfmap`]), pixel-area scaling, trimming and the Y1 bmask keys.
//!
//! Malformed input never panics: file-level problems (missing HDU or column, wrong types,
//! inconsistent sizes) are [`Error::Fits`] naming the file, HDU and column, and errors about one
//! cutout also name the band, the object (`id` and row) and the cutout index; per-cutout problems
//! (NaN pixels, all-zero weights, unusable PSF stamps, singular Jacobians) flag the cutout
//! (`IMAGE_FLAGS` placeholder), and those due to defective input (Jacobian, PSF) are also counted
//! per band in [`ObjectMeta::dropped_epochs`], so no epoch disappears unaccounted.

pub mod des;
pub mod psfmap;
pub mod starflags;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;

use crate::backends::meds::{reject_outliers, CutoutKind, MedsFile};
use crate::backends::psfex::PsfEx;
use crate::config::{FittingConfig, MaxFrac};
use crate::error::{Error, Result};
use crate::flags::{DEFVAL, IMAGE_FLAGS};
use crate::obs::{EpochMeta, MultiBandObs, Observation, PsfMeta};
use crate::obs::{ObjectMeta, ObjectObs};
use crate::traits::ImageSource;

pub use crate::config::Region;
pub use des::{DesSettings, PixelScaling, PsfKind};
pub use psfmap::PsfMap;

/// Observation-building settings (the MEDS IO keys of the fitting config).
#[derive(Debug, Clone, PartialEq)]
pub struct IoSettings {
    /// Weight map.
    pub region: Region,
    /// Cross-epoch outlier rejection.
    pub reject_outliers: bool,
    /// Skip cutouts whose image sums to exactly 0.
    pub ignore_zero_images: bool,
    /// Zero the weight where `bmask & flags`.
    pub extra_mask_flags: i32,
    /// Skip cutouts with any of these bmask bits.
    pub bmask_skip_flags: i32,
    /// Skip cutouts with a bmask bit within this radius of the centre.
    pub central_bmask_radius: Option<i64>,
    /// Maximum fraction of zero-weight pixels (`None` with `one-over-side`: 1/min(shape)).
    pub max_zero_weight_frac: Option<f64>,
    /// Zero weights where the 90°-rotated raw weight is zero.
    pub symmetrize_weight: bool,
    /// Use only cutouts with `icut <= max_cutouts`.
    pub max_cutouts: Option<usize>,
    /// Y1 `min_weight` clipping, when the config asks for it: each weight map is clipped as the
    /// Y1 `_clip_weight` does ([`des::y1_clip_weight`]; with `symmetrize_weight` the Y1
    /// per-map symmetrization replaces the HEAD one).
    pub min_weight: Option<f64>,
}

impl IoSettings {
    /// The settings of a fitting config (its MEDS IO keys).
    pub fn from_config(cfg: &FittingConfig) -> Result<Self> {
        let region = cfg.region;
        let extra = cfg
            .effective_extra_mask_flags()
            .map_err(|m| Error::Config {
                file: cfg.source.clone().unwrap_or_else(|| "<config>".into()),
                msg: format!("extra_mask_flag_list: {m}"),
            })?
            .unwrap_or(0);
        Ok(Self {
            region,
            reject_outliers: cfg.reject_outliers,
            ignore_zero_images: cfg.ignore_zero_images,
            extra_mask_flags: extra as i32,
            bmask_skip_flags: cfg.bmask_skip_flags.unwrap_or(0) as i32,
            central_bmask_radius: cfg.central_bmask_radius.map(i64::from),
            max_zero_weight_frac: match cfg.max_zero_weight_frac {
                MaxFrac::Value(v) => Some(v),
                MaxFrac::OneOverSide => None,
            },
            symmetrize_weight: cfg.symmetrize_weight,
            max_cutouts: cfg.max_cutouts.map(|x| x as usize),
            min_weight: if cfg.y1_min_weight_clipping {
                cfg.min_weight
            } else {
                None
            },
        })
    }
}

impl Default for IoSettings {
    fn default() -> Self {
        Self {
            region: Region::Uberseg,
            reject_outliers: true,
            ignore_zero_images: false,
            extra_mask_flags: 0,
            bmask_skip_flags: 0,
            central_bmask_radius: None,
            max_zero_weight_frac: Some(1.0),
            symmetrize_weight: false,
            max_cutouts: None,
            min_weight: None,
        }
    }
}

/// MEDS files (one per band) as an [`ImageSource`].
#[derive(Debug)]
pub struct MedsSource {
    files: Vec<MedsFile>,
    settings: IoSettings,
    /// Rows of the MEDS files this source covers (all when no sub-range).
    rows: Vec<usize>,
    /// DES / Y1 settings.
    des: DesSettings,
    /// Per band, per `image_info` row: image flags (DES; empty = all 0).
    image_flags: Arc<Vec<Vec<i64>>>,
    /// Per band, per `image_info` row: PSFEx models (PSFEx PSFs only).
    psfex: Arc<Vec<Vec<Option<Arc<PsfEx>>>>>,
}

impl MedsSource {
    /// Open one MEDS file per band; all must describe the same objects
    /// ([`MedsSource::check_bands`]).
    ///
    /// # Errors
    /// No file, an unreadable file, or bands that do not match.
    pub fn open(paths: &[PathBuf], settings: IoSettings) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::Invalid("no MEDS files given".into()));
        }
        let files = paths
            .iter()
            .map(MedsFile::open)
            .collect::<Result<Vec<_>>>()?;
        let n = files[0].size();
        let src = Self {
            files,
            settings,
            rows: (0..n).collect(),
            des: DesSettings::default(),
            image_flags: Default::default(),
            psfex: Default::default(),
        };
        src.check_bands()?;
        Ok(src)
    }

    /// Check that the band files describe the same objects: no file given twice (same
    /// canonical path, or same device and inode), the same number of objects, and the same
    /// `id` and `number` columns row by row.
    ///
    /// # Errors
    /// [`Error::Fits`] naming the offending file (and the first one), the band positions, and
    /// for a column mismatch the first differing row and both values.
    pub fn check_bands(&self) -> Result<()> {
        let ident = |f: &MedsFile| {
            use std::os::unix::fs::MetadataExt;
            let canon = std::fs::canonicalize(f.path()).ok();
            let inode = std::fs::metadata(f.path()).ok().map(|m| (m.dev(), m.ino()));
            (canon, inode)
        };
        let ids: Vec<_> = self.files.iter().map(ident).collect();
        for j in 1..self.files.len() {
            for i in 0..j {
                let same_path = ids[i].0.is_some() && ids[i].0 == ids[j].0;
                let same_inode = ids[i].1.is_some() && ids[i].1 == ids[j].1;
                if same_path || same_inode {
                    return Err(Error::Fits {
                        path: self.files[j].path().to_path_buf(),
                        hdu: None,
                        msg: format!(
                            "the MEDS file of band {j} is the same file as that of band {i} ({}){}",
                            self.files[i].path().display(),
                            if same_path {
                                ""
                            } else {
                                " (same device and inode)"
                            }
                        ),
                    });
                }
            }
        }
        let f0 = &self.files[0];
        let n = f0.size();
        let (id0, num0) = (&f0.object_data().id, &f0.object_data().number);
        for (b, f) in self.files.iter().enumerate().skip(1) {
            let err = |msg: String| Error::Fits {
                path: f.path().to_path_buf(),
                hdu: Some("object_data".into()),
                msg,
            };
            if f.size() != n {
                return Err(err(format!(
                    "band {b} has {} objects but {} (band 0) has {n}",
                    f.size(),
                    f0.path().display()
                )));
            }
            let od = f.object_data();
            for (col, a, v) in [("id", id0, &od.id), ("number", num0, &od.number)] {
                if let Some(r) = (0..n).find(|&r| a.get(r) != v.get(r)) {
                    let show = |x: Option<&i64>| x.map_or("-".to_string(), |x| x.to_string());
                    return Err(err(format!(
                        "band {b} does not describe the same objects as {} (band 0): first \
                         differing row {r}: {col} {} here, {} in band 0",
                        f0.path().display(),
                        show(v.get(r)),
                        show(a.get(r))
                    )));
                }
            }
        }
        Ok(())
    }

    /// Switch on the DES / Y1 features: read the image flags (DES io types), the replacement
    /// flags and the PSFEx models (from `psf_map`, one map file per band, or the Y1 path rule).
    ///
    /// # Errors
    /// A missing `image_flags` column, a bad replacement-flags file, a psf map with the wrong
    /// number of files or without a needed entry, a missing or unreadable `.psf` file: each
    /// names the file (and map line) concerned.
    pub fn configure(&mut self, des: DesSettings, psf_map: Option<&PsfMap>) -> Result<()> {
        let nband = self.files.len();
        if let (PsfKind::Psfex { from_image: false }, Some(m)) = (&des.psfs, psf_map) {
            if m.nfiles() != nband {
                return Err(Error::Invalid(format!(
                    "--psf-map: {} psf map files for {nband} MEDS files (one per band)",
                    m.nfiles()
                )));
            }
        }
        let replacement = match &des.replacement_flags {
            Some(p) if des.des_io => Some(des::read_replacement_flags(p)?),
            _ => None,
        };
        let mut flags = Vec::with_capacity(nband);
        let mut psfs = Vec::new();
        for (band, f) in self.files.iter().enumerate() {
            let mut fl = if des.des_io {
                des::band_image_flags(f, &des, replacement.as_ref())?
            } else {
                vec![0; f.image_info().len()]
            };
            if matches!(des.psfs, PsfKind::Psfex { .. }) {
                psfs.push(des::load_band_psfex(f, band, &des, psf_map, &mut fl)?);
            }
            flags.push(fl);
        }
        self.image_flags = Arc::new(if des.des_io || !psfs.is_empty() {
            flags
        } else {
            Vec::new()
        });
        self.psfex = Arc::new(psfs);
        self.des = des;
        Ok(())
    }

    /// The DES / Y1 settings in use.
    pub fn des_settings(&self) -> &DesSettings {
        &self.des
    }

    /// The image flags of `band` per `image_info` row, after [`MedsSource::configure`]
    /// (`None` without DES image flags).
    pub fn image_flags(&self, band: usize) -> Option<&[i64]> {
        self.image_flags.get(band).map(|v| v.as_slice())
    }

    /// The MEDS row of source index `k`.
    fn row(&self, k: usize) -> Result<usize> {
        self.rows.get(k).copied().ok_or_else(|| {
            Error::Invalid(format!(
                "object {k} out of range ({} objects)",
                self.rows.len()
            ))
        })
    }

    /// The MEDS rows covered, in iteration order.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// The MEDS files.
    pub fn files(&self) -> &[MedsFile] {
        &self.files
    }

    /// The MEDS file paths.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path()).collect()
    }

    /// The observations of one band of object `iobj`; returns `(nimage_tot, dropped)`, the
    /// number of SE cutouts and of those the input data made unusable (see [`Unusable`]).
    fn build_band(
        &self,
        band: usize,
        iobj: usize,
        coadd: &mut Vec<Observation>,
        se: &mut Vec<Observation>,
    ) -> Result<(i32, u32)> {
        let f = &self.files[band];
        let s = &self.settings;
        let ncut = f.ncutout(iobj)?;
        let id = f
            .object_data()
            .id
            .get(iobj)
            .copied()
            .unwrap_or(DEFVAL as i64);
        let number = f.number(iobj)?;
        let ctx = |icut: usize| CutoutCtx {
            path: f.path(),
            band,
            id,
            iobj,
            icut,
        };
        let mut nimage_tot = 0;
        let mut dropped = 0u32;
        let mut buf = Vec::new();
        let mut ibuf = Vec::new();
        let band_flags = self.image_flags.get(band);
        for icut in 0..ncut {
            let ci = f.cutout_info(iobj, icut).map_err(|e| ctx(icut).wrap(e))?;
            // a file_id outside image_info is a malformed file, whatever the cutout's use
            let file_id = f.file_id(iobj, icut).map_err(|e| ctx(icut).wrap(e))?;
            let meta = EpochMeta {
                id,
                number: number as i32,
                band_num: band as i16,
                cutout_index: icut as i32,
                orig_row: ci.orig_row,
                orig_col: ci.orig_col,
                orig_start_row: ci.orig_start_row,
                orig_start_col: ci.orig_start_col,
                file_id: ci.file_id as i32,
            };
            if icut > 0 {
                nimage_tot += 1;
            }
            let skip_max = s.max_cutouts.is_some_and(|mc| icut > mc);
            let iflags = match band_flags {
                Some(fl) if !skip_max => *fl.get(file_id).ok_or_else(|| {
                    ctx(icut).wrap(Error::Fits {
                        path: f.path().to_path_buf(),
                        hdu: Some("object_data".into()),
                        msg: format!(
                            "file_id {file_id} is outside the image flags ({} rows)",
                            fl.len()
                        ),
                    })
                })?,
                _ => 0,
            };
            let obs = if skip_max || iflags != 0 {
                Err(Unusable::Skipped)
            } else {
                self.build_obs(f, band, iobj, icut, meta.clone(), &mut buf, &mut ibuf)
                    .map_err(|e| ctx(icut).wrap(e))?
            };
            let obs = match obs {
                Ok(o) => o,
                Err(why) => {
                    if why == Unusable::Defective && icut > 0 {
                        dropped += 1;
                    }
                    Observation::placeholder(IMAGE_FLAGS, meta)
                }
            };
            if icut == 0 {
                coadd.push(obs);
            } else {
                se.push(obs);
            }
        }
        if s.reject_outliers {
            reject_band_outliers(se).map_err(|e| {
                let msg = format!("band {band}, object id {id} (row {iobj}): outlier rejection");
                prefix_error(e, f.path(), &msg)
            })?;
        }
        if self.des.scaling != PixelScaling::None {
            let nco = coadd.len();
            for (k, obs) in coadd.iter_mut().chain(se.iter_mut()).enumerate() {
                if obs.flags == 0 && !des::scale_obs(obs, self.des.scaling) {
                    // a non-finite pixel scale: the Jacobian is unusable
                    if k >= nco {
                        dropped += 1;
                    }
                    let meta = std::mem::take(&mut obs.meta);
                    *obs = Observation::placeholder(IMAGE_FLAGS, meta);
                }
            }
        }
        Ok((nimage_tot, dropped))
    }

    /// The bmask checks (Y1 `symmetrize_bmask`/`max_bmask_frac`, `bmask_skip_flags`,
    /// `central_bmask_radius`); `Ok(false)` to skip the cutout.
    fn bmask_ok(
        &self,
        f: &MedsFile,
        iobj: usize,
        icut: usize,
        bm: &mut Array2<i32>,
    ) -> Result<bool> {
        let s = &self.settings;
        let (nr, nc) = bm.dim();
        if self.des.symmetrize_bmask {
            if nr != nc {
                return Err(Error::Fits {
                    path: f.path().to_path_buf(),
                    hdu: Some("bmask_cutouts".into()),
                    msg: format!(
                        "symmetrize_bmask: cannot symmetrize the non-square {nr}x{nc} bmask of \
                         object {iobj} cutout {icut}"
                    ),
                });
            }
            let rot = des::rot90(bm);
            for (b, r) in bm.iter_mut().zip(rot.iter()) {
                *b |= *r;
            }
        }
        if let Some(maxfrac) = self.des.max_bmask_frac {
            let nbad = bm.iter().filter(|&&b| b != 0).count() as f64;
            if nbad / (nr * nc) as f64 > maxfrac.threshold(nr, nc) {
                return Ok(false);
            }
        }
        if s.bmask_skip_flags != 0 && bm.iter().any(|&b| b & s.bmask_skip_flags != 0) {
            return Ok(false);
        }
        if let Some(r) = s.central_bmask_radius {
            let ci = f.cutout_info(iobj, icut)?;
            let clip = |x: f64, n: usize| {
                if x.is_finite() {
                    (x as i64).clamp(0, n as i64 - 1) as usize
                } else {
                    0
                }
            };
            let (r0, r1) = (
                clip(ci.cutout_row - r as f64, nr),
                clip(ci.cutout_row + r as f64, nr),
            );
            let (c0, c1) = (
                clip(ci.cutout_col - r as f64, nc),
                clip(ci.cutout_col + r as f64, nc),
            );
            if (r0..r1).any(|i| (c0..c1).any(|j| bm[[i, j]] != 0)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The PSF stamp, its centre and width in pixels, or `None` when it is unusable (no PSFEx
    /// model for the image, a non-finite position, an empty stamp): always a defect of the
    /// input, counted in `dropped_epochs`.
    #[allow(clippy::type_complexity)]
    fn psf_image(
        &self,
        f: &MedsFile,
        band: usize,
        iobj: usize,
        icut: usize,
        buf: &mut Vec<f64>,
    ) -> Result<Option<(Array2<f64>, (f64, f64), f64)>> {
        match &self.des.psfs {
            PsfKind::Infile => {
                let (pr, pc) = f.psf(iobj, icut, buf)?;
                let cen = f
                    .psf_center(iobj, icut)?
                    .unwrap_or(((pr as f64 - 1.0) / 2.0, (pc as f64 - 1.0) / 2.0));
                let sigma_pix = f.psf_sigma(iobj, icut)?.unwrap_or(2.5);
                if pr == 0 || pc == 0 {
                    return Ok(None);
                }
                let im = Array2::from_shape_vec((pr, pc), buf.clone())
                    .map_err(|e| Error::Invalid(format!("PSF stamp: {e}")))?;
                Ok(Some((im, cen, sigma_pix)))
            }
            PsfKind::Psfex { .. } => {
                let ci = f.cutout_info(iobj, icut)?;
                let psf = usize::try_from(ci.file_id)
                    .ok()
                    .and_then(|k| self.psfex.get(band)?.get(k))
                    .and_then(|p| p.as_ref());
                let Some(psf) = psf else {
                    return Ok(None);
                };
                let (mut row, mut col) = (ci.orig_row, ci.orig_col);
                if !(row.is_finite() && col.is_finite()) {
                    return Ok(None);
                }
                if self.des.center_psf {
                    row = row.round();
                    col = col.round();
                }
                let (mut nr, mut nc) = psf.get_rec_into(row, col, buf);
                let mut cen = psf.get_center(row, col);
                if let (Some(d), true) = (self.des.trim_psf, icut > 0) {
                    let (v, r, c, ce) = des::trim_psf(buf, nr, nc, cen, d);
                    *buf = v;
                    (nr, nc, cen) = (r, c, ce);
                }
                if nr == 0 || nc == 0 {
                    return Ok(None);
                }
                let im = Array2::from_shape_vec((nr, nc), buf.clone())
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                Ok(Some((im, cen, psf.get_sigma())))
            }
        }
    }

    /// One observation, or why the cutout cannot be used.
    #[allow(clippy::too_many_arguments)]
    fn build_obs(
        &self,
        f: &MedsFile,
        band: usize,
        iobj: usize,
        icut: usize,
        meta: EpochMeta,
        buf: &mut Vec<f64>,
        ibuf: &mut Vec<i32>,
    ) -> Result<Built> {
        let s = &self.settings;
        let (nr, nc) = f.cutout(CutoutKind::Image, iobj, icut, buf)?;
        let image = Array2::from_shape_vec((nr, nc), buf.clone())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let bmask = if f.has_cutouts(CutoutKind::Bmask) {
            f.cutout_i32(CutoutKind::Bmask, iobj, icut, ibuf)?;
            let mut bm = Array2::from_shape_vec((nr, nc), ibuf.clone())
                .map_err(|e| Error::Invalid(e.to_string()))?;
            if !self.bmask_ok(f, iobj, icut, &mut bm)? {
                return Ok(Err(Unusable::Skipped));
            }
            Some(bm)
        } else {
            None
        };
        // A singular or non-finite jacobian (ngmixer: jacobian None) skips the cutout; the
        // seg-based weights also need the coadd's.
        let Ok(jac) = f.jacobian(iobj, icut) else {
            return Ok(Err(Unusable::Defective));
        };
        let coadd_jac_ok = icut == 0 || f.jacobian(iobj, 0).is_ok();
        if !coadd_jac_ok && s.region != Region::Weight {
            return Ok(Err(Unusable::Defective));
        }
        f.cutout(CutoutKind::Weight, iobj, icut, buf)?;
        let mut wt_raw = Array2::from_shape_vec((nr, nc), buf.clone())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let uberseg = |buf: &mut Vec<f64>| -> Result<Array2<f64>> {
            f.uberseg(iobj, icut, buf)?;
            Array2::from_shape_vec((nr, nc), buf.clone()).map_err(|e| Error::Invalid(e.to_string()))
        };
        let (mut wt, mut wt_us) = match s.region {
            Region::Mof => (wt_raw.clone(), Some(uberseg(buf)?)),
            Region::Uberseg | Region::CweightNearest => (uberseg(buf)?, None),
            Region::SegAndSky => {
                f.cweight(iobj, icut, buf)?;
                (
                    Array2::from_shape_vec((nr, nc), buf.clone())
                        .map_err(|e| Error::Invalid(e.to_string()))?,
                    None,
                )
            }
            Region::Weight => (wt_raw.clone(), None),
        };
        if let Some(mw) = s.min_weight {
            // Y1 `_clip_weight` on every map (its own symmetrization included)
            des::y1_clip_weight(&mut wt, mw, s.symmetrize_weight);
            des::y1_clip_weight(&mut wt_raw, mw, s.symmetrize_weight);
            if let Some(us) = wt_us.as_mut() {
                des::y1_clip_weight(us, mw, s.symmetrize_weight);
            }
        }
        if s.extra_mask_flags != 0 {
            if let Some(bm) = &bmask {
                for (w, &b) in wt.iter_mut().zip(bm.iter()) {
                    if b & s.extra_mask_flags != 0 {
                        *w = 0.0;
                    }
                }
                if let Some(us) = wt_us.as_mut() {
                    for (w, &b) in us.iter_mut().zip(bm.iter()) {
                        if b & s.extra_mask_flags != 0 {
                            *w = 0.0;
                        }
                    }
                }
            }
        }
        if s.symmetrize_weight && s.min_weight.is_none() && nr == nc {
            let rot = des::rot90(&wt_raw);
            for (k, &r) in rot.iter().enumerate() {
                if r == 0.0 {
                    let (i, j) = (k / nc, k % nc);
                    wt_raw[[i, j]] = 0.0;
                    wt[[i, j]] = 0.0;
                    if let Some(us) = wt_us.as_mut() {
                        us[[i, j]] = 0.0;
                    }
                }
            }
        }
        let nzero = wt_raw.iter().filter(|&&w| w == 0.0).count() as f64;
        let limit = s.max_zero_weight_frac.unwrap_or(1.0 / nr.min(nc) as f64);
        if nzero / (nr * nc) as f64 > limit {
            return Ok(Err(Unusable::Skipped));
        }
        if s.ignore_zero_images && image.sum() == 0.0 {
            return Ok(Err(Unusable::Skipped));
        }
        let Some((psf_im, (prow, pcol), sigma_pix)) = self.psf_image(f, band, iobj, icut, buf)?
        else {
            return Ok(Err(Unusable::Defective));
        };
        if psf_im.is_empty() || !psf_im.iter().all(|x| x.is_finite()) {
            return Ok(Err(Unusable::Defective));
        }
        let psf_jac = jac.with_cen(prow, pcol);
        let psf_norm = psf_im.sum();
        let Ok(mut psf) = Observation::with_unit_weight(psf_im, psf_jac) else {
            return Ok(Err(Unusable::Defective));
        };
        let sigma_sky = sigma_pix * jac.scale();
        psf.psf_meta = PsfMeta {
            tguess: sigma_sky * sigma_sky,
            sigma_sky,
            psf_norm,
        };
        // ngmix's fatal error (no pixel with weight > 0): skipped, as ngmixer does
        let Ok(mut obs) = Observation::new(image, wt, jac) else {
            return Ok(Err(Unusable::Skipped));
        };
        obs.meta = meta;
        obs.psf = Some(Box::new(psf));
        // non-finite raw/uberseg weights (NaN pixels in the file) become 0, as in `weight`
        for a in std::iter::once(&mut wt_raw).chain(wt_us.as_mut()) {
            a.mapv_inplace(|w| if w.is_finite() { w } else { 0.0 });
        }
        obs.weight_raw = Some(wt_raw);
        obs.weight_us = wt_us;
        obs.bmask = bmask;
        if f.has_cutouts(CutoutKind::Seg) {
            // ngmixer falls back to the epoch's own seg cutout when the interpolation fails
            let (sr, sc) = if coadd_jac_ok {
                f.interpolated_coadd_seg(iobj, icut, ibuf)?
            } else {
                f.cutout_i32(CutoutKind::Seg, iobj, icut, ibuf)?
            };
            obs.seg = Array2::from_shape_vec((sr, sc), ibuf.clone()).ok();
        }
        if f.has_cutouts(CutoutKind::Noise) {
            f.cutout(CutoutKind::Noise, iobj, icut, buf)?;
            obs.noise = Array2::from_shape_vec((nr, nc), buf.clone()).ok();
        }
        if let Some(d) = self.des.trim_image {
            // nothing left after trimming: the centre is off the cutout
            return Ok(des::trim_obs(obs, d).ok_or(Unusable::Defective));
        }
        Ok(Ok(obs))
    }
}

/// Why a cutout became a flagged placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    /// Left out by a selection ngmixer makes (`max_cutouts`, image flags, bmask, zero-weight
    /// fraction, zero image, no pixel with weight > 0).
    Skipped,
    /// The input data for it are defective (a singular or non-finite Jacobian, a missing,
    /// empty or non-finite PSF, a centre off the trimmed stamp): counted per band in
    /// [`ObjectMeta::dropped_epochs`] (single-epoch cutouts) besides being flagged.
    Defective,
}

/// An observation, or why there is none.
type Built = std::result::Result<Observation, Unusable>;

/// The cutout an error is about.
struct CutoutCtx<'a> {
    path: &'a Path,
    band: usize,
    id: i64,
    iobj: usize,
    icut: usize,
}

impl CutoutCtx<'_> {
    /// Name the band, object (id and row) and cutout index in `e`'s message.
    fn wrap(&self, e: Error) -> Error {
        let what = format!(
            "band {}, object id {} (row {}), cutout {}",
            self.band, self.id, self.iobj, self.icut
        );
        prefix_error(e, self.path, &what)
    }
}

/// Prefix the message of `e` with `what` (and name the file for errors that do not).
fn prefix_error(e: Error, path: &Path, what: &str) -> Error {
    match e {
        Error::Fits { path, hdu, msg } => Error::Fits {
            path,
            hdu,
            msg: format!("{what}: {msg}"),
        },
        Error::Invalid(msg) => Error::Fits {
            path: path.to_path_buf(),
            hdu: None,
            msg: format!("{what}: {msg}"),
        },
        Error::GMix(g) => Error::Fits {
            path: path.to_path_buf(),
            hdu: None,
            msg: format!("{what}: {g}"),
        },
        e => e,
    }
}

/// Outlier rejection over the usable SE observations of one band, on every weight map kept.
fn reject_band_outliers(se: &mut [Observation]) -> Result<()> {
    let idx: Vec<usize> = (0..se.len()).filter(|&i| se[i].flags == 0).collect();
    if idx.len() < 3 {
        return Ok(());
    }
    let dims = se[idx[0]].dims();
    if idx.iter().any(|&i| se[i].dims() != dims) {
        return Ok(());
    }
    let images: Vec<Vec<f64>> = idx.iter().map(|&i| se[i].image_slice().to_vec()).collect();
    let im_refs: Vec<&[f64]> = images.iter().map(|v| v.as_slice()).collect();
    // weight
    let mut ws: Vec<Vec<f64>> = idx.iter().map(|&i| se[i].weight_slice().to_vec()).collect();
    {
        let mut w_refs: Vec<&mut [f64]> = ws.iter_mut().map(|v| v.as_mut_slice()).collect();
        reject_outliers(&im_refs, &mut w_refs)?;
    }
    for (k, &i) in idx.iter().enumerate() {
        let w = Array2::from_shape_vec(dims, std::mem::take(&mut ws[k]))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if se[i].set_weight(w).is_err() {
            let meta = se[i].meta.clone();
            se[i] = Observation::placeholder(IMAGE_FLAGS, meta);
        }
    }
    fn raw(o: &mut Observation) -> Option<&mut Array2<f64>> {
        o.weight_raw.as_mut()
    }
    fn us(o: &mut Observation) -> Option<&mut Array2<f64>> {
        o.weight_us.as_mut()
    }
    type Getter = fn(&mut Observation) -> Option<&mut Array2<f64>>;
    let getters: [Getter; 2] = [raw, us];
    for get in getters {
        let mut maps: Vec<Vec<f64>> = Vec::new();
        let mut which = Vec::new();
        for &i in &idx {
            if se[i].flags != 0 {
                continue;
            }
            if let Some(a) = get(&mut se[i]) {
                maps.push(a.iter().copied().collect());
                which.push(i);
            }
        }
        if which.len() < 3 {
            continue;
        }
        let ims: Vec<&[f64]> = which
            .iter()
            .map(|&i| se[i].image_slice())
            .collect::<Vec<_>>();
        let ims: Vec<Vec<f64>> = ims.iter().map(|s| s.to_vec()).collect();
        let im_refs: Vec<&[f64]> = ims.iter().map(|v| v.as_slice()).collect();
        {
            let mut w_refs: Vec<&mut [f64]> = maps.iter_mut().map(|v| v.as_mut_slice()).collect();
            reject_outliers(&im_refs, &mut w_refs)?;
        }
        for (k, &i) in which.iter().enumerate() {
            if let Some(a) = get(&mut se[i]) {
                for (d, s) in a.iter_mut().zip(&maps[k]) {
                    *d = *s;
                }
            }
        }
    }
    Ok(())
}

impl ImageSource for MedsSource {
    fn nobj(&self) -> usize {
        self.rows.len()
    }
    fn nband(&self) -> usize {
        self.files.len()
    }
    fn read_object(&mut self, k: usize, out: &mut ObjectObs) -> Result<()> {
        let iobj = self.row(k)?;
        let f0 = &self.files[0];
        let od = f0.object_data();
        out.meta = ObjectMeta {
            id: od.id.get(iobj).copied().unwrap_or(DEFVAL as i64),
            number: f0.number(iobj)?,
            ra: od.ra.get(iobj).copied().unwrap_or(DEFVAL),
            dec: od.dec.get(iobj).copied().unwrap_or(DEFVAL),
            nimage_tot: Vec::with_capacity(self.files.len()),
            fofid: DEFVAL as i64,
            obj_flags: 0,
            dropped_epochs: vec![0; self.files.len()],
        };
        let mut coadd = Vec::new();
        let mut se = Vec::new();
        for b in 0..self.files.len() {
            let mut c = Vec::new();
            let mut s = Vec::new();
            let (n, dropped) = self.build_band(b, iobj, &mut c, &mut s)?;
            out.meta.nimage_tot.push(n);
            out.meta.dropped_epochs[b] = dropped;
            coadd.push(c);
            se.push(s);
        }
        // (errors from these name the band's file and the cutout; add the object id)
        let what = |step: &str| format!("object id {} (row {iobj}): {step}", out.meta.id);
        if let Some(ignore) = self.des.propagate_star_flags {
            starflags::propagate_star_flags(&self.files, iobj, &coadd, &mut se, ignore)
                .map_err(|e| prefix_error(e, f0.path(), &what("star-flag propagation")))?;
        }
        if self.des.flag_stellar_halo {
            out.meta.obj_flags |=
                starflags::stellar_halo_flag(&self.files, iobj, out.meta.number, &coadd, &se)
                    .map_err(|e| prefix_error(e, f0.path(), &what("stellar-halo flag")))?;
        }
        out.coadd = MultiBandObs::new(coadd);
        out.se = MultiBandObs::new(se);
        Ok(())
    }
    fn id_number(&self, k: usize) -> Result<(i64, i64)> {
        let iobj = self.row(k)?;
        let f0 = &self.files[0];
        let id = f0
            .object_data()
            .id
            .get(iobj)
            .copied()
            .unwrap_or(DEFVAL as i64);
        Ok((id, f0.number(iobj)?))
    }
    fn reopen(&self) -> Result<Self> {
        Ok(Self {
            files: self
                .files
                .iter()
                .map(|f| f.reopen())
                .collect::<Result<_>>()?,
            settings: self.settings.clone(),
            rows: self.rows.clone(),
            des: self.des.clone(),
            image_flags: self.image_flags.clone(),
            psfex: self.psfex.clone(),
        })
    }
}
