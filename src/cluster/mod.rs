//! The cluster boundary: typed KubeVirt/CDI/NAD resources, pure builders plan → objects,
//! labels and deterministic names. Client setup and the KubeVirt subresource calls come with
//! the engine (issue 4).

pub mod build;
pub mod call;
pub mod client;
pub mod labels;
pub mod resources;
pub mod subresource;
