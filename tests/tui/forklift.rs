//! The Forklift backend in the TUI: the VM detail shows Forklift's own step name, carried by
//! the engine's phase event (`backend_step`), and keeps it while later events of the same
//! step carry none.

use crate::common::tui::*;
use wavelift::engine::{EngineEvent, EventKind, Status, Step};
use wavelift::tui::{update, Action, View};

/// app-01 is importing in the mid-wave fixture; the next phase event comes from Forklift.
fn forklift_phase(backend_step: Option<&str>, progress: f64) -> EngineEvent {
    let mut e = EngineEvent::phase(
        "app-01",
        "w1",
        1_800_000_000_000,
        Step::Importing,
        Status::Active,
        Some(progress),
        "",
    );
    if let EventKind::Phase {
        backend_step: b, ..
    } = &mut e.kind
    {
        *b = backend_step.map(str::to_string);
    }
    e
}

/// The detail pane of app-01 (selected as `vms_importing_detail` selects it).
fn detail(app: &mut wavelift::tui::App) -> String {
    update(app, Action::Resize(120, 40));
    update(app, Action::GoView(View::Vms));
    update(app, Action::Top);
    update(app, Action::Down);
    screen(app, 120, 40)
}

#[test]
fn vm_detail_shows_forklifts_step_name() {
    let mut app = mid_wave();
    let before = detail(&mut app);
    assert!(!before.contains("Forklift step"), "{before}");
    app.apply_event(forklift_phase(Some("DiskTransferV2v"), 0.5));
    app.settle();
    let s = detail(&mut app);
    assert!(s.contains("Forklift step DiskTransferV2v"), "{s}");
    // A later event of the same step without a backend step keeps the last one shown.
    app.apply_event(forklift_phase(None, 0.6));
    app.settle();
    let s = detail(&mut app);
    assert!(s.contains("Forklift step DiskTransferV2v"), "{s}");
    // The next Forklift step replaces it.
    app.apply_event(forklift_phase(Some("ImageConversion"), 0.9));
    app.settle();
    let s = detail(&mut app);
    assert!(s.contains("Forklift step ImageConversion"), "{s}");
    assert!(!s.contains("DiskTransferV2v"), "{s}");
}
