//! Whole-fit benchmarks against the ngmix figures in `ref/ngmix/TIMINGS.md` (single core):
//! LM exp 1 band and 4 bands on 48×48 stamps, EM 3-Gaussian PSF on 25×25, and the whole
//! e2e01max run (66 objects) of the synthetic tile.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use ngmixer::fitting::em::{fit_em, EmConfig, EmVariant};
use ngmixer::fitting::kernel::{ModelSpec, V1};
use ngmixer::fitting::lm::LmPars;
use ngmixer::fitting::maxlike::{fit_max, NoPrior};
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use ngmixer::obs::{MultiBandObs, Observation};
use ngmixer::rng::{normal, object_rng};
use std::hint::black_box;

/// A noisy exp galaxy (T = 1.6, flux 400 per band) ⊗ 3-Gaussian PSF on a 48×48 stamp with a
/// DES-like Jacobian (as in ngmix's `gen/timings.py`), S/N ~ 100.
fn exp_obs(nband: usize) -> MultiBandObs {
    let j = Jacobian::new(23.3, 23.6, 0.0, 0.263, 0.263, -0.002).unwrap();
    let psf = GMix::from_full_pars(&[
        0.55, 0.02, -0.01, 0.22, 0.012, 0.2, 0.35, 0.02, -0.01, 0.55, 0.03, 0.5, 0.1, 0.02, -0.01,
        1.9, 0.1, 1.75,
    ])
    .unwrap();
    let gal = Model::Simple(SimpleKind::Exp)
        .gmix(&[0.05, -0.08, 0.2, -0.1, 1.6, 400.0])
        .unwrap();
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
    let spec = ModelSpec::simple(SimpleKind::Exp, Tables::V1);
    for nband in [1usize, 4] {
        let obs = exp_obs(nband);
        let mut guess = vec![0.15, -0.18, 0.12, -0.07, 2.08];
        guess.extend(std::iter::repeat_n(320.0, nband));
        c.bench_function(&format!("lm_exp_{nband}band_48x48"), |b| {
            b.iter(|| {
                black_box(
                    fit_max::<V1, NoPrior>(&obs, &spec, None, black_box(&guess), &lm).unwrap(),
                )
            })
        });
    }
}

fn bench_em(c: &mut Criterion) {
    let j = Jacobian::new(12.0, 12.0, 0.0, 0.263, 0.263, 0.0).unwrap();
    let psf = Model::Simple(SimpleKind::Turb)
        .gmix(&[0.0, 0.0, 0.02, -0.03, 0.6, 1.0])
        .unwrap();
    let im: Vec<f64> = (0..625)
        .map(|k| {
            let (v, u) = j.vu((k / 25) as f64, (k % 25) as f64);
            psf.gaussians().iter().map(|g| g.eval(v, u)).sum::<f64>()
        })
        .collect();
    let guess = ngmixer::fitting::em::em_guess(3, 0.6, 1.0, &mut object_rng(2, 2)).unwrap();
    let mut cfg = EmConfig::v2();
    cfg.tol = 1e-5;
    assert_eq!(cfg.variant, EmVariant::V2);
    c.bench_function("em3_psf_25x25_tol1e-5", |b| {
        b.iter(|| black_box(fit_em(black_box(&im), 25, 25, &j, &guess, &cfg).unwrap()))
    });
}

fn bench_e2e(c: &mut Criterion) {
    use ngmixer::backends::medsio::MedsSource;
    use ngmixer::config::load_fitting_config;
    use ngmixer::fitter::from_config::{fitter_settings, io_settings};
    use ngmixer::fitter::Fitter;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cfg = load_fitting_config(root.join("e2e/run-e2e01max.yaml")).unwrap();
    let src = MedsSource::open(
        &[root.join("meds/sim-e2e-meds.fits")],
        io_settings(&cfg).unwrap(),
    )
    .unwrap();
    let fitter = Fitter::new(src, fitter_settings(&cfg, 1).unwrap(), 12345);
    let pool1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let pool2 = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("e2e01max_66_objects");
    g.sample_size(10);
    g.bench_function("1_thread", |b| {
        b.iter(|| pool1.install(|| black_box(fitter.run_range(0..66, &|| {}).unwrap())))
    });
    g.bench_function("2_threads", |b| {
        b.iter(|| pool2.install(|| black_box(fitter.run_range(0..66, &|| {}).unwrap())))
    });
    g.finish();
}

criterion_group!(benches, bench_lm, bench_em, bench_e2e);
criterion_main!(benches);
