//! Entry points for the `cargo fuzz` targets in `fuzz/` (see the README, "Fuzzing"): each
//! takes arbitrary bytes and runs one reader the way the CLI or the rehearsal cluster runs
//! it, so a target is a one-line `fuzz_target!`. Nothing here is a stable API; the
//! functions return nothing a caller needs, and a panic, a hang or unbounded memory in
//! one of them is the finding.

use crate::blast::firewall;
use crate::blast::matcher::Matcher;
use crate::blast::targets::Target;
use crate::blast::zone;
use crate::inventory::{govc, rvtools, skeleton, table};
use crate::sim::patch::{self, PatchKind};
use crate::sim::resources;
use serde_json::{json, Value};
use std::path::Path;

/// The wave-plan reader and validator (`wavelift plan check`).
pub fn plan(data: &[u8]) {
    let checked = crate::plan::check_bytes(data, "fuzz.toml");
    let _ = checked.located();
}

/// One VM to look for, as a blast scan built from a plan would.
fn matcher() -> Matcher {
    Matcher::new(vec![Target {
        name: "web-01".into(),
        ips: vec![
            "192.0.2.10".parse().expect("literal"),
            "2001:db8::10".parse().expect("literal"),
        ],
        hostnames: vec!["web-01".into(), "web-01.example.com".into()],
        owner: None,
        networks: vec![("vlan-120".into(), Some(120))],
        vlan_known: true,
    }])
}

/// The DNS zone parser, `$INCLUDE` and `$GENERATE` included (no `--sources` root, so an
/// include is refused rather than read), and the lookup of the VM in its records.
pub fn zone(data: &[u8]) {
    let budget = zone::ZoneBudget::new(&[]);
    let mut warnings = Vec::new();
    if let Ok(records) = zone::parse_bytes(
        data,
        Path::new("db.example.com"),
        "db.example.com",
        &budget,
        &mut warnings,
    ) {
        let _ = zone::hits(&records, &matcher());
    }
}

/// Which firewall export format [`firewall_rules`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Firewall {
    NeutralCsv,
    Iptables,
    NftJson,
    AwsSecurityGroups,
}

/// One firewall parser over the bytes (read as the scan reads them: lossy UTF-8).
pub fn firewall_rules(kind: Firewall, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let m = matcher();
    let mut warnings = Vec::new();
    let _ = match kind {
        Firewall::NeutralCsv => firewall::neutral_csv(&text, "rules.csv", &m, &mut warnings),
        Firewall::Iptables => firewall::iptables(&text, "iptables.rules", &m, &mut warnings),
        Firewall::NftJson => firewall::nft_json(&text, "ruleset.json", &m, &mut warnings),
        Firewall::AwsSecurityGroups => firewall::aws_sg(&text, "sg.json", &m, &mut warnings),
    };
}

/// An inventory to a plan skeleton (`wavelift plan init` without a VLAN map).
fn init(inv: &crate::inventory::Inventory) {
    let _ = skeleton::plan_skeleton(inv, &skeleton::VlanMap::parse("", "vlans.toml"));
}

/// RVTools tabs, already read, through [`init`].
fn init_tables(tables: &[table::Table]) {
    init(&rvtools::from_tables(tables, Vec::new()));
}

/// An RVTools vInfo tab exported as CSV, through `plan init`.
pub fn rvtools_csv(data: &[u8]) {
    let mut warnings = Vec::new();
    let t = table::parse_csv(data, "RVTools_tabvInfo.csv", "vInfo", &mut warnings);
    init_tables(&[t]);
}

/// An RVTools `.xlsx` workbook (the zip preflight, then the sheets), through `plan init`.
pub fn rvtools_xlsx(data: &[u8]) {
    if let Ok(tables) = table::parse_xlsx(data.to_vec(), "RVTools.xlsx", rvtools::TABS) {
        init_tables(&tables);
    }
}

/// A `govc` JSON inventory, through `plan init`.
pub fn govc_json(data: &[u8]) {
    if let Ok(inv) = govc::parse(&String::from_utf8_lossy(data), "govc.json") {
        init(&inv);
    }
}

/// The object a patch applies to: a DataVolume as wavelift creates it.
fn current() -> Value {
    json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "web-01-disk0", "namespace": "wave1",
                     "labels": {"wavelift.io/vm": "web-01"}, "resourceVersion": "7",
                     "uid": "00000000-0000-4000-8000-000000000001"},
        "spec": {"source": {"vddk": {"url": "https://vcenter.example/sdk",
                                     "backingFile": "[ds1] web-01/web-01.vmdk"}},
                 "storage": {"resources": {"requests": {"storage": "20Gi"}}}},
        "status": {"phase": "ImportInProgress", "progress": "12.00%"}
    })
}

/// The rehearsal cluster's request body decoding (create/update/apply: JSON or YAML with
/// the alias-expansion bound), then server-side apply of what it decoded.
pub fn sim_body(data: &[u8]) {
    let Ok(v) = patch::parse_json_or_yaml(data) else {
        return;
    };
    let res = resources::find("cdi.kubevirt.io", "v1beta1", "datavolumes").expect("builtin");
    let _ = patch::server_side_apply(res, Some(&current()), &v, "fuzz", false, false);
}

/// The rehearsal cluster's PATCH: the first byte picks merge, JSON or strategic merge
/// patch, the rest is the body, applied to a DataVolume with the server's copy limit.
pub fn sim_patch(data: &[u8]) {
    let Some((&k, body)) = data.split_first() else {
        return;
    };
    let kind = match k % 3 {
        0 => PatchKind::Merge,
        1 => PatchKind::Json,
        _ => PatchKind::Strategic,
    };
    let _ = patch::apply_patch(&current(), kind, body, 3 * 1024 * 1024);
}
