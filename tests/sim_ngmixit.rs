//! `ngmixit` end to end on simulated tiles (`ngmixer::sim`) unlike the bundled one: several
//! bands (one MEDS file each), mixed box sizes, epochs with different Jacobians and PSFs,
//! blends, masked pixels and zero weights. Fits are checked against the simulation truth
//! through pulls `(fit - truth) / error` with the errors `ngmixit` reports.

#![cfg(feature = "des-y1")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ngmixer::backends::meds::{read_table, Columns};
use ngmixer::flags::IMAGE_FLAGS;
use ngmixer::sim::{write_tile, BandConfig, Mask, Scene, SimConfig, SimFiles, SimModel};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ngmixit-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The e2e01max config with `extra` top-level keys and the given model.
fn config(dir: &Path, name: &str, model: &str, extra: &str) -> PathBuf {
    config_with(dir, name, model, extra, "")
}

/// As [`config`], with `model_extra` lines (8-space indented) in the model's prior block.
fn config_with(dir: &Path, name: &str, model: &str, extra: &str, model_extra: &str) -> PathBuf {
    let text = format!(
        r#"run: "sim-{name}"
fitter_type: "max-ngmix-boot"
imageio:
    io_type: "meds"
    psfs:
        type: "infile"
region: "cweight-nearest"
model_nbrs: False
reject_outliers: True
max_box_size: 2048
fit_me_galaxy: True
fit_coadd_galaxy: True
use_coadd_prefix: True
normalize_psf: True
min_psf_s2n: -1.0e+09
replace_cov: False
use_logpars: False
make_plots: False
{extra}
psf_pars:
    model: "em3"
    ntry: 4
    fit_pars:
        maxiter: 2000
        tol: 5.0e-6
max_pars:
    ntry: 2
    method: "lm"
    lm_pars:
        maxfev: 2000
        xtol: 5.0e-5
        ftol: 5.0e-5
model_pars:
    {model}:
        cen:
            type: "normal2d"
            width: 0.27
        g:
            type: "ba"
            sigma: 0.3
        T:
            type: "TwoSidedErf"
            pars: [-10.0, 0.03, 1.0e+06, 1.0e+05]
        counts:
            type: "TwoSidedErf"
            pars: [-100.0, 1.0, 1.0e+09, 0.25e+08]
            repeat: True
{model_extra}
"#
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn ngmixit(cfg: &Path, out: &Path, files: &SimFiles, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ngmixit"));
    cmd.args(extra).arg("--seed").arg("4242").arg(cfg).arg(out);
    for m in &files.meds {
        cmd.arg(m);
    }
    cmd.output().unwrap()
}

fn run_ok(cfg: &Path, out: &Path, files: &SimFiles, extra: &[&str]) -> Columns {
    let o = ngmixit(cfg, out, files, extra);
    assert!(
        o.status.success(),
        "ngmixit failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    read_table(out, "model_fits").unwrap()
}

fn ints(c: &Columns, name: &str) -> Vec<i64> {
    c.get(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_int()
        .unwrap_or_else(|| panic!("{name} is not integer"))
        .to_vec()
}

fn floats(c: &Columns, name: &str) -> Vec<f64> {
    c.get(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_float()
        .unwrap_or_else(|| panic!("{name} is not float"))
        .to_vec()
}

fn repeat(c: &Columns, name: &str) -> usize {
    c.get(name).unwrap().repeat
}

/// Pull statistics of parameter `k` of `prefix_pars` over `rows`.
struct Pulls {
    n: usize,
    mean: f64,
    rms: f64,
    max: f64,
}

fn pulls(mf: &Columns, scene: &Scene, prefix: &str, k: usize, rows: &[usize]) -> Pulls {
    let np = 5 + scene.nband();
    let pars = floats(mf, &format!("{prefix}_pars"));
    let cov = floats(mf, &format!("{prefix}_pars_cov"));
    let mut v = Vec::new();
    for &r in rows {
        let truth = scene.objects[r].pars()[k];
        let err = cov[r * np * np + k * np + k].sqrt();
        v.push((pars[r * np + k] - truth) / err);
    }
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let rms = (v.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
    let max = v.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    Pulls { n, mean, rms, max }
}

fn three_band_config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        nobj: 16,
        npair: 3,
        bands: vec![
            BandConfig::new("g", 2),
            BandConfig::new("r", 3),
            BandConfig::new("i", 2),
        ],
        box_sizes: vec![32, 48, 64],
        models: vec![SimModel::Exp],
        ..SimConfig::default()
    }
}

/// Check the pulls of the SE and coadd fits of `model` over the clean isolated objects.
fn check_pulls(mf: &Columns, scene: &Scene, model: &str, rows: &[usize]) {
    let names = ["cen_v", "cen_u", "g1", "g2", "T"];
    for prefix in [model.to_string(), format!("coadd_{model}")] {
        let mut all = Vec::new();
        for k in 0..5 + scene.nband() {
            let p = pulls(mf, scene, &prefix, k, rows);
            let name = names
                .get(k)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("flux{}", k - 5));
            eprintln!(
                "{prefix} {name:>6}: n {} mean {:+.3} rms {:.3} max {:.2}",
                p.n, p.mean, p.rms, p.max
            );
            all.push((name, p));
        }
        // shape and fluxes: the quantities a catalogue user takes from ngmixit
        for (name, p) in &all {
            if name == "g1" || name == "g2" || name.starts_with("flux") {
                assert!(p.mean.abs() < 0.75, "{prefix} {name}: mean pull {}", p.mean);
                assert!(
                    (0.5..1.6).contains(&p.rms),
                    "{prefix} {name}: rms pull {}",
                    p.rms
                );
                assert!(p.max < 4.5, "{prefix} {name}: max |pull| {}", p.max);
            }
        }
    }
}

#[test]
fn three_bands_mixed_boxes_blends_recover_the_truth() {
    let d = tmpdir("3band");
    let scene = Scene::generate(&three_band_config(11)).unwrap();
    let files = write_tile(&scene, &d, "tile").unwrap();
    let cfg = config(&d, "3band", "exp", "");
    let out = d.join("out.fits");
    let mf = run_ok(&cfg, &out, &files, &[]);
    let n = scene.objects.len();
    let nb = 3;
    assert_eq!(mf.nrows(), n);

    // nband-shaped columns (spec §4.4)
    for (name, r) in [
        ("nimage_tot", nb),
        ("psf_flags", nb),
        ("psf_flux", nb),
        ("psf_flux_err", nb),
        ("psf_flux_s2n", nb),
        ("nimage_use", nb),
        ("exp_pars", 5 + nb),
        ("exp_pars_cov", (5 + nb) * (5 + nb)),
        ("exp_max_pars", 5 + nb),
        ("exp_g", 2),
        ("exp_g_cov", 4),
        ("coadd_psf_flux", nb),
        ("coadd__nimage_use", nb), // sic: the Python Namer("coadd_") + "_nimage_use"
        ("coadd_exp_pars", 5 + nb),
        ("coadd_exp_pars_cov", (5 + nb) * (5 + nb)),
    ] {
        assert_eq!(repeat(&mf, name), r, "{name}");
    }
    let ids = ints(&mf, "id");
    let box_size = ints(&mf, "box_size");
    let nimage_tot = ints(&mf, "nimage_tot");
    let nimage_use = ints(&mf, "nimage_use");
    let coadd_use = ints(&mf, "coadd__nimage_use");
    for (i, o) in scene.objects.iter().enumerate() {
        assert_eq!(ids[i], o.id);
        assert_eq!(box_size[i] as usize, o.box_size);
        for b in 0..nb {
            let nse = scene.bands[b].epochs[1..]
                .iter()
                .filter(|e| e.covers[i])
                .count() as i64;
            assert_eq!(nimage_tot[i * nb + b], nse, "nimage_tot obj {i} band {b}");
            assert_eq!(nimage_use[i * nb + b], nse, "nimage_use obj {i} band {b}");
            assert_eq!(
                coadd_use[i * nb + b],
                1,
                "coadd_nimage_use obj {i} band {b}"
            );
        }
    }

    // every object is fitted, blended or not
    let flags = ints(&mf, "flags");
    for (i, &f) in flags.iter().enumerate() {
        assert_eq!(f, 0, "flags of object {i}");
    }
    for name in [
        "exp_flags",
        "coadd_exp_flags",
        "psf_flags",
        "coadd_psf_flags",
    ] {
        assert!(ints(&mf, name).iter().all(|&f| f == 0), "{name}");
    }

    // epoch_data: one row per usable epoch, pixel scales of the simulated Jacobians
    let ed = read_table(&out, "epoch_data").unwrap();
    let ncut_total: usize = (0..nb)
        .map(|b| {
            scene.bands[b]
                .epochs
                .iter()
                .map(|e| e.covers.iter().filter(|&&c| c).count())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(ed.nrows(), ncut_total, "SE and coadd epochs of every band");
    let band_num = ints(&ed, "band_num");
    let file_id = ints(&ed, "file_id");
    let scale = floats(&ed, "pixel_scale");
    // the em3 PSF fits reproduce the simulated (three-Gaussian) PSFs
    let psf_t = floats(&ed, "psf_fit_T");
    let psf_g = floats(&ed, "psf_fit_g");
    let psf_flags = ints(&ed, "psf_fit_flags");
    let (mut worst_t, mut worst_g, mut n_close) = (0.0f64, 0.0f64, 0usize);
    for r in 0..ed.nrows() {
        let ep = &scene.bands[band_num[r] as usize].epochs[file_id[r] as usize];
        assert!((scale[r] - ep.scale()).abs() < 1e-9, "pixel_scale row {r}");
        assert_eq!(psf_flags[r], 0, "psf_fit_flags row {r}");
        let (g1, g2, t) = ep.psf.g1g2t().unwrap();
        let dt = (psf_t[r] / t - 1.0).abs();
        worst_t = worst_t.max(dt);
        if dt < 2e-3 {
            n_close += 1;
        }
        worst_g = worst_g.max((psf_g[2 * r] - g1).abs().max((psf_g[2 * r + 1] - g2).abs()));
    }
    eprintln!(
        "PSF fits: {n_close}/{} with |T/T_true - 1| < 2e-3, worst {worst_t:.2e}; worst |g - g_true| {worst_g:.2e}",
        ed.nrows()
    );
    // each object refits the PSFs from its own random starts; EM (tol 5e-6) may stop early
    assert!(n_close as f64 >= 0.95 * ed.nrows() as f64 && worst_t < 0.03 && worst_g < 0.01);
    // psfrec_T: the weight-sum-weighted mean PSF T over the epochs of each fit (spec §4.4),
    // against the simulated PSFs
    let ed_id = ints(&ed, "id");
    let icut = ints(&ed, "cutout_index");
    let wsum = floats(&ed, "wsum");
    for (col, coadd) in [("psfrec_T", false), ("coadd__psfrec_T", true)] {
        let rec = floats(&mf, col);
        for (i, o) in scene.objects.iter().enumerate() {
            let (mut sw, mut swt) = (0.0, 0.0);
            for r in 0..ed.nrows() {
                if ed_id[r] == o.id && (icut[r] == 0) == coadd {
                    let ep = &scene.bands[band_num[r] as usize].epochs[file_id[r] as usize];
                    sw += wsum[r];
                    swt += wsum[r] * ep.psf.t();
                }
            }
            let want = swt / sw;
            assert!(
                (rec[i] / want - 1.0).abs() < 0.01,
                "{col} object {i}: {} vs {want}",
                rec[i]
            );
        }
    }

    let clean = scene.clean_isolated();
    assert_eq!(clean.len(), 13);
    check_pulls(&mf, &scene, "exp", &clean);
}

#[test]
fn masked_pixels_and_zero_weights_are_flagged_or_fitted() {
    let d = tmpdir("masks");
    let mut cfg = three_band_config(23);
    cfg.nobj = 12;
    cfg.npair = 0;
    cfg.bands.truncate(2);
    let mut scene = Scene::generate(&cfg).unwrap();
    // DES bmask bits: 1 BPM, 2 SATURATE, 4 INTERP, 8 CRAY, 16 DETEDGE
    scene.objects[0].mask = Mask::Core {
        radius: 2.5,
        bits: 2,
    };
    scene.objects[1].mask = Mask::Random { frac: 0.2, bits: 8 };
    scene.objects[2].mask = Mask::Column { bits: 1 };
    scene.objects[3].mask = Mask::ZeroWeight;
    scene.objects[4].mask = Mask::FlagOnly {
        radius: 3.0,
        bits: 16,
    };
    let files = write_tile(&scene, &d, "masked").unwrap();

    // 1. defaults: masked pixels carry no weight; the all-zero-weight object has no usable
    // cutout in any band -> IMAGE_FLAGS; the others are fitted and agree with the truth
    let c1 = config(&d, "masks", "exp", "");
    let mf = run_ok(&c1, &d.join("m1.fits"), &files, &[]);
    let flags = ints(&mf, "flags");
    eprintln!("flags {flags:?}");
    assert_eq!(flags[3], IMAGE_FLAGS as i64, "zero weight everywhere");
    let nuse = ints(&mf, "nimage_use");
    assert_eq!(
        &nuse[6..8],
        &[0, 0],
        "no usable epoch of the zero-weight object"
    );
    for i in [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11] {
        assert_eq!(flags[i], 0, "object {i} ({})", scene.objects[i].mask.name());
    }
    let np = 7;
    let pars = floats(&mf, "exp_pars");
    let cov = floats(&mf, "exp_pars_cov");
    for i in [0, 1, 2, 4] {
        let t = scene.objects[i].pars();
        for k in [2, 3, 5, 6] {
            let pull = (pars[i * np + k] - t[k]) / cov[i * np * np + k * np + k].sqrt();
            eprintln!("masked object {i} par {k}: pull {pull:+.2}");
            assert!(pull.abs() < 5.0, "object {i} par {k}: pull {pull}");
        }
    }
    // mask_frac reports the masked fraction: ~0 for clean objects (a few pixels may go to
    // the cross-epoch outlier rejection), the masked fraction for masked ones
    let mask_frac = floats(&mf, "mask_frac");
    eprintln!("mask_frac {mask_frac:?}");
    for i in [5, 6, 7, 8, 9, 10, 11] {
        assert!(
            mask_frac[i].abs() < 0.005,
            "clean object {i}: {}",
            mask_frac[i]
        );
    }
    assert!(
        (mask_frac[1] - 0.2).abs() < 0.05,
        "random 20%: {}",
        mask_frac[1]
    );
    assert!(mask_frac[0] > 0.0 && mask_frac[2] > 0.0);

    // 2. cutouts with too many zero weights are skipped (max_zero_weight_frac), cutouts with
    // bmask bits are skipped (bmask_skip_flags): those objects lose every cutout
    let c2 = config(
        &d,
        "masks-skip",
        "exp",
        "max_zero_weight_frac: 0.1\nbmask_skip_flags: 16\n",
    );
    let mf = run_ok(&c2, &d.join("m2.fits"), &files, &[]);
    let flags = ints(&mf, "flags");
    eprintln!("flags (skip config) {flags:?}");
    assert_eq!(flags[1], IMAGE_FLAGS as i64, "20% masked > 10% allowed");
    assert_eq!(flags[3], IMAGE_FLAGS as i64, "zero weight");
    assert_eq!(flags[4], IMAGE_FLAGS as i64, "bmask_skip_flags 16");
    for i in [0, 2, 5, 6, 7, 8, 9, 10, 11] {
        assert_eq!(flags[i], 0, "object {i}");
    }

    // 3. central_bmask_radius skips cutouts with any bmask bit near the centre (the core
    // and the flag-only disc), extra_mask_flags zeroes the weight under bits 16
    let c3 = config(
        &d,
        "masks-central",
        "exp",
        "central_bmask_radius: 4\nextra_mask_flags: 16\n",
    );
    let mf = run_ok(&c3, &d.join("m3.fits"), &files, &[]);
    let flags = ints(&mf, "flags");
    eprintln!("flags (central config) {flags:?}");
    assert_eq!(flags[0], IMAGE_FLAGS as i64, "masked core");
    assert_eq!(flags[4], IMAGE_FLAGS as i64, "bits at the centre");
    for i in [5, 6, 7, 8, 9, 10, 11] {
        assert_eq!(flags[i], 0, "object {i}");
    }
}

/// Every column but the wall-clock `time_last_fit`.
fn content(path: &Path, ext: &str) -> Vec<(String, String)> {
    let c: Columns = read_table(path, ext).unwrap();
    c.columns()
        .iter()
        .filter(|c| c.name != "time_last_fit")
        .map(|c| (c.name.clone(), format!("{:?}", c.data)))
        .collect()
}

#[test]
fn multiband_output_is_identical_with_one_and_two_threads() {
    let d = tmpdir("threads");
    let mut cfg = three_band_config(31);
    cfg.nobj = 9;
    cfg.npair = 2;
    cfg.epoch_coverage = 0.7;
    cfg.models = vec![SimModel::Exp, SimModel::Dev, SimModel::Gauss];
    let mut scene = Scene::generate(&cfg).unwrap();
    scene.objects[2].mask = Mask::Random { frac: 0.1, bits: 8 };
    let files = write_tile(&scene, &d, "thr").unwrap();
    let c = config(&d, "thr", "exp", "");
    let t1 = d.join("t1.fits");
    let t2 = d.join("t2.fits");
    run_ok(&c, &t1, &files, &["--threads", "1"]);
    run_ok(&c, &t2, &files, &["--threads", "2"]);
    for ext in ["model_fits", "epoch_data", "meta_data"] {
        let (a, b) = (content(&t1, ext), content(&t2, ext));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{ext}");
        }
    }
    // one metadata row per band, naming its MEDS file
    let meta = read_table(&t1, "meta_data").unwrap();
    assert_eq!(meta.nrows(), 3);
    let medsf = meta.get("meds_file").unwrap().as_str().unwrap();
    for (b, p) in files.meds.iter().enumerate() {
        assert_eq!(medsf[b], p.to_string_lossy());
    }
}

/// `(fit - truth) / err` summary of `values` against `truth` with errors `errs`.
fn pull_stats(values: &[f64], truth: &[f64], errs: &[f64]) -> Pulls {
    let v: Vec<f64> = values
        .iter()
        .zip(truth)
        .zip(errs)
        .map(|((x, t), e)| (x - t) / e)
        .collect();
    let n = v.len();
    Pulls {
        n,
        mean: v.iter().sum::<f64>() / n as f64,
        rms: (v.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt(),
        max: v.iter().fold(0.0f64, |a, x| a.max(x.abs())),
    }
}

/// Point sources at their catalogue positions: the PSF template flux (`psf_flux`, per band,
/// SE and coadd) is the truth flux within its reported error.
#[test]
fn point_sources_have_unbiased_psf_fluxes_in_every_band() {
    let d = tmpdir("stars");
    let mut cfg = three_band_config(8);
    cfg.npair = 0;
    cfg.models = vec![SimModel::Gauss];
    cfg.t = (1e-6, 2e-6);
    cfg.cen_offset_max = 0.0;
    let scene = Scene::generate(&cfg).unwrap();
    let files = write_tile(&scene, &d, "stars").unwrap();
    let c = config(&d, "stars", "exp", "");
    let mf = run_ok(&c, &d.join("o.fits"), &files, &[]);
    assert!(ints(&mf, "flags").iter().all(|&f| f == 0));
    let truth: Vec<f64> = scene.objects.iter().flat_map(|o| o.flux.clone()).collect();
    for prefix in ["psf", "coadd_psf"] {
        assert!(ints(&mf, &format!("{prefix}_flags"))
            .iter()
            .all(|&f| f == 0));
        let p = pull_stats(
            &floats(&mf, &format!("{prefix}_flux")),
            &truth,
            &floats(&mf, &format!("{prefix}_flux_err")),
        );
        eprintln!(
            "{prefix}_flux: n {} mean {:+.3} rms {:.3} max {:.2}",
            p.n, p.mean, p.rms, p.max
        );
        assert_eq!(p.n, 48);
        assert!(p.mean.abs() < 0.5, "{prefix}_flux mean pull {}", p.mean);
        assert!(
            (0.6..1.5).contains(&p.rms),
            "{prefix}_flux rms pull {}",
            p.rms
        );
        assert!(p.max < 4.5, "{prefix}_flux max pull {}", p.max);
        // the S/N column is flux / err
        let s2n = floats(&mf, &format!("{prefix}_flux_s2n"));
        let f = floats(&mf, &format!("{prefix}_flux"));
        let e = floats(&mf, &format!("{prefix}_flux_err"));
        for k in 0..s2n.len() {
            assert!((s2n[k] - f[k] / e[k]).abs() < 1e-9 * s2n[k].abs().max(1.0));
        }
    }
}

/// de Vaucouleurs galaxies fitted with `dev`, half of the single-epoch WCSs mirrored
/// (negative Jacobian determinant).
#[test]
fn dev_galaxies_on_mirrored_epochs_recover_the_truth() {
    let d = tmpdir("dev-flip");
    let mut cfg = three_band_config(77);
    cfg.models = vec![SimModel::Dev];
    cfg.flip_parity = true;
    cfg.bands.truncate(2);
    let scene = Scene::generate(&cfg).unwrap();
    assert!(scene.bands[1].epochs[2].det() < 0.0);
    let files = write_tile(&scene, &d, "dev").unwrap();
    let c = config(&d, "dev", "dev", "");
    let mf = run_ok(&c, &d.join("o.fits"), &files, &[]);
    assert!(ints(&mf, "flags").iter().all(|&f| f == 0));
    assert_eq!(repeat(&mf, "dev_pars"), 7);
    check_pulls(&mf, &scene, "dev", &scene.clean_isolated());
}

/// `max_box_size`: objects with larger boxes get BOX_SIZE_TOO_BIG and keep default fit
/// columns; the others are fitted.
#[test]
fn boxes_above_max_box_size_are_flagged() {
    let d = tmpdir("boxes");
    let mut cfg = three_band_config(5);
    cfg.bands.truncate(1);
    cfg.nobj = 12;
    cfg.npair = 0;
    let scene = Scene::generate(&cfg).unwrap();
    let files = write_tile(&scene, &d, "box").unwrap();
    let c = config(&d, "boxes", "exp", "");
    let text = std::fs::read_to_string(&c)
        .unwrap()
        .replace("max_box_size: 2048", "max_box_size: 48");
    std::fs::write(&c, text).unwrap();
    let mf = run_ok(&c, &d.join("o.fits"), &files, &[]);
    let flags = ints(&mf, "flags");
    let exp_flags = ints(&mf, "exp_flags");
    let box_size = ints(&mf, "box_size");
    let mut nbig = 0;
    for (i, o) in scene.objects.iter().enumerate() {
        assert_eq!(box_size[i] as usize, o.box_size);
        if o.box_size > 48 {
            nbig += 1;
            assert_eq!(
                flags[i],
                ngmixer::flags::BOX_SIZE_TOO_BIG as i64,
                "object {i}"
            );
            assert_eq!(
                exp_flags[i],
                ngmixer::flags::NO_ATTEMPT as i64,
                "object {i}"
            );
        } else {
            assert_eq!(flags[i], 0, "object {i}");
        }
    }
    assert!(nbig > 0 && nbig < 12, "both kinds present: {nbig} big");
}

/// A FoF table (blend pairs grouped) written as a standard FITS table in extension 1, and
/// an `--obj-flags` table: FoF ids reach the output, FoF ranges select whole groups, flagged
/// objects get BAD_OBJ and are not fitted.
#[test]
fn fof_file_and_obj_flags_tables_in_extension_one() {
    use ngmixer::sim::{write_table_file, ColData, SimTable};
    let d = tmpdir("fof");
    let scene = Scene::generate(&three_band_config(5)).unwrap();
    let files = write_tile(&scene, &d, "fof").unwrap();
    let n = scene.objects.len();
    let fofid: Vec<i64> = scene
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| o.blend_host.map_or(i as i64, |h| h as i64))
        .collect();
    let mut t = SimTable::new(n);
    t.push("fofid", 1, ColData::I64(fofid.clone())).unwrap();
    t.push(
        "number",
        1,
        ColData::I64(scene.objects.iter().map(|o| o.number).collect()),
    )
    .unwrap();
    let fof = d.join("fof.fits");
    write_table_file(&fof, "fofs", &t).unwrap();
    let c = config(&d, "fof", "exp", "");
    let full = run_ok(
        &c,
        &d.join("full.fits"),
        &files,
        &["--fof-file", fof.to_str().unwrap()],
    );
    assert_eq!(full.nrows(), n);
    // output in ascending fofid, members in MEDS order
    let ids = ints(&full, "id");
    let fofs = ints(&full, "fofid");
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (fofid[i], i));
    for (r, &i) in order.iter().enumerate() {
        assert_eq!(ids[r], scene.objects[i].id);
        assert_eq!(fofs[r], fofid[i]);
    }
    // a range of FoF ids keeps whole groups (group 0 holds object 0 and its companion)
    let part = run_ok(
        &c,
        &d.join("part.fits"),
        &files,
        &["--fof-file", fof.to_str().unwrap(), "--fof-range", "0,3"],
    );
    let want = fofid.iter().filter(|&&f| f <= 3).count();
    assert_eq!(part.nrows(), want);

    let mut t = SimTable::new(2);
    t.push(
        "id",
        1,
        ColData::I64(vec![scene.objects[1].id, scene.objects[4].id]),
    )
    .unwrap();
    t.push("flags", 1, ColData::I32(vec![3, 0])).unwrap();
    let of = d.join("objflags.fits");
    write_table_file(&of, "flags", &t).unwrap();
    let mf = run_ok(
        &c,
        &d.join("of.fits"),
        &files,
        &["--obj-flags", of.to_str().unwrap()],
    );
    let flags = ints(&mf, "flags");
    let obj_flags = ints(&mf, "obj_flags");
    assert_eq!(flags[1], ngmixer::flags::BAD_OBJ as i64);
    assert_eq!(obj_flags[1], 3);
    assert_eq!(flags[4], 0);
    assert_eq!(obj_flags[4], 0);
}

/// Objects with no single-epoch cutout in one band (coadd only) or no cutout at all in one
/// band (`ncutout = 0`) get NO_CUTOUTS; the rest of the tile is fitted.
#[test]
fn missing_cutouts_in_one_band_give_no_cutouts() {
    let d = tmpdir("nocut");
    let mut cfg = three_band_config(12);
    cfg.npair = 0;
    cfg.nobj = 8;
    let mut scene = Scene::generate(&cfg).unwrap();
    for e in 1..scene.bands[1].epochs.len() {
        scene.bands[1].epochs[e].covers[0] = false;
    }
    for e in 0..scene.bands[2].epochs.len() {
        scene.bands[2].epochs[e].covers[1] = false;
    }
    let files = write_tile(&scene, &d, "nocut").unwrap();
    let c = config(&d, "nocut", "exp", "");
    let mf = run_ok(&c, &d.join("o.fits"), &files, &[]);
    let flags = ints(&mf, "flags");
    let no_cutouts = ngmixer::flags::NO_CUTOUTS as i64;
    assert_eq!(flags[0], no_cutouts, "band 1 has only the coadd");
    assert_eq!(flags[1], no_cutouts, "band 2 has no cutout");
    assert!(flags[2..].iter().all(|&f| f == 0), "{flags:?}");
    let nimage_tot = ints(&mf, "nimage_tot");
    assert_eq!(nimage_tot[1], 0);
    assert_eq!(nimage_tot[3 + 2], 0);
    for name in ["exp_flags", "coadd_exp_flags"] {
        let f = ints(&mf, name);
        assert_eq!(&f[..2], &[ngmixer::flags::NO_ATTEMPT as i64; 2], "{name}");
    }
}

/// The composite model: exp+dev galaxies with fracdev 0.2 or 0.8 fitted with `cm` (fracdev
/// prior given inline). fracdev is recovered, shapes have sane pulls, fluxes are within a few
/// percent (the fitted TdByTe is the ratio of the separate dev and exp sizes, not the
/// simulated one, so T and the flux errors are not a pull test), and the cm columns are f4.
#[test]
fn cm_model_recovers_fracdev_shapes_and_fluxes() {
    use ngmixer::backends::meds::ColKind;
    let d = tmpdir("cm");
    let mut cfg = three_band_config(91);
    cfg.models = vec![
        SimModel::Cm {
            fracdev: 0.2,
            tdbyte: 1.0,
        },
        SimModel::Cm {
            fracdev: 0.8,
            tdbyte: 1.0,
        },
    ];
    let scene = Scene::generate(&cfg).unwrap();
    let files = write_tile(&scene, &d, "cm").unwrap();
    let c = config_with(
        &d,
        "cm",
        "cm",
        "",
        "        fracdev:\n            weights: [0.5, 0.5]\n            means: [0.1, 0.8]\n            covars: [0.1, 0.1]\n",
    );
    let mf = run_ok(&c, &d.join("o.fits"), &files, &[]);
    assert!(ints(&mf, "flags").iter().all(|&f| f == 0));
    let clean = scene.clean_isolated();
    for prefix in ["cm", "coadd_cm"] {
        assert!(ints(&mf, &format!("{prefix}_flags"))
            .iter()
            .all(|&f| f == 0));
        assert_eq!(repeat(&mf, &format!("{prefix}_pars")), 8);
        for col in [
            "fracdev",
            "fracdev_noclip",
            "fracdev_err",
            "TdByTe",
            "TdByTe_noclip",
        ] {
            let name = format!("{prefix}_{col}");
            let k = mf.get(&name).unwrap_or_else(|| panic!("no {name}")).kind;
            assert_eq!(k, ColKind::F32, "{name}");
        }
        let fracdev = floats(&mf, &format!("{prefix}_fracdev"));
        let pars = floats(&mf, &format!("{prefix}_pars"));
        for &i in &clean {
            let o = &scene.objects[i];
            let SimModel::Cm { fracdev: fd, .. } = o.model else {
                unreachable!()
            };
            assert!(
                (fracdev[i] - fd).abs() < 0.25,
                "{prefix} object {i}: fracdev {} vs {fd}",
                fracdev[i]
            );
            for b in 0..3 {
                let r = pars[i * 8 + 5 + b] / o.flux[b];
                assert!(
                    (r - 1.0).abs() < 0.1,
                    "{prefix} object {i} band {b}: flux ratio {r}"
                );
            }
        }
        for k in [2, 3] {
            let p = pulls(&mf, &scene, prefix, k, &clean);
            eprintln!(
                "{prefix} g{}: n {} mean {:+.3} rms {:.3} max {:.2}",
                k - 1,
                p.n,
                p.mean,
                p.rms,
                p.max
            );
            assert!(p.mean.abs() < 0.75 && (0.5..1.6).contains(&p.rms) && p.max < 4.5);
        }
    }
}

/// Weight-map options on analytic masks: a bad column in one of two epochs gives
/// `mask_frac = B / (2 B²)`; `symmetrize_weight` adds its 90° rotation (`(2B - 1) / (2 B²)`)
/// and turns a random fraction f into `1 - (1 - f)²`; `max_zero_weight_frac: one-over-side`
/// keeps a cutout with exactly one bad column (`1/B` is not above the limit) and drops one
/// with 10% masked pixels.
#[test]
fn weight_map_options_on_analytic_masks() {
    let d = tmpdir("wopts");
    let mut cfg = three_band_config(23);
    cfg.nobj = 6;
    cfg.npair = 0;
    cfg.bands.truncate(1);
    cfg.box_sizes = vec![48];
    let mut scene = Scene::generate(&cfg).unwrap();
    scene.objects[0].mask = Mask::Column { bits: 1 };
    scene.objects[1].mask = Mask::Random { frac: 0.1, bits: 8 };
    let files = write_tile(&scene, &d, "w").unwrap();
    let b = 48.0f64;
    let run = |name: &str, extra: &str| {
        let c = config(&d, name, "exp", extra);
        run_ok(&c, &d.join(format!("{name}.fits")), &files, &[])
    };
    let mf = run("plain", "");
    let mf_frac = floats(&mf, "mask_frac");
    assert!(ints(&mf, "flags").iter().all(|&f| f == 0));
    assert!(
        (mf_frac[0] - b / (2.0 * b * b)).abs() < 1e-12,
        "{}",
        mf_frac[0]
    );
    assert!((mf_frac[1] - 0.1).abs() < 0.02, "{}", mf_frac[1]);

    let mf = run("sym", "symmetrize_weight: True\n");
    let mf_frac = floats(&mf, "mask_frac");
    assert!(ints(&mf, "flags").iter().all(|&f| f == 0));
    assert!(
        (mf_frac[0] - (2.0 * b - 1.0) / (2.0 * b * b)).abs() < 1e-12,
        "{}",
        mf_frac[0]
    );
    assert!((mf_frac[1] - 0.19).abs() < 0.03, "{}", mf_frac[1]);

    let mf = run("oos", "max_zero_weight_frac: one-over-side\n");
    let flags = ints(&mf, "flags");
    assert_eq!(flags[0], 0);
    assert_eq!(flags[1], IMAGE_FLAGS as i64);
    assert!(flags[2..].iter().all(|&f| f == 0));
}
