//! The Gaussian-mixture core.
