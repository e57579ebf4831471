//! `ngmixer-shear-test` at CI size: metacal recovers a known shear (simulation truth) through
//! the run driver, and the command writes the JSON it documents.

#![cfg(all(feature = "maxlike", feature = "metacal"))]

use ngmixer::run::shear_test::ShearTest;
use ngmixer::run::{Progress, ProgressMode};
use ngmixer::sim::ShearSimConfig;

#[test]
fn metacal_recovers_a_known_shear() {
    // high S/N keeps the pixel-noise scatter small enough for 200 pairs: the test is of the
    // calibration (R ≈ 0.96 here, a 4 % correction) and of the PSF-anisotropy correction
    // (PSF g2 = 0.05 would leak into c)
    let t = ShearTest {
        sim: ShearSimConfig {
            ngal: 400,
            snr: 1.0e4,
            seed: 7,
            ..ShearSimConfig::default()
        },
        seed: 7,
        threads: 2,
        chunk: 150,
    };
    let mut p = Progress::new("shear-test", 400, 0, ProgressMode::Quiet);
    let r = t.run(&mut p).unwrap();
    eprintln!("{r:?}");
    // the catastrophic-failure cut removes a pair or two (LM fits stopped at |g| → 1)
    assert!(r.nused >= 392, "used {}", r.nused);
    assert!(r.m_err95 < 1e-2, "95 % interval of m ±{}", r.m_err95);
    assert!(r.m.abs() < r.m_err95, "m = {} ± {}", r.m, r.m_err95);
    assert!(
        r.c.abs() < r.c_err95.max(2e-4),
        "c = {} ± {}",
        r.c,
        r.c_err95
    );
    assert!((0.9..1.0).contains(&r.r11) && (0.9..1.0).contains(&r.r22));
}

#[test]
fn command_writes_the_json() {
    let dir = std::env::temp_dir().join(format!("ngmixer-shear-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ngmixer-shear-test"))
        .args([
            "--ngal",
            "8",
            "--snr",
            "1000",
            "--threads",
            "1",
            "--seed",
            "3",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("m = ") && out.contains("c = "), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in [
        "m", "m_err95", "c", "c_err95", "R11", "R22", "ngal", "seconds",
    ] {
        assert!(v.get(k).is_some_and(|x| x.is_number()), "key {k} in {v}");
    }
    assert_eq!(v["ngal"], 8);
    // odd counts are refused with a message
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ngmixer-shear-test"))
        .args(["--ngal", "7"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("even"));
    let _ = std::fs::remove_dir_all(&dir);
}
