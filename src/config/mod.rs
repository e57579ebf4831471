//! Fitting configuration (YAML) as typed structs.
