//! Cross-key rules of the fitting config.

use super::enums::{FitterType, GalaxyModel};
use super::fitting::{FittingConfig, PsfsConfig};
use super::prior_spec::{ModelPars, ModelPriorSpec, ScalarPrior};
use crate::error::Error;

fn check_model_pars(mp: &ModelPars, name: &str, nband: usize, out: &mut Vec<String>) {
    for (model, spec) in &mp.entries {
        let Some(spec) = spec else { continue };
        let here = format!("{name}.{model}");
        if !(spec.cen.width() > 0.0) {
            out.push(format!(
                "{here}.cen: width must be > 0, got {}",
                spec.cen.width()
            ));
        }
        if let super::prior_spec::GPriorSpec::Ba { sigma } = spec.g {
            if !(sigma > 0.0) {
                out.push(format!("{here}.g: sigma must be > 0, got {sigma}"));
            }
        }
        if let Err(e) = spec.t.check() {
            out.push(format!("{here}.T: {e}"));
        }
        match spec.counts.for_nband(nband) {
            Ok(_) => {}
            Err(e) => out.push(format!("{here}.counts: {e}")),
        }
        for p in spec.counts.priors() {
            if matches!(p, ScalarPrior::CosmosExp | ScalarPrior::CosmosDev) {
                out.push(format!(
                    "{here}.counts: cosmos_exp/cosmos_dev are size priors, not flux priors"
                ));
            }
            if let Err(e) = p.check() {
                out.push(format!("{here}.counts: {e}"));
            }
        }
        if *model == GalaxyModel::Cm && spec.fracdev.is_none() {
            out.push(format!("{here}: the cm model needs a `fracdev` prior"));
        }
        if *model != GalaxyModel::Cm && spec.fracdev.is_some() {
            out.push(format!(
                "{here}.fracdev: only the cm model uses a fracdev prior"
            ));
        }
    }
}

/// Which driver `ngmixit` runs (spec §1.1 dispatch); some config rules depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverMode {
    /// One fit per object, no MOF catalogue (`NGMixer`).
    Standard,
    /// One fit per object with a MOF catalogue (`--mof-file`): neighbours rendered from it
    /// (`model_nbrs`) or corrected MEDS (`correct_meds`).
    WithMofFile,
    /// Iterative multi-object fitting (`MOFNGMixer`): `model_nbrs` without `--mof-file`.
    Mof,
    /// Forced photometry (`--models-file`).
    ForcedPhotometry,
}

impl DriverMode {
    /// ngmixit's choice: `model_nbrs` and no MOF file → MOF; else a models file → forced
    /// photometry; else standard (with or without a MOF file).
    pub fn select(model_nbrs: bool, mof_file: bool, models_file: bool) -> Self {
        if model_nbrs && !mof_file {
            DriverMode::Mof
        } else if models_file {
            DriverMode::ForcedPhotometry
        } else if mof_file {
            DriverMode::WithMofFile
        } else {
            DriverMode::Standard
        }
    }
}

impl FittingConfig {
    /// The driver ngmixit would run with no extra input files (MOF when `model_nbrs`).
    pub fn default_mode(&self) -> DriverMode {
        DriverMode::select(self.model_nbrs, false, false)
    }

    /// The metacal model and its prior: the first entry of `metacal_pars.model_pars` when
    /// given (ngmixer takes its first key), else `fitted` with the main prior.
    pub fn metacal_model(&self, fitted: GalaxyModel) -> (GalaxyModel, Option<&ModelPriorSpec>) {
        match self
            .metacal_pars
            .as_ref()
            .and_then(|m| m.model_pars.as_ref())
            .and_then(|mp| mp.entries.first())
        {
            Some((m, p)) => (*m, p.as_ref()),
            None => (fitted, self.model_pars.prior(fitted)),
        }
    }

    /// Every violated cross-key rule for the driver ngmixit runs without extra files
    /// ([`FittingConfig::default_mode`]); see [`FittingConfig::problems_for`].
    pub fn problems(&self, nband: usize) -> Vec<String> {
        self.problems_for(nband, self.default_mode())
    }

    /// Every violated cross-key rule, one message each (empty when the config is consistent)
    /// for data with `nband` bands run by `mode`. See [`FittingConfig::validate_for`].
    pub fn problems_for(&self, nband: usize, mode: DriverMode) -> Vec<String> {
        let mut out = Vec::new();
        let npars = 5 + nband;
        let models = self.models_to_fit();

        if nband == 0 {
            out.push("there must be at least one band".to_string());
        }

        // models and priors
        if models.is_empty() {
            out.push("no model to fit: model_pars is empty and fit_models not given".to_string());
        }
        if self.fitter_type != FitterType::MetacalAdmomBoot {
            for m in &models {
                if !self.model_pars.contains(*m) {
                    out.push(format!(
                        "fit_models: model `{m}` has no entry in model_pars"
                    ));
                }
            }
        }
        check_model_pars(&self.model_pars, "model_pars", nband, &mut out);

        // fitter-specific
        match self.fitter_type {
            FitterType::MetacalNgmixBoot => {
                if self.replace_bad_pixels.is_none() {
                    out.push(
                        "metacal-ngmix-boot needs `replace_bad_pixels` (true or false)".to_string(),
                    );
                }
                if models.len() != 1 {
                    out.push(format!(
                        "metacal fits exactly one model, {} given ({})",
                        models.len(),
                        models
                            .iter()
                            .map(|m| m.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            FitterType::MetacalAdmomBoot if self.replace_bad_pixels != Some(false) => {
                out.push("metacal-admom-boot needs `replace_bad_pixels: false`".to_string());
            }
            FitterType::IsampNgmixBoot if self.isample_pars.is_none() => {
                out.push("isamp-ngmix-boot needs `isample_pars`".to_string());
            }
            FitterType::GalsimForcephot if self.forced_photometry.is_none() => {
                out.push("galsim-forcephot needs `forced_photometry`".to_string());
            }
            _ => {}
        }
        if let Some(mc) = &self.metacal_pars {
            if !(mc.step > 0.0) {
                out.push(format!("metacal_pars.step must be > 0, got {}", mc.step));
            }
            if let Some(mp) = &mc.model_pars {
                check_model_pars(mp, "metacal_pars.model_pars", nband, &mut out);
                match mp.entries.first() {
                    None => out.push("metacal_pars.model_pars is empty".to_string()),
                    Some((m, None)) => out.push(format!(
                        "metacal_pars.model_pars.{m}: the metacal model needs a prior"
                    )),
                    Some(_) => {}
                }
            }
            if let Some(pp) = &mc.psf_pars {
                if pp.ntry == 0 {
                    out.push("metacal_pars.psf_pars.ntry must be >= 1".to_string());
                }
            }
        }

        // fitting settings
        if self.psf_pars.ntry == 0 {
            out.push("psf_pars.ntry must be >= 1".to_string());
        }
        if self.max_pars.ntry == 0 {
            out.push("max_pars.ntry must be >= 1".to_string());
        }
        let [f0, f1] = self.max_pars.fracdev_range;
        if !(f0 <= f1) {
            out.push(format!(
                "max_pars.fracdev_range: [{f0}, {f1}] is not ordered"
            ));
        }
        let [t0, t1] = self.max_pars.tdbyte_range;
        if !(t0 <= t1) {
            out.push(format!(
                "max_pars.TdByTe_range: [{t0}, {t1}] is not ordered"
            ));
        }
        if let Some(g) = self.fracdev_grid.or(self.max_pars.fracdev_grid) {
            if g.num == 0 || g.num > 10_000 || !(g.min <= g.max) {
                out.push(format!(
                    "fracdev_grid: needs 1 <= num <= 10000 and min <= max, got min {} max {} \
                     num {}",
                    g.min, g.max, g.num
                ));
            }
        }
        if self.replace_cov && self.cov_pars.is_none() {
            out.push("replace_cov needs `cov_pars: {m, h}`".to_string());
        }
        if !(self.intr_prof_var_fac >= 0.0) {
            out.push(format!(
                "intr_prof_var_fac must be >= 0, got {}",
                self.intr_prof_var_fac
            ));
        }
        if let Some(t) = self.target_noise {
            if !(t > 0.0) {
                out.push(format!("target_noise must be > 0, got {t}"));
            }
        }

        // neighbours / MOF
        if self.model_nbrs && self.model_nbrs_method.is_none() {
            out.push("model_nbrs needs `model_nbrs_method` (subtract or frac)".to_string());
        }
        if self.model_nbrs && self.make_corrected_meds {
            out.push("model_nbrs and make_corrected_meds cannot both be true".to_string());
        }
        if self.correct_meds.is_some() && mode != DriverMode::WithMofFile {
            out.push("correct_meds needs a MOF catalogue (--mof-file)".to_string());
        }
        if mode == DriverMode::ForcedPhotometry {
            if self.forced_photometry.is_none() {
                out.push(
                    "forced photometry needs the `forced_photometry` section (model, min_T)"
                        .to_string(),
                );
            }
            if !self.center_psf {
                out.push("forced photometry needs `center_psf: true`".to_string());
            }
        }
        if mode == DriverMode::Mof {
            match &self.mof {
                None => out.push("model_nbrs needs the `mof` section".to_string()),
                Some(mof) => {
                    if let Err(e) = mof.maxabs_conv.for_npars(npars) {
                        out.push(format!("mof.maxabs_conv: {e}"));
                    }
                    if let Err(e) = mof.maxfrac_conv.for_npars(npars) {
                        out.push(format!("mof.maxfrac_conv: {e}"));
                    }
                    if mof.min_useg_itr.is_none() {
                        out.push("mof.min_useg_itr is required for MOF".to_string());
                    }
                    if mof.min_itr > mof.max_itr {
                        out.push(format!(
                            "mof.min_itr ({}) is larger than mof.max_itr ({})",
                            mof.min_itr, mof.max_itr
                        ));
                    }
                }
            }
        }

        // IO
        let io = self.imageio.io_type;
        if io.is_des() && self.imageio.image_type.is_none() {
            out.push(format!(
                "imageio.image_type is required for io_type {io} (surface_brightness or flux)"
            ));
        }
        if matches!(self.imageio.psfs, PsfsConfig::Psfex { .. }) && !io.is_des() {
            out.push(format!(
                "imageio.psfs: io_type {io} reads PSFs from the MEDS file; use type infile"
            ));
        }
        if let Err(e) = self.effective_extra_mask_flags() {
            out.push(e);
        }
        if self.use_psf_rerun && self.psf_rerun_version.is_none() {
            out.push("use_psf_rerun needs `psf_rerun_version`".to_string());
        }
        for (name, t) in [
            ("trim_image", &self.trim_image),
            ("trim_psf", &self.trim_psf),
        ] {
            if let Some(t) = t {
                if t.dims[0] == 0 || t.dims[1] == 0 {
                    out.push(format!("{name}.dims must be positive, got {:?}", t.dims));
                }
            }
        }
        for (name, frac) in [
            ("max_zero_weight_frac", Some(self.max_zero_weight_frac)),
            ("max_bmask_frac", self.max_bmask_frac),
        ] {
            if let Some(super::fitting::MaxFrac::Value(v)) = frac {
                if !(v >= 0.0) {
                    out.push(format!("{name} must be >= 0, got {v}"));
                }
            }
        }
        if let Some(c) = self.checkpoints.iter().find(|c| !(**c >= 0.0)) {
            out.push(format!("checkpoints must be >= 0 minutes, got {c}"));
        }

        // megamix-meds
        if let Some(jobs) = &self.jobs {
            if jobs.bands.len() != nband {
                out.push(format!(
                    "jobs.bands lists {} bands, the data have {nband}",
                    jobs.bands.len()
                ));
            }
            if jobs.chunksize == 0 {
                out.push("jobs.chunksize must be >= 1".to_string());
            }
        }
        if let Some(c) = &self.collate {
            if c.concat_type == super::enums::ConcatType::ConcatDes && c.blinding.is_none() {
                out.push(
                    "collate: concat-des needs a `blinding` entry (null or {type: y3})".to_string(),
                );
            }
        }
        out
    }

    /// Check the cross-key rules for the driver ngmixit runs without extra input files
    /// ([`FittingConfig::default_mode`]: MOF when `model_nbrs`); see
    /// [`FittingConfig::validate_for`].
    ///
    /// # Errors
    /// [`Error::Config`] listing every problem.
    pub fn validate(&self, nband: usize) -> crate::Result<()> {
        self.validate_for(nband, self.default_mode())
    }

    /// Check the cross-key rules of the spec for data with `nband` bands run by `mode`:
    ///
    /// * every fitted model has a `model_pars` entry; `cm` has a `fracdev` prior; per-band
    ///   `counts` lists have `nband` entries; `gmixnd` counts only for one band; prior
    ///   parameters in range (also for `metacal_pars.model_pars`, whose first entry is the
    ///   metacal model and needs a prior);
    /// * `metacal-ngmix-boot` needs `replace_bad_pixels` and exactly one model;
    ///   `metacal-admom-boot` needs `replace_bad_pixels: false`; `isamp-ngmix-boot` needs
    ///   `isample_pars`; `galsim-forcephot` needs `forced_photometry`;
    /// * `model_nbrs` needs `model_nbrs_method` and excludes `make_corrected_meds`; MOF mode
    ///   needs `mof` (with `min_useg_itr`, `min_itr <= max_itr` and at least `5 + nband`
    ///   convergence tolerances); `correct_meds` needs a MOF file; forced photometry needs
    ///   `forced_photometry` and `center_psf: true`;
    /// * DES io types need `imageio.image_type`, the others `psfs: {type: infile}`;
    ///   `extra_mask_flag_list` names exist; `use_psf_rerun` needs `psf_rerun_version`;
    ///   `replace_cov` needs `cov_pars`;
    /// * `jobs.bands` has `nband` entries; `concat-des` needs `collate.blinding`;
    /// * numbers are sensible (`ntry >= 1`, ordered ranges, grid, trims, fractions,
    ///   checkpoints).
    ///
    /// PSF model names (em1–em3, coellip2/3, gauss, turb), galaxy model names and registry
    /// names are already enforced when the file is read.
    ///
    /// # Errors
    /// [`Error::Config`] listing every problem.
    pub fn validate_for(&self, nband: usize, mode: DriverMode) -> crate::Result<()> {
        let p = self.problems_for(nband, mode);
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::Config {
                file: self
                    .source
                    .clone()
                    .unwrap_or_else(|| "<config>".to_string()),
                msg: p.join("; "),
            })
        }
    }
}
