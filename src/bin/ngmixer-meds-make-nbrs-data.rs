//! `ngmixer-meds-make-nbrs-data`: the neighbour list and FoF groups of a MEDS tile (any band:
//! only band-independent columns are used), plus the FoF RA/Dec plot.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use ngmixer::nbrs::{make_nbrs_data, MakeNbrsArgs};

/// Make the neighbour list and FoF groups of a MEDS file.
#[derive(Parser, Debug)]
#[command(name = "ngmixer-meds-make-nbrs-data", version, about)]
struct Args {
    /// Run configuration file `run-<run>.yaml` (keys `run` and `nbrs`).
    config: PathBuf,
    /// A MEDS file of the tile.
    meds_file: PathBuf,
    /// Neighbour list to write (default `$NGMIXER_OUTPUT_DIR/<run>/output-nbrs/<tile>-<run>-nbrslist.fits`).
    #[arg(long = "nbrs-file")]
    nbrs_file: Option<PathBuf>,
    /// FoF table to write (default `...-nbrsfofs.fits` beside the neighbour list).
    #[arg(long = "fof-file")]
    fof_file: Option<PathBuf>,
    /// FoF plot to write (default: the FoF file with `.fits` replaced by `.png`).
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let args = MakeNbrsArgs {
        config: a.config,
        meds: a.meds_file,
        nbrs_file: a.nbrs_file,
        fof_file: a.fof_file,
        plot_file: a.plot,
        output_dir: std::env::var_os("NGMIXER_OUTPUT_DIR").map(PathBuf::from),
    };
    match make_nbrs_data(&args) {
        Ok(s) => {
            println!(
                "run {}: {} objects, {} neighbour rows, {} FoF groups (largest {})",
                s.run, s.nobj, s.nrows, s.nfof, s.max_fof
            );
            println!("wrote: {}", s.nbrs_file.display());
            println!("wrote: {}", s.fof_file.display());
            println!("wrote: {}", s.plot_file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ngmixer-meds-make-nbrs-data: error: {e}");
            ExitCode::FAILURE
        }
    }
}
