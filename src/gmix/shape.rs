//! Shape maths: reduced shear g, distortion e, conformal eta; shear composition and rotation.

use crate::error::{GMixError, GResult};

const E_MAX: f64 = 0.99999999;

/// Reduced shear `g` to distortion `e` (|e| = tanh(2 atanh |g|)); range error for |g| >= 1.
#[inline]
pub fn g1g2_to_e1e2(g1: f64, g2: f64) -> GResult<(f64, f64)> {
    let g = (g1 * g1 + g2 * g2).sqrt();
    if g.is_nan() || g >= 1.0 {
        return Err(GMixError::Range("g >= 1"));
    }
    if g == 0.0 {
        return Ok((0.0, 0.0));
    }
    let mut e = (2.0 * g.atanh()).tanh();
    if e >= 1.0 {
        e = E_MAX;
    }
    let fac = e / g;
    Ok((fac * g1, fac * g2))
}

/// Distortion `e` to reduced shear `g`; range error for |e| >= 1.
#[inline]
pub fn e1e2_to_g1g2(e1: f64, e2: f64) -> GResult<(f64, f64)> {
    let e = (e1 * e1 + e2 * e2).sqrt();
    if e.is_nan() || e >= 1.0 {
        return Err(GMixError::Range("e >= 1"));
    }
    if e == 0.0 {
        return Ok((0.0, 0.0));
    }
    let mut g = (0.5 * e.atanh()).tanh();
    if g >= 1.0 {
        g = E_MAX;
    }
    let fac = g / e;
    Ok((fac * e1, fac * e2))
}

/// Reduced shear to conformal shear eta (|eta| = 2 atanh |g|).
pub fn g1g2_to_eta1eta2(g1: f64, g2: f64) -> GResult<(f64, f64)> {
    let g = (g1 * g1 + g2 * g2).sqrt();
    if g.is_nan() || g >= 1.0 {
        return Err(GMixError::Range("g >= 1 converting to eta"));
    }
    if g == 0.0 {
        return Ok((0.0, 0.0));
    }
    let fac = 2.0 * g.atanh() / g;
    Ok((fac * g1, fac * g2))
}

/// Distortion to eta (|eta| = atanh |e|).
pub fn e1e2_to_eta1eta2(e1: f64, e2: f64) -> GResult<(f64, f64)> {
    let e = (e1 * e1 + e2 * e2).sqrt();
    if e.is_nan() || e >= 1.0 {
        return Err(GMixError::Range("e >= 1"));
    }
    if e == 0.0 {
        return Ok((0.0, 0.0));
    }
    let fac = e.atanh() / e;
    Ok((fac * e1, fac * e2))
}

/// Eta to reduced shear (|g| = tanh(|eta|/2)); range error for non-finite eta.
pub fn eta1eta2_to_g1g2(eta1: f64, eta2: f64) -> GResult<(f64, f64)> {
    let eta = (eta1 * eta1 + eta2 * eta2).sqrt();
    let g = (0.5 * eta).tanh();
    if g.is_nan() || g >= 1.0 {
        return Err(GMixError::Range("g >= 1 from eta"));
    }
    if eta == 0.0 {
        return Ok((0.0, 0.0));
    }
    let fac = g / eta;
    Ok((fac * eta1, fac * eta2))
}

/// Reduced-shear addition: shape `g` sheared by `s`.
#[inline]
pub fn shear_reduced(g1: f64, g2: f64, s1: f64, s2: f64) -> (f64, f64) {
    let a = 1.0 + g1 * s1 + g2 * s2;
    let b = g2 * s1 - g1 * s2;
    let denom_inv = 1.0 / (a * a + b * b);
    (
        (a * (g1 + s1) + b * (g2 + s2)) * denom_inv,
        (a * (g2 + s2) - b * (g1 + s1)) * denom_inv,
    )
}

/// Jacobian `|d g_s / d g_o|` of the shear transformation (shear applied negative).
#[inline]
pub fn dgs_by_dgo_jacob(g1: f64, g2: f64, s1: f64, s2: f64) -> f64 {
    let ssq = s1 * s1 + s2 * s2;
    let num = (ssq - 1.0) * (ssq - 1.0);
    let d = 1.0 + 2.0 * g1 * s1 + 2.0 * g2 * s2 + g1 * g1 * ssq + g2 * g2 * ssq;
    num / (d * d)
}

/// `T_round / T = (1 - g²) / (1 + g²)`.
#[inline]
pub fn round_factor(g1: f64, g2: f64) -> f64 {
    let gsq = g1 * g1 + g2 * g2;
    (1.0 - gsq) / (1.0 + gsq)
}

/// Rotate a spin-2 shape by `theta` radians.
#[inline]
pub fn rotate_shape(g1: f64, g2: f64, theta: f64) -> (f64, f64) {
    let (s, c) = (2.0 * theta).sin_cos();
    (g1 * c + g2 * s, -g1 * s + g2 * c)
}

/// A reduced-shear shape with |g| < 1 (ngmix `Shape`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// First component.
    pub g1: f64,
    /// Second component.
    pub g2: f64,
}

impl Shape {
    /// Validate |g| < 1.
    pub fn new(g1: f64, g2: f64) -> GResult<Self> {
        let g = (g1 * g1 + g2 * g2).sqrt();
        if g.is_nan() || g >= 1.0 {
            return Err(GMixError::Range("g out of range"));
        }
        Ok(Self { g1, g2 })
    }

    /// This shape sheared by `s`.
    pub fn sheared(&self, s1: f64, s2: f64) -> GResult<Self> {
        let (g1, g2) = shear_reduced(self.g1, self.g2, s1, s2);
        Self::new(g1, g2)
    }

    /// This shape rotated by `theta` radians.
    pub fn rotated(&self, theta: f64) -> GResult<Self> {
        let (g1, g2) = rotate_shape(self.g1, self.g2, theta);
        Self::new(g1, g2)
    }
}
