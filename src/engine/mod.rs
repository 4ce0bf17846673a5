//! The wave engine, in two pure rooms and an I/O shell:
//! - [`decide`]: one VM's pipeline as a pure function (observation → phase + commands);
//! - [`schedule`]: the wave policy as a pure function (the fleet's memory + what changed +
//!   the time → events, commands, timers): slots, `after`, the preflight gate, timeouts,
//!   pause/resume/cancel/retry/rollback, wave completion;
//! - [`runtime`]: watchers → cluster views → [`schedule::turn`] → events out, commands run
//!   by [`ops`] (the cluster, vCenter and probe boundary), timers as sleeps.
//!
//! [`preflight`] checks a wave's cluster, source and objects before anything is created;
//! [`events`] is the boundary to the front ends; [`migrate`] runs a live migration;
//! [`error`] says why a command failed.

pub(crate) mod decide;
pub(crate) mod error;

pub(crate) mod events;
mod forklift_ops;
pub mod migrate;
pub(crate) mod ops;
/// Applying and deleting the VMs' network policies (`[plan] policy = "apply"`).
pub(crate) mod policy_ops;
pub(crate) mod preflight;
/// Preflight with the Forklift backend (`[plan] backend = "forklift"`).
pub use preflight::forklift as forklift_preflight;
pub(crate) mod probes;
pub mod runtime;
pub(crate) mod schedule;
mod warm_ops;

pub use decide::{
    decide, Command, Control, Decision, DiskObs, Gate, IpGuard, Observed, Phase, Power, Status,
    Step, VmContext,
};
pub use events::{EngineEvent, EngineHandle, EngineRequest, EventKind, LogLevel};
pub use schedule::WindowClock;
