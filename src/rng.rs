//! Seeded random streams.
