//! The interactive TUI (`wavelift tui PLAN`).
//!
//! - [`app`]: the state ([`App`]) and how engine events change it;
//! - [`action`]: [`Action`]s, [`Effect`]s and the pure [`update`];
//! - [`keys`]: the key table (drives lookup, footer and `?` help); [`command`]: `:` commands;
//! - [`view`]: the pure [`render`] and the layout;
//! - [`event_loop`]: [`run`], one `tokio::select!` over terminal events, engine events, a
//!   frame cap, a clock tick, signals and cancellation; [`terminal`]: raw mode,
//!   alternate screen, restore on quit, panic, signals and suspend;
//! - [`theme`]: theme loading (see its docs for the file format).
pub mod action;
pub mod app;
pub mod blast;
pub mod command;
pub mod event_loop;
pub mod keys;
pub mod report;
pub mod setup;
pub mod terminal;
pub mod theme;
pub mod view;

pub use action::{update, Action, Effect};
pub use app::{App, TargetInfo, TuiOptions, View};
pub use blast::BlastData;
pub use event_loop::{run, run_with_cancel};
pub use view::render;
