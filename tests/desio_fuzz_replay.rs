//! Replays the `meds_columns` fuzz corpus (tests/fuzz_corpus/meds/) through the very code the
//! fuzz target runs (`fuzz/fuzz_targets/meds_columns_input.rs`, included below), plus a few
//! thousand deterministic mutations of it: decoding arbitrary MEDS column sets must return a
//! value or a `ColumnError`, never panic.
#![cfg(feature = "des-y1")]

use std::path::Path;

#[path = "../fuzz/fuzz_targets/meds_columns_input.rs"]
#[allow(dead_code)]
mod input;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/meds");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn run_caught(data: &[u8]) -> Result<(), String> {
    let d = data.to_vec();
    std::panic::catch_unwind(move || input::run(&d)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn corpus_never_panics() {
    let c = corpus();
    assert!(c.len() >= 20, "corpus has {} files", c.len());
    let failures: Vec<String> = c
        .iter()
        .filter_map(|(name, data)| run_caught(data).err().map(|m| format!("{name}: {m}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn mutations_of_the_corpus_never_panic() {
    let c = corpus();
    let mut state = 0x5eed_u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut failures = Vec::new();
    let mut n = 0;
    for round in 0..4000 {
        let (name, base) = &c[round % c.len()];
        let mut d = base.clone();
        // a few byte flips, insertions and truncations
        for _ in 0..1 + next() % 4 {
            match next() % 3 {
                0 if !d.is_empty() => {
                    let k = next() % d.len();
                    d[k] = next() as u8;
                }
                1 => {
                    let k = next() % (d.len() + 1);
                    d.insert(k, next() as u8);
                }
                _ => {
                    let k = next() % (d.len() + 1);
                    d.truncate(k.max(3));
                }
            }
        }
        n += 1;
        if let Err(m) = run_caught(&d) {
            failures.push(format!("from {name}: {d:?}: {m}"));
        }
    }
    assert_eq!(n, 4000);
    assert!(failures.is_empty(), "{failures:#?}");
}
