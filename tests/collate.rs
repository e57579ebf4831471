//! Collation of chunk outputs (spec §8.3, §11 items 51, 57–60): chunks run with
//! `ngmixit --fof-range` collate to the single run of the whole range; incomplete sets are
//! refused with named problems and nothing written; DES derived columns and blinding.
#![cfg(feature = "des-y1")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ngmixer::backends::meds::{read_table, ColumnData, Columns};
use ngmixer::collate::{
    blind_table, chunk_ranges, collated_name, derive_fields, pick_band_rows, range_from_name,
    Blinding, Chunk, CollateError, CollateOptions, Collator, DesFields, Problem,
};
use ngmixer::config::ConcatType;
use ngmixer::output::fits::{write_hdus, Hdu};
use ngmixer::output::{ColSpec, Kind, Table};

const CONFIG: &str = "tests/data/e2e/run-e2e01max.yaml";
const MEDS: &str = "tests/data/meds/sim-e2e-meds.fits";
const NOBJ: usize = 66;

struct Fixture {
    dir: PathBuf,
    whole: PathBuf,
    chunks: Vec<PathBuf>,
    overlap: PathBuf,
}

fn run_ngmixit(range: (i64, i64), out: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let st = Command::new(env!("CARGO_BIN_EXE_ngmixit"))
        .current_dir(root)
        .arg("--fof-range")
        .arg(format!("{},{}", range.0, range.1))
        .args(["--seed", "7", CONFIG])
        .arg(out)
        .arg(MEDS)
        .output()
        .expect("ngmixit runs");
    assert!(
        st.status.success(),
        "ngmixit {range:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("collate-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let whole = dir.join("whole.fits");
        run_ngmixit((0, NOBJ as i64 - 1), &whole);
        let mut chunks = Vec::new();
        for r in chunk_ranges(NOBJ, 22) {
            let p = dir.join(format!("tile-run-{:06}-{:06}.fits", r.0, r.1));
            run_ngmixit(r, &p);
            chunks.push(p);
        }
        let overlap = dir.join("tile-run-000040-000065.fits");
        run_ngmixit((40, 65), &overlap);
        Fixture {
            dir,
            whole,
            chunks,
            overlap,
        }
    })
}

/// A fresh directory for one test's outputs.
fn out_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("collate-out")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dir_is_empty(d: &Path) -> bool {
    std::fs::read_dir(d).unwrap().next().is_none()
}

fn named(paths: &[PathBuf]) -> Vec<Chunk> {
    paths.iter().map(Chunk::from_name).collect()
}

fn assert_same_columns(a: &Columns, b: &Columns, except: &[&str], what: &str) {
    assert_eq!(a.nrows(), b.nrows(), "{what}: rows");
    let na: Vec<&str> = a.names().collect();
    let nb: Vec<&str> = b.names().collect();
    assert_eq!(na, nb, "{what}: column names");
    for c in a.columns() {
        if except.contains(&c.name.as_str()) {
            continue;
        }
        let d = b.get(&c.name).unwrap();
        assert_eq!(c.kind, d.kind, "{what}: kind of {}", c.name);
        assert_eq!(c.repeat, d.repeat, "{what}: repeat of {}", c.name);
        assert_eq!(c.dims, d.dims, "{what}: dims of {}", c.name);
        assert_eq!(c.data, d.data, "{what}: values of {}", c.name);
    }
}

fn floats<'a>(c: &'a Columns, name: &str) -> &'a [f64] {
    c.get(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_float()
        .unwrap()
}

fn ints<'a>(c: &'a Columns, name: &str) -> &'a [i64] {
    c.get(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_int()
        .unwrap()
}

fn tform(path: &Path, hdu: &str, col: &str) -> String {
    let mut f = fitsio::FitsFile::open(path).unwrap();
    let h = f.hdu(hdu).unwrap();
    let n: i64 = h.read_key(&mut f, "TFIELDS").unwrap();
    for i in 1..=n {
        let name: String = h.read_key(&mut f, &format!("TTYPE{i}")).unwrap();
        if name == col {
            return h.read_key(&mut f, &format!("TFORM{i}")).unwrap();
        }
    }
    panic!("no column {col}");
}

#[test]
fn chunk_ranges_and_names() {
    assert_eq!(chunk_ranges(66, 22), vec![(0, 21), (22, 43), (44, 65)]);
    assert_eq!(chunk_ranges(10, 4), vec![(0, 3), (4, 7), (8, 9)]);
    assert_eq!(chunk_ranges(0, 4), vec![]);
    assert_eq!(
        range_from_name(Path::new("w/chunk01/DES0347-5540-run1-000022-000043.fits")),
        Some((22, 43))
    );
    assert_eq!(
        range_from_name(Path::new("DES0347-5540-y1a1-100-199.fits")),
        Some((100, 199))
    );
    assert_eq!(range_from_name(Path::new("whole.fits")), None);
    assert_eq!(
        collated_name(Path::new("o"), "T", "r", true),
        PathBuf::from("o/T-r-blind.fits")
    );
    assert_eq!(
        collated_name(Path::new("o"), "T", "r", false),
        PathBuf::from("o/T-r.fits")
    );
}

#[test]
fn three_chunks_collate_to_the_single_run() {
    let f = fixture();
    let d = out_dir("three");
    let out = d.join("tile-run.fits");
    let rep = Collator::new(named(&f.chunks), CollateOptions::default())
        .expect_total(NOBJ)
        .collate(&out)
        .unwrap();
    assert!(rep.is_complete(), "{}", rep.describe());
    assert_eq!(rep.nrows, NOBJ);
    assert!(!rep.fof_units);
    assert_eq!(rep.output.as_deref(), Some(out.as_path()));
    for hdu in ["model_fits", "epoch_data", "meta_data", "githashes"] {
        let a = read_table(&f.whole, hdu).unwrap();
        let b = read_table(&out, hdu).unwrap();
        assert_same_columns(&a, &b, &["time_last_fit"], hdu);
    }
    // the file layout is kept: one-element arrays stay `1J`, matrices keep TDIM
    assert_eq!(tform(&out, "model_fits", "psf_flags"), "1J");
    assert_eq!(tform(&out, "model_fits", "flags"), "J");
    // ids in chunk order
    let m = read_table(&out, "model_fits").unwrap();
    let w = read_table(&f.whole, "model_fits").unwrap();
    assert_eq!(ints(&m, "id"), ints(&w, "id"));
    // verify agrees
    let v = Collator::new(named(&f.chunks), CollateOptions::default())
        .expect_total(NOBJ)
        .verify();
    assert!(v.is_complete(), "{}", v.describe());
    assert_eq!(v.nrows, NOBJ);
    assert_eq!(
        v.chunks.iter().map(|c| c.ids.unwrap()).collect::<Vec<_>>(),
        vec![
            (ints(&w, "id")[0], ints(&w, "id")[21]),
            (ints(&w, "id")[22], ints(&w, "id")[43]),
            (ints(&w, "id")[44], ints(&w, "id")[65])
        ]
    );
    // an existing output is kept without clobber
    let again = Collator::new(named(&f.chunks), CollateOptions::default())
        .collate(&out)
        .unwrap();
    assert!(again.kept_existing && again.output.is_none());
}

fn refused(chunks: Vec<Chunk>, total: Option<usize>, name: &str) -> (String, Vec<Problem>) {
    let d = out_dir(name);
    let out = d.join("tile-run.fits");
    let mut c = Collator::new(chunks.clone(), CollateOptions::default());
    if let Some(n) = total {
        c = c.expect_total(n);
    }
    let e = c.collate(&out).expect_err("refused");
    assert!(dir_is_empty(&d), "{name}: something was written");
    let msg = e.to_string();
    let CollateError::Incomplete(rep) = e else {
        panic!("{name}: {msg}")
    };
    // verify reports the same problems
    let mut c = Collator::new(chunks, CollateOptions::default());
    if let Some(n) = total {
        c = c.expect_total(n);
    }
    assert_eq!(c.verify().problems, rep.problems, "{name}: verify");
    (msg, rep.problems)
}

#[test]
fn missing_chunk_is_refused() {
    let f = fixture();
    let gone = f.dir.join("tile-run-000022-000043-gone.fits");
    let chunks = vec![
        Chunk::from_name(&f.chunks[0]),
        Chunk::with_range(&gone, (22, 43)),
        Chunk::from_name(&f.chunks[2]),
    ];
    let (msg, probs) = refused(chunks, Some(NOBJ), "missing");
    assert!(msg.contains(&gone.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(matches!(&probs[0], Problem::Missing { path } if *path == gone));
    // the hole it leaves is named too
    assert!(msg.contains("indices 22-43 are in no chunk"), "{msg}");

    // a chunk not even listed: a gap between its neighbours
    let (msg, probs) = refused(
        named(&[f.chunks[0].clone(), f.chunks[2].clone()]),
        Some(NOBJ),
        "unlisted",
    );
    assert_eq!(probs.len(), 1, "{msg}");
    assert!(
        msg.contains("indices 22-43 are in no chunk")
            && msg.contains(&f.chunks[0].display().to_string())
            && msg.contains(&f.chunks[2].display().to_string()),
        "{msg}"
    );
    // the last chunk missing: a gap at the end, known only from the total
    let (msg, _) = refused(named(&f.chunks[..2]), Some(NOBJ), "tail");
    assert!(msg.contains("indices 44-65 are in no chunk"), "{msg}");
}

#[test]
fn duplicated_chunk_is_refused() {
    let f = fixture();
    // the same file listed twice
    let (msg, probs) = refused(
        named(&[
            f.chunks[0].clone(),
            f.chunks[1].clone(),
            f.chunks[1].clone(),
            f.chunks[2].clone(),
        ]),
        Some(NOBJ),
        "twice",
    );
    assert!(matches!(probs[0], Problem::ListedTwice { .. }), "{msg}");
    assert!(msg.contains(&f.chunks[1].display().to_string()), "{msg}");

    // a copy under another name, ranges unknown: the repeated ids name both files
    let d = out_dir("dup-src");
    let copy = d.join("copy.fits");
    std::fs::copy(&f.chunks[1], &copy).unwrap();
    let chunks: Vec<Chunk> = [&f.chunks[0], &f.chunks[1], &copy, &f.chunks[2]]
        .iter()
        .map(|p| Chunk::new(*p))
        .collect();
    let (msg, probs) = refused(chunks, None, "dup");
    let w = read_table(&f.whole, "model_fits").unwrap();
    let id22 = ints(&w, "id")[22];
    match &probs[..] {
        [Problem::Duplicate {
            path,
            other,
            key,
            count,
            ids,
        }] => {
            assert_eq!(path, &copy);
            assert_eq!(other, &f.chunks[1]);
            assert_eq!(*key, "id");
            assert_eq!(*count, 22);
            assert_eq!(ids[0], id22);
        }
        p => panic!("{p:?}"),
    }
    assert!(
        msg.contains(&copy.display().to_string())
            && msg.contains(&f.chunks[1].display().to_string())
            && msg.contains("22 objects already in chunk")
            && msg.contains(&format!("id {id22}")),
        "{msg}"
    );
}

#[test]
fn overlapping_chunk_is_refused() {
    let f = fixture();
    // ranges from the names: 40-65 overlaps 22-43
    let (msg, probs) = refused(
        named(&[f.chunks[0].clone(), f.chunks[1].clone(), f.overlap.clone()]),
        Some(NOBJ),
        "overlap",
    );
    assert!(
        matches!(&probs[0], Problem::RangeOverlap { path, range: (40, 65), other_range: (22, 43), .. } if *path == f.overlap),
        "{msg}"
    );
    assert!(
        msg.contains(&f.overlap.display().to_string())
            && msg.contains("range 40-65")
            && msg.contains("range 22-43"),
        "{msg}"
    );
    // without ranges: the 4 repeated objects (rows 40..43) are named
    let chunks: Vec<Chunk> = [&f.chunks[0], &f.chunks[1], &f.overlap]
        .iter()
        .map(|p| Chunk::new(*p))
        .collect();
    let (msg, probs) = refused(chunks, None, "overlap-ids");
    let w = read_table(&f.whole, "model_fits").unwrap();
    let want: Vec<i64> = ints(&w, "id")[40..44].to_vec();
    match &probs[..] {
        [Problem::Duplicate {
            path, count, ids, ..
        }] => {
            assert_eq!(path, &f.overlap);
            assert_eq!(*count, 4);
            let mut w = want.clone();
            w.sort_unstable();
            assert_eq!(ids, &w);
        }
        p => panic!("{p:?}"),
    }
    assert!(msg.contains("4 objects already in chunk"), "{msg}");
}

#[test]
fn truncated_mislabelled_and_foreign_chunks_are_refused() {
    let f = fixture();
    let d = out_dir("bad-src");
    // truncated
    let trunc = d.join("tile-run-000022-000043.fits");
    let bytes = std::fs::read(&f.chunks[1]).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let (msg, probs) = refused(
        named(&[f.chunks[0].clone(), trunc.clone(), f.chunks[2].clone()]),
        Some(NOBJ),
        "trunc",
    );
    assert!(
        matches!(&probs[0], Problem::Unreadable { path, .. } if *path == trunc),
        "{msg}"
    );
    assert!(msg.contains(&trunc.display().to_string()), "{msg}");
    // a chunk whose content is not its range (0-21 labelled 22-43 and 44-65 missing)
    let (msg, _) = refused(
        vec![
            Chunk::from_name(&f.chunks[0]),
            Chunk::with_range(&f.chunks[1], (22, 50)),
            Chunk::with_range(&f.chunks[2], (51, 65)),
        ],
        Some(NOBJ),
        "mislabel",
    );
    assert!(
        msg.contains("22 objects, the range has 29") && msg.contains("the range has 15"),
        "{msg}"
    );
    // the Python original's output of the whole tile: another program version (githashes)
    // and other meta_data, refused next to our chunks
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/e2e/e2e01max.fits");
    let (msg, probs) = refused(
        vec![Chunk::new(&f.chunks[0]), Chunk::new(&py)],
        None,
        "foreign",
    );
    assert!(
        probs.iter().any(
            |p| matches!(p, Problem::Inconsistent { hdu: "githashes", path, .. } if *path == py)
        ),
        "{msg}"
    );
    assert!(msg.contains(&py.display().to_string()), "{msg}");
}

#[test]
fn schema_difference_is_refused() {
    let f = fixture();
    let d = out_dir("schema-src");
    // rewrite chunk 2 with one model column fewer
    let p = d.join("tile-run-000022-000043.fits");
    let mut hdus_owned: Vec<(String, Table)> = Vec::new();
    for hdu in ["model_fits", "epoch_data", "meta_data", "githashes"] {
        let c = read_table(&f.chunks[1], hdu).unwrap();
        let mut t = ngmixer::output::convert::table_from_columns(&c);
        if hdu == "model_fits" {
            let specs: Vec<ColSpec> = t
                .specs()
                .into_iter()
                .filter(|s| s.name != "exp_T_r")
                .collect();
            let mut u = Table::new(specs);
            for r in 0..t.nrows() {
                u.push_default();
                for col in t.columns() {
                    if col.name != "exp_T_r" {
                        u.set_named(r, &col.name, t.get(r, &col.name).unwrap())
                            .unwrap();
                    }
                }
            }
            t = u;
        }
        hdus_owned.push((hdu.to_string(), t));
    }
    let hdus: Vec<Hdu> = hdus_owned.iter().map(|(n, t)| Hdu::new(n, t)).collect();
    write_hdus(&p, &hdus).unwrap();
    let (msg, probs) = refused(
        named(&[f.chunks[0].clone(), p.clone(), f.chunks[2].clone()]),
        Some(NOBJ),
        "schema",
    );
    assert!(
        probs
            .iter()
            .any(|x| matches!(x, Problem::Schema { hdu: "model_fits", path, .. } if *path == p)),
        "{msg}"
    );
    assert!(msg.contains("no column 'exp_T_r'"), "{msg}");
}

#[test]
fn skip_errors_skips_and_lists() {
    let f = fixture();
    let d = out_dir("skip");
    let gone = f.dir.join("tile-run-000022-000043-gone.fits");
    let trunc = d.join("trunc.fits");
    let bytes = std::fs::read(&f.chunks[2]).unwrap();
    std::fs::write(&trunc, &bytes[..1000]).unwrap();
    let out = d.join("tile-run.fits");
    let opts = CollateOptions {
        skip_errors: true,
        ..CollateOptions::default()
    };
    let chunks = vec![
        Chunk::from_name(&f.chunks[0]),
        Chunk::with_range(&gone, (22, 43)),
        Chunk::with_range(&trunc, (44, 65)),
    ];
    let rep = Collator::new(chunks.clone(), opts.clone())
        .expect_total(NOBJ)
        .collate(&out)
        .unwrap();
    assert!(!rep.is_complete());
    assert!(rep.problems.is_empty());
    assert_eq!(rep.skipped_chunks(), vec![gone.as_path(), trunc.as_path()]);
    let text = rep.describe();
    assert!(
        text.contains("skipped: indices 22-65 are in no chunk"),
        "{text}"
    );
    assert_eq!(rep.nrows, 22);
    let m = read_table(&out, "model_fits").unwrap();
    let w = read_table(&f.whole, "model_fits").unwrap();
    assert_eq!(ints(&m, "id"), &ints(&w, "id")[..22]);
    assert_eq!(
        rep.chunks.iter().map(|c| c.used).collect::<Vec<_>>(),
        vec![true, false, false]
    );
    // verify never skips
    let v = Collator::new(chunks, opts).expect_total(NOBJ).verify();
    assert_eq!(v.problems.len(), 3, "{}", v.describe());
}

/// The DES columns of the collated e2e chunks, checked against the spec's formulas applied
/// by hand to the raw `exp_pars`/`exp_pars_cov` and `psf_flux` of the single run.
#[test]
fn des_derived_columns_follow_the_formulas() {
    let f = fixture();
    let d = out_dir("des");
    let out = d.join("tile-run.fits");
    let opts = CollateOptions {
        concat_type: ConcatType::ConcatDes,
        models: vec!["exp".into()],
        bands: vec!["i".into()],
        ..CollateOptions::default()
    };
    let rep = Collator::new(named(&f.chunks), opts)
        .expect_total(NOBJ)
        .collate(&out)
        .unwrap();
    assert!(rep.is_complete() && !rep.blinded);
    let m = read_table(&out, "model_fits").unwrap();
    let w = read_table(&f.whole, "model_fits").unwrap();
    let meta = read_table(&out, "meta_data").unwrap();
    let zp = floats(&meta, "magzp_ref")[0];
    let names: Vec<&str> = m.names().collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    // placement: psf_mag before psf_flux_s2n; flux..T_s2n after pars_cov; weight after g_cov
    assert_eq!(pos("psf_mag") + 1, pos("psf_flux_s2n"));
    let pc = pos("exp_pars_cov");
    let after: Vec<&str> = names[pc + 1..pc + 9].to_vec();
    assert_eq!(
        after,
        [
            "exp_flux",
            "exp_flux_cov",
            "exp_flux_s2n",
            "exp_mag",
            "exp_logsb",
            "exp_T",
            "exp_T_err",
            "exp_T_s2n"
        ]
    );
    assert_eq!(pos("exp_g_cov") + 1, pos("exp_weight"));
    for pre in ["coadd_exp_max", "coadd_exp", "exp_max"] {
        for x in ["flux", "mag", "flux_s2n", "logsb", "T", "T_err", "T_s2n"] {
            assert!(names.contains(&format!("{pre}_{x}").as_str()), "{pre}_{x}");
        }
    }
    // `_weight` only where there is a `g_cov`
    assert!(names.contains(&"coadd_exp_weight") && !names.contains(&"exp_max_weight"));
    assert_eq!(pos("coadd_psf_flux_s2n") + 1, pos("coadd_psf_mag"));
    // one band: scalars
    assert_eq!(m.get("exp_flux").unwrap().repeat, 1);
    assert_eq!(tform(&out, "model_fits", "exp_mag"), "D");

    let pars = floats(&w, "exp_pars");
    let cov = floats(&w, "exp_pars_cov");
    let flags = ints(&w, "exp_flags");
    let psf_flux = floats(&w, "psf_flux");
    let psf_flags = ints(&w, "psf_flags");
    let mut checked = 0;
    for r in [0usize, 1, 23, 47, 65] {
        assert_eq!(flags[r], 0, "row {r} fitted");
        let p = &pars[r * 6..r * 6 + 6];
        let c = &cov[r * 36..r * 36 + 36];
        let flux = p[5];
        let var = c[5 * 6 + 5];
        let close = |a: f64, b: f64, what: &str| {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "row {r} {what}: {a} vs {b}"
            )
        };
        close(floats(&m, "exp_flux")[r], flux, "flux");
        close(floats(&m, "exp_flux_cov")[r], var, "flux_cov");
        close(floats(&m, "exp_flux_s2n")[r], flux / var.sqrt(), "flux_s2n");
        close(
            floats(&m, "exp_mag")[r],
            zp - 2.5 * flux.max(0.001).log10(),
            "mag",
        );
        close(
            floats(&m, "exp_logsb")[r],
            (flux / p[4]).abs().log10(),
            "logsb",
        );
        close(floats(&m, "exp_T")[r], p[4], "T");
        close(floats(&m, "exp_T_err")[r], c[4 * 6 + 4].sqrt(), "T_err");
        close(
            floats(&m, "exp_T_s2n")[r],
            p[4] / c[4 * 6 + 4].sqrt(),
            "T_s2n",
        );
        let gcov = floats(&w, "exp_g_cov");
        close(
            floats(&m, "exp_weight")[r],
            1.0 / (2.0 * 0.22 * 0.22 + gcov[r * 4] + gcov[r * 4 + 3]),
            "weight",
        );
        assert_eq!(psf_flags[r], 0);
        close(
            floats(&m, "psf_mag")[r],
            zp - 2.5 * psf_flux[r].max(0.001).log10(),
            "psf_mag",
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
    // the original columns are untouched
    for name in ["exp_pars", "exp_pars_cov", "psf_flux", "id"] {
        assert_eq!(
            m.get(name).unwrap().data,
            w.get(name).unwrap().data,
            "{name}"
        );
    }
    // epoch rows: a band letter before band_num, no coadd rows
    let e = read_table(&out, "epoch_data").unwrap();
    let en: Vec<&str> = e.names().collect();
    let bi = en.iter().position(|x| *x == "band").unwrap();
    assert_eq!(en[bi + 1], "band_num");
    assert!(e
        .get("band")
        .unwrap()
        .as_str()
        .unwrap()
        .iter()
        .all(|b| b == "i"));
    let we = read_table(&f.whole, "epoch_data").unwrap();
    let kept = ints(&we, "cutout_index")
        .iter()
        .filter(|&&c| c >= 0)
        .count();
    assert_eq!(e.nrows(), kept);
    assert!(ints(&e, "cutout_index").iter().all(|&c| c >= 0));
}

fn f8(name: &str, shape: &[usize]) -> ColSpec {
    ColSpec::new(name, Kind::F64, shape, 0.0)
}

/// Flagged rows get the sentinels; two bands keep arrays; hand-computed values.
#[test]
fn des_sentinels_and_two_bands() {
    let mut t = Table::new(vec![
        ColSpec::new("id", Kind::I64, &[], 0.0),
        ColSpec::new("psf_flags", Kind::I32, &[2], 0.0),
        f8("psf_flux", &[2]),
        f8("psf_flux_err", &[2]),
        f8("psf_flux_s2n", &[2]),
        ColSpec::new("gauss_flags", Kind::I32, &[], 0.0),
        f8("gauss_pars", &[7]),
        f8("gauss_pars_cov", &[7, 7]),
        f8("gauss_g", &[2]),
        f8("gauss_g_cov", &[2, 2]),
    ]);
    let mut cov = vec![0.0; 49];
    for i in 0..7 {
        cov[i * 7 + i] = (i + 1) as f64 * 0.01;
    }
    cov[5 * 7 + 6] = 0.002;
    cov[6 * 7 + 5] = 0.002;
    for (r, fl) in [(0usize, 0.0), (1, 4.0)] {
        t.push_default();
        t.set_named(r, "id", &[r as f64 + 10.0]).unwrap();
        t.set_named(r, "psf_flags", &[0.0, fl]).unwrap();
        t.set_named(r, "psf_flux", &[100.0, -3.0]).unwrap();
        t.set_named(r, "gauss_flags", &[fl]).unwrap();
        t.set_named(r, "gauss_pars", &[0.1, -0.1, 0.2, 0.1, 2.0, 50.0, 0.0005])
            .unwrap();
        t.set_named(r, "gauss_pars_cov", &cov).unwrap();
        t.set_named(r, "gauss_g_cov", &[0.01, 0.0, 0.0, 0.02])
            .unwrap();
    }
    let zp = [30.0, 29.5];
    let o = DesFields {
        concat: ConcatType::ConcatDes,
        models: &["gauss".to_string()],
        magzp: &zp,
        shape_noise: 0.22,
    };
    let d = derive_fields(&t, &o).unwrap();
    // row 0, band 0: flux 50, var 0.06; band 1: flux 0.0005 -> clipped to 0.001 in the mag
    assert_eq!(d.get(0, "gauss_flux").unwrap(), &[50.0, 0.0005]);
    assert_eq!(
        d.get(0, "gauss_flux_cov").unwrap(),
        &[0.06, 0.002, 0.002, 0.07]
    );
    let mag = d.get(0, "gauss_mag").unwrap();
    assert!((mag[0] - (30.0 - 2.5 * 50f64.log10())).abs() < 1e-12);
    assert!((mag[1] - (29.5 + 7.5)).abs() < 1e-12); // 29.5 - 2.5 log10(0.001)
    let s2n = d.get(0, "gauss_flux_s2n").unwrap();
    assert!((s2n[0] - 50.0 / 0.06f64.sqrt()).abs() < 1e-12);
    assert!((s2n[1] - 0.0005 / 0.07f64.sqrt()).abs() < 1e-15);
    let lsb = d.get(0, "gauss_logsb").unwrap();
    assert!((lsb[0] - 25f64.log10()).abs() < 1e-12);
    assert_eq!(d.get(0, "gauss_T").unwrap(), &[2.0]);
    assert!((d.get(0, "gauss_T_err").unwrap()[0] - 0.05f64.sqrt()).abs() < 1e-15);
    assert!((d.get(0, "gauss_weight").unwrap()[0] - 1.0 / (0.0968 + 0.03)).abs() < 1e-12);
    let pm = d.get(0, "psf_mag").unwrap();
    assert!((pm[0] - 25.0).abs() < 1e-12);
    assert!((pm[1] - (29.5 + 7.5)).abs() < 1e-12); // negative flux clipped to 0.001
                                                   // row 1: flagged model and flagged PSF band 1
    assert_eq!(d.get(1, "gauss_flux").unwrap(), &[-9999.0, -9999.0]);
    assert_eq!(d.get(1, "gauss_flux_cov").unwrap(), &[-9999.0; 4]);
    assert_eq!(d.get(1, "gauss_flux_s2n").unwrap(), &[0.0, 0.0]);
    assert_eq!(d.get(1, "gauss_mag").unwrap(), &[-9999.0, -9999.0]);
    assert_eq!(d.get(1, "gauss_logsb").unwrap(), &[-9999.0, -9999.0]);
    assert_eq!(d.get(1, "gauss_T").unwrap(), &[-9999.0]);
    assert_eq!(d.get(1, "gauss_T_err").unwrap(), &[9999.0]);
    assert_eq!(d.get(1, "gauss_T_s2n").unwrap(), &[-9999.0]);
    assert_eq!(d.get(1, "gauss_weight").unwrap(), &[0.0]);
    let pm = d.get(1, "psf_mag").unwrap();
    assert!((pm[0] - 25.0).abs() < 1e-12);
    assert_eq!(pm[1], -9999.0);
    // two bands: arrays
    assert_eq!(d.column("gauss_mag").unwrap().shape, vec![2]);
    assert_eq!(d.column("gauss_flux_cov").unwrap().shape, vec![2, 2]);

    // epochs: coadd rows (cutout_index < 0) dropped, band letters
    let mut e = Table::new(vec![
        ColSpec::new("id", Kind::I64, &[], 0.0),
        ColSpec::new("band_num", Kind::I16, &[], 0.0),
        ColSpec::new("cutout_index", Kind::I32, &[], 0.0),
    ]);
    for (r, (b, ci)) in [(0.0, 1.0), (1.0, -1.0), (1.0, 2.0)].iter().enumerate() {
        e.push_default();
        e.set_named(r, "band_num", &[*b]).unwrap();
        e.set_named(r, "cutout_index", &[*ci]).unwrap();
    }
    let bands = ["r".to_string(), "z".to_string()];
    let p = pick_band_rows(&e, &bands, true).unwrap();
    assert_eq!(p.nrows(), 2);
    assert_eq!(p.column("band").unwrap().strs, vec!["r", "z"]);
    assert_eq!(p.columns()[1].name, "band");
    assert!(pick_band_rows(&e, &bands[..1], true).is_err());
}

/// A synthetic metacal chunk: `mcal_g`, `mcal_pars`, a sheared `mcal_g_1p`, `mcal_flags`.
fn write_mcal_chunk(path: &Path, ids: std::ops::Range<i64>) -> Table {
    let mut m = Table::new(vec![
        ColSpec::new("id", Kind::I64, &[], 0.0),
        ColSpec::new("number", Kind::I32, &[], 0.0),
        ColSpec::new("fofid", Kind::I64, &[], 0.0),
        ColSpec::new("flags", Kind::I32, &[], 0.0),
        ColSpec::new("mcal_flags", Kind::I32, &[], 0.0),
        f8("mcal_pars", &[6]),
        f8("mcal_pars_cov", &[6, 6]),
        f8("mcal_g", &[2]),
        f8("mcal_g_cov", &[2, 2]),
        f8("mcal_g_1p", &[2]),
    ]);
    for (r, id) in ids.enumerate() {
        m.push_default();
        let g = (0.02 * (r as f64 + 1.0), -0.03 * (r as f64 + 1.0));
        m.set_named(r, "id", &[id as f64]).unwrap();
        m.set_named(r, "number", &[id as f64 + 1.0]).unwrap();
        m.set_named(r, "fofid", &[-9999.0]).unwrap();
        m.set_named(r, "mcal_flags", &[if r == 1 { 2.0 } else { 0.0 }])
            .unwrap();
        m.set_named(r, "mcal_pars", &[0.0, 0.0, g.0, g.1, 1.5, 80.0])
            .unwrap();
        let mut c = vec![0.0; 36];
        for i in 0..6 {
            c[i * 7] = 0.01;
        }
        m.set_named(r, "mcal_pars_cov", &c).unwrap();
        m.set_named(r, "mcal_g", &[g.0, g.1]).unwrap();
        m.set_named(r, "mcal_g_cov", &[0.01, 0.0, 0.0, 0.01])
            .unwrap();
        m.set_named(r, "mcal_g_1p", &[g.0 + 0.01, g.1]).unwrap();
    }
    let mut e = Table::new(vec![
        ColSpec::new("id", Kind::I64, &[], 0.0),
        ColSpec::new("band_num", Kind::I16, &[], 0.0),
        ColSpec::new("cutout_index", Kind::I32, &[], 0.0),
    ]);
    e.push_default();
    e.set_named(0, "cutout_index", &[1.0]).unwrap();
    let mut meta = Table::new(vec![ColSpec::new("magzp_ref", Kind::F32, &[], 0.0)]);
    meta.push_default();
    meta.set_named(0, "magzp_ref", &[30.0]).unwrap();
    let gh = ngmixer::run::files::githash_table();
    write_hdus(
        path,
        &[
            Hdu::new("model_fits", &m),
            Hdu::new("epoch_data", &e),
            Hdu::new("meta_data", &meta),
            Hdu::new("githashes", &gh),
        ],
    )
    .unwrap();
    m
}

#[test]
fn blinding_changes_the_noshear_mcal_shears_and_noblind_disables_it() {
    let d = out_dir("blind");
    let src = out_dir("blind-src");
    let c0 = src.join("t-r-0-2.fits");
    let c1 = src.join("t-r-3-5.fits");
    let m0 = write_mcal_chunk(&c0, 0..3);
    let m1 = write_mcal_chunk(&c1, 3..6);
    let factor = 1.07;
    let opts = CollateOptions {
        concat_type: ConcatType::ConcatMetacalDes,
        bands: vec!["i".into()],
        blinding_configured: true,
        blinding: Some(Blinding::from_factor(factor)),
        ..CollateOptions::default()
    };
    assert!(opts.blinds());
    let out = collated_name(&d, "t", "r", opts.blinds());
    assert!(out.to_string_lossy().ends_with("t-r-blind.fits"));
    let rep = Collator::new(named(&[c0.clone(), c1.clone()]), opts.clone())
        .expect_total(6)
        .collate(&out)
        .unwrap();
    assert!(rep.blinded && rep.is_complete(), "{}", rep.describe());
    let b = read_table(&out, "model_fits").unwrap();
    let g = floats(&b, "mcal_g");
    let p = floats(&b, "mcal_pars");
    let g1p = floats(&b, "mcal_g_1p");
    for (k, src) in [(0usize, &m0), (3, &m1)] {
        for r in 0..3 {
            let row = k + r;
            let g0 = src.get(r, "mcal_g").unwrap();
            let flagged = r == 1;
            // by hand: |g'| = tanh(f atanh|g|), same direction
            let a = g0[0].hypot(g0[1]);
            let s = (factor * a.atanh()).tanh() / a;
            let want = if flagged {
                [g0[0], g0[1]]
            } else {
                [g0[0] * s, g0[1] * s]
            };
            for i in 0..2 {
                assert!((g[row * 2 + i] - want[i]).abs() < 1e-15, "row {row}");
                assert!((p[row * 6 + 2 + i] - want[i]).abs() < 1e-15, "row {row}");
                assert_eq!(g1p[row * 2 + i], src.get(r, "mcal_g_1p").unwrap()[i]);
            }
            if !flagged {
                assert!((g[row * 2] - g0[0]).abs() > 1e-6, "row {row} changed");
            }
            // the other parameters are not blinded
            for i in [0usize, 1, 4, 5] {
                assert_eq!(p[row * 6 + i], src.get(r, "mcal_pars").unwrap()[i]);
            }
        }
    }
    // metacal-des derives the mcal columns (mcal_mag etc.)
    assert!(b.get("mcal_mag").is_some() && b.get("mcal_T").is_some());
    assert!(b.get("mcal_max_mag").is_none());

    // noblind: shears as fitted, no suffix
    let nb = CollateOptions {
        noblind: true,
        ..opts.clone()
    };
    assert!(!nb.blinds());
    let out2 = collated_name(&d, "t", "r", nb.blinds());
    assert!(out2.to_string_lossy().ends_with("t-r.fits"));
    let rep = Collator::new(named(&[c0.clone(), c1.clone()]), nb)
        .collate(&out2)
        .unwrap();
    assert!(!rep.blinded);
    let u = read_table(&out2, "model_fits").unwrap();
    let ug = floats(&u, "mcal_g");
    for r in 0..3 {
        assert_eq!(&ug[r * 2..r * 2 + 2], m0.get(r, "mcal_g").unwrap());
        assert_eq!(&ug[6 + r * 2..6 + r * 2 + 2], m1.get(r, "mcal_g").unwrap());
    }
    // everything else is the same in both files
    for c in u.columns() {
        if !["mcal_g", "mcal_pars"].contains(&c.name.as_str()) {
            assert_eq!(Some(&c.data), b.get(&c.name).map(|x| &x.data), "{}", c.name);
        }
    }
    if let ColumnData::Float(v) = &u.get("mcal_pars").unwrap().data {
        assert_eq!(v[2], m0.get(0, "mcal_pars").unwrap()[2]);
    }

    // blinding configured, no factor given: refused, nothing written
    let d3 = out_dir("blind-nofactor");
    let e = Collator::new(
        named(&[c0.clone(), c1.clone()]),
        CollateOptions {
            blinding: None,
            ..opts.clone()
        },
    )
    .collate(&d3.join("x.fits"))
    .unwrap_err();
    assert!(matches!(e, CollateError::Config(_)), "{e}");
    assert!(dir_is_empty(&d3));
    // plain concat never blinds
    let plain = CollateOptions {
        concat_type: ConcatType::Concat,
        ..opts
    };
    assert!(!plain.blinds());
}

#[test]
fn blinding_transform() {
    let b = Blinding::from_factor(1.1);
    let (g1, g2) = b.apply(0.3, -0.4);
    let a: f64 = 0.5;
    let want = (1.1 * a.atanh()).tanh();
    assert!((g1.hypot(g2) - want).abs() < 1e-15);
    assert!((g2 / g1 - (-0.4 / 0.3)).abs() < 1e-12);
    assert_eq!(b.apply(0.0, 0.0), (0.0, 0.0));
    assert_eq!(b.apply(-9999.0, -9999.0), (-9999.0, -9999.0));
    let s = Blinding::from_secret("a phrase");
    assert_eq!(s, Blinding::from_secret("a phrase"));
    assert!((0.9..1.1).contains(&s.factor()));
    assert_ne!(s, Blinding::from_secret("another phrase"));
    // blind_table needs mcal_g
    let mut t = Table::new(vec![f8("exp_g", &[2])]);
    assert!(blind_table(&mut t, &b).is_err());
}

#[test]
fn des_collation_of_a_run_without_metacal_refuses_blinding() {
    let f = fixture();
    let d = out_dir("des-blind");
    let opts = CollateOptions {
        concat_type: ConcatType::ConcatDes,
        models: vec!["exp".into()],
        bands: vec!["i".into()],
        blinding_configured: true,
        blinding: Some(Blinding::from_factor(1.05)),
        ..CollateOptions::default()
    };
    let e = Collator::new(named(&f.chunks), opts)
        .collate(&d.join("x.fits"))
        .unwrap_err();
    assert!(e.to_string().contains("mcal_g"), "{e}");
    assert!(dir_is_empty(&d));
}
