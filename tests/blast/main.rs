//! Inventory import (`wavelift plan init`) and blast radius over generated sources. One
//! test binary (each links the whole crate); the modules are the former `tests/*.rs` files.

#[path = "../common/mod.rs"]
mod common;
mod hostile;
mod inventory_import;
mod sources;
