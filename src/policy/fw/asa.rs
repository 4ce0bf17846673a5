//! Cisco ASA `show running-config`: `access-list … extended` ACLs with their objects.
//!
//! One list per ACL (`access-list NAME`, with the `access-group` bindings in the name:
//! `access-list outside_in (in on outside)`), ACEs in order, the implicit deny at the end.
//! Rules are transit rules (Direction None). A rule's name is `ACL line N` (the ASA's own
//! line numbering: remarks count, an explicit `line N` wins); its owner is `owner: X` in the
//! remark block above it (a remark applies to the ACEs after it until the next remark).
//!
//! Resolved: `name IP NAME`, `object network` (`host`, `subnet`, `range`; `fqdn` stays
//! unresolved), `object-group network` (`network-object host|A MASK|A/len|object`,
//! `group-object`, memoized, cycles warned), `object service`, `object-group service`
//! (port groups with `port-object eq|range|gt|lt|neq`, service groups with
//! `service-object`), `object-group protocol`. `any4`/`any6` are the whole IPv4/IPv6 space,
//! `any` is [`AddrSet::Any`]. Narrowing: source ports, ICMP types, `interface X` (also kept
//! as the unresolved name `interface X`), `time-range`, user/security groups. `inactive` →
//! disabled. `standard`, `webtype` and `ethertype` ACLs are not traffic ACLs and are skipped.

use super::common::{
    cidr, complement_ports, mask_range, num_ip, origin, port_value, proto_named, services,
};
use crate::blast::model::owner_in_text;
use crate::policy::rules::{
    Action, AddrRange, AddrSet, Proto, Rule, RuleList, RuleSet, Service, Services,
};
use std::collections::HashMap;
use std::net::IpAddr;

pub fn looks_like(text: &str) -> bool {
    text.lines().take(50).any(|l| l.starts_with("ASA Version"))
        || text.lines().any(|l| {
            l.starts_with("access-list ") && (l.contains(" extended ") || l.contains(" remark "))
        })
}

#[derive(Debug, Clone)]
enum NetItem {
    Range(AddrRange),
    Unresolved(String),
    Object(String),
    Group(String),
}

#[derive(Debug, Clone, Default)]
struct SvcSet {
    any: bool,
    list: Vec<Service>,
    narrowed: Vec<String>,
    unresolved: Vec<String>,
}

#[derive(Debug, Clone)]
enum SvcItem {
    Set(SvcSet),
    Object(String),
}

#[derive(Debug, Clone, PartialEq)]
enum GroupKind {
    Network,
    /// `object-group service NAME tcp|udp|tcp-udp`: ports for an ACL's port position.
    Ports,
    /// `object-group service NAME`: full services for an ACL's protocol position.
    Service,
    Protocol,
    Other(String),
}

struct Def {
    line: usize,
    kind: GroupKind,
    net: Vec<NetItem>,
    svc: Vec<SvcItem>,
}

/// Ranges and unresolved names of an expanded group.
type Resolved = (Vec<AddrRange>, Vec<String>);

#[derive(Clone)]
enum Memo<T> {
    Visiting,
    Done(T),
}

struct Asa<'a> {
    file: &'a str,
    names: HashMap<String, IpAddr>,
    objects: HashMap<String, Def>,
    groups: HashMap<String, Def>,
    net_memo: HashMap<String, Memo<Resolved>>,
    svc_memo: HashMap<String, Memo<SvcSet>>,
    warnings: Vec<String>,
}

struct Acl {
    first_line: usize,
    count: usize,
    remark_owner: Option<String>,
    rules: Vec<Rule>,
    bindings: Vec<String>,
}

pub fn parse(file: &str, text: &str) -> RuleSet {
    let mut a = Asa {
        file,
        names: HashMap::new(),
        objects: HashMap::new(),
        groups: HashMap::new(),
        net_memo: HashMap::new(),
        svc_memo: HashMap::new(),
        warnings: Vec::new(),
    };
    a.definitions(text);
    let mut acls: Vec<(String, Acl)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let t: Vec<&str> = raw.split_whitespace().collect();
        if raw.starts_with("access-group ") {
            // access-group NAME in|out interface IF | access-group NAME global
            if let Some(&name) = t.get(1) {
                let b = match (t.get(2), t.get(4)) {
                    (Some(&"global"), _) => "global".to_string(),
                    (Some(d), Some(iface)) => format!("{d} on {iface}"),
                    _ => {
                        a.warnings
                            .push(format!("{file}:{n}: access-group without a direction"));
                        continue;
                    }
                };
                if let Some(&k) = index.get(name) {
                    acls[k].1.bindings.push(b);
                } else {
                    a.warnings.push(format!(
                        "{file}:{n}: access-group binds `{name}`, which no access-list defines above it"
                    ));
                }
            }
            continue;
        }
        if !raw.starts_with("access-list ") {
            continue;
        }
        let Some(&name) = t.get(1) else { continue };
        let mut k = 2;
        let mut explicit_line = None;
        if t.get(k) == Some(&"line") {
            explicit_line = t.get(k + 1).and_then(|x| x.parse::<usize>().ok());
            k += 2;
        }
        let kind = t.get(k).copied().unwrap_or("");
        if matches!(kind, "standard" | "webtype" | "ethertype") {
            continue;
        }
        let idx = *index.entry(name.to_string()).or_insert_with(|| {
            acls.push((
                name.to_string(),
                Acl {
                    first_line: n,
                    count: 0,
                    remark_owner: None,
                    rules: vec![],
                    bindings: vec![],
                },
            ));
            acls.len() - 1
        });
        let acl = &mut acls[idx].1;
        acl.count += 1;
        let number = explicit_line.unwrap_or(acl.count);
        if kind == "remark" {
            let text = raw.split_once(" remark").map_or("", |(_, r)| r.trim());
            acl.remark_owner = owner_in_text(text);
            continue;
        }
        let k = if kind == "extended" { k + 1 } else { k };
        let owner = acl.remark_owner.clone();
        if let Some(rule) = a.ace(n, &t[k..], format!("{name} line {number}"), owner) {
            acls[idx].1.rules.push(rule);
        }
    }
    let lists = acls
        .into_iter()
        .map(|(name, acl)| {
            let shown = if acl.bindings.is_empty() {
                format!("access-list {name}")
            } else {
                format!("access-list {name} ({})", acl.bindings.join(", "))
            };
            RuleList {
                name: shown,
                rules: acl.rules,
                default: Action::Deny,
                default_origin: origin(
                    file,
                    acl.first_line,
                    Some(format!("{name} implicit deny")),
                    None,
                ),
                implicit_default: true,
            }
        })
        .collect();
    RuleSet {
        file: file.to_string(),
        format: "asa",
        lists,
        warnings: a.warnings,
    }
}

fn port_op(op: &str, t: &[&str]) -> Option<(Vec<(u16, u16)>, usize)> {
    let p = |i: usize| t.get(i).and_then(|x| port_value(x));
    match op {
        "eq" => p(0).map(|v| (vec![(v, v)], 1)),
        "range" => match (p(0), p(1)) {
            (Some(a), Some(b)) if a <= b => Some((vec![(a, b)], 2)),
            _ => None,
        },
        "gt" => p(0)
            .filter(|v| *v < 65535)
            .map(|v| (vec![(v + 1, 65535)], 1)),
        "lt" => p(0).filter(|v| *v > 0).map(|v| (vec![(0, v - 1)], 1)),
        "neq" => p(0).map(|v| (complement_ports(&[(v, v)]), 1)),
        _ => None,
    }
}

fn is_port_op(s: &str) -> bool {
    matches!(s, "eq" | "range" | "gt" | "lt" | "neq")
}

impl Asa<'_> {
    fn warn(&mut self, n: usize, m: String) {
        self.warnings.push(format!("{}:{n}: {m}", self.file));
    }

    fn host(&self, s: &str) -> Option<IpAddr> {
        s.parse().ok().or_else(|| self.names.get(s).copied())
    }

    /// First pass: `name`, `object`, `object-group` blocks.
    fn definitions(&mut self, text: &str) {
        let mut cur: Option<(bool, String)> = None; // (is_group, name)
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let t: Vec<&str> = raw.split_whitespace().collect();
            if t.is_empty() {
                continue;
            }
            if !raw.starts_with(' ') && !raw.starts_with('\t') {
                cur = None;
                match (t[0], t.get(1), t.get(2)) {
                    ("name", Some(ip), Some(nm)) => match ip.parse::<IpAddr>() {
                        Ok(ip) => {
                            self.names.insert(nm.to_string(), ip);
                        }
                        Err(_) => self.warn(n, format!("`name {ip} {nm}`: not an address")),
                    },
                    ("object", Some(kind), Some(nm)) => {
                        let kind = match *kind {
                            "network" => GroupKind::Network,
                            "service" => GroupKind::Service,
                            k => GroupKind::Other(k.to_string()),
                        };
                        self.objects.insert(
                            nm.to_string(),
                            Def {
                                line: n,
                                kind,
                                net: vec![],
                                svc: vec![],
                            },
                        );
                        cur = Some((false, nm.to_string()));
                    }
                    ("object-group", Some(kind), Some(nm)) => {
                        let mut def = Def {
                            line: n,
                            kind: GroupKind::Other(kind.to_string()),
                            net: vec![],
                            svc: vec![],
                        };
                        match *kind {
                            "network" => def.kind = GroupKind::Network,
                            "protocol" => def.kind = GroupKind::Protocol,
                            "service" => match t.get(3) {
                                Some(p) => {
                                    def.kind = GroupKind::Ports;
                                    let protos = match *p {
                                        "tcp-udp" => vec![Proto::Tcp, Proto::Udp],
                                        p => proto_named(p).into_iter().collect(),
                                    };
                                    // remember the protocols as a first, port-less item
                                    def.svc.push(SvcItem::Set(SvcSet {
                                        list: services(&protos, &[]),
                                        ..Default::default()
                                    }));
                                }
                                None => def.kind = GroupKind::Service,
                            },
                            _ => {}
                        }
                        self.groups.insert(nm.to_string(), def);
                        cur = Some((true, nm.to_string()));
                    }
                    _ => {}
                }
                continue;
            }
            let Some((is_group, name)) = cur.clone() else {
                continue;
            };
            if t[0] == "description" {
                continue;
            }
            let item = self.member(n, &t);
            let map = if is_group {
                &mut self.groups
            } else {
                &mut self.objects
            };
            if let Some(def) = map.get_mut(&name) {
                match item {
                    Some(Member::Net(x)) => def.net.push(x),
                    Some(Member::Svc(x)) => def.svc.push(x),
                    Some(Member::Ports(ps)) => def.svc.push(SvcItem::Set(SvcSet {
                        list: ps
                            .into_iter()
                            .map(|p| Service {
                                proto: Proto::Tcp,
                                ports: Some(p),
                            })
                            .collect(),
                        ..Default::default()
                    })),
                    None => {}
                }
            }
        }
    }

    /// One indented line of an object or group.
    fn member(&mut self, n: usize, t: &[&str]) -> Option<Member> {
        let net_addr = |s: &Self, a: &str, m: Option<&str>| -> NetItem {
            match m {
                Some(m) if m.contains('.') => {
                    match s.host(a).map(|ip| mask_range(&ip.to_string(), m)) {
                        Some(Ok(r)) => NetItem::Range(r),
                        Some(Err(e)) => NetItem::Unresolved(format!("{a} {m} ({e})")),
                        None => NetItem::Unresolved(a.to_string()),
                    }
                }
                _ => match cidr(a) {
                    Some(r) => NetItem::Range(r),
                    None => NetItem::Unresolved(a.to_string()),
                },
            }
        };
        let item = match t {
            ["host", a] | ["network-object", "host", a] => match self.host(a) {
                Some(ip) => Member::Net(NetItem::Range(AddrRange::host(ip))),
                None => Member::Net(NetItem::Unresolved(a.to_string())),
            },
            ["subnet", a, m] | ["network-object", a, m] if *a != "object" => {
                Member::Net(net_addr(self, a, Some(m)))
            }
            ["subnet", a] | ["network-object", a] => Member::Net(net_addr(self, a, None)),
            ["range", a, b] => match (self.host(a), self.host(b)) {
                (Some(x), Some(y)) if x <= y && x.is_ipv4() == y.is_ipv4() => {
                    Member::Net(NetItem::Range(AddrRange { lo: x, hi: y }))
                }
                _ => Member::Net(NetItem::Unresolved(format!("range {a} {b}"))),
            },
            ["fqdn", .., host] => Member::Net(NetItem::Unresolved(host.to_string())),
            ["network-object", "object", o] => Member::Net(NetItem::Object(o.to_string())),
            // the group's kind decides later (network groups and service groups both read it)
            ["group-object", g] => Member::Net(NetItem::Group(g.to_string())),
            ["port-object", op, rest @ ..] => match port_op(op, rest) {
                Some((ps, _)) => Member::Ports(ps),
                None => {
                    self.warn(n, format!("`{}` is not a port; ignored", t.join(" ")));
                    return None;
                }
            },
            ["protocol-object", p] => match proto_named(p) {
                Some(p) => Member::Svc(SvcItem::Set(SvcSet {
                    list: services(&[p], &[]),
                    ..Default::default()
                })),
                None if *p == "ip" => Member::Svc(SvcItem::Set(SvcSet {
                    any: true,
                    ..Default::default()
                })),
                None => {
                    self.warn(n, format!("protocol `{p}` unknown; ignored"));
                    return None;
                }
            },
            ["service-object", "object", o] => Member::Svc(SvcItem::Object(o.to_string())),
            ["service-object", rest @ ..] | ["service", rest @ ..] => {
                Member::Svc(SvcItem::Set(self.service_spec(n, rest)))
            }
            ["nat", ..] => return None,
            _ => {
                self.warn(
                    n,
                    format!("`{}` not understood in an object; ignored", t.join(" ")),
                );
                return None;
            }
        };
        Some(item)
    }

    /// `PROTO [source OP P…] [destination OP P…]` or the short `PROTO eq P` (destination).
    fn service_spec(&mut self, n: usize, t: &[&str]) -> SvcSet {
        let mut s = SvcSet::default();
        let Some(p) = t.first() else {
            return s;
        };
        let protos = match *p {
            "ip" => {
                s.any = true;
                return s;
            }
            "tcp-udp" => vec![Proto::Tcp, Proto::Udp],
            p => match proto_named(p) {
                Some(x) => vec![x],
                None => {
                    self.warn(n, format!("protocol `{p}` unknown; read as any, narrowed"));
                    s.any = true;
                    s.narrowed.push(format!("protocol {p}"));
                    return s;
                }
            },
        };
        let mut ports = Vec::new();
        let mut k = 1;
        while k < t.len() {
            let (dir, at) = match t[k] {
                "source" => ("source", k + 1),
                "destination" => ("destination", k + 1),
                op if is_port_op(op) => ("destination", k),
                other => {
                    if protos == [Proto::Icmp] || protos == [Proto::Other(58)] {
                        s.narrowed.push(format!("icmp-type {}", t[k..].join(" ")));
                    } else {
                        self.warn(n, format!("`{other}` not understood in a service; ignored"));
                    }
                    break;
                }
            };
            match t
                .get(at)
                .and_then(|op| port_op(op, &t[at + 1..]).map(|r| (op, r)))
            {
                Some((op, (ps, used))) => {
                    if dir == "source" {
                        s.narrowed.push(format!(
                            "source {op} {}",
                            t[at + 1..at + 1 + used].join(" ")
                        ));
                    } else {
                        ports.extend(ps);
                    }
                    k = at + 1 + used;
                }
                None => {
                    self.warn(
                        n,
                        format!("`{}` is not a port match; ignored", t[k..].join(" ")),
                    );
                    break;
                }
            }
        }
        s.list = services(&protos, &ports);
        s
    }

    fn net(&mut self, n: usize, name: &str, group: bool) -> (Vec<AddrRange>, Vec<String>) {
        let key = format!("{}{name}", if group { "g:" } else { "o:" });
        let label = format!("{} {name}", if group { "object-group" } else { "object" });
        match self.net_memo.get(&key) {
            Some(Memo::Done(v)) => return v.clone(),
            Some(Memo::Visiting) => {
                self.warn(
                    n,
                    format!("{label} contains itself; the loop is left unresolved"),
                );
                return (vec![], vec![label]);
            }
            None => {}
        }
        let items = {
            let map = if group { &self.groups } else { &self.objects };
            match map.get(name) {
                Some(d) if d.kind == GroupKind::Network => d.net.clone(),
                Some(d) => {
                    self.warn(
                        n,
                        format!(
                            "{label} (line {}) is not a network {}",
                            d.line,
                            if group { "group" } else { "object" }
                        ),
                    );
                    return (vec![], vec![label]);
                }
                None => {
                    self.warn(n, format!("{label} is not defined; left unresolved"));
                    return (vec![], vec![label]);
                }
            }
        };
        self.net_memo.insert(key.clone(), Memo::Visiting);
        let (mut rs, mut un) = (Vec::new(), Vec::new());
        for it in items {
            match it {
                NetItem::Range(r) => rs.push(r),
                NetItem::Unresolved(u) => un.push(u),
                NetItem::Object(o) => {
                    let (r, u) = self.net(n, &o, false);
                    rs.extend(r);
                    un.extend(u);
                }
                NetItem::Group(g) => {
                    let (r, u) = self.net(n, &g, true);
                    rs.extend(r);
                    un.extend(u);
                }
            }
        }
        self.net_memo
            .insert(key, Memo::Done((rs.clone(), un.clone())));
        (rs, un)
    }

    /// A service object, service group, port group or protocol group, expanded.
    fn svc(&mut self, n: usize, name: &str, group: bool) -> (GroupKind, SvcSet) {
        let key = format!("{}{name}", if group { "g:" } else { "o:" });
        let label = format!("{} {name}", if group { "object-group" } else { "object" });
        let (kind, items, nets) = {
            let map = if group { &self.groups } else { &self.objects };
            match map.get(name) {
                Some(d) => (d.kind.clone(), d.svc.clone(), d.net.clone()),
                None => {
                    self.warn(n, format!("{label} is not defined; left unresolved"));
                    return (
                        GroupKind::Service,
                        SvcSet {
                            unresolved: vec![label],
                            ..Default::default()
                        },
                    );
                }
            }
        };
        match self.svc_memo.get(&key) {
            Some(Memo::Done(v)) => return (kind, v.clone()),
            Some(Memo::Visiting) => {
                self.warn(
                    n,
                    format!("{label} contains itself; the loop is left unresolved"),
                );
                return (
                    kind,
                    SvcSet {
                        unresolved: vec![label],
                        ..Default::default()
                    },
                );
            }
            None => {}
        }
        self.svc_memo.insert(key.clone(), Memo::Visiting);
        let mut out = SvcSet::default();
        let mut port_protos: Vec<Proto> = Vec::new();
        let mut port_ranges: Vec<(u16, u16)> = Vec::new();
        let add = |out: &mut SvcSet, s: SvcSet| {
            out.any |= s.any;
            out.list.extend(s.list);
            out.narrowed.extend(s.narrowed);
            out.unresolved.extend(s.unresolved);
        };
        for (i, it) in items.into_iter().enumerate() {
            match it {
                SvcItem::Set(s) if kind == GroupKind::Ports && i == 0 => {
                    port_protos = s.list.iter().map(|x| x.proto).collect();
                }
                SvcItem::Set(s) if kind == GroupKind::Ports => {
                    port_ranges.extend(s.list.iter().filter_map(|x| x.ports));
                }
                SvcItem::Set(s) => add(&mut out, s),
                SvcItem::Object(o) => {
                    let (_, s) = self.svc(n, &o, false);
                    add(&mut out, s);
                }
            }
        }
        // nested `group-object` lines were recorded as network items
        for it in nets {
            if let NetItem::Group(g) = it {
                let (_, s) = self.svc(n, &g, true);
                if kind == GroupKind::Ports {
                    port_ranges.extend(s.list.iter().filter_map(|x| x.ports));
                } else {
                    add(&mut out, s);
                }
            }
        }
        if kind == GroupKind::Ports {
            out.list.extend(services(&port_protos, &port_ranges));
        }
        self.svc_memo.insert(key, Memo::Done(out.clone()));
        (kind, out)
    }

    /// An address at `t[0..]`: (set, narrowing, words used).
    fn addr(&mut self, n: usize, t: &[&str]) -> Option<(AddrSet, Option<String>, usize)> {
        let all4 = AddrRange {
            lo: num_ip(true, 0),
            hi: num_ip(true, u32::MAX as u128),
        };
        let all6 = AddrRange {
            lo: num_ip(false, 0),
            hi: num_ip(false, u128::MAX),
        };
        let some =
            |ranges: Vec<AddrRange>, unresolved: Vec<String>| AddrSet::Some { ranges, unresolved };
        Some(match *t.first()? {
            "any" => (AddrSet::Any, None, 1),
            "any4" => (some(vec![all4], vec![]), None, 1),
            "any6" => (some(vec![all6], vec![]), None, 1),
            "host" => {
                let a = *t.get(1)?;
                match self.host(a) {
                    Some(ip) => (some(vec![AddrRange::host(ip)], vec![]), None, 2),
                    None => {
                        self.warn(
                            n,
                            format!(
                                "host `{a}` is neither an address nor a `name`; left unresolved"
                            ),
                        );
                        (some(vec![], vec![a.to_string()]), None, 2)
                    }
                }
            }
            "object" => {
                let (r, u) = self.net(n, t.get(1)?, false);
                (some(r, u), None, 2)
            }
            "object-group" => {
                let (r, u) = self.net(n, t.get(1)?, true);
                (some(r, u), None, 2)
            }
            "interface" => {
                let i = *t.get(1)?;
                (
                    some(vec![], vec![format!("interface {i}")]),
                    Some(format!("interface {i}")),
                    2,
                )
            }
            "object-group-user"
            | "user"
            | "user-group"
            | "object-group-security"
            | "security-group" => {
                let v = *t.get(1)?;
                return Some((AddrSet::Any, Some(format!("{} {v}", t[0])), 2));
            }
            a if a.contains('/') => match cidr(a) {
                Some(r) => (some(vec![r], vec![]), None, 1),
                None => {
                    self.warn(n, format!("`{a}` is not a prefix; left unresolved"));
                    (some(vec![], vec![a.to_string()]), None, 1)
                }
            },
            a => {
                let m = *t.get(1)?;
                match self.host(a).map(|ip| mask_range(&ip.to_string(), m)) {
                    Some(Ok(r)) => (some(vec![r], vec![]), None, 2),
                    Some(Err(e)) => {
                        self.warn(n, format!("{e}; `{a} {m}` left unresolved"));
                        (some(vec![], vec![format!("{a} {m}")]), None, 2)
                    }
                    None => {
                        self.warn(
                            n,
                            format!("`{a}` is neither an address nor a `name`; left unresolved"),
                        );
                        (some(vec![], vec![format!("{a} {m}")]), None, 2)
                    }
                }
            }
        })
    }

    /// A port match at `t[0..]` (operator or port group): (ranges with protocols, used).
    fn ports_at(&mut self, n: usize, t: &[&str]) -> Option<(Vec<Service>, String, usize)> {
        let first = *t.first()?;
        if is_port_op(first) {
            let (ps, used) = port_op(first, &t[1..])?;
            let text = t[..=used].join(" ");
            return Some((
                ps.into_iter()
                    .map(|p| Service {
                        proto: Proto::Tcp,
                        ports: Some(p),
                    })
                    .collect(),
                text,
                used + 1,
            ));
        }
        if first == "object-group" {
            let g = *t.get(1)?;
            if self
                .groups
                .get(g)
                .is_some_and(|d| d.kind == GroupKind::Ports)
            {
                let (_, s) = self.svc(n, g, true);
                return Some((s.list, format!("object-group {g}"), 2));
            }
        }
        None
    }

    fn ace(&mut self, n: usize, t: &[&str], name: String, owner: Option<String>) -> Option<Rule> {
        let action = match t.first() {
            Some(&"permit") => Action::Allow,
            Some(&"deny") => Action::Deny,
            _ => {
                self.warn(
                    n,
                    format!(
                        "access-list entry `{}` not understood; skipped",
                        t.join(" ")
                    ),
                );
                return None;
            }
        };
        let mut narrowed = Vec::new();
        let mut k = 1;
        // protocol position
        let mut svc = SvcSet::default();
        let mut protos: Vec<Proto> = Vec::new();
        match t.get(k) {
            Some(&"object-group") | Some(&"object") => {
                let g = *t.get(k + 1)?;
                let group = t[k] == "object-group";
                let (kind, s) = self.svc(n, g, group);
                if kind == GroupKind::Protocol {
                    protos = s.list.iter().map(|x| x.proto).collect();
                    svc.any = s.any;
                } else {
                    svc = s;
                }
                k += 2;
            }
            Some(&"ip") => {
                svc.any = true;
                k += 1;
            }
            Some(p) => {
                match proto_named(p) {
                    Some(x) => protos.push(x),
                    None => {
                        self.warn(n, format!("protocol `{p}` unknown; read as any, narrowed"));
                        svc.any = true;
                        narrowed.push(format!("protocol {p}"));
                    }
                }
                k += 1;
            }
            None => {
                self.warn(n, "access-list entry without a protocol; skipped".into());
                return None;
            }
        }
        let Some((src, sn, used)) = self.addr(n, &t[k..]) else {
            self.warn(n, "access-list entry without a source; skipped".into());
            return None;
        };
        k += used;
        narrowed.extend(sn);
        if let Some((_, text, used)) = self.ports_at(n, &t[k..]) {
            narrowed.push(format!("source port {text}"));
            k += used;
        }
        let Some((dst, dn, used)) = self.addr(n, &t[k..]) else {
            self.warn(n, "access-list entry without a destination; skipped".into());
            return None;
        };
        k += used;
        narrowed.extend(dn);
        let mut dports: Option<Vec<Service>> = None;
        if let Some((ps, _, used)) = self.ports_at(n, &t[k..]) {
            dports = Some(ps);
            k += used;
        }
        let mut disabled = false;
        while k < t.len() {
            match t[k] {
                "log" => {
                    k += 1;
                    while k < t.len() && !matches!(t[k], "time-range" | "inactive") {
                        k += 1;
                    }
                }
                "inactive" => {
                    disabled = true;
                    k += 1;
                }
                "time-range" => {
                    narrowed.push(format!("time-range {}", t.get(k + 1).unwrap_or(&"")));
                    k += 2;
                }
                "object-group"
                    if protos
                        .iter()
                        .any(|p| matches!(p, Proto::Icmp | Proto::Other(58))) =>
                {
                    narrowed.push(format!(
                        "icmp-type object-group {}",
                        t.get(k + 1).unwrap_or(&"")
                    ));
                    k += 2;
                }
                w if protos
                    .iter()
                    .any(|p| matches!(p, Proto::Icmp | Proto::Other(58))) =>
                {
                    narrowed.push(format!("icmp-type {w}"));
                    k += 1;
                }
                w => {
                    self.warn(
                        n,
                        format!("`{w}` not understood at the end of the entry; ignored"),
                    );
                    k += 1;
                }
            }
        }
        narrowed.extend(svc.narrowed.iter().cloned());
        let mut unresolved_svc = svc.unresolved.clone();
        let services = if !protos.is_empty() {
            let mut list = Vec::new();
            for p in &protos {
                match &dports {
                    Some(ps) if super::common::has_ports(*p) => {
                        list.extend(ps.iter().filter_map(|s| s.ports).map(|r| Service {
                            proto: *p,
                            ports: Some(r),
                        }));
                    }
                    _ => list.push(Service {
                        proto: *p,
                        ports: None,
                    }),
                }
            }
            list.dedup();
            Services::List(list)
        } else if svc.any {
            if dports.is_some() {
                narrowed.push("destination ports on an ip rule".into());
            }
            Services::Any
        } else {
            Services::List(svc.list)
        };
        if !unresolved_svc.is_empty() {
            // a service that cannot be resolved: the rule matches less (allow) or is unknown
            self.warn(
                n,
                format!(
                    "services {} unresolved; the rule keeps the services it could resolve",
                    unresolved_svc.join(", ")
                ),
            );
            narrowed.append(&mut unresolved_svc);
        }
        Some(Rule {
            origin: origin(self.file, n, Some(name), owner),
            action,
            direction: None,
            src,
            dst,
            services,
            narrowed_by: narrowed,
            disabled,
        })
    }
}

enum Member {
    Net(NetItem),
    Svc(SvcItem),
    Ports(Vec<(u16, u16)>),
}
