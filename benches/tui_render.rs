//! TUI benchmarks at 10,000 VMs (one wave): one frame at 200×60 (target ≤ 1 ms median),
//! one `/` filter keystroke over every VM followed by its frame (target ≤ 5 ms), and
//! ingestion of 10,000 engine events followed by one frame (target: well under 1 s, so the
//! UI keeps up with 10,000 events/s).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use wavelift::checks::result::Outcome;
use wavelift::engine::{EngineEvent, EventKind, Status, Step};
use wavelift::plan::synth::{generate, SynthSpec};
use wavelift::tui::theme::Theme;
use wavelift::tui::{render, update, Action, App, TuiOptions};

const T0: i64 = 1_796_508_000_000;
const VMS: usize = 10_000;

fn big_app() -> App {
    let text = generate(SynthSpec {
        vms: VMS,
        waves: 1,
        networks: 20,
        l3_every: 10,
    });
    let plan = wavelift::plan::check_str(&text, "synthetic.toml")
        .plan
        .expect("valid synthetic plan");
    let mut app = App::new(
        &plan,
        TuiOptions::rehearsal("synthetic.toml"),
        Theme::default(),
        T0 + 600_000,
    );
    update(&mut app, Action::Resize(200, 60));
    app
}

/// 10,000 events over the first 5,000 VMs: phase changes, import progress, nodes, checks, logs.
fn events(n: usize) -> Vec<EngineEvent> {
    let steps = [
        Step::Preflight,
        Step::NetworkReady,
        Step::Importing,
        Step::Imported,
        Step::Booting,
        Step::Running,
        Step::Verified,
    ];
    (0..n)
        .map(|k| {
            let vm = format!("vm-{:05}", k % 5_000);
            let at_ms = T0 + k as i64;
            match k % 5 {
                0 | 1 => EngineEvent::phase(
                    &vm,
                    "w0",
                    at_ms,
                    Step::Importing,
                    Status::Active,
                    Some((k % 100) as f64 / 100.0),
                    "",
                ),
                2 => EngineEvent::phase(
                    &vm,
                    "w0",
                    at_ms,
                    steps[(k / 5) % steps.len()],
                    Status::Active,
                    None,
                    "step",
                ),
                3 => EngineEvent {
                    vm,
                    wave: "w0".into(),
                    at_ms,
                    kind: EventKind::Node {
                        node: format!("node-{}", k % 7),
                    },
                },
                _ => EngineEvent {
                    vm,
                    wave: "w0".into(),
                    at_ms,
                    kind: EventKind::Check {
                        check: "icmp".into(),
                        outcome: Outcome::Pass,
                        detail: String::new(),
                        latency_ms: Some(1),
                        kind: "icmp".into(),
                    },
                },
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut app = big_app();
    for e in events(10_000) {
        app.apply_event(e);
    }
    app.settle();
    // Put the cursor mid-table so the visible window is not the first page.
    for _ in 0..VMS / 2 {
        update(&mut app, Action::Down);
    }
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("terminal");

    let mut group = c.benchmark_group("tui");
    group.bench_function("render_10000_vm_frame_200x60", |b| {
        b.iter(|| {
            terminal.draw(|f| render(black_box(&app), f)).expect("draw");
        })
    });

    let mut checks = app.clone();
    update(&mut checks, Action::GoView(wavelift::tui::View::Checks));
    group.bench_function("render_10000_vm_checks_view_200x60", |b| {
        b.iter(|| {
            terminal
                .draw(|f| render(black_box(&checks), f))
                .expect("draw");
        })
    });

    // `/` then a keystroke: the filter runs over every VM, then the frame is drawn. "vm-0"
    // matches a tenth of the synthetic names; each iteration types its last character
    // anew on a copy in filter mode with "vm-" typed.
    let mut filtering = app.clone();
    update(&mut filtering, Action::StartFilter);
    for c in "vm-".chars() {
        update(&mut filtering, Action::Char(c));
    }
    filtering.settle();
    group.bench_function("filter_keystroke_10000_vms_then_render", |b| {
        b.iter_batched(
            || filtering.clone(),
            |mut app| {
                update(&mut app, Action::Char('0'));
                app.settle();
                terminal.draw(|f| render(&app, f)).expect("draw");
                app
            },
            BatchSize::LargeInput,
        )
    });

    let fresh = big_app();
    let batch = events(10_000);
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("apply_10000_events_then_render", |b| {
        b.iter_batched(
            || (fresh.clone(), batch.clone()),
            |(mut app, batch)| {
                for e in batch {
                    app.apply_event(e);
                }
                app.settle();
                terminal.draw(|f| render(&app, f)).expect("draw");
                app
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
