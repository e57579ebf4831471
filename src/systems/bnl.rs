//! `--system bnl` (feature `bnl`): an HTCondor submit file (spec §8.1, §8.2).
//!
//! * Y1: chunk directories `work/chunk%03d-%05d-%05d`, bases `<tile>-<run>-%05d-%05d`, job
//!   names `<run>-<tile>-%05d-%05d`; `work/master.sh` (scratch directory
//!   `$_CONDOR_SCRATCH_DIR`, exported as `TMPDIR`, else `$TMPDIR`; arguments `cmd logfile`)
//!   and `work/submit.condor` (header `Universe = vanilla`, `Notification = Never`,
//!   `Executable = <master.sh>`, `Image_Size = 500000`, `GetEnv = True`, `kill_sig = SIGINT`,
//!   `+Experiment = "astro"`, then per chunk `+job_name`, `Arguments = <script> <logfile>`,
//!   `Queue`).
//! * Y3: `<run>/<tile>/master.sh` runs `$1`; `<run>/condor/<tile>.condor` (Image_Size
//!   1000000) lists `+job_name = "<base>"`, `Arguments = <script>`, `Queue` per chunk.
//!
//! The file lists only the chunks to run and is removed when there are none. `run` submits
//! it with `condor_submit` in its directory. HTCondor is not asked about states: a submitted
//! chunk without a state file is pending.

use std::path::PathBuf;
use std::process::Command;

use super::{run_command, shell_quote, write_executable, write_file, Layout, SysState, TileJobs};
use crate::error::Result;
use crate::traits::BatchSystem;

/// HTCondor at BNL.
#[derive(Debug, Clone, Default)]
pub struct Condor;

/// The master script and the submit file of a tile.
pub fn condor_files(tile: &TileJobs) -> (PathBuf, PathBuf) {
    match tile.layout {
        Layout::Y1 => (
            tile.work_dir.join("master.sh"),
            tile.work_dir.join("submit.condor"),
        ),
        Layout::Y3 => {
            let run_dir = tile
                .work_dir
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default();
            (
                tile.work_dir.join("master.sh"),
                run_dir.join("condor").join(format!("{}.condor", tile.tile)),
            )
        }
    }
}

const MASTER_Y1: &str = "#!/bin/bash
if [[ -n $_CONDOR_SCRATCH_DIR ]]; then
    tmpdir=$_CONDOR_SCRATCH_DIR
    export TMPDIR=$tmpdir
else
    tmpdir=$TMPDIR
    mkdir -p $tmpdir
fi
cmd=\"$1\"
logfile=\"$2\"
logbase=$(basename $logfile)
tmplog=$tmpdir/$logbase
pushd $tmpdir > /dev/null
$cmd &> $tmplog
rc=$?
popd > /dev/null
mv -vf $tmplog $logfile
exit $rc
";

const MASTER_Y3: &str = "#!/bin/bash

# this will be a path to a script
cmd=\"$1\"
$cmd
";

/// The submit file text for `chunks` (the original's header and job blocks).
pub fn submit_text(tile: &TileJobs, chunks: &[usize]) -> String {
    let (master, _) = condor_files(tile);
    let mut s = match tile.layout {
        Layout::Y1 => format!(
            "\nUniverse        = vanilla\n\nNotification    = Never\n\n# Run this exe with these \
             args\nExecutable      = {}\n\n#Image_Size      = 1000000\nImage_Size       =  \
             500000\n\nGetEnv = True\n\nkill_sig        = SIGINT\n\n+Experiment     = \
             \"astro\"\n\n",
            master.display()
        ),
        Layout::Y3 => format!(
            "\nUniverse        = vanilla\n\nNotification    = Never\n\n# Run this exe with these \
             args\nExecutable      = {}\n\nImage_Size       = 1000000\n\nGetEnv = True\n\n\
             kill_sig        = SIGINT\n\n\n+Experiment     = \"astro\"\n\n",
            master.display()
        ),
    };
    for &k in chunks {
        let c = &tile.chunks[k];
        let script = c.script_path();
        match tile.layout {
            Layout::Y1 => {
                let jobname = format!(
                    "{}-{}-{:05}-{:05}",
                    tile.run, tile.tile, c.range.0, c.range.1
                );
                s.push_str(&format!(
                    "\n+job_name = \"{jobname}\"\nArguments = {} {}\nQueue\n",
                    script.display(),
                    c.dir.join("job.out").display()
                ));
            }
            Layout::Y3 => {
                s.push_str(&format!(
                    "\n+job_name = \"{}\"\nArguments = {}\nQueue\n",
                    c.base,
                    script.display()
                ));
            }
        }
    }
    s
}

impl BatchSystem for Condor {
    fn name(&self) -> &'static str {
        "bnl"
    }

    fn tmpdir_expr(&self) -> &'static str {
        "${_CONDOR_SCRATCH_DIR:-${TMPDIR:-/tmp}}"
    }

    fn chunk_names(
        &self,
        layout: Layout,
        tile: &str,
        run: &str,
        k: usize,
        r: (i64, i64),
    ) -> Option<(String, String)> {
        (layout == Layout::Y1).then(|| {
            (
                format!("chunk{k:03}-{:05}-{:05}", r.0, r.1),
                format!("{tile}-{run}-{:05}-{:05}", r.0, r.1),
            )
        })
    }

    fn write_jobs(&self, tile: &TileJobs, chunks: &[usize]) -> Result<Vec<PathBuf>> {
        let (master, submit) = condor_files(tile);
        let text = match tile.layout {
            Layout::Y1 => MASTER_Y1,
            Layout::Y3 => MASTER_Y3,
        };
        let mut m = String::from(text);
        if !tile.extra_cmds.is_empty() {
            // extra commands right after the shebang
            m = format!(
                "#!/bin/bash\n{}{}",
                tile.extra_text(),
                &text["#!/bin/bash\n".len()..]
            );
        }
        write_executable(&master, &m)?;
        let _ = std::fs::remove_file(&submit);
        let _ = std::fs::remove_file(format!("{}.submitted", submit.display()));
        if chunks.is_empty() {
            return Ok(vec![master]);
        }
        if let Some(d) = submit.parent() {
            std::fs::create_dir_all(d).map_err(|e| crate::error::Error::Io {
                path: d.to_path_buf(),
                source: e,
            })?;
        }
        write_file(&submit, &submit_text(tile, chunks))?;
        Ok(vec![master, submit])
    }

    fn submit(
        &mut self,
        tile: &TileJobs,
        chunks: &[usize],
        log: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let (_, submit) = condor_files(tile);
        if chunks.is_empty() || !submit.exists() {
            log("no unfinished jobs");
            return Ok(());
        }
        let dir = submit.parent().map(PathBuf::from).unwrap_or_default();
        let name = submit.file_name().unwrap_or_default().to_owned();
        let out = run_command(
            Command::new("condor_submit").current_dir(&dir).arg(&name),
            "condor_submit",
        )?;
        for &k in chunks {
            write_file(&tile.chunks[k].dir.join("condor.submitted"), "")?;
        }
        write_file(
            &PathBuf::from(format!("{}.submitted", submit.display())),
            &out,
        )?;
        log(&format!(
            "condor_submit {}: {}",
            submit.display(),
            out.trim()
        ));
        Ok(())
    }

    fn states(&self, tile: &TileJobs) -> Result<Vec<SysState>> {
        Ok(tile
            .chunks
            .iter()
            .map(|c| {
                if c.dir.join("condor.submitted").exists() {
                    SysState::Pending
                } else {
                    SysState::Unknown
                }
            })
            .collect())
    }

    fn command(&self, tile: &TileJobs, chunk: usize) -> String {
        let (master, _) = condor_files(tile);
        let c = &tile.chunks[chunk];
        match tile.layout {
            Layout::Y1 => format!(
                "{} {} {}",
                shell_quote(&master.display().to_string()),
                shell_quote(&c.script_path().display().to_string()),
                shell_quote(&c.dir.join("job.out").display().to_string())
            ),
            Layout::Y3 => format!(
                "{} {}",
                shell_quote(&master.display().to_string()),
                shell_quote(&c.script_path().display().to_string())
            ),
        }
    }
}
