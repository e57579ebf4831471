//! The two directory layouts: Y1 (`megamixit`, `$DESDATA` inputs, spec §1.2, §8.1) and Y3
//! (`megamix-meds`, `$NGMIXER_OUTPUT_DIR`, spec §1.3, §8.2).

use std::path::{Path, PathBuf};

use super::{Layout, SeedMode, TilePlan};
use crate::config::{load_fitting_config, load_run_config, FittingConfig, RunConfig};
use crate::error::{Error, Result};

/// Command-line settings the layouts share.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--tile-seed`: every chunk gets the run seed itself.
    pub tile_seed: bool,
    /// `--extra-cmds`.
    pub extra_cmds: Option<PathBuf>,
    /// `--queue`.
    pub queue: Option<String>,
    /// `--walltime` (None: the layout's default).
    pub walltime: Option<String>,
    /// `--walltime-e`.
    pub walltime_e: Option<String>,
    /// `--ncores`.
    pub ncores: usize,
    /// `--missing`.
    pub missing: bool,
    /// `--psf-map` files (Y3).
    pub psf_map: Vec<PathBuf>,
    /// `--fof-file`: chunk by FoF ranges of this file.
    pub fof_file: Option<PathBuf>,
    /// Command collating the tile (Slurm collate job).
    pub collate_cmd: Option<String>,
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(|v| crate::config::expand_path(&v.to_string_lossy()))
}

fn abs(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn entropy_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (t ^ (u64::from(std::process::id()) << 16)) % (1 << 32)
}

fn seed_mode(seed: Option<u64>, tile_seed: bool, log: &mut dyn FnMut(&str)) -> Result<SeedMode> {
    match (seed, tile_seed) {
        (Some(s), true) => Ok(SeedMode::Tile(s)),
        (None, true) => Err(Error::Usage("--tile-seed needs a seed (--seed N)".into())),
        (Some(s), false) => Ok(SeedMode::PerChunk(s)),
        (None, false) => {
            let s = entropy_seed();
            log(&format!(
                "no --seed: the per-chunk seeds come from the random seed {s} (give --seed {s} \
                 to draw the same ones again)"
            ));
            Ok(SeedMode::PerChunk(s))
        }
    }
}

/// The Y3 tile id of a MEDS file: `--tile-id` (which must occur in the file name), a DESDM
/// name `tilename_reqatt_band_...` (4 `_`-fields: `tilename_reqatt`), else the first `_`-field.
///
/// # Errors
/// A `--tile-id` that is not in the file name.
pub fn y3_tile_id(meds: &Path, tile_id: Option<&str>) -> Result<String> {
    let name = meds
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(t) = tile_id {
        if !name.contains(t) {
            return Err(Error::Usage(format!(
                "--tile-id {t} does not occur in the MEDS file name {name}"
            )));
        }
        return Ok(t.to_string());
    }
    let f: Vec<&str> = name.split('_').collect();
    if f.len() == 4 {
        Ok(format!("{}_{}", f[0], f[1]))
    } else {
        Ok(f[0].to_string())
    }
}

/// The run name of a Y3 fitting config: its file must be named `run-<run>.yaml` with `<run>`
/// its `run` key (the original's rule).
///
/// # Errors
/// No `run` key, or a file name that does not match it.
pub fn y3_run(cfg: &FittingConfig, path: &Path) -> Result<String> {
    let err = |msg: String| Error::Config {
        file: path.display().to_string(),
        msg,
    };
    let run = cfg
        .run
        .clone()
        .ok_or_else(|| err("megamix-meds needs the run name: key `run`".into()))?;
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().replace(".yaml", ""))
        .unwrap_or_default();
    let from_name = stem.split('-').skip(1).collect::<Vec<_>>().join("-");
    if from_name != run {
        return Err(err(format!(
            "run in config '{run}' does not match the file name '{stem}' (name it \
             run-{run}.yaml)"
        )));
    }
    Ok(run)
}

/// The plan of a `megamix-meds` tile: `config`, MEDS files (one per band), options.
///
/// # Errors
/// `$NGMIXER_OUTPUT_DIR` unset; config without `run`, `jobs.chunksize`, `jobs.bands`; no seed
/// (`--seed` or `global_seed`); band count mismatch; PSFEx without `--psf-map`.
pub fn y3_plan(
    config: &Path,
    meds: &[PathBuf],
    tile_id: Option<&str>,
    o: &PlanOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(TilePlan, FittingConfig)> {
    let cfg = load_fitting_config(config)?;
    let cfg_err = |msg: &str| Error::Config {
        file: config.display().to_string(),
        msg: msg.to_string(),
    };
    let run = y3_run(&cfg, config)?;
    let jobs = cfg
        .jobs
        .as_ref()
        .ok_or_else(|| cfg_err("megamix-meds needs `jobs: {chunksize, bands}`"))?;
    if jobs.chunksize == 0 {
        return Err(cfg_err("jobs.chunksize must be >= 1"));
    }
    if jobs.bands.len() != meds.len() {
        return Err(Error::Usage(format!(
            "{} MEDS files for the {} bands of jobs.bands {:?}",
            meds.len(),
            jobs.bands.len(),
            jobs.bands
        )));
    }
    let first = meds
        .first()
        .ok_or_else(|| Error::Usage("no MEDS file given".into()))?;
    let tile = y3_tile_id(first, tile_id)?;
    let out = env_dir("NGMIXER_OUTPUT_DIR").ok_or_else(|| {
        Error::Usage("megamix-meds: set $NGMIXER_OUTPUT_DIR (the base output directory)".into())
    })?;
    let seed = o.seed.or(cfg.global_seed);
    if seed.is_none() {
        return Err(Error::Usage(
            "either set 'global_seed' in the config or give --seed".into(),
        ));
    }
    let seeds = seed_mode(seed, o.tile_seed, log)?;
    let psf_needs_map = matches!(cfg.imageio.psfs, crate::config::PsfsConfig::Psfex { .. });
    if psf_needs_map && o.psf_map.is_empty() {
        return Err(cfg_err(
            "imageio.psfs needs psf map files: give --psf-map f1,f2,.. (one per band)",
        ));
    }
    let run_dir = abs(&out).join(&run);
    let tile_dir = run_dir.join(&tile);
    let (mut fof_file, mut nbrs_file) = (o.fof_file.as_deref().map(abs), None);
    if cfg.model_nbrs {
        let d = run_dir.join("output-nbrs");
        fof_file = Some(d.join(format!("{tile}-{run}-nbrsfofs.fits")));
        nbrs_file = Some(d.join(format!("{tile}-{run}-nbrslist.fits")));
    }
    let plan = TilePlan {
        layout: Layout::Y3,
        run: run.clone(),
        tile,
        work_dir: tile_dir.clone(),
        tile_dir,
        collated_dir: run_dir.join("output"),
        run_dir,
        config_file: abs(config),
        run_config: None,
        meds_files: meds.iter().map(|m| abs(m)).collect(),
        desdata: None,
        fof_file,
        nbrs_file,
        obj_flags: None,
        mof_file: None,
        psf_map: o.psf_map.iter().map(|p| abs(p)).collect(),
        chunksize: jobs.chunksize as usize,
        seeds,
        extra_cmds: o.extra_cmds.clone(),
        walltime: o.walltime.clone().unwrap_or_else(|| "48:00".into()),
        walltime_e: o.walltime_e.clone().unwrap_or_else(|| "4:00".into()),
        ncores: o.ncores.max(1),
        queue: o.queue.clone(),
        collate_cmd: o.collate_cmd.clone(),
        missing_only: o.missing,
    };
    Ok((plan, cfg))
}

/// A megamixit run: the run config (and its path) and the fitting config.
#[derive(Debug, Clone)]
pub struct Y1Run {
    /// Run config.
    pub conf: RunConfig,
    /// Its path.
    pub conf_file: PathBuf,
    /// Fitting config path.
    pub ngmix_config: PathBuf,
    /// Fitting config.
    pub cfg: FittingConfig,
}

/// Load a megamixit run (`run` name with `$NGMIXER_CONFIG_DIR`, else a run config path).
///
/// # Errors
/// Unreadable configs; a run name that does not match the file's `run`; both `model_nbrs` and
/// `make_corrected_meds`.
pub fn y1_run(arg: &str) -> Result<Y1Run> {
    let cdir = env_dir("NGMIXER_CONFIG_DIR");
    let conf_file = match &cdir {
        Some(d) => d.join("run_config").join(format!("run-{arg}.yaml")),
        None => crate::config::expand_path(arg),
    };
    let conf = load_run_config(&conf_file)?;
    if cdir.is_some() && conf.run != arg {
        return Err(Error::Config {
            file: conf_file.display().to_string(),
            msg: format!(
                "specified run '{arg}' does not match `run: {}` in the file",
                conf.run
            ),
        });
    }
    let ngmix_config = match &cdir {
        Some(d) => d
            .join("ngmix_config")
            .join(format!("ngmix-{}.yaml", conf.run)),
        None => {
            let p = crate::config::expand_path(&conf.ngmix_config_name());
            if p.is_relative() {
                // relative to the run config's directory when it is there
                let beside = conf_file.parent().map(|d| d.join(&p));
                match beside {
                    Some(b) if b.exists() => b,
                    _ => p,
                }
            } else {
                p
            }
        }
    };
    let cfg = load_fitting_config(&ngmix_config)?;
    if cfg.model_nbrs && cfg.make_corrected_meds {
        return Err(Error::Config {
            file: ngmix_config.display().to_string(),
            msg: "do not set both 'make_corrected_meds' and 'model_nbrs'".into(),
        });
    }
    Ok(Y1Run {
        conf,
        conf_file: abs(&conf_file),
        ngmix_config: abs(&ngmix_config),
        cfg,
    })
}

/// The coadd runs of the third megamixit argument: the lines of a file, else the argument
/// itself (a DES release cannot be looked up without `desdb`).
pub fn y1_tiles(arg: &str, log: &mut dyn FnMut(&str)) -> Result<Vec<String>> {
    let p = Path::new(arg);
    if p.is_file() {
        let t = std::fs::read_to_string(p).map_err(|e| Error::Io {
            path: p.to_path_buf(),
            source: e,
        })?;
        return Ok(t
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect());
    }
    log(&format!(
        "'{arg}' is not a file: taking it as one coadd run (DES release names need desdb, \
         which this version does not query)"
    ));
    Ok(vec![arg.to_string()])
}

/// The plan of one megamixit tile (coadd run `full`).
///
/// # Errors
/// `$DESDATA` unset; a missing MEDS, FoF, nbrs or MOF file.
pub fn y1_plan(
    r: &Y1Run,
    full: &str,
    o: &PlanOptions,
    log: &mut dyn FnMut(&str),
) -> Result<TilePlan> {
    let desdata = env_dir("DESDATA")
        .ok_or_else(|| Error::Usage("megamixit: set $DESDATA (the DES data directory)".into()))?;
    let c = &r.conf;
    let t_run = full.rsplit('/').next().unwrap_or(full).to_string();
    let tile = full.rsplit('_').next().unwrap_or(full).to_string();
    let mv = &c.meds_version;
    let mut meds = Vec::new();
    for b in &c.bands {
        let m = desdata
            .join("meds")
            .join(mv)
            .join(&t_run)
            .join(format!("{tile}-{b}-meds-{mv}.fits.fz"));
        if !m.exists() {
            return Err(Error::Usage(format!(
                "MEDS file {} for band {b} does not exist",
                m.display()
            )));
        }
        meds.push(m);
    }
    let extra = desdata.join("EXTRA").join("meds").join(mv);
    let (mut fof_file, mut nbrs_file, mut obj_flags, mut mof_file) =
        (o.fof_file.as_deref().map(abs), None, None, None);
    if r.cfg.model_nbrs {
        let nv = c.nbrs_version.clone().ok_or_else(|| Error::Config {
            file: r.conf_file.display().to_string(),
            msg: "model_nbrs runs need `nbrs_version`".into(),
        })?;
        let d = extra.join("nbrs-data").join(&nv).join(&t_run);
        let fof = d.join(format!("{tile}-meds-{mv}-nbrsfofs-{nv}.fits"));
        let nbrs = d.join(format!("{tile}-meds-{mv}-nbrslist-{nv}.fits"));
        for (what, f) in [("fof", &fof), ("nbrs", &nbrs)] {
            if !f.exists() {
                return Err(Error::Usage(format!(
                    "{what} file {} must be made to model nbrs (setup-nbrs, run-nbrs)",
                    f.display()
                )));
            }
        }
        fof_file = Some(fof);
        nbrs_file = Some(nbrs);
        if let Some(ofv) = &c.obj_flags_version {
            let f = extra
                .join("obj-flags-data")
                .join(ofv)
                .join(&t_run)
                .join(format!("{tile}-meds-{mv}-flags-{ofv}.fits"));
            if f.exists() {
                obj_flags = Some(f);
            }
        }
    }
    if let Some(mofv) = &c.mof_version {
        let f = extra
            .join("mof-data")
            .join(mofv)
            .join(&t_run)
            .join(format!("{tile}-meds-{mv}-mof-{mofv}.fits"));
        if !f.exists() {
            return Err(Error::Usage(format!(
                "MOF file {} must be made to subtract nbrs on the fly",
                f.display()
            )));
        }
        mof_file = Some(f);
    }
    let odir = env_dir("NGMIXER_OUTPUT_DIR")
        .or_else(|| c.output_dir.as_deref().map(crate::config::expand_path))
        .unwrap_or_else(|| PathBuf::from("."));
    let run_dir = abs(&odir).join(&c.run);
    let main = run_dir.join(full);
    let seeds = if c.seed.is_some() && !o.tile_seed {
        SeedMode::None
    } else {
        seed_mode(
            o.seed.or(if o.tile_seed { c.seed } else { None }),
            o.tile_seed,
            log,
        )?
    };
    Ok(TilePlan {
        layout: Layout::Y1,
        run: c.run.clone(),
        tile,
        work_dir: main.join("work"),
        tile_dir: main.clone(),
        collated_dir: main,
        run_dir,
        config_file: r.ngmix_config.clone(),
        run_config: Some(r.conf_file.clone()),
        meds_files: meds,
        desdata: Some(desdata),
        fof_file,
        nbrs_file,
        obj_flags,
        mof_file,
        psf_map: o.psf_map.iter().map(|p| abs(p)).collect(),
        chunksize: c.num_fofs_per_chunk as usize,
        seeds,
        extra_cmds: o.extra_cmds.clone(),
        walltime: o.walltime.clone().unwrap_or_else(|| "48:00".into()),
        walltime_e: o.walltime_e.clone().unwrap_or_else(|| "24:00".into()),
        ncores: o.ncores.max(1),
        queue: o.queue.clone().or_else(|| c.queue.clone()),
        collate_cmd: o.collate_cmd.clone(),
        missing_only: o.missing,
    })
}
