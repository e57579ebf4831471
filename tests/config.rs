//! Config reading: every Y1 and e2e config loads, values agree with the YAML text (read
//! independently, line by line), errors name the key, Y1 keys are mapped, the fuzz corpus does
//! not panic.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ngmixer::config::{
    self, from_yaml_str, ConvTol, CountsPriorSpec, DesBadPix, DriverMode, FitterType,
    FittingConfig, GPriorSpec, GalaxyModel, ImageIoType, ImageType, MaxFrac, NbrsConfig, NbrsKey,
    PsfModel, PsfsConfig, Region, RunConfig, ScalarPrior,
};
use ngmixer::Error;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/configs")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn fitting_files() -> Vec<PathBuf> {
    let mut v = yaml_files(&data_dir().join("y1/ngmix_config"));
    v.extend(yaml_files(&data_dir().join("e2e")));
    v
}

// ---------------------------------------------------------------------------------------
// An independent, line-based reader for simple `key: value` lines of the YAML text.
// ---------------------------------------------------------------------------------------

fn strip_value(v: &str) -> String {
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    v.trim().trim_matches(|c| c == '"' || c == '\'').to_string()
}

/// Value of the last top-level (unindented) `key:` line.
fn top(text: &str, key: &str) -> Option<String> {
    let pre = format!("{key}:");
    text.lines()
        .filter(|l| l.starts_with(&pre))
        .map(|l| strip_value(&l[pre.len()..]))
        .next_back()
}

/// Value of the first indented `key:` line inside the top-level block `block:`.
fn in_block(text: &str, block: &str, key: &str) -> Option<String> {
    let head = format!("{block}:");
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with(&head) {
            inside = true;
            continue;
        }
        if inside {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if !l.starts_with(' ') && !l.starts_with('\t') {
                return None;
            }
            if let Some(rest) = t.strip_prefix(&format!("{key}:")) {
                return Some(strip_value(rest));
            }
        }
    }
    None
}

fn py_bool(s: &str) -> bool {
    match s {
        "True" | "true" => true,
        "False" | "false" => false,
        other => panic!("not a python bool: {other}"),
    }
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

// ---------------------------------------------------------------------------------------

#[test]
fn every_fitting_config_loads_and_matches_its_text() {
    let files = fitting_files();
    assert_eq!(files.len(), 123, "120 Y1 configs + 3 e2e configs");
    let mut y1 = 0;
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let c = config::load_fitting_config(f)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", f.display()));
        let name = f.display();
        assert_eq!(c.source.as_deref(), Some(f.to_str().unwrap()));

        // fitter
        let ft = top(&text, "fitter_type").unwrap();
        let expect_ft = if ft == "maxngmixboot" {
            "max-ngmix-boot".to_string()
        } else {
            ft
        };
        assert_eq!(c.fitter_type.as_str(), expect_ft, "{name}");

        // imageio
        if let Some(it) = top(&text, "imageio_type") {
            y1 += 1;
            assert!(c.y1_schema, "{name}");
            let want = match it.as_str() {
                "y1meds" | "meds-y1" => "meds-des-y1".to_string(),
                other => other.to_string(),
            };
            assert_eq!(c.imageio.io_type.as_str(), want, "{name}");
            assert!(c.compat_notes.iter().any(|n| n.contains("imageio_type")));
        } else {
            assert!(!c.y1_schema, "{name}");
            let io = in_block(&text, "imageio", "io_type").unwrap();
            assert_eq!(c.imageio.io_type.as_str(), io, "{name}");
        }

        // region, psf and max pars
        let region = top(&text, "region").unwrap();
        assert_eq!(c.region.as_str(), region, "{name}");
        let pm = in_block(&text, "psf_pars", "model").unwrap();
        assert_eq!(c.psf_pars.model.as_str(), pm, "{name}");
        let pn = in_block(&text, "psf_pars", "ntry").unwrap();
        assert_eq!(c.psf_pars.ntry as f64, num(&pn), "{name}");
        let mn = in_block(&text, "max_pars", "ntry").unwrap();
        assert_eq!(c.max_pars.ntry as f64, num(&mn), "{name}");
        if let Some(fev) = in_block(&text, "max_pars", "maxfev") {
            assert_eq!(
                c.max_pars.lm_pars.maxfev.map(f64::from),
                Some(num(&fev)),
                "{name}"
            );
        }

        // booleans with defaults
        match top(&text, "model_nbrs") {
            Some(v) => assert_eq!(c.model_nbrs, py_bool(&v), "{name}"),
            None => assert!(!c.model_nbrs, "{name}"),
        }
        match top(&text, "fit_coadd_galaxy") {
            Some(v) => assert_eq!(c.fit_coadd_galaxy, py_bool(&v), "{name}"),
            None => assert!(!c.fit_coadd_galaxy),
        }
        match top(&text, "reject_outliers") {
            Some(v) => assert_eq!(c.reject_outliers, py_bool(&v), "{name}"),
            None => assert!(c.reject_outliers, "{name}: default true"),
        }
        match top(&text, "prop_sat_starpix") {
            Some(v) => assert_eq!(c.propagate_star_flags.propagate, py_bool(&v), "{name}"),
            None => assert!(!c.propagate_star_flags.propagate),
        }
        if let Some(v) = top(&text, "image_flags2check") {
            assert_eq!(c.image_flags2check as f64, num(&v), "{name}");
        }
        if let Some(v) = top(&text, "min_weight") {
            assert_eq!(c.min_weight, Some(num(&v)), "{name}");
            assert_eq!(c.y1_min_weight_clipping, c.y1_schema, "{name}");
        }
        match top(&text, "max_zero_weight_frac") {
            Some(v) if v == "one-over-side" => {
                assert_eq!(c.max_zero_weight_frac, MaxFrac::OneOverSide, "{name}")
            }
            Some(v) => assert_eq!(c.max_zero_weight_frac, MaxFrac::Value(num(&v)), "{name}"),
            None => assert_eq!(c.max_zero_weight_frac, MaxFrac::Value(1.0)),
        }
        match top(&text, "symmetrize_bmask") {
            Some(v) => assert_eq!(c.symmetrize_bmask, Some(py_bool(&v)), "{name}"),
            None => assert_eq!(c.symmetrize_bmask, None),
        }
        if let Some(v) = top(&text, "use_psf_rerun") {
            assert_eq!(c.use_psf_rerun, py_bool(&v), "{name}");
        }

        // model_pars keys are the models (top-level fitting models appear as indented keys)
        assert!(!c.model_pars.is_empty(), "{name}");
        for m in c.model_pars.models() {
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{}:", m.as_str()))
                        && l.starts_with(' ')),
                "{name}: model {m} not in the text"
            );
        }
    }
    assert_eq!(y1, 120);
}

#[test]
fn e2e_configs_are_head_schema_and_valid() {
    for f in yaml_files(&data_dir().join("e2e")) {
        let c = config::load_fitting_config(&f).unwrap();
        assert!(!c.y1_schema);
        // nothing to map for a HEAD config
        assert!(
            c.compat_notes.is_empty(),
            "{}: {:?}",
            f.display(),
            c.compat_notes
        );
        c.validate(1)
            .unwrap_or_else(|e| panic!("{} invalid: {e}", f.display()));
        config::check_run_name(&f, c.run.as_deref().unwrap()).unwrap();
        assert_eq!(c.imageio.io_type, ImageIoType::Meds);
        assert_eq!(c.imageio.psfs, PsfsConfig::Infile { blacklist: None });
        assert_eq!(c.psf_pars.model, PsfModel::Em3);
        assert_eq!(c.psf_pars.em_settings(), (5.0e-6, 2000));
        assert_eq!(c.max_pars.lm_pars.resolved(6), (2000, 5.0e-5, 5.0e-5));
        assert_eq!(c.models_to_fit(), vec![GalaxyModel::Exp]);
        let p = c.model_pars.prior(GalaxyModel::Exp).unwrap();
        assert_eq!(p.cen.width(), 0.27);
        assert_eq!(p.g, GPriorSpec::Ba { sigma: 0.2 });
        assert_eq!(
            p.t,
            ScalarPrior::TwoSidedErf {
                minval: -10.0,
                width_at_min: 0.03,
                maxval: 1.0e6,
                width_at_max: 1.0e5
            }
        );
        assert_eq!(
            p.counts.for_nband(2).unwrap(),
            vec![
                ScalarPrior::TwoSidedErf {
                    minval: -100.0,
                    width_at_min: 1.0,
                    maxval: 1.0e9,
                    width_at_max: 0.25e8
                };
                2
            ]
        );
        assert_eq!(c.min_psf_s2n, -1.0e9);
    }
    let mcal = config::load_fitting_config(data_dir().join("e2e/run-e2e02mcal.yaml")).unwrap();
    assert_eq!(mcal.fitter_type, FitterType::MetacalNgmixBoot);
    assert_eq!(mcal.replace_bad_pixels, Some(true));
    let m = mcal.metacal();
    assert_eq!(m.step, 0.01);
    assert_eq!(m.fixnoise, Some(true));
    assert_eq!(m.psf.as_ref().and_then(|v| v.as_str()), Some("fitgauss"));
    assert_eq!(m.types_or_default().len(), 5);

    let mof = config::load_fitting_config(data_dir().join("e2e/run-e2e03mof.yaml")).unwrap();
    assert!(mof.model_nbrs);
    let mc = mof.mof.as_ref().unwrap();
    assert_eq!(
        mc.maxabs_conv.for_npars(6).unwrap(),
        vec![1.0e-3, 1.0e-3, 1.0e-3, 1.0e-3, 1.0e-6, 1.0e-6]
    );
    assert_eq!((mc.min_itr, mc.max_itr, mc.min_useg_itr), (2, 15, Some(1)));
    assert_eq!(mc.convergence_model, Some(GalaxyModel::Exp));
    // 6 tolerances do not cover 2 bands (5 + 2 = 7 parameters)
    let e = mof.validate(2).unwrap_err().to_string();
    assert!(
        e.contains("mof.maxabs_conv: needs at least 7 entries"),
        "{e}"
    );
}

#[test]
fn y1_mof_config_values() {
    let c = config::load_fitting_config(
        data_dir().join("y1/ngmix_config/ngmix-y1a1-main-mof-001.yaml"),
    )
    .unwrap();
    assert!(c.y1_schema);
    assert_eq!(c.imageio.io_type, ImageIoType::MedsDesY1);
    assert_eq!(
        c.imageio.image_type,
        Some(ImageType::Other("flux".to_string()))
    );
    assert_eq!(
        c.imageio.psfs,
        PsfsConfig::Psfex {
            blacklist: None,
            path_from_image: true
        }
    );
    assert_eq!(c.region, Region::Mof);
    assert!(c.propagate_star_flags.propagate);
    // The y1 tag's _interpolate_maskbits mask: 2048+1024+512+256+128+16+8+1.
    assert_eq!(c.propagate_star_flags.ignore_mask(), 3993);
    assert!(c.y1_min_weight_clipping);
    assert_eq!(c.y1_weight_clip(), Some(1.0e-4));
    assert_eq!(c.max_bmask_frac, Some(MaxFrac::Value(0.1)));
    assert_eq!(c.image_flags2check, 655_343);
    assert_eq!(c.image_flags2check, 1007 + (31 << 10) + (19 << 15));
    assert_eq!(c.central_bmask_radius, Some(4));
    let p = c.model_pars.prior(GalaxyModel::Cm).unwrap();
    assert_eq!(p.g, GPriorSpec::CosmosSersic);
    assert_eq!(
        p.fracdev,
        Some(config::FracdevPriorSpec::File(
            "$DESDATA/EXTRA/aux/priors/sfit-noisefree-c01-fracdev.fits".to_string()
        ))
    );
    assert!(matches!(p.counts, CountsPriorSpec::Repeat(_)));
    let mof = c.mof.as_ref().unwrap();
    assert_eq!(
        mof.maxfrac_conv.for_npars(9).unwrap(),
        vec![1e-6, 1e-6, 1e-6, 1e-6, 1e-6, 1e-3, 1e-3, 1e-3, 1e-3]
    );
    assert_eq!(mof.maxerr_conv, 0.5);
    assert_eq!(c.max_pars.fracdev_range, [0.0, 1.0]);
    assert_eq!(c.max_pars.tdbyte_range, [0.0, 1.0e12]);
    assert!(!c.max_pars.use_fracdev_grid);
    c.validate(4).unwrap();
    assert!(c.validate(5).is_err(), "9 tolerances do not cover 5 bands");
}

#[test]
fn y1_configs_validate_against_their_run_bands() {
    let mut ok = 0;
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    for f in yaml_files(&data_dir().join("y1/ngmix_config")) {
        let base = f.file_name().unwrap().to_str().unwrap();
        let Some(run) = base
            .strip_prefix("ngmix-")
            .and_then(|b| b.strip_suffix(".yaml"))
        else {
            continue;
        };
        let rf = data_dir().join(format!("y1/run_config/run-{run}.yaml"));
        let Ok(rc) = config::load_run_config(&rf) else {
            continue;
        };
        let c = config::load_fitting_config(&f).unwrap();
        // megamixit passes --mof-file when the run config has a mof_version
        let mode = DriverMode::select(c.model_nbrs, rc.mof_version.is_some(), false);
        match c.validate_for(rc.bands.len(), mode) {
            Ok(()) => ok += 1,
            Err(e) => {
                failures.insert(run.to_string(), e.to_string());
            }
        }
    }
    // The only failures are configs that the Python code rejects too: metacal without
    // `replace_bad_pixels` (KeyError in MetacalNGMixBootFitter).
    for (run, e) in &failures {
        let rest = e.replace(
            "metacal-ngmix-boot needs `replace_bad_pixels` (true or false)",
            "",
        );
        assert!(!rest.contains("; ") && rest.len() < e.len(), "{run}: {e}");
    }
    eprintln!(
        "{ok} valid, {} invalid: {:?}",
        failures.len(),
        failures.keys()
    );
    assert_eq!(ok + failures.len(), 112, "ngmix configs with a run config");
    assert_eq!(failures.len(), 24, "{failures:#?}");
}

#[test]
fn old_flat_prior_keys_and_psf_pars_are_nested() {
    let c =
        config::load_fitting_config(data_dir().join("y1/ngmix_config/ngmix_y1_001.yaml")).unwrap();
    assert_eq!(c.fitter_type, FitterType::MaxNgmixBoot);
    assert_eq!(c.imageio.io_type, ImageIoType::Meds);
    let p = c.model_pars.prior(GalaxyModel::Cm).unwrap();
    assert_eq!(p.cen.width(), 0.27);
    assert_eq!(p.g, GPriorSpec::CosmosSersic);
    assert_eq!(
        p.t,
        ScalarPrior::TwoSidedErf {
            minval: -0.07,
            width_at_min: 0.03,
            maxval: 1.0e6,
            width_at_max: 1.0e5
        }
    );
    assert!(matches!(
        p.fracdev,
        Some(config::FracdevPriorSpec::File(ref s)) if s.ends_with("sfit-noisefree-c01-fracdev.fits")
    ));
    assert_eq!(c.psf_pars.em_settings(), (5.0e-6, 5000));
    let g = c.fracdev_grid();
    assert_eq!((g.min, g.max, g.num), (-1.0, 1.1, 22));
    assert_eq!(g.values().len(), 22);
    assert_eq!(c.mof.as_ref().unwrap().maxabs_conv, ConvTol::Scalar(1.0e-6));
    assert!(c.legacy.contains_key("print_params"));
    assert!(c.legacy.contains_key("round_pars"));
    assert!(c
        .compat_notes
        .iter()
        .any(|n| n.contains("old flat prior keys")));
    assert!(c.compat_notes.iter().any(|n| n.contains("fit_pars")));
    assert_eq!(
        config::load_fitting_config(data_dir().join("y1/ngmix_config/ngmix_y1_002.yaml"))
            .unwrap()
            .imageio
            .io_type,
        ImageIoType::MedsDesY1
    );
}

#[test]
fn run_configs_load_and_match_text() {
    let files = yaml_files(&data_dir().join("y1/run_config"));
    assert_eq!(files.len(), 118);
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let rc: RunConfig = config::load_run_config(f)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", f.display()));
        let base = f.file_name().unwrap().to_str().unwrap();
        if base.starts_with("run-") {
            config::check_run_name(f, &rc.run).unwrap();
        } else {
            // old `run_y1_001.yaml` names do not follow the rule
            assert!(config::check_run_name(f, &rc.run).is_err());
        }
        assert_eq!(rc.run, top(&text, "run").unwrap());
        assert_eq!(rc.meds_version, top(&text, "meds_version").unwrap());
        assert_eq!(
            rc.num_fofs_per_chunk as f64,
            num(&top(&text, "num_fofs_per_chunk").unwrap())
        );
        let bands_line = top(&text, "bands").unwrap();
        let want: Vec<String> = bands_line
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(strip_value)
            .collect();
        assert_eq!(rc.bands, want, "{}", f.display());
        assert_eq!(rc.mof_version, top(&text, "mof_version"));
        match top(&text, "concat_type") {
            Some(ct) => assert_eq!(rc.concat_type.map(|c| c.as_str().to_string()), Some(ct)),
            None => assert!(rc.concat_type.is_none()),
        }
    }
    let rc = config::load_run_config(data_dir().join("y1/run_config/run-y1a1-main-mof-001.yaml"))
        .unwrap();
    assert_eq!(rc.ngmix_config_name(), "ngmix-y1a1-main-mof-001.yaml");
    assert_eq!(rc.nbrs_version.as_deref(), Some("001"));
    assert_eq!(rc.obj_flags_version.as_deref(), Some("001"));
}

#[test]
fn nbrs_configs_both_forms() {
    for f in yaml_files(&data_dir().join("y1/nbrs_config")) {
        let n: NbrsConfig = config::load_nbrs_config(&f).unwrap();
        assert_eq!(n.key, NbrsKey::NbrsPars);
        assert_eq!(n.pars.buff_type, config::BuffType::Tot);
        assert_eq!(n.pars.buff_frac, 0.25);
        assert_eq!(n.pars.maxsize_to_replace, 256);
        assert_eq!(n.pars.new_maxsize, 384);
        assert!(n.pars.check_seg);
        assert_eq!(
            n.nbrs_version.as_deref(),
            top(&fs::read_to_string(&f).unwrap(), "nbrs_version").as_deref()
        );
    }
    // HEAD: the neighbour program reads the `nbrs` section of the fitting config
    let f = data_dir().join("e2e/run-e2e03mof.yaml");
    let n = config::load_nbrs_config(&f).unwrap();
    assert_eq!(n.key, NbrsKey::Nbrs);
    assert_eq!(n.run.as_deref(), Some("e2e03mof"));
    assert_eq!(n.pars.buff_type, config::BuffType::Min);
    assert_eq!(n.pars.buff_frac, 0.75);
    assert_eq!(n.pars.maxsize_to_replace, -1);
    assert_eq!(n.pars.new_maxsize, 48);
    assert!(!n.pars.check_seg);
    let c = config::load_fitting_config(&f).unwrap();
    assert_eq!(c.nbrs, Some(n.pars));

    let e = from_yaml_str::<NbrsConfig>("nbrs:\n  buff_type: tot\n  buff_frac: x\n", "n.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("key `nbrs.buff_frac` (line 3"), "{e}");
    let e = from_yaml_str::<NbrsConfig>("run: a\n", "n.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing key `nbrs`"), "{e}");
    let e = from_yaml_str::<NbrsConfig>(
        "nbrs_pars: {buff_type: tot, buff_frac: 0.25, maxsize_to_replace: 1, new_maxsize: 2, \
         check_seg: yes, new_thing: 1}\n",
        "n.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("nbrs_pars.new_thing"), "{e}");
}

#[test]
fn tile_list_config() {
    let t: config::TileListConfig = from_yaml_str(
        "medsconf: y3v02
tile_ids: [DES0347-5540, DES2122+0001]
",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(t.medsconf, "y3v02");
    assert_eq!(t.tile_ids.as_ref().map(Vec::len), Some(2));
    t.check().unwrap();
    let t: config::TileListConfig = from_yaml_str(
        "medsconf: y3v02
",
        "t.yaml",
    )
    .unwrap();
    assert!(t.check().unwrap_err().contains("tileset"));
}

// ---------------------------------------------------------------------------------------
// Error messages
// ---------------------------------------------------------------------------------------

const BASE: &str = r#"
fitter_type: "max-ngmix-boot"
imageio:
    io_type: "meds"
    psfs:
        type: "infile"
region: "cweight-nearest"
psf_pars:
    model: "em3"
    ntry: 4
max_pars:
    ntry: 2
    method: "lm"
    lm_pars:
        maxfev: 2000
model_pars:
    exp:
        cen: {type: "normal2d", width: 0.27}
        g: {type: "ba", sigma: 0.2}
        T: {type: "TwoSidedErf", pars: [-10.0, 0.03, 1.0e+06, 1.0e+05]}
        counts: {type: "TwoSidedErf", pars: [-100.0, 1.0, 1.0e+09, 0.25e+08], repeat: True}
"#;

fn parse(text: &str) -> Result<FittingConfig, Error> {
    from_yaml_str::<FittingConfig>(text, "test.yaml")
}

fn err(text: &str) -> String {
    let e = parse(text).expect_err("should fail");
    match &e {
        Error::Config { file, .. } => assert_eq!(file, "test.yaml"),
        other => panic!("not a config error: {other:?}"),
    }
    e.to_string()
}

#[test]
fn base_config_parses_with_defaults() {
    let c = parse(BASE).unwrap();
    assert!(c.fit_me_galaxy && !c.fit_coadd_galaxy);
    assert_eq!(c.max_box_size, 2048);
    assert_eq!(c.checkpoints, vec![0.0, 30.0, 60.0, 110.0]);
    assert_eq!(c.max_zero_weight_frac, MaxFrac::Value(1.0));
    assert_eq!(c.min_psf_s2n, f64::NEG_INFINITY);
    assert!(c.normalize_psf && c.use_coadd_prefix && c.guess_from_nbrs && c.reject_outliers);
    assert_eq!(c.unmodeled_nbrs_mask.as_str(), "nbrs-seg");
    assert_eq!(c.max_pars.fracdev_range, [-2.0, 2.0]);
    assert_eq!(c.max_pars.tdbyte_range, [-1.0e9, 1.0e9]);
    assert_eq!(c.fracdev_grid().values().len(), 26);
    assert_eq!(
        c.max_pars.lm_pars.resolved(6),
        (2000, 1.49012e-8, 1.49012e-8)
    );
    assert!(!c.propagate_star_flags.propagate);
    assert_eq!(c.correct_meds_min_weight(), 0.0);
    assert_eq!(c.y1_weight_clip(), None);
    assert!(c.compat_notes.is_empty());
    c.validate(3).unwrap();
}

#[test]
fn unknown_key_is_named_with_suggestion() {
    let e = err(&BASE.replace("    ntry: 2\n", "    ntyr: 2\n"));
    assert!(e.contains("test.yaml"), "{e}");
    assert!(e.contains("key `max_pars.ntyr` (line 12"), "{e}");
    assert!(
        e.contains("unknown key `ntyr` (did you mean `ntry`?)"),
        "{e}"
    );

    let e = err(&format!("{BASE}fit_modles: [exp]\n"));
    assert!(e.contains("key `fit_modles`"), "{e}");
    assert!(e.contains("did you mean `fit_models`?"), "{e}");

    let e = err(&format!("{BASE}model_nbrs_unmodmask: nbrs-seg\n"));
    assert!(e.contains("did you mean `model_nrbs_unmodmask`?"), "{e}");
}

#[test]
fn mistyped_value_names_key_and_expected_type() {
    let e = err(&BASE.replace("    ntry: 2\n", "    ntry: \"four\"\n"));
    assert!(
        e.contains("key `max_pars.ntry` (line 12, column 11)"),
        "{e}"
    );
    assert!(
        e.contains("invalid type: string \"four\", expected u32"),
        "{e}"
    );

    let e = err(&BASE.replace("maxfev: 2000", "maxfev: 2.5"));
    assert!(e.contains("max_pars.lm_pars.maxfev"), "{e}");
    assert!(e.contains("expected u32"), "{e}");

    let e = err(&BASE.replace("ntry: 4", "ntry: -4"));
    assert!(e.contains("psf_pars.ntry"), "{e}");
    assert!(e.contains("expected u32"), "{e}");

    let e = err(&format!("{BASE}fit_me_galaxy: maybe\n"));
    assert!(e.contains("key `fit_me_galaxy`"), "{e}");
    assert!(e.contains("expected a boolean"), "{e}");

    let e = err(&BASE.replace(
        "pars: [-10.0, 0.03, 1.0e+06, 1.0e+05]",
        "pars: [-10.0, 0.03]",
    ));
    assert!(e.contains("model_pars.exp.T"), "{e}");
    assert!(e.contains("length 4"), "{e}");

    let e = err(&BASE.replace("model: \"em3\"", "model: \"em4\""));
    assert!(e.contains("key `psf_pars.model`"), "{e}");
    assert!(e.contains("unknown value `em4`"), "{e}");

    let e = err(&BASE.replace("type: \"ba\", sigma: 0.2", "type: \"cosmos-sersik\""));
    assert!(e.contains("model_pars.exp.g"), "{e}");
    assert!(e.contains("did you mean `cosmos-sersic`?"), "{e}");

    let e = err(&BASE.replace("    exp:\n", "    expo:\n"));
    assert!(e.contains("key `model_pars.expo`"), "{e}");
    assert!(e.contains("unknown value `expo`"), "{e}");
}

#[test]
fn missing_required_key_is_named() {
    let e = err(&BASE.replace("region: \"cweight-nearest\"\n", ""));
    assert!(e.contains("missing field `region`"), "{e}");
    let e = err(&BASE.replace("    ntry: 2\n", ""));
    assert!(e.contains("key `max_pars`"), "{e}");
    assert!(e.contains("missing field `ntry`"), "{e}");
    let e = err(&BASE.replace("        g: {type: \"ba\", sigma: 0.2}\n", ""));
    assert!(e.contains("key `model_pars.exp`"), "{e}");
    assert!(e.contains("missing field `g`"), "{e}");
}

#[test]
fn syntax_and_document_errors() {
    let e = err("a: [1,\n b: 2\n");
    assert!(e.contains("invalid YAML"), "{e}");
    assert!(e.contains("line 1"), "{e}");
    let e = err("");
    assert!(e.contains("empty document"), "{e}");
    let e = err("- 1\n- 2\n");
    assert!(e.contains("must be a mapping"), "{e}");
}

#[test]
fn y1_keys_are_mapped_and_reported() {
    let y1 = BASE.replace(
        "imageio:\n    io_type: \"meds\"\n    psfs:\n        type: \"infile\"\n",
        "imageio_type: \"meds-des-y1\"\n",
    ) + "prop_sat_starpix: True\nmin_weight: 1.0e-4\nmax_bmask_frac: 'one-over-side'\n\
           symmetrize_bmask: yes\nuse_psf_rerun: True\npsf_rerun_version: \"v8\"\n\
           print_params: True\n";
    let c = parse(&y1).unwrap();
    assert!(c.y1_schema);
    assert_eq!(c.imageio.io_type, ImageIoType::MedsDesY1);
    assert!(c.propagate_star_flags.propagate);
    assert_eq!(
        c.propagate_star_flags.ignore_when_set,
        DesBadPix::Y1_STAR_IGNORE.to_vec()
    );
    assert_eq!(c.propagate_star_flags.ignore_mask(), 3993);
    assert!(c.y1_min_weight_clipping);
    assert_eq!(c.max_bmask_frac, Some(MaxFrac::OneOverSide));
    assert_eq!(MaxFrac::OneOverSide.threshold(48, 32), 1.0 / 32.0);
    assert_eq!(c.symmetrize_bmask, Some(true));
    assert!(c.use_psf_rerun);
    assert_eq!(c.psf_rerun_version.as_deref(), Some("v8"));
    let notes = c.compat_notes.join("\n");
    for want in [
        "imageio_type: meds-des-y1 → imageio",
        "prop_sat_starpix: true → propagate_star_flags",
        "min_weight",
        "max_bmask_frac kept",
        "symmetrize_bmask kept",
        "use_psf_rerun: true (PSFEx rerun v8)",
        "legacy key print_params ignored",
    ] {
        assert!(notes.contains(want), "missing note {want:?} in\n{notes}");
    }
    c.validate(1).unwrap();

    // both forms at once
    let e = err(&format!("{BASE}imageio_type: meds\n"));
    assert!(e.contains("imageio_type"), "{e}");
    assert!(e.contains("keep only `imageio`"), "{e}");
    // HEAD form wins over the Y1 key
    let c = parse(&format!(
        "{BASE}prop_sat_starpix: true\npropagate_star_flags: {{propagate: false}}\n"
    ))
    .unwrap();
    assert!(!c.propagate_star_flags.propagate);
    assert!(c
        .compat_notes
        .iter()
        .any(|n| n.contains("prop_sat_starpix ignored")));
    // HEAD configs do not get the Y1 weight clipping
    let c = parse(&format!("{BASE}min_weight: 0.5\n")).unwrap();
    assert!(!c.y1_min_weight_clipping);
    assert_eq!(c.correct_meds_min_weight(), 0.5);
}

#[test]
fn validation_rules() {
    let problems = |text: &str, nband: usize| parse(text).unwrap().problems(nband).join("\n");

    let p = problems(&BASE.replace("max-ngmix-boot", "metacal-ngmix-boot"), 1);
    assert!(p.contains("needs `replace_bad_pixels`"), "{p}");

    let p = problems(&format!("{BASE}model_nbrs: true\n"), 1);
    assert!(p.contains("model_nbrs needs `model_nbrs_method`"), "{p}");
    assert!(p.contains("model_nbrs needs the `mof` section"), "{p}");
    // with a MOF catalogue the `mof` section is not needed
    let c = parse(&format!(
        "{BASE}model_nbrs: true\nmodel_nbrs_method: subtract\n"
    ))
    .unwrap();
    assert_eq!(c.default_mode(), DriverMode::Mof);
    assert!(c.validate(1).is_err());
    c.validate_for(1, DriverMode::select(true, true, false))
        .unwrap();
    // correct_meds needs the MOF file; forced photometry needs center_psf
    let c = parse(&format!(
        "{BASE}correct_meds: {{replace_bad: true, reject_outliers: true}}\n\
         forced_photometry: {{model: exp, min_T: 0.01}}\n"
    ))
    .unwrap();
    assert!(c
        .problems(1)
        .join(";")
        .contains("correct_meds needs a MOF catalogue"));
    assert!(c.problems_for(1, DriverMode::WithMofFile).is_empty());
    let p = c.problems_for(1, DriverMode::ForcedPhotometry).join(";");
    assert!(p.contains("center_psf: true"), "{p}");
    assert_eq!(
        DriverMode::select(false, false, true),
        DriverMode::ForcedPhotometry
    );
    assert_eq!(DriverMode::select(true, false, true), DriverMode::Mof);

    let per_band = BASE.replace(
        "pars: [-100.0, 1.0, 1.0e+09, 0.25e+08], repeat: True",
        "pars: [[-100.0, 1.0, 1.0e+09, 0.25e+08], [-10.0, 1.0, 1.0e+09, 0.25e+08]], repeat: False",
    );
    assert!(problems(&per_band, 2).is_empty());
    let p = problems(&per_band, 3);
    assert!(
        p.contains(
            "model_pars.exp.counts: counts prior must have one entry per band: 2 given for 3 bands"
        ),
        "{p}"
    );
    let e = parse(&per_band).unwrap().validate(3).unwrap_err();
    assert!(matches!(e, Error::Config { .. }));

    let p = problems(&format!("{BASE}fit_models: [exp, gauss]\n"), 1);
    assert!(
        p.contains("model `gauss` has no entry in model_pars"),
        "{p}"
    );

    let cm = BASE.replace("    exp:\n", "    cm:\n");
    let p = problems(&cm, 1);
    assert!(p.contains("the cm model needs a `fracdev` prior"), "{p}");

    let des = BASE.replace("io_type: \"meds\"", "io_type: \"meds-des-y3\"");
    let p = problems(&des, 1);
    assert!(p.contains("imageio.image_type is required"), "{p}");

    let p = problems(
        &format!("{BASE}extra_mask_flag_list: [BPM, BOGUS]\n")
            .replace("\"meds\"", "\"meds-des-y3\""),
        1,
    );
    assert!(p.contains("unknown DES Y3 bit name `BOGUS`"), "{p}");
    let c = parse(
        &format!("{BASE}extra_mask_flag_list: [BPM, SATURATE, STAR]\nimageio_type_unused: 1\n")
            .replace("imageio_type_unused: 1\n", ""),
    )
    .unwrap();
    assert_eq!(c.effective_extra_mask_flags().unwrap(), Some(1 + 2 + 32));

    // counts given per band with repeat true is a parse-time error
    let e = err(&BASE.replace(
        "pars: [-100.0, 1.0, 1.0e+09, 0.25e+08], repeat: True",
        "pars: [[-100.0, 1.0, 1.0e+09, 0.25e+08]], repeat: True",
    ));
    assert!(e.contains("model_pars.exp.counts"), "{e}");
    assert!(e.contains("`repeat: true` needs `pars` as one list"), "{e}");
}

#[test]
fn open_ended_metacal_options_are_kept() {
    let c = parse(&format!(
        "{BASE}metacal_pars:\n  symmetrize_psf: True\n  symmetrize_dilation: 1.05\n  \
         types: [noshear, 1p, 1m, 2p, 2m, 1p_psf]\n"
    ))
    .unwrap();
    let m = c.metacal_pars.unwrap();
    assert_eq!(
        m.extra.get("symmetrize_psf").and_then(|v| v.as_bool()),
        Some(true)
    );
    assert_eq!(
        m.extra.get("symmetrize_dilation").and_then(|v| v.as_f64()),
        Some(1.05)
    );
    assert_eq!(m.types_or_default().len(), 6);
    assert_eq!(m.step, 0.01);
}

#[test]
fn load_expands_env_vars_and_tilde() {
    let dir = data_dir().join("e2e");
    // Unique name; no other test reads it.
    std::env::set_var("NGMIXER_CONFIG_TEST_DIR_X7", dir.to_str().unwrap());
    let c = config::load_fitting_config("$NGMIXER_CONFIG_TEST_DIR_X7/run-e2e01max.yaml").unwrap();
    assert_eq!(c.run.as_deref(), Some("e2e01max"));
    let c = config::load_fitting_config("${NGMIXER_CONFIG_TEST_DIR_X7}/run-e2e01max.yaml").unwrap();
    assert_eq!(c.run.as_deref(), Some("e2e01max"));
    let e = config::load_fitting_config("$NGMIXER_NO_SUCH_VAR_X7/none.yaml").unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("$NGMIXER_NO_SUCH_VAR_X7/none.yaml"));
}

#[test]
fn fuzz_corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/config");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if !p.is_file() {
            continue;
        }
        let bytes = fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let name = p.display().to_string();
        // Errors are fine; panics are not.
        let _ = from_yaml_str::<FittingConfig>(&text, &name).map(|c| c.problems(4));
        let _ = from_yaml_str::<RunConfig>(&text, &name);
        let _ = from_yaml_str::<NbrsConfig>(&text, &name);
        n += 1;
    }
    assert!(n >= 10, "corpus has only {n} files");
}
