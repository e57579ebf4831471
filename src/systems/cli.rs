//! What the megamixer commands (`megamixit`, `megamix-meds`) do with a tile, shared by the
//! binaries: the subcommands, the choice of batch system by name, collation options.

use std::path::{Path, PathBuf};

use super::{missing_feature, BatchSystem, Layout, Megamixer, TilePlan};
use crate::collate::{Blinding, CollateError, CollateOptions};
use crate::error::{Error, Result};

/// The environment variable holding the blinding secret phrase ([`Blinding::from_secret`]).
pub const BLINDING_SECRET_ENV: &str = "NGMIXER_BLINDING_SECRET";

/// The program that makes neighbour and FoF files.
pub const NBRS_PROGRAM: &str = "ngmixer-meds-make-nbrs-data";

/// A megamixer subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Directories, scripts, job files.
    Setup,
    /// Run or submit the chunks without output.
    Run,
    /// Clean, then run.
    Rerun,
    /// Collate the chunk outputs.
    Collate,
    /// Check the chunk outputs without writing.
    Verify,
    /// Symlink the collated file into `<run>/output`.
    Link,
    /// Collate, then link.
    CollateLink,
    /// Remove chunk outputs and checkpoints.
    Clean,
    /// Clean and tar the chunk directories.
    Archive,
    /// Write the neighbour job.
    SetupNbrs,
    /// Run the neighbour job.
    RunNbrs,
    /// Per-chunk states.
    Status,
    /// Resubmit failed or missing chunks only.
    Resubmit,
}

impl Command {
    /// Parse a command name.
    ///
    /// # Errors
    /// Unknown names (listing the known ones).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "setup" => Self::Setup,
            "run" => Self::Run,
            "rerun" => Self::Rerun,
            "collate" => Self::Collate,
            "verify" => Self::Verify,
            "link" => Self::Link,
            "collate-link" => Self::CollateLink,
            "clean" => Self::Clean,
            "archive" => Self::Archive,
            "setup-nbrs" => Self::SetupNbrs,
            "run-nbrs" => Self::RunNbrs,
            "status" => Self::Status,
            "resubmit" => Self::Resubmit,
            other => {
                return Err(Error::Usage(format!(
                    "unknown command '{other}' (known: setup, run, rerun, collate, verify, \
                     link, collate-link, clean, archive, setup-nbrs, run-nbrs, status, \
                     resubmit)"
                )))
            }
        })
    }
}

/// Options shared by the megamixer commands.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--system`.
    pub system: String,
    /// `--max-jobs` (local system; 0: the number of cores).
    pub max_jobs: usize,
    /// `--noblind`.
    pub noblind: bool,
    /// `--clobber`.
    pub clobber: bool,
    /// `--skip-errors`.
    pub skip_errors: bool,
    /// `--nocompress`.
    pub nocompress: bool,
    /// `--print-commands`: print one command per chunk instead of running `run`/`resubmit`.
    pub print_commands: bool,
}

/// Collation options from the fitting config and the command-line flags; the blinding
/// secret comes from `$NGMIXER_BLINDING_SECRET`.
///
/// # Errors
/// A DES collation class without `collate.blinding`.
pub fn collate_options(
    cfg: &crate::config::FittingConfig,
    noblind: bool,
    clobber: bool,
    skip_errors: bool,
) -> std::result::Result<CollateOptions, CollateError> {
    let mut o = CollateOptions::from_config(cfg)?;
    o.noblind = noblind;
    o.clobber = clobber;
    o.skip_errors = skip_errors;
    if let Ok(s) = std::env::var(BLINDING_SECRET_ENV) {
        if !s.is_empty() {
            o.blinding = Some(Blinding::from_secret(&s));
        }
    }
    Ok(o)
}

/// Run `cmd` for one tile on the system named in `opts`. Returns the exit code (status: 0
/// all done, 3 some pending or running, 1 some failed; others 0, or 1 for refused
/// collations and failed verifications).
///
/// # Errors
/// Anything that stops the command (named file, chunk, system).
pub fn execute(
    cmd: Command,
    plan: TilePlan,
    copts: &CollateOptions,
    opts: &Options,
    log: &mut dyn FnMut(&str),
) -> Result<i32> {
    let total = plan.count()?;
    let queue = plan.queue.clone();
    match opts.system.as_str() {
        "shell" => go(
            Megamixer::new(plan, total, super::shell::Shell)?,
            cmd,
            copts,
            opts,
            log,
        ),
        #[cfg(feature = "local")]
        "local" => go(
            Megamixer::new(plan, total, super::local::Local::new(opts.max_jobs))?,
            cmd,
            copts,
            opts,
            log,
        ),
        #[cfg(feature = "slurm")]
        "slurm" => go(
            Megamixer::new(plan, total, super::slurm::Slurm)?,
            cmd,
            copts,
            opts,
            log,
        ),
        #[cfg(feature = "slac")]
        "slac" | "slac-array" => go(
            Megamixer::new(
                plan,
                total,
                super::slac::Lsf::new(opts.system == "slac-array", queue),
            )?,
            cmd,
            copts,
            opts,
            log,
        ),
        #[cfg(feature = "bnl")]
        "bnl" | "bnl-condor" => go(
            Megamixer::new(plan, total, super::bnl::Condor)?,
            cmd,
            copts,
            opts,
            log,
        ),
        other => {
            let _ = queue;
            Err(missing_feature(other))
        }
    }
}

fn collate_err(e: CollateError) -> Error {
    match e {
        CollateError::Output(e) => e,
        other => Error::Usage(other.to_string()),
    }
}

fn go<S: BatchSystem>(
    mut mm: Megamixer<S>,
    cmd: Command,
    copts: &CollateOptions,
    opts: &Options,
    log: &mut dyn FnMut(&str),
) -> Result<i32> {
    match cmd {
        Command::Setup => {
            mm.setup(log)?;
        }
        Command::Run | Command::Rerun | Command::Resubmit => {
            if cmd == Command::Rerun {
                mm.clean(log);
            }
            if opts.print_commands {
                for c in mm.commands() {
                    println!("{c}");
                }
                return Ok(0);
            }
            if cmd == Command::Resubmit {
                mm.resubmit(log)?;
            } else {
                mm.run(log)?;
            }
        }
        Command::Status => {
            let st = mm.status()?;
            print!("{}", st.describe());
            return Ok(st.exit_code());
        }
        Command::Collate | Command::CollateLink => {
            if copts.blinds() && copts.blinding.is_none() {
                return Err(Error::Usage(format!(
                    "collate.blinding is set: give the blinding secret phrase in \
                     ${BLINDING_SECRET_ENV}, or collate unblinded with --noblind"
                )));
            }
            match mm.collate(copts.clone()) {
                Ok((out, rep)) => {
                    if rep.kept_existing {
                        log(&format!(
                            "{} exists: kept (use --clobber to replace it)",
                            out.display()
                        ));
                    } else {
                        for s in &rep.skipped {
                            log(&format!("warning: skipped: {s}"));
                        }
                        log(&format!(
                            "collated {} rows from {} chunks into {}{}",
                            rep.nrows,
                            rep.chunks.iter().filter(|c| c.used).count(),
                            out.display(),
                            if rep.blinded { " (blinded)" } else { "" }
                        ));
                    }
                }
                Err(CollateError::Incomplete(rep)) => {
                    eprintln!(
                        "collation of tile {} refused, nothing written:\n{}",
                        mm.plan().tile,
                        rep.describe()
                    );
                    return Ok(1);
                }
                Err(e) => return Err(collate_err(e)),
            }
            if cmd == Command::CollateLink {
                mm.link(copts.blinds(), log)?;
            }
        }
        Command::Verify => {
            let rep = mm.verify(copts.clone());
            if rep.is_complete() {
                log(&format!(
                    "tile {}: {} chunks, {} rows: complete",
                    mm.plan().tile,
                    rep.chunks.len(),
                    rep.nrows
                ));
            } else {
                eprintln!("tile {}: incomplete:\n{}", mm.plan().tile, rep.describe());
                return Ok(1);
            }
        }
        Command::Link => {
            mm.link(copts.blinds(), log)?;
        }
        Command::Clean => mm.clean(log),
        Command::Archive => {
            mm.archive(!opts.nocompress, log)?;
        }
        Command::SetupNbrs => {
            setup_nbrs(mm.plan(), log)?;
        }
        Command::RunNbrs => {
            let script = setup_nbrs(mm.plan(), log)?;
            run_nbrs(&script, log)?;
        }
    }
    Ok(0)
}

/// Where the neighbour files of a tile go: (nbrs list, FoF file, log, script).
pub fn nbrs_files(plan: &TilePlan) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    match plan.layout {
        Layout::Y1 => {
            let w = &plan.work_dir;
            (
                plan.nbrs_file
                    .clone()
                    .unwrap_or_else(|| w.join(format!("{}-nbrslist.fits", plan.tile))),
                plan.fof_file
                    .clone()
                    .unwrap_or_else(|| w.join(format!("{}-nbrsfofs.fits", plan.tile))),
                w.join(format!("{}-nbrs.log", plan.tile)),
                w.join("runnbrs.sh"),
            )
        }
        Layout::Y3 => {
            let d = plan.run_dir.join("output-nbrs");
            let b = format!("{}-{}", plan.tile, plan.run);
            (
                d.join(format!("{b}-nbrslist.fits")),
                d.join(format!("{b}-nbrsfofs.fits")),
                d.join(format!("{b}-nbrslist.log")),
                d.join(format!("{b}-nbrslist.sh")),
            )
        }
    }
}

fn setup_nbrs(plan: &TilePlan, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let (nbrs, fof, lfile, script) = nbrs_files(plan);
    if let Some(d) = script.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::Io {
            path: d.to_path_buf(),
            source: e,
        })?;
    }
    let meds = plan
        .meds_files
        .first()
        .ok_or_else(|| Error::Usage("no MEDS file".into()))?;
    let text = format!(
        "#!/bin/bash\n\
         config=\"{config}\"\n\
         meds=\"{meds}\"\n\
         logfile=\"{log}\"\n\
         {prog} \\\n    --nbrs-file={nbrs} \\\n    --fof-file={fof} \\\n    $config \\\n    $meds &> $logfile\n",
        config = plan.config_file.display(),
        meds = meds.display(),
        log = lfile.display(),
        prog = NBRS_PROGRAM,
        nbrs = nbrs.display(),
        fof = fof.display(),
    );
    super::write_executable(&script, &text)?;
    log(&format!("wrote {}", script.display()));
    Ok(script)
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(prog);
            f.is_file()
        })
    })
}

fn run_nbrs(script: &Path, log: &mut dyn FnMut(&str)) -> Result<()> {
    if !on_path(NBRS_PROGRAM) {
        return Err(Error::Usage(format!(
            "run-nbrs: `{NBRS_PROGRAM}` is not on PATH; build or install it (it is a separate \
             program of ngmixer-rs) and try again; the script is {}",
            script.display()
        )));
    }
    log(&format!("running {}", script.display()));
    let st = std::process::Command::new("bash")
        .arg(script)
        .status()
        .map_err(|e| Error::Usage(format!("{}: {e}", script.display())))?;
    if !st.success() {
        return Err(Error::Usage(format!(
            "{} failed ({st}); see its log",
            script.display()
        )));
    }
    Ok(())
}
