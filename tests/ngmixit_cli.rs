//! `ngmixit` as a user runs it: FoF-range chunks, checkpoint resume, thread-count determinism,
//! and errors on bad input.

#![cfg(feature = "des-y1")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ngmixer::backends::meds::{read_table, Columns};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ngmixit-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ngmixit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ngmixit"))
        .args(args)
        .output()
        .unwrap()
}

fn run_ok(out: &Path, extra: &[&str]) {
    let cfg = data("e2e/run-e2e01max.yaml");
    let meds = data("meds/sim-e2e-meds.fits");
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(["--seed".into(), "12345".into()]);
    args.push(cfg.to_string_lossy().into_owned());
    args.push(out.to_string_lossy().into_owned());
    args.push(meds.to_string_lossy().into_owned());
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = ngmixit(&refs);
    assert!(
        o.status.success(),
        "ngmixit failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every column but the wall-clock `time_last_fit`, as raw values.
fn content(path: &Path, ext: &str) -> Vec<(String, String)> {
    let c: Columns = read_table(path, ext).unwrap();
    c.columns()
        .iter()
        .filter(|c| c.name != "time_last_fit")
        .map(|c| (c.name.clone(), format!("{:?}", c.data)))
        .collect()
}

fn concat(a: &[(String, String)], b: &[(String, String)]) -> Vec<(String, String)> {
    // the Debug form of each column is `Kind([..])`: join the element lists
    a.iter()
        .zip(b)
        .map(|((n, x), (_, y))| {
            let xi = x.rfind(']').unwrap();
            let yi = y.find('[').unwrap();
            let mid = if x[..xi].ends_with('[') || y[yi + 1..].starts_with(']') {
                ""
            } else {
                ", "
            };
            (n.clone(), format!("{}{}{}", &x[..xi], mid, &y[yi + 1..]))
        })
        .collect()
}

#[test]
fn fof_range_chunks_concatenate_to_the_full_run() {
    let d = tmpdir("chunks");
    let full = d.join("full.fits");
    let a = d.join("a.fits");
    let b = d.join("b.fits");
    run_ok(&full, &["--fof-range", "0,11"]);
    run_ok(&a, &["--fof-range", "0,4"]);
    run_ok(&b, &["--fof-range", "5,11"]);
    for ext in ["model_fits", "epoch_data"] {
        assert_eq!(
            concat(&content(&a, ext), &content(&b, ext)),
            content(&full, ext),
            "{ext}"
        );
    }
    assert_eq!(read_table(&full, "model_fits").unwrap().nrows(), 12);
}

#[test]
fn same_seed_same_output_with_one_and_two_threads() {
    let d = tmpdir("threads");
    let t1 = d.join("t1.fits");
    let t2 = d.join("t2.fits");
    run_ok(&t1, &["--fof-range", "20,31", "--threads", "1"]);
    run_ok(&t2, &["--fof-range", "20,31", "--threads", "2"]);
    for ext in ["model_fits", "epoch_data"] {
        assert_eq!(content(&t1, ext), content(&t2, ext), "{ext}");
    }
}

#[test]
fn killed_run_resumes_from_its_checkpoint() {
    let d = tmpdir("resume");
    let whole = d.join("whole.fits");
    let resumed = d.join("resumed.fits");
    run_ok(&whole, &["--fof-range", "40,51"]);
    // first attempt stops right after its first checkpoint (as a killed job would)
    let cfg = data("e2e/run-e2e01max.yaml");
    let meds = data("meds/sim-e2e-meds.fits");
    let o = ngmixit(&[
        "--fof-range",
        "40,51",
        "--checkpoint-every",
        "5",
        "--abort-after-checkpoint",
        "--threads",
        "1",
        "--seed",
        "12345",
        cfg.to_str().unwrap(),
        resumed.to_str().unwrap(),
        meds.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ck = d.join("resumed-checkpoint.fits");
    assert!(ck.exists() && !resumed.exists());
    // the default checkpoint times start at minute 0: as in ngmixer, the first checkpoint
    // follows the first FoF (on one thread; with more, the first results may come together)
    assert_eq!(read_table(&ck, "model_fits").unwrap().nrows(), 1);
    run_ok(
        &resumed,
        &["--fof-range", "40,51", "--checkpoint-every", "5"],
    );
    assert!(!ck.exists(), "checkpoint removed on success");
    for ext in ["model_fits", "epoch_data"] {
        assert_eq!(content(&resumed, ext), content(&whole, ext), "{ext}");
    }
}

#[test]
fn too_few_arguments_print_help_and_exit_45() {
    let o = ngmixit(&["config.yaml", "out.fits"]);
    assert_eq!(o.status.code(), Some(45));
}

#[test]
fn bad_inputs_give_clear_errors() {
    let d = tmpdir("bad");
    let out = d.join("o.fits");
    let cfg = data("e2e/run-e2e01max.yaml");
    // a MEDS path that does not exist
    let o = ngmixit(&[
        cfg.to_str().unwrap(),
        out.to_str().unwrap(),
        "/nonexistent/x-meds.fits",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nonexistent/x-meds.fits"), "{err}");
    // a config with an unknown key
    let bad = d.join("bad.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap() + "\nnot_a_key: 3\n";
    std::fs::write(&bad, text).unwrap();
    let meds = data("meds/sim-e2e-meds.fits");
    let o = ngmixit(&[
        bad.to_str().unwrap(),
        out.to_str().unwrap(),
        meds.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not_a_key"), "{err}");
    // a malformed range
    let o = ngmixit(&[
        "--fof-range",
        "5",
        cfg.to_str().unwrap(),
        out.to_str().unwrap(),
        meds.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--fof-range"));
    assert!(!out.exists(), "no output written on failure");
}
