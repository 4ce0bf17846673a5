//! The log pane (VMs view) and the Log view: engine log lines, newest at the bottom.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::widgets::{block, fmt_hms, level_word, log_style};
use crate::tui::app::{App, LogLine};
use crate::tui::theme::Element;

fn line<'a>(app: &'a App, l: &'a LogLine) -> Line<'a> {
    let t = app.theme();
    let muted = t.style(Element::Footer);
    let mut spans = vec![
        Span::styled(fmt_hms(l.at_ms), muted),
        Span::styled(format!(" {} ", level_word(l.level)), log_style(t, l.level)),
    ];
    if !l.vm.is_empty() {
        spans.push(Span::styled(
            format!("{} ", l.vm),
            t.style(Element::KeyHint),
        ));
    }
    spans.push(Span::styled(l.text.as_str(), t.style(Element::Log)));
    Line::from(spans)
}

/// The last lines that fit (`scroll` lines up from the end).
fn tail(app: &App, rows: usize, scroll: usize) -> Vec<Line<'_>> {
    let end = app.fleet().log().len().saturating_sub(scroll);
    let start = end.saturating_sub(rows);
    app.fleet()
        .log()
        .range(start..end)
        .map(|l| line(app, l))
        .collect()
}

/// The log pane of the VMs view.
pub fn render_pane(app: &App, frame: &mut Frame, area: Rect, focused: bool) {
    let rows = area.height.saturating_sub(2) as usize;
    let p = Paragraph::new(tail(app, rows, 0))
        .style(app.theme().style(Element::Log))
        .block(block(app, " Log ", focused));
    frame.render_widget(p, area);
}

/// The Log view: the whole log with scrollback.
pub fn render_view(app: &App, frame: &mut Frame, area: Rect) {
    let rows = area.height.saturating_sub(2) as usize;
    let title = if app.ui().log_scroll > 0 {
        format!(
            " Log · {} lines · {} up (G follows) ",
            app.fleet().log().len(),
            app.ui().log_scroll
        )
    } else {
        format!(" Log · {} lines · following ", app.fleet().log().len())
    };
    let p = Paragraph::new(tail(app, rows, app.ui().log_scroll))
        .style(app.theme().style(Element::Log))
        .block(block(app, title, true));
    frame.render_widget(p, area);
}
