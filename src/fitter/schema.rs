//! Column schemas of `model_fits` and `epoch_data` (ngmixer `_get_fit_data_dtype`,
//! `get_epoch_fit_data_dtype` and the ImageIO meta-data dtypes).

use crate::fitter::{namer, FitterSettings};
use crate::flags::{DEFVAL, NO_ATTEMPT};
use crate::output::{ColSpec, Kind};

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
