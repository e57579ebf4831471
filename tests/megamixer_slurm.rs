//! The megamixer on a real Slurm cluster (feature `slurm`; CI starts one with
//! `ci/slurm/slurm-local-up.sh`): setup → run as one `sbatch` job array (plus a collate job
//! depending on the task list) → one task killed with `kill -9` while running → `status`
//! says it failed → `resubmit` submits that chunk alone (a new one-task array) → its collate
//! job writes the catalogue, equal to one `ngmixit` run of the whole tile with the same seed.
//!
//! Without a reachable Slurm the test is skipped with a message, unless `CI` is set: then it
//! fails.
#![cfg(feature = "slurm")]

mod megamix_common;

use std::process::Command;
use std::time::{Duration, Instant};

use megamix_common::*;

fn slurm_reachable() -> Result<(), String> {
    // without a config file sinfo retries for a minute: look first
    let conf = std::env::var_os("SLURM_CONF")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/etc/slurm/slurm.conf".into());
    if !conf.is_file() {
        return Err(format!("no Slurm config {}", conf.display()));
    }
    match Command::new("timeout")
        .args(["20", "sinfo", "-h", "-o", "%T"])
        .output()
    {
        Ok(o) if o.status.success() => {
            let t = String::from_utf8_lossy(&o.stdout);
            if t.lines().any(|l| !l.trim().is_empty()) {
                Ok(())
            } else {
                Err("sinfo lists no node".into())
            }
        }
        Ok(o) => Err(format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("no sinfo: {e}")),
    }
}

fn tasks_file(r: &Run) -> String {
    std::fs::read_to_string(r.tile_dir().join("slurm-jobs.tsv")).unwrap_or_default()
}

#[test]
fn slurm_array_killed_task_resubmitted_alone_and_collated_equal_to_single_run() {
    if let Err(why) = slurm_reachable() {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("CI is set but no Slurm cluster is reachable ({why}); .ci/run starts one");
        }
        eprintln!(
            "SKIPPED megamixer_slurm: no Slurm cluster reachable ({why}); start one with \
             ci/slurm/slurm-local-up.sh and export SLURM_CONF"
        );
        return;
    }
    let t_start = Instant::now();
    let r = prepare("megamix-slurm", "slurm", true);
    r.ok("setup", &[]);
    let o = r.ok("run", &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("submitted Slurm array job"), "{err}");
    assert!(err.contains("submitted collate job"), "{err}");
    let tsv = tasks_file(&r);
    assert_eq!(tsv.lines().count(), 3, "{tsv}");
    let first_job = tsv
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();

    r.kill_stalled(Duration::from_secs(90));
    let (code, text) = r.wait_status(Duration::from_secs(90));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("[22, 43] failed"), "{text}");
    assert!(text.contains("killed by signal 9"), "{text}");
    assert!(text.contains("2 done"), "{text}");

    // the first collate job ran after the array and refused (the chunk is missing)
    let logs = r.tile_dir().join("slurm-logs");
    let t0 = Instant::now();
    let refused = loop {
        let found = std::fs::read_dir(&logs).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("collate-"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .find(|t| t.contains("refused"))
        });
        if let Some(t) = found {
            break t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no refused collate log in {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(refused.contains("000022-000043"), "{refused}");
    assert!(!r.collated().exists());

    let o = r.ok("resubmit", &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("resubmitting chunks [1]"), "{err}");
    assert!(err.contains("(tasks 1)"), "{err}");
    let tsv = tasks_file(&r);
    let last: Vec<&str> = tsv.lines().last().unwrap().split('\t').collect();
    assert_eq!(tsv.lines().count(), 4, "one new task only: {tsv}");
    assert_eq!(last[1], "1");
    assert_ne!(last[0], first_job);

    let (code, text) = r.wait_status(Duration::from_secs(90));
    assert_eq!(code, 0, "{text}");
    // the resubmission's collate job writes the catalogue
    let t0 = Instant::now();
    while !r.collated().exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no collated file from the collate job"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let whole = single_run(&r.dir);
    assert_equals_single_run(&r.collated(), &whole);
    eprintln!("megamixer_slurm: {:.1} s", t_start.elapsed().as_secs_f64());
}
