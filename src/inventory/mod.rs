//! Inventory import: RVTools (xlsx/csv) and govc JSON → plan skeleton.
//!
//! ```no_run
//! let out = wavelift::inventory::plan_init("RVTools_export.xlsx".as_ref(), None).unwrap();
//! std::fs::write("plans/new.toml", &out.toml).unwrap();
//! for w in &out.warnings { eprintln!("warning: {w}"); }
//! ```

pub(crate) mod govc;
pub(crate) mod model;
pub(crate) mod rvtools;
pub(crate) mod skeleton;
pub(crate) mod table;

pub use model::{InvDisk, InvNic, InvVm, Inventory};
pub use skeleton::{plan_skeleton, InitOutcome, VlanEntry, VlanMap};

use std::path::Path;

/// Reads an inventory: govc JSON (`.json`), an RVTools workbook (`.xlsx`/`.xls`), a directory
/// of RVTools per-tab CSV files, or one of those CSV files.
pub fn load(path: &Path) -> anyhow::Result<Inventory> {
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        govc::read(path)
    } else {
        rvtools::read(path)
    }
}

/// `wavelift plan init --rvtools FILE [--vlan-map FILE]`: the plan skeleton (named after the
/// export's file name) and every warning (malformed rows with `file:line`, VMs left out, VMs
/// without a known IP, placeholders to fill in).
pub fn plan_init(rvtools: &Path, vlan_map: Option<&Path>) -> anyhow::Result<InitOutcome> {
    let inv = load(rvtools)?;
    let map = match vlan_map {
        Some(p) => VlanMap::read(p)?,
        None => VlanMap::default(),
    };
    let stem = rvtools
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("imported");
    Ok(skeleton::skeleton(&inv, &map, stem))
}
