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
/// The nearest seg pixel is found with the k-d tree search of the meds C extension, including
/// its order among equally distant pixels (see `fast3tree`).
pub fn uberseg_in_place(weight: &mut [f64], seg: &[i32], nrow: usize, ncol: usize, number: i64) {
    let npix = nrow * ncol;
    if weight.len() < npix || seg.len() < npix {
        return;
    }
    if count_distinct(&seg[..npix]) == 2 {
        return;
    }
    for w in weight[..npix].iter_mut() {
        *w = *w as f32 as f64;
    }
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

fn count_distinct(seg: &[i32]) -> usize {
    let mut v: Vec<i32> = seg.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
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
