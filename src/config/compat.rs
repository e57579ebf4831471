//! Y1 compatibility: rewrite Y1-era keys of a fitting config into the HEAD schema before the
//! typed pass (spec §2.5), and record every rewrite.
//!
//! | Y1 key | becomes |
//! |---|---|
//! | `imageio_type: X` | `imageio: {io_type: X, image_type: flux, psfs: ...}`; DES SV/Y1 types get `psfs: {type: psfex, path_from_image: true}` (PSFEx file next to the image), Y3-like DES types `psfs: {type: psfex}`, plain MEDS types `psfs: {type: infile}`. `flux` because the Y1 DES code always divided images by the pixel area. |
//! | `imageio_type` aliases `y1meds`, `meds-y1` | `meds-des-y1` |
//! | `fitter_type: maxngmixboot` | `max-ngmix-boot` |
//! | `prop_sat_starpix: true/false` | `propagate_star_flags: {propagate: true/false, ignore_when_set: [BPM, BADAMP, CRAY, EDGEBLEED, SSXTALK, EDGE, STREAK, SUSPECT]}` (the fixed Y1 mask, 3993) |
//! | `min_weight` (Y1 schema) | kept; Y1 weight clipping switched on (`y1_min_weight_clipping`) |
//! | `max_bmask_frac`, `symmetrize_bmask` | kept and applied (HEAD rejects them) |
//! | `use_psf_rerun`, `psf_rerun_version` | kept and reported |
//! | `psf_pars: {maxiter, tol, maxfev, xtol, ftol}` | moved into `psf_pars.fit_pars` |
//! | `model_pars.M.{cen,g,T,counts}_prior_*`, `fracdev_prior_file` | nested `cen`, `g`, `T`, `counts`, `fracdev` specs |
//! | unused legacy keys ([`LEGACY_TOP`], [`LEGACY_MAX_PARS`]) | removed, kept in `FittingConfig::legacy` |
//!
//! Names of `fitter_type` and `imageio.io_type` are lower-cased, as ngmixer does.

use std::collections::BTreeMap;

use super::enums::{DesBadPix, ImageIoType};
use super::yaml::{Node, NodeKind, Value};

/// Top-level keys of old configs that no ngmixer code at HEAD reads (nor the `y1` tag, except
/// where noted); accepted and ignored.
pub const LEGACY_TOP: &[&str] = &[
    "print_params",
    "round_pars", // y1-tag round fits (`fitter_type: max`); gone at HEAD
    "ignore_zero_weights_images",
    "use_original_weight", // y1-tag metacal option; gone at HEAD
    "nbrs_model",
    "nbrs_psf_model",
    "nbrs_reject_outliers",
    "nbrs_replace_bad",
    "use_desdm_psfex",
    "nrand",
    "dk",           // deprecated deconvolver
    "sigma_weight", // deprecated deconvolver
    "deconv_pars",  // deprecated deconvolver
];

/// Keys of `max_pars` in old configs that ngmix v1.3 does not read.
pub const LEGACY_MAX_PARS: &[&str] = &[
    "exp_prob_thresh",
    "psf_prob_thresh",
    "use_bic_test_for_simp_models",
];

/// Outcome of the compatibility pass.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) y1_schema: bool,
    pub(crate) y1_min_weight_clipping: bool,
    pub(crate) notes: Vec<String>,
    pub(crate) legacy: BTreeMap<String, Value>,
}

fn s(text: &str, like: &Node) -> Node {
    Node::new(NodeKind::Str(text.to_string()), like.line, like.col)
}

fn b(v: bool, like: &Node) -> Node {
    Node::new(NodeKind::Bool(v), like.line, like.col)
}

fn map(entries: Vec<(&str, Node)>, like: &Node) -> Node {
    Node::new(
        NodeKind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
        like.line,
        like.col,
    )
}

fn at(n: &Node) -> String {
    if n.line > 0 {
        format!(" (line {})", n.line)
    } else {
        String::new()
    }
}

/// Lower-case a string value in place; returns the new text.
fn lowercase(n: &mut Node) -> Option<String> {
    if let NodeKind::Str(v) = &mut n.kind {
        *v = v.to_ascii_lowercase();
        Some(v.clone())
    } else {
        None
    }
}

/// Apply the Y1 mapping to the root of a fitting config.
pub(crate) fn apply(root: &mut Node) -> Result<Report, String> {
    if root.as_map().is_none() {
        return Err(format!(
            "top level{}: a fitting config must be a mapping of keys, found {}",
            at(root),
            if matches!(root.kind, NodeKind::Null) {
                "an empty document".to_string()
            } else {
                format!("a {}", root.type_name())
            }
        ));
    }
    let mut r = Report::default();

    // fitter_type: lower case + old alias
    if let Some(ft) = root.get_mut("fitter_type") {
        if let Some(v) = lowercase(ft) {
            if v == "maxngmixboot" {
                *ft = s("max-ngmix-boot", ft);
                r.notes.push(format!(
                    "fitter_type: maxngmixboot → max-ngmix-boot (old name){}",
                    at(ft)
                ));
            }
        }
    }
    if let Some(io) = root.get_mut("imageio").and_then(|n| n.get_mut("io_type")) {
        lowercase(io);
    }

    // imageio_type → imageio
    if let Some(mut it) = root.remove("imageio_type") {
        r.y1_schema = true;
        if root.get("imageio").is_some() {
            return Err(format!(
                "key `imageio_type`{}: both the Y1 key `imageio_type` and the HEAD section \
                 `imageio` are given; keep only `imageio`",
                at(&it)
            ));
        }
        let Some(name) = lowercase(&mut it) else {
            return Err(format!(
                "key `imageio_type`{}: expected an ImageIO name (string), found {}",
                at(&it),
                it.type_name()
            ));
        };
        let name = match name.as_str() {
            "y1meds" | "meds-y1" => {
                r.notes.push(format!(
                    "imageio_type: {name} → meds-des-y1 (old name){}",
                    at(&it)
                ));
                "meds-des-y1".to_string()
            }
            _ => name,
        };
        let io = ImageIoType::from_name(&name);
        let (psfs, psfs_text) = match io {
            Some(ImageIoType::MedsDesSv | ImageIoType::MedsDesSvMof | ImageIoType::MedsDesY1) => (
                map(
                    vec![("type", s("psfex", &it)), ("path_from_image", b(true, &it))],
                    &it,
                ),
                "{type: psfex, path_from_image: true}",
            ),
            Some(t) if t.is_des() => (map(vec![("type", s("psfex", &it))], &it), "{type: psfex}"),
            _ => (map(vec![("type", s("infile", &it))], &it), "{type: infile}"),
        };
        let mut entries = vec![("io_type", s(&name, &it)), ("psfs", psfs)];
        let mut image_type_text = "";
        if io.is_some_and(ImageIoType::is_des) {
            entries.insert(1, ("image_type", s("flux", &it)));
            image_type_text = ", image_type: flux";
        }
        root.insert("imageio", map(entries, &it));
        r.notes.push(format!(
            "Y1 key imageio_type: {name} → imageio: {{io_type: {name}{image_type_text}, psfs: \
             {psfs_text}}}{}",
            at(&it)
        ));
    }

    // prop_sat_starpix → propagate_star_flags
    if let Some(p) = root.remove("prop_sat_starpix") {
        let Some(on) = p.as_bool() else {
            return Err(format!(
                "key `prop_sat_starpix`{}: expected a boolean, found {}",
                at(&p),
                p.type_name()
            ));
        };
        if root.get("propagate_star_flags").is_some() {
            r.notes.push(format!(
                "Y1 key prop_sat_starpix ignored: propagate_star_flags is also given{}",
                at(&p)
            ));
        } else {
            let mut entries = vec![("propagate", b(on, &p))];
            if on {
                let names = DesBadPix::Y1_STAR_IGNORE
                    .iter()
                    .map(|f| s(f.as_str(), &p))
                    .collect();
                entries.push((
                    "ignore_when_set",
                    Node::new(NodeKind::Seq(names), p.line, p.col),
                ));
            }
            root.insert("propagate_star_flags", map(entries, &p));
            r.notes.push(if on {
                format!(
                    "Y1 key prop_sat_starpix: true → propagate_star_flags: {{propagate: true, \
                     ignore_when_set: [BPM, BADAMP, CRAY, EDGEBLEED, SSXTALK, EDGE, STREAK, \
                     SUSPECT]}} (Y1 fixed mask {}){}",
                    DesBadPix::mask(&DesBadPix::Y1_STAR_IGNORE),
                    at(&p)
                )
            } else {
                format!(
                    "Y1 key prop_sat_starpix: false → propagate_star_flags: {{propagate: false}}{}",
                    at(&p)
                )
            });
        }
    }

    // min_weight clipping (Y1 behaviour)
    if r.y1_schema {
        if let Some(mw) = root.get("min_weight") {
            r.y1_min_weight_clipping = true;
            r.notes.push(format!(
                "Y1 behaviour: weights below min_weight are set to 0 (and negative weights \
                 clipped to 0){}",
                at(mw)
            ));
        }
    }

    // Y1 keys kept and applied / reported
    for key in ["max_bmask_frac", "symmetrize_bmask"] {
        if let Some(n) = root.get(key) {
            r.notes.push(format!(
                "Y1 key {key} kept and applied (HEAD ngmixer rejects it){}",
                at(n)
            ));
        }
    }
    if let Some(n) = root.get("use_psf_rerun") {
        let on = n.as_bool().unwrap_or(false);
        let version = root
            .get("psf_rerun_version")
            .and_then(Node::as_str)
            .unwrap_or("-");
        r.notes.push(if on {
            format!(
                "Y1 key use_psf_rerun: true (PSFEx rerun {version}); HEAD ngmixer does not \
                 support PSFEx reruns{}",
                at(n)
            )
        } else {
            format!("Y1 key use_psf_rerun: false accepted{}", at(n))
        });
    }
    if r.y1_schema {
        if let Some(cm) = root.get("correct_meds") {
            if cm.get("symmetrize_mask").is_none() {
                r.notes.push(format!(
                    "correct_meds.symmetrize_mask absent: default true (HEAD requires the key){}",
                    at(cm)
                ));
            }
        }
    }

    // psf_pars: old flat form
    psf_fit_pars(root.get_mut("psf_pars"), "psf_pars", &mut r);
    if let Some(mp) = root.get_mut("metacal_pars") {
        psf_fit_pars(mp.get_mut("psf_pars"), "metacal_pars.psf_pars", &mut r);
    }

    // model_pars: old flat prior keys
    flat_priors(root.get_mut("model_pars"), "model_pars", &mut r)?;
    if let Some(mp) = root.get_mut("metacal_pars") {
        flat_priors(mp.get_mut("model_pars"), "metacal_pars.model_pars", &mut r)?;
    }

    // legacy keys
    for key in LEGACY_TOP {
        if let Some(v) = root.remove(key) {
            r.notes.push(format!(
                "legacy key {key} ignored (not read by ngmixer){}",
                at(&v)
            ));
            r.legacy.insert((*key).to_string(), Value::from(&v));
        }
    }
    if let Some(mp) = root.get_mut("max_pars") {
        for key in LEGACY_MAX_PARS {
            if let Some(v) = mp.remove(key) {
                r.notes.push(format!(
                    "legacy key max_pars.{key} ignored (not read by ngmix v1.3){}",
                    at(&v)
                ));
                r.legacy.insert(format!("max_pars.{key}"), Value::from(&v));
            }
        }
    }
    Ok(r)
}

/// Move `maxiter`, `tol`, `maxfev`, `xtol`, `ftol` given directly under `psf_pars` into
/// `psf_pars.fit_pars`.
fn psf_fit_pars(pp: Option<&mut Node>, name: &str, r: &mut Report) {
    let Some(pp) = pp else { return };
    if pp.as_map().is_none() {
        return;
    }
    let mut moved: Vec<(String, Node)> = Vec::new();
    for key in ["maxiter", "tol", "maxfev", "xtol", "ftol"] {
        if let Some(v) = pp.remove(key) {
            moved.push((key.to_string(), v));
        }
    }
    if moved.is_empty() {
        return;
    }
    let names: Vec<String> = moved.iter().map(|(k, _)| k.clone()).collect();
    let (line, col) = (moved[0].1.line, moved[0].1.col);
    match pp.get_mut("fit_pars") {
        Some(fp) if fp.as_map().is_some() => {
            for (k, v) in moved {
                if fp.get(&k).is_none() {
                    fp.insert(&k, v);
                }
            }
        }
        _ => pp.insert("fit_pars", Node::new(NodeKind::Map(moved), line, col)),
    }
    r.notes.push(format!(
        "old form {name}.{{{}}} moved into {name}.fit_pars{}",
        names.join(", "),
        if line > 0 {
            format!(" (line {line})")
        } else {
            String::new()
        }
    ));
}

/// Rewrite `<x>_prior_type`/`<x>_prior_pars`/... of every model into nested specs.
fn flat_priors(mp: Option<&mut Node>, name: &str, r: &mut Report) -> Result<(), String> {
    let Some(mp) = mp else { return Ok(()) };
    let Some(entries) = mp.as_map_mut() else {
        return Ok(());
    };
    for (model, spec) in entries.iter_mut() {
        if spec.as_map().is_none() {
            continue;
        }
        let mut changed: Vec<&str> = Vec::new();
        let here = spec.clone();
        // g
        if let Some(t) = spec.remove("g_prior_type") {
            spec.insert("g", map(vec![("type", t)], &here));
            changed.push("g");
        }
        // T
        if let Some(t) = spec.remove("T_prior_type") {
            let mut e = vec![("type", t)];
            if let Some(p) = spec.remove("T_prior_pars") {
                e.push(("pars", p));
            }
            spec.insert("T", map(e, &here));
            changed.push("T");
        }
        // counts
        if let Some(t) = spec.remove("counts_prior_type") {
            let mut e = vec![("type", t)];
            if let Some(p) = spec.remove("counts_prior_pars") {
                e.push(("pars", p));
            }
            if let Some(p) = spec.remove("counts_prior_repeat") {
                e.push(("repeat", p));
            }
            spec.insert("counts", map(e, &here));
            changed.push("counts");
        }
        // cen: pars [width]
        if let Some(t) = spec.remove("cen_prior_type") {
            let mut e = vec![("type", t)];
            if let Some(p) = spec.remove("cen_prior_pars") {
                let width = match &p.kind {
                    NodeKind::Seq(v) if v.len() == 1 => v[0].clone(),
                    NodeKind::Seq(_) => {
                        return Err(format!(
                            "key `{name}.{model}.cen_prior_pars`{}: expected one value [width]",
                            at(&p)
                        ));
                    }
                    _ => p.clone(),
                };
                e.push(("width", width));
            }
            spec.insert("cen", map(e, &here));
            changed.push("cen");
        }
        if let Some(f) = spec.remove("fracdev_prior_file") {
            spec.insert("fracdev", map(vec![("file", f)], &here));
            changed.push("fracdev");
        }
        if !changed.is_empty() {
            r.notes.push(format!(
                "old flat prior keys of {name}.{model} rewritten as nested {} specs{}",
                changed.join(", "),
                at(&here)
            ));
        }
    }
    Ok(())
}
