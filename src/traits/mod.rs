//! The small traits the generic layers are built on.
