//! The fast fitting kernel for the V1 evaluation (accurate exp, hard cut `0 <= χ² < 25`).
//!
//! Written once, generic over the arithmetic backend `M` (fused multiply-add or plain
//! operations), and compiled twice: for the baseline target and with AVX2+FMA (see the
//! dispatch in the parent module).
//!
//! # Algorithm
//!
//! The stamp is processed row by row; a row is processed Gaussian by Gaussian, in chunks of
//! [`W`] consecutive columns held in vector lanes.
//!
//! * **Windows.** Along a row χ² is a quadratic in the column. The columns where the oracle
//!   evaluates a Gaussian (`χ² < 25`) are found from the same quadratic the oracle solves: the
//!   window is `[ceil(c₀), floor(c₁)]` of its roots, clipped to the oracle's padded window.
//!   When a root lies within rounding distance of an integer (or the quadratic is nearly
//!   tangent to 25), the ends are decided by scanning the oracle's padded window with the
//!   oracle's own χ² formula, so the hard cut selects exactly the oracle's pixels.
//! * **Values.** At the first chunk of a window the four lanes are seeded with an accurate
//!   vectorised exp: `e_i = pn·exp(-χ²(c+i)/2)` and the four-column ratio
//!   `R_i = e(c+i+4)/e(c+i)`. Each further chunk is `e ← e·R`, `R ← R·exp(-16A)` (`A` the
//!   curvature of χ² per column²), re-seeded exactly every [`SEGMENT`] chunks. Inside a window
//!   `e ≥ pn·e^{-12.5}` and `R ≤ e^{12.5}`, so nothing under- or overflows; lanes past the
//!   window end are masked.
//! * **Derivatives.** With `a = Σ⁻¹(v − v₀, u − u₀)` (linear along the row) the row buffers
//!   accumulate, per pixel, `u = (ΣG a_v, ΣG a_u, Σ sG(a_v² − d_cc), Σ sG(a_v a_u + d_rc),
//!   Σ sG(a_u² − d_rr), ΣG)` with `s = T_k/(2T)`. Every component shares the chain-rule
//!   coefficients from `(g1, g2, T)` to the object covariance up to the factor `s`, so the
//!   Jacobian row at a pixel is a fixed linear map `J = T u` (flux scaling included).
//! * **Sums.** Per pixel `Σ w u uᵀ` (21 entries), `Σ w u (m − d)`, χ² and the S/N sums are
//!   accumulated lane-wise; the map `T` is applied once at the end:
//!   `JᵀJ = T (Σ w u uᵀ) Tᵀ`, `Jᵀr = T Σ w u r`.
//!
//! Cost per Gaussian·pixel: about 17 lane operations for the normal equations, 3 for the χ²
//! pass; per pixel about 45 lane operations for the sums.

use super::{Accum, KGauss};
use crate::gmix::fastexp::MAX_CHI2;
use crate::gmix::Jacobian;

/// Arithmetic backend.
pub(super) trait Arith: Copy + 'static {
    /// `a * b + c` (fused or not).
    fn fma(a: f64, b: f64, c: f64) -> f64;
}

/// Plain operations only (any target).
#[derive(Debug, Clone, Copy)]
pub(super) struct Plain;

/// Fused multiply-add: only inside functions compiled with FMA.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct Fused;

impl Arith for Plain {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

impl Arith for Fused {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

/// Lanes (columns per chunk).
pub(super) const W: usize = 4;
type V = [f64; W];
/// Chunks between two exact re-seedings of the recurrence.
const SEGMENT: usize = 24;
/// Row buffers (`m`, `ΣG a_v`, `ΣG a_u`, three shape sums).
const NBUF: usize = 6;
const LANE_OFS: V = [0.0, 1.0, 2.0, 3.0];

/// Accurate exp (Cody–Waite reduction by ln 2, degree-13 Taylor polynomial, `2^n` from the
/// exponent bits) of `x` clamped to `[-700, 700]`; relative error ~1e-16, branch-free.
#[inline(always)]
fn exp_lane<M: Arith>(x: f64) -> f64 {
    crate::gmix::fastexp::exp_lane_with(x, M::fma)
}

/// Per-call constants of one Gaussian.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FGauss {
    row: f64,
    col: f64,
    drr: f64,
    drc: f64,
    dcc: f64,
    pn: f64,
    /// `T_k / (2T)`.
    s: f64,
    /// Curvature of χ² per column² (the oracle's `a`).
    a: f64,
    /// `d a_v / d col`, `d a_u / d col`.
    dav: f64,
    dau: f64,
    /// `exp(-16 a)`: growth factor of the four-column ratio per chunk.
    kap: f64,
    /// `exp(-8 a)`.
    e8a: f64,
}

/// Seeds of one Gaussian on one row.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seed {
    /// Index of the Gaussian.
    k: usize,
    /// First column of the window.
    lo: usize,
    /// Number of columns of the window.
    n: usize,
    /// Values at columns `lo..lo+W`.
    e: V,
    /// Four-column ratios at columns `lo..lo+W`.
    r: V,
    /// `a_v`, `a_u` at column `lo`.
    av: f64,
    au: f64,
}

/// Reusable buffers of the fast kernel.
#[derive(Debug, Default, Clone)]
pub(super) struct FastScratch {
    fg: Vec<FGauss>,
    seeds: Vec<Seed>,
    rows: Vec<f64>,
}

/// Lane-wise sums over the pixels.
#[derive(Debug, Clone, Copy)]
struct Sums {
    /// `Σ w u_p u_q`, upper triangle, row by row.
    s: [V; 21],
    /// `Σ w u_p (m − d)`.
    r: [V; 6],
    chi2: V,
    sn: V,
    sd: V,
    npix: V,
}

impl Default for Sums {
    fn default() -> Self {
        Sums {
            s: [[0.0; W]; 21],
            r: [[0.0; W]; 6],
            chi2: [0.0; W],
            sn: [0.0; W],
            sd: [0.0; W],
            npix: [0.0; W],
        }
    }
}

#[inline(always)]
fn lane_sum(v: &V) -> f64 {
    (v[0] + v[1]) + (v[2] + v[3])
}

/// Row geometry: `(v, u)` of column 0 relative to nothing; the per-Gaussian offsets follow.
#[derive(Debug, Clone, Copy)]
struct RowGeo {
    v0: f64,
    u0: f64,
    dvdc: f64,
    dudc: f64,
}

/// The oracle's χ² at column `cf` (its exact arithmetic: `DERIV` selects its formula).
#[inline(always)]
fn oracle_chi2<const DERIV: bool>(g: &FGauss, vd0: f64, ud0: f64, geo: &RowGeo, cf: f64) -> f64 {
    let vd = vd0 + geo.dvdc * cf;
    let ud = ud0 + geo.dudc * cf;
    if DERIV {
        let av = g.dcc * vd - g.drc * ud;
        let au = g.drr * ud - g.drc * vd;
        vd * av + ud * au
    } else {
        g.dcc * vd * vd + g.drr * ud * ud - 2.0 * g.drc * vd * ud
    }
}

/// Exact window `[lo, hi]` (inclusive) of a row: the columns of the oracle's padded window
/// `[lo_o, hi_o)` where the oracle's χ² is in `[0, 25)`.
#[cold]
#[inline(never)]
fn scan_window<const DERIV: bool>(
    g: &FGauss,
    vd0: f64,
    ud0: f64,
    geo: &RowGeo,
    lo_o: usize,
    hi_o: usize,
) -> Option<(usize, usize)> {
    let inside = |c: usize| {
        let chi2 = oracle_chi2::<DERIV>(g, vd0, ud0, geo, c as f64);
        (0.0..MAX_CHI2).contains(&chi2)
    };
    let lo = (lo_o..hi_o).find(|&c| inside(c))?;
    let hi = (lo..hi_o).rev().find(|&c| inside(c))?;
    Some((lo, hi))
}

/// The window of Gaussian `g` on a row, `None` when empty.
#[inline(always)]
fn row_window<const DERIV: bool>(
    g: &FGauss,
    vd0: f64,
    ud0: f64,
    geo: &RowGeo,
    ncol: usize,
) -> Option<(usize, usize)> {
    // the oracle's quadratic and padded window, with its arithmetic
    let (dvdc, dudc) = (geo.dvdc, geo.dudc);
    let a = g.a;
    let b = 2.0 * (g.dcc * vd0 * dvdc + g.drr * ud0 * dudc - g.drc * (vd0 * dudc + ud0 * dvdc));
    let q = g.dcc * vd0 * vd0 + g.drr * ud0 * ud0 - 2.0 * g.drc * vd0 * ud0;
    let disc = b * b - 4.0 * a * (q - MAX_CHI2);
    if !(disc > 0.0) || !(a > 0.0) {
        return None;
    }
    let sd = disc.sqrt();
    let c0 = (-b - sd) / (2.0 * a);
    let c1 = (-b + sd) / (2.0 * a);
    let ncolf = ncol as f64;
    let lo_o = (c0.floor() - 1.0).max(0.0);
    let hi_o = (c1.ceil() + 2.0).min(ncolf);
    if hi_o <= lo_o {
        return None;
    }
    // rounding budget of χ² on this row (the oracle's formula and the roots)
    let span = ncolf + 2.0;
    let tol = 1e-10 * (q.abs() + MAX_CHI2 + b.abs() * span + a * span * span);
    let near0 = (c0 - c0.round()).abs() * sd <= tol;
    let near1 = (c1 - c1.round()).abs() * sd <= tol;
    let tangent = disc <= 1e-9 * (b * b + 4.0 * a * (q.abs() + MAX_CHI2));
    if near0 || near1 || tangent {
        return scan_window::<DERIV>(g, vd0, ud0, geo, lo_o as usize, hi_o as usize);
    }
    let lo = c0.ceil().max(lo_o);
    let hi = c1.floor().min(hi_o - 1.0);
    if hi < lo {
        return None;
    }
    Some((lo as usize, hi as usize))
}

/// Exact seeds at column `c`: values and four-column ratios of the lanes, `a_v`, `a_u` at `c`.
#[inline(always)]
fn seed_at<M: Arith>(g: &FGauss, vd0: f64, ud0: f64, geo: &RowGeo, c: f64) -> (V, V, f64, f64) {
    let mut e = [0.0; W];
    let mut r = [0.0; W];
    for i in 0..W {
        let cf = c + LANE_OFS[i];
        let vd = M::fma(geo.dvdc, cf, vd0);
        let ud = M::fma(geo.dudc, cf, ud0);
        let av = g.dcc * vd - g.drc * ud;
        let au = g.drr * ud - g.drc * vd;
        let chi2 = vd * av + ud * au;
        // d χ²/d col = 2 (vd·dav + ud·dau); χ²(c+4) − χ²(c) = 4 slope + 16 a
        let slope = 2.0 * M::fma(vd, g.dav, ud * g.dau);
        e[i] = g.pn * exp_lane::<M>(-0.5 * chi2);
        r[i] = g.e8a * exp_lane::<M>(-2.0 * slope);
    }
    let vd = M::fma(geo.dvdc, c, vd0);
    let ud = M::fma(geo.dudc, c, ud0);
    (e, r, g.dcc * vd - g.drc * ud, g.drr * ud - g.drc * vd)
}

/// Add one chunk of Gaussian `g` at the lanes `t` (column offsets from the `a_v`, `a_u`
/// origin) into the row buffers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn add_chunk<M: Arith, const DERIV: bool>(
    g: &FGauss,
    ev: &V,
    av0: f64,
    au0: f64,
    t: &V,
    bufs: &mut [&mut [f64]; NBUF],
    at: usize,
) {
    let [bm, bv, bu, brr, brc, bcc] = bufs;
    let m: &mut V = (&mut bm[at..at + W]).try_into().expect("chunk");
    for i in 0..W {
        m[i] += ev[i];
    }
    if DERIV {
        let sv: &mut V = (&mut bv[at..at + W]).try_into().expect("chunk");
        let su: &mut V = (&mut bu[at..at + W]).try_into().expect("chunk");
        let rr: &mut V = (&mut brr[at..at + W]).try_into().expect("chunk");
        let rc: &mut V = (&mut brc[at..at + W]).try_into().expect("chunk");
        let cc: &mut V = (&mut bcc[at..at + W]).try_into().expect("chunk");
        for i in 0..W {
            let gv = ev[i];
            let av = M::fma(g.dav, t[i], av0);
            let au = M::fma(g.dau, t[i], au0);
            sv[i] = M::fma(gv, av, sv[i]);
            su[i] = M::fma(gv, au, su[i]);
            let gh = gv * g.s;
            rr[i] = M::fma(gh, M::fma(av, av, -g.dcc), rr[i]);
            rc[i] = M::fma(gh, M::fma(av, au, g.drc), rc[i]);
            cc[i] = M::fma(gh, M::fma(au, au, -g.drr), cc[i]);
        }
    }
}

/// Walk one Gaussian over its window on a row.
#[inline(always)]
fn walk<M: Arith, const DERIV: bool>(
    g: &FGauss,
    sd: &Seed,
    vd0: f64,
    ud0: f64,
    geo: &RowGeo,
    bufs: &mut [&mut [f64]; NBUF],
) {
    let last = sd.n.div_ceil(W) - 1;
    let (mut e, mut r, mut av0, mut au0) = (sd.e, sd.r, sd.av, sd.au);
    let mut t = LANE_OFS;
    let mut since = 0;
    // every chunk but the last: no mask
    for k in 0..last {
        if since == SEGMENT {
            (e, r, av0, au0) = seed_at::<M>(g, vd0, ud0, geo, (sd.lo + k * W) as f64);
            t = LANE_OFS;
            since = 0;
        }
        add_chunk::<M, DERIV>(g, &e, av0, au0, &t, bufs, sd.lo + k * W);
        for i in 0..W {
            e[i] *= r[i];
            r[i] *= g.kap;
            t[i] += W as f64;
        }
        since += 1;
    }
    if since == SEGMENT {
        (e, _, av0, au0) = seed_at::<M>(g, vd0, ud0, geo, (sd.lo + last * W) as f64);
        t = LANE_OFS;
    }
    let rem = sd.n - last * W;
    for (i, ei) in e.iter_mut().enumerate() {
        if i >= rem {
            *ei = 0.0;
        }
    }
    add_chunk::<M, DERIV>(g, &e, av0, au0, &t, bufs, sd.lo + last * W);
}

/// Accumulate one row's pixels into the sums.
#[inline(always)]
fn finish_row<M: Arith, const DERIV: bool>(
    rows: &[f64],
    stride: usize,
    im: &[f64],
    wt: &[f64],
    ncol: usize,
    flux: f64,
    su: &mut Sums,
) {
    let mut c = 0;
    while c < ncol {
        let mut d = [0.0; W];
        let mut w = [0.0; W];
        if c + W <= ncol {
            d.copy_from_slice(&im[c..c + W]);
            w.copy_from_slice(&wt[c..c + W]);
        } else {
            d[..ncol - c].copy_from_slice(&im[c..]);
            w[..ncol - c].copy_from_slice(&wt[c..]);
        }
        let mut u = [[0.0; W]; NBUF];
        for (p, up) in u.iter_mut().enumerate() {
            if DERIV || p == 0 {
                up.copy_from_slice(&rows[p * stride + c..p * stride + c + W]);
            }
        }
        // u order in the sums: (a_v, a_u, rr, rc, cc, m)
        for i in 0..W {
            let used = !(w[i] <= 0.0);
            let wi = if used { w[i] } else { 0.0 };
            let di = if used { d[i] } else { 0.0 };
            let mu = u[0][i];
            let model = flux * mu;
            let diff = model - di;
            let wd = wi * diff;
            su.chi2[i] = M::fma(wd, diff, su.chi2[i]);
            su.sn[i] = M::fma(di * model, wi, su.sn[i]);
            su.sd[i] = M::fma(model * model, wi, su.sd[i]);
            su.npix[i] += if used { 1.0 } else { 0.0 };
            if DERIV {
                let uu = [u[1][i], u[2][i], u[3][i], u[4][i], u[5][i], mu];
                let mut idx = 0;
                for p in 0..6 {
                    su.r[p][i] = M::fma(wd, uu[p], su.r[p][i]);
                    let wu = wi * uu[p];
                    for q in p..6 {
                        su.s[idx][i] = M::fma(wu, uu[q], su.s[idx][i]);
                        idx += 1;
                    }
                }
            }
        }
        c += W;
    }
}

/// Per-call Gaussian constants.
#[inline(always)]
fn prep_gauss<M: Arith>(gs: &[KGauss], jac: &Jacobian, out: &mut Vec<FGauss>) {
    let (dvdc, dudc) = (jac.dvdcol, jac.dudcol);
    out.clear();
    for g in gs {
        let a = g.dcc * dvdc * dvdc + g.drr * dudc * dudc - 2.0 * g.drc * dvdc * dudc;
        out.push(FGauss {
            row: g.row,
            col: g.col,
            drr: g.drr,
            drc: g.drc,
            dcc: g.dcc,
            pn: g.pn,
            s: g.s,
            a,
            dav: g.dcc * dvdc - g.drc * dudc,
            dau: g.drr * dudc - g.drc * dvdc,
            kap: exp_lane::<M>(-16.0 * a),
            e8a: exp_lane::<M>(-8.0 * a),
        });
    }
}

/// The fast kernel: same contract as the oracle `accumulate_scalar` for the V1 evaluation.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn accumulate<M: Arith, const DERIV: bool>(
    gs: &[KGauss],
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    flux: f64,
    scratch: &mut FastScratch,
    acc: &mut Accum,
) {
    let nrow = image.len().checked_div(ncol).unwrap_or(0);
    if nrow == 0 {
        return;
    }
    let FastScratch { fg, seeds, rows } = scratch;
    prep_gauss::<M>(gs, jac, fg);
    let stride = (ncol + W).div_ceil(W) * W;
    let nbuf = if DERIV { NBUF } else { 1 };
    rows.clear();
    rows.resize(NBUF * stride, 0.0);
    let mut su = Sums::default();
    for row in 0..nrow {
        let dr = row as f64 - jac.row0;
        let geo = RowGeo {
            v0: jac.dvdrow * dr - jac.dvdcol * jac.col0,
            u0: jac.dudrow * dr - jac.dudcol * jac.col0,
            dvdc: jac.dvdcol,
            dudc: jac.dudcol,
        };
        // windows and seeds first: independent iterations that pipeline well
        seeds.clear();
        for (k, g) in fg.iter().enumerate() {
            let vd0 = geo.v0 - g.row;
            let ud0 = geo.u0 - g.col;
            if let Some((lo, hi)) = row_window::<DERIV>(g, vd0, ud0, &geo, ncol) {
                let (e, r, av, au) = seed_at::<M>(g, vd0, ud0, &geo, lo as f64);
                seeds.push(Seed {
                    k,
                    lo,
                    n: hi + 1 - lo,
                    e,
                    r,
                    av,
                    au,
                });
            }
        }
        rows[..nbuf * stride].fill(0.0);
        {
            let (bm, rest) = rows.split_at_mut(stride);
            let (bv, rest) = rest.split_at_mut(stride);
            let (bu, rest) = rest.split_at_mut(stride);
            let (brr, rest) = rest.split_at_mut(stride);
            let (brc, bcc) = rest.split_at_mut(stride);
            let mut bufs: [&mut [f64]; NBUF] = [bm, bv, bu, brr, brc, bcc];
            for sd in seeds.iter() {
                let g = &fg[sd.k];
                let vd0 = geo.v0 - g.row;
                let ud0 = geo.u0 - g.col;
                walk::<M, DERIV>(g, sd, vd0, ud0, &geo, &mut bufs);
            }
        }
        let im = &image[row * ncol..(row + 1) * ncol];
        let wt = &weight[row * ncol..(row + 1) * ncol];
        finish_row::<M, DERIV>(rows, stride, im, wt, ncol, flux, &mut su);
    }
    acc.chi2 += lane_sum(&su.chi2);
    acc.s2n_numer += lane_sum(&su.sn);
    acc.s2n_denom += lane_sum(&su.sd);
    acc.npix += lane_sum(&su.npix) as usize;
    if DERIV {
        // J = T u with u = (ΣG a_v, ΣG a_u, rr, rc, cc, m)
        let cs = gs.first().map_or([0.0; 9], |g| g.cs);
        let mut t = [[0.0; 6]; 6];
        t[0][0] = flux;
        t[1][1] = flux;
        for p in 0..3 {
            t[2 + p][2] = flux * 0.5 * cs[3 * p];
            t[2 + p][3] = flux * cs[3 * p + 1];
            t[2 + p][4] = flux * 0.5 * cs[3 * p + 2];
        }
        t[5][5] = 1.0;
        let mut s = [[0.0; 6]; 6];
        let mut r = [0.0; 6];
        let mut idx = 0;
        for p in 0..6 {
            r[p] = lane_sum(&su.r[p]);
            for q in p..6 {
                s[p][q] = lane_sum(&su.s[idx]);
                s[q][p] = s[p][q];
                idx += 1;
            }
        }
        // ts = T S
        let mut ts = [[0.0; 6]; 6];
        for i in 0..6 {
            for j in 0..6 {
                let mut x = 0.0;
                for p in 0..6 {
                    x += t[i][p] * s[p][j];
                }
                ts[i][j] = x;
            }
        }
        for i in 0..6 {
            let mut x = 0.0;
            for p in 0..6 {
                x += t[i][p] * r[p];
            }
            acc.jtr[i] += x;
            for j in i..6 {
                let mut y = 0.0;
                for q in 0..6 {
                    y += ts[i][q] * t[j][q];
                }
                acc.jtj[i][j] += y;
            }
        }
        for i in 0..6 {
            for j in 0..i {
                acc.jtj[i][j] = acc.jtj[j][i];
            }
        }
    }
}
