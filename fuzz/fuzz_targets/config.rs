//! Arbitrary bytes, as (lossy) UTF-8, through the YAML config readers: they must return a
//! value or an `Error::Config`, never panic, overflow the stack or hang.
//!
//! Run: `cargo +nightly fuzz run config ../tests/fuzz_corpus/config`
//! (crashers go into `tests/fuzz_corpus/config/`, which `tests/config.rs` replays).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngmixer::config::{from_yaml_str, FittingConfig, NbrsConfig, RunConfig};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = from_yaml_str::<FittingConfig>(&text, "<fuzz>") {
        // Exercise the cross-key checks and accessors too.
        for nband in [1, 4] {
            let _ = cfg.problems(nband);
        }
        let _ = cfg.models_to_fit();
        if cfg.fracdev_grid().num <= 10_000 {
            let _ = cfg.fracdev_grid().values();
        }
        let _ = cfg.effective_extra_mask_flags();
    }
    let _ = from_yaml_str::<RunConfig>(&text, "<fuzz>");
    let _ = from_yaml_str::<NbrsConfig>(&text, "<fuzz>");
});
