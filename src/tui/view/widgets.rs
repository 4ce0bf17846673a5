//! Small drawing helpers shared by the views: themed blocks, the text progress bar,
//! status styles, and time formatting (from values in the app: never the clock).

use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

use crate::checks::result::Outcome;
use crate::engine::{LogLevel, Status, Step};
use crate::tui::app::{App, CheckOutcome, VmState};
use crate::tui::theme::{Element, Slot, Theme};

/// Marks the selected row whatever the colours (`NO_COLOR` has none).
pub const HIGHLIGHT_SYMBOL: &str = "▶ ";

const BAR_FULL: &str = "████████████████████████████████████████";
const BAR_EMPTY: &str = "░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░";
/// Longest progress bar, in cells.
pub const BAR_MAX: usize = 40;

/// A bordered pane with a title, in the theme's colours.
pub fn block<'a>(app: &App, title: impl Into<ratatui::text::Line<'a>>, focused: bool) -> Block<'a> {
    let t = app.theme();
    let border = if focused {
        Element::BorderFocused
    } else {
        Element::Border
    };
    Block::default()
        .borders(Borders::ALL)
        .border_type(t.border_type())
        .border_style(t.style(border))
        .title(title.into().style(t.style(Element::Title)))
}

/// A text progress bar of `width` cells (filled `█`, empty `░`): two spans, no allocation.
pub fn bar(theme: &Theme, fraction: f64, width: usize) -> [Span<'static>; 2] {
    let width = width.min(BAR_MAX);
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    // Every bar character is 3 bytes in UTF-8.
    [
        Span::styled(
            &BAR_FULL[..filled * 3],
            Style::default().fg(theme.slot(Slot::Gauge)),
        ),
        Span::styled(
            &BAR_EMPTY[..(width - filled) * 3],
            Style::default().fg(theme.slot(Slot::GaugeBg)),
        ),
    ]
}

/// Style of a VM's step cell.
pub fn vm_style(theme: &Theme, vm: &VmState) -> Style {
    match (&vm.status, vm.step) {
        (Status::Failed(_), _) => theme.style(Element::StatusFail),
        (Status::Blocked(_), _) => theme.style(Element::LogWarn),
        (Status::Paused, _) | (_, Step::Pending) | (_, Step::RolledBack) | (_, Step::Cancelled) => {
            theme.style(Element::StatusPending)
        }
        (_, Step::Verified) => theme.style(Element::StatusOk),
        _ => theme.style(Element::StatusRunning),
    }
}

/// Short word for a VM's status (`done` once verified, rolled back or cancelled: the step
/// column says which).
pub fn status_word(vm: &VmState) -> &'static str {
    match &vm.status {
        Status::Active
            if matches!(vm.step, Step::Verified | Step::RolledBack | Step::Cancelled) =>
        {
            "done"
        }
        Status::Active if vm.step == Step::Pending => "pending",
        Status::Active => "active",
        Status::Waiting(_) => "waiting",
        Status::Blocked(_) => "blocked",
        Status::Failed(_) => "FAILED",
        Status::Paused => "paused",
    }
}

/// The reason carried by a status, if any.
pub fn status_reason(status: &Status) -> Option<&str> {
    match status {
        Status::Waiting(r) | Status::Blocked(r) | Status::Failed(r) => Some(r),
        _ => None,
    }
}

pub fn check_style(theme: &Theme, o: CheckOutcome) -> Style {
    match o {
        CheckOutcome::Reported(Outcome::Pass) => theme.style(Element::StatusOk),
        CheckOutcome::Reported(Outcome::Fail | Outcome::Error) => theme.style(Element::StatusFail),
        CheckOutcome::Pending | CheckOutcome::Reported(Outcome::Skipped) => {
            theme.style(Element::StatusPending)
        }
    }
}

pub fn log_style(theme: &Theme, level: LogLevel) -> Style {
    match level {
        LogLevel::Info => theme.style(Element::LogInfo),
        LogLevel::Warn => theme.style(Element::LogWarn),
        LogLevel::Error => theme.style(Element::LogError),
    }
}

pub fn level_word(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Info => "INFO ",
        LogLevel::Warn => "WARN ",
        LogLevel::Error => "ERROR",
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `HH:MM:SS` (UTC) of unix ms.
pub fn fmt_hms(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of unix ms.
pub fn fmt_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02} {}", fmt_hms(ms))
}

/// `YYYY-MM-DD HH:MM` (UTC) of unix seconds.
pub fn fmt_minute(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", s / 3600, s / 60 % 60)
}

/// A compact duration: `850ms`, `12s`, `3m05s`, `1h02m`, `2d03h`.
pub fn fmt_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// `3d 04:05:06` / `04:05:06` for a countdown in seconds.
pub fn fmt_countdown(secs: i64) -> String {
    let secs = secs.max(0);
    let hms = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    if secs >= 86_400 {
        format!("{}d {hms}", secs / 86_400)
    } else {
        hms
    }
}

/// The wave window relative to `now_ms`.
pub fn window_text(window: Option<(i64, i64)>, now_ms: i64) -> String {
    let now = now_ms.div_euclid(1000);
    match window {
        None => "no window".to_string(),
        Some((start, _)) if now < start => {
            format!("window opens in {}", fmt_countdown(start - now))
        }
        Some((_, end)) if now < end => format!("window closes in {}", fmt_countdown(end - now)),
        Some(_) => "window closed".to_string(),
    }
}

/// Truncates to `width` characters, with `…` when cut.
pub fn clip(s: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if s.chars().count() <= width {
        std::borrow::Cow::Borrowed(s)
    } else if width == 0 {
        std::borrow::Cow::Borrowed("")
    } else {
        let mut out: String = s.chars().take(width - 1).collect();
        out.push('…');
        std::borrow::Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(fmt_utc(1_796_508_000_000), "2026-12-05 22:00:00");
        assert_eq!(fmt_minute(1_796_508_000), "2026-12-05 22:00");
        assert_eq!(fmt_duration(850), "850ms");
        assert_eq!(fmt_duration(185_000), "3m05s");
        assert_eq!(fmt_countdown(90_061), "1d 01:01:01");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
