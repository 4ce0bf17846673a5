//! The TUI's whole state ([`App`]), in three parts:
//!
//! - the [`Session`]: what is fixed for the run (plan, mode, target, `--read-only`, …);
//! - the [`Fleet`]: the waves and VMs as the engine reported them, and its log; changed
//!   only by [`App::apply_event`];
//! - the [`Ui`]: view, cursors ([`ListCursor`]), filter, sort, command line, pop-ups,
//!   theme, and what the operator asked of each wave; changed by [`crate::tui::update()`].
//!
//! `App` is owned by the event loop alone (no mutex, no sharing with workers). Rendering
//! reads it. Derived data (the filtered, sorted row order, counts per step) is
//! recomputed lazily by [`App::settle`], once per batch of events, so a burst of 10,000
//! events costs one sort rather than 10,000.

mod cursor;
mod fleet;
mod session;
mod ui;

pub use cursor::ListCursor;
pub use fleet::{
    step_index, Applied, CheckCell, CheckOutcome, Condition, Fleet, KubeEventLine, LogLine,
    MigrationState, VmState, WaveState, EVENTS_PER_VM, LOG_CAPACITY, STEP_COUNT,
};
pub use session::{Session, TargetInfo, TuiOptions};
pub use ui::{Confirm, InputMode, Pending, Popup, SortKey, Ui, View, WaveControl, WaveRun};

use ratatui::layout::Rect;

use super::layout;
use super::theme::Theme;
use crate::engine::EngineEvent;
use crate::plan::Plan;

/// The TUI state.
#[derive(Debug, Clone)]
pub struct App {
    session: Session,
    fleet: Fleet,
    ui: Ui,
    /// The rows derived from the fleet (order, counts) are stale.
    dirty: bool,
}

impl App {
    pub fn new(plan: &Plan, mut opts: TuiOptions, theme: Theme, now_ms: i64) -> App {
        let fleet = Fleet::new(plan);
        let banner = opts.banner.take();
        let wave = opts
            .wave
            .take()
            .and_then(|w| fleet.waves().iter().position(|x| x.name == w))
            .unwrap_or(0);
        let ui = Ui::new(theme, banner, fleet.waves().len(), wave, now_ms);
        let mut app = App {
            session: Session::new(plan, opts),
            fleet,
            ui,
            dirty: true,
        };
        app.settle();
        app
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub fn ui(&self) -> &Ui {
        &self.ui
    }

    /// The UI state, for [`crate::tui::update()`].
    pub(in crate::tui) fn ui_mut(&mut self) -> &mut Ui {
        &mut self.ui
    }

    pub fn theme(&self) -> &Theme {
        &self.ui.theme
    }

    pub fn set_theme(&mut self, theme: Theme) {
        self.ui.theme = theme;
    }

    /// The open wave.
    pub fn current_wave(&self) -> Option<&WaveState> {
        self.fleet.waves().get(self.ui.wave)
    }

    pub fn wave_name(&self) -> &str {
        self.current_wave().map(|w| w.name.as_str()).unwrap_or("")
    }

    /// Wave `i` as shown: the engine's reports with the operator's requests over them.
    pub fn wave_run(&self, i: usize) -> Option<WaveRun> {
        let w = self.fleet.waves().get(i)?;
        Some(WaveRun::of(w, self.ui.controls.get(i)?))
    }

    /// The VM under the cursor of the current view (Migrations has its own list).
    pub fn selected(&self) -> Option<&VmState> {
        self.selected_index().map(|i| &self.fleet.vms()[i])
    }

    pub fn selected_index(&self) -> Option<usize> {
        match self.ui.view {
            View::Migrations => self.ui.mig_order.get(self.ui.migrations.index).copied(),
            _ => self.ui.order.get(self.ui.rows.index).copied(),
        }
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
        if self.ui.rebuild_rows(&self.fleet) {
            self.scroll_into_view();
        }
    }

    /// Keeps the cursors inside their lists' visible windows.
    pub fn scroll_into_view(&mut self) {
        let rows = self.list_rows().max(1);
        let ui = &mut self.ui;
        ui.rows.scroll_into_view(rows, ui.order.len());
        ui.migrations.scroll_into_view(rows, ui.mig_order.len());
    }

    /// Applies one engine event. Derived data is recomputed by the next [`App::settle`].
    pub fn apply_event(&mut self, ev: EngineEvent) {
        let applied = self.fleet.apply_event(ev);
        if applied.logged > 0 && self.ui.log_scroll > 0 {
            // Keep the lines the operator scrolled to in place.
            self.ui.log_scroll =
                (self.ui.log_scroll + applied.logged).min(self.fleet.log().len().saturating_sub(1));
        }
        if applied.rows {
            self.dirty = true;
        }
    }

    /// The frame's areas at the terminal's size.
    fn frame_areas(&self) -> layout::FrameAreas {
        let (w, h) = self.ui.size;
        layout::frame_areas(Rect::new(0, 0, w, h), self.ui.banner.is_some())
    }

    /// The bordered table of the current view (with its header row), if it has one.
    pub fn table_area(&self) -> Option<Rect> {
        let body = self.frame_areas().body;
        let rows = self.ui.order.len();
        match self.ui.view {
            View::Waves => Some(layout::waves_areas(body, self.fleet.waves().len()).0),
            View::Vms => Some(layout::vms_areas(body, rows).table),
            View::Checks => Some(layout::checks_areas(body, rows).0),
            View::Migrations => Some(body),
            View::Log => None,
        }
    }

    /// The rows area of the current view's table (inside the border, below the header).
    pub fn first_row_area(&self) -> Option<Rect> {
        layout::rows_area(self.table_area()?)
    }

    /// How many rows the current view's list shows (the log's lines for the Log view).
    pub fn list_rows(&self) -> usize {
        match self.ui.view {
            View::Log => self.frame_areas().body.height.saturating_sub(2) as usize,
            _ => self.first_row_area().map_or(0, |r| r.height as usize),
        }
    }
}
