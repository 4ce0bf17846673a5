//! The fleet: every wave and VM of the plan as the engine last reported them (steps,
//! checks, live migrations, conditions, Kubernetes events) and the engine's log. Built
//! from the plan; afterwards changed by [`Fleet::apply_event`] and nothing else.

use std::collections::{HashMap, VecDeque};

use crate::checks::result::Outcome;
use crate::cluster::phase::MigrationPhase;
use crate::engine::{EngineEvent, EventKind, LogLevel, Status, Step};
use crate::plan::{NetworkModel, Plan};

/// Number of [`Step`] variants (used to index per-step arrays).
pub const STEP_COUNT: usize = Step::ALL.len();
/// Log lines kept in memory.
pub const LOG_CAPACITY: usize = 2_000;
/// Kubernetes events kept per VM.
pub const EVENTS_PER_VM: usize = 8;

/// Index of a step in [`Step::ALL`].
pub fn step_index(step: Step) -> usize {
    step as usize
}

/// A check of one VM as the TUI knows it: planned but not reported yet, or the
/// engine's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    Pending,
    Reported(Outcome),
}

impl CheckOutcome {
    /// One-character mark used in tables.
    pub fn symbol(self) -> &'static str {
        match self {
            CheckOutcome::Pending => "…",
            CheckOutcome::Reported(Outcome::Pass) => "✓",
            CheckOutcome::Reported(Outcome::Fail) => "✗",
            CheckOutcome::Reported(Outcome::Error) => "!",
            CheckOutcome::Reported(Outcome::Skipped) => "-",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CheckOutcome::Pending => "pending",
            CheckOutcome::Reported(o) => o.as_str(),
        }
    }

    /// `fail` or `error`.
    pub fn is_failure(self) -> bool {
        matches!(self, CheckOutcome::Reported(o) if o.is_failure())
    }

    /// How much a matrix cell shows it: fail > error > pending > pass > skipped.
    fn weight(self) -> u8 {
        match self {
            CheckOutcome::Reported(Outcome::Fail) => 4,
            CheckOutcome::Reported(Outcome::Error) => 3,
            CheckOutcome::Pending => 2,
            CheckOutcome::Reported(Outcome::Pass) => 1,
            CheckOutcome::Reported(Outcome::Skipped) => 0,
        }
    }
}

/// One planned (or reported) check of a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckCell {
    /// As written in the plan: `tcp:5432`, `icmp`, …
    pub name: String,
    /// Column of the check matrix: `tcp`, `icmp`, `dns`, …
    pub column: String,
    pub outcome: CheckOutcome,
    pub detail: String,
    pub latency_ms: Option<u64>,
    pub at_ms: Option<i64>,
}

/// Live migration of a VM, as last reported.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationState {
    pub name: String,
    pub phase: MigrationPhase,
    pub source_node: Option<String>,
    pub target_node: Option<String>,
    pub lost_probes: u32,
    pub sent_probes: u32,
    pub started_ms: i64,
    pub updated_ms: i64,
}

impl MigrationState {
    pub fn finished(&self) -> bool {
        self.phase.is_final()
    }

    /// Duration so far (to `now_ms`), or until the last update once finished.
    pub fn duration_ms(&self, now_ms: i64) -> i64 {
        let end = if self.finished() {
            self.updated_ms
        } else {
            now_ms.max(self.updated_ms)
        };
        (end - self.started_ms).max(0)
    }
}

/// A Kubernetes condition of one of the VM's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub object: String,
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub at_ms: i64,
}

/// A Kubernetes Event about one of the VM's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeEventLine {
    pub object: String,
    pub reason: String,
    pub message: String,
    pub at_ms: i64,
}

/// One VM: what the plan says and what the engine last reported.
#[derive(Debug, Clone)]
pub struct VmState {
    pub name: String,
    /// Index into [`Fleet::waves`].
    pub wave: usize,
    pub model: NetworkModel,
    pub network: String,
    pub vlan: Option<u16>,
    pub ip: String,
    pub owner: Option<String>,
    pub after: Vec<String>,
    /// `warm` or `cold` (the plan's migration type for the VM).
    pub migration_type: crate::plan::Migration,
    pub step: Step,
    pub status: Status,
    pub progress: Option<f64>,
    pub message: String,
    /// The import backend's own step name (Forklift: `DiskTransferV2v`…), if it has one.
    pub backend_step: Option<String>,
    pub node: Option<String>,
    /// When each step was first entered (unix ms), indexed by [`step_index`].
    pub entered: [Option<i64>; STEP_COUNT],
    pub checks: Vec<CheckCell>,
    pub migration: Option<MigrationState>,
    pub conditions: Vec<Condition>,
    /// Most recent first.
    pub events: VecDeque<KubeEventLine>,
    /// The cutover's downtime (power-off request to checks passing), once verified.
    pub downtime_ms: Option<u64>,
    /// Lower-case name, for filtering without allocating.
    name_lc: String,
}

impl VmState {
    /// Whether the engine is working on this VM (not pending, finished, or failed).
    pub fn in_flight(&self) -> bool {
        !matches!(
            self.step,
            Step::Pending | Step::Verified | Step::RolledBack | Step::Cancelled
        ) && !matches!(self.status, Status::Failed(_))
    }

    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Failed(_))
    }

    /// Whether a `/` filter (lower case) matches: name, IP, network, node or step, and
    /// `failed` for failed VMs.
    pub fn matches(&self, filter_lc: &str) -> bool {
        self.name_lc.contains(filter_lc)
            || self.ip.contains(filter_lc)
            || self.network.contains(filter_lc)
            || self.node.as_deref().is_some_and(|n| n.contains(filter_lc))
            || self.step.label().to_ascii_lowercase().contains(filter_lc)
            || (filter_lc == "failed" && self.failed())
    }

    /// Aggregate of the checks of one matrix column: fail > error > pending > pass > skipped.
    pub fn column_outcome(&self, column: &str) -> Option<CheckOutcome> {
        let mut out: Option<CheckOutcome> = None;
        for c in self.checks.iter().filter(|c| c.column == column) {
            out = match out {
                Some(o) if o.weight() >= c.outcome.weight() => Some(o),
                _ => Some(c.outcome),
            };
        }
        out
    }

    /// Counts of (passed, failed or error, total) checks.
    pub fn check_counts(&self) -> (usize, usize, usize) {
        let pass = self
            .checks
            .iter()
            .filter(|c| c.outcome == CheckOutcome::Reported(Outcome::Pass))
            .count();
        let bad = self
            .checks
            .iter()
            .filter(|c| c.outcome.is_failure())
            .count();
        (pass, bad, self.checks.len())
    }
}

/// One wave of the plan and what happened to it.
#[derive(Debug, Clone)]
pub struct WaveState {
    pub name: String,
    /// Window as unix seconds (start, end).
    pub window: Option<(i64, i64)>,
    /// Indices into [`Fleet::vms`], plan order.
    pub vms: Vec<usize>,
    pub max_parallel_imports: u32,
    pub max_parallel_cutovers: u32,
    /// A phase event of one of its VMs arrived.
    pub started: bool,
    /// The last `WaveDone`: (verified, failed).
    pub done: Option<(usize, usize)>,
    /// The last `WaveDone`: VMs cancelled (the wave was cancelled when not zero).
    pub cancelled: usize,
    /// `WaveDone` events so far (a wave can run again).
    pub runs_done: usize,
    /// Columns of the check matrix (check kinds in first-seen order).
    pub check_columns: Vec<String>,
    /// The engine's last window estimate: cutovers left, time they need (ms), whether
    /// they fit.
    pub fit: Option<(usize, u64, bool)>,
    /// The throughput the estimate assumes or measured (`a measured 130 MiB/s`).
    pub fit_throughput: String,
}

/// One line of the log pane.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at_ms: i64,
    pub level: LogLevel,
    pub vm: String,
    pub text: String,
}

/// What one event changed, for the state derived from the fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Log lines added.
    pub logged: usize,
    /// Whether the VMs may read differently (row order, counts, the Migrations list).
    pub rows: bool,
}

/// The waves, the VMs and the log.
#[derive(Debug, Clone)]
pub struct Fleet {
    waves: Vec<WaveState>,
    vms: Vec<VmState>,
    index: HashMap<String, usize>,
    log: VecDeque<LogLine>,
    /// Lines ever logged (the log keeps the last [`LOG_CAPACITY`]).
    logged: u64,
}

impl Fleet {
    /// Every wave and VM of the plan, nothing reported yet.
    pub fn new(plan: &Plan) -> Fleet {
        let mut waves: Vec<WaveState> = plan
            .waves
            .iter()
            .map(|w| WaveState {
                name: w.name.value.clone(),
                window: w
                    .window
                    .as_ref()
                    .map(|win| (win.start.value.unix, win.end.value.unix)),
                vms: Vec::new(),
                max_parallel_imports: w.max_parallel_imports,
                max_parallel_cutovers: w.max_parallel_cutovers,
                started: false,
                done: None,
                cancelled: 0,
                runs_done: 0,
                check_columns: Vec::new(),
                fit: None,
                fit_throughput: String::new(),
            })
            .collect();
        let mut vms = Vec::with_capacity(plan.vms.len());
        let mut index = HashMap::with_capacity(plan.vms.len());
        for vm in &plan.vms {
            let Some(wave) = waves.iter().position(|w| w.name == *vm.wave) else {
                continue;
            };
            let nic = vm.nics.first();
            let network = nic.map(|n| n.network.value.clone()).unwrap_or_default();
            let model = plan.model_of(vm);
            // An L3 VM lands on the pod network: its VLAN does not come along.
            let vlan = plan
                .network(&network)
                .and_then(|n| n.vlan.as_ref().map(|v| v.value))
                .filter(|_| model == NetworkModel::L2);
            let checks: Vec<CheckCell> = plan
                .checks_for(vm)
                .into_iter()
                .map(|c| CheckCell {
                    name: c.kind.to_string(),
                    column: c.kind.kind_name().to_string(),
                    outcome: CheckOutcome::Pending,
                    detail: String::new(),
                    latency_ms: None,
                    at_ms: None,
                })
                .collect();
            let columns = &mut waves[wave].check_columns;
            for c in &checks {
                if !columns.contains(&c.column) {
                    columns.push(c.column.clone());
                }
            }
            let i = vms.len();
            waves[wave].vms.push(i);
            index.insert(vm.name.value.clone(), i);
            vms.push(VmState {
                name: vm.name.value.clone(),
                name_lc: vm.name.value.to_lowercase(),
                downtime_ms: None,
                wave,
                model,
                network,
                vlan,
                ip: nic
                    .and_then(|n| n.ip.as_ref())
                    .map(|ip| ip.value.to_string())
                    .unwrap_or_default(),
                owner: vm.owner.clone(),
                after: vm.after.iter().map(|a| a.value.clone()).collect(),
                migration_type: plan.migration_of(vm),
                step: Step::Pending,
                status: Status::Active,
                progress: None,
                message: String::new(),
                backend_step: None,
                node: None,
                entered: [None; STEP_COUNT],
                checks,
                migration: None,
                conditions: Vec::new(),
                events: VecDeque::new(),
            });
        }
        Fleet {
            waves,
            vms,
            index,
            log: VecDeque::new(),
            logged: 0,
        }
    }

    pub fn waves(&self) -> &[WaveState] {
        &self.waves
    }

    pub fn vms(&self) -> &[VmState] {
        &self.vms
    }

    /// The log, oldest line first.
    pub fn log(&self) -> &VecDeque<LogLine> {
        &self.log
    }

    /// The VM index for a name.
    pub fn vm_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn vm_by_name(&self, name: &str) -> Option<&VmState> {
        self.vm_index(name).map(|i| &self.vms[i])
    }

    /// VMs the engine is working on, in every wave.
    pub fn in_flight(&self) -> usize {
        self.vms.iter().filter(|v| v.in_flight()).count()
    }

    /// Applies one engine event: the only way the fleet changes.
    pub fn apply_event(&mut self, ev: EngineEvent) -> Applied {
        let logged = self.logged;
        let rows = self.apply(ev);
        Applied {
            logged: (self.logged - logged) as usize,
            rows,
        }
    }

    /// [`Fleet::apply_event`]; `false` when the event left the VMs as they were.
    fn apply(&mut self, ev: EngineEvent) -> bool {
        let EngineEvent {
            vm,
            wave,
            at_ms,
            kind,
        } = ev;
        let idx = self.index.get(vm.as_str()).copied();
        match kind {
            EventKind::Phase {
                step,
                status,
                progress,
                message,
                backend_step,
            } => {
                if let Some(w) = self.waves.iter_mut().find(|w| w.name == wave) {
                    w.started = true;
                }
                let Some(i) = idx else {
                    self.push_log(at_ms, LogLevel::Info, vm, message);
                    return false;
                };
                let v = &mut self.vms[i];
                let failed_now = matches!(status, Status::Failed(_)) && !v.failed();
                let slot = &mut v.entered[step_index(step)];
                if slot.is_none() {
                    *slot = Some(at_ms);
                }
                let step_changed = v.step != step;
                if backend_step.is_some() {
                    v.backend_step = backend_step;
                }
                v.step = step;
                v.status = status;
                if progress.is_some() || step_changed {
                    v.progress = progress;
                }
                let changed = step_changed || failed_now;
                if !message.is_empty() {
                    v.message.clone_from(&message);
                }
                if changed {
                    let level = if failed_now {
                        LogLevel::Error
                    } else {
                        LogLevel::Info
                    };
                    let text = if message.is_empty() {
                        step.label().to_string()
                    } else {
                        format!("{}: {message}", step.label())
                    };
                    self.push_log(at_ms, level, vm, text);
                }
            }
            EventKind::Node { node } => {
                if let Some(i) = idx {
                    self.vms[i].node = Some(node);
                }
            }
            EventKind::Cutover { downtime_ms, .. } => {
                if let Some(i) = idx {
                    self.vms[i].downtime_ms = Some(downtime_ms);
                }
            }
            EventKind::Condition {
                object,
                type_,
                status,
                reason,
                message,
            } => {
                if let Some(i) = idx {
                    let list = &mut self.vms[i].conditions;
                    let c = Condition {
                        object,
                        type_,
                        status,
                        reason,
                        message,
                        at_ms,
                    };
                    match list
                        .iter_mut()
                        .find(|x| x.object == c.object && x.type_ == c.type_)
                    {
                        Some(x) => *x = c,
                        None => list.push(c),
                    }
                }
            }
            EventKind::KubeEvent {
                object,
                reason,
                message,
            } => {
                if let Some(i) = idx {
                    let list = &mut self.vms[i].events;
                    list.push_front(KubeEventLine {
                        object,
                        reason,
                        message,
                        at_ms,
                    });
                    list.truncate(EVENTS_PER_VM);
                }
            }
            EventKind::Check {
                check,
                outcome,
                detail,
                latency_ms,
                kind,
            } => {
                let Some(i) = idx else { return false };
                let v = &mut self.vms[i];
                let cell = match v.checks.iter().position(|c| c.name == check) {
                    Some(p) => &mut v.checks[p],
                    None => {
                        let columns = &mut self.waves[v.wave].check_columns;
                        if !columns.contains(&kind) {
                            columns.push(kind.clone());
                        }
                        v.checks.push(CheckCell {
                            name: check.clone(),
                            column: kind,
                            outcome: CheckOutcome::Pending,
                            detail: String::new(),
                            latency_ms: None,
                            at_ms: None,
                        });
                        let last = v.checks.len() - 1;
                        &mut v.checks[last]
                    }
                };
                cell.outcome = CheckOutcome::Reported(outcome);
                cell.latency_ms = latency_ms;
                cell.at_ms = Some(at_ms);
                if outcome.is_failure() {
                    let text = format!("check {check} {outcome}: {detail}");
                    cell.detail = detail;
                    self.push_log(at_ms, LogLevel::Warn, vm, text);
                } else {
                    cell.detail = detail;
                }
            }
            EventKind::Migration {
                name,
                phase,
                source_node,
                target_node,
                lost_probes,
                sent_probes,
            } => {
                let Some(i) = idx else { return false };
                let v = &mut self.vms[i];
                let fresh = v.migration.as_ref().is_none_or(|m| m.name != name);
                let phase_changed = fresh || v.migration.as_ref().is_some_and(|m| m.phase != phase);
                let started_ms = match &v.migration {
                    Some(m) if !fresh => m.started_ms,
                    _ => at_ms,
                };
                if let Some(t) = &target_node {
                    if phase == MigrationPhase::Succeeded {
                        v.node = Some(t.clone());
                    }
                }
                let text = format!("migration {name}: {phase}");
                // Phase events from the engine's watch carry no probe counts; the prober's
                // counts (from the continuous probe) arrive separately and are kept.
                let (lost_probes, sent_probes) = match &v.migration {
                    Some(m) if !fresh && sent_probes == 0 => (m.lost_probes, m.sent_probes),
                    _ => (lost_probes, sent_probes),
                };
                v.migration = Some(MigrationState {
                    name,
                    phase,
                    source_node,
                    target_node,
                    lost_probes,
                    sent_probes,
                    started_ms,
                    updated_ms: at_ms,
                });
                if phase_changed {
                    self.push_log(at_ms, LogLevel::Info, vm, text);
                }
            }
            EventKind::Mutation {
                verb,
                kind,
                name,
                dry_run,
                result,
            } => {
                let dry = if dry_run { " (dry run)" } else { "" };
                self.push_log(
                    at_ms,
                    LogLevel::Info,
                    vm,
                    format!("{verb} {kind}/{name}{dry}: {result}"),
                );
            }
            EventKind::Log { level, message } => self.push_log(at_ms, level, vm, message),
            EventKind::WindowFit {
                remaining,
                needed_ms,
                fits,
                throughput,
                ..
            } => {
                if let Some(w) = self.waves.iter_mut().find(|w| w.name == wave) {
                    w.fit = Some((remaining, needed_ms, fits));
                    w.fit_throughput = throughput;
                }
            }
            EventKind::WaveDone {
                verified,
                failed,
                cancelled,
                ..
            } => {
                if let Some(w) = self.waves.iter_mut().find(|w| w.name == wave) {
                    w.done = Some((verified, failed));
                    w.cancelled = cancelled;
                    w.runs_done += 1;
                }
                let level = if failed > 0 {
                    LogLevel::Warn
                } else {
                    LogLevel::Info
                };
                self.push_log(
                    at_ms,
                    level,
                    String::new(),
                    if cancelled > 0 {
                        format!("wave {wave} cancelled: {verified} verified, {failed} failed, {cancelled} cancelled")
                    } else {
                        format!("wave {wave} done: {verified} verified, {failed} failed")
                    },
                );
            }
        }
        true
    }

    /// Adds a log line (the oldest lines go beyond [`LOG_CAPACITY`]).
    fn push_log(&mut self, at_ms: i64, level: LogLevel, vm: String, text: String) {
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            at_ms,
            level,
            vm,
            text,
        });
        self.logged += 1;
    }
}
