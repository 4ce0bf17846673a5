//! Drawing. [`render`] is a pure function of the [`App`]: no I/O, no clock, no state
//! changes (the clock comes in as `App::now_ms`). Tables are virtualised: only the
//! visible rows are turned into widgets, so a frame costs the same for 50 or 5,000 VMs.

pub mod checks;
pub mod footer;
pub mod header;
pub mod log;
pub mod migrations;
pub mod popup;
pub mod table;
pub mod vms;
pub mod waves;
pub mod widgets;

use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::{App, View};
use super::layout;
use super::theme::Element;

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let buf = frame.buffer_mut();
    buf.set_style(area, app.theme().style(Element::Screen));
    let areas = layout::frame_areas(area, app.ui().banner.is_some());
    header::render(app, frame, areas.header);
    if let (Some(rect), Some(text)) = (areas.banner, app.ui().banner.as_deref()) {
        let line = text.lines().next().unwrap_or("");
        frame.render_widget(
            Paragraph::new(Line::from(format!(" ⚠ {line}  (Esc dismisses)")))
                .style(app.theme().style(Element::Banner)),
            rect,
        );
    }
    match app.ui().view {
        View::Waves => waves::render(app, frame, areas.body),
        View::Vms => vms::render(app, frame, areas.body),
        View::Checks => checks::render(app, frame, areas.body),
        View::Migrations => migrations::render(app, frame, areas.body),
        View::Log => log::render_view(app, frame, areas.body),
    }
    footer::render(app, frame, areas.footer);
    popup::render(app, frame, area);
}
