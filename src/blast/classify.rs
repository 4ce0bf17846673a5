//! Per-VM classification and the estate summary.
//!
//! Rules (documented for the README):
//! - **IP references** are the references that name the VM's address literally (coverage
//!   `names-host` and the matched text is an address). References by host name survive a
//!   re-IP once DNS is updated; range references survive a re-IP inside the range.
//! - **L2-safe**: the VM has a known IP, every NIC's VLAN is known (so it can be carried into
//!   the cluster), and its address is not shared with another VM.
//! - **L3-candidate**: the VM has a known IP, at most `l3_max_refs` IP references (default 3),
//!   and no reference in a compliance document.
//! - **Recommendation**: `l3` when nothing names the address (0 IP references, no compliance
//!   reference); else `l2` when L2-safe; else `l3` when an L3-candidate; else `review`.
//! - **Risk flags**: `shared-ip` (an address listed on several VMs), `vip` (the address is a
//!   load-balancer listener), `no-ip` (no address known: references by address cannot be
//!   found), `compliance-doc` (named in a compliance document, see the tree module),
//!   `no-vlan` (a NIC's VLAN is unknown), `covered-by-range` (a rule covers it by CIDR/range:
//!   lower risk, a re-IP outside the range widens or breaks it).

use super::model::{Coverage, RefKind, Reference};
use super::targets::Target;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    SharedIp,
    Vip,
    NoIp,
    ComplianceDoc,
    NoVlan,
    CoveredByRange,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::SharedIp => "shared-ip",
            Flag::Vip => "vip",
            Flag::NoIp => "no-ip",
            Flag::ComplianceDoc => "compliance-doc",
            Flag::NoVlan => "no-vlan",
            Flag::CoveredByRange => "covered-by-range",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recommendation {
    L2,
    L3,
    Review,
}

impl Recommendation {
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::L2 => "l2",
            Recommendation::L3 => "l3",
            Recommendation::Review => "review",
        }
    }
}

/// One VM's blast radius.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmRadius {
    pub vm: String,
    pub ips: Vec<IpAddr>,
    /// `{network, vlan}` per NIC (`vlan` null when unknown).
    pub networks: Vec<NetworkRef>,
    /// The VM's own owner (plan or RVTools attribute) and where it came from.
    pub owner: Option<super::model::Owner>,
    pub l2_safe: bool,
    pub l3_candidate: bool,
    pub recommendation: Recommendation,
    pub flags: Vec<Flag>,
    /// References that name the address literally.
    pub ip_references: usize,
    /// References that name the host (address or name).
    pub host_references: usize,
    /// References through a CIDR or range.
    pub range_references: usize,
    /// Every reference, sorted by file and line.
    pub references: Vec<Reference>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRef {
    pub network: String,
    pub vlan: Option<u16>,
}

/// Totals across the estate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub vms: usize,
    pub l2_safe: usize,
    pub l3_candidate: usize,
    pub recommend_l2: usize,
    pub recommend_l3: usize,
    pub recommend_review: usize,
    pub references: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub by_owner: BTreeMap<String, usize>,
    pub flags: BTreeMap<String, usize>,
    pub files_scanned: usize,
    pub binary_skipped: usize,
    pub bytes_scanned: u64,
}

pub fn classify(
    targets: &[Target],
    refs_by_vm: &mut HashMap<String, Vec<Reference>>,
    compliance: &dyn Fn(&str) -> bool,
    l3_max_refs: usize,
) -> Vec<VmRadius> {
    let mut ip_count: HashMap<IpAddr, usize> = HashMap::new();
    for t in targets {
        for ip in &t.ips {
            *ip_count.entry(*ip).or_default() += 1;
        }
    }
    targets
        .iter()
        .map(|t| {
            let mut refs = refs_by_vm.remove(&t.name).unwrap_or_default();
            refs.sort_by(|a, b| (&a.file, a.line, a.kind).cmp(&(&b.file, b.line, b.kind)));
            let is_ip =
                |r: &Reference| r.matched.trim_matches(['[', ']']).parse::<IpAddr>().is_ok();
            let ip_refs = refs
                .iter()
                .filter(|r| r.coverage == Coverage::NamesHost && is_ip(r))
                .count();
            let host_refs = refs
                .iter()
                .filter(|r| r.coverage == Coverage::NamesHost)
                .count();
            let range_refs = refs.len() - host_refs;
            let mut flags = Vec::new();
            let has_ip = !t.ips.is_empty();
            if t.ips
                .iter()
                .any(|ip| ip_count.get(ip).copied().unwrap_or(0) > 1)
            {
                flags.push(Flag::SharedIp);
            }
            if refs
                .iter()
                .any(|r| r.kind == RefKind::LbFrontend && r.coverage == Coverage::NamesHost)
            {
                flags.push(Flag::Vip);
            }
            if !has_ip {
                flags.push(Flag::NoIp);
            }
            let compl = refs.iter().any(|r| compliance(&r.file));
            if compl {
                flags.push(Flag::ComplianceDoc);
            }
            if !t.vlan_known {
                flags.push(Flag::NoVlan);
            }
            if range_refs > 0 {
                flags.push(Flag::CoveredByRange);
            }
            let l2_safe = has_ip && t.vlan_known && !flags.contains(&Flag::SharedIp);
            let l3_candidate = has_ip && ip_refs <= l3_max_refs && !compl;
            let recommendation = if has_ip && ip_refs == 0 && !compl {
                Recommendation::L3
            } else if l2_safe {
                Recommendation::L2
            } else if l3_candidate {
                Recommendation::L3
            } else {
                Recommendation::Review
            };
            VmRadius {
                vm: t.name.clone(),
                ips: t.ips.clone(),
                networks: t
                    .networks
                    .iter()
                    .map(|(n, v)| NetworkRef {
                        network: n.clone(),
                        vlan: *v,
                    })
                    .collect(),
                owner: t.owner.clone(),
                l2_safe,
                l3_candidate,
                recommendation,
                flags,
                ip_references: ip_refs,
                host_references: host_refs,
                range_references: range_refs,
                references: refs,
            }
        })
        .collect()
}

pub fn summarize(vms: &[VmRadius]) -> Summary {
    let mut s = Summary {
        vms: vms.len(),
        ..Summary::default()
    };
    for v in vms {
        s.l2_safe += usize::from(v.l2_safe);
        s.l3_candidate += usize::from(v.l3_candidate);
        match v.recommendation {
            Recommendation::L2 => s.recommend_l2 += 1,
            Recommendation::L3 => s.recommend_l3 += 1,
            Recommendation::Review => s.recommend_review += 1,
        }
        for f in &v.flags {
            *s.flags.entry(f.as_str().to_string()).or_default() += 1;
        }
        s.references += v.references.len();
        for r in &v.references {
            *s.by_kind.entry(r.kind.as_str().to_string()).or_default() += 1;
            let o = r
                .owner
                .as_ref()
                .map_or("(no owner)".to_string(), |o| o.name.clone());
            *s.by_owner.entry(o).or_default() += 1;
        }
    }
    s
}
