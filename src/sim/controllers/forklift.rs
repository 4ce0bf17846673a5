//! Simulated Forklift (kubev2v/forklift, MTV): the Provider, map, Plan and Migration
//! controllers, as a kube-rs client of the sim's API like the other simulated controllers.
//!
//! - Providers (`pkg/controller/provider/{controller,validation}.go`): a vSphere Provider
//!   whose Secret has `user`, `password` and a CA under the key its release reads
//!   ([`ca_keys`]: `cacert` before v2.12.0, then `ca.crt` or `cacert`) or
//!   `insecureSkipVerify: "true"`, and whose `url` is the sim's vCenter SDK
//!   (`https://<the sim's address>/sdk`), is `Ready`; otherwise `SecretNotValid` (items:
//!   the missing keys), `UrlNotValid`, `ConnectionTestFailed` or `ConnectionAuthFailed`.
//!   The destination (`type: openshift`, empty `url`: the local cluster) is `Ready`.
//! - Maps (`pkg/controller/map/{network,storage}/validation.go`): `Ready` when their
//!   providers are ready and every source network / datastore is in the inventory.
//! - Plans (`pkg/controller/plan/validation.go` `validateVM`): conditions with `category`
//!   and `items` (`ref.String()`), `Ready` when none is Critical or Error.
//! - Migrations (`pkg/controller/plan/migration.go`, `migrator/base/migrator.go`
//!   itineraries, `pkg/controller/migration/controller.go` `reflectPlan`): each VM's
//!   pipeline in `Plan.status.migration.vms[]`; cold: virt-v2v copies and converts into
//!   blank DataVolumes; warm: CDI DataVolumes with checkpoints on vSphere snapshots, then
//!   cutover and conversion in place.
//!
//! The vSphere inventory is the world's source VMs: managed object ids `vm-1001`…,
//! networks (port groups, [`super::scenario::SourceNic::network_name`]) `network-N`, and
//! datastores (the `[ds]` of a disk's file) `datastore-N`, numbered in order of first
//! appearance.
//!
//! Partial, on purpose: no conversion or inspection pods are created (virt-v2v is a timed
//! step of this controller, `[forklift] conversion_seconds`), hooks are accepted but not
//! run, no scheduler in-flight limit, no archive, and resume-conversion is not modelled.

use super::scenario::{FaultKind, FaultMode, GuestOsKind, PowerState, Scenario};
use super::vsphere::TaskKind;
use super::world::World;
use super::SimClock;
use crate::cluster::forklift_types::{
    category, conditions as ct, labels as fl, steps, Condition, DiskDelta, Precopy, Progress, Step,
    StepError, Task, VmStatus, Warm,
};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the controller needs.
pub struct Forklift {
    pub client: Client,
    pub scenario: Arc<Scenario>,
    pub world: Arc<World>,
    pub clock: SimClock,
    /// `host:port` of the simulated vCenter (the API's own address).
    pub vcenter: String,
}

/// Forklift's `PollReQ` (pkg/controller/plan/migration.go): 3 s between looks.
const POLL_SECONDS: f64 = 3.0;

fn ar(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "forklift.konveyor.io".into(),
        version: "v1beta1".into(),
        api_version: "forklift.konveyor.io/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn dv_ar() -> ApiResource {
    ApiResource {
        group: "cdi.kubevirt.io".into(),
        version: "v1beta1".into(),
        api_version: "cdi.kubevirt.io/v1beta1".into(),
        kind: "DataVolume".into(),
        plural: "datavolumes".into(),
    }
}

fn vm_ar() -> ApiResource {
    ApiResource {
        group: "kubevirt.io".into(),
        version: "v1".into(),
        api_version: "kubevirt.io/v1".into(),
        kind: "VirtualMachine".into(),
        plural: "virtualmachines".into(),
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn key_of(v: &Value) -> (String, String) {
    (
        s(v, "/metadata/namespace").to_string(),
        s(v, "/metadata/name").to_string(),
    )
}

/// Aborts the tasks it holds when dropped (the controller task ended or was aborted).
#[derive(Default)]
struct Tasks(Mutex<Vec<tokio::task::AbortHandle>>);

impl Tasks {
    fn push(&self, h: tokio::task::AbortHandle) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|h| !h.is_finished());
        v.push(h);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for h in self.0.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            h.abort();
        }
    }
}

/// One Plan's status as the controller keeps it, and its migration under way.
struct PlanEntry {
    model: Mutex<Model>,
    /// Serialises status writes (the latest model is written each time).
    write: tokio::sync::Mutex<()>,
    active: Mutex<Option<ActiveRun>>,
}

#[derive(Default, Clone)]
struct Model {
    validation: Vec<Condition>,
    /// The active snapshot's conditions reflected on the Plan (Executing, Succeeded,
    /// Failed, Canceled).
    exec: Vec<Condition>,
    started: Option<String>,
    completed: Option<String>,
    history: Vec<Value>,
    vms: Vec<VmStatus>,
    generation: i64,
}

struct ActiveRun {
    migration_uid: String,
    cancel: HashMap<String, CancellationToken>,
    cutover_ms: Option<i64>,
}

#[derive(Default)]
struct State {
    plans: Mutex<HashMap<(String, String), Arc<PlanEntry>>>,
    /// Migrations already run (uid), or refused.
    finished: Mutex<HashSet<String>>,
    /// Conversions per source VM so far (`conversion-failure` once).
    conversions: Mutex<HashMap<String, u32>>,
}

/// The maps by (kind, (namespace, name)): the object and whether it is Ready.
type Maps = HashMap<(&'static str, (String, String)), (Value, bool)>;

/// Runs the controllers until aborted.
pub async fn run(f: Forklift) {
    let f = Arc::new(f);
    let state = Arc::new(State::default());
    let tasks = Arc::new(Tasks::default());
    let notify = Arc::new(Notify::new());
    for (kind, plural) in [
        ("Provider", "providers"),
        ("Plan", "plans"),
        ("Migration", "migrations"),
        ("NetworkMap", "networkmaps"),
        ("StorageMap", "storagemaps"),
    ] {
        let api: Api<DynamicObject> = Api::all_with(f.client.clone(), &ar(kind, plural));
        let n = notify.clone();
        let h = tokio::spawn(async move {
            let mut w = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while w.next().await.is_some() {
                n.notify_one();
            }
        });
        tasks.push(h.abort_handle());
    }
    loop {
        reconcile(&f, &state, &tasks).await;
        tokio::select! {
            () = notify.notified() => {}
            // At least 50 ms real between polls: at a million times real speed three
            // simulated seconds are 3 µs.
            () = f.clock.sleep_real((POLL_SECONDS / f.clock.speed).max(0.05)) => {}
        }
    }
}

async fn list(client: &Client, kind: &str, plural: &str) -> Vec<Value> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar(kind, plural));
    match api.list(&Default::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn patch_status(client: &Client, kind: &str, plural: &str, obj: &Value, status: Value) {
    let (ns, name) = key_of(obj);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar(kind, plural));
    let _ = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await;
}

fn now(world: &World) -> String {
    crate::sim::time::rfc3339((world.clock_ms().max(0) / 1000) as u64)
}

/// Keeps the transition time of a condition that did not change (`Condition.Update`).
fn carry_times(new: &mut [Condition], old: &[Condition], at: &str) {
    for c in new.iter_mut() {
        c.last_transition_time = old
            .iter()
            .find(|o| o.same(c))
            .and_then(|o| o.last_transition_time.clone())
            .or_else(|| Some(at.to_string()));
    }
}

fn conditions_of(obj: &Value) -> Vec<Condition> {
    obj.pointer("/status/conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}

fn blocked(conds: &[Condition]) -> bool {
    conds.iter().any(|c| {
        c.status == "True" && (c.category == category::CRITICAL || c.category == category::ERROR)
    })
}

fn has(conds: &[Condition], t: &str) -> bool {
    conds.iter().any(|c| c.type_ == t && c.status == "True")
}

// ---------------------------------------------------------------------------------------
// Inventory (the provider's vSphere model).

#[derive(Debug, Clone)]
struct InvNic {
    network_id: String,
    mac: String,
}

#[derive(Debug, Clone)]
struct InvDisk {
    datastore_id: String,
    file: String,
    size: u64,
}

#[derive(Debug, Clone)]
struct InvVm {
    id: String,
    name: String,
    uuid: String,
    nics: Vec<InvNic>,
    disks: Vec<InvDisk>,
    cbt: bool,
    snapshots: usize,
    windows: bool,
}

#[derive(Debug, Default)]
struct Inventory {
    vms: Vec<InvVm>,
    networks: Vec<(String, String)>,
    datastores: Vec<(String, String)>,
}

/// The Critical concerns the vSphere provider's validation policy raises for a VM that the
/// sim can express (kubev2v/forklift validation/policies/io/konveyor/forklift/vmware/
/// `datastore.rego`: a disk not on a datastore; `disk_size.rego`: a disk of no capacity),
/// by their labels.
fn critical_concerns(v: &InvVm) -> Vec<String> {
    let mut out = Vec::new();
    if v.disks.iter().any(|d| d.datastore_id.is_empty()) {
        out.push("Disk is not located on a datastore".to_string());
    }
    for d in v.disks.iter().filter(|d| d.size == 0) {
        out.push(format!(
            "Disk '{}' has an invalid capacity of 0 bytes",
            d.file
        ));
    }
    out
}

/// `[ds1] web/web.vmdk` → `ds1`.
fn datastore_of(file: &str) -> String {
    file.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map_or_else(String::new, |(d, _)| d.to_string())
}

/// The inventory id of `name` in `list` (`(id, name)`s), numbered `{kind}-{first + n}` in
/// order of first sight.
fn inventory_id(list: &mut Vec<(String, String)>, name: &str, kind: &str, first: usize) -> String {
    if let Some((id, _)) = list.iter().find(|(_, n)| n == name) {
        return id.clone();
    }
    let id = format!("{kind}-{}", first + list.len());
    list.push((id.clone(), name.to_string()));
    id
}

fn inventory(world: &World) -> Inventory {
    let mut inv = Inventory::default();
    // CBT, snapshot count and BIOS UUID of every VM, in one pass.
    let mut facts: HashMap<String, (bool, usize, String)> = world
        .each_vm(|e| {
            (
                e.vm.moid.clone(),
                (e.sim.cbt_enabled, e.sim.snapshots.len(), e.bios_uuid()),
            )
        })
        .into_iter()
        .collect();
    for vm in world.source_vms() {
        let mut nics = Vec::new();
        for n in &vm.spec.nics {
            let name = n.network_name();
            let id = inventory_id(&mut inv.networks, &name, "network", 11);
            nics.push(InvNic {
                network_id: id,
                mac: n.mac.to_ascii_lowercase(),
            });
        }
        let mut disks = Vec::new();
        for d in vm.spec.disk_specs() {
            let ds = datastore_of(&d.file);
            // A file outside any datastore has no datastore id (the inventory's
            // `disk.datastore.id` is empty: a Critical concern, `critical_concerns`).
            let id = if ds.is_empty() {
                String::new()
            } else {
                inventory_id(&mut inv.datastores, &ds, "datastore", 21)
            };
            disks.push(InvDisk {
                datastore_id: id,
                file: d.file.clone(),
                size: d.size,
            });
        }
        let (cbt, snapshots, uuid) = facts.remove(&vm.moid).unwrap_or_default();
        inv.vms.push(InvVm {
            id: vm.moid.clone(),
            name: vm.spec.name.clone(),
            // builder.go `DataVolumes`: the BIOS UUID (`vm.UUID`) unless the destination
            // CDI can take instance UUIDs (the sim has no CDI CR with a version).
            uuid,
            nics,
            disks,
            cbt,
            snapshots,
            windows: vm.spec.os == GuestOsKind::Windows,
        });
    }
    inv
}

impl Inventory {
    /// The web client's `VM(ref)`: by `id` when given (a managed object id), else by name.
    fn vm(&self, r: &Value) -> Option<&InvVm> {
        let id = s(r, "/id");
        if !id.is_empty() {
            return self.vms.iter().find(|v| v.id == id);
        }
        let name = s(r, "/name");
        (!name.is_empty())
            .then(|| self.vms.iter().find(|v| v.name == name))
            .flatten()
    }

    fn resolve(list: &[(String, String)], r: &Value) -> Option<String> {
        let id = s(r, "/id");
        let name = s(r, "/name");
        list.iter()
            .find(|(i, n)| (!id.is_empty() && *i == id) || (id.is_empty() && *n == name))
            .map(|(i, _)| i.clone())
    }
}

/// Every inventory id (a VM's networks or datastores) is the source of one of a map's
/// pairs (`list`: the inventory's `(id, name)`s, which a pair may name either way).
fn all_mapped<'a>(
    mut ids: impl Iterator<Item = &'a str>,
    pairs: &[Value],
    list: &[(String, String)],
) -> bool {
    ids.all(|id| {
        pairs.iter().any(|p| {
            let src = p.get("source").cloned().unwrap_or_default();
            Inventory::resolve(list, &src).as_deref() == Some(id)
        })
    })
}

/// `ref.Ref.String()` (pkg/apis/forklift/v1beta1/ref/ref.go): `" id:vm-42 name:'web' "`.
fn ref_string(id: &str, name: &str) -> String {
    format!(" id:{id} name:'{name}' ")
}

// ---------------------------------------------------------------------------------------
// Reconcile.

async fn reconcile(f: &Arc<Forklift>, state: &Arc<State>, tasks: &Arc<Tasks>) {
    let providers = list(&f.client, "Provider", "providers").await;
    let network_maps = list(&f.client, "NetworkMap", "networkmaps").await;
    let storage_maps = list(&f.client, "StorageMap", "storagemaps").await;
    let plans = list(&f.client, "Plan", "plans").await;
    let migrations = list(&f.client, "Migration", "migrations").await;
    // No Forklift object, nothing to do: no inventory, no list of the cluster's VMs (at
    // `--speed 1000000` with thousands of VMs, doing both at every poll took most of the
    // sim's time in a CDI-backend run).
    if providers.is_empty()
        && network_maps.is_empty()
        && storage_maps.is_empty()
        && plans.is_empty()
        && migrations.is_empty()
    {
        return;
    }
    let inv = inventory(&f.world);
    let mut ready_providers: HashSet<(String, String)> = HashSet::new();
    for p in &providers {
        let (phase, mut conds, fingerprint) = provider_status(f, p).await;
        if has(&conds, ct::READY) {
            ready_providers.insert(key_of(p));
        }
        let old = conditions_of(p);
        carry_times(&mut conds, &old, &now(&f.world));
        let fingerprint = fingerprint.unwrap_or_else(|| s(p, "/status/fingerprint").to_string());
        if old != conds
            || s(p, "/status/phase") != phase
            || s(p, "/status/fingerprint") != fingerprint
        {
            patch_status(
                &f.client,
                "Provider",
                "providers",
                p,
                json!({ "phase": phase, "conditions": conds, "fingerprint": fingerprint,
                        "observedGeneration": p.pointer("/metadata/generation") }),
            )
            .await;
        }
    }
    let mut maps: Maps = HashMap::new();
    for (kind, plural, listed) in [
        ("NetworkMap", "networkmaps", network_maps),
        ("StorageMap", "storagemaps", storage_maps),
    ] {
        for m in listed {
            let mut conds = map_conditions(kind, &m, &inv, &ready_providers);
            let ready = has(&conds, ct::READY);
            let old = conditions_of(&m);
            carry_times(&mut conds, &old, &now(&f.world));
            if old != conds {
                patch_status(
                    &f.client,
                    kind,
                    plural,
                    &m,
                    json!({ "conditions": conds, "observedGeneration": m.pointer("/metadata/generation") }),
                )
                .await;
            }
            maps.insert((kind, key_of(&m)), (m, ready));
        }
    }
    let vms_in_cluster = if plans.is_empty() {
        Default::default()
    } else {
        cluster_vms(&f.client).await
    };
    for plan in plans {
        let key = key_of(&plan);
        let entry = {
            let mut plans = state.plans.lock().unwrap_or_else(|p| p.into_inner());
            plans
                .entry(key.clone())
                .or_insert_with(|| Arc::new(PlanEntry::load(&plan)))
                .clone()
        };
        let executing = entry
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        // validateVM returns at once while the plan executes (validation.go).
        let conds = validate_plan(
            &plan,
            f.scenario.forklift.crds().forklift.map(|c| c.version),
            &inv,
            &providers,
            &ready_providers,
            &maps,
            &vms_in_cluster,
            &entry,
            executing,
        );
        {
            let mut m = entry.model.lock().unwrap_or_else(|p| p.into_inner());
            let mut conds = conds;
            carry_times(&mut conds, &m.validation, &now(&f.world));
            m.validation = conds;
            m.generation = plan
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
        }
        flush(f, &entry, &plan).await;
        // Execute: the active migration, or the oldest pending one (controller.go
        // `execute`, `pendingMigrations`).
        let mine: Vec<&Value> = {
            let mut v: Vec<&Value> = migrations
                .iter()
                .filter(|m| {
                    let ns = s(m, "/spec/plan/namespace");
                    let ns = if ns.is_empty() {
                        s(m, "/metadata/namespace")
                    } else {
                        ns
                    };
                    s(m, "/spec/plan/name") == key.1 && ns == key.0
                })
                .collect();
            v.sort_by_key(|m| {
                (
                    s(m, "/metadata/creationTimestamp").to_string(),
                    s(m, "/metadata/name").to_string(),
                )
            });
            v
        };
        let ready = {
            let m = entry.model.lock().unwrap_or_else(|p| p.into_inner());
            has(&m.validation, ct::READY)
        };
        let active_uid = entry
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|a| a.migration_uid.clone());
        if let Some(uid) = active_uid {
            // Cancel and cutover changes of the active migration reach its VMs.
            if let Some(m) = mine.iter().find(|m| s(m, "/metadata/uid") == uid) {
                let cancel: Vec<String> = m
                    .pointer("/spec/cancel")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| s(r, "/id").to_string())
                    .collect();
                let mut a = entry.active.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(a) = a.as_mut() {
                    for id in cancel {
                        if let Some(t) = a.cancel.get(&id) {
                            t.cancel();
                        }
                    }
                    a.cutover_ms = cutover_of(m);
                }
            }
        } else if ready {
            let finished = state
                .finished
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let terminal = |m: &Value| {
                let c = conditions_of(m);
                has(&c, ct::SUCCEEDED) || has(&c, ct::FAILED) || has(&c, ct::CANCELED)
            };
            if let Some(m) = mine
                .iter()
                .find(|m| !finished.contains(s(m, "/metadata/uid")) && !terminal(m))
            {
                state
                    .finished
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(s(m, "/metadata/uid").to_string());
                let pns = key.0.clone();
                let map_ref = |field: &str, kind: &'static str| {
                    let ns = s(&plan, &format!("/spec/map/{field}/namespace"));
                    let ns = if ns.is_empty() {
                        pns.clone()
                    } else {
                        ns.to_string()
                    };
                    maps.get(&(
                        kind,
                        (ns, s(&plan, &format!("/spec/map/{field}/name")).to_string()),
                    ))
                    .map(|(m, _)| m.clone())
                };
                let src_ns = s(&plan, "/spec/provider/source/namespace");
                let src_ns = if src_ns.is_empty() {
                    pns.as_str()
                } else {
                    src_ns
                };
                let source_provider = providers
                    .iter()
                    .find(|p| {
                        key_of(p)
                            == (
                                src_ns.to_string(),
                                s(&plan, "/spec/provider/source/name").to_string(),
                            )
                    })
                    .cloned()
                    .unwrap_or_default();
                let run = Run {
                    f: f.clone(),
                    state: state.clone(),
                    entry: entry.clone(),
                    plan: plan.clone(),
                    migration: (*m).clone(),
                    inv: Arc::new(inv_clone(&inv)),
                    source_provider,
                    network_map: map_ref("network", "NetworkMap"),
                    storage_map: map_ref("storage", "StorageMap"),
                };
                let h = tokio::spawn(run.go());
                tasks.push(h.abort_handle());
            }
        }
    }
    // Migrations reflect their Plan (migration/controller.go `reflectPlan`).
    let plans = state
        .plans
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for m in &migrations {
        let ns = s(m, "/spec/plan/namespace");
        let ns = if ns.is_empty() {
            s(m, "/metadata/namespace")
        } else {
            ns
        };
        let entry = plans.get(&(ns.to_string(), s(m, "/spec/plan/name").to_string()));
        let mut conds: Vec<Condition> = Vec::new();
        let mut vms = Value::Null;
        let mut timed = (None, None);
        match entry {
            None => conds.push(Condition::new(
                "PlanNotValid",
                category::CRITICAL,
                "NotFound",
                "The `plan` is not valid.",
            )),
            Some(e) => {
                let model = e.model.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let uid = s(m, "/metadata/uid");
                let snap = model.history.iter().find(|h| s(h, "/migration/uid") == uid);
                if !has(&model.validation, ct::READY) && snap.is_none() {
                    conds.push(Condition::new(
                        "PlanNotReady",
                        category::CRITICAL,
                        "NotReady",
                        "The `plan` does not have Ready condition.",
                    ));
                } else {
                    conds.push(Condition::new(
                        ct::READY,
                        category::REQUIRED,
                        "",
                        "The migration is ready.",
                    ));
                }
                if let Some(snap) = snap {
                    let sc: Vec<Condition> = snap
                        .get("conditions")
                        .and_then(|c| serde_json::from_value(c.clone()).ok())
                        .unwrap_or_default();
                    timed = (model.started.clone(), model.completed.clone());
                    if let Some(c) = sc.iter().find(|c| c.type_ == ct::CANCELED) {
                        let mut c = c.clone();
                        c.durable = true;
                        conds.push(c);
                    } else {
                        if has(&sc, ct::EXECUTING) {
                            conds.push(Condition::new(
                                ct::RUNNING,
                                category::ADVISORY,
                                "",
                                "The migration is RUNNING.",
                            ));
                        }
                        if has(&sc, ct::SUCCEEDED) {
                            let mut c = Condition::new(
                                ct::SUCCEEDED,
                                category::ADVISORY,
                                "",
                                "The migration has SUCCEEDED.",
                            );
                            c.durable = true;
                            conds.push(c);
                        }
                        if has(&sc, ct::FAILED) {
                            let mut c = Condition::new(
                                ct::FAILED,
                                category::ADVISORY,
                                "",
                                "The migration has FAILED.",
                            );
                            c.durable = true;
                            conds.push(c);
                        }
                    }
                    vms = serde_json::to_value(&model.vms).unwrap_or(Value::Null);
                }
            }
        }
        let old = conditions_of(m);
        carry_times(&mut conds, &old, &now(&f.world));
        let status = json!({
            "conditions": conds, "vms": vms,
            "started": timed.0, "completed": timed.1,
            "observedGeneration": m.pointer("/metadata/generation"),
        });
        let same = old == conds
            && m.pointer("/status/vms").unwrap_or(&Value::Null) == &status["vms"]
            && m.pointer("/status/completed").unwrap_or(&Value::Null) == &status["completed"];
        if !same {
            patch_status(&f.client, "Migration", "migrations", m, status).await;
        }
    }
}

fn inv_clone(inv: &Inventory) -> Inventory {
    Inventory {
        vms: inv.vms.clone(),
        networks: inv.networks.clone(),
        datastores: inv.datastores.clone(),
    }
}

fn cutover_of(m: &Value) -> Option<i64> {
    let t = m.pointer("/spec/cutover").and_then(Value::as_str)?;
    let dt: toml::value::Datetime = t.parse().ok()?;
    crate::plan::time::from_datetime(&dt)
        .ok()
        .map(|t| t.unix * 1000)
}

/// Every KubeVirt VM in the cluster with its interfaces' MACs and labels.
async fn cluster_vms(client: &Client) -> Vec<Value> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &vm_ar());
    api.list(&Default::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Providers and maps.

/// pkg/controller/provider/validation.go `validate`, `validateSecret`, `testConnection`;
/// controller.go: `Ready` when nothing blocks and the connection test and inventory
/// succeeded.
/// A Provider's phase and conditions, and for a vSphere Provider whose certificate was
/// read, its `status.fingerprint` (`validation.go`: `provider.Status.Fingerprint =
/// util.Fingerprint(crt)`; the plan controller puts it in each DataVolume's VDDK
/// `thumbprint`, `pkg/controller/plan/adapter/vsphere/builder.go`).
async fn provider_status(
    f: &Forklift,
    p: &Value,
) -> (&'static str, Vec<Condition>, Option<String>) {
    let mut out = Vec::new();
    let ty = s(p, "/spec/type");
    let url = s(p, "/spec/url");
    let ok = |out: &mut Vec<Condition>| {
        out.push(Condition::new(
            ct::CONNECTION_TEST_SUCCEEDED,
            category::REQUIRED,
            "Tested",
            "Connection test, succeeded.",
        ));
        out.push(Condition::new(
            ct::INVENTORY_CREATED,
            category::REQUIRED,
            "Completed",
            "The inventory has been loaded.",
        ));
        out.push(Condition::new(
            "Validated",
            category::ADVISORY,
            "Completed",
            "Validation has been completed.",
        ));
        out.push(Condition::new(
            ct::READY,
            category::REQUIRED,
            "",
            "The provider is ready.",
        ));
    };
    match ty {
        // The host (local cluster) provider: `IsHost()` is openshift with no url.
        "openshift" if url.is_empty() => {
            ok(&mut out);
            return ("Ready", out, None);
        }
        "vsphere" => {}
        _ => {
            out.push(Condition::new(
                ct::CONNECTION_TEST_FAILED,
                category::CRITICAL,
                "Tested",
                "Connection test, failed: the rehearsal cluster simulates vSphere sources and the local cluster only.",
            ));
            return ("ConnectionFailed", out, None);
        }
    }
    if url.is_empty() {
        out.push(Condition::new(
            ct::URL_NOT_VALID,
            category::CRITICAL,
            "NotSet",
            "The `url` is not valid.",
        ));
        return ("ValidationFailed", out, None);
    }
    // validateSecret.
    let mut secret_cnd = Condition::new(
        ct::SECRET_NOT_VALID,
        category::CRITICAL,
        "NotSet",
        "The `secret` is not valid.",
    );
    let (sns, sname) = (s(p, "/spec/secret/namespace"), s(p, "/spec/secret/name"));
    if sname.is_empty() {
        out.push(secret_cnd);
        return ("ValidationFailed", out, None);
    }
    let sns = if sns.is_empty() {
        s(p, "/metadata/namespace")
    } else {
        sns
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(f.client.clone(), sns);
    let data = match secrets.get_opt(sname).await {
        Ok(Some(sec)) => sec.data.unwrap_or_default(),
        _ => {
            secret_cnd.reason = "NotFound".into();
            out.push(secret_cnd);
            return ("ValidationFailed", out, None);
        }
    };
    let key = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|v| !v.is_empty())
    };
    let insecure =
        key("insecureSkipVerify").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    // The CA key this release reads (`util.GetCACert` / `tlsConfig`, pkg/lib/util/util.go)
    // and the one its validateSecret asks for (pkg/controller/provider/validation.go).
    let reads = ca_keys(f.scenario.forklift.crds().forklift.map(|c| c.version));
    let ca = reads.read.iter().find_map(|k| key(k));
    let mut wanted = vec!["user", "password"];
    if let Some(required) = reads.required {
        if !insecure && ca.is_none() {
            wanted.push(required);
        }
    }
    for k in wanted {
        if !data.contains_key(k) {
            secret_cnd.items.push(k.to_string());
        }
    }
    if !secret_cnd.items.is_empty() {
        secret_cnd.reason = "DataErr".into();
        out.push(secret_cnd);
        return ("ValidationFailed", out, None);
    }
    if insecure {
        out.push(Condition::new(
            "ConnectionInsecure",
            category::WARN,
            "SkipTLSVerification",
            "TLS is susceptible to machine-in-the-middle attacks when certificate verification is skipped.",
        ));
    }
    // testConnection: the SDK endpoint must be the simulated vCenter's, and it must take
    // the credentials.
    let host = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let path_ok = url
        .split_once("://")
        .map(|(_, r)| r)
        .and_then(|r| r.find('/').map(|i| &r[i..]))
        .is_some_and(|p| p.trim_end_matches('/') == "/sdk");
    if host != f.vcenter || !path_ok {
        out.push(Condition::new(
            ct::CONNECTION_TEST_FAILED,
            category::CRITICAL,
            "Tested",
            &format!("Connection test, failed: Post \"{url}\": dial tcp {host}: connect: connection refused (the simulated vCenter is https://{}/sdk)", f.vcenter),
        ));
        return ("ConnectionFailed", out, None);
    }
    if key("user").as_deref() != Some(f.scenario.vcenter_user.as_str())
        || key("password").as_deref() != Some(f.scenario.vcenter_password.as_str())
    {
        // setAuthFailureConditions.
        out.push(Condition::new(
            "ConnectionAuthFailed",
            category::CRITICAL,
            "Tested",
            "ServerFaultCode: Cannot complete login due to an incorrect user name or password.",
        ));
        return ("ConnectionFailed", out, None);
    }
    // GetTlsCertificate: the certificate vCenter presents. The simulated vCenter presents
    // the one the CA key this release reads holds (wavelift wrote the one it pinned), or,
    // without one (skipping verification, or a release before 2.11 that trusts what it is
    // shown), the rehearsal's fixture.
    let der = ca
        .and_then(|pem| pem_der(&pem))
        .unwrap_or_else(|| SIM_VCENTER_CERT.to_vec());
    ok(&mut out);
    ("Ready", out, Some(fingerprint(&der)))
}

/// Which Secret keys a Forklift release reads the vCenter CA from, in order, and which one
/// its `validateSecret` names when there is none (and no `insecureSkipVerify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CaKeys {
    read: &'static [&'static str],
    required: Option<&'static str>,
}

/// kubev2v/forklift pkg/lib/util/util.go and pkg/controller/provider/validation.go:
/// - v2.10.x: `tlsConfig` reads `cacert` only; validateSecret asks for `user` and
///   `password` (a missing CA is not named: the connection test trusts what it is shown);
/// - v2.11.x: `cacert` only, and validateSecret names `cacert` when it is missing;
/// - v2.12.0 on: `GetCACert` reads `ca.crt`, then the legacy `cacert`; `HasCACert` names
///   `ca.crt`.
fn ca_keys(version: Option<(u32, u32, u32)>) -> CaKeys {
    let v = version.unwrap_or(crate::sim::resources::FORKLIFT_LATEST);
    if v >= (2, 12, 0) {
        CaKeys {
            read: &["ca.crt", "cacert"],
            required: Some("ca.crt"),
        }
    } else if v >= (2, 11, 0) {
        CaKeys {
            read: &["cacert"],
            required: Some("cacert"),
        }
    } else {
        CaKeys {
            read: &["cacert"],
            required: None,
        }
    }
}

/// The DER bytes of the first PEM block of `pem`.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    super::endpoints::decode_base64(&b64).filter(|d| !d.is_empty())
}

/// What the simulated vCenter presents when nothing else says (the rehearsal has no TLS).
const SIM_VCENTER_CERT: &[u8] = b"rehearsal: the simulated vCenter has no certificate";

/// `util.Fingerprint` (forklift `pkg/lib/util/util.go`): the SHA-1 of the certificate,
/// upper-case hex octets joined by `:`.
fn fingerprint(der: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    sum.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// pkg/controller/validation/provider.go (the pair) and map/{network,storage}/validation.go
/// (source references in the inventory).
fn map_conditions(
    kind: &str,
    m: &Value,
    inv: &Inventory,
    ready: &HashSet<(String, String)>,
) -> Vec<Condition> {
    let mut out = Vec::new();
    provider_pair_conditions(m, ready, &mut out);
    let (list, t) = if kind == "NetworkMap" {
        (&inv.networks, "SourceNetworkNotValid")
    } else {
        (&inv.datastores, "SourceStorageNotValid")
    };
    let mut bad = Condition::new(
        t,
        category::CRITICAL,
        "NotFound",
        if kind == "NetworkMap" {
            "Source network not found."
        } else {
            "Source storage not found."
        },
    );
    for e in m
        .pointer("/spec/map")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let src = e.get("source").cloned().unwrap_or_default();
        if s(&src, "/type") == "pod" {
            continue;
        }
        if Inventory::resolve(list, &src).is_none() {
            bad.items.push(ref_string(s(&src, "/id"), s(&src, "/name")));
        }
    }
    if !bad.items.is_empty() {
        out.push(bad);
    }
    if !blocked(&out) {
        out.push(Condition::new(
            ct::READY,
            category::REQUIRED,
            "",
            if kind == "NetworkMap" {
                "The network map is ready."
            } else {
                "The storage map is ready."
            },
        ));
    }
    out
}

fn provider_pair_conditions(
    obj: &Value,
    ready: &HashSet<(String, String)>,
    out: &mut Vec<Condition>,
) {
    for (side, label) in [("source", "Source"), ("destination", "Destination")] {
        let name = s(obj, &format!("/spec/provider/{side}/name"));
        let ns = s(obj, &format!("/spec/provider/{side}/namespace"));
        let ns = if ns.is_empty() {
            s(obj, "/metadata/namespace")
        } else {
            ns
        };
        if name.is_empty() {
            out.push(Condition::new(
                &format!("{label}ProviderNotValid"),
                category::CRITICAL,
                "NotSet",
                &format!("The {side} provider is not valid."),
            ));
        } else if !ready.contains(&(ns.to_string(), name.to_string())) {
            out.push(Condition::new(
                &format!("{label}ProviderNotReady"),
                category::CRITICAL,
                "NotReady",
                &format!("The {side} provider does not have a Ready condition."),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Plan validation.

fn plan_is_warm(plan: &Value) -> bool {
    s(plan, "/spec/type") == "warm"
        || (s(plan, "/spec/type").is_empty()
            && plan.pointer("/spec/warm").and_then(Value::as_bool) == Some(true))
}

#[allow(clippy::too_many_arguments)]
fn validate_plan(
    plan: &Value,
    release: Option<(u32, u32, u32)>,
    inv: &Inventory,
    _providers: &[Value],
    ready: &HashSet<(String, String)>,
    maps: &Maps,
    cluster: &[Value],
    entry: &PlanEntry,
    executing: bool,
) -> Vec<Condition> {
    let mut out = Vec::new();
    provider_pair_conditions(plan, ready, &mut out);
    if out
        .iter()
        .any(|c| c.type_ == "SourceProviderNotReady" || c.type_ == "SourceProviderNotValid")
    {
        return out;
    }
    let pns = s(plan, "/metadata/namespace").to_string();
    let target_ns = s(plan, "/spec/targetNamespace");
    if !crate::sim::validate::is_dns1123_label(target_ns) {
        out.push(Condition::new(
            "NamespaceNotValid",
            category::CRITICAL,
            "NotValid",
            "Target namespace is not valid.",
        ));
    }
    let mut map_of =
        |kind: &'static str, field: &str, not_valid: &str, not_ready: &str| -> Option<Value> {
            let name = s(plan, &format!("/spec/map/{field}/name"));
            let ns = s(plan, &format!("/spec/map/{field}/namespace"));
            let ns = if ns.is_empty() { pns.as_str() } else { ns };
            match maps.get(&(kind, (ns.to_string(), name.to_string()))) {
                None => {
                    out.push(Condition::new(
                        not_valid,
                        category::CRITICAL,
                        if name.is_empty() {
                            "NotSet"
                        } else {
                            "NotFound"
                        },
                        &format!("Map does not exist: {kind} {ns}/{name}."),
                    ));
                    None
                }
                Some((_, false)) => {
                    out.push(Condition::new(
                        not_ready,
                        category::CRITICAL,
                        "NotReady",
                        &format!("Map does not have Ready condition: {kind} {ns}/{name}."),
                    ));
                    None
                }
                Some((m, true)) => Some(m.clone()),
            }
        };
    let netmap = map_of(
        "NetworkMap",
        "network",
        "NetworkMapRefNotValid",
        "NetworkMapNotReady",
    );
    let stmap = map_of(
        "StorageMap",
        "storage",
        "StorageRefNotValid",
        "StorageMapNotReady",
    );
    if executing {
        if !blocked(&out) {
            out.push(Condition::new(
                ct::READY,
                category::REQUIRED,
                "",
                "The migration plan is ready.",
            ));
        }
        return out;
    }
    let warm = plan_is_warm(plan);
    let model = entry
        .model
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let item = |c: &mut Condition, v: &InvVm| c.items.push(ref_string(&v.id, &v.name));
    let mut not_found = Condition::new(
        ct::VM_NOT_FOUND,
        category::CRITICAL,
        "NotFound",
        "VM not found.",
    );
    let mut dup = Condition::new(
        "DuplicateVM",
        category::CRITICAL,
        "NotUnique",
        "Duplicate (source) VM.",
    );
    let mut nets = Condition::new(
        ct::VM_NETWORKS_NOT_MAPPED,
        category::CRITICAL,
        "NotValid",
        "VM has unmapped networks.",
    );
    let mut stor = Condition::new(
        ct::VM_STORAGE_NOT_MAPPED,
        category::CRITICAL,
        "NotValid",
        "VM has unmapped storage.",
    );
    let mut cbt = Condition::new(ct::VM_MISSING_CBT, category::CRITICAL, "MissingChangedBlockTracking", "Changed Block Tracking (CBT) has not been enabled on some VM. This feature is a prerequisite for VM warm migration.");
    let mut snaps = Condition::new(
        ct::VM_HAS_SNAPSHOTS,
        category::CRITICAL,
        "NotValid",
        "VM has pre-existing snapshots which are incompatible with warm migration.",
    );
    let mut exists = Condition::new(
        "VMAlreadyExists",
        category::CRITICAL,
        "NotUnique",
        "Target VM already exists.",
    );
    let mut macs = Condition::new(ct::MAC_CONFLICTS, category::CRITICAL, "NotValid", "");
    // validation.go (v2.10.4 on): `PodNetwork` (adapter/vsphere/validator.go, to v2.11)
    // and `ValidateNetworkDuplicates` (v2.12): more than one NIC whose network the map
    // sends to the pod network.
    let mut multi_pod = Condition::new(
        ct::VM_MULTIPLE_POD_NETWORK_MAPPINGS,
        category::CRITICAL,
        "NotValid",
        "VM has more than one interface mapped to the pod network.",
    );
    // validation.go (v2.12.0 on) `aggregateCriticalConcerns`: each Critical concern the
    // inventory's policy raised, as `<ref> (<label>)`.
    let mut concerns = Condition::new(
        ct::VM_CRITICAL_CONCERNS,
        category::CRITICAL,
        "NotValid",
        "One or more VMs in the plan have critical concerns that block migration.",
    );
    let raises_concerns = release.unwrap_or(crate::sim::resources::FORKLIFT_LATEST) >= (2, 12, 0);
    let mut seen = HashSet::new();
    let net_pairs: Vec<Value> = netmap
        .as_ref()
        .and_then(|m| m.pointer("/spec/map").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let st_pairs: Vec<Value> = stmap
        .as_ref()
        .and_then(|m| m.pointer("/spec/map").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    // Destination VMs' MACs (adapter/base/mac_conflicts.go `GetDestinationVMsFromInventory`).
    let mut dest: BTreeMap<String, String> = BTreeMap::new();
    for vm in cluster {
        for i in vm
            .pointer("/spec/template/spec/domain/devices/interfaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mac = s(i, "/macAddress").to_ascii_lowercase();
            if !mac.is_empty() {
                let (ns, n) = key_of(vm);
                dest.insert(mac, format!("{ns}/{n}"));
            }
        }
    }
    for r in plan
        .pointer("/spec/vms")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // Succeeded VMs are not validated again (the status is found by the resolved
        // reference, so a VM listed by name matches its status, which has the id).
        let resolved = inv
            .vm(r)
            .map_or_else(|| s(r, "/id").to_string(), |v| v.id.clone());
        if model
            .vms
            .iter()
            .any(|v| !resolved.is_empty() && v.id == resolved && v.has_condition(ct::SUCCEEDED))
        {
            continue;
        }
        let Some(v) = inv.vm(r) else {
            not_found.items.push(ref_string(s(r, "/id"), s(r, "/name")));
            continue;
        };
        if !seen.insert(v.id.clone()) {
            item(&mut dup, v);
        }
        if netmap.is_some()
            && !all_mapped(
                v.nics.iter().map(|n| n.network_id.as_str()),
                &net_pairs,
                &inv.networks,
            )
        {
            item(&mut nets, v);
        }
        if netmap.is_some() {
            let pod_nics = v
                .nics
                .iter()
                .filter(|n| {
                    net_pairs.iter().any(|p| {
                        s(p, "/destination/type") == "pod"
                            && Inventory::resolve(&inv.networks, &p["source"]).as_deref()
                                == Some(n.network_id.as_str())
                    })
                })
                .count();
            if pod_nics > 1 {
                item(&mut multi_pod, v);
            }
        }
        if raises_concerns {
            for label in critical_concerns(v) {
                concerns
                    .items
                    .push(format!("{} ({label})", ref_string(&v.id, &v.name)));
            }
        }
        if stmap.is_some()
            && !all_mapped(
                v.disks.iter().map(|d| d.datastore_id.as_str()),
                &st_pairs,
                &inv.datastores,
            )
        {
            item(&mut stor, v);
        }
        let conflicts: Vec<(&str, &String)> = v
            .nics
            .iter()
            .filter_map(|n| dest.get(&n.mac).map(|d| (n.mac.as_str(), d)))
            .collect();
        if !conflicts.is_empty() {
            macs.items.push(ref_string(&v.id, &v.name));
            let mut by_vm: BTreeMap<&String, Vec<&str>> = BTreeMap::new();
            for (mac, d) in conflicts {
                by_vm.entry(d).or_default().push(mac);
            }
            let details: Vec<String> = by_vm
                .iter()
                .map(|(d, m)| format!("MACs {} conflict with destination VM {d}", m.join(", ")))
                .collect();
            if !macs.message.is_empty() {
                macs.message.push_str("; ");
            }
            macs.message.push_str(&format!(
                "VM {} has MAC address conflicts: {}",
                ref_string(&v.id, &v.name),
                details.join("; ")
            ));
        }
        let target = if s(r, "/targetName").is_empty() {
            v.name.as_str()
        } else {
            s(r, "/targetName")
        };
        let in_status = model.vms.iter().any(|x| x.id == v.id);
        if !in_status
            && cluster
                .iter()
                .any(|c| key_of(c) == (target_ns.to_string(), target.to_string()))
        {
            item(&mut exists, v);
        }
        if warm {
            if !v.cbt {
                item(&mut cbt, v);
            }
            if v.snapshots > 0 {
                item(&mut snaps, v);
            }
        }
    }
    for c in [
        not_found, dup, exists, nets, stor, cbt, snaps, macs, multi_pod, concerns,
    ] {
        if !c.items.is_empty() {
            out.push(c);
        }
    }
    if !blocked(&out) {
        out.push(Condition::new(
            ct::READY,
            category::REQUIRED,
            "",
            "The migration plan is ready.",
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Status writes.

impl PlanEntry {
    fn load(plan: &Value) -> PlanEntry {
        let mut m = Model::default();
        if let Some(mig) = plan.pointer("/status/migration") {
            m.started = mig
                .get("started")
                .and_then(Value::as_str)
                .map(str::to_string);
            m.completed = mig
                .get("completed")
                .and_then(Value::as_str)
                .map(str::to_string);
            m.history = mig
                .get("history")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            m.vms = mig
                .get("vms")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
        }
        m.exec = conditions_of(plan)
            .into_iter()
            .filter(|c| {
                [ct::EXECUTING, ct::SUCCEEDED, ct::FAILED, ct::CANCELED].contains(&c.type_.as_str())
            })
            .collect();
        PlanEntry {
            model: Mutex::new(m),
            write: tokio::sync::Mutex::new(()),
            active: Mutex::new(None),
        }
    }
}

/// Writes the Plan's status from the model (`updatePlanStatus`).
async fn flush(f: &Forklift, entry: &PlanEntry, plan: &Value) {
    let _w = entry.write.lock().await;
    let m = entry
        .model
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut conds = m.validation.clone();
    conds.extend(m.exec.iter().cloned());
    let status = json!({
        "conditions": conds,
        "observedGeneration": m.generation,
        "migration": {
            "started": m.started, "completed": m.completed,
            "history": m.history, "vms": m.vms,
        },
    });
    let same = plan.get("status").is_some_and(|st| {
        st.get("conditions") == status.get("conditions")
            && st.pointer("/migration/vms").unwrap_or(&json!([])) == &status["migration"]["vms"]
            && st.pointer("/migration/history").unwrap_or(&json!([]))
                == &status["migration"]["history"]
    });
    if !same {
        patch_status(&f.client, "Plan", "plans", plan, status).await;
    }
}

// ---------------------------------------------------------------------------------------
// Migration run.

struct Run {
    f: Arc<Forklift>,
    state: Arc<State>,
    entry: Arc<PlanEntry>,
    plan: Value,
    migration: Value,
    inv: Arc<Inventory>,
    source_provider: Value,
    network_map: Option<Value>,
    storage_map: Option<Value>,
}

fn vm_key(v: &VmStatus) -> String {
    if v.id.is_empty() {
        v.name.clone()
    } else {
        v.id.clone()
    }
}

impl Run {
    fn canceled_ids(&self) -> HashSet<String> {
        self.migration
            .pointer("/spec/cancel")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| s(r, "/id").to_string())
            .filter(|i| !i.is_empty())
            .collect()
    }

    /// `begin` + `Run` + `end` (migration.go).
    async fn go(self) {
        let f = self.f.clone();
        let warm = plan_is_warm(&self.plan);
        let at = now(&f.world);
        let uid = s(&self.migration, "/metadata/uid").to_string();
        let mut tokens = HashMap::new();
        let mut to_run = Vec::new();
        {
            let mut m = self.entry.model.lock().unwrap_or_else(|p| p.into_inner());
            m.started = Some(at.clone());
            m.completed = None;
            let mut exec = Condition::new(
                ct::EXECUTING,
                category::ADVISORY,
                "",
                "The plan is EXECUTING.",
            );
            exec.durable = true;
            exec.last_transition_time = Some(at.clone());
            m.exec = vec![exec.clone()];
            m.history.push(json!({
                "conditions": [exec],
                "plan": { "namespace": s(&self.plan, "/metadata/namespace"), "name": s(&self.plan, "/metadata/name"),
                          "uid": s(&self.plan, "/metadata/uid"), "generation": self.plan.pointer("/metadata/generation") },
                "migration": { "namespace": s(&self.migration, "/metadata/namespace"), "name": s(&self.migration, "/metadata/name"),
                               "uid": uid, "generation": self.migration.pointer("/metadata/generation") },
                "provider": { "source": self.plan.pointer("/spec/provider/source"), "destination": self.plan.pointer("/spec/provider/destination") },
                "map": { "network": self.plan.pointer("/spec/map/network"), "storage": self.plan.pointer("/spec/map/storage") },
            }));
            // Add/Update: a VM not completed, or failed or canceled, gets a new pipeline;
            // a succeeded one is preserved.
            let mut list = Vec::new();
            for r in self
                .plan
                .pointer("/spec/vms")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let inv_vm = self.inv.vm(r).cloned();
                let id = inv_vm
                    .as_ref()
                    .map_or_else(|| s(r, "/id").to_string(), |v| v.id.clone());
                let name = inv_vm
                    .as_ref()
                    .map_or_else(|| s(r, "/name").to_string(), |v| v.name.clone());
                let existing = m.vms.iter().find(|v| v.id == id).cloned();
                let mut st = existing.unwrap_or_else(|| VmStatus {
                    id: id.clone(),
                    name: name.clone(),
                    ..VmStatus::default()
                });
                st.target_name = s(r, "/targetName").to_string();
                st.target_power_state = s(r, "/targetPowerState").to_string();
                let done = st.phase == "Completed"
                    && !st.has_condition(ct::CANCELED)
                    && !st.has_condition(ct::FAILED);
                if !done {
                    st.conditions
                        .retain(|c| c.type_ != ct::CANCELED && c.type_ != ct::FAILED);
                    st.started = None;
                    st.completed = None;
                    st.error = None;
                    st.phase = "Started".into();
                    st.restore_power_state.clear();
                    st.pipeline = pipeline(warm, &self.plan, inv_vm.as_ref());
                    st.warm = warm.then(Warm::default);
                    let t = CancellationToken::new();
                    tokens.insert(id.clone(), t.clone());
                    to_run.push((vm_key(&st), inv_vm, r.clone(), t));
                }
                list.push(st);
            }
            m.vms = list;
        }
        *self.entry.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(ActiveRun {
            migration_uid: uid.clone(),
            cancel: tokens,
            cutover_ms: cutover_of(&self.migration),
        });
        self.flush().await;
        let canceled = self.canceled_ids();
        let me = Arc::new(self);
        let mut handles = Vec::new();
        for (key, inv_vm, r, token) in to_run {
            let me = me.clone();
            let pre_canceled = canceled.contains(&key);
            handles.push(tokio::spawn(async move {
                me.vm(key, inv_vm, r, token, pre_canceled).await;
            }));
        }
        for h in handles {
            let _ = h.await;
        }
        // end().
        {
            let at = now(&f.world);
            let mut m = me.entry.model.lock().unwrap_or_else(|p| p.into_inner());
            let failed = m.vms.iter().any(|v| v.has_condition(ct::FAILED));
            let succeeded = m.vms.iter().any(|v| v.has_condition(ct::SUCCEEDED));
            let (t, msg) = if failed {
                (ct::FAILED, "The plan execution has FAILED.")
            } else if succeeded {
                (ct::SUCCEEDED, "The plan execution has SUCCEEDED.")
            } else {
                (ct::CANCELED, "The plan execution has been CANCELED.")
            };
            let mut c = Condition::new(t, category::ADVISORY, "", msg);
            c.durable = true;
            c.last_transition_time = Some(at.clone());
            m.exec = vec![c.clone()];
            m.completed = Some(at);
            if let Some(h) = m.history.last_mut() {
                h["conditions"] = json!([c]);
            }
        }
        *me.entry.active.lock().unwrap_or_else(|p| p.into_inner()) = None;
        me.flush().await;
    }

    async fn flush(&self) {
        let plans: Api<DynamicObject> = Api::namespaced_with(
            self.f.client.clone(),
            s(&self.plan, "/metadata/namespace"),
            &ar("Plan", "plans"),
        );
        let current = plans
            .get(s(&self.plan, "/metadata/name"))
            .await
            .ok()
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or_else(|| self.plan.clone());
        flush(&self.f, &self.entry, &current).await;
    }

    fn update(&self, key: &str, f: impl FnOnce(&mut VmStatus)) {
        let mut m = self.entry.model.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = m.vms.iter_mut().find(|v| vm_key(v) == key) {
            f(v);
        }
    }

    fn snapshot(&self, key: &str) -> Option<VmStatus> {
        let m = self.entry.model.lock().unwrap_or_else(|p| p.into_inner());
        m.vms.iter().find(|v| vm_key(v) == key).cloned()
    }

    /// Moves the VM to `phase`, starting its step (and completing the one before).
    async fn phase(&self, key: &str, phase: &str, step: &str) {
        let at = now(&self.f.world);
        self.update(key, |v| {
            v.phase = phase.to_string();
            if v.started.is_none() {
                v.started = Some(at.clone());
            }
            for st in v.pipeline.iter_mut() {
                if st.task.name == step {
                    if st.task.started.is_none() {
                        st.task.started = Some(at.clone());
                    }
                    st.task.phase = "Running".into();
                } else if st.task.phase == "Running" {
                    st.task.phase = "Completed".into();
                    st.task.completed = Some(at.clone());
                    st.task.progress.completed = st.task.progress.total;
                }
            }
        });
        self.flush().await;
    }

    fn progress(&self, key: &str, step: &str, done: i64, per_task: &[i64]) {
        self.update(key, |v| {
            if let Some(st) = v.step_mut(step) {
                st.task.progress.completed = done.min(st.task.progress.total);
                for (t, d) in st.tasks.iter_mut().zip(per_task) {
                    t.progress.completed = (*d).min(t.progress.total);
                    if t.started.is_none() && *d > 0 {
                        t.started = st.task.started.clone();
                    }
                }
            }
        });
    }

    async fn vm(
        &self,
        key: String,
        inv_vm: Option<InvVm>,
        r: Value,
        token: CancellationToken,
        pre_canceled: bool,
    ) {
        if pre_canceled {
            self.canceled(&key).await;
            return;
        }
        let Some(inv_vm) = inv_vm else {
            // The scheduler's NotFound (migration.go `Run`).
            self.update(&key, |v| {
                let mut c = Condition::new(
                    ct::CANCELED,
                    category::ADVISORY,
                    "NotFound",
                    "VM was not found in inventory.",
                );
                c.durable = true;
                v.conditions.push(c);
                v.phase = "Completed".into();
            });
            self.flush().await;
            return;
        };
        let result = tokio::select! {
            r = self.pipeline_run(&key, &inv_vm, &r) => Some(r),
            () = token.cancelled() => None,
        };
        match result {
            None => self.canceled(&key).await,
            Some(Ok(())) => {
                let at = now(&self.f.world);
                self.update(&key, |v| {
                    for st in v.pipeline.iter_mut() {
                        st.task.phase = "Completed".into();
                        if st.task.completed.is_none() {
                            st.task.completed = Some(at.clone());
                        }
                        st.task.progress.completed = st.task.progress.total;
                    }
                    v.phase = "Completed".into();
                    v.completed = Some(at.clone());
                    let mut c = Condition::new(
                        ct::SUCCEEDED,
                        category::ADVISORY,
                        "",
                        "The VM migration has SUCCEEDED.",
                    );
                    c.durable = true;
                    c.last_transition_time = Some(at.clone());
                    v.conditions.push(c);
                });
                self.flush().await;
            }
            Some(Err((step, reason))) => {
                let at = now(&self.f.world);
                let warm = plan_is_warm(&self.plan);
                self.update(&key, |v| {
                    let phase = v.phase.clone();
                    if let Some(st) = v.step_mut(&step) {
                        st.task.error = Some(StepError {
                            phase: st.task.phase.clone(),
                            reasons: vec![reason.clone()],
                        });
                        st.task.completed = Some(at.clone());
                    }
                    // ReflectPipeline: the step's error is the VM's.
                    v.error = Some(StepError {
                        phase,
                        reasons: vec![reason.clone()],
                    });
                    v.phase = "Completed".into();
                    v.completed = Some(at.clone());
                    let mut c = Condition::new(
                        ct::FAILED,
                        category::ADVISORY,
                        "",
                        "The VM migration has FAILED.",
                    );
                    c.durable = true;
                    c.last_transition_time = Some(at.clone());
                    v.conditions.push(c);
                });
                if warm {
                    // removeLastWarmSnapshot.
                    if let Some(snap) = self
                        .snapshot(&key)
                        .and_then(|v| v.warm)
                        .and_then(|w| w.precopies.last().map(|p| p.snapshot.clone()))
                    {
                        self.f.world.with_moid(&inv_vm.id, |e, now, ids| {
                            e.queue(
                                TaskKind::RemoveSnapshot {
                                    snapshot: snap,
                                    remove_children: false,
                                },
                                now,
                                ids,
                            )
                        });
                    }
                }
                self.flush().await;
            }
        }
    }

    /// A canceled VM (migration.go `execute` + `Cancel`): condition `Canceled`
    /// (UserRequested), its DataVolumes deleted, the source powered back on when it was
    /// on, started steps completed.
    async fn canceled(&self, key: &str) {
        let at = now(&self.f.world);
        let restore = self
            .snapshot(key)
            .map(|v| v.restore_power_state)
            .unwrap_or_default();
        self.delete_dvs(key).await;
        if restore == "On" {
            if let Some(v) = self.snapshot(key) {
                self.f
                    .world
                    .with_moid(&v.id, |e, now, ids| e.queue(TaskKind::PowerOn, now, ids));
            }
        }
        self.update(key, |v| {
            let mut c = Condition::new(
                ct::CANCELED,
                category::ADVISORY,
                "UserRequested",
                "The migration has been canceled.",
            );
            c.durable = true;
            c.last_transition_time = Some(at.clone());
            v.conditions.push(c);
            v.phase = "Completed".into();
            v.completed = Some(at.clone());
            for st in v.pipeline.iter_mut() {
                if st.task.started.is_some() && st.task.completed.is_none() {
                    st.task.completed = Some(at.clone());
                }
            }
        });
        self.flush().await;
    }

    fn labels(&self, vm_id: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                fl::MIGRATION.to_string(),
                s(&self.migration, "/metadata/uid").to_string(),
            ),
            (
                fl::PLAN.to_string(),
                s(&self.plan, "/metadata/uid").to_string(),
            ),
            (
                fl::PLAN_NAME.to_string(),
                s(&self.plan, "/metadata/name").to_string(),
            ),
            (
                fl::PLAN_NAMESPACE.to_string(),
                s(&self.plan, "/metadata/namespace").to_string(),
            ),
            (fl::VM_ID.to_string(), vm_id.to_string()),
            (fl::RESOURCE.to_string(), fl::RESOURCE_VM_CONFIG.to_string()),
        ])
    }

    fn target_ns(&self) -> String {
        s(&self.plan, "/spec/targetNamespace").to_string()
    }

    fn dvs_api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.f.client.clone(), &self.target_ns(), &dv_ar())
    }

    async fn dvs_of(&self, vm_id: &str) -> Vec<Value> {
        let sel = format!(
            "{}={},{}={}",
            fl::VM_ID,
            vm_id,
            fl::MIGRATION,
            s(&self.migration, "/metadata/uid")
        );
        self.dvs_api()
            .list(&kube::api::ListParams::default().labels(&sel))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn delete_dvs(&self, key: &str) {
        let Some(v) = self.snapshot(key) else { return };
        for dv in self.dvs_of(&v.id).await {
            let _ = self
                .dvs_api()
                .delete(s(&dv, "/metadata/name"), &Default::default())
                .await;
        }
    }

    async fn sleep(&self, secs: f64) {
        self.f.clock.sleep(secs).await;
    }

    /// The VM's itinerary; `Err((step, reason))` fails the VM with the reason in that step.
    async fn pipeline_run(&self, key: &str, v: &InvVm, r: &Value) -> Result<(), (String, String)> {
        let warm = plan_is_warm(&self.plan);
        let init = steps::INITIALIZE;
        self.phase(key, "Started", init).await;
        // Started: the target name (TargetName, or the DNS-1123 form of the source's).
        let new_name = if !s(r, "/targetName").is_empty() {
            s(r, "/targetName").to_string()
        } else {
            dns1123(&v.name)
        };
        if new_name != v.name {
            self.update(key, |st| st.new_name = new_name.clone());
        }
        if warm {
            self.warm(key, v, &new_name).await
        } else {
            self.cold(key, v, &new_name).await
        }
    }

    async fn power_off(&self, key: &str, v: &InvVm, step: &str) -> Result<(), (String, String)> {
        // StorePowerState, PowerOffSource, WaitForPowerOff.
        self.phase(key, "StorePowerState", step).await;
        let power = self
            .f
            .world
            .find(&v.id)
            .map_or(PowerState::Off, |x| x.power);
        let restore = if power == PowerState::On { "On" } else { "Off" };
        self.update(key, |st| st.restore_power_state = restore.into());
        self.phase(key, "PowerOffSource", step).await;
        if power == PowerState::On {
            // The vSphere adapter's PowerOff (kubev2v/forklift pkg/controller/plan/adapter/
            // vsphere/client.go, v2.10.4 to v2.12.5): `vm.ShutdownGuest`, a graceful guest
            // shutdown through VMware Tools, never a hard power-off. Without Tools vCenter
            // answers the `ToolsUnavailable` fault, and migration.go's PhasePowerOffSource
            // puts govmomi's error (`ServerFaultCode: ` and the fault's message) in the step
            // (`step.AddError(err.Error())`): the VM fails, its source still running.
            let delay = self.f.world.vcenter.shutdown_seconds;
            let refused = self
                .f
                .world
                .with_moid(&v.id, |e, now, _| e.shutdown_guest(now, delay))
                .and_then(Result::err);
            if let Some(fault) = refused {
                return Err((
                    step.to_string(),
                    format!("ServerFaultCode: {}", fault.message),
                ));
            }
        }
        self.phase(key, "WaitForPowerOff", step).await;
        loop {
            if self
                .f
                .world
                .find(&v.id)
                .is_none_or(|x| x.power == PowerState::Off)
            {
                return Ok(());
            }
            self.sleep(POLL_SECONDS).await;
        }
    }

    fn storage_for(&self, d: &InvDisk) -> Option<Value> {
        let stmap = self.storage_map.as_ref()?;
        stmap
            .pointer("/spec/map")
            .and_then(Value::as_array)?
            .iter()
            .find(|p| {
                Inventory::resolve(
                    &self.inv.datastores,
                    p.get("source").unwrap_or(&Value::Null),
                )
                .as_deref()
                    == Some(d.datastore_id.as_str())
            })
            .and_then(|p| p.get("destination").cloned())
    }
}

/// kubevirt.go `changeVmNameDNS1123`: lower-case, invalid characters to `-`, trimmed.
fn dns1123(name: &str) -> String {
    let mut out: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    out.truncate(63);
    if out.is_empty() {
        "vm".to_string()
    } else {
        out
    }
}

fn mb(bytes: u64) -> i64 {
    (bytes / (1 << 20)) as i64
}

fn step(name: &str, description: &str, total: i64, tasks: Vec<Task>, unit: bool) -> Step {
    Step {
        task: Task {
            name: name.into(),
            description: description.into(),
            phase: "Pending".into(),
            progress: Progress {
                completed: 0,
                total,
            },
            annotations: if unit {
                BTreeMap::from([("unit".to_string(), "MB".to_string())])
            } else {
                BTreeMap::new()
            },
            ..Task::default()
        },
        tasks,
    }
}

/// `BaseMigrator.Pipeline` over the cold or warm itinerary (migrator/base/migrator.go) for
/// a vSphere source into the local cluster: cold with virt-v2v copying
/// (`ShouldUseV2vForTransfer`), guest conversion required, no hooks.
fn pipeline(warm: bool, plan: &Value, v: Option<&InvVm>) -> Vec<Step> {
    // builder.go `Tasks`: one per disk, its size in MB.
    let disk_tasks: Vec<Task> = v
        .map(|v| {
            v.disks
                .iter()
                .map(|d| Task {
                    name: d.file.clone(),
                    progress: Progress {
                        completed: 0,
                        total: mb(d.size),
                    },
                    annotations: BTreeMap::from([("unit".to_string(), "MB".to_string())]),
                    ..Task::default()
                })
                .collect()
        })
        .unwrap_or_default();
    let total: i64 = disk_tasks.iter().map(|t| t.progress.total).sum();
    let mut out = vec![step(
        steps::INITIALIZE,
        "Initialize migration.",
        1,
        Vec::new(),
        false,
    )];
    if warm {
        // Plan.ShouldRunPreflightInspection: warm vSphere with runPreflightInspection
        // (default true).
        if plan
            .pointer("/spec/runPreflightInspection")
            .and_then(Value::as_bool)
            != Some(false)
        {
            out.push(step(
                steps::PREFLIGHT_INSPECTION,
                "Inspect VM before migration.",
                1,
                Vec::new(),
                false,
            ));
        }
        out.push(step(
            steps::DISK_TRANSFER,
            "Transfer disks.",
            total,
            disk_tasks.clone(),
            true,
        ));
        let mut cut = step(
            steps::CUTOVER,
            "Finalize disk transfer.",
            total,
            disk_tasks,
            true,
        );
        cut.task.phase.clear();
        out.push(cut);
        out.push(step(
            steps::IMAGE_CONVERSION,
            "Convert image to kubevirt.",
            1,
            Vec::new(),
            false,
        ));
    } else {
        out.push(step(
            steps::DISK_ALLOCATION,
            "Allocate disks.",
            total,
            disk_tasks.clone(),
            true,
        ));
        out.push(step(
            steps::IMAGE_CONVERSION,
            "Convert image to kubevirt.",
            1,
            Vec::new(),
            false,
        ));
        out.push(step(
            steps::DISK_TRANSFER_V2V,
            "Copy disks.",
            total,
            disk_tasks,
            true,
        ));
    }
    out.push(step(steps::VM_CREATION, "Create VM.", 1, Vec::new(), false));
    out
}

impl Run {
    fn conversion_fails(&self, v: &InvVm) -> bool {
        let Some(fault) = self
            .f
            .scenario
            .faults
            .iter()
            .find(|x| x.kind == FaultKind::ConversionFailure && x.vm == v.name)
        else {
            return false;
        };
        let mut n = self
            .state
            .conversions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let count = n.entry(v.name.clone()).or_insert(0);
        *count += 1;
        fault.mode != FaultMode::Once || *count == 1
    }

    /// ImageConversion: virt-v2v inspects and converts the guest (`[forklift]
    /// conversion_seconds`); `conversion-failure` fails it as a failed conversion pod does
    /// (migration.go `updateConversionProgress`).
    async fn convert(&self, key: &str, v: &InvVm) -> Result<(), (String, String)> {
        self.phase(key, "CreateGuestConversionPod", steps::IMAGE_CONVERSION)
            .await;
        self.phase(key, "ConvertGuest", steps::IMAGE_CONVERSION)
            .await;
        self.sleep(self.f.scenario.forklift.conversion_seconds)
            .await;
        if self.conversion_fails(v) {
            return Err((
                steps::IMAGE_CONVERSION.to_string(),
                "Guest conversion failed. See pod logs for details.".to_string(),
            ));
        }
        self.update(key, |st| {
            st.operating_system = if v.windows {
                "win2k19".into()
            } else {
                "rhel9".into()
            };
            if let Some(s) = st.step_mut(steps::IMAGE_CONVERSION) {
                s.task.progress.completed = 1;
            }
        });
        Ok(())
    }

    async fn cold(&self, key: &str, v: &InvVm, new_name: &str) -> Result<(), (String, String)> {
        let init = steps::INITIALIZE;
        self.power_off(key, v, init).await?;
        // CreateDataVolumes: blank DataVolumes for virt-v2v to write into (builder.go
        // `DataVolumes` with `useV2vForTransfer`).
        self.phase(key, "CreateDataVolumes", init).await;
        self.create_dvs(key, v, false).await?;
        // AllocateDisks: the blank volumes are bound.
        self.phase(key, "AllocateDisks", steps::DISK_ALLOCATION)
            .await;
        self.wait_dvs(key, v, steps::DISK_ALLOCATION, |p| p == "Succeeded")
            .await?;
        self.convert(key, v).await?;
        // CopyDisksVirtV2V: virt-v2v copies each disk at the per-transfer bandwidth.
        self.phase(key, "CopyDisksVirtV2V", steps::DISK_TRANSFER_V2V)
            .await;
        let rate = self.f.scenario.bandwidth_per_import.max(1) as f64;
        let mut done: Vec<i64> = vec![0; v.disks.len()];
        for (i, d) in v.disks.iter().enumerate() {
            self.f.world.copy_started(&v.name, i);
            let secs = d.size as f64 / rate;
            let ticks = 10;
            for t in 1..=ticks {
                self.sleep(secs / ticks as f64).await;
                done[i] = mb(d.size) * t / ticks;
                self.progress(key, steps::DISK_TRANSFER_V2V, done.iter().sum(), &done);
                self.flush().await;
            }
            self.f.world.copy_finished(&v.name, i);
        }
        self.create_vm(key, v, new_name).await
    }

    async fn warm(&self, key: &str, v: &InvVm, new_name: &str) -> Result<(), (String, String)> {
        let init = steps::INITIALIZE;
        let transfer = steps::DISK_TRANSFER;
        // CreateInitialSnapshot, WaitForInitialSnapshot, StoreInitialSnapshotDeltas.
        self.snapshot_round(
            key,
            v,
            init,
            "CreateInitialSnapshot",
            "WaitForInitialSnapshot",
            Some("StoreInitialSnapshotDeltas"),
        )
        .await?;
        if self
            .snapshot(key)
            .is_some_and(|s| s.step(steps::PREFLIGHT_INSPECTION).is_some())
        {
            self.phase(key, "PreflightInspection", steps::PREFLIGHT_INSPECTION)
                .await;
            self.sleep(self.f.scenario.forklift.conversion_seconds / 2.0)
                .await;
            self.update(key, |st| {
                if let Some(s) = st.step_mut(steps::PREFLIGHT_INSPECTION) {
                    s.task.progress.completed = 1;
                }
            });
        }
        // CreateDataVolumes (the DiskTransfer step when inspection runs).
        self.phase(key, "CreateDataVolumes", transfer).await;
        self.create_dvs(key, v, true).await?;
        let interval_ms = (self.f.scenario.forklift.precopy_interval_minutes * 60_000.0) as i64;
        loop {
            // CopyDisks: until every DataVolume copied this checkpoint (Paused).
            self.phase(key, "CopyDisks", transfer).await;
            self.wait_dvs(key, v, transfer, |p| p == "Paused").await?;
            let at = now(&self.f.world);
            let next = self.f.world.clock_ms() + interval_ms;
            self.update(key, |st| {
                if let Some(w) = st.warm.as_mut() {
                    if let Some(p) = w.precopies.last_mut() {
                        p.end = Some(at.clone());
                    }
                    w.successes += 1;
                    w.next_precopy_at =
                        Some(crate::sim::time::rfc3339((next.max(0) / 1000) as u64));
                }
            });
            // CopyingPaused: until the cutover, or the next precopy.
            self.phase(key, "CopyingPaused", transfer).await;
            let cutover = loop {
                let cut = self
                    .entry
                    .active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .and_then(|a| a.cutover_ms);
                let clock = self.f.world.clock_ms();
                if cut.is_some_and(|c| c <= clock) {
                    break true;
                }
                if clock >= next {
                    break false;
                }
                self.sleep(POLL_SECONDS).await;
            };
            if cutover {
                break;
            }
            self.remove_last_snapshot(
                key,
                v,
                transfer,
                "RemovePreviousSnapshot",
                "WaitForPreviousSnapshotRemoval",
            )
            .await?;
            self.snapshot_round(
                key,
                v,
                transfer,
                "CreateSnapshot",
                "WaitForSnapshot",
                Some("StoreSnapshotDeltas"),
            )
            .await?;
            self.phase(key, "AddCheckpoint", transfer).await;
            self.add_checkpoint(key, v, false).await?;
        }
        let cut = steps::CUTOVER;
        self.power_off(key, v, cut).await?;
        self.remove_last_snapshot(
            key,
            v,
            cut,
            "RemovePenultimateSnapshot",
            "WaitForPenultimateSnapshotRemoval",
        )
        .await?;
        self.snapshot_round(
            key,
            v,
            cut,
            "CreateFinalSnapshot",
            "WaitForFinalSnapshot",
            None,
        )
        .await?;
        self.phase(key, "AddFinalCheckpoint", cut).await;
        self.add_checkpoint(key, v, true).await?;
        self.phase(key, "Finalize", cut).await;
        self.wait_dvs(key, v, cut, |p| p == "Succeeded").await?;
        let at = now(&self.f.world);
        self.update(key, |st| {
            if let Some(p) = st.warm.as_mut().and_then(|w| w.precopies.last_mut()) {
                p.end = Some(at.clone());
            }
        });
        self.remove_last_snapshot(key, v, cut, "RemoveFinalSnapshot", "RemoveFinalSnapshot")
            .await?;
        self.convert(key, v).await?;
        self.create_vm(key, v, new_name).await
    }

    /// Create*Snapshot, WaitFor*Snapshot and Store*SnapshotDeltas (vSphere adapter
    /// client.go: `CreateSnapshot` unquiesced, no memory; deltas = each disk's change ID).
    async fn snapshot_round(
        &self,
        key: &str,
        v: &InvVm,
        step: &str,
        create: &str,
        wait: &str,
        deltas: Option<&str>,
    ) -> Result<(), (String, String)> {
        self.phase(key, create, step).await;
        let at = now(&self.f.world);
        let task = self
            .f
            .world
            .with_moid(&v.id, |e, now, ids| {
                e.queue(
                    TaskKind::CreateSnapshot {
                        name: "forklift-migration-precopy".into(),
                        description: "Forklift Operator warm migration precopy".into(),
                        memory: false,
                        quiesce: false,
                        ex: false,
                    },
                    now,
                    ids,
                )
            })
            .ok_or_else(|| (step.to_string(), format!("VM {} not found", v.id)))?;
        self.update(key, |st| {
            if let Some(w) = st.warm.as_mut() {
                w.precopies.push(Precopy {
                    start: Some(at.clone()),
                    create_task_id: task.clone(),
                    ..Precopy::default()
                });
            }
        });
        self.phase(key, wait, step).await;
        let snap = self.wait_task(v, &task, step).await?;
        let changes = self
            .f
            .world
            .with_moid(&v.id, |e, _, _| {
                e.find_snapshot(&snap)
                    .map(|s| s.change_ids.clone())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        self.update(key, |st| {
            if let Some(p) = st.warm.as_mut().and_then(|w| w.precopies.last_mut()) {
                p.snapshot = snap.clone();
            }
        });
        if let Some(d) = deltas {
            self.phase(key, d, step).await;
        }
        self.update(key, |st| {
            if let Some(p) = st.warm.as_mut().and_then(|w| w.precopies.last_mut()) {
                p.deltas = v
                    .disks
                    .iter()
                    .zip(changes.iter())
                    .map(|(d, c)| DiskDelta {
                        disk: d.file.clone(),
                        delta_id: c.clone().unwrap_or_default(),
                    })
                    .collect();
            }
        });
        Ok(())
    }

    /// Polls a vSphere task to its end: the snapshot it made, or its fault in the step.
    async fn wait_task(
        &self,
        v: &InvVm,
        task: &str,
        step: &str,
    ) -> Result<String, (String, String)> {
        loop {
            let outcome = self
                .f
                .world
                .with_moid(&v.id, |e, _, _| {
                    e.sim
                        .tasks
                        .iter()
                        .find(|t| t.id == task)
                        .and_then(|t| t.outcome.clone())
                })
                .flatten();
            match outcome {
                Some(Ok(r)) => return Ok(r.unwrap_or_default()),
                Some(Err(f)) => return Err((step.to_string(), f.message.clone())),
                None => self.sleep(1.0).await,
            }
        }
    }

    async fn remove_last_snapshot(
        &self,
        key: &str,
        v: &InvVm,
        step: &str,
        remove: &str,
        wait: &str,
    ) -> Result<(), (String, String)> {
        self.phase(key, remove, step).await;
        let Some(snap) = self
            .snapshot(key)
            .and_then(|s| s.warm)
            .and_then(|w| w.precopies.last().map(|p| p.snapshot.clone()))
        else {
            return Ok(());
        };
        let task = self.f.world.with_moid(&v.id, |e, now, ids| {
            e.queue(
                TaskKind::RemoveSnapshot {
                    snapshot: snap,
                    remove_children: false,
                },
                now,
                ids,
            )
        });
        if let Some(task) = task {
            self.update(key, |st| {
                if let Some(p) = st.warm.as_mut().and_then(|w| w.precopies.last_mut()) {
                    p.remove_task_id = task.clone();
                }
            });
            self.phase(key, wait, step).await;
            self.wait_task(v, &task, step).await?;
        }
        Ok(())
    }

    /// The Secret CDI's importer reads (builder.go `Secret`: `accessKeyId`/`secretKey`
    /// from the provider's `user`/`password`).
    async fn cdi_secret(&self, v: &InvVm) -> Result<String, (String, String)> {
        let err = |e: String| (steps::DISK_TRANSFER.to_string(), e);
        let p = &self.source_provider;
        let sns = s(p, "/spec/secret/namespace");
        let sns = if sns.is_empty() {
            s(p, "/metadata/namespace")
        } else {
            sns
        };
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.f.client.clone(), sns);
        let src = secrets
            .get(s(p, "/spec/secret/name"))
            .await
            .map_err(|e| err(e.to_string()))?
            .data
            .unwrap_or_default();
        let mut data = BTreeMap::new();
        if let Some(u) = src.get("user") {
            data.insert("accessKeyId".to_string(), u.clone());
        }
        if let Some(pw) = src.get("password") {
            data.insert("secretKey".to_string(), pw.clone());
        }
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                generate_name: Some(format!("{}-{}-", s(&self.plan, "/metadata/name"), v.id)),
                namespace: Some(self.target_ns()),
                labels: Some(self.labels(&v.id)),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let target: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.f.client.clone(), &self.target_ns());
        let created = target
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(created.metadata.name.unwrap_or_default())
    }

    /// kubevirt.go `dataVolumes` + builder.go `DataVolumes`: one per mapped disk, labelled
    /// with the VM's labels; blank (cold, virt-v2v writes them) or a VDDK import with the
    /// first checkpoint (warm).
    async fn create_dvs(&self, key: &str, v: &InvVm, warm: bool) -> Result<(), (String, String)> {
        let step_name = if warm {
            steps::DISK_TRANSFER
        } else {
            steps::INITIALIZE
        };
        let secret = if warm {
            Some(self.cdi_secret(v).await?)
        } else {
            None
        };
        let first = self
            .snapshot(key)
            .and_then(|s| s.warm)
            .and_then(|w| w.precopies.last().map(|p| p.snapshot.clone()))
            .unwrap_or_default();
        let p = &self.source_provider;
        let plan_name: String = s(&self.plan, "/metadata/name").chars().take(15).collect();
        let vm_name: String = v.name.to_ascii_lowercase().chars().take(15).collect();
        for (i, d) in v.disks.iter().enumerate() {
            let Some(dest) = self.storage_for(d) else {
                continue;
            };
            let mut ann = json!({
                "forklift.konveyor.io/disk-source": d.file,
                "forklift.konveyor.io/disk-index": i.to_string(),
                "cdi.kubevirt.io/storage.deleteAfterCompletion": "false",
            });
            for (k, val) in self.labels(&v.id) {
                ann[k] = json!(val);
            }
            let source = if warm {
                ann["cdi.kubevirt.io/storage.usePopulator"] = json!("false");
                ann["cdi.kubevirt.io/storage.bind.immediate.requested"] = json!("true");
                json!({ "vddk": {
                    "backingFile": d.file, "uuid": v.uuid, "url": s(p, "/spec/url"),
                    "secretRef": secret, "thumbprint": s(p, "/status/fingerprint"),
                    "initImageURL": s(p, "/spec/settings/vddkInitImage"),
                }})
            } else {
                json!({ "blank": {} })
            };
            let mut storage = json!({
                "resources": { "requests": { "storage": d.size.to_string() } },
                "storageClassName": s(&dest, "/storageClass"),
            });
            if !s(&dest, "/accessMode").is_empty() {
                storage["accessModes"] = json!([s(&dest, "/accessMode")]);
            }
            if !s(&dest, "/volumeMode").is_empty() {
                storage["volumeMode"] = json!(s(&dest, "/volumeMode"));
            }
            let mut spec = json!({ "source": source, "storage": storage });
            if warm {
                spec["checkpoints"] = json!([{ "previous": "", "current": first }]);
                spec["finalCheckpoint"] = json!(false);
            }
            let dv: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                "metadata": {
                    "generateName": format!("{plan_name}-{vm_name}-disk-{i}-"),
                    "namespace": self.target_ns(),
                    "labels": self.labels(&v.id),
                    "annotations": ann,
                },
                "spec": spec,
            }))
            .map_err(|e| (step_name.to_string(), e.to_string()))?;
            self.dvs_api()
                .create(&PostParams::default(), &dv)
                .await
                .map_err(|e| (step_name.to_string(), e.to_string()))?;
        }
        Ok(())
    }

    /// Polls the VM's DataVolumes until each is in a phase `done` accepts, reflecting their
    /// progress in the step (migration.go `updateCopyProgress`).
    async fn wait_dvs(
        &self,
        key: &str,
        v: &InvVm,
        step: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<(), (String, String)> {
        loop {
            let dvs = self.dvs_of(&v.id).await;
            let mut per: Vec<i64> = vec![0; v.disks.len()];
            let mut all = !dvs.is_empty();
            for dv in &dvs {
                let i: usize = s(dv, "/metadata/annotations/forklift.konveyor.io~1disk-index")
                    .parse()
                    .unwrap_or(0);
                let total = v.disks.get(i).map_or(0, |d| mb(d.size));
                let phase = s(dv, "/status/phase");
                if phase == "Failed" {
                    return Err((
                        step.to_string(),
                        format!("DataVolume {} failed", s(dv, "/metadata/name")),
                    ));
                }
                let frac = s(dv, "/status/progress")
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .map_or(0.0, |p| p / 100.0);
                let ok = done(phase);
                if let Some(x) = per.get_mut(i) {
                    *x = if ok {
                        total
                    } else {
                        (total as f64 * frac) as i64
                    };
                }
                all &= ok;
            }
            self.progress(key, step, per.iter().sum(), &per);
            self.flush().await;
            if all {
                return Ok(());
            }
            self.sleep(POLL_SECONDS).await;
        }
    }

    /// setDataVolumeCheckpoints (vSphere adapter client.go `SetCheckpoints`): `previous` =
    /// the disk's change ID at the previous precopy, `current` = the newest snapshot.
    async fn add_checkpoint(
        &self,
        key: &str,
        v: &InvVm,
        last: bool,
    ) -> Result<(), (String, String)> {
        let step = if last {
            steps::CUTOVER
        } else {
            steps::DISK_TRANSFER
        };
        let Some(w) = self.snapshot(key).and_then(|s| s.warm) else {
            return Ok(());
        };
        let n = w.precopies.len();
        if n < 2 {
            return Ok(());
        }
        let (prev, cur) = (&w.precopies[n - 2], &w.precopies[n - 1]);
        for dv in self.dvs_of(&v.id).await {
            let file = s(&dv, "/spec/source/vddk/backingFile");
            let previous = prev
                .deltas
                .iter()
                .find(|d| d.disk == file)
                .map(|d| d.delta_id.clone())
                .unwrap_or_default();
            let mut cps = dv
                .pointer("/spec/checkpoints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            cps.push(json!({ "previous": previous, "current": cur.snapshot }));
            self.dvs_api()
                .patch(
                    s(&dv, "/metadata/name"),
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({ "spec": { "checkpoints": cps, "finalCheckpoint": last } }),
                    ),
                )
                .await
                .map_err(|e| (step.to_string(), e.to_string()))?;
        }
        Ok(())
    }

    /// CreateVM (kubevirt.go `EnsureVM` / `virtualMachine`, builder.go `VirtualMachine`,
    /// `mapNetworks`): the VM with Forklift's labels, the Plan's `targetLabels` on the
    /// template, each NIC with its source MAC on the network the NetworkMap names, the
    /// disks as PVCs, the run strategy from `targetPowerState` (`determineRunStrategy`);
    /// then the PVCs are owned by the VM and the DataVolumes deleted.
    async fn create_vm(&self, key: &str, v: &InvVm, name: &str) -> Result<(), (String, String)> {
        let step = steps::VM_CREATION;
        self.phase(key, "CreateVM", step).await;
        let err = |e: String| (step.to_string(), e);
        let st = self.snapshot(key).unwrap_or_default();
        let ns = self.target_ns();
        // Networks.
        let mut networks = Vec::new();
        let mut interfaces = Vec::new();
        let pairs: Vec<Value> = self
            .network_map
            .as_ref()
            .and_then(|m| m.pointer("/spec/map").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        for nic in &v.nics {
            let Some(pair) = pairs.iter().find(|p| {
                Inventory::resolve(&self.inv.networks, p.get("source").unwrap_or(&Value::Null))
                    .as_deref()
                    == Some(nic.network_id.as_str())
            }) else {
                continue;
            };
            let dest = pair.get("destination").cloned().unwrap_or_default();
            let ty = s(&dest, "/type");
            if ty == "ignored" {
                continue;
            }
            let net = format!("net-{}", networks.len());
            let mut iface = json!({ "name": net, "model": "virtio", "macAddress": nic.mac });
            let mut network = json!({ "name": net });
            if ty == "multus" {
                let nns = if s(&dest, "/namespace").is_empty() {
                    ns.clone()
                } else {
                    s(&dest, "/namespace").to_string()
                };
                network["multus"] =
                    json!({ "networkName": format!("{nns}/{}", s(&dest, "/name")) });
                iface["bridge"] = json!({});
            } else {
                network["pod"] = json!({});
                iface["masquerade"] = json!({});
            }
            networks.push(network);
            interfaces.push(iface);
        }
        // Disks: the PVCs of the VM's DataVolumes, by disk index.
        let mut dvs = self.dvs_of(&v.id).await;
        dvs.sort_by_key(|dv| {
            s(dv, "/metadata/annotations/forklift.konveyor.io~1disk-index")
                .parse::<usize>()
                .unwrap_or(0)
        });
        let mut disks = Vec::new();
        let mut volumes = Vec::new();
        for (i, dv) in dvs.iter().enumerate() {
            let vol = format!("vol-{i}");
            let mut disk = json!({ "name": vol, "disk": { "bus": "virtio" } });
            if i == 0 {
                disk["bootOrder"] = json!(1);
            }
            disks.push(disk);
            volumes.push(json!({ "name": vol, "persistentVolumeClaim": { "claimName": s(dv, "/metadata/name") } }));
        }
        // determineRunStrategy: the VM's, else the Plan's targetPowerState; auto/unset:
        // as the source was.
        let target = if !st.target_power_state.is_empty() {
            st.target_power_state.clone()
        } else {
            s(&self.plan, "/spec/targetPowerState").to_string()
        };
        let run_strategy = match target.as_str() {
            "on" => "Always",
            "off" => "Halted",
            _ if st.restore_power_state == "On" => "Always",
            _ => "Halted",
        };
        let mut tlabels: BTreeMap<String, String> = self
            .plan
            .pointer("/spec/targetLabels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        tlabels.insert(fl::APP.to_string(), name.to_string());
        let mut labels = self.labels(&v.id);
        labels.insert(fl::GUEST_CONVERTED.to_string(), "true".to_string());
        let mut meta = json!({ "name": name, "namespace": ns, "labels": labels });
        if name != v.name {
            meta["annotations"] =
                json!({ "openshift.io/display-name": v.name, "original-ID": v.id });
        }
        let mut tspec = json!({
            "domain": {
                "cpu": { "cores": 1, "sockets": 2 },
                "memory": { "guest": "4Gi" },
                "resources": {},
                "features": { "acpi": {} },
                "firmware": { "bootloader": { "bios": {} } },
                "devices": { "disks": disks, "interfaces": interfaces },
            },
            "networks": networks,
            "volumes": volumes,
        });
        if let Some(sel) = self.plan.pointer("/spec/targetNodeSelector") {
            tspec["nodeSelector"] = sel.clone();
        }
        if let Some(aff) = self.plan.pointer("/spec/targetAffinity") {
            tspec["affinity"] = aff.clone();
        }
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": meta,
            "spec": {
                "runStrategy": run_strategy,
                "template": {
                    "metadata": {
                        "labels": tlabels,
                        "annotations": { "vm.kubevirt.io/flavor": "", "vm.kubevirt.io/os": "", "vm.kubevirt.io/workload": "" },
                    },
                    "spec": tspec,
                },
            },
        }))
        .map_err(|e| err(e.to_string()))?;
        let vms: Api<DynamicObject> = Api::namespaced_with(self.f.client.clone(), &ns, &vm_ar());
        // Converted by virt-v2v: the sim's KubeVirt boots it as a fixed guest.
        self.f.world.mark_converted(&ns, name, &v.name);
        let created = match vms.create(&PostParams::default(), &obj).await {
            Ok(o) => o,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                vms.get(name).await.map_err(|e| err(e.to_string()))?
            }
            Err(e) => return Err(err(e.to_string())),
        };
        // The PVCs are owned by the VM (not controlled), then the DataVolumes go.
        let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            Api::namespaced(self.f.client.clone(), &ns);
        for dv in &dvs {
            let _ = pvcs
                .patch(
                    s(dv, "/metadata/name"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "ownerReferences": [{
                        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": name,
                        "uid": created.metadata.uid, "blockOwnerDeletion": true, "controller": false,
                    }] } })),
                )
                .await;
            let _ = self
                .dvs_api()
                .delete(s(dv, "/metadata/name"), &Default::default())
                .await;
        }
        self.update(key, |st| {
            if let Some(s) = st.step_mut(step) {
                s.task.progress.completed = 1;
            }
        });
        Ok(())
    }
}
