//! The engine at run time, a thin I/O shell around the pure wave policy
//! ([`super::schedule::turn`]): shared watchers (one reflector per kind in the plan's
//! namespace, filtered by the plan label) are read into per-VM [`ClusterView`]s; each turn's
//! commands and effects run as tasks whose results come back as messages; one sleep wakes
//! it when the policy has something due; its events go to the front end. No per-VM polling; no shared mutable state
//! with the front ends.

use super::events::{
    now_ms, Emitter, EngineEvent, EngineHandle, EngineRequest, EventKind, LogLevel,
};
use super::ops::Ops;
use super::schedule::{
    self, ClusterView, Effect, Fleet, Input, MigrationView, Now, Settings, WindowClock,
};
use crate::checks::probe::Prober;
use crate::cluster::labels;
use crate::cluster::resources::{
    DataVolume, DvPhase, MigrationPhase, NetworkAttachmentDefinition, VirtualMachine,
    VirtualMachineInstance, VirtualMachineInstanceMigration,
};
use crate::engine::decide::warm::{DiskStages, ANN_CHANGE_ID};
use crate::engine::decide::{DiskObs, ImportProblem};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

/// Annotations CDI sets on a multi-stage import's PVC.
const CHECKPOINT_PREFIX: &str = "cdi.kubevirt.io/storage.checkpoint.";
/// `CHECKPOINT_PREFIX` + `copied.` + the checkpoint's `current`.
const CHECKPOINT_COPIED: &str = "cdi.kubevirt.io/storage.checkpoint.copied.";
use crate::plan::{NetworkModel, Plan};
use crate::source::SourceOps;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub use super::schedule::RunSummary;

mod forklift_view;

/// How a run is driven.
pub struct EngineConfig {
    pub plan: Arc<Plan>,
    pub client: Client,
    pub source: Option<Arc<dyn SourceOps>>,
    pub prober: Arc<dyn Prober>,
    /// Server-side dry run: preflight and a dry run of every object, then stop.
    pub dry_run: bool,
    /// Only these VMs (empty: all).
    pub only_vms: BTreeSet<String>,
    /// Waves started at once, run one after the other (empty: wait for `StartWave`).
    pub auto_waves: Vec<String>,
    /// Treat manual power-offs as confirmed (scripted runs).
    pub confirm_power_off: bool,
    /// Stop the engine when the started waves are done (headless runs).
    pub exit_when_done: bool,
    /// A booted VM whose guest agent has not connected after this long fails (the checks
    /// need the agent's view of the guest's IPs).
    pub agent_timeout: Duration,
    /// Pause between probes of an original IP that still answers; after
    /// [`schedule::GUARD_ATTEMPTS`] answers the VM fails at its cutover gate.
    pub guard_interval: Duration,
    /// The clock change windows are judged by (`None`: the wall clock). The rehearsal
    /// cluster's world has its own, faster clock.
    pub window_clock: Option<WindowClock>,
    /// Start cutovers outside their window (an operator's override).
    pub ignore_window: bool,
    /// The Forklift backend: the credentials and vCenter endpoint Forklift's source
    /// Provider gets (`None`: `forklift_provider` names an existing one).
    pub forklift_source: Option<(
        crate::source::Credentials,
        crate::cluster::forklift::SourceConn,
    )>,
    /// Each VM's drafted network policies, applied once it is verified when the plan says
    /// `policy = "apply"` (see [`crate::policy`]); empty: none.
    pub policies: BTreeMap<String, Vec<crate::policy::k8s::PolicyDoc>>,
}

/// The default guest-agent timeout.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(600);

/// The default pause between probes of an original IP that still answers.
pub const GUARD_INTERVAL: Duration = Duration::from_secs(5);

/// Commands executing at once (each is one to a few API requests or probes).
const COMMANDS_IN_FLIGHT: usize = 32;

struct Stores {
    dvs: Store<DataVolume>,
    vms: Store<VirtualMachine>,
    vmis: Store<VirtualMachineInstance>,
    nads: Store<NetworkAttachmentDefinition>,
    migs: Store<VirtualMachineInstanceMigration>,
    /// PVCs (names and CDI's checkpoint annotations), watched only when the plan has warm
    /// VMs: CDI marks a copied stage on the PVC.
    pvcs: Option<Store<PersistentVolumeClaim>>,
    /// The Forklift backend: its Plans and Migrations, and the Plan of each VM.
    forklift: Option<ForkliftStores>,
}

struct ForkliftStores {
    plans: forklift_view::Objects,
    migrations: forklift_view::Objects,
    groups: Vec<crate::cluster::forklift::PlanGroup>,
    group_of: Vec<Option<usize>>,
}

/// Malloc arenas for a process that runs the engine, set before its threads start.
///
/// glibc gives each thread that meets a locked arena a new one (up to 8 per core): the
/// engine's watch stores and per-VM state, built by tokio's workers and blocking threads
/// in turn, end up spread over a dozen arenas whose freed space the others cannot reuse.
/// Two arenas cut the peak RSS of a 3,000-VM run by about a fifth with the same wall time
/// (`benches/engine_wave.rs`). Elsewhere (other C libraries) this does nothing.
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
}

/// Returns the allocator's free pages to the system: called once the plan is loaded, its
/// parse (a span-carrying tree of the whole file, ten times its size and more) is free but
/// stays resident otherwise, under what the engine allocates next in other arenas.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only releases free memory of glibc's allocator.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = unsafe { libc::malloc_trim(0) };
}

/// Starts the engine; returns the front end's handle and the run's join handle.
pub fn spawn(
    cfg: EngineConfig,
) -> (
    EngineHandle,
    tokio::task::JoinHandle<anyhow::Result<RunSummary>>,
) {
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let (req_tx, req_rx) = mpsc::channel(64);
    let task = tokio::spawn(run(cfg, ev_tx, req_rx));
    (
        EngineHandle {
            events: ev_rx,
            requests: req_tx,
        },
        task,
    )
}

/// What a watch event changed, for the run loop to read again: only the VMs it names get a
/// new view (a turn costs what changed, not the fleet).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Touched {
    /// An object of this name: a VM, VMI, DataVolume, its PVC, or a network's NAD.
    Named(String),
    /// A live migration.
    Migrations,
    /// The watch listed again (a restart or a resync): anything may have changed.
    All,
}

/// Starts one shared watcher feeding a reflector store. `trim` drops what the engine never
/// reads before the object is stored (templates, specs, managedFields): memory stays flat
/// at thousands of VMs. Each event is reported on `changed` (`touched` says what it names)
/// once the store holds it.
fn watch_into<K>(
    api: Api<K>,
    selector: &str,
    changed: mpsc::UnboundedSender<Touched>,
    trim: fn(&mut K),
    touched: fn(&K) -> Touched,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let cfg = watcher::Config::default().labels(selector);
    let task = tokio::spawn(async move {
        let stream = watcher::watcher(api, cfg)
            .default_backoff()
            .modify(move |o| {
                // The views read names, labels (VMs) and two kinds of annotations: the
                // rest of the metadata is dropped (the watcher has already read the
                // resourceVersion it resumes from).
                let m = o.meta_mut();
                m.managed_fields = None;
                m.uid = None;
                m.resource_version = None;
                m.creation_timestamp = None;
                m.generation = None;
                m.generate_name = None;
                m.owner_references = None;
                m.finalizers = None;
                m.self_link = None;
                // Only warm migration's stage annotations and a cutover's records (the
                // power-off stamp, the VM's cutover record) are read.
                if let Some(a) = o.meta_mut().annotations.as_mut() {
                    a.retain(|k, _| {
                        k.starts_with(CHECKPOINT_PREFIX)
                            || k == ANN_CHANGE_ID
                            || k == labels::POWER_OFF
                            || k == crate::checks::report::ANN_CUTOVER
                    });
                }
                if o.meta().annotations.as_ref().is_some_and(|a| a.is_empty()) {
                    o.meta_mut().annotations = None;
                }
                trim(o);
            });
        let mut s = reflector::reflector(writer, stream).boxed();
        while let Some(ev) = s.next().await {
            let t = match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => touched(&o),
                Ok(watcher::Event::InitDone) => Touched::All,
                // The list's objects come before `InitDone`, which reports them at once.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "watch error (retrying with backoff)");
                    continue;
                }
            };
            if changed.send(t).is_err() {
                break;
            }
        }
    });
    (store, task)
}

/// An object reported by its name (see [`Touched`]).
fn named<K: kube::Resource>(o: &K) -> Touched {
    Touched::Named(o.meta().name.clone().unwrap_or_default())
}

/// The VMs whose view reads an object of each name: a VM and its VMI by the VM's name, a
/// DataVolume and its PVC by the DataVolume's, a NetworkAttachmentDefinition by the
/// network's (every L2 VM on it).
fn views_by_name(plan: &Plan) -> std::collections::HashMap<String, Vec<usize>> {
    let mut by: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for (i, vm) in plan.vms.iter().enumerate() {
        by.entry(vm.name.value.clone()).or_default().push(i);
        for d in 0..vm.disks.len() {
            by.entry(labels::data_volume_name(vm.name.as_str(), d))
                .or_default()
                .push(i);
        }
        if plan.model_of(vm) != NetworkModel::L3 {
            for n in &vm.nics {
                let e = by.entry(n.network.value.clone()).or_default();
                if e.last() != Some(&i) {
                    e.push(i);
                }
            }
        }
    }
    // A Forklift Plan (and its Migrations) by the Plan's name: every VM of the Plan.
    if plan.meta.backend.value == crate::plan::Backend::Forklift {
        for g in crate::cluster::forklift::plan_groups(plan) {
            let e = by.entry(g.name.clone()).or_default();
            e.extend(
                g.vms
                    .iter()
                    .filter_map(|n| plan.vms.iter().position(|v| *v.name == *n)),
            );
        }
    }
    by
}

/// Starts the watchers and waits until each listed once, so the first decisions see the
/// cluster as it is.
async fn watch_all(
    client: &Client,
    plan: &Plan,
    selector: &str,
    changed: mpsc::UnboundedSender<Touched>,
    warm: bool,
) -> anyhow::Result<(Stores, Vec<tokio::task::JoinHandle<()>>)> {
    let ns = plan.meta.namespace.as_str();
    let forklift = plan.meta.backend.value == crate::plan::Backend::Forklift;
    // Forklift creates the VirtualMachines with its own labels (wavelift's are only in
    // their template until wavelift adopts them): every Forklift VM of the namespace.
    let vm_selector = if forklift {
        format!(
            "{}={ns}",
            crate::cluster::forklift_types::labels::PLAN_NAMESPACE
        )
    } else {
        selector.to_string()
    };
    // The engine reads: DataVolume status; VM runStrategy; VMI status; NAD and migration
    // names and status. Everything else is dropped before it is stored.
    let (dvs, t1) = watch_into(
        Api::<DataVolume>::namespaced(client.clone(), ns),
        selector,
        changed.clone(),
        |dv| {
            dv.metadata.labels = None;
            dv.spec.source = serde_json::Value::Null;
            dv.spec.storage = serde_json::Value::Null;
            // `disk_obs` reads the phase, progress, restarts and the `Bound` and
            // `Running` conditions (not their times).
            if let Some(s) = dv.status.as_mut() {
                s.claim_name = None;
                s.conditions
                    .retain(|c| c.type_ == "Bound" || c.type_ == "Running");
                for c in &mut s.conditions {
                    c.last_transition_time = None;
                }
            }
        },
        named,
    );
    let (vms, t2) = watch_into(
        Api::<VirtualMachine>::namespaced(client.clone(), ns),
        &vm_selector,
        changed.clone(),
        // Labels (whose VM it is) and the run strategy are read.
        |vm| {
            vm.spec.template = serde_json::Value::Null;
            vm.spec.data_volume_templates = Vec::new();
            vm.status = None;
        },
        named,
    );
    let (vmis, t3) = watch_into(
        Api::<VirtualMachineInstance>::namespaced(client.clone(), ns),
        selector,
        changed.clone(),
        // The phase, node, `AgentConnected` and (for the checks) the interfaces are read.
        |vmi| {
            vmi.metadata.labels = None;
            vmi.spec.rest.clear();
            if let Some(s) = vmi.status.as_mut() {
                s.migration_state = None;
                s.conditions.retain(|c| c.type_ == "AgentConnected");
                for c in &mut s.conditions {
                    c.reason = None;
                    c.message = None;
                    c.last_transition_time = None;
                }
            }
        },
        named,
    );
    let (nads, t4) = watch_into(
        Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), ns),
        selector,
        changed.clone(),
        |nad| {
            nad.metadata.labels = None;
            nad.spec.config = String::new();
        },
        named,
    );
    let changed_pvcs = changed.clone();
    let changed_fk = changed.clone();
    let (migs, t5) = watch_into(
        Api::<VirtualMachineInstanceMigration>::namespaced(client.clone(), ns),
        selector,
        changed,
        |m| m.metadata.labels = None,
        |_| Touched::Migrations,
    );
    let mut tasks = vec![t1, t2, t3, t4, t5];
    let pvcs = if warm {
        // Every PVC of the namespace: CDI's PVC need not carry the DataVolume's labels.
        let (pvcs, t6) = watch_into(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
            "",
            changed_pvcs,
            |pvc| {
                pvc.spec = None;
                pvc.status = None;
                pvc.metadata.labels = None;
            },
            named,
        );
        tasks.push(t6);
        Some(pvcs)
    } else {
        None
    };
    let mut fk_ready = Vec::new();
    let forklift = if forklift {
        let plans = forklift_view::Objects::default();
        let migrations = forklift_view::Objects::default();
        for (kind, objects) in [("Plan", plans.clone()), ("Migration", migrations.clone())] {
            let (t, ready) = forklift_view::watch(
                Api::namespaced_with(
                    client.clone(),
                    ns,
                    &super::preflight::forklift::resource(kind),
                ),
                selector,
                objects,
                changed_fk.clone(),
                |v| Touched::Named(forklift_view::plan_of(v)),
                || Touched::All,
            );
            tasks.push(t);
            fk_ready.push(ready);
        }
        let groups = crate::cluster::forklift::plan_groups(plan);
        let group_of = plan
            .vms
            .iter()
            .map(|v| {
                groups
                    .iter()
                    .position(|g| g.vms.iter().any(|n| *n == *v.name))
            })
            .collect();
        Some(ForkliftStores {
            plans,
            migrations,
            groups,
            group_of,
        })
    } else {
        None
    };
    let stores = Stores {
        dvs,
        vms,
        vmis,
        nads,
        migs,
        pvcs,
        forklift,
    };
    let ready = async {
        let _ = stores.dvs.wait_until_ready().await;
        let _ = stores.vms.wait_until_ready().await;
        let _ = stores.vmis.wait_until_ready().await;
        let _ = stores.nads.wait_until_ready().await;
        let _ = stores.migs.wait_until_ready().await;
        if let Some(p) = &stores.pvcs {
            let _ = p.wait_until_ready().await;
        }
        for r in fk_ready {
            let _ = r.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .is_err()
    {
        anyhow::bail!("the cluster's watches did not sync within 30 s");
    }
    Ok((stores, tasks))
}

async fn run(
    cfg: EngineConfig,
    events: mpsc::Sender<EngineEvent>,
    mut requests: mpsc::Receiver<EngineRequest>,
) -> anyhow::Result<RunSummary> {
    let plan = cfg.plan.clone();
    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel::<Touched>();
    let c = &cfg.client;
    let (stores, watch_tasks) = watch_all(
        c,
        &plan,
        &labels::plan_selector(plan.meta.name.as_str()),
        changed_tx,
        plan.meta.backend.value != crate::plan::Backend::Forklift
            && plan
                .vms
                .iter()
                .any(|v| plan.migration_of(v) == crate::plan::Migration::Warm),
    )
    .await?;
    let emit = Emitter::new(events.clone());

    let missing_crds = super::preflight::missing_crds(c).await;
    match &missing_crds {
        Err(e) => {
            emit.log(LogLevel::Error, format!("discovery failed: {e}"))
                .await
        }
        Ok(m) if !m.is_empty() => {
            emit.log(LogLevel::Error, format!("missing CRDs: {}", m.join(", ")))
                .await
        }
        Ok(_) => {}
    }
    let mut ops = Ops::new(
        plan.clone(),
        cfg.client.clone(),
        cfg.source.clone(),
        cfg.prober.clone(),
        cfg.dry_run,
        emit.clone(),
        missing_crds,
        Some(stores.vmis.clone()),
    );
    ops.set_forklift_source(cfg.forklift_source.clone());
    // The rehearsal world's clock runs faster; its source VMs shut down on that clock.
    ops.source_speed = cfg.window_clock.map_or(1.0, |c| c.speed);
    let apply_policies = plan.meta.policy.value == crate::plan::PolicyMode::Apply;
    if apply_policies {
        ops.policies = Arc::new(cfg.policies.clone());
    }
    let ops = Arc::new(ops);
    if let Some(p) = ops.probes() {
        p.sweep("start of the run").await;
    }
    let mut fleet = Fleet::new(
        plan.clone(),
        Settings {
            dry_run: cfg.dry_run,
            only_vms: cfg.only_vms.clone(),
            auto_waves: cfg.auto_waves.clone(),
            confirm_power_off: cfg.confirm_power_off,
            exit_when_done: cfg.exit_when_done,
            agent_timeout: cfg.agent_timeout,
            guard_interval: cfg.guard_interval,
            window_clock: cfg
                .window_clock
                .unwrap_or_else(|| WindowClock::wall(now_ms())),
            ignore_window: cfg.ignore_window,
            policy_vms: if apply_policies {
                cfg.policies
                    .iter()
                    .filter(|(_, docs)| !docs.is_empty())
                    .map(|(vm, _)| vm.clone())
                    .collect()
            } else {
                BTreeSet::new()
            },
        },
    );
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<Input>();
    let permits = Arc::new(tokio::sync::Semaphore::new(COMMANDS_IN_FLIGHT));
    let start = tokio::time::Instant::now();
    let mut inputs: Vec<Input> = Vec::new();
    let mut records: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // What the watches changed since the last turn: those VMs get a new view (all of them
    // at the start), live migrations when one changed.
    let by_name = views_by_name(&plan);
    let mut dirty: BTreeSet<usize> = (0..plan.vms.len()).collect();
    let mut migrations_changed = true;
    let note = |t: Touched, dirty: &mut BTreeSet<usize>, migrations: &mut bool| match t {
        Touched::Named(name) => {
            if let Some(vms) = by_name.get(&name) {
                dirty.extend(vms.iter().copied());
            }
        }
        Touched::Migrations => *migrations = true,
        Touched::All => {
            dirty.extend(0..plan.vms.len());
            *migrations = true;
        }
    };
    loop {
        // The changed VMs as the watches show them now.
        inputs.extend(
            std::mem::take(&mut dirty)
                .into_iter()
                .map(|vm| Input::Cluster {
                    vm,
                    view: view(&plan, &stores, vm),
                }),
        );
        if std::mem::take(&mut migrations_changed) {
            inputs.extend(migration_views(&stores));
        }
        let now = Now {
            elapsed: start.elapsed(),
            unix_ms: now_ms(),
        };
        let turn = schedule::turn(&mut fleet, inputs.drain(..), now);
        for ev in turn.events {
            emit.send(ev).await;
        }
        for (vm, cmd) in turn.commands {
            let (ops, tx, permits) = (ops.clone(), msg_tx.clone(), permits.clone());
            // The objects a cutover writes after the power-off carry its stamp.
            let stamp = fleet.power_off_stamp(vm);
            tokio::spawn(async move {
                // At most COMMANDS_IN_FLIGHT commands talk to the cluster at once: a
                // 5,000-VM wave starts with 5,000 preflights, not 5,000 open requests.
                let _permit = permits.acquire_owned().await;
                // Boxed, so a command waiting for its permit is a few bytes, not the whole
                // (large) `execute` future: thousands of them wait at the start of a big
                // wave.
                let result = Box::pin(ops.execute(&ops.plan.vms[vm], &cmd, stamp))
                    .await
                    .map_err(|e| e.to_string());
                let _ = tx.send(Input::Done { vm, cmd, result });
            });
        }
        for effect in turn.effects {
            if let Some(h) = run_effect(effect, &ops, &emit) {
                // A finished task's handle holds its whole (large) future: only the
                // records still being written are kept.
                records.retain(|h| !h.is_finished());
                records.push(h);
            }
        }
        // One timer: the policy says when it next has something due.
        let wake = turn.wake_at.map(|at| start + at);
        if turn.exit {
            break;
        }
        // Wait for something to change.
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => inputs.push(Input::Wake),
            Some(t) = changed_rx.recv() => note(t, &mut dirty, &mut migrations_changed),
            Some(i) = msg_rx.recv() => inputs.push(i),
            req = requests.recv() => match req {
                None | Some(EngineRequest::Shutdown) => break,
                Some(req) => inputs.push(Input::Request(req)),
            },
        }
        // Coalesce bursts: take what is already queued before deciding again.
        while let Ok(i) = msg_rx.try_recv() {
            inputs.push(i);
        }
        while let Ok(t) = changed_rx.try_recv() {
            note(t, &mut dirty, &mut migrations_changed);
        }
    }
    for t in watch_tasks {
        t.abort();
    }
    // The cutovers' records (for `verify`) are written before the run ends.
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        futures::future::join_all(records.into_iter().filter(|h| !h.is_finished())),
    )
    .await;
    if let Some(p) = ops.probes() {
        p.sweep("end of the run").await;
    }
    Ok(fleet.summary())
}

/// Starts an operator-requested side effect.
/// Returns the task of an effect the run must see finished before it ends (a cutover's
/// record).
fn run_effect(
    effect: Effect,
    ops: &Arc<Ops>,
    emit: &Emitter,
) -> Option<tokio::task::JoinHandle<()>> {
    let ops = ops.clone();
    let emit = emit.clone();
    match effect {
        Effect::ReplaceUnfinishedDisks { vm } => {
            tokio::spawn(async move {
                let vm = &ops.plan.vms[vm];
                if let Err(e) = ops.delete_disks(vm, true).await {
                    emit.vm(
                        vm,
                        EventKind::Log {
                            level: LogLevel::Error,
                            message: format!("retry: {e}"),
                        },
                    )
                    .await;
                }
            });
        }
        Effect::RecordCutover { vm, record } => {
            // Boxed: the task (and its handle until it finishes) is a few bytes.
            return Some(tokio::spawn(Box::pin(async move {
                let vm = &ops.plan.vms[vm];
                if let Err(e) = ops.record_cutover(vm, &record).await {
                    emit.vm(
                        vm,
                        EventKind::Log {
                            level: LogLevel::Warn,
                            message: format!("the cutover's record for verify reports: {e}"),
                        },
                    )
                    .await;
                }
            })));
        }
        Effect::Migrate { vm } => {
            tokio::spawn(async move {
                let vm = ops.plan.vms[vm].clone();
                // Phases reach the front end through the engine's watch on migrations.
                let (tx, mut rx) = mpsc::channel(16);
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                if let Err(e) = super::migrate::migrate(
                    ops.client.clone(),
                    ops.plan.clone(),
                    &vm,
                    ops.prober.clone(),
                    emit.clone(),
                    tx,
                    Duration::from_secs(900),
                )
                .await
                {
                    emit.vm(
                        &vm,
                        EventKind::Log {
                            level: LogLevel::Error,
                            message: format!("live migration of {}: {e:#}", vm.name.value),
                        },
                    )
                    .await;
                }
            });
        }
    }
    None
}

/// Every live migration's view, read from the watch store.
fn migration_views(st: &Stores) -> Vec<Input> {
    let mut out = Vec::new();
    out.extend(st.migs.state().iter().map(|m| {
        let state = m
            .status
            .as_ref()
            .and_then(|s| s.migration_state.clone())
            .unwrap_or_default();
        Input::Migration(MigrationView {
            name: m.metadata.name.clone().unwrap_or_default(),
            vm: m.spec.vmi_name.clone(),
            phase: m
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or(MigrationPhase::Pending),
            source_node: state.source_node,
            target_node: state.target_node,
        })
    }));
    out
}

/// One DataVolume as the engine judges it: CDI's phase, progress, restarts, and the
/// condition that says why the import does not run (`Bound` False: `AwaitingVDDK`;
/// `Running` False: the importer container's reason and message), following CDI's
/// `pkg/controller/datavolume/conditions.go`.
fn disk_obs(dv: &DataVolume) -> DiskObs {
    let s = dv.status.clone().unwrap_or_default();
    let cond = |t: &str| s.conditions.iter().find(|c| c.type_ == t);
    let problem = |t: &str| {
        cond(t).filter(|c| c.status == "False").and_then(|c| {
            let reason = c.reason.clone().unwrap_or_default();
            (!reason.is_empty() && reason != "Completed").then(|| ImportProblem {
                condition: t.to_string(),
                reason,
                message: c.message.clone().unwrap_or_default(),
            })
        })
    };
    match s.phase.clone() {
        Some(DvPhase::Succeeded) => DiskObs::Succeeded,
        Some(DvPhase::Failed) => DiskObs::Failed(
            cond("Running")
                .and_then(|c| c.message.clone())
                .unwrap_or_else(|| "import failed".into()),
        ),
        other => DiskObs::Importing {
            phase: other.unwrap_or(DvPhase::Pending),
            progress: s.progress_fraction(),
            restarts: u32::try_from(s.restart_count).unwrap_or(0),
            problem: problem("Bound").or_else(|| problem("Running")),
        },
    }
}

/// One disk's multi-stage import: the DataVolume's checkpoints and recorded change ID, and
/// the checkpoints its PVC says are copied (CDI sets
/// `cdi.kubevirt.io/storage.checkpoint.copied.<current>` on the PVC,
/// `pkg/controller/import-controller.go`).
fn stages(st: &Stores, ns: &str, name: &str) -> DiskStages {
    let Some(dv) = st.dvs.get(&ObjectRef::new(name).within(ns)) else {
        return DiskStages::default();
    };
    let copied = st
        .pvcs
        .as_ref()
        .and_then(|p| p.get(&ObjectRef::new(name).within(ns)))
        .and_then(|pvc| pvc.metadata.annotations.clone())
        .map(|a| {
            a.keys()
                .filter_map(|k| k.strip_prefix(CHECKPOINT_COPIED))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let change_id = dv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_CHANGE_ID))
        .and_then(|v| v.split_once('='))
        .map(|(s, id)| (s.to_string(), id.to_string()));
    DiskStages {
        checkpoints: dv
            .spec
            .checkpoints
            .iter()
            .map(|c| (c.previous.clone(), c.current.clone()))
            .collect(),
        final_checkpoint: dv.spec.final_checkpoint == Some(true),
        copied,
        change_id,
    }
}

/// One VM as the watch stores show it.
fn view(plan: &Plan, st: &Stores, i: usize) -> ClusterView {
    let vm = &plan.vms[i];
    let ns = plan.meta.namespace.as_str();
    let disks = (0..vm.disks.len())
        .map(|d| {
            let name = labels::data_volume_name(vm.name.as_str(), d);
            st.dvs
                .get(&ObjectRef::new(&name).within(ns))
                .map_or(DiskObs::Absent, |dv| disk_obs(&dv))
        })
        .collect();
    let networks_ready = plan.model_of(vm) == NetworkModel::L3
        || vm.nics.iter().all(|n| {
            st.nads
                .get(&ObjectRef::new(n.network.as_str()).within(ns))
                .is_some()
        });
    let vm_obj = st
        .vms
        .get(&ObjectRef::new(vm.name.as_str()).within(ns))
        // The Forklift backend watches every Forklift VM of the namespace: only this VM's
        // Plan's (or one wavelift labelled for it) is this VM.
        .filter(|v| {
            st.forklift.is_none()
                || v.metadata.labels.as_ref().is_some_and(|l| {
                    l.get(labels::PLAN).map(String::as_str) == Some(plan.meta.name.as_str())
                        && l.get(labels::VM).map(String::as_str) == Some(vm.name.as_str())
                })
                || st.forklift.as_ref().is_some_and(|f| {
                    f.group_of.get(i).copied().flatten().is_some_and(|g| {
                        crate::cluster::forklift::made_for(
                            &v.metadata.labels,
                            ns,
                            &f.groups[g].name,
                        )
                    })
                })
        });
    // What an earlier run recorded of the cutover: the VM's record and power-off stamp,
    // else any of its DataVolumes' stamp.
    let vm_ann = vm_obj
        .as_ref()
        .and_then(|v| v.metadata.annotations.as_ref());
    let recorded_downtime_ms = vm_ann
        .and_then(|a| a.get(crate::checks::report::ANN_CUTOVER))
        .and_then(|r| serde_json::from_str::<crate::checks::report::CutoverRecord>(r).ok())
        .map(|r| r.downtime_ms);
    let power_off = labels::PowerOffStamp::read(vm_ann).or_else(|| {
        (0..vm.disks.len()).find_map(|d| {
            let name = labels::data_volume_name(vm.name.as_str(), d);
            st.dvs
                .get(&ObjectRef::new(&name).within(ns))
                .and_then(|dv| labels::PowerOffStamp::read(dv.metadata.annotations.as_ref()))
        })
    });
    let vm_labelled = vm_obj.as_ref().is_some_and(|v| {
        v.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get(labels::VM).map(String::as_str) == Some(vm.name.as_str()))
    });
    let vm_started = vm_obj.map(|v| {
        matches!(
            v.spec.run_strategy.as_deref(),
            Some("Always") | Some("RerunOnFailure") | Some("Once")
        )
    });
    let forklift = st.forklift.as_ref().and_then(|f| {
        let g = f.group_of.get(i).copied().flatten()?;
        Some(forklift_view::view(
            &f.groups[g],
            vm.name.as_str(),
            plan.migration_of(vm) == crate::plan::Migration::Warm,
            &f.plans,
            &f.migrations,
        ))
    });
    let vmi_status = st
        .vmis
        .get(&ObjectRef::new(vm.name.as_str()).within(ns))
        .and_then(|v| v.status.clone());
    let stages = if super::decide::warm::ctx_for(plan, vm).is_some() && st.forklift.is_none() {
        (0..vm.disks.len())
            .map(|d| stages(st, ns, &labels::data_volume_name(vm.name.as_str(), d)))
            .collect()
    } else {
        Vec::new()
    };
    ClusterView {
        stages,
        disks,
        networks_ready,
        vm_started,
        agent_connected: vmi_status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "AgentConnected" && c.status == "True")
        }),
        node: vmi_status.as_ref().and_then(|s| s.node_name.clone()),
        vmi_phase: vmi_status.and_then(|s| s.phase),
        forklift,
        vm_labelled,
        power_off,
        recorded_downtime_ms,
    }
}
