//! Turning a [`FittingConfig`] into fitter and observation-building settings, naming the
//! config key of every problem.

use crate::backends::medsio::{IoSettings, Region};
use crate::config::{
    CenPriorSpec, FittingConfig, GPriorSpec, GalaxyModel, MaxFrac, ModelPriorSpec,
    Region as CfgRegion, ScalarPrior,
};
use crate::error::{Error, Result};
use crate::fitter::{FitterSettings, GalModel};
use crate::fitting::boot::psf_fit_config;
use crate::fitting::lm::LmPars;
use crate::priors::{CenPrior, GMixND, PriorSimpleSep, ShapePrior, TPrior};

fn cerr(cfg: &FittingConfig, msg: impl Into<String>) -> Error {
    Error::Config {
        file: cfg.source.clone().unwrap_or_else(|| "<config>".into()),
        msg: msg.into(),
    }
}

fn scalar_prior(cfg: &FittingConfig, key: &str, p: &ScalarPrior) -> Result<TPrior> {
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
            let mut g = GMixND::from_fits(&path).map_err(wrap)?;
            if let Some(f) = cov_factor {
                g.apply_cov_factor_ngmixer(*f).map_err(wrap)?;
            }
            TPrior::GMixND(g)
        }
    })
}

fn joint_prior(
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

/// Settings of the max-likelihood fitter for `nband` bands.
pub fn fitter_settings(cfg: &FittingConfig, nband: usize) -> Result<FitterSettings> {
    let models_cfg = cfg
        .fit_models
        .clone()
        .unwrap_or_else(|| cfg.model_pars.models());
    let mut models = Vec::new();
    for m in models_cfg {
        let gm = match m {
            GalaxyModel::Gauss | GalaxyModel::Exp | GalaxyModel::Dev => {
                GalModel::parse(m.as_str()).ok_or_else(|| cerr(cfg, format!("fit_models: {}", m.as_str())))?
            }
            other => {
                return Err(cerr(
                    cfg,
                    format!(
                        "model_pars: model '{}' is not supported by this fitter yet (supported: gauss, exp, dev)",
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

/// Observation-building settings.
pub fn io_settings(cfg: &FittingConfig) -> Result<IoSettings> {
    let region = match cfg.region {
        CfgRegion::Mof => Region::Mof,
        CfgRegion::CweightNearest | CfgRegion::Uberseg => Region::Uberseg,
        CfgRegion::SegAndSky => Region::SegAndSky,
        CfgRegion::Weight => Region::Weight,
    };
    let extra = cfg
        .effective_extra_mask_flags()
        .map_err(|m| cerr(cfg, format!("extra_mask_flag_list: {m}")))?
        .unwrap_or(0);
    Ok(IoSettings {
        region,
        reject_outliers: cfg.reject_outliers,
        ignore_zero_images: cfg.ignore_zero_images,
        extra_mask_flags: extra as i32,
        bmask_skip_flags: cfg.bmask_skip_flags.unwrap_or(0) as i32,
        central_bmask_radius: cfg.central_bmask_radius.map(i64::from),
        max_zero_weight_frac: match cfg.max_zero_weight_frac {
            MaxFrac::Value(v) => Some(v),
            MaxFrac::OneOverSide => None,
        },
        symmetrize_weight: cfg.symmetrize_weight,
        max_cutouts: cfg.max_cutouts.map(|x| x as usize),
        min_weight: if cfg.y1_min_weight_clipping {
            cfg.min_weight
        } else {
            None
        },
    })
}
