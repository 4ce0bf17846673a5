//! [`ListCursor`]: the selected row of a list on screen and the first row shown.

use std::ops::Range;

/// A cursor over a list: the selected row (`index`) and the first visible row
/// (`offset`). The list itself lives elsewhere; every method takes its length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListCursor {
    pub index: usize,
    pub offset: usize,
}

impl ListCursor {
    /// A cursor on row `index`, showing the list from the top.
    pub fn at(index: usize) -> ListCursor {
        ListCursor { index, offset: 0 }
    }

    /// Back to the first row, scrolled to the top.
    pub fn reset(&mut self) {
        *self = ListCursor::default();
    }

    /// Moves `delta` rows (clamped to the list; `i64::MIN / 2` and `i64::MAX / 2` reach
    /// the ends).
    pub fn step(&mut self, delta: i64, len: usize) {
        self.index = if len == 0 {
            0
        } else {
            (self.index as i64)
                .saturating_add(delta)
                .clamp(0, len as i64 - 1) as usize
        };
    }

    /// Selects the `k`-th visible row, if the list has it.
    pub fn click(&mut self, k: usize, len: usize) {
        if self.offset + k < len {
            self.index = self.offset + k;
        }
    }

    /// After the list was rebuilt as `order`: keeps `selected` (the item that was under
    /// the cursor) under it, else keeps the row number, clamped.
    pub fn follow(&mut self, order: &[usize], selected: Option<usize>) {
        if let Some(s) = selected {
            if order.get(self.index) == Some(&s) {
                return;
            }
            if let Some(p) = order.iter().position(|&i| i == s) {
                self.index = p;
                return;
            }
        }
        self.index = self.index.min(order.len().saturating_sub(1));
    }

    /// The rows a window of `rows` rows shows of a list of `len`, and the cursor's place
    /// in that window (when it is in it).
    pub fn window(&self, rows: usize, len: usize) -> (Range<usize>, Option<usize>) {
        let start = self.offset.min(len);
        let end = (start + rows).min(len);
        let selected = (start..end)
            .contains(&self.index)
            .then(|| self.index - start);
        (start..end, selected)
    }

    /// Moves the window of `rows` visible rows just enough to show the cursor.
    pub fn scroll_into_view(&mut self, rows: usize, len: usize) {
        let offset = if self.index < self.offset {
            self.index
        } else if self.index >= self.offset + rows {
            self.index + 1 - rows
        } else {
            self.offset
        };
        self.offset = offset.min(len.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stay_inside_the_list() {
        let mut c = ListCursor::default();
        c.step(-1, 5);
        assert_eq!(c.index, 0);
        c.step(i64::MAX / 2, 5);
        assert_eq!(c.index, 4);
        c.step(1, 0);
        assert_eq!(c.index, 0);
    }

    #[test]
    fn follows_the_selected_item_and_scrolls_to_it() {
        let mut c = ListCursor::at(1);
        c.follow(&[7, 3, 5], Some(5));
        assert_eq!(c.index, 2);
        c.follow(&[7], Some(5));
        assert_eq!(c.index, 0, "gone: clamped");
        let mut c = ListCursor::at(9);
        c.scroll_into_view(4, 10);
        assert_eq!(c.offset, 6);
        c.index = 2;
        c.scroll_into_view(4, 10);
        assert_eq!(c.offset, 2);
        c.click(1, 10);
        assert_eq!(c.index, 3);
        c.click(20, 10);
        assert_eq!(c.index, 3, "no such row");
        assert_eq!(c.window(4, 10), (2..6, Some(1)));
        assert_eq!(c.window(4, 3), (2..3, None));
    }
}
