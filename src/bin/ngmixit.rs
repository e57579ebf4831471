//! `ngmixit`: fit one MEDS tile (or a FoF range of it) with the max-likelihood fitter and write
//! the ngmixer catalogue (`model_fits`, `epoch_data`, `meta_data`, `githashes`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

use ngmixer::run::meds_run::{MedsRun, MedsRunSummary};
use ngmixer::run::{parse_fof_range, ProgressMode, RunEnd};

/// Fit MEDS files (one per band, in band order) with ngmix models.
#[derive(Parser, Debug)]
#[command(name = "ngmixit", version, about)]
struct Args {
    /// Fitting config (YAML).
    config_file: PathBuf,
    /// Output FITS file.
    out_file: PathBuf,
    /// MEDS files, one per band.
    data_files: Vec<PathBuf>,
    /// Inclusive 0-based range of FoF groups (or objects without a FoF file): A,B.
    #[arg(long = "fof-range", allow_hyphen_values = true)]
    fof_range: Option<String>,
    /// FoF table (`fofid`, `number`).
    #[arg(long = "fof-file")]
    fof_file: Option<PathBuf>,
    /// Scratch directory (outputs are staged there and moved into place).
    #[arg(long = "work-dir", default_value = ".")]
    work_dir: PathBuf,
    /// Run seed: with the object id it selects each object's random stream.
    #[arg(long)]
    seed: Option<u64>,
    /// Neighbour list (`number`, `nbr_number`), for MOF runs.
    #[arg(long = "nbrs-file")]
    nbrs_file: Option<PathBuf>,
    /// A collated MOF output (neighbour subtraction).
    #[arg(long = "mof-file")]
    mof_file: Option<PathBuf>,
    /// PSF map files, comma-separated, one per band (PSFEx runs).
    #[arg(long = "psf-map")]
    psf_map: Option<String>,
    /// Table of `id`, `flags`: objects with non-zero flags are not fitted (obj_flags set).
    #[arg(long = "obj-flags")]
    obj_flags: Option<PathBuf>,
    /// Verbosity level.
    #[arg(long, default_value_t = 0)]
    verbosity: u32,
    /// Diagnostic plots (not produced by this version; a warning says so).
    #[arg(long = "make-plots")]
    make_plots: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write a checkpoint after every N FoF groups (besides the config's checkpoint times).
    #[arg(long = "checkpoint-every", hide = true)]
    checkpoint_every: Option<usize>,
    /// Stop with exit code 3 right after the first checkpoint (tests of the resume path).
    #[arg(long = "abort-after-checkpoint", hide = true)]
    abort_after_checkpoint: bool,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let positional = argv.iter().skip(1).filter(|a| !a.starts_with("--")).count();
    let args = match Args::try_parse_from(&argv) {
        Ok(a) if a.data_files.is_empty() => {
            print_help_and_exit();
        }
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            if positional < 3 && matches!(e.kind(), ErrorKind::MissingRequiredArgument) {
                print_help_and_exit();
            }
            e.exit();
        }
    };
    match run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // the library errors carry their causes in their text
            eprintln!("ngmixit: error: {e}");
            std::process::exit(1);
        }
    }
}

fn print_help_and_exit() -> ! {
    use clap::CommandFactory;
    let _ = Args::command().print_help();
    eprintln!("\nngmixit: need config_file out_file data_file1 [data_file2 ...]");
    std::process::exit(45);
}

fn run(args: Args) -> Result<i32> {
    let mut log = |m: &str| eprintln!("ngmixit: {m}");
    if args.make_plots {
        log("warning: --make-plots: diagnostic plots are not produced by this version");
    }
    let mut run = MedsRun::new(&args.config_file, &args.out_file, &args.data_files);
    run.fof_range = args.fof_range.as_deref().map(parse_fof_range).transpose()?;
    run.fof_file = args.fof_file;
    run.seed = args.seed.unwrap_or(0);
    run.obj_flags = args.obj_flags;
    run.psf_map = args
        .psf_map
        .as_deref()
        .map(|list| {
            list.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| PathBuf::from(s.trim()))
                .collect()
        })
        .unwrap_or_default();
    run.nbrs_file = args.nbrs_file;
    run.mof_file = args.mof_file;
    run.threads = args.threads;
    run.checkpoint_every = args.checkpoint_every;
    run.stop_after_checkpoint = args.abort_after_checkpoint;
    run.progress = ProgressMode::Auto;
    let s = run.run(&mut log)?;
    if s.end == RunEnd::StoppedAfterCheckpoint {
        log("stopped after the first checkpoint (--abort-after-checkpoint)");
        return Ok(3);
    }
    summary(&s);
    Ok(0)
}

fn summary(s: &MedsRunSummary) {
    let resumed = if s.resumed_groups > 0 {
        format!(" ({} groups resumed from the checkpoint)", s.resumed_groups)
    } else {
        String::new()
    };
    eprintln!(
        "ngmixit: fitted {} objects in {:.2} s -> {}{resumed}",
        s.nobj,
        s.seconds,
        s.out_file.display()
    );
    for (f, k) in &s.flag_counts {
        eprintln!("  flags {f:>11}: {k}");
    }
}
