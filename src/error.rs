//! Typed errors of the library.
//!
//! Numerical failures inside a fit (a shear outside the unit disk, a singular covariance) are
//! [`GMixError`]s: cheap, `Copy`, and turned into flag bits by the fitters. Everything that is a
//! problem with the *input* (files, configs) is an [`Error`] that names the file, HDU, column or key.

use std::path::PathBuf;

/// A numerical range or fatal error of the Gaussian-mixture engine (ngmix's `GMixRangeError`
/// and `GMixFatalError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GMixError {
    /// A parameter left its valid domain (|g| >= 1, det <= 0, T <= 0, ...).
    #[error("GMixRangeError: {0}")]
    Range(&'static str),
    /// The observation cannot be fitted at all (e.g. no pixel with weight > 0).
    #[error("GMixFatalError: {0}")]
    Fatal(&'static str),
}

/// Result of a numerical operation.
pub type GResult<T> = std::result::Result<T, GMixError>;

/// Errors about input data and configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A numerical error that escaped to the caller.
    #[error(transparent)]
    GMix(#[from] GMixError),
    /// A configuration problem.
    #[error("config {file}: {msg}")]
    Config {
        /// The config file (or `<string>`).
        file: String,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// A FITS file could not be read or written as expected.
    #[error("FITS {path}{}: {msg}", hdu.as_ref().map(|h| format!(" [HDU {h}]")).unwrap_or_default())]
    Fits {
        /// The file.
        path: PathBuf,
        /// The HDU, when one is concerned.
        hdu: Option<String>,
        /// What is wrong (column, shape, ...).
        msg: String,
    },
    /// Plain I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A column the output schema does not have (a programming error caught when the
    /// column handles are resolved).
    #[error(transparent)]
    Schema(#[from] crate::output::SchemaError),
    /// A problem with how a program was called: arguments, inputs given twice, an output that
    /// would overwrite an input or cannot be written.
    #[error("{0}")]
    Usage(String),
    /// Invalid data (bad shapes, NaN pixels in a place where they cannot be flagged, ...).
    #[error("invalid data: {0}")]
    Invalid(String),
}

/// Library result.
pub type Result<T> = std::result::Result<T, Error>;
