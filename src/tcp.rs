//! The TCP layer: per-direction reassembly of a connection's bytes.

pub mod reassembly;
