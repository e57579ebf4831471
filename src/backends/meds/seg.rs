//! Seg-map based weights of the meds package: the composite weight (`cweight`), the coadd
//! seg map interpolated onto an epoch, and "uberseg".
//!
//! All functions work on row-major slices of one `nrow x ncol` cutout, so they can be tested
//! without a file.

use super::fast3tree::SegTree;

/// A 2x2 Jacobian in MEDS order `[[dudrow, dudcol], [dvdrow, dvdcol]]` plus its centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutoutFrame {
    /// Centre row in the cutout (`cutout_row`).
    pub row0: f64,
    /// Centre column in the cutout (`cutout_col`).
    pub col0: f64,
    /// `[[dudrow, dudcol], [dvdrow, dvdcol]]`.
    pub jac: [[f64; 2]; 2],
}

/// Inverse of a 2x2 matrix the way LAPACK `dgesv(A, I)` computes it (LU with partial
/// pivoting, multiplier by reciprocal), which is what `numpy.matrix.getI` calls. `None` when
/// a pivot is exactly zero (numpy raises `LinAlgError`).
pub fn inverse_2x2(m: [[f64; 2]; 2]) -> Option<[[f64; 2]; 2]> {
    let [[a, b], [c, d]] = m;
    // Pivot on the first column (first maximum of |.|).
    let swap = c.abs() > a.abs();
    let (p, q, r, s) = if swap { (c, d, a, b) } else { (a, b, c, d) };
    if p == 0.0 {
        return None;
    }
    let l = r * (1.0 / p);
    let u = s - q * l;
    if u == 0.0 || !u.is_finite() || !l.is_finite() {
        return None;
    }
    // Solve for the two columns of the identity (rows permuted like A).
    let solve = |e0: f64, e1: f64| {
        let (y0, y1) = if swap { (e1, e0) } else { (e0, e1) };
        let y1 = y1 - y0 * l;
        let x1 = y1 / u;
        let x0 = (y0 - x1 * q) / p;
        (x0, x1)
    };
    let (a00, a10) = solve(1.0, 0.0);
    let (a01, a11) = solve(0.0, 1.0);
    Some([[a00, a01], [a10, a11]])
}

/// For every pixel of an epoch cutout, the flat index of the nearest coadd-cutout pixel:
/// epoch pixel → `(u, v)` through the epoch Jacobian about its centre → coadd pixel through the
/// inverse coadd Jacobian about the coadd centre, rounded half to even and clipped to the
/// coadd cutout (meds `_interpolate_coadd_seg_image` / `_make_composite_image`).
///
/// Returns `None` when the coadd Jacobian is singular.
pub fn coadd_index_map(
    nrow: usize,
    ncol: usize,
    epoch: &CutoutFrame,
    coadd: &CutoutFrame,
    coadd_nrow: usize,
    coadd_ncol: usize,
    out: &mut Vec<usize>,
) -> Option<()> {
    let cinv = inverse_2x2(coadd.jac)?;
    let j = epoch.jac;
    out.clear();
    out.reserve(nrow * ncol);
    let rmax = coadd_nrow.saturating_sub(1) as i64;
    let cmax = coadd_ncol.saturating_sub(1) as i64;
    for r in 0..nrow {
        let rows = r as f64 - epoch.row0;
        for c in 0..ncol {
            let cols = c as f64 - epoch.col0;
            let u = rows * j[0][0] + cols * j[0][1];
            let v = rows * j[1][0] + cols * j[1][1];
            let crow = coadd.row0 + u * cinv[0][0] + v * cinv[0][1];
            let ccol = coadd.col0 + u * cinv[1][0] + v * cinv[1][1];
            // numpy: round half to even, cast (NaN → minimum integer), clip.
            let ir = (crow.round_ties_even() as i64).clamp(0, rmax);
            let ic = (ccol.round_ties_even() as i64).clamp(0, cmax);
            out.push(ir as usize * coadd_ncol + ic as usize);
        }
    }
    Some(())
}

/// numpy-style index: negative values count from the end; `None` when out of range.
fn np_index(i: i64, n: usize) -> Option<usize> {
    let n = n as i64;
    let j = if i < 0 { i + n } else { i };
    (0..n).contains(&j).then_some(j as usize)
}

/// The seg id at the coadd centre, `coadd_seg[int(row0), int(col0)]` (truncation toward zero,
/// numpy negative indexing). `None` when outside the cutout.
pub fn central_segid(
    coadd_seg: &[i32],
    nrow: usize,
    ncol: usize,
    row0: f64,
    col0: f64,
) -> Option<i32> {
    if !row0.is_finite() || !col0.is_finite() {
        return None;
    }
    let r = np_index(row0.trunc() as i64, nrow)?;
    let c = np_index(col0.trunc() as i64, ncol)?;
    coadd_seg.get(r * ncol + c).copied()
}

/// Composite weight: zero every pixel whose coadd seg value (direct for the coadd, mapped
/// through `map` for an epoch) belongs to another object, i.e. is neither `segid` nor 0.
pub fn composite_weight(weight: &mut [f64], coadd_seg: &[i32], map: Option<&[usize]>, segid: i32) {
    for (i, w) in weight.iter_mut().enumerate() {
        let s = match map {
            None => coadd_seg.get(i).copied(),
            Some(m) => m.get(i).and_then(|&k| coadd_seg.get(k).copied()),
        };
        if let Some(s) = s {
            if s != segid && s != 0 {
                *w = 0.0;
            }
        }
    }
}

/// Uberseg on top of a composite weight: if the seg map holds exactly two distinct values the
/// weight is returned unchanged. Otherwise every pixel that belongs to another object
/// (seg > 0, ≠ `number`) is zeroed, and every other non-own pixel is zeroed when its nearest
/// non-zero seg pixel belongs to another object (meds `get_uberseg` / `_uberseg.c`).
/// In that branch the weight passes through single precision, as in the C extension.
///
/// The nearest seg pixel is decided from two exact squared Euclidean distance transforms (to
/// the own pixels and to the other objects' pixels). Only where both are equal (a tie between
/// the central and another object) does the outcome depend on the k-d tree search of the meds
/// C extension and its order among equally distant pixels (see `fast3tree`); the tree is then
/// built (once per cutout) and consulted for those pixels only. Seg maps with negative values
/// go through the tree for every pixel.
pub fn uberseg_in_place(weight: &mut [f64], seg: &[i32], nrow: usize, ncol: usize, number: i64) {
    let npix = nrow * ncol;
    if weight.len() < npix || seg.len() < npix {
        return;
    }
    let seg = &seg[..npix];
    if count_distinct(seg) == 2 {
        return;
    }
    for w in weight[..npix].iter_mut() {
        *w = *w as f32 as f64;
    }
    if seg.iter().any(|&s| s < 0) {
        uberseg_tree(weight, seg, nrow, ncol, number);
        return;
    }
    let is_own = |s: i32| s != 0 && s as i64 == number;
    let is_other = |s: i32| s != 0 && s as i64 != number;
    let has_own = seg.iter().any(|&s| is_own(s));
    let has_other = seg.iter().any(|&s| is_other(s));
    if !has_other {
        // every non-zero pixel is the central's: nothing to zero
        return;
    }
    let mut d_other = Vec::new();
    let mut d_own = Vec::new();
    let mut scratch = EdtScratch::default();
    edt_sq(seg, nrow, ncol, is_other, &mut d_other, &mut scratch);
    if has_own {
        edt_sq(seg, nrow, ncol, is_own, &mut d_own, &mut scratch);
    }
    let mut tree: Option<(SegTree, f32)> = None;
    for i in 0..npix {
        let s = seg[i] as i64;
        if s == number {
            continue;
        }
        if s > 0 {
            weight[i] = 0.0;
            continue;
        }
        let zero = if !has_own {
            true
        } else {
            match d_own[i].cmp(&d_other[i]) {
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Equal => {
                    let (t, maxr) = tree.get_or_insert_with(|| {
                        (
                            SegTree::new(seg, nrow, ncol),
                            (1.1 * ((nrow * nrow + ncol * ncol) as f64).sqrt()) as f32,
                        )
                    });
                    t.nearest_seg(i / ncol, i % ncol, *maxr)
                        .is_some_and(|n| n as i64 != number)
                }
            }
        };
        if zero {
            weight[i] = 0.0;
        }
    }
}

/// The reference implementation of the nearest-pixel step of [`uberseg_in_place`]: a k-d tree
/// search for every pixel (weights already in single precision, seg with ≥ 3 distinct
/// values). Kept for tests and timings.
#[doc(hidden)]
pub fn uberseg_in_place_tree(
    weight: &mut [f64],
    seg: &[i32],
    nrow: usize,
    ncol: usize,
    number: i64,
) {
    uberseg_tree(weight, seg, nrow, ncol, number)
}

fn uberseg_tree(weight: &mut [f64], seg: &[i32], nrow: usize, ncol: usize, number: i64) {
    let tree = SegTree::new(seg, nrow, ncol);
    let maxr = (1.1 * ((nrow * nrow + ncol * ncol) as f64).sqrt()) as f32;
    for r in 0..nrow {
        for c in 0..ncol {
            let i = r * ncol + c;
            let s = seg[i] as i64;
            if s == number {
                continue;
            }
            if s > 0 {
                weight[i] = 0.0;
                continue;
            }
            if let Some(nearest) = tree.nearest_seg(r, c, maxr) {
                if nearest as i64 != number {
                    weight[i] = 0.0;
                }
            }
        }
    }
}

#[derive(Default)]
struct EdtScratch {
    g: Vec<i64>,
    s: Vec<usize>,
    t: Vec<i64>,
}

/// Exact squared Euclidean distance from every pixel to the nearest pixel where `inside(seg)`
/// (Meijster, Roerdink & Hesselink 2000; integer arithmetic). Pixels of an empty set get a
/// value above any real squared distance.
fn edt_sq(
    seg: &[i32],
    nrow: usize,
    ncol: usize,
    inside: impl Fn(i32) -> bool,
    out: &mut Vec<i64>,
    sc: &mut EdtScratch,
) {
    let inf = (nrow + ncol) as i64;
    // phase 1: vertical distances, column by column (done row-wise for cache friendliness)
    let g = &mut sc.g;
    g.clear();
    g.resize(nrow * ncol, inf);
    for c in 0..ncol {
        g[c] = if inside(seg[c]) { 0 } else { inf };
    }
    for r in 1..nrow {
        for c in 0..ncol {
            let i = r * ncol + c;
            g[i] = if inside(seg[i]) {
                0
            } else {
                (g[i - ncol] + 1).min(inf)
            };
        }
    }
    for r in (0..nrow.saturating_sub(1)).rev() {
        for c in 0..ncol {
            let i = r * ncol + c;
            let below = g[i + ncol] + 1;
            if below < g[i] {
                g[i] = below;
            }
        }
    }
    // phase 2: lower envelope of the parabolas of each row
    out.clear();
    out.resize(nrow * ncol, 0);
    sc.s.clear();
    sc.s.resize(ncol, 0);
    sc.t.clear();
    sc.t.resize(ncol, 0);
    let (sv, tv) = (&mut sc.s, &mut sc.t);
    let mut g2 = vec![0i64; ncol];
    for r in 0..nrow {
        for (d, &x) in g2.iter_mut().zip(&g[r * ncol..(r + 1) * ncol]) {
            *d = x * x;
        }
        let gr = &g2;
        let f = |x: i64, i: usize| (x - i as i64) * (x - i as i64) + gr[i];
        let sep = |i: usize, u: usize| {
            let (ii, uu) = (i as i64, u as i64);
            (uu * uu - ii * ii + gr[u] - gr[i]).div_euclid(2 * (uu - ii))
        };
        let mut q: i64 = 0;
        sv[0] = 0;
        tv[0] = 0;
        for u in 1..ncol {
            while q >= 0 && f(tv[q as usize], sv[q as usize]) > f(tv[q as usize], u) {
                q -= 1;
            }
            if q < 0 {
                q = 0;
                sv[0] = u;
            } else {
                let w = 1 + sep(sv[q as usize], u);
                if w < ncol as i64 {
                    q += 1;
                    sv[q as usize] = u;
                    tv[q as usize] = w;
                }
            }
        }
        let orow = &mut out[r * ncol..(r + 1) * ncol];
        for u in (0..ncol).rev() {
            orow[u] = f(u as i64, sv[q as usize]);
            if u as i64 == tv[q as usize] {
                q -= 1;
            }
        }
    }
}

/// Number of distinct values, counted up to 3 (all that `uberseg_in_place` needs to know).
fn count_distinct(seg: &[i32]) -> usize {
    let mut seen: [i32; 2] = [0; 2];
    let mut n = 0usize;
    for &s in seg {
        if seen[..n].contains(&s) {
            continue;
        }
        if n == 2 {
            return 3;
        }
        seen[n] = s;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_matches_analytic() {
        let m = [[0.002, 0.262], [0.264, -0.003]];
        let inv = inverse_2x2(m).unwrap();
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let ana = [
            [m[1][1] / det, -m[0][1] / det],
            [-m[1][0] / det, m[0][0] / det],
        ];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - ana[i][j]).abs() < 1e-12 * ana[i][j].abs().max(1.0));
            }
        }
        assert!(inverse_2x2([[1.0, 2.0], [2.0, 4.0]]).is_none());
        assert!(inverse_2x2([[0.0, 0.0], [0.0, 1.0]]).is_none());
    }

    #[test]
    fn uberseg_simple_cases() {
        // Two objects left and right, sky in between.
        let (nrow, ncol) = (3, 5);
        let seg = vec![1, 0, 0, 0, 2, 1, 0, 0, 0, 2, 1, 0, 0, 0, 2];
        let mut w = vec![1.0; 15];
        uberseg_in_place(&mut w, &seg, nrow, ncol, 1);
        // column 2 is equidistant: ties go to the first (object 1) in row-major order.
        for r in 0..3 {
            assert_eq!(&w[r * 5..r * 5 + 5], &[1.0, 1.0, 1.0, 0.0, 0.0]);
        }
        // Only sky and one object: unchanged.
        let seg2 = vec![0, 0, 2, 2, 0, 0];
        let mut w2 = vec![1.0; 6];
        uberseg_in_place(&mut w2, &seg2, 2, 3, 1);
        assert_eq!(w2, vec![1.0; 6]);
    }

    fn brute_sq(seg: &[i32], nrow: usize, ncol: usize, inside: impl Fn(i32) -> bool) -> Vec<i64> {
        let pts: Vec<(i64, i64)> = (0..nrow * ncol)
            .filter(|&k| inside(seg[k]))
            .map(|k| ((k / ncol) as i64, (k % ncol) as i64))
            .collect();
        (0..nrow * ncol)
            .map(|k| {
                let (r, c) = ((k / ncol) as i64, (k % ncol) as i64);
                pts.iter()
                    .map(|&(a, b)| (a - r) * (a - r) + (b - c) * (b - c))
                    .min()
                    .unwrap_or(i64::MAX)
            })
            .collect()
    }

    /// Random blobby seg maps with many exact ties (symmetric placements).
    fn random_seg(state: &mut u64, nrow: usize, ncol: usize, nobj: i32) -> Vec<i32> {
        let mut next = || {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*state >> 33) as usize
        };
        let mut seg = vec![0i32; nrow * ncol];
        for obj in 1..=nobj {
            let (r0, c0) = (next() % nrow, next() % ncol);
            let rad = 1 + next() % 6;
            for r in 0..nrow {
                for c in 0..ncol {
                    let d = (r as i64 - r0 as i64).pow(2) + (c as i64 - c0 as i64).pow(2);
                    if d <= (rad * rad) as i64 && next() % 8 != 0 {
                        seg[r * ncol + c] = obj;
                    }
                }
            }
        }
        seg
    }

    #[test]
    fn edt_matches_brute_force() {
        let mut state = 7u64;
        let mut sc = EdtScratch::default();
        let mut out = Vec::new();
        for trial in 0..40 {
            let (nrow, ncol) = (1 + trial % 13 * 3, 1 + (trial * 7) % 29);
            let seg = random_seg(&mut state, nrow, ncol, 1 + (trial % 4) as i32);
            for target in 1..=2 {
                edt_sq(&seg, nrow, ncol, |s| s == target, &mut out, &mut sc);
                let b = brute_sq(&seg, nrow, ncol, |s| s == target);
                for k in 0..nrow * ncol {
                    if b[k] == i64::MAX {
                        assert!(out[k] >= ((nrow * nrow + ncol * ncol) as i64));
                    } else {
                        assert_eq!(out[k], b[k], "trial {trial} pixel {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn fast_uberseg_equals_the_tree_everywhere() {
        let mut state = 12345u64;
        let mut nties = 0;
        for trial in 0..300 {
            let nrow = 8 + trial % 41;
            let ncol = if trial % 3 == 0 {
                nrow
            } else {
                8 + (trial * 5) % 37
            };
            let mut seg = random_seg(&mut state, nrow, ncol, 1 + (trial % 6) as i32);
            if trial % 5 == 0 {
                // mirror-symmetric scenes: many equidistant pixels
                for r in 0..nrow {
                    for c in ncol / 2..ncol {
                        let m = seg[r * ncol + (ncol - 1 - c)];
                        seg[r * ncol + c] = if m == 0 { 0 } else { m % 3 + 1 };
                    }
                }
            }
            let w0: Vec<f64> = (0..nrow * ncol).map(|k| 1.0 + k as f64 * 0.1).collect();
            for number in [1i64, 2, 3, 9] {
                let mut a = w0.clone();
                let mut b = w0.clone();
                uberseg_in_place(&mut a, &seg, nrow, ncol, number);
                if count_distinct(&seg) != 2 {
                    for w in b.iter_mut() {
                        *w = *w as f32 as f64;
                    }
                    uberseg_tree(&mut b, &seg, nrow, ncol, number);
                }
                assert_eq!(a, b, "trial {trial} number {number}");
                let own = brute_sq(&seg, nrow, ncol, |s| s as i64 == number);
                let oth = brute_sq(&seg, nrow, ncol, |s| s != 0 && s as i64 != number);
                nties += (0..nrow * ncol)
                    .filter(|&k| seg[k] == 0 && own[k] == oth[k] && own[k] != i64::MAX)
                    .count();
            }
        }
        assert!(nties > 1000, "ties exercised: {nties}");
    }

    /// Timing of the distance-transform uberseg against the per-pixel tree search (run with
    /// `cargo test --release --lib uberseg_timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn uberseg_timing() {
        for (n, nobj, reps) in [(48usize, 6i32, 400), (128, 20, 40), (256, 40, 8)] {
            let mut state = 99u64;
            let maps: Vec<Vec<i32>> = (0..reps)
                .map(|_| random_seg(&mut state, n, n, nobj))
                .collect();
            let w0 = vec![1.0; n * n];
            let t = std::time::Instant::now();
            for m in &maps {
                let mut w = w0.clone();
                uberseg_in_place(&mut w, m, n, n, 1);
            }
            let fast = t.elapsed().as_secs_f64() / reps as f64;
            let t = std::time::Instant::now();
            for m in &maps {
                let mut w = w0.clone();
                uberseg_tree(&mut w, m, n, n, 1);
            }
            let tree = t.elapsed().as_secs_f64() / reps as f64;
            eprintln!(
                "{n}x{n}, {nobj} objects: tree {:.1} us, distance transform {:.1} us ({:.1}x)",
                tree * 1e6,
                fast * 1e6,
                tree / fast
            );
        }
    }

    #[test]
    fn identity_map_is_identity() {
        let f = CutoutFrame {
            row0: 10.3,
            col0: 11.7,
            jac: [[0.0, 0.263], [0.263, 0.0]],
        };
        let mut map = Vec::new();
        coadd_index_map(24, 24, &f, &f, 24, 24, &mut map).unwrap();
        assert!(map.iter().enumerate().all(|(i, &k)| i == k));
    }
}
