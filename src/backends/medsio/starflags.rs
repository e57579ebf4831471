//! DES Y1 per-object processing after all bands are built (spec §3.7, ngmixer
//! `Y1DESMEDSImageIO`): bright-star flag propagation (`propagate_star_flags`, Y1
//! `prop_sat_starpix`) and the stellar-halo object flag (`flag_y1_stellarhalo_masked`).

use crate::backends::meds::{inverse_2x2, CutoutFrame, CutoutKind, MedsFile};
use crate::error::Result;
use crate::obs::Observation;

/// DES bad-pixel bits used here.
const SATURATE: i32 = 2;
const INTERP: i32 = 4;
const STAR: i32 = 32;

fn frame(f: &MedsFile, iobj: usize, icut: usize) -> Result<CutoutFrame> {
    let c = f.cutout_info(iobj, icut)?;
    Ok(CutoutFrame {
        row0: c.cutout_row,
        col0: c.cutout_col,
        jac: [[c.dudrow, c.dudcol], [c.dvdrow, c.dvdcol]],
    })
}

/// `util.interpolate_image_diffsize`: for every pixel of `dst` (frame `f2`, `n2r x n2c`), the
/// nearest pixel of `src` (frame `f1`, `n1r x n1c`) through the two jacobians (rounded half to
/// even); pixels that land off `src` are left untouched. A singular source jacobian leaves
/// `dst` untouched.
#[allow(clippy::too_many_arguments)]
fn interpolate_into(
    f1: &CutoutFrame,
    src: &[i32],
    n1r: usize,
    n1c: usize,
    f2: &CutoutFrame,
    dst: &mut [i32],
    n2r: usize,
    n2c: usize,
) {
    let Some(jinv) = inverse_2x2(f1.jac) else {
        return;
    };
    let j = f2.jac;
    for r in 0..n2r {
        let rows = r as f64 - f2.row0;
        for c in 0..n2c {
            let cols = c as f64 - f2.col0;
            let u = rows * j[0][0] + cols * j[0][1];
            let v = rows * j[1][0] + cols * j[1][1];
            let r1 = (f1.row0 + u * jinv[0][0] + v * jinv[0][1]).round_ties_even();
            let c1 = (f1.col0 + u * jinv[1][0] + v * jinv[1][1]).round_ties_even();
            if r1 >= 0.0 && r1 < n1r as f64 && c1 >= 0.0 && c1 < n1c as f64 {
                dst[r * n2c + c] = src[r1 as usize * n1c + c1 as usize];
            }
        }
    }
}

/// 2 rounds of 3x3 (8-neighbour) growth of the non-zero pixels (`_expand_mask(rounds=2)`).
fn expand2(mask: &[i32], nr: usize, nc: usize) -> Vec<bool> {
    let mut cur: Vec<bool> = mask.iter().map(|&m| m != 0).collect();
    for _ in 0..2 {
        let mut next = cur.clone();
        for r in 0..nr {
            for c in 0..nc {
                if !cur[r * nc + c] {
                    continue;
                }
                for rr in r.saturating_sub(1)..(r + 2).min(nr) {
                    for cc in c.saturating_sub(1)..(c + 2).min(nc) {
                        next[rr * nc + cc] = true;
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

/// Bright-star flag propagation over all bands of one object (ngmixer `_get_extra_bitmasks`
/// and `_prop_extra_bitmasks`). `se[b]` are the SE observations of band `b` (flagged
/// placeholders included), `coadd[b]` its coadd list. Weights (`weight`, `weight_raw`,
/// `weight_us`) of usable SE observations are zeroed where the dilated mask is set and the
/// observation's seg is 0. Observations whose stamp no longer has the MEDS box shape (e.g.
/// trimmed) are left alone.
///
/// # Errors
/// Reading the bmask cutouts or the tables.
pub fn propagate_star_flags(
    files: &[MedsFile],
    iobj: usize,
    coadd: &[Vec<Observation>],
    se: &mut [Vec<Observation>],
    ignore_mask: i32,
) -> Result<()> {
    let mut buf = Vec::new();
    // per target band t: mask on the band-t coadd grid
    let mut masks = Vec::with_capacity(files.len());
    for (t, ft) in files.iter().enumerate() {
        if !ft.has_cutouts(CutoutKind::Bmask) {
            masks.push(None);
            continue;
        }
        let (nr, nc) = ft.cutout_i32(CutoutKind::Bmask, iobj, 0, &mut buf)?;
        let mut mask = vec![0i32; nr * nc];
        if coadd
            .get(t)
            .and_then(|c| c.first())
            .is_some_and(|o| o.flags == 0)
        {
            mask.copy_from_slice(&buf);
        }
        let ft0 = frame(ft, iobj, 0)?;
        for (b, list) in se.iter().enumerate() {
            let fb = &files[b];
            if !fb.has_cutouts(CutoutKind::Bmask) {
                continue;
            }
            for obs in list.iter().filter(|o| o.flags == 0) {
                let icut = obs.meta.cutout_index as usize;
                let (sr, sc) = fb.cutout_i32(CutoutKind::Bmask, iobj, icut, &mut buf)?;
                let ind: Vec<i32> = buf
                    .iter()
                    .map(|&m| {
                        let sat = m & (SATURATE | INTERP) != 0;
                        let star = m & STAR != 0;
                        i32::from(sat && star && m & ignore_mask == 0)
                    })
                    .collect();
                let mut im2 = vec![0i32; nr * nc];
                interpolate_into(
                    &frame(fb, iobj, icut)?,
                    &ind,
                    sr,
                    sc,
                    &ft0,
                    &mut im2,
                    nr,
                    nc,
                );
                for (m, v) in mask.iter_mut().zip(&im2) {
                    *m |= v;
                }
            }
        }
        masks.push(Some((mask, nr, nc, ft0)));
    }
    for (b, list) in se.iter_mut().enumerate() {
        let Some((mask, nr, nc, f0)) = &masks[b] else {
            continue;
        };
        let fb = &files[b];
        for obs in list.iter_mut().filter(|o| o.flags == 0) {
            let icut = obs.meta.cutout_index as usize;
            // ngmixer interpolates into an array of the coadd cutout's shape
            if obs.dims() != (*nr, *nc) {
                continue;
            }
            let mut m2 = vec![0i32; nr * nc];
            interpolate_into(
                f0,
                mask,
                *nr,
                *nc,
                &frame(fb, iobj, icut)?,
                &mut m2,
                *nr,
                *nc,
            );
            let grown = expand2(&m2, *nr, *nc);
            let Some(seg) = obs.seg.as_ref() else {
                continue;
            };
            let zero: Vec<bool> = grown
                .iter()
                .zip(seg.iter())
                .map(|(&g, &s)| g && s == 0)
                .collect();
            if !zero.iter().any(|&z| z) {
                continue;
            }
            let apply = |a: &mut ndarray::Array2<f64>| {
                for (w, &z) in a.iter_mut().zip(&zero) {
                    if z {
                        *w = 0.0;
                    }
                }
            };
            for a in [obs.weight_raw.as_mut(), obs.weight_us.as_mut()]
                .into_iter()
                .flatten()
            {
                apply(a);
            }
            let mut w = obs.weight.clone();
            apply(&mut w);
            if obs.set_weight(w).is_err() {
                let meta = std::mem::take(&mut obs.meta);
                *obs = Observation::placeholder(crate::flags::IMAGE_FLAGS, meta);
            }
        }
    }
    Ok(())
}

/// `_flag_y1_stellarhalo_masked`: 1 if a usable observation (coadd lists first, then SE) has a
/// pixel with the STAR bit in its (file) bmask and seg equal to the object's `number`.
///
/// # Errors
/// Reading the bmask cutouts.
pub fn stellar_halo_flag(
    files: &[MedsFile],
    iobj: usize,
    number: i64,
    coadd: &[Vec<Observation>],
    se: &[Vec<Observation>],
) -> Result<i32> {
    let mut buf = Vec::new();
    for lists in [coadd, se] {
        for (b, list) in lists.iter().enumerate() {
            let f = &files[b];
            if !f.has_cutouts(CutoutKind::Bmask) {
                continue;
            }
            for obs in list.iter().filter(|o| o.flags == 0) {
                let Some(seg) = obs.seg.as_ref() else {
                    continue;
                };
                let icut = obs.meta.cutout_index as usize;
                f.cutout_i32(CutoutKind::Bmask, iobj, icut, &mut buf)?;
                if buf.len() != seg.len() {
                    continue;
                }
                if buf
                    .iter()
                    .zip(seg.iter())
                    .any(|(&m, &s)| m & STAR != 0 && s as i64 == number)
                {
                    return Ok(1);
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rounds_make_a_5x5_block() {
        let mut m = vec![0; 49];
        m[3 * 7 + 3] = 9;
        let g = expand2(&m, 7, 7);
        for r in 0..7 {
            for c in 0..7 {
                let inside = (1..=5).contains(&r) && (1..=5).contains(&c);
                assert_eq!(g[r * 7 + c], inside, "({r}, {c})");
            }
        }
    }
}
