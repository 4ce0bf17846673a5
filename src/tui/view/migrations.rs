//! The Migrations view: live migrations of the wave's VMs (phase, source → target node,
//! duration, probes lost).

use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

use super::table::{self, Col};
use super::widgets::{block, fmt_duration};
use crate::cluster::phase::MigrationPhase;
use crate::tui::app::App;
use crate::tui::theme::Element;

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let t = app.theme();
    if app.ui().mig_order.is_empty() {
        let text = if app.session().read_only {
            "No live migrations in this wave."
        } else {
            "No live migrations in this wave yet: select a Running VM and press m (or :migrate NAME)."
        };
        frame.render_widget(
            Paragraph::new(format!("\n  {text}"))
                .style(t.style(Element::Footer))
                .block(block(app, " Migrations ", true)),
            body,
        );
        return;
    }
    let cols: [Col; 7] = [
        Col {
            title: "VM",
            width: app.session().name_width,
            priority: 9,
        },
        Col {
            title: "MIGRATION",
            width: 24,
            priority: 3,
        },
        Col {
            title: "PHASE",
            width: 16,
            priority: 9,
        },
        Col {
            title: "SOURCE → TARGET",
            width: 27,
            priority: 7,
        },
        Col {
            title: "DURATION",
            width: 9,
            priority: 8,
        },
        Col {
            title: "LOST",
            width: 9,
            priority: 8,
        },
        Col {
            title: "LOSS",
            width: 6,
            priority: 5,
        },
    ];
    let keep = table::fit(&cols, body.width);
    let visible = body.height.saturating_sub(3) as usize;
    let order = &app.ui().mig_order;
    let (window, selected) = app.ui().migrations.window(visible, order.len());
    let rows: Vec<Row> = order[window]
        .iter()
        .filter_map(|&i| {
            let v = &app.fleet().vms()[i];
            let m = v.migration.as_ref()?;
            let phase_style = match m.phase {
                MigrationPhase::Succeeded => t.style(Element::StatusOk),
                MigrationPhase::Failed => t.style(Element::StatusFail),
                _ => t.style(Element::StatusRunning),
            };
            let lost_style = if m.lost_probes > 0 {
                t.style(Element::LogWarn)
            } else {
                t.style(Element::StatusOk)
            };
            let loss = if m.sent_probes > 0 {
                format!(
                    "{:.1}%",
                    m.lost_probes as f64 * 100.0 / m.sent_probes as f64
                )
            } else {
                "-".into()
            };
            let cells: [Cell; 7] = [
                Cell::from(v.name.as_str()),
                Cell::from(m.name.as_str()),
                Cell::from(Span::styled(m.phase.as_str(), phase_style)),
                Cell::from(format!(
                    "{} → {}",
                    m.source_node.as_deref().unwrap_or("?"),
                    m.target_node.as_deref().unwrap_or("?")
                )),
                Cell::from(fmt_duration(m.duration_ms(app.ui().now_ms))),
                Cell::from(Span::styled(
                    format!("{}/{}", m.lost_probes, m.sent_probes),
                    lost_style,
                )),
                Cell::from(loss),
            ];
            Some(Row::new(table::keep_cells(cells, &keep)))
        })
        .collect();
    table::draw(
        app,
        frame,
        body,
        format!(" Migrations · {} ", order.len()),
        &cols,
        &keep,
        rows,
        selected,
    );
}
