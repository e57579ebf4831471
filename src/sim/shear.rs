//! Shear-test scenes: exponential galaxies with a known constant shear, an elliptical PSF and
//! white noise at a given S/N, in 90°-rotated pairs, as an [`ImageSource`] that renders each
//! object on demand (a million galaxies need no memory beyond one object per worker).
//!
//! Object `2k` and `2k + 1` share their size, flux and intrinsic shape, the second rotated by
//! 90° (`g → −g`), so intrinsic shape noise cancels in pair averages. The shear is applied to
//! the intrinsic light profile exactly ([`GMix::sheared`]); the galaxy is convolved with the
//! PSF and sampled at pixel centres, as is the PSF stamp, so the stamp is exactly the PSF of
//! the galaxy image (the pixel response is part of the PSF). Every random draw comes from
//! streams keyed by the simulation seed and the pair or object index.

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::gmix::models::{Model, SimpleKind};
use crate::gmix::moments::fwhm_to_t;
use crate::gmix::{GMix, Jacobian};
use crate::obs::{EpochMeta, MultiBandObs, ObjectMeta, ObjectObs, Observation, PsfMeta};
use crate::rng::{normal, object_rng, uniform_range};
use crate::traits::ImageSource;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct ShearSimConfig {
    /// Number of galaxies (even: pairs).
    pub ngal: usize,
    /// Seed of every draw of the scene (the fits draw from their own run seed).
    pub seed: u64,
    /// The constant shear `(g1, g2)`.
    pub shear: (f64, f64),
    /// Matched-filter S/N of the noise-free round galaxy, `sqrt(Σ m²)/σ`.
    pub snr: f64,
    /// PSF FWHM (arcsec) of the `turb` (Kolmogorov-like, three-Gaussian) PSF.
    pub psf_fwhm: f64,
    /// PSF shape `(g1, g2)`.
    pub psf_g: (f64, f64),
    /// Range of the galaxy `T` (arcsec², uniform).
    pub gal_t: (f64, f64),
    /// Galaxy flux (ngmix v1.3.5 units: per unit sky area).
    pub flux: f64,
    /// Width of the intrinsic shape distribution per component (Gaussian, truncated to
    /// `|g| < g_max`).
    pub g_sigma: f64,
    /// Largest intrinsic `|g|` (the LM fits of near-linear exp profiles at high S/N can stop
    /// in a wrong minimum; 0.6 keeps the test about the calibration).
    pub g_max: f64,
    /// Galaxy stamp size (pixels, square).
    pub stamp: usize,
    /// PSF stamp size (pixels, square).
    pub psf_stamp: usize,
    /// Pixel scale (arcsec).
    pub scale: f64,
    /// Largest galaxy-centre offset from the stamp centre per axis (pixels).
    pub max_offset: f64,
}

impl Default for ShearSimConfig {
    /// `g = (0.02, 0)`, PSF FWHM 0.9″ with `g = (0, 0.05)`, S/N 100, exp galaxies with
    /// `T ∈ [0.3, 0.6]` arcsec², intrinsic `σ_g = 0.2` per component up to `|g| = 0.6`, on
    /// 48×48 stamps at 0.263″.
    fn default() -> Self {
        Self {
            ngal: 10_000,
            seed: 1,
            shear: (0.02, 0.0),
            snr: 100.0,
            psf_fwhm: 0.9,
            psf_g: (0.0, 0.05),
            gal_t: (0.3, 0.6),
            flux: 100.0,
            g_sigma: 0.2,
            g_max: 0.6,
            stamp: 48,
            psf_stamp: 25,
            scale: 0.263,
            max_offset: 0.5,
        }
    }
}

/// The shear-test scene as an image source (one band, one single-epoch cutout per object).
#[derive(Debug, Clone)]
pub struct ShearSimSource {
    cfg: ShearSimConfig,
    psf: GMix,
    psf_obs: Observation,
}

const PAIR_STREAM: u64 = 0x5348_4541_5250_4149; // "SHEARPAI"
const NOISE_STREAM: u64 = 0x5348_4541_524e_4f49; // "SHEARNOI"

fn invalid(msg: String) -> Error {
    Error::Invalid(format!("shear simulation: {msg}"))
}

fn render(gm: &GMix, jac: &Jacobian, n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(r, c)| {
        let (v, u) = jac.vu(r as f64, c as f64);
        gm.gaussians().iter().map(|g| g.eval(v, u)).sum::<f64>()
    })
}

impl ShearSimSource {
    /// The scene of `cfg`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an odd or zero `ngal`, a non-positive S/N, PSF FWHM, scale or
    /// flux, an empty or negative `T` range, stamps smaller than 8 pixels, or shears and
    /// PSF shapes with `|g| >= 1`.
    pub fn new(cfg: ShearSimConfig) -> Result<Self> {
        if cfg.ngal == 0 || !cfg.ngal.is_multiple_of(2) {
            return Err(invalid(format!(
                "ngal must be a positive even number (90°-rotated pairs), got {}",
                cfg.ngal
            )));
        }
        for (name, v) in [
            ("snr", cfg.snr),
            ("psf_fwhm", cfg.psf_fwhm),
            ("scale", cfg.scale),
            ("flux", cfg.flux),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(invalid(format!("{name} must be > 0, got {v}")));
            }
        }
        if !(cfg.gal_t.0 > 0.0 && cfg.gal_t.0 <= cfg.gal_t.1 && cfg.gal_t.1.is_finite()) {
            return Err(invalid(format!("bad galaxy T range {:?}", cfg.gal_t)));
        }
        let shapes_ok = cfg.g_sigma >= 0.0 && cfg.g_sigma < 1.0 && cfg.g_max > 0.0;
        if !(shapes_ok && cfg.g_max < 1.0 && cfg.max_offset >= 0.0) {
            return Err(invalid(
                "g_sigma must be in [0, 1), g_max in (0, 1), max_offset >= 0".into(),
            ));
        }
        if cfg.stamp < 8 || cfg.psf_stamp < 8 || cfg.stamp > 1024 || cfg.psf_stamp > 1024 {
            return Err(invalid("stamps must be 8 to 1024 pixels".into()));
        }
        for (name, (a, b)) in [("shear", cfg.shear), ("psf_g", cfg.psf_g)] {
            if !((a * a + b * b).sqrt() < 1.0) {
                return Err(invalid(format!("{name} ({a}, {b}) must have |g| < 1")));
            }
        }
        let t_psf = fwhm_to_t(cfg.psf_fwhm);
        let psf = Model::Simple(SimpleKind::Turb)
            .gmix(&[0.0, 0.0, cfg.psf_g.0, cfg.psf_g.1, t_psf, 1.0])
            .map_err(|e| invalid(format!("PSF: {e}")))?;
        let pc = (cfg.psf_stamp as f64 - 1.0) / 2.0;
        let pjac = Jacobian::new(pc, pc, 0.0, cfg.scale, cfg.scale, 0.0)?;
        let pim = render(&psf, &pjac, cfg.psf_stamp);
        let psum = pim.sum();
        let mut psf_obs = Observation::with_unit_weight(pim, pjac)?;
        psf_obs.psf_meta = PsfMeta {
            tguess: t_psf,
            sigma_sky: (t_psf / 2.0).sqrt(),
            psf_norm: psum,
        };
        Ok(Self { cfg, psf, psf_obs })
    }

    /// The configuration.
    pub fn config(&self) -> &ShearSimConfig {
        &self.cfg
    }

    /// The PSF mixture.
    pub fn psf(&self) -> &GMix {
        &self.psf
    }

    /// The intrinsic (pre-shear, pre-rotation) `(T, g1, g2)` of pair `k`.
    pub fn pair_truth(&self, k: usize) -> (f64, f64, f64) {
        let mut rng = object_rng(self.cfg.seed ^ PAIR_STREAM, k as i64);
        let t = uniform_range(&mut rng, self.cfg.gal_t.0, self.cfg.gal_t.1);
        loop {
            let g1 = self.cfg.g_sigma * normal(&mut rng);
            let g2 = self.cfg.g_sigma * normal(&mut rng);
            if g1 * g1 + g2 * g2 < self.cfg.g_max * self.cfg.g_max {
                return (t, g1, g2);
            }
        }
    }

    fn object(&self, iobj: usize) -> Result<ObjectObs> {
        let c = &self.cfg;
        let (t, mut g1, mut g2) = self.pair_truth(iobj / 2);
        if iobj % 2 == 1 {
            g1 = -g1;
            g2 = -g2;
        }
        let mut rng = object_rng(c.seed ^ NOISE_STREAM, iobj as i64);
        let off_r = c.max_offset * uniform_range(&mut rng, -1.0, 1.0);
        let off_c = c.max_offset * uniform_range(&mut rng, -1.0, 1.0);
        let cen = (c.stamp as f64 - 1.0) / 2.0;
        let jac = Jacobian::new(cen, cen, 0.0, c.scale, c.scale, 0.0)?;
        let exp = Model::Simple(SimpleKind::Exp);
        let mut gal = exp
            .gmix(&[0.0, 0.0, g1, g2, t, c.flux])?
            .sheared(c.shear.0, c.shear.1)?;
        gal.set_cen(off_r * c.scale, off_c * c.scale);
        let model = render(&gal.convolve(&self.psf)?, &jac, c.stamp);
        // noise from the round galaxy of the pair, the same for both members
        let round = exp.gmix(&[0.0, 0.0, 0.0, 0.0, t, c.flux])?;
        let rim = render(&round.convolve(&self.psf)?, &jac, c.stamp);
        let sigma = rim.iter().map(|x| x * x).sum::<f64>().sqrt() / c.snr;
        let image = model.mapv(|m| m + sigma * normal(&mut rng));
        let w = 1.0 / (sigma * sigma);
        let mut obs = Observation::new(image, Array2::from_elem((c.stamp, c.stamp), w), jac)?;
        obs.meta = EpochMeta {
            id: iobj as i64,
            number: (iobj + 1) as i32,
            band_num: 0,
            cutout_index: 1,
            orig_row: cen,
            orig_col: cen,
            orig_start_row: 0,
            orig_start_col: 0,
            file_id: 1,
        };
        let mut psf = self.psf_obs.clone();
        psf.meta = obs.meta.clone();
        obs.psf = Some(Box::new(psf));
        Ok(ObjectObs {
            meta: ObjectMeta {
                id: iobj as i64,
                number: iobj as i64 + 1,
                ra: 0.0,
                dec: 0.0,
                nimage_tot: vec![1],
                fofid: -9999,
                obj_flags: 0,
                dropped_epochs: vec![0],
            },
            coadd: MultiBandObs::new(vec![Vec::new()]),
            se: MultiBandObs::new(vec![vec![obs]]),
        })
    }
}

impl ImageSource for ShearSimSource {
    fn nobj(&self) -> usize {
        self.cfg.ngal
    }
    fn nband(&self) -> usize {
        1
    }
    fn id_number(&self, iobj: usize) -> Result<(i64, i64)> {
        if iobj >= self.cfg.ngal {
            return Err(invalid(format!(
                "object index {iobj} out of range (ngal {})",
                self.cfg.ngal
            )));
        }
        Ok((iobj as i64, iobj as i64 + 1))
    }
    fn read_object(&mut self, iobj: usize, out: &mut ObjectObs) -> Result<()> {
        if iobj >= self.cfg.ngal {
            return Err(invalid(format!(
                "object index {iobj} out of range (ngal {})",
                self.cfg.ngal
            )));
        }
        *out = self.object(iobj)?;
        Ok(())
    }
    fn reopen(&self) -> Result<Self> {
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_share_size_and_have_opposite_intrinsic_shapes() {
        let src = ShearSimSource::new(ShearSimConfig {
            ngal: 4,
            snr: 1e12,
            shear: (0.0, 0.0),
            max_offset: 0.0,
            ..ShearSimConfig::default()
        })
        .unwrap();
        let a = src.object(0).unwrap();
        let b = src.object(1).unwrap();
        let ia = a.se.bands[0][0].image();
        let ib = b.se.bands[0][0].image();
        // without shear and offsets, the partner is the image rotated by 90° (the PSF is
        // not rotated, so only approximately): same flux, opposite second moments
        assert!((ia.sum() / ib.sum() - 1.0).abs() < 1e-9);
        // with a round PSF the partner is exactly the image rotated by 90°
        let round = ShearSimSource::new(ShearSimConfig {
            psf_g: (0.0, 0.0),
            ..src.config().clone()
        })
        .unwrap();
        let ra = round.object(0).unwrap().se.bands[0][0].image().clone();
        let rb = round.object(1).unwrap().se.bands[0][0].image().clone();
        let n = ra.dim().0;
        let rot = Array2::from_shape_fn((n, n), |(i, j)| ra[[j, n - 1 - i]]);
        let peak = ra.iter().cloned().fold(0.0, f64::max);
        let worst = rot
            .iter()
            .zip(rb.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        // noise of S/N 1e12 only
        assert!(worst < 1e-9 * peak, "{worst} vs peak {peak}");
        assert!(ShearSimSource::new(ShearSimConfig {
            ngal: 3,
            ..ShearSimConfig::default()
        })
        .is_err());
    }
}
