//! wavelift: run VM migration waves from VMware vSphere into KubeVirt, keeping each VM's
//! IP, MAC and VLAN (Layer-2 lift-and-shift).
//!
//! Layers (see the README), data flowing one way:
//! - pure: [`plan`] (wave plan model, parsing with spans, validation), [`inventory`] and
//!   [`blast`] (exports in, reports out), [`engine::decide`] (the per-VM pipeline),
//!   [`cluster::build`] (plan → Kubernetes objects);
//! - boundary: [`engine::runtime`] and [`engine::ops`] (watchers, commands), [`cluster`]
//!   (kube-rs client), [`checks`] (probes), [`source`] (vSphere REST), [`sim`] and
//!   [`sim_controllers`] (the embedded rehearsal cluster);
//! - front ends: [`cli`], [`tui`], consuming the engine's event stream.

pub mod blast;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod inventory;
pub mod logging;
pub mod plan;
pub mod sim;
pub mod source;
// Moves under `sim` once the API server's module tree settles.
#[path = "sim/controllers/mod.rs"]
pub mod sim_controllers;
pub mod tui;
