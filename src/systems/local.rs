//! `--system local` (feature `local`): the chunks run as child processes of the megamixer,
//! at most N at once (`--max-jobs`, default: the number of cores divided by `--ncores`).
//!
//! The megamixer can be stopped and started again: `run` then reads every chunk's state from
//! disk (output, `<base>.state`, `job.pid`), leaves chunks that are still running to finish
//! (they count against N) and starts only the others.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use super::shell::{exit_note, pid_state, spawn_chunk, write_plain_jobs};
use super::{SysState, TileJobs};
use crate::error::{Error, Result};
use crate::traits::BatchSystem;

/// Child processes, at most `max_jobs` at once.
#[derive(Debug, Clone)]
pub struct Local {
    /// Chunks running at once.
    pub max_jobs: usize,
}

impl Local {
    /// At most `max_jobs` chunks at once (0: the number of cores).
    pub fn new(max_jobs: usize) -> Self {
        let n = if max_jobs == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            max_jobs
        };
        Self { max_jobs: n }
    }
}

impl BatchSystem for Local {
    fn name(&self) -> &'static str {
        "local"
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
        let mut queue: std::collections::VecDeque<usize> = chunks.iter().copied().collect();
        let mut children: Vec<(usize, Child)> = Vec::new();
        loop {
            // chunks started by an earlier megamixer that still run take slots too
            let foreign = pid_state(tile)
                .iter()
                .enumerate()
                .filter(|(k, s)| **s == SysState::Running && !children.iter().any(|(j, _)| j == k))
                .count();
            while children.len() + foreign < self.max_jobs {
                let Some(k) = queue.pop_front() else { break };
                log(&format!(
                    "chunk {k}: started in {}",
                    tile.chunks[k].dir.display()
                ));
                children.push((k, spawn_chunk(tile, k)?));
            }
            if children.is_empty() && queue.is_empty() {
                break;
            }
            let mut i = 0;
            while i < children.len() {
                let k = children[i].0;
                match children[i].1.try_wait() {
                    Ok(Some(st)) => {
                        match exit_note(k, st) {
                            Some(n) => log(&n),
                            None => log(&format!("chunk {k}: finished")),
                        }
                        children.swap_remove(i);
                    }
                    Ok(None) => i += 1,
                    Err(e) => return Err(Error::Usage(format!("chunk {k}: {e}"))),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
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
