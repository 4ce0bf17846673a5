//! The footer: the text being typed (`/` filter, `:` command line with completions),
//! else the last action's message and the current view's keys (from the key table).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::{App, InputMode};
use crate::tui::keys;
use crate::tui::theme::Element;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let t = app.theme();
    let muted = t.style(Element::Footer);
    let key = t.style(Element::KeyHint);
    let mut spans: Vec<Span> = Vec::with_capacity(48);
    let ui = app.ui();
    match ui.input {
        InputMode::Filter => {
            spans.push(Span::styled(" /", key));
            spans.push(Span::styled(
                ui.filter.as_str(),
                t.style(Element::CommandLine),
            ));
            spans.push(Span::styled("█", key));
            spans.push(Span::styled(
                format!("  {} match  Enter keep · Esc clear", ui.order.len()),
                muted,
            ));
        }
        InputMode::Command => {
            spans.push(Span::styled(" :", key));
            spans.push(Span::styled(
                ui.command.as_str(),
                t.style(Element::CommandLine),
            ));
            spans.push(Span::styled("█", key));
            if ui.completions.is_empty() {
                spans.push(Span::styled(
                    "  Tab completes · Enter runs · Esc cancels",
                    muted,
                ));
            } else {
                spans.push(Span::styled(
                    format!("  {}", ui.completions.join("  ")),
                    muted,
                ));
            }
        }
        InputMode::Normal => {
            if app.session().read_only {
                spans.push(Span::styled(" READ-ONLY ", t.style(Element::Banner)));
            }
            if let Some(flash) = &ui.flash {
                spans.push(Span::styled(
                    format!(" {flash} "),
                    t.style(Element::LogWarn),
                ));
                spans.push(Span::styled("│", muted));
            } else if !ui.filter.is_empty() {
                spans.push(Span::styled(
                    format!(" filter: {} ", ui.filter),
                    t.style(Element::LogWarn),
                ));
                spans.push(Span::styled("│", muted));
            }
            for b in keys::footer_bindings(ui.view, app.session().read_only) {
                spans.push(Span::styled(format!(" {}", b.keys_short()), key));
                spans.push(Span::styled(format!(" {}", b.hint), muted));
            }
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(muted), area);
}
