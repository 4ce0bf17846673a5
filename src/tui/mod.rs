//! The interactive TUI. Theme loading lives here; the TUI itself is its own issue.
pub mod theme;
