//! N-dimensional Gaussian mixture used as a prior (ngmix `GMixND`, `gmix_ndim.py`).

use super::Prior1D;
use crate::error::{GMixError, GResult};
use crate::rng::{normal, uniform};
use rand_core::Rng;

/// A Gaussian mixture in `ndim` dimensions (ngmix `GMixND`): weights `w_k`, means `μ_k` and
/// covariances `C_k`,
/// `p(x) = Σ_k w_k (2π)^(-ndim/2) det(C_k)^(-1/2) exp(-½ (x-μ_k)ᵀ C_k⁻¹ (x-μ_k))`
/// (weights used as given, not renormalised).
///
/// `ln p` is evaluated as ngmix's `gmixnd_get_prob`: per component
/// `lnp_k = -½ χ²_k + ln(w_k norm_k)`, then `ln Σ exp(lnp_k - m) + m` with
/// `m = max(-9.99e9, max_k lnp_k)`.
///
/// Layout: `means` is `[ngauss][ndim]` and `covars` `[ngauss][ndim][ndim]`, row-major.
///
/// The covariances used for **sampling** can differ from those used for `ln p`: ngmixer's
/// `load_gmixnd` applies `cov_factor` with `pdf.covars *= cov_factor` *after* construction, so
/// ngmix's cached inverse covariances and norms (hence `ln p`) keep the unscaled values while
/// sampling (sklearn, built from `pdf.covars`) uses the scaled ones. That is
/// [`GMixND::apply_cov_factor_ngmixer`]; [`GMixND::scale_covars`] scales both.
#[derive(Debug, Clone, PartialEq)]
pub struct GMixND {
    ndim: usize,
    ngauss: usize,
    weights: Vec<f64>,
    means: Vec<f64>,
    /// Covariances used for sampling (`pdf.covars`).
    covars: Vec<f64>,
    /// Inverse covariances used for `ln p`.
    icovars: Vec<f64>,
    /// `ln(w_k norm_k)`.
    log_pnorms: Vec<f64>,
    /// Lower Cholesky factors of `covars`.
    chol: Vec<f64>,
    /// Cumulative normalised weights for choosing a component.
    cumw: Vec<f64>,
}

impl GMixND {
    /// Builds the mixture from flat row-major arrays (ngmix `GMixND(weights, means, covars)`;
    /// 1-d inputs are `ngauss` means and `ngauss` variances, as ngmix's reshapes).
    ///
    /// # Errors
    /// Inconsistent lengths, no component, non-finite values, negative weights or all
    /// weights zero, a covariance that is not positive definite.
    pub fn new(weights: &[f64], means: &[f64], covars: &[f64]) -> crate::Result<Self> {
        let ngauss = weights.len();
        if ngauss == 0 {
            return Err(crate::Error::Invalid("GMixND: no components".into()));
        }
        if means.is_empty() || !means.len().is_multiple_of(ngauss) {
            return Err(crate::Error::Invalid(format!(
                "GMixND: {} means for {ngauss} weights",
                means.len()
            )));
        }
        let ndim = means.len() / ngauss;
        if covars.len() != ngauss * ndim * ndim {
            return Err(crate::Error::Invalid(format!(
                "GMixND: {} covariance values, expected {ngauss}x{ndim}x{ndim}",
                covars.len()
            )));
        }
        if weights
            .iter()
            .chain(means)
            .chain(covars)
            .any(|v| !v.is_finite())
        {
            return Err(crate::Error::Invalid(
                "GMixND: non-finite weights/means/covars".into(),
            ));
        }
        if weights.iter().any(|&w| w < 0.0) {
            return Err(crate::Error::Invalid("GMixND: negative weight".into()));
        }
        let wsum: f64 = weights.iter().sum();
        if wsum <= 0.0 {
            return Err(crate::Error::Invalid("GMixND: weights sum to zero".into()));
        }

        let nn = ndim * ndim;
        let mut icovars = vec![0.0; ngauss * nn];
        let mut log_pnorms = vec![0.0; ngauss];
        let twopi = 2.0 * std::f64::consts::PI;
        for k in 0..ngauss {
            let cov = &covars[k * nn..(k + 1) * nn];
            let (icov, det) = invert(cov, ndim).ok_or_else(|| {
                crate::Error::Invalid(format!("GMixND: covariance {k} is singular"))
            })?;
            if det <= 0.0 {
                return Err(crate::Error::Invalid(format!(
                    "GMixND: covariance {k} has determinant {det} <= 0"
                )));
            }
            icovars[k * nn..(k + 1) * nn].copy_from_slice(&icov);
            let norm = 1.0 / (twopi.powi(ndim as i32) * det).sqrt();
            log_pnorms[k] = (norm * weights[k]).ln();
        }
        let chol = cholesky_all(covars, ngauss, ndim)?;
        let mut cumw = Vec::with_capacity(ngauss);
        let mut acc = 0.0;
        for w in weights {
            acc += w / wsum;
            cumw.push(acc);
        }
        Ok(Self {
            ndim,
            ngauss,
            weights: weights.to_vec(),
            means: means.to_vec(),
            covars: covars.to_vec(),
            icovars,
            log_pnorms,
            chol,
            cumw,
        })
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.ndim
    }

    /// Number of components.
    pub fn ngauss(&self) -> usize {
        self.ngauss
    }

    /// The weights.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The means, `[ngauss][ndim]` row-major.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// The covariances used for sampling, `[ngauss][ndim][ndim]` row-major (ngmix's
    /// `pdf.covars`).
    pub fn covars(&self) -> &[f64] {
        &self.covars
    }

    /// ngmixer's `cov_factor`: `pdf.covars *= factor` after construction. Only the sampling
    /// covariances change; `ln p` keeps the covariances the mixture was built with (see the
    /// type docs).
    ///
    /// # Errors
    /// A non-positive or non-finite factor.
    pub fn apply_cov_factor_ngmixer(&mut self, factor: f64) -> crate::Result<()> {
        super::check_positive(factor, "GMixND cov_factor")?;
        for c in &mut self.covars {
            *c *= factor;
        }
        self.chol = cholesky_all(&self.covars, self.ngauss, self.ndim)?;
        Ok(())
    }

    /// Multiplies every covariance by `factor`, for both `ln p` and sampling (a consistent
    /// rescaling; not what ngmixer did, see [`GMixND::apply_cov_factor_ngmixer`]).
    ///
    /// # Errors
    /// A non-positive or non-finite factor.
    pub fn scale_covars(&mut self, factor: f64) -> crate::Result<()> {
        super::check_positive(factor, "GMixND covariance factor")?;
        let covars: Vec<f64> = self.covars.iter().map(|c| c * factor).collect();
        *self = Self::new(&self.weights, &self.means, &covars)?;
        Ok(())
    }

    /// `(max_k lnp_k, Σ_k exp(lnp_k - max))` as ngmix's `gmixnd_get_prob`.
    fn eval(&self, x: &[f64]) -> GResult<(f64, f64)> {
        if x.len() != self.ndim {
            return Err(GMixError::Range("GMixND: wrong number of dimensions"));
        }
        let n = self.ndim;
        let nn = n * n;
        let mut lnpmax = -9.99e9_f64;
        // small stack buffer for the usual 1-3 components; heap beyond
        let mut buf = [0.0f64; 16];
        let mut heap;
        let lnps: &mut [f64] = if self.ngauss <= buf.len() {
            &mut buf[..self.ngauss]
        } else {
            heap = vec![0.0; self.ngauss];
            &mut heap
        };
        for k in 0..self.ngauss {
            let mean = &self.means[k * n..(k + 1) * n];
            let icov = &self.icovars[k * nn..(k + 1) * nn];
            let mut chi2 = 0.0;
            for i in 0..n {
                let di = x[i] - mean[i];
                for j in 0..n {
                    chi2 += di * (x[j] - mean[j]) * icov[i * n + j];
                }
            }
            let lnp = -0.5 * chi2 + self.log_pnorms[k];
            if lnp > lnpmax {
                lnpmax = lnp;
            }
            lnps[k] = lnp;
        }
        let p: f64 = lnps.iter().map(|l| (l - lnpmax).exp()).sum();
        Ok((lnpmax, p))
    }

    /// `ln p(x)` (ngmix `get_lnprob_scalar`).
    ///
    /// # Errors
    /// `x.len() != ndim`.
    pub fn lnprob_nd(&self, x: &[f64]) -> GResult<f64> {
        let (m, p) = self.eval(x)?;
        Ok(p.ln() + m)
    }

    /// `p(x)` (ngmix `get_prob_scalar`).
    ///
    /// # Errors
    /// `x.len() != ndim`.
    pub fn prob_nd(&self, x: &[f64]) -> GResult<f64> {
        let (m, p) = self.eval(x)?;
        Ok(p * m.exp())
    }

    /// One draw into `out` (length `ndim`): a component `k` with probability
    /// `w_k / Σ w`, then `μ_k + L_k z` with `L_k` the Cholesky factor of the (sampling)
    /// covariance and `z` standard normals.
    ///
    /// # Errors
    /// `out.len() != ndim`.
    pub fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) -> GResult<()> {
        if out.len() != self.ndim {
            return Err(GMixError::Range("GMixND: wrong number of dimensions"));
        }
        let u = uniform(rng);
        let k = self
            .cumw
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.ngauss - 1);
        let n = self.ndim;
        let nn = n * n;
        let l = &self.chol[k * nn..(k + 1) * nn];
        let mut zbuf = [0.0f64; 8];
        let mut zheap;
        let z: &mut [f64] = if n <= zbuf.len() {
            &mut zbuf[..n]
        } else {
            zheap = vec![0.0; n];
            &mut zheap
        };
        for zi in z.iter_mut() {
            *zi = normal(rng);
        }
        for i in 0..n {
            let mut v = self.means[k * n + i];
            for j in 0..=i {
                v += l[i * n + j] * z[j];
            }
            out[i] = v;
        }
        Ok(())
    }

    /// One draw as a new vector.
    pub fn sample_vec<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        let mut out = vec![0.0; self.ndim];
        // cannot fail: the length is right
        let _ = self.sample_into(rng, &mut out);
        out
    }
}

/// As a scalar prior (T, counts, fracdev): only meaningful for `ndim == 1`.
impl Prior1D for GMixND {
    /// # Errors
    /// Range error when `ndim != 1`.
    fn lnprob(&self, x: f64) -> GResult<f64> {
        self.lnprob_nd(&[x])
    }

    fn prob(&self, x: f64) -> GResult<f64> {
        self.prob_nd(&[x])
    }

    /// The first coordinate of a draw (the draw itself when `ndim == 1`).
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.sample_vec(rng).first().copied().unwrap_or(f64::NAN)
    }
}

/// Inverse and determinant of a row-major `n × n` matrix by Gauss–Jordan elimination with
/// partial pivoting. `None` when singular.
fn invert(a: &[f64], n: usize) -> Option<(Vec<f64>, f64)> {
    if n == 1 {
        let c = a[0];
        return if c == 0.0 {
            None
        } else {
            Some((vec![1.0 / c], c))
        };
    }
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    let mut det = 1.0;
    for col in 0..n {
        let piv =
            (col..n).max_by(|&r1, &r2| m[r1 * n + col].abs().total_cmp(&m[r2 * n + col].abs()))?;
        let pv = m[piv * n + col];
        if pv == 0.0 {
            return None;
        }
        if piv != col {
            for j in 0..n {
                m.swap(piv * n + j, col * n + j);
                inv.swap(piv * n + j, col * n + j);
            }
            det = -det;
        }
        det *= pv;
        for j in 0..n {
            m[col * n + j] /= pv;
            inv[col * n + j] /= pv;
        }
        for r in 0..n {
            if r != col {
                let f = m[r * n + col];
                if f != 0.0 {
                    for j in 0..n {
                        m[r * n + j] -= f * m[col * n + j];
                        inv[r * n + j] -= f * inv[col * n + j];
                    }
                }
            }
        }
    }
    Some((inv, det))
}

/// Lower Cholesky factors of every covariance.
fn cholesky_all(covars: &[f64], ngauss: usize, n: usize) -> crate::Result<Vec<f64>> {
    let nn = n * n;
    let mut out = vec![0.0; ngauss * nn];
    for k in 0..ngauss {
        let a = &covars[k * nn..(k + 1) * nn];
        let l = &mut out[k * nn..(k + 1) * nn];
        for i in 0..n {
            for j in 0..=i {
                let mut s = a[i * n + j];
                for p in 0..j {
                    s -= l[i * n + p] * l[j * n + p];
                }
                if i == j {
                    if s <= 0.0 || s.is_nan() {
                        return Err(crate::Error::Invalid(format!(
                            "GMixND: covariance {k} is not positive definite"
                        )));
                    }
                    l[i * n + i] = s.sqrt();
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
        }
    }
    Ok(out)
}

#[cfg(feature = "des-y1")]
mod fits_io {
    use super::GMixND;
    use crate::Error;
    use fitsio::hdu::HduInfo;
    use fitsio::FitsFile;
    use std::path::Path;

    fn fits_err(path: &Path, hdu: Option<&str>, msg: impl std::fmt::Display) -> Error {
        Error::Fits {
            path: path.to_path_buf(),
            hdu: hdu.map(str::to_string),
            msg: msg.to_string(),
        }
    }

    impl GMixND {
        /// Reads a mixture written by ngmix's `GMixND.save_mixture` (what
        /// `GMixND(file=...)`, hence ngmixer's `gmixnd` T/counts priors, reads): image HDUs
        /// named `weights` (`ngauss`), `means` (`ngauss × ndim`) and `covars`
        /// (`ngauss × ndim × ndim`).
        ///
        /// # Errors
        /// Missing file/HDU, unreadable data, inconsistent shapes ([`GMixND::new`]).
        pub fn from_fits(path: impl AsRef<Path>) -> crate::Result<Self> {
            let path = path.as_ref();
            let mut f = FitsFile::open(path).map_err(|e| fits_err(path, None, e))?;
            let mut read = |name: &str| -> crate::Result<Vec<f64>> {
                let hdu = f.hdu(name).map_err(|e| fits_err(path, Some(name), e))?;
                hdu.read_image::<Vec<f64>>(&mut f)
                    .map_err(|e| fits_err(path, Some(name), e))
            };
            let weights = read("weights")?;
            let means = read("means")?;
            let covars = read("covars")?;
            GMixND::new(&weights, &means, &covars)
                .map_err(|e| fits_err(path, None, format!("bad mixture: {e}")))
        }

        /// Reads ngmixer's fracdev prior file (`get_fracdev_prior`: `fitsio.read(fname)`): the
        /// first table HDU, with columns `weights`, `means` and `covars` (one row per
        /// component; `means` has `ndim` values per row, `covars` `ndim²`). Column names are
        /// matched case-insensitively.
        ///
        /// # Errors
        /// Missing file, no table HDU, missing columns, inconsistent shapes.
        pub fn from_fits_table(path: impl AsRef<Path>) -> crate::Result<Self> {
            let path = path.as_ref();
            let mut f = FitsFile::open(path).map_err(|e| fits_err(path, None, e))?;
            let nhdu = f.num_hdus().map_err(|e| fits_err(path, None, e))?;
            for i in 0..nhdu {
                let hdu = f
                    .hdu(i)
                    .map_err(|e| fits_err(path, Some(&i.to_string()), e))?;
                let cols = match &hdu.info {
                    HduInfo::TableInfo {
                        column_descriptions,
                        ..
                    } => column_descriptions.clone(),
                    _ => continue,
                };
                let hname = i.to_string();
                let mut read = |want: &str| -> crate::Result<Vec<f64>> {
                    let name = cols
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(want))
                        .map(|c| c.name.clone())
                        .ok_or_else(|| {
                            fits_err(path, Some(&hname), format!("no column '{want}'"))
                        })?;
                    hdu.read_col::<f64>(&mut f, &name)
                        .map_err(|e| fits_err(path, Some(&hname), format!("column '{want}': {e}")))
                };
                let weights = read("weights")?;
                let means = read("means")?;
                let covars = read("covars")?;
                return GMixND::new(&weights, &means, &covars)
                    .map_err(|e| fits_err(path, Some(&hname), format!("bad mixture: {e}")));
            }
            Err(fits_err(path, None, "no table HDU"))
        }

        /// Writes the mixture as ngmix's `save_mixture` does (image HDUs `weights`, `means`,
        /// `covars`; the sampling covariances), overwriting `path`.
        ///
        /// # Errors
        /// The file cannot be created or written.
        pub fn save_fits(&self, path: impl AsRef<Path>) -> crate::Result<()> {
            use fitsio::images::{ImageDescription, ImageType};
            let path = path.as_ref();
            let mut f = FitsFile::create(path)
                .overwrite()
                .open()
                .map_err(|e| fits_err(path, None, e))?;
            let (g, n) = (self.ngauss, self.ndim);
            let parts: [(&str, &[f64], Vec<usize>); 3] = [
                ("weights", &self.weights, vec![g]),
                ("means", &self.means, vec![g, n]),
                ("covars", &self.covars, vec![g, n, n]),
            ];
            for (name, data, dims) in parts {
                let desc = ImageDescription {
                    data_type: ImageType::Double,
                    dimensions: &dims,
                };
                let hdu = f
                    .create_image(name, &desc)
                    .map_err(|e| fits_err(path, Some(name), e))?;
                hdu.write_image(&mut f, data)
                    .map_err(|e| fits_err(path, Some(name), e))?;
            }
            Ok(())
        }
    }
}
