//! Simulation of MEDS files for tests and demos (placeholder).
