//! `ngmixer-meds-make-nbrs-data` end to end: identical tables (columns, types, rows, header
//! cards) to those the Python ngmixer wrote for the e2e MOF config; the plot; default paths;
//! bad inputs give clear errors and leave no output; the project simulator with larger blends
//! against an independent O(n²) box test with union-find.

#![cfg(feature = "des-y1")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ngmixer::backends::meds::{read_table, read_table_num, ColumnData, Columns};
use ngmixer::sim::{write_meds, BandConfig, ColData, Scene, SimConfig};

const BIN: &str = env!("CARGO_BIN_EXE_ngmixer-meds-make-nbrs-data");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nbrs-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// All header cards of HDU `num` (1-based) except the structural ones cfitsio adds.
fn cards(path: &Path, num: i32) -> Vec<String> {
    use fitsio::sys as ffi;
    use std::ffi::CString;
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let mut f = std::ptr::null_mut();
    let mut s = 0;
    let mut out = Vec::new();
    // SAFETY: plain cfitsio calls on a handle opened here and closed at the end.
    unsafe {
        ffi::ffopen(&mut f, c.as_ptr(), 0, &mut s);
        assert_eq!(s, 0, "open {}", path.display());
        let mut t = 0;
        ffi::ffmahd(f, num, &mut t, &mut s);
        let (mut nk, mut more) = (0, 0);
        ffi::ffghsp(f, &mut nk, &mut more, &mut s);
        for k in 1..=nk {
            let mut buf = [0 as std::ffi::c_char; 81];
            ffi::ffgrec(f, k, buf.as_mut_ptr(), &mut s);
            let card = std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned();
            out.push(card);
        }
        ffi::ffclos(f, &mut s);
    }
    assert_eq!(s, 0);
    out
}

fn same_table(a: &Columns, b: &Columns) {
    assert_eq!(a.nrows(), b.nrows());
    let an: Vec<&str> = a.names().collect();
    let bn: Vec<&str> = b.names().collect();
    assert_eq!(an, bn);
    for (x, y) in a.columns().iter().zip(b.columns()) {
        assert_eq!(x.kind, y.kind, "type of {}", x.name);
        assert_eq!(x.repeat, y.repeat, "repeat of {}", x.name);
        match (&x.data, &y.data) {
            (ColumnData::Int(p), ColumnData::Int(q)) => assert_eq!(p, q, "column {}", x.name),
            _ => panic!("column {} is not integer", x.name),
        }
    }
}

#[test]
fn e2e_tables_identical_to_python() {
    let d = tmpdir("e2e");
    // the layout the reference was made in: ../config, ../data, run from a scratch dir
    for sub in ["config", "data", "work"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::copy(
        root().join("tests/data/e2e/run-e2e03mof.yaml"),
        d.join("config/run-e2e03mof.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        root().join("tests/data/meds/sim-e2e-meds.fits"),
        d.join("data/sim-e2e-meds.fits"),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let out = Command::new(BIN)
        .current_dir(d.join("work"))
        .args([
            "../config/run-e2e03mof.yaml",
            "../data/sim-e2e-meds.fits",
            "--nbrs-file",
            "e2e03mof-nbrs.fits",
            "--fof-file",
            "e2e03mof-fofs.fits",
        ])
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("49 FoF groups (largest 5)"), "{stdout}");
    eprintln!("make-nbrs-data on the e2e tile: {secs:.3} s");
    for name in ["e2e03mof-nbrs.fits", "e2e03mof-fofs.fits"] {
        let got = d.join("work").join(name);
        let want = root().join("tests/data/nbrs").join(name);
        same_table(
            &read_table_num(&got, 2).unwrap(),
            &read_table_num(&want, 2).unwrap(),
        );
        assert_eq!(cards(&got, 2), cards(&want, 2), "{name} header");
        // primary HDU: the same structural cards (the reference also has two COMMENT lines)
        let structural = |c: Vec<String>| -> Vec<String> {
            c.into_iter()
                .filter(|k| !k.starts_with("COMMENT"))
                .collect()
        };
        assert_eq!(
            structural(cards(&got, 1)),
            structural(cards(&want, 1)),
            "{name} primary"
        );
    }
    // the plot, where ngmixer writes it
    let png = std::fs::read(d.join("work/e2e03mof-fofs.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn default_paths_under_the_output_dir() {
    let d = tmpdir("defaults");
    let cfg = d.join("run-e2e03mof.yaml");
    std::fs::copy(root().join("tests/data/e2e/run-e2e03mof.yaml"), &cfg).unwrap();
    let meds = d.join("DES0347-5540_r1234p01_r_meds-y3v02.fits");
    std::os::unix::fs::symlink(root().join("tests/data/meds/sim-e2e-meds.fits"), &meds).unwrap();
    let od = d.join("out");
    let out = Command::new(BIN)
        .env("NGMIXER_OUTPUT_DIR", &od)
        .arg(&cfg)
        .arg(&meds)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = od.join("e2e03mof/output-nbrs");
    for f in [
        "DES0347-5540_r1234p01-e2e03mof-nbrslist.fits",
        "DES0347-5540_r1234p01-e2e03mof-nbrsfofs.fits",
        "DES0347-5540_r1234p01-e2e03mof-nbrsfofs.png",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // without the variable and without paths: a clear error and nothing written
    let out = Command::new(BIN)
        .env_remove("NGMIXER_OUTPUT_DIR")
        .current_dir(&d)
        .arg(&cfg)
        .arg(&meds)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NGMIXER_OUTPUT_DIR"));
    let _ = std::fs::remove_dir_all(&d);
}

/// Run the program expecting failure; returns stderr and checks that nothing was written.
fn fails(d: &Path, cfg: &Path, meds: &Path) -> String {
    let out = Command::new(BIN)
        .current_dir(d)
        .arg(cfg)
        .arg(meds)
        .args(["--nbrs-file", "n.fits", "--fof-file", "f.fits"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    for f in ["n.fits", "f.fits", "f.png"] {
        assert!(!d.join(f).exists(), "{f} written despite the error");
    }
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temporary files left");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_inputs_are_clear_errors_without_output() {
    let d = tmpdir("bad");
    let good_cfg = d.join("run-e2e03mof.yaml");
    std::fs::copy(root().join("tests/data/e2e/run-e2e03mof.yaml"), &good_cfg).unwrap();
    let meds = root().join("tests/data/meds/sim-e2e-meds.fits");

    // wrong run name
    let wrong = d.join("run-other.yaml");
    std::fs::copy(&good_cfg, &wrong).unwrap();
    let e = fails(&d, &wrong, &meds);
    assert!(
        e.contains("e2e03mof") && e.contains("does not match"),
        "{e}"
    );
    // no nbrs section
    let text = std::fs::read_to_string(&good_cfg).unwrap();
    let cut = text.split("\nnbrs:").next().unwrap().to_string();
    let nonbrs = d.join("sub/run-e2e03mof.yaml");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(&nonbrs, &cut).unwrap();
    let e = fails(&d, &nonbrs, &meds);
    assert!(e.contains("nbrs"), "{e}");
    // bad buff_type
    std::fs::write(
        &nonbrs,
        text.replace("buff_type: \"min\"", "buff_type: \"mid\""),
    )
    .unwrap();
    let e = fails(&d, &nonbrs, &meds);
    assert!(e.contains("buff_type"), "{e}");
    // unreadable / missing MEDS
    let e = fails(&d, &good_cfg, &d.join("nope.fits"));
    assert!(e.contains("nope.fits"), "{e}");
    let junk = d.join("junk.fits");
    std::fs::write(&junk, b"not a fits file").unwrap();
    let e = fails(&d, &good_cfg, &junk);
    assert!(e.contains("junk.fits"), "{e}");
    // MEDS without a number column, and with numbers out of order
    let cfg = SimConfig {
        nobj: 6,
        bands: vec![BandConfig::new("r", 1)],
        ..SimConfig::default()
    };
    let scene = Scene::generate(&cfg).unwrap();
    let mut md = scene.render_band(0).unwrap();
    md.object_data.cols.retain(|c| c.0 != "number");
    let nonum = d.join("nonumber.fits");
    write_meds(&nonum, &md).unwrap();
    let e = fails(&d, &good_cfg, &nonum);
    assert!(e.contains("'number'") && e.contains("nonumber.fits"), "{e}");
    let mut md = scene.render_band(0).unwrap();
    for c in md.object_data.cols.iter_mut() {
        if c.0 == "number" {
            match &mut c.2 {
                ColData::I64(v) => v.swap(2, 3),
                ColData::I32(v) => v.swap(2, 3),
                _ => panic!("number column type"),
            }
        }
    }
    let swapped = d.join("swapped.fits");
    write_meds(&swapped, &md).unwrap();
    let e = fails(&d, &good_cfg, &swapped);
    assert!(e.contains("row 2") && e.contains("number 4"), "{e}");
    // an output that is an input is refused
    let out = Command::new(BIN)
        .current_dir(&d)
        .arg(&good_cfg)
        .arg(&meds)
        .arg("--nbrs-file")
        .arg(&meds)
        .args(["--fof-file", "f.fits"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is an input"));
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------------------
// unseen data: the simulator with dense fields

fn brute_force_fofs(od: &Columns, buff_frac: f64) -> (Vec<Vec<i64>>, Vec<usize>) {
    let int = |n: &str| match &od.get(n).unwrap().data {
        ColumnData::Int(v) => v.clone(),
        _ => panic!("{n}"),
    };
    let ncut = od.get("orig_start_row").unwrap().repeat;
    let (size, r0, c0) = (
        int("box_size"),
        int("orig_start_row"),
        int("orig_start_col"),
    );
    let n = size.len();
    let mut nbrs = vec![Vec::new(); n];
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            i = p[i];
        }
        i
    }
    for i in 0..n {
        for j in 0..n {
            let (ri, ci, rj, cj) = (r0[i * ncut], c0[i * ncut], r0[j * ncut], c0[j * ncut]);
            // buff_type min
            let buff = size[i].min(size[j]) as f64 * buff_frac;
            let reach = |a: i64, sa: i64, b: i64, sb: i64| {
                (a + sa - b) as f64 >= buff && (b + sb - a) as f64 >= buff
            };
            if i != j && reach(ri, size[i], rj, size[j]) && reach(ci, size[i], cj, size[j]) {
                nbrs[i].push(j as i64 + 1);
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let comp = (0..n).map(|i| root(&mut parent, i)).collect();
    (nbrs, comp)
}

#[test]
fn simulated_dense_tiles_match_brute_force() {
    let d = tmpdir("sim");
    let mut largest_seen = 0;
    // dense jittered grids with blends: FoFs of up to 7-8 members, three box-size mixes
    let cases: Vec<(u64, f64, Vec<usize>)> = vec![
        (9, 9.8, vec![32, 48, 64]),
        (10, 10.0, vec![32, 48, 64]),
        (6, 10.5, vec![24, 48]),
    ];
    for (seed, spacing, boxes) in cases {
        let cfg = SimConfig {
            seed,
            nobj: 64,
            npair: 16,
            bands: vec![BandConfig::new("i", 1)],
            box_sizes: boxes,
            spacing,
            ..SimConfig::default()
        };
        let scene = Scene::generate(&cfg).unwrap();
        let meds = d.join(format!("tile{seed}_i_meds.fits"));
        write_meds(&meds, &scene.render_band(0).unwrap()).unwrap();
        let conf = d.join("run-simnbrs.yaml");
        let buff_frac = 0.5;
        std::fs::write(
            &conf,
            format!(
                "run: simnbrs\nnbrs:\n  buff_type: min\n  buff_frac: {buff_frac}\n  \
                 maxsize_to_replace: -1\n  new_maxsize: 48\n  check_seg: false\n"
            ),
        )
        .unwrap();
        let (nf, ff) = (
            d.join(format!("n{seed}.fits")),
            d.join(format!("f{seed}.fits")),
        );
        let out = Command::new(BIN)
            .arg(&conf)
            .arg(&meds)
            .arg("--nbrs-file")
            .arg(&nf)
            .arg("--fof-file")
            .arg(&ff)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let od = read_table(&meds, "object_data").unwrap();
        let (want_nbrs, comp) = brute_force_fofs(&od, buff_frac);
        let nt = read_table_num(&nf, 2).unwrap();
        let ft = read_table_num(&ff, 2).unwrap();
        let ints = |c: &Columns, n: &str| match &c.get(n).unwrap().data {
            ColumnData::Int(v) => v.clone(),
            _ => panic!(),
        };
        let (num, nbr) = (ints(&nt, "number"), ints(&nt, "nbr_number"));
        for (i, want) in want_nbrs.iter().enumerate() {
            let mut got: Vec<i64> = num
                .iter()
                .zip(&nbr)
                .filter(|(a, _)| **a == i as i64 + 1)
                .map(|(_, b)| *b)
                .collect();
            got.sort_unstable();
            let want = if want.is_empty() {
                vec![-1]
            } else {
                want.clone()
            };
            assert_eq!(got, want, "seed {seed}, object {}", i + 1);
        }
        let (fofid, fnum) = (ints(&ft, "fofid"), ints(&ft, "number"));
        assert_eq!(fnum, (1..=comp.len() as i64).collect::<Vec<_>>());
        for i in 0..comp.len() {
            for j in 0..comp.len() {
                assert_eq!(
                    comp[i] == comp[j],
                    fofid[i] == fofid[j],
                    "seed {seed} {i} {j}"
                );
            }
        }
        let mut ids = fofid.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids, (0..ids.len() as i64).collect::<Vec<_>>());
        let largest = ids
            .iter()
            .map(|k| fofid.iter().filter(|x| *x == k).count())
            .max()
            .unwrap();
        eprintln!(
            "seed {seed}: {} objects, {} FoFs, largest {largest}",
            comp.len(),
            ids.len()
        );
        largest_seen = largest_seen.max(largest);
    }
    assert!(
        largest_seen >= 7,
        "largest FoF {largest_seen}: not dense enough"
    );
    let _ = std::fs::remove_dir_all(&d);
}
