//! The VMs view: the wave's VM table (virtualised), the selected VM's detail pane and
//! the log pane.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

use super::log;
use super::table::{self, Col};
use super::widgets::{
    bar, block, check_style, clip, fmt_duration, fmt_hms, status_reason, status_word, vm_style,
};
use crate::engine::Step;
use crate::plan::NetworkModel;
use crate::tui::app::{step_index, App, VmState};
use crate::tui::layout::vms_areas;
use crate::tui::theme::Element;

const BAR_WIDTH: usize = 10;

fn columns(app: &App) -> [Col; 10] {
    [
        Col {
            title: "NAME",
            width: app.session().name_width,
            priority: 9,
        },
        Col {
            title: "NET",
            width: 3,
            priority: 5,
        },
        Col {
            title: "VLAN",
            width: 4,
            priority: 4,
        },
        Col {
            title: "IP",
            width: 15,
            priority: 8,
        },
        Col {
            title: "STEP",
            width: 12,
            priority: 9,
        },
        Col {
            title: "STATE",
            width: 7,
            priority: 7,
        },
        Col {
            title: "PROGRESS",
            width: BAR_WIDTH as u16 + 5,
            priority: 6,
        },
        Col {
            title: "NODE",
            width: 10,
            priority: 3,
        },
        Col {
            title: "CHECKS",
            width: 8,
            priority: 5,
        },
        Col {
            title: "MIGRATION",
            width: 12,
            priority: 2,
        },
    ]
}

pub fn render(app: &App, frame: &mut Frame, body: Rect) {
    let areas = vms_areas(body, app.ui().order.len());
    render_table(app, frame, areas.table);
    render_detail(app, frame, areas.detail);
    log::render_pane(app, frame, areas.log, false);
}

/// One VM's table row.
pub fn row<'a>(app: &'a App, v: &'a VmState, keep: &[bool; 10]) -> Row<'a> {
    let t = app.theme();
    let style = vm_style(t, v);
    let progress = match (v.progress, v.step) {
        (Some(p), _) => {
            let [a, b] = bar(t, p, BAR_WIDTH);
            Line::from(vec![a, b, Span::raw(format!(" {:>3.0}%", p * 100.0))])
        }
        (None, s) if s >= Step::Imported && s <= Step::Verified => {
            let [a, b] = bar(t, 1.0, BAR_WIDTH);
            Line::from(vec![a, b, Span::raw(" 100%")])
        }
        _ => Line::default(),
    };
    let mut checks: Vec<Span> = Vec::with_capacity(v.checks.len().min(6));
    for c in v.checks.iter().take(6) {
        checks.push(Span::styled(c.outcome.symbol(), check_style(t, c.outcome)));
    }
    let migration = v
        .migration
        .as_ref()
        .map(|m| {
            if m.lost_probes > 0 {
                format!("{} ✗{}", m.phase, m.lost_probes)
            } else {
                m.phase.to_string()
            }
        })
        .unwrap_or_default();
    let cells: [Cell; 10] = [
        Cell::from(v.name.as_str()),
        Cell::from(match v.model {
            NetworkModel::L2 => "L2",
            NetworkModel::L3 => "L3",
        }),
        Cell::from(v.vlan.map(|x| x.to_string()).unwrap_or_default()),
        Cell::from(v.ip.as_str()),
        Cell::from(Span::styled(v.step.label(), style)),
        Cell::from(Span::styled(status_word(v), style)),
        Cell::from(progress),
        Cell::from(v.node.as_deref().unwrap_or("")),
        Cell::from(Line::from(checks)),
        Cell::from(migration),
    ];
    Row::new(table::keep_cells(cells, keep))
}

fn render_table(app: &App, frame: &mut Frame, area: Rect) {
    let cols = columns(app);
    let keep = table::fit(&cols, area.width);
    let visible = area.height.saturating_sub(3) as usize;
    let ui = app.ui();
    let (window, selected) = ui.rows.window(visible, ui.order.len());
    let rows: Vec<Row> = ui.order[window]
        .iter()
        .map(|&i| row(app, &app.fleet().vms()[i], &keep))
        .collect();
    let total = app.current_wave().map_or(0, |w| w.vms.len());
    let mut title = format!(
        " VMs {}/{} · sort {}",
        ui.order.len(),
        total,
        ui.sort.label()
    );
    if ui.sort_reverse {
        title.push_str(" ↓");
    }
    if !ui.filter.is_empty() {
        title.push_str(&format!(" · filter \"{}\"", ui.filter));
    }
    title.push(' ');
    table::draw(app, frame, area, title, &cols, &keep, rows, selected);
}

/// The detail pane of the selected VM.
pub fn render_detail(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme();
    let Some(v) = app.selected() else {
        let p = Paragraph::new("no VM selected (the filter matches nothing?)")
            .style(t.style(Element::Footer))
            .block(block(app, " Detail ", false));
        frame.render_widget(p, area);
        return;
    };
    let lines = detail_lines(
        app,
        v,
        area.height.saturating_sub(2) as usize,
        area.width.saturating_sub(2) as usize,
    );
    let p = Paragraph::new(lines)
        .style(t.style(Element::Detail))
        .block(block(app, format!(" {} ", v.name), false));
    frame.render_widget(p, area);
}

fn heading<'a>(app: &App, text: &'a str) -> Line<'a> {
    Line::from(Span::styled(text, app.theme().style(Element::TableHeader)))
}

/// The detail pane's lines, at most `max` of them.
pub fn detail_lines<'a>(app: &'a App, v: &'a VmState, max: usize, width: usize) -> Vec<Line<'a>> {
    let t = app.theme();
    let muted = t.style(Element::Footer);
    let style = vm_style(t, v);
    let mut out: Vec<Line> = Vec::with_capacity(max.min(64));
    let vlan = v.vlan.map(|x| format!(" (VLAN {x})")).unwrap_or_default();
    out.push(Line::from(vec![
        Span::styled(v.model.as_str().to_uppercase(), t.style(Element::KeyHint)),
        Span::raw(format!(
            " · {}{vlan} · {}",
            v.network,
            if v.ip.is_empty() { "no IP" } else { &v.ip }
        )),
        Span::styled(
            v.owner
                .as_deref()
                .map(|o| format!(" · owner {o}"))
                .unwrap_or_default(),
            muted,
        ),
        Span::styled(format!(" · {}", v.migration_type.as_str()), muted),
    ]));
    let mut status = vec![
        Span::styled(v.step.label(), style),
        Span::styled(format!(" {}", status_word(v)), style),
    ];
    if let Some(p) = v.progress {
        status.push(Span::raw(format!(" {:.0}%", p * 100.0)));
    }
    if let Some(r) = status_reason(&v.status) {
        status.push(Span::styled(format!(": {r}"), style));
    } else if !v.message.is_empty() {
        status.push(Span::styled(format!(" — {}", v.message), muted));
    }
    if let Some(b) = &v.backend_step {
        // The import backend's own step (Forklift's step names).
        status.push(Span::styled(format!(" · Forklift step {b}"), muted));
    }
    if let Some(n) = &v.node {
        status.push(Span::styled(format!(" · node {n}"), muted));
    }
    if let Some(ms) = v.downtime_ms {
        status.push(Span::styled(
            format!(" · downtime {}", fmt_duration(ms as i64)),
            muted,
        ));
    }
    out.push(Line::from(status));
    if !v.after.is_empty() {
        out.push(Line::from(Span::styled(
            format!("after: {}", v.after.join(", ")),
            muted,
        )));
    }

    // Pipeline: every step as a cell (time entered, how long it took), packed in columns.
    out.push(heading(app, "Pipeline"));
    const CELL: usize = 34;
    let per_line = (width / CELL).max(1);
    let rollback = v.entered[step_index(Step::RollingBack)].is_some();
    let mut line: Vec<Span> = Vec::with_capacity(per_line * 3);
    let mut in_line = 0;
    for (k, step) in Step::ALL.iter().enumerate() {
        let rb = matches!(step, Step::RollingBack | Step::RolledBack);
        if rb && !rollback {
            continue;
        }
        if *step == Step::Cancelled && v.step != Step::Cancelled {
            continue;
        }
        // Only a warm VM copies while its source runs.
        if *step == Step::Precopy && v.migration_type != crate::plan::Migration::Warm {
            continue;
        }
        let cell: [Span; 3] = match v.entered[k] {
            None if *step < v.step && !rb && v.step != Step::Cancelled => [
                Span::styled("  ✓ ", muted),
                Span::styled(format!("{:<13}", step.label()), muted),
                Span::raw(" ".repeat(CELL - 17)),
            ],
            None => [
                Span::styled("  · ", muted),
                Span::styled(format!("{:<13}", step.label()), muted),
                Span::raw(" ".repeat(CELL - 17)),
            ],
            Some(at) => {
                let next = Step::ALL[k + 1..]
                    .iter()
                    .filter_map(|s| v.entered[step_index(*s)])
                    .find(|&x| x >= at);
                let current = *step == v.step;
                let finished = matches!(*step, Step::Verified | Step::RolledBack | Step::Cancelled);
                let (mark, mstyle) = if current && v.failed() {
                    ("  ✗ ", t.style(Element::StatusFail))
                } else if current && !finished {
                    ("  ▸ ", t.style(Element::StatusRunning))
                } else {
                    ("  ✓ ", t.style(Element::StatusOk))
                };
                let took = match (next, current) {
                    _ if current && finished => String::new(),
                    (Some(n), false) => fmt_duration(n - at),
                    _ => format!("{}…", fmt_duration(app.ui().now_ms - at)),
                };
                let time = format!("{} {took}", fmt_hms(at));
                [
                    Span::styled(mark, mstyle),
                    Span::raw(format!("{:<13}", step.label())),
                    Span::styled(format!("{time:<w$}", w = CELL - 17), muted),
                ]
            }
        };
        line.extend(cell);
        in_line += 1;
        if in_line == per_line {
            out.push(Line::from(std::mem::take(&mut line)));
            in_line = 0;
        }
    }
    if !line.is_empty() {
        out.push(Line::from(line));
    }

    if !v.checks.is_empty() {
        out.push(heading(app, "Checks"));
        for c in &v.checks {
            let mut spans = vec![
                Span::styled(
                    format!("  {} ", c.outcome.symbol()),
                    check_style(t, c.outcome),
                ),
                Span::raw(format!("{:<16}", clip(&c.name, 16))),
            ];
            if let Some(l) = c.latency_ms {
                spans.push(Span::styled(format!(" {l}ms"), muted));
            }
            if !c.detail.is_empty() {
                spans.push(Span::styled(format!(" {}", c.detail), muted));
            }
            out.push(Line::from(spans));
        }
    }

    if let Some(m) = &v.migration {
        out.push(heading(app, "Live migration"));
        out.push(Line::from(vec![
            Span::raw(format!(
                "  {} {} {} → {}",
                m.name,
                m.phase,
                m.source_node.as_deref().unwrap_or("?"),
                m.target_node.as_deref().unwrap_or("?")
            )),
            Span::styled(
                format!(
                    "  {} · {}/{} probes lost",
                    fmt_duration(m.duration_ms(app.ui().now_ms)),
                    m.lost_probes,
                    m.sent_probes
                ),
                muted,
            ),
        ]));
    }

    if !v.conditions.is_empty() {
        out.push(heading(app, "Conditions"));
        for c in &v.conditions {
            let st = if c.status == "True" {
                t.style(Element::StatusOk)
            } else {
                t.style(Element::LogWarn)
            };
            out.push(Line::from(vec![
                Span::raw(format!("  {} ", c.object)),
                Span::styled(format!("{}={}", c.type_, c.status), st),
                Span::styled(format!(" {}: {}", c.reason, c.message), muted),
            ]));
        }
    }

    if !v.events.is_empty() {
        out.push(heading(app, "Recent events"));
        for e in &v.events {
            out.push(Line::from(vec![
                Span::styled(format!("  {} ", fmt_hms(e.at_ms)), muted),
                Span::raw(format!("{} {}", e.object, e.reason)),
                Span::styled(format!(": {}", e.message), muted),
            ]));
        }
    }

    if let Some(blast) = &app.session().blast {
        let refs = blast.refs(&v.name);
        out.push(heading(app, "Blast radius"));
        if refs.is_empty() {
            out.push(Line::from(Span::styled(
                "  no references in the report",
                muted,
            )));
        }
        for r in refs {
            out.push(Line::from(vec![
                Span::raw(format!("  {}:{} ", r.file, r.line)),
                Span::styled(r.kind.as_str(), t.style(Element::KeyHint)),
                Span::styled(
                    r.owner
                        .as_deref()
                        .map(|o| format!(" ({o})"))
                        .unwrap_or_default(),
                    muted,
                ),
            ]));
        }
    }
    if let Some(p) = app
        .session()
        .policies
        .as_ref()
        .and_then(|d| d.vms.get(&v.name).map(|vp| (d, vp)))
    {
        let (data, vp) = p;
        let what = if data.mode == "apply" {
            "applied once verified"
        } else {
            "draft, not applied"
        };
        out.push(heading(app, "Network policy"));
        out.push(Line::from(vec![
            Span::raw(format!("  {}", vp.object)),
            Span::styled(format!("  ({what})"), muted),
        ]));
        for r in &vp.rules {
            out.push(Line::from(Span::styled(format!("  {r}"), muted)));
        }
        for (check, by) in &vp.checks {
            match by {
                Some(rules) => out.push(Line::from(vec![
                    Span::styled("  ✓ ", t.style(Element::StatusOk)),
                    Span::raw(format!("{check:<16}")),
                    Span::styled(format!(" admitted by {}", rules.join("; ")), muted),
                ])),
                None => out.push(Line::from(vec![
                    Span::styled("  ✗ ", t.style(Element::StatusFail)),
                    Span::raw(format!("{check:<16}")),
                    Span::styled(" blocked: no rule admits its probe", muted),
                ])),
            }
            // What the VM's clients rely on for the check's service (the probe may pass
            // only through wavelift's own probe rule).
            let Some(s) = vp.services.iter().find(|s| s.check == *check) else {
                continue;
            };
            for r in &s.rules {
                out.push(Line::from(Span::styled(
                    format!("      {} for its clients: {r}", s.service),
                    muted,
                )));
            }
            if s.rules.is_empty() {
                let why = if by.is_some() {
                    "; the check passes only through wavelift's probe rule"
                } else {
                    ""
                };
                out.push(Line::from(Span::styled(
                    format!("      {}: no firewall rule admits it{why}", s.service),
                    t.style(Element::LogWarn),
                )));
            }
        }
        for w in &vp.warnings {
            out.push(Line::from(Span::styled(
                format!("  ! {w}"),
                t.style(Element::LogWarn),
            )));
        }
    }
    if out.len() > max && max > 0 {
        out.truncate(max - 1);
        out.push(Line::from(Span::styled(
            "  … (taller terminal shows more)",
            muted,
        )));
    }
    out
}
