//! `ngmixit` with the composite model `cm` over the synthetic e2e MEDS tile
//! (`tests/data/cm/run-e2e01cm.yaml`): the cm columns exist with ngmixer's names, types
//! (the five fracdev/TdByTe columns are `f4`) and defaults, and the fits agree with the
//! simulation truth (`sim-e2e-truth.fits`, all galaxies exponential) and with the exp fits of
//! the Python ngmixer run (`e2e01max.fits`).

#![cfg(feature = "des-y1")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use ngmixer::backends::meds::{read_table, ColKind, Columns};
use ngmixer::config::{from_yaml_str, FittingConfig};
use ngmixer::fitter::from_config::fitter_settings;
use ngmixer::fitter::GalModel;
use ngmixer::output::Kind;

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cm-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

fn col<'a>(c: &'a Columns, name: &str) -> &'a ngmixer::backends::meds::Column {
    c.get(name).unwrap_or_else(|| panic!("no column {name}"))
}

fn floats(c: &Columns, name: &str) -> Vec<f64> {
    col(c, name).as_float().unwrap().to_vec()
}

fn ints(c: &Columns, name: &str) -> Vec<i64> {
    col(c, name).as_int().unwrap().to_vec()
}

#[test]
fn ngmixit_cm_run_against_truth() {
    let dir = tmpdir("e2e");
    let out = dir.join("e2e01cm.fits");
    let o = Command::new(env!("CARGO_BIN_EXE_ngmixit"))
        .args([
            "--seed",
            "12345",
            data("cm/run-e2e01cm.yaml").to_str().unwrap(),
            out.to_str().unwrap(),
            data("meds/sim-e2e-meds.fits").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ngmixit failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mf = read_table(&out, "model_fits").unwrap();
    let names: Vec<&str> = mf.columns().iter().map(|c| c.name.as_str()).collect();

    // names and order of the model columns, SE then coadd
    for front in ["cm", "coadd_cm"] {
        let want: Vec<String> = [
            "flags",
            "pars",
            "pars_cov",
            "g",
            "g_cov",
            "max_flags",
            "max_pars",
            "max_pars_cov",
            "s2n_w",
            "chi2per",
            "dof",
            "flags_r",
            "s2n_r",
            "T_r",
            "psf_T_r",
            "fracdev",
            "fracdev_noclip",
            "fracdev_err",
            "TdByTe",
            "TdByTe_noclip",
        ]
        .iter()
        .map(|x| format!("{front}_{x}"))
        .collect();
        let i0 = names.iter().position(|n| *n == want[0]).unwrap();
        let got: Vec<String> = names[i0..i0 + want.len()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(got, want);
        for x in [
            "fracdev",
            "fracdev_noclip",
            "fracdev_err",
            "TdByTe",
            "TdByTe_noclip",
        ] {
            let c = col(&mf, &format!("{front}_{x}"));
            assert_eq!(c.kind, ColKind::F32, "{front}_{x} is f4 in ngmixer");
            assert_eq!(c.repeat, 1);
        }
        assert_eq!(col(&mf, &format!("{front}_pars")).repeat, 6);
        assert_eq!(col(&mf, &format!("{front}_pars_cov")).repeat, 36);
        assert_eq!(col(&mf, &format!("{front}_flags")).kind, ColKind::I32);
    }
    // 56 columns of e2e01max plus 5 cm columns for each of SE and coadd
    assert_eq!(names.len(), 66);

    // truth by id
    let truth = read_table(data("meds/sim-e2e-truth.fits"), "").unwrap_or_else(|_| {
        ngmixer::backends::meds::read_table_num(data("meds/sim-e2e-truth.fits"), 2).unwrap()
    });
    let tid = ints(&truth, "id");
    let tflux = floats(&truth, "flux");
    let tg1 = floats(&truth, "g1");
    let tg2 = floats(&truth, "g2");
    let by_id: HashMap<i64, usize> = tid.iter().enumerate().map(|(i, &id)| (id, i)).collect();

    // the Python ngmixer exp fits of the same tile
    let pyref = read_table(data("e2e/e2e01max.fits"), "model_fits").unwrap();
    let py_id = ints(&pyref, "id");
    let py_pars = floats(&pyref, "exp_pars");
    let py_flags = ints(&pyref, "flags");
    let py_by_id: HashMap<i64, usize> = py_id.iter().enumerate().map(|(i, &id)| (id, i)).collect();

    let ids = ints(&mf, "id");
    let flags = ints(&mf, "flags");
    let area = 0.263f64 * 0.263;
    for front in ["cm", "coadd_cm"] {
        let cmf = ints(&mf, &format!("{front}_flags"));
        let pars = floats(&mf, &format!("{front}_pars"));
        let fd = floats(&mf, &format!("{front}_fracdev"));
        let fdn = floats(&mf, &format!("{front}_fracdev_noclip"));
        let fde = floats(&mf, &format!("{front}_fracdev_err"));
        let tdte = floats(&mf, &format!("{front}_TdByTe"));
        let tdten = floats(&mf, &format!("{front}_TdByTe_noclip"));
        let (mut fr, mut pr, mut g_fit, mut g_true, mut fds) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut nok = 0;
        let mut nretry = 0;
        for r in 0..mf.nrows() {
            let py = py_by_id[&ids[r]];
            assert_eq!(flags[r], py_flags[py], "flags of id {}", ids[r]);
            if flags[r] != 0 {
                // no fit: ngmixer's defaults
                assert_eq!(cmf[r], 1 << 30);
                assert_eq!(fd[r], -9999.0);
                assert_eq!(tdten[r], -9999.0);
                continue;
            }
            assert_eq!(cmf[r], 0, "{front} id {}", ids[r]);
            nok += 1;
            // clipping to fracdev_range [-1, 1.5], TdByTe_range [0, 1e12]; f4 rounding
            let f4 = |x: f64| x as f32 as f64;
            // (or clipped to [0, 1] after a range error in the composite fit)
            let clipped = fdn[r].clamp(-1.0, 1.5);
            if fd[r] != f4(clipped) {
                assert_eq!(fd[r], f4(clipped.clamp(0.0, 1.0)));
                nretry += 1;
            }
            assert_eq!(tdte[r], f4(tdten[r].clamp(0.0, 1e12)));
            assert!(fde[r] > 0.0 && fde[r].is_finite());
            assert!(tdten[r] > 0.0);
            let t = by_id[&ids[r]];
            fr.push(pars[r * 6 + 5] / (tflux[t] * area));
            pr.push(pars[r * 6 + 5] / py_pars[py * 6 + 5]);
            g_fit.extend([pars[r * 6 + 2], pars[r * 6 + 3]]);
            g_true.extend([tg1[t], tg2[t]]);
            fds.push(fd[r]);
        }
        let mfr = median(fr);
        let mpr = median(pr);
        let cg = corr(&g_fit, &g_true);
        let mfd = median(fds.clone());
        let n_small = fds.iter().filter(|f| f.abs() < 0.5).count();
        eprintln!(
            "{front}: {nok} fits; median flux/truth {mfr:.3}, median flux/(python exp flux) \
             {mpr:.3}, corr(g, g_true) {cg:.3}, median fracdev {mfd:.3}, |fracdev|<0.5: \
             {n_small}/{}, range-error retries {nretry}",
            fds.len()
        );
        assert_eq!(nok, 65);
        // all galaxies are exponential: fluxes like the exp fits, fracdev mostly small
        assert!((mfr - 1.0).abs() < 0.06, "{mfr}");
        assert!((mpr - 1.0).abs() < 0.03, "{mpr}");
        assert!(cg > 0.9, "{cg}");
        assert!(mfd.abs() < 0.25, "{mfd}");
        assert!(n_small * 10 >= fds.len() * 7, "{n_small}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Config mapping: `model_pars.cm.fracdev` from a FITS table (ngmixer's file format) or
/// inline, the `max_pars` keys and the top-level `fracdev_grid`; a missing prior is an error
/// naming the key.
#[test]
fn cm_config_mapping() {
    let base = std::fs::read_to_string(data("cm/run-e2e01cm.yaml")).unwrap();
    let cfg: FittingConfig = from_yaml_str(&base, "run-e2e01cm.yaml").unwrap();
    let s = fitter_settings(&cfg, 1).unwrap();
    let GalModel::Cm(cm) = &s.models[0].0 else {
        panic!("not cm")
    };
    assert!(s.models[0].1.is_some());
    assert_eq!(cm.fracdev_range, [-1.0, 1.5]);
    assert_eq!(cm.tdbyte_range, [0.0, 1e12]);
    assert!(!cm.use_fracdev_grid);
    assert_eq!(cm.fracdev_grid.len(), 22);
    assert_eq!(cm.fracdev_grid[0], -1.0);
    assert_eq!(*cm.fracdev_grid.last().unwrap(), 1.1);
    assert!((cm.fracdev_grid[10] - 0.0).abs() < 1e-15);
    let inline = cm.fracdev_prior.clone().unwrap();
    assert_eq!(inline.weights(), &[0.6, 0.4]);
    assert_eq!(inline.means(), &[0.0, 1.0]);

    // schema: the five f4 columns after psf_T_r, for SE and coadd
    let specs = s.model_fits_specs();
    for front in ["cm", "coadd_cm"] {
        let i = specs
            .iter()
            .position(|c| c.name == format!("{front}_psf_T_r"))
            .unwrap();
        let next: Vec<(&str, Kind)> = specs[i + 1..i + 6]
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        let want = [
            "fracdev",
            "fracdev_noclip",
            "fracdev_err",
            "TdByTe",
            "TdByTe_noclip",
        ];
        for (k, (name, kind)) in next.iter().enumerate() {
            assert_eq!(*name, format!("{front}_{}", want[k]));
            assert_eq!(*kind, Kind::F32);
        }
    }

    // the same prior from a FITS table with columns weights, means, covars
    let dir = tmpdir("cfg");
    let path = dir.join("fracdev-prior.fits");
    {
        use fitsio::tables::{ColumnDataType, ColumnDescription};
        let mut f = fitsio::FitsFile::create(&path).open().unwrap();
        let cols: Vec<_> = ["weights", "means", "covars"]
            .iter()
            .map(|n| {
                ColumnDescription::new(*n)
                    .with_type(ColumnDataType::Double)
                    .create()
                    .unwrap()
            })
            .collect();
        let hdu = f.create_table("fracdev", &cols).unwrap();
        hdu.write_col(&mut f, "weights", &[0.6, 0.4]).unwrap();
        hdu.write_col(&mut f, "means", &[0.0, 1.0]).unwrap();
        hdu.write_col(&mut f, "covars", &[0.25, 0.25]).unwrap();
    }
    let a = base.find("        fracdev:\n").unwrap();
    let file_cfg = format!(
        "{}        fracdev:\n            file: \"{}\"\n",
        &base[..a],
        path.display()
    );
    let cfg2: FittingConfig = from_yaml_str(&file_cfg, "file.yaml").unwrap();
    let s2 = fitter_settings(&cfg2, 1).unwrap();
    let GalModel::Cm(cm2) = &s2.models[0].0 else {
        panic!("not cm")
    };
    let from_file = cm2.fracdev_prior.clone().unwrap();
    for x in [-0.7, 0.0, 0.3, 1.2] {
        assert_eq!(
            from_file.lnprob_nd(&[x]).unwrap(),
            inline.lnprob_nd(&[x]).unwrap()
        );
    }

    // a missing file names the key
    let missing = file_cfg.replace(path.to_str().unwrap(), "/nonexistent/fracdev.fits");
    let cfg3: FittingConfig = from_yaml_str(&missing, "missing.yaml").unwrap();
    let e = fitter_settings(&cfg3, 1).unwrap_err().to_string();
    assert!(e.contains("model_pars.cm.fracdev.file"), "{e}");

    // no fracdev prior at all: rejected by validation or by the mapping, naming the key
    let nofd = &base[..a];
    let e = match from_yaml_str::<FittingConfig>(nofd, "nofd.yaml") {
        Err(e) => e.to_string(),
        Ok(c) => fitter_settings(&c, 1).unwrap_err().to_string(),
    };
    assert!(e.contains("fracdev"), "{e}");

    // use_fracdev_grid and the default grid
    let grid_cfg = base
        .replace("use_fracdev_grid: False", "use_fracdev_grid: True")
        .replace(
            "fracdev_grid:\n    min: -1.0\n    max: 1.1\n    num: 22\n",
            "",
        );
    let cfg4: FittingConfig = from_yaml_str(&grid_cfg, "grid.yaml").unwrap();
    let s4 = fitter_settings(&cfg4, 1).unwrap();
    let GalModel::Cm(cm4) = &s4.models[0].0 else {
        panic!("not cm")
    };
    assert!(cm4.use_fracdev_grid);
    assert_eq!(
        cm4.fracdev_grid,
        ngmixer::fitting::cm::linspace(-1.0, 1.5, 26)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
