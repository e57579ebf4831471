//! MEDS reader tests on the synthetic end-to-end MEDS file (tests/data/meds, made by
//! `make_sim_meds.py` of the ngmixer-e2e reference set) and on deliberately broken copies.
//!
//! Independent facts used: the generator's constants (66 objects, 3 cutouts, box 48, 25x25 PSF
//! stamps centred at (12, 12), the per-image Jacobians and noise levels), the truth catalogue,
//! and the weights the Python ngmixer (meds 0.9.17 with its C uberseg) actually used, from the
//! `epoch_data` of its e2e01max run (`e2e01max_epoch_weights.json`).
#![cfg(feature = "des-y1")]

use std::path::{Path, PathBuf};

use ngmixer::backends::meds::{read_table, ColumnData, CutoutKind, MedsFile};
use ngmixer::Error;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/meds")
        .join(name)
}

fn meds_path() -> PathBuf {
    data("sim-e2e-meds.fits")
}

/// A scratch directory unique to this process and test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ngmixer-meds-{}-{tag}", std::process::id()));
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

fn fits_msg(e: &Error) -> (PathBuf, Option<String>, String) {
    match e {
        Error::Fits { path, hdu, msg } => (path.clone(), hdu.clone(), msg.clone()),
        other => panic!("expected Error::Fits, got {other:?}"),
    }
}

fn ints(cols: &ngmixer::backends::meds::Columns, name: &str) -> Vec<i64> {
    match &cols.get(name).unwrap().data {
        ColumnData::Int(v) => v.clone(),
        d => panic!("{name}: {d:?}"),
    }
}

fn floats(cols: &ngmixer::backends::meds::Columns, name: &str) -> Vec<f64> {
    match &cols.get(name).unwrap().data {
        ColumnData::Float(v) => v.clone(),
        d => panic!("{name}: {d:?}"),
    }
}

#[test]
fn e2e_layout_matches_the_generator() {
    let m = MedsFile::open(meds_path()).unwrap();
    assert_eq!(m.size(), 66);
    let od = m.object_data();
    assert!(od.has_number());
    for i in 0..66 {
        assert_eq!(m.ncutout(i).unwrap(), 3);
        assert_eq!(m.box_size(i).unwrap(), 48);
        assert_eq!(m.number(i).unwrap(), i as i64 + 1);
        assert_eq!(od.id[i], 1000 + i as i64);
        for icut in 0..3 {
            assert_eq!(m.psf_shape(i, icut).unwrap(), (25, 25));
            assert_eq!(m.psf_center(i, icut).unwrap(), Some((12.0, 12.0)));
        }
    }
    for kind in CutoutKind::ALL {
        assert_eq!(m.has_cutouts(kind), kind != CutoutKind::Ormask, "{kind:?}");
    }
    assert!(m.has_psf());
    assert_eq!(m.image_info().len(), 3);
    assert_eq!(m.image_info().image_path[1], "sim_se1_image.fits");
    assert_eq!(m.image_info().magzp.as_ref().unwrap(), &vec![30.0; 3]);
    let meta = m.metadata();
    assert_eq!(meta.nrows(), 1);
    assert_eq!(
        meta.names().collect::<Vec<_>>(),
        vec!["magzp_ref", "medsconf", "seed", "pixel_scale"]
    );
    assert_eq!(floats(meta, "pixel_scale"), vec![0.263]);
    assert_eq!(ints(meta, "seed"), vec![31415]);
}

#[test]
fn jacobians_equal_the_table_and_the_generator() {
    let m = MedsFile::open(meds_path()).unwrap();
    // Independent read of the same columns through the generic table reader.
    let t = read_table(meds_path(), "object_data").unwrap();
    let (cr, cc) = (floats(&t, "cutout_row"), floats(&t, "cutout_col"));
    let d: Vec<Vec<f64>> = ["dudrow", "dudcol", "dvdrow", "dvdcol"]
        .iter()
        .map(|n| floats(&t, n))
        .collect();
    // make_sim_meds.py JACS: (dudrow, dudcol, dvdrow, dvdcol) per image.
    let gen = [
        [0.0, 0.263, 0.263, 0.0],
        [0.002, 0.262, 0.264, -0.003],
        [-0.003, 0.264, 0.2625, 0.002],
    ];
    for iobj in 0..66 {
        for icut in 0..3 {
            let k = iobj * 3 + icut;
            let j = m.jacobian(iobj, icut).unwrap();
            assert_eq!((j.row0, j.col0), (cr[k], cc[k]));
            assert_eq!(
                [j.dudrow, j.dudcol, j.dvdrow, j.dvdcol],
                [d[0][k], d[1][k], d[2][k], d[3][k]]
            );
            for (a, b) in [j.dudrow, j.dudcol, j.dvdrow, j.dvdcol]
                .iter()
                .zip(gen[icut])
            {
                assert!((a - b).abs() < 1e-12, "obj {iobj} cut {icut}: {a} vs {b}");
            }
            // The object sits near the stamp centre.
            assert!((j.row0 - 23.5).abs() < 1.0 && (j.col0 - 23.5).abs() < 1.0);
            let info = m.cutout_info(iobj, icut).unwrap();
            assert_eq!(info.file_id, icut as i64);
        }
    }
    let pix = m.jacobian(0, 1).unwrap().scale();
    assert!((pix - 0.26300951).abs() < 1e-7, "{pix}"); // epoch_data pixel_scale of ngmixer
}

#[test]
fn truth_positions_and_fluxes() {
    let m = MedsFile::open(meds_path()).unwrap();
    let truth = read_table(data("sim-e2e-truth.fits"), "truth").unwrap();
    assert_eq!(truth.nrows(), 66);
    let (tid, trow, tcol, tflux) = (
        ints(&truth, "id"),
        floats(&truth, "row"),
        floats(&truth, "col"),
        floats(&truth, "flux"),
    );
    let od = m.object_data();
    let mut ratios = Vec::new();
    let mut img = Vec::new();
    for (k, &id) in tid.iter().enumerate() {
        let iobj = od.id.iter().position(|&x| x == id).unwrap();
        let c = m.cutout_info(iobj, 0).unwrap();
        assert!(
            (c.orig_row - trow[k]).abs() < 1.0 && (c.orig_col - tcol[k]).abs() < 1.0,
            "id {id}: orig ({}, {}) truth ({}, {})",
            c.orig_row,
            c.orig_col,
            trow[k],
            tcol[k]
        );
        // The stamp origin plus the in-stamp centre is the position in the image.
        assert!((c.orig_start_row as f64 + c.cutout_row - c.orig_row).abs() < 1e-9);
        assert!((c.orig_start_col as f64 + c.cutout_col - c.orig_col).abs() < 1e-9);
        // Coadd pixel sum over the object's own uberseg region vs the true flux.
        let (nr, nc) = m.cutout(CutoutKind::Image, iobj, 0, &mut img).unwrap();
        assert_eq!((nr, nc), (48, 48));
        let mut w = Vec::new();
        m.uberseg(iobj, 0, &mut w).unwrap();
        if w.iter().all(|&x| x == 0.0) {
            continue;
        }
        let sum: f64 = img
            .iter()
            .zip(&w)
            .filter(|(_, &w)| w > 0.0)
            .map(|(i, _)| i)
            .sum();
        ratios.push(sum / tflux[k]);
    }
    ratios.sort_by(f64::total_cmp);
    let med = ratios[ratios.len() / 2];
    eprintln!(
        "coadd uberseg pixel sum / truth flux over {} objects: median {med:.3}, 10% {:.3}, 90% {:.3}",
        ratios.len(),
        ratios[ratios.len() / 10],
        ratios[ratios.len() * 9 / 10]
    );
    // Noisy and neighbour-contaminated: a loose check that the units and the stamp
    // indexing are right.
    assert!((0.8..1.2).contains(&med), "median sum/flux {med}");
    assert!(ratios[ratios.len() / 10] > 0.5, "{ratios:?}");
}

#[test]
fn noise_weights_and_psf_stamps() {
    let m = MedsFile::open(meds_path()).unwrap();
    let sigma = [0.05, 0.10, 0.12];
    let (mut wt, mut noise, mut psf) = (Vec::new(), Vec::new(), Vec::new());
    for iobj in [0, 17, 65] {
        for icut in 0..3 {
            m.cutout(CutoutKind::Weight, iobj, icut, &mut wt).unwrap();
            let want = 1.0 / (sigma[icut] * sigma[icut]);
            assert!(wt.iter().all(|&w| ((w - want) / want).abs() < 1e-6));
            m.cutout(CutoutKind::Noise, iobj, icut, &mut noise).unwrap();
            let var = noise.iter().map(|x| x * x).sum::<f64>() / noise.len() as f64;
            assert!(
                (var.sqrt() / sigma[icut] - 1.0).abs() < 0.1,
                "{}",
                var.sqrt()
            );
            let (nr, nc) = m.psf(iobj, icut, &mut psf).unwrap();
            assert_eq!((nr, nc, psf.len()), (25, 25, 625));
            // Peak at the stamp centre (12, 12).
            let imax = (0..625).max_by(|&a, &b| psf[a].total_cmp(&psf[b])).unwrap();
            assert_eq!((imax / 25, imax % 25), (12, 12), "obj {iobj} cut {icut}");
        }
    }
    let mut seg = Vec::new();
    m.cutout_i32(CutoutKind::Seg, 0, 0, &mut seg).unwrap();
    assert_eq!(seg[24 * 48 + 24], 1, "object number 1 owns its centre");
}

#[derive(serde::Deserialize)]
struct EpochRow {
    id: i64,
    cutout_index: usize,
    wsum: f64,
    wmax: f64,
}

#[derive(serde::Deserialize)]
struct EpochRef {
    rows: Vec<EpochRow>,
}

#[test]
fn uberseg_matches_python_ngmixer_weights() {
    let m = MedsFile::open(meds_path()).unwrap();
    let text = std::fs::read_to_string(data("e2e01max_epoch_weights.json")).unwrap();
    let r: EpochRef = serde_json::from_str(&text).unwrap();
    assert_eq!(r.rows.len(), 195);
    let od = m.object_data();
    let mut w = Vec::new();
    let mut mismatched = Vec::new();
    for row in &r.rows {
        let iobj = od.id.iter().position(|&x| x == row.id).unwrap();
        m.uberseg(iobj, row.cutout_index, &mut w).unwrap();
        let wmax = w.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(wmax, row.wmax, "id {} cut {}", row.id, row.cutout_index);
        let n = w.iter().filter(|&&x| x > 0.0).count();
        let nref = (row.wsum / row.wmax).round() as usize;
        if n != nref {
            mismatched.push((row.id, row.cutout_index, n, nref));
        }
    }
    assert!(
        mismatched.is_empty(),
        "(id, cut, ours, python): {mismatched:?}"
    );
}

#[test]
fn uberseg_edge_case_1025_is_all_zero() {
    let m = MedsFile::open(meds_path()).unwrap();
    let od = m.object_data();
    let mut w = Vec::new();
    for iobj in 0..m.size() {
        for icut in 0..3 {
            m.uberseg(iobj, icut, &mut w).unwrap();
            let nonzero = w.iter().filter(|&&x| x != 0.0).count();
            if od.id[iobj] == 1025 {
                assert_eq!(nonzero, 0, "id 1025 cutout {icut}");
            } else {
                assert!(nonzero > 0, "id {} cutout {icut}", od.id[iobj]);
            }
        }
    }
    // The cweight of the coadd keeps sky pixels; the uberseg never exceeds it.
    let (mut cw, mut us) = (Vec::new(), Vec::new());
    for iobj in [0, 10, 40] {
        for icut in 0..3 {
            m.cweight(iobj, icut, &mut cw).unwrap();
            m.uberseg(iobj, icut, &mut us).unwrap();
            assert!(cw.iter().zip(&us).all(|(c, u)| *u <= *c));
        }
    }
}

#[test]
fn interpolated_seg_of_the_coadd_is_the_coadd_seg() {
    let m = MedsFile::open(meds_path()).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    m.interpolated_coadd_seg(3, 0, &mut a).unwrap();
    m.cutout_i32(CutoutKind::Seg, 3, 0, &mut b).unwrap();
    assert_eq!(a, b);
    // For an epoch, the object's own number is found at its centre.
    m.interpolated_coadd_seg(3, 1, &mut a).unwrap();
    let (r, c) = m.cutout_rowcol(3, 1).unwrap();
    let k = (r.round() as usize) * 48 + c.round() as usize;
    assert_eq!(a[k] as i64, m.number(3).unwrap());
}

#[test]
fn reopened_handles_work_in_other_threads() {
    let m = MedsFile::open(meds_path()).unwrap();
    let mut reference = Vec::new();
    let mut buf = Vec::new();
    for iobj in 0..m.size() {
        m.cutout(CutoutKind::Image, iobj, 2, &mut buf).unwrap();
        reference.push(buf.iter().sum::<f64>());
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let mine = m.reopen().unwrap();
                let reference = &reference;
                s.spawn(move || {
                    let mut buf = Vec::new();
                    for iobj in (t..mine.size()).step_by(2) {
                        mine.cutout(CutoutKind::Image, iobj, 2, &mut buf).unwrap();
                        assert_eq!(buf.iter().sum::<f64>(), reference[iobj]);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn index_errors_name_the_object_and_cutout() {
    let m = MedsFile::open(meds_path()).unwrap();
    let mut buf = Vec::new();
    let e = m.cutout(CutoutKind::Image, 66, 0, &mut buf).unwrap_err();
    let (path, hdu, msg) = fits_msg(&e);
    assert_eq!(path, meds_path());
    assert_eq!(hdu.as_deref(), Some("object_data"));
    assert!(msg.contains("object index 66"), "{msg}");
    let e = m.jacobian(5, 3).unwrap_err();
    assert!(fits_msg(&e).2.contains("cutout index 3"), "{e}");
    let e = m.cutout(CutoutKind::Ormask, 0, 0, &mut buf).unwrap_err();
    assert_eq!(fits_msg(&e).1.as_deref(), Some("ormask_cutouts"));
}

// ---------------------------------------------------------------------------------------
// Broken files.

/// Byte offset of the header of the HDU whose EXTNAME is `extname`.
fn header_offset(bytes: &[u8], extname: &str) -> usize {
    // Headers start on 2880-byte blocks with XTENSION; walk them and look for the EXTNAME.
    let mut hdr = 0;
    let mut off = 0;
    while off + 80 <= bytes.len() {
        let card = &bytes[off..off + 80];
        if off % 2880 == 0 && card.starts_with(b"XTENSION") {
            hdr = off;
        }
        if card.starts_with(b"EXTNAME = '") {
            let v = &card[11..];
            let end = v.iter().position(|&b| b == b'\'').unwrap();
            if std::str::from_utf8(&v[..end]).unwrap().trim_end() == extname {
                return hdr;
            }
        }
        off += 80;
    }
    panic!("no HDU {extname}")
}

/// Replace the card starting with `key` (8-char padded keyword) in the header at `hdr` by a
/// card with the quoted string `value`.
fn set_string_card(bytes: &mut [u8], hdr: usize, key: &str, value: &str) {
    let mut off = hdr;
    loop {
        let card = &bytes[off..off + 80];
        if card.starts_with(format!("{key:<8}=").as_bytes()) {
            let quoted = format!("'{value:<8}'");
            let new = format!("{key:<8}= {quoted:<20}");
            let new = format!("{new:<80}");
            bytes[off..off + 80].copy_from_slice(new.as_bytes());
            return;
        }
        assert!(!card.starts_with(b"END     "), "{key} not found");
        off += 80;
    }
}

#[test]
fn missing_file_and_text_file() {
    let dir = Scratch::new("nofile");
    let p = dir.file("does-not-exist.fits");
    let (path, _, msg) = fits_msg(&MedsFile::open(&p).unwrap_err());
    assert_eq!(path, p);
    assert!(msg.contains("cannot open"), "{msg}");

    let t = dir.file("notes.txt");
    std::fs::write(&t, "this is not a FITS file\n".repeat(200)).unwrap();
    let e = MedsFile::open(&t).unwrap_err();
    let (path, _, msg) = fits_msg(&e);
    assert_eq!(path, t);
    assert!(msg.contains("FITS"), "{msg}");
    assert!(e.to_string().contains("notes.txt"), "{e}");
}

#[test]
fn truncated_file_names_the_cut_hdu() {
    let dir = Scratch::new("trunc");
    let bytes = std::fs::read(meds_path()).unwrap();
    let p = dir.file("half.fits");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = MedsFile::open(&p).unwrap_err();
    let (path, hdu, msg) = fits_msg(&e);
    assert_eq!(path, p);
    assert!(msg.contains("truncated"), "{msg}");
    // Half of 9.7 MB falls inside the seg cutouts (the third 1.8 MB image).
    assert_eq!(hdu.as_deref(), Some("seg_cutouts"), "{msg}");

    // Cut in the middle of the psf header.
    let psf = header_offset(&bytes, "psf");
    let p2 = dir.file("cut-header.fits");
    std::fs::write(&p2, &bytes[..psf + 400]).unwrap();
    let (_, _, msg) = fits_msg(&MedsFile::open(&p2).unwrap_err());
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn object_data_without_cutout_row() {
    let dir = Scratch::new("nocol");
    let mut bytes = std::fs::read(meds_path()).unwrap();
    let hdr = header_offset(&bytes, "object_data");
    set_string_card(&mut bytes, hdr, "TTYPE12", "renamed_col");
    let p = dir.file("no-cutout-row.fits");
    std::fs::write(&p, &bytes).unwrap();
    let (path, hdu, msg) = fits_msg(&MedsFile::open(&p).unwrap_err());
    assert_eq!(path, p);
    assert_eq!(hdu.as_deref(), Some("object_data"));
    assert!(
        msg.contains("'cutout_row'") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn wrong_column_type_and_shape() {
    let dir = Scratch::new("shape");
    let bytes0 = std::fs::read(meds_path()).unwrap();
    let hdr = header_offset(&bytes0, "object_data");

    // Swap the names of an integer and a float per-cutout column.
    let mut bytes = bytes0.clone();
    set_string_card(&mut bytes, hdr, "TTYPE7", "cutout_row");
    set_string_card(&mut bytes, hdr, "TTYPE12", "start_row");
    let p = dir.file("swapped.fits");
    std::fs::write(&p, &bytes).unwrap();
    let (_, hdu, msg) = fits_msg(&MedsFile::open(&p).unwrap_err());
    assert_eq!(hdu.as_deref(), Some("object_data"));
    assert!(
        msg.contains("'start_row'") && msg.contains("integer"),
        "{msg}"
    );

    // ncutout larger than the per-cutout columns are wide.
    let p = dir.file("ncutout.fits");
    std::fs::write(&p, &bytes0).unwrap();
    {
        let mut f = fitsio::FitsFile::edit(&p).unwrap();
        let hdu = f.hdu("object_data").unwrap();
        let mut n = vec![3i64; 66];
        n[4] = 5;
        hdu.write_col(&mut f, "ncutout", &n).unwrap();
    }
    let (_, hdu, msg) = fits_msg(&MedsFile::open(&p).unwrap_err());
    assert_eq!(hdu.as_deref(), Some("object_data"));
    assert!(msg.contains("object 4 has ncutout 5"), "{msg}");
}

#[test]
fn missing_psf_hdu() {
    let dir = Scratch::new("nopsf");
    let mut bytes = std::fs::read(meds_path()).unwrap();
    let hdr = header_offset(&bytes, "psf");
    set_string_card(&mut bytes, hdr, "EXTNAME", "not_psf");
    let p = dir.file("no-psf.fits");
    std::fs::write(&p, &bytes).unwrap();
    let m = MedsFile::open(&p).unwrap();
    assert!(!m.has_psf());
    let mut buf = Vec::new();
    let e = m.psf(0, 0, &mut buf).unwrap_err();
    let (path, hdu, msg) = fits_msg(&e);
    assert_eq!(path, p);
    assert_eq!(hdu.as_deref(), Some("psf"));
    assert!(msg.contains("no 'psf' HDU"), "{msg}");
    // Everything else still reads.
    m.cutout(CutoutKind::Image, 0, 0, &mut buf).unwrap();

    // Without image_cutouts the file is not a MEDS file.
    let mut bytes = std::fs::read(meds_path()).unwrap();
    let hdr = header_offset(&bytes, "image_cutouts");
    set_string_card(&mut bytes, hdr, "EXTNAME", "xxxxx_cutouts");
    let p = dir.file("no-image.fits");
    std::fs::write(&p, &bytes).unwrap();
    let (_, hdu, msg) = fits_msg(&MedsFile::open(&p).unwrap_err());
    assert_eq!(hdu.as_deref(), Some("image_cutouts"), "{msg}");
}

/// The distance-transform uberseg gives exactly the k-d tree's weights on every e2e cutout
/// (including the pixels equidistant from two objects, where the tree's order decides), and
/// is faster.
#[test]
fn fast_uberseg_equals_the_tree_on_every_e2e_cutout() {
    use ngmixer::backends::meds::{uberseg_in_place, uberseg_in_place_tree};
    let m = MedsFile::open(meds_path()).unwrap();
    let (mut cw, mut seg) = (Vec::new(), Vec::new());
    let (mut t_fast, mut t_tree) = (0.0, 0.0);
    let mut n = 0;
    for iobj in 0..m.size() {
        for icut in 0..m.ncutout(iobj).unwrap() {
            let (nr, nc) = m.cweight(iobj, icut, &mut cw).unwrap();
            m.interpolated_coadd_seg(iobj, icut, &mut seg).unwrap();
            let number = m.number(iobj).unwrap();
            let mut a = cw.clone();
            let t = std::time::Instant::now();
            uberseg_in_place(&mut a, &seg, nr, nc, number);
            t_fast += t.elapsed().as_secs_f64();
            let mut distinct = seg.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let mut b: Vec<f64> = cw.iter().map(|&w| w as f32 as f64).collect();
            if distinct.len() == 2 {
                b = cw.clone();
            }
            let t = std::time::Instant::now();
            if distinct.len() != 2 {
                uberseg_in_place_tree(&mut b, &seg, nr, nc, number);
            }
            t_tree += t.elapsed().as_secs_f64();
            assert_eq!(a, b, "object {iobj} cutout {icut}");
            n += 1;
        }
    }
    assert_eq!(n, 198);
    eprintln!(
        "uberseg over {n} e2e cutouts: k-d tree {:.2} ms, distance transform {:.2} ms",
        t_tree * 1e3,
        t_fast * 1e3
    );
}
