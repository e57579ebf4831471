//! `--system shell`: the chunks run one after the other in the foreground (the original's
//! `NGMegaMixer`: `cd dir && ./job.sh` for every chunk without output).
//!
//! Each chunk runs `bash job.sh` in its directory with its output in `job.out`; the pid and
//! host are kept in `job.pid`, so that `status` from another shell sees the running chunk
//! and notices a killed one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{pid_alive, short_hostname, write_file, SysState, TileJobs};
use crate::error::{Error, Result};
use crate::traits::BatchSystem;

/// Chunks one after the other, in this process.
#[derive(Debug, Clone, Default)]
pub struct Shell;

/// Start chunk `k`'s `job.sh` as a child process (output in `job.out`, pid in `job.pid`).
pub(crate) fn spawn_chunk(tile: &TileJobs, k: usize) -> Result<Child> {
    let c = &tile.chunks[k];
    let out_path = c.dir.join("job.out");
    let out = std::fs::File::create(&out_path).map_err(|e| Error::Io {
        path: out_path.clone(),
        source: e,
    })?;
    let err = out.try_clone().map_err(|e| Error::Io {
        path: out_path.clone(),
        source: e,
    })?;
    let child = Command::new("bash")
        .arg("job.sh")
        .current_dir(&c.dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::Usage(format!("chunk {k}: cannot start bash job.sh: {e}")))?;
    write_file(
        &c.dir.join("job.pid"),
        &format!("{} {}\n", child.id(), short_hostname()),
    )?;
    Ok(child)
}

/// What `job.pid` says: running if the process is alive on this host.
pub(crate) fn pid_state(tile: &TileJobs) -> Vec<SysState> {
    let host = short_hostname();
    tile.chunks
        .iter()
        .map(|c| {
            let Ok(t) = std::fs::read_to_string(c.dir.join("job.pid")) else {
                return SysState::Unknown;
            };
            let f: Vec<&str> = t.split_whitespace().collect();
            match (f.first().and_then(|p| p.parse::<u32>().ok()), f.get(1)) {
                (Some(pid), Some(h)) if *h == host && pid_alive(pid) => SysState::Running,
                _ => SysState::Unknown,
            }
        })
        .collect()
}

pub(crate) fn write_plain_jobs(tile: &TileJobs, chunks: &[usize]) -> Result<Vec<PathBuf>> {
    chunks.iter().map(|&k| tile.write_plain_job(k)).collect()
}

pub(crate) fn exit_note(k: usize, st: std::process::ExitStatus) -> Option<String> {
    if st.success() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = st.signal() {
            return Some(format!("chunk {k}: job killed by signal {sig}"));
        }
    }
    Some(format!("chunk {k}: job failed ({st})"))
}

impl BatchSystem for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn tmpdir_expr(&self) -> &'static str {
        "$(mktemp -d \"${TMPDIR:-/tmp}/ngmixer-XXXXXXXXXX\")"
    }

    fn write_jobs(&self, tile: &TileJobs, chunks: &[usize]) -> Result<Vec<PathBuf>> {
        write_plain_jobs(tile, chunks)
    }

    fn submit(
        &mut self,
        tile: &TileJobs,
        chunks: &[usize],
        log: &mut dyn FnMut(&str),
    ) -> Result<()> {
        for &k in chunks {
            log(&format!(
                "chunk {k}: running {}",
                tile.chunks[k].dir.display()
            ));
            let mut child = spawn_chunk(tile, k)?;
            let st = child
                .wait()
                .map_err(|e| Error::Usage(format!("chunk {k}: {e}")))?;
            if let Some(n) = exit_note(k, st) {
                log(&n);
            }
        }
        Ok(())
    }

    fn states(&self, tile: &TileJobs) -> Result<Vec<SysState>> {
        Ok(pid_state(tile))
    }

    fn command(&self, tile: &TileJobs, chunk: usize) -> String {
        format!(
            "cd {} && ./job.sh",
            super::shell_quote(&tile.chunks[chunk].dir.display().to_string())
        )
    }
}
