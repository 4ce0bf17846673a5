//! The session: what is fixed for the whole run of the TUI (the plan's identity, the
//! mode and target, `--read-only`, the themes to choose from). Set once by
//! [`super::App::new`], read by everyone, written by no one.

use super::super::blast::BlastData;
use super::super::policy::PolicyData;
use super::super::theme::ThemeSet;
use crate::cluster::client::Mode;
use crate::plan::Plan;

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
    /// Another wavelift drives the plan (holds its Lease): `holder since time`. The TUI
    /// then only watches (read-only) and says so in its header.
    pub driven_by: Option<String>,
    /// `--blast FILE`, already loaded.
    pub blast: Option<BlastData>,
    /// The VMs' drafted network policies (`[plan] policy = "draft" | "apply"`).
    pub policies: Option<PolicyData>,
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
    /// The clock change windows are judged by, read at the wall-clock time `.0` (Unix
    /// ms): the rehearsal world's faster clock. `None`: the wall clock.
    pub window_clock: Option<(i64, crate::engine::WindowClock)>,
}

impl TuiOptions {
    /// Options for a rehearsal on the embedded sim, everything else default.
    pub fn rehearsal(plan_path: impl Into<String>) -> TuiOptions {
        TuiOptions {
            plan_path: plan_path.into(),
            mode: Mode::Rehearsal,
            target: TargetInfo::Sim { kubeconfig: None },
            read_only: false,
            driven_by: None,
            blast: None,
            policies: None,
            themes: ThemeSet::builtin(),
            banner: None,
            no_color: false,
            wave: None,
            report_dir: None,
            window_clock: None,
        }
    }
}

/// What stays the same for the whole run.
#[derive(Debug, Clone)]
pub struct Session {
    pub plan_name: String,
    /// The plan file as given on the command line.
    pub plan_path: String,
    pub namespace: String,
    /// One-line plan summary (waves, VMs, L2/L3, disks).
    pub summary: String,
    pub mode: Mode,
    pub target: TargetInfo,
    /// `--read-only`: dangerous actions are disabled.
    pub read_only: bool,
    /// Another wavelift drives the plan: who, since when.
    pub driven_by: Option<String>,
    pub blast: Option<BlastData>,
    pub policies: Option<PolicyData>,
    /// Themes `:theme NAME` can switch to.
    pub themes: ThemeSet,
    /// `NO_COLOR` is set: colours stay off.
    pub no_color: bool,
    /// Where `e` (export) writes reports; the current directory when `None`.
    pub report_dir: Option<String>,
    /// Width of the name column (longest VM name, 8–32).
    pub name_width: u16,
    /// See [`TuiOptions::window_clock`].
    pub window_clock: Option<(i64, crate::engine::WindowClock)>,
}

impl Session {
    /// The time change windows are judged by when the wall clock reads `wall_ms`.
    pub fn window_now(&self, wall_ms: i64) -> i64 {
        match self.window_clock {
            Some((at, clock)) => {
                clock.start_ms + ((wall_ms - at).max(0) as f64 * clock.speed) as i64
            }
            None => wall_ms,
        }
    }
}

impl Session {
    /// The session of `plan`. `opts.banner` and `opts.wave` belong to the UI state and
    /// are not kept.
    pub(super) fn new(plan: &Plan, opts: TuiOptions) -> Session {
        Session {
            plan_name: plan.meta.name.value.clone(),
            plan_path: opts.plan_path,
            namespace: plan.meta.namespace.value.clone(),
            summary: crate::plan::Summary::of(plan).to_string(),
            mode: opts.mode,
            target: opts.target,
            read_only: opts.read_only || opts.driven_by.is_some(),
            driven_by: opts.driven_by,
            blast: opts.blast,
            policies: opts.policies,
            themes: opts.themes,
            no_color: opts.no_color,
            report_dir: opts.report_dir,
            window_clock: opts.window_clock,
            name_width: plan
                .vms
                .iter()
                .map(|v| v.name.chars().count())
                .max()
                .unwrap_or(0)
                .clamp(8, 32) as u16,
        }
    }
}
