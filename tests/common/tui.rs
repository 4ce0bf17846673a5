//! Shared fixture of the TUI tests (`common::tui`, used by `tui/render.rs` and
//! `tui/flow.rs`): a two-wave plan and a mid-wave stream of engine events.
#![allow(dead_code)]

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use std::sync::LazyLock;
use wavelift::checks::result::Outcome;
use wavelift::engine::{EngineEvent, EventKind, LogLevel, Status, Step};
use wavelift::plan::Plan;
use wavelift::tui::theme::Theme;
use wavelift::tui::{render, update, App, Effect, TuiOptions};

/// A two-wave plan (`power_off` is `manual`, the default).
pub static PLAN: LazyLock<String> =
    LazyLock::new(|| super::plan_header("shop", "mig-shop", "") + PLAN_BODY);

const PLAN_BODY: &str = r#"
[defaults]
storage_class = "sim-standard"
access_mode = "ReadWriteOnce"
checks = ["ip-preserved", "mac-preserved", "icmp"]

[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "192.0.2.0/24"
gateway = "192.0.2.1"
owner = "netsec"

[[wave]]
name = "w1"
window = { start = 2026-12-05T22:00:00Z, end = 2026-12-06T04:00:00Z }
max_parallel_imports = 2
max_parallel_cutovers = 2

[[wave]]
name = "w2"
window = { start = 2026-12-12T22:00:00Z, end = 2026-12-13T04:00:00Z }
max_parallel_imports = 4
max_parallel_cutovers = 2

[[vm]]
name = "db-01"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678901"
wave = "w1"
cpu = 4
memory = "16Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.15", mac = "00:50:56:ab:cd:01" }]
disks = [{ backing_file = "[ds1] db-01/db-01.vmdk", size = "80Gi" }]
checks = ["tcp:5432", "dns:db-01.corp.example.internal"]
owner = "dba"

[[vm]]
name = "app-01"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678902"
wave = "w1"
cpu = 2
memory = "8Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.16", mac = "00:50:56:ab:cd:02" }]
disks = [{ backing_file = "[ds1] app-01/app-01.vmdk", size = "40Gi" }]
checks = ["tcp:8080"]
after = ["db-01"]

[[vm]]
name = "app-02"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678903"
wave = "w1"
cpu = 2
memory = "8Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.18", mac = "00:50:56:ab:cd:04" }]
disks = [{ backing_file = "[ds1] app-02/app-02.vmdk", size = "40Gi" }]
checks = ["tcp:8080"]

[[vm]]
name = "web-01"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678904"
wave = "w1"
cpu = 2
memory = "4Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.17", mac = "00:50:56:ab:cd:03" }]
disks = [{ backing_file = "[ds1] web-01/web-01.vmdk", size = "20Gi" }]
checks = ["tcp:443", "https://{ip}/health"]

[[vm]]
name = "web-02"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678905"
wave = "w1"
cpu = 2
memory = "4Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.19", mac = "00:50:56:ab:cd:05" }]
disks = [{ backing_file = "[ds1] web-02/web-02.vmdk", size = "20Gi" }]
checks = ["tcp:443"]
after = ["app-01"]

[[vm]]
name = "cache-01"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678906"
wave = "w1"
network_model = "l3"
cpu = 1
memory = "2Gi"
nics = [{ network = "vlan-210", mac = "00:50:56:ab:cd:06" }]
disks = [{ backing_file = "[ds1] cache-01/cache-01.vmdk", size = "10Gi" }]
checks = ["tcp:6379"]

[[vm]]
name = "batch-01"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678907"
wave = "w2"
cpu = 2
memory = "4Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.30", mac = "00:50:56:ab:cd:07" }]
disks = [{ backing_file = "[ds2] batch-01/batch-01.vmdk", size = "60Gi" }]

[[vm]]
name = "batch-02"
source_id = "4207c1b2-5f0e-4c1e-9a7b-012345678908"
wave = "w2"
cpu = 2
memory = "4Gi"
nics = [{ network = "vlan-210", ip = "192.0.2.31", mac = "00:50:56:ab:cd:08" }]
disks = [{ backing_file = "[ds2] batch-02/batch-02.vmdk", size = "60Gi" }]
"#;

/// The wave window's start (2026-12-05T22:00:00Z), unix ms.
pub const T0: i64 = 1_796_508_000_000;
/// "Now" in the tests: 25 minutes into the window.
pub const NOW: i64 = T0 + 25 * 60_000;

pub fn plan() -> Plan {
    let checked = wavelift::plan::check_str(&PLAN, "shop.toml");
    let errors: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    checked
        .plan
        .unwrap_or_else(|| panic!("fixture plan invalid:\n{}", errors.join("\n")))
}

pub fn opts() -> TuiOptions {
    let mut o = TuiOptions::rehearsal("plans/shop.toml");
    o.target = wavelift::tui::TargetInfo::Sim {
        kubeconfig: Some("/tmp/wavelift-sim/kubeconfig".into()),
    };
    o
}

pub fn app_with(opts: TuiOptions) -> App {
    let mut app = App::new(&plan(), opts, Theme::default(), NOW);
    update(&mut app, wavelift::tui::Action::Resize(120, 40));
    app
}

pub fn app() -> App {
    app_with(opts())
}

fn ev(vm: &str, min: i64, kind: EventKind) -> EngineEvent {
    EngineEvent {
        vm: vm.to_string(),
        wave: "w1".to_string(),
        at_ms: T0 + min * 60_000,
        kind,
    }
}

fn phase(vm: &str, min: i64, step: Step, status: Status, progress: Option<f64>) -> EngineEvent {
    EngineEvent::phase(vm, "w1", T0 + min * 60_000, step, status, progress, "")
}

fn check(vm: &str, min: i64, name: &str, outcome: Outcome, detail: &str) -> EngineEvent {
    let kind = wavelift::plan::check::parse_check(name).expect("check");
    ev(
        vm,
        min,
        EventKind::Check {
            check: name.into(),
            outcome,
            detail: detail.into(),
            latency_ms: Some(3),
            kind: kind.kind_name().into(),
        },
    )
}

/// A wave 25 minutes in: one VM verified and migrated, one importing, one waiting for
/// a power-off confirmation, one failed, one waiting for a dependency, one preflight.
pub fn mid_wave_events() -> Vec<EngineEvent> {
    use Status::*;
    use Step::*;
    let mut v = Vec::new();
    for (k, step) in [
        Preflight,
        NetworkReady,
        Importing,
        Imported,
        CutoverGate,
        Created,
        Booting,
        Running,
        Verifying,
    ]
    .into_iter()
    .enumerate()
    {
        v.push(phase("db-01", k as i64, step, Active, None));
    }
    v.push(ev(
        "db-01",
        7,
        EventKind::Node {
            node: "node-a".into(),
        },
    ));
    v.push(check(
        "db-01",
        9,
        "ip-preserved",
        Outcome::Pass,
        "192.0.2.15 on eth0",
    ));
    v.push(check(
        "db-01",
        9,
        "mac-preserved",
        Outcome::Pass,
        "00:50:56:ab:cd:01",
    ));
    v.push(check("db-01", 9, "icmp", Outcome::Pass, ""));
    v.push(check("db-01", 9, "tcp:5432", Outcome::Pass, ""));
    v.push(check(
        "db-01",
        9,
        "dns:db-01.corp.example.internal",
        Outcome::Pass,
        "A and PTR match",
    ));
    v.push(phase("db-01", 10, Verified, Active, None));
    for (min, phase_name, lost) in [
        (12, "Scheduling", 0),
        (13, "Running", 1),
        (14, "Succeeded", 1),
    ] {
        v.push(ev(
            "db-01",
            min,
            EventKind::Migration {
                name: "db-01-migration-1".into(),
                phase: phase_name.into(),
                source_node: Some("node-a".into()),
                target_node: Some("node-b".into()),
                lost_probes: lost,
                sent_probes: 240,
            },
        ));
    }
    v.push(phase("app-01", 11, Preflight, Active, None));
    v.push(phase("app-01", 12, NetworkReady, Active, None));
    v.push(phase("app-01", 13, Importing, Active, Some(0.1)));
    v.push(ev(
        "app-01",
        13,
        EventKind::Condition {
            object: "DataVolume/app-01-disk-0".into(),
            type_: "Running".into(),
            status: "True".into(),
            reason: "Pod is running".into(),
            message: "Import pod running".into(),
        },
    ));
    v.push(ev(
        "app-01",
        14,
        EventKind::KubeEvent {
            object: "DataVolume/app-01-disk-0".into(),
            reason: "ImportInProgress".into(),
            message: "Import into app-01-disk-0 in progress".into(),
        },
    ));
    v.push(phase("app-01", 20, Importing, Active, Some(0.45)));
    v.push(phase("app-02", 2, Preflight, Active, None));
    v.push(phase("app-02", 3, NetworkReady, Active, None));
    v.push(phase("app-02", 4, Importing, Active, Some(0.2)));
    v.push(phase("app-02", 14, Imported, Active, None));
    v.push(phase(
        "app-02",
        15,
        CutoverGate,
        Blocked("power off the source VM, then confirm (o)".into()),
        None,
    ));
    v.push(phase("web-01", 2, Preflight, Active, None));
    v.push(phase("web-01", 3, NetworkReady, Active, None));
    v.push(phase("web-01", 4, Importing, Active, Some(0.5)));
    v.push(phase("web-01", 9, Imported, Active, None));
    v.push(phase("web-01", 10, CutoverGate, Active, None));
    v.push(phase("web-01", 11, Created, Active, None));
    v.push(phase("web-01", 12, Booting, Active, None));
    v.push(phase(
        "web-01",
        18,
        Booting,
        Failed("VMI did not start: 0/3 nodes have bridge br-trunk".into()),
        None,
    ));
    v.push(phase(
        "web-02",
        1,
        Pending,
        Waiting("after app-01".into()),
        None,
    ));
    v.push(phase("cache-01", 24, Preflight, Active, None));
    v.push(ev(
        "",
        0,
        EventKind::Log {
            level: LogLevel::Info,
            message: "wave w1 started: 6 VMs, 2 imports / 2 cutovers at a time".into(),
        },
    ));
    v.push(ev(
        "web-01",
        18,
        EventKind::Mutation {
            verb: "create".into(),
            kind: "VirtualMachine".into(),
            name: "web-01".into(),
            dry_run: false,
            result: "created".into(),
        },
    ));
    v
}

/// The fixture app with the mid-wave events applied.
pub fn mid_wave() -> App {
    let mut app = app();
    for e in mid_wave_events() {
        app.apply_event(e);
    }
    app.settle();
    app
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Presses a key the way the loop does: key table lookup, then `update`.
pub fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    press_event(app, key(code))
}

pub fn press_event(app: &mut App, ev: KeyEvent) -> Vec<Effect> {
    match wavelift::tui::keys::action_for(app, ev) {
        Some(a) => update(app, a),
        None => Vec::new(),
    }
}

/// Types text (each character as a key).
pub fn type_text(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars()
        .flat_map(|c| press(app, KeyCode::Char(c)))
        .collect()
}

/// Renders the app into a `w`×`h` test terminal.
pub fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| render(app, f)).expect("draw");
    t
}

/// The screen as text, one line per row.
pub fn screen(app: &App, w: u16, h: u16) -> String {
    let t = draw(app, w, h);
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..h {
        for x in 0..w {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}
