//! `megamixit`: run Y1 coadd tiles (`$DESDATA` layout) in chunks (spec §1.2, §8.1).

use std::path::PathBuf;

use clap::Parser;

use ngmixer::systems::cli::{collate_options, execute, Command, Options};
use ngmixer::systems::layout::{y1_plan, y1_run, y1_tiles, PlanOptions};

/// megamixit [options] command run|run_config_file coadd_run|coadd_run_list_file
///
/// Commands: setup, run, rerun, status, resubmit, collate, verify, link, collate-link, clean,
/// archive, setup-nbrs, run-nbrs.
#[derive(Parser, Debug)]
#[command(name = "megamixit", version, about)]
struct Args {
    /// command, run (or run config file), coadd run (or a file listing them).
    positional: Vec<String>,
    /// Batch system: shell, local, slurm, slac, slac-array, bnl.
    #[arg(long, default_value = "shell")]
    system: String,
    /// Queue to submit to (overrides the run config's `queue`).
    #[arg(long)]
    queue: Option<String>,
    /// File of extra commands pasted into every job script.
    #[arg(long = "extra-cmds")]
    extra_cmds: Option<PathBuf>,
    /// Do not blind the catalogue.
    #[arg(long)]
    noblind: bool,
    /// Replace an existing collated file, else skip it.
    #[arg(long)]
    clobber: bool,
    /// Skip over (and name) bad chunks when collating.
    #[arg(long = "skip-errors")]
    skip_errors: bool,
    /// Archive as .tar instead of .tar.gz.
    #[arg(long)]
    nocompress: bool,
    /// Verbosity.
    #[arg(long, default_value_t = 0)]
    verbosity: u32,
    /// Seed of the per-chunk seeds.
    #[arg(long)]
    seed: Option<u64>,
    /// Give every chunk the seed itself (the collated catalogue equals one ngmixit run).
    #[arg(long = "tile-seed")]
    tile_seed: bool,
    /// Wall time (LSF `-W`, Slurm `--time`), H:MM.
    #[arg(long, default_value = "48:00")]
    walltime: String,
    /// Estimated wall time (LSF `-We`).
    #[arg(long = "walltime-e", default_value = "24:00")]
    walltime_e: String,
    /// Cores per chunk (ngmixit `--threads`).
    #[arg(long, default_value_t = 1)]
    ncores: usize,
    /// Local system: chunks at once (0: the number of cores).
    #[arg(long = "max-jobs", default_value_t = 0)]
    max_jobs: usize,
    /// run/resubmit: print one shell command per chunk instead.
    #[arg(long = "print-commands")]
    print_commands: bool,
}

fn main() {
    let a = Args::parse();
    if a.positional.len() < 3 {
        use clap::CommandFactory;
        let _ = Args::command().print_help();
        std::process::exit(45);
    }
    let mut log = |m: &str| eprintln!("megamixit: {m}");
    std::process::exit(match run(a, &mut log) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("megamixit: error: {e}");
            1
        }
    })
}

fn collate_cmd(command: &str) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let cwd = std::env::current_dir().ok()?;
    let mut replaced = false;
    let mut words = vec![ngmixer::systems::shell_quote(&exe.display().to_string())];
    for a in std::env::args().skip(1) {
        if !replaced && a == command {
            words.push("collate".into());
            replaced = true;
        } else if a != "--print-commands" {
            words.push(ngmixer::systems::shell_quote(&a));
        }
    }
    Some(format!(
        "cd {} && {}",
        ngmixer::systems::shell_quote(&cwd.display().to_string()),
        words.join(" ")
    ))
}

fn run(a: Args, log: &mut dyn FnMut(&str)) -> anyhow::Result<i32> {
    let cmd = Command::parse(&a.positional[0])?;
    let r = y1_run(&a.positional[1])?;
    let tiles = y1_tiles(&a.positional[2], log)?;
    let po = PlanOptions {
        seed: a.seed,
        tile_seed: a.tile_seed,
        extra_cmds: a.extra_cmds.clone(),
        queue: a.queue.clone(),
        walltime: Some(a.walltime.clone()),
        walltime_e: Some(a.walltime_e.clone()),
        ncores: a.ncores,
        missing: false,
        psf_map: Vec::new(),
        fof_file: None,
        collate_cmd: matches!(cmd, Command::Run | Command::Rerun | Command::Resubmit)
            .then(|| collate_cmd(&a.positional[0]))
            .flatten(),
    };
    let mut copts = collate_options(&r.cfg, a.noblind, a.clobber, a.skip_errors)?;
    if let Some(ct) = r.conf.concat_type {
        copts.concat_type = ct;
    }
    copts.bands = r.conf.bands.clone();
    if cmd == Command::Verify {
        copts.skip_errors = false;
    }
    let opts = Options {
        system: a.system.clone(),
        max_jobs: a.max_jobs,
        noblind: a.noblind,
        clobber: a.clobber,
        skip_errors: a.skip_errors,
        nocompress: a.nocompress,
        print_commands: a.print_commands,
    };
    let n = tiles.len();
    let mut worst = 0;
    for (i, t) in tiles.iter().enumerate() {
        eprintln!("{}/{} {t}", i + 1, n);
        let plan = y1_plan(&r, t, &po, log)?;
        let code = execute(cmd, plan, &copts, &opts, log)?;
        worst = match (worst, code) {
            (1, _) | (_, 1) => 1,
            (3, _) | (_, 3) => 3,
            (w, c) => w.max(c),
        };
    }
    Ok(worst)
}
