//! The ngmixer metacal fitter (`metacal-ngmix-boot`, features `maxlike` + `metacal`): the
//! max-likelihood fit of [`crate::fitter::MaxLike`] followed, per object, by metacalibration of
//! the fitted observation set and a max-likelihood fit of every sheared image set
//! (ngmixer e5d56b4 `MetacalNGMixBootFitter`, ngmix v1.3.5 `MaxMetacalBootstrapper`;
//! `shared/docs/METACAL.md` §1 and §5).
//!
//! Per object, after the main fit of the model succeeded:
//! 1. with `replace_bad_pixels`, pixels with `bmask != 0` or `weight_raw == 0` are replaced by
//!    the main fit's PSF-convolved model ([`crate::metacal::replace_bad_pixels`]);
//! 2. every epoch with a fitted PSF goes through [`MetacalMaker`] (fixnoise field, PSF noise
//!    and admom starts drawn from the object's own stream `(seed, id)`, after the main fit's
//!    draws, so results do not depend on threads or chunking);
//! 3. for each type in ngmix's sorted order (`1m, 1p, 2m, 2p, noshear`, ...): the metacal
//!    PSFs are fitted (`metacal_pars.psf_pars` or `psf_pars`, 5 tries, `Tguess` the main fit's
//!    band-0 epoch-0 PSF T, no `psf_norm` renormalisation), then the PSF template fluxes, the
//!    `TFluxAndPriorGuesser` guesses and the LM fit with `max_pars` and the metacal prior
//!    (`metacal_pars.model_pars` or the main one), then the round-model S/N;
//! 4. `mcal_flags` is the OR of the fit and round flags; a non-zero value sets
//!    `METACAL_FAILURE` in the model's `flags` column. The mcal columns are written whenever
//!    metacal ran, even with `mcal_flags != 0`.
//!
//! A failure inside metacal (no PSF fit of a type succeeded, a failed LM fit, a range error:
//! ngmix's `BootGalFailure`/`GMixRangeError`) makes the whole object `GAL_FIT_FAILURE` with
//! none of the model's columns copied, as in ngmixer.
//!
//! Two ngmix quirks are kept (METACAL.md §0): the fits use the *un-halved* weights (fixnoise
//! halves `obs.weight` but not `obs.pixels`), and the covariances are scaled by χ²/dof (so
//! metacal errors are about half the main fit's). `gpsf` and `Tpsf` are averages weighted by
//! `Σ obs.weight`, which fixnoise halves uniformly: the ratios are the same with either map.
//!
//! In dilate mode (`psf: None` in ngmix) the `noshear` PSF statistics use the metacal PSF
//! (with pixel) rather than ngmix's separately drawn `psf_nopix` image.

use rand_core::Rng;

use super::maxlike::AfterFit;
use super::schema::MaxLikeCols;
use super::{FitterSettings, GalModel};
use crate::error::{Error, Result};
use crate::fitting::boot::{self, PsfFitConfig};
use crate::fitting::kernel::{ModelSpec, V1};
use crate::fitting::lm::LmPars;
use crate::fitting::maxlike::{MaxLikeResult, NoPrior};
use crate::flags::{DEFVAL, METACAL_FAILURE};
use crate::gmix::models::{SimpleKind, Tables};
use crate::metacal::{replace_bad_pixels, MetacalMaker, MetacalPars, MetacalType};
use crate::obs::{MultiBandObs, ObjectObs, ObsList};
use crate::output::{Catalog, Col, ColSpec, Kind, SchemaError, Table};
use crate::priors::PriorSimpleSep;
use crate::rng::object_rng;
use crate::traits::ObjectFitter;

/// ngmix's `psf_ntry` default of `fit_metacal`, which ngmixer leaves in force.
pub const METACAL_PSF_NTRY: usize = 5;

/// Settings of the metacal step (from `metacal_pars`, `replace_bad_pixels` and `max_pars`).
#[derive(Debug, Clone)]
pub struct MetacalSettings {
    /// The image settings (types in output-column order).
    pub pars: MetacalPars,
    /// `replace_bad_pixels`.
    pub replace_bad_pixels: bool,
    /// The model fitted to the metacal images.
    pub model: SimpleKind,
    /// Its prior (`None`: the guess is the PSF T and fluxes, as ngmix's `TFluxGuesser`
    /// without randomisation in this port).
    pub prior: Option<PriorSimpleSep>,
    /// PSF fits of the metacal PSF images (`ntry` is [`METACAL_PSF_NTRY`]).
    pub psf: PsfFitConfig,
    /// LM settings (`max_pars.lm_pars`).
    pub lm: LmPars,
    /// `max_pars.ntry`.
    pub ntry: usize,
}

/// The metacal fitter: the max-likelihood fitter's settings and columns, plus the metacal
/// settings and the `mcal_*` columns.
#[derive(Debug, Clone)]
pub struct Metacal {
    base: FitterSettings,
    mcal: MetacalSettings,
    cols: MaxLikeCols,
    mcols: McalCols,
    empty: Catalog,
}

#[derive(Debug, Clone, Copy)]
struct TypeCols {
    g: Col,
    g_cov: Col,
    pars: Col,
    pars_cov: Col,
    psf: Option<(Col, Col)>,
    t: Col,
    t_err: Col,
    t_r: Col,
    s2n_r: Col,
}

#[derive(Debug, Clone)]
struct McalCols {
    flags: Col,
    types: Vec<(MetacalType, TypeCols)>,
}

fn suffix(t: MetacalType) -> String {
    match t {
        MetacalType::Noshear => String::new(),
        t => format!("_{}", t.name()),
    }
}

/// The `mcal_*` columns (ngmixer `_get_metacal_dtype`) for `nband` bands and `types` in
/// config order.
pub fn metacal_specs(nband: usize, types: &[MetacalType]) -> Vec<ColSpec> {
    let np = 5 + nband;
    let c = |n: String, k: Kind, s: &[usize]| ColSpec::new(n, k, s, DEFVAL);
    let mut v = vec![c("mcal_flags".into(), Kind::I64, &[])];
    for &t in types {
        let b = suffix(t);
        v.push(c(format!("mcal_g{b}"), Kind::F64, &[2]));
        v.push(c(format!("mcal_g_cov{b}"), Kind::F64, &[2, 2]));
        v.push(c(format!("mcal_pars{b}"), Kind::F64, &[np]));
        v.push(c(format!("mcal_pars_cov{b}"), Kind::F64, &[np, np]));
        if t == MetacalType::Noshear {
            v.push(c("mcal_gpsf".into(), Kind::F64, &[2]));
            v.push(c("mcal_Tpsf".into(), Kind::F64, &[]));
        }
        v.push(c(format!("mcal_T{b}"), Kind::F64, &[]));
        v.push(c(format!("mcal_T_err{b}"), Kind::F64, &[]));
        v.push(c(format!("mcal_T_r{b}"), Kind::F64, &[]));
        v.push(c(format!("mcal_s2n_r{b}"), Kind::F64, &[]));
    }
    v
}

impl McalCols {
    fn resolve(types: &[MetacalType], data: &Table) -> std::result::Result<Self, SchemaError> {
        let mut out = Vec::with_capacity(types.len());
        for &t in types {
            let b = suffix(t);
            let d = |n: &str| data.col(&format!("mcal_{n}{b}"));
            out.push((
                t,
                TypeCols {
                    g: d("g")?,
                    g_cov: d("g_cov")?,
                    pars: d("pars")?,
                    pars_cov: d("pars_cov")?,
                    psf: if t == MetacalType::Noshear {
                        Some((data.col("mcal_gpsf")?, data.col("mcal_Tpsf")?))
                    } else {
                        None
                    },
                    t: d("T")?,
                    t_err: d("T_err")?,
                    t_r: d("T_r")?,
                    s2n_r: d("s2n_r")?,
                },
            ));
        }
        Ok(Self {
            flags: data.col("mcal_flags")?,
            types: out,
        })
    }
}

impl Metacal {
    /// The fitter for the main settings `base` and the metacal settings `mcal`.
    ///
    /// # Errors
    /// [`Error::Invalid`] unless `base` fits exactly one `gauss`/`exp`/`dev` model on exactly
    /// one of the multi-epoch and coadd sets (ngmixer: "for metacal, only fit one model and
    /// either coadd or me"), or when the type list is empty or repeats a type;
    /// [`Error::Schema`] for a schema bug.
    pub fn new(base: FitterSettings, mcal: MetacalSettings) -> Result<Self> {
        if base.models.len() != 1 || !matches!(base.models[0].0, GalModel::Simple(_)) {
            return Err(Error::Invalid(format!(
                "metacal-ngmix-boot fits exactly one of the models gauss, exp, dev; got {}",
                base.models
                    .iter()
                    .map(|(m, _)| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if base.fit_me_galaxy == base.fit_coadd_galaxy {
            return Err(Error::Invalid(
                "metacal-ngmix-boot runs on either the multi-epoch or the coadd set: set \
                 exactly one of fit_me_galaxy and fit_coadd_galaxy to True"
                    .into(),
            ));
        }
        let types = &mcal.pars.types;
        if types.is_empty() {
            return Err(Error::Invalid("metacal_pars.types is empty".into()));
        }
        for (i, t) in types.iter().enumerate() {
            if types[..i].contains(t) {
                return Err(Error::Invalid(format!(
                    "metacal_pars.types lists {} twice",
                    t.name()
                )));
            }
        }
        let mut specs = base.model_fits_specs();
        specs.extend(metacal_specs(base.nband, types));
        let cat = Catalog::new(specs, base.epoch_specs());
        let cols = MaxLikeCols::resolve(&base, &cat.model_fits, &cat.epoch_data)?;
        let mcols = McalCols::resolve(types, &cat.model_fits)?;
        Ok(Self {
            base,
            mcal,
            cols,
            mcols,
            empty: cat,
        })
    }

    /// The main fit's settings.
    pub fn settings(&self) -> &FitterSettings {
        &self.base
    }

    /// The metacal settings.
    pub fn metacal_settings(&self) -> &MetacalSettings {
        &self.mcal
    }
}

impl ObjectFitter for Metacal {
    fn fitter_type(&self) -> &'static str {
        "metacal-ngmix-boot"
    }

    fn empty_catalog(&self) -> Catalog {
        self.empty.clone()
    }

    fn fit_group(&self, members: &mut [ObjectObs], seed: u64, out: &mut Catalog) -> Result<()> {
        let hook = Hook {
            s: &self.mcal,
            cols: &self.mcols,
        };
        for obj in members {
            let mut rng = object_rng(seed, obj.meta.id);
            self.base.fit_object(
                &self.cols,
                &hook,
                obj,
                &mut rng,
                &mut out.model_fits,
                &mut out.epoch_data,
            );
        }
        Ok(())
    }
}

/// The fit of one metacal type.
#[derive(Debug, Clone)]
pub struct TypeResult {
    /// The type.
    pub kind: MetacalType,
    /// The LM result (χ²/dof-scaled covariance).
    pub fit: MaxLikeResult,
    /// The round-model statistics.
    pub round: boot::RoundResult,
    /// `Σ w g_psf / Σ w` over the fitted epochs.
    pub gpsf: [f64; 2],
    /// `Σ w T_psf / Σ w`.
    pub tpsf: f64,
}

/// Metacal of one object.
#[derive(Debug, Clone)]
pub struct MetacalResult {
    /// OR of the fit and round flags of every type.
    pub flags: i32,
    /// Pixels replaced by `replace_bad_pixels`.
    pub nreplaced: usize,
    /// One per type, in ngmix's (sorted-name) processing order.
    pub types: Vec<TypeResult>,
}

/// Why metacal of one object failed (ngmix `BootGalFailure`, `BootPSFFailure` or
/// `GMixRangeError`; the object becomes `GAL_FIT_FAILURE`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetacalFailure(pub String);

impl<E: std::fmt::Display> From<E> for MetacalFailure {
    fn from(e: E) -> Self {
        MetacalFailure(e.to_string())
    }
}

impl MetacalSettings {
    /// Metacal and the fits of every type on `good` (the observations with fitted PSFs of the
    /// main fit) after the main fit `main` of `main_spec` (used to replace bad pixels).
    ///
    /// # Errors
    /// A [`MetacalFailure`] naming the step.
    pub fn run<R: Rng + ?Sized>(
        &self,
        good: &MultiBandObs,
        main_spec: &ModelSpec,
        main: &MaxLikeResult,
        rng: &mut R,
    ) -> std::result::Result<MetacalResult, MetacalFailure> {
        let nband = good.nband();
        let mut obs = good.clone();
        let mut nreplaced = 0;
        if self.replace_bad_pixels {
            for (b, list) in obs.bands.iter_mut().enumerate() {
                let p = &main.pars;
                let bp = [p[0], p[1], p[2], p[3], p[4], p[5 + b]];
                let gm0 = main_spec.gmix(&bp)?;
                for o in list.iter_mut() {
                    let psf = o
                        .psf_gmix()
                        .ok_or_else(|| MetacalFailure("psf not fitted".into()))?;
                    let gm = gm0.convolve(psf)?;
                    nreplaced += replace_bad_pixels(o, &gm)?;
                }
            }
        }
        let tguess = obs
            .bands
            .first()
            .and_then(|l| l.first())
            .and_then(|o| o.psf_gmix())
            .ok_or_else(|| MetacalFailure("no fitted PSF in band 0".into()))?
            .t();
        // the types in ngmix's processing order (sorted names)
        let mut order: Vec<MetacalType> = self.pars.types.clone();
        order.sort_by_key(|t| t.name());
        let mut sets: Vec<Vec<ObsList>> = vec![vec![Vec::new(); nband]; order.len()];
        for (b, list) in obs.bands.iter().enumerate() {
            for o in list {
                let mk = MetacalMaker::new(o, &self.pars, rng)?;
                for (k, &t) in order.iter().enumerate() {
                    let mut m = mk.make(t)?.obs;
                    if let Some(psf) = m.psf.as_deref_mut() {
                        psf.psf_meta.tguess = tguess;
                        // no psf_norm key in ngmix's metacal fits: the mixture keeps the
                        // flux of the PSF image
                        psf.psf_meta.psf_norm = psf.image().sum();
                    }
                    sets[k][b].push(m);
                }
            }
        }
        let spec = ModelSpec::simple(self.model, Tables::V1);
        let mut flags = 0;
        let mut types = Vec::with_capacity(order.len());
        for (kind, bands) in order.into_iter().zip(sets) {
            let mut mb = MultiBandObs::new(bands);
            let fitted = boot::fit_psfs(&mut mb, &self.psf, rng)
                .map_err(|e| MetacalFailure(format!("{}: {e}", kind.name())))?;
            let r = self.fit_type(&fitted, &spec, rng)?;
            let round = boot::round_s2n(&fitted, &spec, &r.pars);
            flags |= r.flags | round.flags;
            let (mut wsum, mut g1s, mut g2s, mut ts) = (0.0, 0.0, 0.0, 0.0);
            for o in fitted.iter() {
                let Some(gm) = o.psf_gmix() else { continue };
                let (g1, g2, t) = gm.g1g2t()?;
                let w: f64 = o.weight().sum();
                wsum += w;
                g1s += g1 * w;
                g2s += g2 * w;
                ts += t * w;
            }
            types.push(TypeResult {
                kind,
                fit: r,
                round,
                gpsf: [g1s / wsum, g2s / wsum],
                tpsf: ts / wsum,
            });
        }
        Ok(MetacalResult {
            flags,
            nreplaced,
            types,
        })
    }

    /// PSF template fluxes, guesses and the LM fit of one type (ngmix `fit_max`).
    fn fit_type<R: Rng + ?Sized>(
        &self,
        obs: &MultiBandObs,
        spec: &ModelSpec,
        rng: &mut R,
    ) -> std::result::Result<MaxLikeResult, MetacalFailure> {
        let mut fluxes = Vec::with_capacity(obs.nband());
        for list in &obs.bands {
            let pf = boot::psf_flux_band(list, true)?;
            fluxes.push(if pf.flags == 0 { pf.flux } else { DEFVAL });
        }
        let psf_t = obs
            .bands
            .first()
            .and_then(|l| l.first())
            .and_then(|o| o.psf_gmix())
            .ok_or_else(|| MetacalFailure("no fitted PSF in band 0".into()))?
            .t();
        let res = match &self.prior {
            Some(p) => boot::fit_max_ntry::<V1, PriorSimpleSep>(
                obs,
                spec,
                Some(p),
                &self.lm,
                self.ntry,
                || boot::guess_tflux_prior(psf_t, &fluxes, p, rng),
            )?,
            None => {
                boot::fit_max_ntry::<V1, NoPrior>(obs, spec, None, &self.lm, self.ntry, || {
                    let mut g = vec![0.0; 5 + fluxes.len()];
                    g[4] = psf_t;
                    g[5..].copy_from_slice(&fluxes);
                    g
                })?
            }
        };
        if res.flags != 0 {
            return Err(MetacalFailure(format!(
                "failed to fit galaxy with maxlike (flags {})",
                res.flags
            )));
        }
        Ok(res)
    }
}

struct Hook<'a> {
    s: &'a MetacalSettings,
    cols: &'a McalCols,
}

impl AfterFit for Hook<'_> {
    fn after_fit<R: Rng + ?Sized>(
        &self,
        good: &MultiBandObs,
        _kind: SimpleKind,
        spec: &ModelSpec,
        res: &MaxLikeResult,
        rng: &mut R,
        data: &mut Table,
        row: usize,
    ) -> Option<i32> {
        let out = self.s.run(good, spec, res, rng).ok()?;
        data.set1(row, self.cols.flags, out.flags as f64);
        for tr in &out.types {
            let Some((_, c)) = self.cols.types.iter().find(|(t, _)| *t == tr.kind) else {
                continue;
            };
            let r = &tr.fit;
            data.set(row, c.pars, &r.pars);
            data.set(row, c.pars_cov, &r.pars_cov);
            data.set(row, c.g, &r.pars[2..4]);
            data.set(
                row,
                c.g_cov,
                &[r.cov(2, 2), r.cov(2, 3), r.cov(3, 2), r.cov(3, 3)],
            );
            data.set1(row, c.t, r.pars[4]);
            data.set1(row, c.t_err, r.cov(4, 4).sqrt());
            data.set1(row, c.t_r, tr.round.t_r);
            data.set1(row, c.s2n_r, tr.round.s2n_r);
            if let Some((gpsf, tpsf)) = c.psf {
                data.set(row, gpsf, &tr.gpsf);
                data.set1(row, tpsf, tr.tpsf);
            }
        }
        Some(if out.flags != 0 { METACAL_FAILURE } else { 0 })
    }
}
