//! `iptables-save` (and `ip6tables-save`) output, with `ipset save` sets.
//!
//! Only the `*filter` table decides. Lists: the base chains `filter/INPUT` (Direction::In),
//! `filter/FORWARD` (transit, None) and `filter/OUTPUT` (Out), in the order they are
//! declared; the default is the chain policy (`:FORWARD DROP [0:0]`). User chains are
//! inlined at their jumps ([`super::flatten`]).
//!
//! Modelling:
//! - `! -s`/`! -d`/`! --src-range`/`! --match-set` are complemented exactly (within the
//!   address family they use); `! --dport` likewise for ports; `! -p` keeps every protocol and
//!   is recorded in `narrowed_by`.
//! - Connection state: a rule whose state set (`-m conntrack --ctstate`, `-m state --state`,
//!   negation applied) contains NEW applies to new connections as if it had no state match.
//!   One without NEW that has ESTABLISHED or RELATED is return traffic, which a Kubernetes
//!   policy allows statefully: it is left out (a DROP of it is left out with a warning). A
//!   rule matching only INVALID packets is left out (an invalid packet is no connection).
//!   Other states alone (UNTRACKED, DNAT, SNAT) narrow the rule.
//! - `-i lo`/`-o lo` rules are loopback-only traffic, never a VM's: left out.
//! - Source ports, ICMP types, TCP flags, interfaces, fragments and every other match module
//!   (`-m limit`, `-m recent`, …) go to `narrowed_by`, with their options.
//! - Non-terminating targets (LOG, NFLOG, MARK, …) do not decide and are skipped; NFQUEUE
//!   is skipped with a warning.
//! - `-m set --match-set NAME src|dst` is resolved from `ipset save` output (`hash:ip`,
//!   `hash:net`, `bitmap:ip`, the first dimension of `hash:ip,port`-style sets with the rest
//!   in `narrowed_by`, `list:set` expanded, `nomatch` entries subtracted); a set defined
//!   nowhere stays unresolved (`ipset NAME`).
//! - Non-filter tables are ignored, except that a DROP/REJECT in `raw`/`mangle` is warned about.

use super::common::{
    addr_token, complement_ports, name_without_owner, negate, origin, port_range, proto_named,
    services, words, AddrAcc, Tok,
};
use super::flatten::{Flattener, Matches, PRule, Target};
use crate::blast::model::owner_in_text;
use crate::policy::rules::{
    Action, AddrRange, AddrSet, Direction, Proto, RuleList, RuleSet, Services,
};
use std::collections::HashMap;

/// Whether text is `iptables-save` output (a `*table` line and a chain or rule line).
pub fn looks_like(text: &str) -> bool {
    let mut table = false;
    let mut rule = false;
    for l in text.lines().take(400) {
        let l = l.trim();
        table |=
            l.starts_with('*') && l.len() > 1 && l[1..].chars().all(|c| c.is_ascii_lowercase());
        rule |= l.starts_with("-A ") || (l.starts_with(':') && l.contains(" ["));
        if table && rule {
            return true;
        }
    }
    false
}

// ------------------------------------------------------------------------------ ipsets

/// `ipset save` output: its first line that is not a comment creates a set.
pub fn is_ipset_save(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| {
            l.starts_with("create ") && ["hash:", "bitmap:", "list:"].iter().any(|k| l.contains(k))
        })
}

#[derive(Debug, Clone, Default)]
pub struct IpsetDef {
    pub file: String,
    pub line: usize,
    pub kind: String,
    pub ranges: Vec<AddrRange>,
    pub nomatch: Vec<AddrRange>,
    pub members: Vec<String>,
    pub problems: Vec<String>,
}

impl IpsetDef {
    fn dims(&self) -> usize {
        self.kind
            .split_once(':')
            .map_or(1, |(_, d)| d.split(',').count())
    }
}

/// Every `ipset save` set found, by name (a name may be defined in several files).
#[derive(Debug, Default)]
pub struct IpsetDb {
    pub sets: HashMap<String, Vec<IpsetDef>>,
}

impl IpsetDb {
    /// Adds the `create`/`add` lines of `text` (any file; other lines are ignored).
    pub fn collect(&mut self, file: &str, text: &str) {
        let mut cur: HashMap<String, usize> = HashMap::new(); // name -> index in sets[name]
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let l = raw.trim();
            let (create, rest) = if let Some(r) = l.strip_prefix("create ") {
                (true, r)
            } else if let Some(r) = l.strip_prefix("add ") {
                (false, r)
            } else {
                continue;
            };
            let mut w = rest.split_whitespace();
            let (Some(name), Some(arg)) = (w.next(), w.next()) else {
                continue;
            };
            if create {
                let defs = self.sets.entry(name.to_string()).or_default();
                defs.push(IpsetDef {
                    file: file.to_string(),
                    line: n,
                    kind: arg.to_string(),
                    ..Default::default()
                });
                cur.insert(name.to_string(), defs.len() - 1);
                continue;
            }
            let Some(def) = cur
                .get(name)
                .and_then(|&k| self.sets.get_mut(name).and_then(|d| d.get_mut(k)))
            else {
                continue; // `add` of a set not created in this file: not ipset save output
            };
            let nomatch = w.any(|x| x == "nomatch");
            if def.kind == "list:set" {
                def.members.push(arg.to_string());
                continue;
            }
            let first = arg.split(',').next().unwrap_or(arg);
            match addr_token(first) {
                Ok(Tok::Range(r)) if nomatch => def.nomatch.push(r),
                Ok(Tok::Range(r)) => def.ranges.push(r),
                _ => def.problems.push(format!(
                    "{file}:{n}: ipset entry `{arg}` is not an address; ignored"
                )),
            }
        }
    }

    /// The definition of `name` that applies to `file`: the one in the file itself, else the
    /// only one in its directory, else the only one anywhere.
    fn find(&self, name: &str, file: &str) -> Result<&IpsetDef, String> {
        let Some(defs) = self.sets.get(name) else {
            return Err(format!(
                "ipset `{name}` is defined in no `ipset save` output"
            ));
        };
        if let Some(d) = defs.iter().find(|d| d.file == file) {
            return Ok(d);
        }
        let dir = |f: &str| f.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let same: Vec<&IpsetDef> = defs.iter().filter(|d| dir(&d.file) == dir(file)).collect();
        if same.len() == 1 {
            return Ok(same[0]);
        }
        if defs.len() == 1 {
            return Ok(&defs[0]);
        }
        Err(format!(
            "ipset `{name}` is defined in several files ({}); left unresolved",
            defs.iter()
                .map(|d| format!("{}:{}", d.file, d.line))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// Addresses of set `name` (list:set members expanded, nomatch subtracted), with
    /// warnings; `Err` when unresolvable.
    fn resolve(
        &self,
        name: &str,
        file: &str,
        stack: &mut Vec<String>,
        warns: &mut Vec<String>,
    ) -> Result<(Vec<AddrRange>, usize), String> {
        let def = self.find(name, file)?;
        warns.extend(def.problems.iter().cloned());
        if def.kind == "list:set" {
            if stack.iter().any(|s| s == name) || stack.len() > 16 {
                return Err(format!("ipset `{name}` contains itself"));
            }
            stack.push(name.to_string());
            let mut out = Vec::new();
            let mut dims = 1;
            for m in &def.members {
                let (r, d) = self.resolve(m, file, stack, warns)?;
                out.extend(r);
                dims = dims.max(d);
            }
            stack.pop();
            return Ok((out, dims));
        }
        let r = if def.nomatch.is_empty() {
            def.ranges.clone()
        } else {
            super::common::subtract(&def.ranges, &def.nomatch)
        };
        Ok((r, def.dims()))
    }
}

// ------------------------------------------------------------------------------ rules

struct Chain {
    policy: Option<(Action, usize)>,
}

/// What one `-A` line does, before flattening.
enum Parsed {
    Rule(Box<PRule>),
    /// Left out on purpose (loopback, return traffic, LOG, …), with an optional warning.
    Skip(Option<String>),
}

pub fn parse(file: &str, text: &str, ipsets: &IpsetDb) -> RuleSet {
    let mut warnings = Vec::new();
    let mut lists = Vec::new();
    let mut table = String::new();
    let mut table_line = 1;
    let mut order: Vec<String> = Vec::new();
    let mut chains: HashMap<String, Chain> = HashMap::new();
    let mut rules: HashMap<String, Vec<PRule>> = HashMap::new();
    let mut resolver = Resolver {
        db: ipsets,
        file,
        memo: HashMap::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim();
        if let Some(t) = l.strip_prefix('*') {
            table = t.trim().to_string();
            table_line = n;
            continue;
        }
        if l == "COMMIT" {
            if table == "filter" {
                finish(
                    file,
                    table_line,
                    &order,
                    &chains,
                    &rules,
                    &mut lists,
                    &mut warnings,
                );
            }
            order.clear();
            chains.clear();
            rules.clear();
            table.clear();
            continue;
        }
        if table != "filter" {
            if (table == "raw" || table == "mangle")
                && l.starts_with("-A ")
                && (l.contains("-j DROP") || l.contains("-j REJECT"))
            {
                warnings.push(format!(
                    "{file}:{n}: a DROP in table `{table}` is not modelled (only the filter table decides)"
                ));
            }
            continue;
        }
        if let Some(decl) = l.strip_prefix(':') {
            let mut w = decl.split_whitespace();
            let name = w.next().unwrap_or("").to_string();
            let policy = match w.next() {
                Some("ACCEPT") => Some((Action::Allow, n)),
                Some("DROP") | Some("REJECT") => Some((Action::Deny, n)),
                _ => None,
            };
            if !chains.contains_key(&name) {
                order.push(name.clone());
            }
            chains.insert(name, Chain { policy });
            continue;
        }
        let l = match l.strip_prefix('[') {
            // `iptables-save -c`: `[packets:bytes] -A …`
            Some(r) => r.split_once(']').map_or("", |(_, r)| r.trim()),
            None => l,
        };
        if !(l.starts_with("-A ") || l.starts_with("-I ")) {
            continue;
        }
        let w = words(l);
        let Some(chain) = w.get(1).cloned() else {
            warnings.push(format!("{file}:{n}: rule without a chain; skipped"));
            continue;
        };
        if !chains.contains_key(&chain) {
            order.push(chain.clone());
            chains.insert(chain.clone(), Chain { policy: None });
        }
        match parse_rule(file, n, &w[2..], &mut resolver, &mut warnings) {
            Parsed::Rule(r) => rules.entry(chain).or_default().push(*r),
            Parsed::Skip(Some(wn)) => warnings.push(wn),
            Parsed::Skip(None) => {}
        }
    }
    if table == "filter" {
        warnings.push(format!(
            "{file}:{table_line}: table filter has no COMMIT (truncated export?); its rules are read as far as they go"
        ));
        finish(
            file,
            table_line,
            &order,
            &chains,
            &rules,
            &mut lists,
            &mut warnings,
        );
    }
    RuleSet {
        file: file.to_string(),
        format: "iptables",
        lists,
        warnings,
    }
}

fn finish(
    file: &str,
    table_line: usize,
    order: &[String],
    chains: &HashMap<String, Chain>,
    rules: &HashMap<String, Vec<PRule>>,
    lists: &mut Vec<RuleList>,
    warnings: &mut Vec<String>,
) {
    for name in order {
        let direction = match name.as_str() {
            "INPUT" => Some(Direction::In),
            "OUTPUT" => Some(Direction::Out),
            "FORWARD" => None,
            _ => continue,
        };
        let (default, line, implicit) = match chains.get(name).and_then(|c| c.policy) {
            Some((a, l)) => (a, l, false),
            None => (Action::Allow, table_line, true),
        };
        let mut f = Flattener::new(file, rules, default, direction, warnings);
        f.run(name, &Matches::all(), (&None, &None), &mut Vec::new());
        lists.push(RuleList {
            name: format!("filter/{name}"),
            rules: f.out,
            default,
            default_origin: origin(file, line, Some(format!("{name} policy")), None),
            implicit_default: implicit,
        });
    }
}

struct Resolver<'a> {
    db: &'a IpsetDb,
    file: &'a str,
    memo: HashMap<String, Result<(Vec<AddrRange>, usize), String>>,
}

impl Resolver<'_> {
    fn set(
        &mut self,
        name: &str,
        warns: &mut Vec<String>,
    ) -> Result<(Vec<AddrRange>, usize), String> {
        if let Some(r) = self.memo.get(name) {
            return r.clone();
        }
        let mut w = Vec::new();
        let r = self.db.resolve(name, self.file, &mut Vec::new(), &mut w);
        warns.extend(w);
        self.memo.insert(name.to_string(), r.clone());
        r
    }
}

const NON_TERMINAL: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "MARK",
    "CONNMARK",
    "TRACE",
    "AUDIT",
    "CLASSIFY",
    "DSCP",
    "TOS",
    "TCPMSS",
    "NOTRACK",
    "CT",
    "SET",
    "CHECKSUM",
    "TEE",
    "RATEEST",
    "SECMARK",
    "CONNSECMARK",
    "LED",
    "IDLETIMER",
    "TTL",
    "HL",
    "ECN",
    "SYNPROXY",
];

fn parse_rule(
    file: &str,
    n: usize,
    w: &[String],
    sets: &mut Resolver,
    warnings: &mut Vec<String>,
) -> Parsed {
    let mut src: Option<AddrSet> = None;
    let mut dst: Option<AddrSet> = None;
    let mut proto: Option<Proto> = None;
    let mut ports: Option<Vec<(u16, u16)>> = None;
    let mut narrowed: Vec<String> = Vec::new();
    let mut states: Option<Vec<String>> = None;
    let mut comment: Option<String> = None;
    let mut target: Option<String> = None;
    let mut goto = false;
    let mut module = String::new();
    let mut neg = false;
    let mut k = 0;
    let and_set = |slot: &mut Option<AddrSet>, s: AddrSet| {
        *slot = Some(match slot.take() {
            None => s,
            Some(prev) => super::common::intersect(&prev, &s),
        });
    };
    while k < w.len() {
        let opt = w[k].as_str();
        if opt == "!" {
            neg = true;
            k += 1;
            continue;
        }
        let val = w.get(k + 1).map(String::as_str);
        let not = std::mem::take(&mut neg);
        let bang = if not { "! " } else { "" };
        match (opt, val) {
            ("-s" | "--source" | "--src" | "-d" | "--destination" | "--dst", Some(v)) => {
                let mut acc = AddrAcc::default();
                for t in v.split(',') {
                    match addr_token(t) {
                        Ok(tok) => acc.push_tok(tok),
                        Err(e) => {
                            warnings.push(format!("{file}:{n}: {e}; kept as an unresolved name"));
                            acc.unresolved.push(t.to_string());
                        }
                    }
                }
                let mut s = acc.build();
                if not {
                    s = negate(s);
                }
                let slot = if opt.starts_with("-s") || opt.starts_with("--s") {
                    &mut src
                } else {
                    &mut dst
                };
                and_set(slot, s);
                k += 2;
            }
            ("--src-range" | "--dst-range", Some(v)) => {
                let s = match v
                    .split_once('-')
                    .map(|(a, b)| super::common::dash_range(a, b))
                {
                    Some(Ok(r)) => AddrSet::Some {
                        ranges: vec![r],
                        unresolved: vec![],
                    },
                    _ => {
                        warnings.push(format!(
                            "{file}:{n}: `{v}` is not an address range; kept as an unresolved name"
                        ));
                        AddrSet::Some {
                            ranges: vec![],
                            unresolved: vec![v.to_string()],
                        }
                    }
                };
                let s = if not { negate(s) } else { s };
                and_set(
                    if opt == "--src-range" {
                        &mut src
                    } else {
                        &mut dst
                    },
                    s,
                );
                k += 2;
            }
            ("--match-set" | "--set", Some(name)) => {
                let flags = w.get(k + 2).map(String::as_str).unwrap_or("src");
                let s = match sets.set(name, warnings) {
                    Ok((ranges, dims)) => {
                        if dims > 1 || flags.contains(',') {
                            narrowed.push(format!(
                                "{bang}--match-set {name} {flags} (dimensions after the address)"
                            ));
                        }
                        AddrSet::Some {
                            ranges,
                            unresolved: vec![],
                        }
                    }
                    Err(e) => {
                        warnings.push(format!("{file}:{n}: {e}"));
                        AddrSet::Some {
                            ranges: vec![],
                            unresolved: vec![format!("ipset {name}")],
                        }
                    }
                };
                let s = if not { negate(s) } else { s };
                and_set(
                    if flags.starts_with("dst") {
                        &mut dst
                    } else {
                        &mut src
                    },
                    s,
                );
                k += 3;
            }
            ("-p" | "--protocol", Some(v)) => {
                if not {
                    narrowed.push(format!("! -p {v}"));
                } else if !matches!(v, "all" | "0") {
                    match proto_named(v) {
                        Some(p) => proto = Some(p),
                        None => narrowed.push(format!("-p {v}")),
                    }
                }
                k += 2;
            }
            ("--dport" | "--destination-port" | "--dports" | "--destination-ports", Some(v)) => {
                let mut ps = Vec::new();
                for p in v.split(',') {
                    match port_range(p) {
                        Some(r) => ps.push(r),
                        None => {
                            warnings.push(format!("{file}:{n}: `{p}` is not a port or port range; the rule is kept with every port, narrowed"));
                            narrowed.push(format!("{bang}{opt} {v}"));
                            ps.clear();
                            break;
                        }
                    }
                }
                if !ps.is_empty() {
                    ports = Some(if not { complement_ports(&ps) } else { ps });
                }
                k += 2;
            }
            ("--ctstate" | "--state", Some(v)) => {
                let given: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .collect();
                states = Some(if not {
                    [
                        "NEW",
                        "ESTABLISHED",
                        "RELATED",
                        "INVALID",
                        "UNTRACKED",
                        "SNAT",
                        "DNAT",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .filter(|s| !given.contains(s))
                    .collect()
                } else {
                    given
                });
                k += 2;
            }
            ("--comment", Some(v)) => {
                comment = Some(v.to_string());
                k += 2;
            }
            ("-j" | "--jump" | "-g" | "--goto", Some(v)) => {
                target = Some(v.to_string());
                goto = opt.starts_with("-g") || opt == "--goto";
                // the target's own options follow; they do not match anything
                break;
            }
            ("-i" | "--in-interface" | "-o" | "--out-interface", Some(v)) => {
                if v == "lo" && !not {
                    return Parsed::Skip(None);
                }
                let short = if opt.contains('i') && !opt.contains("out") {
                    "-i"
                } else {
                    "-o"
                };
                narrowed.push(format!("{bang}{short} {v}"));
                k += 2;
            }
            ("-m" | "--match", Some(v)) => {
                module = v.to_string();
                if !matches!(
                    v,
                    "tcp"
                        | "udp"
                        | "sctp"
                        | "multiport"
                        | "iprange"
                        | "set"
                        | "comment"
                        | "conntrack"
                        | "state"
                        | "icmp"
                        | "icmp6"
                ) {
                    // options (if any) follow and are recorded one by one; a module
                    // without options is recorded here.
                    let has_opts = w
                        .get(k + 2)
                        .is_some_and(|x| x.starts_with("--") || x == "!")
                        && !matches!(
                            w.get(k + 2).map(String::as_str),
                            Some("--jump" | "--goto" | "--match")
                        );
                    if !has_opts {
                        narrowed.push(format!("-m {v}"));
                    }
                }
                k += 2;
            }
            ("-f" | "--fragment", _) => {
                narrowed.push(format!("{bang}-f"));
                k += 1;
            }
            ("--syn", _) => {
                narrowed.push(format!("{bang}--syn"));
                k += 1;
            }
            ("--tcp-flags", Some(v)) => {
                let comp = w.get(k + 2).map(String::as_str).unwrap_or("");
                narrowed.push(format!("{bang}--tcp-flags {v} {comp}"));
                k += 3;
            }
            (o, _) if o.starts_with('-') => {
                // an option the model lacks: --sport, --icmp-type, --limit, …, with its values
                let mut vals = Vec::new();
                let mut j = k + 1;
                while j < w.len() && !w[j].starts_with('-') && w[j] != "!" {
                    vals.push(w[j].clone());
                    j += 1;
                }
                let prefix = match module.as_str() {
                    "" | "tcp" | "udp" | "sctp" | "multiport" | "icmp" | "icmp6" => String::new(),
                    m => format!("-m {m} "),
                };
                let text = format!("{prefix}{bang}{o} {}", vals.join(" "));
                narrowed.push(text.trim_end().to_string());
                k = j;
            }
            (o, _) => {
                warnings.push(format!(
                    "{file}:{n}: unexpected word `{o}` in the rule; ignored"
                ));
                k += 1;
            }
        }
    }
    let Some(target) = target else {
        return Parsed::Skip(None); // a counting rule decides nothing
    };
    // connection state
    if let Some(st) = &states {
        let has = |s: &str| st.iter().any(|x| x == s);
        if !has("NEW") {
            if has("ESTABLISHED") || has("RELATED") {
                return Parsed::Skip(matches!(target.as_str(), "DROP" | "REJECT").then(|| {
                    format!("{file}:{n}: a {target} of return traffic (state {}) is not modelled: Kubernetes policies are stateful", st.join(","))
                }));
            }
            if st.iter().all(|s| s == "INVALID") {
                return Parsed::Skip(None);
            }
            narrowed.push(format!("ctstate {}", st.join(",")));
        }
    }
    let target = match target.as_str() {
        "ACCEPT" => Target::Verdict(Action::Allow),
        "DROP" | "REJECT" => Target::Verdict(Action::Deny),
        "RETURN" => Target::Return,
        "NFQUEUE" | "QUEUE" => {
            return Parsed::Skip(Some(format!(
                "{file}:{n}: {target} hands packets to a user-space program; rule not modelled"
            )))
        }
        t if NON_TERMINAL.contains(&t) => return Parsed::Skip(None),
        t if goto => Target::Goto(t.to_string()),
        t => Target::Jump(t.to_string()),
    };
    let services = match (proto, ports) {
        (None, None) => Services::Any,
        (Some(p), ps) => Services::List(services(&[p], &ps.unwrap_or_default())),
        (None, Some(ps)) => {
            warnings.push(format!(
                "{file}:{n}: destination ports without `-p`; read as tcp and udp"
            ));
            Services::List(services(&[Proto::Tcp, Proto::Udp], &ps))
        }
    };
    let owner = comment.as_deref().and_then(owner_in_text);
    Parsed::Rule(Box::new(PRule {
        line: n,
        m: Matches {
            src: src.unwrap_or(AddrSet::Any),
            dst: dst.unwrap_or(AddrSet::Any),
            services,
            narrowed,
        },
        target,
        name: comment.as_deref().and_then(name_without_owner),
        owner,
    }))
}
