//! Pure builders: plan → the Kubernetes objects wavelift creates. No I/O; the engine applies
//! what these return. Golden tests in `tests/plan/cluster_golden.rs` pin the produced YAML.
//!
//! Choices worth knowing:
//! - DataVolumes are standalone objects, not `dataVolumeTemplates`: disks import while the
//!   source VM still runs, and the VirtualMachine is created only at cutover.
//! - DataVolumes carry `cdi.kubevirt.io/storage.bind.immediate.requested` so that imports
//!   start on WaitForFirstConsumer storage before any VM consumes the PVC.
//! - L2 VMs get one `bridge: {}` interface per NIC on a multus network (the NAD of the
//!   plan network) with the original `macAddress`, and **no pod network**: the guest keeps
//!   its static IP and nothing blocks live migration. L3 VMs get the pod network with
//!   `masquerade: {}` (live-migratable) and keep their MAC (licences bound to a MAC keep
//!   working).
//! - NetworkAttachmentDefinitions carry only fields the named CNI plugin reads (see
//!   [`cni_config`]). There is no Calico provider: Calico's CNI has no VLAN field.
//! - VMs are built with `runStrategy: Halted` (the preflight's server-side dry run, the
//!   golden files); the engine creates them running only after the cutover guard held, and
//!   starts one found created but halted (a resumed run) with the KubeVirt `start`
//!   subresource after the guard, so creating the object never boots a guest early.

use super::labels;
use super::resources::*;
use crate::plan::{
    Disk, Firmware, Network, NetworkModel, NicModel, Plan, Provider, SourceKind, Vm,
};
use kube::api::ObjectMeta;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const SOURCE_ID: &str = "wavelift.io/source-id";

fn meta(name: &str, namespace: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        ..Default::default()
    }
}

/// The CNI configuration of a plan network.
///
/// - `bridge` (containernetworking/plugins `plugins/main/bridge/bridge.go`): `vlan` makes
///   the VM's port an untagged member of that VLAN (its PVID) and turns on VLAN filtering.
///   `"preserveDefaultVlan": false` removes the port from the bridge's default VLAN 1
///   first (`removeDefaultVlan`), so untagged traffic on the bridge never reaches the VM.
///   The field appeared in plugins v1.3.0 defaulting to `true` (the port kept VLAN 1) and
///   defaults to `false` from v1.8.0; writing it makes every version isolate. `"ipam": {}`:
///   no address from the CNI, the guest keeps its static IP.
/// - `ovn-localnet` (ovn-kubernetes `go-controller/pkg/cni/types/types.go`,
///   `docs/features/multiple-networks/multi-homing.md`): `vlanID` tags the localnet port.
///   `physicalNetworkName` (set from the plan's `physical_network`) names the
///   `ovn-bridge-mappings` entry to use; ovn-kubernetes reads it from v1.1.0 on (commit
///   2643dabe, "localnet alias"; v1.0.0 ignores it). Without it the localnet maps by the
///   network `name`, on every version, so it is written only when the plan sets it.
pub fn cni_config(plan: &Plan, net: &Network) -> Value {
    let name = net.name.as_str();
    let mut cfg = match net.provider.value {
        Provider::Bridge => json!({
            "cniVersion": "0.3.1",
            "name": name,
            "type": "bridge",
            "bridge": net.bridge.as_ref().map(|b| b.as_str()).unwrap_or("br-trunk"),
            "preserveDefaultVlan": false,
            "ipam": {},
            "macspoofchk": true,
        }),
        Provider::OvnLocalnet => {
            let mut c = json!({
                "cniVersion": "0.3.1",
                "name": name,
                "type": "ovn-k8s-cni-overlay",
                "topology": "localnet",
                "netAttachDefName": format!("{}/{}", plan.meta.namespace.as_str(), name),
            });
            if let Some(p) = &net.physical_network {
                c["physicalNetworkName"] = json!(p.as_str());
            }
            c
        }
    };
    if let (Some(vlan), Some(obj)) = (&net.vlan, cfg.as_object_mut()) {
        let key = match net.provider.value {
            Provider::OvnLocalnet => "vlanID",
            Provider::Bridge => "vlan",
        };
        obj.insert(key.to_string(), json!(vlan.value));
    }
    if let (Some(mtu), Some(obj)) = (net.mtu, cfg.as_object_mut()) {
        obj.insert("mtu".to_string(), json!(mtu));
    }
    cfg
}

/// The prefix of the node resource bridge-marker advertises for each host bridge
/// (kubevirt/bridge-marker `pkg/marker/marker.go`); a NAD requests it through
/// `k8s.v1.cni.cncf.io/resourceName`.
pub const BRIDGE_RESOURCE: &str = "bridge.network.kubevirt.io/";

/// NetworkAttachmentDefinition for a plan network (shared by the plan's VMs).
pub fn network_attachment(plan: &Plan, net: &Network) -> NetworkAttachmentDefinition {
    let mut m = meta(
        net.name.as_str(),
        plan.meta.namespace.as_str(),
        labels::for_plan(plan.meta.name.as_str()),
    );
    let mut ann = BTreeMap::new();
    match net.provider.value {
        Provider::Bridge if net.bridge_marker => {
            if let Some(b) = &net.bridge {
                ann.insert(
                    "k8s.v1.cni.cncf.io/resourceName".to_string(),
                    format!("{BRIDGE_RESOURCE}{}", b.as_str()),
                );
            }
        }
        Provider::Bridge | Provider::OvnLocalnet => {}
    }
    if let Some(owner) = &net.owner {
        ann.insert("wavelift.io/owner".to_string(), owner.clone());
    }
    if !ann.is_empty() {
        m.annotations = Some(ann);
    }
    NetworkAttachmentDefinition {
        metadata: m,
        spec: NetworkAttachmentDefinitionSpec {
            config: cni_config(plan, net).to_string(),
        },
    }
}

/// The probe attachment of a network with a `probe_ip` (issue 14): the VM's NAD has
/// `"ipam": {}` and a pod cannot give itself an address without `NET_ADMIN`, so probes
/// that need one (icmp, tcp) use this second NAD, `<network>-probe`, on the same bridge or
/// localnet and VLAN, from which the probe pod requests `probe_ip` through `ips` in its
/// networks annotation. Bridge: the `static` IPAM plugin with the `ips` capability
/// (containernetworking/plugins `plugins/ipam/static/main.go`: runtime config `ips`, which
/// Multus passes only to a config declaring `"capabilities": {"ips": true}`). OVN localnet:
/// `subnets` (the network's CIDR), from which ovn-kubernetes honours an `ips` request
/// (`docs/features/multiple-networks/multi-homing.md`, "static IP addresses").
pub fn probe_network_attachment(plan: &Plan, net: &Network) -> Option<NetworkAttachmentDefinition> {
    net.probe_ip.as_ref()?;
    let mut nad = network_attachment(plan, net);
    let name = probe_network_name(net.name.as_str());
    nad.metadata.name = Some(name.clone());
    let mut cfg = cni_config(plan, net);
    cfg["name"] = json!(name);
    match net.provider.value {
        Provider::Bridge => {
            cfg["ipam"] = json!({ "type": "static" });
            cfg["capabilities"] = json!({ "ips": true });
        }
        Provider::OvnLocalnet => {
            cfg["netAttachDefName"] = json!(format!("{}/{name}", plan.meta.namespace.as_str()));
            if let Some(c) = &net.cidr {
                cfg["subnets"] = json!(c.value.to_string());
            }
        }
    }
    nad.spec.config = cfg.to_string();
    Some(nad)
}

/// Every NetworkAttachmentDefinition wavelift owns for a network: its own and, when the
/// plan checks from the cluster and the network has a `probe_ip`, the probe attachment.
pub fn network_attachments_of(plan: &Plan, net: &Network) -> Vec<NetworkAttachmentDefinition> {
    let mut v = vec![network_attachment(plan, net)];
    if plan.meta.checks_from.value == crate::plan::ChecksFrom::Cluster {
        v.extend(probe_network_attachment(plan, net));
    }
    v
}

/// The probe attachment's name for network `net`.
pub fn probe_network_name(net: &str) -> String {
    format!("{net}-probe")
}

/// Keeps a VM off `nodes` (where the per-node L2 proof found its VLAN missing): a required
/// node affinity `kubernetes.io/hostname NotIn [...]` on its template. Nodes are never
/// labelled; the affinity travels with the VM, through reschedules and live migrations.
pub fn avoid_nodes(vm: &mut VirtualMachine, nodes: &[String]) {
    if nodes.is_empty() {
        return;
    }
    vm.spec.template["spec"]["affinity"] = json!({
        "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{ "matchExpressions": [{
                "key": "kubernetes.io/hostname", "operator": "NotIn", "values": nodes,
            }] }]
        } }
    });
}

fn storage(plan: &Plan, disk: &Disk) -> Value {
    let mut s = serde_json::Map::new();
    if let Some(am) = &plan.defaults.access_mode {
        s.insert("accessModes".into(), json!([am.as_str()]));
    }
    if let Some(vm) = &plan.defaults.volume_mode {
        s.insert("volumeMode".into(), json!(vm.as_str()));
    }
    if let Some(sc) = disk
        .storage_class
        .as_ref()
        .or(plan.defaults.storage_class.as_ref())
    {
        s.insert("storageClassName".into(), json!(sc.as_str()));
    }
    s.insert(
        "resources".into(),
        json!({ "requests": { "storage": disk.size.text } }),
    );
    Value::Object(s)
}

fn disk_source(plan: &Plan, vm: &Vm, disk: &Disk) -> Value {
    match plan.source.kind {
        SourceKind::Vsphere => {
            let mut v = serde_json::Map::new();
            let src = &plan.source;
            let mut put = |k: &str, val: Option<&str>| {
                if let Some(val) = val {
                    v.insert(k.to_string(), json!(val));
                }
            };
            put("url", src.url.as_ref().map(|u| u.as_str()));
            put("uuid", vm.source_id.as_ref().map(|u| u.as_str()));
            put(
                "backingFile",
                disk.backing_file.as_ref().map(|b| b.as_str()),
            );
            put("thumbprint", src.thumbprint.as_ref().map(|t| t.as_str()));
            put(
                "secretRef",
                src.credentials_secret.as_ref().map(|s| s.as_str()),
            );
            put(
                "initImageURL",
                src.vddk_init_image.as_ref().map(|i| i.as_str()),
            );
            json!({ "vddk": v })
        }
        SourceKind::Http => {
            json!({ "http": { "url": disk.url.as_ref().map(|u| u.as_str()).unwrap_or_default() } })
        }
    }
}

/// The DataVolume importing disk `index` of a VM.
pub fn data_volume(plan: &Plan, vm: &Vm, index: usize) -> Option<DataVolume> {
    let disk = vm.disks.get(index)?;
    let name = labels::data_volume_name(vm.name.as_str(), index);
    let mut m = meta(
        &name,
        plan.meta.namespace.as_str(),
        labels::for_vm(plan.meta.name.as_str(), vm.wave.as_str(), vm.name.as_str()),
    );
    // Bind at once even on WaitForFirstConsumer storage: the disk is imported before any
    // VM consumes it (CDI `doc/waitforfirstconsumer-storage-handling.md`).
    let mut annotations = BTreeMap::from([(
        "cdi.kubevirt.io/storage.bind.immediate.requested".to_string(),
        "true".to_string(),
    )]);
    if plan.source.kind == SourceKind::Vsphere {
        // No volume populator: with one (CDI's default on CSI StorageClasses) the importer's
        // restarts and conditions live on a hidden `prime-*` PVC and the DataVolume shows
        // little; multi-stage imports keep their checkpoint annotations there too.
        annotations.insert(
            "cdi.kubevirt.io/storage.usePopulator".to_string(),
            "false".to_string(),
        );
    }
    m.annotations = Some(annotations);
    Some(DataVolume {
        metadata: m,
        spec: DataVolumeSpec {
            source: disk_source(plan, vm, disk),
            storage: storage(plan, disk),
            checkpoints: Vec::new(),
            final_checkpoint: None,
        },
        status: None,
    })
}

/// All DataVolumes of a VM, in disk order.
pub fn data_volumes(plan: &Plan, vm: &Vm) -> Vec<DataVolume> {
    (0..vm.disks.len())
        .filter_map(|i| data_volume(plan, vm, i))
        .collect()
}

/// Name of the VM interface/network for NIC `index` (KubeVirt network names are per VM).
fn nic_name(vm: &Vm, index: usize) -> String {
    let nic = &vm.nics[index];
    let dup = vm
        .nics
        .iter()
        .filter(|n| n.network.value == nic.network.value)
        .count()
        > 1;
    if dup {
        format!("{}-{index}", nic.network.as_str())
    } else {
        nic.network.as_str().to_string()
    }
}

/// The KubeVirt VirtualMachine for a planned VM (created `Halted`; started at cutover).
pub fn virtual_machine(plan: &Plan, vm: &Vm) -> VirtualMachine {
    let name = vm.name.as_str();
    let labels = labels::for_vm(plan.meta.name.as_str(), vm.wave.as_str(), name);
    let mut m = meta(name, plan.meta.namespace.as_str(), labels.clone());
    if let Some(id) = &vm.source_id {
        m.annotations = Some(BTreeMap::from([(SOURCE_ID.to_string(), id.value.clone())]));
    }
    let mut interfaces = Vec::new();
    let mut networks = Vec::new();
    match plan.model_of(vm) {
        NetworkModel::L2 => {
            for (i, nic) in vm.nics.iter().enumerate() {
                let iface = nic_name(vm, i);
                let model = nic.model.as_ref().map_or(NicModel::Virtio, |m| m.value);
                interfaces.push(json!({
                    "name": iface,
                    "bridge": {},
                    "macAddress": nic.mac.value.to_string(),
                    "model": model.as_str(),
                }));
                networks.push(
                    json!({ "name": iface, "multus": { "networkName": nic.network.as_str() } }),
                );
            }
        }
        NetworkModel::L3 => {
            let mut entry = json!({ "name": "default", "masquerade": {} });
            if let (Some(nic), Some(o)) = (vm.nics.first(), entry.as_object_mut()) {
                o.insert("macAddress".into(), json!(nic.mac.value.to_string()));
            }
            interfaces.push(entry);
            networks.push(json!({ "name": "default", "pod": {} }));
        }
    }
    let guest = plan.guest_of(vm);
    let disks: Vec<Value> = (0..vm.disks.len())
        .map(|i| json!({ "name": format!("disk{i}"), "disk": { "bus": guest.disk_bus.as_str() } }))
        .collect();
    // The source's firmware (KubeVirt `Firmware.Bootloader`; Secure Boot needs SMM:
    // kubevirt `staging/src/kubevirt.io/api/core/v1/schema.go`, `EFI.SecureBoot`).
    let (bootloader, features) = match guest.firmware {
        Firmware::Bios => (json!({ "bios": {} }), None),
        Firmware::Efi => (json!({ "efi": { "secureBoot": false } }), None),
        Firmware::EfiSecure => (
            json!({ "efi": { "secureBoot": true } }),
            Some(json!({ "smm": { "enabled": true } })),
        ),
    };
    let volumes: Vec<Value> = (0..vm.disks.len())
        .map(|i| {
            json!({ "name": format!("disk{i}"), "dataVolume": { "name": labels::data_volume_name(name, i) } })
        })
        .collect();
    let tmeta = json!({ "labels": labels });
    let mut template = json!({
        "metadata": tmeta,
        "spec": {
            "domain": {
                "cpu": { "cores": vm.cpu },
                "memory": { "guest": vm.memory.text },
                "resources": { "requests": { "memory": vm.memory.text } },
                "devices": { "disks": disks, "interfaces": interfaces },
                "firmware": { "bootloader": bootloader },
            },
            "networks": networks,
            "volumes": volumes,
        }
    });
    if let Some(f) = features {
        template["spec"]["domain"]["features"] = f;
    }
    VirtualMachine {
        metadata: m,
        spec: VirtualMachineSpec {
            run_strategy: Some("Halted".to_string()),
            running: None,
            template,
            data_volume_templates: Vec::new(),
        },
        status: None,
    }
}

/// A live migration of a VM's running instance (`generateName`: a VM may migrate many times).
pub fn migration(plan: &Plan, vm: &Vm) -> VirtualMachineInstanceMigration {
    let mut m = meta(
        "",
        plan.meta.namespace.as_str(),
        labels::for_vm(plan.meta.name.as_str(), vm.wave.as_str(), vm.name.as_str()),
    );
    m.name = None;
    m.generate_name = Some(format!("{}-migration-", vm.name.as_str()));
    VirtualMachineInstanceMigration {
        metadata: m,
        spec: VirtualMachineInstanceMigrationSpec {
            vmi_name: vm.name.value.clone(),
            added_node_selector: None,
        },
        status: None,
    }
}
