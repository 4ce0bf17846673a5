//! Connectivity checks: spec parsing now; probes, baselines and reports come with their issue.
pub mod spec;
