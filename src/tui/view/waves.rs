//! The Waves view: every wave with its window, progress and state; Enter opens one.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

use super::table::{self, Col};
use super::widgets::{bar, block, fmt_minute, window_text};
use crate::engine::Step;
use crate::tui::app::App;
use crate::tui::layout::waves_areas;
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
    let t = app.theme();
    let (top, bottom) = waves_areas(body, app.fleet().waves().len());
    let keep = table::fit(&COLS, top.width);
    let visible = top.height.saturating_sub(3) as usize;
    let start = app
        .ui()
        .waves
        .index
        .saturating_sub(visible.saturating_sub(1));
    let vms = app.fleet().vms();
    let rows: Vec<Row> = app
        .fleet()
        .waves()
        .iter()
        .enumerate()
        .skip(start)
        .take(visible)
        .map(|(i, w)| {
            let verified = w
                .vms
                .iter()
                .filter(|&&v| vms[v].step == Step::Verified)
                .count();
            let failed = w.vms.iter().filter(|&&v| vms[v].failed()).count();
            let frac = if w.vms.is_empty() {
                0.0
            } else {
                verified as f64 / w.vms.len() as f64
            };
            let [a, b] = bar(t, frac, 10);
            let run = app.wave_run(i);
            let (state, style) = match run.map(|r| (r.done, r.paused, r.started, r.cancelled)) {
                Some((Some(_), _, _, cancelled)) if cancelled > 0 => {
                    ("cancelled", Element::LogWarn)
                }
                Some((Some(_), _, _, _)) => ("done", Element::StatusOk),
                Some((None, true, _, _)) => ("paused", Element::LogWarn),
                Some((None, false, true, _)) => ("running", Element::StatusRunning),
                _ => ("not started", Element::StatusPending),
            };
            let current = if i == app.ui().wave { " *" } else { "" };
            let cells: [Cell; 7] = [
                Cell::from(format!("{}{current}", w.name)),
                Cell::from(w.vms.len().to_string()),
                Cell::from(
                    w.window
                        .map(|(s, e)| format!("{} – {}", fmt_minute(s), fmt_minute(e)))
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::from(
                    window_text(w.window, app.session().window_now(app.ui().now_ms))
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
    let selected = app.ui().waves.index.checked_sub(start);
    table::draw(
        app,
        frame,
        top,
        format!(
            " Waves · {} (* = open; Enter opens) ",
            app.fleet().waves().len()
        ),
        &COLS,
        &keep,
        rows,
        selected,
    );

    let muted = t.style(Element::Footer);
    let mut lines = vec![
        Line::from(vec![
            Span::styled("plan ", muted),
            Span::styled(app.session().plan_name.as_str(), t.style(Element::Header)),
            Span::styled(
                format!("  ({})  namespace ", app.session().plan_path),
                muted,
            ),
            Span::raw(app.session().namespace.as_str()),
        ]),
        Line::from(Span::raw(app.session().summary.as_str())),
    ];
    if let Some(w) = app.fleet().waves().get(app.ui().waves.index) {
        lines.push(Line::from(Span::styled(
            format!(
                "wave {}: at most {} imports and {} cutovers at a time",
                w.name, w.max_parallel_imports, w.max_parallel_cutovers
            ),
            muted,
        )));
    }
    if !app.session().read_only {
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
