//! `ngmixer-shear-test`: simulate exp galaxies with a known constant shear (90°-rotated pairs,
//! an elliptical PSF, noise at a given S/N), run the metacal fitter on them through the run
//! driver, and print the multiplicative and additive biases with 95 % intervals.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

use ngmixer::run::shear_test::ShearTest;
use ngmixer::run::{effective_threads, Progress, ProgressMode};
use ngmixer::sim::ShearSimConfig;

/// Metacal shear test on simulated galaxies with a known shear.
#[derive(Parser, Debug)]
#[command(name = "ngmixer-shear-test", version, about)]
struct Args {
    /// Number of galaxies (even: 90°-rotated pairs).
    #[arg(long, default_value_t = 10_000)]
    ngal: usize,
    /// Seed of the simulation and of the fits.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Matched-filter S/N of the galaxies.
    #[arg(long, default_value_t = 100.0)]
    snr: f64,
    /// The constant shear g1,g2.
    #[arg(long, default_value = "0.02,0.00", allow_hyphen_values = true)]
    shear: String,
    /// Write the results as JSON (m, m_err95, c, c_err95, R11, R22, ngal, seconds).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Galaxies per driver call (memory bound; results do not depend on it).
    #[arg(long, default_value_t = 20_000, hide = true)]
    chunk: usize,
}

fn parse_shear(s: &str) -> Result<(f64, f64)> {
    let v: Vec<&str> = s.split(',').collect();
    if v.len() != 2 {
        bail!("--shear {s}: expected g1,g2");
    }
    let p = |x: &str| -> Result<f64> {
        x.trim()
            .parse::<f64>()
            .with_context(|| format!("--shear {s}: '{x}' is not a number"))
    };
    Ok((p(v[0])?, p(v[1])?))
}

fn main() -> Result<()> {
    let a = Args::parse();
    let (threads, warn) = effective_threads(a.threads);
    if let Some(w) = warn {
        eprintln!("ngmixer-shear-test: warning: {w}");
    }
    let test = ShearTest {
        sim: ShearSimConfig {
            ngal: a.ngal,
            seed: a.seed,
            shear: parse_shear(&a.shear)?,
            snr: a.snr,
            ..ShearSimConfig::default()
        },
        seed: a.seed,
        threads,
        chunk: a.chunk,
    };
    let mut progress = Progress::new("ngmixer-shear-test", a.ngal, 0, ProgressMode::Auto);
    let r = test.run(&mut progress);
    progress.finish();
    let r = r?;
    println!(
        "m = {:+.5} ± {:.5} (95 %)\nc = {:+.6} ± {:.6} (95 %)\n<R11> = {:.4}  <R22> = {:.4}\n\
         ngal = {} (used {})  time = {:.1} s ({:.1} galaxies/s on {threads} threads)",
        r.m,
        r.m_err95,
        r.c,
        r.c_err95,
        r.r11,
        r.r22,
        r.ngal,
        r.nused,
        r.seconds,
        r.ngal as f64 / r.seconds
    );
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&r.to_json())?;
        std::fs::write(p, text + "\n").with_context(|| format!("--json {}", p.display()))?;
    }
    Ok(())
}
