//! EM PSF-fit benchmarks: ngmixer's PSF fit (ngmix v1.3.5 EM, V1) with the fast E step (the
//! default, what the fitters run) and with the reference E step (`fit_em_reference`, the
//! previous iteration), on PSFEx-like stamps (25×25 as the MEDS PSF stamps, and 48×48), 1–3
//! Gaussians, Y1 `tol: 5e-6`; plus fixed-iteration runs (`tol = 0`, 100 iterations) for the cost
//! per Gaussian·pixel·iteration. Ratios fast/reference are the figures to report (run with
//! `taskset -c 1 cargo bench --bench em`).

use criterion::{criterion_group, criterion_main, Criterion};
use ngmixer::fitting::em::{em_guess, EmConfig, EmFitter};
use ngmixer::gmix::Jacobian;
use ngmixer::rng::{normal, object_rng};
use std::hint::black_box;

/// A PSFEx-like PSF stamp: Moffat (beta 3.5, FWHM 0.9") with e = (0.03, -0.02), centred 0.3 px
/// off the stamp centre, DES pixel scale, flux 1, Gaussian noise of max / 10^4.
fn psfex_like_stamp(n: usize) -> (Vec<f64>, Jacobian) {
    let c = (n / 2) as f64;
    let j = Jacobian::new(c, c, 0.001, 0.263, 0.263, -0.002).unwrap();
    let beta = 3.5f64;
    let fwhm = 0.9f64;
    let rd = fwhm / (2.0 * (2f64.powf(1.0 / beta) - 1.0).sqrt());
    let (e1, e2) = (0.03, -0.02);
    let mut rng = object_rng(5, 5);
    let mut im: Vec<f64> = (0..n * n)
        .map(|k| {
            let (v, u) = j.vu((k / n) as f64 - 0.3, (k % n) as f64 + 0.2);
            let r2 = ((1.0 - e1) * u * u + (1.0 + e1) * v * v - 2.0 * e2 * u * v) / (rd * rd);
            (1.0 + r2).powf(-beta)
        })
        .collect();
    let total: f64 = im.iter().sum();
    im.iter_mut().for_each(|x| *x /= total);
    let mx = im.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    im.iter_mut()
        .for_each(|x| *x += mx * 1e-4 * normal(&mut rng));
    (im, j)
}

fn bench_em_v1(c: &mut Criterion) {
    for n in [25usize, 48] {
        let (im, j) = psfex_like_stamp(n);
        for ngauss in [1usize, 2, 3] {
            let mut rng = object_rng(3, 3);
            let guess = em_guess(ngauss, 0.55, 1.0, &mut rng).unwrap();
            for (label, cfg) in [
                (
                    "tol5e-6",
                    EmConfig {
                        tol: 5e-6,
                        maxiter: 5000,
                        ..EmConfig::v1_psf()
                    },
                ),
                (
                    "100iter",
                    EmConfig {
                        tol: 0.0,
                        maxiter: 100,
                        ..EmConfig::v1_psf()
                    },
                ),
            ] {
                for fast in [true, false] {
                    let mut f = EmFitter::new(&im, n, n, &j, &cfg).unwrap();
                    f.set_fast(fast);
                    let r = f.go(&guess).unwrap();
                    let name = format!(
                        "em{ngauss}_v1_{n}x{n}_{label}_{}",
                        if fast { "fast" } else { "reference" }
                    );
                    eprintln!("{name}: numiter {} flags {}", r.numiter, r.flags);
                    c.bench_function(&name, |b| {
                        b.iter(|| black_box(f.go(black_box(&guess)).unwrap()))
                    });
                }
            }
        }
    }
}

criterion_group!(benches, bench_em_v1);
criterion_main!(benches);
