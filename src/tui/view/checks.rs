//! The Checks view: a VM × check matrix of the wave, and the selected VM's check details.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, HighlightSpacing, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::widgets::{block, check_style, fmt_hms, vm_style, HIGHLIGHT_SYMBOL};
use crate::tui::app::{App, CheckOutcome};
use crate::tui::layout::checks_areas;
use crate::tui::theme::Element;

const CELL: u16 = 13;

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let t = app.theme();
    let (top, bottom) = checks_areas(body, app.ui().order.len());
    let columns: &[String] = app
        .current_wave()
        .map(|w| w.check_columns.as_slice())
        .unwrap_or(&[]);
    let fixed = app.session().name_width + 1 + 12 + 1 + 9 + 1 + 4;
    let fit = (top.width.saturating_sub(fixed) / (CELL + 1)) as usize;
    let shown = &columns[..columns.len().min(fit)];
    let mut header: Vec<&str> = vec!["VM", "STEP", "PASSED"];
    header.extend(shown.iter().map(String::as_str));
    let mut widths = vec![
        Constraint::Length(app.session().name_width),
        Constraint::Length(12),
        Constraint::Length(9),
    ];
    widths.extend(shown.iter().map(|_| Constraint::Length(CELL)));

    let visible = top.height.saturating_sub(3) as usize;
    let order = &app.ui().order;
    let (window, selected) = app.ui().rows.window(visible, order.len());
    let rows: Vec<Row> = order[window]
        .iter()
        .map(|&i| {
            let v = &app.fleet().vms()[i];
            let (pass, bad, total) = v.check_counts();
            let mut cells = vec![
                Cell::from(v.name.as_str()),
                Cell::from(Span::styled(v.step.label(), vm_style(t, v))),
                Cell::from(Span::styled(
                    format!("{pass}/{total}"),
                    if bad > 0 {
                        t.style(Element::StatusFail)
                    } else if pass == total && total > 0 {
                        t.style(Element::StatusOk)
                    } else {
                        t.style(Element::TableRow)
                    },
                )),
            ];
            for col in shown {
                cells.push(match v.column_outcome(col) {
                    Some(o) => Cell::from(Span::styled(
                        format!("{} {}", o.symbol(), o.label()),
                        check_style(t, o),
                    )),
                    None => Cell::from(""),
                });
            }
            Row::new(cells)
        })
        .collect();
    let hidden = columns.len() - shown.len();
    let title = if hidden > 0 {
        format!(
            " Checks · {} VMs · {hidden} columns hidden (wider terminal) ",
            app.ui().order.len()
        )
    } else {
        format!(
            " Checks · {} VMs · ✓ pass ✗ fail ! error … pending ",
            app.ui().order.len()
        )
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.style(Element::TableHeader)))
        .block(block(app, title, true))
        .style(t.style(Element::TableRow))
        .row_highlight_style(t.style(Element::TableSelected))
        .highlight_symbol(HIGHLIGHT_SYMBOL)
        .highlight_spacing(HighlightSpacing::Always)
        .column_spacing(1);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, top, &mut state);

    // Details of the selected VM's checks.
    let muted = t.style(Element::Footer);
    let (title, lines) = match app.selected() {
        None => (" Check details ".to_string(), vec![]),
        Some(v) => {
            let name_w = v
                .checks
                .iter()
                .map(|c| c.name.chars().count())
                .max()
                .unwrap_or(0)
                .clamp(12, 48)
                + 1;
            let lines: Vec<Line> = v
                .checks
                .iter()
                .map(|c| {
                    let mut spans = vec![
                        Span::styled(
                            format!("{} ", c.outcome.symbol()),
                            check_style(t, c.outcome),
                        ),
                        Span::raw(format!("{:<name_w$}", c.name)),
                        Span::styled(
                            format!("{:<8}", c.outcome.label()),
                            check_style(t, c.outcome),
                        ),
                    ];
                    if let Some(at) = c.at_ms {
                        spans.push(Span::styled(format!(" {}", fmt_hms(at)), muted));
                    }
                    if let Some(l) = c.latency_ms {
                        spans.push(Span::styled(format!(" {l}ms"), muted));
                    }
                    if !c.detail.is_empty() {
                        spans.push(Span::raw(format!("  {}", c.detail)));
                    } else if c.outcome == CheckOutcome::Pending {
                        spans.push(Span::styled("  runs after cutover (c runs it now)", muted));
                    }
                    Line::from(spans)
                })
                .collect();
            (format!(" Checks of {} ", v.name), lines)
        }
    };
    frame.render_widget(
        Paragraph::new(lines)
            .style(t.style(Element::Detail))
            .block(block(app, title, false)),
        bottom,
    );
}
