//! The header, three rows: mode badge, plan › wave, window countdown, wave state,
//! read-only (naming who drives the plan when another wavelift holds its Lease); the view
//! tabs and the target cluster; the wave's VM count per step.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::widgets::{fmt_countdown, window_text};
use crate::cluster::client::Mode;
use crate::engine::Step;
use crate::tui::app::{step_index, App, View};
use crate::tui::layout::take_top;
use crate::tui::theme::Element;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme();
    let ui = app.ui();
    let head = t.style(Element::Header);
    let muted = t.style(Element::Footer);
    let (top, rest) = take_top(area, 1);
    let (tabs, third) = take_top(rest, 1);
    let wave = app.current_wave();
    let badge = match app.session().mode {
        Mode::Live => Element::ModeLive,
        Mode::DryRun => Element::ModeDryRun,
        Mode::Rehearsal => Element::ModeRehearsal,
    };
    let mut spans = vec![
        Span::styled(format!(" {} ", app.session().mode.label()), t.style(badge)),
        Span::styled(" ", muted),
        Span::styled(app.session().plan_name.as_str(), head),
        Span::styled(" › ", muted),
        Span::styled(app.wave_name(), head),
        Span::styled(
            format!(
                " ({}/{} · {} VMs) · ",
                ui.wave + 1,
                app.fleet().waves().len(),
                wave.map_or(0, |w| w.vms.len())
            ),
            muted,
        ),
        Span::styled(
            window_text(
                wave.and_then(|w| w.window),
                app.session().window_now(ui.now_ms),
            ),
            t.style(Element::Detail),
        ),
    ];
    // The engine's estimate of the cutovers left against the window.
    if let Some((left, needed_ms, fits)) = wave.and_then(|w| w.fit).filter(|f| f.0 > 0) {
        let (text, style) = if fits {
            ("fit", Element::StatusOk)
        } else {
            ("do not fit", Element::StatusFail)
        };
        spans.push(Span::styled(
            format!(
                " · {left} cutover{} need ~{}: ",
                if left == 1 { "" } else { "s" },
                fmt_countdown((needed_ms / 1000) as i64)
            ),
            muted,
        ));
        spans.push(Span::styled(text, t.style(style)));
        // Assumed until imports run, then measured: the estimate follows.
        if let Some(w) = wave.filter(|w| !w.fit_throughput.is_empty()) {
            spans.push(Span::styled(format!(" (at {})", w.fit_throughput), muted));
        }
    }
    if let Some(w) = app.wave_run(ui.wave) {
        let state = match (w.done, w.paused, w.started) {
            (Some(_), _, _) if w.cancelled > 0 => Some((" · CANCELLED", Element::LogWarn)),
            (Some(_), _, _) => Some((" · DONE", Element::StatusOk)),
            (None, true, _) => Some((" · PAUSED", Element::LogWarn)),
            (None, false, true) => Some((" · RUNNING", Element::StatusRunning)),
            _ => None,
        };
        if let Some((text, style)) = state {
            spans.push(Span::styled(text, t.style(style)));
        }
    }
    match (&app.session().driven_by, app.session().read_only) {
        (Some(by), _) => spans.push(Span::styled(
            format!(" · READ-ONLY: driven by {by}"),
            t.style(Element::LogWarn),
        )),
        (None, true) => spans.push(Span::styled(" · READ-ONLY", t.style(Element::LogWarn))),
        (None, false) => {}
    }
    if !ui.engine_connected {
        spans.push(Span::styled(
            " · ENGINE STOPPED",
            t.style(Element::StatusFail),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), top);

    // View tabs and the target cluster.
    let mut spans: Vec<Span> = Vec::with_capacity(40);
    spans.push(Span::raw(" "));
    for (i, v) in View::ALL.iter().enumerate() {
        let selected = *v == ui.view;
        let style = if selected {
            t.style(Element::TableSelected)
        } else {
            muted
        };
        let text = if selected {
            format!("[{} {}]", i + 1, v.title())
        } else {
            format!(" {} {} ", i + 1, v.title())
        };
        spans.push(Span::styled(text, style));
    }
    spans.push(Span::styled(" │ target ", muted));
    spans.push(Span::styled(app.session().target.label(), head));
    frame.render_widget(Paragraph::new(Line::from(spans)), tabs);

    // Counts per step (failed first: it must never be clipped).
    let mut spans: Vec<Span> = Vec::with_capacity(32);
    spans.push(Span::raw(" "));
    let mut first = true;
    if ui.failed > 0 {
        spans.push(Span::styled(
            format!("✗ {} failed", ui.failed),
            t.style(Element::StatusFail),
        ));
        first = false;
    }
    for step in Step::ALL {
        let n = ui.counts[step_index(step)];
        if n == 0 {
            continue;
        }
        if !first {
            spans.push(Span::styled(" · ", muted));
        }
        first = false;
        spans.push(Span::styled(step.label(), t.style(Element::Detail)));
        spans.push(Span::styled(format!(" {n}"), head));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(Style::default()),
        third,
    );
}
