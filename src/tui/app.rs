//! The TUI's whole state ([`App`]) and how engine events change it ([`App::apply_event`]).
//!
//! `App` is owned by the event loop alone (no mutex, no sharing with workers). Rendering
//! reads it; [`super::action::update`] and [`App::apply_event`] are the only writers.
//! Derived data (the filtered, sorted row order, counts per step) is recomputed lazily
//! by [`App::settle`], once per batch of events, so a burst of 10,000 events costs one
//! sort rather than 10,000.

use std::collections::{HashMap, VecDeque};

use super::blast::BlastData;
use super::theme::{Theme, ThemeSet};
use crate::checks::result::Outcome;
use crate::cluster::client::Mode;
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

/// The screens of the TUI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Waves,
    Vms,
    Checks,
    Migrations,
    Log,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Waves,
        View::Vms,
        View::Checks,
        View::Migrations,
        View::Log,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Waves => "Waves",
            View::Vms => "VMs",
            View::Checks => "Checks",
            View::Migrations => "Migrations",
            View::Log => "Log",
        }
    }

    pub fn index(self) -> usize {
        match self {
            View::Waves => 0,
            View::Vms => 1,
            View::Checks => 2,
            View::Migrations => 3,
            View::Log => 4,
        }
    }

    pub fn next(self) -> View {
        View::ALL[(self.index() + 1) % View::ALL.len()]
    }

    pub fn prev(self) -> View {
        View::ALL[(self.index() + View::ALL.len() - 1) % View::ALL.len()]
    }

    /// The view named by a `:view` argument (case-insensitive prefix of its title).
    pub fn parse(name: &str) -> Option<View> {
        let n = name.to_ascii_lowercase();
        if n.is_empty() {
            return None;
        }
        View::ALL
            .into_iter()
            .find(|v| v.title().to_ascii_lowercase().starts_with(&n))
    }
}

/// Which cluster the engine talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetInfo {
    /// The embedded sim; the kubeconfig it wrote (for `kubectl`), if any.
    Sim { kubeconfig: Option<String> },
    /// A kubeconfig context.
    Context(String),
}

impl TargetInfo {
    pub fn label(&self) -> String {
        match self {
            TargetInfo::Sim {
                kubeconfig: Some(path),
            } => format!("SIM {path}"),
            TargetInfo::Sim { kubeconfig: None } => "SIM".to_string(),
            TargetInfo::Context(c) => c.clone(),
        }
    }
}

/// Everything the TUI needs besides the plan, the engine and the theme.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// The plan file as given on the command line (shown in messages).
    pub plan_path: String,
    pub mode: Mode,
    pub target: TargetInfo,
    /// `--read-only`: dangerous actions are disabled.
    pub read_only: bool,
    /// `--blast FILE`, already loaded.
    pub blast: Option<BlastData>,
    /// Themes `:theme NAME` can switch to.
    pub themes: ThemeSet,
    /// A warning to show in a banner (e.g. a bad theme fell back to the default).
    pub banner: Option<String>,
    /// `NO_COLOR` is set: `:theme` keeps the colourless theme.
    pub no_color: bool,
    /// The wave to open (default: the first).
    pub wave: Option<String>,
    /// Where `e` (export) writes reports; the current directory when `None`.
    pub report_dir: Option<String>,
}

impl TuiOptions {
    /// Options for a rehearsal on the embedded sim, everything else default.
    pub fn rehearsal(plan_path: impl Into<String>) -> TuiOptions {
        TuiOptions {
            plan_path: plan_path.into(),
            mode: Mode::Rehearsal,
            target: TargetInfo::Sim { kubeconfig: None },
            read_only: false,
            blast: None,
            themes: ThemeSet::builtin(),
            banner: None,
            no_color: false,
            wave: None,
            report_dir: None,
        }
    }
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
    pub phase: String,
    pub source_node: Option<String>,
    pub target_node: Option<String>,
    pub lost_probes: u32,
    pub sent_probes: u32,
    pub started_ms: i64,
    pub updated_ms: i64,
}

impl MigrationState {
    pub fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
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
    /// Index into [`App::waves`].
    pub wave: usize,
    pub model: NetworkModel,
    pub network: String,
    pub vlan: Option<u16>,
    pub ip: String,
    pub owner: Option<String>,
    pub after: Vec<String>,
    pub step: Step,
    pub status: Status,
    pub progress: Option<f64>,
    pub message: String,
    pub node: Option<String>,
    /// When each step was first entered (unix ms), indexed by [`step_index`].
    pub entered: [Option<i64>; STEP_COUNT],
    pub checks: Vec<CheckCell>,
    pub migration: Option<MigrationState>,
    pub conditions: Vec<Condition>,
    /// Most recent first.
    pub events: VecDeque<KubeEventLine>,
    /// Lower-case name, for filtering without allocating.
    pub(crate) name_lc: String,
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
    /// Indices into [`App::vms`], plan order.
    pub vms: Vec<usize>,
    pub max_parallel_imports: u32,
    pub max_parallel_cutovers: u32,
    pub started: bool,
    pub paused: bool,
    /// `WaveDone`: (verified, failed).
    pub done: Option<(usize, usize)>,
    /// `WaveDone`: VMs cancelled (the wave was cancelled when not zero).
    pub cancelled: usize,
    /// Columns of the check matrix (check kinds in first-seen order).
    pub check_columns: Vec<String>,
}

/// One line of the log pane.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at_ms: i64,
    pub level: LogLevel,
    pub vm: String,
    pub text: String,
}

/// Table order of the VM rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// As written in the plan.
    Plan,
    Name,
    /// Pipeline step (failed first within a step).
    Step,
    /// Import progress, highest first.
    Progress,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Plan => SortKey::Name,
            SortKey::Name => SortKey::Step,
            SortKey::Step => SortKey::Progress,
            SortKey::Progress => SortKey::Plan,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Plan => "plan",
            SortKey::Name => "name",
            SortKey::Step => "step",
            SortKey::Progress => "progress",
        }
    }
}

/// Where typed characters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    Normal,
    /// Editing the `/` filter.
    Filter,
    /// Editing the `:` command line.
    Command,
}

/// An operation that asks for confirmation first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    StartWave(String),
    CancelWave(String),
    Rollback(String),
    ConfirmPowerOff(String),
    Migrate(String),
    /// Quit while VMs are in flight.
    Quit,
}

/// A confirmation dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub op: Pending,
    pub title: String,
    pub body: Vec<String>,
    /// The operator must type this (the VM name) before Enter confirms.
    pub type_to_confirm: Option<String>,
    pub typed: String,
}

/// What floats over the current view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    /// The `?` overlay; the scroll offset in lines.
    Help {
        scroll: u16,
    },
    Confirm(Confirm),
    Message {
        title: String,
        text: String,
    },
}

/// The TUI state.
#[derive(Debug, Clone)]
pub struct App {
    pub plan_name: String,
    pub plan_path: String,
    pub namespace: String,
    /// One-line plan summary (waves, VMs, L2/L3, disks).
    pub summary: String,
    pub mode: Mode,
    pub target: TargetInfo,
    pub read_only: bool,
    pub blast: Option<BlastData>,
    pub theme: Theme,
    pub themes: ThemeSet,
    pub no_color: bool,
    /// Warning banner under the header (bad theme, …); `Esc` dismisses it.
    pub banner: Option<String>,
    pub report_dir: Option<String>,
    /// Wall clock, unix ms; set by the loop's tick (render never reads the clock).
    pub now_ms: i64,
    pub waves: Vec<WaveState>,
    /// Current wave (index into `waves`).
    pub wave: usize,
    pub vms: Vec<VmState>,
    index: HashMap<String, usize>,
    /// Width of the name column (longest VM name, 8–32).
    pub name_width: u16,
    pub view: View,
    pub input: InputMode,
    pub filter: String,
    pub command: String,
    /// Candidates shown under the command line after `Tab`.
    pub completions: Vec<String>,
    pub sort: SortKey,
    pub sort_reverse: bool,
    /// Rows of the VMs and Checks views: indices into `vms`, filtered and sorted.
    pub order: Vec<usize>,
    /// Rows of the Migrations view.
    pub mig_order: Vec<usize>,
    /// VMs of the current wave per step, and failed ones.
    pub counts: [usize; STEP_COUNT],
    pub failed: usize,
    pub cursor: usize,
    pub offset: usize,
    pub mig_cursor: usize,
    pub mig_offset: usize,
    pub wave_cursor: usize,
    /// Lines scrolled up from the end of the log (0 follows the tail).
    pub log_scroll: usize,
    pub popup: Option<Popup>,
    /// A one-line message in the footer (result of the last action).
    pub flash: Option<String>,
    pub log: VecDeque<LogLine>,
    /// Terminal size (columns, rows), for layout-dependent navigation and mouse clicks.
    pub size: (u16, u16),
    /// `false` once the engine's event stream ended.
    pub engine_connected: bool,
    dirty: bool,
}

impl App {
    pub fn new(plan: &Plan, opts: TuiOptions, theme: Theme, now_ms: i64) -> App {
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
                paused: false,
                done: None,
                cancelled: 0,
                check_columns: Vec::new(),
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
                step: Step::Pending,
                status: Status::Active,
                progress: None,
                message: String::new(),
                node: None,
                entered: [None; STEP_COUNT],
                checks,
                migration: None,
                conditions: Vec::new(),
                events: VecDeque::new(),
            });
        }
        let wave = opts
            .wave
            .as_deref()
            .and_then(|w| waves.iter().position(|x| x.name == w))
            .unwrap_or(0);
        let summary = crate::plan::Summary::of(plan).to_string();
        let mut app = App {
            plan_name: plan.meta.name.value.clone(),
            plan_path: opts.plan_path,
            namespace: plan.meta.namespace.value.clone(),
            summary,
            mode: opts.mode,
            target: opts.target,
            read_only: opts.read_only,
            blast: opts.blast,
            theme,
            themes: opts.themes,
            no_color: opts.no_color,
            banner: opts.banner,
            report_dir: opts.report_dir,
            now_ms,
            waves,
            wave,
            name_width: plan
                .vms
                .iter()
                .map(|v| v.name.chars().count())
                .max()
                .unwrap_or(0)
                .clamp(8, 32) as u16,
            vms,
            index,
            view: View::Vms,
            input: InputMode::Normal,
            filter: String::new(),
            command: String::new(),
            completions: Vec::new(),
            sort: SortKey::Plan,
            sort_reverse: false,
            order: Vec::new(),
            mig_order: Vec::new(),
            counts: [0; STEP_COUNT],
            failed: 0,
            cursor: 0,
            offset: 0,
            mig_cursor: 0,
            mig_offset: 0,
            wave_cursor: wave,
            log_scroll: 0,
            popup: None,
            flash: None,
            log: VecDeque::new(),
            size: (120, 40),
            engine_connected: true,
            dirty: true,
        };
        app.settle();
        app
    }

    /// The VM index for a name.
    pub fn vm_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn vm_by_name(&self, name: &str) -> Option<&VmState> {
        self.vm_index(name).map(|i| &self.vms[i])
    }

    pub fn current_wave(&self) -> Option<&WaveState> {
        self.waves.get(self.wave)
    }

    pub fn wave_name(&self) -> &str {
        self.current_wave().map(|w| w.name.as_str()).unwrap_or("")
    }

    /// The VM under the cursor of the current view (Migrations has its own list).
    pub fn selected(&self) -> Option<&VmState> {
        self.selected_index().map(|i| &self.vms[i])
    }

    pub fn selected_index(&self) -> Option<usize> {
        match self.view {
            View::Migrations => self.mig_order.get(self.mig_cursor).copied(),
            _ => self.order.get(self.cursor).copied(),
        }
    }

    /// VMs the engine is working on, in every wave.
    pub fn in_flight(&self) -> usize {
        self.vms.iter().filter(|v| v.in_flight()).count()
    }

    /// Marks derived data stale (row order, counts).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Recomputes derived data if stale: filtered and sorted row order, counts per step,
    /// the Migrations list; keeps the selected VM under the cursor.
    pub fn settle(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let selected = self.order.get(self.cursor).copied();
        let mig_selected = self.mig_order.get(self.mig_cursor).copied();
        let Some(wave) = self.waves.get(self.wave) else {
            self.order.clear();
            self.mig_order.clear();
            return;
        };
        let filter = self.filter.to_lowercase();
        let vms = &self.vms;
        self.order.clear();
        self.order.extend(
            wave.vms
                .iter()
                .copied()
                .filter(|&i| filter.is_empty() || matches_filter(&vms[i], &filter)),
        );
        match self.sort {
            SortKey::Plan => {}
            SortKey::Name => self.order.sort_by(|&a, &b| vms[a].name.cmp(&vms[b].name)),
            SortKey::Step => self.order.sort_by_key(|&i| {
                let v = &vms[i];
                (v.step, !v.failed())
            }),
            SortKey::Progress => self.order.sort_by(|&a, &b| {
                let p = |i: usize| vms[i].progress.unwrap_or(-1.0);
                p(b).total_cmp(&p(a))
            }),
        }
        if self.sort_reverse {
            self.order.reverse();
        }
        self.counts = [0; STEP_COUNT];
        self.failed = 0;
        for &i in &wave.vms {
            self.counts[step_index(vms[i].step)] += 1;
            if vms[i].failed() {
                self.failed += 1;
            }
        }
        self.mig_order.clear();
        self.mig_order.extend(
            wave.vms
                .iter()
                .copied()
                .filter(|&i| vms[i].migration.is_some()),
        );
        self.cursor = keep(&self.order, selected, self.cursor);
        self.mig_cursor = keep(&self.mig_order, mig_selected, self.mig_cursor);
        self.scroll_into_view();
    }

    /// Keeps the cursors inside their lists' visible windows.
    pub fn scroll_into_view(&mut self) {
        let rows = super::view::layout::list_rows(self).max(1);
        let fit = |cursor: usize, offset: usize, len: usize| -> usize {
            let offset = if cursor < offset {
                cursor
            } else if cursor >= offset + rows {
                cursor + 1 - rows
            } else {
                offset
            };
            offset.min(len.saturating_sub(1))
        };
        self.offset = fit(self.cursor, self.offset, self.order.len());
        self.mig_offset = fit(self.mig_cursor, self.mig_offset, self.mig_order.len());
    }

    /// Applies one engine event. Derived data is recomputed by the next [`App::settle`].
    pub fn apply_event(&mut self, ev: EngineEvent) {
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
            } => {
                if let Some(w) = self.waves.iter_mut().find(|w| w.name == wave) {
                    w.started = true;
                }
                let Some(i) = idx else {
                    self.push_log(at_ms, LogLevel::Info, vm, message);
                    return;
                };
                let v = &mut self.vms[i];
                let failed_now = matches!(status, Status::Failed(_)) && !v.failed();
                let slot = &mut v.entered[step_index(step)];
                if slot.is_none() {
                    *slot = Some(at_ms);
                }
                let step_changed = v.step != step;
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
                let Some(i) = idx else { return };
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
                let Some(i) = idx else { return };
                let v = &mut self.vms[i];
                let fresh = v.migration.as_ref().is_none_or(|m| m.name != name);
                let phase_changed = fresh || v.migration.as_ref().is_some_and(|m| m.phase != phase);
                let started_ms = match &v.migration {
                    Some(m) if !fresh => m.started_ms,
                    _ => at_ms,
                };
                if let Some(t) = &target_node {
                    if phase == "Succeeded" {
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
            EventKind::WaveDone {
                verified,
                failed,
                cancelled,
            } => {
                if let Some(w) = self.waves.iter_mut().find(|w| w.name == wave) {
                    w.done = Some((verified, failed));
                    w.cancelled = cancelled;
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
        self.dirty = true;
    }

    /// Adds a log line (the oldest lines go beyond [`LOG_CAPACITY`]).
    pub fn push_log(&mut self, at_ms: i64, level: LogLevel, vm: String, text: String) {
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            at_ms,
            level,
            vm,
            text,
        });
        if self.log_scroll > 0 {
            // Keep the lines the operator scrolled to in place.
            self.log_scroll = (self.log_scroll + 1).min(self.log.len().saturating_sub(1));
        }
    }
}

fn matches_filter(v: &VmState, filter_lc: &str) -> bool {
    v.name_lc.contains(filter_lc)
        || v.ip.contains(filter_lc)
        || v.network.contains(filter_lc)
        || v.node.as_deref().is_some_and(|n| n.contains(filter_lc))
        || v.step.label().to_ascii_lowercase().contains(filter_lc)
        || (filter_lc == "failed" && v.failed())
}

/// The position of `selected` in `order`, else `cursor` clamped.
fn keep(order: &[usize], selected: Option<usize>, cursor: usize) -> usize {
    if let Some(s) = selected {
        if order.get(cursor) == Some(&s) {
            return cursor;
        }
        if let Some(p) = order.iter().position(|&i| i == s) {
            return p;
        }
    }
    cursor.min(order.len().saturating_sub(1))
}
