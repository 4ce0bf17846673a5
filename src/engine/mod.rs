//! The wave engine. `decide` is the per-VM pipeline as a pure function (observation →
//! phase + commands); the scheduler, watchers and command execution come with issue 4.

pub mod decide;
pub mod error;
pub mod events;
pub mod migrate;
pub mod ops;
pub mod runtime;
pub mod schedule;

pub use decide::{
    decide, Command, Control, Decision, DiskObs, Gate, IpGuard, Observed, Phase, Power, Status,
    Step, VmContext,
};
pub use events::{EngineEvent, EngineHandle, EngineRequest, EventKind, LogLevel};
