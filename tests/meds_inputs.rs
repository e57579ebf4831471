//! "No lost data on bad input", MEDS side: compressed inputs (gzip and fpack tile compression)
//! read exactly like the plain file, a truncated `.gz` is an error naming the file, malformed
//! tables (zero-row `metadata`, `file_id` outside `image_info`, PSF stamps outside the HDU) give
//! errors that name the file, band, object and cutout instead of panicking, defective epochs
//! (NaN Jacobian, empty or NaN PSF stamp) are flagged and counted in `dropped_epochs`, and band
//! files that do not describe the same objects are rejected.
//!
//! The compressed copies are made at test time with the bundled cfitsio (and `gzip` when it is
//! on PATH); the small MEDS files come from the crate's simulator.
#![cfg(feature = "des-y1")]

use std::ffi::{c_int, c_long, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use fitsio::sys as ffi;
use ngmixer::backends::meds::{CutoutKind, MedsFile};
use ngmixer::backends::medsio::{IoSettings, MedsSource, Region};
use ngmixer::flags::IMAGE_FLAGS;
use ngmixer::obs::{ObjectObs, Observation};
use ngmixer::sim::{write_meds, BandConfig, ColData, MedsData, Scene, SimConfig, SimTable};
use ngmixer::traits::ImageSource;
use ngmixer::Error;

fn e2e_meds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/meds/sim-e2e-meds.fits")
}

/// A scratch directory unique to this process and call, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let k = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "ngmixer-meds-inputs-{}-{k}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------------------------------------
// Making compressed copies with cfitsio

const END_OF_FILE: c_int = 107;
const IMAGE_HDU: c_int = 0;

fn check(status: c_int, what: &str) {
    assert_eq!(status, 0, "cfitsio {what}: status {status}");
}

fn cstr(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// How to write the copy.
#[derive(Clone, Copy)]
enum Copy {
    /// Every HDU as is (a `.gz` output name makes cfitsio gzip the file).
    Plain,
    /// Images tile-compressed losslessly (GZIP_1, no quantization), `tile` pixels per tile
    /// (`None`: cfitsio's default, one tile per row, i.e. the whole one-dimensional image).
    Fpack { tile: Option<usize> },
}

/// Copy every HDU of `src` into a new file `dst` with cfitsio.
fn cfitsio_copy(src: &Path, dst: &Path, how: Copy) {
    let _ = std::fs::remove_file(dst);
    let (cs, cd) = (cstr(src), cstr(dst));
    let mut inf: *mut ffi::fitsfile = ptr::null_mut();
    let mut out: *mut ffi::fitsfile = ptr::null_mut();
    let mut st = 0;
    // SAFETY: plain cfitsio calls on handles opened here and closed at the end.
    unsafe {
        ffi::ffdkopn(&mut inf, cs.as_ptr(), 0, &mut st);
        check(st, "open input");
        // ffinit (not ffdkinit): a `.gz` output name makes cfitsio gzip the file
        ffi::ffinit(&mut out, cd.as_ptr(), &mut st);
        check(st, "create output");
        for num in 1.. {
            let mut hdutype = 0;
            ffi::ffmahd(inf, num, &mut hdutype, &mut st);
            if st == END_OF_FILE {
                st = 0;
                ffi::ffcmsg();
                break;
            }
            check(st, "move to HDU");
            let mut naxis = 0;
            if hdutype == IMAGE_HDU {
                ffi::ffgidm(inf, &mut naxis, &mut st);
            }
            match how {
                Copy::Fpack { tile } if hdutype == IMAGE_HDU && naxis > 0 && num > 1 => {
                    // cfitsio resets the parameters after each compressed HDU
                    ffi::fits_set_compression_type(out, 21, &mut st); // GZIP_1
                    ffi::fits_set_quantize_level(out, 0.0, &mut st); // lossless floats
                    if let Some(t) = tile {
                        let mut dims: [c_long; 1] = [t as c_long];
                        ffi::fits_set_tile_dim(out, 1, dims.as_mut_ptr(), &mut st);
                    }
                    check(st, "compression parameters");
                    ffi::fits_img_compress(inf, out, &mut st);
                }
                _ => {
                    ffi::ffcopy(inf, out, 0, &mut st);
                }
            }
            check(st, "copy HDU");
        }
        ffi::ffclos(out, &mut st);
        check(st, "close output");
        ffi::ffclos(inf, &mut st);
    }
}

fn gzip_on_path() -> bool {
    std::process::Command::new("gzip")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn gzip_binary(src: &Path, dst: &Path) {
    let out = std::process::Command::new("gzip")
        .arg("-c")
        .arg(src)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(dst, out.stdout).unwrap();
}

fn is_gzip(p: &Path) -> bool {
    std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b])
}

// ------------------------------------------------------------------------------------------
// Comparisons

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn same_arr(a: &Option<ndarray::Array2<f64>>, b: &Option<ndarray::Array2<f64>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.dim() == b.dim()
                && same_bits(
                    &a.iter().copied().collect::<Vec<_>>(),
                    &b.iter().copied().collect::<Vec<_>>(),
                )
        }
        _ => false,
    }
}

fn assert_same_obs(a: &Observation, b: &Observation, what: &str) {
    assert_eq!(a.flags, b.flags, "{what}: flags");
    assert_eq!(a.meta, b.meta, "{what}: meta");
    assert_eq!(
        format!("{:?}", a.jacobian),
        format!("{:?}", b.jacobian),
        "{what}: jacobian"
    );
    assert!(
        same_arr(&Some(a.image().clone()), &Some(b.image().clone())),
        "{what}: image"
    );
    assert!(
        same_arr(&Some(a.weight().clone()), &Some(b.weight().clone())),
        "{what}: weight"
    );
    assert!(same_arr(&a.weight_raw, &b.weight_raw), "{what}: weight_raw");
    assert!(same_arr(&a.weight_us, &b.weight_us), "{what}: weight_us");
    assert!(same_arr(&a.noise, &b.noise), "{what}: noise");
    assert_eq!(a.seg, b.seg, "{what}: seg");
    assert_eq!(a.bmask, b.bmask, "{what}: bmask");
    assert_eq!(
        format!("{:?}", a.psf_meta),
        format!("{:?}", b.psf_meta),
        "{what}: psf_meta"
    );
    match (&a.psf, &b.psf) {
        (None, None) => {}
        (Some(pa), Some(pb)) => assert_same_obs(pa, pb, &format!("{what} psf")),
        _ => panic!("{what}: psf presence differs"),
    }
}

/// Every cutout of every kind, the PSF stamps, and the observations built with two regions are
/// bitwise identical in `a` and `b`.
fn assert_same_meds(a: &Path, b: &Path) {
    let (ma, mb) = (MedsFile::open(a).unwrap(), MedsFile::open(b).unwrap());
    assert_eq!(ma.size(), mb.size());
    assert_eq!(ma.object_data(), mb.object_data());
    assert_eq!(ma.image_info(), mb.image_info());
    assert_eq!(ma.metadata(), mb.metadata());
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    let (mut ia, mut ib) = (Vec::new(), Vec::new());
    for iobj in 0..ma.size() {
        for icut in 0..ma.ncutout(iobj).unwrap() {
            for kind in CutoutKind::ALL {
                if !ma.has_cutouts(kind) {
                    assert!(!mb.has_cutouts(kind));
                    continue;
                }
                let what = format!("{} object {iobj} cutout {icut} {kind:?}", b.display());
                assert_eq!(
                    ma.cutout(kind, iobj, icut, &mut va).unwrap(),
                    mb.cutout(kind, iobj, icut, &mut vb).unwrap()
                );
                if !same_bits(&va, &vb) {
                    let k = va
                        .iter()
                        .zip(&vb)
                        .position(|(x, y)| x.to_bits() != y.to_bits());
                    let k = k.unwrap_or(0);
                    panic!("{what}: pixel {k}: {:?} vs {:?}", va.get(k), vb.get(k));
                }
                if matches!(kind, CutoutKind::Seg | CutoutKind::Bmask) {
                    ma.cutout_i32(kind, iobj, icut, &mut ia).unwrap();
                    mb.cutout_i32(kind, iobj, icut, &mut ib).unwrap();
                    assert_eq!(ia, ib, "{what} (i32)");
                }
            }
            ma.psf(iobj, icut, &mut va).unwrap();
            mb.psf(iobj, icut, &mut vb).unwrap();
            assert!(same_bits(&va, &vb), "psf of object {iobj} cutout {icut}");
        }
    }
    for region in [Region::Mof, Region::Uberseg] {
        let io = IoSettings {
            region,
            ..IoSettings::default()
        };
        let mut sa = MedsSource::open(&[a.to_path_buf()], io.clone()).unwrap();
        let mut sb = MedsSource::open(&[b.to_path_buf()], io).unwrap();
        let (mut oa, mut ob) = (ObjectObs::default(), ObjectObs::default());
        for k in 0..sa.nobj() {
            sa.read_object(k, &mut oa).unwrap();
            sb.read_object(k, &mut ob).unwrap();
            assert_eq!(oa.meta.id, ob.meta.id);
            assert_eq!(oa.meta.nimage_tot, ob.meta.nimage_tot);
            assert_eq!(oa.meta.dropped_epochs, ob.meta.dropped_epochs);
            for (la, lb) in [(&oa.coadd, &ob.coadd), (&oa.se, &ob.se)] {
                let (xa, xb): (Vec<_>, Vec<_>) = (la.iter().collect(), lb.iter().collect());
                assert_eq!(xa.len(), xb.len());
                for (i, (x, y)) in xa.iter().zip(&xb).enumerate() {
                    assert_same_obs(x, y, &format!("{region:?} object {k} obs {i}"));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Compressed inputs

#[test]
fn gzip_copies_read_bitwise_like_the_plain_file() {
    let d = Scratch::new("gz");
    let plain = e2e_meds();
    let gz = d.file("cfitsio-copy.fits.gz");
    cfitsio_copy(&plain, &gz, Copy::Plain);
    assert!(is_gzip(&gz), "cfitsio did not gzip {}", gz.display());
    assert_same_meds(&plain, &gz);
    if gzip_on_path() {
        // detected by the magic bytes, not the name
        let gz2 = d.file("gzip-copy.fits");
        gzip_binary(&plain, &gz2);
        assert_same_meds(&plain, &gz2);
    }
}

#[test]
fn fpack_copies_read_bitwise_like_the_plain_file() {
    let d = Scratch::new("fz");
    let plain = e2e_meds();
    // one tile per image (cfitsio's default for one-dimensional images), and small tiles so
    // that cutouts span tile boundaries
    for (name, tile) in [("whole.fits.fz", None), ("tiles.fits.fz", Some(1000))] {
        let fz = d.file(name);
        cfitsio_copy(&plain, &fz, Copy::Fpack { tile });
        assert!(
            std::fs::metadata(&fz).unwrap().len() < std::fs::metadata(&plain).unwrap().len(),
            "{name} is not compressed"
        );
        assert_same_meds(&plain, &fz);
    }
}

#[test]
fn compressed_files_read_from_reopened_handles_in_threads() {
    let d = Scratch::new("threads");
    let plain = e2e_meds();
    let fz = d.file("tiles.fits.fz");
    cfitsio_copy(&plain, &fz, Copy::Fpack { tile: Some(2304) });
    let gz = d.file("copy.fits.gz");
    cfitsio_copy(&plain, &gz, Copy::Plain);
    let p = MedsFile::open(&plain).unwrap();
    for path in [&fz, &gz] {
        let m = MedsFile::open(path).unwrap();
        std::thread::scope(|s| {
            for t in 0..3 {
                // handles reopened from reopened handles share the same decompressed data
                let h = m.reopen().unwrap().reopen().unwrap();
                let p = &p;
                s.spawn(move || {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    for iobj in (t..h.size()).step_by(3).rev() {
                        for icut in 0..h.ncutout(iobj).unwrap() {
                            for kind in [CutoutKind::Image, CutoutKind::Seg] {
                                h.cutout(kind, iobj, icut, &mut a).unwrap();
                                p.cutout(kind, iobj, icut, &mut b).unwrap();
                                assert!(same_bits(&a, &b), "{}", path.display());
                            }
                        }
                    }
                });
            }
        });
    }
}

#[test]
fn truncated_gzip_is_an_error_naming_the_file() {
    let d = Scratch::new("gz-cut");
    let gz = d.file("full.fits.gz");
    cfitsio_copy(&e2e_meds(), &gz, Copy::Plain);
    let bytes = std::fs::read(&gz).unwrap();
    let n = bytes.len();
    for keep in [n / 10, n / 2, n * 9 / 10, n - 100, n - 4, n - 1] {
        let cut = d.file(&format!("cut-{keep}.fits.gz"));
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let e = MedsFile::open(&cut).map(|_| ()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Fits { .. }), "{msg}");
        assert!(msg.contains(&cut.display().to_string()), "{msg}");
        assert!(msg.contains("truncated"), "{msg}");
    }
}

// ------------------------------------------------------------------------------------------
// Small simulated MEDS files

fn sim_scene(nobj: usize, nband: usize) -> Scene {
    let names = ["g", "r", "i", "z"];
    Scene::generate(&SimConfig {
        seed: 11,
        nobj,
        bands: (0..nband).map(|b| BandConfig::new(names[b], 3)).collect(),
        box_sizes: vec![32],
        psf_dims: vec![25],
        epoch_coverage: 1.0,
        ..SimConfig::default()
    })
    .unwrap()
}

fn col<'a>(t: &'a mut SimTable, name: &str) -> (usize, &'a mut ColData) {
    let (_, repeat, data) = t.cols.iter_mut().find(|(n, _, _)| n == name).unwrap();
    (*repeat, data)
}

fn set_int(t: &mut SimTable, name: &str, row: usize, k: usize, v: i64) {
    let (rep, data) = col(t, name);
    match data {
        ColData::I64(x) => x[row * rep + k] = v,
        ColData::I32(x) => x[row * rep + k] = v as i32,
        other => panic!("{name}: {other:?}"),
    }
}

fn get_int(t: &mut SimTable, name: &str, row: usize, k: usize) -> i64 {
    let (rep, data) = col(t, name);
    match data {
        ColData::I64(x) => x[row * rep + k],
        ColData::I32(x) => i64::from(x[row * rep + k]),
        other => panic!("{name}: {other:?}"),
    }
}

fn set_float(t: &mut SimTable, name: &str, row: usize, k: usize, v: f64) {
    let (rep, data) = col(t, name);
    match data {
        ColData::F64(x) => x[row * rep + k] = v,
        ColData::F32(x) => x[row * rep + k] = v as f32,
        other => panic!("{name}: {other:?}"),
    }
}

fn write_band(d: &Scratch, name: &str, m: &MedsData) -> PathBuf {
    let p = d.file(name);
    write_meds(&p, m).unwrap();
    p
}

fn object_id(m: &mut MedsData, row: usize) -> i64 {
    get_int(&mut m.object_data, "id", row, 0)
}

#[test]
fn zero_row_metadata_does_not_panic() {
    let d = Scratch::new("meta0");
    let scene = sim_scene(3, 2);
    let mut paths = Vec::new();
    for b in 0..2 {
        let mut m = scene.render_band(b).unwrap();
        let cols = m
            .metadata
            .cols
            .iter()
            .map(|(n, r, c)| {
                let empty = match c {
                    ColData::I32(_) => ColData::I32(vec![]),
                    ColData::I64(_) => ColData::I64(vec![]),
                    ColData::F32(_) => ColData::F32(vec![]),
                    ColData::F64(_) => ColData::F64(vec![]),
                    ColData::Str(_, w) => ColData::Str(vec![], *w),
                };
                (n.clone(), *r, empty)
            })
            .collect();
        m.metadata = SimTable { nrows: 0, cols };
        paths.push(write_band(&d, &format!("b{b}.fits"), &m));
    }
    let f = MedsFile::open(&paths[0]).unwrap();
    assert_eq!(f.metadata().nrows(), 0);
    assert!(f.metadata().ncols() > 0);
    let mut src = MedsSource::open(&paths, IoSettings::default()).unwrap();
    let mut out = ObjectObs::default();
    for k in 0..src.nobj() {
        src.read_object(k, &mut out).unwrap();
        assert_eq!(out.meta.dropped_epochs, vec![0, 0]);
    }
    let r = src.reopen().unwrap();
    assert_eq!(r.files()[1].metadata().nrows(), 0);
}

#[test]
fn file_id_outside_image_info_names_file_object_and_cutout() {
    let d = Scratch::new("fileid");
    let scene = sim_scene(4, 1);
    for bad in [99, -1] {
        let mut m = scene.render_band(0).unwrap();
        set_int(&mut m.object_data, "file_id", 2, 1, bad);
        let id = object_id(&mut m, 2);
        let p = write_band(&d, &format!("fid{bad}.fits"), &m);
        let f = MedsFile::open(&p).unwrap();
        let msg = f.file_id(2, 1).unwrap_err().to_string();
        for want in [
            p.display().to_string(),
            format!("object id {id} (row 2)"),
            "cutout 1".into(),
            format!("file_id {bad}"),
        ] {
            assert!(msg.contains(&want), "{want:?} not in {msg}");
        }
        let mut src = MedsSource::open(std::slice::from_ref(&p), IoSettings::default()).unwrap();
        let mut out = ObjectObs::default();
        src.read_object(1, &mut out).unwrap();
        let msg = src.read_object(2, &mut out).unwrap_err().to_string();
        for want in [
            p.display().to_string(),
            "band 0".into(),
            format!("object id {id} (row 2)"),
            "cutout 1".into(),
            format!("file_id {bad}"),
        ] {
            assert!(msg.contains(&want), "{want:?} not in {msg}");
        }
    }
}

#[test]
fn psf_stamp_outside_the_hdu_names_band_object_and_cutout() {
    let d = Scratch::new("psfrange");
    let scene = sim_scene(3, 2);
    let m0 = scene.render_band(0).unwrap();
    let mut m1 = scene.render_band(1).unwrap();
    let npsf = m1.psf.len() as i64;
    set_int(&mut m1.object_data, "psf_start_row", 1, 2, npsf - 10);
    let id = object_id(&mut m1, 1);
    let paths = vec![write_band(&d, "g.fits", &m0), write_band(&d, "r.fits", &m1)];
    let mut src = MedsSource::open(&paths, IoSettings::default()).unwrap();
    let mut out = ObjectObs::default();
    let msg = src.read_object(1, &mut out).unwrap_err().to_string();
    for want in [
        paths[1].display().to_string(),
        "band 1".into(),
        format!("object id {id} (row 1)"),
        "cutout 2".into(),
        "PSF stamp".into(),
    ] {
        assert!(msg.contains(&want), "{want:?} not in {msg}");
    }
}

#[test]
fn defective_epochs_are_flagged_and_counted_per_band() {
    let d = Scratch::new("dropped");
    let scene = sim_scene(4, 2);
    let m0 = scene.render_band(0).unwrap();
    let mut m1 = scene.render_band(1).unwrap();
    // band 1: object 0 cutout 1 has a NaN Jacobian; object 1 cutout 2 an empty (0x0) PSF
    // stamp; object 2 cutout 3 a PSF stamp with a NaN pixel and cutout 1 a singular Jacobian
    set_float(&mut m1.object_data, "dudrow", 0, 1, f64::NAN);
    set_int(&mut m1.object_data, "psf_row_size", 1, 2, 0);
    set_int(&mut m1.object_data, "psf_col_size", 1, 2, 0);
    // (stamps may be shared by the objects of an image: give this one its own copy)
    let start = get_int(&mut m1.object_data, "psf_start_row", 2, 3) as usize;
    let mut stamp = m1.psf[start..start + 25 * 25].to_vec();
    stamp[5] = f32::NAN;
    set_int(
        &mut m1.object_data,
        "psf_start_row",
        2,
        3,
        m1.psf.len() as i64,
    );
    m1.psf.extend(stamp);
    for c in ["dudrow", "dudcol", "dvdrow", "dvdcol"] {
        set_float(&mut m1.object_data, c, 2, 1, 0.0);
    }
    let paths = vec![write_band(&d, "g.fits", &m0), write_band(&d, "r.fits", &m1)];
    let mut src = MedsSource::open(&paths, IoSettings::default()).unwrap();
    let mut out = ObjectObs::default();
    // (object, expected dropped per band, flagged SE cutouts of band 1)
    let want: [(usize, [u32; 2], &[usize]); 4] = [
        (0, [0, 1], &[1]),
        (1, [0, 1], &[2]),
        (2, [0, 2], &[1, 3]),
        (3, [0, 0], &[]),
    ];
    for (k, dropped, flagged) in want {
        src.read_object(k, &mut out).unwrap();
        assert_eq!(out.meta.dropped_epochs, dropped.to_vec(), "object {k}");
        assert_eq!(out.meta.nimage_tot, vec![3, 3], "object {k}");
        for (b, list) in out.se.bands.iter().enumerate() {
            assert_eq!(list.len(), 3, "object {k} band {b}: no epoch may vanish");
            for o in list {
                let icut = o.meta.cutout_index as usize;
                let bad = b == 1 && flagged.contains(&icut);
                assert_eq!(
                    o.flags,
                    if bad { IMAGE_FLAGS } else { 0 },
                    "object {k} band {b} cutout {icut}"
                );
                assert_eq!(o.meta.band_num as usize, b);
            }
        }
        assert!(out.coadd.iter().all(|o| o.flags == 0), "object {k} coadd");
    }
}

#[test]
fn band_files_must_describe_the_same_objects() {
    let d = Scratch::new("bands");
    let scene = sim_scene(5, 2);
    let g = write_band(&d, "g.fits", &scene.render_band(0).unwrap());
    let r = write_band(&d, "r.fits", &scene.render_band(1).unwrap());
    MedsSource::open(&[g.clone(), r.clone()], IoSettings::default()).unwrap();

    // the same file twice, by the same path, another spelling, a symlink, a hard link
    let dotted = d.0.join(".").join("g.fits");
    let sym = d.file("sym.fits");
    std::os::unix::fs::symlink(&g, &sym).unwrap();
    let hard = d.file("hard.fits");
    std::fs::hard_link(&g, &hard).unwrap();
    for twice in [&g, &dotted, &sym, &hard] {
        let e = MedsSource::open(
            &[g.clone(), r.clone(), twice.clone()],
            IoSettings::default(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&twice.display().to_string()), "{msg}");
        assert!(msg.contains(&g.display().to_string()), "{msg}");
        assert!(msg.contains("band 2") && msg.contains("band 0"), "{msg}");
    }

    // a different id, a different number
    for (c, row) in [("id", 3usize), ("number", 1)] {
        let mut m = scene.render_band(1).unwrap();
        let v = get_int(&mut m.object_data, c, row, 0);
        set_int(&mut m.object_data, c, row, 0, v + 1000);
        let bad = write_band(&d, &format!("r-{c}.fits"), &m);
        let e = MedsSource::open(&[g.clone(), bad.clone()], IoSettings::default()).unwrap_err();
        let msg = e.to_string();
        for want in [
            bad.display().to_string(),
            g.display().to_string(),
            format!("row {row}"),
            format!("{c} {} here, {v} in band 0", v + 1000),
        ] {
            assert!(msg.contains(&want), "{want:?} not in {msg}");
        }
        let src = MedsSource::open(std::slice::from_ref(&g), IoSettings::default()).unwrap();
        src.check_bands().unwrap();
    }

    // a different number of objects
    let other = Scene::generate(&SimConfig {
        nobj: 4,
        ..SimConfig::default()
    })
    .unwrap();
    let few = write_band(&d, "few.fits", &other.render_band(0).unwrap());
    let msg = MedsSource::open(&[g.clone(), few.clone()], IoSettings::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&few.display().to_string()) && msg.contains("has 4 objects"),
        "{msg}"
    );
}
