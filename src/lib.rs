//! wavelift: run VM migration waves from VMware vSphere into KubeVirt, keeping each VM's
//! IP, MAC and VLAN (Layer-2 lift-and-shift).
//!
//! Layers (see `DESIGN.md` in the shared folder and the README):
//! - pure: [`plan`] (wave plan model, parsing with spans, validation), [`checks::spec`];
//! - boundary: [`sim`] (embedded Kubernetes-API-compatible rehearsal cluster);
//! - front ends: [`cli`], [`tui`].

pub mod blast;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod inventory;
pub mod logging;
pub mod plan;
pub mod sim;
// Moves under `sim` once the API server's module tree settles.
#[path = "sim/controllers/mod.rs"]
pub mod sim_controllers;
pub mod tui;
