//! What the operator (or the clock, or the terminal) asks of the TUI ([`Action`]), what
//! the TUI asks of the outside world in return ([`Effect`]), and the pure [`update`]
//! between them.

use super::app::{App, Confirm, InputMode, Pending, Popup, View};
use super::command::{self, Command};
use super::keys;
use super::report;
use super::theme::Theme;
use super::view::layout;
use crate::engine::{EngineRequest, Status};

/// Something to do to the TUI state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    // navigation
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextView,
    PrevView,
    GoView(View),
    Enter,
    Escape,
    ToggleHelp,
    StartFilter,
    StartCommand,
    CycleSort,
    ReverseSort,
    NextTheme,
    // operator actions on the engine
    StartWave,
    TogglePause,
    CancelWave,
    RetryVm,
    RollbackVm,
    ConfirmPowerOff,
    RunChecks,
    Migrate,
    ExportReport,
    // leaving
    Quit,
    /// Ctrl-C: quit, asking first while VMs are in flight; a second one forces.
    Interrupt,
    /// Ctrl-Z.
    Suspend,
    // text input (filter, command line, typed confirmation)
    Char(char),
    Backspace,
    Complete,
    // confirmation dialogs
    Yes,
    No,
    // mouse
    Click {
        column: u16,
        row: u16,
    },
    ScrollUp,
    ScrollDown,
    // from the loop
    /// Wall clock, unix ms.
    Tick(i64),
    Resize(u16, u16),
    /// Run a command line (without the `:`).
    Command(String),
    /// A theme file loaded by the loop for `:theme PATH`.
    ThemeLoaded(Box<Theme>),
    ThemeFailed(String),
    /// The engine's event stream ended.
    EngineGone,
}

/// Something for the event loop to do on the TUI's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Engine(EngineRequest),
    Quit,
    Suspend,
    /// Write `contents` to `path`.
    ExportReport {
        path: String,
        contents: String,
    },
    /// Load a theme file (`:theme PATH`); answer with `ThemeLoaded` / `ThemeFailed`.
    LoadTheme(String),
}

/// Applies an action; returns what the loop must do. Pure: no I/O, no clock.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    match action {
        Action::Tick(now) => app.now_ms = now,
        Action::Resize(w, h) => {
            app.size = (w, h);
            app.settle();
            app.scroll_into_view();
        }
        Action::EngineGone => {
            app.engine_connected = false;
            app.flash = Some("the engine stopped; the state stays in the cluster".into());
        }
        Action::ThemeLoaded(theme) => {
            app.flash = Some(format!("theme {} ({})", theme.name(), theme.origin()));
            app.theme = *theme;
        }
        Action::ThemeFailed(e) => {
            app.popup = Some(Popup::Message {
                title: "Theme not loaded".into(),
                text: e,
            })
        }
        action => {
            if app.popup.is_some() {
                popup_action(app, action, &mut fx);
            } else {
                match app.input {
                    InputMode::Normal => normal_action(app, action, &mut fx),
                    InputMode::Filter => filter_action(app, action),
                    InputMode::Command => command_action(app, action, &mut fx),
                }
            }
        }
    }
    app.settle();
    fx
}

fn popup_action(app: &mut App, action: Action, fx: &mut Vec<Effect>) {
    let help_len = match app.popup {
        Some(Popup::Help { .. }) => super::view::popup::help_lines(app).len() as u16,
        _ => 0,
    };
    let Some(popup) = app.popup.as_mut() else {
        return;
    };
    match popup {
        Popup::Help { scroll } => match action {
            Action::Down | Action::ScrollDown => *scroll = (*scroll + 1).min(help_len),
            Action::Up | Action::ScrollUp => *scroll = scroll.saturating_sub(1),
            Action::PageDown => *scroll = (*scroll + 10).min(help_len),
            Action::PageUp => *scroll = scroll.saturating_sub(10),
            Action::Top => *scroll = 0,
            Action::Interrupt => {
                app.popup = None;
                quit(app, fx);
            }
            Action::Escape | Action::ToggleHelp | Action::Quit | Action::No | Action::Enter => {
                app.popup = None
            }
            _ => {}
        },
        Popup::Message { .. } => match action {
            Action::Interrupt => {
                app.popup = None;
                quit(app, fx);
            }
            Action::Click { .. } | Action::ScrollUp | Action::ScrollDown => {}
            _ => app.popup = None,
        },
        Popup::Confirm(c) => {
            let typed_ok = c
                .type_to_confirm
                .as_ref()
                .is_none_or(|name| *name == c.typed);
            match action {
                Action::Char(ch) if c.type_to_confirm.is_some() => c.typed.push(ch),
                Action::Backspace => {
                    c.typed.pop();
                }
                Action::Yes | Action::Enter if typed_ok => {
                    let op = c.op.clone();
                    app.popup = None;
                    execute(app, op, fx);
                }
                Action::Yes | Action::Enter => {
                    let name = c.type_to_confirm.clone().unwrap_or_default();
                    app.flash = Some(format!("type `{name}` exactly to confirm, Esc cancels"));
                }
                Action::Interrupt if c.op == Pending::Quit => {
                    app.popup = None;
                    execute(app, Pending::Quit, fx);
                }
                Action::No | Action::Escape | Action::Interrupt => {
                    app.popup = None;
                    app.flash = Some("cancelled".into());
                }
                _ => {}
            }
        }
    }
}

fn filter_action(app: &mut App, action: Action) {
    match action {
        Action::Char(c) => app.filter.push(c),
        Action::Backspace => {
            app.filter.pop();
        }
        Action::Enter => app.input = InputMode::Normal,
        Action::Escape | Action::Interrupt => {
            app.filter.clear();
            app.input = InputMode::Normal;
        }
        _ => return,
    }
    app.cursor = 0;
    app.offset = 0;
    app.mig_cursor = 0;
    app.mig_offset = 0;
    app.mark_dirty();
}

fn command_action(app: &mut App, action: Action, fx: &mut Vec<Effect>) {
    match action {
        Action::Char(c) => {
            app.command.push(c);
            app.completions.clear();
        }
        Action::Backspace => {
            if app.command.pop().is_none() {
                app.input = InputMode::Normal;
            }
            app.completions.clear();
        }
        Action::Complete => {
            let (line, candidates) = command::complete(app, &app.command);
            app.command = line;
            app.completions = candidates;
        }
        Action::Enter => {
            let line = std::mem::take(&mut app.command);
            app.completions.clear();
            app.input = InputMode::Normal;
            run_command(app, &line, fx);
        }
        Action::Escape | Action::Interrupt => {
            app.command.clear();
            app.completions.clear();
            app.input = InputMode::Normal;
        }
        _ => {}
    }
}

fn normal_action(app: &mut App, action: Action, fx: &mut Vec<Effect>) {
    if app.read_only && keys::is_dangerous(&action) {
        let what = keys::binding_of(&action)
            .map(|b| b.description)
            .unwrap_or("that");
        app.flash = Some(format!("read-only: disabled ({what})"));
        return;
    }
    match action {
        Action::Up | Action::ScrollUp => move_cursor(app, -1),
        Action::Down | Action::ScrollDown => move_cursor(app, 1),
        Action::PageUp => move_cursor(app, -(page(app) as i64)),
        Action::PageDown => move_cursor(app, page(app) as i64),
        Action::Top => move_cursor(app, i64::MIN / 2),
        Action::Bottom => move_cursor(app, i64::MAX / 2),
        Action::NextView => set_view(app, app.view.next()),
        Action::PrevView => set_view(app, app.view.prev()),
        Action::GoView(v) => set_view(app, v),
        Action::Enter if app.view == View::Waves => {
            choose_wave(app, app.wave_cursor);
            set_view(app, View::Vms);
        }
        Action::Escape => {
            if !app.filter.is_empty() {
                app.filter.clear();
                app.mark_dirty();
            } else if app.banner.is_some() {
                app.banner = None;
            } else {
                app.flash = None;
            }
        }
        Action::ToggleHelp => app.popup = Some(Popup::Help { scroll: 0 }),
        Action::StartFilter => {
            if app.view == View::Waves || app.view == View::Log {
                set_view(app, View::Vms);
            }
            app.input = InputMode::Filter;
        }
        Action::StartCommand => {
            app.input = InputMode::Command;
            app.command.clear();
            app.completions.clear();
        }
        Action::CycleSort => {
            app.sort = app.sort.next();
            app.flash = Some(format!("sorted by {}", app.sort.label()));
            app.mark_dirty();
        }
        Action::ReverseSort => {
            app.sort_reverse = !app.sort_reverse;
            app.mark_dirty();
        }
        Action::NextTheme => next_theme(app),
        Action::StartWave => {
            let wave = target_wave(app);
            ask(app, Pending::StartWave(wave));
        }
        Action::TogglePause => {
            let wave = target_wave(app);
            let paused = app
                .waves
                .iter()
                .find(|w| w.name == wave)
                .is_some_and(|w| w.paused);
            set_paused(app, &wave, !paused, fx);
        }
        Action::CancelWave => {
            let wave = target_wave(app);
            cancel_wave(app, wave);
        }
        Action::RetryVm => with_selected(app, |app, vm| retry(app, vm, fx)),
        Action::RunChecks => with_selected(app, |app, vm| {
            fx.push(Effect::Engine(EngineRequest::RunChecks(vm.clone())));
            app.flash = Some(format!("running the checks of {vm}"));
        }),
        Action::RollbackVm => with_selected(app, |app, vm| ask(app, Pending::Rollback(vm))),
        Action::ConfirmPowerOff => {
            with_selected(app, |app, vm| ask(app, Pending::ConfirmPowerOff(vm)))
        }
        Action::Migrate => with_selected(app, |app, vm| ask(app, Pending::Migrate(vm))),
        Action::ExportReport => export(app, fx),
        Action::Quit | Action::Interrupt => quit(app, fx),
        Action::Suspend => fx.push(Effect::Suspend),
        Action::Command(line) => run_command(app, &line, fx),
        Action::Click { column, row } => click(app, column, row),
        _ => {}
    }
}

fn run_command(app: &mut App, line: &str, fx: &mut Vec<Effect>) {
    let cmd = match command::parse(app, line) {
        Ok(c) => c,
        Err(e) => {
            app.flash = Some(e);
            return;
        }
    };
    let dangerous = matches!(
        cmd,
        Command::Start
            | Command::Cancel
            | Command::Rollback(_)
            | Command::PowerOff(_)
            | Command::Migrate(_)
    );
    if dangerous && app.read_only {
        app.flash = Some(format!("read-only: `:{}` is disabled", line.trim()));
        return;
    }
    match cmd {
        Command::Quit => quit(app, fx),
        Command::Help => app.popup = Some(Popup::Help { scroll: 0 }),
        Command::Wave(w) => {
            if let Some(i) = app.waves.iter().position(|x| x.name == w) {
                choose_wave(app, i);
                app.flash = Some(format!("wave {w}"));
            }
        }
        Command::View(v) => set_view(app, v),
        Command::Start => {
            let w = app.wave_name().to_string();
            ask(app, Pending::StartWave(w));
        }
        Command::Cancel => {
            let w = app.wave_name().to_string();
            cancel_wave(app, w);
        }
        Command::Pause | Command::Resume => {
            let w = app.wave_name().to_string();
            set_paused(app, &w, cmd == Command::Pause, fx);
        }
        Command::Retry(vm) => retry(app, vm, fx),
        Command::Rollback(vm) => ask(app, Pending::Rollback(vm)),
        Command::PowerOff(vm) => ask(app, Pending::ConfirmPowerOff(vm)),
        Command::Migrate(vm) => ask(app, Pending::Migrate(vm)),
        Command::Checks(vm) => {
            fx.push(Effect::Engine(EngineRequest::RunChecks(vm.clone())));
            app.flash = Some(format!("running the checks of {vm}"));
        }
        Command::Theme(name) => switch_theme(app, &name, fx),
        Command::Sort(key) => {
            app.sort = key;
            app.mark_dirty();
        }
        Command::Filter(f) => {
            app.filter = f;
            app.cursor = 0;
            app.offset = 0;
            app.mark_dirty();
        }
        Command::Export => export(app, fx),
    }
}

/// Opens the confirmation dialog of a dangerous operation (or of quitting).
fn ask(app: &mut App, op: Pending) {
    let (title, body, type_to_confirm) = match &op {
        Pending::StartWave(w) => {
            let n = app
                .waves
                .iter()
                .find(|x| &x.name == w)
                .map_or(0, |x| x.vms.len());
            (
                format!("Start wave {w}?"),
                vec![
                    format!(
                        "{n} VMs will be imported and cut over to {}.",
                        app.target.label()
                    ),
                    format!("Mode: {}.", app.mode.label()),
                ],
                None,
            )
        }
        Pending::CancelWave(w) => (
            format!("Cancel wave {w}?"),
            vec![
                "VMs before their cutover stop; their imports are deleted".to_string(),
                "and their source VMs keep running, untouched.".to_string(),
                "VMs already in their cutover finish it (roll one back with X).".to_string(),
                format!("Type `{w}` and press Enter to confirm, Esc to keep going."),
            ],
            Some(w.clone()),
        ),
        Pending::Rollback(vm) => (
            format!("Roll back {vm}?"),
            vec![
                "Stops and deletes what wavelift created for this VM".to_string(),
                "and powers the source VM back on.".to_string(),
                format!("Type `{vm}` and press Enter to confirm, Esc to cancel."),
            ],
            Some(vm.clone()),
        ),
        Pending::ConfirmPowerOff(vm) => (
            format!("Confirm {vm} is powered off?"),
            vec![
                "Only confirm once the source VM is really off:".to_string(),
                "the new VM starts with the same IP and MAC.".to_string(),
                "(The duplicate-IP guard still probes the address first.)".to_string(),
            ],
            None,
        ),
        Pending::Migrate(vm) => {
            let node = app
                .vm_by_name(vm)
                .and_then(|v| v.node.clone())
                .unwrap_or_else(|| "its node".to_string());
            (
                format!("Live-migrate {vm}?"),
                vec![
                    format!("Moves the running VM away from {node}."),
                    "The VM is probed throughout; lost probes are reported.".to_string(),
                ],
                None,
            )
        }
        Pending::Quit => {
            let n = app.in_flight();
            (
                "Quit wavelift?".to_string(),
                vec![
                    format!("{n} VM(s) are in flight."),
                    "Their state lives in the cluster: quitting loses nothing.".to_string(),
                    format!(
                        "Run `wavelift tui {}` again to pick up where they are.",
                        app.plan_path
                    ),
                ],
                None,
            )
        }
    };
    app.popup = Some(Popup::Confirm(Confirm {
        op,
        title,
        body,
        type_to_confirm,
        typed: String::new(),
    }));
}

/// Carries out a confirmed operation.
fn execute(app: &mut App, op: Pending, fx: &mut Vec<Effect>) {
    let (req, flash) = match op {
        Pending::Quit => {
            fx.push(Effect::Engine(EngineRequest::Shutdown));
            fx.push(Effect::Quit);
            return;
        }
        Pending::StartWave(w) => {
            if let Some(x) = app.waves.iter_mut().find(|x| x.name == w) {
                x.started = true;
                x.paused = false;
                x.done = None;
                x.cancelled = 0;
            }
            (
                EngineRequest::StartWave(w.clone()),
                format!("starting wave {w}"),
            )
        }
        Pending::CancelWave(w) => {
            if let Some(x) = app.waves.iter_mut().find(|x| x.name == w) {
                x.paused = false;
            }
            (
                EngineRequest::CancelWave(w.clone()),
                format!("cancelling wave {w}"),
            )
        }
        Pending::Rollback(vm) => (
            EngineRequest::RollbackVm(vm.clone()),
            format!("rolling back {vm}"),
        ),
        Pending::ConfirmPowerOff(vm) => (
            EngineRequest::ConfirmPowerOff(vm.clone()),
            format!("power-off of {vm} confirmed"),
        ),
        Pending::Migrate(vm) => (
            EngineRequest::Migrate(vm.clone()),
            format!("live-migrating {vm}"),
        ),
    };
    fx.push(Effect::Engine(req));
    app.flash = Some(flash);
}

fn quit(app: &mut App, fx: &mut Vec<Effect>) {
    if app.in_flight() > 0 && app.engine_connected {
        ask(app, Pending::Quit);
    } else {
        execute(app, Pending::Quit, fx);
    }
}

fn cancel_wave(app: &mut App, wave: String) {
    if app.waves.iter().any(|w| w.name == wave && w.started) {
        ask(app, Pending::CancelWave(wave));
    } else {
        app.flash = Some(format!("wave {wave} has not started: nothing to cancel"));
    }
}

fn retry(app: &mut App, vm: String, fx: &mut Vec<Effect>) {
    let retryable = app
        .vm_by_name(&vm)
        .is_some_and(|v| matches!(v.status, Status::Failed(_) | Status::Blocked(_)));
    if retryable {
        fx.push(Effect::Engine(EngineRequest::RetryVm(vm.clone())));
        app.flash = Some(format!("retrying {vm}"));
    } else {
        app.flash = Some(format!("{vm} has not failed: nothing to retry"));
    }
}

fn set_paused(app: &mut App, wave: &str, pause: bool, fx: &mut Vec<Effect>) {
    let Some(w) = app.waves.iter_mut().find(|x| x.name == wave) else {
        return;
    };
    if !w.started {
        app.flash = Some(format!("wave {wave} has not started (w starts it)"));
        return;
    }
    w.paused = pause;
    let (req, verb) = if pause {
        (EngineRequest::PauseWave(wave.to_string()), "pausing")
    } else {
        (EngineRequest::ResumeWave(wave.to_string()), "resuming")
    };
    fx.push(Effect::Engine(req));
    app.flash = Some(format!("{verb} wave {wave}"));
}

fn export(app: &mut App, fx: &mut Vec<Effect>) {
    let wave = app.wave_name().to_string();
    let file = format!("wavelift-{}-{wave}-report.md", app.plan_name);
    let path = match &app.report_dir {
        Some(d) => format!("{}/{file}", d.trim_end_matches('/')),
        None => file,
    };
    let contents = report::markdown(app, app.wave);
    app.flash = Some(format!("report written to {path}"));
    fx.push(Effect::ExportReport { path, contents });
}

fn switch_theme(app: &mut App, name: &str, fx: &mut Vec<Effect>) {
    if app.no_color {
        app.flash = Some("NO_COLOR is set: colours stay off".into());
        return;
    }
    if name.contains('/') || name.ends_with(".toml") {
        fx.push(Effect::LoadTheme(name.to_string()));
        return;
    }
    match app.themes.resolve(name) {
        Ok(theme) => {
            app.flash = Some(format!("theme {}", theme.name()));
            app.theme = theme;
        }
        Err(e) => {
            let first = e.to_string();
            app.flash = Some(first.lines().next().unwrap_or("bad theme").to_string());
        }
    }
}

fn next_theme(app: &mut App) {
    if app.no_color {
        app.flash = Some("NO_COLOR is set: colours stay off".into());
        return;
    }
    let names = app.themes.names();
    if names.is_empty() {
        return;
    }
    let at = names.iter().position(|n| n == app.theme.name());
    for k in 1..=names.len() {
        let name = &names[(at.map_or(0, |a| a + k)) % names.len()];
        if let Ok(theme) = app.themes.resolve(name) {
            app.flash = Some(format!("theme {}", theme.name()));
            app.theme = theme;
            return;
        }
    }
}

/// The wave `w`/`p` act on: the one under the cursor in the Waves view, else the current.
fn target_wave(app: &App) -> String {
    let i = if app.view == View::Waves {
        app.wave_cursor
    } else {
        app.wave
    };
    app.waves.get(i).map(|w| w.name.clone()).unwrap_or_default()
}

fn with_selected(app: &mut App, f: impl FnOnce(&mut App, String)) {
    match app.selected().map(|v| v.name.clone()) {
        Some(name) => f(app, name),
        None => app.flash = Some("no VM selected".into()),
    }
}

fn choose_wave(app: &mut App, i: usize) {
    if i < app.waves.len() {
        app.wave = i;
        app.wave_cursor = i;
        app.cursor = 0;
        app.offset = 0;
        app.mig_cursor = 0;
        app.mig_offset = 0;
        app.mark_dirty();
    }
}

fn set_view(app: &mut App, v: View) {
    app.view = v;
    if v == View::Waves {
        app.wave_cursor = app.wave;
    }
}

fn page(app: &App) -> usize {
    layout::list_rows(app).max(1)
}

fn move_cursor(app: &mut App, delta: i64) {
    let step = |cur: usize, len: usize| -> usize {
        if len == 0 {
            return 0;
        }
        (cur as i64).saturating_add(delta).clamp(0, len as i64 - 1) as usize
    };
    match app.view {
        View::Waves => app.wave_cursor = step(app.wave_cursor, app.waves.len()),
        View::Vms | View::Checks => app.cursor = step(app.cursor, app.order.len()),
        View::Migrations => app.mig_cursor = step(app.mig_cursor, app.mig_order.len()),
        View::Log => {
            // Up scrolls back in time; `G` (Bottom) follows the tail again.
            let max = app.log.len().saturating_sub(1) as i64;
            app.log_scroll = (app.log_scroll as i64).saturating_sub(delta).clamp(0, max) as usize;
        }
    }
    app.scroll_into_view();
}

fn click(app: &mut App, column: u16, row: u16) {
    let Some(first) = layout::first_row_area(app) else {
        return;
    };
    if column < first.x
        || column >= first.x + first.width
        || row < first.y
        || row >= first.y + first.height
    {
        return;
    }
    let k = (row - first.y) as usize;
    match app.view {
        View::Waves => {
            if k < app.waves.len() {
                app.wave_cursor = k;
            }
        }
        View::Vms | View::Checks => {
            if app.offset + k < app.order.len() {
                app.cursor = app.offset + k;
            }
        }
        View::Migrations => {
            if app.mig_offset + k < app.mig_order.len() {
                app.mig_cursor = app.mig_offset + k;
            }
        }
        View::Log => {}
    }
}
