//! Batch systems for megamixer runs (spec §1.2–1.4, §8).
//!
//! A [`Megamixer`] owns one tile of a run: its layout on disk (Y1 `$DESDATA` inputs with
//! `<out>/<run>/<T>/work/chunk%05d_%d_%d`, or Y3 `$NGMIXER_OUTPUT_DIR/<run>/<tile>/chunk%06d-%06d`),
//! its chunks (object or FoF index ranges, [`crate::collate::chunk_ranges`]), the per-chunk
//! scripts and seeds, and the collation. Where and how the chunk jobs run is a
//! [`BatchSystem`]: one file and one Cargo feature per system —
//!
//! | system | feature | file |
//! |---|---|---|
//! | `local` ([`local::Local`]): child processes, at most N at once | `local` | `local.rs` |
//! | `shell` ([`shell::Shell`]): one chunk after the other | always | `shell.rs` |
//! | `slurm` ([`slurm::Slurm`]): `sbatch` job arrays | `slurm` | `slurm.rs` |
//! | `slac`, `slac-array` ([`slac::Lsf`]): LSF `bsub` scripts and arrays | `slac` | `slac.rs` |
//! | `bnl` ([`bnl::Condor`]): an HTCondor submit file | `bnl` | `bnl.rs` |
//!
//! Every chunk script runs `ngmixit --fof-range=S,E` in its own directory (all paths inside the
//! tile are relative to it, so a tile directory can be moved) and records its progress in
//! `<base>.state`: `running <pid> <host> <start>` while `ngmixit` runs, then
//! `exit <rc> <host> <start> <end>`. A chunk is done when its output exists (ngmixit renames
//! it into place only when complete); failed when its script recorded a non-zero exit, or
//! when the system reports the job ended (killed, timed out) without output.

pub mod cli;
pub mod layout;
pub mod seeds;
pub mod shell;

#[cfg(feature = "bnl")]
pub mod bnl;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "slac")]
pub mod slac;
#[cfg(feature = "slurm")]
pub mod slurm;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
pub use crate::traits::BatchSystem;

/// The `--system` names and the Cargo feature each needs.
pub const SYSTEMS: &[(&str, &str)] = &[
    ("shell", "(none)"),
    ("local", "local"),
    ("slurm", "slurm"),
    ("slac", "slac"),
    ("slac-array", "slac"),
    ("bnl", "bnl"),
];

/// The error for a system this build lacks: which feature to build with.
pub fn missing_feature(system: &str) -> Error {
    match SYSTEMS.iter().find(|(n, _)| *n == system) {
        Some((_, feat)) => Error::Usage(format!(
            "--system {system}: this build of ngmixer-rs lacks the `{feat}` feature; rebuild \
             with `cargo build --features {feat}`"
        )),
        None => Error::Usage(format!(
            "--system {system}: unknown system (known: {})",
            SYSTEMS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Which directory layout (and script flavour) a tile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `megamixit`: `<out>/<run>/<T>/work/chunk%05d_%d_%d/runchunk.sh`, base
    /// `<tile>-<run>-<s>-<e>`.
    Y1,
    /// `megamix-meds`: `<out>/<run>/<tile>/chunk%06d-%06d/<base>.sh`, base
    /// `<tile>-<run>-%06d-%06d`.
    Y3,
}

/// How chunk seeds are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedMode {
    /// The original: `RandomState(seed).randint(1, 1e9)` per chunk, in chunk order.
    PerChunk(u64),
    /// Every chunk gets this seed: since ngmixit derives each object's stream from
    /// `(seed, id)`, the collated catalogue equals one `ngmixit --seed` run of the whole
    /// tile, whatever the chunking (`--tile-seed`).
    Tile(u64),
    /// No `--seed` in the scripts (Y1 run configs with a `seed` key, as the original).
    None,
}

/// One chunk of a tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkJob {
    /// Chunk number (0-based).
    pub index: usize,
    /// Inclusive object (FoF) index range.
    pub range: (i64, i64),
    /// The chunk directory.
    pub dir: PathBuf,
    /// Output base name (`<base>.fits`, `.log`, `-checkpoint.fits`, `.state`).
    pub base: String,
    /// File name of the chunk script inside `dir` (`runchunk.sh` or `<base>.sh`).
    pub script: String,
    /// `--seed` of the chunk.
    pub seed: Option<u64>,
}

impl ChunkJob {
    /// The chunk output.
    pub fn output(&self) -> PathBuf {
        self.dir.join(format!("{}.fits", self.base))
    }
    /// The ngmixit log (moved into the chunk directory when ngmixit ends).
    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.base))
    }
    /// The checkpoint ngmixit keeps while running.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join(format!("{}-checkpoint.fits", self.base))
    }
    /// The state file the chunk script writes.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join(format!("{}.state", self.base))
    }
    /// The chunk script.
    pub fn script_path(&self) -> PathBuf {
        self.dir.join(&self.script)
    }
    /// Objects (FoFs) in the chunk.
    pub fn len(&self) -> usize {
        (self.range.1 - self.range.0 + 1) as usize
    }
    /// Never true (a chunk has at least one object); for clippy.
    pub fn is_empty(&self) -> bool {
        self.range.1 < self.range.0
    }
}

/// What a batch system sees of a tile.
#[derive(Debug, Clone)]
pub struct TileJobs {
    /// Layout.
    pub layout: Layout,
    /// Run name.
    pub run: String,
    /// Tile name (Y1: the coadd tile, the text after the last `_` of the coadd run).
    pub tile: String,
    /// Directory of the shared job files (Y1 `work`, Y3 the tile directory).
    pub work_dir: PathBuf,
    /// The chunks in order.
    pub chunks: Vec<ChunkJob>,
    /// `--extra-cmds` lines, pasted into every job script.
    pub extra_cmds: Vec<String>,
    /// Wall time (`H:MM`, LSF style).
    pub walltime: String,
    /// Estimated wall time (LSF `-We`).
    pub walltime_e: String,
    /// Cores per job.
    pub ncores: usize,
    /// Queue (LSF `-q`, Slurm `--partition`).
    pub queue: Option<String>,
    /// Shell command that collates the tile (for a collate job after the chunks).
    pub collate_cmd: Option<String>,
}

impl TileJobs {
    /// The extra commands as script text (empty or ending in a newline).
    pub fn extra_text(&self) -> String {
        let mut s = String::new();
        for l in &self.extra_cmds {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The relative path of a chunk directory from the work directory.
    pub fn rel_dir(&self, k: usize) -> String {
        let d = &self.chunks[k].dir;
        match d.strip_prefix(&self.work_dir) {
            Ok(r) => format!("./{}", r.display()),
            Err(_) => d.display().to_string(),
        }
    }

    /// Write the generic per-chunk `job.sh` (extra commands, then the chunk script) used
    /// by the shell-like systems and Slurm.
    pub fn write_plain_job(&self, k: usize) -> Result<PathBuf> {
        let c = &self.chunks[k];
        let text = format!(
            "#!/bin/bash\n{}cd \"$(dirname \"$0\")\" || exit 1\n./{}\n",
            self.extra_text(),
            c.script
        );
        let p = c.dir.join("job.sh");
        write_executable(&p, &text)?;
        Ok(p)
    }
}

/// What a batch system knows about a chunk's latest job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysState {
    /// Nothing (never submitted, forgotten, or a system that cannot be asked).
    Unknown,
    /// Queued.
    Pending,
    /// Running.
    Running,
    /// Ended successfully.
    Completed,
    /// Ended otherwise (the system's word: `FAILED`, `CANCELLED`, `TIMEOUT`, a signal ...).
    Failed(String),
}

/// The state of one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkState {
    /// Not run yet (or its job was forgotten before it started).
    Missing,
    /// Queued.
    Pending,
    /// Running.
    Running,
    /// Output present.
    Done,
    /// Ended without output (why).
    Failed(String),
}

impl ChunkState {
    /// Short name for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed(_) => "failed",
        }
    }
}

/// What a chunk script recorded in its state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// No state file.
    Nothing,
    /// `running <pid> <host> <start>`.
    Running {
        /// Shell pid.
        pid: u32,
        /// Host (short name).
        host: String,
        /// Start (Unix seconds).
        start: u64,
    },
    /// `exit <rc> <host> <start> <end>`.
    Exit {
        /// Exit code of ngmixit (128+N for signal N).
        rc: i32,
        /// Start (Unix seconds).
        start: u64,
        /// End (Unix seconds).
        end: u64,
    },
}

/// Read a chunk's state file.
pub fn recorded(c: &ChunkJob) -> Recorded {
    let Ok(text) = std::fs::read_to_string(c.state_file()) else {
        return Recorded::Nothing;
    };
    let f: Vec<&str> = text.split_whitespace().collect();
    match f.as_slice() {
        ["running", pid, host, start, ..] => match (pid.parse(), start.parse()) {
            (Ok(pid), Ok(start)) => Recorded::Running {
                pid,
                host: host.to_string(),
                start,
            },
            _ => Recorded::Nothing,
        },
        ["exit", rc, _host, start, end, ..] => match (rc.parse(), start.parse(), end.parse()) {
            (Ok(rc), Ok(start), Ok(end)) => Recorded::Exit { rc, start, end },
            _ => Recorded::Nothing,
        },
        _ => Recorded::Nothing,
    }
}

/// This machine's short host name (as `hostname -s` prints it).
pub fn short_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().split('.').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Is process `pid` alive on this machine (and not a zombie)?
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match s.rfind(')') {
            Some(i) => !matches!(s[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// The state of a chunk from its files and what the system says.
pub fn combine(c: &ChunkJob, sys: &SysState) -> ChunkState {
    if c.output().exists() {
        return ChunkState::Done;
    }
    match recorded(c) {
        Recorded::Exit { rc, .. } if rc != 0 => {
            let what = if rc > 128 {
                format!(
                    "ngmixit exited with code {rc} (killed by signal {})",
                    rc - 128
                )
            } else {
                format!("ngmixit exited with code {rc}")
            };
            return ChunkState::Failed(what);
        }
        Recorded::Exit { .. } => {
            return ChunkState::Failed("ngmixit exited with code 0 but wrote no output".into())
        }
        Recorded::Running { pid, host, .. } => match sys {
            SysState::Failed(w) => {
                return ChunkState::Failed(format!("job ended while the chunk ran: {w}"))
            }
            SysState::Completed => {
                return ChunkState::Failed("job ended while the chunk ran (no output)".into())
            }
            SysState::Running => return ChunkState::Running,
            SysState::Unknown | SysState::Pending => {
                if host == short_hostname() && !pid_alive(pid) {
                    return ChunkState::Failed(format!(
                        "the chunk script (pid {pid}) ended without recording an exit \
                         (killed?)"
                    ));
                }
                return ChunkState::Running;
            }
        },
        Recorded::Nothing => {}
    }
    match sys {
        SysState::Unknown => ChunkState::Missing,
        SysState::Pending => ChunkState::Pending,
        SysState::Running => ChunkState::Running,
        SysState::Completed => ChunkState::Failed("job completed without output".into()),
        SysState::Failed(w) => ChunkState::Failed(format!("job {w} before the chunk started")),
    }
}

/// Write `text` to `path` with mode 755.
pub fn write_executable(path: &Path, text: &str) -> Result<()> {
    write_file(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| {
            Error::Io {
                path: path.to_path_buf(),
                source: e,
            }
        })?;
    }
    Ok(())
}

/// Write `text` to `path` (errors name the file).
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Quote a word for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%{}$".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Run a command, failing with its stderr when it exits non-zero.
pub fn run_command(cmd: &mut std::process::Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| Error::Usage(format!("{what}: cannot run: {e}")))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "{what}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Compress sorted 0-based chunk numbers into LSF's 1-based index string: `[1-3,5]`
/// (spec §8.1, §11 item 55).
pub fn lsf_index_string(chunks: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < chunks.len() {
        let mut j = i;
        while j + 1 < chunks.len() && chunks[j + 1] == chunks[j] + 1 {
            j += 1;
        }
        if i == j {
            parts.push(format!("{}", chunks[i] + 1));
        } else {
            parts.push(format!("{}-{}", chunks[i] + 1, chunks[j] + 1));
        }
        i = j + 1;
    }
    format!("[{}]", parts.join(","))
}

/// Everything a tile of a megamixer run is made of.
#[derive(Debug, Clone)]
pub struct TilePlan {
    /// Layout.
    pub layout: Layout,
    /// Run name.
    pub run: String,
    /// Tile name.
    pub tile: String,
    /// The tile's output directory (Y1 `<out>/<run>/<T>`, Y3 `<out>/<run>/<tile>`).
    pub tile_dir: PathBuf,
    /// Shared job files (Y1 `tile_dir/work`, Y3 `tile_dir`).
    pub work_dir: PathBuf,
    /// The run directory `<out>/<run>`.
    pub run_dir: PathBuf,
    /// Directory of the collated file (Y1 `tile_dir`, Y3 `<run>/output`).
    pub collated_dir: PathBuf,
    /// The fitting config.
    pub config_file: PathBuf,
    /// The run config (Y1), copied into the work directory.
    pub run_config: Option<PathBuf>,
    /// MEDS files, one per band.
    pub meds_files: Vec<PathBuf>,
    /// Prefix written as `${DESDATA}` in the scripts (Y1).
    pub desdata: Option<PathBuf>,
    /// `--fof-file` (chunks are FoF ranges).
    pub fof_file: Option<PathBuf>,
    /// `--nbrs-file`.
    pub nbrs_file: Option<PathBuf>,
    /// `--obj-flags`.
    pub obj_flags: Option<PathBuf>,
    /// `--mof-file`.
    pub mof_file: Option<PathBuf>,
    /// `--psf-map` files.
    pub psf_map: Vec<PathBuf>,
    /// Objects (FoFs) per chunk.
    pub chunksize: usize,
    /// Seeds.
    pub seeds: SeedMode,
    /// `--extra-cmds` file.
    pub extra_cmds: Option<PathBuf>,
    /// Wall time, estimated wall time, cores, queue.
    pub walltime: String,
    /// LSF `-We`.
    pub walltime_e: String,
    /// Cores per chunk (`ngmixit --threads`).
    pub ncores: usize,
    /// Queue.
    pub queue: Option<String>,
    /// Command collating the tile (Slurm collate job).
    pub collate_cmd: Option<String>,
    /// `--missing`: write scripts only for chunks without output.
    pub missing_only: bool,
}

impl TilePlan {
    /// Number of objects (FoFs with a FoF file) of the tile.
    ///
    /// # Errors
    /// Unreadable MEDS or FoF file.
    #[cfg(feature = "des-y1")]
    pub fn count(&self) -> Result<usize> {
        if let Some(f) = &self.fof_file {
            let cols = crate::run::files::read_first_table(f)?;
            let ids = crate::run::files::int_column(&cols, f, "fofid")?;
            let mut v = ids.to_vec();
            v.sort_unstable();
            v.dedup();
            return Ok(v.len());
        }
        let m = self
            .meds_files
            .first()
            .ok_or_else(|| Error::Usage("no MEDS file given".into()))?;
        Ok(crate::backends::meds::read_table(m, "object_data")?.nrows())
    }

    fn chunk_dir_name(&self, k: usize, r: (i64, i64)) -> String {
        match self.layout {
            Layout::Y1 => format!("chunk{k:05}_{}_{}", r.0, r.1),
            Layout::Y3 => format!("chunk{:06}-{:06}", r.0, r.1),
        }
    }

    fn base_name(&self, r: (i64, i64)) -> String {
        match self.layout {
            Layout::Y1 => format!("{}-{}-{}-{}", self.tile, self.run, r.0, r.1),
            Layout::Y3 => format!("{}-{}-{:06}-{:06}", self.tile, self.run, r.0, r.1),
        }
    }

    /// The chunks of `n` objects (FoFs): names, ranges and seeds.
    ///
    /// # Errors
    /// A `--seed` numpy cannot take.
    pub fn chunks<S: BatchSystem>(&self, n: usize, sys: &S) -> Result<Vec<ChunkJob>> {
        let ranges = crate::collate::chunk_ranges(n, self.chunksize);
        let seeds: Vec<Option<u64>> = match self.seeds {
            SeedMode::PerChunk(s) => seeds::RandomState::new(s)?
                .chunk_seeds(ranges.len())
                .into_iter()
                .map(Some)
                .collect(),
            SeedMode::Tile(s) => vec![Some(s); ranges.len()],
            SeedMode::None => vec![None; ranges.len()],
        };
        Ok(ranges
            .iter()
            .zip(seeds)
            .enumerate()
            .map(|(k, (&r, seed))| {
                let (dir, base) = sys
                    .chunk_names(self.layout, &self.tile, &self.run, k, r)
                    .unwrap_or_else(|| (self.chunk_dir_name(k, r), self.base_name(r)));
                ChunkJob {
                    index: k,
                    range: r,
                    dir: self.work_dir.join(dir),
                    script: match self.layout {
                        Layout::Y1 => "runchunk.sh".into(),
                        Layout::Y3 => format!("{base}.sh"),
                    },
                    base,
                    seed,
                }
            })
            .collect())
    }

    /// The collated file (`-blind` suffix when blinded).
    pub fn collated_file(&self, blinded: bool) -> PathBuf {
        crate::collate::collated_name(&self.collated_dir, &self.tile, &self.run, blinded)
    }

    fn display_path(&self, p: &Path) -> String {
        let s = p.display().to_string();
        match &self.desdata {
            Some(d) => {
                let d = d.display().to_string();
                if !d.is_empty() && s.starts_with(&d) {
                    format!("${{DESDATA}}{}", &s[d.len()..])
                } else {
                    s
                }
            }
            None => s,
        }
    }

    /// The name of the fitting config copied into the work directory.
    pub fn config_copy_name(&self) -> String {
        self.config_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ngmix-config.yaml".into())
    }

    /// The text of a chunk script.
    pub fn chunk_script(&self, c: &ChunkJob, tmpdir_expr: &str) -> String {
        let meds: Vec<String> = self
            .meds_files
            .iter()
            .map(|m| self.display_path(m))
            .collect();
        let mut opts = Vec::new();
        if !self.psf_map.is_empty() {
            let maps: Vec<String> = self.psf_map.iter().map(|p| self.display_path(p)).collect();
            opts.push(format!("--psf-map=\"{}\"", maps.join(",")));
        }
        for (opt, f) in [
            ("--fof-file", &self.fof_file),
            ("--nbrs-file", &self.nbrs_file),
            ("--obj-flags", &self.obj_flags),
            ("--mof-file", &self.mof_file),
        ] {
            if let Some(f) = f {
                opts.push(format!("{opt}={}", self.display_path(f)));
            }
        }
        if let Some(s) = c.seed {
            opts.push(format!("--seed={s}"));
        }
        opts.push(format!("--threads={}", self.ncores.max(1)));
        let what = if self.fof_file.is_some() {
            "FoFs"
        } else {
            "objects"
        };
        let mut s = String::new();
        let _ = write!(
            s,
            "#!/bin/bash\n\
             # chunk {k} of tile {tile}, run {run}: {what} {a}..{b} (written by ngmixer-rs)\n\
             cd \"$(dirname \"$0\")\" || exit 1\n\
             chunk={k}\n\
             config=../{config}\n\
             obase={base}\n\
             ofile=$obase\".fits\"\n\
             lfile=$obase\".log\"\n\
             meds=\"{meds}\"\n\
             tmpdir={tmp}\n\
             mkdir -p \"$tmpdir\" || exit 1\n\
             export OMP_NUM_THREADS=1\n\
             \n\
             if [ ! -f \"$ofile\" ]\n\
             then\n\
             \x20   t0=$(date +%s)\n\
             \x20   echo \"running $$ $(hostname -s) $t0\" > \"$obase.state\"\n\
             \x20   ngmixit \\\n\
             \x20       --fof-range={a},{b} \\\n\
             \x20       --work-dir=$tmpdir \\\n",
            k = c.index,
            tile = self.tile,
            run = self.run,
            a = c.range.0,
            b = c.range.1,
            config = self.config_copy_name(),
            base = c.base,
            meds = meds.join(" "),
            tmp = tmpdir_expr,
        );
        for o in &opts {
            let _ = writeln!(s, "        {o} \\");
        }
        s.push_str(
            "        $config $ofile $meds &> $tmpdir/$lfile\n    \
             rc=$?\n    \
             mv -f $tmpdir/$lfile .\n    \
             echo \"exit $rc $(hostname -s) $t0 $(date +%s)\" > \"$obase.state\"\n    \
             exit $rc\n\
             fi\n",
        );
        s
    }
}

/// One chunk in a status report.
#[derive(Debug, Clone)]
pub struct ChunkStatus {
    /// The chunk.
    pub chunk: ChunkJob,
    /// Its state.
    pub state: ChunkState,
}

/// The state of every chunk of a tile, with the rate and the time left.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// Tile.
    pub tile: String,
    /// Chunks in order.
    pub chunks: Vec<ChunkStatus>,
    /// Objects (FoFs) per second of wall time since the first chunk started.
    pub rate: Option<f64>,
    /// Seconds left at that rate.
    pub eta: Option<f64>,
}

impl StatusReport {
    /// Count of chunks in each state: (done, pending, running, failed, missing).
    pub fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0, 0);
        for s in &self.chunks {
            match s.state {
                ChunkState::Done => c.0 += 1,
                ChunkState::Pending => c.1 += 1,
                ChunkState::Running => c.2 += 1,
                ChunkState::Failed(_) => c.3 += 1,
                ChunkState::Missing => c.4 += 1,
            }
        }
        c
    }

    /// Exit code of `status`: 0 all done; 3 some still pending or running; otherwise 1 (some
    /// failed or never run).
    pub fn exit_code(&self) -> i32 {
        let (done, pend, run, _, _) = self.counts();
        if done == self.chunks.len() {
            0
        } else if pend + run > 0 {
            3
        } else {
            1
        }
    }

    /// The report as text: one line per chunk, the log tail of failed chunks, a summary.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "tile {}:", self.tile);
        for c in &self.chunks {
            let _ = write!(
                s,
                "  chunk {:>5} [{}, {}] {:<8} {}",
                c.chunk.index,
                c.chunk.range.0,
                c.chunk.range.1,
                c.state.label(),
                c.chunk.dir.display()
            );
            if let ChunkState::Failed(why) = &c.state {
                let _ = write!(s, ": {why}");
                s.push('\n');
                for l in log_tail(&c.chunk, 10) {
                    let _ = writeln!(s, "      | {l}");
                }
            } else {
                s.push('\n');
            }
        }
        let (done, pend, run, failed, missing) = self.counts();
        let _ = write!(
            s,
            "{} chunks: {done} done, {run} running, {pend} pending, {failed} failed, {missing} \
             missing",
            self.chunks.len()
        );
        if let Some(r) = self.rate {
            let _ = write!(s, "; {r:.2} objects/s");
        }
        if let Some(e) = self.eta {
            let _ = write!(s, ", ETA {}", fmt_secs(e));
        }
        s.push('\n');
        s
    }
}

fn fmt_secs(t: f64) -> String {
    let t = t.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60)
}

/// The last `n` lines of a chunk's log (its ngmixit log, else its job output).
pub fn log_tail(c: &ChunkJob, n: usize) -> Vec<String> {
    let mut cands = vec![c.log(), c.dir.join("job.out")];
    if let Ok(rd) = std::fs::read_dir(&c.dir) {
        let mut extra: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "oe" || e == "out" || e == "err")
            })
            .collect();
        extra.sort();
        cands.extend(extra);
    }
    for p in cands {
        if let Ok(t) = std::fs::read_to_string(&p) {
            let lines: Vec<String> = t.lines().map(str::to_string).collect();
            if lines.is_empty() {
                continue;
            }
            let k = lines.len().saturating_sub(n);
            let mut out = vec![format!("(last lines of {})", p.display())];
            out.extend(lines[k..].iter().cloned());
            return out;
        }
    }
    vec!["(no log)".into()]
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A megamixer over one tile on batch system `S`.
#[derive(Debug)]
pub struct Megamixer<S: BatchSystem> {
    plan: TilePlan,
    jobs: TileJobs,
    /// Objects (FoFs) of the tile.
    pub total: usize,
    system: S,
}

impl<S: BatchSystem> Megamixer<S> {
    /// The megamixer of `plan` with `total` objects (FoFs) on `system`.
    ///
    /// # Errors
    /// Unreadable `--extra-cmds`, a bad seed, chunk size 0.
    pub fn new(plan: TilePlan, total: usize, system: S) -> Result<Self> {
        if plan.chunksize == 0 {
            return Err(Error::Usage("the chunk size must be >= 1".into()));
        }
        let extra_cmds = match &plan.extra_cmds {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| Error::Usage(format!("--extra-cmds {}: {e}", p.display())))?
                .lines()
                .map(|l| l.trim().to_string())
                .collect(),
            None => Vec::new(),
        };
        let jobs = TileJobs {
            layout: plan.layout,
            run: plan.run.clone(),
            tile: plan.tile.clone(),
            work_dir: plan.work_dir.clone(),
            chunks: plan.chunks(total, &system)?,
            extra_cmds,
            walltime: plan.walltime.clone(),
            walltime_e: plan.walltime_e.clone(),
            ncores: plan.ncores,
            queue: plan.queue.clone(),
            collate_cmd: plan.collate_cmd.clone(),
        };
        Ok(Self {
            plan,
            jobs,
            total,
            system,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &TilePlan {
        &self.plan
    }

    /// The chunks and shared job settings.
    pub fn jobs(&self) -> &TileJobs {
        &self.jobs
    }

    /// The batch system.
    pub fn system(&self) -> &S {
        &self.system
    }

    fn copy_into_work(&self, src: &Path, name: &str) -> Result<()> {
        let dst = self.plan.work_dir.join(name);
        if same_path(src, &dst) {
            return Ok(());
        }
        std::fs::copy(src, &dst).map_err(|e| {
            Error::Usage(format!(
                "cannot copy {} to {}: {e}",
                src.display(),
                dst.display()
            ))
        })?;
        Ok(())
    }

    /// `setup`: directories, config copies, chunk scripts and job files.
    ///
    /// # Errors
    /// Missing inputs, unwritable directories.
    pub fn setup(&self, log: &mut dyn FnMut(&str)) -> Result<Vec<usize>> {
        for m in &self.plan.meds_files {
            if !m.exists() {
                return Err(Error::Usage(format!(
                    "MEDS file {} does not exist",
                    m.display()
                )));
            }
        }
        for (what, f) in [
            ("FoF file", &self.plan.fof_file),
            ("nbrs file", &self.plan.nbrs_file),
            ("MOF file", &self.plan.mof_file),
        ] {
            if let Some(f) = f {
                if !f.exists() {
                    return Err(Error::Usage(format!(
                        "{what} {} does not exist",
                        f.display()
                    )));
                }
            }
        }
        std::fs::create_dir_all(&self.plan.work_dir).map_err(io(&self.plan.work_dir))?;
        self.copy_into_work(&self.plan.config_file, &self.plan.config_copy_name())?;
        if let Some(rc) = &self.plan.run_config {
            let name = rc
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run-config.yaml".into());
            self.copy_into_work(rc, &name)?;
        }
        if let Some(e) = &self.plan.extra_cmds {
            let name = e
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "extra-cmds".into());
            self.copy_into_work(e, &name)?;
        }
        let mut written = Vec::new();
        for c in &self.jobs.chunks {
            std::fs::create_dir_all(&c.dir).map_err(io(&c.dir))?;
            let script = c.script_path();
            if self.plan.missing_only {
                let _ = std::fs::remove_file(&script);
                if c.output().exists() {
                    continue;
                }
            }
            write_executable(
                &script,
                &self.plan.chunk_script(c, self.system.tmpdir_expr()),
            )?;
            written.push(c.index);
        }
        self.system.write_jobs(&self.jobs, &written)?;
        log(&format!(
            "set up {} chunks of tile {} ({} {} in chunks of {}) in {}",
            written.len(),
            self.plan.tile,
            self.total,
            if self.plan.fof_file.is_some() {
                "FoFs"
            } else {
                "objects"
            },
            self.plan.chunksize,
            self.plan.work_dir.display()
        ));
        Ok(written)
    }

    /// The state of every chunk.
    ///
    /// # Errors
    /// The system could not be asked.
    pub fn status(&self) -> Result<StatusReport> {
        let sys = self.system.states(&self.jobs)?;
        let mut chunks = Vec::with_capacity(self.jobs.chunks.len());
        let mut first_start = u64::MAX;
        let mut done_obj = 0usize;
        let mut left_obj = 0usize;
        for (c, s) in self
            .jobs
            .chunks
            .iter()
            .zip(sys.iter().chain(std::iter::repeat(&SysState::Unknown)))
        {
            let state = combine(c, s);
            match recorded(c) {
                Recorded::Running { start, .. } | Recorded::Exit { start, .. } => {
                    first_start = first_start.min(start)
                }
                Recorded::Nothing => {}
            }
            if state == ChunkState::Done {
                done_obj += c.len();
            } else {
                left_obj += c.len();
            }
            chunks.push(ChunkStatus {
                chunk: c.clone(),
                state,
            });
        }
        let (rate, eta) = if first_start != u64::MAX && done_obj > 0 {
            let last_end = chunks
                .iter()
                .filter_map(|c| match recorded(&c.chunk) {
                    Recorded::Exit { end, .. } => Some(end),
                    _ => None,
                })
                .max()
                .unwrap_or(first_start);
            let end = if left_obj == 0 { last_end } else { now_secs() };
            let dt = (end.saturating_sub(first_start)).max(1) as f64;
            let r = done_obj as f64 / dt;
            (Some(r), Some(left_obj as f64 / r))
        } else {
            (None, None)
        };
        Ok(StatusReport {
            tile: self.plan.tile.clone(),
            chunks,
            rate,
            eta,
        })
    }

    fn to_run(&self) -> Result<Vec<usize>> {
        let st = self.status()?;
        Ok(st
            .chunks
            .iter()
            .filter(|c| matches!(c.state, ChunkState::Missing | ChunkState::Failed(_)))
            .map(|c| c.chunk.index)
            .collect())
    }

    fn check_setup(&self, chunks: &[usize]) -> Result<()> {
        for &k in chunks {
            let c = &self.jobs.chunks[k];
            if !c.script_path().exists() {
                return Err(Error::Usage(format!(
                    "chunk {k}: no script {}: run `setup` first",
                    c.script_path().display()
                )));
            }
        }
        Ok(())
    }

    fn clear_state(&self, chunks: &[usize]) {
        for &k in chunks {
            let c = &self.jobs.chunks[k];
            let _ = std::fs::remove_file(c.state_file());
        }
    }

    /// `run`: submit (or run) every chunk without output that is not queued or running.
    ///
    /// # Errors
    /// Not set up; the system refused.
    pub fn run(&mut self, log: &mut dyn FnMut(&str)) -> Result<Vec<usize>> {
        let todo = self.to_run()?;
        if todo.is_empty() {
            log(&format!("tile {}: no unfinished chunks", self.plan.tile));
            return Ok(todo);
        }
        self.check_setup(&todo)?;
        self.clear_state(&todo);
        self.system.write_jobs(&self.jobs, &todo)?;
        log(&format!(
            "tile {}: {} {} chunks on {}",
            self.plan.tile,
            if self.system.name() == "shell" || self.system.name() == "local" {
                "running"
            } else {
                "submitting"
            },
            todo.len(),
            self.system.name()
        ));
        self.system.submit(&self.jobs, &todo, log)?;
        Ok(todo)
    }

    /// `resubmit`: only the failed chunks and those never run (none queued or running).
    ///
    /// # Errors
    /// Not set up; the system refused.
    pub fn resubmit(&mut self, log: &mut dyn FnMut(&str)) -> Result<Vec<usize>> {
        let todo = self.to_run()?;
        if todo.is_empty() {
            log(&format!(
                "tile {}: no failed or missing chunks",
                self.plan.tile
            ));
            return Ok(todo);
        }
        self.check_setup(&todo)?;
        log(&format!(
            "tile {}: resubmitting chunks {:?} on {}",
            self.plan.tile,
            todo,
            self.system.name()
        ));
        self.clear_state(&todo);
        self.system.resubmit(&self.jobs, &todo, log)?;
        Ok(todo)
    }

    /// `clean`: remove the chunk outputs and checkpoints (and state files).
    pub fn clean(&self, log: &mut dyn FnMut(&str)) {
        let mut n = 0;
        for c in &self.jobs.chunks {
            for p in [c.output(), c.checkpoint(), c.state_file()] {
                if std::fs::remove_file(&p).is_ok() {
                    n += 1;
                }
            }
        }
        log(&format!("tile {}: removed {n} chunk files", self.plan.tile));
    }

    /// `archive`: clean, then tar the chunk directories (Y1: `work` → `work.tar.gz`; Y3: the
    /// tile directory → `<tile dir>.tar.gz`) and remove them.
    ///
    /// # Errors
    /// `tar` failed (nothing removed then).
    pub fn archive(&self, compress: bool, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let (parent, dir) = match self.plan.layout {
            Layout::Y1 => (self.plan.tile_dir.clone(), "work".to_string()),
            Layout::Y3 => (
                self.plan.run_dir.clone(),
                self.plan
                    .tile_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        };
        let tail = if compress { ".tar.gz" } else { ".tar" };
        let tar = parent.join(format!("{dir}{tail}"));
        let full = parent.join(&dir);
        if !full.exists() && tar.exists() {
            log(&format!(
                "tile {} already archived: {}",
                self.plan.tile,
                tar.display()
            ));
            return Ok(tar);
        }
        self.clean(log);
        let _ = std::fs::remove_file(&tar);
        let flags = if compress { "-czf" } else { "-cf" };
        run_command(
            std::process::Command::new("tar")
                .arg(flags)
                .arg(&tar)
                .arg("-C")
                .arg(&parent)
                .arg(&dir),
            "tar",
        )?;
        std::fs::remove_dir_all(&full).map_err(io(&full))?;
        log(&format!(
            "archived {} into {}",
            full.display(),
            tar.display()
        ));
        Ok(tar)
    }

    /// One command per chunk (`--print-commands`).
    pub fn commands(&self) -> Vec<String> {
        (0..self.jobs.chunks.len())
            .map(|k| self.system.command(&self.jobs, k))
            .collect()
    }

    /// `link`: a relative symlink to the collated file in `<run>/output` (Y1 layout).
    ///
    /// # Errors
    /// No collated file; the link cannot be made.
    pub fn link(&self, blinded: bool, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let target = self.plan.collated_file(blinded);
        if !target.exists() {
            return Err(Error::Usage(format!(
                "link: no collated file {}: run `collate` first",
                target.display()
            )));
        }
        let odir = self.plan.run_dir.join("output");
        std::fs::create_dir_all(&odir).map_err(io(&odir))?;
        let name = target.file_name().unwrap_or_default().to_owned();
        let link = odir.join(&name);
        if link.exists() || link.is_symlink() {
            if same_path(&link, &target) {
                return Ok(link);
            }
            std::fs::remove_file(&link).map_err(io(&link))?;
        }
        let rel = match target.strip_prefix(&self.plan.run_dir) {
            Ok(r) => Path::new("..").join(r),
            Err(_) => target.clone(),
        };
        #[cfg(unix)]
        std::os::unix::fs::symlink(&rel, &link).map_err(io(&link))?;
        log(&format!("linked {} -> {}", link.display(), rel.display()));
        Ok(link)
    }

    /// The chunks as collation inputs, in order, with their ranges.
    pub fn collate_chunks(&self) -> Vec<crate::collate::Chunk> {
        self.jobs
            .chunks
            .iter()
            .map(|c| crate::collate::Chunk::with_range(c.output(), c.range))
            .collect()
    }

    /// `collate`: every chunk in order into the collated file (refused, naming the chunks,
    /// when any is missing, unreadable or overlaps another, unless `skip_errors`).
    ///
    /// # Errors
    /// The collation was refused or failed (nothing written).
    #[cfg(feature = "des-y1")]
    pub fn collate(
        &self,
        opts: crate::collate::CollateOptions,
    ) -> std::result::Result<(PathBuf, crate::collate::Report), crate::collate::CollateError> {
        let out = self.plan.collated_file(opts.blinds());
        if let Some(d) = out.parent() {
            std::fs::create_dir_all(d).map_err(|e| {
                crate::collate::CollateError::Output(Error::Io {
                    path: d.to_path_buf(),
                    source: e,
                })
            })?;
        }
        let c = crate::collate::Collator::new(self.collate_chunks(), opts).expect_total(self.total);
        let rep = c.collate(&out)?;
        Ok((out, rep))
    }

    /// `verify`: the collation checks without writing.
    #[cfg(feature = "des-y1")]
    pub fn verify(&self, opts: crate::collate::CollateOptions) -> crate::collate::Report {
        crate::collate::Collator::new(self.collate_chunks(), opts)
            .expect_total(self.total)
            .verify()
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsf_index_strings_compress_runs() {
        assert_eq!(lsf_index_string(&[0, 1, 2, 4]), "[1-3,5]");
        assert_eq!(lsf_index_string(&[3]), "[4]");
        assert_eq!(lsf_index_string(&[0, 2, 3, 7, 8, 9]), "[1,3-4,8-10]");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("a/b-c.fits"), "a/b-c.fits");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
