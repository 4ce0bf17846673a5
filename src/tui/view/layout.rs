//! Where things go on the screen. Pure functions of the terminal size and the app, used
//! by rendering and by [`super::super::action::update`] (page size, mouse clicks), so
//! both always agree.

use ratatui::layout::Rect;

use crate::tui::app::{App, View};

/// Rows of the header.
pub const HEADER_ROWS: u16 = 3;

/// The frame's top-level areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAreas {
    pub header: Rect,
    pub banner: Option<Rect>,
    pub body: Rect,
    pub footer: Rect,
}

/// Splits `area` into `rows` rows from the top and the rest.
pub fn take_top(area: Rect, rows: u16) -> (Rect, Rect) {
    let rows = rows.min(area.height);
    (
        Rect {
            height: rows,
            ..area
        },
        Rect {
            y: area.y + rows,
            height: area.height - rows,
            ..area
        },
    )
}

/// Splits `area` into `rows` rows from the bottom and the rest (rest first).
pub fn take_bottom(area: Rect, rows: u16) -> (Rect, Rect) {
    let rows = rows.min(area.height);
    take_top(area, area.height - rows)
}

/// Splits `area` into a left part of `cols` columns and the rest.
pub fn take_left(area: Rect, cols: u16) -> (Rect, Rect) {
    let cols = cols.min(area.width);
    (
        Rect {
            width: cols,
            ..area
        },
        Rect {
            x: area.x + cols,
            width: area.width - cols,
            ..area
        },
    )
}

pub fn frame_areas(app: &App, area: Rect) -> FrameAreas {
    let (header, rest) = take_top(area, HEADER_ROWS);
    let (banner, rest) = if app.banner.is_some() {
        let (b, r) = take_top(rest, 1);
        (Some(b), r)
    } else {
        (None, rest)
    };
    let (body, footer) = take_bottom(rest, 1);
    FrameAreas {
        header,
        banner,
        body,
        footer,
    }
}

/// The VMs view: table on top, detail and log panes below, side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmsAreas {
    pub table: Rect,
    pub detail: Rect,
    pub log: Rect,
}

/// `rows`: how many VM rows there are (the table shrinks to fit them).
pub fn vms_areas(body: Rect, rows: usize) -> VmsAreas {
    let most = (body.height * 11 / 20).max(6.min(body.height));
    let table_rows =
        (rows.saturating_add(3).min(u16::MAX as usize) as u16).clamp(6.min(most), most);
    let (table, bottom) = take_top(body, table_rows);
    let (detail, log) = take_left(bottom, bottom.width * 3 / 5);
    VmsAreas { table, detail, log }
}

/// The Checks view: matrix on top, the selected VM's check details below.
pub fn checks_areas(body: Rect, rows: usize) -> (Rect, Rect) {
    let detail = (body.height / 3).clamp(3.min(body.height), 10);
    let most = body.height - detail;
    let table = (rows.saturating_add(3).min(u16::MAX as usize) as u16).clamp(6.min(most), most);
    take_top(body, table)
}

/// The Waves view: wave table on top, plan summary below.
pub fn waves_areas(body: Rect, waves: usize) -> (Rect, Rect) {
    let most = body.height - 7.min(body.height / 2);
    let table = (waves.saturating_add(3).min(u16::MAX as usize) as u16).clamp(5.min(most), most);
    take_top(body, table)
}

fn screen(app: &App) -> Rect {
    Rect::new(0, 0, app.size.0, app.size.1)
}

/// The bordered table of the current view (with its header row), if it has one.
pub fn table_area(app: &App) -> Option<Rect> {
    let body = frame_areas(app, screen(app)).body;
    match app.view {
        View::Waves => Some(waves_areas(body, app.waves.len()).0),
        View::Vms => Some(vms_areas(body, app.order.len()).table),
        View::Checks => Some(checks_areas(body, app.order.len()).0),
        View::Migrations => Some(body),
        View::Log => None,
    }
}

/// The rows area of the current view's table (inside the border, below the header).
pub fn first_row_area(app: &App) -> Option<Rect> {
    let t = table_area(app)?;
    if t.height < 4 || t.width < 2 {
        return None;
    }
    Some(Rect::new(t.x + 1, t.y + 2, t.width - 2, t.height - 3))
}

/// How many rows the current view's list shows (the log's lines for the Log view).
pub fn list_rows(app: &App) -> usize {
    match app.view {
        View::Log => frame_areas(app, screen(app)).body.height.saturating_sub(2) as usize,
        _ => first_row_area(app).map_or(0, |r| r.height as usize),
    }
}
