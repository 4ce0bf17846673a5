//! Day-2 network policy for migrated VMs (issue 17): the firewall rules that protect a VM
//! today, read as an ordered rule model ([`rules`], parsed by [`fw`]), drafted into
//! Kubernetes policy ([`draft`], objects in [`k8s`]) and evaluated with Kubernetes
//! semantics ([`eval`]) by `wavelift policy test` and by the rehearsal cluster.
//!
//! Pure logic: nothing here touches a cluster or the network.

pub mod draft;
pub mod eval;
pub mod fw;
pub mod k8s;
pub mod rules;
