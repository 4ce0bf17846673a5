//! Pure builders for the Forklift backend (`[plan] backend = "forklift"`): plan → the
//! `forklift.konveyor.io/v1beta1` objects wavelift server-side-applies. No I/O; golden tests
//! in `tests/plan/forklift_golden.rs` pin the YAML against Forklift's field names
//! (kubev2v/forklift `pkg/apis/forklift/v1beta1/{provider,mapping,plan,migration}.go`,
//! `plan/vm.go`).
//!
//! Choices worth knowing:
//! - **The source Provider's Secret** carries `user`, `password`, and vCenter's certificate
//!   under both `ca.crt` and `cacert`. Forklift never reads a `thumbprint` key (it computes
//!   the fingerprint itself from the certificate), and which CA key it reads depends on the
//!   release (kubev2v/forklift `pkg/lib/util/util.go`, `pkg/controller/provider/
//!   validation.go`): v2.10.x and v2.11.x read only `cacert` (v2.11 refuses a Secret
//!   without it, v2.10 trusts whatever vCenter presents), v2.12.0 on read `ca.crt` and fall
//!   back to `cacert`. wavelift supports 2.10.4 on (`targetPowerState`), so it writes both.
//!   wavelift fetches the certificate over a connection pinned by the plan's `thumbprint`
//!   ([`SourceConn`]); it never writes `insecureSkipVerify`.
//! - **Plans** are grouped by wave, by `after` depth inside the wave, by network model (a
//!   Plan has one `preserveStaticIPs`: true for L2), by migration type, by the VM's own
//!   cutover time, and chunked at `min(max_parallel_cutovers, forklift_plan_size)`: one
//!   Migration cuts all its VMs over at once, so a Plan is one cutover batch.
//! - `targetLabels` is one map per Plan: it carries wavelift's plan and wave labels and the
//!   Forklift Plan's name ([`FORKLIFT_PLAN`]); the VM is found by its `targetName` (the
//!   wavelift VM name), and wavelift adds its `wavelift.io/vm` label when it takes the VM
//!   over after Forklift created it.
//! - `targetPowerState: off`: Forklift creates the VM halted; wavelift boots it after its
//!   duplicate-IP guard.
//! - L3 VMs' networks map to the pod network in a second NetworkMap (`<plan>-l3`); L2
//!   networks map to their NetworkAttachmentDefinition (`type: multus`) in `<plan>-l2`.

use super::labels;
use crate::plan::{Migration, NetworkModel, Plan, Vm};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

pub use super::forklift_types::API_VERSION;

/// Label on Forklift Plans and Migrations, and in every Plan's `targetLabels`: the Forklift
/// Plan's name.
pub const FORKLIFT_PLAN: &str = "wavelift.io/forklift-plan";

/// How Forklift reaches vCenter: the SDK endpoint and the certificate it must trust.
#[derive(Debug, Clone)]
pub struct SourceConn {
    /// `https://vcenter.example.internal/sdk`.
    pub url: String,
    /// vCenter's certificate (PEM), fetched over a connection pinned by the plan's
    /// thumbprint, written as the Secret's `ca.crt` and `cacert`.
    pub ca_pem: String,
}

impl SourceConn {
    /// The SDK endpoint of a vCenter URL: `https://vc` → `https://vc/sdk`.
    pub fn sdk_url(url: &str) -> String {
        let base = url.trim_end_matches('/');
        if base.ends_with("/sdk") {
            base.to_string()
        } else {
            format!("{base}/sdk")
        }
    }
}

/// PEM of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn ns(plan: &Plan) -> &str {
    plan.meta.namespace.as_str()
}

fn plan_labels(plan: &Plan) -> BTreeMap<String, String> {
    labels::for_plan(plan.meta.name.as_str())
}

fn wave_labels(plan: &Plan, wave: &str, forklift_plan: &str) -> BTreeMap<String, String> {
    let mut l = plan_labels(plan);
    l.insert(labels::WAVE.into(), wave.into());
    l.insert(FORKLIFT_PLAN.into(), forklift_plan.into());
    l
}

fn object(kind: &str, name: &str, namespace: &str, labels: BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
    })
}

/// Names of a kubernetes-name-length-safe object: `base` as is when it fits in 63 characters
/// (a Plan's name becomes Forklift's `plan-name` label value), else cut and made unique by
/// a hash of the whole.
fn fit63(base: &str) -> String {
    if base.len() <= 63 {
        return base.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in base.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let head: String = base.chars().take(54).collect();
    format!("{}-{:08x}", head.trim_end_matches('-'), h as u32)
}

/// The source Provider wavelift writes (unless `forklift_provider` names one).
pub fn source_provider_name(plan: &Plan) -> String {
    match &plan.meta.forklift_provider {
        Some(p) => p.value.clone(),
        None => fit63(&format!("{}-vsphere", plan.meta.name.as_str())),
    }
}

/// The destination (local cluster) Provider.
pub fn host_provider_name(plan: &Plan) -> String {
    fit63(&format!("{}-host", plan.meta.name.as_str()))
}

pub fn network_map_name(plan: &Plan, model: NetworkModel) -> String {
    fit63(&format!("{}-{}", plan.meta.name.as_str(), model.as_str()))
}

pub fn storage_map_name(plan: &Plan) -> String {
    fit63(&format!("{}-storage", plan.meta.name.as_str()))
}

/// The Secret of the source Provider wavelift writes: `user`, `password`, and the CA as
/// `ca.crt` (what Forklift 2.12.0 on reads) and `cacert` (what 2.10.x and 2.11.x read; see
/// the module doc) (`stringData`; the API server stores it as `data`).
pub fn provider_secret(plan: &Plan, user: &str, password: &str, conn: &SourceConn) -> Value {
    let mut l = plan_labels(plan);
    // What Forklift's UI puts on the Secrets it creates for a Provider.
    l.insert("createdForProviderType".into(), "vsphere".into());
    l.insert("createdForResourceType".into(), "providers".into());
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": source_provider_name(plan), "namespace": ns(plan), "labels": l },
        "type": "Opaque",
        "stringData": {
            "user": user, "password": password, "ca.crt": conn.ca_pem, "cacert": conn.ca_pem,
        },
    })
}

/// The vSphere source Provider (`ProviderSpec`: `type`, `url`, `secret`, `settings`).
pub fn source_provider(plan: &Plan, conn: &SourceConn) -> Value {
    let name = source_provider_name(plan);
    let mut o = object("Provider", &name, ns(plan), plan_labels(plan));
    let mut spec = json!({
        "type": "vsphere",
        "url": conn.url,
        "secret": { "name": name, "namespace": ns(plan) },
        "settings": { "sdkEndpoint": "vcenter" },
    });
    if let Some(img) = &plan.source.vddk_init_image {
        spec["settings"]["vddkInitImage"] = json!(img.as_str());
    }
    o["spec"] = spec;
    o
}

/// The destination Provider: `type: openshift`, empty `url` = the cluster Forklift runs in,
/// and an empty `secret` reference: the CRD requires `secret` (`required: [secret, type]` in
/// kubev2v/forklift operator/config/crd/bases/forklift.konveyor.io_providers.yaml, v2.10.4
/// to v2.12.5), and Forklift's own host Provider carries `secret: {}`
/// (operator/roles/forkliftcontroller/templates/controller/provider-host.yml.j2); the
/// controller reads no Secret for it (`validateSecret` returns early on `IsHost()`).
pub fn destination_provider(plan: &Plan) -> Value {
    let mut o = object(
        "Provider",
        &host_provider_name(plan),
        ns(plan),
        plan_labels(plan),
    );
    o["spec"] = json!({ "type": "openshift", "url": "", "secret": {} });
    o
}

fn provider_pair(plan: &Plan) -> Value {
    json!({
        "source": { "name": source_provider_name(plan), "namespace": ns(plan) },
        "destination": { "name": host_provider_name(plan), "namespace": ns(plan) },
    })
}

/// A vSphere inventory reference (`ref.Ref`): by `id` for a managed object id
/// (`network-12`, `dvportgroup-34`, `datastore-5`), else by `name`.
pub fn source_ref(text: &str) -> Value {
    let is_moref = text.split_once('-').is_some_and(|(kind, n)| {
        matches!(kind, "network" | "dvportgroup" | "datastore")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    if is_moref {
        json!({ "id": text })
    } else {
        json!({ "name": text })
    }
}

/// The NetworkMaps: L2 networks → their NAD (`multus`), L3 VMs' networks → the pod network.
/// Only networks some VM of that model uses; no map for a model without VMs.
pub fn network_maps(plan: &Plan) -> Vec<Value> {
    let mut out = Vec::new();
    for model in [NetworkModel::L2, NetworkModel::L3] {
        let mut entries = Vec::new();
        for net in &plan.networks {
            let used = plan.vms.iter().any(|vm| {
                plan.model_of(vm) == model && vm.nics.iter().any(|n| *n.network == *net.name)
            });
            if !used {
                continue;
            }
            let source = source_ref(
                net.source_network
                    .as_ref()
                    .map_or(net.name.as_str(), |s| s.as_str()),
            );
            let destination = match model {
                NetworkModel::L2 => json!({
                    "type": "multus", "name": net.name.as_str(), "namespace": ns(plan),
                }),
                NetworkModel::L3 => json!({ "type": "pod" }),
            };
            entries.push(json!({ "source": source, "destination": destination }));
        }
        if entries.is_empty() {
            continue;
        }
        let mut o = object(
            "NetworkMap",
            &network_map_name(plan, model),
            ns(plan),
            plan_labels(plan),
        );
        o["spec"] = json!({ "provider": provider_pair(plan), "map": entries });
        out.push(o);
    }
    out
}

/// The StorageMap: each datastore (the `[ds]` of a disk's `backing_file`) → the StorageClass
/// its disks ask for (`plan check` refuses two classes on one datastore), with
/// `[defaults] access_mode` / `volume_mode`.
pub fn storage_map(plan: &Plan) -> Value {
    let default_sc = plan.defaults.storage_class.as_ref().map(|s| s.as_str());
    let mut seen: Vec<&str> = Vec::new();
    let mut entries = Vec::new();
    for vm in &plan.vms {
        for d in &vm.disks {
            let Some(ds) = d.datastore() else { continue };
            if seen.contains(&ds) {
                continue;
            }
            seen.push(ds);
            let mut dest = serde_json::Map::new();
            if let Some(sc) = d.storage_class.as_ref().map(|s| s.as_str()).or(default_sc) {
                dest.insert("storageClass".into(), json!(sc));
            }
            if let Some(a) = &plan.defaults.access_mode {
                dest.insert("accessMode".into(), json!(a.as_str()));
            }
            if let Some(v) = &plan.defaults.volume_mode {
                dest.insert("volumeMode".into(), json!(v.as_str()));
            }
            entries.push(json!({ "source": source_ref(ds), "destination": dest }));
        }
    }
    let mut o = object(
        "StorageMap",
        &storage_map_name(plan),
        ns(plan),
        plan_labels(plan),
    );
    o["spec"] = json!({ "provider": provider_pair(plan), "map": entries });
    o
}

/// One Forklift Plan's worth of VMs: one wave, one `after` depth, one network model, one
/// migration type, one cutover time, at most one cutover batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanGroup {
    /// The Forklift Plan's name, deterministic for the plan file.
    pub name: String,
    pub wave: String,
    /// Longest chain of same-wave `after` dependencies below these VMs (0: none).
    pub depth: usize,
    pub model: NetworkModel,
    pub migration: Migration,
    /// The VMs' own `cutover` time (RFC 3339), if they have one.
    pub cutover: Option<String>,
    /// wavelift VM names, in plan order.
    pub vms: Vec<String>,
}

/// `after` depth of every VM inside its wave (dependencies in earlier waves count 0: they
/// are Verified before the wave starts).
pub fn after_depths(plan: &Plan) -> HashMap<&str, usize> {
    fn depth<'p>(
        plan: &'p Plan,
        vm: &'p Vm,
        memo: &mut HashMap<&'p str, usize>,
        visiting: &mut Vec<&'p str>,
    ) -> usize {
        if let Some(d) = memo.get(vm.name.as_str()) {
            return *d;
        }
        if visiting.contains(&vm.name.as_str()) {
            return 0; // a cycle: refused by plan check; never loop here
        }
        visiting.push(vm.name.as_str());
        let mut d = 0;
        for a in &vm.after {
            if let Some(dep) = plan.vm(a).filter(|dep| *dep.wave == *vm.wave) {
                d = d.max(depth(plan, dep, memo, visiting) + 1);
            }
        }
        visiting.pop();
        memo.insert(vm.name.as_str(), d);
        d
    }
    let mut memo = HashMap::new();
    let mut visiting = Vec::new();
    for vm in &plan.vms {
        depth(plan, vm, &mut memo, &mut visiting);
    }
    memo
}

/// The Forklift Plans of a plan, wave by wave in plan order, then by depth, model, type and
/// cutover time, each chunked at `min(max_parallel_cutovers, forklift_plan_size)`. Names:
/// `<plan>-<wave>-<n>`, `n` counting from 1 inside the wave.
pub fn plan_groups(plan: &Plan) -> Vec<PlanGroup> {
    let depths = after_depths(plan);
    let mut out = Vec::new();
    for wave in &plan.waves {
        type Key = (usize, u8, u8, Option<i64>);
        let mut groups: BTreeMap<Key, (Option<String>, Vec<String>)> = BTreeMap::new();
        for vm in plan.vms_in_wave(&wave.name) {
            let model = plan.model_of(vm);
            let migration = plan.migration_of(vm);
            let key = (
                depths.get(vm.name.as_str()).copied().unwrap_or(0),
                (model == NetworkModel::L3) as u8,
                (migration == Migration::Warm) as u8,
                vm.cutover.as_ref().map(|c| c.unix),
            );
            let e = groups
                .entry(key)
                .or_insert_with(|| (vm.cutover.as_ref().map(|c| c.text.clone()), Vec::new()));
            e.1.push(vm.name.value.clone());
        }
        let size = wave
            .max_parallel_cutovers
            .min(plan.meta.forklift_plan_size)
            .max(1) as usize;
        let mut n = 0;
        for ((depth, l3, warm, _), (cutover, vms)) in groups {
            for chunk in vms.chunks(size) {
                n += 1;
                out.push(PlanGroup {
                    name: fit63(&format!(
                        "{}-{}-{n}",
                        plan.meta.name.as_str(),
                        wave.name.as_str()
                    )),
                    wave: wave.name.value.clone(),
                    depth,
                    model: if l3 == 1 {
                        NetworkModel::L3
                    } else {
                        NetworkModel::L2
                    },
                    migration: if warm == 1 {
                        Migration::Warm
                    } else {
                        Migration::Cold
                    },
                    cutover: cutover.clone(),
                    vms: chunk.to_vec(),
                });
            }
        }
    }
    out
}

/// A VM without a vSphere managed object id: vCenter did not find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no vSphere managed object id for VM `{0}` (not found in vCenter)")]
pub struct MissingId(pub String);

/// The Forklift Plan of a group. `ids` gives each VM's vSphere managed object id (`vm-42`,
/// read from vCenter; not the BIOS or instance UUID).
pub fn forklift_plan(
    plan: &Plan,
    group: &PlanGroup,
    ids: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, MissingId> {
    let mut vms = Vec::with_capacity(group.vms.len());
    for name in &group.vms {
        let id = ids(name).ok_or_else(|| MissingId(name.clone()))?;
        vms.push(json!({ "id": id, "name": name, "targetName": name }));
    }
    let mut target_labels = plan_labels(plan);
    target_labels.insert(labels::WAVE.into(), group.wave.clone());
    target_labels.insert(FORKLIFT_PLAN.into(), group.name.clone());
    let mut o = object(
        "Plan",
        &group.name,
        ns(plan),
        wave_labels(plan, &group.wave, &group.name),
    );
    o["spec"] = json!({
        "description": format!(
            "wavelift plan {}, wave {}, {} {} VMs (after depth {})",
            plan.meta.name.as_str(), group.wave, group.model.as_str(), group.migration.as_str(), group.depth
        ),
        "provider": provider_pair(plan),
        "map": {
            "network": { "name": network_map_name(plan, group.model), "namespace": ns(plan) },
            "storage": { "name": storage_map_name(plan), "namespace": ns(plan) },
        },
        "targetNamespace": ns(plan),
        "type": group.migration.as_str(),
        "preserveStaticIPs": group.model == NetworkModel::L2,
        "targetPowerState": "off",
        "targetLabels": target_labels,
        "vms": vms,
    });
    Ok(o)
}

/// The name of a group's Migration number `attempt` (1 for the first; a retry is a new
/// Migration).
pub fn migration_name(group: &str, attempt: u32) -> String {
    fit63(&format!("{group}-m{attempt}"))
}

/// A Migration of a group's Plan. `cutover` (RFC 3339): warm Plans precopy until then;
/// `cancel`: `(id, name)` of VMs not to migrate (a new Migration otherwise re-runs every VM
/// of the Plan that has not succeeded).
pub fn migration(
    plan: &Plan,
    group: &PlanGroup,
    attempt: u32,
    cutover: Option<&str>,
    cancel: &[(String, String)],
) -> Value {
    let mut o = object(
        "Migration",
        &migration_name(&group.name, attempt),
        ns(plan),
        wave_labels(plan, &group.wave, &group.name),
    );
    let mut spec = json!({ "plan": { "name": group.name, "namespace": ns(plan) } });
    if let Some(c) = cutover {
        spec["cutover"] = json!(c);
    }
    if !cancel.is_empty() {
        spec["cancel"] = cancel
            .iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect();
    }
    o["spec"] = spec;
    o
}

/// The VirtualMachine was created by Forklift for this VM's Forklift Plan (its `plan-name`
/// label names it): wavelift may delete it in a rollback.
pub fn forklift_made(
    l: &Option<BTreeMap<String, String>>,
    plan: &Plan,
    vm: &crate::plan::Vm,
) -> bool {
    plan_groups(plan)
        .iter()
        .filter(|g| g.vms.contains(&vm.name.value))
        .any(|g| made_for(l, plan.meta.namespace.as_str(), &g.name))
}

/// The object carries Forklift's labels of Forklift Plan `group` in namespace `ns`.
pub fn made_for(l: &Option<BTreeMap<String, String>>, ns: &str, group: &str) -> bool {
    use super::forklift_types::labels as fl;
    l.as_ref().is_some_and(|l| {
        l.get(fl::PLAN_NAME).map(String::as_str) == Some(group)
            && l.get(fl::PLAN_NAMESPACE).map(String::as_str) == Some(ns)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encodes_base64_in_64_columns() {
        let p = pem(b"Man");
        assert_eq!(
            p,
            "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n"
        );
        assert!(pem(&[0u8; 100]).lines().all(|l| l.len() <= 64));
        assert!(pem(b"Ma").contains("TWE=\n"));
        assert!(pem(b"M").contains("TQ==\n"));
    }

    #[test]
    fn names_fit_label_values() {
        let long = "a".repeat(80);
        let n = fit63(&long);
        assert!(n.len() <= 63, "{n}");
        assert_ne!(fit63(&format!("{long}1")), fit63(&format!("{long}2")));
        assert_eq!(fit63("short"), "short");
    }

    #[test]
    fn morefs_are_ids_and_names_are_names() {
        assert_eq!(source_ref("network-12"), json!({ "id": "network-12" }));
        assert_eq!(
            source_ref("dvportgroup-3"),
            json!({ "id": "dvportgroup-3" })
        );
        assert_eq!(source_ref("datastore-1"), json!({ "id": "datastore-1" }));
        assert_eq!(source_ref("VLAN-210"), json!({ "name": "VLAN-210" }));
        assert_eq!(source_ref("network-a"), json!({ "name": "network-a" }));
    }

    #[test]
    fn sdk_url() {
        assert_eq!(SourceConn::sdk_url("https://vc/"), "https://vc/sdk");
        assert_eq!(SourceConn::sdk_url("https://vc/sdk"), "https://vc/sdk");
    }
}
