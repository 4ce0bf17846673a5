//! `aws ec2 describe-security-groups` JSON: one list per group (`sg-0abc (web)`), allow-only
//! rules, implicit deny.
//!
//! One rule per permission, named `sg-… ingress N` / `sg-… egress N` (1-based index),
//! at the permission's line. `IpPermissions` are Direction::In, `IpPermissionsEgress` Out.
//! `IpProtocol` `-1` is every service; `tcp`/`udp`/numbers with `FromPort`–`ToPort`
//! (`-1` = every port); ICMP type/code (`FromPort`/`ToPort` not -1) go to `narrowed_by`.
//! The peer (source of ingress, destination of egress) is `IpRanges[].CidrIp` and
//! `Ipv6Ranges[].CidrIpv6` (`0.0.0.0/0` is any), `UserIdGroupPairs` (unresolved `sg-…`) and
//! `PrefixListIds` (unresolved `pl-…`).
//!
//! The protected side (the destination of ingress, the source of egress) is the group's
//! members, which `describe-security-groups` does not list: they come from
//! `aws ec2 describe-network-interfaces` exports among the sources ([`Members`]: every
//! interface in `NetworkInterfaces[]` is a member of each of its `Groups[].GroupId`, with its
//! `PrivateIpAddress`, `PrivateIpAddresses[].PrivateIpAddress`, the public IPs of
//! `Association.PublicIp` and `PrivateIpAddresses[].Association.PublicIp`, and
//! `Ipv6Addresses[].Ipv6Address`). A group no such export lists keeps
//! `AddrSet::Some { ranges: [], unresolved: ["members of sg-…"] }`, with a warning: its rules
//! apply to no VM, and the draft says so for every VM. A peer group (`UserIdGroupPairs`) is
//! its members' addresses when they are listed, else the unresolved `sg-…`.
//!
//! Security groups only allow (there is no deny rule); what no rule allows is denied.
//!
//! Owner: the group's `Owner`/`Team` tag, else `owner: NAME` in a range's `Description`,
//! else in the group's `Description`.

use super::common::{addr_token, origin, port_range, proto_named, services, AddrAcc};
use super::json::{self, Node};
use crate::blast::model::owner_in_text;
use crate::policy::rules::{
    Action, AddrRange, AddrSet, Direction, Proto, Rule, RuleList, RuleSet, Services,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `aws ec2 describe-network-interfaces` output: a JSON object with `NetworkInterfaces`.
pub fn looks_like_interfaces(head: &str) -> bool {
    head.trim_start().starts_with('{') && head.contains("\"NetworkInterfaces\"")
}

/// Security-group membership read from `describe-network-interfaces` exports.
#[derive(Debug, Default, Clone)]
pub struct Members {
    /// Group id to its members' addresses, in the order found, each once.
    groups: BTreeMap<String, Vec<IpAddr>>,
}

impl Members {
    /// Adds the interfaces of `text` when it is a `describe-network-interfaces` export
    /// (anything else is ignored, a malformed one too).
    pub fn collect(&mut self, text: &str) {
        if !looks_like_interfaces(head(text)) {
            return;
        }
        let Ok(root) = json::parse(text) else { return };
        for ni in root
            .get("NetworkInterfaces")
            .map(Node::arr)
            .unwrap_or_default()
        {
            let mut ips: Vec<IpAddr> = Vec::new();
            let mut add = |v: Option<&Node>| {
                if let Some(ip) = v.and_then(Node::str).and_then(|s| s.trim().parse().ok()) {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            };
            add(ni.get("PrivateIpAddress"));
            for a in ni
                .get("PrivateIpAddresses")
                .map(Node::arr)
                .unwrap_or_default()
            {
                add(a.get("PrivateIpAddress"));
                add(a.get("Association").and_then(|x| x.get("PublicIp")));
            }
            add(ni.get("Association").and_then(|x| x.get("PublicIp")));
            for a in ni.get("Ipv6Addresses").map(Node::arr).unwrap_or_default() {
                add(a.get("Ipv6Address"));
            }
            for g in ni.get("Groups").map(Node::arr).unwrap_or_default() {
                if let Some(id) = g.get("GroupId").and_then(Node::str) {
                    let m = self.groups.entry(id.to_string()).or_default();
                    for ip in &ips {
                        if !m.contains(ip) {
                            m.push(*ip);
                        }
                    }
                }
            }
        }
    }

    /// The members of group `id` as host ranges, when an export lists the group.
    fn of(&self, id: &str) -> Option<Vec<AddrRange>> {
        self.groups
            .get(id)
            .map(|ips| ips.iter().map(|&ip| AddrRange::host(ip)).collect())
    }
}

/// The head of a text the recognisers look at (a JSON export's first 16 KiB).
fn head(text: &str) -> &str {
    let text = text.trim_start_matches('\u{feff}');
    let mut cut = text.len().min(16384);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// `text` is a `describe-network-interfaces` export (valid JSON with `NetworkInterfaces`).
pub fn is_interfaces(text: &str) -> bool {
    looks_like_interfaces(head(text))
        && json::parse(text).is_ok_and(|r| r.get("NetworkInterfaces").is_some())
}

pub fn parse(file: &str, text: &str, known: &Members) -> RuleSet {
    let (root, lines) = match json::parse_export(file, text, "aws-sg") {
        Ok(parsed) => parsed,
        Err(not_json) => return not_json,
    };
    let mut warnings = Vec::new();
    let mut lists = Vec::new();
    for g in root
        .get("SecurityGroups")
        .map(Node::arr)
        .unwrap_or_default()
    {
        let gl = lines.line(g.pos);
        let Some(id) = g.get("GroupId").and_then(Node::str) else {
            warnings.push(format!(
                "{file}:{gl}: security group without a GroupId; skipped"
            ));
            continue;
        };
        let gname = g.get("GroupName").and_then(Node::str).unwrap_or("");
        let tag_owner = g
            .get("Tags")
            .map(Node::arr)
            .unwrap_or_default()
            .iter()
            .find_map(|t| {
                let k = t.get("Key").and_then(Node::str)?;
                let v = t.get("Value").and_then(Node::str)?;
                ["owner", "team"]
                    .contains(&k.to_ascii_lowercase().as_str())
                    .then(|| v.to_string())
            });
        let group_owner = g
            .get("Description")
            .and_then(Node::str)
            .and_then(owner_in_text);
        let members = match known.of(id) {
            Some(ranges) => AddrSet::Some {
                ranges,
                unresolved: vec![],
            },
            None => {
                warnings.push(format!(
                    "{file}:{gl}: security group {id}{}: no `aws ec2 describe-network-interfaces` \
                     export among the sources lists its members, so its rules apply to no VM \
                     (narrower)",
                    if gname.is_empty() {
                        String::new()
                    } else {
                        format!(" ({gname})")
                    }
                ));
                AddrSet::Some {
                    ranges: vec![],
                    unresolved: vec![format!("members of {id}")],
                }
            }
        };
        let mut rules = Vec::new();
        for (dir, key, word) in [
            (Direction::In, "IpPermissions", "ingress"),
            (Direction::Out, "IpPermissionsEgress", "egress"),
        ] {
            for (i, p) in g
                .get(key)
                .map(Node::arr)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let pl = lines.line(p.pos);
                let mut narrowed = Vec::new();
                let proto = p
                    .get("IpProtocol")
                    .map(|v| v.str().map(str::to_string).unwrap_or_else(|| v.compact()))
                    .unwrap_or_default();
                let from = p.get("FromPort").and_then(Node::int);
                let to = p.get("ToPort").and_then(Node::int);
                let services = match proto.to_ascii_lowercase().as_str() {
                    "-1" | "all" => Services::Any,
                    pr => match proto_named(pr) {
                        Some(x) if super::common::has_ports(x) => {
                            let ports = match (from, to) {
                                (Some(a), Some(b)) if a >= 0 && b >= 0 => {
                                    port_range(&format!("{a}-{b}"))
                                }
                                _ => None,
                            };
                            let ps = match ports {
                                Some(r) => vec![r],
                                None if from.unwrap_or(-1) < 0 => vec![],
                                None => {
                                    warnings.push(format!("{file}:{pl}: ports {from:?}-{to:?} are not a port range; every port, narrowed"));
                                    narrowed.push(format!("ports {from:?}-{to:?}"));
                                    vec![]
                                }
                            };
                            Services::List(services(&[x], &ps))
                        }
                        Some(x) => {
                            if matches!(x, Proto::Icmp | Proto::Other(58))
                                && from.unwrap_or(-1) >= 0
                            {
                                narrowed.push(format!(
                                    "icmp type {} code {}",
                                    from.unwrap_or(-1),
                                    to.unwrap_or(-1)
                                ));
                            }
                            Services::List(services(&[x], &[]))
                        }
                        None => {
                            warnings.push(format!("{file}:{pl}: IpProtocol `{proto}` unknown; every protocol, narrowed"));
                            narrowed.push(format!("IpProtocol {proto}"));
                            Services::Any
                        }
                    },
                };
                let mut peer = AddrAcc::default();
                let mut owner = None;
                for (rk, ck) in [("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")] {
                    for r in p.get(rk).map(Node::arr).unwrap_or_default() {
                        let Some(c) = r.get(ck).and_then(Node::str) else {
                            continue;
                        };
                        match addr_token(c) {
                            Ok(t @ super::common::Tok::Any)
                            | Ok(t @ super::common::Tok::Range(_)) => peer.push_tok(t),
                            _ => {
                                warnings.push(format!(
                                    "{file}:{}: `{c}` is not a CIDR; left unresolved",
                                    lines.line(r.pos)
                                ));
                                peer.unresolved.push(c.to_string());
                            }
                        }
                        if owner.is_none() {
                            owner = r
                                .get("Description")
                                .and_then(Node::str)
                                .and_then(owner_in_text);
                        }
                    }
                }
                for pair in p.get("UserIdGroupPairs").map(Node::arr).unwrap_or_default() {
                    if let Some(sg) = pair.get("GroupId").and_then(Node::str) {
                        match known.of(sg) {
                            Some(ips) => peer.ranges.extend(ips),
                            None => peer.unresolved.push(sg.to_string()),
                        }
                    }
                    if owner.is_none() {
                        owner = pair
                            .get("Description")
                            .and_then(Node::str)
                            .and_then(owner_in_text);
                    }
                }
                for pl_ in p.get("PrefixListIds").map(Node::arr).unwrap_or_default() {
                    if let Some(id) = pl_.get("PrefixListId").and_then(Node::str) {
                        peer.unresolved.push(id.to_string());
                    }
                }
                let peer = peer.build();
                let (src, dst) = match dir {
                    Direction::In => (peer, members.clone()),
                    Direction::Out => (members.clone(), peer),
                };
                rules.push(Rule {
                    origin: origin(
                        file,
                        pl,
                        Some(format!("{id} {word} {}", i + 1)),
                        tag_owner.clone().or(owner).or_else(|| group_owner.clone()),
                    ),
                    action: Action::Allow,
                    direction: Some(dir),
                    src,
                    dst,
                    services,
                    narrowed_by: narrowed,
                    disabled: false,
                });
            }
            // A group with known members and no rule this way denies its members every flow
            // this way: said as the implicit deny written out, so that the draft knows the
            // members are restricted (no rule would name them otherwise).
            let written = g.get(key).map(Node::arr).unwrap_or_default().len();
            if written == 0 && known.of(id).is_some() {
                let (src, dst) = match dir {
                    Direction::In => (AddrSet::Any, members.clone()),
                    Direction::Out => (members.clone(), AddrSet::Any),
                };
                rules.push(Rule {
                    origin: origin(
                        file,
                        gl,
                        Some(format!("{id} implicit deny ({word}: no rule)")),
                        None,
                    ),
                    action: Action::Deny,
                    direction: Some(dir),
                    src,
                    dst,
                    services: Services::Any,
                    narrowed_by: Vec::new(),
                    disabled: false,
                });
            }
        }
        lists.push(RuleList {
            name: if gname.is_empty() {
                id.to_string()
            } else {
                format!("{id} ({gname})")
            },
            rules,
            default: Action::Deny,
            default_origin: origin(file, gl, Some(format!("{id} implicit deny")), None),
            implicit_default: true,
        });
    }
    RuleSet {
        file: file.into(),
        format: "aws-sg",
        lists,
        warnings,
    }
}
