//! `ngmixit`: fit one MEDS tile (or a FoF range of it) with the max-likelihood fitter and write
//! the ngmixer catalogue (`model_fits`, `epoch_data`, `meta_data`, `githashes`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use ngmixer::backends::meds::read_table;
use ngmixer::backends::medsio::{DesSettings, MedsSource, PsfKind, PsfMap};
use ngmixer::config::{load_fitting_config, FitterType};
use ngmixer::fitter::from_config::fitter_settings;
use ngmixer::fitter::{Catalog, Fitter};
use ngmixer::output::convert::{table_from_columns, table_with_schema};
use ngmixer::output::fits::write_tables;
use ngmixer::output::{ColSpec, Kind, Table};
use ngmixer::traits::ImageSource;

/// Fit MEDS files (one per band, in band order) with ngmix models.
#[derive(Parser, Debug)]
#[command(name = "ngmixit", version, about)]
struct Args {
    /// Fitting config (YAML).
    config_file: PathBuf,
    /// Output FITS file.
    out_file: PathBuf,
    /// MEDS files, one per band.
    data_files: Vec<PathBuf>,
    /// Inclusive 0-based range of FoF groups (or objects without a FoF file): A,B.
    #[arg(long = "fof-range")]
    fof_range: Option<String>,
    /// FoF table (`fofid`, `number`).
    #[arg(long = "fof-file")]
    fof_file: Option<PathBuf>,
    /// Scratch directory (outputs are staged there and moved into place).
    #[arg(long = "work-dir", default_value = ".")]
    work_dir: PathBuf,
    /// Run seed: with the object id it selects each object's random stream.
    #[arg(long)]
    seed: Option<u64>,
    /// Neighbour list (`number`, `nbr_number`), for MOF runs.
    #[arg(long = "nbrs-file")]
    nbrs_file: Option<PathBuf>,
    /// A collated MOF output (neighbour subtraction).
    #[arg(long = "mof-file")]
    mof_file: Option<PathBuf>,
    /// PSF map files, comma-separated, one per band (PSFEx runs).
    #[arg(long = "psf-map")]
    psf_map: Option<String>,
    /// Table of `id`, `flags`: objects with non-zero flags are not fitted (obj_flags set).
    #[arg(long = "obj-flags")]
    obj_flags: Option<PathBuf>,
    /// Verbosity level.
    #[arg(long, default_value_t = 0)]
    verbosity: u32,
    /// Diagnostic plots (not produced by this port; accepted for compatibility).
    #[arg(long = "make-plots")]
    make_plots: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write a checkpoint after every N FoF groups (besides the config's checkpoint times).
    #[arg(long = "checkpoint-every", hide = true)]
    checkpoint_every: Option<usize>,
    /// Stop with exit code 3 right after the first checkpoint (tests of the resume path).
    #[arg(long = "abort-after-checkpoint", hide = true)]
    abort_after_checkpoint: bool,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let positional = argv.iter().skip(1).filter(|a| !a.starts_with("--")).count();
    let args = match Args::try_parse_from(&argv) {
        Ok(a) if a.data_files.is_empty() => {
            print_help_and_exit();
        }
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            if positional < 3 && matches!(e.kind(), ErrorKind::MissingRequiredArgument) {
                print_help_and_exit();
            }
            e.exit();
        }
    };
    match run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ngmixit: error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn print_help_and_exit() -> ! {
    use clap::CommandFactory;
    let _ = Args::command().print_help();
    eprintln!("\nngmixit: need config_file out_file data_file1 [data_file2 ...]");
    std::process::exit(45);
}

fn parse_range(s: &str) -> Result<(i64, i64)> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 2 {
        bail!("--fof-range must be two integers A,B; got {s:?}");
    }
    let a: i64 = parts[0]
        .trim()
        .parse()
        .with_context(|| format!("--fof-range start {:?}", parts[0]))?;
    let b: i64 = parts[1]
        .trim()
        .parse()
        .with_context(|| format!("--fof-range end {:?}", parts[1]))?;
    if a < 0 || b < a {
        bail!("--fof-range {a},{b}: need 0 <= A <= B");
    }
    Ok((a, b))
}

/// FoF groups of MEDS rows, in ascending fofid, members in MEDS order.
fn fof_groups(
    src: &MedsSource,
    fof_file: Option<&Path>,
    range: Option<(i64, i64)>,
) -> Result<(Vec<Vec<usize>>, Vec<i64>)> {
    let nobj = src.files()[0].size();
    match fof_file {
        None => {
            let (a, b) = range.unwrap_or((0, nobj as i64 - 1));
            if nobj == 0 {
                return Ok((vec![], vec![]));
            }
            if a as usize >= nobj {
                bail!("--fof-range start {a} is beyond the {nobj} objects of the MEDS file");
            }
            let b = (b as usize).min(nobj - 1);
            Ok((
                (a as usize..=b).map(|i| vec![i]).collect(),
                vec![ngmixer::flags::DEFVAL as i64; nobj],
            ))
        }
        Some(path) => {
            let cols = read_first_table(path)?;
            let fofid = cols
                .get("fofid")
                .and_then(|c| c.as_int())
                .with_context(|| format!("{}: no integer column 'fofid'", path.display()))?;
            let number = cols
                .get("number")
                .and_then(|c| c.as_int())
                .with_context(|| format!("{}: no integer column 'number'", path.display()))?;
            if number.len() != nobj {
                bail!(
                    "{}: {} rows but the MEDS file has {nobj} objects",
                    path.display(),
                    number.len()
                );
            }
            for (i, &n) in number.iter().enumerate() {
                let mn = src.files()[0].number(i)?;
                if n != mn {
                    bail!(
                        "{}: row {i} has number {n} but the MEDS file has {mn}",
                        path.display()
                    );
                }
            }
            let mut by: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
            for (i, &f) in fofid.iter().enumerate() {
                by.entry(f).or_default().push(i);
            }
            let groups = by
                .into_iter()
                .filter(|(f, _)| range.is_none_or(|(a, b)| *f >= a && *f <= b))
                .map(|(_, v)| v)
                .collect();
            Ok((groups, fofid.to_vec()))
        }
    }
}

fn checkpoint_path(out: &Path) -> PathBuf {
    let s = out.to_string_lossy();
    let base = s
        .strip_suffix(".fits")
        .or_else(|| s.strip_suffix(".fit"))
        .unwrap_or(&s);
    PathBuf::from(format!("{base}-checkpoint.fits"))
}

fn run(args: Args) -> Result<i32> {
    let t0 = Instant::now();
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .ok();
    }
    let cfg = load_fitting_config(&args.config_file)?;
    for note in &cfg.compat_notes {
        eprintln!("ngmixit: config: {note}");
    }
    if cfg.fitter_type != FitterType::MaxNgmixBoot {
        bail!(
            "{}: fitter_type '{}' is not supported by this version (supported: max-ngmix-boot)",
            args.config_file.display(),
            cfg.fitter_type.as_str()
        );
    }
    if cfg.model_nbrs {
        bail!(
            "{}: model_nbrs (MOF) is not supported by this version yet",
            args.config_file.display()
        );
    }
    if args.mof_file.is_some() || args.nbrs_file.is_some() {
        eprintln!(
            "ngmixit: warning: --mof-file/--nbrs-file are not used by this fitter configuration"
        );
    }
    let nband = args.data_files.len();
    let settings = fitter_settings(&cfg, nband)?;
    let io = ngmixer::backends::medsio::IoSettings::from_config(&cfg)?;
    let des = DesSettings::from_config(&cfg)?;
    let psf_map = match (&des.psfs, args.psf_map.as_deref()) {
        (PsfKind::Psfex { from_image: false }, None) => bail!(
            "{}: imageio.psfs.type is psfex: give the psf map files with --psf-map=f1,f2,.. \
             (one per band)",
            args.config_file.display()
        ),
        (PsfKind::Psfex { from_image: false }, Some(list)) => {
            let files: Vec<PathBuf> = list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| PathBuf::from(s.trim()))
                .collect();
            if files.len() != nband {
                bail!(
                    "--psf-map: {} psf map files for {nband} MEDS files (one per band)",
                    files.len()
                );
            }
            Some(PsfMap::read(&files).context("--psf-map")?)
        }
        (_, Some(_)) => {
            eprintln!("ngmixit: warning: --psf-map is not used (imageio.psfs.type is not psfex)");
            None
        }
        (_, None) => None,
    };
    let mut src = MedsSource::open(&args.data_files, io)?;
    src.configure(des, psf_map.as_ref())?;
    let range = args.fof_range.as_deref().map(parse_range).transpose()?;
    let (groups, fofids_all) = fof_groups(&src, args.fof_file.as_deref(), range)?;
    let rows: Vec<usize> = groups.iter().flatten().copied().collect();
    let fofids: Vec<i64> = rows.iter().map(|&r| fofids_all[r]).collect();
    src.select(rows.clone(), fofids);
    if let Some(p) = &args.obj_flags {
        let cols = read_first_table(p)?;
        let ids = cols
            .get("id")
            .and_then(|c| c.as_int())
            .with_context(|| format!("{}: no integer column 'id'", p.display()))?;
        let fl = cols
            .get("flags")
            .and_then(|c| c.as_int())
            .with_context(|| format!("{}: no integer column 'flags'", p.display()))?;
        let map: HashMap<i64, i32> = ids
            .iter()
            .zip(fl)
            .filter(|(_, &f)| f != 0)
            .map(|(&i, &f)| (i, f as i32))
            .collect();
        src.set_obj_flags(map);
    }
    let seed = args.seed.unwrap_or(0);
    let fitter = Fitter::new(src, settings, seed);

    // resume from a checkpoint
    let ckpt = checkpoint_path(&args.out_file);
    let mut cat = fitter.empty_catalog();
    let mut done_groups = 0usize;
    if ckpt.exists() {
        let mf = read_table(&ckpt, "model_fits")?;
        let ed = read_table(&ckpt, "epoch_data")?;
        let cd = read_table(&ckpt, "checkpoint_data")?;
        cat.model_fits = table_with_schema(
            fitter.settings().model_fits_specs(),
            &mf,
            "checkpoint model_fits",
        )?;
        cat.epoch_data = table_with_schema(
            fitter.settings().epoch_specs(),
            &ed,
            "checkpoint epoch_data",
        )?;
        done_groups = cd
            .get("curr_fofindex")
            .and_then(|c| c.as_int())
            .and_then(|v| v.first().copied())
            .context("checkpoint: no curr_fofindex")? as usize;
        eprintln!(
            "ngmixit: resuming from {} at FoF {done_groups}",
            ckpt.display()
        );
    }

    let ngroups = groups.len();
    let nobj_total = rows.len();
    let pb = ProgressBar::new(nobj_total as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} objects ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut obj_start: usize = groups[..done_groups.min(ngroups)]
        .iter()
        .map(|g| g.len())
        .sum();
    pb.set_position(obj_start as u64);
    let mut checkpoint_minutes: Vec<f64> = cfg.checkpoints.clone();
    checkpoint_minutes.sort_by(|a, b| a.total_cmp(b));
    let mut next_ck = 0usize;
    let batch = args.checkpoint_every.unwrap_or(256).max(1);
    let mut g = done_groups;
    while g < ngroups {
        let g_end = (g + batch).min(ngroups);
        let n_obj: usize = groups[g..g_end].iter().map(|v| v.len()).sum();
        let part = fitter.run_range(obj_start..obj_start + n_obj, &|| pb.inc(1))?;
        cat.model_fits.append(&part.model_fits);
        cat.epoch_data.append(&part.epoch_data);
        obj_start += n_obj;
        g = g_end;
        let minutes = t0.elapsed().as_secs_f64() / 60.0;
        let mut due = args.checkpoint_every.is_some();
        while next_ck < checkpoint_minutes.len() && minutes > checkpoint_minutes[next_ck] {
            due = true;
            next_ck += 1;
        }
        if due && g < ngroups {
            write_checkpoint(&ckpt, &cat, g)?;
            if args.abort_after_checkpoint {
                pb.abandon();
                eprintln!(
                    "ngmixit: stopping after checkpoint at FoF {g} (--abort-after-checkpoint)"
                );
                return Ok(3);
            }
        }
    }
    pb.finish_and_clear();

    let meta = meta_table(&fitter, &args)?;
    let gh = githash_table();
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("--work-dir {}", args.work_dir.display()))?;
    write_tables(
        &args.out_file,
        &[
            ("model_fits", &cat.model_fits),
            ("epoch_data", &cat.epoch_data),
            ("meta_data", &meta),
            ("githashes", &gh),
        ],
    )?;
    if ckpt.exists() {
        std::fs::remove_file(&ckpt).with_context(|| format!("removing {}", ckpt.display()))?;
    }
    summary(&cat, &args.out_file, t0.elapsed().as_secs_f64());
    Ok(0)
}

fn write_checkpoint(path: &Path, cat: &Catalog, done: usize) -> Result<()> {
    let mut cd = Table::new(vec![ColSpec::new("curr_fofindex", Kind::I64, &[], 0.0)]);
    let r = cd.push_default();
    cd.set1(r, "curr_fofindex", done as f64);
    write_tables(
        path,
        &[
            ("model_fits", &cat.model_fits),
            ("epoch_data", &cat.epoch_data),
            ("checkpoint_data", &cd),
        ],
    )?;
    Ok(())
}

fn meta_table<I: ImageSource + Sync>(fitter: &Fitter<I>, args: &Args) -> Result<Table> {
    let _ = fitter;
    let mut out: Option<Table> = None;
    let cfg_name = args
        .config_file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for f in &args.data_files {
        let cols = read_table(f, "metadata").ok();
        let mut t = cols
            .map(|c| table_from_columns(&c).select(&[0]))
            .unwrap_or_default();
        if t.nrows() == 0 {
            t = Table::new(vec![]);
            t.push_default();
        }
        let mut specs = t.specs();
        let path = f.to_string_lossy().into_owned();
        specs.push(ColSpec::new(
            "ngmixer_config",
            Kind::Str(cfg_name.len().max(1)),
            &[],
            0.0,
        ));
        specs.push(ColSpec::new(
            "meds_file",
            Kind::Str(path.len().max(1)),
            &[],
            0.0,
        ));
        let mut t2 = Table::new(specs);
        t2.push_default();
        for c in t.columns() {
            if let Kind::Str(_) = c.kind {
                t2.set_str(0, &c.name, &c.strs[0]);
            } else {
                t2.set(0, &c.name, &c.num);
            }
        }
        t2.set_str(0, "ngmixer_config", &cfg_name);
        t2.set_str(0, "meds_file", &path);
        match &mut out {
            None => out = Some(t2),
            Some(o) => {
                if !o.append(&t2) {
                    eprintln!(
                        "ngmixer: warning: metadata of {} differs in schema; kept the first band's",
                        f.display()
                    );
                }
            }
        }
    }
    Ok(out.unwrap_or_default())
}

fn githash_table() -> Table {
    let v = format!("ngmixer-rs {}", env!("CARGO_PKG_VERSION"));
    let mut t = Table::new(vec![
        ColSpec::new("ngmixer_githash", Kind::Str(v.len()), &[], 0.0),
        ColSpec::new("ngmix_githash", Kind::Str(v.len()), &[], 0.0),
    ]);
    t.push_default();
    t.set_str(0, "ngmixer_githash", &v);
    t.set_str(0, "ngmix_githash", &v);
    t
}

fn summary(cat: &Catalog, out: &Path, secs: f64) {
    let mf = &cat.model_fits;
    let n = mf.nrows();
    let mut counts: std::collections::BTreeMap<i64, usize> = Default::default();
    if let Some(c) = mf.column("flags") {
        for &f in &c.num {
            *counts.entry(f as i64).or_default() += 1;
        }
    }
    eprintln!(
        "ngmixit: fitted {n} objects in {secs:.2} s -> {}",
        out.display()
    );
    for (f, k) in counts {
        eprintln!("  flags {f:>11}: {k}");
    }
}

/// The first table extension of a FITS file (what Python's `fitsio.read(path)` returns for a
/// file written with `fitsio.write`): HDU number 2, the first after the primary.
fn read_first_table(path: &Path) -> Result<ngmixer::backends::meds::Columns> {
    ngmixer::backends::meds::read_table_num(path, 2)
        .with_context(|| format!("{}: reading its first table extension", path.display()))
}
