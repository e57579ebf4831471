//! Write a simulated MEDS tile (one file per band plus a truth table) with the crate's seeded
//! simulator: the inputs of the tile benchmarks (`benches/`), and a quick way to try `ngmixit`
//! on data with known truth.
//!
//! ```sh
//! cargo run --release --example make_sim_tile -- --nobj 1000 --bands griz --epochs 3 \
//!     --npair 100 --mask-every 10 --seed 1 DIR PREFIX
//! ```
//!
//! Boxes are drawn from 32, 48 and 64 pixels; every `--mask-every`-th object gets a masked
//! core, a random pixel mask or a bad column in turn. Prints the MEDS paths, comma-free, one
//! per line.

use std::path::PathBuf;

use clap::Parser;
use ngmixer::sim::{write_tile, BandConfig, Mask, Scene, SimConfig, SimModel};

#[derive(Parser, Debug)]
struct Args {
    /// Primary objects.
    #[arg(long, default_value_t = 100)]
    nobj: usize,
    /// Band names, one letter each.
    #[arg(long, default_value = "griz")]
    bands: String,
    /// Single-epoch images per band (plus the coadd).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Companions placed next to primaries (blends).
    #[arg(long, default_value_t = 0)]
    npair: usize,
    /// Mask every N-th object (0: none).
    #[arg(long, default_value_t = 0)]
    mask_every: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory.
    dir: PathBuf,
    /// File-name prefix.
    prefix: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let cfg = SimConfig {
        seed: a.seed,
        nobj: a.nobj,
        npair: a.npair,
        bands: a
            .bands
            .chars()
            .map(|c| BandConfig::new(&c.to_string(), a.epochs))
            .collect(),
        box_sizes: vec![32, 48, 64],
        models: vec![SimModel::Exp, SimModel::Dev],
        ..SimConfig::default()
    };
    let mut scene = Scene::generate(&cfg)?;
    if a.mask_every > 0 {
        for (k, o) in scene.objects.iter_mut().enumerate() {
            if k % a.mask_every != a.mask_every - 1 {
                continue;
            }
            o.mask = match (k / a.mask_every) % 3 {
                0 => Mask::Core {
                    radius: 2.0,
                    bits: 2,
                },
                1 => Mask::Random { frac: 0.1, bits: 8 },
                _ => Mask::Column { bits: 1 },
            };
        }
    }
    let files = write_tile(&scene, &a.dir, &a.prefix)?;
    for m in &files.meds {
        println!("{}", m.display());
    }
    Ok(())
}
