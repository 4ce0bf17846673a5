//! `nft -j list ruleset` JSON.
//!
//! Lists: the base chains of type `filter` on the `input` (Direction::In), `forward` (None)
//! and `output` (Out) hooks, named `FAMILY TABLE/CHAIN`, default the chain `policy`
//! (`accept` when absent: implicit). Rules in array order; regular chains are inlined at
//! `jump`/`goto` ([`super::flatten`]). Each rule's line is the line of its JSON element.
//!
//! Matches: `ip`/`ip6` `saddr`/`daddr` (address, prefix, range, anonymous set, `@named` set),
//! `tcp`/`udp`/`sctp`/`th` `dport` (number, range, set, `@set`, `<`/`>` comparisons),
//! `meta l4proto`/`ip protocol`/`ip6 nexthdr`, `ct state` (as iptables: see
//! [`super::iptables`]), `!=` negation (complemented for addresses and ports). Everything
//! else (`sport`, ICMP types, interfaces other than `lo`, marks, `limit`, …) goes to
//! `narrowed_by` as compact JSON. Verdicts: accept, drop, reject, jump, goto, return.
//! Several base chains on one hook (a packet must pass them all) are listed separately, with
//! a warning; filter chains on other hooks are warned about when they can drop.

use super::common::{
    addr_token, complement_ports, name_without_owner, negate, origin, port_range, proto_named,
    services, AddrAcc, Tok,
};
use super::flatten::{Flattener, Matches, PRule, Target};
use super::json::{self, Node, J};
use crate::blast::model::owner_in_text;
use crate::policy::rules::{Action, AddrSet, Direction, Proto, RuleList, RuleSet, Services};
use std::collections::HashMap;

struct Base {
    key: String,
    shown: String,
    hook: String,
    line: usize,
    policy: Option<Action>,
}

pub fn parse(file: &str, text: &str) -> RuleSet {
    let (root, lines) = match json::parse_export(file, text, "nft") {
        Ok(parsed) => parsed,
        Err(not_json) => return not_json,
    };
    let mut warnings = Vec::new();
    let mut lists = Vec::new();
    let items = root.get("nftables").map(Node::arr).unwrap_or_default();
    let key = |o: &Node, name_key: &str| {
        format!(
            "{} {} {}",
            o.get("family").and_then(Node::str).unwrap_or(""),
            o.get("table").and_then(Node::str).unwrap_or(""),
            o.get(name_key).and_then(Node::str).unwrap_or("")
        )
    };
    // sets
    let mut sets: HashMap<String, Vec<Node>> = HashMap::new();
    for it in items {
        for k in ["set", "element"] {
            if let Some(s) = it.get(k) {
                let e = sets.entry(key(s, "name")).or_default();
                e.extend(
                    s.get("elem")
                        .map(Node::arr)
                        .unwrap_or_default()
                        .iter()
                        .cloned(),
                );
            }
        }
    }
    let mut bases: Vec<Base> = Vec::new();
    let mut chains: HashMap<String, Vec<PRule>> = HashMap::new();
    for it in items {
        if let Some(c) = it.get("chain") {
            let k = key(c, "name");
            let ty = c.get("type").and_then(Node::str);
            if let (Some("filter"), Some(hook)) = (ty, c.get("hook").and_then(Node::str)) {
                let policy = match c.get("policy").and_then(Node::str) {
                    Some("drop") => Some(Action::Deny),
                    Some("accept") => Some(Action::Allow),
                    _ => None,
                };
                bases.push(Base {
                    shown: format!(
                        "{} {}/{}",
                        c.get("family").and_then(Node::str).unwrap_or(""),
                        c.get("table").and_then(Node::str).unwrap_or(""),
                        c.get("name").and_then(Node::str).unwrap_or("")
                    ),
                    key: k.clone(),
                    hook: hook.to_string(),
                    line: lines.line(it.pos),
                    policy,
                });
            }
            chains.entry(k).or_default();
        }
        if let Some(r) = it.get("rule") {
            let n = lines.line(it.pos);
            let fam = r
                .get("family")
                .and_then(Node::str)
                .unwrap_or("")
                .to_string();
            let tab = r.get("table").and_then(Node::str).unwrap_or("").to_string();
            let ck = key(r, "chain");
            let mut cx = Cx {
                sets: &sets,
                fam: &fam,
                tab: &tab,
                warnings: &mut warnings,
                file,
                n,
            };
            if let Some(p) = cx.rule(r) {
                chains.entry(ck).or_default().push(p);
            }
        }
    }
    let mut seen_hooks: HashMap<(String, String), String> = HashMap::new();
    for b in &bases {
        let direction = match b.hook.as_str() {
            "input" => Some(Direction::In),
            "output" => Some(Direction::Out),
            "forward" => None,
            h => {
                let drops = b.policy == Some(Action::Deny)
                    || chains.get(&b.key).is_some_and(|rs| {
                        rs.iter().any(|r| r.target == Target::Verdict(Action::Deny))
                    });
                if drops {
                    warnings.push(format!(
                        "{file}:{}: filter chain {} on hook `{h}` can drop packets; not modelled",
                        b.line, b.shown
                    ));
                }
                continue;
            }
        };
        let family = b.key.split(' ').next().unwrap_or("").to_string();
        if let Some(other) = seen_hooks.insert((family.clone(), b.hook.clone()), b.shown.clone()) {
            warnings.push(format!(
                "{file}:{}: {} and {other} both filter hook `{}`: a packet must pass both lists",
                b.line, b.shown, b.hook
            ));
        }
        let default = b.policy.unwrap_or(Action::Allow);
        let mut f = Flattener::new(file, &chains, default, direction, &mut warnings);
        f.run(&b.key, &Matches::all(), (&None, &None), &mut Vec::new());
        lists.push(RuleList {
            name: b.shown.clone(),
            rules: f.out,
            default,
            default_origin: origin(file, b.line, Some(format!("{} policy", b.shown)), None),
            implicit_default: b.policy.is_none(),
        });
    }
    RuleSet {
        file: file.into(),
        format: "nft",
        lists,
        warnings,
    }
}

struct Cx<'a> {
    sets: &'a HashMap<String, Vec<Node>>,
    fam: &'a str,
    tab: &'a str,
    warnings: &'a mut Vec<String>,
    file: &'a str,
    n: usize,
}

/// The elements a right-hand side stands for (anonymous set, `@named` set, or one value).
fn elements<'n>(cx: &'n Cx, right: &'n Node) -> Result<Vec<&'n Node>, String> {
    if let Some(s) = right.str().and_then(|s| s.strip_prefix('@')) {
        let k = format!("{} {} {s}", cx.fam, cx.tab);
        return cx
            .sets
            .get(&k)
            .map(|v| v.iter().collect())
            .ok_or_else(|| s.to_string());
    }
    if let Some(set) = right.get("set") {
        return Ok(set.arr().iter().collect());
    }
    Ok(vec![right])
}

/// `{"elem": {"val": …}}` wrappers (elements with comments or timeouts) unwrapped.
fn unwrap_elem(n: &Node) -> &Node {
    n.get("elem").and_then(|e| e.get("val")).unwrap_or(n)
}

impl Cx<'_> {
    fn warn(&mut self, m: String) {
        self.warnings.push(format!("{}:{}: {m}", self.file, self.n));
    }

    fn addrs(&mut self, right: &Node) -> AddrSet {
        let mut acc = AddrAcc::default();
        match elements(self, right) {
            Err(name) => {
                self.warn(format!(
                    "set `@{name}` is not in the export; left unresolved"
                ));
                acc.unresolved.push(format!("@{name}"));
            }
            Ok(es) => {
                let mut bad = Vec::new();
                for e in es {
                    let e = unwrap_elem(e);
                    let tok = if let Some(p) = e.get("prefix") {
                        let a = p.get("addr").and_then(Node::str).unwrap_or("");
                        let l = p.get("len").and_then(Node::int).unwrap_or(-1);
                        addr_token(&format!("{a}/{l}"))
                    } else if let Some(r) = e.get("range") {
                        let (a, b) = (
                            r.arr().first().and_then(Node::str),
                            r.arr().get(1).and_then(Node::str),
                        );
                        match (a, b) {
                            (Some(a), Some(b)) => super::common::dash_range(a, b).map(Tok::Range),
                            _ => Err("bad range".into()),
                        }
                    } else if let Some(s) = e.str() {
                        addr_token(s)
                    } else {
                        Err(format!("`{}` is not an address", e.compact()))
                    };
                    match tok {
                        Ok(t) => acc.push_tok(t),
                        Err(m) => bad.push(m),
                    }
                }
                for m in bad {
                    self.warn(format!("{m}; ignored"));
                }
            }
        }
        acc.build()
    }

    fn ports(&mut self, op: &str, right: &Node) -> Option<Vec<(u16, u16)>> {
        let one = |e: &Node| -> Option<(u16, u16)> {
            let e = unwrap_elem(e);
            if let Some(r) = e.get("range") {
                let a = r.arr().first()?;
                let b = r.arr().get(1)?;
                let a = a
                    .int()
                    .map(|x| x.to_string())
                    .or_else(|| a.str().map(str::to_string))?;
                let b = b
                    .int()
                    .map(|x| x.to_string())
                    .or_else(|| b.str().map(str::to_string))?;
                return port_range(&format!("{a}-{b}"));
            }
            match &e.v {
                J::Num(_) => e.int().and_then(|v| u16::try_from(v).ok()).map(|v| (v, v)),
                J::Str(s) => port_range(s),
                _ => None,
            }
        };
        let es = match elements(self, right) {
            Ok(es) => es,
            Err(name) => {
                self.warn(format!(
                    "set `@{name}` is not in the export; the rule is kept for every port, narrowed"
                ));
                return None;
            }
        };
        let mut out = Vec::new();
        for e in es {
            out.push(one(e)?);
        }
        let cmp = |f: &dyn Fn(u16) -> Option<(u16, u16)>| {
            out.first().and_then(|&(p, _)| f(p)).map(|r| vec![r])
        };
        match op {
            "==" | "in" => Some(out),
            "!=" => Some(complement_ports(&out)),
            "<" => cmp(&|p| p.checked_sub(1).map(|h| (0, h))),
            "<=" => cmp(&|p| Some((0, p))),
            ">" => cmp(&|p| p.checked_add(1).map(|l| (l, 65535))),
            ">=" => cmp(&|p| Some((p, 65535))),
            _ => None,
        }
    }

    fn rule(&mut self, r: &Node) -> Option<PRule> {
        let mut src: Option<AddrSet> = None;
        let mut dst: Option<AddrSet> = None;
        let mut protos: Option<Vec<Proto>> = None;
        let mut ports: Option<Vec<(u16, u16)>> = None;
        let mut narrowed = Vec::new();
        let mut target = None;
        let comment = r.get("comment").and_then(Node::str).map(str::to_string);
        for e in r.get("expr").map(Node::arr).unwrap_or_default() {
            let Some((verb, body)) = e.obj().first() else {
                continue;
            };
            match verb.as_str() {
                "match" => {
                    let op = body.get("op").and_then(Node::str).unwrap_or("==");
                    let (Some(left), Some(right)) = (body.get("left"), body.get("right")) else {
                        continue;
                    };
                    let neg = op == "!=";
                    let described = || format!("{} {op} {}", describe(left), right.compact());
                    if let Some(p) = left.get("payload") {
                        let proto = p.get("protocol").and_then(Node::str).unwrap_or("");
                        let field = p.get("field").and_then(Node::str).unwrap_or("");
                        match (proto, field) {
                            ("ip" | "ip6", "saddr" | "daddr")
                                if matches!(op, "==" | "!=" | "in") =>
                            {
                                let s = self.addrs(right);
                                let s = if neg { negate(s) } else { s };
                                let slot = if field == "saddr" { &mut src } else { &mut dst };
                                *slot = Some(match slot.take() {
                                    None => s,
                                    Some(p) => super::common::intersect(&p, &s),
                                });
                            }
                            ("tcp" | "udp" | "sctp" | "th" | "dccp", "dport") => {
                                if proto != "th" && proto != "dccp" {
                                    protos.get_or_insert_with(|| {
                                        proto_named(proto).into_iter().collect()
                                    });
                                }
                                match self.ports(op, right) {
                                    Some(ps) => ports = Some(ps),
                                    None => narrowed.push(described()),
                                }
                            }
                            ("ip", "protocol") | ("ip6", "nexthdr") => {
                                self.protos(op, right, &mut protos, &mut narrowed, described())
                            }
                            _ => {
                                if let Some(p) = proto_named(proto) {
                                    protos.get_or_insert_with(|| vec![p]);
                                }
                                narrowed.push(described());
                            }
                        }
                    } else if let Some(m) = left.get("meta") {
                        let k = m.get("key").and_then(Node::str).unwrap_or("");
                        match k {
                            "l4proto" => {
                                self.protos(op, right, &mut protos, &mut narrowed, described())
                            }
                            "nfproto" | "protocol" => {}
                            "iifname" | "oifname" | "iif" | "oif"
                                if right.str() == Some("lo") && !neg =>
                            {
                                return None;
                            }
                            _ => narrowed.push(described()),
                        }
                    } else if left
                        .get("ct")
                        .and_then(|c| c.get("key"))
                        .and_then(Node::str)
                        == Some("state")
                    {
                        let mut st: Vec<String> = match elements(self, right) {
                            Ok(es) => es
                                .iter()
                                .filter_map(|e| e.str())
                                .map(str::to_ascii_uppercase)
                                .collect(),
                            Err(_) => vec![],
                        };
                        if let J::Arr(a) = &right.v {
                            st = a
                                .iter()
                                .filter_map(Node::str)
                                .map(str::to_ascii_uppercase)
                                .collect();
                        }
                        if neg {
                            st = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"]
                                .iter()
                                .map(|s| s.to_string())
                                .filter(|s| !st.contains(s))
                                .collect();
                        }
                        if !st.iter().any(|s| s == "NEW") {
                            if st.iter().any(|s| s == "ESTABLISHED" || s == "RELATED") {
                                let dropping =
                                    r.get("expr").map(Node::arr).unwrap_or_default().iter().any(
                                        |x| x.get("drop").is_some() || x.get("reject").is_some(),
                                    );
                                if dropping {
                                    self.warn(format!("a drop of return traffic (ct state {}) is not modelled: Kubernetes policies are stateful", st.join(",")));
                                }
                                return None;
                            }
                            if st.iter().all(|s| s == "INVALID") {
                                return None;
                            }
                            narrowed.push(format!("ct state {}", st.join(",")));
                        }
                    } else {
                        narrowed.push(described());
                    }
                }
                "accept" => target = Some(Target::Verdict(Action::Allow)),
                "drop" | "reject" => target = Some(Target::Verdict(Action::Deny)),
                "return" => target = Some(Target::Return),
                "jump" | "goto" => {
                    let t = body.get("target").and_then(Node::str).unwrap_or("");
                    let k = format!("{} {} {t}", self.fam, self.tab);
                    target = Some(if verb == "jump" {
                        Target::Jump(k)
                    } else {
                        Target::Goto(k)
                    });
                }
                "limit" | "quota" | "meter" => narrowed.push(e.compact()),
                "queue" => {
                    self.warn(
                        "queue hands packets to a user-space program; rule not modelled".into(),
                    );
                    return None;
                }
                _ => {} // counter, log, mangle, nat, …: decide nothing
            }
            if target.is_some() {
                break;
            }
        }
        let Some(target) = target else {
            // a verdict map decides per element: not modelled, and it may drop
            let vmap = r
                .get("expr")
                .map(Node::arr)
                .unwrap_or_default()
                .iter()
                .any(|e| e.get("vmap").is_some());
            if vmap {
                self.warn("verdict map (vmap) not modelled; rule skipped".into());
            }
            return None;
        };
        let services = match (protos, ports) {
            (None, None) => Services::Any,
            (Some(p), ps) => Services::List(services(&p, &ps.unwrap_or_default())),
            (None, Some(ps)) => {
                Services::List(services(&[Proto::Tcp, Proto::Udp, Proto::Sctp], &ps))
            }
        };
        let owner = comment.as_deref().and_then(owner_in_text);
        let name = comment.as_deref().and_then(name_without_owner).or_else(|| {
            r.get("handle")
                .and_then(Node::int)
                .map(|h| format!("handle {h}"))
        });
        Some(PRule {
            line: self.n,
            m: Matches {
                src: src.unwrap_or(AddrSet::Any),
                dst: dst.unwrap_or(AddrSet::Any),
                services,
                narrowed,
            },
            target,
            name,
            owner,
        })
    }

    fn protos(
        &mut self,
        op: &str,
        right: &Node,
        protos: &mut Option<Vec<Proto>>,
        narrowed: &mut Vec<String>,
        described: String,
    ) {
        let names: Vec<Option<Proto>> = match elements(self, right) {
            Ok(es) => es
                .iter()
                .map(|e| {
                    e.str()
                        .map(str::to_string)
                        .or_else(|| e.int().map(|i| i.to_string()))
                        .and_then(|s| proto_named(&s))
                })
                .collect(),
            Err(_) => vec![None],
        };
        if op == "!=" || names.iter().any(Option::is_none) {
            narrowed.push(described);
        } else {
            *protos = Some(names.into_iter().flatten().collect());
        }
    }
}

/// `tcp sport`, `meta iifname`, `ct mark`, … for a match's left-hand side.
fn describe(left: &Node) -> String {
    let field = |o: &Node, a: &str, b: &str| {
        format!(
            "{} {}",
            o.get(a).and_then(Node::str).unwrap_or("?"),
            o.get(b).and_then(Node::str).unwrap_or("?")
        )
    };
    if let Some(p) = left.get("payload") {
        return field(p, "protocol", "field");
    }
    for k in ["meta", "ct"] {
        if let Some(m) = left.get(k) {
            return format!("{k} {}", m.get("key").and_then(Node::str).unwrap_or("?"));
        }
    }
    left.compact()
}
