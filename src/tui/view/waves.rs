//! The Waves view: every wave with its window, progress and state; Enter opens one.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

use super::layout::waves_areas;
use super::table::{self, Col};
use super::widgets::{bar, block, fmt_minute, window_text};
use crate::engine::Step;
use crate::tui::app::App;
use crate::tui::theme::Element;

const COLS: [Col; 7] = [
    Col {
        title: "WAVE",
        width: 10,
        priority: 9,
    },
    Col {
        title: "VMS",
        width: 5,
        priority: 8,
    },
    Col {
        title: "WINDOW (UTC)",
        width: 35,
        priority: 4,
    },
    Col {
        title: "WHEN",
        width: 22,
        priority: 6,
    },
    Col {
        title: "VERIFIED",
        width: 20,
        priority: 7,
    },
    Col {
        title: "FAILED",
        width: 6,
        priority: 7,
    },
    Col {
        title: "STATE",
        width: 11,
        priority: 8,
    },
];

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let t = &app.theme;
    let (top, bottom) = waves_areas(body, app.waves.len());
    let keep = table::fit(&COLS, top.width);
    let visible = top.height.saturating_sub(3) as usize;
    let start = app.wave_cursor.saturating_sub(visible.saturating_sub(1));
    let rows: Vec<Row> = app
        .waves
        .iter()
        .enumerate()
        .skip(start)
        .take(visible)
        .map(|(i, w)| {
            let verified = w
                .vms
                .iter()
                .filter(|&&v| app.vms[v].step == Step::Verified)
                .count();
            let failed = w.vms.iter().filter(|&&v| app.vms[v].failed()).count();
            let frac = if w.vms.is_empty() {
                0.0
            } else {
                verified as f64 / w.vms.len() as f64
            };
            let [a, b] = bar(t, frac, 10);
            let (state, style) = match (w.done, w.paused, w.started) {
                (Some(_), _, _) if w.cancelled > 0 => ("cancelled", Element::LogWarn),
                (Some(_), _, _) => ("done", Element::StatusOk),
                (None, true, _) => ("paused", Element::LogWarn),
                (None, false, true) => ("running", Element::StatusRunning),
                _ => ("not started", Element::StatusPending),
            };
            let current = if i == app.wave { " *" } else { "" };
            let cells: [Cell; 7] = [
                Cell::from(format!("{}{current}", w.name)),
                Cell::from(w.vms.len().to_string()),
                Cell::from(
                    w.window
                        .map(|(s, e)| format!("{} – {}", fmt_minute(s), fmt_minute(e)))
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::from(
                    window_text(w.window, app.now_ms)
                        .trim_start_matches("window ")
                        .to_string(),
                ),
                Cell::from(Line::from(vec![
                    a,
                    b,
                    Span::raw(format!(" {verified}/{}", w.vms.len())),
                ])),
                Cell::from(Span::styled(
                    failed.to_string(),
                    if failed > 0 {
                        t.style(Element::StatusFail)
                    } else {
                        t.style(Element::TableRow)
                    },
                )),
                Cell::from(Span::styled(state, t.style(style))),
            ];
            Row::new(table::keep_cells(cells, &keep))
        })
        .collect();
    let selected = app.wave_cursor.checked_sub(start);
    table::draw(
        app,
        frame,
        top,
        format!(" Waves · {} (* = open; Enter opens) ", app.waves.len()),
        &COLS,
        &keep,
        rows,
        selected,
    );

    let muted = t.style(Element::Footer);
    let mut lines = vec![
        Line::from(vec![
            Span::styled("plan ", muted),
            Span::styled(app.plan_name.as_str(), t.style(Element::Header)),
            Span::styled(format!("  ({})  namespace ", app.plan_path), muted),
            Span::raw(app.namespace.as_str()),
        ]),
        Line::from(Span::raw(app.summary.as_str())),
    ];
    if let Some(w) = app.waves.get(app.wave_cursor) {
        lines.push(Line::from(Span::styled(
            format!(
                "wave {}: at most {} imports and {} cutovers at a time",
                w.name, w.max_parallel_imports, w.max_parallel_cutovers
            ),
            muted,
        )));
    }
    if !app.read_only {
        lines.push(Line::from(vec![
            Span::styled("w", t.style(Element::KeyHint)),
            Span::styled(" starts the wave under the cursor, ", muted),
            Span::styled("p", t.style(Element::KeyHint)),
            Span::styled(" pauses / resumes it", muted),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .style(t.style(Element::Detail))
            .block(block(app, " Plan ", false)),
        bottom,
    );
}
