//! Second-moment conversions (ngmix `moments.py`).

use crate::error::{GMixError, GResult};
use crate::gmix::shape;

/// FWHM / sigma of a Gaussian.
pub const FWHM_PER_SIGMA: f64 = 2.3548200450309493;

/// Sigma to FWHM.
pub fn sigma_to_fwhm(sigma: f64) -> f64 {
    sigma * FWHM_PER_SIGMA
}
/// T = 2σ² to FWHM.
pub fn t_to_fwhm(t: f64) -> f64 {
    sigma_to_fwhm((t / 2.0).sqrt())
}
/// FWHM to sigma.
pub fn fwhm_to_sigma(fwhm: f64) -> f64 {
    fwhm / FWHM_PER_SIGMA
}
/// FWHM to T.
pub fn fwhm_to_t(fwhm: f64) -> f64 {
    let s = fwhm_to_sigma(fwhm);
    2.0 * s * s
}
/// Half-light radius of a Gaussian to T.
pub fn r50_to_t(r50: f64) -> f64 {
    fwhm_to_t(2.0 * r50)
}
/// T to half-light radius of a Gaussian.
pub fn t_to_r50(t: f64) -> f64 {
    t_to_fwhm(t) / 2.0
}

/// `(M1, M2, T)` to `(e1, e2)`; range error for T <= 0.
pub fn moms_to_e1e2(m1: f64, m2: f64, t: f64) -> GResult<(f64, f64)> {
    if t.is_nan() || t <= 0.0 {
        return Err(GMixError::Range("T <= 0.0"));
    }
    let tinv = 1.0 / t;
    Ok((m1 * tinv, m2 * tinv))
}

/// Round T of an elliptical object: `T (1-g²)/(1+g²)`.
pub fn t_round(t: f64, g1: f64, g2: f64) -> f64 {
    let gsq = g1 * g1 + g2 * g2;
    t * (1.0 - gsq) / (1.0 + gsq)
}

/// Elliptical T from the round T: `Tround (1+g²)/(1-g²)` (ngmix `get_T`).
pub fn t_from_round(tround: f64, g1: f64, g2: f64) -> f64 {
    let gsq = g1 * g1 + g2 * g2;
    tround * (1.0 + gsq) / (1.0 - gsq)
}

/// `(irr, irc, icc)` to `(e1, e2, T)`.
pub fn mom2e(irr: f64, irc: f64, icc: f64) -> (f64, f64, f64) {
    let t = irr + icc;
    ((icc - irr) / t, 2.0 * irc / t, t)
}

/// `(irr, irc, icc)` to `(g1, g2, T)`.
pub fn mom2g(irr: f64, irc: f64, icc: f64) -> GResult<(f64, f64, f64)> {
    let (e1, e2, t) = mom2e(irr, irc, icc);
    let (g1, g2) = shape::e1e2_to_g1g2(e1, e2)?;
    Ok((g1, g2, t))
}

/// `(e1, e2, T)` to `(irr, irc, icc)`.
pub fn e2mom(e1: f64, e2: f64, t: f64) -> (f64, f64, f64) {
    ((1.0 - e1) * t / 2.0, e2 * t / 2.0, (1.0 + e1) * t / 2.0)
}

/// `(g1, g2, T)` to `(irr, irc, icc)`.
pub fn g2mom(g1: f64, g2: f64, t: f64) -> GResult<(f64, f64, f64)> {
    let (e1, e2) = shape::g1g2_to_e1e2(g1, g2)?;
    Ok(e2mom(e1, e2, t))
}

/// `(g, T)` sheared by `s`, keeping the round T fixed.
pub fn sheared_g1g2t(g1: f64, g2: f64, t: f64, s1: f64, s2: f64) -> (f64, f64, f64) {
    let (g1s, g2s) = shape::shear_reduced(g1, g2, s1, s2);
    let tr = t_round(t, g1, g2);
    (g1s, g2s, t_from_round(tr, g1s, g2s))
}

/// Moments sheared by `s` (ngmix `get_sheared_moments`). Input moments that are not a valid
/// ellipse, or a result with |g| >= 1, give NaN moments, which [`crate::gmix::Gauss2D::new`]
/// then rejects with a range error.
pub fn sheared_moments(irr: f64, irc: f64, icc: f64, s1: f64, s2: f64) -> (f64, f64, f64) {
    let res = (|| {
        let (g1, g2, t) = mom2g(irr, irc, icc)?;
        let (g1s, g2s, ts) = sheared_g1g2t(g1, g2, t, s1, s2);
        g2mom(g1s, g2s, ts)
    })();
    res.unwrap_or((f64::NAN, f64::NAN, f64::NAN))
}
