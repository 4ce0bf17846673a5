//! Plan checking (`wavelift plan check`, the malformed-plan corpus, properties) and the
//! golden YAML of the objects built from a plan. One test binary (each links the whole
//! crate); the modules are the former `tests/*.rs` files.

mod check;
mod cluster_golden;
#[path = "../common/mod.rs"]
mod common;
mod forklift_golden;
mod fuzz_regressions;
mod hostile;
