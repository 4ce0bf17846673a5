//! The rehearsal cluster: its API through kube-rs, controllers, watches, the machine's
//! kubectl against it, and `wavelift sim serve` across processes. One test binary (each
//! links the whole crate); the modules are the former `tests/*.rs` files.

mod api;
mod cdi_webhook;
#[path = "../common/mod.rs"]
mod common;
mod controllers;
mod fidelity;
mod forklift;
mod hostile;
mod kubectl;
mod kubelet;
mod kubevirt;
mod nfc;
mod policy;
mod serve_flow;
mod warm;
mod watch;
