//! The fused LM kernel's normal equations against a finite-difference Jacobian.
//!
//! `accumulate` never stores the Jacobian: it sums `JᵀJ` and `Jᵀr` with analytic derivatives
//! with respect to `[row, col, g1, g2, T, flux]`. Here the Jacobian is rebuilt column by column
//! from central differences of rendered models, and `JᵀJ = Σ w ∂m ∂mᵀ`, `Jᵀr = Σ w ∂m (m − d)`
//! and `χ² = Σ w (m − d)²` are summed from it. The stamp is small enough that no pixel of any
//! Gaussian reaches ngmix's χ² = 25 cut-off, so the rendered model is smooth in the parameters
//! and the differences converge (the cut would add steps of `e^-12.5` of the peak).

use ngmixer::fitting::kernel::{
    accumulate_scalar, accumulate_with, prepare, render, Accum, KGauss, KernelImpl, ModelSpec,
    Scratch, V1,
};
use ngmixer::gmix::models::{SimpleKind, Tables};
use ngmixer::gmix::{GMix, Jacobian};

const NROW: usize = 13;
const NCOL: usize = 12;

fn jacobian() -> Jacobian {
    // a sheared, rotated DES-like pixel grid (0.263″), not centred on the stamp
    Jacobian::new(6.3, 5.6, 0.012, 0.262, 0.268, -0.017).expect("valid jacobian")
}

fn psf() -> GMix {
    // three Gaussians, each wider than 2 pixels: every convolved component is too
    GMix::from_full_pars(&[
        0.5, 0.01, -0.02, 0.36, 0.02, 0.34, //
        0.3, -0.03, 0.02, 0.62, -0.04, 0.66, //
        0.2, 0.0, 0.01, 1.25, 0.05, 1.18,
    ])
    .expect("valid psf")
}

/// A deterministic pseudo-random sequence in [-1, 1).
fn noise(k: usize) -> f64 {
    let x = (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

fn model(spec: &ModelSpec, pars: &[f64; 6]) -> Vec<f64> {
    let mut gs: Vec<KGauss> = Vec::new();
    prepare(spec, &pars[..5], &psf(), 1.0, &mut gs).expect("valid pars");
    let mut out = vec![0.0; NROW * NCOL];
    render::<V1>(&gs, &jacobian(), NROW, NCOL, pars[5], &mut out);
    out
}

/// `(JᵀJ, Jᵀr, χ²)` from a central-difference Jacobian.
fn finite_difference(
    spec: &ModelSpec,
    pars: &[f64; 6],
    image: &[f64],
    weight: &[f64],
) -> ([[f64; 6]; 6], [f64; 6], f64) {
    let m0 = model(spec, pars);
    let steps = [1e-5, 1e-5, 1e-6, 1e-6, 1e-6 * pars[4], 1e-6 * pars[5]];
    let cols: Vec<Vec<f64>> = (0..6)
        .map(|p| {
            let (mut hi, mut lo) = (*pars, *pars);
            hi[p] += steps[p];
            lo[p] -= steps[p];
            let (mh, ml) = (model(spec, &hi), model(spec, &lo));
            mh.iter()
                .zip(&ml)
                .map(|(a, b)| (a - b) / (2.0 * steps[p]))
                .collect()
        })
        .collect();
    let (mut jtj, mut jtr, mut chi2) = ([[0.0; 6]; 6], [0.0; 6], 0.0);
    for k in 0..m0.len() {
        let w = weight[k];
        if w <= 0.0 {
            continue;
        }
        let r = m0[k] - image[k];
        chi2 += w * r * r;
        for i in 0..6 {
            jtr[i] += w * cols[i][k] * r;
            for j in 0..6 {
                jtj[i][j] += w * cols[i][k] * cols[j][k];
            }
        }
    }
    (jtj, jtr, chi2)
}

fn check(label: &str, spec: &ModelSpec, pars: [f64; 6], truth: [f64; 6]) {
    // data: the model at `truth` plus noise; weights vary, some pixels are unused
    let clean = model(spec, &truth);
    let peak = clean.iter().cloned().fold(0.0, f64::max);
    let sigma = 0.01 * peak;
    let image: Vec<f64> = clean
        .iter()
        .enumerate()
        .map(|(k, v)| v + sigma * noise(k))
        .collect();
    let weight: Vec<f64> = (0..NROW * NCOL)
        .map(|k| {
            if k % 17 == 3 {
                0.0
            } else {
                (1.0 + 0.5 * noise(k + 1000)) / (sigma * sigma)
            }
        })
        .collect();
    let (fjtj, fjtr, fchi2) = finite_difference(spec, &pars, &image, &weight);

    let mut gs: Vec<KGauss> = Vec::new();
    prepare(spec, &pars[..5], &psf(), 1.0, &mut gs).expect("valid pars");
    let jac = jacobian();
    let mut runs: Vec<(String, Accum)> = Vec::new();
    let mut scratch = Scratch::default();
    let mut acc = Accum::default();
    accumulate_scalar::<V1, true>(
        &gs,
        &jac,
        &image,
        &weight,
        NCOL,
        pars[5],
        &mut scratch,
        &mut acc,
    );
    runs.push(("scalar".into(), acc));
    for imp in KernelImpl::all() {
        let mut acc = Accum::default();
        accumulate_with::<V1, true>(
            imp,
            &gs,
            &jac,
            &image,
            &weight,
            NCOL,
            pars[5],
            &mut scratch,
            &mut acc,
        );
        runs.push((imp.name().into(), acc));
    }
    let used = weight.iter().filter(|&&w| w > 0.0).count();
    for (name, acc) in runs {
        assert_eq!(acc.npix, used, "{label} {name}: npix");
        assert!(
            (acc.chi2 - fchi2).abs() <= 1e-10 * fchi2,
            "{label} {name}: chi2 {} vs {}",
            acc.chi2,
            fchi2
        );
        for i in 0..6 {
            // relative to the natural scale sqrt(JᵀJ_ii JᵀJ_jj) (resp. sqrt(JᵀJ_ii χ²))
            let si = fjtj[i][i].sqrt();
            let tol_r = 1e-6 * si * fchi2.sqrt();
            assert!(
                (acc.jtr[i] - fjtr[i]).abs() <= tol_r,
                "{label} {name}: Jᵀr[{i}] {} vs {}",
                acc.jtr[i],
                fjtr[i]
            );
            for j in 0..6 {
                let tol = 1e-6 * si * fjtj[j][j].sqrt();
                assert!(
                    (acc.jtj[i][j] - fjtj[i][j]).abs() <= tol,
                    "{label} {name}: JᵀJ[{i}][{j}] {} vs {}",
                    acc.jtj[i][j],
                    fjtj[i][j]
                );
            }
        }
    }
}

#[test]
fn exp_normal_equations_match_finite_differences() {
    let spec = ModelSpec::simple(SimpleKind::Exp, Tables::V1);
    let truth = [0.05, -0.08, 0.2, -0.1, 0.6, 120.0];
    // away from the truth, so that the residuals and Jᵀr are not small
    let pars = [0.11, -0.02, 0.14, -0.18, 0.75, 100.0];
    check("exp", &spec, pars, truth);
}

#[test]
fn gauss_and_dev_normal_equations_match_finite_differences() {
    let truth = [-0.1, 0.07, -0.3, 0.25, 0.4, 80.0];
    let pars = [-0.04, 0.12, -0.22, 0.31, 0.33, 95.0];
    check(
        "gauss",
        &ModelSpec::simple(SimpleKind::Gauss, Tables::V1),
        pars,
        truth,
    );
    check(
        "dev",
        &ModelSpec::simple(SimpleKind::Dev, Tables::V1),
        pars,
        truth,
    );
}

#[test]
fn cm_normal_equations_match_finite_differences() {
    // the composite at fixed fracdev and TdByTe has the same analytic derivatives
    let spec = ModelSpec::cm(0.35, 0.8, Tables::V1);
    let truth = [0.02, 0.03, 0.15, 0.05, 0.9, 150.0];
    let pars = [-0.03, 0.09, 0.1, 0.12, 1.1, 130.0];
    check("cm", &spec, pars, truth);
}
