//! A Levenberg–Marquardt solver, const-generic in the parameter count.
//!
//! The problem supplies the normal equations `JᵀJ`, `Jᵀr` and `χ² = rᵀr` at a point (the pixel
//! kernels accumulate them directly, so the `npix × N` Jacobian is never stored) and `χ²` alone
//! at trial points. Steps solve `(JᵀJ + μ D²) δ = -Jᵀr` by Cholesky, with `D² = diag(JᵀJ)`
//! (kept at its running maximum, as MINPACK's `mode=1` scaling), and μ updated from the gain
//! ratio (Nielsen's rule). Termination follows MINPACK's tests: `ftol` on the actual and
//! predicted relative reduction of `χ²`, `xtol` on the scaled step, `maxfev` on evaluations.
//! The result flags use ngmix's values (`2^(info-5)` for MINPACK infos 5..8, `LM_SINGULAR_MATRIX`,
//! `LM_FUNC_NOTFINITE`).

use crate::error::GResult;

/// MINPACK info 5: too many function evaluations (ngmix flag `2^(5-5)`).
pub const LM_MAXFEV: i32 = 1;
/// ngmix `LM_SINGULAR_MATRIX`.
pub const LM_SINGULAR_MATRIX: i32 = 1 << 4;
/// ngmix `LM_NEG_COV_EIG`.
pub const LM_NEG_COV_EIG: i32 = 1 << 5;
/// ngmix `LM_NEG_COV_DIAG`.
pub const LM_NEG_COV_DIAG: i32 = 1 << 6;
/// ngmix `EIG_NOTFINITE`.
pub const EIG_NOTFINITE: i32 = 1 << 7;
/// ngmix `LM_FUNC_NOTFINITE`.
pub const LM_FUNC_NOTFINITE: i32 = 1 << 8;
/// ngmix `DIV_ZERO`.
pub const DIV_ZERO: i32 = 1 << 9;
/// ngmix `ZERO_DOF`.
pub const ZERO_DOF: i32 = 1 << 10;

/// Parameter default for failed fits (ngmix `PDEF`).
pub const PDEF: f64 = -9.999e9;
/// Covariance default for failed fits (ngmix `CDEF`).
pub const CDEF: f64 = 9.999e9;

/// Solver settings (ngmix `lm_pars`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LmPars {
    /// Maximum number of function evaluations.
    pub maxfev: usize,
    /// Relative tolerance on the sum of squares.
    pub ftol: f64,
    /// Relative tolerance on the solution.
    pub xtol: f64,
}

impl Default for LmPars {
    fn default() -> Self {
        Self {
            maxfev: 4000,
            ftol: 1e-5,
            xtol: 1e-5,
        }
    }
}

/// Normal equations at a point.
#[derive(Debug, Clone, Copy)]
pub struct Normal<const N: usize> {
    /// `JᵀJ`.
    pub jtj: [[f64; N]; N],
    /// `Jᵀr`.
    pub jtr: [f64; N],
    /// `rᵀr` over all rows (priors included).
    pub chi2: f64,
}

impl<const N: usize> Default for Normal<N> {
    fn default() -> Self {
        Self {
            jtj: [[0.0; N]; N],
            jtr: [0.0; N],
            chi2: 0.0,
        }
    }
}

/// A least-squares problem in `N` parameters.
pub trait LeastSquares<const N: usize> {
    /// `χ² = rᵀr` at `x`; a range error when the model cannot be built there.
    fn chi2(&mut self, x: &[f64; N]) -> GResult<f64>;
    /// Normal equations at `x`.
    fn normal(&mut self, x: &[f64; N]) -> GResult<Normal<N>>;
    /// Evaluation at a trial point: `χ²`, and the normal equations there when the problem
    /// computes them at little extra cost (they are then used if the step is accepted,
    /// instead of a call to [`LeastSquares::normal`]). Default: [`LeastSquares::chi2`] only.
    fn trial(&mut self, x: &[f64; N]) -> GResult<(f64, Option<Normal<N>>)> {
        Ok((self.chi2(x)?, None))
    }
}

/// Outcome of [`solve`].
#[derive(Debug, Clone, Copy)]
pub struct LmOutcome<const N: usize> {
    /// 0 or ngmix LM flags.
    pub flags: i32,
    /// MINPACK-like info: 1 ftol, 2 xtol, 3 both, 5 maxfev.
    pub info: i32,
    /// Function (χ²) evaluations.
    pub nfev: usize,
    /// Normal-equation (Jacobian) evaluations.
    pub njev: usize,
    /// Accepted iterations.
    pub niter: usize,
    /// Solution.
    pub pars: [f64; N],
    /// Unscaled covariance `(JᵀJ)⁻¹` at the solution (valid when `flags == 0`).
    pub cov0: [[f64; N]; N],
    /// Final `χ²`.
    pub chi2: f64,
}

/// Cholesky factorisation in place (lower triangle); false if not positive definite.
fn cholesky<const N: usize>(a: &mut [[f64; N]; N]) -> bool {
    for j in 0..N {
        let mut d = a[j][j];
        for k in 0..j {
            d -= a[j][k] * a[j][k];
        }
        if !(d > 0.0) || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..N {
            let mut s = a[i][j];
            for k in 0..j {
                s -= a[i][k] * a[j][k];
            }
            a[i][j] = s / d;
        }
    }
    true
}

fn chol_solve<const N: usize>(l: &[[f64; N]; N], b: &[f64; N]) -> [f64; N] {
    let mut y = [0.0; N];
    for i in 0..N {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i][k] * y[k];
        }
        y[i] = s / l[i][i];
    }
    let mut x = [0.0; N];
    for i in (0..N).rev() {
        let mut s = y[i];
        for k in i + 1..N {
            s -= l[k][i] * x[k];
        }
        x[i] = s / l[i][i];
    }
    x
}

/// Inverse of a symmetric positive-definite matrix, `None` when it is (numerically) singular.
///
/// The matrix is equilibrated by its diagonal first so that parameters of very different
/// scales (arcsec centres and fluxes of 10⁴) do not spoil the factorisation; a pivot below
/// `1e-13` of its diagonal counts as singular (MINPACK's QR rank test plays this role).
pub fn spd_inverse<const N: usize>(a: &[[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut s = [0.0; N];
    for i in 0..N {
        if !(a[i][i] > 0.0) || !a[i][i].is_finite() {
            return None;
        }
        s[i] = 1.0 / a[i][i].sqrt();
    }
    let mut m = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..N {
            m[i][j] = a[i][j] * s[i] * s[j];
        }
    }
    if !cholesky(&mut m) {
        return None;
    }
    for i in 0..N {
        if m[i][i] * m[i][i] < 1e-13 {
            return None;
        }
    }
    let mut inv = [[0.0; N]; N];
    for j in 0..N {
        let mut e = [0.0; N];
        e[j] = 1.0;
        let col = chol_solve(&m, &e);
        for i in 0..N {
            inv[i][j] = col[i] * s[i] * s[j];
        }
    }
    Some(inv)
}

fn norm_scaled<const N: usize>(d: &[f64; N], x: &[f64; N]) -> f64 {
    let mut s = 0.0;
    for i in 0..N {
        s += (d[i] * x[i]) * (d[i] * x[i]);
    }
    s.sqrt()
}

/// Minimise `χ²` from `guess`. A range error at the guess itself is returned as `Err`
/// (ngmix raises there too); range errors at trial points reject the step.
pub fn solve<const N: usize, P: LeastSquares<N>>(
    prob: &mut P,
    guess: &[f64; N],
    pars: &LmPars,
) -> GResult<LmOutcome<N>> {
    let mut x = *guess;
    let mut ne = prob.normal(&x)?;
    let mut nfev = 1usize;
    let mut njev = 1usize;
    let mut niter = 0usize;
    let fail = |flags: i32, info: i32, nfev, njev, niter, x: [f64; N], chi2| LmOutcome {
        flags,
        info,
        nfev,
        njev,
        niter,
        pars: x,
        cov0: [[CDEF; N]; N],
        chi2,
    };
    if !ne.chi2.is_finite() {
        return Ok(fail(
            LM_FUNC_NOTFINITE,
            0,
            nfev,
            njev,
            niter,
            [PDEF; N],
            ne.chi2,
        ));
    }

    // scaling: running maximum of sqrt(diag(JᵀJ))
    let mut dscale = [0.0; N];
    let update_scale = |dscale: &mut [f64; N], ne: &Normal<N>| {
        for i in 0..N {
            let d = ne.jtj[i][i].max(0.0).sqrt();
            if d > dscale[i] {
                dscale[i] = d;
            }
            if dscale[i] == 0.0 {
                dscale[i] = 1.0;
            }
        }
    };
    update_scale(&mut dscale, &ne);

    let mut mu = 1e-3;
    let mut nu = 2.0;
    let info;
    loop {
        // damped step
        let mut a = ne.jtj;
        for i in 0..N {
            a[i][i] += mu * dscale[i] * dscale[i];
        }
        let mut neg_g = [0.0; N];
        for i in 0..N {
            neg_g[i] = -ne.jtr[i];
        }
        if !cholesky(&mut a) {
            mu *= nu;
            nu *= 2.0;
            if mu > 1e300 {
                info = 2;
                break;
            }
            continue;
        }
        let step = chol_solve(&a, &neg_g);
        let mut xn = x;
        for i in 0..N {
            xn[i] += step[i];
        }
        let pnorm = norm_scaled(&dscale, &step);
        let xnorm = norm_scaled(&dscale, &xn);

        if nfev >= pars.maxfev {
            info = 5;
            break;
        }
        nfev += 1;
        let (chi2_new, at_trial) = prob.trial(&xn).unwrap_or((f64::INFINITY, None));
        // predicted reduction: χ² - |r + Jδ|² = -(2 δ·Jᵀr + δᵀ JᵀJ δ)
        let mut q = 0.0;
        let mut gd = 0.0;
        for i in 0..N {
            gd += step[i] * ne.jtr[i];
            let mut row = 0.0;
            for j in 0..N {
                row += ne.jtj[i][j] * step[j];
            }
            q += step[i] * row;
        }
        let pred = -(2.0 * gd + q);
        let actual = ne.chi2 - chi2_new;
        let rho = if pred > 0.0 { actual / pred } else { -1.0 };

        if chi2_new.is_finite() && rho > 1e-4 {
            let chi2_old = ne.chi2;
            x = xn;
            niter += 1;
            let next = match at_trial {
                Some(n) => Ok(n),
                None => prob.normal(&x),
            };
            ne = match next {
                Ok(n) => n,
                Err(_) => {
                    // cannot happen for a point whose χ² was finite; be safe anyway
                    info = 2;
                    break;
                }
            };
            njev += 1;
            update_scale(&mut dscale, &ne);
            let ftol_ok = chi2_old > 0.0
                && actual.abs() <= pars.ftol * chi2_old
                && pred <= pars.ftol * chi2_old
                && rho <= 2.0;
            let xtol_ok = pnorm <= pars.xtol * xnorm;
            if ftol_ok || xtol_ok {
                info = i32::from(ftol_ok) + 2 * i32::from(xtol_ok);
                break;
            }
            let t = 2.0 * rho - 1.0;
            mu *= (1.0f64 / 3.0).max(1.0 - t * t * t);
            nu = 2.0;
        } else {
            if pnorm <= pars.xtol * norm_scaled(&dscale, &x) {
                info = 2;
                break;
            }
            mu *= nu;
            nu *= 2.0;
        }
    }

    if info == 5 {
        return Ok(fail(LM_MAXFEV, info, nfev, njev, niter, [PDEF; N], ne.chi2));
    }
    if !ne.chi2.is_finite() {
        return Ok(fail(
            LM_FUNC_NOTFINITE,
            info,
            nfev,
            njev,
            niter,
            [PDEF; N],
            ne.chi2,
        ));
    }
    match spd_inverse(&ne.jtj) {
        Some(cov0) => Ok(LmOutcome {
            flags: 0,
            info,
            nfev,
            njev,
            niter,
            pars: x,
            cov0,
            chi2: ne.chi2,
        }),
        None => Ok(fail(
            LM_SINGULAR_MATRIX,
            info,
            nfev,
            njev,
            niter,
            x,
            ne.chi2,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock as least squares: r = [10 (y - x²), 1 - x]; minimum at (1, 1).
    struct Rosen;
    impl LeastSquares<2> for Rosen {
        fn chi2(&mut self, p: &[f64; 2]) -> GResult<f64> {
            let r0 = 10.0 * (p[1] - p[0] * p[0]);
            let r1 = 1.0 - p[0];
            Ok(r0 * r0 + r1 * r1)
        }
        fn normal(&mut self, p: &[f64; 2]) -> GResult<Normal<2>> {
            let r = [10.0 * (p[1] - p[0] * p[0]), 1.0 - p[0]];
            let j = [[-20.0 * p[0], 10.0], [-1.0, 0.0]];
            let mut n = Normal::<2>::default();
            for k in 0..2 {
                for a in 0..2 {
                    n.jtr[a] += j[k][a] * r[k];
                    for b in 0..2 {
                        n.jtj[a][b] += j[k][a] * j[k][b];
                    }
                }
                n.chi2 += r[k] * r[k];
            }
            Ok(n)
        }
    }

    #[test]
    fn rosenbrock_converges() {
        let out = solve(
            &mut Rosen,
            &[-1.2, 1.0],
            &LmPars {
                maxfev: 1000,
                ftol: 1e-12,
                xtol: 1e-12,
            },
        )
        .unwrap();
        assert_eq!(out.flags, 0);
        assert!(
            (out.pars[0] - 1.0).abs() < 1e-6 && (out.pars[1] - 1.0).abs() < 1e-6,
            "{:?}",
            out.pars
        );
    }

    #[test]
    fn maxfev_flag() {
        let out = solve(
            &mut Rosen,
            &[-1.2, 1.0],
            &LmPars {
                maxfev: 3,
                ftol: 1e-15,
                xtol: 1e-15,
            },
        )
        .unwrap();
        assert_eq!(out.flags, LM_MAXFEV);
        assert_eq!(out.pars, [PDEF; 2]);
    }

    #[test]
    fn inverse_of_spd() {
        let a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let inv = spd_inverse(&a).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let mut s = 0.0;
                for k in 0..3 {
                    s += a[i][k] * inv[k][j];
                }
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
        assert!(spd_inverse(&[[1.0, 1.0], [1.0, 1.0]]).is_none());
    }
}
