//! The cluster boundary: typed KubeVirt/CDI/NAD resources and their phases, pure builders
//! plan → objects, labels and deterministic names, client setup, retried calls and the
//! KubeVirt subresource calls.

pub mod build;
pub(crate) mod call;
pub mod client;
pub mod forklift;
pub mod forklift_types;
pub(crate) mod labels;
pub mod lease;
pub(crate) mod phase;
pub mod probe_pod;
pub mod probe_run;
pub mod resources;
pub mod subresource;
