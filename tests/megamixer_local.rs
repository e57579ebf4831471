//! The megamixer on the `local` system (feature `local`): setup → run (chunks as child
//! processes) → one chunk killed with `kill -9` while running → `status` says it failed and
//! shows its log → `resubmit` runs that chunk alone → collate; the collated catalogue equals
//! one `ngmixit` run of the whole tile with the same seed. Also: a restarted megamixer does
//! not start a chunk that is still running.
#![cfg(feature = "local")]

mod megamix_common;

use std::process::Stdio;
use std::time::Duration;

use megamix_common::*;

#[test]
fn killed_chunk_is_failed_resubmitted_alone_and_collation_equals_single_run() {
    let r = prepare("megamix-local", "local", true);
    r.ok("setup", &[]);
    // three chunks, Y3 names
    for (a, b) in [(0, 21), (22, 43), (44, 65)] {
        let d = r.tile_dir().join(format!("chunk{a:06}-{b:06}"));
        assert!(d
            .join(format!("DES0000+0000-e2e01max-{a:06}-{b:06}.sh"))
            .exists());
    }
    // status before running: every chunk missing, exit 1
    let o = r.run("status", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 missing"));

    let runner = r
        .cmd("run", &["--max-jobs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    r.kill_stalled(Duration::from_secs(60));
    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (code, text) = r.wait_status(Duration::from_secs(30));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[22, 43] failed") && text.contains("killed by signal 9"),
        "{text}"
    );
    assert!(
        text.contains("2 done") && text.contains("1 failed"),
        "{text}"
    );

    // collation refuses the incomplete set and names the missing chunk
    let o = r.run("collate", &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("DES0000+0000-e2e01max-000022-000043.fits"),
        "{err}"
    );
    assert!(!r.collated().exists());

    // resubmit runs only the failed chunk
    let done0 = r
        .tile_dir()
        .join("chunk000000-000021/DES0000+0000-e2e01max-000000-000021.fits");
    let m0 = std::fs::metadata(&done0).unwrap().modified().unwrap();
    let o = r.ok("resubmit", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resubmitting chunks [1]"), "{err}");
    assert_eq!(std::fs::metadata(&done0).unwrap().modified().unwrap(), m0);
    let (code, text) = r.wait_status(Duration::from_secs(30));
    assert_eq!(code, 0, "{text}");

    r.ok("verify", &[]);
    r.ok("collate", &[]);
    let whole = single_run(&r.dir);
    assert_equals_single_run(&r.collated(), &whole);

    // a second resubmit has nothing to do
    let o = r.ok("resubmit", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no failed or missing chunks"));
}

#[test]
fn restarted_megamixer_leaves_running_chunks_alone() {
    let r = prepare("megamix-local-restart", "local", true);
    r.ok("setup", &[]);
    let mut first = r
        .cmd("run", &["--max-jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // wait until the stalled chunk runs, then kill the megamixer itself (not the chunk)
    let t0 = std::time::Instant::now();
    while !r.pidfile.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "chunk 1 did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill().unwrap();
    let _ = first.wait();
    let o = r.run("status", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(text.contains("[22, 43] running"), "{text}");
    // a new megamixer with one slot: chunk 1 still holds it, so chunk 2 waits for it
    let second = r
        .cmd("run", &["--max-jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let o = r.run("status", &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("[44, 65] missing"), "{text}");
    r.kill_stalled(Duration::from_secs(5));
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("chunk 1: started"), "{err}");
    let (code, text) = r.wait_status(Duration::from_secs(30));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[44, 65] done") && text.contains("[22, 43] failed"),
        "{text}"
    );
}

/// Chunks of FoF ranges (`--fof-file`): 33 FoFs of two objects each (pairs in reversed MEDS
/// order, so FoF order differs from object order) in chunks of 22 FoFs → 2 chunks; the
/// collated catalogue equals one `ngmixit --fof-file` run of the whole tile.
#[test]
fn fof_chunks_collate_to_the_single_fof_run() {
    use ngmixer::sim::{write_table_file, ColData, SimTable};
    let r = prepare("megamix-local-fof", "local", false);
    let numbers = ngmixer::backends::meds::read_table(root().join(MEDS), "object_data")
        .unwrap()
        .get("number")
        .unwrap()
        .as_int()
        .unwrap()
        .to_vec();
    assert_eq!(numbers.len(), NOBJ);
    let fofid: Vec<i64> = (0..NOBJ as i64)
        .map(|i| (NOBJ as i64 - 1 - i) / 2)
        .collect();
    let mut t = SimTable::new(NOBJ);
    t.push("fofid", 1, ColData::I64(fofid)).unwrap();
    t.push("number", 1, ColData::I64(numbers)).unwrap();
    let fof = r.dir.join("fofs.fits");
    write_table_file(&fof, "fofs", &t).unwrap();
    let fof_arg = fof.display().to_string();
    let o = r.ok("setup", &["--fof-file", &fof_arg]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 chunks") && err.contains("33 FoFs"), "{err}");
    let s = std::fs::read_to_string(
        r.tile_dir()
            .join("chunk000022-000032/DES0000+0000-e2e01max-000022-000032.sh"),
    )
    .unwrap();
    assert!(s.contains(&format!("--fof-file={fof_arg}")), "{s}");
    r.ok("run", &["--fof-file", &fof_arg]);
    r.ok("collate", &["--fof-file", &fof_arg]);
    let whole = r.dir.join("whole-fof.fits");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ngmixit"))
        .current_dir(root())
        .args(["--seed", "7", "--fof-file", &fof_arg, CONFIG])
        .arg(&whole)
        .arg(MEDS)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_equals_single_run(&r.collated(), &whole);
}
