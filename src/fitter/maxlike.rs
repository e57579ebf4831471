//! The ngmixer max-likelihood fitter (`max-ngmix-boot`, feature `maxlike`): one object's
//! multi-band, multi-epoch fit filling exactly the `model_fits` and `epoch_data` columns of the
//! original ngmixer (spec §4.1–4.4, §4.6).
//!
//! Fit failures are data: every problem of one object ends up in its flag bits, never as an
//! error or a panic.

use super::schema::{EpochCols, MaxLikeCols, ModelCols, SetCols};

use rand_core::Rng;

use crate::error::Result;
use crate::fitting::boot::{self, PsfFitConfig};
use crate::fitting::cm::{fit_cm, CmConfig, CmResult};
use crate::fitting::kernel::{ModelSpec, V1};
use crate::fitting::lm::LmPars;
use crate::fitting::maxlike::{MaxLikeResult, NoPrior};
use crate::flags::*;
use crate::gmix::models::{SimpleKind, Tables};
use crate::obs::{MultiBandObs, ObjectMeta, ObjectObs};
use crate::output::Catalog;
use crate::output::{Col, Table};
use crate::priors::PriorSimpleSep;
use crate::rng::object_rng;
use crate::traits::ObjectFitter;

/// A galaxy model of `fit_models`.
#[derive(Debug, Clone, PartialEq)]
pub enum GalModel {
    /// gauss / exp / dev.
    Simple(SimpleKind),
    /// The composite exp+dev model with its fracdev settings (ngmix `CompositeBootstrapper`).
    Cm(Box<CmConfig>),
}

impl GalModel {
    /// The config name.
    pub fn name(&self) -> &'static str {
        match self {
            GalModel::Simple(SimpleKind::Gauss) => "gauss",
            GalModel::Simple(SimpleKind::Exp) => "exp",
            GalModel::Simple(SimpleKind::Dev) => "dev",
            GalModel::Simple(SimpleKind::Turb) => "turb",
            GalModel::Cm(_) => "cm",
        }
    }

    /// Parse a config name; `cm` gets ngmix's default settings without a fracdev prior (use
    /// [`GalModel::cm`] to give them).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "gauss" => GalModel::Simple(SimpleKind::Gauss),
            "exp" => GalModel::Simple(SimpleKind::Exp),
            "dev" => GalModel::Simple(SimpleKind::Dev),
            "cm" => GalModel::cm(CmConfig::default()),
            _ => return None,
        })
    }

    /// The composite model with these settings.
    pub fn cm(cfg: CmConfig) -> Self {
        GalModel::Cm(Box::new(cfg))
    }

    /// Whether this is the composite model (it has the extra `fracdev`/`TdByTe` columns).
    pub fn is_cm(&self) -> bool {
        matches!(self, GalModel::Cm(_))
    }
}

/// Settings of the max-likelihood fitter (from the fitting config).
#[derive(Debug, Clone)]
pub struct FitterSettings {
    /// Number of bands.
    pub nband: usize,
    /// Models, in fit order, with their priors (`None` = no prior).
    pub models: Vec<(GalModel, Option<PriorSimpleSep>)>,
    /// PSF fitting.
    pub psf: PsfFitConfig,
    /// LM settings.
    pub lm: LmPars,
    /// `max_pars.ntry`.
    pub max_ntry: usize,
    /// `min_psf_s2n`.
    pub min_psf_s2n: f64,
    /// `normalize_psf`.
    pub normalize_psf: bool,
    /// `fit_me_galaxy`.
    pub fit_me_galaxy: bool,
    /// `fit_coadd_galaxy`.
    pub fit_coadd_galaxy: bool,
    /// `use_coadd_prefix`.
    pub use_coadd_prefix: bool,
    /// `max_box_size`.
    pub max_box_size: i64,
    /// `use_logpars` (column names only).
    pub use_logpars: bool,
}

/// The ngmixer `Namer`: `front_x`, or `x` when `front` is empty.
pub fn namer(front: &str, x: &str) -> String {
    if front.is_empty() {
        x.to_string()
    } else {
        format!("{front}_{x}")
    }
}

/// What a fitter built on the max-likelihood sequence does after a simple model's fit
/// succeeded, before that model's columns are copied (ngmixer's subclasses override
/// `_fit_galaxy`; the metacal fitter runs metacal here).
pub(crate) trait AfterFit: Sync {
    /// `good`: the set's observations with fitted PSFs (as fitted, images unchanged);
    /// `kind`/`spec`/`res`: the model and its successful fit. Returns the bits to OR into the
    /// model's `flags` column, or `None` for a failure that makes the whole fit a
    /// `GAL_FIT_FAILURE` with none of the model's columns copied (ngmix `BootGalFailure`).
    /// Implementations write their own columns only when returning `Some`.
    #[allow(clippy::too_many_arguments)]
    fn after_fit<R: Rng + ?Sized>(
        &self,
        good: &MultiBandObs,
        kind: SimpleKind,
        spec: &ModelSpec,
        res: &MaxLikeResult,
        rng: &mut R,
        data: &mut Table,
        row: usize,
    ) -> Option<i32>;
}

/// The plain max-likelihood fitter adds nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoAfterFit;

impl AfterFit for NoAfterFit {
    fn after_fit<R: Rng + ?Sized>(
        &self,
        _: &MultiBandObs,
        _: SimpleKind,
        _: &ModelSpec,
        _: &MaxLikeResult,
        _: &mut R,
        _: &mut Table,
        _: usize,
    ) -> Option<i32> {
        Some(0)
    }
}

/// The max-likelihood fitter: [`FitterSettings`] with the column handles of its schema.
#[derive(Debug, Clone)]
pub struct MaxLike {
    settings: FitterSettings,
    cols: MaxLikeCols,
    /// Empty tables of the schema (cloned once per object rather than rebuilt).
    empty: Catalog,
}

impl MaxLike {
    /// The fitter for these settings.
    ///
    /// # Errors
    /// [`crate::Error::Schema`] if the settings' schema lacks a column the fitter writes (a bug,
    /// caught here rather than as a column silently left at its default).
    pub fn new(settings: FitterSettings) -> Result<Self> {
        let cat = Catalog::new(settings.model_fits_specs(), settings.epoch_specs());
        let cols = MaxLikeCols::resolve(&settings, &cat.model_fits, &cat.epoch_data)?;
        Ok(Self {
            settings,
            cols,
            empty: cat,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &FitterSettings {
        &self.settings
    }
}

impl ObjectFitter for MaxLike {
    fn fitter_type(&self) -> &'static str {
        "max-ngmix-boot"
    }

    fn empty_catalog(&self) -> Catalog {
        self.empty.clone()
    }

    fn fit_group(&self, members: &mut [ObjectObs], seed: u64, out: &mut Catalog) -> Result<()> {
        for obj in members {
            let mut rng = object_rng(seed, obj.meta.id);
            self.settings.fit_object(
                &self.cols,
                &NoAfterFit,
                obj,
                &mut rng,
                &mut out.model_fits,
                &mut out.epoch_data,
            );
        }
        Ok(())
    }
}

impl FitterSettings {
    /// Column-name front for `model` (`coadd_<model>` for coadd fits when prefixed).
    pub fn front(&self, model: &str, coadd: bool) -> String {
        if coadd && (self.fit_me_galaxy || self.use_coadd_prefix) {
            format!("coadd_{model}")
        } else {
            model.to_string()
        }
    }

    fn box_size(obj: &ObjectObs) -> i64 {
        for mb in [&obj.coadd, &obj.se] {
            for o in mb.iter() {
                if o.flags == 0 {
                    return o.dims().0 as i64;
                }
            }
        }
        DEFVAL as i64
    }

    fn obj_check(&self, mb: &MultiBandObs, box_size: i64) -> i32 {
        for list in &mb.bands {
            if list.is_empty() {
                return NO_CUTOUTS;
            }
            if list.iter().all(|o| o.flags != 0) {
                return IMAGE_FLAGS;
            }
            if box_size > self.max_box_size {
                return BOX_SIZE_TOO_BIG;
            }
        }
        if mb.bands.len() < self.nband {
            return NO_CUTOUTS;
        }
        0
    }

    /// Fit one object, appending one `model_fits` row and its `epoch_data` rows.
    pub(crate) fn fit_object<R: Rng + ?Sized, H: AfterFit>(
        &self,
        cols: &MaxLikeCols,
        hook: &H,
        obj: &mut ObjectObs,
        rng: &mut R,
        data: &mut Table,
        epochs: &mut Table,
    ) {
        let oc = &cols.obj;
        let t0 = std::time::Instant::now();
        let row = data.push_default();
        let m = &obj.meta;
        data.set1(row, oc.id, m.id as f64);
        data.set1(row, oc.number, m.number as f64);
        data.set1(row, oc.ra, m.ra);
        data.set1(row, oc.dec, m.dec);
        let nt: Vec<f64> = m.nimage_tot.iter().map(|&x| x as f64).collect();
        data.set(row, oc.nimage_tot, &nt);
        data.set1(row, oc.fofid, m.fofid as f64);
        data.set1(row, oc.obj_flags, m.obj_flags as f64);

        let mut flags = 0;
        if OBJECT_BLACKLIST.contains(&m.id) {
            flags = OBJECT_IN_BLACKLIST;
        } else {
            let box_size = Self::box_size(obj);
            data.set1(row, oc.box_size, box_size as f64);
            if self.fit_coadd_galaxy {
                if m.obj_flags != 0 {
                    flags |= BAD_OBJ;
                }
                flags |= self.obj_check(&obj.coadd, box_size);
            }
            if self.fit_me_galaxy {
                if m.obj_flags != 0 {
                    flags |= BAD_OBJ;
                }
                flags |= self.obj_check(&obj.se, box_size);
            }
            if flags == 0 {
                let mut fit_flags = None;
                if let Some(sc) = &cols.se {
                    let f = self.fit_set(sc, hook, &mut obj.se, rng, data, row);
                    Self::push_epochs(&cols.epoch, &obj.se, m, epochs);
                    fit_flags = Some(fit_flags.unwrap_or(0) | f);
                }
                if let Some(sc) = &cols.coadd {
                    let f = self.fit_set(sc, hook, &mut obj.coadd, rng, data, row);
                    Self::push_epochs(&cols.epoch, &obj.coadd, m, epochs);
                    fit_flags = Some(fit_flags.unwrap_or(0) | f);
                }
                flags |= fit_flags.unwrap_or(NO_ATTEMPT);
            }
        }
        data.set1(row, oc.flags, flags as f64);
        data.set1(row, oc.time_last_fit, t0.elapsed().as_secs_f64());
    }

    /// The fits of one observation set (SE or coadd): NGMixBootFitter.__call__.
    fn fit_set<R: Rng + ?Sized, H: AfterFit>(
        &self,
        sc: &SetCols,
        hook: &H,
        mb: &mut MultiBandObs,
        rng: &mut R,
        data: &mut Table,
        row: usize,
    ) -> i32 {
        let mut fit_flags = 0;
        // PSF fits are done once and kept (ngmix skips PSFs that already have a mixture)
        let good = boot::fit_psfs(mb, &self.psf, rng);
        let nimage_use: Vec<f64> = match &good {
            Ok(g) => g.bands.iter().map(|l| l.len() as f64).collect(),
            Err(_) => mb
                .bands
                .iter()
                .map(|l| l.iter().filter(|o| o.flags == 0).count() as f64)
                .collect(),
        };
        for ((model, prior), mc) in self.models.iter().zip(&sc.models) {
            let mf = match &good {
                Err(_) => PSF_FIT_FAILURE,
                Ok(g) => self.run_model(g, hook, model, prior.as_ref(), sc, mc, rng, data, row),
            };
            fit_flags |= mf;
            if mf & PSF_FIT_FAILURE == 0 {
                Self::psf_stats(mb, sc, data, row);
            } else {
                break;
            }
        }
        data.set(row, sc.nimage_use, &nimage_use);
        fit_flags
    }

    #[allow(clippy::too_many_arguments)]
    fn run_model<R: Rng + ?Sized, H: AfterFit>(
        &self,
        good: &MultiBandObs,
        hook: &H,
        model: &GalModel,
        prior: Option<&PriorSimpleSep>,
        sc: &SetCols,
        mc: &ModelCols,
        rng: &mut R,
        data: &mut Table,
        row: usize,
    ) -> i32 {
        let mut flags = 0;
        // PSF template fluxes
        let mut fluxes = vec![DEFVAL; self.nband];
        let mut s2ns = vec![f64::NAN; self.nband];
        let mut flagsall = 0;
        for (b, list) in good.bands.iter().enumerate() {
            match boot::psf_flux_band(list, self.normalize_psf) {
                Ok(pf) => {
                    flagsall |= pf.flags;
                    data.set_at(row, sc.psf_flags, b, pf.flags as f64);
                    let flux = if pf.flags == 0 { pf.flux } else { DEFVAL };
                    let err = if pf.flags == 0 { pf.flux_err } else { 0.0 };
                    data.set_at(row, sc.psf_flux, b, flux);
                    data.set_at(row, sc.psf_flux_err, b, err);
                    fluxes[b] = flux;
                    if err > 0.0 {
                        s2ns[b] = flux / err;
                        data.set_at(row, sc.psf_flux_s2n, b, flux / err);
                    }
                }
                Err(_) => return PSF_FIT_FAILURE,
            }
        }
        if flagsall != 0 {
            flags |= PSF_FLUX_FIT_FAILURE;
        }
        if flags == 0 {
            let max_s2n = s2ns
                .iter()
                .cloned()
                .filter(|x| !x.is_nan())
                .fold(f64::NEG_INFINITY, f64::max);
            if max_s2n < self.min_psf_s2n {
                flags |= LOW_PSF_FLUX;
            }
        }
        if flags != 0 {
            return flags;
        }
        let psf_t = good.bands[0][0].psf_gmix().map(|g| g.t()).unwrap_or(1.0);
        // ngmix's guessers without an external guess: TFluxAndPriorGuesser with a prior;
        // without one the PSF T and fluxes themselves
        let mut guess = || -> Vec<f64> {
            match prior {
                Some(p) => boot::guess_tflux_prior(psf_t, &fluxes, p, rng),
                None => {
                    let mut g = vec![0.0; 5 + fluxes.len()];
                    g[4] = psf_t;
                    g[5..].copy_from_slice(&fluxes);
                    g
                }
            }
        };
        match model {
            GalModel::Simple(kind) => {
                let spec = ModelSpec::simple(*kind, Tables::V1);
                let res = match prior {
                    Some(p) => boot::fit_max_ntry::<V1, PriorSimpleSep>(
                        good,
                        &spec,
                        Some(p),
                        &self.lm,
                        self.max_ntry,
                        &mut guess,
                    ),
                    None => boot::fit_max_ntry::<V1, NoPrior>(
                        good,
                        &spec,
                        None,
                        &self.lm,
                        self.max_ntry,
                        &mut guess,
                    ),
                };
                match res {
                    // a flagged fit is a BootGalFailure in ngmix: the model columns keep
                    // their defaults
                    Ok(r) if r.flags == 0 => {
                        let rr = boot::round_s2n(good, &spec, &r.pars);
                        match hook.after_fit(good, *kind, &spec, &r, rng, data, row) {
                            Some(extra) => {
                                Self::copy_result(data, row, mc, &r, &rr);
                                if extra != 0 {
                                    data.set1(row, mc.flags, (r.flags | extra) as f64);
                                }
                                0
                            }
                            None => GAL_FIT_FAILURE,
                        }
                    }
                    _ => GAL_FIT_FAILURE,
                }
            }
            GalModel::Cm(cfg) => {
                let res = match prior {
                    Some(p) => fit_cm::<V1, PriorSimpleSep>(
                        good,
                        Some(p),
                        cfg,
                        &self.lm,
                        self.max_ntry,
                        |_| guess(),
                    ),
                    None => {
                        fit_cm::<V1, NoPrior>(good, None, cfg, &self.lm, self.max_ntry, |_| guess())
                    }
                };
                match res {
                    Ok(cm) => {
                        let spec = cm.spec(cfg.tables);
                        let rr = boot::round_s2n(good, &spec, &cm.fit.pars);
                        Self::copy_result(data, row, mc, &cm.fit, &rr);
                        if let Some(cc) = mc.cm {
                            Self::copy_cm(data, row, cc, &cm);
                        }
                        0
                    }
                    Err(_) => GAL_FIT_FAILURE,
                }
            }
        }
    }

    fn copy_cm(data: &mut Table, row: usize, cc: [Col; 5], cm: &CmResult) {
        let vals = [
            cm.fracdev,
            cm.fracdev_noclip,
            cm.fracdev_err,
            cm.tdbyte,
            cm.tdbyte_noclip,
        ];
        for (c, v) in cc.into_iter().zip(vals) {
            data.set1(row, c, v);
        }
    }

    fn copy_result(
        data: &mut Table,
        row: usize,
        mc: &ModelCols,
        r: &MaxLikeResult,
        rr: &boot::RoundResult,
    ) {
        data.set1(row, mc.flags, r.flags as f64);
        data.set1(row, mc.max_flags, r.flags as f64);
        data.set(row, mc.pars, &r.pars);
        data.set(row, mc.max_pars, &r.pars);
        data.set(row, mc.pars_cov, &r.pars_cov);
        data.set(row, mc.max_pars_cov, &r.pars_cov);
        data.set(row, mc.g, &r.pars[2..4]);
        data.set(
            row,
            mc.g_cov,
            &[r.cov(2, 2), r.cov(2, 3), r.cov(3, 2), r.cov(3, 3)],
        );
        data.set1(row, mc.s2n_w, r.s2n_w);
        data.set1(row, mc.chi2per, r.chi2per);
        data.set1(row, mc.dof, r.dof);
        data.set1(row, mc.flags_r, rr.flags as f64);
        data.set1(row, mc.s2n_r, rr.s2n_r);
        data.set1(row, mc.t_r, rr.t_r);
        data.set1(row, mc.psf_t_r, rr.psf_t_r);
    }

    fn psf_stats(mb: &MultiBandObs, sc: &SetCols, data: &mut Table, row: usize) {
        let (mut tsum, mut g1sum, mut g2sum, mut wsum, mut wrelsum, mut npix) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut did_one, mut did_one_max) = (false, false);
        for o in mb.iter() {
            if o.flags != 0 {
                continue;
            }
            let Some(psf) = o.psf.as_deref() else {
                continue;
            };
            let Some(gm) = psf.gmix.as_ref() else {
                continue;
            };
            let Ok((g1, g2, t)) = gm.g1g2t() else {
                continue;
            };
            let (ws, wm) = o.weight_stats();
            if wm > 0.0 {
                did_one_max = true;
                npix += o.image.len() as f64;
                wrelsum += ws / wm;
            }
            did_one = true;
            wsum += ws;
            tsum += ws * t;
            g1sum += ws * g1;
            g2sum += ws * g2;
        }
        if did_one_max {
            data.set1(row, sc.mask_frac, 1.0 - wrelsum / npix);
        }
        if did_one {
            data.set(row, sc.psfrec_g, &[g1sum / wsum, g2sum / wsum]);
            data.set1(row, sc.psfrec_t, tsum / wsum);
        }
    }

    fn push_epochs(ec: &EpochCols, mb: &MultiBandObs, m: &ObjectMeta, epochs: &mut Table) {
        for o in mb.iter() {
            if o.flags != 0 {
                continue;
            }
            let r = epochs.push_default();
            let em = &o.meta;
            epochs.set1(r, ec.id, m.id as f64);
            epochs.set1(r, ec.number, m.number as f64);
            epochs.set1(r, ec.band_num, em.band_num as f64);
            epochs.set1(r, ec.cutout_index, em.cutout_index as f64);
            epochs.set1(r, ec.orig_row, em.orig_row);
            epochs.set1(r, ec.orig_col, em.orig_col);
            epochs.set1(r, ec.file_id, em.file_id as f64);
            epochs.set1(r, ec.pixel_scale, o.jacobian.scale());
            let (ws, wm) = o.weight_stats();
            epochs.set1(r, ec.npix, o.image.len() as f64);
            epochs.set1(r, ec.wsum, ws);
            epochs.set1(r, ec.wmax, wm);
            if let Some(psf) = o.psf.as_deref() {
                epochs.set1(r, ec.psf_counts, psf.image.sum());
                if let Some(info) = psf.fit_info {
                    epochs.set1(r, ec.psf_fit_flags, info.flags as f64);
                    if let Some(s) = info.s2n {
                        epochs.set1(r, ec.psf_model_s2n, s);
                    }
                }
                if let Some(gm) = psf.gmix.as_ref() {
                    if let Ok((g1, g2, t)) = gm.g1g2t() {
                        epochs.set(r, ec.psf_fit_g, &[g1, g2]);
                        epochs.set1(r, ec.psf_fit_t, t);
                    }
                    epochs.set(r, ec.psf_fit_pars, &gm.full_pars());
                }
            }
        }
    }
}
