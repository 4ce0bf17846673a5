//! Where things go on the screen: pure functions of rectangles and row counts, used by
//! rendering and by the state (page size, scrolling, mouse clicks; see
//! [`super::app::App::table_area`]), so both always agree.

use ratatui::layout::Rect;

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

/// The frame's areas; `banner`: a banner line is shown under the header.
pub fn frame_areas(area: Rect, banner: bool) -> FrameAreas {
    let (header, rest) = take_top(area, HEADER_ROWS);
    let (banner, rest) = if banner {
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

/// The rows area of a bordered table with a header row (inside the border, below the
/// header), if there is room for one.
pub fn rows_area(table: Rect) -> Option<Rect> {
    if table.height < 4 || table.width < 2 {
        return None;
    }
    Some(Rect::new(
        table.x + 1,
        table.y + 2,
        table.width - 2,
        table.height - 3,
    ))
}
