//! One `ngmixit` run over MEDS files (feature `des-y1`), as a library call: config loading and
//! validation, checks of every input and of the output before any work, the FoF groups, the
//! run identity, the driver with FITS checkpoints, and the staged write of the catalogue.
//! The `ngmixit` binary parses arguments into a [`MedsRun`] and prints its [`MedsRunSummary`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::backends::medsio::{DesSettings, IoSettings, MedsSource, PsfKind, PsfMap};
use crate::config::{load_fitting_config, DriverMode, FitterType, FittingConfig};
use crate::error::{Error, Result};
use crate::output::Catalog;
use crate::run::files::{
    githash_table, int_column, meta_table, read_first_table, FitsCheckpoint, OutputTarget,
};
use crate::run::{
    effective_threads, CheckpointSchedule, FileStamp, Fitter, FofRange, Groups, Progress,
    ProgressMode, RunEnd, RunIdentity, RunSpec,
};
use crate::traits::{ImageSource, ObjectFitter};

/// Everything one run is given (the `ngmixit` arguments).
#[derive(Debug, Clone)]
pub struct MedsRun {
    /// Fitting config (YAML).
    pub config_file: PathBuf,
    /// Output catalogue.
    pub out_file: PathBuf,
    /// MEDS files, one per band.
    pub data_files: Vec<PathBuf>,
    /// `--fof-range`.
    pub fof_range: Option<FofRange>,
    /// `--fof-file`.
    pub fof_file: Option<PathBuf>,
    /// `--seed` (0 when not given).
    pub seed: u64,
    /// `--obj-flags`.
    pub obj_flags: Option<PathBuf>,
    /// `--psf-map` files, one per band.
    pub psf_map: Vec<PathBuf>,
    /// `--nbrs-file`.
    pub nbrs_file: Option<PathBuf>,
    /// `--mof-file`.
    pub mof_file: Option<PathBuf>,
    /// `--threads` (None: all cores).
    pub threads: Option<usize>,
    /// Extra checkpoint every N groups (tests).
    pub checkpoint_every: Option<usize>,
    /// Stop after the first checkpoint (tests).
    pub stop_after_checkpoint: bool,
    /// Progress display.
    pub progress: ProgressMode,
}

impl MedsRun {
    /// A run of `config_file` over `data_files` into `out_file`, everything else default.
    pub fn new(config_file: &Path, out_file: &Path, data_files: &[PathBuf]) -> Self {
        Self {
            config_file: config_file.to_path_buf(),
            out_file: out_file.to_path_buf(),
            data_files: data_files.to_vec(),
            fof_range: None,
            fof_file: None,
            seed: 0,
            obj_flags: None,
            psf_map: Vec::new(),
            nbrs_file: None,
            mof_file: None,
            threads: None,
            checkpoint_every: None,
            stop_after_checkpoint: false,
            progress: ProgressMode::Auto,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct MedsRunSummary {
    /// The output.
    pub out_file: PathBuf,
    /// Rows of `model_fits`.
    pub nobj: usize,
    /// `flags` value → count.
    pub flag_counts: BTreeMap<i64, usize>,
    /// Wall time (s).
    pub seconds: f64,
    /// How the run ended (a stopped run wrote only its checkpoint).
    pub end: RunEnd,
    /// Groups resumed from a checkpoint.
    pub resumed_groups: usize,
    /// Checkpoints written.
    pub checkpoints: usize,
    /// Unusable single-epoch cutouts per band (fitted by this process).
    pub dropped_epochs: Vec<u64>,
}

fn config_error(cfg: &FittingConfig, msg: String) -> Error {
    Error::Config {
        file: cfg.source.clone().unwrap_or_else(|| "<config>".into()),
        msg,
    }
}

impl MedsRun {
    /// All inputs with their roles.
    fn inputs(&self) -> Vec<(String, PathBuf)> {
        let mut v = vec![("config".to_string(), self.config_file.clone())];
        for (b, f) in self.data_files.iter().enumerate() {
            v.push((format!("MEDS file of band {b}"), f.clone()));
        }
        let opt = [
            ("--fof-file", &self.fof_file),
            ("--obj-flags", &self.obj_flags),
            ("--nbrs-file", &self.nbrs_file),
            ("--mof-file", &self.mof_file),
        ];
        for (role, p) in opt {
            if let Some(p) = p {
                v.push((role.to_string(), p.clone()));
            }
        }
        for (b, f) in self.psf_map.iter().enumerate() {
            v.push((format!("--psf-map of band {b}"), f.clone()));
        }
        v
    }

    /// Run it. `log` receives warnings and notes (config compatibility, capped threads).
    ///
    /// # Errors
    /// Any problem with an input (naming the file, HDU, column or config key), the output
    /// (before any object is fitted) or a write (the last checkpoint is then kept).
    pub fn run(&self, log: &mut dyn FnMut(&str)) -> Result<MedsRunSummary> {
        let t0 = Instant::now();
        if self.data_files.is_empty() {
            return Err(Error::Usage("no MEDS file given".into()));
        }
        let inputs = self.inputs();
        let mut stamps = Vec::with_capacity(inputs.len());
        for (role, p) in &inputs {
            match std::fs::metadata(p) {
                Ok(m) if !m.is_file() => {
                    let what = if m.is_dir() {
                        "a directory"
                    } else {
                        "not a regular file (a device, pipe or socket)"
                    };
                    return Err(Error::Usage(format!("{role} {} is {what}", p.display())));
                }
                _ => {}
            }
            stamps.push(FileStamp::of(role, p).map_err(|e| match e {
                Error::Io { path, source } => {
                    Error::Invalid(format!("{role} {}: {source}", path.display()))
                }
                other => other,
            })?);
        }
        for (i, a) in stamps.iter().enumerate() {
            if let Some(b) = stamps[..i].iter().find(|b| b.path == a.path) {
                return Err(Error::Usage(format!(
                    "{} and {} are the same file {}: give each input once",
                    b.role, a.role, a.path
                )));
            }
        }
        let target = OutputTarget::prepare(&self.out_file, &inputs)?;

        let cfg = load_fitting_config(&self.config_file)?;
        for note in &cfg.compat_notes {
            log(&format!("config: {note}"));
        }
        let nband = self.data_files.len();
        if cfg.model_nbrs {
            return Err(config_error(
                &cfg,
                "model_nbrs: multi-object fitting (MOF) is not available in this version of \
                 ngmixer-rs"
                    .into(),
            ));
        }
        let mode = DriverMode::select(cfg.model_nbrs, self.mof_file.is_some(), false);
        cfg.validate_for(nband, mode)?;
        if self.mof_file.is_some() || self.nbrs_file.is_some() {
            log("warning: --mof-file/--nbrs-file are not used by this fitter configuration");
        }
        match cfg.fitter_type {
            FitterType::MaxNgmixBoot => {
                #[cfg(feature = "maxlike")]
                {
                    let settings = crate::fitter::from_config::fitter_settings(&cfg, nband)?;
                    let fitter = crate::fitter::MaxLike::new(settings)?;
                    self.execute(&cfg, fitter, &target, stamps, t0, log)
                }
                #[cfg(not(feature = "maxlike"))]
                {
                    Err(config_error(
                        &cfg,
                        "fitter_type max-ngmix-boot needs the `maxlike` feature, which this \
                         build of ngmixer-rs lacks (rebuild with --features maxlike)"
                            .into(),
                    ))
                }
            }
            FitterType::MetacalNgmixBoot => {
                #[cfg(all(feature = "maxlike", feature = "metacal"))]
                {
                    let (base, mcal) =
                        crate::fitter::from_config::metacal_fitter_settings(&cfg, nband)?;
                    let fitter = crate::fitter::Metacal::new(base, mcal)
                        .map_err(|e| config_error(&cfg, e.to_string()))?;
                    self.execute(&cfg, fitter, &target, stamps, t0, log)
                }
                #[cfg(not(all(feature = "maxlike", feature = "metacal")))]
                {
                    Err(config_error(
                        &cfg,
                        "fitter_type metacal-ngmix-boot needs the `maxlike` and `metacal` \
                         features, which this build of ngmixer-rs lacks (rebuild with \
                         --features maxlike,metacal)"
                            .into(),
                    ))
                }
            }
            other => Err(config_error(
                &cfg,
                format!(
                    "fitter_type '{}' is not available in this version of ngmixer-rs \
                     (available: max-ngmix-boot, metacal-ngmix-boot)",
                    other.as_str()
                ),
            )),
        }
    }

    fn open_source(&self, cfg: &FittingConfig) -> Result<MedsSource> {
        let nband = self.data_files.len();
        let io = IoSettings::from_config(cfg)?;
        let des = DesSettings::from_config(cfg)?;
        let psf_map = match (&des.psfs, self.psf_map.is_empty()) {
            (PsfKind::Psfex { from_image: false }, true) => {
                return Err(config_error(
                    cfg,
                    "imageio.psfs.type is psfex: give the psf map files with \
                     --psf-map=f1,f2,.. (one per band)"
                        .into(),
                ))
            }
            (PsfKind::Psfex { from_image: false }, false) => {
                if self.psf_map.len() != nband {
                    return Err(Error::Usage(format!(
                        "--psf-map: {} psf map files for {nband} MEDS files (one per band)",
                        self.psf_map.len()
                    )));
                }
                Some(PsfMap::read(&self.psf_map)?)
            }
            (_, false) => {
                return Err(config_error(
                    cfg,
                    "--psf-map was given but imageio.psfs.type is not psfex".into(),
                ))
            }
            (_, true) => None,
        };
        let mut src = MedsSource::open(&self.data_files, io)?;
        src.configure(des, psf_map.as_ref())?;
        Ok(src)
    }

    fn groups(&self, src: &MedsSource) -> Result<Groups> {
        let nobj = src.nobj();
        match &self.fof_file {
            None => Groups::singletons(nobj, self.fof_range),
            Some(path) => {
                let cols = read_first_table(path)?;
                let fofid = int_column(&cols, path, "fofid")?;
                let number = int_column(&cols, path, "number")?;
                let numbers = (0..nobj)
                    .map(|k| src.id_number(k).map(|(_, n)| n))
                    .collect::<Result<Vec<_>>>()?;
                Groups::from_fof_table(
                    &format!("--fof-file {}", path.display()),
                    fofid,
                    number,
                    &numbers,
                    self.fof_range,
                )
            }
        }
    }

    fn obj_flags(&self) -> Result<HashMap<i64, i32>> {
        let Some(p) = &self.obj_flags else {
            return Ok(HashMap::new());
        };
        let cols = read_first_table(p)?;
        let ids = int_column(&cols, p, "id")?;
        let fl = int_column(&cols, p, "flags")?;
        let mut map = HashMap::new();
        for (&i, &f) in ids.iter().zip(fl) {
            if f == 0 {
                continue;
            }
            let f = i32::try_from(f).map_err(|_| Error::Fits {
                path: p.clone(),
                hdu: Some("1".into()),
                msg: format!("flags {f} of id {i} do not fit in 32 bits"),
            })?;
            map.insert(i, f);
        }
        Ok(map)
    }

    fn execute<F: ObjectFitter>(
        &self,
        cfg: &FittingConfig,
        fitter: F,
        target: &OutputTarget,
        stamps: Vec<FileStamp>,
        t0: Instant,
        log: &mut dyn FnMut(&str),
    ) -> Result<MedsRunSummary> {
        let src = self.open_source(cfg)?;
        let groups = self.groups(&src)?;
        let (threads, warn) = effective_threads(self.threads);
        if let Some(w) = warn {
            log(&format!("warning: {w}"));
        }
        let identity = RunIdentity {
            program: RunIdentity::program_version(),
            fitter: fitter.fitter_type().to_string(),
            seed: self.seed,
            fof_range: self.fof_range,
            nobj: groups.nobj(),
            ngroups: groups.len(),
            nband: src.nband(),
            inputs: stamps,
        };
        let spec = RunSpec {
            seed: self.seed,
            obj_flags: self.obj_flags()?,
            threads,
            schedule: CheckpointSchedule::new(&cfg.checkpoints, self.checkpoint_every),
            stop_after_checkpoint: self.stop_after_checkpoint,
            groups,
        };
        let store = FitsCheckpoint::new(target.checkpoint(), identity);
        let driver = Fitter::new(src, fitter);
        let mut progress = Progress::new("ngmixit", spec.groups.nobj(), 0, self.progress);
        let out = driver.run(&spec, Some(&store), &mut progress);
        progress.finish();
        let out = out?;
        let dropped_total: u64 = out.dropped_epochs.iter().sum();
        if dropped_total > 0 {
            log(&format!(
                "{dropped_total} single-epoch cutouts could not be used (per band: {:?}); \
                 counted in the epoch_data header (NDROP*)",
                out.dropped_epochs
            ));
        }
        if out.end == RunEnd::Complete {
            let meta = meta_table(&self.config_file, &self.data_files)?;
            let names: Vec<String> = (0..out.dropped_epochs.len())
                .map(|b| format!("NDROP{b}"))
                .collect();
            let mut keys: Vec<(&str, i64, &str)> = vec![(
                "NDROP",
                dropped_total as i64,
                "unusable SE cutouts, all bands",
            )];
            for (n, &d) in names.iter().zip(&out.dropped_epochs) {
                keys.push((n, d as i64, "unusable SE cutouts of this band"));
            }
            target.write_catalog(&out.catalog, &meta, &githash_table(), &keys)?;
        }
        Ok(summary(&out.catalog, target.path(), t0, &out))
    }
}

fn summary(cat: &Catalog, out: &Path, t0: Instant, run: &crate::run::RunOutput) -> MedsRunSummary {
    let mut flag_counts = BTreeMap::new();
    if let Some(c) = cat.model_fits.column("flags") {
        for &f in &c.num {
            *flag_counts.entry(f as i64).or_default() += 1;
        }
    }
    MedsRunSummary {
        out_file: out.to_path_buf(),
        nobj: cat.model_fits.nrows(),
        flag_counts,
        seconds: t0.elapsed().as_secs_f64(),
        end: run.end,
        resumed_groups: run.resumed_groups,
        checkpoints: run.checkpoints,
        dropped_epochs: run.dropped_epochs.clone(),
    }
}
