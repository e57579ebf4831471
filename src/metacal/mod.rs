//! Metacalibration images as ngmix v1.3.5 makes them with GalSim 2.8.5, without GalSim
//! (`shared/docs/METACAL.md` §2–§4 and §6; a port of `shared/tools/mcal/mcal_numpy_ref.py`).
//!
//! One [`Observation`] goes through [`MetacalMaker`]:
//!
//! 1. the galaxy and PSF stamps become GalSim `InterpolatedImage`s (Lanczos-15 in x, quintic
//!    in k, pad factor 4, profile origin on the stamp *true* centre): [`kimage`];
//! 2. the galaxy is deconvolved by the PSF stamp, sheared by `S(g)` about the stamp true centre,
//!    reconvolved by the target PSF and by the unit pixel (GalSim `method='auto'`), and drawn by
//!    FFT with GalSim's size and folding rules: [`draw`];
//! 3. the target PSF is
//!    * `fitgauss` ([`PsfMode::FitGauss`], `MetacalFitGaussPSF`): a round Gaussian of flux
//!      `Σ psf` and `σ = sqrt(T d_e / 2)`, `T, e` from adaptive moments on the PSF stamp
//!      (`AMRunner`, Tguess `fwhm_to_T(0.9)`, 4 tries), `d_e = min(1.1, 1 + 2(√(1+|e|) − 1))`,
//!      dilated by `1 + 2|g|`; its image is drawn *without* a pixel plus a PSF-noise field of
//!      σ `max(psf)/1e4`;
//!    * dilate ([`PsfMode::Dilate`], `Metacal`, `psf=None`): the PSF stamp deconvolved by the
//!      pixel, dilated by `1 + 2|g|` (sheared for the `*_psf` types), reconvolved by the pixel.
//! 4. `noshear` uses the `1p` target PSF (dilated by `1 + 2 step`).
//!
//! ## fixnoise
//! With [`MetacalPars::fixnoise`] a noise field (drawn by [`draw_noise_field`] from the caller's
//! seeded stream, taken from `obs.noise` with [`MetacalPars::use_noise_image`], or injected
//! with [`MetacalInputs::noise`]) is rotated by `rot90(k=1)`, metacal'd with the same Jacobian
//! and PSF stamp (with its own target-PSF fit, as ngmix's second `MetacalFitGaussPSF`
//! instance does), rotated back by `rot90(k=3)` and added to each image.
//!
//! ## The quirks of ngmix v1.3.5 a fitter must copy (METACAL.md §0)
//! 1. **fixnoise halves `obs.weight` but not `obs.pixels`.** The galaxy [`Observation`] in a
//!    [`MetacalObs`] carries the *un-halved* weight: that is what the LM fit, its χ²/dof-scaled
//!    covariance and `s2n_r` use in ngmix. The halved map (`1/(1/w + 1/w)` where `w ≠ 0`) is
//!    [`MetacalObs::weight_halved`]; only the PSF-average weights (`gpsf`, `Tpsf`, `psf_T_r`
//!    `w_sum = Σ obs.weight`) use it.
//! 2. **Metacal errors are about half the non-metacal ones**: the metacal image's noise
//!    variance is ≈0.1–0.3 × 1/w, and ngmix scales the covariance by χ²/dof. Do not correct it.
//! 3. **The galaxy image has one more pixel convolution than the PSF image** (fitgauss PSF
//!    drawn `no_pixel`; dilate PSF likewise). This is what the images here do.
//! 4. The shear is about the stamp true centre `((n−1)/2)`, not the Jacobian centre; the
//!    galaxy observation keeps the input Jacobian (centre unchanged). The fitgauss PSF
//!    observation's Jacobian is re-centred on `((n−1)/2, (n−1)/2)`.
//!
//! ## Random numbers
//! ngmix draws the fixnoise field from numpy's global stream and the PSF noise/admom starts
//! from unseeded generators. Here every draw comes from the `rand_core::Rng` given to
//! [`MetacalMaker::new`] (order: fixnoise field, PSF-noise field, admom starts of the image
//! instance, admom starts of the noise instance), so results are reproducible per seed but not
//! equal to a Python run's; [`MetacalMaker::with_inputs`] takes every random input explicitly.

mod draw;
mod interp;
mod kimage;

pub use draw::DrawInfo;
pub use interp::{good_fft_size, quintic, Lanczos15};
pub use kimage::KStamp;

use ndarray::Array2;

use crate::error::{Error, GMixError, Result};
use crate::fitting::admom::{admom_ntry, AdmomConfig};
use crate::gmix::moments::fwhm_to_t;
use crate::gmix::{GMix, Jacobian};
use crate::obs::Observation;

use draw::{gauss_psf_image, inv2, max_scale, Ctx, Reconv, Wcs, M2};

/// A metacal image type (ngmix `METACAL_TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetacalType {
    /// No shear (target PSF dilated as for `1p`).
    Noshear,
    /// `g = (+step, 0)`.
    P1,
    /// `g = (-step, 0)`.
    M1,
    /// `g = (0, +step)`.
    P2,
    /// `g = (0, -step)`.
    M2,
    /// PSF sheared by `(+step, 0)` (dilate mode only).
    P1Psf,
    /// PSF sheared by `(-step, 0)`.
    M1Psf,
    /// PSF sheared by `(0, +step)`.
    P2Psf,
    /// PSF sheared by `(0, -step)`.
    M2Psf,
}

impl MetacalType {
    /// The five galaxy-shear types (`METACAL_MINIMAL_TYPES`).
    pub const MINIMAL: [MetacalType; 5] = [
        MetacalType::Noshear,
        MetacalType::P1,
        MetacalType::M1,
        MetacalType::P2,
        MetacalType::M2,
    ];
    /// All nine types (`METACAL_TYPES`).
    pub const ALL: [MetacalType; 9] = [
        MetacalType::Noshear,
        MetacalType::P1,
        MetacalType::M1,
        MetacalType::P2,
        MetacalType::M2,
        MetacalType::P1Psf,
        MetacalType::M1Psf,
        MetacalType::P2Psf,
        MetacalType::M2Psf,
    ];

    /// ngmix's name (`"noshear"`, `"1p"`, ..., `"2m_psf"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Noshear => "noshear",
            Self::P1 => "1p",
            Self::M1 => "1m",
            Self::P2 => "2p",
            Self::M2 => "2m",
            Self::P1Psf => "1p_psf",
            Self::M1Psf => "1m_psf",
            Self::P2Psf => "2p_psf",
            Self::M2Psf => "2m_psf",
        }
    }

    /// Parse an ngmix name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The applied shear `(g1, g2)` for `step` (of the galaxy, or of the PSF for `*_psf`).
    pub fn shear(self, step: f64) -> (f64, f64) {
        match self {
            Self::Noshear => (0.0, 0.0),
            Self::P1 | Self::P1Psf => (step, 0.0),
            Self::M1 | Self::M1Psf => (-step, 0.0),
            Self::P2 | Self::P2Psf => (0.0, step),
            Self::M2 | Self::M2Psf => (0.0, -step),
        }
    }

    /// A `*_psf` type.
    pub fn is_psf_shear(self) -> bool {
        matches!(self, Self::P1Psf | Self::M1Psf | Self::P2Psf | Self::M2Psf)
    }
}

/// The target-PSF mode (`metacal_pars['psf']`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsfMode {
    /// `psf: fitgauss` (`MetacalFitGaussPSF`): round Gaussian from adaptive moments.
    FitGauss,
    /// `psf: None` (`Metacal`): the dilated, pixel-deconvolved PSF stamp.
    Dilate,
}

/// Metacal settings (`metacal_pars`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetacalPars {
    /// Target PSF mode.
    pub psf: PsfMode,
    /// Shear step (0.01).
    pub step: f64,
    /// Add a rotated, metacal'd noise field (ngmix default True).
    pub fixnoise: bool,
    /// With fixnoise: use `obs.noise` as the noise field instead of simulating it.
    pub use_noise_image: bool,
    /// The types to make. `Noshear` is made from the `1p` target PSF.
    pub types: Vec<MetacalType>,
}

impl Default for MetacalPars {
    /// ngmixer's `run-e2e02mcal.yaml`: fitgauss, step 0.01, fixnoise, the 5 minimal types.
    fn default() -> Self {
        Self {
            psf: PsfMode::FitGauss,
            step: 0.01,
            fixnoise: true,
            use_noise_image: false,
            types: MetacalType::MINIMAL.to_vec(),
        }
    }
}

impl MetacalPars {
    /// ngmix's `psf=None` defaults: dilate mode, all 9 types, fixnoise.
    pub fn dilate() -> Self {
        Self {
            psf: PsfMode::Dilate,
            types: MetacalType::ALL.to_vec(),
            ..Self::default()
        }
    }
}

/// The fitgauss reconvolution Gaussian (before the `1 + 2|g|` dilation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetPsf {
    /// σ in world units (arcsec), undilated: `sqrt(T d_e / 2)`.
    pub sigma: f64,
    /// Flux: Σ of the input PSF stamp.
    pub flux: f64,
}

/// Every random input of a metacal run, for an exact replay of a Python run (the oracle cases
/// store them). `None` fields are produced as [`MetacalMaker::new`] does.
#[derive(Debug, Clone, Default)]
pub struct MetacalInputs {
    /// fixnoise: the noise field *before* `rot90(k=1)` (ngmix's `simulate_obs` image).
    pub noise: Option<Array2<f64>>,
    /// fitgauss: the target PSF of the image instance (skips the admom fit).
    pub target: Option<TargetPsf>,
    /// fitgauss + fixnoise: the target PSF of the noise instance (defaults to `target`).
    pub noise_target: Option<TargetPsf>,
    /// fitgauss: the PSF-noise field added to every PSF image (shape of the PSF stamp).
    pub psf_noise: Option<Array2<f64>>,
}

/// One metacal observation.
#[derive(Debug, Clone)]
pub struct MetacalObs {
    /// The type.
    pub kind: MetacalType,
    /// The galaxy observation: metacal image (galaxy + noise part), the **un-halved** input
    /// weight (what ngmix's fits use, `obs.pixels`), the input Jacobian and bmask, the metacal
    /// PSF observation attached.
    pub obs: Observation,
    /// ngmix's `obs.weight` after fixnoise: `w/2` where `w ≠ 0` (equal to the input weight
    /// without fixnoise). Only the PSF-average statistics use it.
    pub weight_halved: Array2<f64>,
    /// The metacal image of the input image alone.
    pub gal_image: Array2<f64>,
    /// fixnoise: `rot90(metacal(rot90(noise, 1)), 3)`.
    pub noise_image: Option<Array2<f64>>,
    /// fitgauss: the PSF image without its PSF noise.
    pub psf_image_nonoise: Option<Array2<f64>>,
    /// FFT sizes of the galaxy draw.
    pub draw: DrawInfo,
}

/// Prepares one observation once and makes any metacal type from it.
#[derive(Debug, Clone)]
pub struct MetacalMaker {
    pars: MetacalPars,
    obs: Observation,
    psf_obs: Observation,
    wcs: Wcs,
    gal: KStamp,
    psf: KStamp,
    psf_stepk_world: f64,
    psf_maxk_world: f64,
    noise: Option<KStamp>,
    target: Option<TargetPsf>,
    noise_target: Option<TargetPsf>,
    psf_noise: Option<Array2<f64>>,
    psf_noise_sigma: f64,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(format!("metacal: {}", msg.into()))
}

/// `numpy.rot90(a, 1)`: `out[i, j] = a[j, n−1−i]` (square stamps).
pub fn rot90_k1(a: &Array2<f64>) -> Array2<f64> {
    let (ny, nx) = a.dim();
    Array2::from_shape_fn((nx, ny), |(i, j)| a[[j, nx - 1 - i]])
}

/// `numpy.rot90(a, 3)`: `out[i, j] = a[n−1−j, i]`.
pub fn rot90_k3(a: &Array2<f64>) -> Array2<f64> {
    let (ny, nx) = a.dim();
    Array2::from_shape_fn((nx, ny), |(i, j)| a[[ny - 1 - j, i]])
}

/// The fixnoise field of ngmix `simobs.simulate_obs(None, obs)`: `N(0,1)` (row-major, from
/// [`crate::rng::normal`]) times `err = sqrt(1/w)`, with `w = obs.weight_raw` if present
/// (computed in float32, as for the MEDS float32 weight) else `obs.weight`; pixels with
/// `w <= 0` get the median err of the others.
///
/// # Errors
/// If no pixel has a positive weight.
pub fn draw_noise_field<R: rand_core::Rng + ?Sized>(
    obs: &Observation,
    rng: &mut R,
) -> Result<Array2<f64>> {
    let err = noise_err(obs)?;
    let mut out = err;
    for v in out.iter_mut() {
        *v *= crate::rng::normal(rng);
    }
    Ok(out)
}

fn noise_err(obs: &Observation) -> Result<Array2<f64>> {
    let (w, f32_path) = match &obs.weight_raw {
        Some(w) if w.dim() == obs.dims() => (w, true),
        _ => (obs.weight(), false),
    };
    let mut err = Array2::<f64>::zeros(w.dim());
    let mut good = Vec::new();
    for (e, &wv) in err.iter_mut().zip(w.iter()) {
        if wv > 0.0 && wv.is_finite() {
            *e = if f32_path {
                (1.0f32 / (wv as f32)).sqrt() as f64
            } else {
                (1.0 / wv).sqrt()
            };
            good.push(*e);
        }
    }
    if good.is_empty() {
        return Err(invalid("no pixel with weight > 0 to simulate noise"));
    }
    if good.len() != err.len() {
        good.sort_by(f64::total_cmp);
        let m = good.len();
        let med = if m % 2 == 1 {
            good[m / 2]
        } else {
            0.5 * (good[m / 2 - 1] + good[m / 2])
        };
        for (e, &wv) in err.iter_mut().zip(w.iter()) {
            if !(wv > 0.0 && wv.is_finite()) {
                *e = med;
            }
        }
    }
    Ok(err)
}

/// ngmix `replace_masked_pixels` (`replace_bad_pixels: True`): pixels with `bmask != 0` or
/// `weight_raw == 0` (the weight when there is no `weight_raw`) get the value of `model` (the
/// main fit's PSF-convolved mixture) at the pixel centre, per unit sky area (v1.3.5
/// `make_image`). Returns the number of pixels replaced. The weights are not changed.
///
/// # Errors
/// If the model gives a non-finite value.
pub fn replace_bad_pixels(obs: &mut Observation, model: &GMix) -> Result<usize> {
    let (ny, nx) = obs.dims();
    let jac = obs.jacobian;
    let mut img = obs.image().clone();
    let mut n = 0;
    for r in 0..ny {
        for c in 0..nx {
            let masked = obs.bmask.as_ref().is_some_and(|b| b[[r, c]] != 0);
            let wz = match &obs.weight_raw {
                Some(w) => w[[r, c]] == 0.0,
                None => obs.weight()[[r, c]] == 0.0,
            };
            if masked || wz {
                let (v, u) = jac.vu(r as f64, c as f64);
                let mut val = 0.0;
                for g in model.gaussians() {
                    let chi2 = g.chi2(v, u);
                    if chi2 < 25.0 {
                        val += g.pnorm * (-0.5 * chi2).exp();
                    }
                }
                if !val.is_finite() {
                    return Err(invalid("replace_bad_pixels: model is not finite"));
                }
                img[[r, c]] = val;
                n += 1;
            }
        }
    }
    if n > 0 {
        obs.set_image(img)?;
    }
    Ok(n)
}

/// The fitgauss target from adaptive moments on the PSF observation (ngmix v1.3.5
/// `MetacalFitGaussPSF._do_psf_fit` with `AMRunner`, Tguess `fwhm_to_T(0.9)`, 4 tries, and
/// `_get_ellip_dilation`). Falls back to the PSF's existing one-Gaussian mixture, as ngmix
/// does after its LM fallback (not ported).
///
/// # Errors
/// If admom fails and the PSF has no one-Gaussian mixture (ngmix `BootPSFFailure`).
pub fn fit_target_psf<R: rand_core::Rng + ?Sized>(
    psf: &Observation,
    rng: &mut R,
) -> Result<TargetPsf> {
    let flux: f64 = psf.image().sum();
    let (ny, nx) = psf.dims();
    let (res, _) = admom_ntry(
        psf.image_slice(),
        psf.weight_slice(),
        ny,
        nx,
        &psf.jacobian,
        fwhm_to_t(0.9),
        4,
        &AdmomConfig::default(),
        rng,
    )?;
    let (t, e1, e2) = if res.flags == 0 {
        let t = res.pars[4];
        (t, res.pars[2] / t, res.pars[3] / t)
    } else {
        match psf.gmix.as_ref() {
            Some(g) if g.len() == 1 => {
                let (e1, e2, t) = g.e1e2t()?;
                (t, e1, e2)
            }
            _ => {
                return Err(GMixError::Fatal("metacal: failed to fit the PSF for fitgauss").into())
            }
        }
    };
    if !(t > 0.0) || !t.is_finite() {
        return Err(GMixError::Range("metacal: fitgauss PSF T <= 0").into());
    }
    let e = (e1 * e1 + e2 * e2).sqrt();
    let de = (1.0 + 2.0 * ((1.0 + e).sqrt() - 1.0)).min(1.1);
    Ok(TargetPsf {
        sigma: (t * de / 2.0).sqrt(),
        flux,
    })
}

fn jac_matrix(j: &Jacobian) -> M2 {
    [[j.dudcol, j.dudrow], [j.dvdcol, j.dvdrow]]
}

impl MetacalMaker {
    /// Prepare `obs` (it must have a PSF observation), drawing every random input from `rng`
    /// (see the module docs for the order).
    ///
    /// # Errors
    /// As [`MetacalMaker::with_inputs`], and a failed fitgauss PSF fit.
    pub fn new<R: rand_core::Rng + ?Sized>(
        obs: &Observation,
        pars: &MetacalPars,
        rng: &mut R,
    ) -> Result<Self> {
        let psf = obs
            .psf
            .as_deref()
            .ok_or_else(|| invalid("the observation has no PSF"))?;
        let mut inputs = MetacalInputs::default();
        if pars.fixnoise {
            inputs.noise = Some(if pars.use_noise_image {
                obs.noise
                    .clone()
                    .ok_or_else(|| invalid("use_noise_image but the observation has no noise"))?
            } else {
                draw_noise_field(obs, rng)?
            });
        }
        if pars.psf == PsfMode::FitGauss {
            check_stamp(psf.image(), "PSF")?;
            let sig = psf_noise_sigma(psf.image())?;
            let pn = Array2::from_shape_fn(psf.dims(), |_| sig * crate::rng::normal(rng));
            inputs.psf_noise = Some(pn);
            inputs.target = Some(fit_target_psf(psf, rng)?);
            if pars.fixnoise {
                inputs.noise_target = Some(fit_target_psf(psf, rng)?);
            }
        }
        Self::with_inputs(obs, pars, inputs)
    }

    /// Prepare `obs` with explicit random inputs (missing ones: no PSF noise, the target
    /// from a deterministic admom start at the PSF centre is **not** made up — a missing
    /// fitgauss `target` is an error here).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a missing PSF, stamps smaller than 2×2, non-finite pixels,
    /// a PSF of non-positive flux, a non-square stamp with fixnoise, a noise field of the
    /// wrong shape, `|step| >= 1`, or `*_psf` types with fitgauss.
    pub fn with_inputs(
        obs: &Observation,
        pars: &MetacalPars,
        inputs: MetacalInputs,
    ) -> Result<Self> {
        let psf = obs
            .psf
            .as_deref()
            .ok_or_else(|| invalid("the observation has no PSF"))?;
        if !(pars.step.abs() < 1.0) || !pars.step.is_finite() {
            return Err(invalid(format!(
                "step {} must satisfy |step| < 1",
                pars.step
            )));
        }
        check_stamp(obs.image(), "image")?;
        check_stamp(psf.image(), "PSF")?;
        let psf_flux = psf.image().sum();
        if !(psf_flux > 0.0) {
            return Err(invalid("the PSF image sum is not positive"));
        }
        if pars.psf == PsfMode::FitGauss && pars.types.iter().any(|t| t.is_psf_shear()) {
            return Err(invalid("fitgauss allows only the galaxy-shear types"));
        }
        let j = jac_matrix(&obs.jacobian);
        let jinv = inv2(&j).ok_or_else(|| invalid("singular jacobian"))?;
        let wcs = Wcs { j, jinv };
        let gal = KStamp::new(obs.image());
        let psfk = KStamp::new(psf.image());
        let psf_stepk_world = psfk.stepk_pix / draw::min_scale(&j);
        let psf_maxk_world = psfk.maxk_pix() / max_scale(&j);
        let noise = if pars.fixnoise {
            let n = inputs
                .noise
                .as_ref()
                .ok_or_else(|| invalid("fixnoise needs a noise field"))?;
            let (ny, nx) = obs.dims();
            if ny != nx {
                return Err(invalid("fixnoise needs a square stamp (rot90)"));
            }
            if n.dim() != obs.dims() {
                return Err(invalid("the noise field and the image differ in shape"));
            }
            check_stamp(n, "noise field")?;
            Some(KStamp::new(&rot90_k1(n)))
        } else {
            None
        };
        let (target, noise_target, psf_noise, psf_noise_sigma) = match pars.psf {
            PsfMode::FitGauss => {
                let t = inputs
                    .target
                    .ok_or_else(|| invalid("fitgauss needs a target PSF"))?;
                if !(t.sigma > 0.0) || !t.sigma.is_finite() || !t.flux.is_finite() {
                    return Err(invalid("invalid target PSF"));
                }
                let nt = inputs.noise_target.unwrap_or(t);
                if let Some(pn) = &inputs.psf_noise {
                    if pn.dim() != psf.dims() {
                        return Err(invalid("the PSF-noise field and the PSF differ in shape"));
                    }
                }
                let sig = psf_noise_sigma(psf.image())?;
                (Some(t), Some(nt), inputs.psf_noise, sig)
            }
            PsfMode::Dilate => (None, None, None, 0.0),
        };
        Ok(Self {
            pars: pars.clone(),
            obs: obs.clone(),
            psf_obs: psf.clone(),
            wcs,
            gal,
            psf: psfk,
            psf_stepk_world,
            psf_maxk_world,
            noise,
            target,
            noise_target,
            psf_noise,
            psf_noise_sigma,
        })
    }

    /// The fitgauss target PSF of the image instance.
    pub fn target(&self) -> Option<TargetPsf> {
        self.target
    }

    /// The fitgauss target PSF of the noise instance.
    pub fn noise_target(&self) -> Option<TargetPsf> {
        self.noise_target
    }

    /// The settings.
    pub fn pars(&self) -> &MetacalPars {
        &self.pars
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            wcs: self.wcs,
            psf: &self.psf,
            psf_stepk_world: self.psf_stepk_world,
            psf_maxk_world: self.psf_maxk_world,
        }
    }

    /// Make one type.
    ///
    /// # Errors
    /// A `*_psf` type in fitgauss mode; invalid observations built from the result.
    pub fn make(&self, kind: MetacalType) -> Result<MetacalObs> {
        let step = self.pars.step;
        let dilation = 1.0 + 2.0 * step.abs();
        let ctx = self.ctx();
        let (gshear, reconv, noise_reconv) = match self.pars.psf {
            PsfMode::FitGauss => {
                if kind.is_psf_shear() {
                    return Err(invalid("fitgauss allows only the galaxy-shear types"));
                }
                let t = self.target.ok_or_else(|| invalid("no target PSF"))?;
                let nt = self.noise_target.unwrap_or(t);
                (
                    kind.shear(step),
                    Reconv::Gauss {
                        sigma: t.sigma * dilation,
                        flux: t.flux,
                    },
                    Reconv::Gauss {
                        sigma: nt.sigma * dilation,
                        flux: nt.flux,
                    },
                )
            }
            PsfMode::Dilate => {
                let r = Reconv::Dilate {
                    dilation,
                    psf_shear: kind.is_psf_shear().then(|| kind.shear(step)),
                };
                let g = if kind.is_psf_shear() {
                    (0.0, 0.0)
                } else {
                    kind.shear(step)
                };
                (g, r, r)
            }
        };
        let (gal_image, draw) = ctx.draw_galaxy(&self.gal, gshear, &reconv);
        let noise_image = self
            .noise
            .as_ref()
            .map(|n| rot90_k3(&ctx.draw_galaxy(n, gshear, &noise_reconv).0));
        let image = match &noise_image {
            Some(n) => &gal_image + n,
            None => gal_image.clone(),
        };
        // PSF observation
        let (psf_obs, psf_image_nonoise) = match reconv {
            Reconv::Gauss { sigma, flux } => {
                let clean = gauss_psf_image(self.psf_obs.dims(), &self.wcs.j, sigma, flux);
                let mut img = clean.clone();
                if let Some(pn) = &self.psf_noise {
                    img += pn;
                }
                let (py, px) = self.psf_obs.dims();
                let w = 1.0 / (self.psf_noise_sigma * self.psf_noise_sigma);
                let jac = self
                    .psf_obs
                    .jacobian
                    .with_cen((py as f64 - 1.0) / 2.0, (px as f64 - 1.0) / 2.0);
                let mut o = Observation::new(img, Array2::from_elem((py, px), w), jac)?;
                o.meta = self.psf_obs.meta.clone();
                o.psf_meta = self.psf_obs.psf_meta;
                (o, Some(clean))
            }
            Reconv::Dilate { .. } => {
                let (img, _) = ctx.draw_dilated_psf(&reconv);
                let mut o =
                    Observation::new(img, self.psf_obs.weight().clone(), self.psf_obs.jacobian)?;
                o.meta = self.psf_obs.meta.clone();
                o.psf_meta = self.psf_obs.psf_meta;
                (o, None)
            }
        };
        let w = self.obs.weight().clone();
        let weight_halved = if self.noise.is_some() {
            w.mapv(|x| {
                if x != 0.0 {
                    1.0 / (1.0 / x + 1.0 / x)
                } else {
                    x
                }
            })
        } else {
            w.clone()
        };
        let mut gobs = Observation::new(image, w, self.obs.jacobian)?;
        gobs.bmask = self.obs.bmask.clone();
        gobs.seg = self.obs.seg.clone();
        gobs.meta = self.obs.meta.clone();
        gobs.psf_meta = self.obs.psf_meta;
        let gobs = gobs.with_psf(psf_obs);
        Ok(MetacalObs {
            kind,
            obs: gobs,
            weight_halved,
            gal_image,
            noise_image,
            psf_image_nonoise,
            draw,
        })
    }

    /// Make every type of [`MetacalPars::types`] (`noshear` adds nothing: it already uses the
    /// `1p` target PSF), in the order given.
    ///
    /// # Errors
    /// As [`MetacalMaker::make`].
    pub fn make_all(&self) -> Result<Vec<MetacalObs>> {
        self.pars.types.iter().map(|&t| self.make(t)).collect()
    }
}

fn psf_noise_sigma(psf: &Array2<f64>) -> Result<f64> {
    let m = psf.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s = m / 1.0e4;
    if !(s > 0.0) || !s.is_finite() {
        return Err(invalid("the PSF image maximum is not positive"));
    }
    Ok(s)
}

fn check_stamp(a: &Array2<f64>, what: &str) -> Result<()> {
    let (ny, nx) = a.dim();
    if ny < 2 || nx < 2 {
        return Err(invalid(format!(
            "{what} stamp {ny}x{nx} is smaller than 2x2"
        )));
    }
    if ny > 4096 || nx > 4096 {
        return Err(invalid(format!("{what} stamp {ny}x{nx} is too large")));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(invalid(format!("{what} stamp has non-finite pixels")));
    }
    Ok(())
}
