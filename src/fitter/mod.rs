//! The ngmixer max-likelihood fitter (`max-ngmix-boot`): one object's multi-band, multi-epoch
//! fit filling exactly the `model_fits` and `epoch_data` columns of the original ngmixer
//! (spec §4.1–4.4, §4.6).
//!
//! Fit failures are data: every problem of one object ends up in its flag bits, never as an
//! error or a panic.

pub mod driver;
pub mod from_config;
pub mod schema;

pub use driver::{Catalog, Fitter};

use rand_core::Rng;

use crate::fitting::boot::{self, PsfFitConfig};
use crate::fitting::cm::{fit_cm, CmConfig, CmResult};
use crate::fitting::kernel::{ModelSpec, V1};
use crate::fitting::lm::LmPars;
use crate::fitting::maxlike::{MaxLikeResult, NoPrior};
use crate::flags::*;
use crate::gmix::models::{SimpleKind, Tables};
use crate::obs::MultiBandObs;
pub use crate::obs::{ObjectMeta, ObjectObs};
use crate::output::Table;
use crate::priors::PriorSimpleSep;

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
    pub fn fit_object<R: Rng + ?Sized>(
        &self,
        obj: &mut ObjectObs,
        rng: &mut R,
        data: &mut Table,
        epochs: &mut Table,
    ) {
        let t0 = std::time::Instant::now();
        let row = data.push_default();
        let m = &obj.meta;
        data.set1(row, "id", m.id as f64);
        data.set1(row, "number", m.number as f64);
        data.set1(row, "ra", m.ra);
        data.set1(row, "dec", m.dec);
        let nt: Vec<f64> = m.nimage_tot.iter().map(|&x| x as f64).collect();
        data.set(row, "nimage_tot", &nt);
        data.set1(row, "fofid", m.fofid as f64);
        data.set1(row, "obj_flags", m.obj_flags as f64);

        let mut flags = 0;
        if OBJECT_BLACKLIST.contains(&m.id) {
            flags = OBJECT_IN_BLACKLIST;
        } else {
            let box_size = Self::box_size(obj);
            data.set1(row, "box_size", box_size as f64);
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
                if self.fit_me_galaxy {
                    let f = self.fit_set(&mut obj.se, false, rng, data, row);
                    self.push_epochs(&obj.se, m, epochs);
                    fit_flags = Some(fit_flags.unwrap_or(0) | f);
                }
                if self.fit_coadd_galaxy {
                    let f = self.fit_set(&mut obj.coadd, true, rng, data, row);
                    self.push_epochs(&obj.coadd, m, epochs);
                    fit_flags = Some(fit_flags.unwrap_or(0) | f);
                }
                flags |= fit_flags.unwrap_or(NO_ATTEMPT);
            }
        }
        data.set1(row, "flags", flags as f64);
        data.set1(row, "time_last_fit", t0.elapsed().as_secs_f64());
    }

    /// The fits of one observation set (SE or coadd): NGMixBootFitter.__call__.
    fn fit_set<R: Rng + ?Sized>(
        &self,
        mb: &mut MultiBandObs,
        coadd: bool,
        rng: &mut R,
        data: &mut Table,
        row: usize,
    ) -> i32 {
        let npsf = self.front("psf", coadd);
        let nst = self.front("", coadd);
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
        for (model, prior) in &self.models {
            let mf = match &good {
                Err(_) => PSF_FIT_FAILURE,
                Ok(g) => self.run_model(g, model, prior.as_ref(), coadd, rng, data, row, &npsf),
            };
            fit_flags |= mf;
            if mf & PSF_FIT_FAILURE == 0 {
                self.psf_stats(mb, &nst, data, row);
            } else {
                break;
            }
        }
        data.set(row, &namer(&nst, "nimage_use"), &nimage_use);
        fit_flags
    }

    #[allow(clippy::too_many_arguments)]
    fn run_model<R: Rng + ?Sized>(
        &self,
        good: &MultiBandObs,
        model: &GalModel,
        prior: Option<&PriorSimpleSep>,
        coadd: bool,
        rng: &mut R,
        data: &mut Table,
        row: usize,
        npsf: &str,
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
                    data_set_band(
                        data,
                        row,
                        &namer(npsf, "flags"),
                        b,
                        pf.flags as f64,
                        self.nband,
                    );
                    let flux = if pf.flags == 0 { pf.flux } else { DEFVAL };
                    let err = if pf.flags == 0 { pf.flux_err } else { 0.0 };
                    data_set_band(data, row, &namer(npsf, "flux"), b, flux, self.nband);
                    data_set_band(data, row, &namer(npsf, "flux_err"), b, err, self.nband);
                    fluxes[b] = flux;
                    if err > 0.0 {
                        s2ns[b] = flux / err;
                        data_set_band(
                            data,
                            row,
                            &namer(npsf, "flux_s2n"),
                            b,
                            flux / err,
                            self.nband,
                        );
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
        let n = self.front(model.name(), coadd);
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
                        self.copy_result(data, row, &n, &r, &rr);
                        0
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
                        self.copy_result(data, row, &n, &cm.fit, &rr);
                        Self::copy_cm(data, row, &n, &cm);
                        0
                    }
                    Err(_) => GAL_FIT_FAILURE,
                }
            }
        }
    }

    fn copy_cm(data: &mut Table, row: usize, n: &str, cm: &CmResult) {
        data.set1(row, &namer(n, "fracdev"), cm.fracdev);
        data.set1(row, &namer(n, "fracdev_noclip"), cm.fracdev_noclip);
        data.set1(row, &namer(n, "fracdev_err"), cm.fracdev_err);
        data.set1(row, &namer(n, "TdByTe"), cm.tdbyte);
        data.set1(row, &namer(n, "TdByTe_noclip"), cm.tdbyte_noclip);
    }

    fn copy_result(
        &self,
        data: &mut Table,
        row: usize,
        n: &str,
        r: &MaxLikeResult,
        rr: &boot::RoundResult,
    ) {
        data.set1(row, &namer(n, "flags"), r.flags as f64);
        data.set1(row, &namer(n, "max_flags"), r.flags as f64);
        for key in ["pars", "max_pars"] {
            data.set(row, &namer(n, key), &r.pars);
        }
        for key in ["pars_cov", "max_pars_cov"] {
            data.set(row, &namer(n, key), &r.pars_cov);
        }
        data.set(row, &namer(n, "g"), &r.pars[2..4]);
        data.set(
            row,
            &namer(n, "g_cov"),
            &[r.cov(2, 2), r.cov(2, 3), r.cov(3, 2), r.cov(3, 3)],
        );
        data.set1(row, &namer(n, "s2n_w"), r.s2n_w);
        data.set1(row, &namer(n, "chi2per"), r.chi2per);
        data.set1(row, &namer(n, "dof"), r.dof);
        data.set1(row, &namer(n, "flags_r"), rr.flags as f64);
        data.set1(row, &namer(n, "s2n_r"), rr.s2n_r);
        let tname = if self.use_logpars { "log_T_r" } else { "T_r" };
        data.set1(row, &namer(n, tname), rr.t_r);
        data.set1(row, &namer(n, "psf_T_r"), rr.psf_t_r);
    }

    fn psf_stats(&self, mb: &MultiBandObs, nst: &str, data: &mut Table, row: usize) {
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
            data.set1(row, &namer(nst, "mask_frac"), 1.0 - wrelsum / npix);
        }
        if did_one {
            data.set(row, &namer(nst, "psfrec_g"), &[g1sum / wsum, g2sum / wsum]);
            data.set1(row, &namer(nst, "psfrec_T"), tsum / wsum);
        }
    }

    fn push_epochs(&self, mb: &MultiBandObs, m: &ObjectMeta, epochs: &mut Table) {
        for o in mb.iter() {
            if o.flags != 0 {
                continue;
            }
            let r = epochs.push_default();
            let em = &o.meta;
            epochs.set1(r, "id", m.id as f64);
            epochs.set1(r, "number", m.number as f64);
            epochs.set1(r, "band_num", em.band_num as f64);
            epochs.set1(r, "cutout_index", em.cutout_index as f64);
            epochs.set1(r, "orig_row", em.orig_row);
            epochs.set1(r, "orig_col", em.orig_col);
            epochs.set1(r, "file_id", em.file_id as f64);
            epochs.set1(r, "pixel_scale", o.jacobian.scale());
            let (ws, wm) = o.weight_stats();
            epochs.set1(r, "npix", o.image.len() as f64);
            epochs.set1(r, "wsum", ws);
            epochs.set1(r, "wmax", wm);
            if let Some(psf) = o.psf.as_deref() {
                epochs.set1(r, "psf_counts", psf.image.sum());
                if let Some(info) = psf.fit_info {
                    epochs.set1(r, "psf_fit_flags", info.flags as f64);
                    if let Some(s) = info.s2n {
                        epochs.set1(r, "psf_model_s2n", s);
                    }
                }
                if let Some(gm) = psf.gmix.as_ref() {
                    if let Ok((g1, g2, t)) = gm.g1g2t() {
                        epochs.set(r, "psf_fit_g", &[g1, g2]);
                        epochs.set1(r, "psf_fit_T", t);
                    }
                    epochs.set(r, "psf_fit_pars", &gm.full_pars());
                }
            }
        }
    }
}

fn data_set_band(data: &mut Table, row: usize, name: &str, band: usize, v: f64, nband: usize) {
    if let Some(cur) = data.get(row, name) {
        let mut vals = cur.to_vec();
        if band < nband && band < vals.len() {
            vals[band] = v;
            data.set(row, name, &vals);
        }
    }
}
