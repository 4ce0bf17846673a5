//! Pop-ups over the view: the `?` help (generated from the key table and the command
//! list), confirmation dialogs, messages.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::widgets::block;
use crate::tui::app::{App, Popup};
use crate::tui::command::COMMANDS;
use crate::tui::keys;
use crate::tui::theme::Element;

/// A rectangle of at most `w`×`h` centred in `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    match &app.ui().popup {
        None => {}
        Some(Popup::Help { scroll }) => help(app, frame, area, *scroll),
        Some(Popup::Confirm(c)) => {
            let t = app.theme();
            let mut lines: Vec<Line> = vec![Line::default()];
            lines.extend(c.body.iter().map(|l| Line::from(format!(" {l}"))));
            lines.push(Line::default());
            if let Some(name) = &c.type_to_confirm {
                let ok = c.typed == *name;
                lines.push(Line::from(vec![
                    Span::raw(" > "),
                    Span::styled(c.typed.as_str(), t.style(Element::CommandLine)),
                    Span::styled("█", t.style(Element::KeyHint)),
                    Span::styled(
                        if ok { "  Enter confirms" } else { "" },
                        t.style(Element::StatusOk),
                    ),
                ]));
                lines.push(Line::from(Span::styled(
                    " Enter confirms once the name matches · Esc cancels",
                    t.style(Element::Footer),
                )));
            } else {
                lines.push(Line::from(vec![
                    Span::styled(" y", t.style(Element::KeyHint)),
                    Span::styled("/Enter confirm · ", t.style(Element::Footer)),
                    Span::styled("n", t.style(Element::KeyHint)),
                    Span::styled("/Esc cancel", t.style(Element::Footer)),
                ]));
            }
            let w = lines
                .iter()
                .map(|l| l.width())
                .max()
                .unwrap_or(0)
                .max(c.title.len() + 4) as u16
                + 4;
            let rect = centered(area, w.max(40), lines.len() as u16 + 2);
            frame.render_widget(Clear, rect);
            frame.render_widget(
                Paragraph::new(lines)
                    .style(t.style(Element::Popup))
                    .block(block(app, format!(" {} ", c.title), true)),
                rect,
            );
        }
        Some(Popup::Message { title, text }) => {
            let rect = centered(area, 70, (text.lines().count() as u16 + 4).min(20));
            frame.render_widget(Clear, rect);
            frame.render_widget(
                Paragraph::new(format!("{text}\n\n(any key closes)"))
                    .wrap(Wrap { trim: false })
                    .style(app.theme().style(Element::Popup))
                    .block(block(app, format!(" {title} "), true)),
                rect,
            );
        }
    }
}

/// The help overlay's lines (also used by tests).
pub fn help_lines(app: &App) -> Vec<Line<'static>> {
    let t = app.theme();
    let mut lines: Vec<Line> = Vec::new();
    if app.session().read_only {
        lines.push(Line::from(Span::styled(
            "READ-ONLY: dangerous actions are disabled",
            t.style(Element::Banner),
        )));
    }
    lines.push(Line::from(Span::styled(
        "Keys (from the key table)",
        t.style(Element::TableHeader),
    )));
    for (label, desc, views, note) in keys::help_rows(app.session().read_only) {
        let note_style = if note.starts_with("disabled") {
            t.style(Element::StatusPending)
        } else {
            t.style(Element::LogWarn)
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {label:<12}"), t.style(Element::KeyHint)),
            Span::raw(format!("{desc:<55}")),
            Span::styled(format!(" {views:<21} "), t.style(Element::Footer)),
            Span::styled(note.to_string(), note_style),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        "Commands (: then Tab completes)",
        t.style(Element::TableHeader),
    )));
    for (name, aliases, _, desc) in COMMANDS {
        let alias = if aliases.is_empty() {
            String::new()
        } else {
            format!(" ({})", aliases.join(", "))
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!(" :{:<18}", format!("{name}{alias}")),
                t.style(Element::KeyHint),
            ),
            Span::raw(desc.to_string()),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        "Quitting never loses work: the migration state lives in the cluster.",
        t.style(Element::Footer),
    )));
    lines
}

fn help(app: &App, frame: &mut Frame, area: Rect, scroll: u16) {
    let lines = help_lines(app);
    let rect = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .style(app.theme().style(Element::Help))
            .block(block(app, " Help · j/k scroll · Esc closes ", true)),
        rect,
    );
}
