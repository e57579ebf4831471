//! `megamix-meds`: run a Y3 tile in chunks under `$NGMIXER_OUTPUT_DIR` (spec §1.3, §8.2).

use std::path::PathBuf;

use clap::Parser;

use ngmixer::systems::cli::{collate_options, execute, Command, Options};
use ngmixer::systems::layout::{y3_plan, PlanOptions};

/// Process the input MEDS files in chunks: setup, run, rerun, status, resubmit, collate,
/// verify, link, collate-link, clean, archive, setup-nbrs, run-nbrs.
#[derive(Parser, Debug)]
#[command(name = "megamix-meds", version, about)]
struct Args {
    /// Fitting config (with `run`, `jobs: {chunksize, bands}`, `collate`, `global_seed`).
    ngmix_config: PathBuf,
    /// Command to run.
    command: String,
    /// The MEDS files, one per band (tile-list YAML files need desmeds, not available here).
    #[arg(required = true)]
    meds_files: Vec<PathBuf>,
    /// Tile id (must occur in the MEDS file names).
    #[arg(long = "tile-id")]
    tile_id: Option<String>,
    /// Wall time (LSF `-W`, Slurm `--time`), H:MM.
    #[arg(long, default_value = "48:00")]
    walltime: String,
    /// Estimated wall time (LSF `-We`).
    #[arg(long = "walltime-e", default_value = "4:00")]
    walltime_e: String,
    /// Cores per job (ngmixit `--threads`).
    #[arg(long, default_value_t = 1)]
    ncores: usize,
    /// Batch system: shell, local, slurm, slac, slac-array, bnl.
    #[arg(long, default_value = "shell")]
    system: String,
    /// Queue (LSF) or partition (Slurm).
    #[arg(long)]
    queue: Option<String>,
    /// Write scripts only for chunks whose output is missing.
    #[arg(long)]
    missing: bool,
    /// Do not blind the collated catalogue (and no `-blind` suffix).
    #[arg(long)]
    noblind: bool,
    /// Replace an existing collated file.
    #[arg(long)]
    clobber: bool,
    /// Collate what is there, skipping (and naming) bad or missing chunks.
    #[arg(long = "skip-errors")]
    skip_errors: bool,
    /// Archive as .tar instead of .tar.gz.
    #[arg(long)]
    nocompress: bool,
    /// Verbosity.
    #[arg(long, default_value_t = 0)]
    verbosity: u32,
    /// Seed of the per-chunk seeds (else the config's `global_seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Give every chunk the seed itself: the collated catalogue then equals one
    /// `ngmixit --seed` run of the whole tile.
    #[arg(long = "tile-seed")]
    tile_seed: bool,
    /// File of extra commands pasted into every job script.
    #[arg(long = "extra-cmds")]
    extra_cmds: Option<PathBuf>,
    /// PSF map files, comma-separated, one per band (PSFEx runs).
    #[arg(long = "psf-map")]
    psf_map: Option<String>,
    /// Chunk by FoF ranges of this FoF file (passed to every chunk).
    #[arg(long = "fof-file")]
    fof_file: Option<PathBuf>,
    /// Local system: chunks at once (0: the number of cores).
    #[arg(long = "max-jobs", default_value_t = 0)]
    max_jobs: usize,
    /// run/resubmit: print one shell command per chunk instead.
    #[arg(long = "print-commands")]
    print_commands: bool,
}

fn collate_cmd(command: &str) -> Option<String> {
    let argv: Vec<String> = std::env::args().collect();
    let exe = std::env::current_exe().ok()?;
    let cwd = std::env::current_dir().ok()?;
    let mut replaced = false;
    let mut words = vec![ngmixer::systems::shell_quote(&exe.display().to_string())];
    for a in argv.iter().skip(1) {
        if !replaced && a == command {
            words.push("collate".into());
            replaced = true;
        } else if a != "--print-commands" {
            words.push(ngmixer::systems::shell_quote(a));
        }
    }
    Some(format!(
        "cd {} && {}",
        ngmixer::systems::shell_quote(&cwd.display().to_string()),
        words.join(" ")
    ))
}

fn main() {
    let a = Args::parse();
    let mut log = |m: &str| eprintln!("megamix-meds: {m}");
    std::process::exit(match run(a, &mut log) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("megamix-meds: error: {e}");
            1
        }
    })
}

fn run(a: Args, log: &mut dyn FnMut(&str)) -> anyhow::Result<i32> {
    let cmd = Command::parse(&a.command)?;
    if a.meds_files[0].to_string_lossy().contains("yaml") {
        anyhow::bail!(
            "{}: tile-list configs need desmeds to find the MEDS files, which this version \
             does not have; give the MEDS files and --tile-id",
            a.meds_files[0].display()
        );
    }
    let Some(tile_id) = a.tile_id.as_deref() else {
        anyhow::bail!("--tile-id is required when MEDS files are given");
    };
    let po = PlanOptions {
        seed: a.seed,
        tile_seed: a.tile_seed,
        extra_cmds: a.extra_cmds.clone(),
        queue: a.queue.clone(),
        walltime: Some(a.walltime.clone()),
        walltime_e: Some(a.walltime_e.clone()),
        ncores: a.ncores,
        missing: a.missing,
        psf_map: a
            .psf_map
            .as_deref()
            .map(|l| {
                l.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| PathBuf::from(s.trim()))
                    .collect()
            })
            .unwrap_or_default(),
        fof_file: a.fof_file.clone(),
        collate_cmd: matches!(cmd, Command::Run | Command::Rerun | Command::Resubmit)
            .then(|| collate_cmd(&a.command))
            .flatten(),
    };
    let (plan, cfg) = y3_plan(&a.ngmix_config, &a.meds_files, Some(tile_id), &po, log)?;
    let copts = collate_options(&cfg, a.noblind, a.clobber, a.skip_errors)?;
    let opts = Options {
        system: a.system.clone(),
        max_jobs: a.max_jobs,
        noblind: a.noblind,
        clobber: a.clobber,
        skip_errors: a.skip_errors,
        nocompress: a.nocompress,
        print_commands: a.print_commands,
    };
    Ok(execute(cmd, plan, &copts, &opts, log)?)
}
