//! GalSim's `SBInterpolatedImage` in k space (METACAL.md §2.2–2.3): the padded DFT of a stamp,
//! its quintic k-interpolation, the Lanczos15 factor, and the stamp's `stepk`/`maxk`; plus the
//! fold (`wrapImage`) and the inverse real FFT of the final draw (§2.6).

use ndarray::Array2;
use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;

use super::interp::{good_fft_size, quintic, Lanczos15};

/// GSParams `maxk_threshold`.
pub(crate) const MAXK_THRESHOLD: f64 = 1.0e-3;
/// GSParams `folding_threshold`.
pub(crate) const FOLDING_THRESHOLD: f64 = 5.0e-3;

/// The k-space representation of one interpolated stamp (pixel units, profile origin on the
/// GalSim integer centre `(nx/2, ny/2)`; the true-centre shift is applied by the caller).
#[derive(Debug, Clone)]
pub struct KStamp {
    /// Padded DFT size.
    pub n: usize,
    /// `F[q mod N][p mod N]`, row-major, `N × N`.
    f: Vec<Complex64>,
    /// Σ pixels.
    pub flux: f64,
    /// `2π u_max(Lanczos15)`, rad/pixel.
    pub maxk1: f64,
    /// Stamp shape `(ny, nx)`.
    pub shape: (usize, usize),
    /// stepk in pixel units before the wcs: `π / hypot(R, 15)`.
    pub stepk_pix: f64,
    maxk_pix: f64,
}

thread_local! {
    static PLANNER: std::cell::RefCell<FftPlanner<f64>> = std::cell::RefCell::new(FftPlanner::new());
    static RPLANNER: std::cell::RefCell<realfft::RealFftPlanner<f64>> =
        std::cell::RefCell::new(realfft::RealFftPlanner::new());
}

fn plan(n: usize, inverse: bool) -> std::sync::Arc<dyn rustfft::Fft<f64>> {
    PLANNER.with(|p| {
        let mut p = p.borrow_mut();
        if inverse {
            p.plan_fft_inverse(n)
        } else {
            p.plan_fft_forward(n)
        }
    })
}

/// In-place 2-D forward/inverse c2c FFT of a row-major `n × n` array (no normalisation).
pub(crate) fn fft2(data: &mut [Complex64], n: usize, inverse: bool) {
    let fft = plan(n, inverse);
    // rows
    fft.process(data);
    // columns via transpose
    let mut t = vec![Complex64::new(0.0, 0.0); n * n];
    transpose(data, &mut t, n, n);
    fft.process(&mut t);
    transpose(&t, data, n, n);
}

/// `dst[c][r] = src[r][c]` for `src` of `rows × cols`.
pub(crate) fn transpose<T: Copy>(src: &[T], dst: &mut [T], rows: usize, cols: usize) {
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

impl KStamp {
    /// Pad the stamp (pad factor 4, `goodFFTSize`), centre it, FFT it, and compute stepk.
    pub fn new(a: &Array2<f64>) -> Self {
        let (ny, nx) = a.dim();
        let nmax = ny.max(nx);
        let n = good_fft_size((4.0 * nmax as f64).ceil() as usize);
        let mut f = vec![Complex64::new(0.0, 0.0); n * n];
        // array element (i, j) sits at x = j - nx/2, y = i - ny/2; store at (y mod N, x mod N)
        let mut flux = 0.0;
        for i in 0..ny {
            let y = i as i64 - (ny / 2) as i64;
            let qy = y.rem_euclid(n as i64) as usize;
            for j in 0..nx {
                let x = j as i64 - (nx / 2) as i64;
                let px = x.rem_euclid(n as i64) as usize;
                let v = a[[i, j]];
                f[qy * n + px] = Complex64::new(v, 0.0);
                flux += v;
            }
        }
        fft2(&mut f, n, false);
        let r = size_containing_flux(a, (1.0 - FOLDING_THRESHOLD) * flux);
        let r = r.hypot(15.0);
        let mut s = Self {
            n,
            f,
            flux,
            maxk1: 2.0 * std::f64::consts::PI * Lanczos15::get().u_max,
            shape: (ny, nx),
            stepk_pix: std::f64::consts::PI / r,
            maxk_pix: 0.0,
        };
        s.maxk_pix = s.calc_maxk_pix();
        s
    }

    /// GalSim `SBInterpolatedImage::calculateMaxK` (pixel units).
    pub fn maxk_pix(&self) -> f64 {
        self.maxk_pix
    }

    /// `F[p mod N, q mod N]` with p the x (column) and q the y (row) frequency index.
    #[inline(always)]
    fn at(&self, p: i64, q: i64) -> Complex64 {
        let n = self.n as i64;
        let pp = p.rem_euclid(n) as usize;
        let qq = q.rem_euclid(n) as usize;
        self.f[qq * self.n + pp]
    }

    /// kValue at native-pixel `(kx, ky)` (rad/pixel) without the Lanczos15 factor and without
    /// the `maxk1` cut: the 6×6 quintic k-interpolation of the DFT.
    #[inline]
    pub fn kinterp(&self, kx: f64, ky: f64) -> Complex64 {
        let kscale = self.n as f64 / (2.0 * std::f64::consts::PI);
        let sx = kx * kscale;
        let sy = ky * kscale;
        let p0 = (sx - 3.0).ceil();
        let q0 = (sy - 3.0).ceil();
        let mut wp = [0.0; 6];
        let mut wq = [0.0; 6];
        for d in 0..6 {
            wp[d] = quintic(p0 + d as f64 - sx);
            wq[d] = quintic(q0 + d as f64 - sy);
        }
        let p0 = p0 as i64;
        let q0 = q0 as i64;
        let n = self.n as i64;
        let mut out = Complex64::new(0.0, 0.0);
        let fast = p0 >= 0 && p0 + 5 < n && q0 >= 0 && q0 + 5 < n;
        for dq in 0..6 {
            let mut row = Complex64::new(0.0, 0.0);
            if fast {
                let base = (q0 as usize + dq) * self.n + p0 as usize;
                let r = &self.f[base..base + 6];
                for dp in 0..6 {
                    row += r[dp] * wp[dp];
                }
            } else {
                for dp in 0..6 {
                    row += self.at(p0 + dp as i64, q0 + dq as i64) * wp[dp];
                }
            }
            out += row * wq[dq];
        }
        out
    }

    /// Full kValue (GalSim `SBInterpolatedImage::kValue`): [`Self::kinterp`] times
    /// `X̂(kx/2π) X̂(ky/2π)`, zero if `|kx|` or `|ky|` exceeds `maxk1`.
    #[inline]
    pub fn kvalue(&self, kx: f64, ky: f64) -> Complex64 {
        if kx.abs() > self.maxk1 || ky.abs() > self.maxk1 {
            return Complex64::new(0.0, 0.0);
        }
        let l = Lanczos15::get();
        let tp = 2.0 * std::f64::consts::PI;
        self.kinterp(kx, ky) * (l.uval(kx / tp) * l.uval(ky / tp))
    }

    fn calc_maxk_pix(&self) -> f64 {
        let n = self.n as i64;
        let no2 = n / 2;
        let dk = 2.0 * std::f64::consts::PI / self.n as f64;
        let kim = |ix: i64, iy: i64| self.at(ix, iy).norm_sqr();
        let thresh = (MAXK_THRESHOLD * self.flux).powi(2);
        let mut max_ix = (self.maxk1 / dk).ceil() as i64;
        if max_ix > no2 {
            max_ix = no2;
        }
        let mut maxk_ix = 0i64;
        let mut nbelow = 0;
        for ix in 0..=max_ix {
            for iy in 0..=ix {
                let mut v = kim(iy, -ix);
                if v <= thresh && iy != ix && ix != no2 {
                    v = kim(iy, ix);
                }
                if v <= thresh && iy > 0 {
                    v = kim(ix, -iy);
                }
                if v <= thresh && ix > 0 && iy != no2 {
                    v = kim(ix, iy);
                }
                if v > thresh {
                    maxk_ix = ix;
                    nbelow = 0;
                    break;
                }
            }
            nbelow += 1;
            if nbelow == 5 {
                break;
            }
        }
        (maxk_ix + 1) as f64 * dk
    }
}

/// GalSim `CalculateSizeContainingFlux` on the stamp with bounds centred by `setCenter(0,0)`.
fn size_containing_flux(a: &Array2<f64>, thresh: f64) -> f64 {
    let (ny, nx) = a.dim();
    let xmin = -((nx / 2) as i64);
    let ymin = -((ny / 2) as i64);
    let xmax = xmin + nx as i64 - 1;
    let ymax = ymin + ny as i64 - 1;
    let im = |x: i64, y: i64| a[[(y - ymin) as usize, (x - xmin) as usize]];
    let p = if thresh > 0.0 { 1.0 } else { -1.0 };
    let dmax = ((xmax - xmin) / 2).min((ymax - ymin) / 2);
    let mut flux = im(0, 0);
    let mut d = 1i64;
    while d <= dmax {
        for x in -d..d {
            flux += im(x, -d) + im(d, x) + im(-x, d) + im(-d, -x);
        }
        if p * flux >= p * thresh {
            break;
        }
        d += 1;
    }
    d as f64 + 0.5
}

/// GalSim's `kimage._wrap(hermx=True)` of a k image `k[(q + h) * (h + 1) + p]`,
/// `p ∈ [0, h]`, `q ∈ [-h, h]`, `h = nk/2`, onto `H[(q' + N/2) * (N/2 + 1) + p']`,
/// `p' ∈ [0, N/2]`, `q' ∈ [-N/2, N/2 - 1]`.
pub(crate) fn fold_kimage(k: &[Complex64], nk: usize, n: usize) -> Vec<Complex64> {
    let h = (nk / 2) as i64;
    let kc = (h + 1) as usize;
    let hc = n / 2 + 1;
    let ni = n as i64;
    let mut out = vec![Complex64::new(0.0, 0.0); n * hc];
    for p in -h..=h {
        let mut pp = (p + ni / 2).rem_euclid(ni) - ni / 2;
        if pp == -ni / 2 {
            pp = ni / 2;
        }
        if pp < 0 {
            continue;
        }
        for q in -h..=h {
            let v = if p >= 0 {
                k[(q + h) as usize * kc + p as usize]
            } else {
                k[(-q + h) as usize * kc + (-p) as usize].conj()
            };
            let qq = (q + ni / 2).rem_euclid(ni) as usize;
            out[qq * hc + pp as usize] += v;
        }
    }
    out
}

/// Inverse of the folded half-plane `H` (rows `q' + N/2`, `N/2 + 1` columns) to the real
/// image `N × N`, with index `i ↔ x = i - N/2` (numpy `fftshift(irfft2(ifftshift(H, 0)))`),
/// including the `1/N²`.
pub(crate) fn irfft2_centered(h: &[Complex64], n: usize) -> Vec<f64> {
    let hc = n / 2 + 1;
    // ifftshift along rows: row q' + N/2 -> q' mod N
    let mut cols = vec![Complex64::new(0.0, 0.0); hc * n]; // column-major: [p][q mod N]
    for r in 0..n {
        let q = r as i64 - (n / 2) as i64;
        let qm = q.rem_euclid(n as i64) as usize;
        for p in 0..hc {
            cols[p * n + qm] = h[r * hc + p];
        }
    }
    plan(n, true).process(&mut cols);
    // rows of length hc: row y (mod N)
    let c2r = RPLANNER.with(|p| p.borrow_mut().plan_fft_inverse(n));
    let mut spec = vec![Complex64::new(0.0, 0.0); hc];
    let mut row = vec![0.0; n];
    let mut scratch = c2r.make_scratch_vec();
    let mut out = vec![0.0; n * n];
    let norm = 1.0 / (n as f64 * n as f64);
    for y in 0..n {
        for p in 0..hc {
            spec[p] = cols[p * n + y];
        }
        spec[0].im = 0.0;
        spec[hc - 1].im = 0.0;
        // the length and the zeroed imaginary parts are guaranteed, so this cannot fail
        if c2r
            .process_with_scratch(&mut spec, &mut row, &mut scratch)
            .is_err()
        {
            continue;
        }
        // fftshift: y mod N -> index y + N/2 (mod N); same for x
        let yi = (y + n / 2) % n;
        for x in 0..n {
            let xi = (x + n / 2) % n;
            out[yi * n + xi] = row[x] * norm;
        }
    }
    out
}
