//! The wave engine against the rehearsal cluster (faults, resume after a crash, a whole
//! run) and the vSphere REST client. One test binary (each links the whole crate); the
//! modules are the former `tests/*.rs` files.

mod cdi;
#[path = "../common/mod.rs"]
mod common;
#[path = "../../benches/common/count.rs"]
mod count;
mod faults;
mod forklift;
mod guests;
mod lease;
mod policy;
mod preflight;
mod probes;
mod resume;
mod shutdown;
mod sim;
mod source_vsphere;
mod throttle;
mod warm;
mod windows;
