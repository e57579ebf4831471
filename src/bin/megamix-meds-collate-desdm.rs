//! `megamix-meds-collate-desdm`: collate a list of chunk outputs (spec §1.4).
//!
//! Unlike the original, `--clobber` and `--skip-errors` are honoured (spec §10 item 10) and
//! `--noblind` really disables blinding.

use std::path::PathBuf;

use clap::Parser;

use ngmixer::collate::{Chunk, CollateError, Collator};
use ngmixer::config::load_fitting_config;
use ngmixer::systems::cli::collate_options;

/// Collate the chunk outputs listed in FILE_LIST (one path per line, in chunk order).
#[derive(Parser, Debug)]
#[command(name = "megamix-meds-collate-desdm", version, about)]
struct Args {
    /// Fitting config (`collate.concat_type`, `collate.blinding`, `jobs.bands`).
    ngmix_config: PathBuf,
    /// Text file of chunk outputs, one per line.
    file_list: PathBuf,
    /// The collated output.
    collated_file: PathBuf,
    /// Do not blind.
    #[arg(long)]
    noblind: bool,
    /// Replace an existing output.
    #[arg(long)]
    clobber: bool,
    /// Skip (and name) bad chunks.
    #[arg(long = "skip-errors")]
    skip_errors: bool,
}

fn main() {
    let a = Args::parse();
    std::process::exit(match run(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("megamix-meds-collate-desdm: error: {e}");
            1
        }
    })
}

fn run(a: &Args) -> anyhow::Result<i32> {
    let cfg = load_fitting_config(&a.ngmix_config)?;
    let opts = collate_options(&cfg, a.noblind, a.clobber, a.skip_errors)?;
    let text = std::fs::read_to_string(&a.file_list)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.file_list.display()))?;
    let chunks: Vec<Chunk> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(Chunk::from_name)
        .collect();
    if chunks.is_empty() {
        anyhow::bail!("{}: no chunk files listed", a.file_list.display());
    }
    match Collator::new(chunks, opts).collate(&a.collated_file) {
        Ok(rep) if rep.kept_existing => {
            eprintln!(
                "megamix-meds-collate-desdm: {} exists: kept (use --clobber)",
                a.collated_file.display()
            );
            Ok(0)
        }
        Ok(rep) => {
            for s in &rep.skipped {
                eprintln!("megamix-meds-collate-desdm: warning: skipped: {s}");
            }
            eprintln!(
                "megamix-meds-collate-desdm: collated {} rows into {}",
                rep.nrows,
                a.collated_file.display()
            );
            Ok(0)
        }
        Err(CollateError::Incomplete(rep)) => {
            eprintln!(
                "megamix-meds-collate-desdm: collation refused, nothing written:\n{}",
                rep.describe()
            );
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}
