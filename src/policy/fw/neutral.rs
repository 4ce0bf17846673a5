//! The neutral firewall CSV (header in `crate::blast::firewall`): one list per
//! `source`/`device` pair, rows in file order, implicit deny.
//!
//! Columns used: `src`, `dst` (`;`-separated IPs, CIDRs, `a-b`, host names → unresolved,
//! `any`), `proto` (`any`/`ip`/empty, a name or number, `;`-separated), `dport` (`any`/empty,
//! `80`, `8000-8090`, `80;443`; with protocol `any` it means tcp, udp and sctp), `direction`
//! (`in`/`out`; empty, `any`, `both`, `transit` or `forward` = transit), `action`, `owner`
//! (else `owner: NAME` in `comment`), and, when present, `sport` (→ `narrowed_by`) and
//! `enabled`/`disabled`. The rule's name is `rule_id rule_name`.

use super::common::{addr_token, origin, port_range, proto_named, services, AddrAcc};
use crate::blast::firewall::NeutralRows;
use crate::blast::model::owner_in_text;
use crate::policy::rules::{Action, Direction, Proto, Rule, RuleList, RuleSet, Services};

pub fn parse(file: &str, text: &str) -> RuleSet {
    let mut warnings = Vec::new();
    let mut lists: Vec<RuleList> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let Some(mut rows) = NeutralRows::open(text, file, &mut warnings) else {
        return RuleSet {
            file: file.to_string(),
            format: "firewall-csv",
            lists,
            warnings,
        };
    };
    let col = |k: &str| rows.col(k);
    let c = Cols {
        source: col("source"),
        device: col("device"),
        id: col("rule_id"),
        name: col("rule_name"),
        dir: col("direction"),
        src: col("src"),
        dst: col("dst"),
        proto: col("proto"),
        dport: col("dport"),
        sport: col("sport"),
        action: col("action"),
        owner: col("owner"),
        comment: col("comment"),
        enabled: col("enabled"),
        disabled: col("disabled"),
    };
    while let Some((line, r)) = rows.next_row(file, &mut warnings) {
        let get = |c: Option<usize>| r.get(c);
        let list_name = format!(
            "{}/{}",
            get(c.source).unwrap_or("-"),
            get(c.device).unwrap_or("-")
        );
        let name = match (get(c.id), get(c.name)) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b).map(str::to_string),
        };
        let owner = get(c.owner)
            .map(str::to_string)
            .or_else(|| get(c.comment).and_then(owner_in_text));
        let action = match get(c.action).map(str::to_ascii_lowercase).as_deref() {
            Some("allow" | "permit" | "accept" | "pass") => Action::Allow,
            Some("deny" | "drop" | "reject" | "block") => Action::Deny,
            other => {
                warnings.push(format!(
                    "{file}:{line}: action `{}` is neither allow nor deny; row skipped",
                    other.unwrap_or("")
                ));
                continue;
            }
        };
        let direction = match get(c.dir).map(str::to_ascii_lowercase).as_deref() {
            Some("in" | "inbound" | "ingress") => Some(Direction::In),
            Some("out" | "outbound" | "egress") => Some(Direction::Out),
            None | Some("any" | "both" | "transit" | "forward") => None,
            Some(d) => {
                warnings.push(format!(
                    "{file}:{line}: direction `{d}` is not in/out; read as transit"
                ));
                None
            }
        };
        let mut narrowed = Vec::new();
        let addr = |v: Option<&str>, what: &str, warnings: &mut Vec<String>| {
            let mut acc = AddrAcc::default();
            match v {
                None => acc.any = true,
                Some(v) => {
                    for t in v.split(';').map(str::trim).filter(|t| !t.is_empty()) {
                        match addr_token(t) {
                            Ok(tok) => acc.push_tok(tok),
                            Err(e) => {
                                warnings.push(format!(
                                    "{file}:{line}: {what}: {e}; kept as an unresolved name"
                                ));
                                acc.unresolved.push(t.to_string());
                            }
                        }
                    }
                }
            }
            acc.build()
        };
        let src = addr(get(c.src), "src", &mut warnings);
        let dst = addr(get(c.dst), "dst", &mut warnings);
        let mut protos: Vec<Proto> = Vec::new();
        let mut any_proto = false;
        for p in get(c.proto).unwrap_or("any").split(';').map(str::trim) {
            match p.to_ascii_lowercase().as_str() {
                "any" | "ip" | "all" | "*" | "" => any_proto = true,
                _ => match proto_named(p) {
                    Some(x) => protos.push(x),
                    None => {
                        warnings.push(format!(
                            "{file}:{line}: protocol `{p}` unknown; the rule is kept for every protocol, narrowed"
                        ));
                        narrowed.push(format!("proto {p}"));
                        any_proto = true;
                    }
                },
            }
        }
        let mut ports = Vec::new();
        if let Some(d) = get(c.dport).filter(|d| !d.eq_ignore_ascii_case("any") && *d != "*") {
            for p in d.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                match port_range(p) {
                    Some(r) => ports.push(r),
                    None => {
                        warnings.push(format!(
                            "{file}:{line}: dport `{p}` is not a port or range; the rule is kept for every port, narrowed"
                        ));
                        narrowed.push(format!("dport {d}"));
                        ports.clear();
                        break;
                    }
                }
            }
        }
        if let Some(s) = get(c.sport).filter(|s| !s.eq_ignore_ascii_case("any") && *s != "*") {
            narrowed.push(format!("sport {s}"));
        }
        let services = if any_proto && ports.is_empty() {
            Services::Any
        } else {
            if any_proto {
                protos = vec![Proto::Tcp, Proto::Udp, Proto::Sctp];
            }
            Services::List(services(&protos, &ports))
        };
        let flag = |c: Option<usize>| {
            get(c).map(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "y"))
        };
        let disabled = flag(c.disabled) == Some(true) || flag(c.enabled) == Some(false);
        let rule = Rule {
            origin: origin(file, line, name, owner),
            action,
            direction,
            src,
            dst,
            services,
            narrowed_by: narrowed,
            disabled,
        };
        match index.get(&list_name) {
            Some(&i) => lists[i].rules.push(rule),
            None => {
                index.insert(list_name.clone(), lists.len());
                lists.push(RuleList {
                    name: list_name,
                    rules: vec![rule],
                    default: Action::Deny,
                    default_origin: origin(file, line, Some("implicit deny".into()), None),
                    implicit_default: true,
                })
            }
        }
    }
    RuleSet {
        file: file.to_string(),
        format: "firewall-csv",
        lists,
        warnings,
    }
}

struct Cols {
    source: Option<usize>,
    device: Option<usize>,
    id: Option<usize>,
    name: Option<usize>,
    dir: Option<usize>,
    src: Option<usize>,
    dst: Option<usize>,
    proto: Option<usize>,
    dport: Option<usize>,
    sport: Option<usize>,
    action: Option<usize>,
    owner: Option<usize>,
    comment: Option<usize>,
    enabled: Option<usize>,
    disabled: Option<usize>,
}
