//! The megamixer's LSF (SLAC) and HTCondor (BNL) systems, the Y1 `megamixit` layout and the
//! collation from the command line (spec §8, §11 items 51–61):
//!
//! * the Y3 job files equal what the Python `megamix-meds` wrote for the same tile
//!   (`tests/data/megamix/pyref-y3`: `.lsf`, condor submit file, master script, per-chunk
//!   seeds from numpy's `RandomState`);
//! * runs through a fake `bsub` / `condor_submit` on PATH (test-local scripts that execute
//!   the jobs at once) collate to one `ngmixit` run of the whole tile;
//! * Y1 names, `${DESDATA}` paths, LSF headers, the SLAC array's compressed index string;
//! * collation refusing missing or duplicated chunks (naming them), `verify`, `clean`,
//!   `archive`, `link`, `--missing`, `--print-commands`, status exit codes.
#![cfg(all(feature = "slac", feature = "bnl"))]

mod megamix_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use megamix_common::*;

const TILE: &str = "DES0000+0000";
/// numpy: `RandomState(42).randint(1, 1000000000)` three times (the reference scripts).
const NUMPY_SEEDS_42: [u64; 3] = [534895719, 199900596, 862061405];

fn pyref(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/data/megamix/pyref-y3").join(name)).unwrap()
}

fn write_exe(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Test stand-ins for `bsub` and `condor_submit` in the run's bin directory.
fn install_fakes(r: &Run) {
    let fake = r.dir.join("fake");
    std::fs::create_dir_all(fake.join("scratch")).unwrap();
    write_exe(
        &r.bin.join("bsub"),
        &format!(
            r#"#!/bin/bash
# test stand-in for LSF bsub: runs the job script read from stdin at once, here
fake="{fake}"
script=$(mktemp "$fake/job.XXXXXX")
sed "s|/scratch/|$fake/scratch/|g" > "$script"
echo "$(pwd) $*" >> "$fake/bsub.log"
name=$(sed -n 's/^#BSUB -J //p' "$script")
id=$$
if [[ "$name" =~ \[(.*)\]$ ]]; then
  for part in ${{BASH_REMATCH[1]//,/ }}; do
    for i in $(seq ${{part%-*}} ${{part#*-}}); do
      LSB_JOBID=$id LSB_JOBINDEX=$i bash "$script" > /dev/null 2>&1
    done
  done
else
  LSB_JOBID=$id LSB_JOBINDEX=0 bash "$script" > /dev/null 2>&1
fi
echo "Job <$id> is submitted to queue <$2>."
"#,
            fake = fake.display()
        ),
    );
    write_exe(
        &r.bin.join("condor_submit"),
        &format!(
            r#"#!/bin/bash
# test stand-in for condor_submit: runs every queued job of the submit file at once, here
fake="{fake}"
echo "$(pwd) $*" >> "$fake/condor.log"
exe=$(sed -n 's/^Executable *= *//p' "$1")
n=0
while IFS= read -r line; do
  case "$line" in
    Arguments*) args="${{line#*= }}" ;;
    Queue*) _CONDOR_SCRATCH_DIR=$(mktemp -d "$fake/scratch/c.XXXXXX") bash -c "\"$exe\" $args" > /dev/null 2>&1
            n=$((n+1)) ;;
  esac
done < "$1"
echo "$n job(s) submitted to cluster 1."
"#,
            fake = fake.display()
        ),
    );
}

fn chunk_dir(r: &Run, a: i64, b: i64) -> PathBuf {
    r.tile_dir().join(format!("chunk{a:06}-{b:06}"))
}

fn base(a: i64, b: i64) -> String {
    format!("{TILE}-e2e01max-{a:06}-{b:06}")
}

const RANGES: [(i64, i64); 3] = [(0, 21), (22, 43), (44, 65)];

/// Run megamix-meds with `--seed 42` and no `--tile-seed` (per-chunk seeds, as the original).
fn mm_seed42(r: &Run, sub: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_megamix-meds"))
        .current_dir(&r.dir)
        .env("PATH", r.path_env())
        .env("NGMIXER_OUTPUT_DIR", &r.out)
        .arg(&r.config)
        .arg(sub)
        .arg(&r.meds)
        .args(["--tile-id", TILE, "--system", &r.system, "--seed", "42"])
        .args(extra)
        .output()
        .unwrap()
}

fn seeds_of(script: &str) -> Vec<u64> {
    script
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--seed="))
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn y3_lsf_and_condor_files_equal_the_python_originals() {
    let mut r = prepare("megamix-y3-formats", "slac", false);
    let o = mm_seed42(&r, "setup", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = r.out.display().to_string();
    // item 52: names; the .lsf equals the original's
    for (k, (a, b)) in RANGES.iter().enumerate() {
        let d = chunk_dir(&r, *a, *b);
        assert!(d.join(format!("{}.sh", base(*a, *b))).exists());
        let lsf = std::fs::read_to_string(d.join(format!("{}.lsf", base(*a, *b)))).unwrap();
        if k == 0 {
            assert_eq!(lsf, pyref("chunk0.lsf").replace("@OUT@", &out));
        }
        // item 53: the per-chunk seeds are numpy's, in chunk order, as in the original
        let mine = std::fs::read_to_string(d.join(format!("{}.sh", base(*a, *b)))).unwrap();
        let theirs = pyref(&format!("chunk-{a:06}-{b:06}.sh"));
        assert_eq!(seeds_of(&mine), seeds_of(&theirs));
        assert_eq!(seeds_of(&mine), vec![NUMPY_SEEDS_42[k]]);
        assert!(theirs.contains(&format!("start={a}\nstop={b}")));
        assert!(mine.contains(&format!("--fof-range={a},{b}")), "{mine}");
    }
    // the condor submit file and master script equal the original's
    r.system = "bnl".into();
    let o = mm_seed42(&r, "setup", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let condor = r.out.join("e2e01max/condor").join(format!("{TILE}.condor"));
    assert_eq!(
        std::fs::read_to_string(&condor).unwrap(),
        pyref("tile.condor").replace("@OUT@", &out)
    );
    let master = std::fs::read_to_string(r.tile_dir().join("master.sh")).unwrap();
    assert_eq!(master.trim_end(), pyref("master.sh").trim_end());

    // items 54, 56: --missing lists only chunks without output; no jobs, no submit file
    let done = chunk_dir(&r, 0, 21).join(format!("{}.fits", base(0, 21)));
    std::fs::write(&done, "x").unwrap();
    let o = mm_seed42(&r, "setup", &["--missing"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&condor).unwrap();
    assert_eq!(text.matches("Queue").count(), 2, "{text}");
    assert!(!text.contains(&base(0, 21)), "{text}");
    assert!(!chunk_dir(&r, 0, 21)
        .join(format!("{}.sh", base(0, 21)))
        .exists());
    for (a, b) in &RANGES[1..] {
        std::fs::write(
            chunk_dir(&r, *a, *b).join(format!("{}.fits", base(*a, *b))),
            "x",
        )
        .unwrap();
    }
    let o = mm_seed42(&r, "setup", &["--missing"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !condor.exists(),
        "the submit file is removed when no job is left"
    );
}

fn run_through_fake(system: &str, name: &str) {
    let r = prepare(name, system, false);
    install_fakes(&r);
    r.ok("setup", &[]);
    let o = r.run("status", &[]);
    assert_eq!(o.status.code(), Some(1), "nothing run yet");
    // --print-commands: one command per chunk
    let o = r.ok("run", &["--print-commands"]);
    let cmds = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(cmds.lines().count(), 3, "{cmds}");
    r.ok("run", &[]);
    let (code, text) = r.wait_status(std::time::Duration::from_secs(30));
    assert_eq!(code, 0, "{text}");
    r.ok("verify", &[]);
    r.ok("collate", &[]);
    let whole = single_run(&r.dir);
    assert_equals_single_run(&r.collated(), &whole);
    // a second run has nothing to submit
    let o = r.ok("run", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no unfinished chunks"));
}

#[test]
fn lsf_run_through_fake_bsub_collates_to_the_single_run() {
    run_through_fake("slac", "megamix-fake-lsf");
}

#[test]
fn condor_run_through_fake_condor_submit_collates_to_the_single_run() {
    run_through_fake("bnl", "megamix-fake-condor");
}

#[test]
fn collation_refuses_missing_and_duplicated_chunks_and_names_them() {
    let r = prepare("megamix-refuse", "shell", false);
    r.ok("setup", &[]);
    r.ok("run", &[]);
    r.ok("verify", &[]);
    let c1 = chunk_dir(&r, 22, 43).join(format!("{}.fits", base(22, 43)));
    let saved = r.dir.join("saved-chunk1.fits");
    std::fs::rename(&c1, &saved).unwrap();
    // verify and collate name the missing chunk; nothing is written
    for sub in ["verify", "collate"] {
        let o = r.run(sub, &[]);
        assert_eq!(o.status.code(), Some(1), "{sub}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{}.fits", base(22, 43))),
            "{sub}: {err}"
        );
    }
    assert!(!r.collated().exists());
    // --skip-errors collates the rest and says what was skipped
    let o = r.ok("collate", &["--skip-errors"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("skipped") && err.contains(&base(22, 43)),
        "{err}"
    );
    assert_eq!(
        ngmixer::backends::meds::read_table(r.collated(), "model_fits")
            .unwrap()
            .nrows(),
        44
    );
    // an existing output is kept without --clobber (item 57)
    std::fs::rename(&saved, &c1).unwrap();
    let o = r.ok("collate", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("kept"));
    r.ok("collate", &["--clobber"]);
    assert_eq!(
        ngmixer::backends::meds::read_table(r.collated(), "model_fits")
            .unwrap()
            .nrows(),
        NOBJ
    );

    // megamix-meds-collate-desdm: a duplicated chunk is refused, naming both files
    let c0 = chunk_dir(&r, 0, 21).join(format!("{}.fits", base(0, 21)));
    let dup = r.dir.join(format!("{}.fits", base(0, 21)));
    std::fs::copy(&c0, &dup).unwrap();
    let list = r.dir.join("list.txt");
    let c2 = chunk_dir(&r, 44, 65).join(format!("{}.fits", base(44, 65)));
    std::fs::write(
        &list,
        format!(
            "{}\n{}\n{}\n{}\n",
            c0.display(),
            dup.display(),
            c1.display(),
            c2.display()
        ),
    )
    .unwrap();
    let out = r.dir.join("desdm.fits");
    let o = Command::new(env!("CARGO_BIN_EXE_megamix-meds-collate-desdm"))
        .arg(&r.config)
        .arg(&list)
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&c0.display().to_string()) && err.contains(&dup.display().to_string()),
        "{err}"
    );
    assert!(!out.exists());
    // without the duplicate it collates to the single run
    std::fs::write(
        &list,
        format!("{}\n{}\n{}\n", c0.display(), c1.display(), c2.display()),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_megamix-meds-collate-desdm"))
        .arg(&r.config)
        .arg(&list)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_equals_single_run(&out, &single_run(&r.dir));
}

#[test]
fn clean_removes_chunk_outputs_and_archive_leaves_only_a_tarball() {
    let r = prepare("megamix-archive", "shell", false);
    r.ok("setup", &[]);
    r.ok("run", &[]);
    let outs: Vec<PathBuf> = RANGES
        .iter()
        .map(|(a, b)| chunk_dir(&r, *a, *b).join(format!("{}.fits", base(*a, *b))))
        .collect();
    let ck = chunk_dir(&r, 0, 21).join(format!("{}-checkpoint.fits", base(0, 21)));
    std::fs::write(&ck, "x").unwrap();
    assert!(outs.iter().all(|p| p.exists()));
    r.ok("clean", &[]);
    assert!(outs.iter().all(|p| !p.exists()) && !ck.exists());
    // the logs and scripts stay
    assert!(chunk_dir(&r, 0, 21)
        .join(format!("{}.log", base(0, 21)))
        .exists());
    r.ok("archive", &[]);
    let run_dir = r.out.join("e2e01max");
    assert!(!r.tile_dir().exists());
    let tar = run_dir.join(format!("{TILE}.tar.gz"));
    assert!(tar.exists());
    let o = Command::new("tar").arg("-tzf").arg(&tar).output().unwrap();
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(list.contains(&format!("{}.log", base(22, 43))), "{list}");
    assert!(!list.contains(&format!("{}.fits", base(22, 43))), "{list}");
    // archiving again says so
    let o = r.ok("archive", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already archived"));
}

#[test]
fn status_of_a_running_and_a_failed_chunk() {
    let r = prepare("megamix-status", "shell", false);
    r.ok("setup", &[]);
    let c = chunk_dir(&r, 22, 43);
    // a chunk whose script records a running pid that is gone: failed (killed)
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim().split('.').next().unwrap().to_string();
    std::fs::write(
        c.join(format!("{}.state", base(22, 43))),
        format!("running 999999999 {host} 1\n"),
    )
    .unwrap();
    let o = r.run("status", &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[22, 43] failed") && text.contains("killed?"),
        "{text}"
    );
    // a recorded non-zero exit with the log's last lines
    std::fs::write(
        c.join(format!("{}.state", base(22, 43))),
        format!("exit 1 {host} 1 2\n"),
    )
    .unwrap();
    std::fs::write(
        c.join(format!("{}.log", base(22, 43))),
        "line one\nngmixit: error: something named\n",
    )
    .unwrap();
    let o = r.run("status", &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("exited with code 1"), "{text}");
    assert!(text.contains("| ngmixit: error: something named"), "{text}");
    // a live process (this test) counts as running: exit 3
    std::fs::write(
        c.join(format!("{}.state", base(22, 43))),
        format!("running {} {host} 1\n", std::process::id()),
    )
    .unwrap();
    let o = r.run("status", &[]);
    assert_eq!(o.status.code(), Some(3));
    // resubmit runs the failed and missing chunks; all done: exit 0
    std::fs::remove_file(c.join(format!("{}.state", base(22, 43)))).unwrap();
    r.ok("resubmit", &[]);
    let o = r.run("status", &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("objects/s"), "{text}");
}

#[test]
fn a_system_this_build_lacks_or_an_unknown_one_is_named() {
    let r = prepare("megamix-unknown-system", "condor9", false);
    let o = r.run("setup", &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--system condor9: unknown system"), "{err}");
    let e = ngmixer::systems::missing_feature("slurm").to_string();
    assert!(e.contains("--features slurm"), "{e}");
}

/// The Y1 layout: `$DESDATA/meds/<mv>/<T>/<tile>-<band>-meds-<mv>.fits.fz` inputs,
/// `<out>/<run>/<T>/work/chunk%05d_%d_%d/runchunk.sh`.
struct Y1 {
    dir: PathBuf,
    desdata: PathBuf,
    out: PathBuf,
    run_config: PathBuf,
    bin: PathBuf,
}

const T: &str = "20130828000021_DES0000+0000";

fn y1(name: &str, extra_conf: &str) -> Y1 {
    let r = prepare(name, "shell", false);
    install_fakes(&r);
    let desdata = r.dir.join("desdata");
    let md = desdata.join("meds/meds011").join(T);
    std::fs::create_dir_all(&md).unwrap();
    std::os::unix::fs::symlink(
        root().join(MEDS),
        md.join(format!("{TILE}-r-meds-meds011.fits.fz")),
    )
    .unwrap();
    std::fs::copy(root().join(CONFIG), r.dir.join("ngmix-y1test.yaml")).unwrap();
    let run_config = r.dir.join("run-y1test.yaml");
    std::fs::write(
        &run_config,
        format!(
            "run: y1test\nmeds_version: meds011\nnum_fofs_per_chunk: 22\nbands: [r]\n\
             concat_type: concat\n{extra_conf}"
        ),
    )
    .unwrap();
    Y1 {
        dir: r.dir.clone(),
        desdata,
        out: r.dir.join("out"),
        run_config,
        bin: r.bin.clone(),
    }
}

impl Y1 {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_megamixit"))
            .current_dir(&self.dir)
            .env(
                "PATH",
                format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("DESDATA", &self.desdata)
            .env("NGMIXER_OUTPUT_DIR", &self.out)
            .env_remove("NGMIXER_CONFIG_DIR")
            .args(args)
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> std::process::Output {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "megamixit {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }
    fn main(&self) -> PathBuf {
        self.out.join("y1test").join(T)
    }
}

#[test]
fn y1_layout_names_seeds_lsf_headers_and_a_run_collated_to_the_single_run() {
    let y = y1("megamix-y1", "");
    let rc = y.run_config.display().to_string();
    // fewer than three positionals: help and exit 45
    assert_eq!(y.run(&["setup", &rc]).status.code(), Some(45));
    y.ok(&["--system", "slac", "--seed", "42", "setup", &rc, T]);
    let work = y.main().join("work");
    assert!(work.join("run-y1test.yaml").exists() && work.join("ngmix-y1test.yaml").exists());
    for (k, (a, b)) in RANGES.iter().enumerate() {
        let d = work.join(format!("chunk{k:05}_{a}_{b}"));
        let s = std::fs::read_to_string(d.join("runchunk.sh")).unwrap();
        assert!(s.contains(&format!("obase={TILE}-y1test-{a}-{b}\n")), "{s}");
        assert!(s.contains("config=../ngmix-y1test.yaml\n"), "{s}");
        assert!(
            s.contains(&format!(
                "meds=\"${{DESDATA}}/meds/meds011/{T}/{TILE}-r-meds-meds011.fits.fz\""
            )),
            "{s}"
        );
        assert_eq!(seeds_of(&s), vec![NUMPY_SEEDS_42[k]]);
        assert!(s.contains("tmpdir=${TMPDIR}"), "{s}");
        // spec §8.1: the SLAC job.sh
        let j = std::fs::read_to_string(d.join("job.sh")).unwrap();
        assert_eq!(
            j,
            format!(
                "#!/bin/bash\n#BSUB -J {TILE}-y1test-{a}-{b}\n#BSUB -oo ./{TILE}-y1test-{a}-{b}.oe\n\
                 #BSUB -R \"linux64 && rhel60 && scratch > 6\"\n#BSUB -n 1\n#BSUB -We 24:00\n\
                 #BSUB -W 48:00\nexport TMPDIR=/scratch/$USER/$LSB_JOBID-$LSB_JOBINDEX\n\
                 mkdir -p $TMPDIR\n./runchunk.sh\nrm -rf $TMPDIR\n"
            )
        );
    }
    // run (every chunk), collate, link
    y.ok(&["--system", "slac", "--seed", "42", "run", &rc, T]);
    let log = std::fs::read_to_string(y.dir.join("fake/bsub.log")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.lines().all(|l| l.ends_with("-q medium")), "{log}");
    assert_eq!(
        y.run(&["--system", "slac", "status", &rc, T]).status.code(),
        Some(0)
    );
    y.ok(&["collate", &rc, T]);
    let collated = y.main().join(format!("{TILE}-y1test.fits"));
    assert!(collated.exists());
    y.ok(&["link", &rc, T]);
    let link = y
        .out
        .join("y1test/output")
        .join(format!("{TILE}-y1test.fits"));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("..")
            .join(T)
            .join(format!("{TILE}-y1test.fits"))
    );
    assert!(link.exists());
}

#[test]
fn y1_tile_seed_run_equals_the_single_run_and_config_seed_writes_no_seed() {
    let y = y1("megamix-y1-tileseed", "");
    let rc = y.run_config.display().to_string();
    y.ok(&["--seed", "7", "--tile-seed", "setup", &rc, T]);
    y.ok(&["--seed", "7", "--tile-seed", "run", &rc, T]);
    y.ok(&["collate", &rc, T]);
    let collated = y.main().join(format!("{TILE}-y1test.fits"));
    assert_equals_single_run(&collated, &single_run(&y.dir));

    // a run config with `seed`: no --seed in the scripts (as the original)
    let y = y1("megamix-y1-confseed", "seed: 3\n");
    let rc = y.run_config.display().to_string();
    y.ok(&["setup", &rc, T]);
    let s = std::fs::read_to_string(y.main().join("work/chunk00000_0_21/runchunk.sh")).unwrap();
    assert!(seeds_of(&s).is_empty(), "{s}");
}

#[test]
fn y1_slac_array_compresses_the_missing_chunks() {
    let y = y1("megamix-y1-array", "");
    let rc = y.run_config.display().to_string();
    let args = |sub: &'static str| vec!["--system", "slac-array", "--seed", "1", sub];
    let mut a = args("setup");
    a.extend([rc.as_str(), T]);
    y.ok(&a);
    let work = y.main().join("work");
    let dat = std::fs::read_to_string(work.join("array_jobs.dat")).unwrap();
    assert_eq!(
        dat,
        "cd ./chunk1 && ./job.sh && cd -\ncd ./chunk2 && ./job.sh && cd -\n\
         cd ./chunk3 && ./job.sh && cd -\n"
    );
    let mut a = args("run");
    a.extend([rc.as_str(), T]);
    y.ok(&a);
    let ja = std::fs::read_to_string(work.join("jobarray.sh")).unwrap();
    assert!(ja.contains(&format!("#BSUB -J {TILE}[1-3]\n")), "{ja}");
    assert!(
        ja.contains(&format!("#BSUB -oo ./chunk%I/{TILE}.%I.oe\n")),
        "{ja}"
    );
    assert!(ja.contains("./runarray.sh $LSB_JOBINDEX\n"), "{ja}");
    for k in 1..=3 {
        assert!(work.join(format!("chunk{k}")).join("runchunk.sh").exists());
    }
    let mut a = args("status");
    a.extend([rc.as_str(), T]);
    assert_eq!(y.run(&a).status.code(), Some(0));
    // chunks 1 and 3 (1-based) missing: [1,3]
    for (k, (s, e)) in [(1, (0, 21)), (3, (44, 65))] {
        std::fs::remove_file(
            work.join(format!("chunk{k}"))
                .join(format!("{TILE}-y1test-{s}-{e}.fits")),
        )
        .unwrap();
    }
    let mut a = args("run");
    a.extend([rc.as_str(), T]);
    y.ok(&a);
    let ja = std::fs::read_to_string(work.join("jobarray.sh")).unwrap();
    assert!(ja.contains(&format!("#BSUB -J {TILE}[1,3]\n")), "{ja}");
    let mut a = args("status");
    a.extend([rc.as_str(), T]);
    assert_eq!(y.run(&a).status.code(), Some(0));
}

#[test]
fn run_nbrs_without_the_nbrs_program_says_so() {
    let r = prepare("megamix-nbrs", "shell", false);
    r.ok("setup-nbrs", &[]);
    let script = r
        .out
        .join("e2e01max/output-nbrs")
        .join(format!("{TILE}-e2e01max-nbrslist.sh"));
    let s = std::fs::read_to_string(&script).unwrap();
    assert!(s.contains("ngmixer-meds-make-nbrs-data"), "{s}");
    assert!(
        s.contains(&format!(
            "--fof-file={}",
            script
                .with_file_name(format!("{TILE}-e2e01max-nbrsfofs.fits"))
                .display()
        )),
        "{s}"
    );
    // PATH without the program (only the test's bin directory and the system's)
    let o = r
        .cmd("run-nbrs", &[])
        .env("PATH", format!("{}:/usr/bin:/bin", r.bin.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`ngmixer-meds-make-nbrs-data` is not on PATH"),
        "{err}"
    );
}

#[test]
fn des_collation_blinding_needs_a_secret_or_noblind() {
    let r = prepare("megamix-blind", "shell", false);
    let cfg = std::fs::read_to_string(&r.config).unwrap().replace(
        "collate:\n    concat_type: concat\n",
        "collate:\n    concat_type: concat-des\n    blinding:\n        type: y3\n",
    );
    std::fs::write(&r.config, format!("{cfg}magzp_ref: 30.0\n")).unwrap();
    r.ok("setup", &[]);
    r.ok("run", &[]);
    let o = r.run("collate", &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NGMIXER_BLINDING_SECRET") && err.contains("--noblind"),
        "{err}"
    );
    // --noblind: the DES columns, no -blind suffix
    r.ok("collate", &["--noblind"]);
    let t = ngmixer::backends::meds::read_table(r.collated(), "model_fits").unwrap();
    assert!(t.get("coadd_exp_mag").is_some() && t.get("psf_mag").is_some());
    assert!(!r
        .collated()
        .with_file_name(format!("{TILE}-e2e01max-blind.fits"))
        .exists());
}
