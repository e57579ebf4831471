//! PSFEx reconstruction against esheldon/psfex 0.4.0 (tests/data/psfex/psfex_reference.json,
//! made by `make_reference.py` from real PSFEx 3.21.1 models): every position of the three
//! models, the reconstruction size, the centre and sigma.
#![cfg(feature = "des-y1")]

use std::path::{Path, PathBuf};

use ngmixer::backends::psfex::PsfEx;
use ngmixer::Error;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/psfex")
        .join(name)
}

#[derive(serde::Deserialize)]
struct Position {
    row: f64,
    col: f64,
    note: String,
    rec_shape: [usize; 2],
    rec: Vec<Vec<f64>>,
    center: [f64; 2],
    sigma: f64,
}

#[derive(serde::Deserialize)]
struct Model {
    file: String,
    psf_samp: f64,
    sigma: f64,
    fwhm: f64,
    positions: Vec<Position>,
}

#[derive(serde::Deserialize)]
struct Reference {
    models: Vec<Model>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(data("psfex_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn reconstructions_match_esheldon_psfex() {
    let r = reference();
    assert_eq!(r.models.len(), 3);
    let mut worst: f64 = 0.0;
    let mut npos = 0;
    for m in &r.models {
        let p = PsfEx::open(data(&m.file)).unwrap();
        assert_eq!(p.psf_samp(), m.psf_samp, "{}", m.file);
        assert_eq!(p.fwhm(), m.fwhm, "{}", m.file);
        assert!(
            (p.get_sigma() - m.sigma).abs() <= 1e-15 * m.sigma,
            "{}",
            m.file
        );
        for pos in &m.positions {
            let ctx = format!("{} at ({}, {}) [{}]", m.file, pos.row, pos.col, pos.note);
            let (rec, nrow, ncol) = p.get_rec(pos.row, pos.col);
            assert_eq!([nrow, ncol], pos.rec_shape, "{ctx}");
            assert_eq!(p.rec_shape(), (nrow, ncol));
            let peak = pos
                .rec
                .iter()
                .flatten()
                .fold(0.0f64, |a, &b| a.max(b.abs()));
            assert!(peak > 0.0, "{ctx}");
            for (i, row) in pos.rec.iter().enumerate() {
                assert_eq!(row.len(), ncol);
                for (j, &want) in row.iter().enumerate() {
                    let d = (rec[i * ncol + j] - want).abs() / peak;
                    worst = worst.max(d);
                    assert!(
                        d <= 1e-10,
                        "{ctx}: pixel ({i}, {j}) {} vs {want}",
                        rec[i * ncol + j]
                    );
                }
            }
            let (cr, cc) = p.get_center(pos.row, pos.col);
            assert!((cr - pos.center[0]).abs() < 1e-12, "{ctx}: centre row {cr}");
            assert!((cc - pos.center[1]).abs() < 1e-12, "{ctx}: centre col {cc}");
            assert!((p.get_sigma() - pos.sigma).abs() <= 1e-15 * pos.sigma);
            npos += 1;
        }
    }
    assert_eq!(npos, 36);
    eprintln!("max |rust - esheldon/psfex| / peak over {npos} positions: {worst:.3e}");
}

#[test]
fn rec_into_reuses_the_buffer() {
    let p = PsfEx::open(data("model_b.psf")).unwrap();
    let mut buf = vec![7.0; 3];
    let (nr, nc) = p.get_rec_into(1500.7, 100.3, &mut buf);
    assert_eq!((nr, nc), (19, 23));
    assert_eq!(buf, p.get_rec(1500.7, 100.3).0);
}

// ---------------------------------------------------------------------------------------
// Header validation on edited copies.

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ngmixer-psfex-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replace the 80-character header card of `key` by `new` (padded), in the first header
/// that has it.
fn edit_card(bytes: &mut [u8], key: &str, new: &str) {
    let pat = format!("{key:<8}=");
    let off = (0..bytes.len() / 80)
        .map(|i| i * 80)
        .find(|&o| bytes[o..o + 80].starts_with(pat.as_bytes()))
        .unwrap_or_else(|| panic!("{key} not found"));
    let card = format!("{new:<80}");
    bytes[off..off + 80].copy_from_slice(card.as_bytes());
}

fn open_edited(dir: &Scratch, name: &str, key: &str, new: &str) -> Error {
    let mut bytes = std::fs::read(data("model_a.psf")).unwrap();
    edit_card(&mut bytes, key, new);
    let p = dir.0.join(name);
    std::fs::write(&p, &bytes).unwrap();
    PsfEx::open(&p).unwrap_err()
}

#[test]
fn header_errors_name_the_key() {
    let dir = Scratch::new("keys");
    let cases = [
        (
            "POLNAXIS",
            "POLNAXIS=                    3",
            "POLNAXIS = 3, expected 2",
        ),
        (
            "POLNGRP",
            "POLNGRP =                    2",
            "POLNGRP = 2, expected 1",
        ),
        (
            "PSFNAXIS",
            "PSFNAXIS=                    2",
            "PSFNAXIS = 2, expected 3",
        ),
        (
            "PSFAXIS3",
            "PSFAXIS3=                    5",
            "PSFAXIS3 = 5, expected 6",
        ),
        (
            "PSF_SAMP",
            "XSF_SAMP=           0.97663188",
            "PSF_SAMP is missing",
        ),
        ("POLSCAL2", "POLSCAL2=                  0.0", "POLSCAL2 = 0"),
        (
            "POLZERO1",
            "POLZERO1=                'abc'",
            "POLZERO1 is not a number",
        ),
    ];
    for (i, (key, card, want)) in cases.iter().enumerate() {
        let e = open_edited(&dir, &format!("m{i}.psf"), key, card);
        match &e {
            Error::Fits { hdu, msg, path } => {
                assert!(msg.contains(want), "{key}: {msg}");
                assert_eq!(hdu.as_deref(), Some("PSF_DATA"), "{key}");
                assert!(path.ends_with(format!("m{i}.psf")));
            }
            other => panic!("{other:?}"),
        }
    }
    // Missing file, and a file without the PSF_DATA extension.
    let e = PsfEx::open(dir.0.join("missing.psf")).unwrap_err();
    assert!(e.to_string().contains("missing.psf"), "{e}");
    let e = open_edited(&dir, "noext.psf", "EXTNAME", "EXTNAME = 'OTHER   '");
    assert!(e.to_string().contains("PSF_DATA"), "{e}");
}
