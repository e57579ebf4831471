//! Evaluation policies: how one Gaussian is evaluated at a pixel.
//!
//! A policy is a zero-sized marker type; every kernel is monomorphized over it, so the choice
//! costs nothing at run time.

use crate::gmix::fastexp::{apodize, exp5_smooth, APOD_CHI2, MAX_CHI2};

pub(crate) mod sealed {
    /// The fast algorithm a policy maps to (internal).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Method {
        /// Accurate exp on every pixel, no cut-off.
        Exact,
        /// Accurate exp, hard cut `0 <= chi2 < 25`.
        HardCut,
        /// `exp5_smooth` with the apodized window `20 < chi2 < 25`.
        Apodized,
    }

    /// Seals [`super::Policy`]; carries the internal algorithm choice.
    pub trait Sealed {
        /// The algorithm.
        const METHOD: Method;
    }
}

use sealed::Method;

/// How a Gaussian is evaluated at one pixel (the semantics every kernel implements).
///
/// Implemented by [`ExactExp`], [`V1Fast`] and [`V2Fast`] only (sealed).
pub trait Policy:
    sealed::Sealed + Copy + Default + std::fmt::Debug + Send + Sync + 'static
{
    /// Short name (`"exact"`, `"v1fast"`, `"v2fast"`).
    const NAME: &'static str;

    /// Value of one Gaussian at a pixel, with the policy's cut-off: the reference semantics of
    /// the scalar oracle. `pnorm` is `p / (2π sqrt(det))`, `chi2` the Gaussian's chi² of the
    /// pixel centre, `area` the pixel area.
    fn gauss_value(pnorm: f64, chi2: f64, area: f64) -> f64;
}

/// `GMix.make_image` default of ngmix: libm exp on every pixel, no cut-off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExactExp;

/// ngmix v1.3.5 as ngmixer ran it: accurate exp (v1.3.5's fmath `expd` is exact to
/// ~1e-15), evaluated only where `0 <= chi2 < 25` (hard cut). The policy fits use for
/// end-to-end parity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V1Fast;

/// ngmix 2.4.2: `exp5_smooth` (relative error <= ~2e-6), multiplied by the quintic
/// apodization window for `20 < chi2 < 25`, zero outside `[0, 25)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V2Fast;

impl sealed::Sealed for ExactExp {
    const METHOD: Method = Method::Exact;
}
impl sealed::Sealed for V1Fast {
    const METHOD: Method = Method::HardCut;
}
impl sealed::Sealed for V2Fast {
    const METHOD: Method = Method::Apodized;
}

impl Policy for ExactExp {
    const NAME: &'static str = "exact";
    #[inline(always)]
    fn gauss_value(pnorm: f64, chi2: f64, area: f64) -> f64 {
        pnorm * (-0.5 * chi2).exp() * area
    }
}

impl Policy for V1Fast {
    const NAME: &'static str = "v1fast";
    #[inline(always)]
    fn gauss_value(pnorm: f64, chi2: f64, area: f64) -> f64 {
        if (0.0..MAX_CHI2).contains(&chi2) {
            pnorm * (-0.5 * chi2).exp() * area
        } else {
            0.0
        }
    }
}

impl Policy for V2Fast {
    const NAME: &'static str = "v2fast";
    #[inline(always)]
    fn gauss_value(pnorm: f64, chi2: f64, area: f64) -> f64 {
        if (0.0..MAX_CHI2).contains(&chi2) {
            let v = pnorm * exp5_smooth(-0.5 * chi2) * area;
            if chi2 > APOD_CHI2 {
                v * apodize(chi2)
            } else {
                v
            }
        } else {
            0.0
        }
    }
}
