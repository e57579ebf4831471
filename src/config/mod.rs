//! Configuration files (YAML) as typed structs.
//!
//! * [`FittingConfig`]: the fitting ("ngmix") config read by `ngmixit` (spec §2.1–2.2);
//! * [`RunConfig`]: a megamixit run config (§2.3);
//! * [`NbrsConfig`]: neighbour-finding parameters (§2.4), from `nbrs:` or the Y1 `nbrs_pars:`;
//! * [`TileListConfig`]: a megamix-meds tile list (`medsconf` + `tileset` or `tile_ids`, §1.3).
//!
//! All YAML goes through [`from_yaml_str`] (the only function that names the YAML crate).
//! Errors are [`crate::Error::Config`] naming the file, the key path (`max_pars.lm_pars.maxfev`),
//! its line and column, and the expected type; unknown keys are reported by name, with a
//! suggestion when a known key is spelled similarly. PyYAML quirks the configs rely on are
//! reproduced: duplicate keys keep the last value (reported in
//! [`FittingConfig::compat_notes`]), YAML 1.1 booleans (`yes`/`no`/`on`/`off`) are accepted,
//! integers are accepted for floats.
//!
//! ## Y1 compatibility
//!
//! The Y1 configs (esheldon/ngmix-y1-config) were written for the `y1`-era code and use keys
//! that HEAD ngmixer rejects or ignores. [`FittingConfig`] maps them before the typed pass and
//! records each mapping in [`FittingConfig::compat_notes`] (log them): `imageio_type` →
//! `imageio`, `prop_sat_starpix` → `propagate_star_flags` with the fixed Y1 ignore mask,
//! `max_bmask_frac`/`symmetrize_bmask` kept and applied, `min_weight` clipping switched on
//! ([`FittingConfig::y1_min_weight_clipping`]), `use_psf_rerun`/`psf_rerun_version` kept, old
//! flat prior keys and `psf_pars.{maxiter,tol}` nested, unused legacy keys set aside in
//! [`FittingConfig::legacy`]. The table is in the `compat` module source; see
//! [`LEGACY_TOP`] and [`LEGACY_MAX_PARS`] for the legacy keys.
//!
//! ## Fitting config keys
//!
//! Driver (`ngmixing.py`):
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `fitter_type` | [`FitterType`] | required | `max-ngmix-boot`, `metacal-ngmix-boot`, `metacal-admom-boot`, `isamp-ngmix-boot`, `deconv`, `metacal-deconv`, `metacal-deconv-psfbase`, `galsim-forcephot` |
//! | `imageio` | [`ImageIoConfig`] | required | `io_type` ([`ImageIoType`]), `image_type` (`surface_brightness` or other; required for DES), `psfs` ([`PsfsConfig`]: `infile`, `psfex`, `piff {piff_run, stamp_size, allow_missing}`, optional `blacklist`), `astrom {version}` |
//! | `fit_me_galaxy` | bool | true | fit the single-epoch cutouts |
//! | `fit_coadd_galaxy` | bool | false | fit the coadd cutout |
//! | `max_box_size` | int | 2048 | larger boxes get BOX_SIZE_TOO_BIG |
//! | `make_plots` | bool | CLI value | diagnostic plots |
//! | `verbose` | bool | false | |
//! | `checkpoints` | list of minutes | `[0, 30, 60, 110]` | checkpoint times |
//! | `model_nbrs` | bool | false | model neighbours (MOF) |
//! | `model_nbrs_method` | `subtract` \| `frac` | — | required with `model_nbrs` |
//! | `mof` | [`MofConfig`] | — | `maxabs_conv`, `maxfrac_conv` (number or list ≥ 5+nband), `maxerr_conv`, `max_itr`, `min_itr`, `min_useg_itr`, `write_convergence_data` (false), `convergence_model` |
//! | `correct_meds` | [`CorrectMedsConfig`] | — | `replace_bad`, `symmetrize_mask` (true), `reject_outliers`, `bad_flags` (int or list summed), `mof_run` |
//! | `make_corrected_meds` | bool | false | megamixit; not with `model_nbrs` |
//! | `band_not_in_name` | bool | false | `correct_meds`: band = file position |
//! | `forced_photometry` | [`ForcedPhotometryConfig`] | — | `model`, `min_T`, `models_run` |
//! | `magzp_ref` | number or list | — | collation zero point |
//! | `collate` | [`CollateConfig`] | — | `concat_type`, `blinding` (null or `{type: y3}`) |
//! | `jobs` | [`JobsConfig`] | — | `chunksize`, `bands` |
//! | `global_seed` | int | — | megamix-meds seed |
//! | `run` | string | — | run name |
//! | `nbrs` | [`NbrsPars`] | — | neighbour finding |
//!
//! MEDS IO (`medsio.py`, `desmedsio.py`):
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `region` | [`Region`] | required | `mof`, `cweight-nearest`, `uberseg`, `seg_and_sky`, `weight` |
//! | `min_weight` | float | none (−inf) | `correct_meds` threshold (0 there); Y1 weight clipping |
//! | `reject_outliers` | bool | true | cross-epoch outlier rejection |
//! | `ignore_zero_images` | bool | false | skip all-zero images |
//! | `extra_mask_flags` | int | none | zero weight where `bmask & flags` |
//! | `extra_mask_flag_list` | list of bit names | none | DES Y3 (or HSC) names summed into `extra_mask_flags` |
//! | `max_zero_weight_frac` | number or `one-over-side` | 1.0 | skip cutouts with more zero weights |
//! | `symmetrize_weight` | bool | false | zero weight where the rotated weight is zero |
//! | `image_flags2check` | int | 0 | image-info flag bits that exclude an SE image |
//! | `central_bmask_radius` | int | none | skip if bmask set near the centre |
//! | `bmask_skip_flags` | int | none | skip if any pixel has these bits |
//! | `max_bmask_frac` | number or `one-over-side` | none (1.0) | Y1: skip if too many bmask pixels |
//! | `symmetrize_bmask` | bool | none (false) | Y1: OR bmask with its rotation |
//! | `max_cutouts` | int | none | only `icut <= max_cutouts` |
//! | `trim_image`, `trim_psf` | `{dims: [nr, nc]}` | none | trim SE stamps |
//! | `center_psf` | bool | false | PSFEx at the rounded position |
//! | `use_psf_rerun`, `psf_rerun_version` | bool, string | false, none | Y1/SV PSFEx reruns |
//! | `psf_s2n_checks` | `{file, key, s2n_min}` | none | old PSF S/N blacklist |
//! | `replacement_flags` | string | none | JSON replacement image flags |
//! | `tilings` | list of int | none | keep SE images of these tilings |
//! | `read_wcs`, `read_me_wcs` | bool | false | WCS sources for off-chip neighbours |
//! | `propagate_star_flags` | `{propagate, ignore_when_set: [DES Y3 bit names]}` | `{propagate: false}` | bright-star flag propagation |
//! | `flag_y1_stellarhalo_masked` | bool | false | flag objects touching STAR pixels |
//!
//! Fitter (`bootfit.py`):
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `model_pars` | [`ModelPars`] | required | model → [`ModelPriorSpec`] (`cen`, `g`, `T`, `counts`, `fracdev`) or null |
//! | `fit_models` | list of [`GalaxyModel`] | keys of `model_pars` | models to fit, in order |
//! | `psf_pars` | [`PsfPars`] | required | `model` ([`PsfModel`]), `ntry`, `fit_pars {maxiter, tol, maxfev, xtol, ftol}` |
//! | `max_pars` | [`MaxPars`] | required | `method` (lm), `ntry`, `lm_pars {maxfev, xtol, ftol}`, `use_fracdev_grid` (false), `fracdev_range` ([-2, 2]), `TdByTe_range` ([-1e9, 1e9]), `fracdev_grid` |
//! | `fracdev_grid` | [`FracdevGrid`] `{min, max, num}` | `linspace(-1, 1.5, 26)` | cm fracdev trial grid |
//! | `replace_cov`, `cov_pars` | bool, `{m, h}` | false | numerical covariance |
//! | `use_logpars` | bool | false | `log_T_r` column names |
//! | `min_psf_s2n` | float | −inf | LOW_PSF_FLUX threshold |
//! | `min_psf_model_s2n` | float | none | drop epochs with poor PSF fits |
//! | `pre_find_center` | bool | false | re-centre before fitting |
//! | `normalize_psf` | bool | true | PSF flux normalisation |
//! | `model_nrbs_unmodmask` (sic) | `nbrs-seg` | `nbrs-seg` | masking of unmodelled neighbours |
//! | `use_coadd_prefix` | bool | true | `coadd_` column prefix |
//! | `intr_prof_var_fac` | float | 0 | MOF model variance factor |
//! | `do_shear` | bool | false | `g_sens` columns |
//! | `guess_from_nbrs` | bool | true | MOF guesses from the previous pass |
//! | `target_noise` | float | none | add noise to this level |
//! | `metacal_pars` | [`MetacalPars`] | `{step: 0.01}` | `step`, `types`, `psf`, `fixnoise`, `analytic_psf`, `model_pars`, `psf_pars`, other ngmix options kept in `extra` |
//! | `replace_bad_pixels` | bool | required for metacal | replace masked pixels before metacal |
//! | `isample_pars`, `admom_pars` | mapping | none | passed through |
//!
//! Prior specs (`model_pars.<model>`, spec §4.5): `cen` `{type: dgauss|normal2d, width}`;
//! `g` `{type: ba, sigma}`, `flat`, `cosmos-sersic`, `cosmos-exp`, `cosmos-dev`; `T`
//! ([`ScalarPrior`]) `flat {pars: [min, max]}`, `TwoSidedErf {pars: [minval, width_at_min,
//! maxval, width_at_max]}`, `lognormal {mean, sigma}`, `normal {mean, sigma}`, `cosmos_exp`,
//! `cosmos_dev`, `gmixnd {file, cov_factor}`; `counts` ([`CountsPriorSpec`]) `flat` /
//! `TwoSidedErf` with `repeat: true` and one `pars` list, or `repeat: false` and one list per
//! band, `lognormal {mean, sigma}`, `gmixnd` (one band); `fracdev` ([`FracdevPriorSpec`])
//! `{file}` or inline `{weights, means, covars}`.

mod compat;
mod enums;
mod fitting;
mod prior_spec;
mod run;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

pub use compat::{LEGACY_MAX_PARS, LEGACY_TOP};
pub use enums::{
    BlindingType, BuffType, ConcatType, DesBadPix, FitterType, GalaxyModel, ImageIoType, ImageType,
    MaxMethod, MetacalType, ModelNbrsMethod, PsfModel, Region, UnmodeledNbrsMask, HSC_BADPIX,
};
pub use fitting::{
    AstromConfig, BlindingConfig, CollateConfig, ConvTol, CorrectMedsConfig, CovPars,
    FittingConfig, FlagsSpec, ForcedPhotometryConfig, FracdevGrid, ImageIoConfig, JobsConfig,
    LmPars, MagzpRef, MaxFrac, MaxPars, MetacalPars, MofConfig, PropagateStarFlags, PsfFitPars,
    PsfPars, PsfS2nChecks, PsfsConfig, TrimConfig, LEASTSQ_DEFAULT_TOL,
};
pub use prior_spec::{
    CenPriorSpec, CountsPriorSpec, FracdevPriorSpec, GPriorSpec, ModelPars, ModelPriorSpec,
    ScalarPrior,
};
pub use run::{
    check_run_name, run_name_from_file, NbrsConfig, NbrsKey, NbrsPars, RunConfig, SoftwareInfo,
    TileListConfig,
};
pub use validate::DriverMode;
pub use yaml::{from_yaml_str, Value, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH};

use crate::error::Error;

/// Expand `$VAR`, `${VAR}` and a leading `~` in a path, as Python's `os.path.expandvars` and
/// `expanduser` do (unknown variables are left unchanged).
pub fn expand_path(path: &str) -> PathBuf {
    let vars = expand_vars(path, |k| std::env::var(k).ok());
    PathBuf::from(expand_user(&vars, std::env::var("HOME").ok()))
}

/// `$VAR` / `${VAR}` expansion with a lookup function (unknown names stay as written).
pub fn expand_vars(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            if let Some(close) = chars[i + 2..].iter().position(|&c| c == '}') {
                let name: String = chars[i + 2..i + 2 + close].iter().collect();
                let raw: String = chars[i..i + 3 + close].iter().collect();
                match lookup(&name) {
                    Some(v) if !name.is_empty() => out.push_str(&v),
                    _ => out.push_str(&raw),
                }
                i += 3 + close;
                continue;
            }
            out.push(c);
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < chars.len() && is_name(chars[end]) {
            end += 1;
        }
        if end == start {
            out.push(c);
            i += 1;
            continue;
        }
        let name: String = chars[start..end].iter().collect();
        match lookup(&name) {
            Some(v) => out.push_str(&v),
            None => {
                out.push('$');
                out.push_str(&name);
            }
        }
        i = end;
    }
    out
}

/// Leading `~` / `~/` expansion with the given home directory.
fn expand_user(path: &str, home: Option<String>) -> String {
    match (path.strip_prefix('~'), home) {
        (Some(rest), Some(h)) if rest.is_empty() || rest.starts_with('/') => format!("{h}{rest}"),
        _ => path.to_string(),
    }
}

/// Read a config file (path expanded with [`expand_path`]) into any deserializable type.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Config`] for YAML or schema errors.
pub fn read_config_file<T: serde::de::DeserializeOwned>(path: &str) -> crate::Result<T> {
    use std::io::Read;
    let p = expand_path(path);
    let io = |source| Error::Io {
        path: p.clone(),
        source,
    };
    let meta = std::fs::metadata(&p).map_err(io)?;
    if !meta.is_file() {
        return Err(Error::Config {
            file: p.display().to_string(),
            msg: if meta.is_dir() {
                "is a directory, not a config file".into()
            } else {
                "is not a regular file (a device, pipe or socket)".into()
            },
        });
    }
    // read at most one byte past the limit: from_yaml_str reports the size
    let mut bytes = Vec::new();
    std::fs::File::open(&p)
        .map_err(io)?
        .take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Config {
        file: p.display().to_string(),
        msg: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    from_yaml_str(&text, &p.display().to_string())
}

/// Load a fitting config (`~` and `$VARS` in the path are expanded). The Y1 compatibility
/// mapping is applied; see [`FittingConfig::compat_notes`].
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Config`] naming the key otherwise.
pub fn load_fitting_config(path: impl AsRef<Path>) -> crate::Result<FittingConfig> {
    let path = path_text(path.as_ref());
    let mut cfg: FittingConfig = read_config_file(&path)?;
    cfg.source = Some(expand_path(&path).display().to_string());
    Ok(cfg)
}

/// Load a megamixit run config (`~` and `$VARS` in the path are expanded).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Config`] naming the key otherwise.
pub fn load_run_config(path: impl AsRef<Path>) -> crate::Result<RunConfig> {
    read_config_file(&path_text(path.as_ref()))
}

/// Load a neighbour config: a Y1 `nbrs-<v>.yaml` (`nbrs_pars`) or any config with an `nbrs`
/// section (`~` and `$VARS` in the path are expanded).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Config`] naming the key otherwise.
pub fn load_nbrs_config(path: impl AsRef<Path>) -> crate::Result<NbrsConfig> {
    read_config_file(&path_text(path.as_ref()))
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_expand_like_python() {
        let look = |k: &str| match k {
            "DESDATA" => Some("desdata".to_string()),
            "A" => Some("x".to_string()),
            _ => None,
        };
        assert_eq!(expand_vars("$DESDATA/meds/${A}y", look), "desdata/meds/xy");
        assert_eq!(
            expand_vars("$NOPE/a ${NOPE} $ $", look),
            "$NOPE/a ${NOPE} $ $"
        );
        assert_eq!(expand_vars("a${", look), "a${");
        assert_eq!(
            expand_user("~/cfg.yaml", Some("HOMEDIR".into())),
            "HOMEDIR/cfg.yaml"
        );
        assert_eq!(expand_user("~bob/x", Some("HOMEDIR".into())), "~bob/x");
        assert_eq!(expand_user("data/x", Some("HOMEDIR".into())), "data/x");
    }

    #[test]
    fn run_names() {
        assert_eq!(
            run_name_from_file(Path::new("/x/run-y1a1-main-mof-001.yaml")).as_deref(),
            Some("y1a1-main-mof-001")
        );
        assert!(check_run_name(Path::new("run-e2e01max.yaml"), "e2e01max").is_ok());
        assert!(check_run_name(Path::new("run-e2e01max.yaml"), "e2e02").is_err());
    }

    #[test]
    fn duplicate_keys_last_wins_and_reported() {
        let t = "fitter_type: max-ngmix-boot\nimageio: {io_type: meds, psfs: {type: infile}}\n\
                 region: weight\nguess_from_nbrs: true\nguess_from_nbrs: false\n\
                 psf_pars: {model: em2, ntry: 2}\nmax_pars: {ntry: 1, lm_pars: {maxfev: 100}}\n\
                 model_pars: {gauss: null}\n";
        let c: FittingConfig = from_yaml_str(t, "<t>").unwrap();
        assert!(!c.guess_from_nbrs);
        assert!(
            c.compat_notes
                .iter()
                .any(|n| n.contains("duplicate key `guess_from_nbrs` at line 5")),
            "{:?}",
            c.compat_notes
        );
    }
}
