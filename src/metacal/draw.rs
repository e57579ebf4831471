//! The final `drawImage` of one metacal image by FFT (METACAL.md §2.4–2.6, §3.3, §6), and the
//! fitgauss / dilate target PSF images.

use ndarray::Array2;
use rustfft::num_complex::Complex64;

use super::interp::{good_fft_size, KVALUE_ACCURACY};
use super::kimage::{fold_kimage, irfft2_centered, KStamp, FOLDING_THRESHOLD, MAXK_THRESHOLD};

const PI: f64 = std::f64::consts::PI;
/// GSParams `minimum_fft_size`.
const MINIMUM_FFT_SIZE: usize = 128;
/// Gaussian `stepk` radius: `max(sqrt(-2 ln folding_threshold), stepk_minimum_hlr · 1.17741)`.
fn gauss_stepk_radius() -> f64 {
    (-2.0 * FOLDING_THRESHOLD.ln())
        .sqrt()
        .max(5.0 * 1.177410022515475)
}

/// A 2×2 matrix `[[a, b], [c, d]]`.
pub(crate) type M2 = [[f64; 2]; 2];

/// `0.5 |hypot(a+d, b-c) + hypot(a-d, b+c)|` (GalSim `maxLinearScale`-style major scale).
pub(crate) fn max_scale(m: &M2) -> f64 {
    let h1 = (m[0][0] + m[1][1]).hypot(m[0][1] - m[1][0]);
    let h2 = (m[0][0] - m[1][1]).hypot(m[0][1] + m[1][0]);
    0.5 * (h1 + h2).abs()
}

/// The minor scale `0.5 |h1 - h2|`.
pub(crate) fn min_scale(m: &M2) -> f64 {
    let h1 = (m[0][0] + m[1][1]).hypot(m[0][1] - m[1][0]);
    let h2 = (m[0][0] - m[1][1]).hypot(m[0][1] + m[1][0]);
    0.5 * (h1 - h2).abs()
}

pub(crate) fn inv2(m: &M2) -> Option<M2> {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    Some([
        [m[1][1] / det, -m[0][1] / det],
        [-m[1][0] / det, m[0][0] / det],
    ])
}

/// `Mᵀ k`.
#[inline(always)]
fn mt_mul(m: &M2, k: (f64, f64)) -> (f64, f64) {
    (m[0][0] * k.0 + m[1][0] * k.1, m[0][1] * k.0 + m[1][1] * k.1)
}

/// GalSim's shear matrix `S = [[1+g1, g2], [g2, 1-g1]] / sqrt(1 - g²)`.
pub(crate) fn shear_matrix(g1: f64, g2: f64) -> M2 {
    let f = 1.0 / (1.0 - g1 * g1 - g2 * g2).sqrt();
    [[(1.0 + g1) * f, g2 * f], [g2 * f, (1.0 - g1) * f]]
}

#[inline(always)]
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let a = PI * x;
        a.sin() / a
    }
}

/// The local wcs of both stamps: world `(u, v) = J (x = col, y = row)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wcs {
    pub j: M2,
    pub jinv: M2,
}

impl Wcs {
    /// `(u, v)` Jacobian of the pixel box `pixel_w = J.toWorld(Pixel(1))` in world k:
    /// `sinc((Jᵀk)_x/2π) sinc((Jᵀk)_y/2π)`.
    #[inline(always)]
    fn pixw(&self, k: (f64, f64)) -> f64 {
        let kn = mt_mul(&self.j, k);
        sinc(kn.0 / (2.0 * PI)) * sinc(kn.1 / (2.0 * PI))
    }

    fn diagonal(&self) -> bool {
        self.jinv[0][1] == 0.0 && self.jinv[1][0] == 0.0
    }
}

/// The stamp's true-centre shift: `+½` pixel per even dimension (x, y).
pub(crate) fn true_center_shift(shape: (usize, usize)) -> (f64, f64) {
    let (ny, nx) = shape;
    (
        if nx % 2 == 0 { 0.5 } else { 0.0 },
        if ny % 2 == 0 { 0.5 } else { 0.0 },
    )
}

/// kValue of the (shifted) interpolated PSF stamp at native-pixel k.
#[inline(always)]
fn shifted_kvalue(s: &KStamp, kn: (f64, f64), c: (f64, f64)) -> Complex64 {
    let v = s.kvalue(kn.0, kn.1);
    if c.0 == 0.0 && c.1 == 0.0 {
        v
    } else {
        v * Complex64::from_polar(1.0, -(kn.0 * c.0 + kn.1 * c.1))
    }
}

/// The reconvolution kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reconv {
    /// `Gaussian(sigma, flux)`, `sigma` already dilated by `1 + 2|g|` (world units).
    Gauss { sigma: f64, flux: f64 },
    /// `psf=None`: the interpolated PSF stamp without its pixel, dilated (and sheared for the
    /// `*_psf` types), reconvolved by the world pixel.
    Dilate {
        dilation: f64,
        psf_shear: Option<(f64, f64)>,
    },
}

/// The sizes GalSim chose for one draw (compare with the oracle's `final_draw`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawInfo {
    /// Final FFT size N.
    pub n: usize,
    /// k-image size Nk (`> n` means the k image was folded).
    pub nk: usize,
    /// stepk of the final profile, pixel units.
    pub stepk_pix: f64,
    /// maxk of the final profile, pixel units.
    pub maxk_pix: f64,
}

/// Everything shared by the draws of one observation.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub wcs: Wcs,
    pub psf: &'a KStamp,
    pub psf_stepk_world: f64,
    pub psf_maxk_world: f64,
}

impl Ctx<'_> {
    /// World `(stepk, maxk)` of the reconvolution kernel (pixel already included for dilate).
    fn reconv_scales(&self, r: &Reconv) -> (f64, f64) {
        match *r {
            Reconv::Gauss { sigma, .. } => (
                PI / (gauss_stepk_radius() * sigma),
                (-2.0 * MAXK_THRESHOLD.ln()).sqrt() / sigma,
            ),
            Reconv::Dilate {
                dilation,
                psf_shear,
            } => {
                let pix_stepk = PI / max_scale(&self.wcs.j);
                let pix_maxk = 2.0 / MAXK_THRESHOLD / min_scale(&self.wcs.j);
                let mut st = comb(self.psf_stepk_world, pix_stepk) / dilation;
                let mut mk = self.psf_maxk_world.min(pix_maxk) / dilation;
                if let Some((g1, g2)) = psf_shear {
                    let s = shear_matrix(g1, g2);
                    st /= max_scale(&s);
                    mk /= min_scale(&s);
                }
                (comb(st, pix_stepk), mk.min(pix_maxk))
            }
        }
    }

    /// The reconvolution kernel's world-k value.
    #[inline(always)]
    fn reconv_k(&self, r: &Reconv, kw: (f64, f64)) -> Complex64 {
        match *r {
            Reconv::Gauss { sigma, flux } => {
                let ksq = sigma * sigma * (kw.0 * kw.0 + kw.1 * kw.1);
                let v = if self.wcs.diagonal() {
                    flux * (-0.5 * ksq).exp()
                } else {
                    // SBGaussian::fillKImage, non-separable branch
                    let ksq_max = -2.0 * KVALUE_ACCURACY.ln();
                    let ksq_min = (KVALUE_ACCURACY * 48.0).cbrt();
                    if ksq > ksq_max {
                        0.0
                    } else if ksq < ksq_min {
                        flux * (1.0 - 0.5 * ksq * (1.0 - 0.25 * ksq))
                    } else {
                        flux * (-0.5 * ksq).exp()
                    }
                };
                Complex64::new(v, 0.0)
            }
            Reconv::Dilate {
                dilation,
                psf_shear,
            } => {
                let mut kd = kw;
                if let Some((g1, g2)) = psf_shear {
                    kd = mt_mul(&shear_matrix(g1, g2), kd);
                }
                kd = (kd.0 * dilation, kd.1 * dilation);
                let kn = mt_mul(&self.wcs.j, kd);
                let pk = shifted_kvalue(self.psf, kn, true_center_shift(self.psf.shape));
                let pd = self.wcs.pixw(kd);
                let inv = if pd.abs() > KVALUE_ACCURACY {
                    1.0 / pd
                } else {
                    1.0 / KVALUE_ACCURACY
                };
                pk * (inv * self.wcs.pixw(kw))
            }
        }
    }

    /// The metacal image of `gal` sheared by `(g1, g2)` (METACAL.md §2.6).
    pub fn draw_galaxy(&self, gal: &KStamp, g: (f64, f64), r: &Reconv) -> (Array2<f64>, DrawInfo) {
        let wcs = &self.wcs;
        let (ny, nx) = gal.shape;
        let s = shear_matrix(g.0, g.1);
        // stepk chain
        let gal_stepk = gal.stepk_pix / min_scale(&wcs.j);
        let nopsf_st = comb(gal_stepk, self.psf_stepk_world) / max_scale(&s);
        let (r_st, r_mk) = self.reconv_scales(r);
        let conv_st = comb(nopsf_st, r_st);
        let off = true_center_shift((ny, nx));
        let mut st = conv_st / max_scale(&wcs.jinv);
        if off != (0.0, 0.0) {
            st = PI / (PI / st + off.0.hypot(off.1));
        }
        let st = comb(st, PI);
        // maxk chain
        let gal_maxk = gal.maxk_pix() / max_scale(&wcs.j);
        let nopsf_mk = gal_maxk.min(self.psf_maxk_world) / min_scale(&s);
        let conv_mk = nopsf_mk.min(r_mk);
        let mk = (conv_mk / min_scale(&wcs.jinv)).min(2.0 / MAXK_THRESHOLD);
        let (n, nk) = fft_sizes(st, mk, (ny, nx));
        let info = DrawInfo {
            n,
            nk,
            stepk_pix: st,
            maxk_pix: mk,
        };

        let psf_min_acc = self.psf.flux * KVALUE_ACCURACY;
        let maxk2 = self.psf_maxk_world * self.psf_maxk_world;
        let cg = true_center_shift(gal.shape);
        let cp = true_center_shift(self.psf.shape);
        let ox = if nx % 2 == 0 { -0.5 } else { 0.0 };
        let oy = if ny % 2 == 0 { -0.5 } else { 0.0 };
        let dk = 2.0 * PI / n as f64;
        let h = (nk / 2) as i64;
        let kc = (h + 1) as usize;
        let mut kim = vec![Complex64::new(0.0, 0.0); (nk + 1) * kc];
        let pixx: Vec<f64> = (0..=h).map(|i| sinc(i as f64 * dk / (2.0 * PI))).collect();
        for iy in -h..=h {
            let ky = iy as f64 * dk;
            let piy = sinc(ky / (2.0 * PI));
            let row = (iy + h) as usize * kc;
            for ix in 0..=h {
                let kx = ix as f64 * dk;
                let kw = mt_mul(&wcs.jinv, (kx, ky));
                let ks = mt_mul(&s, kw);
                let kn = mt_mul(&wcs.j, ks);
                let fp = shifted_kvalue(self.psf, kn, cp);
                let d = if ks.0 * ks.0 + ks.1 * ks.1 > maxk2 {
                    Complex64::new(0.0, 0.0)
                } else if fp.norm() > psf_min_acc {
                    1.0 / fp
                } else {
                    Complex64::new(1.0 / psf_min_acc, 0.0)
                };
                if d == Complex64::new(0.0, 0.0) {
                    continue;
                }
                let fg = shifted_kvalue(gal, kn, cg);
                let t = self.reconv_k(r, kw);
                let ph = Complex64::from_polar(pixx[ix as usize] * piy, -(kx * ox + ky * oy));
                kim[row + ix as usize] = fg * d * t * ph;
            }
        }
        (finish(&kim, nk, n, (ny, nx)), info)
    }

    /// The dilate-mode PSF image: `psf_grown.drawImage(psf stamp, method='no_pixel')`.
    pub fn draw_dilated_psf(&self, r: &Reconv) -> (Array2<f64>, DrawInfo) {
        let wcs = &self.wcs;
        let (ny, nx) = self.psf.shape;
        let (r_st, r_mk) = self.reconv_scales(r);
        let off = true_center_shift((ny, nx));
        let mut st = r_st / max_scale(&wcs.jinv);
        if off != (0.0, 0.0) {
            st = PI / (PI / st + off.0.hypot(off.1));
        }
        let mk = r_mk / min_scale(&wcs.jinv);
        let (n, nk) = fft_sizes(st, mk, (ny, nx));
        let info = DrawInfo {
            n,
            nk,
            stepk_pix: st,
            maxk_pix: mk,
        };
        let ox = if nx % 2 == 0 { -0.5 } else { 0.0 };
        let oy = if ny % 2 == 0 { -0.5 } else { 0.0 };
        let dk = 2.0 * PI / n as f64;
        let h = (nk / 2) as i64;
        let kc = (h + 1) as usize;
        let mut kim = vec![Complex64::new(0.0, 0.0); (nk + 1) * kc];
        for iy in -h..=h {
            let ky = iy as f64 * dk;
            for ix in 0..=h {
                let kx = ix as f64 * dk;
                let kw = mt_mul(&wcs.jinv, (kx, ky));
                let t = self.reconv_k(r, kw);
                let ph = Complex64::from_polar(1.0, -(kx * ox + ky * oy));
                kim[(iy + h) as usize * kc + ix as usize] = t * ph;
            }
        }
        (finish(&kim, nk, n, (ny, nx)), info)
    }
}

/// `(a⁻² + b⁻²)^(-½)`.
#[inline]
fn comb(a: f64, b: f64) -> f64 {
    (a.powi(-2) + b.powi(-2)).powf(-0.5)
}

/// `drawFFT_makeKImage`: N from stepk and the image size, Nk from maxk.
fn fft_sizes(stepk: f64, maxk: f64, shape: (usize, usize)) -> (usize, usize) {
    let (ny, nx) = shape;
    let nd = 2.0 * PI / stepk;
    let ngood = (nd * (1.0 - 1.0e-12)).ceil();
    let ngood = if ngood.is_finite() && ngood > 0.0 && ngood < 1.0e7 {
        ngood as usize
    } else {
        MINIMUM_FFT_SIZE
    };
    let ngood = 2 * ngood.div_ceil(2);
    let xmin = 1 - ((nx + 2) / 2) as i64;
    let ymin = 1 - ((ny + 2) / 2) as i64;
    let ext = [
        xmin.abs(),
        (xmin + nx as i64 - 1).abs(),
        ymin.abs(),
        (ymin + ny as i64 - 1).abs(),
    ];
    let image_n = ((*ext.iter().max().unwrap_or(&0) * 2) as usize).max(nx.max(ny));
    let n = good_fft_size(ngood.max(image_n)).max(MINIMUM_FFT_SIZE);
    let dk = 2.0 * PI / n as f64;
    let nk = if n as f64 * dk / 2.0 > maxk {
        n
    } else {
        2 * (maxk / dk).ceil() as usize
    };
    (n, nk)
}

/// Fold, inverse FFT and crop to the stamp (`subImage` of the centred output).
fn finish(kim: &[Complex64], nk: usize, n: usize, shape: (usize, usize)) -> Array2<f64> {
    let (ny, nx) = shape;
    let hfold = fold_kimage(kim, nk, n);
    let real = irfft2_centered(&hfold, n);
    let xmin = 1 - ((nx + 2) / 2) as i64;
    let ymin = 1 - ((ny + 2) / 2) as i64;
    let x0 = (n as i64 / 2 + xmin) as usize;
    let y0 = (n as i64 / 2 + ymin) as usize;
    Array2::from_shape_fn((ny, nx), |(r, c)| real[(y0 + r) * n + x0 + c])
}

/// `Gaussian(sigma, flux).drawImage(image=(ny, nx) stamp, wcs=J, method='no_pixel')`:
/// `|det J| f/(2πσ²) exp(-|J (x - xc)|²/(2σ²))` at pixel centres about the true centre.
pub(crate) fn gauss_psf_image(shape: (usize, usize), j: &M2, sigma: f64, flux: f64) -> Array2<f64> {
    let (ny, nx) = shape;
    let a = (j[0][0] * j[1][1] - j[0][1] * j[1][0]).abs();
    let xc = (nx as f64 - 1.0) / 2.0;
    let yc = (ny as f64 - 1.0) / 2.0;
    let norm = a * flux / (2.0 * PI * sigma * sigma);
    Array2::from_shape_fn((ny, nx), |(r, c)| {
        let dx = c as f64 - xc;
        let dy = r as f64 - yc;
        let u = j[0][0] * dx + j[0][1] * dy;
        let v = j[1][0] * dx + j[1][1] * dy;
        norm * (-0.5 * (u * u + v * v) / (sigma * sigma)).exp()
    })
}
