//! Reports: text, Markdown, JSON and CSV.
//!
//! # JSON schema (`wavelift blast --format json`, loaded by `wavelift tui PLAN --blast FILE`)
//!
//! ```text
//! {
//!   "schema": "wavelift.blast/v1",
//!   "input": "plans/payments.toml",          // the plan or inventory scanned for
//!   "sources": ["exports/"],
//!   "owners_file": "exports/OWNERS" | null,
//!   "l3_max_refs": 3,
//!   "summary": {
//!     "vms": 40, "l2_safe": 31, "l3_candidate": 12,
//!     "recommend_l2": 28, "recommend_l3": 9, "recommend_review": 3,
//!     "references": 412,
//!     "by_kind":  { "dns-a": 40, "firewall-rule": 95, … },
//!     "by_owner": { "netsec": 120, "(no owner)": 7, … },
//!     "flags":    { "shared-ip": 2, "no-ip": 1, … },
//!     "files_scanned": 1800, "binary_skipped": 12, "bytes_scanned": 1073741824
//!   },
//!   "vms": [ {
//!     "vm": "pay-db-01",
//!     "ips": ["192.0.2.15"],
//!     "networks": [ { "network": "vlan-210", "vlan": 210 } ],     // vlan null if unknown
//!     "owner": { "name": "payments", "source": "plan" } | null,
//!     "l2_safe": true, "l3_candidate": false,
//!     "recommendation": "l2" | "l3" | "review",
//!     "flags": ["shared-ip" | "vip" | "no-ip" | "compliance-doc" | "no-vlan" | "covered-by-range"],
//!     "ip_references": 5, "host_references": 7, "range_references": 2,
//!     "references": [ {
//!       "vm": "pay-db-01",
//!       "matched": "192.0.2.15",                  // address, host name, CIDR or range
//!       "file": "exports/fw/rules.csv", "line": 3,
//!       "kind": "dns-a" | "dns-aaaa" | "dns-ptr" | "dns-cname" | "firewall-rule"
//!             | "prometheus-target" | "lb-backend" | "lb-frontend" | "lb-acl"
//!             | "config-literal" | "document",
//!       "text": "the line, trimmed",
//!       "context": "fw01 rule 1001 app-to-db",     // absent when none
//!       "coverage": { "type": "names-host" } | { "type": "covered-by-range", "range": "192.0.2.0/24" },
//!       "owner": { "name": "netsec", "source": "owners-file" | "rvtools-attribute" | "plan"
//!                  | "rule-tag" | "comment" | "prometheus-label" } | null
//!     } ]
//!   } ],
//!   "warnings": ["exports/fw/rules.csv:9: 3 fields where the header has 13; row skipped"]
//! }
//! ```
//!
//! With `--vm NAME` the JSON has the same shape with only that VM in `vms`.

use super::classify::{Summary, VmRadius};
use super::model::{Coverage, Reference};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const SCHEMA: &str = "wavelift.blast/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlastReport {
    pub schema: String,
    pub input: String,
    pub sources: Vec<String>,
    pub owners_file: Option<String>,
    pub l3_max_refs: usize,
    pub summary: Summary,
    pub vms: Vec<VmRadius>,
    pub warnings: Vec<String>,
}

impl BlastReport {
    pub fn vm(&self, name: &str) -> Option<&VmRadius> {
        self.vms.iter().find(|v| v.vm == name)
    }

    /// Loads a report written by `--format json`.
    pub fn from_json(text: &str) -> serde_json::Result<BlastReport> {
        serde_json::from_str(text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Md,
    Json,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(Format::Text),
            "md" | "markdown" => Ok(Format::Md),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown format `{other}` (text, md, json, csv)")),
        }
    }
}

/// Renders a report; with `vm`, only that VM's blast radius (grouped by owner).
pub fn render(report: &BlastReport, format: Format, vm: Option<&str>) -> String {
    let vms: Vec<&VmRadius> = match vm {
        Some(n) => report.vms.iter().filter(|v| v.vm == n).collect(),
        None => report.vms.iter().collect(),
    };
    match format {
        Format::Json => {
            let mut r = report.clone();
            if vm.is_some() {
                r.vms = vms.into_iter().cloned().collect();
            }
            serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"
        }
        Format::Csv => csv(&vms),
        Format::Text => text(report, &vms, vm.is_some()),
        Format::Md => md(report, &vms, vm.is_some()),
    }
}

fn cov(c: &Coverage) -> String {
    match c {
        Coverage::NamesHost => "names-host".into(),
        Coverage::CoveredByRange(r) => format!("covered-by-range {r}"),
    }
}

fn owner_label(r: &Reference) -> String {
    r.owner.as_ref().map_or("(no owner)".into(), |o| {
        format!("{} ({})", o.name, o.source.as_str())
    })
}

fn by_owner(v: &VmRadius) -> BTreeMap<String, Vec<&Reference>> {
    let mut m: BTreeMap<String, Vec<&Reference>> = BTreeMap::new();
    for r in &v.references {
        m.entry(owner_label(r)).or_default().push(r);
    }
    m
}

fn ips(v: &VmRadius) -> String {
    if v.ips.is_empty() {
        "-".into()
    } else {
        v.ips
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn flags(v: &VmRadius) -> String {
    if v.flags.is_empty() {
        "-".into()
    } else {
        v.flags
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn nets(v: &VmRadius) -> String {
    v.networks
        .iter()
        .map(|n| {
            format!(
                "{} (VLAN {})",
                n.network,
                n.vlan.map_or("?".into(), |v| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn text(report: &BlastReport, vms: &[&VmRadius], single: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Blast radius of {} in {}",
        report.input,
        report.sources.join(", ")
    );
    if !single {
        let w = vms.iter().map(|v| v.vm.len()).max().unwrap_or(2).max(2);
        let _ = writeln!(
            o,
            "\n{:<w$}  {:<18} {:<7} {:<7} {:<8} {:>7} {:>5} {:>6}  flags",
            "VM", "IPs", "advice", "L2-safe", "L3-cand", "ip-refs", "host", "range"
        );
        for v in vms {
            let _ = writeln!(
                o,
                "{:<w$}  {:<18} {:<7} {:<7} {:<8} {:>7} {:>5} {:>6}  {}",
                v.vm,
                ips(v),
                v.recommendation.as_str(),
                yes(v.l2_safe),
                yes(v.l3_candidate),
                v.ip_references,
                v.host_references,
                v.range_references,
                flags(v)
            );
        }
        summary_text(&report.summary, &mut o);
    }
    for v in vms {
        let _ = writeln!(o, "\n== {} ==  {}  {}", v.vm, ips(v), nets(v));
        let _ = writeln!(
            o,
            "advice {}  L2-safe {}  L3-candidate {}  flags {}  owner {}",
            v.recommendation.as_str(),
            yes(v.l2_safe),
            yes(v.l3_candidate),
            flags(v),
            v.owner.as_ref().map_or("-".into(), |o| format!(
                "{} ({})",
                o.name,
                o.source.as_str()
            ))
        );
        if !single && v.references.is_empty() {
            continue;
        }
        for (owner, refs) in by_owner(v) {
            let _ = writeln!(o, "  owner {owner}: {} reference(s)", refs.len());
            for r in refs {
                let _ = writeln!(
                    o,
                    "    {}:{}  {}  {}  [{}]  {}",
                    r.file,
                    r.line,
                    r.kind.as_str(),
                    r.matched,
                    cov(&r.coverage),
                    r.text
                );
            }
        }
    }
    if !report.warnings.is_empty() && !single {
        let _ = writeln!(o, "\nWarnings ({}):", report.warnings.len());
        for w in &report.warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
    o
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `"a 3, b 1"`, or `-` when there is nothing to count.
fn counts<'a, K: std::fmt::Display + 'a>(
    items: impl IntoIterator<Item = (&'a K, &'a usize)>,
) -> String {
    let v: Vec<String> = items.into_iter().map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

fn summary_text(s: &Summary, o: &mut String) {
    let _ = writeln!(
        o,
        "\nEstate: {} VMs; L2-safe {}; L3-candidate {}; advice l2 {}, l3 {}, review {}; {} references in {} files ({} binary skipped)",
        s.vms, s.l2_safe, s.l3_candidate, s.recommend_l2, s.recommend_l3, s.recommend_review,
        s.references, s.files_scanned, s.binary_skipped
    );
    let _ = writeln!(o, "By kind: {}", counts(&s.by_kind));
    let _ = writeln!(o, "By owner: {}", counts(&s.by_owner));
    let _ = writeln!(o, "Flags: {}", counts(&s.flags));
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'")
}

fn md(report: &BlastReport, vms: &[&VmRadius], single: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Blast radius\n\nInput `{}`; sources {}.\n",
        report.input,
        report
            .sources
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !single {
        let s = &report.summary;
        o.push_str("## Estate\n\n| VMs | L2-safe | L3-candidate | advice l2 | advice l3 | review | references | files | binary skipped |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.vms,
            s.l2_safe,
            s.l3_candidate,
            s.recommend_l2,
            s.recommend_l3,
            s.recommend_review,
            s.references,
            s.files_scanned,
            s.binary_skipped
        );
        o.push_str("| VM | IPs | advice | L2-safe | L3-candidate | IP refs | host refs | range refs | flags |\n|---|---|---|---|---|---:|---:|---:|---|\n");
        for v in vms {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                v.vm,
                ips(v),
                v.recommendation.as_str(),
                yes(v.l2_safe),
                yes(v.l3_candidate),
                v.ip_references,
                v.host_references,
                v.range_references,
                flags(v)
            );
        }
        o.push('\n');
        if !s.by_owner.is_empty() {
            o.push_str("| owner | references |\n|---|---:|\n");
            for (k, n) in &s.by_owner {
                let _ = writeln!(o, "| {} | {n} |", md_cell(k));
            }
            o.push('\n');
        }
    }
    for v in vms {
        if !single && v.references.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "## {}\n\n{} — {} — advice **{}**, flags {}\n",
            v.vm,
            ips(v),
            nets(v),
            v.recommendation.as_str(),
            flags(v)
        );
        for (owner, refs) in by_owner(v) {
            let _ = writeln!(
                o,
                "### {}\n\n| file:line | kind | matched | coverage | text |\n|---|---|---|---|---|",
                md_cell(&owner)
            );
            for r in refs {
                let _ = writeln!(
                    o,
                    "| `{}:{}` | {} | {} | {} | `{}` |",
                    md_cell(&r.file),
                    r.line,
                    r.kind.as_str(),
                    md_cell(&r.matched),
                    cov(&r.coverage),
                    md_cell(&r.text)
                );
            }
            o.push('\n');
        }
    }
    o
}

fn csv(vms: &[&VmRadius]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "vm",
        "file",
        "line",
        "kind",
        "matched",
        "coverage",
        "range",
        "owner",
        "owner_source",
        "recommendation",
        "text",
    ]);
    for v in vms {
        for r in &v.references {
            let (c, range) = match &r.coverage {
                Coverage::NamesHost => ("names-host", String::new()),
                Coverage::CoveredByRange(x) => ("covered-by-range", x.clone()),
            };
            let line = r.line.to_string();
            let _ = w.write_record([
                v.vm.as_str(),
                r.file.as_str(),
                line.as_str(),
                r.kind.as_str(),
                r.matched.as_str(),
                c,
                range.as_str(),
                r.owner.as_ref().map_or("", |o| o.name.as_str()),
                r.owner.as_ref().map_or("", |o| o.source.as_str()),
                v.recommendation.as_str(),
                r.text.as_str(),
            ]);
        }
    }
    w.into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
