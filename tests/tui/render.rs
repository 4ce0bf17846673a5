//! Render snapshots of every view (ratatui `TestBackend` + insta). Times and durations
//! are filtered so the snapshots do not depend on formatting details of the clock.

use crate::common::tui as fixture;

use fixture::*;
use ratatui::crossterm::event::KeyCode;
use wavelift::tui::{update, Action, View};

fn snapshot(name: &str, app: &wavelift::tui::App, w: u16, h: u16) {
    let mut settings = insta::Settings::clone_current();
    // Clock times, not the digits of a MAC address (`00:50:56:ab`).
    settings.add_filter(
        r"(^|[^:\w])\d{2}:\d{2}:\d{2}([^:\w]|$)",
        "${1}[hh:mm:ss]${2}",
    );
    settings.add_filter(r"\b\d+(ms|s|m\d{2}s|h\d{2}m|d\d{2}h)\b", "[dur]");
    settings.set_prepend_module_to_snapshot(true);
    settings.bind(|| insta::assert_snapshot!(name, screen(app, w, h)));
}

fn at(view: View, w: u16, h: u16) -> wavelift::tui::App {
    let mut app = mid_wave();
    update(&mut app, Action::Resize(w, h));
    update(&mut app, Action::GoView(view));
    app
}

#[test]
fn vms_view_120x40() {
    let mut app = at(View::Vms, 120, 40);
    // Select the VM with the most detail (db-01 is first) and show it.
    update(&mut app, Action::Top);
    snapshot("vms_120x40", &app, 120, 40);
}

#[test]
fn vms_view_importing_vm_detail() {
    let mut app = at(View::Vms, 120, 40);
    update(&mut app, Action::Down);
    snapshot("vms_importing_detail_120x40", &app, 120, 40);
}

#[test]
fn vms_view_80x24() {
    let app = at(View::Vms, 80, 24);
    snapshot("vms_80x24", &app, 80, 24);
}

#[test]
fn waves_view() {
    let app = at(View::Waves, 120, 40);
    snapshot("waves_120x40", &app, 120, 40);
}

#[test]
fn checks_view() {
    let app = at(View::Checks, 120, 40);
    snapshot("checks_120x40", &app, 120, 40);
}

#[test]
fn migrations_view() {
    let app = at(View::Migrations, 120, 40);
    snapshot("migrations_120x40", &app, 120, 40);
}

#[test]
fn log_view() {
    let app = at(View::Log, 120, 40);
    snapshot("log_120x40", &app, 120, 40);
}

#[test]
fn help_overlay() {
    let mut app = at(View::Vms, 120, 40);
    press(&mut app, KeyCode::Char('?'));
    snapshot("help_120x40", &app, 120, 40);
}

#[test]
fn rollback_confirmation() {
    let mut app = at(View::Vms, 120, 40);
    // web-01 is the 4th VM in plan order.
    for _ in 0..3 {
        press(&mut app, KeyCode::Down);
    }
    press(&mut app, KeyCode::Char('X'));
    type_text(&mut app, "web-0");
    snapshot("rollback_confirm_120x40", &app, 120, 40);
}

#[test]
fn read_only_with_banner_and_command_line() {
    let mut o = opts();
    o.read_only = true;
    o.banner = Some("bad theme, using the built-in `default` theme instead: themes/mine.toml:3:1: slots.acent: unknown slot".into());
    let mut app = app_with(o);
    for e in mid_wave_events() {
        app.apply_event(e);
    }
    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "migrate ");
    press(&mut app, KeyCode::Tab);
    snapshot("read_only_command_120x40", &app, 120, 40);
}

#[test]
fn no_color_keeps_the_selection_visible() {
    let mut app = at(View::Vms, 120, 40);
    app.set_theme(wavelift::tui::theme::Theme::no_color());
    let text = screen(&app, 120, 40);
    assert!(
        text.contains("▶ db-01"),
        "the selected row is marked without colours:\n{text}"
    );
}

/// The header's window estimate names the throughput it rests on: assumed until imports
/// run, then measured (the engine sends a new estimate when it changes).
#[test]
fn the_window_estimate_names_its_throughput() {
    let mut app = at(View::Vms, 160, 40);
    let fit = |needed_ms: u64, fits: bool, throughput: &str| wavelift::engine::EngineEvent {
        vm: String::new(),
        wave: app_wave(),
        at_ms: 0,
        kind: wavelift::engine::EventKind::WindowFit {
            left_ms: 3_600_000,
            open: true,
            remaining: 2,
            needed_ms,
            fits,
            throughput: throughput.into(),
        },
    };
    app.apply_event(fit(600_000, true, "an assumed 150 MiB/s"));
    app.settle();
    let text = screen(&app, 160, 40);
    assert!(
        text.contains("2 cutovers need ~") && text.contains("fit (at an assumed 150 MiB/s)"),
        "{text}"
    );
    app.apply_event(fit(7_200_000, false, "a measured 40 MiB/s"));
    app.settle();
    let text = screen(&app, 160, 40);
    assert!(
        text.contains("do not fit (at a measured 40 MiB/s)"),
        "{text}"
    );
}

/// A VM's cutover event puts its downtime in the VM detail (issue 13).
#[test]
fn the_vm_detail_shows_the_downtime_of_its_cutover() {
    let mut app = at(View::Vms, 160, 40);
    update(&mut app, Action::Top);
    let first = mid_wave_events()
        .into_iter()
        .map(|e| e.vm)
        .find(|v| !v.is_empty())
        .expect("a VM");
    let before = screen(&app, 160, 40);
    assert!(!before.contains("downtime"), "{before}");
    app.apply_event(wavelift::engine::EngineEvent {
        vm: first.clone(),
        wave: app_wave(),
        at_ms: 0,
        kind: wavelift::engine::EventKind::Cutover {
            migration: "warm".into(),
            downtime_ms: 82_000,
            precopy_rounds: 3,
            final_delta_bytes: Some(1 << 30),
            consistent_copy: true,
        },
    });
    app.settle();
    let text = screen(&app, 160, 40);
    assert!(text.contains("downtime 1m22s"), "{first}:\n{text}");
}

/// The wave the fixture's events run in.
fn app_wave() -> String {
    mid_wave_events()
        .into_iter()
        .map(|e| e.wave)
        .find(|w| !w.is_empty())
        .expect("a wave")
}

/// The VM detail shows the drafted network policy (issue 17): the object, its rules with
/// where each came from, which rule admits each check's probe (or that none does), and
/// the draft's warnings.
#[test]
fn vm_detail_shows_its_network_policy_and_the_rules_each_check_relies_on() {
    use wavelift::tui::policy::{PolicyData, VmPolicy};
    let mut opts = opts();
    opts.policies = Some(PolicyData {
        mode: "apply".into(),
        vms: [(
            "db-01".to_string(),
            VmPolicy {
                object: "MultiNetworkPolicy mig-shop/wavelift-db-01 (v1beta2, on vlan-210)"
                    .into(),
                rules: vec![
                    "ingress[0] from 192.0.2.16/32 tcp/5432 ← fw/edge.iptables:7 rule app-to-db (owner dba)".into(),
                    "ingress[1] from 198.51.100.254/32 any ← wavelift probes (probe_sources)".into(),
                ],
                checks: vec![
                    ("tcp:5432".into(), Some(vec!["ingress[1] wavelift probes".into()])),
                    ("icmp".into(), None),
                ],
                warnings: vec!["fw/edge.iptables:9 rule deny-icmp: ICMP cannot be denied by a NetworkPolicy; the allow of fw/edge.iptables:11 was narrowed to TCP, UDP and SCTP".into()],
                ..VmPolicy::default()
            },
        )]
        .into(),
    });
    let mut app = app_with(opts);
    for e in mid_wave_events() {
        app.apply_event(e);
    }
    app.settle();
    update(&mut app, Action::Resize(160, 110));
    update(&mut app, Action::GoView(View::Vms));
    update(&mut app, Action::Top);
    let text = screen(&app, 160, 110);
    for want in [
        "Network policy",
        "MultiNetworkPolicy mig-shop/wavelift-db-01 (v1beta2, on vlan-210)  (applied once verified)",
        "ingress[0] from 192.0.2.16/32 tcp/5432 ← fw/edge.iptables:7 rule app-to-db (owner dba)",
        "✓ tcp:5432",
        "admitted by ingress[1] wavelift probes",
        "✗ icmp",
        "blocked: no rule admits its probe",
        "! fw/edge.iptables:9 rule deny-icmp",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}
