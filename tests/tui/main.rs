//! The TUI: render snapshots, key flows, themes, and the real binary in tmux. One test
//! binary (each links the whole crate); the modules are the former `tests/*.rs` files.

#[path = "../common/mod.rs"]
mod common;
mod e2e;
mod flow;
mod forklift;
mod hostile;
mod render;
mod themes;
