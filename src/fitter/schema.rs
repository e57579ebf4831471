//! Column schemas of `model_fits` and `epoch_data` (ngmixer `_get_fit_data_dtype`,
//! `get_epoch_fit_data_dtype` and the ImageIO meta-data dtypes).

use crate::fitter::{namer, FitterSettings};
use crate::flags::{DEFVAL, NO_ATTEMPT};
use crate::output::{Col, ColSpec, Kind, SchemaError, Table};

fn c(name: impl Into<String>, kind: Kind, shape: &[usize], default: f64) -> ColSpec {
    ColSpec::new(name, kind, shape, default)
}

impl FitterSettings {
    /// Leading object columns (ImageIO meta data plus the driver's columns).
    fn object_specs(&self) -> Vec<ColSpec> {
        let nb = [self.nband];
        let na = NO_ATTEMPT as f64;
        vec![
            c("id", Kind::I64, &[], DEFVAL),
            c("number", Kind::I32, &[], DEFVAL),
            c("ra", Kind::F64, &[], DEFVAL),
            c("dec", Kind::F64, &[], DEFVAL),
            c("nimage_tot", Kind::I32, &nb, DEFVAL),
            c("fofid", Kind::I64, &[], DEFVAL),
            c("flags", Kind::I32, &[], na),
            c("time_last_fit", Kind::F64, &[], DEFVAL),
            c("box_size", Kind::I16, &[], DEFVAL),
            c("obj_flags", Kind::I32, &[], na),
        ]
    }

    fn fit_specs(&self, coadd: bool) -> Vec<ColSpec> {
        let nb = [self.nband];
        let np = 5 + self.nband;
        let na = NO_ATTEMPT as f64;
        let mut v = Vec::new();
        let npsf = self.front("psf", coadd);
        v.push(c(namer(&npsf, "flags"), Kind::I32, &nb, na));
        v.push(c(namer(&npsf, "flux"), Kind::F64, &nb, DEFVAL));
        v.push(c(namer(&npsf, "flux_err"), Kind::F64, &nb, DEFVAL));
        v.push(c(namer(&npsf, "flux_s2n"), Kind::F64, &nb, DEFVAL));
        let n = self.front("", coadd);
        v.push(c(namer(&n, "nimage_use"), Kind::I32, &nb, 0.0));
        v.push(c(namer(&n, "mask_frac"), Kind::F64, &[], DEFVAL));
        v.push(c(namer(&n, "psfrec_T"), Kind::F64, &[], DEFVAL));
        v.push(c(namer(&n, "psfrec_g"), Kind::F64, &[2], DEFVAL));
        let tname = if self.use_logpars { "log_T_r" } else { "T_r" };
        for (model, _) in &self.models {
            let n = self.front(model.name(), coadd);
            v.push(c(namer(&n, "flags"), Kind::I32, &[], na));
            v.push(c(namer(&n, "pars"), Kind::F64, &[np], DEFVAL));
            v.push(c(namer(&n, "pars_cov"), Kind::F64, &[np, np], DEFVAL));
            v.push(c(namer(&n, "g"), Kind::F64, &[2], DEFVAL));
            v.push(c(namer(&n, "g_cov"), Kind::F64, &[2, 2], DEFVAL));
            v.push(c(namer(&n, "max_flags"), Kind::I32, &[], na));
            v.push(c(namer(&n, "max_pars"), Kind::F64, &[np], DEFVAL));
            v.push(c(namer(&n, "max_pars_cov"), Kind::F64, &[np, np], DEFVAL));
            v.push(c(namer(&n, "s2n_w"), Kind::F64, &[], DEFVAL));
            v.push(c(namer(&n, "chi2per"), Kind::F64, &[], DEFVAL));
            v.push(c(namer(&n, "dof"), Kind::F64, &[], 0.0));
            v.push(c(namer(&n, "flags_r"), Kind::I32, &[], na));
            v.push(c(namer(&n, "s2n_r"), Kind::F64, &[], DEFVAL));
            v.push(c(namer(&n, tname), Kind::F64, &[], DEFVAL));
            v.push(c(namer(&n, "psf_T_r"), Kind::F64, &[], DEFVAL));
            if model.is_cm() {
                // ngmixer writes these as f4
                for name in [
                    "fracdev",
                    "fracdev_noclip",
                    "fracdev_err",
                    "TdByTe",
                    "TdByTe_noclip",
                ] {
                    v.push(c(namer(&n, name), Kind::F32, &[], DEFVAL));
                }
            }
        }
        v
    }

    /// The `model_fits` schema.
    pub fn model_fits_specs(&self) -> Vec<ColSpec> {
        let mut v = self.object_specs();
        if self.fit_me_galaxy {
            v.extend(self.fit_specs(false));
        }
        if self.fit_coadd_galaxy {
            v.extend(self.fit_specs(true));
        }
        v
    }

    /// The `epoch_data` schema.
    pub fn epoch_specs(&self) -> Vec<ColSpec> {
        let npsf = 6 * self.psf.model.ngauss();
        vec![
            c("id", Kind::I64, &[], DEFVAL),
            c("number", Kind::I32, &[], DEFVAL),
            c("band_num", Kind::I16, &[], DEFVAL),
            c("cutout_index", Kind::I32, &[], DEFVAL),
            c("orig_row", Kind::F64, &[], DEFVAL),
            c("orig_col", Kind::F64, &[], DEFVAL),
            c("file_id", Kind::I32, &[], DEFVAL),
            c("pixel_scale", Kind::F64, &[], DEFVAL),
            c("npix", Kind::I32, &[], DEFVAL),
            c("wsum", Kind::F64, &[], DEFVAL),
            c("wmax", Kind::F64, &[], DEFVAL),
            c("psf_fit_flags", Kind::I32, &[], NO_ATTEMPT as f64),
            c("psf_model_s2n", Kind::F64, &[], DEFVAL),
            c("psf_counts", Kind::F64, &[], DEFVAL),
            c("psf_fit_g", Kind::F64, &[2], DEFVAL),
            c("psf_fit_T", Kind::F64, &[], DEFVAL),
            c("psf_fit_pars", Kind::F64, &[npsf], DEFVAL),
        ]
    }
}

/// The handles of one fitted model's columns (`<front>_<model>_*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelCols {
    pub flags: Col,
    pub pars: Col,
    pub pars_cov: Col,
    pub g: Col,
    pub g_cov: Col,
    pub max_flags: Col,
    pub max_pars: Col,
    pub max_pars_cov: Col,
    pub s2n_w: Col,
    pub chi2per: Col,
    pub dof: Col,
    pub flags_r: Col,
    pub s2n_r: Col,
    pub t_r: Col,
    pub psf_t_r: Col,
    /// The composite model's `fracdev`, `fracdev_noclip`, `fracdev_err`, `TdByTe`,
    /// `TdByTe_noclip`.
    pub cm: Option<[Col; 5]>,
}

/// The handles of one observation set's columns (SE, or coadd with its prefix).
#[derive(Debug, Clone)]
pub(crate) struct SetCols {
    pub psf_flags: Col,
    pub psf_flux: Col,
    pub psf_flux_err: Col,
    pub psf_flux_s2n: Col,
    pub nimage_use: Col,
    pub mask_frac: Col,
    pub psfrec_t: Col,
    pub psfrec_g: Col,
    /// One per model of [`FitterSettings::models`], in order.
    pub models: Vec<ModelCols>,
}

/// Object columns of `model_fits`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObjCols {
    pub id: Col,
    pub number: Col,
    pub ra: Col,
    pub dec: Col,
    pub nimage_tot: Col,
    pub fofid: Col,
    pub flags: Col,
    pub time_last_fit: Col,
    pub box_size: Col,
    pub obj_flags: Col,
}

/// Columns of `epoch_data`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EpochCols {
    pub id: Col,
    pub number: Col,
    pub band_num: Col,
    pub cutout_index: Col,
    pub orig_row: Col,
    pub orig_col: Col,
    pub file_id: Col,
    pub pixel_scale: Col,
    pub npix: Col,
    pub wsum: Col,
    pub wmax: Col,
    pub psf_fit_flags: Col,
    pub psf_model_s2n: Col,
    pub psf_counts: Col,
    pub psf_fit_g: Col,
    pub psf_fit_t: Col,
    pub psf_fit_pars: Col,
}

/// Every column handle the max-likelihood fitter writes, resolved once from its own schema.
#[derive(Debug, Clone)]
pub(crate) struct MaxLikeCols {
    pub obj: ObjCols,
    pub se: Option<SetCols>,
    pub coadd: Option<SetCols>,
    pub epoch: EpochCols,
}

impl MaxLikeCols {
    /// Resolve against tables built from [`FitterSettings::model_fits_specs`] and
    /// [`FitterSettings::epoch_specs`].
    pub(crate) fn resolve(
        s: &FitterSettings,
        data: &Table,
        epochs: &Table,
    ) -> Result<Self, SchemaError> {
        let d = |n: &str| data.col(n);
        let obj = ObjCols {
            id: d("id")?,
            number: d("number")?,
            ra: d("ra")?,
            dec: d("dec")?,
            nimage_tot: d("nimage_tot")?,
            fofid: d("fofid")?,
            flags: d("flags")?,
            time_last_fit: d("time_last_fit")?,
            box_size: d("box_size")?,
            obj_flags: d("obj_flags")?,
        };
        let set = |coadd: bool| -> Result<SetCols, SchemaError> {
            let npsf = s.front("psf", coadd);
            let nst = s.front("", coadd);
            let tname = if s.use_logpars { "log_T_r" } else { "T_r" };
            let models = s
                .models
                .iter()
                .map(|(model, _)| {
                    let n = s.front(model.name(), coadd);
                    let m = |x: &str| data.col(&namer(&n, x));
                    Ok(ModelCols {
                        flags: m("flags")?,
                        pars: m("pars")?,
                        pars_cov: m("pars_cov")?,
                        g: m("g")?,
                        g_cov: m("g_cov")?,
                        max_flags: m("max_flags")?,
                        max_pars: m("max_pars")?,
                        max_pars_cov: m("max_pars_cov")?,
                        s2n_w: m("s2n_w")?,
                        chi2per: m("chi2per")?,
                        dof: m("dof")?,
                        flags_r: m("flags_r")?,
                        s2n_r: m("s2n_r")?,
                        t_r: m(tname)?,
                        psf_t_r: m("psf_T_r")?,
                        cm: if model.is_cm() {
                            Some([
                                m("fracdev")?,
                                m("fracdev_noclip")?,
                                m("fracdev_err")?,
                                m("TdByTe")?,
                                m("TdByTe_noclip")?,
                            ])
                        } else {
                            None
                        },
                    })
                })
                .collect::<Result<Vec<_>, SchemaError>>()?;
            Ok(SetCols {
                psf_flags: d(&namer(&npsf, "flags"))?,
                psf_flux: d(&namer(&npsf, "flux"))?,
                psf_flux_err: d(&namer(&npsf, "flux_err"))?,
                psf_flux_s2n: d(&namer(&npsf, "flux_s2n"))?,
                nimage_use: d(&namer(&nst, "nimage_use"))?,
                mask_frac: d(&namer(&nst, "mask_frac"))?,
                psfrec_t: d(&namer(&nst, "psfrec_T"))?,
                psfrec_g: d(&namer(&nst, "psfrec_g"))?,
                models,
            })
        };
        let e = |n: &str| epochs.col(n);
        Ok(Self {
            obj,
            se: if s.fit_me_galaxy {
                Some(set(false)?)
            } else {
                None
            },
            coadd: if s.fit_coadd_galaxy {
                Some(set(true)?)
            } else {
                None
            },
            epoch: EpochCols {
                id: e("id")?,
                number: e("number")?,
                band_num: e("band_num")?,
                cutout_index: e("cutout_index")?,
                orig_row: e("orig_row")?,
                orig_col: e("orig_col")?,
                file_id: e("file_id")?,
                pixel_scale: e("pixel_scale")?,
                npix: e("npix")?,
                wsum: e("wsum")?,
                wmax: e("wmax")?,
                psf_fit_flags: e("psf_fit_flags")?,
                psf_model_s2n: e("psf_model_s2n")?,
                psf_counts: e("psf_counts")?,
                psf_fit_g: e("psf_fit_g")?,
                psf_fit_t: e("psf_fit_T")?,
                psf_fit_pars: e("psf_fit_pars")?,
            },
        })
    }
}
