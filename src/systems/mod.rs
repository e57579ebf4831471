//! Batch systems for megamixer runs.
