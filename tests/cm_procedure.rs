//! The composite (`cm`) procedure of ngmix v1.3.5's `CompositeBootstrapper` against
//! independent references:
//! * noiseless simulated exp+dev galaxies (rendered with `gmix::Model`, exact exponential),
//!   several bands and epochs with different Jacobians and PSFs;
//! * the fracdev step against the closed-form least-squares solution and, with a Gaussian
//!   prior, the closed-form maximum of the quadratic log-likelihood plus log-prior;
//! * hand-derived cases of the procedure's arithmetic (clipping, `TdByTe`, the range-error
//!   retry with `fracdev` clipped to `[0, 1]`, the failure paths).

use ndarray::Array2;
use ngmixer::fitting::cm::{fit_cm, linspace, CmConfig, CmFailure, CmStage, FracdevProblem};
use ngmixer::fitting::kernel::V1;
use ngmixer::fitting::lm::LmPars;
use ngmixer::fitting::maxlike::NoPrior;
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use ngmixer::obs::{MultiBandObs, Observation};
use ngmixer::priors::GMixND;

const SIGMA: f64 = 0.01;
const N: usize = 41;

fn psf(k: usize) -> GMix {
    // two-Gaussian PSFs, FWHM ~0.9", slightly different per epoch
    let s = 1.0 + 0.05 * k as f64;
    GMix::from_full_pars(&[
        0.7,
        0.0,
        0.0,
        0.09 * s,
        0.004 * k as f64,
        0.085 * s,
        0.3,
        0.01,
        -0.01,
        0.25 * s,
        -0.01,
        0.27 * s,
    ])
    .unwrap()
}

fn jac(k: usize) -> Jacobian {
    let s = 0.263;
    let a = 0.02 * k as f64;
    Jacobian::new(
        20.0 + 0.3 * k as f64,
        20.4 - 0.2 * k as f64,
        -s * a,
        s * (1.0 + 0.01 * k as f64),
        s,
        s * a,
    )
    .unwrap()
}

/// Exact rendering (ngmix v1.3.5 convention: per unit sky area, no pixel-area factor).
fn render(gm: &GMix, j: &Jacobian) -> Array2<f64> {
    Array2::from_shape_fn((N, N), |(r, c)| {
        let (v, u) = j.vu(r as f64, c as f64);
        gm.gaussians().iter().map(|g| g.eval(v, u)).sum()
    })
}

/// `nband` bands of `nepoch` noiseless epochs of `model` with band parameters
/// `[row, col, g1, g2, T, flux_b]`.
fn sim(model: Model, pars5: [f64; 5], fluxes: &[f64], nepoch: usize) -> MultiBandObs {
    let mut bands = Vec::new();
    for (b, &flux) in fluxes.iter().enumerate() {
        let mut list = Vec::new();
        for e in 0..nepoch {
            let k = b * nepoch + e;
            let mut p = pars5.to_vec();
            p.push(flux);
            let gm = model
                .gmix_with(&p, Tables::V1)
                .unwrap()
                .convolve(&psf(k))
                .unwrap();
            let j = jac(k);
            let im = render(&gm, &j);
            let wt = Array2::from_elem((N, N), 1.0 / (SIGMA * SIGMA));
            let mut po = Observation::with_unit_weight(Array2::zeros((5, 5)), j).unwrap();
            po.gmix = Some(psf(k));
            list.push(Observation::new(im, wt, j).unwrap().with_psf(po));
        }
        bands.push(list);
    }
    MultiBandObs::new(bands)
}

fn lm() -> LmPars {
    LmPars {
        maxfev: 4000,
        xtol: 1e-10,
        ftol: 1e-10,
    }
}

/// Deterministic guesses near the truth (the procedure must not depend on them).
fn guesser(truth: Vec<f64>) -> impl FnMut(CmStage) -> Vec<f64> {
    let mut k = 0usize;
    move |_| {
        k += 1;
        let s = if k.is_multiple_of(2) { 1.0 } else { -1.0 };
        let mut g = truth.clone();
        g[0] += 0.01 * s;
        g[1] -= 0.01 * s;
        g[2] *= 0.8;
        g[3] *= 0.8;
        for x in &mut g[4..] {
            *x *= 1.0 + 0.1 * s;
        }
        g
    }
}

fn gauss_prior(mean: f64, sigma: f64) -> GMixND {
    GMixND::new(&[1.0], &[mean], &[sigma * sigma]).unwrap()
}

fn cfg_with(prior: Option<GMixND>) -> CmConfig {
    CmConfig {
        fracdev_prior: prior,
        ..CmConfig::default()
    }
}

const P5: [f64; 5] = [0.02, -0.03, 0.2, -0.1, 0.6];
const FLUX: [f64; 2] = [8.0, 12.0];

fn truth() -> Vec<f64> {
    let mut t = P5.to_vec();
    t.extend_from_slice(&FLUX);
    t
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(0.05))
        .fold(0.0, f64::max)
}

/// A noiseless pure-exp galaxy: fracdev → 0, the composite fit is then the exp model, and
/// every parameter is recovered.
#[test]
fn noiseless_exp_recovered() {
    let obs = sim(Model::Simple(SimpleKind::Exp), P5, &FLUX, 2);
    let cfg = cfg_with(Some(gauss_prior(0.5, 1.0)));
    let r = fit_cm::<V1, NoPrior>(&obs, None, &cfg, &lm(), 2, guesser(truth())).unwrap();
    eprintln!(
        "exp: fracdev {} ± {} TdByTe {} pars {:?}",
        r.fracdev, r.fracdev_err, r.tdbyte, r.fit.pars
    );
    assert!(r.fracdev.abs() < 1e-4, "fracdev {}", r.fracdev);
    assert_eq!(r.fracdev, r.fracdev_noclip);
    // the exp fit itself is exact
    assert!(max_rel(&r.exp.pars, &truth()) < 1e-6, "{:?}", r.exp.pars);
    // the composite at fracdev ~ 0: T scales with 1/Σp_e f_e (= Tfactor at fracdev 0)
    let s_e = 1.0 / Tables::V1.cm_tfactor(0.0, 1.0);
    let mut want = truth();
    want[4] *= s_e;
    assert!(max_rel(&r.fit.pars, &want) < 1e-4, "{:?}", r.fit.pars);
    // TdByTe is the ratio of the dev and exp sizes
    assert_eq!(r.tdbyte_noclip, r.dev.pars[4] / r.exp.pars[4]);
    assert_eq!(r.tdbyte, r.tdbyte_noclip);
    assert!(
        r.tdbyte > 1.0,
        "a dev fit to an exp galaxy is larger: {}",
        r.tdbyte
    );
    assert_eq!(r.range_retries, 0);
}

/// A noiseless pure-dev galaxy: fracdev → 1 and the composite at (1, TdByTe) is the dev
/// model with `T = T_true Σ p_d f_d` (Tfactor = 1 / (TdByTe Σ p_d f_d)).
#[test]
fn noiseless_dev_recovered() {
    let obs = sim(Model::Simple(SimpleKind::Dev), P5, &FLUX, 2);
    let cfg = cfg_with(Some(gauss_prior(0.5, 1.0)));
    let r = fit_cm::<V1, NoPrior>(&obs, None, &cfg, &lm(), 2, guesser(truth())).unwrap();
    eprintln!(
        "dev: fracdev {} ± {} TdByTe {} pars {:?}",
        r.fracdev, r.fracdev_err, r.tdbyte, r.fit.pars
    );
    assert!((r.fracdev - 1.0).abs() < 1e-3, "fracdev {}", r.fracdev);
    // (the fit kernel cuts Gaussians at chi2 = 25, the rendering here does not: ~1e-6)
    assert!(max_rel(&r.dev.pars, &truth()) < 2e-5, "{:?}", r.dev.pars);
    let s_d = 1.0 / Tables::V1.cm_tfactor(1.0, 1.0);
    let mut want = truth();
    want[4] *= s_d;
    assert!(max_rel(&r.fit.pars, &want) < 1e-3, "{:?}", r.fit.pars);
    // dev's second moment is dominated by its wings: an exp fit to a dev galaxy is smaller
    assert!(r.tdbyte > 1.0, "{}", r.tdbyte);
}

/// A noiseless 50/50 composite (TdByTe 1): the procedure fixes TdByTe from the separate fits
/// (here ~3.9), so the size is not the truth and the model is not exact; the centre is
/// recovered, the shared shape to 0.01 and the fluxes to 5 % (measured: 0.004, 2.6 %).
#[test]
fn noiseless_composite_shape_and_flux() {
    let model = Model::Cm {
        fracdev: 0.5,
        tdbyte: 1.0,
    };
    let obs = sim(model, P5, &FLUX, 2);
    let cfg = cfg_with(Some(gauss_prior(0.5, 1.0)));
    let r = fit_cm::<V1, NoPrior>(&obs, None, &cfg, &lm(), 2, guesser(truth())).unwrap();
    let p = &r.fit.pars;
    eprintln!(
        "cm(0.5,1): fracdev {} ± {} TdByTe {} pars {:?} chi2per {}",
        r.fracdev, r.fracdev_err, r.tdbyte, p, r.fit.chi2per
    );
    assert!(r.fracdev > 0.2 && r.fracdev < 0.8, "fracdev {}", r.fracdev);
    assert!(
        (p[0] - P5[0]).abs() < 1e-3 && (p[1] - P5[1]).abs() < 1e-3,
        "{p:?}"
    );
    assert!(
        (p[2] - P5[2]).abs() < 0.01 && (p[3] - P5[3]).abs() < 0.01,
        "{p:?}"
    );
    for b in 0..2 {
        assert!(
            (p[5 + b] / FLUX[b] - 1.0).abs() < 0.05,
            "flux {b}: {}",
            p[5 + b]
        );
    }
}

/// Without a fracdev prior the linear `FracdevFitter` is used; on an exact mixture of the
/// exp and dev models it returns the mixing fraction.
#[test]
fn linear_fracdev_exact_on_mixture() {
    let ep = [0.01, 0.02, 0.1, 0.05, 0.5, 10.0];
    let dp = [0.01, 0.02, 0.1, 0.05, 0.9, 11.0];
    for f0 in [-0.3, 0.0, 0.37, 1.0, 1.4] {
        let obs = mixture_obs(&ep, &dp, f0, 0.0);
        let prob = FracdevProblem::new::<V1>(&obs, &ep, &dp, Tables::V1, None).unwrap();
        let r = prob.fit_linear();
        assert_eq!(r.flags, 0);
        assert!((r.fracdev - f0).abs() < 1e-10, "{f0}: {}", r.fracdev);
    }
}

/// Data `(1-f0) E + f0 D + noise` for fixed exp/dev band parameters, one band, two epochs.
fn mixture_obs(ep: &[f64; 6], dp: &[f64; 6], f0: f64, noise: f64) -> MultiBandObs {
    let mut list = Vec::new();
    for k in 0..2 {
        let e = Model::Simple(SimpleKind::Exp)
            .gmix_with(ep, Tables::V1)
            .unwrap()
            .convolve(&psf(k))
            .unwrap();
        let d = Model::Simple(SimpleKind::Dev)
            .gmix_with(dp, Tables::V1)
            .unwrap()
            .convolve(&psf(k))
            .unwrap();
        let j = jac(k);
        let ei = render(&e, &j);
        let di = render(&d, &j);
        // a fixed pseudo-noise pattern
        let im = Array2::from_shape_fn((N, N), |(r, c)| {
            (1.0 - f0) * ei[(r, c)]
                + f0 * di[(r, c)]
                + noise * (((r * 31 + c * 17 + k * 7) % 13) as f64 / 6.0 - 1.0)
        });
        let mut wt = Array2::from_elem((N, N), 1.0 / (SIGMA * SIGMA));
        wt[(3, 4)] = 0.0; // a masked pixel
        let mut po = Observation::with_unit_weight(Array2::zeros((5, 5)), j).unwrap();
        po.gmix = Some(psf(k));
        list.push(Observation::new(im, wt, j).unwrap().with_psf(po));
    }
    MultiBandObs::new(vec![list])
}

/// Independent sums `A = Σ w (D-E)²`, `B = Σ w (D-E)(I-E)` from a separate rendering.
fn sums(obs: &MultiBandObs, ep: &[f64; 6], dp: &[f64; 6]) -> (f64, f64) {
    let (mut a, mut b) = (0.0, 0.0);
    for (k, o) in obs.bands[0].iter().enumerate() {
        let e = Model::Simple(SimpleKind::Exp)
            .gmix_with(ep, Tables::V1)
            .unwrap()
            .convolve(&psf(k))
            .unwrap();
        let d = Model::Simple(SimpleKind::Dev)
            .gmix_with(dp, Tables::V1)
            .unwrap()
            .convolve(&psf(k))
            .unwrap();
        let ei = render(&e, &o.jacobian);
        let di = render(&d, &o.jacobian);
        for ((idx, &w), &im) in o.weight().indexed_iter().zip(o.image().iter()) {
            let x = di[idx] - ei[idx];
            a += w * x * x;
            b += w * x * (im - ei[idx]);
        }
    }
    (a, b)
}

/// The fracdev step against closed forms: least squares `f = B/A`, `σ = A^-½`; with a
/// Gaussian prior `N(μ, s²)` the maximum `(B + μ/s²)/(A + 1/s²)`, `σ = (A + 1/s²)^-½`; the
/// grid answer is the grid value of largest closed-form log-probability.
#[test]
fn fracdev_step_matches_closed_forms() {
    let ep = [0.0, 0.0, -0.1, 0.2, 0.4, 5.0];
    let dp = [0.0, 0.0, -0.1, 0.2, 1.1, 5.5];
    let f0 = 0.42;
    let obs = mixture_obs(&ep, &dp, f0, 0.02);
    let (a, b) = sums(&obs, &ep, &dp);

    let prob = FracdevProblem::new::<V1>(&obs, &ep, &dp, Tables::V1, None).unwrap();
    let lin = prob.fit_linear();
    eprintln!("linear: {lin:?}, closed form {} ± {}", b / a, a.powf(-0.5));
    assert_eq!(lin.flags, 0);
    assert!((lin.fracdev - b / a).abs() < 1e-10 * (b / a).abs());
    assert!((lin.fracdev_err / a.powf(-0.5) - 1.0).abs() < 1e-6);

    for (mu, s) in [(0.0, 0.1), (1.0, 0.05), (0.3, 1.0), (-0.5, 0.02)] {
        let prior = gauss_prior(mu, s);
        let prob = FracdevProblem::new::<V1>(&obs, &ep, &dp, Tables::V1, Some(&prior)).unwrap();
        // ln p difference is the Gaussian prior
        let noprior = FracdevProblem::new::<V1>(&obs, &ep, &dp, Tables::V1, None).unwrap();
        for f in [-0.9, 0.1, 1.9] {
            let lnn = -0.5 * (f - mu) * (f - mu) / (s * s)
                - (s * (2.0 * std::f64::consts::PI).sqrt()).ln();
            let d = prob.lnprob(f) - noprior.lnprob(f);
            assert!((d - lnn).abs() < 1e-9 * lnn.abs().max(1.0), "{d} vs {lnn}");
        }
        let ip = 1.0 / (s * s);
        let fstar = (b + mu * ip) / (a + ip);
        let estar = (a + ip).powf(-0.5);
        // grid: closed-form log-probability up to a constant
        let grid = linspace(-1.0, 1.5, 26);
        let lnp = |f: f64| -0.5 * (a * f * f - 2.0 * b * f) - 0.5 * (f - mu) * (f - mu) * ip;
        let want_grid = grid
            .iter()
            .cloned()
            .filter(|&f| f > -1.0 && f < 2.0)
            .fold((f64::NAN, f64::NEG_INFINITY), |acc, f| {
                if lnp(f) > acc.1 {
                    (f, lnp(f))
                } else {
                    acc
                }
            })
            .0;
        assert_eq!(prob.grid_best(&grid), Some(want_grid));
        let g = prob.fit(&grid, true).unwrap();
        assert_eq!((g.fracdev, g.fracdev_err, g.nfev), (want_grid, 1.0, 26));

        let r = prob.fit(&grid, false).unwrap();
        eprintln!(
            "prior N({mu},{s}): NM {} ± {} ({} calls), closed form {fstar} ± {estar}",
            r.fracdev, r.fracdev_err, r.nfev
        );
        // Nelder–Mead stops when the simplex is within 1e-3 relative of the best vertex
        assert!(
            (r.fracdev - fstar).abs() < 2e-3 * fstar.abs() + 1e-6,
            "{} vs {fstar}",
            r.fracdev
        );
        assert!(
            (r.fracdev_err / estar - 1.0).abs() < 1e-5,
            "{} vs {estar}",
            r.fracdev_err
        );
    }
}

/// `-1 < fracdev < 2` or `ln p = -inf`; a grid with no finite value fails the fit.
#[test]
fn fracdev_domain() {
    let ep = [0.0, 0.0, 0.0, 0.0, 0.4, 5.0];
    let dp = [0.0, 0.0, 0.0, 0.0, 1.1, 5.5];
    let obs = mixture_obs(&ep, &dp, 0.3, 0.0);
    let prior = gauss_prior(0.3, 0.5);
    let prob = FracdevProblem::new::<V1>(&obs, &ep, &dp, Tables::V1, Some(&prior)).unwrap();
    assert_eq!(prob.lnprob(-1.0), f64::NEG_INFINITY);
    assert_eq!(prob.lnprob(2.0), f64::NEG_INFINITY);
    assert!(prob.lnprob(-0.999).is_finite() && prob.lnprob(1.999).is_finite());
    assert_eq!(prob.grid_best(&[-1.0, 2.0, 3.0]), None);
    assert_eq!(prob.fit(&[-1.0, 2.0], false), Err(CmFailure::FracdevGrid));
    // the first maximum wins on ties
    assert_eq!(prob.grid_best(&[0.3, 0.3]), Some(0.3));
    // an epoch without a fitted PSF cannot be rendered
    let mut bad = obs.clone();
    bad.bands[0][1].psf.as_mut().unwrap().gmix = None;
    assert!(FracdevProblem::new::<V1>(&bad, &ep, &dp, Tables::V1, None).is_err());
    // wrong parameter count
    assert!(FracdevProblem::new::<V1>(&obs, &ep[..5], &dp, Tables::V1, None).is_err());
}

/// Clipping to `fracdev_range` / `TdByTe_range`; the `_noclip` values keep the raw ones.
#[test]
fn clipping_by_hand() {
    let obs = sim(Model::Simple(SimpleKind::Dev), P5, &FLUX, 1);
    let cfg = CmConfig {
        fracdev_prior: Some(gauss_prior(0.5, 1.0)),
        fracdev_range: [0.0, 0.9],
        tdbyte_range: [0.5, 0.5],
        ..CmConfig::default()
    };
    let r = fit_cm::<V1, NoPrior>(&obs, None, &cfg, &lm(), 2, guesser(truth())).unwrap();
    assert!((r.fracdev_noclip - 1.0).abs() < 1e-3);
    assert_eq!(r.fracdev, 0.9);
    assert_eq!(r.tdbyte, 0.5);
    assert_eq!(r.tdbyte_noclip, r.dev.pars[4] / r.exp.pars[4]);
    assert!(r.tdbyte_noclip > 0.5, "{}", r.tdbyte_noclip);
}

/// A composite guess outside the model's domain (negative size factor at fracdev -0.5,
/// TdByTe 5) raises a range error: fracdev is clipped to [0, 1] and the fit retried; at
/// fracdev 0 the composite is the exp model and the truth is recovered.
#[test]
fn range_error_retry_clips_fracdev() {
    let obs = sim(Model::Simple(SimpleKind::Exp), P5, &FLUX, 2);
    let cfg = CmConfig {
        // a very narrow prior pins fracdev at -0.5
        fracdev_prior: Some(gauss_prior(-0.5, 1e-4)),
        tdbyte_range: [5.0, 5.0],
        ..CmConfig::default()
    };
    let mut stages = Vec::new();
    let mut g = guesser(truth());
    let r = fit_cm::<V1, NoPrior>(&obs, None, &cfg, &lm(), 2, |s| {
        stages.push(s);
        g(s)
    })
    .unwrap();
    eprintln!(
        "retry: fracdev {} (noclip {}), TdByTe {}, retries {}",
        r.fracdev, r.fracdev_noclip, r.tdbyte, r.range_retries
    );
    assert!(Tables::V1.cm_tfactor(r.fracdev_noclip, 5.0) < 0.0);
    assert!((r.fracdev_noclip + 0.5).abs() < 2e-3);
    assert_eq!(r.fracdev, 0.0);
    assert_eq!(r.tdbyte, 5.0);
    assert_eq!(r.range_retries, 1);
    let s_e = 1.0 / Tables::V1.cm_tfactor(0.0, 5.0);
    let mut want = truth();
    want[4] *= s_e;
    assert!(max_rel(&r.fit.pars, &want) < 1e-4, "{:?}", r.fit.pars);
    // one guess each for exp and dev, one for the failed and one for the good composite
    assert_eq!(
        stages,
        vec![
            CmStage::Exp,
            CmStage::Dev,
            CmStage::Composite,
            CmStage::Composite
        ]
    );
}

/// Failures are values: an exp fit that cannot converge, and guesses outside the domain.
#[test]
fn failures_are_values() {
    let obs = sim(Model::Simple(SimpleKind::Exp), P5, &FLUX, 1);
    let cfg = cfg_with(Some(gauss_prior(0.5, 1.0)));
    let tight = LmPars {
        maxfev: 2,
        xtol: 1e-12,
        ftol: 1e-12,
    };
    let far = {
        let mut t = truth();
        t[4] = 5.0;
        t
    };
    match fit_cm::<V1, NoPrior>(&obs, None, &cfg, &tight, 2, |_| far.clone()) {
        Err(CmFailure::SimpleFit {
            stage: CmStage::Exp,
            flags,
        }) => assert_ne!(flags, 0),
        other => panic!("{other:?}"),
    }
    // |g| >= 1 in the guess: range error in the exp fit
    let bad = {
        let mut t = truth();
        t[2] = 1.5;
        t
    };
    assert!(matches!(
        fit_cm::<V1, NoPrior>(&obs, None, &cfg, &lm(), 1, |_| bad.clone()),
        Err(CmFailure::Range {
            stage: CmStage::Exp,
            ..
        })
    ));
    // wrong guess length
    assert!(fit_cm::<V1, NoPrior>(&obs, None, &cfg, &lm(), 1, |_| vec![0.0; 3]).is_err());
}
