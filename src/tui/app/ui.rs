//! The UI state: what the operator looks at and is typing (view, cursors, filter, sort,
//! command line, pop-ups, theme), the rows derived from the fleet for the open wave, and
//! what the operator asked of each wave. Written by [`crate::tui::update()`].

use super::cursor::ListCursor;
use super::fleet::{step_index, Fleet, WaveState, STEP_COUNT};
use crate::tui::theme::Theme;

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
    CancelVm(String),
    IgnoreWindow(String),
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

/// What the operator asked of a wave, shown until the engine reports otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaveControl {
    /// Started from the TUI when this many of its runs had finished
    /// ([`WaveState::runs_done`]).
    pub started_after: Option<usize>,
    pub paused: bool,
}

/// A wave as shown: the engine's reports with the operator's requests over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaveRun {
    pub started: bool,
    pub paused: bool,
    /// (verified, failed) of the last run, unless the operator started it again since.
    pub done: Option<(usize, usize)>,
    /// VMs cancelled in that run.
    pub cancelled: usize,
}

impl WaveRun {
    pub fn of(w: &WaveState, c: &WaveControl) -> WaveRun {
        let rerun = c.started_after == Some(w.runs_done);
        WaveRun {
            started: w.started || c.started_after.is_some(),
            paused: c.paused,
            done: if rerun { None } else { w.done },
            cancelled: if rerun { 0 } else { w.cancelled },
        }
    }
}

/// The UI state.
#[derive(Debug, Clone)]
pub struct Ui {
    pub theme: Theme,
    /// Warning banner under the header (bad theme, …); `Esc` dismisses it.
    pub banner: Option<String>,
    pub view: View,
    pub input: InputMode,
    pub filter: String,
    pub command: String,
    /// Candidates shown under the command line after `Tab`.
    pub completions: Vec<String>,
    pub sort: SortKey,
    pub sort_reverse: bool,
    /// The open wave (index into the fleet's waves).
    pub wave: usize,
    /// The Waves view's list (every wave).
    pub waves: ListCursor,
    /// The VMs and Checks views' list, over `order`.
    pub rows: ListCursor,
    /// The Migrations view's list, over `mig_order`.
    pub migrations: ListCursor,
    /// Rows of the VMs and Checks views: indices into the fleet's VMs, filtered and
    /// sorted.
    pub order: Vec<usize>,
    /// Rows of the Migrations view.
    pub mig_order: Vec<usize>,
    /// VMs of the open wave per step, and failed ones.
    pub counts: [usize; STEP_COUNT],
    pub failed: usize,
    /// Lines scrolled up from the end of the log (0 follows the tail).
    pub log_scroll: usize,
    pub popup: Option<Popup>,
    /// A one-line message in the footer (result of the last action).
    pub flash: Option<String>,
    /// Per wave (fleet order): what the operator asked.
    pub controls: Vec<WaveControl>,
    /// Wall clock, unix ms; set by the loop's tick (render never reads the clock).
    pub now_ms: i64,
    /// Terminal size (columns, rows), for layout-dependent navigation and mouse clicks.
    pub size: (u16, u16),
    /// `false` once the engine's event stream ended.
    pub engine_connected: bool,
}

impl Ui {
    /// The VMs view of wave `wave`, nothing selected or typed.
    pub(super) fn new(
        theme: Theme,
        banner: Option<String>,
        waves: usize,
        wave: usize,
        now_ms: i64,
    ) -> Ui {
        Ui {
            theme,
            banner,
            view: View::Vms,
            input: InputMode::Normal,
            filter: String::new(),
            command: String::new(),
            completions: Vec::new(),
            sort: SortKey::Plan,
            sort_reverse: false,
            wave,
            waves: ListCursor::at(wave),
            rows: ListCursor::default(),
            migrations: ListCursor::default(),
            order: Vec::new(),
            mig_order: Vec::new(),
            counts: [0; STEP_COUNT],
            failed: 0,
            log_scroll: 0,
            popup: None,
            flash: None,
            controls: vec![WaveControl::default(); waves],
            now_ms,
            size: (120, 40),
            engine_connected: true,
        }
    }

    /// Rebuilds the rows of the open wave (filtered, sorted), the counts per step and
    /// the Migrations list; keeps the selected VMs under the cursors. `false` when the
    /// open wave does not exist (no rows).
    pub(super) fn rebuild_rows(&mut self, fleet: &Fleet) -> bool {
        let selected = self.order.get(self.rows.index).copied();
        let mig_selected = self.mig_order.get(self.migrations.index).copied();
        let Some(wave) = fleet.waves().get(self.wave) else {
            self.order.clear();
            self.mig_order.clear();
            return false;
        };
        let filter = self.filter.to_lowercase();
        let vms = fleet.vms();
        self.order.clear();
        self.order.extend(
            wave.vms
                .iter()
                .copied()
                .filter(|&i| filter.is_empty() || vms[i].matches(&filter)),
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
        self.rows.follow(&self.order, selected);
        self.migrations.follow(&self.mig_order, mig_selected);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_hides_the_last_run_until_the_engine_reports_the_next() {
        let mut w = WaveState {
            name: "w1".into(),
            window: None,
            vms: Vec::new(),
            max_parallel_imports: 1,
            max_parallel_cutovers: 1,
            started: true,
            done: Some((3, 1)),
            cancelled: 2,
            runs_done: 1,
            check_columns: Vec::new(),
            fit: None,
            fit_throughput: String::new(),
        };
        let mut c = WaveControl::default();
        let run = WaveRun::of(&w, &c);
        assert_eq!((run.done, run.cancelled), (Some((3, 1)), 2));
        c.started_after = Some(w.runs_done);
        c.paused = true;
        let run = WaveRun::of(&w, &c);
        assert_eq!(
            (run.started, run.paused, run.done, run.cancelled),
            (true, true, None, 0)
        );
        w.done = Some((4, 0));
        w.cancelled = 0;
        w.runs_done = 2;
        assert_eq!(
            WaveRun::of(&w, &c).done,
            Some((4, 0)),
            "the next run's end shows"
        );
    }
}
