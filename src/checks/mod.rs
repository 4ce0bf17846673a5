//! Connectivity checks (the check language itself is [`crate::plan::check`]): probes ([`probe`]), VMI interface
//! evaluation ([`evaluate`]), the runner ([`runner`]), results ([`result`]), baselines and
//! their diff ([`baseline`]), reports ([`report`]), the continuous probe ([`continuous`]) and
//! the `wavelift verify` entry point ([`verify`]).
pub mod baseline;
pub mod continuous;
pub mod evaluate;
pub mod probe;
pub mod report;
pub mod result;
pub mod runner;
pub mod verify;
