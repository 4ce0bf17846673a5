//! The Kubernetes policy objects wavelift drafts, tests and applies (issue 17):
//! `networking.k8s.io/v1` `NetworkPolicy` for VMs on the pod network and
//! `k8s.cni.cncf.io` `MultiNetworkPolicy` (v1beta1 or v1beta2) for VMs on a secondary (L2)
//! network. Both share the NetworkPolicy spec (the multi-networkpolicy CRD copies it;
//! `endPort` exists only in v1beta2), so the spec is k8s-openapi's.

use k8s_openapi::api::networking::v1::NetworkPolicySpec;
use std::collections::BTreeMap;

/// The annotation naming the NetworkAttachmentDefinition(s) a MultiNetworkPolicy applies
/// to (`NAME` or `NAMESPACE/NAME`, comma-separated), as the multi-networkpolicy
/// implementations read it.
pub const POLICY_FOR: &str = "k8s.v1.cni.cncf.io/policy-for";

pub const MNP_GROUP: &str = "k8s.cni.cncf.io";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MnpVersion {
    /// No `endPort`: port ranges are expanded (up to 32 ports) by the draft.
    V1beta1,
    V1beta2,
}

impl MnpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            MnpVersion::V1beta1 => "v1beta1",
            MnpVersion::V1beta2 => "v1beta2",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    NetworkPolicy,
    MultiNetworkPolicy {
        version: MnpVersion,
        /// The NADs of [`POLICY_FOR`], each as `NAMESPACE/NAME` (a bare name is resolved in
        /// the policy's namespace when read).
        policy_for: Vec<String>,
    },
}

/// One policy object.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDoc {
    pub kind: PolicyKind,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub spec: NetworkPolicySpec,
}
