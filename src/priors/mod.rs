//! Priors used by ngmixer configs.
