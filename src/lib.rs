//! wavelift: run VM migration waves from VMware vSphere into KubeVirt, keeping each VM's
//! IP, MAC and VLAN (Layer-2 lift-and-shift).
//!
//! Layers (see the README), data flowing one way:
//! - pure: [`plan`] (wave plan model, parsing with spans, validation, the check language),
//!   [`inventory`] and [`blast`] (exports in, reports out), the engine's `decide` (one VM's
//!   pipeline) and `schedule` (the wave policy), [`cluster::build`] (plan → Kubernetes
//!   objects);
//! - boundary: [[`engine::runtime`] (watchers → the policy → commands), the engine's `ops`
//!   and `preflight`, [`cluster`] (kube-rs client), [`checks`] (probes), [`source`] (vSphere
//!   REST), `http1` (the HTTP client both use), [`sim`] (the embedded rehearsal cluster
//!   and its simulated controllers);
//! - front ends: [`cli`], [`tui`], consuming the engine's event stream.
//!
//! Visibility: the modules the binary, the integration tests and the benchmarks use are
//! `pub`; the rooms inside them that nothing outside reaches are `pub(crate)`, and their
//! types reach the outside only through their module's re-exports (e.g. `engine::Step`).

/// The process-wide allocator: mimalloc, for every front end, test and benchmark alike (so a
/// benchmark measures the allocator the CLI runs on). See Cargo.toml for why.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod blast;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod engine;
/// Reading input files with a type check and a size limit; private files for secrets.
pub mod fsio;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod http1;
pub mod inventory;
pub mod logging;
pub mod plan;
pub mod policy;
pub(crate) mod retry;
pub mod sim;
pub mod source;
/// Reading spanned TOML: what the plan and theme readers share.
pub(crate) mod toml_spans;
pub mod tui;
