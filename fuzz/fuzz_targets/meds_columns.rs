//! Arbitrary column sets through the MEDS table decoders (`ObjectData::from_columns`,
//! `ImageInfo::from_columns`, `Columns::validate`) and the accessors of what they accept:
//! they must return a value or a `ColumnError`, never panic or hang. No cfitsio is involved.
//!
//! Run: `cargo +nightly fuzz run meds_columns ../tests/fuzz_corpus/meds`
//!
//! Input format (every value is one byte taken with `Unstructured`, 0 once the input runs
//! out, so seeds are easy to write by hand):
//! * byte 0: `nrows % 9`; byte 1: the cutout width `1 + b % 4`;
//! * byte 2: `template`: if even, start from a complete, valid `object_data` + `image_info`
//!   column set, otherwise from nothing;
//! * then repeated 3-byte edits `(op, a, b)` until the input ends (at most 64):
//!   - `op % 6 == 0`: remove column `a`;
//!   - `1`: change column `a`'s repeat to `b % 6` (data left as is);
//!   - `2`: set element `b` of column `a` to a value derived from the next bytes;
//!   - `3`: change column `a`'s declared kind;
//!   - `4`: rename column `a` to known name `b`;
//!   - `5`: append a new column (known name `a`, kind `b`, data from the next bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "meds_columns_input.rs"]
mod input;

fuzz_target!(|data: &[u8]| input::run(data));
