//! Turning a [`FittingConfig`] into fitter and observation-building settings, naming the
//! config key of every problem.

use crate::config::{
    CenPriorSpec, FittingConfig, FracdevPriorSpec, GPriorSpec, GalaxyModel, ModelPriorSpec,
    ScalarPrior,
};
use crate::config::{PsfModel, PsfPars};
use crate::error::{Error, Result};
#[cfg(feature = "maxlike")]
use crate::fitter::{FitterSettings, GalModel};
use crate::fitting::boot::{PsfFitConfig, PsfFitMethod};
use crate::fitting::cm::CmConfig;
use crate::fitting::em::EmConfig;
use crate::fitting::lm::LmPars;
use crate::fitting::psf::LmPsfModel;
use crate::gmix::models::Tables;
use crate::priors::{CenPrior, GMixND, PriorSimpleSep, ShapePrior, TPrior};

/// A GMixND prior from a FITS file (`table`: columns `weights`, `means`, `covars`; else the
/// ngmix image layout); reading FITS needs the `des-y1` feature.
fn gmixnd_file(path: &std::path::Path, table: bool) -> Result<GMixND> {
    #[cfg(feature = "des-y1")]
    {
        if table {
            GMixND::from_fits_table(path)
        } else {
            GMixND::from_fits(path)
        }
    }
    #[cfg(not(feature = "des-y1"))]
    {
        let _ = table;
        Err(Error::Invalid(format!(
            "prior file {}: reading FITS files needs the `des-y1` feature, which this build \
             of ngmixer-rs lacks",
            path.display()
        )))
    }
}

fn cerr(cfg: &FittingConfig, msg: impl Into<String>) -> Error {
    Error::Config {
        file: cfg.source.clone().unwrap_or_else(|| "<config>".into()),
        msg: msg.into(),
    }
}

/// A scalar prior (`T`, `counts`) of config key `key`.
pub fn scalar_prior(cfg: &FittingConfig, key: &str, p: &ScalarPrior) -> Result<TPrior> {
    let wrap = |e: Error| cerr(cfg, format!("{key}: {e}"));
    Ok(match p {
        ScalarPrior::Flat { min, max } => TPrior::flat(*min, *max).map_err(wrap)?,
        ScalarPrior::TwoSidedErf {
            minval,
            width_at_min,
            maxval,
            width_at_max,
        } => {
            TPrior::two_sided_erf([*minval, *width_at_min, *maxval, *width_at_max]).map_err(wrap)?
        }
        ScalarPrior::LogNormal { mean, sigma } => TPrior::lognormal(*mean, *sigma).map_err(wrap)?,
        ScalarPrior::Normal { mean, sigma } => TPrior::normal(*mean, *sigma).map_err(wrap)?,
        ScalarPrior::CosmosExp => TPrior::cosmos_exp(),
        ScalarPrior::CosmosDev => TPrior::cosmos_dev(),
        ScalarPrior::GMixND { file, cov_factor } => {
            let path = crate::config::expand_path(file);
            let mut g = gmixnd_file(&path, false).map_err(wrap)?;
            if let Some(f) = cov_factor {
                g.apply_cov_factor_ngmixer(*f).map_err(wrap)?;
            }
            TPrior::GMixND(g)
        }
    })
}

/// The joint prior of `model` (`model_pars.<model>`) for `nband` bands.
pub fn joint_prior(
    cfg: &FittingConfig,
    model: &str,
    spec: &ModelPriorSpec,
    nband: usize,
) -> Result<PriorSimpleSep> {
    let key = format!("model_pars.{model}");
    let w = match spec.cen {
        CenPriorSpec::DGauss { width } | CenPriorSpec::Normal2D { width } => width,
    };
    let cen = CenPrior::new(0.0, 0.0, w, w).map_err(|e| cerr(cfg, format!("{key}.cen: {e}")))?;
    let g = match spec.g {
        GPriorSpec::Ba { sigma } => ShapePrior::ba(sigma),
        GPriorSpec::Flat => Ok(ShapePrior::flat()),
        GPriorSpec::CosmosSersic => ShapePrior::cosmos_sersic(),
        GPriorSpec::CosmosExp => ShapePrior::cosmos_exp(),
        GPriorSpec::CosmosDev => ShapePrior::cosmos_dev(),
    }
    .map_err(|e| cerr(cfg, format!("{key}.g: {e}")))?;
    let t = scalar_prior(cfg, &format!("{key}.T"), &spec.t)?;
    let counts = spec
        .counts
        .for_nband(nband)
        .map_err(|m| cerr(cfg, format!("{key}.counts: {m}")))?
        .iter()
        .map(|p| scalar_prior(cfg, &format!("{key}.counts"), p))
        .collect::<Result<Vec<_>>>()?;
    PriorSimpleSep::new(cen, g, t, counts).map_err(|e| cerr(cfg, format!("{key}: {e}")))
}

/// The `fracdev` prior of `cm` (ngmixer `get_fracdev_prior`): a FITS table with columns
/// `weights`, `means`, `covars` (path with `~` and `$VARS` expanded, relative paths taken from
/// the working directory as ngmixer does), or the inline arrays.
pub fn fracdev_prior(cfg: &FittingConfig, spec: &FracdevPriorSpec) -> Result<GMixND> {
    let key = "model_pars.cm.fracdev";
    let g = match spec {
        FracdevPriorSpec::File(file) => {
            let path = crate::config::expand_path(file);
            gmixnd_file(&path, true).map_err(|e| cerr(cfg, format!("{key}.file: {e}")))?
        }
        FracdevPriorSpec::Inline {
            weights,
            means,
            covars,
        } => GMixND::new(weights, means, covars).map_err(|e| cerr(cfg, format!("{key}: {e}")))?,
    };
    if g.ndim() != 1 {
        return Err(cerr(
            cfg,
            format!(
                "{key}: the fracdev prior must be one-dimensional, got {} dimensions",
                g.ndim()
            ),
        ));
    }
    Ok(g)
}

/// The composite-model settings: `max_pars.{use_fracdev_grid, fracdev_range, TdByTe_range}`,
/// the `fracdev_grid` and the `model_pars.cm.fracdev` prior (required, as in ngmixer).
pub fn cm_config(cfg: &FittingConfig) -> Result<CmConfig> {
    let spec = cfg
        .model_pars
        .prior(GalaxyModel::Cm)
        .and_then(|s| s.fracdev.as_ref())
        .ok_or_else(|| {
            cerr(
                cfg,
                "model_pars.cm.fracdev: the cm model needs a fracdev prior (`file`, or \
                 `weights`, `means`, `covars`)",
            )
        })?;
    let prior = fracdev_prior(cfg, spec)?;
    let g = cfg.fracdev_grid();
    let grid = g.values();
    if grid.is_empty() {
        return Err(cerr(cfg, "fracdev_grid.num: must be at least 1"));
    }
    let mp = &cfg.max_pars;
    for (name, [lo, hi]) in [
        ("max_pars.fracdev_range", mp.fracdev_range),
        ("max_pars.TdByTe_range", mp.tdbyte_range),
    ] {
        if !(lo <= hi) {
            return Err(cerr(cfg, format!("{name}: [{lo}, {hi}] is not ordered")));
        }
    }
    Ok(CmConfig {
        fracdev_prior: Some(prior),
        fracdev_grid: grid,
        use_fracdev_grid: mp.use_fracdev_grid,
        fracdev_range: mp.fracdev_range,
        tdbyte_range: mp.tdbyte_range,
        tables: Tables::V1,
    })
}

/// Settings of the max-likelihood fitter for `nband` bands.
#[cfg(feature = "maxlike")]
pub fn fitter_settings(cfg: &FittingConfig, nband: usize) -> Result<FitterSettings> {
    let models_cfg = cfg
        .fit_models
        .clone()
        .unwrap_or_else(|| cfg.model_pars.models());
    let mut models = Vec::new();
    for m in models_cfg {
        let gm = match m {
            GalaxyModel::Gauss | GalaxyModel::Exp | GalaxyModel::Dev => GalModel::parse(m.as_str())
                .ok_or_else(|| cerr(cfg, format!("fit_models: {}", m.as_str())))?,
            GalaxyModel::Cm => GalModel::cm(cm_config(cfg)?),
            other => {
                return Err(cerr(
                    cfg,
                    format!(
                        "model_pars: model '{}' is not supported by this fitter yet (supported: gauss, exp, dev, cm)",
                        other.as_str()
                    ),
                ))
            }
        };
        let prior = match cfg.model_pars.prior(m) {
            Some(spec) => Some(joint_prior(cfg, m.as_str(), spec, nband)?),
            None => None,
        };
        models.push((gm, prior));
    }
    let psf = psf_fit_config(&cfg.psf_pars, cfg.min_psf_model_s2n)
        .map_err(|m| cerr(cfg, format!("psf_pars: {m}")))?;
    let (maxfev, xtol, ftol) = cfg.max_pars.lm_pars.resolved(5 + nband);
    Ok(FitterSettings {
        nband,
        models,
        psf,
        lm: LmPars {
            maxfev: maxfev as usize,
            xtol,
            ftol,
        },
        max_ntry: cfg.max_pars.ntry.max(1) as usize,
        min_psf_s2n: cfg.min_psf_s2n,
        normalize_psf: cfg.normalize_psf,
        fit_me_galaxy: cfg.fit_me_galaxy,
        fit_coadd_galaxy: cfg.fit_coadd_galaxy,
        use_coadd_prefix: cfg.use_coadd_prefix,
        max_box_size: i64::from(cfg.max_box_size),
        use_logpars: cfg.use_logpars,
    })
}

/// PSF-fit settings from the config's `psf_pars` (and `min_psf_model_s2n`); the error message
/// names the offending value (the caller adds the file and key).
pub fn psf_fit_config(
    pars: &PsfPars,
    min_s2n: Option<f64>,
) -> std::result::Result<PsfFitConfig, String> {
    let (maxfev, xtol, ftol) = pars.lm_settings();
    let lm = |model| PsfFitMethod::Lm {
        model,
        lm: LmPars {
            maxfev: maxfev as usize,
            xtol,
            ftol,
        },
    };
    let model = match pars.model {
        PsfModel::Em1 => PsfFitMethod::Em(1),
        PsfModel::Em2 => PsfFitMethod::Em(2),
        PsfModel::Em3 => PsfFitMethod::Em(3),
        PsfModel::Gauss => lm(LmPsfModel::Gauss),
        PsfModel::Turb => lm(LmPsfModel::Turb),
        PsfModel::Coellip2 => lm(LmPsfModel::Coellip(2)),
        PsfModel::Coellip3 => lm(LmPsfModel::Coellip(3)),
        PsfModel::Am => PsfFitMethod::Am,
    };
    if !(xtol >= 0.0 && ftol >= 0.0) {
        return Err(format!(
            "psf fit_pars: xtol ({xtol}) and ftol ({ftol}) must be >= 0"
        ));
    }
    let (tol, maxiter) = pars.em_settings();
    let mut em = EmConfig::v1_psf();
    em.tol = tol;
    em.maxiter = maxiter as usize;
    Ok(PsfFitConfig {
        model,
        ntry: pars.ntry.max(1) as usize,
        em,
        min_s2n,
    })
}

/// The metacal image settings of `metacal_pars` (ngmixer `MetacalNGMixBootFitter._setup` and
/// ngmix v1.3.5 `get_all_metacal`): `psf: fitgauss` or no `psf` (ngmix's dilated PSF),
/// `step`, `fixnoise` (default True), `use_noise_image`, `types` (required with fitgauss,
/// where ngmixer's default of all nine types fails in ngmix; default all nine otherwise).
#[cfg(feature = "metacal")]
pub fn metacal_image_pars(cfg: &FittingConfig) -> Result<crate::metacal::MetacalPars> {
    use crate::config::Value;
    use crate::metacal::{MetacalPars, MetacalType, PsfMode};
    let mp = cfg.metacal();
    let psf = match &mp.psf {
        None | Some(Value::Null) => PsfMode::Dilate,
        Some(Value::String(s)) if s == "fitgauss" => PsfMode::FitGauss,
        Some(other) => {
            return Err(cerr(
                cfg,
                format!(
                    "metacal_pars.psf: {other:?} is not available in this version of \
                     ngmixer-rs (available: fitgauss, or no psf for the dilated PSF)"
                ),
            ))
        }
    };
    if mp.analytic_psf.is_some() {
        return Err(cerr(
            cfg,
            "metacal_pars.analytic_psf: analytic reconvolution PSFs are not available in \
             this version of ngmixer-rs",
        ));
    }
    let mut use_noise_image = false;
    for (k, v) in &mp.extra {
        match (k.as_str(), v) {
            // ngmixer adds `nband` itself
            ("nband", _) => {}
            ("use_noise_image", Value::Bool(b)) => use_noise_image = *b,
            ("use_noise_image", other) => {
                return Err(cerr(
                    cfg,
                    format!("metacal_pars.use_noise_image must be true or false, got {other:?}"),
                ))
            }
            _ => {
                return Err(cerr(
                    cfg,
                    format!(
                        "metacal_pars.{k}: this ngmix metacal option is not available in this \
                         version of ngmixer-rs (available: step, types, psf, fixnoise, \
                         use_noise_image, model_pars, psf_pars)"
                    ),
                ))
            }
        }
    }
    let conv = |t: crate::config::MetacalType| {
        MetacalType::parse(t.as_str())
            .ok_or_else(|| cerr(cfg, format!("metacal_pars.types: {}", t.as_str())))
    };
    let types = match (&mp.types, psf) {
        (Some(list), _) => list.iter().map(|&t| conv(t)).collect::<Result<Vec<_>>>()?,
        (None, PsfMode::Dilate) => MetacalType::ALL.to_vec(),
        (None, PsfMode::FitGauss) => {
            return Err(cerr(
                cfg,
                "metacal_pars.types: give the types with psf: fitgauss (ngmixer's default, \
                 all nine types, includes the *_psf types that fitgauss does not allow)",
            ))
        }
    };
    if types.is_empty() {
        return Err(cerr(cfg, "metacal_pars.types is empty"));
    }
    for (i, t) in types.iter().enumerate() {
        if types[..i].contains(t) {
            return Err(cerr(
                cfg,
                format!("metacal_pars.types lists {} twice", t.name()),
            ));
        }
        if psf == PsfMode::FitGauss && t.is_psf_shear() {
            return Err(cerr(
                cfg,
                format!(
                    "metacal_pars.types: {} needs the dilated PSF; psf: fitgauss allows only \
                     noshear, 1p, 1m, 2p, 2m",
                    t.name()
                ),
            ));
        }
    }
    if !(mp.step > 0.0 && mp.step < 1.0) {
        return Err(cerr(
            cfg,
            format!("metacal_pars.step must be in (0, 1), got {}", mp.step),
        ));
    }
    Ok(MetacalPars {
        psf,
        step: mp.step,
        fixnoise: mp.fixnoise.unwrap_or(true),
        use_noise_image,
        types,
    })
}

/// Settings of the metacal fitter for `nband` bands: the max-likelihood settings and the
/// metacal step (model and prior from `metacal_pars.model_pars` when given, else the main
/// ones; PSF fits from `metacal_pars.psf_pars` or `psf_pars`, with ngmix's 5 tries).
#[cfg(all(feature = "maxlike", feature = "metacal"))]
pub fn metacal_fitter_settings(
    cfg: &FittingConfig,
    nband: usize,
) -> Result<(FitterSettings, crate::fitter::MetacalSettings)> {
    use crate::fitter::metacal::METACAL_PSF_NTRY;
    let base = fitter_settings(cfg, nband)?;
    if base.models.len() != 1 {
        return Err(cerr(
            cfg,
            format!(
                "metacal fits exactly one model, {} given",
                base.models.len()
            ),
        ));
    }
    let fitted = match base.models[0].0.name() {
        "gauss" => GalaxyModel::Gauss,
        "exp" => GalaxyModel::Exp,
        "dev" => GalaxyModel::Dev,
        other => {
            return Err(cerr(
                cfg,
                format!("model_pars: metacal-ngmix-boot fits gauss, exp or dev, not {other}"),
            ))
        }
    };
    if base.fit_me_galaxy == base.fit_coadd_galaxy {
        return Err(cerr(
            cfg,
            "fit_me_galaxy, fit_coadd_galaxy: metacal runs on either the multi-epoch or the \
             coadd set, set exactly one of them to True",
        ));
    }
    let (model, spec) = cfg.metacal_model(fitted);
    let kind = match GalModel::parse(model.as_str()) {
        Some(GalModel::Simple(k)) => k,
        _ => {
            return Err(cerr(
                cfg,
                format!(
                    "metacal_pars.model_pars: metacal fits gauss, exp or dev, not {}",
                    model.as_str()
                ),
            ))
        }
    };
    let prior = match spec {
        Some(s) => Some(joint_prior(cfg, model.as_str(), s, nband)?),
        None => None,
    };
    let psf_pars = cfg
        .metacal_pars
        .as_ref()
        .and_then(|m| m.psf_pars.as_ref())
        .unwrap_or(&cfg.psf_pars);
    let mut psf =
        psf_fit_config(psf_pars, None).map_err(|m| cerr(cfg, format!("psf_pars: {m}")))?;
    psf.ntry = METACAL_PSF_NTRY;
    let replace_bad_pixels = cfg.replace_bad_pixels.ok_or_else(|| {
        cerr(
            cfg,
            "replace_bad_pixels: metacal-ngmix-boot needs it (true or false)",
        )
    })?;
    let mcal = crate::fitter::MetacalSettings {
        pars: metacal_image_pars(cfg)?,
        replace_bad_pixels,
        model: kind,
        prior,
        psf,
        lm: base.lm,
        ntry: base.max_ntry,
    };
    Ok((base, mcal))
}
