//! A virtualised table: the caller hands over only the visible rows, and columns that do
//! not fit the width are dropped by priority instead of being squeezed.

use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{HighlightSpacing, Row, Table, TableState};
use ratatui::Frame;

use super::widgets::{block, HIGHLIGHT_SYMBOL};
use crate::tui::app::App;
use crate::tui::theme::Element;

/// A column: header, width in cells, priority (higher survives longer on narrow screens).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub title: &'static str,
    pub width: u16,
    pub priority: u8,
}

/// Which columns fit in `width` cells (column gap 1, highlight symbol 2, borders 2).
pub fn fit<const N: usize>(cols: &[Col; N], width: u16) -> [bool; N] {
    let mut keep = [true; N];
    let avail = width.saturating_sub(2 + 2) as usize;
    loop {
        let used: usize = cols
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(c, _)| c.width as usize + 1)
            .sum();
        if used <= avail + 1 {
            return keep;
        }
        let drop = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| keep[*i])
            .min_by_key(|(i, c)| (c.priority, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        match drop {
            Some(i) if keep.iter().filter(|k| **k).count() > 1 => keep[i] = false,
            _ => return keep,
        }
    }
}

/// Draws a bordered table of already-visible `rows`, `selected` relative to them.
#[allow(clippy::too_many_arguments)]
pub fn draw<const N: usize>(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    title: String,
    cols: &[Col; N],
    keep: &[bool; N],
    rows: Vec<Row<'_>>,
    selected: Option<usize>,
) {
    let t = app.theme();
    let header = Row::new(
        cols.iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c.title),
    )
    .style(t.style(Element::TableHeader));
    let widths: Vec<Constraint> = cols
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(c, _)| Constraint::Length(c.width))
        .collect();
    let table = Table::new(rows, widths)
        .header(header)
        .block(block(app, title, true))
        .style(t.style(Element::TableRow))
        .row_highlight_style(t.style(Element::TableSelected))
        .highlight_symbol(HIGHLIGHT_SYMBOL)
        .highlight_spacing(HighlightSpacing::Always)
        .column_spacing(1);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

/// Filters a row's cells by the kept columns.
pub fn keep_cells<'a, T, const N: usize>(
    cells: [T; N],
    keep: &[bool; N],
) -> impl Iterator<Item = T> + 'a
where
    T: 'a,
{
    let keep = *keep;
    cells
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(c, _)| c)
}
