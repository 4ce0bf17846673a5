//! The wave policy as a pure function, in the style of [`super::decide`] and of kube-runtime's
//! watcher / store / scheduler split: [`turn`] takes the fleet's memory ([`Fleet`]), what
//! changed since the last turn ([`Input`]s: cluster views, finished commands, wake-ups,
//! operator requests) and the time, and returns a [`Turn`]: the events to emit, the commands
//! to run, the side effects to start, when to wake it next, and the waves that finished. No
//! async, no tokio, no cluster or source clients: the tests call it with a fake clock.
//!
//! The rules it owns, each with its own tests:
//! - per-VM overrides of [`decide`]'s answer: a failed command, a dry run that stops after
//!   preflight, a dependency that failed, the guest-agent and boot timeouts, an import that
//!   makes no progress for `import_stall_timeout`;
//! - the preflight gate per wave: no mutation in a wave while one of its VMs waits on
//!   preflight, and a failed preflight fails the wave's VMs that have not started;
//! - import and cutover slots per wave, in plan order;
//! - `after` dependencies (inside a wave: verified; across waves: running);
//! - pause, resume, cancel, retry, rollback, manual power-off confirmation;
//! - the duplicate-IP guard's re-probes and its limit;
//! - wave completion, the next queued wave starting, and the run's end;
//! - one classification of a VM's end state ([`EndState`]) for `wave-done` and the run
//!   summary.

use super::decide::forklift::ForkliftObs;
use super::decide::policy::PolicyObs;
use super::decide::warm::{DiskStages, WarmObs, WarmSource};
use super::decide::{
    decide, Command, Control, Decision, DiskObs, Gate, IpGuard, Observed, Phase, Power, Status,
    Step, VmContext,
};
use super::events::{EngineEvent, EngineRequest, EventKind, LogLevel};
use crate::checks::result::CheckResult;
use crate::cluster::phase::{DvPhase, MigrationPhase, VmiPhase};
use crate::plan::time::humanize;
use crate::plan::{Plan, PowerOff};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How the run is driven (the parts of the engine's configuration the policy reads).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Server-side dry run: preflight and a dry run of every object, then stop.
    pub dry_run: bool,
    /// Only these VMs (empty: all).
    pub only_vms: BTreeSet<String>,
    /// Waves started at once, run one after the other (empty: wait for `StartWave`).
    pub auto_waves: Vec<String>,
    /// Treat manual power-offs as confirmed (scripted runs).
    pub confirm_power_off: bool,
    /// End the run when the started waves are done (headless runs).
    pub exit_when_done: bool,
    /// A booted VM whose guest agent has not connected after this long fails; a started VM
    /// whose VMI is not running after this long fails too.
    pub agent_timeout: Duration,
    /// Pause between probes of an original IP that still answers.
    pub guard_interval: Duration,
    /// The clock change windows are judged by.
    pub window_clock: WindowClock,
    /// Start cutovers outside their wave's window, or in one too short (an operator's
    /// override; it is in the journal).
    pub ignore_window: bool,
    /// VMs with a drafted network policy to apply once verified (`[plan] policy =
    /// "apply"`); empty otherwise.
    pub policy_vms: BTreeSet<String>,
}

/// A VM's network policy in this run (see `decide::policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum PolicyRun {
    /// No policy for this VM.
    None,
    /// To be applied once its checks pass.
    Pending,
    /// Applied at this time (since the run started); settling.
    Applied(Duration),
    /// The checks with the policy in place.
    Checking(Gate),
    Reverted(String),
    /// Removed (or never applied) for a cancel before it was confirmed.
    Cancelled,
}

/// The clock change windows are judged by: on a real cluster the wall clock; on the
/// rehearsal cluster the simulated world's clock (it runs `speed` times faster), read from
/// the sim so `sim serve` and `run` agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowClock {
    /// The clock's reading (Unix ms) when the run started.
    pub start_ms: i64,
    /// Clock milliseconds per real millisecond.
    pub speed: f64,
}

impl WindowClock {
    /// The wall clock, read now.
    pub fn wall(now_ms: i64) -> WindowClock {
        WindowClock {
            start_ms: now_ms,
            speed: 1.0,
        }
    }

    /// The clock's reading `elapsed` after the run started.
    pub fn at(&self, elapsed: Duration) -> i64 {
        self.start_ms + (elapsed.as_secs_f64() * 1000.0 * self.speed) as i64
    }

    /// When (time since the run started) the clock reads `ms`.
    pub fn elapsed_at(&self, ms: i64) -> Duration {
        Duration::from_secs_f64(((ms - self.start_ms).max(0) as f64 / 1000.0) / self.speed)
    }
}

use crate::plan::estimate::CUTOVER_OVERHEAD;
use crate::plan::estimate::{Fit, Throughput};

/// After this many answers from the original IP, the VM fails at its cutover gate.
pub const GUARD_ATTEMPTS: u32 = 12;

/// What the cluster shows of one VM, read by the runtime from its watch stores.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterView {
    /// One entry per planned disk, in plan order.
    pub disks: Vec<DiskObs>,
    /// Every NetworkAttachmentDefinition the VM uses exists (always true for L3 VMs).
    pub networks_ready: bool,
    /// The VirtualMachine exists; `Some(true)` when its runStrategy runs it.
    pub vm_started: Option<bool>,
    /// The VMI's phase, if a VMI exists.
    pub vmi_phase: Option<VmiPhase>,
    pub agent_connected: bool,
    /// The node the VMI runs on.
    pub node: Option<String>,
    /// Warm VMs: each planned disk's multi-stage import (DataVolume checkpoints, PVC
    /// annotations, recorded change IDs).
    pub stages: Vec<DiskStages>,
    /// The Forklift backend: the VM's Plan's latest Migration and its entry in
    /// `Plan.status.migration.vms[]`.
    pub forklift: Option<ForkliftObs>,
    /// The VirtualMachine carries wavelift's VM label.
    pub vm_labelled: bool,
    /// The power-off an earlier run requested, as the cutover's objects record it
    /// ([`crate::cluster::labels::POWER_OFF`]): a resumed run's downtime runs from it.
    pub power_off: Option<crate::cluster::labels::PowerOffStamp>,
    /// The downtime an earlier run recorded on the VirtualMachine when its checks passed
    /// ([`crate::checks::report::ANN_CUTOVER`]): that cutover is not recorded again.
    pub recorded_downtime_ms: Option<u64>,
}

/// One live migration as the cluster shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationView {
    pub name: String,
    /// The VMI (= VM) name.
    pub vm: String,
    pub phase: MigrationPhase,
    pub source_node: Option<String>,
    pub target_node: Option<String>,
}

/// What a finished command changes in the engine's memory of a VM.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Nothing,
    /// The preflight's verdict, and the source VM's power state when vCenter was asked.
    Preflight(Gate, Option<Power>),
    Power(Power),
    /// Warm: the final stage's size in bytes (`None`: vCenter could not say).
    FinalDelta(Option<u64>),
    /// The source is off: `hard` when it was stopped without a guest shutdown; `host`: the
    /// ESXi host vCenter says it is on (`runtime.host`), read as its import starts.
    PoweredOff {
        hard: bool,
        host: Option<String>,
    },
    IpGuard(IpGuard),
    Checks(Gate, Vec<CheckResult>),
    /// vCenter's view of a warm VM's source (after any snapshot or CBT operation), and
    /// the change IDs just written on its DataVolumes (`(snapshot, one per disk)`) when
    /// the command retired a copied stage.
    Warm(WarmSource, Power, Option<(String, Vec<String>)>),
}

/// Something that changed since the last turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// VM `vm` (plan index) as the cluster shows it now.
    Cluster {
        vm: usize,
        view: ClusterView,
    },
    /// A live migration as the cluster shows it now.
    Migration(MigrationView),
    /// A command finished.
    Done {
        vm: usize,
        cmd: Command,
        result: Result<Update, String>,
    },
    /// The time asked for in [`Turn::wake_at`] came (or any later time).
    Wake,
    Request(EngineRequest),
}

/// Work for the runtime besides the pipeline's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Delete the VM's DataVolumes that did not finish importing (an operator's retry of
    /// a VM that failed importing: CDI restarts a failed importer forever, so only a new
    /// DataVolume starts over).
    ReplaceUnfinishedDisks { vm: usize },
    /// Live-migrate the VM (an operator's request).
    Migrate { vm: usize },
    /// Record the VM's cutover on its VirtualMachine, for `verify` reports.
    RecordCutover {
        vm: usize,
        record: crate::checks::report::CutoverRecord,
    },
}

/// The clock a turn runs at: monotonic time for timeouts, wall time for event stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Unix milliseconds (event time stamps).
    pub unix_ms: i64,
}

/// What one turn decided.
#[derive(Debug, Default, PartialEq)]
pub struct Turn {
    pub events: Vec<EngineEvent>,
    /// Commands to run now, by VM plan index. They are in flight from now on: each comes
    /// back as [`Input::Done`].
    pub commands: Vec<(usize, Command)>,
    pub effects: Vec<Effect>,
    /// When to turn again if nothing else happens first (a timeout or a re-probe falls
    /// due then), as time since the run started. The runtime keeps one timer.
    pub wake_at: Option<Duration>,
    /// Waves that finished in this turn.
    pub finished_waves: Vec<String>,
    /// The run is over (its waves are done and it exits then, or the operator shut it down).
    pub exit: bool,
}

/// How a VM ended, as far as it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndState {
    Verified,
    RolledBack,
    Cancelled,
    /// The wave's change window closed before the VM's cutover began (its source was never
    /// touched): it waits for another window.
    Postponed,
    /// A dry run whose preflight and server-side dry run passed.
    DryRunOk,
    Failed(String),
}

/// How a run ended, per VM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub verified: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub rolled_back: Vec<String>,
    pub cancelled: Vec<String>,
    /// VMs whose wave's window closed before their cutover began.
    pub postponed: Vec<String>,
    pub dry_run_ok: Vec<String>,
    pub unfinished: Vec<String>,
    /// Downtime of each verified VM whose power-off this run requested, in milliseconds
    /// (a run resumed after a power-off does not know when it was requested).
    pub downtime_ms: Vec<(String, u64)>,
    /// Verified VMs whose network policy (`policy = "apply"`) was reverted or refused, and
    /// why: they run without it.
    pub policy_reverted: Vec<(String, String)>,
}

/// The engine's memory of one VM in this run (everything else is read from the cluster).
#[derive(Debug, Clone)]
struct VmRun {
    /// Plan indices of the VMs in `after` (resolved once: validation guarantees they exist).
    deps: Vec<usize>,
    ctx: VmContext,
    cluster: ClusterView,
    preflight: Gate,
    source_power: Power,
    power_off_confirmed: bool,
    ip_guard: IpGuard,
    checks: Gate,
    control: Control,
    in_flight: HashSet<Command>,
    /// Commands finished in the current step (cleared when the step changes).
    done: HashSet<Command>,
    failed: Option<(Step, String)>,
    import_slot: bool,
    /// The source limit that held its import at the last grant (`None`: the wave's).
    import_wait: Option<String>,
    cutover_slot: bool,
    guard_attempts: u32,
    last: Option<Phase>,
    last_node: Option<String>,
    asked_power_off: bool,
    /// When the VM entered its current step and status.
    since: Duration,
    /// Probe the original IP again at this time (it answered last time).
    reprobe_at: Option<Duration>,
    /// When the VM's imports last moved (a phase changed or progress grew).
    import_moved_at: Duration,
    /// A retry is replacing the VM's unfinished DataVolumes: until the cluster shows them
    /// gone, their old failure is not the VM's.
    replacing: bool,
    /// When this run asked for the source's power-off (the window clock, Unix ms: the
    /// rehearsal world's clock in a rehearsal, so its downtime is the night's): the
    /// downtime's start.
    power_off_at: Option<i64>,
    /// The VM's downtime, once it was verified after a power-off this run requested.
    downtime_ms: Option<u64>,
    /// The VM was verified with no power-off time known: said once.
    downtime_unknown_said: bool,
    /// Its wave's window closed before its cutover began.
    postponed: bool,
    /// Warm: vCenter's view of the source, read in this run.
    warm_source: Option<WarmSource>,
    /// Warm: the change IDs this run last wrote on the DataVolumes, `(snapshot, per disk)`.
    /// The snapshot's removal is read back from vCenter at once, while the DataVolume
    /// watch may not have delivered the annotation yet: until it does, this is the truth
    /// (without it the next stage would find the IDs missing and fail the VM).
    recorded_ids: Option<(String, Vec<String>)>,
    /// Warm: the checkpoints this run appended (`(previous per disk, current)`), shown in
    /// the stages until the DataVolume watch does.
    added_checkpoints: Vec<(Vec<String>, String, bool)>,
    /// Warm: the last checkpoint copied on every disk and when (window clock, Unix ms):
    /// the next precopy round falls due `precopy_interval` later.
    round_copied: Option<(String, i64)>,
    /// This run stopped the source hard (no guest shutdown): its copy is crash-consistent.
    hard_stopped: bool,
    /// Bytes its imports had copied when last seen, and when (window clock, Unix ms).
    copied_mark: Option<(f64, i64)>,
    /// An import was running at that sighting.
    was_importing: bool,
    /// Warm: the checkpoint being copied and when it appeared (window clock, Unix ms).
    round_started: Option<(String, i64)>,
    /// Warm: how long its last precopy round took to copy.
    last_round: Option<Duration>,
    /// Warm: the bytes its final stage copied, as vCenter's changed areas say.
    final_delta_bytes: Option<u64>,
    /// Forklift: the operator retried the VM when its Plan's latest Migration was this
    /// attempt (a new Migration is due until a later one shows).
    forklift_retry: Option<u32>,
    policy: PolicyRun,
}

/// The fleet: the plan and the engine's memory of every VM and wave in this run.
pub struct Fleet {
    plan: Arc<Plan>,
    settings: Settings,
    vms: Vec<VmRun>,
    /// Started waves, in start order.
    active: Vec<String>,
    /// Waves to start one after the other (headless runs).
    queue: Vec<String>,
    /// Waves whose `--ignore-window` override the journal has.
    overrides_said: BTreeSet<String>,
    finished: HashSet<String>,
    /// Last phase reported per live migration.
    migrations: HashMap<String, MigrationPhase>,
    /// Waves whose change window the operator overrode ([`EngineRequest::IgnoreWindow`]).
    windows_ignored: HashSet<String>,
    /// Import throughput measured in this run.
    throughput: Throughput,
    /// Each VM's ESXi host and datastores (plan order), for the per-source import limits.
    sources: Vec<Source>,
    /// The last window fit reported per wave (minutes left, cutovers left, minutes needed).
    fits: HashMap<String, (u64, usize, u64)>,
    /// What the last window fit per wave was computed from (the wave's generation, minutes
    /// left, the throughput): unchanged, it is not computed again.
    fits_from: HashMap<String, (u64, u64, f64)>,
    /// Which VMs to decide again, their last decisions, per-wave counts.
    rec: reconcile::Reconcile,
    /// Concurrent disk transfers per ESXi host and datastore (the VMs holding import slots).
    load: SourceLoad,
    /// The Forklift backend's Plans (empty with CDI).
    fk: ForkliftPlans,
}

/// The Forklift Plans of a `backend = "forklift"` plan: one Migration per Plan, created when
/// every VM of the Plan may start (the per-Plan gate in [`forklift_gates`]).
#[derive(Debug, Default)]
struct ForkliftPlans {
    groups: Vec<crate::cluster::forklift::PlanGroup>,
    /// Plan indices of each group's VMs, in plan order.
    members: Vec<Vec<usize>>,
    /// Each VM's group.
    group_of: Vec<Option<usize>>,
    /// The highest Migration attempt this run created per group.
    issued: Vec<u32>,
    /// Migrations whose cutover this run set.
    cutovers: HashSet<String>,
}

impl ForkliftPlans {
    fn new(plan: &Plan) -> ForkliftPlans {
        if plan.meta.backend.value != crate::plan::Backend::Forklift {
            return ForkliftPlans {
                group_of: vec![None; plan.vms.len()],
                ..Default::default()
            };
        }
        let groups = crate::cluster::forklift::plan_groups(plan);
        let index: HashMap<&str, usize> = plan
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.as_str(), i))
            .collect();
        let mut group_of = vec![None; plan.vms.len()];
        let members: Vec<Vec<usize>> = groups
            .iter()
            .enumerate()
            .map(|(g, pg)| {
                pg.vms
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .inspect(|&i| group_of[i] = Some(g))
                    .collect()
            })
            .collect();
        ForkliftPlans {
            issued: vec![0; groups.len()],
            groups,
            members,
            group_of,
            cutovers: HashSet::new(),
        }
    }
}

impl Fleet {
    /// The fleet at the start of a run: nothing observed yet, `auto_waves[0]` started.
    pub fn new(plan: Arc<Plan>, settings: Settings) -> Fleet {
        let plan_for_fk = plan.clone();
        let throughput = Throughput::assuming(plan.import_rate());
        let sources = plan.vms.iter().map(Source::of).collect();
        let index: HashMap<&str, usize> = plan
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.as_str(), i))
            .collect();
        let vms: Vec<VmRun> = plan
            .vms
            .iter()
            .map(|vm| VmRun {
                deps: vm
                    .after
                    .iter()
                    .filter_map(|a| index.get(a.value.as_str()).copied())
                    .collect(),
                ctx: VmContext {
                    disk_bytes: vm.disks.iter().map(|d| d.size.bytes).collect(),
                    power_off_by_api: plan.source.power_off == PowerOff::VsphereApi,
                    has_checks: !plan.checks_for(vm).is_empty(),
                    import_restart_limit: plan.defaults.import_restart_limit,
                    guest_agent: plan.guest_of(vm).guest_agent,
                    warm: super::decide::warm::ctx_for(&plan, vm),
                    forklift: plan.meta.backend.value == crate::plan::Backend::Forklift,
                },
                cluster: ClusterView::default(),
                preflight: Gate::NotRun,
                source_power: Power::Unknown,
                power_off_confirmed: settings.confirm_power_off,
                ip_guard: IpGuard::NotProbed,
                checks: Gate::NotRun,
                control: Control::default(),
                in_flight: HashSet::new(),
                done: HashSet::new(),
                failed: None,
                import_slot: false,
                import_wait: None,
                cutover_slot: false,
                guard_attempts: 0,
                last: None,
                last_node: None,
                asked_power_off: false,
                since: Duration::ZERO,
                reprobe_at: None,
                import_moved_at: Duration::ZERO,
                replacing: false,
                power_off_at: None,
                downtime_ms: None,
                downtime_unknown_said: false,
                postponed: false,
                warm_source: None,
                recorded_ids: None,
                added_checkpoints: Vec::new(),
                round_copied: None,
                hard_stopped: false,
                copied_mark: None,
                was_importing: false,
                round_started: None,
                last_round: None,
                final_delta_bytes: None,
                forklift_retry: None,
                policy: if settings.policy_vms.contains(vm.name.as_str()) {
                    PolicyRun::Pending
                } else {
                    PolicyRun::None
                },
            })
            .collect();
        let mut queue = settings.auto_waves.clone();
        let active = if queue.is_empty() {
            vec![]
        } else {
            vec![queue.remove(0)]
        };
        let wave_of = plan
            .vms
            .iter()
            .map(|vm| {
                plan.waves
                    .iter()
                    .position(|w| *w.name == *vm.wave)
                    .expect("validation: every VM's wave exists")
            })
            .collect();
        let deps: Vec<Vec<usize>> = vms.iter().map(|r| r.deps.clone()).collect();
        let rec = reconcile::Reconcile::new(wave_of, plan.waves.len(), &deps);
        Fleet {
            plan,
            settings,
            vms,
            active,
            queue,
            overrides_said: BTreeSet::new(),
            finished: HashSet::new(),
            migrations: HashMap::new(),
            windows_ignored: HashSet::new(),
            throughput,
            sources,
            fits: HashMap::new(),
            fits_from: HashMap::new(),
            rec,
            load: SourceLoad::default(),
            fk: ForkliftPlans::new(&plan_for_fk),
        }
    }

    /// Decide every VM at every pass instead of only the changed ones (the reference the
    /// incremental path is tested against).
    #[cfg(test)]
    pub fn set_full_reconcile(&mut self, full: bool) {
        self.rec.full = full;
    }

    fn set_import_slot(&mut self, i: usize, on: bool) {
        if self.vms[i].import_slot == on {
            return;
        }
        self.vms[i].import_slot = on;
        // Its decision reads the slot (a released one too): decide it again.
        self.rec.mark(i);
        let w = self.rec.wave_of[i];
        if on {
            self.rec.imports_held[w] += 1;
            self.load.add(&self.sources[i]);
        } else {
            self.rec.imports_held[w] -= 1;
            self.load.remove(&self.sources[i]);
        }
    }

    fn set_cutover_slot(&mut self, i: usize, on: bool) {
        if self.vms[i].cutover_slot == on {
            return;
        }
        self.vms[i].cutover_slot = on;
        self.rec.mark(i);
        let w = self.rec.wave_of[i];
        if on {
            self.rec.cutovers_held[w] += 1;
        } else {
            self.rec.cutovers_held[w] -= 1;
        }
    }

    /// Whether VM `i`'s decision reads the clock or the fleet's throughput, so that every
    /// pass decides it again (see [`reconcile`]).
    fn is_volatile(&self, i: usize) -> bool {
        let r = &self.vms[i];
        let timed = |s: Step| matches!(s, Step::Running | Step::Booting | Step::Importing);
        if r.reprobe_at.is_some()
            || r.last.as_ref().is_some_and(|p| timed(p.step))
            || self.rec.raw[i]
                .as_ref()
                .is_some_and(|d| timed(d.phase.step))
            || (r.ctx.warm.is_some() && r.round_copied.is_some())
            || matches!(r.policy, PolicyRun::Applied(_))
        {
            return true;
        }
        // A change window (and the throughput its estimate reads) gates the cutover.
        let windowed = !window_ignored(self, i)
            && self
                .plan
                .wave(&self.plan.vms[i].wave)
                .is_some_and(|w| w.window.is_some());
        // `decide` reads the window once preflight passed, until the disks are copied
        // (`next_wake` wakes VMs waiting at NetworkReady or Precopy at its edges).
        let gated = |s: Step| s.before_cutover() || s == Step::CutoverGate;
        windowed
            && r.last.as_ref().is_none_or(|p| {
                // Forklift's decide reads the window at Precopy from what Forklift shows,
                // whatever this run's preflight says.
                ((r.preflight == Gate::Passed || r.ctx.forklift) && gated(p.step))
                    || (matches!(p.step, Step::NetworkReady | Step::Precopy)
                        && matches!(p.status, Status::Waiting(_)))
            })
    }

    /// The VM's last reported phase.
    #[cfg(test)]
    pub fn phase(&self, vm: usize) -> Option<&Phase> {
        self.vms.get(vm).and_then(|r| r.last.as_ref())
    }

    /// Started waves, in start order.
    #[cfg(test)]
    pub fn active_waves(&self) -> &[String] {
        &self.active
    }

    fn in_scope(&self, i: usize) -> bool {
        let vm = &self.plan.vms[i];
        self.active.iter().any(|w| *w == *vm.wave)
            && (self.settings.only_vms.is_empty()
                || self.settings.only_vms.contains(vm.name.as_str()))
    }

    /// How VM `i` ended, or `None` while it is still under way.
    pub fn end_state(&self, i: usize) -> Option<EndState> {
        let r = &self.vms[i];
        match r.last.as_ref().map(|p| (p.step, &p.status)) {
            // A cancel that removed a policy not confirmed yet (or kept one from going
            // on): the VM runs, without its policy; reported as cancelled.
            Some((Step::Verified, _))
                if r.policy == PolicyRun::Cancelled
                    || (r.control.cancel && r.policy == PolicyRun::Pending) =>
            {
                Some(EndState::Cancelled)
            }
            Some((Step::Verified, _)) => Some(EndState::Verified),
            Some((Step::RolledBack, _)) => Some(EndState::RolledBack),
            // Cancelled once its DataVolume deletions are done.
            Some((Step::Cancelled, _)) if r.in_flight.is_empty() && !r.control.rollback => {
                Some(EndState::Cancelled)
            }
            Some((Step::Preflight, Status::Active))
                if self.settings.dry_run && r.preflight == Gate::Passed =>
            {
                Some(EndState::DryRunOk)
            }
            Some((Step::NetworkReady | Step::Precopy, Status::Waiting(_))) if r.postponed => {
                Some(EndState::Postponed)
            }
            Some((_, Status::Failed(why))) => Some(EndState::Failed(why.clone())),
            _ => None,
        }
    }

    /// How the run ended, for the VMs of the started waves.
    pub fn summary(&self) -> RunSummary {
        let mut s = RunSummary::default();
        for i in (0..self.vms.len()).filter(|&i| self.in_scope(i)) {
            let name = self.plan.vms[i].name.value.clone();
            if let Some(ms) = self.vms[i].downtime_ms {
                s.downtime_ms.push((name.clone(), ms));
            }
            if let PolicyRun::Reverted(why) = &self.vms[i].policy {
                s.policy_reverted.push((name.clone(), why.clone()));
            }
            match self.end_state(i) {
                Some(EndState::Verified) => s.verified.push(name),
                Some(EndState::RolledBack) => s.rolled_back.push(name),
                Some(EndState::Cancelled) => s.cancelled.push(name),
                Some(EndState::Postponed) => s.postponed.push(name),
                Some(EndState::DryRunOk) => s.dry_run_ok.push(name),
                Some(EndState::Failed(why)) => s.failed.push((name, why)),
                None => s.unfinished.push(name),
            }
        }
        s
    }
}

/// One turn of the wave policy: apply `inputs`, then decide every VM until the decisions
/// settle (a granted slot or a changed phase changes other VMs' decisions), handing out
/// commands, slots, timers and events.
pub fn turn(fleet: &mut Fleet, inputs: impl IntoIterator<Item = Input>, now: Now) -> Turn {
    let mut out = Turn::default();
    for input in inputs {
        apply(fleet, input, now, &mut out);
    }
    // Each pass that changes something can unblock at most the next link of a chain of
    // `after` dependencies or slots: passes are bounded by the fleet's size.
    for _ in 0..fleet.vms.len() + 2 {
        if !pass(fleet, now, &mut out) || out.exit {
            break;
        }
    }
    // `--ignore-window` is an operator override like the TUI's: in the journal, once for
    // each wave with a window it lets through, when the wave starts.
    if fleet.settings.ignore_window {
        for w in &fleet.active {
            let windowed = fleet.plan.wave(w).is_some_and(|wv| wv.window.is_some());
            if windowed && fleet.overrides_said.insert(w.clone()) {
                out.events.push(window_override(now, w, "--ignore-window"));
            }
        }
    }
    out.wake_at = next_wake(fleet, now);
    out
}

/// The earliest time a re-probe or a timeout falls due, or a change window opens or closes
/// for a VM waiting for it. Only volatile VMs have such times ([`Fleet::is_volatile`]).
fn next_wake(fleet: &Fleet, now: Now) -> Option<Duration> {
    let s = &fleet.settings;
    let stall = fleet.plan.defaults.import_stall_timeout;
    let candidates: Vec<usize> = if fleet.rec.full {
        (0..fleet.vms.len()).collect()
    } else {
        fleet.rec.volatile.iter().copied().collect()
    };
    let clock_now = s.window_clock.at(now.elapsed);
    let wake = |i: usize| -> Option<Duration> {
        let r = &fleet.vms[i];
        let timed = r.last.as_ref().and_then(|p| match (p.step, &p.status) {
            (Step::Running, Status::Waiting(_)) | (Step::Booting, Status::Active) => {
                Some(r.since + s.agent_timeout)
            }
            (Step::Importing, Status::Active) if r.failed.is_none() => {
                Some(r.import_moved_at + stall)
            }
            _ => None,
        });
        let waiting_in = |steps: &[Step]| {
            r.last
                .as_ref()
                .is_some_and(|p| steps.contains(&p.step) && matches!(p.status, Status::Waiting(_)))
        };
        let vm = &fleet.plan.vms[i];
        let wave = fleet.plan.wave(&vm.wave);
        // The next precopy round of a warm VM between rounds.
        let round = r.round_copied.as_ref().and_then(|(_, at)| {
            let due = at + wave?.precopy_interval.as_millis() as i64;
            (waiting_in(&[Step::Precopy]) && due > clock_now)
                .then(|| s.window_clock.elapsed_at(due))
        });
        // The next edge of the window: its opening, the VM's own cutover time, else its
        // closing (which postpones it). An overridden window holds nothing.
        let edge = wave
            .and_then(|w| w.window.as_ref())
            .filter(|_| !window_ignored(fleet, i))
            .and_then(|window| {
                let cutover = vm.cutover.as_ref().map(|at| at.unix * 1000);
                [
                    Some(window.start.unix * 1000),
                    cutover,
                    Some(window.end.unix * 1000),
                ]
                .into_iter()
                .flatten()
                .find(|&t| t > clock_now)
            })
            .filter(|_| waiting_in(&[Step::NetworkReady, Step::Precopy]))
            .map(|t| s.window_clock.elapsed_at(t));
        // The end of a policy's settle time.
        let settled = match r.policy {
            PolicyRun::Applied(at) => Some(at + fleet.plan.meta.policy_settle),
            _ => None,
        };
        [timed, r.reprobe_at, round, edge, settled]
            .into_iter()
            .flatten()
            .min()
    };
    candidates.into_iter().filter_map(wake).min()
}

fn log(vm: &str, wave: &str, now: Now, level: LogLevel, message: String) -> EngineEvent {
    EngineEvent {
        vm: vm.to_string(),
        wave: wave.to_string(),
        at_ms: now.unix_ms,
        kind: EventKind::Log { level, message },
    }
}

impl Fleet {
    /// VM `i`'s power-off as the objects its cutover writes record it: requested at what
    /// time on the window clock, and whether it ended in a hard stop (`None` before this
    /// or an earlier run requested it).
    pub fn power_off_stamp(&self, i: usize) -> Option<crate::cluster::labels::PowerOffStamp> {
        let r = self.vms.get(i)?;
        r.power_off_at
            .map(|requested_ms| crate::cluster::labels::PowerOffStamp {
                requested_ms,
                hard: r.hard_stopped,
            })
    }
}

/// The journal's record of a change window overridden for wave `w`, and by whom.
fn window_override(now: Now, w: &str, by: &str) -> EngineEvent {
    EngineEvent {
        vm: String::new(),
        wave: w.to_string(),
        at_ms: now.unix_ms,
        kind: EventKind::Mutation {
            verb: "override".into(),
            kind: "ChangeWindow".into(),
            name: w.to_string(),
            dry_run: false,
            result: format!("overridden by {by}: cutovers may start outside the window"),
        },
    }
}

fn vm_event(plan: &Plan, i: usize, now: Now, kind: EventKind) -> EngineEvent {
    let vm = &plan.vms[i];
    EngineEvent {
        vm: vm.name.value.clone(),
        wave: vm.wave.value.clone(),
        at_ms: now.unix_ms,
        kind,
    }
}

/// Applies one input to the fleet's memory.
fn apply(fleet: &mut Fleet, input: Input, now: Now, out: &mut Turn) {
    match input {
        Input::Cluster { vm, view } => {
            if vm < fleet.vms.len() && fleet.vms[vm].cluster != view {
                // Its dependents read its VMI's phase.
                fleet.rec.mark_with_dependents(vm);
            }
            let wave = fleet.rec.wave_of.get(vm).copied();
            if let Some(r) = fleet.vms.get_mut(vm) {
                // This run's own warm writes stop standing in once the watch shows them,
                // and all of them go with the DataVolumes (a rollback or a retry).
                let shown = |c: &str| {
                    !view.stages.is_empty()
                        && view
                            .stages
                            .iter()
                            .all(|s| s.checkpoints.iter().any(|(_, x)| x == c))
                };
                r.added_checkpoints.retain(|(_, c, _)| !shown(c));
                if view.stages.iter().all(|s| s.checkpoints.is_empty()) {
                    r.added_checkpoints.clear();
                    r.recorded_ids = None;
                }
                if import_moved(&r.cluster.disks, &view.disks) {
                    r.import_moved_at = now.elapsed;
                }
                let at = fleet.settings.window_clock.at(now.elapsed);
                if let Some(current) = last_copied(&view.stages, r.ctx.disk_bytes.len()) {
                    if r.round_copied.as_ref().is_none_or(|(c, _)| *c != current) {
                        if let Some((c, started)) = &r.round_started {
                            if *c == current {
                                r.last_round =
                                    Some(Duration::from_millis((at - started).max(0) as u64));
                                if let Some(w) = wave {
                                    fleet.rec.wave_gen[w] += 1;
                                }
                            }
                        }
                        r.round_copied = Some((current, at));
                    }
                } else if let Some((_, current)) =
                    view.stages.first().and_then(|s| s.checkpoints.last())
                {
                    if r.round_started.as_ref().is_none_or(|(c, _)| c != current) {
                        r.round_started = Some((current.clone(), at));
                    }
                }
                // Import throughput: the bytes the VM's imports copied since last seen. A
                // later warm stage's progress is of its delta, not of the disk: only whole
                // copies (cold, a warm VM's first stage) count.
                let whole = view.stages.iter().all(|s| s.checkpoints.len() <= 1);
                let (bytes, importing) = if whole {
                    copied_bytes(&view.disks, &r.ctx.disk_bytes)
                } else {
                    (0.0, 0)
                };
                // Only between two sightings of running imports (idle time is no
                // throughput), over at least 30 s of the clock (watch events come in
                // bursts).
                match r.copied_mark {
                    Some((before, then)) if r.was_importing && importing > 0 && bytes >= before => {
                        if at - then >= 30_000 {
                            fleet.throughput.observe(
                                bytes - before,
                                (at - then) as f64 / 1000.0,
                                importing,
                            );
                            r.copied_mark = Some((bytes, at));
                        }
                    }
                    _ => {
                        r.copied_mark = Some((bytes, at));
                        r.was_importing = importing > 0;
                    }
                }
                if r.replacing
                    && view
                        .disks
                        .iter()
                        .all(|d| matches!(d, DiskObs::Absent | DiskObs::Succeeded))
                {
                    r.replacing = false;
                }
                // A resumed run: an earlier run requested the power-off (its stamp is on
                // the cutover's objects), or recorded the whole cutover already.
                if r.downtime_ms.is_none() {
                    r.downtime_ms = view.recorded_downtime_ms;
                }
                if let (None, Some(stamp)) = (r.power_off_at, view.power_off) {
                    r.power_off_at = Some(stamp.requested_ms);
                    r.hard_stopped = stamp.hard;
                }
                r.cluster = view;
            }
        }
        Input::Migration(m) => {
            if fleet.migrations.get(&m.name) != Some(&m.phase) {
                fleet.migrations.insert(m.name.clone(), m.phase.clone());
                let wave = fleet
                    .plan
                    .vm(&m.vm)
                    .map(|v| v.wave.value.clone())
                    .unwrap_or_default();
                out.events.push(EngineEvent {
                    vm: m.vm,
                    wave,
                    at_ms: now.unix_ms,
                    kind: EventKind::Migration {
                        name: m.name,
                        phase: m.phase,
                        source_node: m.source_node,
                        target_node: m.target_node,
                        lost_probes: 0,
                        sent_probes: 0,
                    },
                });
            }
        }
        Input::Wake => {}
        Input::Done { vm, cmd, result } => done(fleet, vm, cmd, result, now, out),
        Input::Request(req) => request(fleet, req, now, out),
    }
}

/// A command finished: remember what it found.
fn done(
    fleet: &mut Fleet,
    vm: usize,
    cmd: Command,
    result: Result<Update, String>,
    now: Now,
    out: &mut Turn,
) {
    let guard_interval = fleet.settings.guard_interval;
    let settle = humanize(fleet.plan.meta.policy_settle);
    if vm < fleet.vms.len() {
        fleet.rec.mark(vm);
    }
    let Some(r) = fleet.vms.get_mut(vm) else {
        return;
    };
    r.in_flight.remove(&cmd);
    let step = r.last.as_ref().map_or(Step::Pending, |p| p.step);
    let update = match result {
        // A policy the cluster refused was never in force: the VM stays verified, marked.
        Err(why) if cmd == Command::ApplyPolicy => {
            out.events.push(vm_event(
                &fleet.plan,
                vm,
                now,
                EventKind::Log {
                    level: LogLevel::Warn,
                    message: format!("network policy not applied: {why}"),
                },
            ));
            r.policy = PolicyRun::Reverted(format!("applying it failed: {why}"));
            return;
        }
        Err(why) => {
            r.failed = Some((step, why));
            forklift::command_failed(fleet, vm, &cmd);
            return;
        }
        Ok(update) => update,
    };
    if let Command::AddCheckpoint {
        current,
        previous,
        last,
    } = &cmd
    {
        // Read-your-writes: the checkpoint is on every DataVolume now, whatever the watch
        // shows yet (a stale view would take its snapshot for one never added).
        r.added_checkpoints
            .push((previous.clone(), current.clone(), *last));
    }
    match &cmd {
        Command::ApplyPolicy => {
            r.policy = PolicyRun::Applied(now.elapsed);
            // The checks run again once it settled.
            r.done.remove(&Command::RunChecks);
            out.events.push(vm_event(
                &fleet.plan,
                vm,
                now,
                EventKind::Log {
                    level: LogLevel::Info,
                    message: format!("network policy applied; the checks run again after {settle}"),
                },
            ));
            return;
        }
        Command::RevertPolicy { reason } => {
            out.events.push(vm_event(
                &fleet.plan,
                vm,
                now,
                EventKind::Log {
                    level: LogLevel::Warn,
                    message: format!("network policy reverted: {reason}"),
                },
            ));
            // A cancel's revert (a failed check's revert stays a revert).
            r.policy =
                if r.control.cancel && !matches!(r.policy, PolicyRun::Checking(Gate::Failed(_))) {
                    PolicyRun::Cancelled
                } else {
                    PolicyRun::Reverted(reason.clone())
                };
            return;
        }
        _ => {}
    }
    r.done.insert(cmd);
    let mut new_host = None;
    match update {
        Update::Nothing => {}
        Update::Preflight(g, power) => {
            r.preflight = g;
            if let Some(p) = power {
                r.source_power = p;
            }
        }
        Update::Power(p) => r.source_power = p,
        Update::FinalDelta(bytes) => r.final_delta_bytes = bytes,
        Update::PoweredOff { hard, host } => {
            r.source_power = Power::Off;
            r.hard_stopped = hard;
            new_host = host;
        }
        Update::Warm(source, power, recorded) => {
            new_host = source.host.clone();
            r.warm_source = Some(source);
            r.source_power = power;
            if recorded.is_some() {
                r.recorded_ids = recorded;
            }
        }
        Update::IpGuard(g) => {
            if let IpGuard::Answering(why) = &g {
                r.guard_attempts += 1;
                if r.guard_attempts >= GUARD_ATTEMPTS {
                    r.failed = Some((
                        step,
                        format!("original IP still answers after {GUARD_ATTEMPTS} probes: {why}"),
                    ));
                } else {
                    r.reprobe_at = Some(now.elapsed + guard_interval);
                }
            } else {
                r.guard_attempts = 0;
            }
            r.ip_guard = g;
        }
        Update::Checks(g, results) => {
            if matches!(r.policy, PolicyRun::Applied(_) | PolicyRun::Checking(_)) {
                r.policy = PolicyRun::Checking(g);
            } else {
                r.checks = g;
            }
            for res in results {
                out.events
                    .push(vm_event(&fleet.plan, vm, now, EventKind::check(&res)));
            }
        }
    }
    source_host(fleet, vm, new_host, now, out);
}

/// vCenter says where VM `vm` runs (`runtime.host`): that host, not the plan's, counts
/// toward the per-host import limit from now on (a VM moved by vMotion or DRS since the
/// plan was written). Logged when it differs from the plan.
fn source_host(fleet: &mut Fleet, vm: usize, host: Option<String>, now: Now, out: &mut Turn) {
    let Some(host) = host else { return };
    if fleet.sources[vm].host.as_deref() == Some(host.as_str()) {
        return;
    }
    let holding = fleet.vms[vm].import_slot;
    if holding {
        fleet.load.remove(&fleet.sources[vm]);
    }
    let planned = fleet.plan.vms[vm].host.as_ref().map(|h| h.value.clone());
    fleet.sources[vm].host = Some(host.clone());
    if holding {
        fleet.load.add(&fleet.sources[vm]);
    }
    let message = match planned {
        Some(p) if p != host => format!(
            "vCenter says the source runs on ESXi host {host}, not {p} as planned: its imports count toward {host}"
        ),
        Some(_) => return,
        None => format!("the source runs on ESXi host {host}: its imports count toward it"),
    };
    out.events.push(vm_event(
        &fleet.plan,
        vm,
        now,
        EventKind::Log {
            level: LogLevel::Info,
            message,
        },
    ));
}

/// An operator's request.
fn request(fleet: &mut Fleet, req: EngineRequest, now: Now, out: &mut Turn) {
    // Requests are rare and may change anything: every VM is decided again.
    fleet.rec.mark_all();
    let plan = fleet.plan.clone();
    let wave_log = |level, message| log("", "", now, level, message);
    let vm_log =
        |i: usize, level, message| vm_event(&plan, i, now, EventKind::Log { level, message });
    let find = |name: &str| plan.vms.iter().position(|v| *v.name == name);
    let no_wave = |w: &str| wave_log(LogLevel::Error, format!("no wave `{w}` in the plan"));
    match req {
        EngineRequest::StartWave(w) => {
            if plan.wave(&w).is_none() {
                out.events.push(no_wave(&w));
                return;
            }
            let again = fleet.active.contains(&w);
            let mut uncancelled = false;
            for (i, r) in fleet.vms.iter_mut().enumerate() {
                if *plan.vms[i].wave == w {
                    r.control.paused = false;
                    uncancelled |= std::mem::take(&mut r.control.cancel);
                    // A policy a cancel removed goes on again.
                    if r.policy == PolicyRun::Cancelled {
                        r.policy = PolicyRun::Pending;
                    }
                }
            }
            // A cancelled wave started again finishes (and reports) again.
            if uncancelled {
                fleet.finished.remove(&w);
            }
            if !again {
                fleet.active.push(w.clone());
            }
            if !again || uncancelled {
                out.events
                    .push(wave_log(LogLevel::Info, format!("wave {w} started")));
            }
        }
        EngineRequest::CancelWave(w) => {
            if plan.wave(&w).is_none() {
                out.events.push(no_wave(&w));
                return;
            }
            for (i, r) in fleet.vms.iter_mut().enumerate() {
                if *plan.vms[i].wave == w {
                    r.control.cancel = true;
                    r.control.paused = false;
                }
            }
            out.events.push(wave_log(
                LogLevel::Warn,
                format!(
                    "wave {w} cancelled: VMs before their cutover stop and their imports are deleted; cutovers in progress finish"
                ),
            ));
        }
        EngineRequest::PauseWave(ref w) | EngineRequest::ResumeWave(ref w) => {
            let pause = plan.wave(w).is_some() && matches!(req, EngineRequest::PauseWave(_));
            for (i, r) in fleet.vms.iter_mut().enumerate() {
                if *plan.vms[i].wave == *w {
                    r.control.paused = pause;
                }
            }
            out.events.push(wave_log(
                LogLevel::Info,
                format!("wave {w} {}", if pause { "paused" } else { "resumed" }),
            ));
        }
        EngineRequest::IgnoreWindow(w) => {
            if plan.wave(&w).is_none() {
                out.events.push(no_wave(&w));
                return;
            }
            // Its postponed VMs are no longer held: a started wave that ended with them
            // goes on (and reports again). A wave not started yet is not started by this.
            if fleet.active.contains(&w) {
                fleet.finished.remove(&w);
            }
            fleet.windows_ignored.insert(w.clone());
            out.events.push(window_override(
                now,
                &w,
                "the operator, by typed confirmation",
            ));
            out.events.push(wave_log(
                LogLevel::Warn,
                format!("the change window of wave {w} is overridden by the operator: its cutovers may start outside it"),
            ));
        }
        EngineRequest::CancelVm(name) => {
            let Some(i) = find(&name) else { return };
            let fk = fleet.vms[i].cluster.forklift.as_ref();
            if let Some(v) = fk
                .and_then(|f| f.vm.as_ref())
                .filter(|v| v.outcome == Some(super::decide::forklift::Outcome::Succeeded))
            {
                out.events.push(vm_log(
                    i,
                    LogLevel::Warn,
                    format!(
                        "cancel of {name} refused: Forklift already migrated it (its step {}); its cutover goes on; roll it back instead",
                        v.step
                    ),
                ));
                return;
            }
            let r = &mut fleet.vms[i];
            r.control.cancel = true;
            r.control.paused = false;
            out.events.push(vm_log(
                i,
                LogLevel::Warn,
                format!("cancelling {name}: before its cutover it stops; a cutover in progress finishes"),
            ));
        }
        EngineRequest::RetryVm(name) => {
            let Some(i) = find(&name) else { return };
            if let Some(f) = fleet.vms[i].cluster.forklift.clone() {
                use super::decide::forklift::Outcome;
                let outcome = f.vm.as_ref().and_then(|v| v.outcome);
                if matches!(outcome, Some(Outcome::Failed | Outcome::Canceled)) {
                    let attempt = f.migration.as_ref().map_or(0, |m| m.attempt);
                    let r = &mut fleet.vms[i];
                    r.forklift_retry = Some(attempt);
                    r.control.cancel = false;
                    r.failed = None;
                    r.done.clear();
                    out.events.push(vm_log(
                        i,
                        LogLevel::Info,
                        format!(
                            "retrying {name}: a new Forklift Migration (attempt {}) for its Plan, the Plan's other VMs in its spec.cancel",
                            attempt + 1
                        ),
                    ));
                    return;
                }
            }
            let r = &mut fleet.vms[i];
            let failed_importing = matches!(r.failed, Some((Step::Importing, _)))
                || r.last.as_ref().is_some_and(|p| {
                    p.step == Step::Importing && matches!(p.status, Status::Failed(_))
                });
            r.failed = None;
            r.done.clear();
            r.guard_attempts = 0;
            if matches!(r.preflight, Gate::Failed(_)) {
                r.preflight = Gate::NotRun;
            }
            if matches!(r.ip_guard, IpGuard::Answering(_)) {
                r.ip_guard = IpGuard::NotProbed;
            }
            if matches!(r.checks, Gate::Failed(_)) {
                r.checks = Gate::NotRun;
            }
            if failed_importing {
                r.replacing = true;
                r.import_moved_at = now.elapsed;
                out.effects.push(Effect::ReplaceUnfinishedDisks { vm: i });
            }
            out.events
                .push(vm_log(i, LogLevel::Info, format!("retrying {name}")));
        }
        EngineRequest::RollbackVm(name) => {
            let Some(i) = find(&name) else { return };
            if let Some(v) = fleet.vms[i]
                .cluster
                .forklift
                .as_ref()
                .filter(|f| f.migration.is_some())
                .and_then(|f| f.vm.as_ref())
                .filter(|v| v.outcome.is_none())
            {
                out.events.push(vm_log(
                    i,
                    LogLevel::Warn,
                    format!(
                        "rollback of {name} refused: Forklift is migrating it (step {}) and cannot be rolled back mid-step; cancel it (Forklift powers the source back on), then roll back",
                        v.step
                    ),
                ));
                return;
            }
            let r = &mut fleet.vms[i];
            r.control.rollback = true;
            r.failed = None;
            r.done.clear();
            let w = plan.vms[i].wave.value.clone();
            if !fleet.active.contains(&w) {
                fleet.active.push(w);
            }
            out.events
                .push(vm_log(i, LogLevel::Warn, format!("rolling back {name}")));
        }
        EngineRequest::ConfirmPowerOff(name) => {
            let Some(i) = find(&name) else { return };
            let r = &mut fleet.vms[i];
            r.power_off_confirmed = true;
            r.source_power = Power::Off;
            out.events.push(vm_log(
                i,
                LogLevel::Info,
                format!("operator confirmed power-off of {name}"),
            ));
        }
        EngineRequest::RunChecks(name) => {
            let Some(i) = find(&name) else { return };
            let r = &mut fleet.vms[i];
            r.checks = Gate::NotRun;
            r.done.remove(&Command::RunChecks);
            if matches!(r.failed, Some((Step::Verifying, _))) {
                r.failed = None;
            }
        }
        EngineRequest::Migrate(name) => {
            let Some(i) = find(&name) else { return };
            if fleet.settings.dry_run {
                out.events.push(vm_log(
                    i,
                    LogLevel::Warn,
                    "no live migration in a dry run".into(),
                ));
            } else {
                out.effects.push(Effect::Migrate { vm: i });
            }
        }
        EngineRequest::Shutdown => out.exit = true,
    }
}

/// The observation `decide` sees for VM `i`.
fn observed(fleet: &Fleet, i: usize, now: Now) -> Observed {
    let plan = &fleet.plan;
    let r = &fleet.vms[i];
    let vm = &plan.vms[i];
    let deps_pending: Vec<String> = r
        .deps
        .iter()
        .filter(|&&j| {
            let verified = fleet.vms[j]
                .last
                .as_ref()
                .is_some_and(|p| p.step == Step::Verified);
            // A dependency in an earlier wave only needs to be running.
            let running_elsewhere = plan.vms[j].wave.value != vm.wave.value
                && fleet.vms[j].cluster.vmi_phase == Some(VmiPhase::Running);
            !(verified || running_elsewhere)
        })
        .map(|&j| plan.vms[j].name.value.clone())
        .collect();
    // Forklift powers a source off itself (cold: in its Initialize step).
    let forklift_off = r
        .cluster
        .forklift
        .as_ref()
        .and_then(|f| f.vm.as_ref())
        .is_some_and(|v| v.source_off);
    Observed {
        preflight: r.preflight.clone(),
        networks_ready: r.cluster.networks_ready,
        disks: r.cluster.disks.clone(),
        source_power: if forklift_off && r.source_power != Power::On {
            Power::Off
        } else {
            r.source_power
        },
        power_off_confirmed: r.power_off_confirmed,
        power_off_in_flight: r.in_flight.contains(&Command::PowerOffSource),
        ip_guard: r.ip_guard.clone(),
        vm_started: r.cluster.vm_started,
        vmi_phase: r.cluster.vmi_phase.clone(),
        agent_connected: r.cluster.agent_connected,
        checks: r.checks.clone(),
        deps_verified: deps_pending.is_empty(),
        deps_pending,
        import_slot: r.import_slot,
        import_wait: r.import_wait.clone(),
        cutover_slot: r.cutover_slot,
        outside_window: outside_window(fleet, i, fleet.settings.window_clock.at(now.elapsed)),
        warm: warm_obs(fleet, i, now),
        forklift: r.cluster.forklift.clone(),
        vm_labelled: r.cluster.vm_labelled,
        forklift_retry: r.forklift_retry.is_some_and(|a| {
            a == r
                .cluster
                .forklift
                .as_ref()
                .and_then(|f| f.migration.as_ref())
                .map_or(0, |m| m.attempt)
        }),
        policy: policy_obs(fleet, i, now),
    }
}

/// VM `i`'s network policy as `decide` sees it: settled once `policy_settle` passed.
fn policy_obs(fleet: &Fleet, i: usize, now: Now) -> PolicyObs {
    match &fleet.vms[i].policy {
        PolicyRun::None => PolicyObs::None,
        PolicyRun::Pending => PolicyObs::NotApplied,
        PolicyRun::Applied(at) => {
            let settle = fleet.plan.meta.policy_settle;
            if now.elapsed >= *at + settle {
                PolicyObs::Checking(Gate::NotRun)
            } else {
                PolicyObs::Settling {
                    left: humanize(settle),
                }
            }
        }
        PolicyRun::Checking(g) => PolicyObs::Checking(g.clone()),
        PolicyRun::Reverted(why) => PolicyObs::Reverted(why.clone()),
        PolicyRun::Cancelled => PolicyObs::Cancelled,
    }
}

/// A countdown of `ms` by the minute, rounded up (`7m`, `1h02m`): a waiting reason that
/// changes once a minute, not at every turn.
fn in_minutes(ms: i64) -> String {
    let minutes = (ms.max(0) as u64).div_ceil(60_000);
    humanize(Duration::from_secs(minutes * 60))
}

/// A warm VM's view: vCenter's last answer, the stages, and the precopy timer.
fn warm_obs(fleet: &Fleet, i: usize, now: Now) -> WarmObs {
    let r = &fleet.vms[i];
    if r.ctx.warm.is_none() {
        return WarmObs::default();
    }
    let interval = fleet
        .plan
        .wave(&fleet.plan.vms[i].wave)
        .map_or(Duration::from_secs(3600), |w| w.precopy_interval);
    let clock_now = fleet.settings.window_clock.at(now.elapsed);
    let due_at = r
        .round_copied
        .as_ref()
        .map(|(_, at)| at + interval.as_millis() as i64);
    let mut stages = r.cluster.stages.clone();
    for (previous, current, last) in &r.added_checkpoints {
        for (i, s) in stages.iter_mut().enumerate() {
            if !s.checkpoints.is_empty() && !s.checkpoints.iter().any(|(_, c)| c == current) {
                let prev = previous.get(i).cloned().unwrap_or_default();
                s.checkpoints.push((prev, current.clone()));
                s.final_checkpoint |= *last;
            }
        }
    }
    if let Some((snap, ids)) = &r.recorded_ids {
        // This run's own last write is never older than what the watch shows.
        for (s, id) in stages.iter_mut().zip(ids) {
            s.change_id = Some((snap.clone(), id.clone()));
        }
    }
    WarmObs {
        source: r.warm_source.clone(),
        stages,
        precopy_due: due_at.is_some_and(|t| clock_now >= t),
        // By the minute (rounded up): the status changes once a minute, not every turn.
        next_round_in: due_at
            .filter(|&t| t > clock_now)
            .map(|t| in_minutes(t - clock_now)),
    }
}

/// Bytes the disks' imports copied so far (progress × size), and how many are copying.
/// A stage restarting from 0 % (warm rounds) just starts a new mark.
fn copied_bytes(disks: &[DiskObs], sizes: &[u64]) -> (f64, usize) {
    let mut bytes = 0.0;
    let mut importing = 0;
    for (d, &size) in disks.iter().zip(sizes) {
        match d {
            DiskObs::Importing {
                phase, progress, ..
            } if *phase != DvPhase::Paused => {
                importing += 1;
                bytes += progress.unwrap_or(0.0).clamp(0.0, 1.0) * size as f64;
            }
            DiskObs::Succeeded => bytes += size as f64,
            _ => {}
        }
    }
    (bytes, importing)
}

/// One VM's cutover estimate from what this run measured.
fn cutover_estimate(fleet: &Fleet, i: usize) -> Duration {
    let r = &fleet.vms[i];
    let last_round = r.ctx.warm.as_ref().and(r.last_round);
    crate::plan::estimate::cutover(r.ctx.disk_bytes.iter().sum(), last_round, &fleet.throughput)
}

/// The last checkpoint every disk's PVC says is copied, if the last one in the spec is.
fn last_copied(stages: &[DiskStages], disks: usize) -> Option<String> {
    let (_, current) = stages.first()?.checkpoints.last()?;
    (stages.len() == disks && stages.iter().all(|s| s.copied.contains(current)))
        .then(|| current.clone())
}

/// The change window does not hold VM `i`: `--ignore-window`, or the operator's override
/// of its wave.
fn window_ignored(fleet: &Fleet, i: usize) -> bool {
    fleet.settings.ignore_window || fleet.windows_ignored.contains(&*fleet.plan.vms[i].wave)
}

/// Why VM `i` may not start its cutover at clock time `now_ms` (its wave's window), or
/// `None`. A VM whose cutover already began is never stopped: this gates the power-off.
fn outside_window(fleet: &Fleet, i: usize, now_ms: i64) -> Option<String> {
    if window_ignored(fleet, i) {
        return None;
    }
    let vm = &fleet.plan.vms[i];
    let window = fleet.plan.wave(&vm.wave)?.window.as_ref()?;
    let (start, end) = (window.start.unix * 1000, window.end.unix * 1000);
    if now_ms < start {
        return Some(format!(
            "waiting for the change window: it opens in {} ({})",
            in_minutes(start - now_ms),
            window.start.text
        ));
    }
    if now_ms >= end {
        return Some(format!(
            "the change window closed at {}: no new cutover starts (override: --ignore-window)",
            window.end.text
        ));
    }
    if let Some(at) = vm.cutover.as_ref().filter(|at| now_ms < at.unix * 1000) {
        return Some(format!(
            "waiting for its cutover time: {} ({})",
            in_minutes(at.unix * 1000 - now_ms),
            at.text
        ));
    }
    let bytes: u64 = fleet.vms[i].ctx.disk_bytes.iter().sum();
    let needed = cutover_estimate(fleet, i);
    let left = Duration::from_millis((end - now_ms) as u64);
    if needed > left {
        let copy = match fleet.vms[i].ctx.warm.as_ref().and(fleet.vms[i].last_round) {
            Some(round) => format!("its last precopy round took {}", humanize(round)),
            None => format!("{} GiB at {}", bytes >> 30, fleet.throughput.describe()),
        };
        return Some(format!(
            "window-too-short: the cutover needs about {} ({copy}, plus {} to boot and check) but the window closes in {} (override: --ignore-window)",
            humanize(needed),
            humanize(CUTOVER_OVERHEAD),
            humanize(left)
        ));
    }
    None
}

fn stopped(step: Step, status: Status, progress: Option<f64>) -> Decision {
    Decision {
        phase: Phase {
            step,
            status,
            progress,
            backend_step: None,
        },
        commands: vec![],
        wants_import_slot: false,
        wants_cutover_slot: false,
    }
}

/// `decide`'s answer for VM `i`, with the run's own overrides: a failed command, a dry run
/// stopping after preflight, a failed dependency (the timeouts: [`timed_out`]).
fn decision(fleet: &Fleet, i: usize, now: Now) -> Decision {
    let r = &fleet.vms[i];
    let settings = &fleet.settings;
    let mut d = decide(&r.ctx, &observed(fleet, i, now), r.control);
    let backend_step = d.phase.backend_step.clone();
    if r.replacing && !r.control.rollback && !r.control.cancel {
        // The old DataVolumes are being deleted; new ones follow once they are gone. The VM
        // keeps its import slot meanwhile.
        d = stopped(Step::Importing, Status::Active, d.phase.progress);
        d.wants_import_slot = true;
    }
    if let Some((step, why)) = &r.failed {
        if !r.control.rollback && !r.control.cancel {
            d = stopped(*step, Status::Failed(why.clone()), d.phase.progress);
        }
    }
    if d.phase.backend_step.is_none() {
        d.phase.backend_step = backend_step;
    }
    if settings.dry_run && r.preflight == Gate::Passed && !r.control.rollback {
        d = stopped(Step::Preflight, Status::Active, None);
    }
    // A VM waiting for a dependency that failed fails too (it would wait forever).
    if d.phase.step == Step::NetworkReady && matches!(d.phase.status, Status::Waiting(_)) {
        if let Some(&j) = r.deps.iter().find(|&&j| {
            fleet.vms[j]
                .last
                .as_ref()
                .is_some_and(|p| matches!(p.status, Status::Failed(_)))
        }) {
            d.phase.status = Status::Failed(format!(
                "waits for {}, which failed",
                fleet.plan.vms[j].name.value
            ));
            d.wants_cutover_slot = false;
        }
    }
    d
}

/// The boot and guest-agent timeouts: a started VM whose VMI does not run (no node fits,
/// an image that does not boot), or a running VM whose guest agent does not connect, within
/// `agent_timeout` of entering that step fails with a reason instead of waiting on. The
/// failure sticks (like a failed command) until the operator retries.
fn timed_out(fleet: &Fleet, i: usize, d: &Decision, now: Now) -> Option<String> {
    let r = &fleet.vms[i];
    let limit = fleet.settings.agent_timeout;
    let waited = |step: Step| {
        r.last.as_ref().is_some_and(|p| p.step == step)
            && now.elapsed.saturating_sub(r.since) >= limit
    };
    if d.phase.step == Step::Running
        && matches!(d.phase.status, Status::Waiting(_))
        && waited(Step::Running)
    {
        return Some(format!(
            "guest agent not connected after {} s",
            limit.as_secs()
        ));
    }
    if d.phase.step == Step::Booting && d.phase.status == Status::Active && waited(Step::Booting) {
        return Some(format!(
            "the VirtualMachineInstance is not running after {} s",
            limit.as_secs()
        ));
    }
    if d.phase.step == Step::Importing && d.phase.status == Status::Active && !r.replacing {
        return stalled(fleet, i, now);
    }
    None
}

/// An import with no progress for `import_stall_timeout`: also while `ImportScheduled`
/// (an importer that never starts, `PodInitializing` on a VDDK init image that cannot be
/// pulled), never while a multi-stage import is `Paused` between checkpoints.
fn stalled(fleet: &Fleet, i: usize, now: Now) -> Option<String> {
    let r = &fleet.vms[i];
    let stall = fleet.plan.defaults.import_stall_timeout;
    if now.elapsed.saturating_sub(r.import_moved_at) < stall {
        return None;
    }
    let (disk, phase, problem) = r
        .cluster
        .disks
        .iter()
        .enumerate()
        .find_map(|(n, d)| match d {
            DiskObs::Importing { phase, problem, .. } if *phase != DvPhase::Paused => {
                Some((n, phase, problem))
            }
            _ => None,
        })?;
    let mut why = format!(
        "disk {disk}: no import progress for {} ({phase}",
        humanize(stall)
    );
    if let Some(p) = problem {
        why.push_str(&format!(", {} {}: {}", p.condition, p.reason, p.message));
    }
    why.push(')');
    if problem
        .as_ref()
        .is_some_and(|p| p.reason == "PodInitializing")
    {
        why.push_str(": the importer's init container never started (a VDDK init image that cannot be pulled?)");
    }
    Some(why)
}

/// The imports moved: a disk appeared, changed phase, or its progress grew. A multi-stage
/// import `Paused` between checkpoints counts as moving (its stall clock never runs).
fn import_moved(before: &[DiskObs], after: &[DiskObs]) -> bool {
    before.len() != after.len()
        || before.iter().zip(after).any(|(b, a)| match (b, a) {
            (
                DiskObs::Importing {
                    phase: p0,
                    progress: f0,
                    ..
                },
                DiskObs::Importing {
                    phase: p1,
                    progress: f1,
                    ..
                },
            ) => p0 != p1 || *p1 == DvPhase::Paused || f1.unwrap_or(0.0) > f0.unwrap_or(0.0),
            (b, a) => std::mem::discriminant(b) != std::mem::discriminant(a),
        })
}

/// VM `i`'s part in its wave's preflight gate: no mutation in a wave while one of its VMs
/// waits on preflight; a failed preflight fails the wave's VMs that have not started (see
/// [`gate_override`]).
fn gate_part(fleet: &Fleet, i: usize, d: &Decision) -> reconcile::GatePart {
    use reconcile::GatePart;
    if !fleet.in_scope(i) || !matches!(d.phase.step, Step::Pending | Step::Preflight) {
        return GatePart::None;
    }
    match fleet.vms[i].preflight {
        Gate::NotRun | Gate::Running => GatePart::Blocking,
        Gate::Failed(_) => GatePart::Failed,
        Gate::Passed => GatePart::None,
    }
}

/// The preflight gate's override of VM `i`'s decision: a failed preflight in its wave (the
/// first failed VM in plan order) fails the wave's VMs that passed theirs but have not
/// started, naming it. Derived each pass, so once the operator fixes the cause and retries
/// that VM and its preflight passes, they go on; VMs already past preflight carry on.
fn gate_override(fleet: &Fleet, i: usize, d: &Decision) -> Option<Decision> {
    let w = fleet.rec.wave_of[i];
    let bad = *fleet.rec.gate_failed[w].first()?;
    let applies = bad != i
        && fleet.vms[i].preflight == Gate::Passed
        && matches!(d.phase.step, Step::Pending | Step::Preflight)
        && !matches!(d.phase.status, Status::Failed(_));
    applies.then(|| {
        let vm = &fleet.plan.vms[i];
        let mut d = d.clone();
        d.phase.status = Status::Failed(format!(
            "the preflight of {} failed: nothing in wave {} starts until it passes",
            fleet.plan.vms[bad].name.value, vm.wave.value
        ));
        d.commands.clear();
        d.wants_import_slot = false;
        d.wants_cutover_slot = false;
        d
    })
}

/// Where a VM's disks are read from: its ESXi host and, per datastore, how many disks.
#[derive(Debug, Clone, Default)]
struct Source {
    host: Option<String>,
    datastores: Vec<(String, u32)>,
    disks: u32,
}

impl Source {
    fn of(vm: &crate::plan::Vm) -> Source {
        let mut datastores: Vec<(String, u32)> = Vec::new();
        for d in &vm.disks {
            if let Some(ds) = d.datastore() {
                match datastores.iter_mut().find(|(n, _)| n == ds) {
                    Some((_, n)) => *n += 1,
                    None => datastores.push((ds.to_string(), 1)),
                }
            }
        }
        Source {
            host: vm.host.as_ref().map(|h| h.value.clone()),
            datastores,
            disks: vm.disks.len() as u32,
        }
    }
}

/// Concurrent disk transfers per ESXi host and per datastore, over every wave (the hosts
/// and datastores are shared): each disk is its own NFC connection.
#[derive(Debug, Default)]
struct SourceLoad {
    hosts: HashMap<String, u32>,
    datastores: HashMap<String, u32>,
}

impl SourceLoad {
    fn add(&mut self, s: &Source) {
        if let Some(h) = &s.host {
            *self.hosts.entry(h.clone()).or_default() += s.disks;
        }
        for (ds, n) in &s.datastores {
            *self.datastores.entry(ds.clone()).or_default() += n;
        }
    }

    fn remove(&mut self, s: &Source) {
        if let Some(h) = &s.host {
            if let Some(used) = self.hosts.get_mut(h) {
                *used -= s.disks;
            }
        }
        for (ds, n) in &s.datastores {
            if let Some(used) = self.datastores.get_mut(ds) {
                *used -= n;
            }
        }
    }

    /// Which limit of `w` the VM's disks would exceed (`waiting: host esx-07 at 10/10`).
    /// A VM with more disks than a limit still goes when that host or datastore is idle.
    fn holds(&self, s: &Source, w: &crate::plan::Wave) -> Option<String> {
        if let Some(h) = &s.host {
            let used = self.hosts.get(h).copied().unwrap_or(0);
            if used > 0 && used + s.disks > w.max_imports_per_host {
                return Some(format!(
                    "waiting: host {h} at {used}/{}",
                    w.max_imports_per_host
                ));
            }
        }
        for (ds, n) in &s.datastores {
            let used = self.datastores.get(ds).copied().unwrap_or(0);
            if used > 0 && used + n > w.max_imports_per_datastore {
                return Some(format!(
                    "waiting: datastore {ds} at {used}/{}",
                    w.max_imports_per_datastore
                ));
            }
        }
        None
    }
}

/// Import and cutover slots per wave, in plan order: an import slot also needs room on the
/// VM's ESXi host and datastores ([`SourceLoad`]). `decided` are the VMs whose decision
/// may have changed in this pass: they release the slots they no longer want. Returns
/// whether a slot was granted or a waiting reason changed.
fn grant_slots(fleet: &mut Fleet, decided: &BTreeSet<usize>) -> bool {
    let mut granted = false;
    for &i in decided {
        let Some(d) = fleet.rec.effective(i) else {
            continue;
        };
        let (wants_import, wants_cutover, step) =
            (d.wants_import_slot, d.wants_cutover_slot, d.phase.step);
        let failed = matches!(d.phase.status, Status::Failed(_));
        if !wants_import {
            fleet.set_import_slot(i, false);
            fleet.vms[i].import_wait = None;
        }
        // A cutover slot is held from the gate (the power-off) until the VM is verified:
        // a cold import runs inside the cutover.
        if !wants_cutover
            && !matches!(
                step,
                Step::CutoverGate
                    | Step::Importing
                    | Step::Imported
                    | Step::Created
                    | Step::Booting
                    | Step::Running
                    | Step::Verifying
            )
        {
            fleet.set_cutover_slot(i, false);
        }
        if failed {
            fleet.set_import_slot(i, false);
            // A VM whose source is already off keeps its cutover slot while it is
            // failed: its downtime goes on until it is retried or rolled back, and the
            // slot limits concurrent cutovers.
            if !matches!(
                step,
                Step::Importing
                    | Step::Imported
                    | Step::Created
                    | Step::Booting
                    | Step::Running
                    | Step::Verifying
            ) {
                fleet.set_cutover_slot(i, false);
            }
        }
        let r = &fleet.vms[i];
        let (import_slot, cutover_slot) = (r.import_slot, r.cutover_slot);
        fleet.rec.sync_waiting(i, import_slot, cutover_slot);
    }
    if fleet.settings.dry_run {
        return false;
    }
    let plan = fleet.plan.clone();
    for (w, wave) in plan.waves.iter().enumerate() {
        if !fleet.active.iter().any(|a| *a == *wave.name) {
            continue;
        }
        let mut imports = fleet.rec.imports_held[w];
        let waiting: Vec<usize> = fleet.rec.import_waiters[w].iter().copied().collect();
        for i in waiting {
            if !fleet.in_scope(i) {
                continue;
            }
            // What holds it: the wave's limit, else a source limit, else nothing.
            let wait = if imports >= wave.max_parallel_imports {
                None
            } else {
                fleet.load.holds(&fleet.sources[i], wave)
            };
            if wait.is_none() && imports < wave.max_parallel_imports {
                fleet.set_import_slot(i, true);
                imports += 1;
                granted = true;
                fleet.rec.mark(i);
            }
            if fleet.vms[i].import_wait != wait {
                // The waiting reason changed: decide again so the VM shows it.
                fleet.vms[i].import_wait = wait;
                granted = true;
                fleet.rec.mark(i);
            }
            let r = &fleet.vms[i];
            let (import_slot, cutover_slot) = (r.import_slot, r.cutover_slot);
            fleet.rec.sync_waiting(i, import_slot, cutover_slot);
        }
        let cutovers = fleet.rec.cutovers_held[w];
        if !fleet.fk.groups.is_empty() {
            granted |= forklift::grant_cutover_slots(
                fleet,
                w,
                wave.max_parallel_cutovers.saturating_sub(cutovers),
            );
            continue;
        }
        let waiting: Vec<usize> = fleet.rec.cutover_waiters[w]
            .iter()
            .copied()
            .filter(|&i| fleet.in_scope(i))
            .take(wave.max_parallel_cutovers.saturating_sub(cutovers) as usize)
            .collect();
        for i in waiting {
            fleet.set_cutover_slot(i, true);
            granted = true;
            fleet.rec.mark(i);
            let r = &fleet.vms[i];
            let (import_slot, cutover_slot) = (r.import_slot, r.cutover_slot);
            fleet.rec.sync_waiting(i, import_slot, cutover_slot);
        }
    }
    granted
}

/// One pass: decide the VMs that changed and the volatile ones ([`reconcile`]), apply the
/// preflight gate, hand out slots, then emit what moved and start the commands. Returns
/// whether anything changed that could change another VM's decision (a slot granted, a
/// phase moved, a wave started): then decide again.
fn pass(fleet: &mut Fleet, now: Now, out: &mut Turn) -> bool {
    if fleet.rec.full {
        let n = fleet.vms.len();
        fleet.rec.dirty.extend(0..n);
    }
    // Re-probes that fell due (a VM with a re-probe time is volatile or dirty).
    let due: BTreeSet<usize> = fleet
        .rec
        .volatile
        .iter()
        .chain(&fleet.rec.dirty)
        .copied()
        .filter(|&i| fleet.vms[i].reprobe_at.is_some_and(|at| at <= now.elapsed))
        .collect();
    for i in due {
        let r = &mut fleet.vms[i];
        r.reprobe_at = None;
        if r.ip_guard != IpGuard::Silent {
            r.ip_guard = IpGuard::NotProbed;
            r.done.remove(&Command::ProbeOriginalIp);
        }
        fleet.rec.mark(i);
    }
    let mut decided = std::mem::take(&mut fleet.rec.dirty);
    decided.extend(fleet.rec.volatile.iter().copied());
    let clock_now = fleet.settings.window_clock.at(now.elapsed);
    for &i in &decided {
        let mut d = decision(fleet, i, now);
        // A timeout sticks: the next pass must not see the VM waiting again. So does a
        // failed import: CDI goes on restarting the importer (the reason would change
        // with every restart count), but the VM stays failed until the operator retries.
        if let Some(why) = timed_out(fleet, i, &d, now) {
            d.phase.status = Status::Failed(why.clone());
            fleet.vms[i].failed = Some((d.phase.step, why));
        } else if let (Step::Importing, Status::Failed(why)) = (d.phase.step, &d.phase.status) {
            let r = &mut fleet.vms[i];
            if r.failed.is_none() && !r.control.rollback && !r.control.cancel {
                r.failed = Some((Step::Importing, why.clone()));
            }
        }
        // A VM still before its cutover when its wave's window has closed is postponed;
        // a warm VM between precopy rounds waits for the window too.
        let closed = !window_ignored(fleet, i)
            && fleet
                .plan
                .wave(&fleet.plan.vms[i].wave)
                .and_then(|w| w.window.as_ref())
                .is_some_and(|w| clock_now >= w.end.unix * 1000);
        let postponed = closed
            && matches!(d.phase.step, Step::NetworkReady | Step::Precopy)
            && matches!(d.phase.status, Status::Waiting(_));
        if fleet.vms[i].postponed != postponed {
            fleet.vms[i].postponed = postponed;
            fleet.rec.wave_gen[fleet.rec.wave_of[i]] += 1;
        }
        let part = gate_part(fleet, i, &d);
        fleet.rec.set_gate(i, part);
        fleet.rec.raw[i] = Some(d);
    }
    // Waves whose gate changed: each of their VMs' effective decision may change.
    let mut blocked = HashSet::new();
    for w in 0..fleet.plan.waves.len() {
        let seen = (
            fleet.rec.gate_blocking[w] > 0,
            fleet.rec.gate_failed[w].first().copied(),
        );
        if seen.0 {
            blocked.insert(w);
        }
        if fleet.rec.gate_seen[w] != seen {
            fleet.rec.gate_seen[w] = seen;
            decided.extend(fleet.rec.wave_vms[w].iter().copied());
        }
    }
    for &i in &decided {
        let gated = fleet.rec.raw[i]
            .as_ref()
            .and_then(|d| gate_override(fleet, i, d));
        fleet.rec.gated[i] = gated;
    }
    let mut changed = grant_slots(fleet, &decided);
    let dry_run = fleet.settings.dry_run;
    let clock_ms = fleet.settings.window_clock.at(now.elapsed);
    let plan = fleet.plan.clone();
    for &i in &decided {
        let Some(d) = fleet.rec.effective(i).cloned() else {
            continue;
        };
        let in_scope = fleet.in_scope(i);
        let wave = fleet.rec.wave_of[i];
        let r = &mut fleet.vms[i];
        let phase = d.phase;
        let moved = r.last.as_ref().is_none_or(|p| {
            p.step != phase.step
                || p.status != phase.status
                || p.backend_step != phase.backend_step
                || progress_moved(p.progress, phase.progress)
        });
        if moved {
            // Other VMs' decisions read this phase (`after`, failed dependencies).
            changed = true;
            fleet.rec.wave_gen[wave] += 1;
            fleet.rec.dirty.extend(fleet.rec.rdeps[i].iter().copied());
            if r.last.as_ref().is_some_and(|p| p.step != phase.step) {
                r.done.clear();
            }
            let step_changed = r
                .last
                .as_ref()
                .is_none_or(|p| p.step != phase.step || p.status != phase.status);
            if step_changed {
                r.since = now.elapsed;
                if phase.step == Step::Importing {
                    // Entering the import: its stall clock starts now.
                    r.import_moved_at = r.import_moved_at.max(now.elapsed);
                }
            }
            out.events.push(vm_event(
                &plan,
                i,
                now,
                EventKind::Phase {
                    step: phase.step,
                    status: phase.status.clone(),
                    progress: phase.progress,
                    message: describe(&phase, dry_run),
                    backend_step: phase.backend_step.clone(),
                },
            ));
            if phase.step == Step::Verified && r.downtime_ms.is_none() {
                let warm = r.ctx.warm.is_some();
                // Every checkpoint but the final one was a precopy round.
                let rounds = r
                    .cluster
                    .stages
                    .first()
                    .map_or(0, |s| s.checkpoints.len().saturating_sub(1) as u32);
                if let Some(at) = r.power_off_at {
                    let downtime = u64::try_from(clock_ms - at).unwrap_or(0);
                    r.downtime_ms = Some(downtime);
                    out.events.push(vm_event(
                        &plan,
                        i,
                        now,
                        EventKind::Cutover {
                            migration: if warm { "warm" } else { "cold" }.into(),
                            downtime_ms: downtime,
                            precopy_rounds: rounds,
                            final_delta_bytes: if warm {
                                r.final_delta_bytes
                            } else {
                                Some(r.ctx.disk_bytes.iter().sum())
                            },
                            consistent_copy: !r.hard_stopped,
                        },
                    ));
                    out.effects.push(Effect::RecordCutover {
                        vm: i,
                        record: crate::checks::report::CutoverRecord {
                            vm: plan.vms[i].name.value.clone(),
                            migration: if warm { "warm" } else { "cold" }.into(),
                            downtime_ms: downtime,
                            precopy_rounds: rounds,
                            consistent_copy: !r.hard_stopped,
                            backend: r.ctx.forklift.then(|| "forklift".to_string()),
                            backend_steps: r
                                .cluster
                                .forklift
                                .as_ref()
                                .and_then(|f| f.vm.as_ref())
                                .map(|v| v.steps.clone())
                                .unwrap_or_default(),
                        },
                    });
                } else if !r.downtime_unknown_said {
                    // Found powered off by this run, with no stamp: powered off by hand, or
                    // an earlier run was stopped between requesting the power-off and
                    // writing anything after it (a cold VM's DataVolumes). Said, not guessed.
                    r.downtime_unknown_said = true;
                    out.events.push(vm_event(
                        &plan,
                        i,
                        now,
                        EventKind::Log {
                            level: LogLevel::Warn,
                            message: "downtime unknown: the source was already off when this run found it, and no run recorded when its power-off was requested".into(),
                        },
                    ));
                }
            }
            r.last = Some(phase);
        }
        if let Some(node) = &r.cluster.node {
            if r.last_node.as_ref() != Some(node) {
                r.last_node = Some(node.clone());
                out.events.push(vm_event(
                    &plan,
                    i,
                    now,
                    EventKind::Node { node: node.clone() },
                ));
            }
        }
        if !in_scope {
            continue;
        }
        let wave_blocked = blocked.contains(&wave);
        // A warm VM's source and stage commands go one decision at a time (see
        // `Command::sequences_warm_source`); the VM is decided again when this one answers.
        let warm_busy =
            r.ctx.warm.is_some() && r.in_flight.iter().any(Command::sequences_warm_source);
        for cmd in d.commands {
            // Forklift's per-Plan commands: issued for the whole Plan by `forklift_gates`.
            if matches!(cmd, Command::StartMigration | Command::SetCutover) {
                continue;
            }
            // Commands that change nothing may run while the wave waits on preflight.
            let harmless = matches!(
                cmd,
                Command::RunPreflight
                    | Command::ProbeOriginalIp
                    | Command::RunChecks
                    | Command::AskPowerOff
            );
            if (wave_blocked && !harmless)
                || r.in_flight.contains(&cmd)
                || r.done.contains(&cmd)
                || (warm_busy && cmd.sequences_warm_source())
            {
                continue;
            }
            if matches!(cmd, Command::PowerOffSource | Command::AskPowerOff) {
                r.power_off_at.get_or_insert(clock_ms);
            }
            if cmd == Command::AskPowerOff {
                if !r.asked_power_off {
                    r.asked_power_off = true;
                    out.events.push(vm_event(
                        &plan,
                        i,
                        now,
                        EventKind::Log {
                            level: LogLevel::Warn,
                            message: format!(
                                "power off source VM {} and confirm",
                                plan.vms[i].name.value
                            ),
                        },
                    ));
                }
                continue;
            }
            r.in_flight.insert(cmd.clone());
            out.commands.push((i, cmd));
        }
    }
    forklift_gates(fleet, &decided, &blocked, clock_ms, out);
    for &i in &decided {
        if fleet.is_volatile(i) {
            fleet.rec.volatile.insert(i);
        } else {
            fleet.rec.volatile.remove(&i);
        }
        let open = fleet.in_scope(i) && fleet.end_state(i).is_none();
        fleet.rec.set_open(i, open);
    }
    window_fits(fleet, now, out);
    changed |= waves_done(fleet, now, out);
    changed
}

/// For each started wave with a window: the time left in it, the cutovers not started yet
/// and whether their estimates fit, reported when one of them changes (by the minute).
fn window_fits(fleet: &mut Fleet, now: Now, out: &mut Turn) {
    let clock_now = fleet.settings.window_clock.at(now.elapsed);
    for w in fleet.active.clone() {
        if fleet.finished.contains(&w) {
            continue;
        }
        let Some(wave) = fleet.plan.wave(&w) else {
            continue;
        };
        let Some(window) = &wave.window else { continue };
        let (start, end) = (window.start.unix * 1000, window.end.unix * 1000);
        let left = Duration::from_millis((end - clock_now.max(start)).max(0) as u64);
        // Computed again only when its VMs, the minute or the throughput (by more than
        // 1 %) changed: it is reported by the minute.
        let Some(w_index) = fleet.plan.waves.iter().position(|x| *x.name == w) else {
            continue;
        };
        let rate = fleet.throughput.rate().0;
        let from = (fleet.rec.wave_gen[w_index], left.as_secs() / 60, rate);
        if fleet
            .fits_from
            .get(&w)
            .is_some_and(|&(g, m, r)| g == from.0 && m == from.1 && (rate - r).abs() <= 0.01 * r)
        {
            continue;
        }
        fleet.fits_from.insert(w.clone(), from);
        let estimates: Vec<Duration> = fleet.rec.wave_vms[w_index]
            .iter()
            .copied()
            .filter(|&i| fleet.in_scope(i))
            .filter(|&i| {
                let r = &fleet.vms[i];
                r.last.as_ref().is_some_and(|p| {
                    p.step.before_cutover() && !matches!(p.status, Status::Failed(_))
                }) && !r.postponed
            })
            .map(|i| cutover_estimate(fleet, i))
            .collect();
        let fit = Fit::new(left, &estimates, wave.max_parallel_cutovers);
        let key = (
            fit.left.as_secs() / 60,
            fit.remaining,
            fit.needed.as_secs() / 60,
        );
        if fleet.fits.get(&w) == Some(&key) {
            continue;
        }
        fleet.fits.insert(w.clone(), key);
        out.events.push(EngineEvent {
            vm: String::new(),
            wave: w.clone(),
            at_ms: now.unix_ms,
            kind: EventKind::WindowFit {
                left_ms: fit.left.as_millis() as u64,
                open: clock_now >= start,
                remaining: fit.remaining,
                needed_ms: fit.needed.as_millis() as u64,
                fits: fit.fits(),
                throughput: fleet.throughput.describe(),
            },
        });
    }
}

/// Wave completion: a started wave whose VMs all ended reports `wave-done`; the next queued
/// wave starts when it ended clean. Returns whether a wave started.
fn waves_done(fleet: &mut Fleet, now: Now, out: &mut Turn) -> bool {
    let mut started = false;
    let mut all_done = !fleet.active.is_empty();
    for w in fleet.active.clone() {
        if fleet.finished.contains(&w) {
            continue;
        }
        let Some(w_index) = fleet.plan.waves.iter().position(|x| *x.name == w) else {
            continue;
        };
        // Kept per wave by `pass`: a wave with a VM still under way is not done.
        if fleet.rec.open_count[w_index] > 0 {
            all_done = false;
            continue;
        }
        let (mut verified, mut failed, mut cancelled, mut postponed, mut open) = (0, 0, 0, 0, 0);
        for i in fleet.rec.wave_vms[w_index].clone() {
            if !fleet.in_scope(i) {
                continue;
            }
            match fleet.end_state(i) {
                Some(EndState::Verified | EndState::RolledBack | EndState::DryRunOk) => {
                    verified += 1
                }
                Some(EndState::Cancelled) => cancelled += 1,
                Some(EndState::Postponed) => postponed += 1,
                Some(EndState::Failed(_)) => failed += 1,
                None => open += 1,
            }
        }
        if open > 0 {
            all_done = false;
            continue;
        }
        fleet.finished.insert(w.clone());
        out.finished_waves.push(w.clone());
        out.events.push(EngineEvent {
            vm: String::new(),
            wave: w.clone(),
            at_ms: now.unix_ms,
            kind: EventKind::WaveDone {
                verified,
                failed,
                cancelled,
                postponed,
            },
        });
        if failed == 0 && cancelled == 0 && postponed == 0 && !fleet.queue.is_empty() {
            let next = fleet.queue.remove(0);
            if let Some(n) = fleet.plan.waves.iter().position(|x| *x.name == next) {
                fleet.rec.mark_wave(n);
            }
            fleet.active.push(next);
            all_done = false;
            started = true;
        }
    }
    if all_done && fleet.settings.exit_when_done {
        out.exit = true;
    }
    started
}

fn progress_moved(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() >= 0.01 || (y >= 1.0 && x < 1.0),
        (None, None) => false,
        _ => true,
    }
}

/// The one-line message of a phase event.
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
            Step::Precopy => format!(
                "precopy: copying while the source runs {:.0}%",
                p.progress.unwrap_or(0.0) * 100.0
            ),
            Step::Importing => format!("importing {:.0}%", p.progress.unwrap_or(0.0) * 100.0),
            Step::Imported => "disks imported".into(),
            Step::CutoverGate => {
                "cutover gate: source power-off, original IP silent, then the import".into()
            }
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

mod forklift;
mod reconcile;
use forklift::forklift_gates;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
