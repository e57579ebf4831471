//! `--system slac` and `slac-array` (feature `slac`): LSF `bsub` job scripts (spec §8.1, §8.2).
//!
//! * Per chunk (`slac`): Y1 `job.sh` in the chunk directory (`#BSUB -J <base>`,
//!   `-oo ./<base>.oe`, `-R "linux64 && rhel60 && scratch > 6"`, `-n`, `-We`, `-W`, the extra
//!   commands, `TMPDIR=/scratch/$USER/$LSB_JOBID-$LSB_JOBINDEX`, `./runchunk.sh`); Y3
//!   `<base>.lsf` (the same header in the Y3 order with `-R span[hosts=1]`). Submitted with
//!   `cd dir && bsub -q <queue> < job`.
//! * Array (`slac-array`, Y1): chunk directories `work/chunk<k+1>`, `work/array_jobs.dat` (line
//!   `k+1`: `cd ./chunk<k+1> && ./job.sh && cd -`), `work/runarray.sh` (runs line `$1`) and
//!   `work/jobarray.sh` with `#BSUB -J <tile>[1-3,5]` listing the chunks to run, submitted
//!   with `bsub -q <queue> < jobarray.sh` in `work`.
//!
//! A submitted job leaves `<job file>.submitted`; LSF is not asked about states (a submitted
//! chunk without a state file is pending; the chunk scripts' state files tell the rest).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{
    lsf_index_string, shell_quote, write_executable, write_file, Layout, SysState, TileJobs,
};
use crate::error::{Error, Result};
use crate::traits::BatchSystem;

/// LSF at SLAC.
#[derive(Debug, Clone)]
pub struct Lsf {
    /// One array job (`slac-array`) instead of one job per chunk.
    pub array: bool,
    /// Queue (default `medium`).
    pub queue: String,
}

impl Lsf {
    /// Per-chunk jobs (`array == false`) or one array, on `queue` (None: `medium`).
    pub fn new(array: bool, queue: Option<String>) -> Self {
        Self {
            array,
            queue: queue.unwrap_or_else(|| "medium".into()),
        }
    }

    fn job_name(tile: &TileJobs, k: usize) -> String {
        let c = &tile.chunks[k];
        match tile.layout {
            Layout::Y1 => "job.sh".into(),
            Layout::Y3 => format!("{}.lsf", c.base),
        }
    }
}

/// The per-chunk LSF script of chunk `k`.
pub fn chunk_job(tile: &TileJobs, k: usize) -> String {
    let c = &tile.chunks[k];
    match tile.layout {
        Layout::Y1 => format!(
            "#!/bin/bash\n\
             #BSUB -J {b}\n\
             #BSUB -oo ./{b}.oe\n\
             #BSUB -R \"linux64 && rhel60 && scratch > 6\"\n\
             #BSUB -n {n}\n\
             #BSUB -We {we}\n\
             #BSUB -W {w}\n\
             {extra}\
             export TMPDIR=/scratch/$USER/$LSB_JOBID-$LSB_JOBINDEX\n\
             mkdir -p $TMPDIR\n\
             ./{s}\n\
             rm -rf $TMPDIR\n",
            b = c.base,
            n = tile.ncores.max(1),
            we = tile.walltime_e,
            w = tile.walltime,
            extra = tile.extra_text(),
            s = c.script,
        ),
        Layout::Y3 => format!(
            "#!/bin/bash\n\
             #BSUB -J {b}\n\
             #BSUB -oo ./{b}.oe\n\
             #BSUB -n {n}\n\
             #BSUB -We {we}\n\
             #BSUB -W {w}\n\
             #BSUB -R \"linux64 && rhel60 && scratch > 6\"\n\
             #BSUB -R span[hosts=1]\n\
             \n\
             {extra}\
             export TMPDIR=/scratch/$USER/$LSB_JOBID-$LSB_JOBINDEX\n\
             \n\
             {s}\n",
            b = c.base,
            n = tile.ncores.max(1),
            we = tile.walltime_e,
            w = tile.walltime,
            extra = tile.extra_text(),
            s = c.script_path().display(),
        ),
    }
}

/// The array script `jobarray.sh` running `chunks`.
pub fn array_job(tile: &TileJobs, chunks: &[usize]) -> String {
    format!(
        "#!/bin/bash\n\
         #BSUB -J {t}{idx}\n\
         #BSUB -oo ./chunk%I/{t}.%I.oe\n\
         #BSUB -R \"linux64 && rhel60 && scratch > 6\"\n\
         #BSUB -n {n}\n\
         #BSUB -We {we}\n\
         #BSUB -W {w}\n\
         {extra}\
         ./runarray.sh $LSB_JOBINDEX\n",
        t = tile.tile,
        idx = lsf_index_string(chunks),
        n = tile.ncores.max(1),
        we = tile.walltime_e,
        w = tile.walltime,
        extra = tile.extra_text(),
    )
}

fn bsub(dir: &std::path::Path, queue: &str, job: &str) -> Result<String> {
    let file = std::fs::File::open(dir.join(job)).map_err(|e| Error::Io {
        path: dir.join(job),
        source: e,
    })?;
    let out = Command::new("bsub")
        .current_dir(dir)
        .args(["-q", queue])
        .stdin(Stdio::from(file))
        .output()
        .map_err(|e| Error::Usage(format!("bsub: cannot run: {e}")))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "bsub {job} in {}: {} ({})",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl BatchSystem for Lsf {
    fn name(&self) -> &'static str {
        if self.array {
            "slac-array"
        } else {
            "slac"
        }
    }

    fn tmpdir_expr(&self) -> &'static str {
        "${TMPDIR}"
    }

    fn chunk_names(
        &self,
        layout: Layout,
        tile: &str,
        run: &str,
        k: usize,
        r: (i64, i64),
    ) -> Option<(String, String)> {
        (self.array && layout == Layout::Y1).then(|| {
            (
                format!("chunk{}", k + 1),
                format!("{tile}-{run}-{}-{}", r.0, r.1),
            )
        })
    }

    fn write_jobs(&self, tile: &TileJobs, chunks: &[usize]) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for &k in chunks {
            let c = &tile.chunks[k];
            let p = c.dir.join(Self::job_name(tile, k));
            let _ = std::fs::remove_file(format!("{}.submitted", p.display()));
            write_executable(&p, &chunk_job(tile, k))?;
            out.push(p);
        }
        if self.array {
            let lines: String = (0..tile.chunks.len())
                .map(|k| format!("cd {} && ./job.sh && cd -\n", tile.rel_dir(k)))
                .collect();
            let dat = tile.work_dir.join("array_jobs.dat");
            write_file(&dat, &lines)?;
            let ra = tile.work_dir.join("runarray.sh");
            write_executable(
                &ra,
                "#!/bin/bash\n# run line $1 (1-based) of array_jobs.dat\n\
                 cd \"$(dirname \"$0\")\" || exit 1\n\
                 cmd=$(sed -n \"${1}p\" array_jobs.dat)\n\
                 [ -n \"$cmd\" ] || { echo \"no line $1 in array_jobs.dat\"; exit 1; }\n\
                 eval \"$cmd\"\n",
            )?;
            let ja = tile.work_dir.join("jobarray.sh");
            let _ = std::fs::remove_file(&ja);
            if !chunks.is_empty() {
                write_executable(&ja, &array_job(tile, chunks))?;
                out.push(ja);
            }
            out.push(dat);
            out.push(ra);
        }
        Ok(out)
    }

    fn submit(
        &mut self,
        tile: &TileJobs,
        chunks: &[usize],
        log: &mut dyn FnMut(&str),
    ) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        if self.array {
            let msg = bsub(&tile.work_dir, &self.queue, "jobarray.sh")?;
            for &k in chunks {
                let c = &tile.chunks[k];
                write_file(&c.dir.join("job.sh.submitted"), &format!("{msg}\n"))?;
            }
            log(&format!("bsub jobarray.sh: {msg}"));
            return Ok(());
        }
        for &k in chunks {
            let c = &tile.chunks[k];
            let job = Self::job_name(tile, k);
            let msg = bsub(&c.dir, &self.queue, &job)?;
            write_file(&c.dir.join(format!("{job}.submitted")), &format!("{msg}\n"))?;
            log(&format!("chunk {k}: bsub {job}: {msg}"));
        }
        Ok(())
    }

    fn states(&self, tile: &TileJobs) -> Result<Vec<SysState>> {
        Ok((0..tile.chunks.len())
            .map(|k| {
                let c = &tile.chunks[k];
                let job = if self.array {
                    "job.sh".to_string()
                } else {
                    Self::job_name(tile, k)
                };
                if c.dir.join(format!("{job}.submitted")).exists() {
                    SysState::Pending
                } else {
                    SysState::Unknown
                }
            })
            .collect())
    }

    fn command(&self, tile: &TileJobs, chunk: usize) -> String {
        let c = &tile.chunks[chunk];
        format!(
            "cd {} && bsub -q {} < {}",
            shell_quote(&c.dir.display().to_string()),
            shell_quote(&self.queue),
            Self::job_name(tile, chunk)
        )
    }
}
