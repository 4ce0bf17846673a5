//! The interactive TUI (`wavelift tui PLAN`).
//!
//! - [`app`]: the state ([`App`]: session, fleet, UI state) and how engine events change it;
//! - [`action`]: [`Action`]s and [`Effect`]s; [`update()`]: the pure step between them;
//! - [`keys`]: the key table (drives lookup, footer and `?` help); [`command`]: `:` commands;
//! - [`layout`]: where things go on the screen (pure sizing, shared by state and view);
//! - [`view`]: the pure [`render`];
//! - [`event_loop`]: [`run`], one `tokio::select!` over terminal events, engine events, a
//!   frame cap, a clock tick, signals and cancellation; [`terminal`]: raw mode,
//!   alternate screen, restore on quit, panic, signals and suspend;
//! - [`theme`]: theme loading (the file format is `docs/themes.md`).
pub(crate) mod action;
pub mod app;
pub(crate) mod blast;
pub(crate) mod command;
pub mod event_loop;
pub mod keys;
pub(crate) mod layout;
pub mod policy;
pub(crate) mod report;
pub(crate) mod setup;
pub(crate) mod terminal;
pub mod theme;
pub(crate) mod update;
pub mod view;

pub use action::{Action, Effect};
pub use app::{App, TargetInfo, TuiOptions, View};
pub use blast::BlastData;
pub use event_loop::{run, run_with_cancel};
pub use update::update;
pub use view::render;
