//! The scalar oracle: a direct transcription of ngmix's per-pixel loops.
//!
//! For every pixel `(row, col)`: `(v, u) = jac.vu(row, col)`, then the sum over the Gaussians of
//! [`Policy::gauss_value`]`(pnorm, chi2(v, u), area)`, in mixture order. Slow and obviously
//! right; the fast kernels are tested against it.

use super::policy::Policy;
use super::LogLike;
use crate::gmix::{GMix, Jacobian};

/// Model value at pixel `(row, col)`.
#[inline]
pub(crate) fn pixel_value<P: Policy>(gmix: &GMix, jac: &Jacobian, row: usize, col: usize) -> f64 {
    let (v, u) = jac.vu(row as f64, col as f64);
    let area = jac.area();
    let mut val = 0.0;
    for g in gmix.gaussians() {
        val += P::gauss_value(g.pnorm, g.chi2(v, u), area);
    }
    val
}

/// Render into `out` (`nrow * ncol`, row-major); adds when `add`, else overwrites.
pub(crate) fn render<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    nrow: usize,
    ncol: usize,
    out: &mut [f64],
    add: bool,
) {
    if ncol == 0 || nrow == 0 {
        return;
    }
    for (row, orow) in out.chunks_exact_mut(ncol).enumerate() {
        for (col, o) in orow.iter_mut().enumerate() {
            let m = pixel_value::<P>(gmix, jac, row, col);
            if add {
                *o += m;
            } else {
                *o = m;
            }
        }
    }
}

/// `(model, data, ierr)` for every used pixel (weight > 0), in row-major order, as ngmix's
/// pixel list holds them (`ierr = sqrt(weight)`).
fn for_each_used<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    mut f: impl FnMut(f64, f64, f64),
) {
    if ncol == 0 {
        return;
    }
    for (i, (&d, &w)) in image.iter().zip(weight).enumerate() {
        if w <= 0.0 {
            continue;
        }
        let m = pixel_value::<P>(gmix, jac, i / ncol, i % ncol);
        f(m, d, w.sqrt());
    }
}

/// Log-likelihood and S/N sums (ngmix `get_loglike`).
pub(crate) fn loglike<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
) -> LogLike {
    let mut ll = LogLike::default();
    for_each_used::<P>(gmix, jac, image, weight, ncol, |m, d, ierr| {
        let ivar = ierr * ierr;
        let diff = m - d;
        ll.loglike += diff * diff * ivar;
        ll.s2n_numer += d * m * ivar;
        ll.s2n_denom += m * m * ivar;
        ll.npix += 1;
    });
    ll.loglike *= -0.5;
    ll
}

/// `(model - data) * sqrt(w)` for the used pixels (ngmix `fill_fdiff`); returns the count.
pub(crate) fn fill_fdiff<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    out: &mut [f64],
) -> usize {
    let mut k = 0;
    for_each_used::<P>(gmix, jac, image, weight, ncol, |m, d, ierr| {
        out[k] = (m - d) * ierr;
        k += 1;
    });
    k
}

/// `Σ model² w` over the used pixels (ngmix `get_model_s2n_sum`).
pub(crate) fn model_s2n_sum<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    weight: &[f64],
    ncol: usize,
) -> f64 {
    let mut s = 0.0;
    // the data do not enter: iterate with the weight standing in for the image
    for_each_used::<P>(gmix, jac, weight, weight, ncol, |m, _, ierr| {
        let ivar = ierr * ierr;
        s += m * m * ivar;
    });
    s
}
