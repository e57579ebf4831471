//! Shared pieces of the megamixer tests: a Y3 run of the bundled e2e tile (66 objects, one
//! band) in chunks of 22, a wrapper `ngmixit` on PATH that stalls one chunk once so that it
//! can be killed, and the comparison of a collated catalogue with one `ngmixit` run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ngmixer::backends::meds::{read_table, Columns};

pub const CONFIG: &str = "tests/data/e2e/run-e2e01max.yaml";
pub const MEDS: &str = "tests/data/meds/sim-e2e-meds.fits";
pub const NOBJ: usize = 66;
pub const SEED: u64 = 7;
/// The chunk the wrapper stalls (objects 22..43).
pub const VICTIM_RANGE: &str = "--fof-range=22,43";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Run {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub meds: PathBuf,
    pub out: PathBuf,
    pub bin: PathBuf,
    pub mark: PathBuf,
    pub pidfile: PathBuf,
    pub system: String,
}

/// A fresh directory with the config (plus `jobs`, `collate`), the tile under a Y3 name and
/// the stalling `ngmixit` wrapper.
pub fn prepare(name: &str, system: &str, stall: bool) -> Run {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = std::fs::read_to_string(root().join(CONFIG)).unwrap();
    cfg.push_str(
        "\njobs:\n    chunksize: 22\n    bands: [\"r\"]\nglobal_seed: 7\ncollate:\n    \
         concat_type: concat\n",
    );
    let config = dir.join("run-e2e01max.yaml");
    std::fs::write(&config, cfg).unwrap();
    let meds = dir.join("DES0000+0000_r_meds-e2e.fits");
    std::os::unix::fs::symlink(root().join(MEDS), &meds).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mark = dir.join("stall-once");
    let pidfile = dir.join("stalled.pid");
    if stall {
        std::fs::write(&mark, "").unwrap();
    }
    let real = env!("CARGO_BIN_EXE_ngmixit");
    let wrapper = format!(
        "#!/bin/bash\n\
         # test wrapper: the first run of chunk {VICTIM_RANGE} stalls (to be killed)\n\
         for a in \"$@\"; do\n\
         \x20 if [ \"$a\" = \"{VICTIM_RANGE}\" ] && rm \"{mark}\" 2>/dev/null; then\n\
         \x20   echo $$ > \"{pid}.tmp\" && mv \"{pid}.tmp\" \"{pid}\"\n\
         \x20   exec sleep 120\n\
         \x20 fi\n\
         done\n\
         exec \"{real}\" \"$@\"\n",
        mark = mark.display(),
        pid = pidfile.display(),
    );
    let w = bin.join("ngmixit");
    std::fs::write(&w, wrapper).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Run {
        out: dir.join("out"),
        dir,
        config,
        meds,
        bin,
        mark,
        pidfile,
        system: system.to_string(),
    }
}

impl Run {
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `megamix-meds cfg.yaml <cmd> <meds> --tile-id ... --system ... --seed 7 --tile-seed`.
    pub fn cmd(&self, sub: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_megamix-meds"));
        c.current_dir(&self.dir)
            .env("PATH", self.path_env())
            .env("NGMIXER_OUTPUT_DIR", &self.out)
            .env_remove("NGMIXER_BLINDING_SECRET")
            .arg(&self.config)
            .arg(sub)
            .arg(&self.meds)
            .args(["--tile-id", "DES0000+0000", "--system", &self.system])
            .args([
                "--seed",
                &SEED.to_string(),
                "--tile-seed",
                "--walltime",
                "0:10",
            ])
            .args(extra);
        c
    }

    pub fn run(&self, sub: &str, extra: &[&str]) -> Output {
        self.cmd(sub, extra).output().expect("megamix-meds runs")
    }

    pub fn ok(&self, sub: &str, extra: &[&str]) -> Output {
        let o = self.run(sub, extra);
        assert!(
            o.status.success(),
            "megamix-meds {sub}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn tile_dir(&self) -> PathBuf {
        self.out.join("e2e01max").join("DES0000+0000")
    }

    pub fn collated(&self) -> PathBuf {
        self.out
            .join("e2e01max")
            .join("output")
            .join("DES0000+0000-e2e01max.fits")
    }

    /// Wait for the stalled chunk's pid, then `kill -9` it.
    pub fn kill_stalled(&self, timeout: Duration) {
        let t0 = Instant::now();
        let pid = loop {
            if let Ok(t) = std::fs::read_to_string(&self.pidfile) {
                if let Ok(p) = t.trim().parse::<i32>() {
                    break p;
                }
            }
            assert!(
                t0.elapsed() < timeout,
                "the stalled chunk did not start within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let st = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -9 {pid}");
    }

    /// Poll `status` until its exit code is not 3 (pending/running); returns it and stdout.
    pub fn wait_status(&self, timeout: Duration) -> (i32, String) {
        let t0 = Instant::now();
        loop {
            let o = self.run("status", &[]);
            let code = o.status.code().unwrap_or(-1);
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            if code != 3 {
                return (code, text);
            }
            assert!(
                t0.elapsed() < timeout,
                "status still 3 after {timeout:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// One `ngmixit --seed 7` run of the whole tile.
pub fn single_run(dir: &Path) -> PathBuf {
    let out = dir.join("whole.fits");
    let o = Command::new(env!("CARGO_BIN_EXE_ngmixit"))
        .current_dir(root())
        .args(["--seed", &SEED.to_string(), CONFIG])
        .arg(&out)
        .arg(MEDS)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

pub fn assert_same_columns(a: &Columns, b: &Columns, except: &[&str], what: &str) {
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
        assert_eq!(c.data, d.data, "{what}: values of {}", c.name);
    }
}

/// The collated catalogue equals the single run in every column but the fit times.
pub fn assert_equals_single_run(collated: &Path, whole: &Path) {
    for hdu in ["model_fits", "epoch_data"] {
        let a = read_table(whole, hdu).unwrap();
        let b = read_table(collated, hdu).unwrap();
        assert_eq!(
            a.nrows(),
            if hdu == "model_fits" { NOBJ } else { a.nrows() }
        );
        assert_same_columns(&a, &b, &["time_last_fit"], hdu);
    }
}
