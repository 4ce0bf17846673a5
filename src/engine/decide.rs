//! The per-VM pipeline as a pure, level-triggered function, like a Kubernetes controller:
//! given what the cluster and the world look like now ([`Observed`]) and what the operator
//! asked ([`Control`]), [`decide`] says where the VM is ([`Phase`]) and what to do next
//! ([`Command`]s, each idempotent). The engine keeps no pipeline state of its own beyond
//! this run's probe and check results, so a run killed at any point resumes from the
//! cluster: objects that exist are not created again, a VM that was created is not
//! re-imported.
//!
//! Pipeline (cold migration): `Pending → Preflight → NetworkReady → CutoverGate (slot,
//! `after`, source power-off, original IP silent) → Importing → Imported → Created →
//! Booting → Running → Verifying → Verified`. The disks are copied only once the source
//! is off, so the copy holds every write the source made (an import while the source runs
//! loses every later write, and the copy is crash-inconsistent). A step can be `Failed`,
//! `Blocked` (waiting for something outside wavelift: an operator, the original IP going
//! silent), `Waiting` (for a slot or a dependency), or `Paused`; rollback ends in
//! `RolledBack`.

pub mod forklift;
pub mod policy;
pub mod warm;

use crate::cluster::phase::{DvPhase, VmiPhase};
use serde::Serialize;
use warm::{WarmCtx, WarmObs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Pending,
    Preflight,
    NetworkReady,
    /// Warm migration: disks copied in stages while the source runs.
    Precopy,
    CutoverGate,
    Importing,
    Imported,
    Created,
    Booting,
    Running,
    Verifying,
    Verified,
    RollingBack,
    RolledBack,
    /// The wave was cancelled before this VM reached its cutover: its imports are deleted
    /// and its source was never touched.
    Cancelled,
}

impl Step {
    /// Every step, in declaration order: the pipeline, then the rollback steps and
    /// `Cancelled`. `Step::ALL[s as usize] == s` (front ends index per-step arrays so).
    pub const ALL: [Step; 15] = [
        Step::Pending,
        Step::Preflight,
        Step::NetworkReady,
        Step::Precopy,
        Step::CutoverGate,
        Step::Importing,
        Step::Imported,
        Step::Created,
        Step::Booting,
        Step::Running,
        Step::Verifying,
        Step::Verified,
        Step::RollingBack,
        Step::RolledBack,
        Step::Cancelled,
    ];

    /// Steps before the cutover gate: the source VM has not been touched yet.
    pub fn before_cutover(self) -> bool {
        matches!(
            self,
            Step::Pending | Step::Preflight | Step::NetworkReady | Step::Precopy
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Step::Pending => "Pending",
            Step::Preflight => "Preflight",
            Step::NetworkReady => "NetworkReady",
            Step::Precopy => "Precopy",
            Step::Importing => "Importing",
            Step::Imported => "Imported",
            Step::CutoverGate => "CutoverGate",
            Step::Created => "Created",
            Step::Booting => "Booting",
            Step::Running => "Running",
            Step::Verifying => "Verifying",
            Step::Verified => "Verified",
            Step::RollingBack => "RollingBack",
            Step::RolledBack => "RolledBack",
            Step::Cancelled => "Cancelled",
        }
    }
}

/// How the VM is doing at its step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Status {
    /// Work in progress (or done, at `Verified` / `RolledBack`).
    Active,
    /// Waiting for a slot or for VMs it depends on.
    Waiting(String),
    /// Stopped until something outside wavelift changes (operator, original IP).
    Blocked(String),
    Failed(String),
    Paused,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub step: Step,
    pub status: Status,
    /// Import progress 0.0–1.0, weighted by disk size.
    pub progress: Option<f64>,
    /// The import backend's own step name (Forklift: `DiskTransferV2v`, `ImageConversion`…).
    pub backend_step: Option<String>,
}

/// A preflight or check gate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Gate {
    #[default]
    NotRun,
    Running,
    Passed,
    Failed(String),
}

/// One planned disk as the cluster shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DiskObs {
    #[default]
    Absent,
    /// DataVolume exists; CDI phase and progress (0.0–1.0) if known, how often CDI
    /// restarted its importer, and the condition that says why it is not running.
    Importing {
        phase: DvPhase,
        progress: Option<f64>,
        restarts: u32,
        problem: Option<ImportProblem>,
    },
    Succeeded,
    Failed(String),
}

impl DiskObs {
    /// A DataVolume CDI is working on, with no restart and no problem reported.
    pub fn importing(phase: impl Into<DvPhase>, progress: Option<f64>) -> DiskObs {
        DiskObs::Importing {
            phase: phase.into(),
            progress,
            restarts: 0,
            problem: None,
        }
    }
}

/// A DataVolume condition that says why its import does not run: `Running` False with the
/// importer container's reason and message, or `Bound` False (CDI's `AwaitingVDDK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProblem {
    /// `Running` or `Bound`.
    pub condition: String,
    pub reason: String,
    pub message: String,
}

/// CDI's `Bound` reason while no VDDK image is configured (containerized-data-importer
/// `pkg/common/common.go` `AwaitingVDDK`, set in `pkg/controller/import-controller.go`).
pub const AWAITING_VDDK: &str = "AwaitingVDDK";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Power {
    #[default]
    Unknown,
    On,
    Off,
}

/// The duplicate-IP guard: the original IPs must be silent before the new VM starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IpGuard {
    #[default]
    NotProbed,
    Probing,
    Silent,
    Answering(String),
}

/// Why a VM without an import slot waits: the source limit that holds it, else the wave's.
pub(super) fn waiting_for_import(obs: &Observed) -> String {
    obs.import_wait
        .clone()
        .unwrap_or_else(|| "waiting for an import slot".into())
}

/// What the cluster and the world look like for one VM.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub preflight: Gate,
    /// Every NetworkAttachmentDefinition this VM uses exists.
    pub networks_ready: bool,
    /// One entry per planned disk, in plan order.
    pub disks: Vec<DiskObs>,
    pub source_power: Power,
    /// The operator confirmed a manual power-off.
    pub power_off_confirmed: bool,
    /// A power-off call to vCenter is under way.
    pub power_off_in_flight: bool,
    pub ip_guard: IpGuard,
    /// The VirtualMachine exists; `Some(true)` when its runStrategy runs it.
    pub vm_started: Option<bool>,
    /// VMI phase (`Pending`, `Scheduling`, `Scheduled`, `Running`, `Failed`, …) if a VMI exists.
    pub vmi_phase: Option<VmiPhase>,
    pub agent_connected: bool,
    pub checks: Gate,
    /// Every VM in `after` is verified.
    pub deps_verified: bool,
    /// Names of `after` VMs not verified yet (for the waiting reason).
    pub deps_pending: Vec<String>,
    /// The scheduler granted this VM an import slot / a cutover slot.
    pub import_slot: bool,
    /// Which source limit holds its import when it has no slot (`waiting: host esx-07 at
    /// 10/10`); `None`: the wave's own `max_parallel_imports`.
    pub import_wait: Option<String>,
    pub cutover_slot: bool,
    /// Why the cutover (the power-off) may not start now: the wave's change window is not
    /// open yet, has closed, or is too short for this VM. `None`: it may.
    pub outside_window: Option<String>,
    /// Warm migration's view of the source and the stages (unused for cold VMs).
    pub warm: WarmObs,
    /// The Forklift backend's view of the VM (`None` with CDI).
    pub forklift: Option<forklift::ForkliftObs>,
    /// The VirtualMachine carries wavelift's VM label (Forklift creates it without).
    pub vm_labelled: bool,
    /// The operator asked to retry a VM Forklift failed or canceled (a new Migration).
    pub forklift_retry: bool,
    /// The VM's network policy (`[plan] policy = "apply"`), once its checks passed.
    pub policy: policy::PolicyObs,
}

/// What the operator asked for this VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Control {
    pub paused: bool,
    pub rollback: bool,
    /// The VM's wave was cancelled: VMs before their cutover stop and remove their imports;
    /// VMs in or past it finish (stopping a cutover half-way is what rollback is for).
    pub cancel: bool,
}

/// What the plan says about the VM, as far as decisions need it.
#[derive(Debug, Clone, PartialEq)]
pub struct VmContext {
    /// Disk sizes in bytes, plan order (progress weights).
    pub disk_bytes: Vec<u64>,
    /// Power-off through the vSphere API (`false`: the operator confirms).
    pub power_off_by_api: bool,
    pub has_checks: bool,
    /// A disk fails once CDI restarted its importer this often.
    pub import_restart_limit: u32,
    /// The guest runs qemu-guest-agent: wait for it before the checks. Without one (most
    /// VMware guests), a running VMI goes straight to the checks.
    pub guest_agent: bool,
    /// Warm migration (`None`: cold).
    pub warm: Option<WarmCtx>,
    /// `[plan] backend = "forklift"`: Forklift copies and converts.
    pub forklift: bool,
}

/// An idempotent action for the engine to carry out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    RunPreflight,
    /// Server-side apply of the VM's NetworkAttachmentDefinitions (shared, so apply is safe).
    ApplyNetworks,
    CreateDataVolume {
        disk: usize,
    },
    PowerOffSource,
    /// Ask the operator to power the source off and confirm.
    AskPowerOff,
    ProbeOriginalIp,
    CreateVm,
    StartVm,
    RunChecks,
    /// Server-side apply the VM's drafted network policy (labelled for rollback).
    ApplyPolicy,
    /// Delete the VM's network policy, for `reason`.
    RevertPolicy {
        reason: String,
    },
    DeleteVm,
    DeleteDataVolumes,
    PowerOnSource,
    /// Warm: read the source VM's CBT state, snapshots and tasks from vCenter.
    ReadSource,
    /// Warm: turn CBT on and stun the VM once so its disks get change IDs.
    EnableCbt,
    /// Warm: create the named snapshot (a resumed run finds it instead).
    CreateSnapshot {
        name: String,
    },
    /// Warm: remove a wavelift snapshot; with `record`, first write each disk's change ID
    /// at that snapshot on its DataVolume (the next stage's `previous`).
    RemoveSnapshot {
        moref: String,
        record: bool,
    },
    /// Warm: the DataVolume of disk `disk` with its first checkpoint.
    CreateStageVolume {
        disk: usize,
        current: String,
        last: bool,
    },
    /// Warm: append the checkpoint `current` to every disk's DataVolume (`previous`: per
    /// disk), the final one when `last`.
    AddCheckpoint {
        current: String,
        previous: Vec<String>,
        last: bool,
    },
    /// Forklift: this VM may start; its Plan's Migration is created once every VM of the
    /// Plan asks (the scheduler turns it into [`Command::CreateMigration`]).
    StartMigration,
    /// Forklift warm: this VM's cutover may start; `spec.cutover` is set once every VM of the
    /// Plan asks (the scheduler turns it into [`Command::PatchCutover`]).
    SetCutover,
    /// Forklift: create Migration `<plan>-m<attempt>` of Forklift Plan `plan`, with `cancel`
    /// (wavelift VM names not to run) and, for warm Plans, `cutover` now.
    CreateMigration {
        plan: String,
        attempt: u32,
        cancel: Vec<String>,
        cutover: bool,
    },
    /// Forklift warm: set `spec.cutover` of Migration `migration` to `at_ms` (the window
    /// clock's now, Unix ms: the rehearsal world's clock in a rehearsal).
    PatchCutover {
        migration: String,
        at_ms: i64,
    },
    /// Forklift: add this VM to Migration `migration`'s `spec.cancel`.
    CancelInForklift {
        migration: String,
    },
    /// Forklift: label the VirtualMachine Forklift created as wavelift's (plan, wave, VM).
    AdoptVm,
}

impl Command {
    /// A warm VM's commands on its source VM and its stages. Each is decided from what the
    /// previous one left (a snapshot taken, a checkpoint added, the source off), so the
    /// scheduler runs them one at a time per VM: a decision made while one is in flight
    /// does not see its effect yet, and could power the source off with a fresh snapshot
    /// not yet added, or remove a snapshot about to become a checkpoint.
    pub fn sequences_warm_source(&self) -> bool {
        matches!(
            self,
            Command::ReadSource
                | Command::EnableCbt
                | Command::CreateSnapshot { .. }
                | Command::RemoveSnapshot { .. }
                | Command::CreateStageVolume { .. }
                | Command::AddCheckpoint { .. }
                | Command::PowerOffSource
                | Command::PowerOnSource
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub phase: Phase,
    pub commands: Vec<Command>,
    /// The VM needs an import slot (it has disks left to import).
    pub wants_import_slot: bool,
    /// The VM needs a cutover slot (imported, dependencies verified).
    pub wants_cutover_slot: bool,
}

pub(super) fn phase(step: Step, status: Status) -> Phase {
    Phase {
        step,
        status,
        progress: None,
        backend_step: None,
    }
}

pub(super) fn decision(step: Step, status: Status, commands: Vec<Command>) -> Decision {
    Decision {
        phase: phase(step, status),
        commands,
        wants_import_slot: false,
        wants_cutover_slot: false,
    }
}

/// Commands that start new work are held while paused; observation goes on.
pub(super) fn gated(ctl: Control, mut d: Decision) -> Decision {
    if ctl.paused && !d.commands.is_empty() && !matches!(d.phase.status, Status::Failed(_)) {
        d.commands.clear();
        d.phase.status = Status::Paused;
        d.wants_import_slot = false;
        d.wants_cutover_slot = false;
    }
    d
}

pub(super) fn import_progress(ctx: &VmContext, obs: &Observed) -> Option<f64> {
    let total: u64 = ctx.disk_bytes.iter().sum();
    if total == 0 {
        return None;
    }
    let done: f64 = obs
        .disks
        .iter()
        .zip(&ctx.disk_bytes)
        .map(|(d, &b)| {
            let f = match d {
                DiskObs::Succeeded => 1.0,
                DiskObs::Importing { progress, .. } => progress.unwrap_or(0.0).clamp(0.0, 1.0),
                DiskObs::Absent | DiskObs::Failed(_) => 0.0,
            };
            f * b as f64
        })
        .sum();
    Some(done / total as f64)
}

/// Decides one VM's phase and next commands. Pure: same input, same output.
pub fn decide(ctx: &VmContext, obs: &Observed, ctl: Control) -> Decision {
    if ctx.forklift {
        return forklift::decide(ctx, obs, ctl);
    }
    if ctl.rollback {
        return rollback(ctx, obs);
    }
    let d = pipeline(ctx, obs, ctl);
    // Still cancellable: before the gate, or at it while the source runs and no power-off
    // was sent (a scripted `--confirm-power-off` counts as sent).
    let source_touched = obs.source_power == Power::Off
        || obs.power_off_in_flight
        || (!ctx.power_off_by_api && obs.power_off_confirmed);
    // A source known to run (and no power-off sent) was never touched, whatever the
    // cluster shows: DataVolumes left by an earlier run go with the cancel.
    let source_running = obs.source_power == Power::On && !obs.power_off_in_flight;
    if ctl.cancel
        && (d.phase.step.before_cutover()
            || (d.phase.step == Step::CutoverGate && !source_touched)
            || source_running)
    {
        return cancel(ctx, obs);
    }
    d
}

/// The pipeline proper: the furthest step the cluster shows, and what comes next.
fn pipeline(ctx: &VmContext, obs: &Observed, ctl: Control) -> Decision {
    // From the far end of the pipeline back: the furthest state the cluster shows wins.
    if obs.vm_started.is_some() {
        return after_creation(ctx, obs, ctl);
    }

    if let Some(why) = obs
        .disks
        .iter()
        .enumerate()
        .find_map(|(i, d)| disk_failure(ctx, i, d))
    {
        let mut d = decision(Step::Importing, Status::Failed(why), vec![]);
        d.phase.progress = import_progress(ctx, obs);
        return d;
    }

    let any_disk = obs.disks.iter().any(|d| *d != DiskObs::Absent);
    if ctx.warm.is_some() {
        return warm::decide_stages(ctx, obs, ctl);
    }
    // Data safety: a disk copied (or being copied) while the source runs misses every
    // later write. wavelift only imports after the power-off, so this is a source powered
    // on again behind its back, or DataVolumes left by an older wavelift: never boot them.
    if any_disk && obs.source_power == Power::On {
        let mut d = decision(
            Step::Importing,
            Status::Failed(
                "the source VM is running but its disks were imported: the copy misses every write since; roll the VM back (its DataVolumes are deleted), power the source off and retry".into(),
            ),
            vec![],
        );
        d.phase.progress = import_progress(ctx, obs);
        return d;
    }

    let all_imported = !obs.disks.is_empty()
        && obs.disks.len() == ctx.disk_bytes.len()
        && obs.disks.iter().all(|d| *d == DiskObs::Succeeded);
    if all_imported {
        // The source is off (it was before the import began); the original IP must still
        // be silent before the VM exists (a resumed run probes again).
        let mut d = gated(
            ctl,
            cutover_guard(ctx, obs, Step::Imported, Command::CreateVm),
        );
        d.wants_cutover_slot = !ctl.paused;
        return d;
    }

    if any_disk || source_off(ctx, obs) && obs.ip_guard == IpGuard::Silent && obs.cutover_slot {
        // Importing: the source is off and its IP silent. Each disk needs an import slot.
        let missing: Vec<Command> = (0..ctx.disk_bytes.len())
            .filter(|&i| obs.disks.get(i).is_none_or(|d| *d == DiskObs::Absent))
            .map(|disk| Command::CreateDataVolume { disk })
            .collect();
        let status = if missing.is_empty() || obs.import_slot {
            Status::Active
        } else {
            Status::Waiting(waiting_for_import(obs))
        };
        let mut d = decision(
            Step::Importing,
            status,
            if obs.import_slot { missing } else { vec![] },
        );
        d.wants_import_slot = !ctl.paused;
        d.wants_cutover_slot = true;
        d.phase.progress = import_progress(ctx, obs);
        if ctl.paused {
            d.phase.status = Status::Paused;
            d.commands.clear();
        }
        return d;
    }

    if obs.networks_ready && obs.preflight == Gate::Passed {
        if let Some(why) = &obs.outside_window {
            // No power-off outside the change window.
            return decision(Step::NetworkReady, Status::Waiting(why.clone()), vec![]);
        }
        if !obs.deps_verified {
            let who = if obs.deps_pending.is_empty() {
                "dependencies".to_string()
            } else {
                obs.deps_pending.join(", ")
            };
            return decision(
                Step::NetworkReady,
                Status::Waiting(format!("waiting for {who} to be verified")),
                vec![],
            );
        }
        if !obs.cutover_slot {
            let mut d = decision(
                Step::NetworkReady,
                Status::Waiting("waiting for a cutover slot".into()),
                vec![],
            );
            d.wants_cutover_slot = !ctl.paused;
            if ctl.paused {
                d.phase.status = Status::Paused;
            }
            return d;
        }
        // The cutover gate: power the source off, then the original IP must go silent;
        // the import starts after that (the branch above).
        let mut d = gated(
            ctl,
            cutover_guard(ctx, obs, Step::CutoverGate, Command::PowerOffSource),
        );
        d.wants_cutover_slot = !ctl.paused;
        return d;
    }

    preflight_steps(obs, ctl)
}

/// The VM exists: boot, guest agent, checks (a VM created but not started waits for the
/// duplicate-IP guard in this run, then starts).
pub(super) fn after_creation(ctx: &VmContext, obs: &Observed, ctl: Control) -> Decision {
    let started = obs.vm_started.unwrap_or(false);
    let vmi_failed = obs.vmi_phase == Some(VmiPhase::Failed);
    let vmi_running = obs.vmi_phase == Some(VmiPhase::Running);
    if vmi_failed {
        return decision(
            Step::Booting,
            Status::Failed("the VirtualMachineInstance failed".into()),
            vec![],
        );
    }
    if vmi_running {
        if ctx.guest_agent && !obs.agent_connected {
            return decision(
                Step::Running,
                Status::Waiting("guest agent not connected yet".into()),
                vec![],
            );
        }
        if !ctx.has_checks {
            return policy::after_checks(&obs.policy, ctl);
        }
        return match &obs.checks {
            Gate::Passed => policy::after_checks(&obs.policy, ctl),
            Gate::Failed(why) => decision(Step::Verifying, Status::Failed(why.clone()), vec![]),
            Gate::Running => decision(Step::Verifying, Status::Active, vec![]),
            Gate::NotRun => gated(
                ctl,
                decision(Step::Verifying, Status::Active, vec![Command::RunChecks]),
            ),
        };
    }
    if started {
        return decision(Step::Booting, Status::Active, vec![]);
    }
    // Created but not started: the guard must hold in this run before the guest boots.
    gated(
        ctl,
        cutover_guard(ctx, obs, Step::Created, Command::StartVm),
    )
}

/// Before the networks are ready: preflight, then the networks.
pub(super) fn preflight_steps(obs: &Observed, ctl: Control) -> Decision {
    match &obs.preflight {
        Gate::Failed(why) => decision(Step::Preflight, Status::Failed(why.clone()), vec![]),
        Gate::Passed => gated(
            ctl,
            decision(
                Step::Preflight,
                Status::Active,
                vec![Command::ApplyNetworks],
            ),
        ),
        Gate::Running => decision(Step::Preflight, Status::Active, vec![]),
        Gate::NotRun => gated(
            ctl,
            decision(Step::Pending, Status::Active, vec![Command::RunPreflight]),
        ),
    }
}

/// Why a disk's import has failed, as CDI shows it. Real CDI marks a DataVolume `Failed`
/// only for fatal errors; a VDDK error (bad credentials, unknown UUID, unreachable host)
/// restarts the importer in place with a rising `restartCount`, and a missing VDDK image
/// keeps it `ImportScheduled` with `Bound` reason `AwaitingVDDK`
/// (containerized-data-importer `pkg/controller/import-controller.go`,
/// `pkg/controller/datavolume/controller-base.go`).
fn disk_failure(ctx: &VmContext, disk: usize, d: &DiskObs) -> Option<String> {
    match d {
        DiskObs::Failed(why) => Some(why.clone()),
        DiskObs::Importing {
            problem: Some(p), ..
        } if p.reason == AWAITING_VDDK => Some(format!(
            "disk {disk}: CDI waits for a VDDK image ({AWAITING_VDDK}): {}; set `vddk_init_image` or create the v2v-vmware ConfigMap",
            p.message
        )),
        DiskObs::Importing {
            restarts, problem, ..
        } if *restarts >= ctx.import_restart_limit => Some(match problem {
            Some(p) => format!(
                "disk {disk}: the importer restarted {restarts} times ({} {}): {}",
                p.condition, p.reason, p.message
            ),
            None => format!("disk {disk}: the importer restarted {restarts} times"),
        }),
        _ => None,
    }
}

/// The source is off: vCenter says so, or the operator confirmed a manual power-off.
fn source_off(ctx: &VmContext, obs: &Observed) -> bool {
    obs.source_power == Power::Off || (!ctx.power_off_by_api && obs.power_off_confirmed)
}

/// Power-off and the duplicate-IP guard, then `next` (create or start the VM; at the gate
/// itself nothing: the import follows). `PowerOffSource` as `next` means "no command".
pub(super) fn cutover_guard(
    ctx: &VmContext,
    obs: &Observed,
    step: Step,
    next: Command,
) -> Decision {
    let off = source_off(ctx, obs);
    if !off {
        // With the API, Unknown and On get the same idempotent power-off call.
        return if ctx.power_off_by_api {
            decision(step, Status::Active, vec![Command::PowerOffSource])
        } else {
            decision(
                step,
                Status::Blocked("power off the source VM, then confirm".into()),
                vec![Command::AskPowerOff],
            )
        };
    }
    match &obs.ip_guard {
        IpGuard::NotProbed => decision(step, Status::Active, vec![Command::ProbeOriginalIp]),
        IpGuard::Probing => decision(step, Status::Active, vec![]),
        IpGuard::Answering(who) => decision(
            step,
            Status::Blocked(format!("original IP still answers: {who}")),
            vec![],
        ),
        IpGuard::Silent if next == Command::PowerOffSource => {
            decision(step, Status::Active, vec![])
        }
        IpGuard::Silent => decision(step, Status::Active, vec![next]),
    }
}

/// A cancelled VM before its cutover: its DataVolumes (labelled for it) are deleted, which
/// stops the imports; the source runs on untouched.
fn cancel(ctx: &VmContext, obs: &Observed) -> Decision {
    let mut cmds = Vec::new();
    if obs.disks.iter().any(|d| *d != DiskObs::Absent) {
        cmds.push(Command::DeleteDataVolumes);
    }
    // A snapshot left on a source VM grows until it fills its datastore.
    cmds.extend(snapshots_to_remove(ctx, obs));
    decision(Step::Cancelled, Status::Active, cmds)
}

/// Warm: wavelift's snapshots on the source, to be removed; vCenter is read first when
/// this run has not yet (a resumed run cancelled or rolled back during its preflight may
/// find one an earlier run made).
fn snapshots_to_remove(ctx: &VmContext, obs: &Observed) -> Vec<Command> {
    if ctx.warm.is_some() && obs.warm.source.is_none() {
        return vec![Command::ReadSource];
    }
    warm::remove_ours(obs)
}

/// Undo what wavelift created for the VM (by label), then power the source back on.
fn rollback(ctx: &VmContext, obs: &Observed) -> Decision {
    let mut cmds = Vec::new();
    if obs.vm_started.is_some() || obs.vmi_phase.is_some() {
        cmds.push(Command::DeleteVm);
    }
    if obs.disks.iter().any(|d| *d != DiskObs::Absent) {
        cmds.push(Command::DeleteDataVolumes);
    }
    cmds.extend(snapshots_to_remove(ctx, obs));
    // The source comes back only once the KubeVirt VM is gone: never two holders of the IP.
    if cmds.is_empty() && obs.source_power != Power::On {
        cmds.push(Command::PowerOnSource);
    }
    if cmds.is_empty() {
        decision(Step::RolledBack, Status::Active, vec![])
    } else {
        decision(Step::RollingBack, Status::Active, cmds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> VmContext {
        VmContext {
            disk_bytes: vec![30, 10],
            power_off_by_api: true,
            has_checks: true,
            import_restart_limit: 3,
            guest_agent: true,
            warm: None,
            forklift: false,
        }
    }

    fn fresh() -> Observed {
        Observed {
            disks: vec![DiskObs::Absent, DiskObs::Absent],
            source_power: Power::On,
            deps_verified: true,
            ..Default::default()
        }
    }

    fn run(obs: &Observed) -> Decision {
        decide(&ctx(), obs, Control::default())
    }

    /// Cold: the disks are imported only after the source is off.
    fn imported() -> Observed {
        Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            disks: vec![DiskObs::Succeeded, DiskObs::Succeeded],
            source_power: Power::Off,
            ..fresh()
        }
    }

    /// At the cutover gate: preflight passed, networks ready, a cutover slot, the source
    /// still running.
    fn at_gate() -> Observed {
        Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            cutover_slot: true,
            ..fresh()
        }
    }

    /// Past the gate: the source is off and its IP silent; nothing imported yet.
    fn gate_passed() -> Observed {
        Observed {
            source_power: Power::Off,
            ip_guard: IpGuard::Silent,
            ..at_gate()
        }
    }

    #[test]
    fn pending_runs_preflight_first() {
        let d = run(&fresh());
        assert_eq!(d.phase.step, Step::Pending);
        assert_eq!(d.commands, vec![Command::RunPreflight]);
    }

    #[test]
    fn preflight_failure_stops_before_any_mutation() {
        let o = Observed {
            preflight: Gate::Failed("StorageClass ceph-rbd not found".into()),
            ..fresh()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Preflight);
        assert!(matches!(d.phase.status, Status::Failed(ref r) if r.contains("ceph-rbd")));
        assert!(d.commands.is_empty());
    }

    #[test]
    fn preflight_passed_applies_networks() {
        let o = Observed {
            preflight: Gate::Passed,
            ..fresh()
        };
        assert_eq!(run(&o).commands, vec![Command::ApplyNetworks]);
        let running = Observed {
            preflight: Gate::Running,
            ..fresh()
        };
        assert!(run(&running).commands.is_empty());
    }

    #[test]
    fn nothing_is_imported_before_the_source_is_off() {
        let ready = Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            import_slot: true,
            ..fresh()
        };
        let d = run(&ready);
        assert_eq!(d.phase.step, Step::NetworkReady);
        assert_eq!(
            d.phase.status,
            Status::Waiting("waiting for a cutover slot".into())
        );
        assert!(d.wants_cutover_slot && !d.wants_import_slot);
        assert!(d.commands.is_empty(), "an import slot alone starts nothing");
        // The gate: power-off, then the guard, then (with an import slot) the import.
        let d = run(&at_gate());
        assert_eq!(d.phase.step, Step::CutoverGate);
        assert_eq!(d.commands, vec![Command::PowerOffSource]);
        let off = Observed {
            source_power: Power::Off,
            ..at_gate()
        };
        assert_eq!(run(&off).commands, vec![Command::ProbeOriginalIp]);
        let d = run(&gate_passed());
        assert_eq!(d.phase.step, Step::Importing);
        assert_eq!(
            d.phase.status,
            Status::Waiting("waiting for an import slot".into())
        );
        assert!(d.wants_import_slot && d.commands.is_empty());
        let d = run(&Observed {
            import_slot: true,
            ..gate_passed()
        });
        assert_eq!(
            d.commands,
            vec![
                Command::CreateDataVolume { disk: 0 },
                Command::CreateDataVolume { disk: 1 }
            ]
        );
    }

    #[test]
    fn disks_imported_while_the_source_runs_are_never_booted() {
        let o = Observed {
            source_power: Power::On,
            ..imported()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Importing);
        assert!(
            matches!(d.phase.status, Status::Failed(ref w) if w.contains("misses every write")),
            "{:?}",
            d.phase
        );
        assert!(d.commands.is_empty());
    }

    #[test]
    fn importing_creates_only_missing_disks_and_weights_progress() {
        let o = Observed {
            import_slot: true,
            disks: vec![
                DiskObs::importing("ImportInProgress", Some(0.5)),
                DiskObs::Absent,
            ],
            ..gate_passed()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Importing);
        assert_eq!(d.commands, vec![Command::CreateDataVolume { disk: 1 }]);
        assert_eq!(d.phase.progress, Some(0.375));
    }

    #[test]
    fn resume_mid_import_without_preflight_result_keeps_importing() {
        // After a restart preflight is NotRun and the source's power unknown, but the
        // cluster shows DataVolumes: no re-import.
        let o = Observed {
            disks: vec![
                DiskObs::Succeeded,
                DiskObs::importing("ImportInProgress", Some(0.1)),
            ],
            import_slot: true,
            source_power: Power::Unknown,
            ..fresh()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Importing);
        assert!(d.commands.is_empty());
    }

    #[test]
    fn failed_import_is_failed_with_reason() {
        let o = Observed {
            disks: vec![
                DiskObs::Succeeded,
                DiskObs::Failed("vddk: connection refused".into()),
            ],
            ..fresh()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Importing);
        assert_eq!(
            d.phase.status,
            Status::Failed("vddk: connection refused".into())
        );
        assert!(d.commands.is_empty());
    }

    #[test]
    fn the_gate_waits_for_dependencies_then_a_cutover_slot() {
        let o = Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            deps_verified: false,
            deps_pending: vec!["db-01".into()],
            ..fresh()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::NetworkReady);
        assert_eq!(
            d.phase.status,
            Status::Waiting("waiting for db-01 to be verified".into())
        );
        assert!(!d.wants_cutover_slot);
        let d = run(&Observed {
            deps_verified: true,
            deps_pending: vec![],
            ..o
        });
        assert!(d.wants_cutover_slot);
        assert!(d.commands.is_empty());
    }

    #[test]
    fn imported_disks_become_a_vm_once_the_original_ip_is_silent() {
        let slot = Observed {
            cutover_slot: true,
            ..imported()
        };
        // A resumed run has not probed yet in this run: probe first.
        let d = run(&slot);
        assert_eq!(d.phase.step, Step::Imported);
        assert_eq!(d.commands, vec![Command::ProbeOriginalIp]);
        let silent = Observed {
            ip_guard: IpGuard::Silent,
            ..slot
        };
        assert_eq!(run(&silent).commands, vec![Command::CreateVm]);
    }

    #[test]
    fn duplicate_ip_guard_blocks_with_the_reason() {
        let o = Observed {
            source_power: Power::Off,
            ip_guard: IpGuard::Answering("192.0.2.15 answers ICMP".into()),
            ..at_gate()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::CutoverGate);
        assert!(matches!(d.phase.status, Status::Blocked(ref r) if r.contains("192.0.2.15")));
        assert!(d.commands.is_empty());
    }

    #[test]
    fn manual_power_off_asks_the_operator() {
        let c = VmContext {
            power_off_by_api: false,
            ..ctx()
        };
        let o = Observed {
            source_power: Power::Unknown,
            ..at_gate()
        };
        let d = decide(&c, &o, Control::default());
        assert_eq!(d.commands, vec![Command::AskPowerOff]);
        assert!(matches!(d.phase.status, Status::Blocked(_)));
        let confirmed = Observed {
            power_off_confirmed: true,
            ..o
        };
        assert_eq!(
            decide(&c, &confirmed, Control::default()).commands,
            vec![Command::ProbeOriginalIp]
        );
    }

    #[test]
    fn created_vm_starts_only_after_the_guard_holds_in_this_run() {
        let o = Observed {
            vm_started: Some(false),
            source_power: Power::Off,
            ..imported()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Created);
        assert_eq!(d.commands, vec![Command::ProbeOriginalIp]);
        let silent = Observed {
            ip_guard: IpGuard::Silent,
            ..o
        };
        assert_eq!(run(&silent).commands, vec![Command::StartVm]);
    }

    #[test]
    fn boot_run_verify() {
        let base = Observed {
            vm_started: Some(true),
            source_power: Power::Off,
            ..imported()
        };
        assert_eq!(run(&base).phase.step, Step::Booting);
        let running = Observed {
            vmi_phase: Some("Running".into()),
            ..base.clone()
        };
        let d = run(&running);
        assert_eq!(d.phase.step, Step::Running);
        assert!(matches!(d.phase.status, Status::Waiting(_)));
        let agent = Observed {
            agent_connected: true,
            ..running
        };
        let d = run(&agent);
        assert_eq!(
            (d.phase.step, d.commands.clone()),
            (Step::Verifying, vec![Command::RunChecks])
        );
        let passed = Observed {
            checks: Gate::Passed,
            ..agent.clone()
        };
        assert_eq!(run(&passed).phase.step, Step::Verified);
        let failed = Observed {
            checks: Gate::Failed("tcp:5432 refused".into()),
            ..agent
        };
        let d = run(&failed);
        assert_eq!(d.phase.step, Step::Verifying);
        assert!(
            matches!(d.phase.status, Status::Failed(_)),
            "a failed check is never a pass"
        );
    }

    #[test]
    fn vmi_failure_is_a_boot_failure() {
        let o = Observed {
            vm_started: Some(true),
            vmi_phase: Some("Failed".into()),
            ..imported()
        };
        assert!(matches!(
            run(&o).phase,
            Phase {
                step: Step::Booting,
                status: Status::Failed(_),
                ..
            }
        ));
    }

    #[test]
    fn no_checks_means_verified_when_the_agent_reports() {
        let c = VmContext {
            has_checks: false,
            ..ctx()
        };
        let o = Observed {
            vm_started: Some(true),
            vmi_phase: Some("Running".into()),
            agent_connected: true,
            ..imported()
        };
        assert_eq!(
            decide(&c, &o, Control::default()).phase.step,
            Step::Verified
        );
    }

    #[test]
    fn pause_holds_new_work_but_keeps_observing() {
        let paused = Control {
            paused: true,
            ..Control::default()
        };
        for o in [
            fresh(),
            Observed {
                preflight: Gate::Passed,
                networks_ready: true,
                import_slot: true,
                ..fresh()
            },
            at_gate(),
            Observed {
                cutover_slot: true,
                ..imported()
            },
        ] {
            let d = decide(&ctx(), &o, paused);
            assert!(d.commands.is_empty(), "{o:?}");
            assert_eq!(d.phase.status, Status::Paused);
            assert!(!d.wants_import_slot && !d.wants_cutover_slot);
        }
        // Progress is still reported while paused.
        let importing = Observed {
            disks: vec![DiskObs::Succeeded, DiskObs::Absent],
            ..gate_passed()
        };
        assert_eq!(
            decide(&ctx(), &importing, paused).phase.progress,
            Some(0.75)
        );
    }

    #[test]
    fn cancel_stops_vms_before_their_cutover_and_leaves_the_source_untouched() {
        let cancel = Control {
            cancel: true,
            ..Control::default()
        };
        // Before the gate nothing exists yet (a cold import starts after the power-off):
        // the VM is cancelled as it is.
        for o in [
            fresh(),
            Observed {
                preflight: Gate::Passed,
                networks_ready: true,
                ..fresh()
            },
        ] {
            let d = decide(&ctx(), &o, cancel);
            assert_eq!(
                (d.phase.step, d.commands.clone()),
                (Step::Cancelled, vec![]),
                "{o:?}"
            );
            assert!(!d.wants_import_slot && !d.wants_cutover_slot);
        }
        // Manual power-off not confirmed yet: the source is untouched, still cancellable.
        let manual = VmContext {
            power_off_by_api: false,
            ..ctx()
        };
        let manual_gate = Observed {
            source_power: Power::Unknown,
            ..at_gate()
        };
        assert_eq!(
            decide(&manual, &manual_gate, Control::default()).commands,
            vec![Command::AskPowerOff]
        );
        assert_eq!(
            decide(&manual, &manual_gate, cancel).phase.step,
            Step::Cancelled
        );
        // The API's power-off not sent yet (the source runs): cancellable too.
        assert_eq!(
            decide(&ctx(), &at_gate(), Control::default()).commands,
            vec![Command::PowerOffSource]
        );
        assert_eq!(
            decide(&ctx(), &at_gate(), cancel).phase.step,
            Step::Cancelled
        );
    }

    #[test]
    fn cancel_lets_a_cutover_in_progress_finish() {
        let cancel = Control {
            cancel: true,
            ..Control::default()
        };
        // Source powered off by the API: the cutover (and its import) goes on.
        for o in [
            Observed {
                source_power: Power::Off,
                ..at_gate()
            },
            Observed {
                import_slot: true,
                disks: vec![
                    DiskObs::Succeeded,
                    DiskObs::importing("ImportInProgress", Some(0.5)),
                ],
                ..gate_passed()
            },
            Observed {
                cutover_slot: true,
                ..imported()
            },
        ] {
            assert_eq!(
                decide(&ctx(), &o, cancel),
                decide(&ctx(), &o, Control::default()),
                "{o:?}"
            );
        }
        // A power-off under way: the cutover goes on (the call's answer decides the rest).
        let sending = Observed {
            power_off_in_flight: true,
            ..at_gate()
        };
        assert_eq!(
            decide(&ctx(), &sending, cancel).phase.step,
            Step::CutoverGate
        );
        let booting = Observed {
            vm_started: Some(true),
            vmi_phase: Some("Scheduling".into()),
            ..imported()
        };
        assert_eq!(decide(&ctx(), &booting, cancel).phase.step, Step::Booting);
    }

    #[test]
    fn rollback_deletes_then_powers_the_source_on() {
        let rb = Control {
            rollback: true,
            ..Control::default()
        };
        let o = Observed {
            vm_started: Some(true),
            vmi_phase: Some("Running".into()),
            source_power: Power::Off,
            ..imported()
        };
        let d = decide(&ctx(), &o, rb);
        assert_eq!(d.phase.step, Step::RollingBack);
        assert_eq!(
            d.commands,
            vec![Command::DeleteVm, Command::DeleteDataVolumes]
        );
        let gone = Observed {
            disks: vec![DiskObs::Absent, DiskObs::Absent],
            source_power: Power::Off,
            ..fresh()
        };
        assert_eq!(
            decide(&ctx(), &gone, rb).commands,
            vec![Command::PowerOnSource]
        );
        let on = Observed {
            source_power: Power::On,
            ..gone
        };
        assert_eq!(decide(&ctx(), &on, rb).phase.step, Step::RolledBack);
    }

    #[test]
    fn decisions_are_deterministic() {
        let o = Observed {
            cutover_slot: true,
            ..imported()
        };
        assert_eq!(run(&o), run(&o));
    }

    #[test]
    fn step_all_lists_every_variant_in_declaration_order() {
        // Exhaustive: a new variant does not compile here until it has a place, and then
        // `Step::ALL` must hold it at that place.
        fn place(s: Step) -> usize {
            match s {
                Step::Pending => 0,
                Step::Preflight => 1,
                Step::NetworkReady => 2,
                Step::Precopy => 3,
                Step::CutoverGate => 4,
                Step::Importing => 5,
                Step::Imported => 6,
                Step::Created => 7,
                Step::Booting => 8,
                Step::Running => 9,
                Step::Verifying => 10,
                Step::Verified => 11,
                Step::RollingBack => 12,
                Step::RolledBack => 13,
                Step::Cancelled => 14,
            }
        }
        const VARIANTS: usize = 15;
        assert_eq!(Step::ALL.len(), VARIANTS);
        for (i, s) in Step::ALL.into_iter().enumerate() {
            assert_eq!(place(s), i, "{s:?}");
            assert_eq!(s as usize, i, "{s:?}: ALL follows the declaration order");
        }
        assert!(
            Step::ALL.windows(2).all(|w| w[0] < w[1]),
            "ordered, no repeats"
        );
    }

    fn restarting(restarts: u32, reason: &str, message: &str) -> DiskObs {
        DiskObs::Importing {
            phase: DvPhase::ImportInProgress,
            progress: Some(0.0),
            restarts,
            problem: Some(ImportProblem {
                condition: "Running".into(),
                reason: reason.into(),
                message: message.into(),
            }),
        }
    }

    #[test]
    fn an_importer_restarting_below_the_limit_is_still_importing() {
        let o = Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            disks: vec![restarting(2, "Error", "login failed"), DiskObs::Succeeded],
            import_slot: true,
            source_power: Power::Off,
            ..fresh()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Importing);
        assert_eq!(d.phase.status, Status::Active);
    }

    #[test]
    fn an_importer_restarting_at_the_limit_fails_the_disk_naming_cdis_reason() {
        let o = Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            disks: vec![
                DiskObs::Succeeded,
                restarting(
                    3,
                    "Error",
                    "Cannot complete login due to an incorrect user name or password.",
                ),
            ],
            import_slot: true,
            ..fresh()
        };
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Importing);
        assert_eq!(
            d.phase.status,
            Status::Failed(
                "disk 1: the importer restarted 3 times (Running Error): Cannot complete login due to an incorrect user name or password."
                    .into()
            )
        );
        assert!(d.commands.is_empty() && !d.wants_cutover_slot);
    }

    #[test]
    fn awaiting_vddk_fails_at_once() {
        let o = Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            disks: vec![
                DiskObs::Importing {
                    phase: DvPhase::ImportScheduled,
                    progress: None,
                    restarts: 0,
                    problem: Some(ImportProblem {
                        condition: "Bound".into(),
                        reason: AWAITING_VDDK.into(),
                        message: "waiting for v2v-vmware configmap".into(),
                    }),
                },
                DiskObs::Absent,
            ],
            import_slot: true,
            ..fresh()
        };
        let d = run(&o);
        assert!(
            matches!(&d.phase.status, Status::Failed(w) if w.starts_with("disk 0: CDI waits for a VDDK image (AwaitingVDDK)") && w.contains("vddk_init_image")),
            "{:?}",
            d.phase
        );
        assert!(
            d.commands.is_empty(),
            "no second DataVolume while the first cannot start"
        );
    }

    #[test]
    fn a_guest_without_an_agent_goes_to_its_checks_once_the_vmi_runs() {
        let o = Observed {
            vm_started: Some(true),
            vmi_phase: Some("Running".into()),
            agent_connected: false,
            ..imported()
        };
        let with_agent = run(&o);
        assert_eq!(with_agent.phase.step, Step::Running);
        assert!(matches!(with_agent.phase.status, Status::Waiting(_)));
        let ctx = VmContext {
            guest_agent: false,
            ..ctx()
        };
        let d = decide(&ctx, &o, Control::default());
        assert_eq!(d.phase.step, Step::Verifying);
        assert_eq!(d.commands, vec![Command::RunChecks]);
    }
}
