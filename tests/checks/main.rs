//! Probes, verify reports and baselines, the continuous probe, and the network-namespace
//! tests. One test binary (each links the whole crate); the modules are the former
//! `tests/*.rs` files.

#[path = "../common/mod.rs"]
mod common;
mod continuous;
mod netns;
mod probe;
mod verify;
