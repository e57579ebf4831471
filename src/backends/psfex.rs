//! PSFEx PSF models (`.psf` files), reconstructed the way esheldon/psfex (0.4.0) does it.
//!
//! A model is a binary table `PSF_DATA` with one row holding `PSF_MASK`, an array of
//! `PSFAXIS3` component images of `PSFAXIS2` rows x `PSFAXIS1` columns sampled every
//! `1/PSF_SAMP` pixels. At a position `(row, col)` the components are combined with the
//! polynomial basis of `x = (col - POLZERO1)/POLSCAL1`, `y = (row - POLZERO2)/POLSCAL2`
//! (order `x^i y^j` for `j` in `0..=d`, `i` in `0..=d-j`), then resampled to the image pixel grid
//! with the SExtractor Lanczos-4 interpolant, shifted by the sub-pixel offset of the position.
//!
//! `row` and `col` are passed to the polynomial unchanged: ngmixer calls `get_rec` with the
//! 0-based MEDS `orig_row`/`orig_col`, while PSFEx fitted 1-based SExtractor positions.
//! Reproducing ngmixer means doing the same (the one-pixel shift of the polynomial is
//! negligible).

use std::path::{Path, PathBuf};

use super::meds::{ColumnData, Columns};
use crate::error::{Error, Result};

/// The extension holding the model.
pub const PSF_DATA: &str = "PSF_DATA";

/// FWHM to sigma factor used by esheldon/psfex `get_sigma`.
const FWHM_FAC: f64 = 2.3548200450309493;
/// The (truncated) PI macro of the C code, kept for bit-compatibility.
#[allow(clippy::approx_constant)]
const PI: f64 = 3.1415926535898;
const INTERPFAC: f64 = 4.0;
const INTERPW: i64 = 8;

/// A PSFEx model.
#[derive(Debug, Clone)]
pub struct PsfEx {
    path: PathBuf,
    /// Component images, `ncomp` blocks of `h1 * w1` values, row-major.
    mask: Vec<f64>,
    /// `PSFAXIS1`: columns of a component.
    w1: usize,
    /// `PSFAXIS2`: rows of a component.
    h1: usize,
    ncomp: usize,
    poldeg: usize,
    polzero: [f64; 2],
    polscal: [f64; 2],
    psf_samp: f64,
    fwhm: f64,
    /// Reconstruction size (rows, cols).
    nrow: usize,
    ncol: usize,
}

fn key_err(path: &Path, msg: String) -> Error {
    Error::Fits {
        path: path.to_path_buf(),
        hdu: Some(PSF_DATA.to_string()),
        msg,
    }
}

/// Polynomial basis in PSFEx order, computed by the same recurrence as `poly_func` of
/// PSFEx (two context dimensions in one group), so the products round identically.
fn poly_basis(deg: usize, pos: [f64; 2], basis: &mut Vec<f64>) {
    const NDIM: usize = 2;
    let ncoeff = (deg + 1) * (deg + 2) / 2;
    basis.clear();
    let mut xpol = [1.0f64; NDIM];
    let mut expo = [0i64; NDIM];
    let mut gexpo = deg as i64;
    if gexpo != 0 {
        gexpo -= 1;
    }
    basis.push(1.0);
    expo[0] = 1;
    xpol[0] = pos[0];
    for _ in 1..ncoeff {
        basis.push(xpol[0]);
        let mut p = 0; // index into pos (advances on the "carry" branch)
        for d in 0..NDIM {
            let g = gexpo;
            gexpo -= 1;
            if g != 0 {
                expo[d] += 1;
                xpol[d] *= pos[p];
                let xval = xpol[d];
                for x in xpol[..d].iter_mut() {
                    *x = xval;
                }
                break;
            } else {
                gexpo = expo[d];
                expo[d] = 0;
                xpol[d] = 1.0;
                p += 1;
            }
        }
    }
}

/// The `INTERPF` Lanczos-4 macro, with the single-precision `sinf` of the C code.
#[inline]
fn interpf(x: f64) -> f64 {
    if x < 1e-5 && x > -1e-5 {
        1.0
    } else if !(-INTERPFAC..=INTERPFAC).contains(&x) {
        0.0
    } else {
        let s = ((PI * x) as f32).sin() * ((PI / INTERPFAC * x) as f32).sin();
        s as f64 / (PI * PI / INTERPFAC * x * x)
    }
}

/// Interpolation masks along one axis: for each output pixel its first input index, and
/// normalised weights.
fn masks(
    start: f64,
    n2: usize,
    step: f64,
    size1: i64,
    starts: &mut Vec<usize>,
    w: &mut Vec<Vec<f64>>,
) {
    let hm = INTERPW / 2 - 1;
    starts.clear();
    w.clear();
    let mut x1 = start;
    for _ in 0..n2 {
        let ix1 = x1 as i64;
        let mut ix = ix1 - hm;
        let mut dxm = ix1 as f64 - x1 - hm as f64;
        let mut n;
        if ix < 0 {
            n = INTERPW + ix;
            dxm -= ix as f64;
            ix = 0;
        } else {
            n = INTERPW;
        }
        if n > size1 - ix {
            n = size1 - ix;
        }
        let n = n.max(0) as usize;
        let mut m = Vec::with_capacity(n);
        let mut x = dxm;
        let mut norm = 0.0;
        for _ in 0..n {
            let v = interpf(x);
            norm += v;
            m.push(v);
            x += 1.0;
        }
        let inv = if norm > 0.0 { 1.0 / norm } else { 1.0 };
        for v in m.iter_mut() {
            *v *= inv;
        }
        starts.push(ix as usize);
        w.push(m);
        x1 += step;
    }
}

/// SExtractor `vignet_resample` as in esheldon/psfex: `pix1` (`h1 x w1`) to `pix2`
/// (`h2 x w2`), shifted by `(dx, dy)` input pixels, with input step `step` per output pixel.
fn vignet_resample(
    pix1: &[f64],
    w1: usize,
    h1: usize,
    pix2: &mut [f64],
    w2: usize,
    h2: usize,
    dx: f64,
    dy: f64,
    step: f64,
) {
    pix2.iter_mut().for_each(|v| *v = 0.0);
    let (w1i, h1i, w2i, h2i) = (w1 as i64, h1 as i64, w2 as i64, h2 as i64);
    let xc1 = (w1i / 2) as f64;
    let xc2 = (w2i / 2) as f64;
    let mut xs1 = xc1 + dx - xc2 * step;
    if (xs1 as i64) >= w1i {
        return;
    }
    let mut ixs2 = 0i64;
    if xs1 < 0.0 {
        let dix2 = (1.0 - xs1 / step) as i64;
        if dix2 >= w2i {
            return;
        }
        ixs2 += dix2;
        xs1 += dix2 as f64 * step;
    }
    let mut nx2 = ((w1i - 1) as f64 - xs1) / step + 1.0;
    nx2 = nx2.trunc();
    let mut nx2 = nx2 as i64;
    if nx2 > w2i - ixs2 {
        nx2 = w2i - ixs2;
    }
    if nx2 <= 0 {
        return;
    }
    let yc1 = (h1i / 2) as f64;
    let yc2 = (h2i / 2) as f64;
    let mut ys1 = yc1 + dy - yc2 * step;
    if (ys1 as i64) >= h1i {
        return;
    }
    let mut iys2 = 0i64;
    if ys1 < 0.0 {
        let diy2 = (1.0 - ys1 / step) as i64;
        if diy2 >= h2i {
            return;
        }
        iys2 += diy2;
        ys1 += diy2 as f64 * step;
    }
    let mut ny2 = (((h1i - 1) as f64 - ys1) / step + 1.0) as i64;
    if ny2 > h2i - iys2 {
        ny2 = h2i - iys2;
    }
    if ny2 <= 0 {
        return;
    }
    let hmh = INTERPW / 2 - 1;
    let mut iys1a = ys1 as i64;
    if iys1a < 0 || iys1a - hmh < 0 {
        iys1a = 0;
    } else {
        iys1a -= hmh;
    }
    let mut ny1 = (ys1 + ny2 as f64 * step) as i64 + INTERPW - hmh;
    if ny1 > h1i {
        ny1 = h1i;
    }
    ny1 -= iys1a;
    ys1 -= iys1a as f64;
    if ny1 <= 0 {
        return;
    }
    let (nx2, ny2, ny1) = (nx2 as usize, ny2 as usize, ny1 as usize);
    let (ixs2, iys2, iys1a) = (ixs2 as usize, iys2 as usize, iys1a as usize);

    let (mut xstart, mut xw) = (Vec::new(), Vec::new());
    masks(xs1, nx2, step, w1i, &mut xstart, &mut xw);
    // x pass: tmp[k][j], k over ny1 input rows from iys1a.
    let mut tmp = vec![0.0; ny1 * nx2];
    for k in 0..ny1 {
        let row = &pix1[(iys1a + k) * w1..(iys1a + k + 1) * w1];
        for j in 0..nx2 {
            let mut val = 0.0;
            for (i, &wi) in xw[j].iter().enumerate() {
                val += wi * row[xstart[j] + i];
            }
            tmp[k * nx2 + j] = val;
        }
    }
    let (mut ystart, mut yw) = (Vec::new(), Vec::new());
    masks(ys1, ny2, step, ny1 as i64, &mut ystart, &mut yw);
    for j in 0..nx2 {
        for jj in 0..ny2 {
            let mut val = 0.0;
            for (i, &wi) in yw[jj].iter().enumerate() {
                val += wi * tmp[(ystart[jj] + i) * nx2 + j];
            }
            pix2[(iys2 + jj) * w2 + ixs2 + j] = val;
        }
    }
}

impl PsfEx {
    /// Read a PSFEx model from the `PSF_DATA` extension of `path`.
    ///
    /// # Errors
    /// [`Error::Fits`] for an unreadable file or extension, a missing or invalid header key
    /// (named in the message: `POLNAXIS` must be 2, `POLNGRP` 1, `PSFNAXIS` 3, `PSFAXIS3`
    /// `(d+1)(d+2)/2` for `POLDEG1 = d`, positive sizes, `PSF_SAMP` and `POLSCAL*` non-zero),
    /// or a `PSF_MASK` column of the wrong size.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut h = super::meds::FitsHandle::open(path)?;
        let cols: Columns = h.read_table(PSF_DATA)?;
        let ikey = |h: &mut super::meds::FitsHandle, key: &str| -> Result<i64> {
            h.key_i64(PSF_DATA, key)?
                .ok_or_else(|| key_err(path, format!("header key {key} is missing")))
        };
        let fkey = |h: &mut super::meds::FitsHandle, key: &str| -> Result<f64> {
            h.key_f64(PSF_DATA, key)?
                .ok_or_else(|| key_err(path, format!("header key {key} is missing")))
        };
        let expect = |key: &str, got: i64, want: i64| -> Result<()> {
            if got == want {
                Ok(())
            } else {
                Err(key_err(
                    path,
                    format!("header key {key} = {got}, expected {want}"),
                ))
            }
        };
        expect("POLNAXIS", ikey(&mut h, "POLNAXIS")?, 2)?;
        expect("POLNGRP", ikey(&mut h, "POLNGRP")?, 1)?;
        expect("PSFNAXIS", ikey(&mut h, "PSFNAXIS")?, 3)?;
        let poldeg = ikey(&mut h, "POLDEG1")?;
        if !(0..=20).contains(&poldeg) {
            return Err(key_err(
                path,
                format!("header key POLDEG1 = {poldeg} out of range [0, 20]"),
            ));
        }
        let poldeg = poldeg as usize;
        let mut axes = [0usize; 3];
        for (i, a) in axes.iter_mut().enumerate() {
            let key = format!("PSFAXIS{}", i + 1);
            let v = ikey(&mut h, &key)?;
            if !(1..=1 << 16).contains(&v) {
                return Err(key_err(
                    path,
                    format!("header key {key} = {v} must be in [1, 65536]"),
                ));
            }
            *a = v as usize;
        }
        let [w1, h1, ncomp] = axes;
        expect(
            "PSFAXIS3",
            ncomp as i64,
            ((poldeg + 1) * (poldeg + 2) / 2) as i64,
        )?;
        let polzero = [fkey(&mut h, "POLZERO1")?, fkey(&mut h, "POLZERO2")?];
        let polscal = [fkey(&mut h, "POLSCAL1")?, fkey(&mut h, "POLSCAL2")?];
        for (i, s) in polscal.iter().enumerate() {
            if *s == 0.0 || !s.is_finite() {
                return Err(key_err(
                    path,
                    format!(
                        "header key POLSCAL{} = {s} must be finite and non-zero",
                        i + 1
                    ),
                ));
            }
        }
        for (i, z) in polzero.iter().enumerate() {
            if !z.is_finite() {
                return Err(key_err(
                    path,
                    format!("header key POLZERO{} = {z} must be finite", i + 1),
                ));
            }
        }
        let psf_samp = fkey(&mut h, "PSF_SAMP")?;
        if !(psf_samp > 0.0 && psf_samp.is_finite()) {
            return Err(key_err(
                path,
                format!("header key PSF_SAMP = {psf_samp} must be positive"),
            ));
        }
        let fwhm = fkey(&mut h, "PSF_FWHM")?;

        let col = cols
            .get("PSF_MASK")
            .ok_or_else(|| key_err(path, "column 'PSF_MASK' is missing".into()))?;
        let data = match &col.data {
            ColumnData::Float(v) => v,
            _ => {
                return Err(key_err(
                    path,
                    "column 'PSF_MASK' is not floating-point".into(),
                ))
            }
        };
        let n = w1 * h1 * ncomp;
        if cols.nrows() < 1 || col.repeat != n || data.len() < n {
            return Err(key_err(
                path,
                format!(
                    "column 'PSF_MASK' holds {} values per row over {} rows, expected \
                     PSFAXIS1 x PSFAXIS2 x PSFAXIS3 = {n}",
                    col.repeat,
                    cols.nrows()
                ),
            ));
        }
        let mask = data[..n].to_vec();

        // Reconstruction size: ceil(size * samp) in single precision, made odd.
        let recon = |size: usize| -> Result<usize> {
            let v = ((size as f32) * (psf_samp as f32)).ceil();
            if !(1.0..=65536.0).contains(&v) {
                return Err(key_err(
                    path,
                    format!("header key PSF_SAMP = {psf_samp} gives a reconstruction size {v}"),
                ));
            }
            let mut v = v as usize;
            if v.is_multiple_of(2) {
                v += 1;
            }
            Ok(v)
        };
        let ncol = recon(w1)?;
        let nrow = recon(h1)?;
        Ok(Self {
            path: path.to_path_buf(),
            mask,
            w1,
            h1,
            ncomp,
            poldeg,
            polzero,
            polscal,
            psf_samp,
            fwhm,
            nrow,
            ncol,
        })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reconstruction size `(nrow, ncol)` (the same at every position).
    pub fn rec_shape(&self) -> (usize, usize) {
        (self.nrow, self.ncol)
    }

    /// `PSF_SAMP`.
    pub fn psf_samp(&self) -> f64 {
        self.psf_samp
    }

    /// `PSF_FWHM` in pixels.
    pub fn fwhm(&self) -> f64 {
        self.fwhm
    }

    /// Sigma in pixels, `PSF_FWHM / 2.35482...`, position independent.
    pub fn get_sigma(&self) -> f64 {
        self.fwhm / FWHM_FAC
    }

    /// The PSF centre `(row, col)` in the reconstructed image for a position:
    /// `(nrow/2 + drow, ncol/2 + dcol)` with `drow = row - trunc(row + 0.5)`.
    pub fn get_center(&self, row: f64, col: f64) -> (f64, f64) {
        let dcol = col - (col + 0.5).trunc();
        let drow = row - (row + 0.5).trunc();
        ((self.nrow / 2) as f64 + drow, (self.ncol / 2) as f64 + dcol)
    }

    /// The PSF image at `(row, col)`: `(pixels row-major, nrow, ncol)`. Not normalised.
    pub fn get_rec(&self, row: f64, col: f64) -> (Vec<f64>, usize, usize) {
        let mut out = Vec::new();
        let (nr, nc) = self.get_rec_into(row, col, &mut out);
        (out, nr, nc)
    }

    /// As [`PsfEx::get_rec`], into a caller-owned buffer; returns `(nrow, ncol)`.
    pub fn get_rec_into(&self, row: f64, col: f64, out: &mut Vec<f64>) -> (usize, usize) {
        let x = (col - self.polzero[0]) / self.polscal[0];
        let y = (row - self.polzero[1]) / self.polscal[1];
        let mut basis = Vec::with_capacity(self.ncomp);
        poly_basis(self.poldeg, [x, y], &mut basis);
        let npix = self.w1 * self.h1;
        let mut loc = vec![0.0; npix];
        for (b, comp) in basis.iter().zip(self.mask.chunks_exact(npix)) {
            for (l, c) in loc.iter_mut().zip(comp) {
                *l += b * c;
            }
        }
        let dcol = col - (col + 0.5).trunc();
        let drow = row - (row + 0.5).trunc();
        let step = 1.0 / self.psf_samp;
        out.clear();
        out.resize(self.nrow * self.ncol, 0.0);
        vignet_resample(
            &loc,
            self.w1,
            self.h1,
            out,
            self.ncol,
            self.nrow,
            -dcol * step,
            -drow * step,
            step,
        );
        (self.nrow, self.ncol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_order() {
        let mut b = Vec::new();
        poly_basis(2, [2.0, 3.0], &mut b);
        assert_eq!(b, vec![1.0, 2.0, 4.0, 3.0, 6.0, 9.0]);
        poly_basis(3, [2.0, 3.0], &mut b);
        assert_eq!(b, vec![1.0, 2.0, 4.0, 8.0, 3.0, 6.0, 12.0, 9.0, 18.0, 27.0]);
        poly_basis(1, [2.0, 3.0], &mut b);
        assert_eq!(b, vec![1.0, 2.0, 3.0]);
        poly_basis(0, [2.0, 3.0], &mut b);
        assert_eq!(b, vec![1.0]);
    }

    #[test]
    fn lanczos_kernel() {
        assert_eq!(interpf(0.0), 1.0);
        assert_eq!(interpf(4.5), 0.0);
        assert!(interpf(1.0).abs() < 1e-6);
        assert!((interpf(0.5) - 0.62038).abs() < 1e-4);
    }
}
