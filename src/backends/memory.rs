//! In-memory image source used by tests and simulations.
