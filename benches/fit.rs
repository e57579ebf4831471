//! Whole-fit benchmarks against the ngmix figures in `ref/ngmix/TIMINGS.md` (single core):
//! LM exp and cm (fixed fracdev, TdByTe), 1 band and 4 bands on 48×48 stamps, EM 3-Gaussian PSF on 25×25, and the whole
//! e2e01max run (66 objects) of the synthetic tile.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use ngmixer::fitting::em::{
    em_guess, fit_em, fit_em_accel, fit_em_reference, EmConfig, EmFitter, EmVariant,
};
use ngmixer::fitting::kernel::{ModelSpec, V1};
use ngmixer::fitting::lm::LmPars;
use ngmixer::fitting::maxlike::{fit_max, NoPrior};
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use ngmixer::obs::{MultiBandObs, Observation};
use ngmixer::rng::{normal, object_rng};
use std::hint::black_box;

/// A noisy galaxy `model` at `truth` (the same flux in every band) ⊗ 3-Gaussian PSF on a 48×48
/// stamp with a DES-like Jacobian and noise σ = 0.5 (as in ngmix's `gen/timings.py`).
fn galaxy_obs(model: Model, truth: &[f64; 6], nband: usize) -> MultiBandObs {
    let j = Jacobian::new(23.3, 23.6, 0.0, 0.263, 0.263, -0.002).unwrap();
    let psf = GMix::from_full_pars(&[
        0.55, 0.02, -0.01, 0.22, 0.012, 0.2, 0.35, 0.02, -0.01, 0.55, 0.03, 0.5, 0.1, 0.02, -0.01,
        1.9, 0.1, 1.75,
    ])
    .unwrap();
    let gal = model.gmix(truth).unwrap();
    let conv = gal.convolve(&psf).unwrap();
    let mut rng = object_rng(1, 1);
    let sigma = 0.5;
    let bands = (0..nband)
        .map(|_| {
            let im = Array2::from_shape_fn((48, 48), |(r, c)| {
                let (v, u) = j.vu(r as f64, c as f64);
                conv.gaussians().iter().map(|g| g.eval(v, u)).sum::<f64>()
            });
            let im = im.mapv(|x| x + sigma * normal(&mut rng));
            let wt = Array2::from_elem((48, 48), 1.0 / (sigma * sigma));
            let mut p = Observation::with_unit_weight(Array2::zeros((3, 3)), j).unwrap();
            p.gmix = Some(psf.clone());
            vec![Observation::new(im, wt, j).unwrap().with_psf(p)]
        })
        .collect();
    MultiBandObs::new(bands)
}

fn bench_lm(c: &mut Criterion) {
    let lm = LmPars {
        maxfev: 4000,
        ftol: 1e-5,
        xtol: 1e-5,
    };
    // (name, model, fit spec, truth): timings.py's TRUE values (first band's flux); cm is fitted
    // at the fixed fracdev = 0.4, TdByTe = 0.8 it was simulated with (ngmix 1.x LMComposite)
    let cm = Model::Cm {
        fracdev: 0.4,
        tdbyte: 0.8,
    };
    let cases = [
        (
            "exp",
            Model::Simple(SimpleKind::Exp),
            ModelSpec::simple(SimpleKind::Exp, Tables::V1),
            [0.05, -0.08, 0.2, -0.1, 1.6, 400.0],
        ),
        (
            "cm",
            cm,
            ModelSpec::cm(0.4, 0.8, Tables::V1),
            [0.03, 0.02, 0.12, 0.18, 1.8, 450.0],
        ),
    ];
    for (name, model, spec, tp) in cases {
        for nband in [1usize, 4] {
            let obs = galaxy_obs(model, &tp, nband);
            // timings.py's guess: offset centre, halved shape, T × 1.3, fluxes × 0.8
            let mut guess = vec![
                tp[0] + 0.1,
                tp[1] - 0.1,
                tp[2] * 0.5 + 0.02,
                tp[3] * 0.5 - 0.02,
                tp[4] * 1.3,
            ];
            guess.extend(std::iter::repeat_n(tp[5] * 0.8, nband));
            c.bench_function(&format!("lm_{name}_{nband}band_48x48"), |b| {
                b.iter(|| {
                    black_box(
                        fit_max::<V1, NoPrior>(&obs, &spec, None, black_box(&guess), &lm).unwrap(),
                    )
                })
            });
        }
    }
}

/// ngmix `gen/timings.py`'s EM case: `PSF3` (flux normalised to 1) on a 25×25 stamp with the
/// Jacobian `row=col=12, dudrow=0.001, dudcol=0.263, dvdrow=0.263, dvdcol=-0.002`, plus Gaussian
/// noise of σ = max/1000, unit weight, fitted from `guess3` by the ngmix 2.4.2 EM (V2).
/// numpy's `RandomState(8)` noise cannot be reproduced; the crate's deterministic
/// `object_rng(8, 8)` + `normal` is used instead, so the iteration count can differ slightly
/// from ngmix's (printed once per tolerance).
fn bench_em(c: &mut Criterion) {
    let j = Jacobian::new(12.0, 12.0, 0.001, 0.263, 0.263, -0.002).unwrap();
    let psf3 = GMix::from_full_pars(&[
        0.55, 0.02, -0.01, 0.22, 0.012, 0.20, 0.35, 0.02, -0.01, 0.55, 0.03, 0.50, 0.10, 0.02,
        -0.01, 1.90, 0.10, 1.75,
    ])
    .unwrap();
    let mut im: Vec<f64> = (0..625)
        .map(|k| {
            let (v, u) = j.vu((k / 25) as f64, (k % 25) as f64);
            psf3.gaussians().iter().map(|g| g.eval(v, u)).sum::<f64>()
        })
        .collect();
    let total: f64 = im.iter().sum();
    im.iter_mut().for_each(|x| *x /= total);
    let scale = im.iter().cloned().fold(f64::NEG_INFINITY, f64::max) / 1000.0;
    let mut rng = object_rng(8, 8);
    im.iter_mut().for_each(|x| *x += scale * normal(&mut rng));
    let guess3 = GMix::from_full_pars(&[
        0.5, 0.01, -0.01, 0.12, 0.0, 0.12, 0.35, 0.01, -0.01, 0.3, 0.0, 0.3, 0.15, 0.01, -0.01,
        0.9, 0.0, 0.9,
    ])
    .unwrap();
    // (name, tol, maxiter, ngmix 2.4.2 iterations from TIMINGS.md)
    for (name, tol, maxiter, ngmix_iter) in [
        ("em3_psf_25x25_tol1e-5", 1e-5, 2000usize, 49usize),
        ("em3_psf_25x25_tol1e-8", 1e-8, 5000, 880),
    ] {
        let mut cfg = EmConfig::v2();
        cfg.tol = tol;
        cfg.maxiter = maxiter;
        assert_eq!(cfg.variant, EmVariant::V2);
        let r = fit_em(&im, 25, 25, &j, &guess3, &cfg).unwrap();
        eprintln!(
            "{name}: numiter {} flags {} (ngmix 2.4.2: {ngmix_iter} iterations, flags 0)",
            r.numiter, r.flags
        );
        c.bench_function(name, |b| {
            b.iter(|| black_box(fit_em(black_box(&im), 25, 25, &j, &guess3, &cfg).unwrap()))
        });
        // the same fit with the accelerated iteration (opt-in for V2)
        let fit_accel = |im: &[f64]| {
            let mut f = EmFitter::new(im, 25, 25, &j, &cfg).unwrap();
            f.set_accel(true);
            f.go(&guess3).unwrap()
        };
        let ra = fit_accel(&im);
        eprintln!("{name}_accel: numiter {} flags {}", ra.numiter, ra.flags);
        c.bench_function(&format!("{name}_accel"), |b| {
            b.iter(|| black_box(fit_accel(black_box(&im))))
        });
    }
    // ngmixer's PSF fit: ngmix v1.3.5 EM (V1), 3 Gaussians, Y1 `tol: 5e-6`, on a PSFEx-like
    // stamp (a Moffat, beta 3.5, FWHM 0.9", slightly elliptical, off-centre, tiny noise)
    let (im, j) = psfex_like_stamp(25);
    let mut rng = object_rng(3, 3);
    let guess = em_guess(3, 0.55, 1.0, &mut rng).unwrap();
    for (name, tol) in [
        ("em3_v1_psfex_25x25_tol5e-6", 5e-6),
        ("em3_v1_psfex_25x25_tol1e-8", 1e-8),
    ] {
        let cfg = EmConfig {
            tol,
            maxiter: 2000,
            ..EmConfig::v1_psf()
        };
        let r = fit_em_accel(&im, 25, 25, &j, &guess, &cfg).unwrap();
        let r0 = fit_em_reference(&im, 25, 25, &j, &guess, &cfg).unwrap();
        eprintln!(
            "{name}: numiter {} flags {} (reference: {} iterations, flags {})",
            r.numiter, r.flags, r0.numiter, r0.flags
        );
        c.bench_function(&format!("{name}_accel"), |b| {
            b.iter(|| black_box(fit_em_accel(black_box(&im), 25, 25, &j, &guess, &cfg).unwrap()))
        });
        c.bench_function(name, |b| {
            b.iter(|| black_box(fit_em(black_box(&im), 25, 25, &j, &guess, &cfg).unwrap()))
        });
    }
}

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
            // sheared radius
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

fn bench_e2e(c: &mut Criterion) {
    use ngmixer::backends::medsio::MedsSource;
    use ngmixer::config::load_fitting_config;
    use ngmixer::fitter::from_config::fitter_settings;
    use ngmixer::fitter::MaxLike;
    use ngmixer::run::Fitter;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cfg = load_fitting_config(root.join("e2e/run-e2e01max.yaml")).unwrap();
    let src = MedsSource::open(
        &[root.join("meds/sim-e2e-meds.fits")],
        ngmixer::backends::medsio::IoSettings::from_config(&cfg).unwrap(),
    )
    .unwrap();
    let fitter = Fitter::new(
        src,
        MaxLike::new(fitter_settings(&cfg, 1).unwrap()).unwrap(),
    );
    let mut g = c.benchmark_group("e2e01max_66_objects");
    g.sample_size(10);
    g.bench_function("1_thread", |b| {
        b.iter(|| black_box(fitter.fit_all(12345, 1).unwrap()))
    });
    g.bench_function("2_threads", |b| {
        b.iter(|| black_box(fitter.fit_all(12345, 2).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench_lm, bench_em, bench_e2e);
criterion_main!(benches);
