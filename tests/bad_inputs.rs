//! `ngmixit` on bad inputs: a regression suite of one test per case.
//!
//! Every case builds its inputs in its own temporary directory (`<tmp>/ngmixit-bad-<pid>-<n>`,
//! removed at the end; set `NGMIXIT_KEEP_TEST_DIRS=1` to keep them), runs the binary (killed
//! and failed as a hang after 60 s) and checks that
//!
//! * it exits cleanly: an exit code, no signal, no panic;
//! * a refusal exits 1 (45 for too few arguments, clap's 2 for unparsable options) with a
//!   message naming the file, HDU, column, config key or option at fault;
//! * no input changed (size and hash of every file in the case directory);
//! * no earlier output was changed or left half-written: every failing case starts with an
//!   earlier catalogue at the output path, which must survive byte for byte, and no
//!   `.<name>.tmp-<pid>` file may remain.
//!
//! Per-cutout problems (NaN or infinite Jacobians, pixels, PSF stamps; zero weights) are flags,
//! not errors: those cases check the flags or the dropped epoch, and that the other objects are
//! fitted exactly as from the clean file.
//!
//! Bad MEDS files are copies of the e2e MEDS file edited in place: FITS headers are 80-byte
//! ASCII cards in 2880-byte blocks, so renaming a `TTYPEn` removes a column, changing a `TFORMn`
//! of the same byte width changes its type, and table cells and pixels are big-endian values at
//! computed offsets ([`Fits`]).

#![cfg(feature = "des-y1")]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ngmixer::backends::meds::{read_table, Column, ColumnData, Columns};
use ngmixer::flags::IMAGE_FLAGS;
use ngmixer::sim::{write_table_file, ColData, SimTable};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Objects of the e2e MEDS file.
const NOBJ: usize = 66;

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn e2e_config() -> PathBuf {
    data("e2e/run-e2e01max.yaml")
}

/// The e2e MEDS file (`NGMIXIT_E2E_MEDS` overrides the path, to run against another copy).
fn e2e_meds() -> PathBuf {
    std::env::var_os("NGMIXIT_E2E_MEDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| data("meds/sim-e2e-meds.fits"))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

// ------------------------------------------------------------------------------------------
// Temporary directories and mounts
// ------------------------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory with a neutral name (no case name in it, so that a message fragment such
/// as `box_size` cannot match the path), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ngmixit-bad-{}-{n:03}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        eprintln!("case {label}: {}", p.display());
        Self(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("NGMIXIT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A tmpfs mounted for one case, unmounted on drop (declare it after the [`TempDir`] holding
/// the mount point, so it is dropped first).
struct Mount(PathBuf);

impl Mount {
    /// Mount a tmpfs with `opts` at `dir`; `None` (with a printed note) when mounting is not
    /// possible here (not root, no mount namespace rights).
    fn tmpfs(dir: &Path, opts: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Self(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "note: cannot mount a tmpfs ({}): case skipped",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("note: cannot run mount ({e}): case skipped");
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Running the binary
// ------------------------------------------------------------------------------------------

struct Outcome {
    args: Vec<OsString>,
    status: ExitStatus,
    stderr: String,
    stdout: String,
}

impl Outcome {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn describe(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        format!(
            "\n  command: ngmixit {}\n  status: {:?}\n  stdout: {}\n  stderr:\n{}",
            args.join(" "),
            self.status,
            self.stdout.trim(),
            self.stderr
        )
    }
}

/// Run ngmixit with `args`; a run still going after [`TIMEOUT`] is killed and fails the test
/// as a hang.
fn ngmixit(args: &[OsString]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ngmixit"));
    cmd.args(args);
    spawn_and_wait(cmd, args, TIMEOUT)
}

/// Run ngmixit with `args` under a virtual-memory limit (`ulimit -v`, KiB) and a timeout.
fn ngmixit_limited(args: &[OsString], vmem_kib: u64, timeout: Duration) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {vmem_kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ngmixit"))
        .args(args);
    spawn_and_wait(cmd, args, timeout)
}

fn spawn_and_wait(mut cmd: Command, args: &[OsString], timeout: Duration) -> Outcome {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ngmixit");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let e = t_err.join().unwrap_or_default();
            panic!(
                "HANG: ngmixit {:?} did not finish within {timeout:?} and was killed; stderr:\n{}",
                args,
                String::from_utf8_lossy(&e)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Outcome {
        args: args.to_vec(),
        status,
        stderr,
        stdout,
    }
}

/// An exit code, no signal, no panic.
fn assert_clean_exit(o: &Outcome) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        o.status.signal().is_none(),
        "ngmixit died of a signal{}",
        o.describe()
    );
    assert_ne!(
        o.code(),
        Some(101),
        "exit code of a Rust panic{}",
        o.describe()
    );
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(
            !o.stderr.contains(bad) && !o.stdout.contains(bad),
            "ngmixit panicked{}",
            o.describe()
        );
    }
}

// ------------------------------------------------------------------------------------------
// Snapshots of directories
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File { len: u64, hash: u64 },
    Dir,
    Link(PathBuf),
    Special(&'static str),
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(b);
    h.finish()
}

fn fingerprint(p: &Path) -> Node {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    let t = m.file_type();
    if t.is_symlink() {
        Node::Link(std::fs::read_link(p).unwrap())
    } else if t.is_dir() {
        Node::Dir
    } else if t.is_file() {
        let b = std::fs::read(p).unwrap();
        Node::File {
            len: b.len() as u64,
            hash: hash_bytes(&b),
        }
    } else if t.is_char_device() {
        Node::Special("character device")
    } else if t.is_block_device() {
        Node::Special("block device")
    } else if t.is_fifo() {
        Node::Special("fifo")
    } else {
        Node::Special("socket")
    }
}

/// Every entry under `root` (not following symlinks) with its fingerprint.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let n = fingerprint(&p);
            if n == Node::Dir {
                todo.push(p.clone());
            }
            out.insert(p, n);
        }
    }
    out
}

fn diff(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>) -> Vec<String> {
    let mut d = Vec::new();
    for (p, x) in a {
        match b.get(p) {
            None => d.push(format!("removed {}", p.display())),
            Some(y) if y != x => d.push(format!("changed {} ({x:?} -> {y:?})", p.display())),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        d.push(format!("new {}", p.display()));
    }
    d
}

/// Temporary files (`.<name>.tmp-<pid>`) in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') && n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

fn checkpoint_of(out: &Path) -> PathBuf {
    let t = s(out);
    PathBuf::from(format!(
        "{}-checkpoint.fits",
        t.strip_suffix(".fits").unwrap_or(&t)
    ))
}

// ------------------------------------------------------------------------------------------
// Editing FITS files
// ------------------------------------------------------------------------------------------

const BLOCK: usize = 2880;
const CARD: usize = 80;

#[derive(Debug, Clone)]
struct HduLoc {
    name: String,
    start: usize,
    data: usize,
    end: usize,
}

/// A FITS file in memory, edited by patching bytes.
struct Fits {
    bytes: Vec<u8>,
    hdus: Vec<HduLoc>,
}

struct ColLoc {
    offset: usize,
    code: u8,
    repeat: usize,
}

fn card_value(card: &str) -> String {
    let v = &card[10..];
    let t = v.trim_start();
    if let Some(rest) = t.strip_prefix('\'') {
        rest.split('\'').next().unwrap_or("").trim_end().to_string()
    } else {
        v.split('/').next().unwrap_or("").trim().to_string()
    }
}

fn elem_size(code: u8) -> usize {
    match code {
        b'L' | b'B' | b'A' => 1,
        b'I' => 2,
        b'J' | b'E' => 4,
        b'K' | b'D' | b'C' => 8,
        b'M' => 16,
        c => panic!("TFORM code {}", c as char),
    }
}

impl Fits {
    fn read(p: &Path) -> Self {
        Self::from_bytes(std::fs::read(p).unwrap())
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        let hdus = Self::parse(&bytes);
        Self { bytes, hdus }
    }

    fn write(&self, p: &Path) {
        std::fs::write(p, &self.bytes).unwrap();
    }

    fn parse(b: &[u8]) -> Vec<HduLoc> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + BLOCK <= b.len() {
            let start = pos;
            let mut kv: Vec<(String, String)> = Vec::new();
            'header: loop {
                assert!(pos + BLOCK <= b.len(), "unterminated FITS header");
                for i in 0..BLOCK / CARD {
                    let c = &b[pos + i * CARD..pos + (i + 1) * CARD];
                    let card = std::str::from_utf8(c).expect("ASCII header");
                    let key = card[..8].trim_end();
                    if key == "END" {
                        pos += BLOCK;
                        break 'header;
                    }
                    if &card[8..10] == "= " {
                        kv.push((key.to_string(), card_value(card)));
                    }
                }
                pos += BLOCK;
            }
            let get = |k: &str| kv.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
            let num = |k: &str| get(k).map_or(0, |v| v.parse::<i64>().unwrap());
            let naxis = num("NAXIS");
            let mut len = if naxis == 0 {
                0
            } else {
                let mut n = num("BITPIX").unsigned_abs() as usize / 8;
                for i in 1..=naxis {
                    n *= num(&format!("NAXIS{i}")) as usize;
                }
                n
            };
            len += num("PCOUNT") as usize;
            let data = pos;
            let end = data + len.div_ceil(BLOCK) * BLOCK;
            out.push(HduLoc {
                name: get("EXTNAME").unwrap_or_default(),
                start,
                data,
                end,
            });
            pos = end;
        }
        out
    }

    fn hdu(&self, ext: &str) -> HduLoc {
        self.hdus
            .iter()
            .find(|h| h.name == ext)
            .unwrap_or_else(|| panic!("no HDU {ext}"))
            .clone()
    }

    /// Byte offset of the card `key` of `ext`.
    fn card_pos(&self, ext: &str, key: &str) -> usize {
        let h = self.hdu(ext);
        (h.start..h.data)
            .step_by(CARD)
            .find(|&p| {
                std::str::from_utf8(&self.bytes[p..p + 8])
                    .unwrap()
                    .trim_end()
                    == key
            })
            .unwrap_or_else(|| panic!("no card {key} in {ext}"))
    }

    fn value(&self, ext: &str, key: &str) -> String {
        let p = self.card_pos(ext, key);
        card_value(std::str::from_utf8(&self.bytes[p..p + CARD]).unwrap())
    }

    fn int(&self, ext: &str, key: &str) -> i64 {
        self.value(ext, key).parse().unwrap()
    }

    fn put_card(&mut self, ext: &str, key: &str, card: String) {
        let p = self.card_pos(ext, key);
        let mut c = card.into_bytes();
        assert!(c.len() <= CARD, "card too long");
        c.resize(CARD, b' ');
        self.bytes[p..p + CARD].copy_from_slice(&c);
    }

    fn set_str(&mut self, ext: &str, key: &str, v: &str) {
        self.put_card(ext, key, format!("{key:<8}= '{v:<8}'"));
    }

    fn set_int(&mut self, ext: &str, key: &str, v: i64) {
        self.put_card(ext, key, format!("{key:<8}= {v:>20}"));
    }

    /// `TTYPEn`/`TFORMn` number of column `col` of `ext`.
    fn column_number(&self, ext: &str, col: &str) -> usize {
        let n = self.int(ext, "TFIELDS") as usize;
        (1..=n)
            .find(|i| self.value(ext, &format!("TTYPE{i}")) == col)
            .unwrap_or_else(|| panic!("no column {col} in {ext}"))
    }

    /// Rename column `col` of `ext` (the old name disappears).
    fn rename_column(&mut self, ext: &str, col: &str, new: &str) {
        let i = self.column_number(ext, col);
        self.set_str(ext, &format!("TTYPE{i}"), new);
    }

    /// Change the TFORM of `col` (keep the byte width!).
    fn set_tform(&mut self, ext: &str, col: &str, tform: &str) {
        let i = self.column_number(ext, col);
        self.set_str(ext, &format!("TFORM{i}"), tform);
    }

    fn col(&self, ext: &str, col: &str) -> ColLoc {
        let n = self.int(ext, "TFIELDS") as usize;
        let mut offset = 0;
        for i in 1..=n {
            let form = self.value(ext, &format!("TFORM{i}"));
            let digits: String = form.chars().take_while(|c| c.is_ascii_digit()).collect();
            let repeat = if digits.is_empty() {
                1
            } else {
                digits.parse().unwrap()
            };
            let code = form.as_bytes()[digits.len()];
            if self.value(ext, &format!("TTYPE{i}")) == col {
                return ColLoc {
                    offset,
                    code,
                    repeat,
                };
            }
            offset += repeat * elem_size(code);
        }
        panic!("no column {col} in {ext}")
    }

    fn cell_pos(&self, ext: &str, col: &str, row: usize, k: usize) -> (usize, u8) {
        let h = self.hdu(ext);
        let c = self.col(ext, col);
        assert!(k < c.repeat, "{col}[{k}] beyond repeat {}", c.repeat);
        let naxis1 = self.int(ext, "NAXIS1") as usize;
        (
            h.data + row * naxis1 + c.offset + k * elem_size(c.code),
            c.code,
        )
    }

    /// Set element `k` of `col` in row `row` of table `ext`.
    fn put(&mut self, ext: &str, col: &str, row: usize, k: usize, v: f64) {
        let (p, code) = self.cell_pos(ext, col, row, k);
        let b: Vec<u8> = match code {
            b'K' => (v as i64).to_be_bytes().to_vec(),
            b'J' => (v as i32).to_be_bytes().to_vec(),
            b'I' => (v as i16).to_be_bytes().to_vec(),
            b'D' => v.to_be_bytes().to_vec(),
            b'E' => (v as f32).to_be_bytes().to_vec(),
            c => panic!("cannot put into a {} column", c as char),
        };
        self.bytes[p..p + b.len()].copy_from_slice(&b);
    }

    fn get(&self, ext: &str, col: &str, row: usize, k: usize) -> f64 {
        let (p, code) = self.cell_pos(ext, col, row, k);
        let b = &self.bytes[p..];
        match code {
            b'K' => i64::from_be_bytes(b[..8].try_into().unwrap()) as f64,
            b'J' => i32::from_be_bytes(b[..4].try_into().unwrap()) as f64,
            b'I' => i16::from_be_bytes(b[..2].try_into().unwrap()) as f64,
            b'D' => f64::from_be_bytes(b[..8].try_into().unwrap()),
            b'E' => f32::from_be_bytes(b[..4].try_into().unwrap()) as f64,
            c => panic!("cannot get from a {} column", c as char),
        }
    }

    /// Set pixels `[first, first + n)` of the flattened image HDU `ext` to `v`.
    fn fill_pixels(&mut self, ext: &str, first: usize, n: usize, v: f64) {
        let h = self.hdu(ext);
        let bitpix = self.int(ext, "BITPIX");
        let size = bitpix.unsigned_abs() as usize / 8;
        for i in first..first + n {
            let p = h.data + i * size;
            let b: Vec<u8> = match bitpix {
                -32 => (v as f32).to_be_bytes().to_vec(),
                -64 => v.to_be_bytes().to_vec(),
                32 => (v as i32).to_be_bytes().to_vec(),
                16 => (v as i16).to_be_bytes().to_vec(),
                64 => (v as i64).to_be_bytes().to_vec(),
                b => panic!("BITPIX {b}"),
            };
            assert!(p + size <= h.end, "pixel {i} beyond HDU {ext}");
            self.bytes[p..p + size].copy_from_slice(&b);
        }
    }

    /// Remove HDU `ext` (header and data).
    fn remove_hdu(&mut self, ext: &str) {
        let h = self.hdu(ext);
        self.bytes.drain(h.start..h.end);
        self.hdus = Self::parse(&self.bytes);
    }

    /// Give table `ext` zero rows (its data blocks removed).
    fn empty_table(&mut self, ext: &str) {
        self.set_int(ext, "NAXIS2", 0);
        let h = self.hdu(ext);
        self.bytes.drain(h.data..h.end);
        self.hdus = Self::parse(&self.bytes);
    }
}

// object_data cells of the e2e file
const OD: &str = "object_data";

fn start_row(f: &Fits, obj: usize, cut: usize) -> usize {
    f.get(OD, "start_row", obj, cut) as usize
}

fn box_size(f: &Fits, obj: usize) -> usize {
    f.get(OD, "box_size", obj, 0) as usize
}

fn ncutout(f: &Fits, obj: usize) -> usize {
    f.get(OD, "ncutout", obj, 0) as usize
}

// ------------------------------------------------------------------------------------------
// Cases
// ------------------------------------------------------------------------------------------

/// One case: inputs under `<dir>/in` (copies of the e2e config `cfg.yaml` and MEDS file
/// `tile.fits`), output `<dir>/out/cat.fits` holding an earlier catalogue, options
/// `--seed 7 --threads 1 --fof-range 0,2`.
struct Case {
    dir: TempDir,
    config: PathBuf,
    out: PathBuf,
    meds: Vec<PathBuf>,
    opts: Vec<(String, Option<String>)>,
}

impl Case {
    fn new(label: &str) -> Self {
        let dir = TempDir::new(label);
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        let config = root.join("in/cfg.yaml");
        std::fs::copy(e2e_config(), &config).unwrap();
        let meds = root.join("in/tile.fits");
        std::fs::copy(e2e_meds(), &meds).unwrap();
        let out = root.join("out/cat.fits");
        // an earlier catalogue at the output path: a failed run must leave it as it is
        std::fs::copy(data("e2e/e2e01max.fits"), &out).unwrap();
        let mut c = Self {
            dir,
            config,
            out,
            meds: vec![meds],
            opts: Vec::new(),
        };
        c.opt("--seed", "7")
            .opt("--threads", "1")
            .opt("--fof-range", "0,2");
        c
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn opt(&mut self, k: &str, v: &str) -> &mut Self {
        self.no_opt(k);
        self.opts.push((k.to_string(), Some(v.to_string())));
        self
    }

    fn flag(&mut self, k: &str) -> &mut Self {
        self.opts.push((k.to_string(), None));
        self
    }

    fn no_opt(&mut self, k: &str) -> &mut Self {
        self.opts.retain(|(x, _)| x != k);
        self
    }

    fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        for (k, v) in &self.opts {
            a.push(k.into());
            if let Some(v) = v {
                a.push(v.into());
            }
        }
        a.push(self.config.clone().into());
        a.push(self.out.clone().into());
        a.extend(self.meds.iter().map(|m| m.clone().into()));
        a
    }

    fn run(&self) -> Outcome {
        ngmixit(&self.args())
    }

    fn edit_meds(&self, band: usize, f: impl FnOnce(&mut Fits)) {
        let mut fits = Fits::read(&self.meds[band]);
        f(&mut fits);
        fits.write(&self.meds[band]);
    }

    /// A second band: a copy of band 0's file (then edited by the case).
    fn add_band(&mut self) -> PathBuf {
        let p = self.path(&format!("in/tile-b{}.fits", self.meds.len()));
        std::fs::copy(&self.meds[0], &p).unwrap();
        self.meds.push(p.clone());
        p
    }

    fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }

    fn set_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    /// Replace `from` (which must occur exactly once) by `to` in the config.
    fn edit_config(&self, from: &str, to: &str) {
        let t = self.config_text();
        assert_eq!(t.matches(from).count(), 1, "config text {from:?}");
        self.set_config(&t.replacen(from, to, 1));
    }

    fn append_config(&self, text: &str) {
        let t = self.config_text();
        self.set_config(&format!("{t}\n{text}\n"));
    }

    /// Objects of the run (from `--fof-range`, clipped to the file).
    fn nobj(&self) -> usize {
        match self.opts.iter().find(|(k, _)| k == "--fof-range") {
            Some((_, Some(v))) => {
                let (a, b) = v.split_once(',').unwrap();
                let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
                b.min(NOBJ - 1) + 1 - a
            }
            _ => NOBJ,
        }
    }
}

/// Run and expect a clean refusal: exit `code`, every fragment in stderr, nothing in the case
/// directory changed (inputs, the earlier output), nothing new (no temporary file, no
/// checkpoint).
fn expect_error(c: &Case, code: i32, frags: &[&str]) -> Outcome {
    let before = snapshot(c.dir.path());
    let o = c.run();
    eprintln!("{}", o.describe());
    assert_clean_exit(&o);
    assert_eq!(o.code(), Some(code), "exit code{}", o.describe());
    if code == 1 {
        assert!(
            o.stderr.contains("ngmixit: error: "),
            "no `ngmixit: error:` line{}",
            o.describe()
        );
    }
    for f in frags {
        assert!(
            o.stderr.contains(f),
            "the message does not name {f:?}{}",
            o.describe()
        );
    }
    let d = diff(&before, &snapshot(c.dir.path()));
    assert!(
        d.is_empty(),
        "the failed run changed the case directory: {d:#?}{}",
        o.describe()
    );
    o
}

/// Run and expect success: exit 0, inputs unchanged, a complete catalogue (one `model_fits`
/// row per object of the range), no checkpoint and no temporary file left.
fn expect_ok(c: &Case) -> (Outcome, Columns, Columns) {
    let inputs = c.path("in");
    let before = snapshot(&inputs);
    let o = c.run();
    eprintln!("{}", o.describe());
    assert_clean_exit(&o);
    assert_eq!(o.code(), Some(0), "exit code{}", o.describe());
    let d = diff(&before, &snapshot(&inputs));
    assert!(d.is_empty(), "the run changed its inputs: {d:#?}");
    let dir = c.out.parent().unwrap();
    assert!(
        temporaries(dir).is_empty(),
        "temporary files left: {:?}",
        temporaries(dir)
    );
    assert!(
        !checkpoint_of(&c.out).exists(),
        "the checkpoint was not removed after success"
    );
    let mf = read_table(&c.out, "model_fits").unwrap();
    let ed = read_table(&c.out, "epoch_data").unwrap();
    assert_eq!(mf.nrows(), c.nobj(), "model_fits rows{}", o.describe());
    (o, mf, ed)
}

fn col<'a>(c: &'a Columns, name: &str) -> &'a Column {
    c.get(name).unwrap_or_else(|| panic!("no column {name}"))
}

fn ints(c: &Columns, name: &str) -> Vec<i64> {
    col(c, name)
        .as_int()
        .unwrap_or_else(|| panic!("{name} not integer"))
        .to_vec()
}

fn floats(c: &Columns, name: &str) -> Vec<f64> {
    col(c, name)
        .as_float()
        .unwrap_or_else(|| panic!("{name} not float"))
        .to_vec()
}

/// Row `r` of every column but the wall-clock `time_last_fit`, as text.
fn row(c: &Columns, r: usize) -> Vec<(String, String)> {
    c.columns()
        .iter()
        .filter(|k| k.name != "time_last_fit")
        .map(|k| {
            let (a, b) = (r * k.repeat, (r + 1) * k.repeat);
            let v = match &k.data {
                ColumnData::Int(v) => format!("{:?}", &v[a..b]),
                ColumnData::Float(v) => format!("{:?}", &v[a..b]),
                ColumnData::Str(v) => format!("{:?}", &v[a..b]),
                ColumnData::Bool(v) => format!("{:?}", &v[a..b]),
                ColumnData::Unsupported(t) => t.clone(),
            };
            (k.name.clone(), v)
        })
        .collect()
}

/// Every column but `time_last_fit`, as text.
fn content(path: &Path, ext: &str) -> Vec<(String, String)> {
    let c: Columns = read_table(path, ext).unwrap();
    c.columns()
        .iter()
        .filter(|c| c.name != "time_last_fit")
        .map(|c| (c.name.clone(), format!("{:?}", c.data)))
        .collect()
}

/// The same run on the pristine e2e files, into `<dir>/ref/cat.fits`.
fn clean_run(c: &Case) -> (Columns, Columns) {
    let refdir = c.path("ref");
    std::fs::create_dir_all(&refdir).unwrap();
    let out = refdir.join("cat.fits");
    let mut a: Vec<OsString> = Vec::new();
    for (k, v) in &c.opts {
        a.push(k.into());
        if let Some(v) = v {
            a.push(v.into());
        }
    }
    a.push(e2e_config().into());
    a.push(out.clone().into());
    a.push(e2e_meds().into());
    let o = ngmixit(&a);
    assert_eq!(o.code(), Some(0), "clean run{}", o.describe());
    (
        read_table(&out, "model_fits").unwrap(),
        read_table(&out, "epoch_data").unwrap(),
    )
}

/// Objects other than `bad` (rows of model_fits) are fitted exactly as from the clean file.
fn others_unchanged(mf: &Columns, clean: &Columns, bad: usize) {
    assert_eq!(mf.nrows(), clean.nrows());
    for r in (0..mf.nrows()).filter(|&r| r != bad) {
        assert_eq!(row(mf, r), row(clean, r), "object row {r} changed");
    }
}

/// epoch_data rows of object `id` with `cutout_index` `icut` (`psf_fit_flags` of each).
fn epoch_rows(ed: &Columns, id: i64, icut: i64) -> Vec<i64> {
    let ids = ints(ed, "id");
    let cut = ints(ed, "cutout_index");
    let fl = ints(ed, "psf_fit_flags");
    (0..ed.nrows())
        .filter(|&r| ids[r] == id && cut[r] == icut)
        .map(|r| fl[r])
        .collect()
}

/// Exactly `np` parameters of `prefix_pars` of row `r` (all finite).
fn assert_finite_pars(mf: &Columns, prefix: &str, r: usize) {
    let c = col(mf, &format!("{prefix}_pars"));
    let v = c.as_float().unwrap();
    let p = &v[r * c.repeat..(r + 1) * c.repeat];
    assert!(
        p.iter().all(|x| x.is_finite()),
        "{prefix}_pars[{r}] = {p:?}"
    );
}

// ==========================================================================================
// 1. MEDS files
// ==========================================================================================

#[test]
fn meds_missing_file() {
    let mut c = Case::new("meds-missing");
    c.meds[0] = c.path("in/nonexistent-tile.fits");
    let m = s(&c.meds[0]);
    expect_error(&c, 1, &[&m, "MEDS file of band 0"]);
}

#[test]
fn meds_empty_file() {
    let c = Case::new("meds-empty");
    std::fs::write(&c.meds[0], b"").unwrap();
    expect_error(&c, 1, &[&s(&c.meds[0])]);
}

#[test]
fn meds_not_fits_text() {
    let c = Case::new("meds-text");
    std::fs::write(&c.meds[0], "id box_size ncutout\n1 48 3\n".repeat(200)).unwrap();
    expect_error(&c, 1, &[&s(&c.meds[0])]);
}

#[test]
fn meds_not_fits_binary_noise() {
    let c = Case::new("meds-noise");
    let v: Vec<u8> = (0..3 * BLOCK).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&c.meds[0], v).unwrap();
    expect_error(&c, 1, &[&s(&c.meds[0])]);
}

/// Truncations: inside the primary header, in the middle of object_data, of image_cutouts and
/// of the last HDU (psf), and at the boundary after image_cutouts (a valid FITS file whose
/// later HDUs are missing).
fn truncated(label: &str, at: impl FnOnce(&Fits) -> usize, frags: &[&str]) {
    let c = Case::new(label);
    let f = Fits::read(&c.meds[0]);
    let n = at(&f);
    assert!(n < f.bytes.len());
    std::fs::write(&c.meds[0], &f.bytes[..n]).unwrap();
    let m = s(&c.meds[0]);
    let mut all = vec![m.as_str()];
    all.extend_from_slice(frags);
    expect_error(&c, 1, &all);
}

#[test]
fn meds_truncated_in_primary_header() {
    truncated("trunc-primary", |_| 1000, &[]);
}

#[test]
fn meds_truncated_in_object_data_header() {
    truncated("trunc-od-header", |f| f.hdu(OD).start + 100, &[]);
}

#[test]
fn meds_truncated_in_object_data() {
    truncated("trunc-od", |f| f.hdu(OD).data + 10_000, &["truncated"]);
}

#[test]
fn meds_truncated_in_image_cutouts() {
    truncated(
        "trunc-image",
        |f| f.hdu("image_cutouts").data + 900_001,
        &["truncated"],
    );
}

#[test]
fn meds_truncated_in_psf() {
    truncated("trunc-psf", |f| f.hdu("psf").data + 4321, &["truncated"]);
}

#[test]
fn meds_truncated_after_image_cutouts() {
    truncated(
        "trunc-boundary",
        |f| f.hdu("weight_cutouts").start,
        &["weight_cutouts"],
    );
}

/// A required HDU removed (header and data).
fn missing_hdu(label: &str, ext: &str) {
    let c = Case::new(label);
    c.edit_meds(0, |f| f.remove_hdu(ext));
    expect_error(&c, 1, &[&s(&c.meds[0]), ext]);
}

#[test]
fn meds_missing_hdu_object_data() {
    missing_hdu("no-od", "object_data");
}

#[test]
fn meds_missing_hdu_image_info() {
    missing_hdu("no-ii", "image_info");
}

#[test]
fn meds_missing_hdu_image_cutouts() {
    missing_hdu("no-image", "image_cutouts");
}

#[test]
fn meds_missing_hdu_weight_cutouts() {
    missing_hdu("no-weight", "weight_cutouts");
}

#[test]
fn meds_missing_hdu_seg_cutouts_with_a_seg_region() {
    // region cweight-nearest needs the seg map
    missing_hdu("no-seg", "seg_cutouts");
}

#[test]
fn meds_missing_hdu_psf_with_infile_psfs() {
    missing_hdu("no-psf", "psf");
}

/// A column renamed away.
fn missing_column(ext: &str, column: &str) {
    let c = Case::new(&format!("no-column-{column}"));
    c.edit_meds(0, |f| f.rename_column(ext, column, "renamed_away"));
    expect_error(&c, 1, &[&s(&c.meds[0]), ext, column]);
}

macro_rules! missing_column_cases {
    ($($name:ident: $ext:literal, $col:literal;)*) => {
        $(
            #[test]
            fn $name() {
                missing_column($ext, $col);
            }
        )*
    };
}

missing_column_cases! {
    meds_missing_column_id: "object_data", "id";
    meds_missing_column_box_size: "object_data", "box_size";
    meds_missing_column_ncutout: "object_data", "ncutout";
    meds_missing_column_file_id: "object_data", "file_id";
    meds_missing_column_start_row: "object_data", "start_row";
    meds_missing_column_orig_row: "object_data", "orig_row";
    meds_missing_column_cutout_row: "object_data", "cutout_row";
    meds_missing_column_dudcol: "object_data", "dudcol";
    meds_missing_column_psf_start_row: "object_data", "psf_start_row";
    meds_missing_column_image_path: "image_info", "image_path";
}

/// A column given another type of the same byte width (`8A` for `K`: strings instead of
/// integers).
fn wrong_type(ext: &str, column: &str, tform: &str) {
    let c = Case::new(&format!("type-{column}"));
    c.edit_meds(0, |f| f.set_tform(ext, column, tform));
    expect_error(&c, 1, &[&s(&c.meds[0]), ext, column]);
}

macro_rules! wrong_type_cases {
    ($($name:ident: $ext:literal, $col:literal, $tform:literal;)*) => {
        $(
            #[test]
            fn $name() {
                wrong_type($ext, $col, $tform);
            }
        )*
    };
}

wrong_type_cases! {
    meds_string_column_box_size: "object_data", "box_size", "8A";
    meds_string_column_ncutout: "object_data", "ncutout", "8A";
    meds_string_column_id: "object_data", "id", "8A";
    meds_string_column_start_row: "object_data", "start_row", "24A";
    meds_string_column_dudrow: "object_data", "dudrow", "24A";
    meds_numeric_column_image_path: "image_info", "image_path", "5D";
}

#[test]
fn meds_box_size_beyond_the_pixel_data() {
    // the last object's last cutout ends at the end of the cutout HDUs: one more pixel per
    // side runs past them
    let mut c = Case::new("box-beyond");
    c.opt("--fof-range", "65,65");
    c.edit_meds(0, |f| {
        let b = box_size(f, 65);
        f.put(OD, "box_size", 65, 0, (b + 1) as f64);
    });
    expect_error(&c, 1, &[&s(&c.meds[0]), "box_size", "image_cutouts"]);
}

#[test]
fn meds_box_size_absurd() {
    let c = Case::new("box-absurd");
    c.edit_meds(0, |f| f.put(OD, "box_size", 0, 0, 1.0e9));
    expect_error(&c, 1, &[&s(&c.meds[0]), "box_size"]);
}

#[test]
fn meds_negative_box_size() {
    let c = Case::new("box-negative");
    c.edit_meds(0, |f| f.put(OD, "box_size", 0, 0, -48.0));
    expect_error(&c, 1, &[&s(&c.meds[0]), "box_size"]);
}

#[test]
fn meds_negative_ncutout() {
    let c = Case::new("ncutout-negative");
    c.edit_meds(0, |f| f.put(OD, "ncutout", 0, 0, -1.0));
    expect_error(&c, 1, &[&s(&c.meds[0]), "object_data", "ncutout"]);
}

#[test]
fn meds_ncutout_wider_than_the_columns() {
    let c = Case::new("ncutout-wide");
    c.edit_meds(0, |f| f.put(OD, "ncutout", 0, 0, 5.0));
    expect_error(&c, 1, &[&s(&c.meds[0]), "object_data", "ncutout 5"]);
}

#[test]
fn meds_file_id_beyond_image_info() {
    let c = Case::new("file-id-beyond");
    c.edit_meds(0, |f| f.put(OD, "file_id", 0, 1, 7.0));
    expect_error(&c, 1, &[&s(&c.meds[0]), "file_id", "image_info"]);
}

#[test]
fn meds_negative_file_id() {
    let c = Case::new("file-id-negative");
    c.edit_meds(0, |f| f.put(OD, "file_id", 0, 2, -1.0));
    expect_error(&c, 1, &[&s(&c.meds[0]), "file_id"]);
}

#[test]
fn meds_negative_start_row() {
    let c = Case::new("start-row-negative");
    c.edit_meds(0, |f| f.put(OD, "start_row", 0, 1, -5.0));
    expect_error(&c, 1, &[&s(&c.meds[0]), "start_row"]);
}

#[test]
fn meds_start_row_beyond_the_pixel_data() {
    let c = Case::new("start-row-beyond");
    c.edit_meds(0, |f| {
        let n = f.int("image_cutouts", "NAXIS1");
        f.put(OD, "start_row", 0, 1, n as f64);
    });
    expect_error(&c, 1, &[&s(&c.meds[0]), "image_cutouts", "start_row"]);
}

#[test]
fn meds_psf_start_row_beyond_the_psf_hdu() {
    let c = Case::new("psf-start-beyond");
    c.edit_meds(0, |f| {
        let n = f.int("psf", "NAXIS1");
        f.put(OD, "psf_start_row", 0, 0, n as f64);
    });
    expect_error(&c, 1, &[&s(&c.meds[0]), "psf"]);
}

#[test]
fn meds_negative_psf_row_size() {
    let c = Case::new("psf-size-negative");
    c.edit_meds(0, |f| f.put(OD, "psf_row_size", 0, 0, -25.0));
    expect_error(&c, 1, &[&s(&c.meds[0]), "psf_row_size"]);
}

#[test]
fn meds_zero_row_metadata() {
    // metadata is free-form: an empty table must not matter (and must not panic)
    let c = Case::new("metadata-empty");
    c.edit_meds(0, |f| f.empty_table("metadata"));
    let (_, mf, _) = expect_ok(&c);
    assert!(ints(&mf, "flags").iter().all(|&f| f == 0));
    let meta = read_table(&c.out, "meta_data").unwrap();
    assert_eq!(meta.nrows(), 1);
    assert_eq!(col(&meta, "meds_file").as_str().unwrap()[0], s(&c.meds[0]));
}

#[test]
fn meds_without_metadata_hdu() {
    let c = Case::new("metadata-absent");
    c.edit_meds(0, |f| f.remove_hdu("metadata"));
    let (_, mf, _) = expect_ok(&c);
    assert!(ints(&mf, "flags").iter().all(|&f| f == 0));
}

#[test]
fn meds_zero_objects_with_a_range() {
    // a range beyond the objects is refused; a file without objects has none in range
    let c = Case::new("od-empty");
    c.edit_meds(0, |f| f.empty_table(OD));
    expect_error(&c, 1, &["--fof-range"]);
}

// ---- per-cutout problems: flags, not errors

#[test]
fn meds_nan_jacobian_of_one_epoch_drops_that_epoch() {
    let c = Case::new("nan-jacobian-se");
    c.edit_meds(0, |f| f.put(OD, "dudrow", 0, 1, f64::NAN));
    let (_, mf, ed) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 0);
    assert_eq!(ints(&mf, "flags")[0], 0, "fitted from the other epoch");
    assert_eq!(ints(&mf, "nimage_tot")[0], 2);
    assert_eq!(ints(&mf, "nimage_use")[0], 1, "the epoch is dropped");
    assert!(
        epoch_rows(&ed, 1000, 1).iter().all(|&f| f != 0),
        "no usable epoch_data row for the dropped epoch"
    );
    assert_finite_pars(&mf, "exp", 0);
}

#[test]
fn meds_inf_jacobian_of_the_coadd_flags_the_object() {
    // cweight-nearest weights need the coadd Jacobian: no cutout of the object is usable
    let c = Case::new("inf-jacobian-coadd");
    c.edit_meds(0, |f| f.put(OD, "dvdcol", 1, 0, f64::INFINITY));
    let (_, mf, _) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 1);
    let fl = ints(&mf, "flags")[1];
    assert!(fl & IMAGE_FLAGS as i64 != 0, "flags {fl}");
}

#[test]
fn meds_singular_jacobian_of_one_epoch_drops_that_epoch() {
    let c = Case::new("singular-jacobian-se");
    c.edit_meds(0, |f| {
        for k in ["dudrow", "dudcol", "dvdrow", "dvdcol"] {
            f.put(OD, k, 2, 2, 0.0);
        }
    });
    let (_, mf, _) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 2);
    assert_eq!(ints(&mf, "flags")[2], 0);
    assert_eq!(ints(&mf, "nimage_use")[2], 1);
}

#[test]
fn meds_nan_pixel_in_the_image_is_masked() {
    let c = Case::new("nan-pixel");
    c.edit_meds(0, |f| {
        let (b, s0) = (box_size(f, 0), start_row(f, 0, 1));
        f.fill_pixels("image_cutouts", s0 + (b / 2) * b + b / 2, 1, f64::NAN);
    });
    let (_, mf, _) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 0);
    assert_eq!(ints(&mf, "flags")[0], 0);
    assert_eq!(ints(&mf, "nimage_use")[0], 2);
    assert_finite_pars(&mf, "exp", 0);
    assert_finite_pars(&mf, "coadd_exp", 0);
}

#[test]
fn meds_all_nan_image_of_one_epoch_drops_that_epoch() {
    let c = Case::new("nan-image-se");
    c.edit_meds(0, |f| {
        let b = box_size(f, 2);
        f.fill_pixels("image_cutouts", start_row(f, 2, 2), b * b, f64::NAN);
    });
    let (_, mf, _) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 2);
    assert_eq!(ints(&mf, "flags")[2], 0);
    assert_eq!(ints(&mf, "nimage_use")[2], 1);
    assert_finite_pars(&mf, "exp", 2);
}

#[test]
fn meds_infinite_weights_are_masked() {
    let c = Case::new("inf-weight");
    c.edit_meds(0, |f| {
        let b = box_size(f, 1);
        f.fill_pixels("weight_cutouts", start_row(f, 1, 1), b, f64::INFINITY);
    });
    let (_, mf, _) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 1);
    assert_eq!(ints(&mf, "flags")[1], 0);
    assert_finite_pars(&mf, "exp", 1);
}

#[test]
fn meds_nan_psf_stamp_drops_that_epoch() {
    let c = Case::new("nan-psf");
    c.edit_meds(0, |f| {
        let p = f.get(OD, "psf_start_row", 1, 1) as usize;
        let n = (f.get(OD, "psf_row_size", 1, 1) * f.get(OD, "psf_col_size", 1, 1)) as usize;
        f.fill_pixels("psf", p, n, f64::NAN);
    });
    let (_, mf, _) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 1);
    assert_eq!(ints(&mf, "flags")[1], 0);
    assert_eq!(ints(&mf, "nimage_use")[1], 1);
}

#[test]
fn meds_zero_weights_everywhere_give_image_flags() {
    let c = Case::new("zero-weight");
    c.edit_meds(0, |f| {
        let b = box_size(f, 1);
        for cut in 0..ncutout(f, 1) {
            f.fill_pixels("weight_cutouts", start_row(f, 1, cut), b * b, 0.0);
        }
    });
    let (_, mf, _) = expect_ok(&c);
    let (clean, _) = clean_run(&c);
    others_unchanged(&mf, &clean, 1);
    assert_eq!(ints(&mf, "flags")[1], IMAGE_FLAGS as i64);
    assert_eq!(IMAGE_FLAGS, 1 << 26);
    assert_eq!(ints(&mf, "nimage_use")[1], 0);
}

// ---- bands

#[test]
fn meds_bands_with_different_numbers_of_objects() {
    let mut c = Case::new("bands-nobj");
    let b1 = c.add_band();
    // 65 of the 66 rows: the data still fit in the same blocks, the file stays valid
    c.edit_meds(1, |f| f.set_int(OD, "NAXIS2", (NOBJ - 1) as i64));
    expect_error(&c, 1, &[&s(&b1), "object_data", "65"]);
}

#[test]
fn meds_bands_with_different_ids() {
    let mut c = Case::new("bands-ids");
    let b1 = c.add_band();
    c.edit_meds(1, |f| f.put(OD, "id", 1, 0, 5001.0));
    expect_error(&c, 1, &[&s(&b1), "id"]);
}

#[test]
fn meds_same_file_given_twice() {
    let mut c = Case::new("bands-same");
    let m = c.meds[0].clone();
    c.meds.push(m.clone());
    expect_error(&c, 1, &[&s(&m), "same file"]);
}

#[test]
fn meds_same_file_through_a_symlink() {
    let mut c = Case::new("bands-symlink");
    let link = c.path("in/link.fits");
    std::os::unix::fs::symlink(&c.meds[0], &link).unwrap();
    c.meds.push(link);
    expect_error(&c, 1, &["same file"]);
}

#[test]
fn meds_same_file_through_a_hard_link() {
    let mut c = Case::new("bands-hardlink");
    let link = c.path("in/hard.fits");
    std::fs::hard_link(&c.meds[0], &link).unwrap();
    c.meds.push(link);
    expect_error(&c, 1, &["same file"]);
}

#[test]
fn meds_directory_given_as_meds_file() {
    let mut c = Case::new("meds-dir");
    let d = c.path("in/tile-dir.fits");
    std::fs::create_dir(&d).unwrap();
    c.meds[0] = d.clone();
    expect_error(&c, 1, &[&s(&d)]);
}

fn mkfifo(p: &Path) -> bool {
    let ok = Command::new("mkfifo")
        .arg(p)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: mkfifo failed: case skipped");
    }
    ok
}

/// A FIFO given as an input must be refused, not opened: reading it blocks until some other
/// process writes (a correct run takes well under a second, so 20 s means a hang).
fn fifo_input(label: &str, place: impl FnOnce(&mut Case, PathBuf), frags: &[&str]) {
    let mut c = Case::new(label);
    let p = c.path("in/fifo");
    if !mkfifo(&p) {
        return;
    }
    place(&mut c, p.clone());
    let before = snapshot(c.dir.path());
    let o = spawn_and_wait(
        {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ngmixit"));
            cmd.args(c.args());
            cmd
        },
        &c.args(),
        Duration::from_secs(20),
    );
    eprintln!("{}", o.describe());
    assert_clean_exit(&o);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    for f in [s(&p).as_str()].iter().chain(frags) {
        assert!(
            o.stderr.contains(f),
            "the message does not name {f:?}{}",
            o.describe()
        );
    }
    assert!(diff(&before, &snapshot(c.dir.path())).is_empty());
}

#[test]
fn meds_is_a_fifo() {
    fifo_input("meds-fifo", |c, p| c.meds[0] = p, &["not a regular file"]);
}

// ---- compressed inputs

fn tool(name: &str) -> bool {
    Command::new("which")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A compressed copy of the MEDS file fits exactly as the plain file.
fn compressed(label: &str, name: &str, make: impl FnOnce(&Path, &Path) -> bool) {
    let mut c = Case::new(label);
    let packed = c.path(&format!("in/{name}"));
    if !make(&c.meds[0], &packed) {
        eprintln!("note: cannot make {name}: case skipped");
        return;
    }
    std::fs::remove_file(&c.meds[0]).unwrap();
    c.meds[0] = packed;
    let (_, mf, ed) = expect_ok(&c);
    let (cmf, ced) = clean_run(&c);
    for r in 0..mf.nrows() {
        assert_eq!(row(&mf, r), row(&cmf, r), "model_fits row {r}");
    }
    for r in 0..ed.nrows() {
        assert_eq!(row(&ed, r), row(&ced, r), "epoch_data row {r}");
    }
}

#[test]
fn meds_gzip_compressed() {
    if !tool("gzip") {
        eprintln!("note: no gzip: case skipped");
        return;
    }
    compressed("gzip", "tile.fits.gz", |src, dst| {
        let f = std::fs::File::create(dst).unwrap();
        Command::new("gzip")
            .arg("-c")
            .arg(src)
            .stdout(f)
            .status()
            .is_ok_and(|s| s.success())
    });
}

#[test]
fn meds_fpack_compressed() {
    if !tool("fpack") {
        eprintln!("note: no fpack: case skipped");
        return;
    }
    // lossless (gzip, no quantization), so the fit is the same as from the plain file
    compressed("fpack", "tile.fits.fz", |src, dst| {
        let f = std::fs::File::create(dst).unwrap();
        Command::new("fpack")
            .args(["-g", "-q", "0", "-S"])
            .arg(src)
            .stdout(f)
            .status()
            .is_ok_and(|s| s.success())
    });
}

// ==========================================================================================
// 2. Configs
// ==========================================================================================

#[test]
fn config_missing_file() {
    let mut c = Case::new("cfg-missing");
    c.config = c.path("in/no-such-config.yaml");
    expect_error(&c, 1, &[&s(&c.config)]);
}

#[test]
fn config_is_a_directory() {
    let mut c = Case::new("cfg-dir");
    c.config = c.path("in/cfg-dir.yaml");
    std::fs::create_dir(&c.config).unwrap();
    expect_error(&c, 1, &[&s(&c.config)]);
}

#[test]
fn config_not_yaml() {
    let c = Case::new("cfg-not-yaml");
    c.set_config("fitter_type: [max-ngmix-boot\nmodel_pars: {{{\n");
    expect_error(&c, 1, &[&s(&c.config), "YAML"]);
}

#[test]
fn config_binary_garbage() {
    let c = Case::new("cfg-binary");
    let v: Vec<u8> = (0..4096).map(|i| (i * 131 % 256) as u8).collect();
    std::fs::write(&c.config, v).unwrap();
    expect_error(&c, 1, &[&s(&c.config)]);
}

#[test]
fn config_empty_file() {
    let c = Case::new("cfg-empty");
    c.set_config("");
    expect_error(&c, 1, &[&s(&c.config)]);
}

#[test]
fn config_top_level_list() {
    let c = Case::new("cfg-list");
    c.set_config("- fitter_type\n- model_pars\n");
    expect_error(&c, 1, &[&s(&c.config)]);
}

#[test]
fn config_unknown_fitter_type() {
    let c = Case::new("cfg-fitter");
    c.edit_config("\"max-ngmix-boot\"", "\"max-ngmix-bot\"");
    expect_error(&c, 1, &[&s(&c.config), "fitter_type", "max-ngmix-bot"]);
}

#[test]
fn config_unknown_model_name() {
    let c = Case::new("cfg-model");
    c.edit_config("    exp:\n", "    expo:\n");
    expect_error(&c, 1, &[&s(&c.config), "expo"]);
}

#[test]
fn config_reversed_t_prior() {
    let c = Case::new("cfg-t-prior");
    c.edit_config(
        "[-10.0, 0.03, 1.0e+06, 1.0e+05]",
        "[1.0e+06, 0.03, -10.0, 1.0e+05]",
    );
    expect_error(&c, 1, &[&s(&c.config), "model_pars.exp.T"]);
}

#[test]
fn config_max_pars_ntry_zero() {
    let c = Case::new("cfg-ntry");
    c.edit_config("max_pars:\n    ntry: 2", "max_pars:\n    ntry: 0");
    expect_error(&c, 1, &[&s(&c.config), "max_pars.ntry"]);
}

#[test]
fn config_psf_pars_ntry_zero() {
    let c = Case::new("cfg-psf-ntry");
    c.edit_config("    ntry: 4", "    ntry: 0");
    expect_error(&c, 1, &[&s(&c.config), "psf_pars.ntry"]);
}

#[test]
fn config_negative_checkpoint_time() {
    let c = Case::new("cfg-checkpoints");
    c.append_config("checkpoints: [-1]");
    expect_error(&c, 1, &[&s(&c.config), "checkpoints"]);
}

#[test]
fn config_without_model_pars() {
    let c = Case::new("cfg-no-model-pars");
    let t = c.config_text();
    let i = t.find("model_pars:").unwrap();
    c.set_config(&t[..i]);
    expect_error(&c, 1, &[&s(&c.config), "model_pars"]);
}

#[test]
fn config_fit_models_without_model_pars_entry() {
    let c = Case::new("cfg-fit-models");
    c.append_config("fit_models: [\"dev\"]");
    expect_error(&c, 1, &[&s(&c.config), "model_pars", "dev"]);
}

#[test]
fn config_string_where_a_number_is_expected() {
    let c = Case::new("cfg-type-ntry");
    c.edit_config("max_pars:\n    ntry: 2", "max_pars:\n    ntry: \"two\"");
    expect_error(&c, 1, &[&s(&c.config), "max_pars.ntry"]);
}

#[test]
fn config_list_where_a_number_is_expected() {
    let c = Case::new("cfg-type-maxfev");
    c.edit_config("maxfev: 2000", "maxfev: [1, 2]");
    expect_error(&c, 1, &[&s(&c.config), "maxfev"]);
}

#[test]
fn config_string_where_a_float_is_expected() {
    let c = Case::new("cfg-type-s2n");
    c.edit_config("min_psf_s2n: -1.0e+09", "min_psf_s2n: \"low\"");
    expect_error(&c, 1, &[&s(&c.config), "min_psf_s2n"]);
}

#[test]
fn config_string_prior_pars() {
    let c = Case::new("cfg-type-pars");
    c.edit_config(
        "pars: [-10.0, 0.03, 1.0e+06, 1.0e+05]",
        "pars: \"-10, 0.03\"",
    );
    expect_error(&c, 1, &[&s(&c.config), "model_pars.exp.T"]);
}

#[test]
fn config_unknown_psf_model() {
    let c = Case::new("cfg-psf-model");
    c.edit_config("model: \"em3\"", "model: \"em9\"");
    expect_error(&c, 1, &[&s(&c.config), "psf_pars.model", "em9"]);
}

#[test]
fn config_unknown_region() {
    let c = Case::new("cfg-region");
    c.edit_config(
        "region: \"cweight-nearest\"",
        "region: \"cweight-farthest\"",
    );
    expect_error(&c, 1, &[&s(&c.config), "region"]);
}

#[test]
fn config_unknown_key() {
    let c = Case::new("cfg-unknown-key");
    c.edit_config("max_pars:", "max_prs:");
    expect_error(&c, 1, &[&s(&c.config), "max_prs"]);
}

#[test]
fn config_zero_cen_prior_width() {
    let c = Case::new("cfg-cen-width");
    c.edit_config("width: 0.27", "width: 0.0");
    expect_error(&c, 1, &[&s(&c.config), "model_pars.exp.cen"]);
}

#[test]
fn config_negative_g_prior_sigma() {
    let c = Case::new("cfg-g-sigma");
    c.edit_config("sigma: 0.2", "sigma: -0.2");
    expect_error(&c, 1, &[&s(&c.config), "model_pars.exp.g"]);
}

#[test]
fn config_negative_max_zero_weight_frac() {
    let c = Case::new("cfg-zero-weight-frac");
    c.append_config("max_zero_weight_frac: -0.5");
    expect_error(&c, 1, &[&s(&c.config), "max_zero_weight_frac"]);
}

#[test]
fn config_psfex_psfs_with_plain_meds_io() {
    let c = Case::new("cfg-psfex-io");
    c.edit_config("type: \"infile\"", "type: \"psfex\"");
    expect_error(&c, 1, &[&s(&c.config), "imageio.psfs"]);
}

#[test]
fn config_model_nbrs_true() {
    // MOF is not available in this version: the message must say so, whatever else the MOF
    // keys would need
    let c = Case::new("cfg-model-nbrs");
    c.edit_config("model_nbrs: False", "model_nbrs: True");
    expect_error(&c, 1, &[&s(&c.config), "model_nbrs", "not available"]);
}

#[test]
fn config_mof_config() {
    let c = Case::new("cfg-mof");
    std::fs::copy(data("e2e/run-e2e03mof.yaml"), &c.config).unwrap();
    expect_error(&c, 1, &[&s(&c.config), "model_nbrs", "not available"]);
}

#[test]
fn config_metacal_admom_fitter_type() {
    // metacal-ngmix-boot runs (tests/e2e_mcal.rs); the admom variant is refused, named
    let c = Case::new("cfg-metacal-admom");
    let text = std::fs::read_to_string(data("e2e/run-e2e02mcal.yaml")).unwrap();
    assert!(text.contains("metacal-ngmix-boot"));
    std::fs::write(
        &c.config,
        text.replace("metacal-ngmix-boot", "metacal-admom-boot"),
    )
    .unwrap();
    expect_error(&c, 1, &[&s(&c.config), "metacal-admom-boot"]);
}

#[test]
fn config_tab_indentation() {
    let c = Case::new("cfg-tab");
    c.edit_config("    ntry: 2\n    method", "\tntry: 2\n    method");
    let o = expect_error(&c, 1, &[&s(&c.config)]);
    assert!(
        o.stderr.contains("line"),
        "the message names the line{}",
        o.describe()
    );
}

#[test]
fn config_duplicate_key() {
    // PyYAML takes the last value; this port does the same but must say so, naming the key
    // (or refuse the file naming it)
    let c = Case::new("cfg-duplicate");
    c.append_config("region: \"cweight-nearest\"");
    let o = c.run();
    assert_clean_exit(&o);
    assert!(
        o.stderr.contains("duplicate") && o.stderr.contains("region"),
        "the duplicate key is not reported{}",
        o.describe()
    );
    match o.code() {
        Some(0) => {
            assert_eq!(read_table(&c.out, "model_fits").unwrap().nrows(), 3);
        }
        Some(1) => assert!(o.stderr.contains(&s(&c.config))),
        other => panic!("exit {other:?}{}", o.describe()),
    }
}

#[test]
fn config_is_a_fifo() {
    fifo_input("cfg-fifo", |c, p| c.config = p, &[]);
}

#[test]
fn config_too_large() {
    let c = Case::new("cfg-huge");
    let mut t = c.config_text();
    t.push_str(
        &"# padding padding padding padding padding padding padding padding\n".repeat(80_000),
    );
    c.set_config(&t);
    expect_error(&c, 1, &[&s(&c.config), "bytes"]);
}

#[test]
fn config_is_dev_zero() {
    // under a 1 GiB address-space limit, so the unbounded read fails fast instead of
    // exhausting the machine
    let mut c = Case::new("cfg-dev-zero");
    c.config = PathBuf::from("/dev/zero");
    let before = snapshot(c.dir.path());
    let o = ngmixit_limited(&c.args(), 1 << 20, Duration::from_secs(30));
    eprintln!("{}", o.describe());
    assert_clean_exit(&o);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    assert!(o.stderr.contains("/dev/zero"), "{}", o.describe());
    // refused as a device or as too large, not after reading all the memory allows
    assert!(!o.stderr.contains("out of memory"), "{}", o.describe());
    assert!(diff(&before, &snapshot(c.dir.path())).is_empty());
}

#[test]
fn io_error_messages_say_it_once() {
    // a directory as the config is named as such; a missing config gives the OS error once
    let mut c = Case::new("cfg-dir-message");
    c.config = c.path("in/cfg-dir.yaml");
    std::fs::create_dir(&c.config).unwrap();
    let o = expect_error(&c, 1, &[&s(&c.config)]);
    assert!(o.stderr.contains("is a directory"), "{}", o.describe());
    let mut c = Case::new("cfg-missing-message");
    c.config = c.path("in/no-such-config.yaml");
    let o = expect_error(&c, 1, &[&s(&c.config)]);
    assert_eq!(
        o.stderr.matches("os error 2").count(),
        1,
        "{}",
        o.describe()
    );
}

// ==========================================================================================
// 3. Command line
// ==========================================================================================

fn raw(args: &[&str]) -> Outcome {
    let a: Vec<OsString> = args.iter().map(OsString::from).collect();
    let o = ngmixit(&a);
    assert_clean_exit(&o);
    o
}

#[test]
fn cli_no_arguments_exit_45() {
    let o = raw(&[]);
    assert_eq!(o.code(), Some(45), "{}", o.describe());
    assert!(
        o.stderr.contains("config_file out_file"),
        "{}",
        o.describe()
    );
}

#[test]
fn cli_two_positionals_exit_45() {
    let c = Case::new("cli-two");
    let o = raw(&[&s(&c.config), &s(&c.out)]);
    assert_eq!(o.code(), Some(45), "{}", o.describe());
    // nothing written
    assert_eq!(
        std::fs::read(&c.out).unwrap(),
        std::fs::read(data("e2e/e2e01max.fits")).unwrap()
    );
}

fn bad_range(label: &str, v: &str, frags: &[&str]) {
    let mut c = Case::new(label);
    c.opt("--fof-range", v);
    let mut all = vec!["--fof-range"];
    all.extend_from_slice(frags);
    expect_error(&c, 1, &all);
}

#[test]
fn cli_fof_range_one_number() {
    bad_range("range-one", "3", &[]);
}

#[test]
fn cli_fof_range_reversed() {
    bad_range("range-reversed", "5,2", &["5,2"]);
}

#[test]
fn cli_fof_range_negative() {
    // given as one argument (`--fof-range=-1,3`); as two, clap takes `-1,3` for an option
    let mut c = Case::new("range-negative");
    c.no_opt("--fof-range").flag("--fof-range=-1,3");
    expect_error(&c, 1, &["--fof-range", "-1,3"]);
}

#[test]
fn cli_fof_range_negative_separate_argument() {
    let mut c = Case::new("range-negative-sep");
    c.opt("--fof-range", "-1,3");
    let before = snapshot(c.dir.path());
    let o = c.run();
    assert_clean_exit(&o);
    assert_ne!(o.code(), Some(0), "{}", o.describe());
    assert!(o.stderr.contains("--fof-range"), "{}", o.describe());
    assert!(diff(&before, &snapshot(c.dir.path())).is_empty());
}

#[test]
fn cli_fof_range_not_numbers() {
    bad_range("range-letters", "a,b", &["a,b"]);
}

#[test]
fn cli_fof_range_empty() {
    bad_range("range-empty", "", &[]);
}

#[test]
fn cli_fof_range_three_numbers() {
    bad_range("range-three", "1,2,3", &[]);
}

#[test]
fn cli_fof_range_beyond_the_objects() {
    bad_range("range-beyond", "100,200", &["100"]);
}

/// A FoF table `fofid`, `number` for the e2e objects (`fofid = row`), edited by `f`.
fn fof_table(c: &Case, name: &str, f: impl FnOnce(&mut Vec<i64>, &mut Vec<i64>)) -> PathBuf {
    let od = read_table(&c.meds[0], OD).unwrap();
    let mut number = ints(&od, "number");
    let mut fofid: Vec<i64> = (0..number.len() as i64).collect();
    f(&mut fofid, &mut number);
    let mut t = SimTable::new(fofid.len());
    t.push("fofid", 1, ColData::I64(fofid)).unwrap();
    t.push("number", 1, ColData::I64(number)).unwrap();
    let p = c.path(&format!("in/{name}"));
    write_table_file(&p, "fofs", &t).unwrap();
    p
}

#[test]
fn cli_fof_file_missing() {
    let mut c = Case::new("fof-missing");
    let p = c.path("in/no-fofs.fits");
    c.opt("--fof-file", &s(&p));
    expect_error(&c, 1, &["--fof-file", &s(&p)]);
}

#[test]
fn cli_fof_file_without_fofid() {
    let mut c = Case::new("fof-no-fofid");
    let od = read_table(&c.meds[0], OD).unwrap();
    let number = ints(&od, "number");
    let mut t = SimTable::new(number.len());
    t.push("fof_id", 1, ColData::I64((0..NOBJ as i64).collect()))
        .unwrap();
    t.push("number", 1, ColData::I64(number)).unwrap();
    let p = c.path("in/fofs.fits");
    write_table_file(&p, "fofs", &t).unwrap();
    c.opt("--fof-file", &s(&p));
    expect_error(&c, 1, &[&s(&p), "fofid"]);
}

#[test]
fn cli_fof_file_float_fofid() {
    let mut c = Case::new("fof-float");
    let od = read_table(&c.meds[0], OD).unwrap();
    let number = ints(&od, "number");
    let mut t = SimTable::new(number.len());
    t.push(
        "fofid",
        1,
        ColData::F64((0..NOBJ).map(|i| i as f64).collect()),
    )
    .unwrap();
    t.push("number", 1, ColData::I64(number)).unwrap();
    let p = c.path("in/fofs.fits");
    write_table_file(&p, "fofs", &t).unwrap();
    c.opt("--fof-file", &s(&p));
    expect_error(&c, 1, &[&s(&p), "fofid"]);
}

#[test]
fn cli_fof_file_numbers_not_matching() {
    let mut c = Case::new("fof-numbers");
    let p = fof_table(&c, "fofs.fits", |_, number| number.swap(3, 4));
    c.opt("--fof-file", &s(&p));
    expect_error(&c, 1, &[&s(&p), "row 3", "number"]);
}

#[test]
fn cli_fof_file_fewer_rows() {
    let mut c = Case::new("fof-rows");
    let p = fof_table(&c, "fofs.fits", |fofid, number| {
        fofid.truncate(60);
        number.truncate(60);
    });
    c.opt("--fof-file", &s(&p));
    expect_error(&c, 1, &[&s(&p), "60"]);
}

#[test]
fn cli_fof_file_not_fits() {
    let mut c = Case::new("fof-text");
    let p = c.path("in/fofs.fits");
    std::fs::write(&p, "fofid number\n0 1\n").unwrap();
    c.opt("--fof-file", &s(&p));
    expect_error(&c, 1, &[&s(&p)]);
}

#[test]
fn cli_fof_file_is_a_fifo() {
    fifo_input(
        "fof-fifo",
        |c, p| {
            c.opt("--fof-file", &s(&p));
        },
        &["not a regular file"],
    );
}

#[test]
fn cli_fof_file_is_the_meds_file() {
    let mut c = Case::new("fof-is-meds");
    let m = s(&c.meds[0]);
    c.opt("--fof-file", &m);
    expect_error(&c, 1, &["same file", "--fof-file"]);
}

fn obj_flags_table(c: &Case, cols: &[&str]) -> PathBuf {
    let mut t = SimTable::new(2);
    for &name in cols {
        let v = if name == "id" {
            vec![1000, 1001]
        } else {
            vec![1, 0]
        };
        t.push(name, 1, ColData::I64(v)).unwrap();
    }
    let p = c.path("in/objflags.fits");
    write_table_file(&p, "flags", &t).unwrap();
    p
}

#[test]
fn cli_obj_flags_missing() {
    let mut c = Case::new("objflags-missing");
    let p = c.path("in/no-flags.fits");
    c.opt("--obj-flags", &s(&p));
    expect_error(&c, 1, &["--obj-flags", &s(&p)]);
}

#[test]
fn cli_obj_flags_without_flags_column() {
    let mut c = Case::new("objflags-no-flags");
    let p = obj_flags_table(&c, &["id", "flag"]);
    c.opt("--obj-flags", &s(&p));
    expect_error(&c, 1, &[&s(&p), "flags"]);
}

#[test]
fn cli_obj_flags_without_id_column() {
    let mut c = Case::new("objflags-no-id");
    let p = obj_flags_table(&c, &["ids", "flags"]);
    c.opt("--obj-flags", &s(&p));
    expect_error(&c, 1, &[&s(&p), "'id'"]);
}

#[test]
fn cli_psf_map_with_infile_psfs() {
    let mut c = Case::new("psf-map");
    let p = c.path("in/psfmap.dat");
    std::fs::write(&p, "-9999 -9 model_a.psf\n").unwrap();
    c.opt("--psf-map", &s(&p));
    expect_error(&c, 1, &["--psf-map", "psfex"]);
}

#[test]
fn cli_threads_zero_means_all_cores() {
    // documented (`effective_threads`): 0 = all cores, like no --threads
    let mut c = Case::new("threads-0");
    c.opt("--threads", "0");
    expect_ok(&c);
}

#[test]
fn cli_threads_huge_is_capped_with_a_warning() {
    let mut c = Case::new("threads-huge");
    c.opt("--threads", "100000");
    let (o, _, _) = expect_ok(&c);
    assert!(
        o.stderr
            .contains("warning: --threads 100000 is more than the"),
        "{}",
        o.describe()
    );
}

#[test]
fn cli_threads_negative() {
    let mut c = Case::new("threads-negative");
    c.no_opt("--threads").flag("--threads=-1");
    let before = snapshot(c.dir.path());
    let o = c.run();
    assert_clean_exit(&o);
    assert_ne!(o.code(), Some(0), "{}", o.describe());
    assert!(o.stderr.contains("--threads"), "{}", o.describe());
    assert!(diff(&before, &snapshot(c.dir.path())).is_empty());
}

/// Options clap cannot parse: a usage error (clap's exit 2) naming the option.
fn usage_error(label: &str, edit: impl FnOnce(&mut Case), frag: &str) {
    let mut c = Case::new(label);
    edit(&mut c);
    expect_error(&c, 2, &[frag]);
}

#[test]
fn cli_seed_not_a_number() {
    usage_error(
        "seed-letters",
        |c| {
            c.opt("--seed", "abc");
        },
        "--seed",
    );
}

#[test]
fn cli_checkpoint_every_not_a_number() {
    usage_error(
        "ckevery-letters",
        |c| {
            c.opt("--checkpoint-every", "often");
        },
        "--checkpoint-every",
    );
}

#[test]
fn cli_unknown_option() {
    usage_error(
        "unknown-option",
        |c| {
            c.flag("--fof-ranges");
        },
        "--fof-ranges",
    );
}

#[test]
fn cli_option_given_twice() {
    usage_error(
        "option-twice",
        |c| {
            c.opts.push(("--seed".into(), Some("8".into())));
        },
        "--seed",
    );
}

// ==========================================================================================
// 4. Outputs and faults
// ==========================================================================================

#[test]
fn out_is_the_meds_file() {
    let mut c = Case::new("out-meds");
    c.out = c.meds[0].clone();
    expect_error(&c, 1, &["MEDS file of band 0", "refusing to overwrite"]);
}

#[test]
fn out_is_the_config() {
    let mut c = Case::new("out-config");
    c.out = c.config.clone();
    expect_error(&c, 1, &["config", "refusing to overwrite"]);
}

#[test]
fn out_is_a_hard_link_to_the_meds_file() {
    let c = Case::new("out-hardlink");
    std::fs::remove_file(&c.out).unwrap();
    std::fs::hard_link(&c.meds[0], &c.out).unwrap();
    expect_error(&c, 1, &[&s(&c.out), "refusing to overwrite"]);
}

#[test]
fn out_is_a_symlink_to_the_meds_file() {
    let c = Case::new("out-symlink");
    std::fs::remove_file(&c.out).unwrap();
    std::os::unix::fs::symlink(&c.meds[0], &c.out).unwrap();
    expect_error(&c, 1, &[&s(&c.out), "refusing to overwrite"]);
}

#[test]
fn out_is_the_fof_file() {
    let mut c = Case::new("out-fof");
    let p = fof_table(&c, "fofs.fits", |_, _| {});
    c.opt("--fof-file", &s(&p));
    c.out = p;
    expect_error(&c, 1, &["--fof-file", "refusing to overwrite"]);
}

#[test]
fn out_checkpoint_would_be_the_meds_file() {
    // out `tile.fits` beside `tile-checkpoint.fits`: the checkpoint path is an input
    let mut c = Case::new("out-ck-meds");
    let m = c.path("in/tile-checkpoint.fits");
    std::fs::rename(&c.meds[0], &m).unwrap();
    c.meds[0] = m;
    c.out = c.path("in/tile.fits");
    expect_error(&c, 1, &["tile-checkpoint.fits", "refusing to overwrite"]);
}

#[test]
fn out_in_a_missing_directory() {
    let mut c = Case::new("out-nodir");
    c.out = c.path("out/no/such/dir/cat.fits");
    expect_error(&c, 1, &[&s(&c.out), "does not exist"]);
}

#[test]
fn out_is_a_directory() {
    let mut c = Case::new("out-dir");
    c.out = c.path("out/cat-dir.fits");
    std::fs::create_dir(&c.out).unwrap();
    expect_error(&c, 1, &[&s(&c.out), "directory"]);
}

#[test]
fn out_parent_is_a_file() {
    let mut c = Case::new("out-parent-file");
    c.out = c.path("out/cat.fits/x.fits");
    expect_error(&c, 1, &[&s(&c.out), "not a directory"]);
}

#[test]
fn out_empty_name() {
    let mut c = Case::new("out-empty");
    c.out = PathBuf::new();
    expect_error(&c, 2, &["OUT_FILE"]);
}

#[test]
fn out_is_a_fifo() {
    // must be refused, not opened (opening a FIFO for writing blocks forever)
    let mut c = Case::new("out-fifo");
    c.out = c.path("out/fifo.fits");
    let ok = Command::new("mkfifo")
        .arg(&c.out)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: mkfifo failed: case skipped");
        return;
    }
    expect_error(&c, 1, &[&s(&c.out), "not a regular file"]);
}

fn device_output(dev: &str) {
    use std::os::unix::fs::FileTypeExt;
    let p = Path::new(dev);
    if !std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device()) {
        eprintln!("note: no {dev}: case skipped");
        return;
    }
    let mut c = Case::new(&format!("out-{dev}"));
    c.out = p.to_path_buf();
    expect_error(&c, 1, &[dev, "not a regular file"]);
    let m = std::fs::symlink_metadata(p).unwrap();
    assert!(
        m.file_type().is_char_device(),
        "{dev} is no longer a device"
    );
    assert!(
        temporaries(Path::new("/dev")).is_empty(),
        "temporaries in /dev"
    );
    assert!(!Path::new(&format!("{dev}-checkpoint.fits")).exists());
}

#[test]
fn out_is_dev_full() {
    device_output("/dev/full");
}

#[test]
fn out_is_dev_null() {
    device_output("/dev/null");
}

#[test]
fn out_directory_read_only() {
    let mut c = Case::new("out-readonly");
    let ro = c.path("ro");
    let Some(_m) = Mount::tmpfs(&ro, "ro,size=64k") else {
        return;
    };
    c.out = ro.join("cat.fits");
    expect_error(&c, 1, &[&s(&c.out), "cannot write"]);
}

/// Run `c` (its arguments plus `extra`) expecting `code`.
fn run_with(c: &Case, extra: &[&str], code: i32) -> Outcome {
    let mut a: Vec<OsString> = extra.iter().map(OsString::from).collect();
    a.extend(c.args());
    let o = ngmixit(&a);
    assert_clean_exit(&o);
    assert_eq!(o.code(), Some(code), "{}", o.describe());
    o
}

#[test]
fn out_disk_full_at_the_final_write_keeps_the_checkpoint_and_resumes() {
    let mut c = Case::new("disk-full");
    // no time-based checkpoints: the checkpoint after k groups is written by
    // `--checkpoint-every k` alone, so its size can be measured beforehand
    c.append_config("checkpoints: []");
    c.opt("--fof-range", "0,5");
    let n = c.nobj();
    std::fs::remove_file(&c.out).unwrap();

    // the uninterrupted run, and the sizes of the last two checkpoints and of the catalogue
    let calib = c.path("calib");
    std::fs::create_dir_all(&calib).unwrap();
    let reference = calib.join("ref.fits");
    c.out = reference.clone();
    run_with(&c, &["--checkpoint-every", "1"], 0);
    let page = |x: u64| x.div_ceil(4096) * 4096;
    let final_size = page(std::fs::metadata(&reference).unwrap().len());
    let mut ck = Vec::new();
    for k in [n - 2, n - 1] {
        let p = calib.join(format!("ck{k}.fits"));
        c.out = p.clone();
        let ks = k.to_string();
        run_with(
            &c,
            &["--checkpoint-every", &ks, "--abort-after-checkpoint"],
            3,
        );
        let ckp = checkpoint_of(&p);
        assert_eq!(read_table(&ckp, "model_fits").unwrap().nrows(), k);
        ck.push(page(std::fs::metadata(&ckp).unwrap().len()));
    }
    // writing the last checkpoint needs the previous one plus the new one; the final write
    // needs the last checkpoint plus the catalogue
    let need_ck = ck[0] + ck[1];
    let need_final = ck[1] + final_size;
    let target = (need_ck + need_final) / 2 / 4096 * 4096;
    eprintln!("checkpoints {ck:?}, catalogue {final_size}: free space {target}");
    assert!(
        need_ck <= target && target < need_final,
        "no free-space size lets the checkpoints fit but not the catalogue"
    );

    let disk = c.path("disk");
    let filler_size = 256 * 1024;
    let Some(_m) = Mount::tmpfs(&disk, &format!("size={}", target + filler_size)) else {
        return;
    };
    let filler = disk.join("filler");
    std::fs::write(&filler, vec![7u8; filler_size as usize]).unwrap();
    let out = disk.join("cat.fits");
    c.out = out.clone();
    let inputs = snapshot(&c.path("in"));
    let o = run_with(&c, &["--checkpoint-every", "1"], 1);
    assert!(
        o.stderr.contains(&s(&out)),
        "names the output{}",
        o.describe()
    );
    assert!(!out.exists(), "no catalogue");
    assert!(temporaries(&disk).is_empty(), "{:?}", temporaries(&disk));
    let ckp = checkpoint_of(&out);
    assert!(ckp.exists(), "the checkpoint is kept{}", o.describe());
    assert_eq!(read_table(&ckp, "model_fits").unwrap().nrows(), n - 1);
    assert!(read_table(&ckp, "epoch_data").unwrap().nrows() > 0);
    assert!(diff(&inputs, &snapshot(&c.path("in"))).is_empty());

    // space freed: the same command resumes and finishes
    std::fs::remove_file(&filler).unwrap();
    let o = run_with(&c, &["--checkpoint-every", "1"], 0);
    assert!(o.stderr.contains("resumed"), "{}", o.describe());
    assert!(!ckp.exists(), "checkpoint removed after success");
    assert!(temporaries(&disk).is_empty());
    for ext in ["model_fits", "epoch_data"] {
        assert_eq!(content(&out, ext), content(&reference, ext), "{ext}");
    }
}

/// Leave the checkpoint of a run set up by `first` (stopped right after it), change the case
/// with `change`, and expect the run to refuse the checkpoint naming it and `what`.
fn stale_checkpoint(
    label: &str,
    first: impl FnOnce(&mut Case),
    change: impl FnOnce(&mut Case),
    what: &[&str],
) {
    let mut c = Case::new(label);
    first(&mut c);
    run_with(
        &c,
        &["--checkpoint-every", "1", "--abort-after-checkpoint"],
        3,
    );
    let ck = checkpoint_of(&c.out);
    assert!(ck.exists());
    change(&mut c);
    let cks = s(&ck);
    let mut frags = vec![cks.as_str(), "another run"];
    frags.extend_from_slice(what);
    expect_error(&c, 1, &frags);
    assert!(ck.exists(), "the refused checkpoint is kept");
}

#[test]
fn stale_checkpoint_of_another_seed() {
    stale_checkpoint(
        "stale-seed",
        |c| {
            c.opt("--seed", "1");
        },
        |c| {
            c.opt("--seed", "2");
        },
        &["seed"],
    );
}

#[test]
fn stale_checkpoint_of_another_fof_range() {
    stale_checkpoint(
        "stale-range",
        |_| {},
        |c| {
            c.opt("--fof-range", "0,3");
        },
        &["--fof-range"],
    );
}

#[test]
fn stale_checkpoint_of_a_changed_config() {
    stale_checkpoint(
        "stale-config",
        |_| {},
        |c| c.append_config("# edited after the checkpoint"),
        &["config", "changed"],
    );
}

#[test]
fn stale_checkpoint_of_another_meds_file() {
    stale_checkpoint(
        "stale-meds",
        |_| {},
        |c| {
            let other = c.path("in/other-tile.fits");
            std::fs::copy(&c.meds[0], &other).unwrap();
            c.meds[0] = other;
        },
        &["MEDS file of band 0"],
    );
}

#[test]
fn stale_checkpoint_of_a_modified_meds_file() {
    stale_checkpoint(
        "stale-meds-modified",
        |_| {},
        |c| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&c.meds[0])
                .unwrap();
            f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
                .unwrap();
        },
        &["MEDS file of band 0", "changed"],
    );
}

#[test]
fn corrupt_checkpoint_is_refused_and_kept() {
    let c = Case::new("ck-corrupt");
    let ck = checkpoint_of(&c.out);
    std::fs::write(&ck, "SIMPLE  =  garbage").unwrap();
    expect_error(&c, 1, &[&s(&ck), "checkpoint"]);
}

#[test]
fn checkpoint_of_another_program_is_refused() {
    // a valid FITS file without checkpoint_data (e.g. an old catalogue renamed)
    let c = Case::new("ck-foreign");
    let ck = checkpoint_of(&c.out);
    std::fs::copy(data("e2e/e2e01max.fits"), &ck).unwrap();
    expect_error(&c, 1, &[&s(&ck), "checkpoint"]);
}

#[test]
fn checkpoint_path_is_a_directory() {
    let c = Case::new("ck-dir");
    let ck = checkpoint_of(&c.out);
    std::fs::create_dir(&ck).unwrap();
    expect_error(&c, 1, &[&s(&ck), "directory"]);
}

#[test]
fn leftover_temporary_of_a_killed_run_is_removed() {
    let c = Case::new("leftover-tmp");
    let dir = c.out.parent().unwrap();
    let t1 = dir.join(".cat.fits.tmp-999999");
    let t2 = dir.join(".cat-checkpoint.fits.tmp-999998");
    std::fs::write(&t1, vec![0u8; 5000]).unwrap();
    std::fs::write(&t2, b"half a checkpoint").unwrap();
    // not ours: another output's temporary, and a file that only looks like one
    let other = dir.join(".other.fits.tmp-999999");
    let keep = dir.join(".cat.fits.tmp-notapid");
    std::fs::write(&other, b"x").unwrap();
    std::fs::write(&keep, b"x").unwrap();
    let o = c.run();
    assert_clean_exit(&o);
    assert_eq!(o.code(), Some(0), "{}", o.describe());
    assert!(!t1.exists() && !t2.exists(), "stale temporaries removed");
    assert!(other.exists() && keep.exists(), "other files kept");
    assert_eq!(read_table(&c.out, "model_fits").unwrap().nrows(), 3);
}

#[test]
fn temporary_of_a_live_process_is_kept() {
    // the test process is alive: its "temporary" may be another run writing right now
    let c = Case::new("live-tmp");
    let dir = c.out.parent().unwrap();
    let t = dir.join(format!(".cat.fits.tmp-{}", std::process::id()));
    std::fs::write(&t, b"being written").unwrap();
    let o = c.run();
    assert_clean_exit(&o);
    assert_eq!(o.code(), Some(0), "{}", o.describe());
    assert_eq!(std::fs::read(&t).unwrap(), b"being written");
}

#[test]
fn success_overwrites_the_earlier_output_atomically() {
    // the control case: the same inputs fitted into an existing catalogue replace it whole
    let c = Case::new("overwrite");
    let (_, mf, _) = expect_ok(&c);
    assert_eq!(ints(&mf, "id"), vec![1000, 1001, 1002]);
    let (clean, _) = clean_run(&c);
    for r in 0..3 {
        assert_eq!(row(&mf, r), row(&clean, r));
    }
    assert_eq!(floats(&mf, "exp_pars").len(), 3 * 6);
}
