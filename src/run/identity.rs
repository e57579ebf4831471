//! The identity of a run, recorded in its checkpoints: a checkpoint is resumed only by the run
//! that wrote it (same program, config, seed, range, inputs and sizes).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A 64-bit FNV-1a hash, hex (config contents: small, and no collision attack to fear).
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// An input file as the run saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// What the file is (`meds[0]`, `config`, `fof-file`, ...).
    pub role: String,
    /// Its canonical path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// FNV-1a hash of the contents, for small files (configs, tables), else empty.
    #[serde(default)]
    pub hash: String,
}

/// Files up to this size are hashed as well as stamped.
const HASH_LIMIT: u64 = 16 << 20;

impl FileStamp {
    /// Stamp `path` (hashing it when it is small).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn of(role: &str, path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let canon = std::fs::canonicalize(path).map_err(io)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let hash = if meta.is_file() && meta.len() <= HASH_LIMIT {
            fnv1a_hex(&std::fs::read(path).map_err(io)?)
        } else {
            String::new()
        };
        Ok(Self {
            role: role.to_string(),
            path: canon.display().to_string(),
            size: meta.len(),
            mtime_ns,
            hash,
        })
    }
}

/// Everything that makes two runs the same run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// Program and version (`ngmixer-rs 0.1.0`).
    pub program: String,
    /// The fitter (`max-ngmix-boot`, ...).
    pub fitter: String,
    /// Run seed.
    pub seed: u64,
    /// `--fof-range`, if any.
    pub fof_range: Option<(i64, i64)>,
    /// Objects and groups of the run, bands of the source.
    pub nobj: usize,
    /// Groups.
    pub ngroups: usize,
    /// Bands.
    pub nband: usize,
    /// Inputs (config, MEDS files, FoF and flag tables, psf maps).
    pub inputs: Vec<FileStamp>,
}

impl RunIdentity {
    /// This program's name and version.
    pub fn program_version() -> String {
        format!("ngmixer-rs {}", env!("CARGO_PKG_VERSION"))
    }

    /// JSON text (stored in checkpoints).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse the JSON text of a checkpoint.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the text is not a run identity.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Invalid(format!("run identity: {e}")))
    }

    /// What differs between `self` (the checkpoint's run) and `now`, one phrase each.
    pub fn differences(&self, now: &RunIdentity) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |what: &str, a: String, b: String| {
            if a != b {
                d.push(format!("{what}: checkpoint {a}, this run {b}"));
            }
        };
        cmp("program", self.program.clone(), now.program.clone());
        cmp("fitter", self.fitter.clone(), now.fitter.clone());
        cmp("seed", self.seed.to_string(), now.seed.to_string());
        let r = |r: Option<(i64, i64)>| r.map_or("none".into(), |(a, b)| format!("{a},{b}"));
        cmp("--fof-range", r(self.fof_range), r(now.fof_range));
        cmp("objects", self.nobj.to_string(), now.nobj.to_string());
        cmp("groups", self.ngroups.to_string(), now.ngroups.to_string());
        cmp("bands", self.nband.to_string(), now.nband.to_string());
        let roles = |v: &[FileStamp]| v.iter().map(|f| f.role.clone()).collect::<Vec<_>>();
        if roles(&self.inputs) != roles(&now.inputs) {
            d.push(format!(
                "inputs: checkpoint [{}], this run [{}]",
                roles(&self.inputs).join(", "),
                roles(&now.inputs).join(", ")
            ));
        } else {
            for (a, b) in self.inputs.iter().zip(&now.inputs) {
                if a.path != b.path {
                    d.push(format!(
                        "{}: checkpoint {}, this run {}",
                        a.role, a.path, b.path
                    ));
                } else if a.size != b.size || a.mtime_ns != b.mtime_ns || a.hash != b.hash {
                    d.push(format!(
                        "{} ({}) changed since the checkpoint (size {} -> {}{})",
                        a.role,
                        a.path,
                        a.size,
                        b.size,
                        if a.hash != b.hash && !a.hash.is_empty() {
                            ", contents differ"
                        } else {
                            ", modification time differs"
                        }
                    ));
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> RunIdentity {
        RunIdentity {
            program: RunIdentity::program_version(),
            fitter: "max-ngmix-boot".into(),
            seed: 1,
            fof_range: None,
            nobj: 10,
            ngroups: 10,
            nband: 1,
            inputs: vec![FileStamp {
                role: "config".into(),
                path: "a.yaml".into(),
                size: 10,
                mtime_ns: 5,
                hash: "00".into(),
            }],
        }
    }

    #[test]
    fn json_round_trip_and_differences() {
        let a = ident();
        assert_eq!(RunIdentity::from_json(&a.to_json()).unwrap(), a);
        assert!(a.differences(&a).is_empty());
        let mut b = a.clone();
        b.seed = 2;
        b.fof_range = Some((0, 4));
        b.inputs[0].hash = "11".into();
        let d = a.differences(&b).join("; ");
        assert!(d.contains("seed: checkpoint 1, this run 2"), "{d}");
        assert!(
            d.contains("--fof-range: checkpoint none, this run 0,4"),
            "{d}"
        );
        assert!(
            d.contains("config (a.yaml) changed") && d.contains("contents differ"),
            "{d}"
        );
        assert!(RunIdentity::from_json("{").is_err());
    }

    #[test]
    fn fnv_matches_the_published_vectors() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo reference)
        assert_eq!(fnv1a_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv1a_hex(b"a"), "af63dc4c8601ec8c");
        assert_eq!(fnv1a_hex(b"foobar"), "85944171f73967e8");
    }
}
