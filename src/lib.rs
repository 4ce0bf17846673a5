//! wavelift: run VM migration waves from VMware vSphere into KubeVirt, keeping each VM's
//! IP, MAC and VLAN (Layer-2 lift-and-shift).
//!
//! Layers (see the README), data flowing one way:
//! - pure: [`plan`] (wave plan model, parsing with spans, validation), [`inventory`] and
//!   [`blast`] (exports in, reports out), [`engine::decide`] (the per-VM pipeline),
//!   [`cluster::build`] (plan → Kubernetes objects);
//! - boundary: [`engine::runtime`] and [`engine::ops`] (watchers, commands), [`cluster`]
//!   (kube-rs client), [`checks`] (probes), [`source`] (vSphere REST), [`http1`] (the HTTP
//!   client both use), [`sim`] (the embedded
//!   rehearsal cluster and its simulated controllers);
//! - front ends: [`cli`], [`tui`], consuming the engine's event stream.

pub mod blast;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod http1;
pub mod inventory;
pub mod logging;
pub mod plan;
pub mod retry;
pub mod sim;
pub mod source;
/// Reading spanned TOML: what the plan and theme readers share.
pub(crate) mod toml_spans;
pub mod tui;
