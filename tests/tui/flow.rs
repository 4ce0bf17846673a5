//! App-flow tests: keys and engine events in, state and effects out (the loop's
//! behaviour without a terminal), plus one run of the real event loop on a TestBackend.

use crate::common::tui as fixture;

use fixture::*;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use wavelift::checks::result::Outcome;
use wavelift::engine::{EngineEvent, EngineHandle, EngineRequest, EventKind, Status, Step};
use wavelift::tui::app::{InputMode, Pending, Popup, SortKey};
use wavelift::tui::keys::BINDINGS;
use wavelift::tui::{update, Action, Effect, View};

fn names(app: &wavelift::tui::App) -> Vec<&str> {
    app.ui()
        .order
        .iter()
        .map(|&i| app.fleet().vms()[i].name.as_str())
        .collect()
}

fn select(app: &mut wavelift::tui::App, name: &str) {
    update(app, Action::Top);
    while app.selected().map(|v| v.name.as_str()) != Some(name) {
        let before = app.ui().rows.index;
        update(app, Action::Down);
        assert_ne!(before, app.ui().rows.index, "{name} not in the list");
    }
}

#[test]
fn filter_narrows_rows_and_escape_clears_it() {
    let mut app = mid_wave();
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(app.ui().input, InputMode::Filter);
    type_text(&mut app, "app");
    assert_eq!(names(&app), ["app-01", "app-02"]);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.ui().input, InputMode::Normal);
    assert_eq!(names(&app), ["app-01", "app-02"], "Enter keeps the filter");
    assert!(screen(&app, 120, 40).contains("filter \"app\""));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.ui().order.len(), 6);

    // Filtering by step, by IP, and the `failed` keyword.
    update(&mut app, Action::Command("filter importing".into()));
    assert_eq!(names(&app), ["app-01"]);
    update(&mut app, Action::Command("filter 192.0.2.17".into()));
    assert_eq!(names(&app), ["web-01"]);
    update(&mut app, Action::Command("filter failed".into()));
    assert_eq!(names(&app), ["web-01"]);
}

#[test]
fn sort_cycles_through_name_step_progress() {
    let mut app = mid_wave();
    assert_eq!(app.ui().sort, SortKey::Plan);
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.ui().sort, SortKey::Name);
    assert_eq!(
        names(&app),
        ["app-01", "app-02", "cache-01", "db-01", "web-01", "web-02"]
    );
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.ui().sort, SortKey::Step);
    assert_eq!(names(&app).first(), Some(&"web-02"), "Pending first");
    assert_eq!(names(&app).last(), Some(&"db-01"), "Verified last");
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.ui().sort, SortKey::Progress);
    assert_eq!(names(&app)[0], "app-01", "45% is the highest progress");
    press(&mut app, KeyCode::Char('S'));
    assert!(app.ui().sort_reverse);
    assert_eq!(names(&app).last(), Some(&"app-01"));
}

#[test]
fn selection_follows_the_vm_when_the_order_changes() {
    let mut app = mid_wave();
    select(&mut app, "web-01");
    press(&mut app, KeyCode::Char('s')); // by name: web-01 moves to position 4
    assert_eq!(app.selected().map(|v| v.name.as_str()), Some("web-01"));
}

#[test]
fn rollback_requires_typing_the_vm_name() {
    let mut app = mid_wave();
    select(&mut app, "web-01");
    assert!(press(&mut app, KeyCode::Char('X')).is_empty());
    let Some(Popup::Confirm(c)) = &app.ui().popup else {
        panic!("rollback asks first")
    };
    assert_eq!(c.type_to_confirm.as_deref(), Some("web-01"));
    // `y` is just a typed letter here, and Enter with the wrong name does nothing.
    assert!(type_text(&mut app, "y").is_empty());
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(app.ui().popup.is_some());
    press(&mut app, KeyCode::Backspace);
    type_text(&mut app, "web-01");
    let fx = press(&mut app, KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::Engine(EngineRequest::RollbackVm("web-01".into()))]
    );
    assert!(app.ui().popup.is_none());
}

#[test]
fn overriding_the_window_requires_typing_the_wave_name() {
    let mut app = mid_wave();
    assert!(update(&mut app, Action::Command("ignore-window".into())).is_empty());
    let Some(Popup::Confirm(c)) = &app.ui().popup else {
        panic!("the override asks first")
    };
    assert_eq!(c.type_to_confirm.as_deref(), Some("w1"));
    assert!(c.body.iter().any(|l| l.contains("outside the window")));
    assert!(press(&mut app, KeyCode::Enter).is_empty(), "not typed yet");
    type_text(&mut app, "w1");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        [Effect::Engine(EngineRequest::IgnoreWindow("w1".into()))]
    );
}

#[test]
fn cancelling_a_wave_requires_typing_its_name() {
    let mut app = mid_wave();
    assert!(press(&mut app, KeyCode::Char('C')).is_empty());
    let Some(Popup::Confirm(c)) = &app.ui().popup else {
        panic!("cancel asks first")
    };
    assert_eq!(c.type_to_confirm.as_deref(), Some("w1"));
    assert!(c.body.iter().any(|l| l.contains("imports are deleted")));
    press(&mut app, KeyCode::Esc);
    assert!(app.ui().popup.is_none(), "Esc keeps the wave going");
    update(&mut app, Action::Command("cancel".into()));
    type_text(&mut app, "w1");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        [Effect::Engine(EngineRequest::CancelWave("w1".into()))]
    );
    // The engine's answer: a cancelled VM reads as such, and is no longer in flight.
    let before = app.fleet().in_flight();
    app.apply_event(EngineEvent::phase(
        "app-01",
        "w1",
        NOW + 1_000,
        Step::Cancelled,
        Status::Active,
        None,
        "wave cancelled before this VM's cutover",
    ));
    app.settle();
    let v = app.fleet().vm_by_name("app-01").expect("app-01");
    assert_eq!(wavelift::tui::view::widgets::status_word(v), "done");
    assert_eq!(v.step, Step::Cancelled);
    assert_eq!(app.fleet().in_flight(), before - 1);
}

/// One VM is cancelled with `x` on its row or `:cancel-vm NAME` (issue 16: with Forklift
/// it joins its Migration's `spec.cancel`), after typing its name; a wrong name is refused.
#[test]
fn cancelling_one_vm_requires_typing_its_name() {
    let mut app = mid_wave();
    let selected = app.selected().expect("a VM row").name.clone();
    assert!(press(&mut app, KeyCode::Char('x')).is_empty());
    let Some(Popup::Confirm(c)) = &app.ui().popup else {
        panic!("cancel-vm asks first")
    };
    assert_eq!(c.type_to_confirm.as_deref(), Some(selected.as_str()));
    assert!(c.body.iter().any(|l| l.contains("keeps running")));
    press(&mut app, KeyCode::Esc);
    assert!(app.ui().popup.is_none());
    assert!(update(&mut app, Action::Command("cancel-vm nosuch".into())).is_empty());
    assert!(app
        .ui()
        .flash
        .as_deref()
        .unwrap_or("")
        .contains("no VM `nosuch`"));
    update(&mut app, Action::Command("cancel-vm app-01".into()));
    type_text(&mut app, "app-01");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        [Effect::Engine(EngineRequest::CancelVm("app-01".into()))]
    );
}

#[test]
fn dangerous_actions_ask_and_can_be_cancelled() {
    let mut app = mid_wave();
    select(&mut app, "db-01");
    assert!(press(&mut app, KeyCode::Char('m')).is_empty());
    assert!(matches!(
        &app.ui().popup,
        Some(Popup::Confirm(c)) if c.op == Pending::Migrate("db-01".into())
    ));
    let fx = press(&mut app, KeyCode::Char('y'));
    assert_eq!(fx, [Effect::Engine(EngineRequest::Migrate("db-01".into()))]);

    // Start wave: `n` cancels.
    press(&mut app, KeyCode::Char('w'));
    assert!(
        matches!(&app.ui().popup, Some(Popup::Confirm(c)) if c.op == Pending::StartWave("w1".into()))
    );
    assert!(press(&mut app, KeyCode::Char('n')).is_empty());
    assert!(app.ui().popup.is_none());

    // Power-off confirmation for the blocked VM.
    select(&mut app, "app-02");
    press(&mut app, KeyCode::Char('o'));
    let fx = press(&mut app, KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::Engine(EngineRequest::ConfirmPowerOff(
            "app-02".into()
        ))]
    );
}

#[test]
fn safe_actions_go_straight_to_the_engine() {
    let mut app = mid_wave();
    select(&mut app, "web-01");
    assert_eq!(
        press(&mut app, KeyCode::Char('r')),
        [Effect::Engine(EngineRequest::RetryVm("web-01".into()))]
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('c')),
        [Effect::Engine(EngineRequest::RunChecks("web-01".into()))]
    );
    // Retry of a VM that has not failed is refused with a message.
    select(&mut app, "db-01");
    assert!(press(&mut app, KeyCode::Char('r')).is_empty());
    assert!(app
        .ui()
        .flash
        .as_deref()
        .unwrap_or("")
        .contains("nothing to retry"));
    // Pause / resume toggles (the wave has started: events arrived).
    assert_eq!(
        press(&mut app, KeyCode::Char('p')),
        [Effect::Engine(EngineRequest::PauseWave("w1".into()))]
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('p')),
        [Effect::Engine(EngineRequest::ResumeWave("w1".into()))]
    );
}

#[test]
fn read_only_blocks_every_dangerous_action() {
    let mut o = opts();
    o.read_only = true;
    let mut app = app_with(o);
    for e in mid_wave_events() {
        app.apply_event(e);
    }
    app.settle();
    select(&mut app, "web-01");
    for c in ['X', 'm', 'w', 'o', 'C'] {
        assert!(press(&mut app, KeyCode::Char(c)).is_empty(), "{c}");
        assert!(app.ui().popup.is_none(), "{c} must not even ask");
        assert!(app
            .ui()
            .flash
            .as_deref()
            .unwrap_or("")
            .starts_with("read-only"));
    }
    for cmd in [
        "migrate db-01",
        "rollback web-01",
        "start",
        "cancel",
        "cancel-vm web-01",
        "poweroff app-02",
    ] {
        assert!(
            update(&mut app, Action::Command(cmd.into())).is_empty(),
            "{cmd}"
        );
        assert!(app.ui().popup.is_none(), "{cmd}");
    }
    // Safe actions still work.
    assert_eq!(
        press(&mut app, KeyCode::Char('c')),
        [Effect::Engine(EngineRequest::RunChecks("web-01".into()))]
    );
    // The footer leaves dangerous keys out; the help marks them disabled.
    let text = screen(&app, 200, 40);
    let footer = text.lines().nth(39).unwrap_or("");
    assert!(footer.contains("READ-ONLY"), "{footer}");
    assert!(
        !footer.contains("rollback") && !footer.contains("migrate"),
        "{footer}"
    );
    press(&mut app, KeyCode::Char('?'));
    let help = screen(&app, 200, 60);
    assert!(help.contains("disabled: read-only"));
}

#[test]
fn command_line_runs_commands() {
    let mut app = mid_wave();
    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "wave w2");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.wave_name(), "w2");
    assert_eq!(names(&app), ["batch-01", "batch-02"]);

    update(&mut app, Action::Command("theme light".into()));
    assert_eq!(app.theme().name(), "light");
    update(&mut app, Action::Command("view checks".into()));
    assert_eq!(app.ui().view, View::Checks);

    update(&mut app, Action::Command("bogus".into()));
    assert!(app
        .ui()
        .flash
        .as_deref()
        .unwrap_or("")
        .contains("unknown command"));
    update(&mut app, Action::Command("migrate db-1".into()));
    assert!(
        app.ui()
            .flash
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `db-01`"),
        "{:?}",
        app.ui().flash
    );
    update(&mut app, Action::Command("migrate db-01".into()));
    assert!(
        matches!(&app.ui().popup, Some(Popup::Confirm(c)) if c.op == Pending::Migrate("db-01".into()))
    );
    press(&mut app, KeyCode::Esc);
    update(&mut app, Action::Command("retry web-01".into()));
    update(&mut app, Action::Command("rollback web-01".into()));
    assert!(matches!(&app.ui().popup, Some(Popup::Confirm(c)) if c.type_to_confirm.is_some()));
}

#[test]
fn command_line_completes_commands_and_names() {
    let mut app = mid_wave();
    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "mig");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.ui().command, "migrate ");
    type_text(&mut app, "we");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.ui().command, "migrate web-0");
    assert_eq!(app.ui().completions, ["web-01", "web-02"]);
    type_text(&mut app, "2");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.ui().command, "migrate web-02");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.ui().input, InputMode::Normal);

    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "theme l");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.ui().command, "theme light");
}

#[test]
fn quitting_with_vms_in_flight_asks_and_says_nothing_is_lost() {
    let mut app = mid_wave();
    assert!(press(&mut app, KeyCode::Char('q')).is_empty());
    let Some(Popup::Confirm(c)) = &app.ui().popup else {
        panic!("asks first")
    };
    assert_eq!(c.op, Pending::Quit);
    assert!(c.body.iter().any(|l| l.contains("lives in the cluster")));
    let text = screen(&app, 120, 40);
    assert!(text.contains("quitting loses nothing"), "{text}");
    let fx = press(&mut app, KeyCode::Char('y'));
    assert_eq!(fx, [Effect::Engine(EngineRequest::Shutdown), Effect::Quit]);

    // Ctrl-C twice forces it.
    let mut app = mid_wave();
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(press_event(&mut app, ctrl_c).is_empty());
    assert_eq!(
        press_event(&mut app, ctrl_c),
        [Effect::Engine(EngineRequest::Shutdown), Effect::Quit]
    );

    // Nothing in flight: quits at once.
    let mut app = fixture::app();
    assert_eq!(
        press(&mut app, KeyCode::Char('q')),
        [Effect::Engine(EngineRequest::Shutdown), Effect::Quit]
    );
}

#[test]
fn help_overlay_lists_the_whole_key_table() {
    let mut app = mid_wave();
    press(&mut app, KeyCode::Char('?'));
    assert!(matches!(app.ui().popup, Some(Popup::Help { .. })));
    let lines: Vec<String> = wavelift::tui::view::popup::help_lines(&app)
        .iter()
        .map(|l| l.to_string())
        .collect();
    let text = lines.join("\n");
    for b in BINDINGS {
        assert!(text.contains(b.label), "help lacks key {}", b.label);
        assert!(text.contains(b.description), "help lacks {}", b.description);
    }
    assert!(text.contains("dangerous: asks first"));
    assert!(text.contains(":migrate"));
    press(&mut app, KeyCode::Esc);
    assert!(app.ui().popup.is_none());
}

#[test]
fn footer_is_generated_from_the_key_table() {
    let app = mid_wave();
    let text = screen(&app, 200, 40);
    let footer = text.lines().nth(39).unwrap_or("");
    for b in wavelift::tui::keys::footer_bindings(View::Vms, false) {
        assert!(footer.contains(b.hint), "footer lacks {}: {footer}", b.hint);
    }
}

#[test]
fn views_cycle_with_tab_and_numbers() {
    let mut app = mid_wave();
    assert_eq!(app.ui().view, View::Vms);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.ui().view, View::Checks);
    press(&mut app, KeyCode::Char('l'));
    assert_eq!(app.ui().view, View::Migrations);
    press(&mut app, KeyCode::Char('h'));
    assert_eq!(app.ui().view, View::Checks);
    press(&mut app, KeyCode::Char('1'));
    assert_eq!(app.ui().view, View::Waves);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.ui().view, View::Vms);
    assert_eq!(app.wave_name(), "w2");
}

#[test]
fn engine_events_update_rows_checks_and_migrations() {
    let mut app = mid_wave();
    let web = app.fleet().vm_index("web-01").expect("web-01");
    assert!(app.fleet().vms()[web].failed());
    assert_eq!(app.ui().failed, 1);
    app.apply_event(EngineEvent::phase(
        "web-01",
        "w1",
        NOW,
        Step::Running,
        Status::Active,
        None,
        "retried",
    ));
    app.apply_event(EngineEvent {
        vm: "web-01".into(),
        wave: "w1".into(),
        at_ms: NOW,
        kind: EventKind::Check {
            check: "tcp:443".into(),
            outcome: Outcome::Fail,
            detail: "connection refused".into(),
            latency_ms: None,
            kind: "tcp".into(),
        },
    });
    app.settle();
    assert!(!app.fleet().vms()[web].failed());
    assert_eq!(app.ui().failed, 0);
    let tcp = app.fleet().vms()[web]
        .checks
        .iter()
        .find(|c| c.name == "tcp:443")
        .expect("tcp check");
    assert_eq!(
        tcp.outcome,
        wavelift::tui::app::CheckOutcome::Reported(Outcome::Fail)
    );
    assert!(app
        .fleet()
        .log()
        .iter()
        .any(|l| l.text.contains("connection refused")));
    assert_eq!(app.ui().mig_order.len(), 1);

    app.apply_event(EngineEvent {
        vm: String::new(),
        wave: "w1".into(),
        at_ms: NOW,
        kind: EventKind::WaveDone {
            verified: 5,
            failed: 1,
            cancelled: 0,
            postponed: 0,
        },
    });
    assert_eq!(app.fleet().waves()[0].done, Some((5, 1)));
}

#[test]
fn mouse_click_selects_a_row() {
    let mut app = mid_wave();
    let first = app.first_row_area().expect("table");
    update(
        &mut app,
        Action::Click {
            column: first.x + 3,
            row: first.y + 3,
        },
    );
    assert_eq!(app.selected().map(|v| v.name.as_str()), Some("web-01"));
}

#[test]
fn export_writes_a_markdown_report() {
    let mut app = mid_wave();
    let fx = press(&mut app, KeyCode::Char('e'));
    let [Effect::ExportReport { path, contents }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(path, "wavelift-shop-w1-report.md");
    assert!(contents.contains("| db-01 | l2 | 192.0.2.15 | Verified | node-b | 5/5 pass, 0 fail |"));
    assert!(contents.contains("db-01-migration-1"));
}

#[test]
fn cursor_stays_visible_when_paging_a_long_list() {
    let text = wavelift::plan::synth::generate(wavelift::plan::synth::SynthSpec {
        vms: 500,
        waves: 1,
        networks: 2,
        l3_every: 10,
    });
    let plan = wavelift::plan::check_str(&text, "synthetic.toml")
        .plan
        .expect("valid");
    let mut app =
        wavelift::tui::App::new(&plan, opts(), wavelift::tui::theme::Theme::default(), NOW);
    update(&mut app, Action::Resize(120, 40));
    press(&mut app, KeyCode::Char('G'));
    assert_eq!(app.ui().rows.index, 499);
    assert!(screen(&app, 120, 40).contains("▶ vm-00499"));
    press(&mut app, KeyCode::PageUp);
    let text = screen(&app, 120, 40);
    let name = app.selected().map(|v| v.name.clone()).expect("selected");
    assert!(text.contains(&format!("▶ {name}")), "{name} visible");
    press(&mut app, KeyCode::Char('g'));
    assert_eq!(app.ui().rows.index, 0);
    assert_eq!(app.ui().rows.offset, 0);
}

/// The real loop on a TestBackend: keys in through the terminal channel, requests out to
/// the engine channel, quit ends it.
#[tokio::test]
async fn event_loop_sends_requests_and_quits() {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use tokio::sync::mpsc;
    use wavelift::tui::event_loop::{drive, Exit};

    let mut app = fixture::app();
    update(&mut app, Action::Resize(120, 40));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let (req_tx, mut req_rx) = mpsc::channel(64);
    let (term_tx, mut term_rx) = mpsc::channel(64);
    let (_sig_tx, mut sig_rx) = mpsc::channel(1);
    let engine = EngineHandle {
        events: ev_rx,
        requests: req_tx,
    };
    ev_tx
        .send(EngineEvent::phase(
            "db-01",
            "w1",
            T0,
            Step::Verified,
            Status::Active,
            None,
            "",
        ))
        .await
        .expect("send");
    for code in [KeyCode::Char('w'), KeyCode::Char('y'), KeyCode::Char('q')] {
        term_tx
            .send(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
            .await
            .expect("send");
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut suspended = 0;
    let exit = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        drive(
            &mut terminal,
            &mut app,
            engine,
            &mut term_rx,
            &mut sig_rx,
            cancel,
            &mut |_t| {
                suspended += 1;
                Ok(())
            },
        ),
    )
    .await
    .expect("loop ends")
    .expect("no error");
    assert_eq!(exit, Exit::Quit);
    assert_eq!(
        req_rx.recv().await,
        Some(EngineRequest::StartWave("w1".into()))
    );
    assert_eq!(req_rx.recv().await, Some(EngineRequest::Shutdown));
    let text = format!("{}", terminal.backend());
    assert!(text.contains("shop"), "the loop drew frames");
    assert_eq!(suspended, 0);
}
