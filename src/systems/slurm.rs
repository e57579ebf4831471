//! `--system slurm` (feature `slurm`): the chunks as one `sbatch` job array per submission.
//!
//! * `work/slurm-array.sh` (header `#SBATCH --job-name/--time/--cpus-per-task/--output`) runs,
//!   as array task `K`, chunk `K`: line `K+1` of `work/chunks.dat` names its directory, where
//!   it runs `job.sh` (extra commands, then the chunk script) with output in `job.out`.
//!   Task ids are chunk numbers, so a resubmission is `sbatch --array=3,7` of the same script.
//! * Every submission appends `jobid<TAB>chunk` lines to `work/slurm-jobs.tsv`; the latest job
//!   of a chunk is the one asked about.
//! * States come from `squeue --states=all -h -o '%F %K %T' -j IDS` (finished jobs stay listed
//!   for `MinJobAge`; `sacct` is often disabled), else `scontrol show job A_K`.
//! * With a collate command, a collate job follows each submission, depending on the explicit
//!   task list (`--dependency=afterany:A_0:A_1:...`): it runs when they have all ended and
//!   refuses (nothing written) when a chunk is missing.
//! * Every job gets `--time` (from `--walltime`, `H:MM`), so a hung task ends.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;

use super::{run_command, shell_quote, write_executable, write_file, SysState, TileJobs};
use crate::error::{Error, Result};
use crate::traits::BatchSystem;

/// `sbatch` job arrays.
#[derive(Debug, Clone, Default)]
pub struct Slurm;

/// LSF-style `H:MM` (or `M`) wall time as Slurm `H:MM:00`; `D-H:MM:SS` and `H:MM:SS` pass.
pub fn slurm_time(walltime: &str) -> String {
    let n = walltime.matches(':').count();
    if walltime.contains('-') || n >= 2 {
        walltime.to_string()
    } else if n == 1 {
        format!("{walltime}:00")
    } else {
        walltime.to_string()
    }
}

fn jobs_file(tile: &TileJobs) -> PathBuf {
    tile.work_dir.join("slurm-jobs.tsv")
}

/// The latest Slurm job id of every chunk (from `work/slurm-jobs.tsv`).
pub fn latest_jobs(tile: &TileJobs) -> HashMap<usize, String> {
    let mut m = HashMap::new();
    if let Ok(t) = std::fs::read_to_string(jobs_file(tile)) {
        for l in t.lines() {
            let mut f = l.split('\t');
            if let (Some(id), Some(k)) = (f.next(), f.next().and_then(|k| k.parse().ok())) {
                m.insert(k, id.to_string());
            }
        }
    }
    m
}

fn map_state(s: &str) -> SysState {
    match s {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING"
        | "SUSPENDED" | "STOPPED" => SysState::Pending,
        "RUNNING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" => SysState::Running,
        "COMPLETED" => SysState::Completed,
        other => SysState::Failed(other.to_string()),
    }
}

fn parse_indices(k: &str) -> Vec<usize> {
    let k = k.split('%').next().unwrap_or("");
    let k = k.trim_start_matches('[').trim_end_matches(']');
    let mut out = Vec::new();
    for part in k.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                out.extend(a..=b);
            }
        } else if let Ok(a) = part.parse() {
            out.push(a);
        }
    }
    out
}

/// `(array job id, task) -> state` from `squeue --states=all -h -o '%F %K %T'` output.
pub fn parse_squeue(text: &str) -> HashMap<(String, usize), SysState> {
    let mut m = HashMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [id, k, st, ..] = f.as_slice() {
            for t in parse_indices(k) {
                m.insert((id.to_string(), t), map_state(st));
            }
        }
    }
    m
}

fn squeue(ids: &[&String]) -> Option<String> {
    let list: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    let out = Command::new("squeue")
        .args(["--states=all", "-h", "-o", "%F %K %T", "-j"])
        .arg(list.join(","))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn scontrol_state(id: &str, k: usize) -> Option<SysState> {
    let out = Command::new("scontrol")
        .args(["show", "job", &format!("{id}_{k}")])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let t = String::from_utf8_lossy(&out.stdout);
    let st = t
        .split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))?;
    Some(map_state(st))
}

impl BatchSystem for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn tmpdir_expr(&self) -> &'static str {
        "$(mktemp -d \"${TMPDIR:-/tmp}/ngmixer-XXXXXXXXXX\")"
    }

    fn write_jobs(&self, tile: &TileJobs, chunks: &[usize]) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for &k in chunks {
            out.push(tile.write_plain_job(k)?);
        }
        let list: String = (0..tile.chunks.len())
            .map(|k| format!("{}\n", tile.rel_dir(k)))
            .collect();
        let dat = tile.work_dir.join("chunks.dat");
        write_file(&dat, &list)?;
        out.push(dat);
        let logs = tile.work_dir.join("slurm-logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::Io {
            path: logs.clone(),
            source: e,
        })?;
        let part = tile
            .queue
            .as_ref()
            .map(|q| format!("#SBATCH --partition={q}\n"))
            .unwrap_or_default();
        let script = format!(
            "#!/bin/bash\n\
             #SBATCH --job-name={tile}-{run}\n\
             #SBATCH --time={time}\n\
             #SBATCH --ntasks=1\n\
             #SBATCH --cpus-per-task={nc}\n\
             #SBATCH --output=slurm-logs/%A_%a.out\n\
             {part}\
             # array task K runs chunk K (line K+1 of chunks.dat)\n\
             cd \"${{SLURM_SUBMIT_DIR:-.}}\" || exit 1\n\
             dir=$(sed -n \"$((SLURM_ARRAY_TASK_ID+1))p\" chunks.dat)\n\
             [ -n \"$dir\" ] || {{ echo \"no chunk $SLURM_ARRAY_TASK_ID in chunks.dat\"; exit 1; }}\n\
             cd \"$dir\" || exit 1\n\
             exec ./job.sh > job.out 2>&1\n",
            tile = tile.tile,
            run = tile.run,
            time = slurm_time(&tile.walltime),
            nc = tile.ncores.max(1),
        );
        let p = tile.work_dir.join("slurm-array.sh");
        write_executable(&p, &script)?;
        out.push(p);
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
        let list: Vec<String> = chunks.iter().map(|k| k.to_string()).collect();
        let out = run_command(
            Command::new("sbatch")
                .current_dir(&tile.work_dir)
                .arg("--parsable")
                .arg(format!("--array={}", list.join(",")))
                .arg("slurm-array.sh"),
            "sbatch",
        )?;
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Usage(format!(
                "sbatch printed '{}' instead of a job id",
                out.trim()
            )));
        }
        let mut rec = std::fs::read_to_string(jobs_file(tile)).unwrap_or_default();
        for &k in chunks {
            rec.push_str(&format!("{id}\t{k}\n"));
        }
        write_file(&jobs_file(tile), &rec)?;
        log(&format!(
            "submitted Slurm array job {id} (tasks {})",
            list.join(",")
        ));
        if let Some(cmd) = &tile.collate_cmd {
            let dep: String = chunks.iter().map(|k| format!(":{id}_{k}")).collect();
            let out = run_command(
                Command::new("sbatch")
                    .current_dir(&tile.work_dir)
                    .arg("--parsable")
                    .arg(format!("--dependency=afterany{dep}"))
                    .arg(format!("--job-name={}-{}-collate", tile.tile, tile.run))
                    .arg(format!("--time={}", slurm_time(&tile.walltime)))
                    .arg("--output=slurm-logs/collate-%j.out")
                    .arg(format!("--wrap={cmd}")),
                "sbatch (collate job)",
            )?;
            let cid = out.trim().split(';').next().unwrap_or("").to_string();
            let p = tile.work_dir.join("slurm-collate.tsv");
            let mut rec = std::fs::read_to_string(&p).unwrap_or_default();
            rec.push_str(&format!("{cid}\t{id}\n"));
            write_file(&p, &rec)?;
            log(&format!("submitted collate job {cid} after tasks{dep}"));
        }
        Ok(())
    }

    fn states(&self, tile: &TileJobs) -> Result<Vec<SysState>> {
        let latest = latest_jobs(tile);
        let mut ids: Vec<&String> = latest.values().collect();
        ids.sort();
        ids.dedup();
        let mut known: HashMap<(String, usize), SysState> = HashMap::new();
        if !ids.is_empty() {
            match squeue(&ids) {
                Some(t) => known = parse_squeue(&t),
                None => {
                    // one purged id makes squeue refuse the whole list: ask one by one
                    for id in &ids {
                        if let Some(t) = squeue(&[id]) {
                            known.extend(parse_squeue(&t));
                        }
                    }
                }
            }
        }
        let mut by_chunk = BTreeMap::new();
        for (k, id) in &latest {
            let s = match known.get(&(id.clone(), *k)) {
                Some(s) => s.clone(),
                None => scontrol_state(id, *k).unwrap_or(SysState::Unknown),
            };
            by_chunk.insert(*k, s);
        }
        Ok((0..tile.chunks.len())
            .map(|k| by_chunk.remove(&k).unwrap_or(SysState::Unknown))
            .collect())
    }

    fn command(&self, tile: &TileJobs, chunk: usize) -> String {
        format!(
            "cd {} && sbatch --array={chunk} slurm-array.sh",
            shell_quote(&tile.work_dir.display().to_string())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_with_pending_ranges() {
        let m = parse_squeue("12 0 COMPLETED\n12 1 FAILED\n12 2-4%2 PENDING\n13 N/A RUNNING\n");
        assert_eq!(m[&("12".into(), 0)], SysState::Completed);
        assert_eq!(m[&("12".into(), 1)], SysState::Failed("FAILED".into()));
        for k in 2..=4 {
            assert_eq!(m[&("12".into(), k)], SysState::Pending);
        }
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn lsf_walltimes_become_slurm_times() {
        assert_eq!(slurm_time("48:00"), "48:00:00");
        assert_eq!(slurm_time("0:10"), "0:10:00");
        assert_eq!(slurm_time("1-00:00:00"), "1-00:00:00");
    }
}
