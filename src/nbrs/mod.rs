//! Neighbours and friends-of-friends groups (spec §6), the FoF plot, and neighbour rendering
//! from a MOF catalogue (spec §7).
//!
//! * [`find_nbrs`]: the neighbour list of ngmixer's `MedsNbrs` from the coadd boxes of one or
//!   more MEDS files (box overlap by at least a buffer in both axes, optional seg-map
//!   neighbours);
//! * [`find_fofs`]: the FoF groups of ngmixer's `NbrsFoF`, with its exact labels;
//! * [`make_nbrs_data`]: the program `ngmixer-meds-make-nbrs-data` (§1.5): config with the
//!   run-name rule, both tables and the RA/Dec plot, written all-or-nothing;
//! * [`plot_fofs`]: the RA/Dec plot of the groups as PNG.

mod fof;
#[cfg(feature = "des-y1")]
mod io;
mod list;

pub use fof::{cpython_set_order, find_fofs, FofRow};
#[cfg(feature = "des-y1")]
pub use io::{coadd_boxes, coadd_seg, default_paths, tile_id, write_outputs, IntTable};
pub use list::{find_nbrs, numpy_argsort, CoaddBoxes, NO_START};

use crate::plot::{rainbow, Axes, Canvas, Rgb};

/// Grey of singletons in the FoF plot.
pub const SINGLETON_GREY: Rgb = [150, 150, 150];

/// The RA/Dec plot of FoF groups (ngmixer `plot_fofs`): every object as a grey dot, members of
/// groups with at least `minsize` members as larger circles, one rainbow colour per group (in
/// fofid order). `ra`, `dec` are indexed by `number - 1`. Returns the PNG bytes.
pub fn plot_fofs(ra: &[f64], dec: &[f64], fofs: &[FofRow], title: &str, minsize: usize) -> Vec<u8> {
    let mut sizes = std::collections::BTreeMap::<i64, Vec<usize>>::new();
    for &(fofid, number) in fofs {
        let k = (number - 1) as usize;
        if k < ra.len() && k < dec.len() {
            sizes.entry(fofid).or_default().push(k);
        }
    }
    let groups: Vec<&Vec<usize>> = sizes.values().filter(|m| m.len() >= minsize).collect();
    let colours = rainbow(groups.len());
    let fin = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let (xr, yr) = (fin(ra), fin(dec));
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() {
            (lo, hi)
        } else {
            (0.0, 1.0)
        }
    };
    let (x0, x1) = range(&xr);
    let (y0, y1) = range(&yr);
    // equal angular scale on both axes (RA compressed by cos dec), as a sky map
    let cosd = ((y0 + y1) * 0.5).to_radians().cos().abs().max(0.05);
    let (dx, dy) = (((x1 - x0) * cosd).max(1e-9), (y1 - y0).max(1e-9));
    let aspect = (dy / dx).clamp(0.25, 4.0);
    let width = 1200usize;
    let plot_w = width - 200;
    let height = (plot_w as f64 * aspect) as usize + 170;
    let mut c = Canvas::new(width, height, [255, 255, 255]);
    let pad = |lo: f64, hi: f64| {
        let p = (hi - lo).max(1e-9) * 0.04;
        (lo - p, hi + p)
    };
    let ax = Axes::new([130, 70, plot_w, height - 170], pad(x0, x1), pad(y0, y1));
    ax.frame(&mut c, "RA [deg]", "DEC [deg]", title);
    for k in 0..ra.len().min(dec.len()) {
        ax.point(&mut c, ra[k], dec[k], 2, SINGLETON_GREY, true);
    }
    for (g, members) in groups.iter().enumerate() {
        for &k in members.iter() {
            ax.point(&mut c, ra[k], dec[k], 7, colours[g], false);
            ax.point(&mut c, ra[k], dec[k], 3, colours[g], true);
        }
    }
    c.to_png()
}

/// Summary of a [`make_nbrs_data`] run.
#[derive(Debug, Clone, PartialEq)]
pub struct NbrsSummary {
    /// Run name.
    pub run: String,
    /// Neighbour list written.
    pub nbrs_file: std::path::PathBuf,
    /// FoF table written.
    pub fof_file: std::path::PathBuf,
    /// Plot written.
    pub plot_file: std::path::PathBuf,
    /// Objects.
    pub nobj: usize,
    /// Rows of the neighbour list.
    pub nrows: usize,
    /// FoF groups.
    pub nfof: usize,
    /// Largest group.
    pub max_fof: usize,
}

/// Inputs of [`make_nbrs_data`].
#[derive(Debug, Clone, Default)]
pub struct MakeNbrsArgs {
    /// The config (`run-<run>.yaml` with `run` and `nbrs`), as given (written to `CONF`).
    pub config: std::path::PathBuf,
    /// The MEDS file, as given (written to `MEDS`).
    pub meds: std::path::PathBuf,
    /// Neighbour list path (default under `output_dir`).
    pub nbrs_file: Option<std::path::PathBuf>,
    /// FoF table path (default under `output_dir`).
    pub fof_file: Option<std::path::PathBuf>,
    /// Plot path (default: the FoF path with `.fits` replaced by `.png`).
    pub plot_file: Option<std::path::PathBuf>,
    /// `$NGMIXER_OUTPUT_DIR`, needed only for default paths.
    pub output_dir: Option<std::path::PathBuf>,
}

/// The plot path ngmixer uses: the FoF path with `.fits` replaced by `.png` (appended when the
/// name has no `.fits`).
pub fn plot_path(fof_file: &std::path::Path) -> std::path::PathBuf {
    let name = fof_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = match name.strip_suffix(".fits") {
        Some(stem) => format!("{stem}.png"),
        None => format!("{name}.png"),
    };
    fof_file.with_file_name(new)
}

/// `ngmixer-meds-make-nbrs-data` (spec §1.5): read the config (the `run` key must match the
/// file name `run-<run>.yaml`; parameters from `nbrs:`), build the neighbour list from the
/// MEDS file's coadd boxes and the FoF groups, and write both tables (header cards `RUN`,
/// `CONF`, `MEDS`) and the RA/Dec plot. Everything is checked and computed before anything is
/// written, and the three files are renamed into place together.
///
/// # Errors
/// Config errors (unreadable, no `run`/`nbrs`, run-name mismatch), MEDS errors (unreadable,
/// missing columns, `number != row + 1`), no output directory for default paths, or write
/// errors; no output is left on error.
#[cfg(feature = "des-y1")]
pub fn make_nbrs_data(a: &MakeNbrsArgs) -> crate::Result<NbrsSummary> {
    use crate::error::Error;
    let cfg = crate::config::load_nbrs_config(&a.config)?;
    let run = cfg.run.clone().ok_or_else(|| Error::Config {
        file: a.config.display().to_string(),
        msg: "missing key `run`".into(),
    })?;
    crate::config::check_run_name(&a.config, &run)?;
    let default = || -> crate::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let dir = a.output_dir.as_ref().ok_or_else(|| {
            Error::Usage(
                "environment variable NGMIXER_OUTPUT_DIR not set (needed for the default \
                 --nbrs-file/--fof-file paths)"
                    .into(),
            )
        })?;
        Ok(default_paths(dir, &a.meds, &run))
    };
    let nbrs_file = match &a.nbrs_file {
        Some(p) => p.clone(),
        None => default()?.0,
    };
    let fof_file = match &a.fof_file {
        Some(p) => p.clone(),
        None => default()?.1,
    };
    let plot_file = a.plot_file.clone().unwrap_or_else(|| plot_path(&fof_file));
    let outs = [&nbrs_file, &fof_file, &plot_file];
    for (i, p) in outs.iter().enumerate() {
        if outs[..i].contains(p) {
            return Err(Error::Usage(format!(
                "output {} is given twice (neighbour list, FoF table and plot must differ)",
                p.display()
            )));
        }
        let same = std::fs::canonicalize(p).ok().is_some_and(|c| {
            std::fs::canonicalize(&a.meds).ok() == Some(c.clone())
                || std::fs::canonicalize(&a.config).ok() == Some(c)
        });
        if same {
            return Err(Error::Usage(format!(
                "output {} is an input; refusing to overwrite it",
                p.display()
            )));
        }
    }
    let meds = crate::backends::meds::MedsFile::open(&a.meds)?;
    let boxes = coadd_boxes(&meds)?;
    let nbrs = find_nbrs(std::slice::from_ref(&boxes), &cfg.pars, |_, i| {
        coadd_seg(&meds, i)
    })?;
    let fofs = find_fofs(&nbrs)?;
    let od = meds.object_data();
    let name = plot_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // ngmixer: `<plot name up to -mof->` FOF groups; the extension is dropped here
    let stem = name.strip_suffix(".png").unwrap_or(&name);
    let title = format!("{} FOF groups", stem.split("-mof-").next().unwrap_or(""));
    let png = plot_fofs(&od.ra, &od.dec, &fofs, &title, 2);

    let conf_s = a.config.display().to_string();
    let meds_s = a.meds.display().to_string();
    let keys = vec![
        ("RUN", run.as_str()),
        ("CONF", conf_s.as_str()),
        ("MEDS", meds_s.as_str()),
    ];
    let number: Vec<i64> = nbrs.iter().map(|r| r.0).collect();
    let nbr_number: Vec<i64> = nbrs.iter().map(|r| r.1).collect();
    let fofid: Vec<i64> = fofs.iter().map(|r| r.0).collect();
    let fnum: Vec<i64> = fofs.iter().map(|r| r.1).collect();
    write_outputs(
        &[
            (
                nbrs_file.as_path(),
                IntTable {
                    cols: vec![("number", &number), ("nbr_number", &nbr_number)],
                    keys: keys.clone(),
                },
            ),
            (
                fof_file.as_path(),
                IntTable {
                    cols: vec![("fofid", &fofid), ("number", &fnum)],
                    keys,
                },
            ),
        ],
        &[(plot_file.as_path(), png.as_slice())],
    )?;
    let mut count = std::collections::HashMap::<i64, usize>::new();
    for r in &fofs {
        *count.entry(r.0).or_default() += 1;
    }
    Ok(NbrsSummary {
        run,
        nbrs_file,
        fof_file,
        plot_file,
        nobj: boxes.len(),
        nrows: nbrs.len(),
        nfof: count.len(),
        max_fof: count.values().copied().max().unwrap_or(0),
    })
}
