//! Typed KubeVirt, CDI and Multus resources. Only the fields wavelift reads or writes are
//! typed; large subtrees (the VMI template, DataVolume sources) stay `serde_json::Value`.
//! Schemas are disabled: wavelift never installs these CRDs, it uses them.

use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub use super::phase::{DvPhase, MigrationPhase, VmiPhase};

/// A Kubernetes-style condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// `kubevirt.io/v1` VirtualMachine.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kubevirt.io",
    version = "v1",
    kind = "VirtualMachine",
    plural = "virtualmachines",
    shortname = "vm",
    namespaced,
    status = "VirtualMachineStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_strategy: Option<String>,
    /// Deprecated predecessor of `runStrategy` (`true` = `Always`, `false` = `Halted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    /// The VMI template: `{metadata, spec: {domain, networks, volumes}}`.
    pub template: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_volume_templates: Vec<Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineStatus {
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printable_status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The run strategy virt-controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_strategy: Option<String>,
    /// Start/stop requests virt-api queued for virt-controller (first one first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_change_requests: Vec<StateChangeRequest>,
}

/// One `status.stateChangeRequests` entry (`VirtualMachineStateChangeRequest`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct StateChangeRequest {
    /// `Start` or `Stop`.
    pub action: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// The VMI a `Stop` applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// `kubevirt.io/v1` VirtualMachineInstance (created by KubeVirt from a VM; wavelift reads it).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kubevirt.io",
    version = "v1",
    kind = "VirtualMachineInstance",
    plural = "virtualmachineinstances",
    shortname = "vmi",
    namespaced,
    status = "VirtualMachineInstanceStatus",
    schema = "disabled"
)]
pub struct VirtualMachineInstanceSpec {
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineInstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<VmiPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<VmiInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_state: Option<MigrationState>,
}

/// One entry of a VMI's `status.interfaces`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VmiInterface {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// `domain`, `guest-agent`, `multus-status`, comma-joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_source: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<String>,
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub failed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// `kubevirt.io/v1` VirtualMachineInstanceMigration.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kubevirt.io",
    version = "v1",
    kind = "VirtualMachineInstanceMigration",
    plural = "virtualmachineinstancemigrations",
    shortname = "vmim",
    namespaced,
    status = "VirtualMachineInstanceMigrationStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineInstanceMigrationSpec {
    pub vmi_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_node_selector: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineInstanceMigrationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MigrationPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_state: Option<MigrationState>,
}

/// `cdi.kubevirt.io/v1beta1` DataVolume.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cdi.kubevirt.io",
    version = "v1beta1",
    kind = "DataVolume",
    plural = "datavolumes",
    shortname = "dv",
    namespaced,
    status = "DataVolumeStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct DataVolumeSpec {
    /// One of `vddk`, `http`, … (CDI `DataVolumeSource`).
    pub source: Value,
    /// CDI `StorageSpec`: omitted fields come from the StorageProfile.
    pub storage: Value,
    /// Multi-stage (warm) import: one entry per vSphere snapshot to copy, in order. After
    /// creation only this list and `finalCheckpoint` may change (CDI's webhook,
    /// `pkg/apiserver/webhooks/datavolume-validate.go`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<DataVolumeCheckpoint>,
    /// The last checkpoint in `checkpoints` is the final stage: after it the DataVolume
    /// becomes `Succeeded` instead of `Paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_checkpoint: Option<bool>,
}

/// One stage of a multi-stage import (CDI `DataVolumeCheckpoint`): copy the blocks changed
/// between `previous` (`""` for the first stage: the whole disk; else a change ID or a
/// snapshot reference) and snapshot `current` (its reference value, `snapshot-123`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DataVolumeCheckpoint {
    pub previous: String,
    pub current: String,
}

/// PVC annotation prefix CDI sets when a checkpoint is copied:
/// `cdi.kubevirt.io/storage.checkpoint.copied.<current>` (`pkg/controller/common/util.go`
/// `AnnCheckpointsCopied`).
pub const ANN_CHECKPOINT_COPIED: &str = "cdi.kubevirt.io/storage.checkpoint.copied";
/// PVC annotation CDI sets to `"true"` when the final checkpoint is copied
/// (`AnnMultiStageImportDone`).
pub const ANN_MULTI_STAGE_DONE: &str = "cdi.kubevirt.io/storage.checkpoint.done";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataVolumeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DvPhase>,
    /// `"45.20%"`, `"N/A"`, `"100.0%"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default)]
    pub restart_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl DataVolumeStatus {
    /// Progress as a fraction 0.0–1.0, when CDI reports one.
    pub fn progress_fraction(&self) -> Option<f64> {
        let p = self.progress.as_deref()?.trim().strip_suffix('%')?;
        let v: f64 = p.parse().ok()?;
        (0.0..=100.0).contains(&v).then_some(v / 100.0)
    }
}

/// `k8s.cni.cncf.io/v1` NetworkAttachmentDefinition (plural `network-attachment-definitions`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    shortname = "net-attach-def",
    namespaced,
    schema = "disabled"
)]
pub struct NetworkAttachmentDefinitionSpec {
    /// CNI configuration, a JSON document in a string.
    pub config: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn api_paths_and_progress() {
        assert_eq!(
            NetworkAttachmentDefinition::plural(&()),
            "network-attachment-definitions"
        );
        assert_eq!(DataVolume::api_version(&()), "cdi.kubevirt.io/v1beta1");
        assert_eq!(
            VirtualMachineInstanceMigration::kind(&()),
            "VirtualMachineInstanceMigration"
        );
        let s = DataVolumeStatus {
            progress: Some("45.20%".into()),
            ..Default::default()
        };
        assert_eq!(s.progress_fraction(), Some(0.452));
        let na = DataVolumeStatus {
            progress: Some("N/A".into()),
            ..Default::default()
        };
        assert_eq!(na.progress_fraction(), None);
    }

    #[test]
    fn vmi_status_reads_kubevirt_json() {
        let v = serde_json::json!({
            "phase": "Running", "nodeName": "worker-2",
            "interfaces": [{"name": "vlan100", "interfaceName": "eth0", "mac": "00:50:56:aa:bb:cc",
                            "ipAddress": "192.0.2.42", "ipAddresses": ["192.0.2.42"], "infoSource": "domain, guest-agent"}],
            "migrationState": {"sourceNode": "worker-1", "targetNode": "worker-2", "completed": true, "mode": "PreCopy"}
        });
        let s: VirtualMachineInstanceStatus = serde_json::from_value(v).expect("parse");
        assert_eq!(s.node_name.as_deref(), Some("worker-2"));
        assert_eq!(s.interfaces[0].ip_addresses, vec!["192.0.2.42"]);
        assert!(s.migration_state.expect("state").completed);
    }
}
