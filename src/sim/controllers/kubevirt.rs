//! Simulated KubeVirt: VirtualMachines drive VirtualMachineInstances through
//! `Pending → Scheduling → Scheduled → Running` on simulated nodes, as the run strategy and
//! the VM's `status.stateChangeRequests` ask (virt-controller's `syncRunStrategy`); the guest
//! agent connects after a boot delay and reports the guest's IP only when the interface's
//! MAC equals the source VM's MAC and its network's VLAN (as its CNI plugin reads the NAD,
//! [`cni_vlan`]) equals the source VM's VLAN (a guest with static configuration behaves
//! so). A running VMI carries `volumeStatus` and a `LiveMigratable` condition derived from
//! its PVCs' access modes and its pod-network binding (virt-controller, virt-handler).
//! Live migrations run `Pending → Scheduling → Scheduled → PreparingTarget → TargetReady →
//! Running → Succeeded | Failed`, moving the VMI's node. A VMI (and a migration's target)
//! lands only on a node its `nodeSelector` and required node affinity allow
//! ([`super::placement`]); none: the VMI stays in Scheduling, the migration fails once its
//! target pod stays unschedulable too long. Kube-rs clients of the API: they
//! run against any API server with the KubeVirt CRDs.

use super::scenario::{FaultKind, GuestOsKind, NicConfig, Scenario};
use super::world::World;
use super::SimClock;
use crate::cluster::resources::{
    DataVolume, DvPhase, NetworkAttachmentDefinition, VirtualMachine, VirtualMachineInstance,
    VirtualMachineInstanceMigration, VmiPhase,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::mpsc;

fn now() -> String {
    crate::sim::store::now_rfc3339()
}

/// Reflector stores the KubeVirt controllers and the probe endpoint share.
#[derive(Clone)]
pub struct Stores {
    pub vmis: Store<VirtualMachineInstance>,
    pub dvs: Store<DataVolume>,
    pub vms: Store<VirtualMachine>,
}

/// Starts the reflectors; returns their stores and the tasks that feed them, plus a channel
/// of VM keys to reconcile (VM changes, DataVolume changes).
pub fn reflectors(
    client: &Client,
    world: Arc<World>,
) -> (
    Stores,
    Vec<tokio::task::JoinHandle<()>>,
    mpsc::UnboundedReceiver<(String, String)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (vmi_store, vmi_writer) = reflector::store::<VirtualMachineInstance>();
    let (dv_store, dv_writer) = reflector::store::<DataVolume>();
    let (vm_store, vm_writer) = reflector::store::<VirtualMachine>();
    let mut tasks = Vec::new();

    let vmi_api: Api<VirtualMachineInstance> = Api::all(client.clone());
    let tx_vmi = tx.clone();
    tasks.push(tokio::spawn(async move {
        let mut s = reflector::reflector(
            vmi_writer,
            watcher::watcher(vmi_api, watcher::Config::default()).default_backoff(),
        )
        .boxed();
        while let Some(ev) = s.next().await {
            // A VMI that disappears may need its VM restarted (RerunOnFailure/Always).
            if let Ok(Event::Delete(vmi)) = ev {
                let (ns, name) = (vmi.namespace().unwrap_or_default(), vmi.name_any());
                world.clear_vmi(&format!("{ns}/{name}"));
                let _ = tx_vmi.send((ns, name));
            }
        }
    }));
    let dv_api: Api<DataVolume> = Api::all(client.clone());
    let tx_dv = tx.clone();
    let vm_store_for_dv = vm_store.clone();
    tasks.push(tokio::spawn(async move {
        let mut s = reflector::reflector(
            dv_writer,
            watcher::watcher(dv_api, watcher::Config::default()).default_backoff(),
        )
        .applied_objects()
        .boxed();
        while let Some(ev) = s.next().await {
            let Ok(dv) = ev else { continue };
            let ns = dv.namespace().unwrap_or_default();
            let name = dv.name_any();
            // A DataVolume wavelift made names its VM in a label: no need to look through
            // every VM (5,000 of them, each template parsed) on every DataVolume change.
            if let Some(vm) = dv.labels().get(crate::cluster::labels::VM) {
                let _ = tx_dv.send((ns.clone(), vm.clone()));
                continue;
            }
            for vm in vm_store_for_dv.state() {
                if vm.namespace().as_deref() == Some(ns.as_str())
                    && volumes(&vm.spec.template).contains(&name)
                {
                    let _ = tx_dv.send((ns.clone(), vm.name_any()));
                }
            }
        }
    }));
    let vm_api: Api<VirtualMachine> = Api::all(client.clone());
    tasks.push(tokio::spawn(async move {
        let mut s = reflector::reflector(
            vm_writer,
            watcher::watcher(vm_api, watcher::Config::default()).default_backoff(),
        )
        .boxed();
        while let Some(ev) = s.next().await {
            match ev {
                Ok(Event::Apply(vm)) | Ok(Event::InitApply(vm)) | Ok(Event::Delete(vm)) => {
                    let _ = tx.send((vm.namespace().unwrap_or_default(), vm.name_any()));
                }
                _ => {}
            }
        }
    }));
    (
        Stores {
            vmis: vmi_store,
            dvs: dv_store,
            vms: vm_store,
        },
        tasks,
        rx,
    )
}

/// The claims the guest's disks are, in volume order: a `dataVolume`'s name or a
/// `persistentVolumeClaim`'s claim (a DataVolume's PVC has its name); other volumes
/// (cloud-init, container disks) are no copies of a source disk.
fn boot_disks(template: &Value) -> Vec<String> {
    named_volumes(
        template,
        &["/dataVolume/name", "/persistentVolumeClaim/claimName"],
    )
}

/// The DataVolumes the VM's volumes name, in order.
fn volumes(template: &Value) -> Vec<String> {
    named_volumes(template, &["/dataVolume/name"])
}

/// Each volume's name at the first of `paths` it has, in volume order.
fn named_volumes(template: &Value, paths: &[&str]) -> Vec<String> {
    template
        .pointer("/spec/volumes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| {
                    paths
                        .iter()
                        .find_map(|p| v.pointer(p))
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `vm.RunStrategy()` (kubevirt `staging/src/kubevirt.io/api/core/v1/types.go`): the
/// deprecated `spec.running` maps to `Always`/`Halted`; neither set is `Halted`.
fn run_strategy(vm: &VirtualMachine) -> &str {
    match (vm.spec.running, vm.spec.run_strategy.as_deref()) {
        (Some(true), _) => "Always",
        (Some(false), _) => "Halted",
        (None, Some(s)) => s,
        (None, None) => "Halted",
    }
}

fn vmi_phase(vmi: &VirtualMachineInstance) -> Option<&VmiPhase> {
    vmi.status.as_ref().and_then(|s| s.phase.as_ref())
}

/// `vmi.IsFinal()`.
fn is_final(vmi: &VirtualMachineInstance) -> bool {
    matches!(vmi_phase(vmi), Some(VmiPhase::Succeeded | VmiPhase::Failed))
}

fn requests(vm: &VirtualMachine) -> &[crate::cluster::resources::StateChangeRequest] {
    vm.status
        .as_ref()
        .map_or(&[][..], |s| s.state_change_requests.as_slice())
}

/// `hasStartRequest` (kubevirt `pkg/virt-controller/watch/vm/vm.go`): only the first
/// request counts.
fn has_start_request(vm: &VirtualMachine) -> bool {
    requests(vm).first().is_some_and(|r| r.action == "Start")
}

/// `hasStopRequestForVMI`.
fn has_stop_request_for(vm: &VirtualMachine, vmi: &VirtualMachineInstance) -> bool {
    requests(vm).first().is_some_and(|r| {
        r.action == "Stop" && r.uid.is_some() && r.uid.as_deref() == vmi.uid().as_deref()
    })
}

/// What virt-controller does with a VM and its VMI.
#[derive(Debug, PartialEq)]
enum Step {
    Nothing,
    /// Create the VMI (once the disks are ready).
    Start,
    /// Delete the VMI; `requeue_start` adds a start request (RerunOnFailure after a failure).
    Stop {
        requeue_start: bool,
    },
    /// Halted with a (paused) start request: set the VM to run.
    SetRunning,
}

/// `syncRunStrategy` (kubevirt `pkg/virt-controller/watch/vm/vm.go`), without start
/// backoff, paused starts and decentralized migrations.
fn decide(vm: &VirtualMachine, vmi: Option<&VirtualMachineInstance>) -> Step {
    let strategy = run_strategy(vm);
    match (strategy, vmi) {
        ("Always", Some(vmi)) if has_stop_request_for(vm, vmi) || is_final(vmi) => Step::Stop {
            requeue_start: false,
        },
        ("Always", None) => Step::Start,
        ("RerunOnFailure", Some(vmi)) => {
            let failed = vmi_phase(vmi) == Some(&VmiPhase::Failed);
            let succeeded = vmi_phase(vmi) == Some(&VmiPhase::Succeeded);
            if has_stop_request_for(vm, vmi) || failed || succeeded {
                Step::Stop {
                    requeue_start: failed,
                }
            } else {
                Step::Nothing
            }
        }
        // `shouldStartRerunOnFailure`: a start request, or the strategy just switched.
        ("RerunOnFailure", None) => {
            let acted_on = vm.status.as_ref().and_then(|s| s.run_strategy.as_deref());
            if has_start_request(vm) || acted_on != Some(strategy) {
                Step::Start
            } else {
                Step::Nothing
            }
        }
        ("Manual", Some(vmi)) if has_stop_request_for(vm, vmi) => Step::Stop {
            requeue_start: false,
        },
        ("Manual", None) if has_start_request(vm) => Step::Start,
        ("Halted", None) if has_start_request(vm) => Step::SetRunning,
        ("Halted", Some(_)) => Step::Stop {
            requeue_start: false,
        },
        ("Once", None) => Step::Start,
        _ => Step::Nothing,
    }
}

/// `isTrimFirstChangeRequestNeeded`: a stop request is done once its VMI is gone (or it
/// names another VMI), a start request once a live VMI exists.
fn trim_first_request(vm: &VirtualMachine, vmi: Option<&VirtualMachineInstance>) -> bool {
    let Some(first) = requests(vm).first() else {
        return false;
    };
    match (first.action.as_str(), vmi) {
        ("Stop", None) => true,
        ("Stop", Some(vmi)) => first.uid.is_none() || first.uid.as_deref() != vmi.uid().as_deref(),
        ("Start", Some(vmi)) => vmi.metadata.deletion_timestamp.is_none() && !is_final(vmi),
        _ => false,
    }
}

/// Reconciles VMs as virt-controller's VM controller does
/// (kubevirt `pkg/virt-controller/watch/vm/vm.go`): the run strategy and the first state
/// change request decide whether the VMI is created (once its disks are ready) or deleted;
/// finished requests are trimmed; the VM's printable status stays current.
pub async fn run_vms(
    client: Client,
    scenario: Arc<Scenario>,
    world: Arc<World>,
    clock: SimClock,
    stores: Stores,
    mut keys: mpsc::UnboundedReceiver<(String, String)>,
) {
    let mut booting: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    loop {
        let (ns, name) = tokio::select! {
            Some(uid) = done_rx.recv() => { booting.remove(&uid); continue; }
            k = keys.recv() => match k { Some(k) => k, None => break },
        };
        let vm = stores.vms.get(&ObjectRef::new(&name).within(&ns));
        let vmi = stores.vmis.get(&ObjectRef::new(&name).within(&ns));
        let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), &ns);
        let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), &ns);
        let pp = PatchParams::default();
        let Some(vm) = vm else {
            if vmi.is_some() {
                world.clear_vmi(&format!("{ns}/{name}"));
                let _ = vmis.delete(&name, &DeleteParams::default()).await;
            }
            continue;
        };
        let strategy = run_strategy(&vm).to_string();
        let acted_on = vm.status.as_ref().and_then(|s| s.run_strategy.clone());
        let step = decide(&vm, vmi.as_deref());
        // The status update after the sync: trimmed requests, the strategy acted on.
        let mut status = serde_json::Map::new();
        if trim_first_request(&vm, vmi.as_deref()) {
            status.insert(
                "stateChangeRequests".into(),
                json!(requests(&vm)[1..].to_vec()),
            );
        }
        if acted_on.as_deref() != Some(strategy.as_str()) {
            status.insert("runStrategy".into(), json!(strategy));
        }
        if !status.is_empty() {
            let _ = vms
                .patch_status(&name, &pp, &Patch::Merge(json!({ "status": status })))
                .await;
        }
        match step {
            Step::Start if vmi.is_none() => {
                let succeeded = |d: &DataVolume| {
                    d.status.as_ref().and_then(|s| s.phase.as_ref()) == Some(&DvPhase::Succeeded)
                };
                let mut pending: Vec<String> = volumes(&vm.spec.template)
                    .into_iter()
                    .filter(|dv| {
                        !stores
                            .dvs
                            .get(&ObjectRef::new(dv).within(&ns))
                            .is_some_and(|d| succeeded(&d))
                    })
                    .collect();
                // The DataVolume watch can lag behind the VM's: before saying a disk is not
                // ready, ask the API server (otherwise the VM waits for an event that
                // already went by).
                if !pending.is_empty() {
                    let dv_api: Api<DataVolume> = Api::namespaced(client.clone(), &ns);
                    let mut still = Vec::new();
                    for dv in pending {
                        match dv_api.get_opt(&dv).await {
                            Ok(Some(d)) if succeeded(&d) => {}
                            _ => still.push(dv),
                        }
                    }
                    pending = still;
                }
                if !pending.is_empty() {
                    let _ = vms
                        .patch_status(&name, &pp, &Patch::Merge(json!({ "status": {
                            "created": false, "ready": false, "printableStatus": "Provisioning",
                            "conditions": [{ "type": "Ready", "status": "False", "reason": "DataVolumesNotReady",
                                             "message": format!("waiting for DataVolumes: {}", pending.join(", ")) }]
                        } })))
                        .await;
                    continue;
                }
                let uid = vm.uid().unwrap_or_default();
                if !booting.insert(uid.clone()) {
                    continue;
                }
                let (client, scenario, world, done) = (
                    client.clone(),
                    scenario.clone(),
                    world.clone(),
                    done_tx.clone(),
                );
                tokio::spawn(async move {
                    if let Err(e) = boot(client, scenario, world, clock, (*vm).clone()).await {
                        tracing::debug!(error = %e, "sim VMI boot ended");
                    }
                    let _ = done.send(uid);
                });
            }
            Step::Stop { requeue_start } => {
                let _ = vms
                    .patch_status(
                        &name,
                        &pp,
                        &Patch::Merge(
                            json!({ "status": { "printableStatus": "Stopping", "ready": false } }),
                        ),
                    )
                    .await;
                world.clear_vmi(&format!("{ns}/{name}"));
                let _ = vmis.delete(&name, &DeleteParams::default()).await;
                let mut st =
                    json!({ "printableStatus": "Stopped", "created": false, "ready": false });
                if requeue_start {
                    // `addStartRequest`.
                    let mut reqs = requests(&vm).to_vec();
                    reqs.push(crate::cluster::resources::StateChangeRequest {
                        action: "Start".into(),
                        ..Default::default()
                    });
                    st["stateChangeRequests"] = json!(reqs);
                }
                let _ = vms
                    .patch_status(&name, &pp, &Patch::Merge(json!({ "status": st })))
                    .await;
            }
            Step::SetRunning => {
                let patch = if vm.spec.run_strategy.is_some() {
                    json!({ "spec": { "runStrategy": "Always" } })
                } else {
                    json!({ "spec": { "running": true } })
                };
                let _ = vms.patch(&name, &pp, &Patch::Merge(patch)).await;
            }
            Step::Nothing | Step::Start if vmi.is_none() => {
                let printable = vm.status.as_ref().and_then(|s| s.printable_status.clone());
                if printable.as_deref() != Some("Stopped") {
                    let _ = vms
                        .patch_status(&name, &pp, &Patch::Merge(json!({ "status": { "printableStatus": "Stopped", "created": false, "ready": false } })))
                        .await;
                }
            }
            Step::Nothing | Step::Start => {}
        }
    }
}

/// The VLAN a guest's frames travel on over a multus network, read from its
/// NetworkAttachmentDefinition's CNI config the way the CNI plugin its `type` names reads
/// it (the first plugin of a `plugins` list is the one attaching the interface):
/// - `bridge`: `vlan` (containernetworking/plugins `plugins/main/bridge/bridge.go`,
///   `NetConf.Vlan`; 0 or absent is untagged). The port's VLAN is the PVID, untagged
///   towards the guest.
/// - `ovn-k8s-cni-overlay` with `"topology": "localnet"`: `vlanID` (ovn-kubernetes
///   `go-controller/pkg/cni/types/types.go`, `NetConf.VLANID`: "valid in localnet topology
///   network only").
/// - any other plugin: no VLAN, whatever the config holds. Calico's CNI, for one, has no
///   VLAN field (projectcalico/calico `cni-plugin/pkg/types/types.go`, `NetConf`), so a
///   `"vlan"` in a `calico` config is ignored, as the real plugin ignores it.
pub fn cni_vlan(config: &Value) -> Option<u16> {
    let cfg = config
        .get("plugins")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
        .unwrap_or(config);
    let field = match (
        cfg.get("type").and_then(Value::as_str),
        cfg.get("topology").and_then(Value::as_str),
    ) {
        (Some("bridge"), _) => "vlan",
        (Some("ovn-k8s-cni-overlay"), Some("localnet")) => "vlanID",
        _ => return None,
    };
    cfg.get(field)
        .and_then(Value::as_u64)
        .filter(|v| *v != 0)
        .and_then(|v| u16::try_from(v).ok())
}

async fn nad_vlan(client: &Client, ns: &str, network_name: &str) -> Option<u16> {
    let (nad_ns, nad_name) = network_name.split_once('/').unwrap_or((ns, network_name));
    let api: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), nad_ns);
    let nad = api.get(nad_name).await.ok()?;
    let cfg: Value = serde_json::from_str(&nad.spec.config).ok()?;
    cni_vlan(&cfg)
}

/// `v1.AllowPodBridgeNetworkLiveMigrationAnnotation` (kubevirt
/// `staging/src/kubevirt.io/api/core/v1/types.go`).
const ALLOW_POD_BRIDGE_MIGRATION: &str = "kubevirt.io/allow-pod-bridge-network-live-migration";

/// `status.volumeStatus` as virt-controller fills it in (kubevirt
/// `pkg/virt-controller/watch/vmi/storage.go`, `processPVCInfo`): per volume, the access
/// modes, volume mode and size of the PVC behind a `persistentVolumeClaim` or `dataVolume`
/// volume (a DataVolume's PVC has its name).
async fn volume_status(client: &Client, ns: &str, spec: &Value) -> Vec<Value> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for vol in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = vol.get("name").and_then(Value::as_str).unwrap_or_default();
        let claim = vol
            .pointer("/persistentVolumeClaim/claimName")
            .or_else(|| vol.pointer("/dataVolume/name"))
            .and_then(Value::as_str);
        let mut st = json!({ "name": name, "target": "" });
        if let Some(claim) = claim {
            if let Ok(Some(pvc)) = pvcs.get_opt(claim).await {
                let spec = pvc.spec.unwrap_or_default();
                st["persistentVolumeClaimInfo"] = json!({
                    "claimName": claim,
                    "accessModes": spec.access_modes.unwrap_or_default(),
                    "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
                    "capacity": pvc.status.and_then(|s| s.capacity).unwrap_or_default(),
                    "requests": spec.resources.and_then(|r| r.requests).unwrap_or_default(),
                });
            }
        }
        out.push(st);
    }
    out
}

/// `VerifyVMIMigratable` (kubevirt `pkg/network/vmispec/interface.go`): only the interface
/// on the pod network matters; masquerade and passt migrate, bridge only with the
/// allow-pod-bridge annotation; the sim registers no binding plugins.
fn interfaces_migratable(spec: &Value, annotations: &Value) -> Result<(), String> {
    let ifaces = spec
        .pointer("/domain/devices/interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ifaces.is_empty() {
        return Ok(());
    }
    let nets = spec
        .get("networks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(pod) = nets.iter().find(|n| n.get("pod").is_some()) else {
        return Ok(());
    };
    let pod_name = pod.get("name").and_then(Value::as_str).unwrap_or_default();
    let Some(primary) = ifaces
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(pod_name))
    else {
        return Err(format!("no primary interface found for network {pod_name}"));
    };
    if primary.get("masquerade").is_some() || primary.get("passtBinding").is_some() {
        return Ok(());
    }
    if primary.get("bridge").is_some() && annotations.get(ALLOW_POD_BRIDGE_MIGRATION).is_some() {
        return Ok(());
    }
    Err("cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network".into())
}

/// `checkVolumesForMigration` (kubevirt `pkg/virt-handler/vm.go`): every PVC-backed volume
/// must be shared (`ReadWriteMany`, `pkg/storage/types/pvc.go` `HasSharedAccessMode`); other
/// volumes (container disks, cloud-init) are copied, which makes it a block migration.
/// Returns (block migration, the refusal).
fn volumes_migratable(spec: &Value, volume_status: &[Value]) -> (bool, Option<String>) {
    let mut block = false;
    for vol in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = vol.get("name").and_then(Value::as_str).unwrap_or_default();
        let claim = vol
            .pointer("/persistentVolumeClaim/claimName")
            .or_else(|| vol.pointer("/dataVolume/name"))
            .and_then(Value::as_str);
        let Some(claim) = claim else {
            let read_only_cdrom = spec
                .pointer("/domain/devices/disks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|d| {
                    d.get("name").and_then(Value::as_str) == Some(name)
                        && d.get("cdrom").is_some_and(|c| {
                            c.get("readonly").and_then(Value::as_bool) != Some(false)
                        })
                });
            if !read_only_cdrom {
                block = true;
            }
            continue;
        };
        let info = volume_status
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|s| s.get("persistentVolumeClaimInfo"));
        let Some(info) = info else {
            return (true, Some(format!("cannot migrate VMI: Unable to determine if PVC {claim} is shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)")));
        };
        let shared = info
            .get("accessModes")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|m| m == "ReadWriteMany"));
        if !shared {
            return (true, Some(format!("cannot migrate VMI: PVC {claim} is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)")));
        }
    }
    (block, None)
}

/// The VMI's `LiveMigratable` condition and `migrationMethod`, as virt-handler computes
/// them (kubevirt `pkg/virt-handler/vm.go`, `calculateLiveMigrationCondition`): an
/// interface refusal first (`InterfaceNotLiveMigratable`), then the disks
/// (`DisksNotLiveMigratable`); CPU model, host devices, SEV/TDX and the like are not
/// modelled.
fn live_migratable(
    spec: &Value,
    annotations: &Value,
    volume_status: &[Value],
) -> (Value, &'static str) {
    let (block, disks) = volumes_migratable(spec, volume_status);
    let method = if block {
        "BlockMigration"
    } else {
        "LiveMigration"
    };
    let refusal = match (interfaces_migratable(spec, annotations), disks) {
        (Err(m), _) => Some(("InterfaceNotLiveMigratable", m)),
        (Ok(()), Some(m)) => Some((crate::sim::admission::DISKS_NOT_LIVE_MIGRATABLE, m)),
        (Ok(()), None) => None,
    };
    let cond = match refusal {
        Some((reason, message)) => json!({
            "type": crate::sim::admission::LIVE_MIGRATABLE, "status": "False",
            "reason": reason, "message": message,
        }),
        None => json!({ "type": crate::sim::admission::LIVE_MIGRATABLE, "status": "True" }),
    };
    (cond, method)
}

/// The nodes a VMI (its virt-launcher pod) may be scheduled on: those its spec's
/// `nodeSelector` and required node affinity allow ([`super::placement`]), and, when one
/// of its Multus networks' NADs asks for a node resource (`k8s.v1.cni.cncf.io/resourceName`,
/// bridge-marker's `bridge.network.kubevirt.io/BRIDGE`), not the `bridgeless_nodes`:
/// virt-controller adds that resource to the launcher pod's requests (kubevirt
/// `pkg/virt-controller/services/template.go`, `getNetworkToResourceMap`), so the
/// scheduler keeps it off nodes without the bridge.
async fn schedulable_nodes(
    client: &Client,
    scenario: &Scenario,
    ns: &str,
    spec: &Value,
) -> Vec<String> {
    let mut needs_bridge = false;
    // Only bridgeless nodes make the NADs matter (and cost no requests otherwise).
    let networks = if scenario.bridgeless_nodes.is_empty() {
        None
    } else {
        spec.get("networks").and_then(Value::as_array)
    };
    for net in networks.into_iter().flatten() {
        let Some(multus) = net.pointer("/multus/networkName").and_then(Value::as_str) else {
            continue;
        };
        let (nad_ns, nad_name) = multus.split_once('/').unwrap_or((ns, multus));
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), nad_ns);
        if let Ok(Some(nad)) = api.get_opt(nad_name).await {
            needs_bridge |= nad
                .annotations()
                .get("k8s.v1.cni.cncf.io/resourceName")
                .is_some_and(|r| r.starts_with(crate::cluster::build::BRIDGE_RESOURCE));
        }
    }
    scenario
        .nodes
        .iter()
        .filter(|n| super::placement::allowed(spec, n))
        .filter(|n| !(needs_bridge && scenario.is_bridgeless(n)))
        .cloned()
        .collect()
}

/// The node a VMI lands on among `nodes`: by its name's hash, as before constraints
/// existed (the same VM lands on the same node).
fn node_for(scenario: &Scenario, name: &str, nodes: &[String]) -> Option<String> {
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    super::placement::pick(scenario.seed, name, &nodes).map(str::to_string)
}

async fn boot(
    client: Client,
    scenario: Arc<Scenario>,
    world: Arc<World>,
    clock: SimClock,
    vm: VirtualMachine,
) -> Result<(), kube::Error> {
    let ns = vm.namespace().unwrap_or_default();
    let name = vm.name_any();
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), &ns);
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), &ns);
    // The reflector can lag behind a VMI this controller just created: ask the API server
    // (inside the task, so the reconciler never waits), and never boot a VMI twice.
    if matches!(vmis.get_opt(&name).await, Ok(Some(_))) {
        return Ok(());
    }
    let pp = PatchParams::default();
    let tmeta = vm
        .spec
        .template
        .get("metadata")
        .cloned()
        .unwrap_or(json!({}));
    let vmi: VirtualMachineInstance = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": tmeta.get("labels").cloned().unwrap_or(json!({})),
            "annotations": tmeta.get("annotations").cloned().unwrap_or(json!({})),
            "ownerReferences": [{ "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": name,
                                  "uid": vm.uid().unwrap_or_default(), "controller": true }]
        },
        "spec": vm.spec.template.get("spec").cloned().unwrap_or(json!({}))
    }))
    .map_err(kube::Error::SerdeError)?;
    match vmis.create(&PostParams::default(), &vmi).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    let vm_status = |printable: &str, ready: bool| {
        Patch::Merge(
            json!({ "status": { "created": true, "ready": ready, "printableStatus": printable,
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] } }),
        )
    };
    vms.patch_status(&name, &pp, &vm_status("Starting", false))
        .await?;
    let step = scenario.boot_seconds / 4.0;
    let set = |v: Value| Patch::Merge(json!({ "status": v }));
    vmis.patch_status(&name, &pp, &set(json!({ "phase": "Pending" })))
        .await?;
    clock.sleep(step).await;
    vmis.patch_status(&name, &pp, &set(json!({ "phase": "Scheduling" })))
        .await?;
    // `boot-never`: no node fits; the VMI stays in Scheduling.
    if scenario
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::BootNever && f.vm == name)
    {
        return Ok(());
    }
    // No node fits the VM's node selector and affinity (or has its bridge): the
    // launcher pod stays Pending (Unschedulable), the VMI in Scheduling.
    let template_spec = vm.spec.template.get("spec").cloned().unwrap_or(json!({}));
    let allowed = schedulable_nodes(&client, &scenario, &ns, &template_spec).await;
    let Some(node) = node_for(&scenario, &name, &allowed) else {
        return Ok(());
    };
    clock.sleep(step).await;
    vmis.patch_status(
        &name,
        &pp,
        &set(json!({ "phase": "Scheduled", "nodeName": node })),
    )
    .await?;
    clock.sleep(step * 2.0).await;

    // Interfaces as the domain sees them (MACs), then as the guest agent reports them.
    let ifaces = vm
        .spec
        .template
        .pointer("/spec/domain/devices/interfaces")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let nets = vm
        .spec
        .template
        .pointer("/spec/networks")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    // The guest booting from the source VM's disks, as it really would: a Windows guest
    // without virtio drivers never gets past a virtio boot disk (INACCESSIBLE_BOOT_DEVICE;
    // the VMI still runs), a network config bound to an interface name finds no such
    // interface on KubeVirt's NIC, and only a guest with qemu-guest-agent reports.
    // A VM Forklift created with a guest virt-v2v converted has virtio drivers and a
    // network configuration bound to the NIC's MAC, whatever its source had (kubev2v/forklift
    // virt-v2v conversion; see `World::mark_converted`).
    let converted = world.converted_source(&ns, &name);
    let is_converted = converted.is_some();
    let source = converted.or_else(|| world.source_of(&name));
    let bus = vm
        .spec
        .template
        .pointer("/spec/domain/devices/disks/0/disk/bus")
        .and_then(|v| v.as_str())
        .unwrap_or("virtio")
        .to_string();
    let boots = is_converted
        || source.as_ref().is_none_or(|s| {
            s.spec.os != GuestOsKind::Windows || s.spec.has_virtio_drivers() || bus != "virtio"
        });
    let by_name = !is_converted
        && source
            .as_ref()
            .is_some_and(|s| s.spec.nic_config == NicConfig::ByName);
    let has_agent = source.as_ref().is_none_or(|s| s.spec.guest_agent);
    let mut domain = Vec::new();
    let mut agent = Vec::new();
    // What the booted guest brings up on the wire (agent or not): (IP, MAC, VLAN).
    let mut wire = Vec::new();
    // Each address and the network it is on (`NS/NAD`; `None` = the pod network), for
    // the network's policy enforcement.
    let mut ip_nets: Vec<(String, Option<String>)> = Vec::new();
    for (i, iface) in ifaces.iter().enumerate() {
        let iname = iface
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("default")
            .to_string();
        let mac = iface
            .get("macAddress")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("02:00:00:00:{:02x}:{:02x}", i, name.len() % 256));
        let net = nets
            .iter()
            .find(|n| n.get("name").and_then(|v| v.as_str()) == Some(iname.as_str()));
        let ip = if !boots || by_name {
            None
        } else if let Some(multus) = net
            .and_then(|n| n.pointer("/multus/networkName"))
            .and_then(|v| v.as_str())
        {
            let vlan = nad_vlan(&client, &ns, multus).await;
            let ip = world.guest_ip(&mac, vlan).map(|(_, ip)| ip);
            if let Some(ip) = &ip {
                let nad = if multus.contains('/') {
                    multus.to_string()
                } else {
                    format!("{ns}/{multus}")
                };
                ip_nets.push((ip.clone(), Some(nad)));
                wire.push(super::world::L2Address {
                    ip: ip.clone(),
                    mac: mac.to_ascii_lowercase(),
                    vlan,
                });
            }
            ip
        } else {
            // Pod network: an address from the sim's pod range (inside the sim only).
            let h = name
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            let ip = format!("10.244.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2);
            ip_nets.push((ip.clone(), None));
            Some(ip)
        };
        // The name the guest gives the NIC follows its model and PCI slot (not the
        // source's `ens192`).
        let guest_name = match iface.get("model").and_then(|v| v.as_str()) {
            Some("e1000e") => format!("ens{}", 3 + i),
            _ => format!("enp{}s0", i + 1),
        };
        domain.push(json!({ "name": iname, "mac": mac, "infoSource": "domain" }));
        let mut a = json!({ "name": iname, "mac": mac, "interfaceName": guest_name, "infoSource": "domain, guest-agent" });
        if let Some(ip) = ip {
            a["ipAddress"] = json!(ip);
            a["ipAddresses"] = json!([ip]);
        }
        agent.push(a);
    }
    let vmi_spec = vm.spec.template.get("spec").cloned().unwrap_or(json!({}));
    // The guest's disks are the DataVolumes its volumes name, in order: virt-launcher
    // turns each PVC or DataVolume volume into the domain disk backed by that claim
    // (kubevirt `pkg/virt-launcher/virtwrap/converter/storage/volume.go`). What it booted
    // from is what it holds.
    world.booted_from(
        &name,
        boot_disks(&vm.spec.template)
            .into_iter()
            .map(|dv| format!("{ns}/{dv}"))
            .collect(),
    );
    let volumes = volume_status(&client, &ns, &vmi_spec).await;
    let annotations = tmeta.get("annotations").cloned().unwrap_or(json!({}));
    let (live, method) = live_migratable(&vmi_spec, &annotations, &volumes);
    vmis.patch_status(
        &name,
        &pp,
        &set(json!({
            "phase": "Running", "nodeName": node, "interfaces": domain,
            "volumeStatus": volumes, "migrationMethod": method,
            "conditions": [
                { "type": "Ready", "status": "True", "lastTransitionTime": now() },
                live,
            ]
        })),
    )
    .await?;
    vms.patch_status(&name, &pp, &vm_status("Running", true))
        .await?;
    if !boots {
        return Ok(());
    }
    let agent_never = !has_agent
        || scenario
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::AgentNever && f.vm == name);
    // The guest boots (and, with an agent, connects) in `agent_seconds`.
    clock.sleep(scenario.agent_seconds).await;
    // Still running? (stopped or deleted meanwhile → nothing to report)
    match vmis.get(&name).await {
        Ok(v) if v.status.as_ref().and_then(|s| s.phase.as_ref()) == Some(&VmiPhase::Running) => {}
        _ => return Ok(()),
    }
    // The network learns the guest's IPs as the agent reports them (before the status is
    // visible, so no one who saw the report can probe a network that has not).
    let ips: Vec<String> = agent
        .iter()
        .filter_map(|a| {
            a.get("ipAddress")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .collect();
    // The virt-launcher pod's labels: the VMI's (the VM template's) plus those
    // virt-controller adds (kubevirt pkg/virt-controller/services/template.go: `kubevirt.io:
    // virt-launcher`; `vm.kubevirt.io/name` from the VM controller).
    let mut pod_labels: std::collections::BTreeMap<String, String> = tmeta
        .get("labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    pod_labels.insert("kubevirt.io".into(), "virt-launcher".into());
    pod_labels.insert("vm.kubevirt.io/name".into(), name.clone());
    world.policy.set_pod(
        &format!("{ns}/{name}"),
        Some(super::policy::PodTarget {
            namespace: ns.clone(),
            labels: pod_labels,
            addresses: ip_nets,
        }),
    );
    world.set_vmi_ips(&format!("{ns}/{name}"), &name, &ips);
    world.set_vmi_l2(&format!("{ns}/{name}"), wire);
    if agent_never {
        return Ok(());
    }
    vmis.patch_status(
        &name,
        &pp,
        &set(json!({
            "interfaces": agent,
            "conditions": [
                { "type": "Ready", "status": "True" },
                live,
                { "type": "AgentConnected", "status": "True", "lastTransitionTime": now() },
            ]
        })),
    )
    .await?;
    Ok(())
}

/// Runs live migrations.
pub async fn run_migrations(
    client: Client,
    scenario: Arc<Scenario>,
    clock: SimClock,
    stores: Stores,
) {
    let api: Api<VirtualMachineInstanceMigration> = Api::all(client.clone());
    let mut seen: HashSet<String> = HashSet::new();
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(item) = stream.next().await {
        let Ok(m) = item else { continue };
        // A migration with any phase is already being handled (an empty phase is none).
        if m.status
            .as_ref()
            .and_then(|s| s.phase.as_ref())
            .is_some_and(|p| !p.as_str().is_empty())
        {
            continue;
        }
        let uid = m.uid().unwrap_or_else(|| m.name_any());
        if !seen.insert(uid) {
            continue;
        }
        let (client, scenario, stores) = (client.clone(), scenario.clone(), stores.clone());
        tokio::spawn(async move {
            if let Err(e) = migrate(client, scenario, clock, stores, m).await {
                tracing::debug!(error = %e, "sim migration ended");
            }
        });
    }
}

async fn migrate(
    client: Client,
    scenario: Arc<Scenario>,
    clock: SimClock,
    stores: Stores,
    m: VirtualMachineInstanceMigration,
) -> Result<(), kube::Error> {
    let ns = m.namespace().unwrap_or_default();
    let name = m.name_any();
    let vmi_name = m.spec.vmi_name.clone();
    let migs: Api<VirtualMachineInstanceMigration> = Api::namespaced(client.clone(), &ns);
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), &ns);
    let pp = PatchParams::default();
    migs.patch(
        &name,
        &pp,
        &Patch::Merge(json!({ "metadata": { "labels": { "kubevirt.io/vmi-name": vmi_name } } })),
    )
    .await?;
    let set = |v: Value| Patch::Merge(json!({ "status": v }));
    let vmi = stores.vmis.get(&ObjectRef::new(&vmi_name).within(&ns));
    let source = vmi
        .as_ref()
        .and_then(|v| v.status.as_ref())
        .filter(|s| s.phase.as_ref() == Some(&VmiPhase::Running))
        .and_then(|s| s.node_name.clone());
    let Some(source) = source else {
        migs.patch_status(&name, &pp, &set(json!({ "phase": "Failed",
            "migrationState": { "failed": true, "failureReason": format!("VMI {vmi_name} is not running") } }))).await?;
        return Ok(());
    };
    // The target pod: the VMI's constraints, another node than the source.
    let vmi_spec = vmi
        .as_ref()
        .and_then(|v| serde_json::to_value(&v.spec).ok())
        .unwrap_or(json!({}));
    let target = schedulable_nodes(&client, &scenario, &ns, &vmi_spec)
        .await
        .into_iter()
        .find(|n| *n != source);
    let Some(target) = target else {
        return unschedulable_target(&migs, &vmis, &name, &vmi_name, &source, &m, clock).await;
    };
    let uid = m.uid().unwrap_or_default();
    let started = now();
    let state = |completed: bool, failed: bool, end: Option<String>, reason: Option<&str>| {
        let mut s = json!({ "sourceNode": source, "targetNode": target, "startTimestamp": started,
                            "migrationUid": uid, "mode": "PreCopy", "completed": completed, "failed": failed });
        if let Some(e) = end {
            s["endTimestamp"] = json!(e);
        }
        if let Some(r) = reason {
            s["failureReason"] = json!(r);
        }
        s
    };
    let step = scenario.migration_seconds / 6.0;
    for phase in [
        "Pending",
        "Scheduling",
        "Scheduled",
        "PreparingTarget",
        "TargetReady",
        "Running",
    ] {
        migs.patch_status(
            &name,
            &pp,
            &set(json!({ "phase": phase, "migrationState": state(false, false, None, None) })),
        )
        .await?;
        if phase == "Scheduling" {
            vmis.patch_status(
                &vmi_name,
                &pp,
                &set(json!({ "migrationState": state(false, false, None, None) })),
            )
            .await?;
        }
        clock.sleep(step).await;
    }
    let fail = scenario
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::MigrationFailure && f.vm == vmi_name);
    if fail {
        let st = state(
            false,
            true,
            Some(now()),
            Some("simulated migration failure: target domain did not start"),
        );
        vmis.patch_status(&vmi_name, &pp, &set(json!({ "migrationState": st })))
            .await?;
        migs.patch_status(
            &name,
            &pp,
            &set(json!({ "phase": "Failed", "migrationState": st })),
        )
        .await?;
        return Ok(());
    }
    let st = state(true, false, Some(now()), None);
    vmis.patch_status(
        &vmi_name,
        &pp,
        &set(json!({ "nodeName": target, "migrationState": st })),
    )
    .await?;
    migs.patch_status(
        &name,
        &pp,
        &set(json!({ "phase": "Succeeded", "migrationState": st })),
    )
    .await?;
    Ok(())
}

/// `defaultUnschedulablePendingTimeoutSeconds` (kubevirt
/// `pkg/virt-controller/watch/migration/migration.go`): how long a migration's target pod
/// may stay Pending and Unschedulable before virt-controller deletes it.
const UNSCHEDULABLE_PENDING_TIMEOUT_SECONDS: f64 = 300.0;

/// A migration whose target pod fits no node (migration.go `handlePendingPodTimeout`,
/// `deleteTimedOutTargetPod`): it waits in `Scheduling` while the target pod is
/// unschedulable, then the pod is deleted and the migration fails with "Target pod is
/// down".
async fn unschedulable_target(
    migs: &Api<VirtualMachineInstanceMigration>,
    vmis: &Api<VirtualMachineInstance>,
    name: &str,
    vmi_name: &str,
    source: &str,
    m: &VirtualMachineInstanceMigration,
    clock: SimClock,
) -> Result<(), kube::Error> {
    let pp = PatchParams::default();
    let set = |v: Value| Patch::Merge(json!({ "status": v }));
    let uid = m.uid().unwrap_or_default();
    let started = now();
    let state = |end: Option<String>| {
        let mut s = json!({ "sourceNode": source, "startTimestamp": started,
                            "migrationUid": uid, "mode": "PreCopy",
                            "completed": false, "failed": end.is_some() });
        if let Some(e) = end {
            s["endTimestamp"] = json!(e);
            s["failureReason"] = json!("Target pod is down");
        }
        s
    };
    for phase in ["Pending", "Scheduling"] {
        migs.patch_status(name, &pp, &set(json!({ "phase": phase })))
            .await?;
    }
    clock.sleep(UNSCHEDULABLE_PENDING_TIMEOUT_SECONDS).await;
    let st = state(Some(now()));
    vmis.patch_status(vmi_name, &pp, &set(json!({ "migrationState": st })))
        .await?;
    migs.patch_status(
        name,
        &pp,
        &set(json!({ "phase": "Failed", "migrationState": st })),
    )
    .await?;
    Ok(())
}
