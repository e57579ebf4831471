//! The MEDS simulator (`ngmixer::sim`): files read back through the project's MEDS reader with
//! the standard layout, and pixels checked against analytic properties of the truth (flux
//! normalisation, centroid, second moments of Gaussians, PSF stamp moments).

#![cfg(feature = "des-y1")]

use std::path::PathBuf;

use ngmixer::backends::meds::{read_table, CutoutKind, MedsFile};
use ngmixer::gmix::moments::fwhm_to_t;
use ngmixer::sim::{write_tile, BandConfig, Mask, PixelUnits, Scene, SimConfig, SimModel};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ngmixer-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A nearly noise-free tile of Gaussians.
fn quiet_config(units: PixelUnits) -> SimConfig {
    let mut b = vec![BandConfig::new("g", 2), BandConfig::new("r", 3)];
    for x in &mut b {
        x.coadd_noise = 1e-7;
        x.se_noise = (1e-7, 2e-7);
    }
    SimConfig {
        seed: 5,
        nobj: 6,
        npair: 1,
        bands: b,
        models: vec![SimModel::Gauss],
        box_sizes: vec![48, 64],
        flip_parity: true,
        epoch_coverage: 0.7,
        units,
        ..SimConfig::default()
    }
}

#[test]
fn written_meds_files_read_back_with_the_standard_layout() {
    let d = tmpdir("layout");
    let cfg = quiet_config(PixelUnits::SurfaceBrightness);
    let scene = Scene::generate(&cfg).unwrap();
    let files = write_tile(&scene, &d, "t").unwrap();
    assert_eq!(files.meds.len(), 2);
    for (b, path) in files.meds.iter().enumerate() {
        let m = MedsFile::open(path).unwrap();
        assert_eq!(m.size(), scene.objects.len());
        for kind in CutoutKind::ALL {
            assert_eq!(m.has_cutouts(kind), kind != CutoutKind::Ormask, "{kind:?}");
        }
        assert!(m.has_psf());
        assert_eq!(m.image_info().len(), cfg.bands[b].nepoch + 1);
        for (i, o) in scene.objects.iter().enumerate() {
            assert_eq!(m.box_size(i).unwrap(), o.box_size);
            assert_eq!(m.number(i).unwrap(), o.number);
            let ncut = m.ncutout(i).unwrap();
            let covered = scene.bands[b].epochs.iter().filter(|e| e.covers[i]).count();
            assert_eq!(ncut, covered);
            assert!(ncut >= 2, "coadd and at least one epoch");
            for icut in 0..ncut {
                let ci = m.cutout_info(i, icut).unwrap();
                let ep = &scene.bands[b].epochs[ci.file_id as usize];
                assert_eq!([ci.dudrow, ci.dudcol, ci.dvdrow, ci.dvdcol], ep.jac);
                // the catalogue position maps to the cutout centre
                let (r, c) = ep.pixel_of(o.v, o.u);
                assert!((ci.orig_row - r).abs() < 1e-9 && (ci.orig_col - c).abs() < 1e-9);
                assert!((ci.cutout_row - (r - ci.orig_start_row as f64)).abs() < 1e-9);
                let half = (o.box_size / 2) as f64;
                assert!((ci.cutout_row - half).abs() <= 0.5 + 1e-9);
                assert!((ci.cutout_col - half).abs() <= 0.5 + 1e-9);
                // the seg map owns the centre pixel
                let mut seg = Vec::new();
                m.cutout_i32(CutoutKind::Seg, i, icut, &mut seg).unwrap();
                let (rr, cc) = (
                    ci.cutout_row.round() as usize,
                    ci.cutout_col.round() as usize,
                );
                assert_eq!(seg[rr * o.box_size + cc] as i64, o.number);
                // PSF stamp: unit sum, centred on psf_cutout_row/col, T of the truth
                let mut psf = Vec::new();
                let (pr, pc) = m.psf(i, icut, &mut psf).unwrap();
                assert_eq!((pr, pc), (ep.psf_dim, ep.psf_dim));
                let (r0, c0) = m.psf_center(i, icut).unwrap().unwrap();
                let jac = m.jacobian(i, icut).unwrap().with_cen(r0, c0);
                let (mut s, mut sv, mut su, mut svv, mut suu) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for k in 0..pr * pc {
                    let (v, u) = jac.vu((k / pc) as f64, (k % pc) as f64);
                    let w = psf[k];
                    s += w;
                    sv += w * v;
                    su += w * u;
                    svv += w * v * v;
                    suu += w * u * u;
                }
                assert!((s - 1.0).abs() < 2e-3, "psf sum {s}");
                assert!((sv / s).abs() < 2e-3 && (su / s).abs() < 2e-3);
                let t = (svv + suu) / s;
                assert!(
                    (t / ep.psf.t() - 1.0).abs() < 0.02,
                    "psf T {t} vs {}",
                    ep.psf.t()
                );
            }
        }
    }
    let truth = read_table(&files.truth, "truth").unwrap();
    assert_eq!(truth.nrows(), scene.objects.len());
    let pars = truth.get("pars").unwrap();
    assert_eq!(pars.repeat, 7);
    assert_eq!(
        truth.get("blend_host").unwrap().as_int().unwrap()[6],
        0,
        "the companion sits next to object 0"
    );
}

/// Flux, centroid and size of each noise-free cutout from its pixels, against the truth:
/// `Σ pixel × area = flux` (surface brightness) or `Σ pixel = flux` (flux per pixel), the
/// centroid is the true centre and, for Gaussians, `T = T_gal + T_psf`.
#[test]
fn pixels_have_the_truth_flux_centre_and_size() {
    for units in [PixelUnits::SurfaceBrightness, PixelUnits::FluxPerPixel] {
        let d = tmpdir(&format!("pixels-{units:?}"));
        let mut cfg = quiet_config(units);
        cfg.npair = 0;
        cfg.t = (0.1, 0.4);
        let scene = Scene::generate(&cfg).unwrap();
        let files = write_tile(&scene, &d, "t").unwrap();
        for (b, path) in files.meds.iter().enumerate() {
            let m = MedsFile::open(path).unwrap();
            for (i, o) in scene.objects.iter().enumerate() {
                for icut in 0..m.ncutout(i).unwrap() {
                    let ci = m.cutout_info(i, icut).unwrap();
                    let ep = &scene.bands[b].epochs[ci.file_id as usize];
                    let jac = m.jacobian(i, icut).unwrap();
                    let mut im = Vec::new();
                    let (nr, nc) = m.cutout(CutoutKind::Image, i, icut, &mut im).unwrap();
                    let area = jac.area();
                    let fac = match units {
                        PixelUnits::SurfaceBrightness => area,
                        PixelUnits::FluxPerPixel => 1.0,
                    };
                    let (mut s, mut sv, mut su, mut svv, mut suu) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for k in 0..nr * nc {
                        let (v, u) = jac.vu((k / nc) as f64, (k % nc) as f64);
                        let w = im[k] * fac;
                        s += w;
                        sv += w * v;
                        su += w * u;
                        svv += w * v * v;
                        suu += w * u * u;
                    }
                    let f = o.flux[b];
                    assert!((s / f - 1.0).abs() < 1e-3, "flux {s} vs {f}");
                    let (cv, cu) = (sv / s, su / s);
                    assert!(
                        (cv - o.cen_offset[0]).abs() < 1e-3 && (cu - o.cen_offset[1]).abs() < 1e-3,
                        "centroid ({cv}, {cu}) vs {:?}",
                        o.cen_offset
                    );
                    let t = (svv + suu) / s - cv * cv - cu * cu;
                    let t_true = o.t + ep.psf.t();
                    assert!((t / t_true - 1.0).abs() < 0.01, "T {t} vs {t_true}");
                }
            }
        }
    }
}

#[test]
fn same_seed_same_files_other_seed_other_pixels() {
    let cfg = SimConfig {
        nobj: 4,
        npair: 1,
        ..SimConfig::default()
    };
    let a = Scene::generate(&cfg).unwrap();
    let b = Scene::generate(&cfg).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.render_band(1).unwrap(), b.render_band(1).unwrap());
    let c = Scene::generate(&SimConfig { seed: 2, ..cfg }).unwrap();
    assert_ne!(a.objects[0].flux, c.objects[0].flux);
    assert_ne!(
        a.render_band(0).unwrap().image,
        c.render_band(0).unwrap().image
    );
}

#[test]
fn masks_set_weight_zero_and_bmask_bits() {
    let mut cfg = SimConfig {
        nobj: 5,
        bands: vec![BandConfig::new("r", 2)],
        box_sizes: vec![32],
        ..SimConfig::default()
    };
    cfg.psf_dims = vec![21];
    let mut scene = Scene::generate(&cfg).unwrap();
    scene.objects[0].mask = Mask::Core {
        radius: 2.5,
        bits: 2,
    };
    scene.objects[1].mask = Mask::Random {
        frac: 0.25,
        bits: 8,
    };
    scene.objects[2].mask = Mask::Column { bits: 1 };
    scene.objects[3].mask = Mask::ZeroWeight;
    scene.objects[4].mask = Mask::FlagOnly {
        radius: 3.0,
        bits: 16,
    };
    let d = scene.render_band(0).unwrap();
    let n = 32 * 32;
    let ncut = 3;
    let cut = |i: usize, c: usize| (i * ncut + c) * n..(i * ncut + c + 1) * n;
    for c in 0..ncut {
        // core: about π 2.5² ≈ 20 pixels, centred
        let z0 = d.weight[cut(0, c)].iter().filter(|&&w| w == 0.0).count();
        assert!((15..=29).contains(&z0), "core {z0}");
        assert!(d.weight[cut(0, c)]
            .iter()
            .zip(&d.bmask[cut(0, c)])
            .all(|(&w, &b)| (w == 0.0) == (b == 2)));
        let z1 = d.weight[cut(1, c)].iter().filter(|&&w| w == 0.0).count() as f64 / n as f64;
        assert!((z1 - 0.25).abs() < 0.06, "random {z1}");
        let z2 = d.weight[cut(2, c)].iter().filter(|&&w| w == 0.0).count();
        assert_eq!(z2, if c == 1 { 32 } else { 0 }, "column in epoch 1 only");
        assert!(d.weight[cut(3, c)].iter().all(|&w| w == 0.0));
        assert!(d.weight[cut(4, c)].iter().all(|&w| w > 0.0));
        let f4 = d.bmask[cut(4, c)].iter().filter(|&&b| b == 16).count();
        assert!((20..=40).contains(&f4), "flag-only {f4}");
    }
}

#[test]
fn bad_configs_are_errors() {
    let bad = [
        SimConfig {
            nobj: 0,
            ..SimConfig::default()
        },
        SimConfig {
            box_sizes: vec![33],
            ..SimConfig::default()
        },
        SimConfig {
            psf_dims: vec![24],
            ..SimConfig::default()
        },
        SimConfig {
            bands: vec![],
            ..SimConfig::default()
        },
        SimConfig {
            g_max: 1.0,
            ..SimConfig::default()
        },
        SimConfig {
            flux: (f64::NAN, 1.0),
            ..SimConfig::default()
        },
    ];
    for c in bad {
        assert!(Scene::generate(&c).is_err(), "{c:?}");
    }
    // the default PSF FWHM range is sane
    assert!(fwhm_to_t(SimConfig::default().psf_fwhm.0) > 0.2);
}

#[test]
fn an_object_on_single_epoch_images_must_be_on_the_coadd() {
    let cfg = SimConfig {
        nobj: 3,
        ..SimConfig::default()
    };
    let mut scene = Scene::generate(&cfg).unwrap();
    scene.bands[0].epochs[0].covers[1] = false;
    assert!(scene.render_band(0).is_err());
    // off every image of the band: ncutout 0
    for ep in &mut scene.bands[0].epochs {
        ep.covers[1] = false;
    }
    let d = scene.render_band(0).unwrap();
    match d.object_data.get("ncutout") {
        Some(ngmixer::sim::ColData::I64(v)) => assert_eq!(v[1], 0),
        other => panic!("ncutout column {other:?}"),
    }
}
