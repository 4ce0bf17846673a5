//! The engine at run time: shared watchers (one reflector per kind in the plan's namespace,
//! filtered by the plan label) feed one loop that re-decides every VM on each change, hands
//! out import and cutover slots per wave, and runs commands as tasks whose results come back
//! as messages. No per-VM polling; no shared mutable state with the front ends.

use super::decide::{
    decide, Command, Control, Decision, DiskObs, Gate, IpGuard, Observed, Phase, Power, Status,
    Step, VmContext,
};
use super::events::{EngineEvent, EngineHandle, EngineRequest, EventKind, LogLevel};
use super::ops::{now_ms, Ops, Update};
use crate::checks::probe::Prober;
use crate::cluster::labels;
use crate::cluster::resources::{
    DataVolume, NetworkAttachmentDefinition, VirtualMachine, VirtualMachineInstance,
    VirtualMachineInstanceMigration,
};
use crate::plan::{NetworkModel, Plan, PowerOff};
use crate::source::SourceOps;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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
    /// Pause between probes of an original IP that still answers; after 12 answers the VM
    /// fails at its cutover gate.
    pub guard_interval: Duration,
}

/// The default guest-agent timeout.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(600);

/// The default pause between probes of an original IP that still answers.
pub const GUARD_INTERVAL: Duration = Duration::from_secs(5);

/// How a run ended, per VM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub verified: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub rolled_back: Vec<String>,
    pub cancelled: Vec<String>,
    pub dry_run_ok: Vec<String>,
    pub unfinished: Vec<String>,
}

const GUARD_ATTEMPTS: u32 = 12;

/// Commands executing at once (each is one to a few API requests or probes).
const COMMANDS_IN_FLIGHT: usize = 32;

#[derive(Default)]
struct Mem {
    preflight: Gate,
    source_power: Power,
    power_off_confirmed: bool,
    ip_guard: IpGuard,
    checks: Gate,
}

struct VmRun {
    idx: usize,
    /// Plan indices of the VMs in `after` (resolved once: plan validation guarantees they
    /// exist).
    deps: Vec<usize>,
    ctx: VmContext,
    mem: Mem,
    control: Control,
    in_flight: HashSet<Command>,
    /// Commands finished in the current step (cleared when the step changes).
    done: HashSet<Command>,
    failed: Option<(Step, String)>,
    import_slot: bool,
    cutover_slot: bool,
    guard_attempts: u32,
    last: Option<Phase>,
    last_node: Option<String>,
    asked_power_off: bool,
    /// When the VM entered its current step and status.
    since: std::time::Instant,
}

struct Stores {
    dvs: Store<DataVolume>,
    vms: Store<VirtualMachine>,
    vmis: Store<VirtualMachineInstance>,
    nads: Store<NetworkAttachmentDefinition>,
    migs: Store<VirtualMachineInstanceMigration>,
}

enum Msg {
    /// Re-decide (a timer fired).
    Tick,
    Done {
        vm: usize,
        cmd: Command,
        result: Result<Update, String>,
    },
    Reprobe {
        vm: usize,
    },
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

/// Starts one shared watcher feeding a reflector store. `trim` drops what the engine never
/// reads before the object is stored (templates, specs, managedFields): memory stays flat
/// at thousands of VMs.
fn watch_into<K>(
    api: Api<K>,
    selector: &str,
    changed: mpsc::Sender<()>,
    trim: fn(&mut K),
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
                o.meta_mut().managed_fields = None;
                o.meta_mut().annotations = None;
                trim(o);
            });
        let mut s = reflector::reflector(writer, stream).boxed();
        while let Some(ev) = s.next().await {
            if let Err(e) = ev {
                tracing::warn!(error = %e, "watch error (retrying with backoff)");
            }
            let _ = changed.try_send(());
        }
    });
    (store, task)
}

async fn run(
    cfg: EngineConfig,
    events: mpsc::Sender<EngineEvent>,
    mut requests: mpsc::Receiver<EngineRequest>,
) -> anyhow::Result<RunSummary> {
    let plan = cfg.plan.clone();
    let ns = plan.meta.namespace.value.clone();
    let sel = labels::plan_selector(plan.meta.name.as_str());
    let (changed_tx, mut changed_rx) = mpsc::channel::<()>(1);
    let c = &cfg.client;
    // The engine reads: DataVolume status; VM runStrategy; VMI status; NAD and migration
    // names and status. Everything else is dropped before it is stored.
    let (dvs, t1) = watch_into(
        Api::<DataVolume>::namespaced(c.clone(), &ns),
        &sel,
        changed_tx.clone(),
        |dv| {
            dv.spec.source = serde_json::Value::Null;
            dv.spec.storage = serde_json::Value::Null;
        },
    );
    let (vms, t2) = watch_into(
        Api::<VirtualMachine>::namespaced(c.clone(), &ns),
        &sel,
        changed_tx.clone(),
        |vm| vm.spec.template = serde_json::Value::Null,
    );
    let (vmis, t3) = watch_into(
        Api::<VirtualMachineInstance>::namespaced(c.clone(), &ns),
        &sel,
        changed_tx.clone(),
        |vmi| vmi.spec.rest.clear(),
    );
    let (nads, t4) = watch_into(
        Api::<NetworkAttachmentDefinition>::namespaced(c.clone(), &ns),
        &sel,
        changed_tx.clone(),
        |nad| nad.spec.config.clear(),
    );
    let (migs, t5) = watch_into(
        Api::<VirtualMachineInstanceMigration>::namespaced(c.clone(), &ns),
        &sel,
        changed_tx.clone(),
        |_| {},
    );
    let watch_tasks = [t1, t2, t3, t4, t5];
    let stores = Stores {
        dvs,
        vms,
        vmis,
        nads,
        migs,
    };

    let log = |level: LogLevel, message: String| EngineEvent {
        vm: String::new(),
        wave: String::new(),
        at_ms: now_ms(),
        kind: EventKind::Log { level, message },
    };
    let missing_crds = super::ops::missing_crds(c).await;
    match &missing_crds {
        Err(e) => {
            let _ = events
                .send(log(LogLevel::Error, format!("discovery failed: {e}")))
                .await;
        }
        Ok(m) if !m.is_empty() => {
            let _ = events
                .send(log(
                    LogLevel::Error,
                    format!("missing CRDs: {}", m.join(", ")),
                ))
                .await;
        }
        Ok(_) => {}
    }
    // Wait until every watcher listed once, so the first decisions see the cluster as it is.
    let ready = async {
        let _ = stores.dvs.wait_until_ready().await;
        let _ = stores.vms.wait_until_ready().await;
        let _ = stores.vmis.wait_until_ready().await;
        let _ = stores.nads.wait_until_ready().await;
        let _ = stores.migs.wait_until_ready().await;
    };
    if tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .is_err()
    {
        anyhow::bail!("the cluster's watches did not sync within 30 s");
    }

    let ops = Arc::new(Ops::new(
        plan.clone(),
        cfg.client.clone(),
        cfg.source.clone(),
        cfg.prober.clone(),
        cfg.dry_run,
        events.clone(),
        missing_crds,
        Some(stores.vmis.clone()),
    ));
    let index: HashMap<&str, usize> = plan
        .vms
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.as_str(), i))
        .collect();
    let mut runs: Vec<VmRun> = plan
        .vms
        .iter()
        .enumerate()
        .map(|(idx, vm)| VmRun {
            idx,
            deps: vm
                .after
                .iter()
                .filter_map(|a| index.get(a.value.as_str()).copied())
                .collect(),
            ctx: VmContext {
                disk_bytes: vm.disks.iter().map(|d| d.size.bytes).collect(),
                power_off_by_api: plan.source.power_off == PowerOff::VsphereApi,
                has_checks: !plan.checks_for(vm).is_empty(),
            },
            mem: Mem {
                power_off_confirmed: cfg.confirm_power_off,
                ..Default::default()
            },
            control: Control::default(),
            in_flight: HashSet::new(),
            done: HashSet::new(),
            failed: None,
            import_slot: false,
            cutover_slot: false,
            guard_attempts: 0,
            last: None,
            last_node: None,
            asked_power_off: false,
            since: std::time::Instant::now(),
        })
        .collect();
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<Msg>();
    let permits = Arc::new(tokio::sync::Semaphore::new(COMMANDS_IN_FLIGHT));
    let mut active_waves: Vec<String> = Vec::new();
    let mut queue: Vec<String> = cfg.auto_waves.clone();
    if !queue.is_empty() {
        active_waves.push(queue.remove(0));
    }
    let mut migrations_seen: HashMap<String, String> = HashMap::new();
    let mut finished_waves: HashSet<String> = HashSet::new();

    let in_scope = |vm_idx: usize, active: &[String]| -> bool {
        let vm = &plan.vms[vm_idx];
        active.iter().any(|w| *w == *vm.wave)
            && (cfg.only_vms.is_empty() || cfg.only_vms.contains(vm.name.as_str()))
    };

    loop {
        // Re-decide everything from the current view.
        let mut decisions: Vec<Decision> = Vec::with_capacity(runs.len());
        for r in runs.iter() {
            let obs = observe(&plan, &stores, r, &runs);
            let mut d = decide(&r.ctx, &obs, r.control);
            if let Some((step, why)) = &r.failed {
                if !r.control.rollback && !r.control.cancel {
                    d = Decision {
                        phase: Phase {
                            step: *step,
                            status: Status::Failed(why.clone()),
                            progress: d.phase.progress,
                        },
                        commands: vec![],
                        wants_import_slot: false,
                        wants_cutover_slot: false,
                    };
                }
            }
            if cfg.dry_run && r.mem.preflight == Gate::Passed && !r.control.rollback {
                d = Decision {
                    phase: Phase {
                        step: Step::Preflight,
                        status: Status::Active,
                        progress: None,
                    },
                    commands: vec![],
                    wants_import_slot: false,
                    wants_cutover_slot: false,
                };
            }
            // A VM waiting for a dependency that failed fails too (it would wait forever).
            if d.phase.step == Step::Imported && matches!(d.phase.status, Status::Waiting(_)) {
                if let Some(&j) = r.deps.iter().find(|&&j| {
                    runs[j]
                        .last
                        .as_ref()
                        .is_some_and(|p| matches!(p.status, Status::Failed(_)))
                }) {
                    d.phase.status = Status::Failed(format!(
                        "waits for {}, which failed",
                        plan.vms[j].name.value
                    ));
                    d.wants_cutover_slot = false;
                }
            }
            // The guest agent gets `agent_timeout` to connect.
            if d.phase.step == Step::Running
                && matches!(d.phase.status, Status::Waiting(_))
                && r.last.as_ref().is_some_and(|p| p.step == Step::Running)
                && r.since.elapsed() >= cfg.agent_timeout
            {
                d.phase.status = Status::Failed(format!(
                    "guest agent not connected after {} s",
                    cfg.agent_timeout.as_secs()
                ));
            }
            // And the VM as long to be running: a started VM whose VMI never runs (no node
            // fits, an image that does not boot) fails with a reason instead of waiting on.
            if d.phase.step == Step::Booting
                && d.phase.status == Status::Active
                && r.last.as_ref().is_some_and(|p| p.step == Step::Booting)
                && r.since.elapsed() >= cfg.agent_timeout
            {
                d.phase.status = Status::Failed(format!(
                    "the VirtualMachineInstance is not running after {} s",
                    cfg.agent_timeout.as_secs()
                ));
            }
            decisions.push(d);
        }
        // Preflight gate per wave: no mutation in a wave while a VM of it waits on preflight.
        let mut wave_blocked: HashSet<String> = HashSet::new();
        // A failed preflight stops the wave's VMs that have not started: they fail with its
        // name (derived each turn, so once the operator fixes the cause and retries that VM
        // and its preflight passes, they go on). VMs already past preflight (a resumed run)
        // carry on.
        let mut preflight_failed: HashMap<&str, &str> = HashMap::new();
        for (i, d) in decisions.iter().enumerate() {
            if !in_scope(i, &active_waves)
                || !matches!(d.phase.step, Step::Pending | Step::Preflight)
            {
                continue;
            }
            match runs[i].mem.preflight {
                Gate::NotRun | Gate::Running => {
                    wave_blocked.insert(plan.vms[i].wave.value.clone());
                }
                Gate::Failed(_) => {
                    preflight_failed
                        .entry(plan.vms[i].wave.as_str())
                        .or_insert(plan.vms[i].name.as_str());
                }
                Gate::Passed => {}
            }
        }
        for (i, d) in decisions.iter_mut().enumerate() {
            let vm = &plan.vms[i];
            let Some(bad) = preflight_failed.get(vm.wave.as_str()) else {
                continue;
            };
            if *bad != vm.name.as_str()
                && runs[i].mem.preflight == Gate::Passed
                && matches!(d.phase.step, Step::Pending | Step::Preflight)
                && !matches!(d.phase.status, Status::Failed(_))
            {
                d.phase.status = Status::Failed(format!(
                    "the preflight of {bad} failed: nothing in wave {} starts until it passes",
                    vm.wave.value
                ));
                d.commands.clear();
                d.wants_import_slot = false;
                d.wants_cutover_slot = false;
            }
        }
        // Slots, in plan order per wave. A newly granted slot (or, below, a changed phase)
        // changes the next decisions, so the loop decides again at once instead of waiting
        // for the cluster; it settles because decisions are a function of the view.
        let mut slots_changed = false;
        for w in &plan.waves {
            let (mut imports, mut cutovers) = (0u32, 0u32);
            for (i, d) in decisions.iter().enumerate() {
                if *plan.vms[i].wave != *w.name {
                    continue;
                }
                let r = &mut runs[i];
                if !d.wants_import_slot {
                    r.import_slot = false;
                }
                if !d.wants_cutover_slot
                    && !matches!(
                        d.phase.step,
                        Step::CutoverGate
                            | Step::Created
                            | Step::Booting
                            | Step::Running
                            | Step::Verifying
                    )
                {
                    r.cutover_slot = false;
                }
                if matches!(d.phase.status, Status::Failed(_)) {
                    r.cutover_slot = false;
                    r.import_slot = false;
                }
                imports += r.import_slot as u32;
                cutovers += r.cutover_slot as u32;
            }
            for (i, d) in decisions.iter().enumerate() {
                if *plan.vms[i].wave != *w.name || !in_scope(i, &active_waves) || cfg.dry_run {
                    continue;
                }
                let r = &mut runs[i];
                if d.wants_import_slot && !r.import_slot && imports < w.max_parallel_imports {
                    r.import_slot = true;
                    imports += 1;
                    slots_changed = true;
                }
                if d.wants_cutover_slot && !r.cutover_slot && cutovers < w.max_parallel_cutovers {
                    r.cutover_slot = true;
                    cutovers += 1;
                    slots_changed = true;
                }
            }
        }
        // Events and commands.
        for (i, d) in decisions.into_iter().enumerate() {
            let vm = &plan.vms[i];
            let r = &mut runs[i];
            let phase = d.phase.clone();
            let moved = match &r.last {
                None => true,
                Some(p) => {
                    p.step != phase.step
                        || p.status != phase.status
                        || progress_moved(p.progress, phase.progress)
                }
            };
            if moved {
                // Other VMs' decisions read this phase (`after`, failed dependencies).
                slots_changed = true;
                if r.last.as_ref().is_some_and(|p| p.step != phase.step) {
                    r.done.clear();
                }
                let message = describe(&phase, cfg.dry_run);
                let step_changed = r
                    .last
                    .as_ref()
                    .is_none_or(|p| p.step != phase.step || p.status != phase.status);
                if step_changed {
                    r.since = std::time::Instant::now();
                    let timed = (phase.step == Step::Running
                        && matches!(phase.status, Status::Waiting(_)))
                        || (phase.step == Step::Booting && phase.status == Status::Active);
                    if timed {
                        let (tx, t) = (msg_tx.clone(), cfg.agent_timeout);
                        tokio::spawn(async move {
                            tokio::time::sleep(t).await;
                            let _ = tx.send(Msg::Tick);
                        });
                    }
                }
                let _ = events
                    .send(EngineEvent::phase(
                        vm.name.as_str(),
                        vm.wave.as_str(),
                        now_ms(),
                        phase.step,
                        phase.status.clone(),
                        phase.progress,
                        message,
                    ))
                    .await;
                r.last = Some(phase.clone());
            }
            if let Some(node) = stores
                .vmis
                .get(&ObjectRef::new(vm.name.as_str()).within(&ns))
                .and_then(|v| v.status.as_ref().and_then(|s| s.node_name.clone()))
            {
                if r.last_node.as_deref() != Some(node.as_str()) {
                    r.last_node = Some(node.clone());
                    let _ = events
                        .send(EngineEvent::now(vm, EventKind::Node { node }))
                        .await;
                }
            }
            if !in_scope(i, &active_waves) {
                continue;
            }
            let blocked = wave_blocked.contains(vm.wave.as_str());
            for cmd in d.commands {
                let harmless = matches!(
                    cmd,
                    Command::RunPreflight
                        | Command::ProbeOriginalIp
                        | Command::RunChecks
                        | Command::AskPowerOff
                );
                if (blocked && !harmless) || r.in_flight.contains(&cmd) || r.done.contains(&cmd) {
                    continue;
                }
                if cmd == Command::AskPowerOff {
                    if !r.asked_power_off {
                        r.asked_power_off = true;
                        let _ = events
                            .send(EngineEvent::now(
                                vm,
                                EventKind::Log {
                                    level: LogLevel::Warn,
                                    message: format!(
                                        "power off source VM {} and confirm",
                                        vm.name.value
                                    ),
                                },
                            ))
                            .await;
                    }
                    continue;
                }
                r.in_flight.insert(cmd.clone());
                let (ops, tx, idx) = (ops.clone(), msg_tx.clone(), r.idx);
                let (plan, permits) = (plan.clone(), permits.clone());
                tokio::spawn(async move {
                    // At most COMMANDS_IN_FLIGHT commands talk to the cluster at once: a
                    // 5,000-VM wave starts with 5,000 preflights, not 5,000 open requests.
                    let _permit = permits.acquire_owned().await;
                    // Boxed, so a command waiting for its permit is a few bytes, not the
                    // whole (large) `execute` future: thousands of them wait at the start
                    // of a big wave.
                    let result = Box::pin(ops.execute(&plan.vms[idx], &cmd)).await;
                    let _ = tx.send(Msg::Done {
                        vm: idx,
                        cmd,
                        result,
                    });
                });
            }
        }
        // Migration progress.
        for m in stores.migs.state() {
            let name = m.metadata.name.clone().unwrap_or_default();
            let phase = m
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into());
            if migrations_seen.get(&name) != Some(&phase) {
                migrations_seen.insert(name.clone(), phase.clone());
                let st = m
                    .status
                    .as_ref()
                    .and_then(|s| s.migration_state.clone())
                    .unwrap_or_default();
                let vm = m.spec.vmi_name.clone();
                let wave = plan
                    .vm(&vm)
                    .map(|v| v.wave.value.clone())
                    .unwrap_or_default();
                let _ = events
                    .send(EngineEvent {
                        vm,
                        wave,
                        at_ms: now_ms(),
                        kind: EventKind::Migration {
                            name,
                            phase,
                            source_node: st.source_node,
                            target_node: st.target_node,
                            lost_probes: 0,
                            sent_probes: 0,
                        },
                    })
                    .await;
            }
        }
        // Wave completion.
        let mut all_done = !active_waves.is_empty();
        for w in active_waves.clone() {
            if finished_waves.contains(&w) {
                continue;
            }
            let mut verified = 0;
            let mut failed = 0;
            let mut cancelled = 0;
            let mut open = 0;
            for r in runs
                .iter()
                .filter(|r| in_scope(r.idx, std::slice::from_ref(&w)))
            {
                match r.last.as_ref().map(|p| (p.step, &p.status)) {
                    Some((Step::Verified, _)) | Some((Step::RolledBack, _)) => verified += 1,
                    Some((Step::Cancelled, Status::Active))
                        if r.in_flight.is_empty() && !r.control.rollback =>
                    {
                        cancelled += 1
                    }
                    Some((Step::Preflight, Status::Active))
                        if cfg.dry_run && r.mem.preflight == Gate::Passed =>
                    {
                        verified += 1
                    }
                    Some((_, Status::Failed(_))) => failed += 1,
                    _ => open += 1,
                }
            }
            if open == 0 {
                finished_waves.insert(w.clone());
                let _ = events
                    .send(EngineEvent {
                        vm: String::new(),
                        wave: w.clone(),
                        at_ms: now_ms(),
                        kind: EventKind::WaveDone {
                            verified,
                            failed,
                            cancelled,
                        },
                    })
                    .await;
                if failed == 0 && cancelled == 0 && !queue.is_empty() {
                    active_waves.push(queue.remove(0));
                    all_done = false;
                    slots_changed = true; // a new wave: decide again at once
                }
            } else {
                all_done = false;
            }
        }
        if all_done && cfg.exit_when_done {
            break;
        }

        if slots_changed {
            continue;
        }
        // Wait for something to change.
        tokio::select! {
            Some(()) = changed_rx.recv() => {}
            Some(msg) = msg_rx.recv() => handle_msg(&mut runs, msg, &events, &plan, &msg_tx, cfg.guard_interval).await,
            req = requests.recv() => match req {
                None | Some(EngineRequest::Shutdown) => break,
                Some(req) => {
                    // A cancelled wave started again finishes (and reports) again.
                    if let EngineRequest::StartWave(w) = &req {
                        if runs.iter().any(|r| *plan.vms[r.idx].wave == *w && r.control.cancel) {
                            finished_waves.remove(w);
                        }
                    }
                    handle_request(&mut runs, req, &mut active_waves, &ops, &plan, &events).await
                }
            },
        }
        // Coalesce bursts: drain what is already queued before deciding again.
        while let Ok(msg) = msg_rx.try_recv() {
            handle_msg(&mut runs, msg, &events, &plan, &msg_tx, cfg.guard_interval).await;
        }
        while changed_rx.try_recv().is_ok() {}
    }
    for t in watch_tasks {
        t.abort();
    }
    let mut s = RunSummary::default();
    for r in &runs {
        if !in_scope(r.idx, &active_waves) {
            continue;
        }
        let name = plan.vms[r.idx].name.value.clone();
        match r.last.as_ref().map(|p| (p.step, p.status.clone())) {
            Some((Step::Verified, _)) => s.verified.push(name),
            Some((Step::RolledBack, _)) => s.rolled_back.push(name),
            Some((Step::Cancelled, _)) => s.cancelled.push(name),
            Some((_, Status::Failed(why))) => s.failed.push((name, why)),
            Some((Step::Preflight, Status::Active))
                if cfg.dry_run && r.mem.preflight == Gate::Passed =>
            {
                s.dry_run_ok.push(name)
            }
            _ => s.unfinished.push(name),
        }
    }
    Ok(s)
}

fn progress_moved(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() >= 0.01 || (y >= 1.0 && x < 1.0),
        (None, None) => false,
        _ => true,
    }
}

fn describe(p: &Phase, dry_run: bool) -> String {
    match (&p.status, p.step) {
        (Status::Failed(why), _) => why.clone(),
        (Status::Blocked(why), _) | (Status::Waiting(why), _) => why.clone(),
        (Status::Paused, s) => format!("paused at {}", s.label()),
        (Status::Active, step) => match step {
            Step::Pending => "queued".into(),
            Step::Preflight if dry_run => "server-side dry run: every object accepted".into(),
            Step::Preflight => {
                "preflight: CRDs, namespace, storage, credentials, server-side dry run".into()
            }
            Step::NetworkReady => "network attachments ready".into(),
            Step::Importing => format!("importing {:.0}%", p.progress.unwrap_or(0.0) * 100.0),
            Step::Imported => "disks imported".into(),
            Step::CutoverGate => "cutover gate: source power-off, original IP silent".into(),
            Step::Created => "VirtualMachine created".into(),
            Step::Booting => "booting".into(),
            Step::Running => "running".into(),
            Step::Verifying => "running checks".into(),
            Step::Verified => "every check passed".into(),
            Step::RollingBack => "rolling back".into(),
            Step::RolledBack => "rolled back: source powered on".into(),
            Step::Cancelled => {
                "wave cancelled before this VM's cutover: imports deleted, source untouched".into()
            }
        },
    }
}

/// Builds one VM's observation from the watch stores and the run's memory.
fn observe(plan: &Plan, st: &Stores, r: &VmRun, all: &[VmRun]) -> Observed {
    let vm = &plan.vms[r.idx];
    let ns = plan.meta.namespace.as_str();
    let disks = (0..vm.disks.len())
        .map(|i| {
            match st
                .dvs
                .get(&ObjectRef::new(&labels::data_volume_name(vm.name.as_str(), i)).within(ns))
            {
                None => DiskObs::Absent,
                Some(dv) => {
                    let s = dv.status.clone().unwrap_or_default();
                    match s.phase.as_deref() {
                        Some("Succeeded") => DiskObs::Succeeded,
                        Some("Failed") => DiskObs::Failed(
                            s.conditions
                                .iter()
                                .find(|c| c.type_ == "Running")
                                .and_then(|c| c.message.clone())
                                .unwrap_or_else(|| "import failed".into()),
                        ),
                        other => DiskObs::Importing {
                            phase: other.unwrap_or("Pending").to_string(),
                            progress: s.progress_fraction(),
                        },
                    }
                }
            }
        })
        .collect();
    let networks_ready = plan.model_of(vm) == NetworkModel::L3
        || vm.nics.iter().all(|n| {
            st.nads
                .get(&ObjectRef::new(n.network.as_str()).within(ns))
                .is_some()
        });
    let vm_obj = st.vms.get(&ObjectRef::new(vm.name.as_str()).within(ns));
    let vm_started = vm_obj.map(|v| {
        matches!(
            v.spec.run_strategy.as_deref(),
            Some("Always") | Some("RerunOnFailure") | Some("Once")
        )
    });
    let vmi = st.vmis.get(&ObjectRef::new(vm.name.as_str()).within(ns));
    let vmi_status = vmi.as_ref().and_then(|v| v.status.clone());
    let agent_connected = vmi_status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "AgentConnected" && c.status == "True")
    });
    let mut deps_pending = Vec::new();
    for &j in &r.deps {
        let done = all[j]
            .last
            .as_ref()
            .is_some_and(|p| p.step == Step::Verified)
            || (plan.vms[j].wave != vm.wave && vmi_running(st, ns, plan.vms[j].name.as_str()));
        if !done {
            deps_pending.push(plan.vms[j].name.value.clone());
        }
    }
    Observed {
        preflight: r.mem.preflight.clone(),
        networks_ready,
        disks,
        source_power: r.mem.source_power,
        power_off_confirmed: r.mem.power_off_confirmed,
        power_off_in_flight: r.in_flight.contains(&Command::PowerOffSource),
        ip_guard: r.mem.ip_guard.clone(),
        vm_started,
        vmi_phase: vmi_status.as_ref().and_then(|s| s.phase.clone()),
        agent_connected,
        checks: r.mem.checks.clone(),
        deps_verified: deps_pending.is_empty(),
        deps_pending,
        import_slot: r.import_slot,
        cutover_slot: r.cutover_slot,
    }
}

fn vmi_running(st: &Stores, ns: &str, name: &str) -> bool {
    st.vmis
        .get(&ObjectRef::new(name).within(ns))
        .is_some_and(|v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
}

async fn handle_msg(
    runs: &mut [VmRun],
    msg: Msg,
    events: &mpsc::Sender<EngineEvent>,
    plan: &Plan,
    msg_tx: &mpsc::UnboundedSender<Msg>,
    guard_interval: Duration,
) {
    match msg {
        Msg::Tick => {}
        Msg::Reprobe { vm } => {
            if runs[vm].mem.ip_guard != IpGuard::Silent {
                runs[vm].mem.ip_guard = IpGuard::NotProbed;
                runs[vm].done.remove(&Command::ProbeOriginalIp);
            }
        }
        Msg::Done { vm, cmd, result } => {
            let r = &mut runs[vm];
            r.in_flight.remove(&cmd);
            let step = r.last.as_ref().map_or(Step::Pending, |p| p.step);
            match result {
                Err(why) => {
                    r.failed = Some((step, why));
                }
                Ok(update) => {
                    r.done.insert(cmd.clone());
                    match update {
                        Update::Nothing => {}
                        Update::Preflight(g, power) => {
                            r.mem.preflight = g;
                            if let Some(p) = power {
                                r.mem.source_power = p;
                            }
                        }
                        Update::Power(p) => r.mem.source_power = p,
                        Update::IpGuard(g) => {
                            if let IpGuard::Answering(why) = &g {
                                r.guard_attempts += 1;
                                if r.guard_attempts >= GUARD_ATTEMPTS {
                                    r.failed = Some((step, format!("original IP still answers after {GUARD_ATTEMPTS} probes: {why}")));
                                } else {
                                    let (tx, idx) = (msg_tx.clone(), r.idx);
                                    tokio::spawn(async move {
                                        tokio::time::sleep(guard_interval).await;
                                        let _ = tx.send(Msg::Reprobe { vm: idx });
                                    });
                                }
                            } else {
                                r.guard_attempts = 0;
                            }
                            r.mem.ip_guard = g;
                        }
                        Update::Checks(g, results) => {
                            r.mem.checks = g;
                            let v = &plan.vms[r.idx];
                            for res in results {
                                let _ = events
                                    .send(EngineEvent::now(v, EventKind::check(&res)))
                                    .await;
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn handle_request(
    runs: &mut [VmRun],
    req: EngineRequest,
    active: &mut Vec<String>,
    ops: &Arc<Ops>,
    plan: &Arc<Plan>,
    events: &mpsc::Sender<EngineEvent>,
) {
    let paused_request = matches!(req, EngineRequest::PauseWave(_));
    let find = |runs: &mut [VmRun], name: &str| -> Option<usize> {
        plan.vms
            .iter()
            .position(|v| *v.name == name)
            .filter(|&i| i < runs.len())
    };
    let log = |vm: &str, level: LogLevel, message: String| EngineEvent {
        vm: vm.to_string(),
        wave: plan
            .vm(vm)
            .map(|v| v.wave.value.clone())
            .unwrap_or_default(),
        at_ms: now_ms(),
        kind: EventKind::Log { level, message },
    };
    match req {
        EngineRequest::StartWave(w) => {
            if plan.wave(&w).is_none() {
                let _ = events
                    .send(log(
                        "",
                        LogLevel::Error,
                        format!("no wave `{w}` in the plan"),
                    ))
                    .await;
            } else {
                let again = active.contains(&w);
                let mut uncancelled = false;
                for r in runs.iter_mut().filter(|r| *plan.vms[r.idx].wave == w) {
                    r.control.paused = false;
                    uncancelled |= std::mem::take(&mut r.control.cancel);
                }
                if !again {
                    active.push(w.clone());
                }
                if !again || uncancelled {
                    let _ = events
                        .send(log("", LogLevel::Info, format!("wave {w} started")))
                        .await;
                }
            }
        }
        EngineRequest::CancelWave(w) => {
            if plan.wave(&w).is_none() {
                let _ = events
                    .send(log(
                        "",
                        LogLevel::Error,
                        format!("no wave `{w}` in the plan"),
                    ))
                    .await;
                return;
            }
            for r in runs.iter_mut().filter(|r| *plan.vms[r.idx].wave == w) {
                r.control.cancel = true;
                r.control.paused = false;
            }
            let _ = events
                .send(log(
                    "",
                    LogLevel::Warn,
                    format!(
                        "wave {w} cancelled: VMs before their cutover stop and their imports are deleted; cutovers in progress finish"
                    ),
                ))
                .await;
        }
        EngineRequest::PauseWave(w) | EngineRequest::ResumeWave(w) => {
            let pause = plan.wave(&w).is_some() && paused_request;
            for r in runs.iter_mut().filter(|r| *plan.vms[r.idx].wave == w) {
                r.control.paused = pause;
            }
            let _ = events
                .send(log(
                    "",
                    LogLevel::Info,
                    format!("wave {w} {}", if pause { "paused" } else { "resumed" }),
                ))
                .await;
        }
        EngineRequest::RetryVm(name) => {
            let Some(i) = find(runs, &name) else { return };
            let r = &mut runs[i];
            r.failed = None;
            r.done.clear();
            r.guard_attempts = 0;
            if matches!(r.mem.preflight, Gate::Failed(_)) {
                r.mem.preflight = Gate::NotRun;
            }
            if matches!(r.mem.ip_guard, IpGuard::Answering(_)) {
                r.mem.ip_guard = IpGuard::NotProbed;
            }
            if matches!(r.mem.checks, Gate::Failed(_)) {
                r.mem.checks = Gate::NotRun;
            }
            let vm = &plan.vms[i];
            if let Err(e) = ops.delete_disks(vm, true).await {
                let _ = events
                    .send(log(&name, LogLevel::Error, format!("retry: {e}")))
                    .await;
            }
            let _ = events
                .send(log(&name, LogLevel::Info, format!("retrying {name}")))
                .await;
        }
        EngineRequest::RollbackVm(name) => {
            if let Some(i) = find(runs, &name) {
                runs[i].control.rollback = true;
                runs[i].failed = None;
                runs[i].done.clear();
                let w = plan.vms[i].wave.value.clone();
                if !active.contains(&w) {
                    active.push(w);
                }
                let _ = events
                    .send(log(&name, LogLevel::Warn, format!("rolling back {name}")))
                    .await;
            }
        }
        EngineRequest::ConfirmPowerOff(name) => {
            if let Some(i) = find(runs, &name) {
                runs[i].mem.power_off_confirmed = true;
                runs[i].mem.source_power = Power::Off;
                let _ = events
                    .send(log(
                        &name,
                        LogLevel::Info,
                        format!("operator confirmed power-off of {name}"),
                    ))
                    .await;
            }
        }
        EngineRequest::RunChecks(name) => {
            if let Some(i) = find(runs, &name) {
                runs[i].mem.checks = Gate::NotRun;
                runs[i].done.remove(&Command::RunChecks);
                if matches!(runs[i].failed, Some((Step::Verifying, _))) {
                    runs[i].failed = None;
                }
            }
        }
        EngineRequest::Migrate(name) => {
            let Some(vm) = plan.vm(&name).cloned() else {
                return;
            };
            if ops.dry_run {
                let _ = events
                    .send(log(
                        &name,
                        LogLevel::Warn,
                        "no live migration in a dry run".into(),
                    ))
                    .await;
                return;
            }
            let (client, plan, prober, events) = (
                ops.client.clone(),
                plan.clone(),
                ops.prober.clone(),
                events.clone(),
            );
            tokio::spawn(async move {
                // Phases reach the front end through the engine's watch on migrations.
                let (tx, mut rx) = mpsc::channel(16);
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                if let Err(e) = super::migrate::migrate(
                    client,
                    plan,
                    &vm,
                    prober,
                    events.clone(),
                    tx,
                    Duration::from_secs(900),
                )
                .await
                {
                    let _ = events
                        .send(EngineEvent::now(
                            &vm,
                            EventKind::Log {
                                level: LogLevel::Error,
                                message: format!("live migration of {}: {e:#}", vm.name.value),
                            },
                        ))
                        .await;
                }
            });
        }
        EngineRequest::Shutdown => {}
    }
}
