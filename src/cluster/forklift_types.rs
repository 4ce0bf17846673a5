//! Forklift (kubev2v/forklift, MTV) `forklift.konveyor.io/v1beta1` status shapes, label keys
//! and names, shared by the simulated Forklift (`crate::sim::controllers::forklift`) and an
//! engine backend that reads what Forklift writes.
//!
//! Field names follow kubev2v/forklift `pkg/apis/forklift/v1beta1/plan/{vm,migration,
//! timed}.go` (`VMStatus`, `Step`, `Task`, `Warm`, `Precopy`), `pkg/lib/condition/
//! condition.go` (`Condition`) and `pkg/lib/itinerary` (`Progress`); labels and step names
//! follow `pkg/controller/plan/kubevirt.go` and `pkg/controller/plan/migrator/base/doc.go`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group and version.
pub const API_VERSION: &str = "forklift.konveyor.io/v1beta1";

/// Labels Forklift puts on what it creates for a VM (the target VirtualMachine, its
/// DataVolumes and PVCs): kubevirt.go `planLabels` + `vmLabels`.
pub mod labels {
    /// The Migration's UID.
    pub const MIGRATION: &str = "migration";
    /// The Plan's UID.
    pub const PLAN: &str = "plan";
    /// The Plan's name.
    pub const PLAN_NAME: &str = "plan-name";
    /// The Plan's namespace.
    pub const PLAN_NAMESPACE: &str = "plan-namespace";
    /// The source VM's id (vSphere managed object id, `vm-42`).
    pub const VM_ID: &str = "vmID";
    /// `resource: vm-config` on VM-level objects.
    pub const RESOURCE: &str = "resource";
    /// The value of [`RESOURCE`] for VM-level objects (`ResourceVMConfig`).
    pub const RESOURCE_VM_CONFIG: &str = "vm-config";
    /// `guestConverted: "true"` on the VirtualMachine when virt-v2v converted the guest
    /// (kubevirt.go `setVmLabels`).
    pub const GUEST_CONVERTED: &str = "guestConverted";
    /// `app: <vm name>` on the VM's template (kubevirt.go `virtualMachine`).
    pub const APP: &str = "app";
}

/// Step names of a VM's pipeline (`pkg/controller/plan/migrator/base/doc.go`).
pub mod steps {
    pub const INITIALIZE: &str = "Initialize";
    pub const PREFLIGHT_INSPECTION: &str = "PreflightInspection";
    pub const DISK_ALLOCATION: &str = "DiskAllocation";
    pub const DISK_TRANSFER: &str = "DiskTransfer";
    pub const CUTOVER: &str = "Cutover";
    pub const IMAGE_CONVERSION: &str = "ImageConversion";
    pub const DISK_TRANSFER_V2V: &str = "DiskTransferV2v";
    pub const VM_CREATION: &str = "VirtualMachineCreation";
}

/// Condition types (`pkg/apis/forklift/v1beta1/doc.go`, `pkg/controller/plan/validation.go`,
/// `pkg/controller/provider/validation.go`).
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const EXECUTING: &str = "Executing";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const CANCELED: &str = "Canceled";
    pub const VM_NOT_FOUND: &str = "VMNotFound";
    pub const VM_NETWORKS_NOT_MAPPED: &str = "VMNetworksNotMapped";
    pub const VM_STORAGE_NOT_MAPPED: &str = "VMStorageNotMapped";
    pub const VM_MISSING_CBT: &str = "VMMissingChangedBlockTracking";
    pub const VM_HAS_SNAPSHOTS: &str = "VMHasSnapshots";
    pub const MAC_CONFLICTS: &str = "MacConflicts";
    pub const VM_MULTIPLE_POD_NETWORK_MAPPINGS: &str = "VMMultiplePodNetworkMappings";
    pub const VM_CRITICAL_CONCERNS: &str = "VMCriticalConcerns";
    pub const SECRET_NOT_VALID: &str = "SecretNotValid";
    pub const CONNECTION_TEST_SUCCEEDED: &str = "ConnectionTestSucceeded";
    pub const CONNECTION_TEST_FAILED: &str = "ConnectionTestFailed";
    pub const INVENTORY_CREATED: &str = "InventoryCreated";
    pub const URL_NOT_VALID: &str = "UrlNotValid";
}

/// Condition categories (`pkg/lib/condition/condition.go`).
pub mod category {
    pub const CRITICAL: &str = "Critical";
    pub const ERROR: &str = "Error";
    pub const WARN: &str = "Warn";
    pub const ADVISORY: &str = "Advisory";
    pub const REQUIRED: &str = "Required";
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `libcnd.Condition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default)]
    pub category: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suggestion: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub durable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

impl Condition {
    /// A `True` condition.
    pub fn new(type_: &str, category: &str, reason: &str, message: &str) -> Self {
        Condition {
            type_: type_.into(),
            status: "True".into(),
            reason: reason.into(),
            category: category.into(),
            message: message.into(),
            ..Condition::default()
        }
    }

    /// The same condition apart from its transition time (`Condition.Equal`).
    pub fn same(&self, other: &Condition) -> bool {
        let mut a = self.clone();
        a.last_transition_time = None;
        let mut b = other.clone();
        b.last_transition_time = None;
        a == b
    }
}

/// `itinerary.Progress`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub completed: i64,
    pub total: i64,
}

/// `plan.Error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    pub phase: String,
    pub reasons: Vec<String>,
}

/// `plan.Task` (a step is a task with nested tasks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default)]
    pub progress: Progress,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
}

/// `plan.Step`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub task: Task,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
}

/// `plan.DiskDelta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskDelta {
    pub disk: String,
    pub delta_id: String,
}

/// `plan.Precopy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Precopy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub create_task_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remove_task_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DiskDelta>,
}

/// `plan.Warm`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warm {
    pub successes: i64,
    pub failures: i64,
    pub consecutive_failures: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_precopy_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub precopies: Vec<Precopy>,
}

/// `plan.VMStatus` (the Plan's `status.migration.vms[]`): the VM reference (`id`, `name`)
/// inline, its pipeline, phase, conditions (`Succeeded`, `Failed` or `Canceled` once done).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_power_state: String,
    #[serde(default)]
    pub pipeline: Vec<Step>,
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<Warm>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restore_power_state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub new_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operating_system: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl VmStatus {
    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.pipeline.iter().find(|s| s.task.name == name)
    }

    /// The step named `name`, mutably.
    pub fn step_mut(&mut self, name: &str) -> Option<&mut Step> {
        self.pipeline.iter_mut().find(|s| s.task.name == name)
    }

    /// Whether it has a condition of this type.
    pub fn has_condition(&self, type_: &str) -> bool {
        self.conditions.iter().any(|c| c.type_ == type_)
    }
}
