//! Pixel kernels: rendering, log-likelihood, S/N sums and weighted residuals.
//!
//! Every kernel works on a row-major stamp of `nrow × ncol` pixels. The model value at pixel
//! `(row, col)` is
//!
//! ```text
//! model(row, col) = Σ_k  pnorm_k · exp(-chi2_k / 2) · area      (v, u) = jac.vu(row, col)
//! ```
//!
//! point-sampled at the pixel centre (no pixel integration), with the cut-off of the
//! evaluation [`Policy`]: [`ExactExp`] (none), [`V1Fast`] (hard cut `0 <= chi2 < 25`, the
//! fitting policy of ngmixer / ngmix v1.3.5) or [`V2Fast`] (ngmix 2.4.2: `exp5_smooth` with the
//! apodized window). The policy is a type parameter: kernels are monomorphized over it.
//!
//! Pixels with `weight <= 0` are skipped by the likelihood kernels, exactly as ngmix's pixel
//! list drops them; `npix` counts the others.
//!
//! # Implementations
//!
//! * the **scalar oracle** ([`Kernels::scalar`]): ngmix's per-pixel loop, transcribed;
//! * the **fast kernel**, one generic implementation (see the `fast` module docs: blocks of 4
//!   rows in vector lanes, analytic chi² windows, a multiplicative exp recurrence for V1),
//!   compiled twice: portably ([`Kernels::portable`]) and with AVX2+FMA on x86_64
//!   ([`Kernels::avx2_fma`]).
//!
//! [`Kernels::detect`] picks the best once; the free functions ([`render`], [`loglike`], ...)
//! use that choice (detected on first use).
//!
//! Accuracy of the fast kernels against the oracle, per Gaussian value: V1Fast and ExactExp
//! ≲ 1e-13 relative (the oracle uses libm exp); V2Fast ≲ 1e-15 relative (same `exp5_smooth`).
//! V1's hard cut selects exactly the oracle's pixels. One deliberate difference: ngmix's
//! `chi2 >= 0` test only guards against rounding (chi² of a valid Gaussian is never negative),
//! and the fast kernels do not reproduce the sign of a rounded chi² of ~0; they evaluate such
//! a pixel as chi² = 0.
//!
//! # Errors
//!
//! Shape problems (a zero `ncol` with pixels, a length not a multiple of `ncol`, image and weight
//! lengths that differ, an output of the wrong length) are [`GMixError::Fatal`].

mod fast;
mod policy;
mod scalar;

pub use policy::{ExactExp, Policy, V1Fast, V2Fast};

use crate::error::{GMixError, GResult};
use crate::gmix::{GMix, Jacobian};
use std::sync::OnceLock;

/// Log-likelihood and S/N sums over the used pixels (ngmix `get_loglike`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogLike {
    /// `-0.5 Σ (model - data)² w`.
    pub loglike: f64,
    /// `Σ data · model · w`.
    pub s2n_numer: f64,
    /// `Σ model² · w`.
    pub s2n_denom: f64,
    /// Number of pixels with `weight > 0`.
    pub npix: usize,
}

impl LogLike {
    /// `chi² = -2 loglike`.
    pub fn chi2(&self) -> f64 {
        -2.0 * self.loglike
    }

    /// `s2n_w = s2n_numer / sqrt(s2n_denom)` (0 when the denominator is not positive).
    pub fn s2n_w(&self) -> f64 {
        if self.s2n_denom > 0.0 {
            self.s2n_numer / self.s2n_denom.sqrt()
        } else {
            0.0
        }
    }
}

/// Number of rows of an `image`/`weight` pair, checking the shapes.
fn check_pair(image: &[f64], weight: &[f64], ncol: usize) -> GResult<usize> {
    if image.len() != weight.len() {
        return Err(GMixError::Fatal("kernels: image and weight lengths differ"));
    }
    check_len(image.len(), ncol)
}

fn check_len(len: usize, ncol: usize) -> GResult<usize> {
    if ncol == 0 {
        return if len == 0 {
            Ok(0)
        } else {
            Err(GMixError::Fatal("kernels: ncol is 0"))
        };
    }
    if !len.is_multiple_of(ncol) {
        return Err(GMixError::Fatal(
            "kernels: length is not a multiple of ncol",
        ));
    }
    Ok(len / ncol)
}

fn check_render(nrow: usize, ncol: usize, out: &[f64]) -> GResult<()> {
    match nrow.checked_mul(ncol) {
        Some(n) if n == out.len() => Ok(()),
        _ => Err(GMixError::Fatal(
            "kernels: output length is not nrow * ncol",
        )),
    }
}

fn count_used(weight: &[f64]) -> usize {
    weight.iter().filter(|&&w| !(w <= 0.0)).count()
}

fn check_fdiff(image: &[f64], weight: &[f64], ncol: usize, out: &[f64]) -> GResult<()> {
    check_pair(image, weight, ncol)?;
    if out.len() < count_used(weight) {
        return Err(GMixError::Fatal(
            "kernels: fdiff output shorter than the used pixels",
        ));
    }
    Ok(())
}

/// Which implementation a [`Kernels`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

/// A kernel implementation chosen once (at run time) and then used for every call.
///
/// Its methods mirror the free functions of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    isa: Isa,
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The fast kernels compiled with AVX2 and FMA. Callers must have checked that the CPU
    //! has both features.
    use super::fast::{self, Fused};
    use super::{LogLike, Policy};
    use crate::gmix::{GMix, Jacobian};

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn render<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        nrow: usize,
        ncol: usize,
        out: &mut [f64],
        add: bool,
    ) {
        fast::render::<P, Fused>(gmix, jac, nrow, ncol, out, add)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn loglike<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        image: &[f64],
        weight: &[f64],
        ncol: usize,
    ) -> LogLike {
        fast::loglike::<P, Fused>(gmix, jac, image, weight, ncol)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn fill_fdiff<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        image: &[f64],
        weight: &[f64],
        ncol: usize,
        out: &mut [f64],
    ) -> usize {
        fast::fill_fdiff::<P, Fused>(gmix, jac, image, weight, ncol, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn model_s2n_sum<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        weight: &[f64],
        ncol: usize,
    ) -> f64 {
        fast::model_s2n_sum::<P, Fused>(gmix, jac, weight, ncol)
    }
}

mod portable {
    //! The fast kernels compiled for the baseline target.
    use super::fast::{self, Plain};
    use super::{LogLike, Policy};
    use crate::gmix::{GMix, Jacobian};

    pub(super) fn render<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        nrow: usize,
        ncol: usize,
        out: &mut [f64],
        add: bool,
    ) {
        fast::render::<P, Plain>(gmix, jac, nrow, ncol, out, add)
    }

    pub(super) fn loglike<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        image: &[f64],
        weight: &[f64],
        ncol: usize,
    ) -> LogLike {
        fast::loglike::<P, Plain>(gmix, jac, image, weight, ncol)
    }

    pub(super) fn fill_fdiff<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        image: &[f64],
        weight: &[f64],
        ncol: usize,
        out: &mut [f64],
    ) -> usize {
        fast::fill_fdiff::<P, Plain>(gmix, jac, image, weight, ncol, out)
    }

    pub(super) fn model_s2n_sum<P: Policy>(
        gmix: &GMix,
        jac: &Jacobian,
        weight: &[f64],
        ncol: usize,
    ) -> f64 {
        fast::model_s2n_sum::<P, Plain>(gmix, jac, weight, ncol)
    }
}

/// Run `$call` on the implementation selected by `$isa` (`$m` names the module).
macro_rules! dispatch {
    ($isa:expr, $m:ident => $call:expr) => {
        match $isa {
            Isa::Scalar => {
                use scalar as $m;
                $call
            }
            Isa::Portable => {
                use portable as $m;
                $call
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                use avx2 as $m;
                // SAFETY: `Isa::Avx2Fma` is only constructed by `Kernels::avx2_fma` after
                // `is_x86_feature_detected!` confirmed AVX2 and FMA on this CPU.
                #[allow(unused_unsafe)]
                unsafe {
                    $call
                }
            }
        }
    };
}

impl Kernels {
    /// The fastest implementation this CPU supports (AVX2+FMA on x86_64 when available, else
    /// the portable fast kernel).
    pub fn detect() -> Self {
        Self::avx2_fma().unwrap_or_else(Self::portable)
    }

    /// The scalar oracle (ngmix's loops, transcribed; slow).
    pub fn scalar() -> Self {
        Kernels { isa: Isa::Scalar }
    }

    /// The fast kernel compiled for the baseline target (no run-time feature needed).
    pub fn portable() -> Self {
        Kernels { isa: Isa::Portable }
    }

    /// The fast kernel compiled with AVX2 and FMA, when this CPU has both.
    pub fn avx2_fma() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Some(Kernels { isa: Isa::Avx2Fma });
            }
        }
        None
    }

    /// Every implementation available on this CPU (scalar first).
    pub fn all() -> Vec<Self> {
        let mut v = vec![Self::scalar(), Self::portable()];
        v.extend(Self::avx2_fma());
        v
    }

    /// The implementation the free functions use ([`Kernels::detect`], chosen once).
    pub fn global() -> Self {
        static K: OnceLock<Kernels> = OnceLock::new();
        *K.get_or_init(Kernels::detect)
    }

    /// Name: `"scalar"`, `"portable"` or `"avx2+fma"`.
    pub fn name(&self) -> &'static str {
        match self.isa {
            Isa::Scalar => "scalar",
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma",
        }
    }

    /// Render the mixture into `out` (`nrow × ncol`, row-major), **overwriting** it.
    pub fn render<P: Policy>(
        &self,
        gmix: &GMix,
        jac: &Jacobian,
        nrow: usize,
        ncol: usize,
        out: &mut [f64],
    ) -> GResult<()> {
        check_render(nrow, ncol, out)?;
        dispatch!(self.isa, m => m::render::<P>(gmix, jac, nrow, ncol, out, false));
        Ok(())
    }

    /// Render the mixture **adding** to `out` (`nrow × ncol`, row-major).
    pub fn render_add<P: Policy>(
        &self,
        gmix: &GMix,
        jac: &Jacobian,
        nrow: usize,
        ncol: usize,
        out: &mut [f64],
    ) -> GResult<()> {
        check_render(nrow, ncol, out)?;
        dispatch!(self.isa, m => m::render::<P>(gmix, jac, nrow, ncol, out, true));
        Ok(())
    }

    /// Log-likelihood and S/N sums of the mixture against `image` with inverse variances
    /// `weight` (both row-major with `ncol` columns); pixels with `weight <= 0` are skipped.
    pub fn loglike<P: Policy>(
        &self,
        gmix: &GMix,
        jac: &Jacobian,
        image: &[f64],
        weight: &[f64],
        ncol: usize,
    ) -> GResult<LogLike> {
        check_pair(image, weight, ncol)?;
        Ok(dispatch!(self.isa, m => m::loglike::<P>(gmix, jac, image, weight, ncol)))
    }

    /// Write `(model - data) · sqrt(weight)` of every pixel with `weight > 0`, in row-major
    /// order, to the start of `out`; returns how many were written. `out` must hold at least
    /// that many.
    pub fn fill_fdiff<P: Policy>(
        &self,
        gmix: &GMix,
        jac: &Jacobian,
        image: &[f64],
        weight: &[f64],
        ncol: usize,
        out: &mut [f64],
    ) -> GResult<usize> {
        check_fdiff(image, weight, ncol, out)?;
        Ok(dispatch!(self.isa, m => m::fill_fdiff::<P>(gmix, jac, image, weight, ncol, out)))
    }

    /// `Σ model² · weight` over the pixels with `weight > 0` (the model S/N is its square root).
    pub fn model_s2n_sum<P: Policy>(
        &self,
        gmix: &GMix,
        jac: &Jacobian,
        weight: &[f64],
        ncol: usize,
    ) -> GResult<f64> {
        check_len(weight.len(), ncol)?;
        Ok(dispatch!(self.isa, m => m::model_s2n_sum::<P>(gmix, jac, weight, ncol)))
    }
}

/// [`Kernels::render`] with [`Kernels::global`]: render, overwriting `out`.
pub fn render<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    nrow: usize,
    ncol: usize,
    out: &mut [f64],
) -> GResult<()> {
    Kernels::global().render::<P>(gmix, jac, nrow, ncol, out)
}

/// [`Kernels::render_add`] with [`Kernels::global`]: render, adding to `out`.
pub fn render_add<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    nrow: usize,
    ncol: usize,
    out: &mut [f64],
) -> GResult<()> {
    Kernels::global().render_add::<P>(gmix, jac, nrow, ncol, out)
}

/// [`Kernels::loglike`] with [`Kernels::global`].
pub fn loglike<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
) -> GResult<LogLike> {
    Kernels::global().loglike::<P>(gmix, jac, image, weight, ncol)
}

/// [`Kernels::fill_fdiff`] with [`Kernels::global`].
pub fn fill_fdiff<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    out: &mut [f64],
) -> GResult<usize> {
    Kernels::global().fill_fdiff::<P>(gmix, jac, image, weight, ncol, out)
}

/// [`Kernels::model_s2n_sum`] with [`Kernels::global`].
pub fn model_s2n_sum<P: Policy>(
    gmix: &GMix,
    jac: &Jacobian,
    weight: &[f64],
    ncol: usize,
) -> GResult<f64> {
    Kernels::global().model_s2n_sum::<P>(gmix, jac, weight, ncol)
}
