//! The pure [`update`]: an [`Action`] changes the UI state and yields [`Effect`]s for the
//! event loop (requests to the engine, quitting, files to write). The fleet is not
//! touched here: it changes only with the engine's events.

use super::action::{Action, Effect};
use super::app::{App, Confirm, InputMode, Pending, Popup, View};
use super::command::{self, Command};
use super::keys;
use super::report;
use crate::engine::{EngineRequest, Status};

/// Applies an action; returns what the loop must do. Pure: no I/O, no clock.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    match action {
        Action::Tick(now) => app.ui_mut().now_ms = now,
        Action::Resize(w, h) => {
            app.ui_mut().size = (w, h);
            app.settle();
            app.scroll_into_view();
        }
        Action::EngineGone => {
            let ui = app.ui_mut();
            ui.engine_connected = false;
            ui.flash = Some("the engine stopped; the state stays in the cluster".into());
        }
        Action::ThemeLoaded(theme) => {
            app.ui_mut().flash = Some(format!("theme {} ({})", theme.name(), theme.origin()));
            app.set_theme(*theme);
        }
        Action::ThemeFailed(e) => {
            app.ui_mut().popup = Some(Popup::Message {
                title: "Theme not loaded".into(),
                text: e,
            })
        }
        action => {
            if app.ui().popup.is_some() {
                popup_action(app, action, &mut fx);
            } else {
                match app.ui().input {
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
    let help_len = match app.ui().popup {
        Some(Popup::Help { .. }) => super::view::popup::help_lines(app).len() as u16,
        _ => 0,
    };
    let ui = app.ui_mut();
    let Some(popup) = ui.popup.as_mut() else {
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
                ui.popup = None;
                quit(app, fx);
            }
            Action::Escape | Action::ToggleHelp | Action::Quit | Action::No | Action::Enter => {
                ui.popup = None
            }
            _ => {}
        },
        Popup::Message { .. } => match action {
            Action::Interrupt => {
                ui.popup = None;
                quit(app, fx);
            }
            Action::Click { .. } | Action::ScrollUp | Action::ScrollDown => {}
            _ => ui.popup = None,
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
                    ui.popup = None;
                    execute(app, op, fx);
                }
                Action::Yes | Action::Enter => {
                    let name = c.type_to_confirm.clone().unwrap_or_default();
                    ui.flash = Some(format!("type `{name}` exactly to confirm, Esc cancels"));
                }
                Action::Interrupt if c.op == Pending::Quit => {
                    ui.popup = None;
                    execute(app, Pending::Quit, fx);
                }
                Action::No | Action::Escape | Action::Interrupt => {
                    ui.popup = None;
                    ui.flash = Some("cancelled".into());
                }
                _ => {}
            }
        }
    }
}

fn filter_action(app: &mut App, action: Action) {
    let ui = app.ui_mut();
    match action {
        Action::Char(c) => ui.filter.push(c),
        Action::Backspace => {
            ui.filter.pop();
        }
        Action::Enter => ui.input = InputMode::Normal,
        Action::Escape | Action::Interrupt => {
            ui.filter.clear();
            ui.input = InputMode::Normal;
        }
        _ => return,
    }
    ui.rows.reset();
    ui.migrations.reset();
    app.mark_dirty();
}

fn command_action(app: &mut App, action: Action, fx: &mut Vec<Effect>) {
    match action {
        Action::Char(c) => {
            let ui = app.ui_mut();
            ui.command.push(c);
            ui.completions.clear();
        }
        Action::Backspace => {
            let ui = app.ui_mut();
            if ui.command.pop().is_none() {
                ui.input = InputMode::Normal;
            }
            ui.completions.clear();
        }
        Action::Complete => {
            let (line, candidates) = command::complete(app, &app.ui().command);
            let ui = app.ui_mut();
            ui.command = line;
            ui.completions = candidates;
        }
        Action::Enter => {
            let ui = app.ui_mut();
            let line = std::mem::take(&mut ui.command);
            ui.completions.clear();
            ui.input = InputMode::Normal;
            run_command(app, &line, fx);
        }
        Action::Escape | Action::Interrupt => {
            let ui = app.ui_mut();
            ui.command.clear();
            ui.completions.clear();
            ui.input = InputMode::Normal;
        }
        _ => {}
    }
}

fn normal_action(app: &mut App, action: Action, fx: &mut Vec<Effect>) {
    if app.session().read_only && keys::is_dangerous(&action) {
        let what = keys::binding_of(&action)
            .map(|b| b.description)
            .unwrap_or("that");
        app.ui_mut().flash = Some(format!("read-only: disabled ({what})"));
        return;
    }
    let view = app.ui().view;
    match action {
        Action::Up | Action::ScrollUp => move_cursor(app, -1),
        Action::Down | Action::ScrollDown => move_cursor(app, 1),
        Action::PageUp => move_cursor(app, -(page(app) as i64)),
        Action::PageDown => move_cursor(app, page(app) as i64),
        Action::Top => move_cursor(app, i64::MIN / 2),
        Action::Bottom => move_cursor(app, i64::MAX / 2),
        Action::NextView => set_view(app, view.next()),
        Action::PrevView => set_view(app, view.prev()),
        Action::GoView(v) => set_view(app, v),
        Action::Enter if view == View::Waves => {
            choose_wave(app, app.ui().waves.index);
            set_view(app, View::Vms);
        }
        Action::Escape => {
            let ui = app.ui_mut();
            if !ui.filter.is_empty() {
                ui.filter.clear();
                app.mark_dirty();
            } else if ui.banner.is_some() {
                ui.banner = None;
            } else {
                ui.flash = None;
            }
        }
        Action::ToggleHelp => app.ui_mut().popup = Some(Popup::Help { scroll: 0 }),
        Action::StartFilter => {
            if view == View::Waves || view == View::Log {
                set_view(app, View::Vms);
            }
            app.ui_mut().input = InputMode::Filter;
        }
        Action::StartCommand => {
            let ui = app.ui_mut();
            ui.input = InputMode::Command;
            ui.command.clear();
            ui.completions.clear();
        }
        Action::CycleSort => {
            let ui = app.ui_mut();
            ui.sort = ui.sort.next();
            ui.flash = Some(format!("sorted by {}", ui.sort.label()));
            app.mark_dirty();
        }
        Action::ReverseSort => {
            let ui = app.ui_mut();
            ui.sort_reverse = !ui.sort_reverse;
            app.mark_dirty();
        }
        Action::NextTheme => next_theme(app),
        Action::StartWave => {
            let wave = target_wave(app);
            ask(app, Pending::StartWave(wave));
        }
        Action::TogglePause => {
            let wave = target_wave(app);
            let paused = wave_index(app, &wave)
                .and_then(|i| app.wave_run(i))
                .is_some_and(|w| w.paused);
            set_paused(app, &wave, !paused, fx);
        }
        Action::CancelWave => {
            let wave = target_wave(app);
            cancel_wave(app, wave);
        }
        Action::CancelVm => with_selected(app, |app, vm| ask(app, Pending::CancelVm(vm))),
        Action::RetryVm => with_selected(app, |app, vm| retry(app, vm, fx)),
        Action::RunChecks => with_selected(app, |app, vm| {
            fx.push(Effect::Engine(EngineRequest::RunChecks(vm.clone())));
            app.ui_mut().flash = Some(format!("running the checks of {vm}"));
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
            app.ui_mut().flash = Some(e);
            return;
        }
    };
    let dangerous = matches!(
        cmd,
        Command::Start
            | Command::Cancel
            | Command::CancelVm(_)
            | Command::IgnoreWindow
            | Command::Rollback(_)
            | Command::PowerOff(_)
            | Command::Migrate(_)
    );
    if dangerous && app.session().read_only {
        app.ui_mut().flash = Some(format!("read-only: `:{}` is disabled", line.trim()));
        return;
    }
    match cmd {
        Command::Quit => quit(app, fx),
        Command::Help => app.ui_mut().popup = Some(Popup::Help { scroll: 0 }),
        Command::Wave(w) => {
            if let Some(i) = wave_index(app, &w) {
                choose_wave(app, i);
                app.ui_mut().flash = Some(format!("wave {w}"));
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
        Command::IgnoreWindow => {
            let w = app.wave_name().to_string();
            ask(app, Pending::IgnoreWindow(w));
        }
        Command::Pause | Command::Resume => {
            let w = app.wave_name().to_string();
            set_paused(app, &w, cmd == Command::Pause, fx);
        }
        Command::CancelVm(vm) => ask(app, Pending::CancelVm(vm)),
        Command::Retry(vm) => retry(app, vm, fx),
        Command::Rollback(vm) => ask(app, Pending::Rollback(vm)),
        Command::PowerOff(vm) => ask(app, Pending::ConfirmPowerOff(vm)),
        Command::Migrate(vm) => ask(app, Pending::Migrate(vm)),
        Command::Checks(vm) => {
            fx.push(Effect::Engine(EngineRequest::RunChecks(vm.clone())));
            app.ui_mut().flash = Some(format!("running the checks of {vm}"));
        }
        Command::Theme(name) => switch_theme(app, &name, fx),
        Command::Sort(key) => {
            app.ui_mut().sort = key;
            app.mark_dirty();
        }
        Command::Filter(f) => {
            let ui = app.ui_mut();
            ui.filter = f;
            ui.rows.reset();
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
                .fleet()
                .waves()
                .iter()
                .find(|x| &x.name == w)
                .map_or(0, |x| x.vms.len());
            (
                format!("Start wave {w}?"),
                vec![
                    format!(
                        "{n} VMs will be imported and cut over to {}.",
                        app.session().target.label()
                    ),
                    format!("Mode: {}.", app.session().mode.label()),
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
        Pending::CancelVm(vm) => (
            format!("Cancel {vm}?"),
            vec![
                "Before its cutover it stops: its imports are deleted".to_string(),
                "and its source VM keeps running, untouched (with Forklift, the VM".to_string(),
                "joins its Migration's cancel list). A cutover in progress finishes.".to_string(),
                format!("Type `{vm}` and press Enter to confirm, Esc to keep going."),
            ],
            Some(vm.clone()),
        ),
        Pending::IgnoreWindow(w) => (
            format!("Override the change window of wave {w}?"),
            vec![
                "Its cutovers may then start outside the window, in one too short,".to_string(),
                "or before a VM's own cutover time; postponed VMs go on.".to_string(),
                "Sources are powered off outside the agreed change window.".to_string(),
                format!("Type `{w}` and press Enter to confirm, Esc to cancel."),
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
                .fleet()
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
            let n = app.fleet().in_flight();
            (
                "Quit wavelift?".to_string(),
                vec![
                    format!("{n} VM(s) are in flight."),
                    "Their state lives in the cluster: quitting loses nothing.".to_string(),
                    format!(
                        "Run `wavelift tui {}` again to pick up where they are.",
                        app.session().plan_path
                    ),
                ],
                None,
            )
        }
    };
    app.ui_mut().popup = Some(Popup::Confirm(Confirm {
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
            if let Some(i) = wave_index(app, &w) {
                // Shown as running (and no longer done) until the engine reports.
                let runs_done = app.fleet().waves()[i].runs_done;
                let c = &mut app.ui_mut().controls[i];
                c.started_after = Some(runs_done);
                c.paused = false;
            }
            (
                EngineRequest::StartWave(w.clone()),
                format!("starting wave {w}"),
            )
        }
        Pending::CancelWave(w) => {
            if let Some(i) = wave_index(app, &w) {
                app.ui_mut().controls[i].paused = false;
            }
            (
                EngineRequest::CancelWave(w.clone()),
                format!("cancelling wave {w}"),
            )
        }
        Pending::CancelVm(vm) => (
            EngineRequest::CancelVm(vm.clone()),
            format!("cancelling {vm}"),
        ),
        Pending::IgnoreWindow(w) => (
            EngineRequest::IgnoreWindow(w.clone()),
            format!("change window of wave {w} overridden"),
        ),
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
    app.ui_mut().flash = Some(flash);
}

fn quit(app: &mut App, fx: &mut Vec<Effect>) {
    if app.fleet().in_flight() > 0 && app.ui().engine_connected {
        ask(app, Pending::Quit);
    } else {
        execute(app, Pending::Quit, fx);
    }
}

fn cancel_wave(app: &mut App, wave: String) {
    let started = wave_index(app, &wave)
        .and_then(|i| app.wave_run(i))
        .is_some_and(|w| w.started);
    if started {
        ask(app, Pending::CancelWave(wave));
    } else {
        app.ui_mut().flash = Some(format!("wave {wave} has not started: nothing to cancel"));
    }
}

fn retry(app: &mut App, vm: String, fx: &mut Vec<Effect>) {
    let retryable = app
        .fleet()
        .vm_by_name(&vm)
        .is_some_and(|v| matches!(v.status, Status::Failed(_) | Status::Blocked(_)));
    if retryable {
        fx.push(Effect::Engine(EngineRequest::RetryVm(vm.clone())));
        app.ui_mut().flash = Some(format!("retrying {vm}"));
    } else {
        app.ui_mut().flash = Some(format!("{vm} has not failed: nothing to retry"));
    }
}

fn set_paused(app: &mut App, wave: &str, pause: bool, fx: &mut Vec<Effect>) {
    let Some(i) = wave_index(app, wave) else {
        return;
    };
    if !app.wave_run(i).is_some_and(|w| w.started) {
        app.ui_mut().flash = Some(format!("wave {wave} has not started (w starts it)"));
        return;
    }
    app.ui_mut().controls[i].paused = pause;
    let (req, verb) = if pause {
        (EngineRequest::PauseWave(wave.to_string()), "pausing")
    } else {
        (EngineRequest::ResumeWave(wave.to_string()), "resuming")
    };
    fx.push(Effect::Engine(req));
    app.ui_mut().flash = Some(format!("{verb} wave {wave}"));
}

fn export(app: &mut App, fx: &mut Vec<Effect>) {
    let wave = app.wave_name().to_string();
    let file = format!("wavelift-{}-{wave}-report.md", app.session().plan_name);
    let path = match &app.session().report_dir {
        Some(d) => format!("{}/{file}", d.trim_end_matches('/')),
        None => file,
    };
    let contents = report::markdown(app, app.ui().wave);
    app.ui_mut().flash = Some(format!("report written to {path}"));
    fx.push(Effect::ExportReport { path, contents });
}

fn switch_theme(app: &mut App, name: &str, fx: &mut Vec<Effect>) {
    if app.session().no_color {
        app.ui_mut().flash = Some("NO_COLOR is set: colours stay off".into());
        return;
    }
    if name.contains('/') || name.ends_with(".toml") {
        fx.push(Effect::LoadTheme(name.to_string()));
        return;
    }
    match app.session().themes.resolve(name) {
        Ok(theme) => {
            app.ui_mut().flash = Some(format!("theme {}", theme.name()));
            app.set_theme(theme);
        }
        Err(e) => {
            let first = e.to_string();
            app.ui_mut().flash = Some(first.lines().next().unwrap_or("bad theme").to_string());
        }
    }
}

fn next_theme(app: &mut App) {
    if app.session().no_color {
        app.ui_mut().flash = Some("NO_COLOR is set: colours stay off".into());
        return;
    }
    let names = app.session().themes.names();
    if names.is_empty() {
        return;
    }
    let at = names.iter().position(|n| n == app.theme().name());
    for k in 1..=names.len() {
        let name = &names[(at.map_or(0, |a| a + k)) % names.len()];
        if let Ok(theme) = app.session().themes.resolve(name) {
            app.ui_mut().flash = Some(format!("theme {}", theme.name()));
            app.set_theme(theme);
            return;
        }
    }
}

fn wave_index(app: &App, name: &str) -> Option<usize> {
    app.fleet().waves().iter().position(|w| w.name == name)
}

/// The wave `w`/`p` act on: the one under the cursor in the Waves view, else the current.
fn target_wave(app: &App) -> String {
    let ui = app.ui();
    let i = if ui.view == View::Waves {
        ui.waves.index
    } else {
        ui.wave
    };
    app.fleet()
        .waves()
        .get(i)
        .map(|w| w.name.clone())
        .unwrap_or_default()
}

fn with_selected(app: &mut App, f: impl FnOnce(&mut App, String)) {
    match app.selected().map(|v| v.name.clone()) {
        Some(name) => f(app, name),
        None => app.ui_mut().flash = Some("no VM selected".into()),
    }
}

fn choose_wave(app: &mut App, i: usize) {
    if i < app.fleet().waves().len() {
        let ui = app.ui_mut();
        ui.wave = i;
        ui.waves.index = i;
        ui.rows.reset();
        ui.migrations.reset();
        app.mark_dirty();
    }
}

fn set_view(app: &mut App, v: View) {
    let ui = app.ui_mut();
    ui.view = v;
    if v == View::Waves {
        ui.waves.index = ui.wave;
    }
}

fn page(app: &App) -> usize {
    app.list_rows().max(1)
}

fn move_cursor(app: &mut App, delta: i64) {
    let waves = app.fleet().waves().len();
    let log = app.fleet().log().len();
    let ui = app.ui_mut();
    match ui.view {
        View::Waves => ui.waves.step(delta, waves),
        View::Vms | View::Checks => ui.rows.step(delta, ui.order.len()),
        View::Migrations => ui.migrations.step(delta, ui.mig_order.len()),
        View::Log => {
            // Up scrolls back in time; `G` (Bottom) follows the tail again.
            let max = log.saturating_sub(1) as i64;
            ui.log_scroll = (ui.log_scroll as i64).saturating_sub(delta).clamp(0, max) as usize;
        }
    }
    app.scroll_into_view();
}

fn click(app: &mut App, column: u16, row: u16) {
    let Some(first) = app.first_row_area() else {
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
    let waves = app.fleet().waves().len();
    let ui = app.ui_mut();
    match ui.view {
        // The Waves list is not scrolled: its offset stays 0.
        View::Waves => ui.waves.click(k, waves),
        View::Vms | View::Checks => ui.rows.click(k, ui.order.len()),
        View::Migrations => ui.migrations.click(k, ui.mig_order.len()),
        View::Log => {}
    }
}
