//! The fast pixel kernels, written once and monomorphized over the evaluation policy `P`, the
//! arithmetic backend `M` (fused multiply-add and hardware rounding, or plain operations) and
//! the block height `L`.
//!
//! # Layout
//!
//! The stamp is processed in blocks of `L` consecutive rows. A block's model is accumulated in
//! an interleaved buffer `acc[col][j]` (`j` = row within the block), so one `[f64; L]` holds the
//! same column of the `L` rows and the arithmetic below is lane-wise over rows: LLVM turns each
//! `for j in 0..L` loop into vector instructions (4 doubles per AVX2 register).
//!
//! For a Gaussian `k` and a row, `(v, u)` are linear in the column `c`, so `chi2(c) = A c² + B c +
//! C`. The window of columns with `chi2 < 25` is solved analytically per row; Gaussians whose
//! pixel-space ellipse misses the block are skipped altogether.
//!
//! * [`Method::HardCut`] (V1): the stamp is walked Gaussian by Gaussian. Along a row,
//!   `e(c) = exp(-chi2(c)/2)` is advanced by multiplications: with `U` interleaved chains,
//!   `e(c+U) = e(c)·R(c)` and `R(c+U) = R(c)·exp(-U²A)`, rightwards and leftwards from a seed
//!   column. The seeds themselves (value, one-column ratios) move from block to block by
//!   multiplication too, along a lattice `(L rows, D columns)` that follows the Gaussian's
//!   centre line (`f(r, c)` is quadratic, so a lattice step multiplies the seed by a factor that
//!   itself changes by a constant). Seeds are recomputed exactly (vectorized exp) at the first
//!   block of each direction, every [`SEGMENT_BLOCKS`] blocks, every [`SEGMENT`] columns, and
//!   whenever a lane that matters left the safe range. The relative error stays below ~1e-13.
//!   Window ends whose analytic root falls within rounding distance of an integer are decided
//!   with the oracle's own chi² formula, so the hard cut selects exactly the oracle's pixels.
//!   Very narrow Gaussians (`A > NARROW_A`) are evaluated pixel by pixel.
//! * [`Method::Apodized`] (V2): `exp5_smooth` is evaluated on every windowed pixel (table of
//!   `e^i`, degree-5 polynomial), times the apodization window outside the `chi2 <= 20` core.
//! * [`Method::Exact`]: every pixel, vectorized [`exp_poly`] (no cut-off).

#![allow(clippy::manual_clamp)] // `x.max(lo).min(hi)` maps NaN to a bound (vector max/min); `clamp` would keep it.

use super::policy::sealed::Method;
use super::policy::Policy;
use super::LogLike;
use crate::gmix::fastexp::{exp_poly, APOD_CHI2, MAX_CHI2};
use crate::gmix::{GMix, Jacobian};

/// Arithmetic backend.
pub(crate) trait Arith: Copy + 'static {
    /// `a * b + c` (fused or not).
    fn fma(a: f64, b: f64, c: f64) -> f64;
    /// Round toward +∞ (`|x| < 2^51`).
    fn ceil(x: f64) -> f64;
    /// Round toward -∞ (`|x| < 2^51`).
    fn floor(x: f64) -> f64;
}

/// Plain operations only (any target; SSE2 on x86_64). Rounding is branch-free.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain;

/// Fused multiply-add and hardware rounding: only inside functions compiled with FMA and
/// SSE4.1 (else `mul_add` becomes a slow library call).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Fused;

const ROUND_MAGIC: f64 = 6755399441055744.0; // 1.5·2^52

#[inline(always)]
fn round_nearest(x: f64) -> f64 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

impl Arith for Plain {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
    #[inline(always)]
    fn ceil(x: f64) -> f64 {
        let r = round_nearest(x);
        if r < x {
            r + 1.0
        } else {
            r
        }
    }
    #[inline(always)]
    fn floor(x: f64) -> f64 {
        let r = round_nearest(x);
        if r > x {
            r - 1.0
        } else {
            r
        }
    }
}

impl Arith for Fused {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn ceil(x: f64) -> f64 {
        x.ceil()
    }
    #[inline(always)]
    fn floor(x: f64) -> f64 {
        x.floor()
    }
}

/// Rows per block (lanes).
pub(crate) const BLOCK: usize = 4;
/// Interleaved chains of the V1 recurrence.
const CHAINS: usize = 2;
/// Longest run of columns between two exact re-seedings of the V1 recurrence.
const SEGMENT: usize = 128;
/// Longest run of blocks between two exact re-seedings of the V1 block-to-block recurrence.
const SEGMENT_BLOCKS: usize = 16;
const BIG: f64 = 1.0e300;

/// `e^{-k}`, k = 0..15: ngmix's `exp5_smooth` table (`exp(-15..0)`), correctly rounded.
pub(crate) const EXP_NEG_INT: [f64; 16] = [
    1.0,
    0.36787944117144233,
    0.1353352832366127,
    0.049787068367863944,
    0.01831563888873418,
    0.006737946999085467,
    0.0024787521766663585,
    0.0009118819655545162,
    0.00033546262790251185,
    0.00012340980408667956,
    4.5399929762484854e-05,
    1.670170079024566e-05,
    6.14421235332821e-06,
    2.2603294069810542e-06,
    8.315287191035679e-07,
    3.059023205018258e-07,
];

const EXP5_C: [f64; 6] = [
    1.0000011318561302,
    0.999993601071577,
    0.49992478810274166,
    0.16674612720799442,
    0.042330947141114836,
    0.008197933236258961,
];

/// `exp5_smooth(x)` for `x` in about `[-15, 0.5)`, branch-free (vectorizes).
#[inline(always)]
fn exp5_lane<M: Arith>(x: f64) -> f64 {
    // i = trunc(x - 0.5) = ceil(x - 0.5) for x < 0.5
    let i = M::ceil(x - 0.5);
    let f = x - i;
    let c = &EXP5_C;
    let p = M::fma(f, c[5], c[4]);
    let p = M::fma(f, p, c[3]);
    let p = M::fma(f, p, c[2]);
    let p = M::fma(f, p, c[1]);
    let p = M::fma(f, p, c[0]);
    // k = -i, a small non-negative integer: read it from the mantissa of -i + 1.5·2^52, and
    // form e^{-k} as a product over its bits (a table lookup would not vectorize)
    let k = (ROUND_MAGIC - i).to_bits();
    let b0 = if k & 1 != 0 { EXP_NEG_INT[1] } else { 1.0 };
    let b1 = if k & 2 != 0 { EXP_NEG_INT[2] } else { 1.0 };
    let b2 = if k & 4 != 0 { EXP_NEG_INT[4] } else { 1.0 };
    let b3 = if k & 8 != 0 { EXP_NEG_INT[8] } else { 1.0 };
    ((b0 * b1) * (b2 * b3)) * p
}

/// Per-call constants of one Gaussian.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GaussPrep {
    /// Index in the mixture (for the exact fallback).
    idx: usize,
    pa: f64,
    row: f64,
    col: f64,
    dcc: f64,
    drr: f64,
    drc: f64,
    /// chi2 = A c² + B c + C along a row.
    qa: f64,
    inv2a: f64,
    /// B = alpha·bp + beta·bq (alpha, beta: vd and ud at column 0).
    bp: f64,
    bq: f64,
    /// exp(-A), exp(-A)^CHAINS, exp(-CHAINS²·A).
    kap: f64,
    kap_u: f64,
    kap_big: f64,
    /// Centre row in pixel coordinates.
    rc: f64,
    /// Pixel columns that can hold chi2 < 25 (padded).
    cmin: f64,
    cmax: f64,
    /// Pixel rows that can hold chi2 < 25 (padded).
    rmin: f64,
    rmax: f64,
}

/// Everything that depends on the call but not on the row.
#[derive(Debug)]
pub(crate) struct Prep {
    pub(crate) gauss: Vec<GaussPrep>,
    /// dv/dcol, du/dcol.
    a: f64,
    b: f64,
    ncol: usize,
}

impl Prep {
    #[inline(always)]
    pub(crate) fn new<M: Arith>(gmix: &GMix, jac: &Jacobian, ncol: usize) -> Prep {
        let a = jac.dvdcol;
        let b = jac.dudcol;
        let area = jac.area();
        let det = jac.det();
        let mut gauss = Vec::with_capacity(gmix.len());
        for (idx, g) in gmix.gaussians().iter().enumerate() {
            let qa = g.dcc * a * a + g.drr * b * b - 2.0 * g.drc * a * b;
            if !(qa > 0.0) || !qa.is_finite() {
                // cannot happen for a valid Gaussian and jacobian; be safe
                continue;
            }
            let kap = (-qa).exp();
            let mut kap_u = 1.0;
            for _ in 0..CHAINS {
                kap_u *= kap;
            }
            let kap_big = (-((CHAINS * CHAINS) as f64) * qa).exp();
            let (rc, _) = jac.rowcol(g.row, g.col);
            let rc = rc.max(-1e9).min(1e9);
            let var_r = (jac.dudcol * jac.dudcol * g.irr - 2.0 * jac.dudcol * jac.dvdcol * g.irc
                + jac.dvdcol * jac.dvdcol * g.icc)
                / (det * det);
            let half = 5.0 * var_r.max(0.0).sqrt();
            let (_, cc) = jac.rowcol(g.row, g.col);
            let cc = cc.max(-1e9).min(1e9);
            let var_c = (jac.dudrow * jac.dudrow * g.irr - 2.0 * jac.dudrow * jac.dvdrow * g.irc
                + jac.dvdrow * jac.dvdrow * g.icc)
                / (det * det);
            let halfc = 5.0 * var_c.max(0.0).sqrt();
            gauss.push(GaussPrep {
                idx,
                pa: g.pnorm * area,
                row: g.row,
                col: g.col,
                dcc: g.dcc,
                drr: g.drr,
                drc: g.drc,
                qa,
                inv2a: 0.5 / qa,
                bp: 2.0 * (g.dcc * a - g.drc * b),
                bq: 2.0 * (g.drr * b - g.drc * a),
                kap,
                kap_u,
                kap_big,
                rc,
                cmin: M::floor(cc - halfc) - 1.0,
                cmax: M::ceil(cc + halfc) + 1.0,
                rmin: M::floor(rc - half) - 2.0,
                rmax: M::ceil(rc + half) + 2.0,
            });
        }
        Prep { gauss, a, b, ncol }
    }
}

/// Row-dependent quantities of one block.
struct BlockRows<const L: usize> {
    r0: usize,
    /// v and u at column 0 of each row.
    v0: [f64; L],
    u0: [f64; L],
    /// Lane holds a row of the stamp.
    inside: [bool; L],
}

impl<const L: usize> BlockRows<L> {
    #[inline(always)]
    fn new(jac: &Jacobian, r0: usize, nrow: usize) -> Self {
        let mut v0 = [0.0; L];
        let mut u0 = [0.0; L];
        let mut inside = [false; L];
        for j in 0..L {
            let dr = (r0 + j) as f64 - jac.row0;
            v0[j] = jac.dvdrow * dr - jac.dvdcol * jac.col0;
            u0[j] = jac.dudrow * dr - jac.dudcol * jac.col0;
            inside[j] = r0 + j < nrow;
        }
        BlockRows { r0, v0, u0, inside }
    }
}

/// Quadratic coefficients of chi2 along each row of the block: (alpha, beta, B, C).
#[inline(always)]
fn row_quadratics<const L: usize>(
    g: &GaussPrep,
    br: &BlockRows<L>,
) -> ([f64; L], [f64; L], [f64; L], [f64; L]) {
    let mut al = [0.0; L];
    let mut be = [0.0; L];
    let mut qb = [0.0; L];
    let mut qc = [0.0; L];
    for j in 0..L {
        al[j] = br.v0[j] - g.row;
        be[j] = br.u0[j] - g.col;
        qb[j] = al[j] * g.bp + be[j] * g.bq;
        qc[j] = g.dcc * al[j] * al[j] + g.drr * be[j] * be[j] - 2.0 * g.drc * al[j] * be[j];
    }
    (al, be, qb, qc)
}

/// chi2 and d chi2/d col at column `s` of every row.
#[inline(always)]
fn chi2_at<const L: usize>(
    g: &GaussPrep,
    a: f64,
    b: f64,
    al: &[f64; L],
    be: &[f64; L],
    s: f64,
) -> ([f64; L], [f64; L]) {
    let mut c2 = [0.0; L];
    let mut gr = [0.0; L];
    for j in 0..L {
        let vd = al[j] + a * s;
        let ud = be[j] + b * s;
        c2[j] = g.dcc * vd * vd + g.drr * ud * ud - 2.0 * g.drc * vd * ud;
        gr[j] = vd * g.bp + ud * g.bq;
    }
    (c2, gr)
}

/// Analytic column window `[lo, hi]` (as f64) where `chi2 < cut`, clamped to the stamp, plus
/// whether the decision is within rounding of an integer boundary (V1 must then decide with
/// the oracle's formula). Empty windows are `lo = BIG, hi = -BIG`.
#[inline(always)]
fn windows<M: Arith, const L: usize>(
    g: &GaussPrep,
    qb: &[f64; L],
    qc: &[f64; L],
    cut: f64,
    ncol: usize,
    widen: f64,
) -> ([f64; L], [f64; L], [bool; L]) {
    let ncolf = ncol as f64;
    let mut lo = [0.0; L];
    let mut hi = [0.0; L];
    let mut flag = [false; L];
    for j in 0..L {
        let b = qb[j];
        let c = qc[j];
        let disc = b * b - 4.0 * g.qa * (c - cut);
        let dtol = 1e-11 * (b * b + 4.0 * g.qa * (c.abs() + cut));
        let sq = disc.max(0.0).sqrt();
        let c1 = (-b - sq) * g.inv2a;
        let c2 = (-b + sq) * g.inv2a;
        // clamp to half-integers off the stamp: they are never "near an integer"
        let c1c = c1.max(-1.5).min(ncolf + 0.5);
        let c2c = c2.max(-1.5).min(ncolf + 0.5);
        let l = (M::ceil(c1c) - widen).max(0.0);
        let h = (M::floor(c2c) + widen).min(ncolf - 1.0);
        let ok = disc > dtol && l <= h;
        // error of chi2 along the row ~ eps × the size of its terms; the root moves by that
        // over the slope sq
        let mag = c.abs() + cut + b.abs() * ncolf + g.qa * ncolf * ncolf;
        let tol = 1e-11 * mag;
        let near1 = (c1c - M::floor(c1c + 0.5)).abs() * sq < tol;
        let near2 = (c2c - M::floor(c2c + 0.5)).abs() * sq < tol;
        flag[j] = (disc > dtol && (near1 || near2)) || disc.abs() <= dtol;
        lo[j] = if ok { l } else { BIG };
        hi[j] = if ok { h } else { -BIG };
    }
    (lo, hi, flag)
}

/// Exact V1 window of one row with the oracle's chi² (`Gauss2D::chi2` of `Jacobian::vu`),
/// searched from the row's chi² minimum `cv`.
#[cold]
#[inline(never)]
fn exact_window(
    gmix: &GMix,
    jac: &Jacobian,
    k: usize,
    row: usize,
    ncol: usize,
    cv: f64,
) -> (f64, f64) {
    let g = &gmix.gaussians()[k];
    let inside = |c: usize| {
        let (v, u) = jac.vu(row as f64, c as f64);
        g.chi2(v, u) < MAX_CHI2
    };
    let last = ncol - 1;
    let cstar = if cv.is_finite() {
        cv.round().clamp(0.0, last as f64) as usize
    } else {
        0
    };
    let start = [cstar, cstar.saturating_sub(1), (cstar + 1).min(last)]
        .into_iter()
        .find(|&c| inside(c));
    match start {
        None => (BIG, -BIG),
        Some(c) => {
            let mut lo = c;
            while lo > 0 && inside(lo - 1) {
                lo -= 1;
            }
            let mut hi = c;
            while hi < last && inside(hi + 1) {
                hi += 1;
            }
            (lo as f64, hi as f64)
        }
    }
}

/// Accurate exp (Cody–Waite reduction by ln 2, degree-13 Taylor polynomial, `2^n` from exponent
/// bits) of `x` clamped to `[-700, 700]`; relative error ~1e-16, branch-free.
#[inline(always)]
fn exp_lane<M: Arith>(x: f64) -> f64 {
    crate::gmix::fastexp::exp_lane_with(x, M::fma)
}

/// Column curvature `A` above which V1 evaluates a Gaussian pixel by pixel (its row windows
/// are at most ~2 pixels wide; the recurrence factors would leave the double range).
const NARROW_A: f64 = 50.0;

/// Exact V1 windows of one block: analytic, with the rounding-close ends decided by the oracle.
#[inline(always)]
fn hardcut_windows<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    br: &BlockRows<L>,
    gmix: &GMix,
    jac: &Jacobian,
    qb: &[f64; L],
    qc: &[f64; L],
) -> ([f64; L], [f64; L], [bool; L], bool) {
    let (mut lo, mut hi, flag) = windows::<M, L>(g, qb, qc, MAX_CHI2, prep.ncol, 0.0);
    let mut anyflag = false;
    for j in 0..L {
        anyflag |= flag[j] & br.inside[j];
    }
    if anyflag {
        for j in 0..L {
            if br.inside[j] && flag[j] {
                let cv = -qb[j] * g.inv2a;
                (lo[j], hi[j]) = exact_window(gmix, jac, g.idx, br.r0 + j, prep.ncol, cv);
            }
        }
    }
    let mut valid = [false; L];
    let mut any = false;
    for j in 0..L {
        valid[j] = br.inside[j] && lo[j] <= hi[j];
        any |= valid[j];
    }
    (lo, hi, valid, any)
}

/// The exact V1 windows of one block.
#[derive(Debug, Clone, Copy)]
struct Win<const L: usize> {
    lo: [f64; L],
    hi: [f64; L],
    valid: [bool; L],
    any: bool,
}

/// Union `[first, last]` and intersection `[li, hi]` of the windows of the valid lanes.
#[inline(always)]
fn window_span<const L: usize>(
    lo: &[f64; L],
    hi: &[f64; L],
    valid: &[bool; L],
) -> (f64, f64, f64, f64) {
    let (mut first, mut last, mut li, mut hii) = (BIG, -BIG, -BIG, BIG);
    for j in 0..L {
        let (l, h) = if valid[j] {
            (lo[j], hi[j])
        } else {
            (BIG, -BIG)
        };
        let (l2, h2) = if valid[j] {
            (lo[j], hi[j])
        } else {
            (-BIG, BIG)
        };
        first = first.min(l);
        last = last.max(h);
        li = li.max(l2);
        hii = hii.min(h2);
    }
    (first, last, li, hii)
}

/// The walk of one V1 Gaussian over its blocks: block `b` is seeded at column
/// `s_c + D (b - b_c)` (a lattice that follows the centre line of the Gaussian), and the seeds
/// of the next block follow by multiplication.
#[derive(Debug, Clone, Copy)]
struct Lattice {
    d: isize,
    /// Sky displacement of one lattice step (L rows, D columns).
    dv: f64,
    du: f64,
    /// chi2 of that displacement; exp(-qd).
    qd: f64,
    gam: f64,
    /// Change of d chi2/d col over one step; exp(-dslope/2) and its inverse.
    phi: f64,
    phi_inv: f64,
}

/// V1 for one Gaussian over every block it touches.
#[inline(always)]
fn gauss_hardcut<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    rows: &[BlockRows<L>],
    gmix: &GMix,
    jac: &Jacobian,
    acc: &mut [[f64; L]],
    wins: &mut Vec<Win<L>>,
) {
    let ncol = prep.ncol;
    let nb = rows.len();
    let lf = L as f64;
    let bmin = (g.rmin / lf).floor().max(0.0);
    let bmax = (g.rmax / lf).floor().min(nb as f64 - 1.0);
    if bmin > bmax {
        return;
    }
    let (b_first, b_last) = (bmin as usize, bmax as usize);
    if g.qa > NARROW_A {
        for b in b_first..=b_last {
            narrow_hardcut::<M, L>(
                g,
                prep,
                &rows[b],
                gmix,
                jac,
                &mut acc[b * ncol..(b + 1) * ncol],
            );
        }
        return;
    }
    // the exact windows of every block first: independent iterations that pipeline well
    wins.clear();
    for br in &rows[b_first..=b_last] {
        let (_, _, qb, qc) = row_quadratics(g, br);
        let (lo, hi, valid, any) = hardcut_windows::<M, L>(g, prep, br, gmix, jac, &qb, &qc);
        wins.push(Win { lo, hi, valid, any });
    }
    let wins = &wins[..];
    // the block holding the centre
    let bc = (g.rc / lf).floor().max(b_first as f64).min(b_last as f64) as usize;
    // the Gaussian's column range on the stamp; when chi2 at its start stays moderate on every
    // row, each block is one masked pass over that fixed range, seeded at its first column
    let c0 = g.cmin.max(0.0);
    let c1 = g.cmax.min(ncol as f64 - 1.0);
    if c0 > c1 {
        return;
    }
    let w = c1 - c0 + 2.0;
    if g.qa * w * w <= BOX_CHI2 {
        let dv = jac.dvdrow * lf;
        let du = jac.dudrow * lf;
        let qd = g.dcc * dv * dv + g.drr * du * du - 2.0 * g.drc * dv * du;
        let dslope = dv * g.bp + du * g.bq;
        let lat = Lattice {
            d: 0,
            dv,
            du,
            qd,
            gam: exp_lane::<M>(-qd),
            phi: exp_lane::<M>(-0.5 * dslope),
            phi_inv: exp_lane::<M>(0.5 * dslope),
        };
        let (c0, c1) = (c0 as isize, c1 as isize);
        sweep::<M, L, true, true>(
            g, prep, rows, acc, &lat, bc, b_last, bc, c0, c1, wins, b_first,
        );
        if bc > b_first {
            let (to, b0) = (bc - 1, bc - 1);
            sweep::<M, L, false, true>(
                g, prep, rows, acc, &lat, b_first, to, b0, c0, c1, wins, b_first,
            );
        }
        return;
    }
    // otherwise a lattice that follows the centre line
    let slope_r = jac.dvdrow * g.bp + jac.dudrow * g.bq; // dB/drow
    let m = -slope_r * g.inv2a; // d(vertex column)/drow
    let d = M::floor(lf * m + 0.5);
    let d = d.max(-1e6).min(1e6);
    let dv = jac.dvdrow * lf + jac.dvdcol * d;
    let du = jac.dudrow * lf + jac.dudcol * d;
    let qd = g.dcc * dv * dv + g.drr * du * du - 2.0 * g.drc * dv * du;
    let dslope = dv * g.bp + du * g.bq;
    let lat = Lattice {
        d: d as isize,
        dv,
        du,
        qd,
        gam: exp_lane::<M>(-qd),
        phi: exp_lane::<M>(-0.5 * dslope),
        phi_inv: exp_lane::<M>(0.5 * dslope),
    };
    let brc = &rows[bc];
    let rmid = brc.r0 as f64 + 0.5 * (lf - 1.0);
    let qb_mid = (jac.dvdrow * (rmid - jac.row0) - jac.dvdcol * jac.col0 - g.row) * g.bp
        + (jac.dudrow * (rmid - jac.row0) - jac.dudcol * jac.col0 - g.col) * g.bq;
    let sc = M::floor(-qb_mid * g.inv2a + 0.5)
        .max(0.0)
        .min(ncol as f64 - 1.0) as isize;
    sweep::<M, L, true, false>(
        g, prep, rows, acc, &lat, bc, b_last, bc, sc, 0, wins, b_first,
    );
    if bc > b_first {
        let (to, b0, s0) = (bc - 1, bc - 1, sc - lat.d);
        sweep::<M, L, false, false>(
            g, prep, rows, acc, &lat, b_first, to, b0, s0, 0, wins, b_first,
        );
    }
}

/// Seeds at column `s` of every lane: `e = exp(f(s))`, the one-column ratios to the right and
/// to the left, and the ratio `g` to the same lane one lattice step further (down when `DOWN`).
#[inline(always)]
fn seed<M: Arith, const L: usize, const DOWN: bool>(
    g: &GaussPrep,
    prep: &Prep,
    lat: &Lattice,
    al: &[f64; L],
    be: &[f64; L],
    s: f64,
) -> [[f64; L]; 4] {
    let mut out = [[0.0; L]; 4];
    let sign = if DOWN { 1.0 } else { -1.0 };
    for j in 0..L {
        let vd = al[j] + prep.a * s;
        let ud = be[j] + prep.b * s;
        let chi2 = g.dcc * vd * vd + g.drr * ud * ud - 2.0 * g.drc * vd * ud;
        let gr = vd * g.bp + ud * g.bq;
        let lin =
            2.0 * (g.dcc * vd * lat.dv + g.drr * ud * lat.du - g.drc * (vd * lat.du + ud * lat.dv));
        out[0][j] = exp_lane::<M>(-0.5 * chi2);
        out[1][j] = exp_lane::<M>(-0.5 * (gr + g.qa));
        out[2][j] = exp_lane::<M>(-0.5 * (g.qa - gr));
        out[3][j] = exp_lane::<M>(-0.5 * (sign * lin + lat.qd));
    }
    out
}

/// One direction of the walk: blocks `from..=to` (ascending when `DOWN`, else descending from
/// `to`), block `b0` seeded at column `s0`. With `BOX`, every block is one masked pass over
/// columns `s0..=c1` (the lattice has `D = 0`).
#[inline(always)]
fn sweep<M: Arith, const L: usize, const DOWN: bool, const BOX: bool>(
    g: &GaussPrep,
    prep: &Prep,
    rows: &[BlockRows<L>],
    acc: &mut [[f64; L]],
    lat: &Lattice,
    from: usize,
    to: usize,
    b0: usize,
    s0: isize,
    c1: isize,
    wins: &[Win<L>],
    wb0: usize,
) {
    let ncol = prep.ncol;
    let mut st = [[0.0; L]; 4]; // e, ratio right, ratio left, block ratio
    let mut seeded = false;
    let (fr, fl) = if DOWN {
        (lat.phi, lat.phi_inv)
    } else {
        (lat.phi_inv, lat.phi)
    };
    let nblk = to + 1 - from;
    for k in 0..nblk {
        let b = if DOWN { from + k } else { to - k };
        let s = s0 + lat.d * (b as isize - b0 as isize);
        let br = &rows[b];
        let w = &wins[b - wb0];
        let (lo, hi, valid) = (&w.lo, &w.hi, &w.valid);
        if w.any {
            let (al, be, _, _) = row_quadratics(g, br);
            let mut ok = seeded && k % SEGMENT_BLOCKS != 0;
            for j in 0..L {
                let e = st[0][j];
                ok &= !valid[j] || (1e-280..=2.0).contains(&e);
            }
            if !ok {
                st = seed::<M, L, DOWN>(g, prep, lat, &al, &be, s as f64);
                seeded = true;
            }
            let cells = &mut acc[b * ncol..(b + 1) * ncol];
            if BOX {
                box_pass::<M, L>(g, prep, &al, &be, lo, hi, valid, s, c1, &st, cells);
            } else {
                hardcut_passes::<M, L>(g, prep, &al, &be, lo, hi, valid, s, &st, cells);
            }
        }
        if seeded {
            for j in 0..L {
                st[0][j] *= st[3][j];
                st[3][j] *= lat.gam;
                st[1][j] *= fr;
                st[2][j] *= fl;
            }
        }
    }
}

/// Longest skip (in columns) from a block's seed column to its windows before re-seeding there.
const MAX_SKIP: isize = 12;

/// The right and left recurrence passes of one block from its seeds at column `s`.
#[inline(always)]
fn hardcut_passes<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    al: &[f64; L],
    be: &[f64; L],
    lo: &[f64; L],
    hi: &[f64; L],
    valid: &[bool; L],
    s: isize,
    st: &[[f64; L]; 4],
    cells: &mut [[f64; L]],
) {
    let (first, last, li, hii) = window_span(lo, hi, valid);
    let (first, last) = (first as isize, last as isize);
    // the common window (empty: li > hii); clamped so the integer arithmetic cannot overflow
    let li = li.max(-1.0).min(prep.ncol as f64 + 1.0) as isize;
    let hii = hii.max(-2.0).min(prep.ncol as f64) as isize;
    let mut e = [0.0; L];
    let mut rr = [0.0; L];
    let mut rl = [0.0; L];
    for j in 0..L {
        e[j] = if valid[j] { st[0][j] } else { 0.0 };
        rr[j] = if valid[j] { st[1][j] } else { 0.0 };
        rl[j] = if valid[j] { st[2][j] } else { 0.0 };
    }
    // right: columns max(s, first)..=last
    if last >= s {
        let cs = s.max(first);
        let (mut e1, mut r1) = (e, rr);
        if cs - s > MAX_SKIP {
            (e1, r1) = reseed_col::<M, L>(g, prep, al, be, valid, cs as f64, true);
        } else {
            for _ in s..cs {
                for j in 0..L {
                    e1[j] *= r1[j];
                    r1[j] *= g.kap;
                }
            }
        }
        let mut c = cs;
        while c <= last {
            let n = ((last - c + 1) as usize).min(SEGMENT);
            if c > cs {
                (e1, r1) = reseed_col::<M, L>(g, prep, al, be, valid, c as f64, true);
            }
            run_pass::<M, L, true>(g, &e1, &r1, c as usize, n, lo, hi, li, hii, cells);
            c += n as isize;
        }
    }
    // left: columns min(s-1, last) down to first
    if first < s {
        let cs = (s - 1).min(last);
        let (mut e1, mut r1) = (e, rl);
        if s - 1 - cs > MAX_SKIP {
            (e1, r1) = reseed_col::<M, L>(g, prep, al, be, valid, cs as f64, false);
        } else {
            for _ in cs..s {
                for j in 0..L {
                    e1[j] *= r1[j];
                    r1[j] *= g.kap;
                }
            }
        }
        let mut c = cs;
        while c >= first {
            let n = ((c - first + 1) as usize).min(SEGMENT);
            if c < cs {
                (e1, r1) = reseed_col::<M, L>(g, prep, al, be, valid, c as f64, false);
            }
            run_pass::<M, L, false>(g, &e1, &r1, c as usize, n, lo, hi, li, hii, cells);
            c -= n as isize;
        }
    }
}

/// chi2 bound at a box start below which V1 uses the box walk.
const BOX_CHI2: f64 = 400.0;

/// One fully masked pass of a block over the fixed columns `c0..=c1`, seeds at `c0`.
#[inline(always)]
fn box_pass<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    al: &[f64; L],
    be: &[f64; L],
    lo: &[f64; L],
    hi: &[f64; L],
    valid: &[bool; L],
    c0: isize,
    c1: isize,
    st: &[[f64; L]; 4],
    cells: &mut [[f64; L]],
) {
    let mut e = [0.0; L];
    let mut r = [0.0; L];
    for j in 0..L {
        e[j] = if valid[j] { st[0][j] } else { 0.0 };
        r[j] = if valid[j] { st[1][j] } else { 0.0 };
    }
    let mut c = c0;
    while c <= c1 {
        let n = ((c1 - c + 1) as usize).min(SEGMENT);
        if c > c0 {
            (e, r) = reseed_col::<M, L>(g, prep, al, be, valid, c as f64, true);
        }
        // an empty common window: every chunk masked, a trip count that repeats block to block
        run_pass::<M, L, true>(
            g,
            &e,
            &r,
            c as usize,
            n,
            lo,
            hi,
            isize::MAX / 4,
            isize::MIN / 4,
            cells,
        );
        c += n as isize;
    }
}

/// Exact `e` and one-column ratio (to the right when `RIGHT`) at column `c`.
#[cold]
#[inline(never)]
fn reseed_col<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    al: &[f64; L],
    be: &[f64; L],
    valid: &[bool; L],
    c: f64,
    right: bool,
) -> ([f64; L], [f64; L]) {
    let (c2, gr) = chi2_at(g, prep.a, prep.b, al, be, c);
    let mut e = [0.0; L];
    let mut r = [0.0; L];
    for j in 0..L {
        let slope = if right { gr[j] } else { -gr[j] };
        if valid[j] {
            e[j] = exp_lane::<M>(-0.5 * c2[j]);
            r[j] = exp_lane::<M>(-0.5 * (slope + g.qa));
        }
    }
    (e, r)
}

/// Accumulate `pa·e` over `n` columns from `c0` (rightwards when `RIGHT`, else leftwards),
/// `e` advanced by `CHAINS` interleaved multiplicative chains; lanes outside their window are
/// masked where the column is outside the common window `[li, hii]`.
#[inline(always)]
fn run_pass<M: Arith, const L: usize, const RIGHT: bool>(
    g: &GaussPrep,
    e: &[f64; L],
    r1: &[f64; L],
    c0: usize,
    n: usize,
    lo: &[f64; L],
    hi: &[f64; L],
    li: isize,
    hii: isize,
    cells: &mut [[f64; L]],
) {
    const U: usize = CHAINS;
    // local copies keep the masks in registers (and the select branch-free)
    let (lo, hi) = (*lo, *hi);
    // chain u holds columns t = u, u+U, ...: e(u) and R_u = e(u+U)/e(u); R_u grows by kap^(U²)
    let mut ev = [[0.0; L]; U];
    let mut rv = [[0.0; L]; U];
    for j in 0..L {
        let mut ej = e[j];
        let mut rj = r1[j];
        let mut prod = 1.0;
        for u in 0..U {
            ev[u][j] = ej;
            ej *= rj;
            prod *= rj;
            rj *= g.kap;
        }
        let mut rr = prod;
        for u in 0..U {
            rv[u][j] = rr;
            rr *= g.kap_u;
        }
    }
    let pa = g.pa;
    let kb = g.kap_big;
    let dir = if RIGHT { 1.0 } else { -1.0 };
    // chunk k (walk distance t = kU..kU+U-1) needs no mask when t_lo <= kU, kU+U-1 <= t_hi
    let c0i = c0 as isize;
    let (t_lo, t_hi) = if RIGHT {
        (li - c0i, hii - c0i)
    } else {
        (c0i - hii, c0i - li)
    };
    let nfull = n / U;
    let ui = U as isize;
    let uf = U as f64;
    // ceil(t_lo / U) and floor((t_hi - U + 1) / U) + 1, with floor division
    let k0 = (-((-t_lo).div_euclid(ui))).clamp(0, nfull as isize);
    let k1 = ((t_hi - ui + 1).div_euclid(ui) + 1).clamp(k0, nfull as isize);
    let (k0, k1) = (k0 as usize, k1 as usize);
    let seg = if RIGHT {
        &mut cells[c0..c0 + n]
    } else {
        &mut cells[c0 + 1 - n..=c0]
    };
    let mut cf = c0 as f64; // column of walk distance t = kU
                            // position of walk offset u inside a chunk slice
    macro_rules! at {
        ($u:expr) => {
            if RIGHT {
                $u
            } else {
                U - 1 - $u
            }
        };
    }
    macro_rules! advance {
        () => {
            for u in 0..U {
                for j in 0..L {
                    ev[u][j] *= rv[u][j];
                    rv[u][j] *= kb;
                }
            }
        };
    }
    macro_rules! masked {
        ($chunk:expr, $m:expr, $pos:expr) => {
            for u in 0..$m {
                let c = cf + dir * u as f64;
                let cell = &mut $chunk[$pos(u)];
                for j in 0..L {
                    let keep = (c >= lo[j]) & (c <= hi[j]);
                    cell[j] = M::fma(pa, if keep { ev[u][j] } else { 0.0 }, cell[j]);
                }
            }
        };
    }
    macro_rules! walk {
        ($it:expr) => {{
            let mut it = $it;
            for chunk in it.by_ref().take(k0) {
                masked!(chunk, U, |u| at!(u));
                advance!();
                cf += dir * uf;
            }
            for chunk in it.by_ref().take(k1 - k0) {
                for u in 0..U {
                    let cell = &mut chunk[at!(u)];
                    for j in 0..L {
                        cell[j] = M::fma(pa, ev[u][j], cell[j]);
                    }
                }
                advance!();
            }
            cf += dir * uf * (k1 - k0) as f64;
            for chunk in it.by_ref() {
                masked!(chunk, U, |u| at!(u));
                advance!();
                cf += dir * uf;
            }
            it.into_remainder()
        }};
    }
    if RIGHT {
        let tail = walk!(seg.chunks_exact_mut(U));
        let m = tail.len();
        masked!(tail, m, |u| u);
    } else {
        let tail = walk!(seg.rchunks_exact_mut(U));
        // the remainder of rchunks is at the front; walk order runs from its end
        let m = tail.len();
        masked!(tail, m, |u| m - 1 - u);
    }
}

/// V1 for a very narrow Gaussian: exact windows, exp evaluated on every windowed pixel.
#[inline(always)]
fn narrow_hardcut<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    br: &BlockRows<L>,
    gmix: &GMix,
    jac: &Jacobian,
    cells: &mut [[f64; L]],
) {
    let (al, be, qb, qc) = row_quadratics(g, br);
    let (lo, hi, valid, any) = hardcut_windows::<M, L>(g, prep, br, gmix, jac, &qb, &qc);
    if !any {
        return;
    }
    let (first, last, _, _) = window_span(&lo, &hi, &valid);
    for c in (first as usize)..=(last as usize) {
        let cf = c as f64;
        let (c2, _) = chi2_at(g, prep.a, prep.b, &al, &be, cf);
        let cell = &mut cells[c];
        for j in 0..L {
            let keep = valid[j] & (cf >= lo[j]) & (cf <= hi[j]);
            let v = exp_lane::<M>(-0.5 * c2[j]);
            cell[j] = M::fma(g.pa, if keep { v } else { 0.0 }, cell[j]);
        }
    }
}

/// V2: exp5_smooth on every windowed pixel, apodized outside the chi2 <= 20 core.
#[inline(always)]
fn block_apodized<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    br: &BlockRows<L>,
    acc: &mut [[f64; L]],
) {
    let ncol = prep.ncol;
    let (al, be, qb, qc) = row_quadratics(g, br);
    // one column of margin: the window function is ~0 there anyway
    let (lo, hi, _) = windows::<M, L>(g, &qb, &qc, MAX_CHI2, ncol, 1.0);
    let (lo20, hi20, _) = windows::<M, L>(g, &qb, &qc, APOD_CHI2, ncol, 0.0);
    let mut first = BIG;
    let mut last = -BIG;
    let mut core_lo = -BIG;
    let mut core_hi = BIG;
    let mut vsum = 0.0;
    let mut nv = 0.0;
    for j in 0..L {
        if br.inside[j] {
            core_lo = core_lo.max(lo20[j]);
            core_hi = core_hi.min(hi20[j]);
            if lo[j] <= hi[j] {
                first = first.min(lo[j]);
                last = last.max(hi[j]);
                vsum += -qb[j] * g.inv2a;
                nv += 1.0;
            }
        }
    }
    if nv == 0.0 {
        return;
    }
    // expand the quadratic about a central column: small |t| keeps it accurate
    let s = M::floor(vsum / nv + 0.5).max(first).min(last);
    let (c2s, grs) = chi2_at(g, prep.a, prep.b, &al, &be, s);
    let qa = g.qa;
    let pa = g.pa;
    let (first, last) = (first as usize, last as usize);
    for (k, cell) in acc[first..=last].iter_mut().enumerate() {
        let cf = (first + k) as f64;
        let t = cf - s;
        if cf >= core_lo && cf <= core_hi {
            for j in 0..L {
                let chi2 = M::fma(t, M::fma(qa, t, grs[j]), c2s[j]);
                cell[j] = M::fma(pa, exp5_lane::<M>(-0.5 * chi2), cell[j]);
            }
        } else {
            for j in 0..L {
                let chi2 = M::fma(t, M::fma(qa, t, grs[j]), c2s[j]);
                let x = (-0.5 * chi2).max(-14.0);
                let uu = ((MAX_CHI2 - chi2) * 0.2).max(0.0).min(1.0);
                let w = uu * uu * uu * M::fma(uu, M::fma(6.0, uu, -15.0), 10.0);
                cell[j] = M::fma(pa * w, exp5_lane::<M>(x), cell[j]);
            }
        }
    }
}

/// Exact: every pixel, accurate exp.
#[inline(always)]
fn block_exact<M: Arith, const L: usize>(
    g: &GaussPrep,
    prep: &Prep,
    br: &BlockRows<L>,
    acc: &mut [[f64; L]],
) {
    let (al, be, _, _) = row_quadratics(g, br);
    let (a, b) = (prep.a, prep.b);
    for (c, cell) in acc.iter_mut().enumerate() {
        let cf = c as f64;
        for j in 0..L {
            let vd = M::fma(a, cf, al[j]);
            let ud = M::fma(b, cf, be[j]);
            let chi2 = g.dcc * vd * vd + g.drr * ud * ud - 2.0 * g.drc * vd * ud;
            let x = -0.5 * chi2;
            let ex = exp_poly(x.max(-708.0));
            let val = if x < -708.0 { 0.0 } else { ex };
            cell[j] = M::fma(g.pa, val, cell[j]);
        }
    }
}

/// Model of the whole stamp into the interleaved accumulator `acc` (`nblocks × ncol` cells,
/// zeroed here), Gaussian by Gaussian.
#[inline(always)]
fn model_all<P: Policy, M: Arith, const L: usize>(
    prep: &Prep,
    gmix: &GMix,
    jac: &Jacobian,
    rows: &[BlockRows<L>],
    acc: &mut [[f64; L]],
) {
    for cell in acc.iter_mut() {
        *cell = [0.0; L];
    }
    let ncol = prep.ncol;
    let lf = L as f64;
    let mut wins: Vec<Win<L>> = Vec::new();
    if P::METHOD == Method::HardCut {
        wins.reserve(rows.len());
    }
    for g in &prep.gauss {
        match P::METHOD {
            Method::Exact => {
                for (br, cells) in rows.iter().zip(acc.chunks_exact_mut(ncol)) {
                    block_exact::<M, L>(g, prep, br, cells);
                }
            }
            Method::HardCut => gauss_hardcut::<M, L>(g, prep, rows, gmix, jac, acc, &mut wins),
            Method::Apodized => {
                let bmin = (g.rmin / lf).floor().max(0.0);
                let bmax = (g.rmax / lf).floor().min(rows.len() as f64 - 1.0);
                if bmin <= bmax {
                    for b in (bmin as usize)..=(bmax as usize) {
                        let cells = &mut acc[b * ncol..(b + 1) * ncol];
                        block_apodized::<M, L>(g, prep, &rows[b], cells);
                    }
                }
            }
        }
    }
}

/// Calls `f(r0, rows, model)` for every block, `model` row-major (`rows × ncol`).
#[inline(always)]
fn for_each_block<P: Policy, M: Arith>(
    gmix: &GMix,
    jac: &Jacobian,
    nrow: usize,
    ncol: usize,
    mut f: impl FnMut(usize, usize, &[f64]),
) {
    const L: usize = BLOCK;
    if nrow == 0 || ncol == 0 {
        return;
    }
    let prep = Prep::new::<M>(gmix, jac, ncol);
    let nb = nrow.div_ceil(L);
    let rows: Vec<BlockRows<L>> = (0..nb).map(|b| BlockRows::new(jac, b * L, nrow)).collect();
    let mut acc = vec![[0.0; L]; nb * ncol];
    model_all::<P, M, L>(&prep, gmix, jac, &rows, &mut acc);
    let mut buf = vec![0.0; L * ncol];
    for (b, cells) in acc.chunks_exact(ncol).enumerate() {
        let r0 = b * L;
        let nr = L.min(nrow - r0);
        for (c, cell) in cells.iter().enumerate() {
            for j in 0..L {
                buf[j * ncol + c] = cell[j];
            }
        }
        f(r0, nr, &buf[..nr * ncol]);
    }
}

/// Render (overwrite or add) into `out` (`nrow × ncol`, validated by the caller).
#[inline(always)]
pub(crate) fn render<P: Policy, M: Arith>(
    gmix: &GMix,
    jac: &Jacobian,
    nrow: usize,
    ncol: usize,
    out: &mut [f64],
    add: bool,
) {
    for_each_block::<P, M>(gmix, jac, nrow, ncol, |r0, nr, model| {
        let o = &mut out[r0 * ncol..(r0 + nr) * ncol];
        if add {
            for (o, m) in o.iter_mut().zip(model) {
                *o += m;
            }
        } else {
            o.copy_from_slice(model);
        }
    });
}

/// Log-likelihood and S/N sums (inputs validated by the caller).
#[inline(always)]
pub(crate) fn loglike<P: Policy, M: Arith>(
    gmix: &GMix,
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
) -> LogLike {
    const W: usize = 4;
    let nrow = image.len().checked_div(ncol).unwrap_or(0);
    let mut ll = [0.0; W];
    let mut sn = [0.0; W];
    let mut sd = [0.0; W];
    let mut npix = 0usize;
    for_each_block::<P, M>(gmix, jac, nrow, ncol, |r0, nr, model| {
        let d = &image[r0 * ncol..(r0 + nr) * ncol];
        let w = &weight[r0 * ncol..(r0 + nr) * ncol];
        let mut mc = model.chunks_exact(W);
        let mut dc = d.chunks_exact(W);
        let mut wc = w.chunks_exact(W);
        for ((m4, d4), w4) in (&mut mc).zip(&mut dc).zip(&mut wc) {
            for k in 0..W {
                let used = !(w4[k] <= 0.0);
                let wk = if used { w4[k] } else { 0.0 };
                let dk = if used { d4[k] } else { 0.0 };
                let mk = m4[k];
                let diff = mk - dk;
                ll[k] = M::fma(diff * diff, wk, ll[k]);
                sn[k] = M::fma(dk * mk, wk, sn[k]);
                sd[k] = M::fma(mk * mk, wk, sd[k]);
            }
        }
        for ((&mk, &dk), &wk) in mc
            .remainder()
            .iter()
            .zip(dc.remainder())
            .zip(wc.remainder())
        {
            if !(wk <= 0.0) {
                let diff = mk - dk;
                ll[0] += diff * diff * wk;
                sn[0] += dk * mk * wk;
                sd[0] += mk * mk * wk;
            }
        }
        npix += w.iter().filter(|&&x| !(x <= 0.0)).count();
    });
    LogLike {
        loglike: -0.5 * ((ll[0] + ll[1]) + (ll[2] + ll[3])),
        s2n_numer: (sn[0] + sn[1]) + (sn[2] + sn[3]),
        s2n_denom: (sd[0] + sd[1]) + (sd[2] + sd[3]),
        npix,
    }
}

/// `(model - data)·sqrt(w)` of the used pixels into `out` (long enough: validated).
#[inline(always)]
pub(crate) fn fill_fdiff<P: Policy, M: Arith>(
    gmix: &GMix,
    jac: &Jacobian,
    image: &[f64],
    weight: &[f64],
    ncol: usize,
    out: &mut [f64],
) -> usize {
    let nrow = image.len().checked_div(ncol).unwrap_or(0);
    let mut n = 0;
    for_each_block::<P, M>(gmix, jac, nrow, ncol, |r0, nr, model| {
        let d = &image[r0 * ncol..(r0 + nr) * ncol];
        let w = &weight[r0 * ncol..(r0 + nr) * ncol];
        for ((&mk, &dk), &wk) in model.iter().zip(d).zip(w) {
            if !(wk <= 0.0) {
                if let Some(o) = out.get_mut(n) {
                    *o = (mk - dk) * wk.sqrt();
                }
                n += 1;
            }
        }
    });
    n
}

/// `Σ model² w` over the used pixels.
#[inline(always)]
pub(crate) fn model_s2n_sum<P: Policy, M: Arith>(
    gmix: &GMix,
    jac: &Jacobian,
    weight: &[f64],
    ncol: usize,
) -> f64 {
    const W: usize = 4;
    let nrow = weight.len().checked_div(ncol).unwrap_or(0);
    let mut sd = [0.0; W];
    for_each_block::<P, M>(gmix, jac, nrow, ncol, |r0, nr, model| {
        let w = &weight[r0 * ncol..(r0 + nr) * ncol];
        let mut mc = model.chunks_exact(W);
        let mut wc = w.chunks_exact(W);
        for (m4, w4) in (&mut mc).zip(&mut wc) {
            for k in 0..W {
                let wk = if w4[k] <= 0.0 { 0.0 } else { w4[k] };
                sd[k] = M::fma(m4[k] * m4[k], wk, sd[k]);
            }
        }
        for (&mk, &wk) in mc.remainder().iter().zip(wc.remainder()) {
            if !(wk <= 0.0) {
                sd[0] += mk * mk * wk;
            }
        }
    });
    (sd[0] + sd[1]) + (sd[2] + sd[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_table_is_libm() {
        for (k, &v) in EXP_NEG_INT.iter().enumerate() {
            assert_eq!(v, (-(k as f64)).exp(), "k={k}");
        }
    }

    #[test]
    fn plain_rounding() {
        for &x in &[
            -2.5, -2.0, -1.5, -0.5, -0.49, 0.0, 0.3, 1.0, 1.5, 47.999, 48.0,
        ] {
            assert_eq!(Plain::ceil(x), x.ceil(), "ceil {x}");
            assert_eq!(Plain::floor(x), x.floor(), "floor {x}");
        }
    }

    #[test]
    fn exp5_lane_matches_scalar() {
        use crate::gmix::fastexp::exp5_smooth;
        for k in 0..=30000 {
            let x = -14.0 * k as f64 / 30000.0;
            let a = exp5_lane::<Plain>(x);
            let b = exp5_smooth(x);
            assert!((a / b - 1.0).abs() < 1e-15, "x={x} {a} {b}");
        }
        for &x in &[-0.5, -1.5, -2.5, -0.49999999, -0.50000001, -12.5] {
            let a = exp5_lane::<Plain>(x);
            assert!((a / exp5_smooth(x) - 1.0).abs() < 1e-15);
        }
    }
}
