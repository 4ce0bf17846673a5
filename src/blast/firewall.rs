//! Firewall exports: the neutral CSV, `iptables-save`, `nft -j list ruleset` and
//! `aws ec2 describe-security-groups` JSON.
//!
//! # Neutral firewall CSV
//!
//! Anything can be exported into it. Header (required, in any order; extra columns are kept
//! out of the way): `source,device,rule_id,rule_name,direction,src,dst,proto,dport,action,owner,ticket,comment`.
//! `src` and `dst` hold `;`-separated IPs, CIDRs, `a-b` ranges, host names or `any`. The rule's
//! owner is the `owner` column (owner source `rule-tag`), else `owner: NAME` in `comment`.
//!
//! ```text
//! source,device,rule_id,rule_name,direction,src,dst,proto,dport,action,owner,ticket,comment
//! fw-core,fw01,1001,app-to-db,in,192.0.2.16,192.0.2.15,tcp,5432,allow,netsec,CHG-1,
//! ```

use super::matcher::Matcher;
use super::model::{clip, owner_in_text, Hit, Owner, OwnerSource, RefKind};
use serde_json::Value;
use std::collections::HashMap;

/// Finds the line of the n-th occurrence of a quoted JSON string, in document order per string.
pub struct QuotedLines<'t> {
    lines: Vec<&'t str>,
    cursor: HashMap<String, usize>,
}

impl<'t> QuotedLines<'t> {
    pub fn new(text: &'t str) -> Self {
        QuotedLines {
            lines: text.lines().collect(),
            cursor: HashMap::new(),
        }
    }

    /// `(line, text)` of the next line holding `"s"` (or `s` unquoted, for YAML).
    pub fn next(&mut self, s: &str) -> (usize, String) {
        let quoted = format!("\"{s}\"");
        let from = self.cursor.get(s).copied().unwrap_or(0);
        let found = self.lines[from.min(self.lines.len())..]
            .iter()
            .position(|l| l.contains(&quoted))
            .or_else(|| {
                self.lines[from.min(self.lines.len())..]
                    .iter()
                    .position(|l| l.contains(s))
            })
            .map(|p| p + from);
        match found {
            Some(i) => {
                self.cursor.insert(s.to_string(), i + 1);
                (i + 1, clip(self.lines[i]))
            }
            None => (1, clip(self.lines.first().copied().unwrap_or(""))),
        }
    }
}

fn hits_of(
    m: &Matcher,
    tok: &str,
    line: usize,
    text: &str,
    context: Option<String>,
    owner: Option<Owner>,
    out: &mut Vec<Hit>,
) {
    for (t, matched, coverage) in m.token(tok) {
        out.push(Hit {
            target: t,
            matched,
            line,
            kind: RefKind::FirewallRule,
            text: clip(text),
            context: context.clone(),
            coverage,
            owner: owner.clone(),
        });
    }
}

/// The neutral CSV's rows, read the same way for the blast scan and `policy draft`: the
/// header's names trimmed and in lower case (a leading byte-order mark dropped), then each
/// row with its line. A row that cannot be read, or whose field count is not the header's,
/// is skipped with a warning naming its line.
pub(crate) struct NeutralRows<'t> {
    rdr: csv::Reader<&'t [u8]>,
    headers: Vec<String>,
    row: csv::StringRecord,
}

impl<'t> NeutralRows<'t> {
    /// `None`, with a warning, when the header cannot be read.
    pub(crate) fn open(text: &'t str, file: &str, warnings: &mut Vec<String>) -> Option<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let headers = match rdr.headers() {
            Ok(h) => h.iter().map(|s| s.trim().to_ascii_lowercase()).collect(),
            Err(e) => {
                warnings.push(format!("{file}:1: unreadable header: {e}"));
                return None;
            }
        };
        Some(NeutralRows {
            rdr,
            headers,
            row: csv::StringRecord::new(),
        })
    }

    /// The column named `key` (lower case).
    pub(crate) fn col(&self, key: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == key)
    }

    /// The next readable row and its line (1-based).
    pub(crate) fn next_row(
        &mut self,
        file: &str,
        warnings: &mut Vec<String>,
    ) -> Option<(usize, NeutralRow<'_>)> {
        loop {
            match self.rdr.read_record(&mut self.row) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    warnings.push(format!("{file}:{line}: unreadable row skipped: {e}"));
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        return None;
                    }
                    continue;
                }
            }
            let line = self.row.position().map_or(0, |p| p.line() as usize);
            if self.row.len() != self.headers.len() {
                warnings.push(format!(
                    "{file}:{line}: {} fields where the header has {}; row skipped",
                    self.row.len(),
                    self.headers.len()
                ));
                continue;
            }
            return Some((line, NeutralRow(&self.row)));
        }
    }
}

/// One row of the neutral CSV.
#[derive(Clone, Copy)]
pub(crate) struct NeutralRow<'r>(&'r csv::StringRecord);

impl<'r> NeutralRow<'r> {
    /// The column's value, trimmed; `None` when the column is absent or the value empty.
    pub(crate) fn get(self, col: Option<usize>) -> Option<&'r str> {
        col.and_then(|c| self.0.get(c))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// Whether a CSV header is the neutral firewall schema.
pub fn is_neutral_header(first_line: &str) -> bool {
    let h: Vec<String> = first_line
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    ["rule_id", "src", "dst"]
        .iter()
        .all(|k| h.iter().any(|x| x == k))
}

pub fn neutral_csv(text: &str, file: &str, m: &Matcher, warnings: &mut Vec<String>) -> Vec<Hit> {
    let mut out = Vec::new();
    let Some(mut rows) = NeutralRows::open(text, file, warnings) else {
        return out;
    };
    let (c_src, c_dst, c_owner, c_comment, c_id, c_name, c_dev) = (
        rows.col("src"),
        rows.col("dst"),
        rows.col("owner"),
        rows.col("comment"),
        rows.col("rule_id"),
        rows.col("rule_name"),
        rows.col("device"),
    );
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    while let Some((line, r)) = rows.next_row(file, warnings) {
        let get = |c: Option<usize>| r.get(c);
        let owner = get(c_owner)
            .map(|o| Owner::new(o, OwnerSource::RuleTag))
            .or_else(|| {
                get(c_comment)
                    .and_then(owner_in_text)
                    .map(|o| Owner::new(o, OwnerSource::Comment))
            });
        let context = Some(
            format!(
                "{} rule {} {}",
                get(c_dev).unwrap_or("-"),
                get(c_id).unwrap_or("-"),
                get(c_name).unwrap_or("")
            )
            .trim_end()
            .to_string(),
        );
        let text_line = lines.get(line.saturating_sub(1)).copied().unwrap_or("");
        for c in [c_src, c_dst] {
            if let Some(v) = get(c) {
                for tok in v.split(';') {
                    hits_of(
                        m,
                        tok,
                        line,
                        text_line,
                        context.clone(),
                        owner.clone(),
                        &mut out,
                    );
                }
            }
        }
    }
    out
}

/// Whether text is `iptables-save` output.
pub fn looks_like_iptables(head: &str) -> bool {
    // A table line starts with `*`: a file without one is ruled out by one SIMD search.
    if memchr::memchr(b'*', head.as_bytes()).is_none() {
        return false;
    }
    let mut table = false;
    let mut rule = false;
    for l in head.lines().take(200) {
        table |=
            l.starts_with('*') && l.len() > 1 && l[1..].chars().all(|c| c.is_ascii_lowercase());
        rule |= l.starts_with("-A ") || (l.starts_with(':') && l.contains(" ["));
    }
    table && rule
}

/// Shell-like words: double and single quotes group.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (q, c) {
            (Some(qc), c) if c == qc => q = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                q = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub fn iptables(text: &str, file: &str, m: &Matcher, warnings: &mut Vec<String>) -> Vec<Hit> {
    let mut out = Vec::new();
    let mut table = String::from("filter");
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim();
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
            continue;
        }
        if !(l.starts_with("-A ") || l.starts_with("-I ")) {
            continue;
        }
        let w = words(l);
        let chain = w.get(1).cloned().unwrap_or_default();
        let mut owner = None;
        let mut addrs: Vec<String> = Vec::new();
        let mut k = 2;
        while k < w.len() {
            let opt = w[k].as_str();
            let val = w.get(k + 1).map(String::as_str);
            match (opt, val) {
                (
                    "-s" | "--source" | "-d" | "--destination" | "--src-range" | "--dst-range",
                    Some(v),
                ) => {
                    addrs.extend(v.split(',').map(str::to_string));
                    k += 2;
                }
                ("--to-destination" | "--to-source" | "--to", Some(v)) => {
                    // ip[-ip][:port[-port]]
                    let host = match v.split_once(':') {
                        Some((h, _)) if !h.contains(':') => h,
                        _ => v,
                    };
                    addrs.push(host.to_string());
                    k += 2;
                }
                ("--comment", Some(v)) => {
                    owner = owner_in_text(v).map(|o| Owner::new(o, OwnerSource::Comment));
                    k += 2;
                }
                _ => k += 1,
            }
        }
        if w.len() < 2 {
            warnings.push(format!("{file}:{n}: rule without a chain; skipped"));
            continue;
        }
        let ctx = Some(format!("*{table} {chain}"));
        for a in addrs {
            hits_of(m, &a, n, raw, ctx.clone(), owner.clone(), &mut out);
        }
    }
    out
}

/// nftables JSON (`nft -j list ruleset`): addresses in rule expressions (`match.right` as a
/// string, `prefix`, `range`, anonymous `set`, or `@named_set` resolved through the `set` and
/// `element` objects) and in `dnat`/`snat` `addr`. Owner: `owner: NAME` in the rule's
/// `comment`.
pub fn nft_json(text: &str, file: &str, m: &Matcher, warnings: &mut Vec<String>) -> Vec<Hit> {
    let mut out = Vec::new();
    let root: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!("{file}:{}: not JSON: {e}", e.line()));
            return out;
        }
    };
    let Some(items) = root.get("nftables").and_then(Value::as_array) else {
        return out;
    };
    let mut sets: HashMap<String, Vec<Value>> = HashMap::new();
    for it in items {
        for key in ["set", "element"] {
            if let Some(s) = it.get(key) {
                let name = s
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(e) = s.get("elem").and_then(Value::as_array) {
                    sets.entry(name).or_default().extend(e.iter().cloned());
                }
            }
        }
    }
    let mut ql = QuotedLines::new(text);
    for it in items {
        let Some(rule) = it.get("rule") else { continue };
        let chain = rule.get("chain").and_then(Value::as_str).unwrap_or("");
        let table = rule.get("table").and_then(Value::as_str).unwrap_or("");
        let family = rule.get("family").and_then(Value::as_str).unwrap_or("");
        let handle = rule
            .get("handle")
            .map(|h| h.to_string())
            .unwrap_or_default();
        let owner = rule
            .get("comment")
            .and_then(Value::as_str)
            .and_then(owner_in_text)
            .map(|o| Owner::new(o, OwnerSource::Comment));
        let ctx = Some(format!("{family} {table} {chain} handle {handle}"));
        let mut toks: Vec<(String, String)> = Vec::new(); // (token, string to locate)
        if let Some(expr) = rule.get("expr") {
            collect_nft(expr, &sets, &mut toks, 0);
        }
        for (tok, locate) in toks {
            let (line, lt) = ql.next(&locate);
            for (t, matched, coverage) in m.token(&tok) {
                out.push(Hit {
                    target: t,
                    matched,
                    line,
                    kind: RefKind::FirewallRule,
                    text: lt.clone(),
                    context: ctx.clone(),
                    coverage,
                    owner: owner.clone(),
                });
            }
        }
    }
    out
}

fn collect_nft(
    v: &Value,
    sets: &HashMap<String, Vec<Value>>,
    out: &mut Vec<(String, String)>,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('@') {
                if let Some(elems) = sets.get(name) {
                    for e in elems {
                        collect_nft(e, sets, out, depth + 1);
                    }
                }
            } else if s.parse::<std::net::IpAddr>().is_ok() {
                out.push((s.clone(), s.clone()));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_nft(x, sets, out, depth + 1)),
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                if let (Some(a), Some(l)) = (
                    p.get("addr").and_then(Value::as_str),
                    p.get("len").and_then(Value::as_u64),
                ) {
                    out.push((format!("{a}/{l}"), a.to_string()));
                    return;
                }
            }
            if let Some(Value::Array(r)) = o.get("range") {
                if let (Some(a), Some(b)) = (
                    r.first().and_then(Value::as_str),
                    r.get(1).and_then(Value::as_str),
                ) {
                    out.push((format!("{a}-{b}"), a.to_string()));
                    return;
                }
            }
            for (k, x) in o {
                if k != "left" && k != "comment" {
                    collect_nft(x, sets, out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// AWS `describe-security-groups` JSON: `IpPermissions` and `IpPermissionsEgress` `IpRanges`
/// and `Ipv6Ranges`. Owner: the group's `Owner`/`Team` tag (`rule-tag`), else `owner: NAME` in
/// the range's `Description`.
pub fn aws_sg(text: &str, file: &str, m: &Matcher, warnings: &mut Vec<String>) -> Vec<Hit> {
    let mut out = Vec::new();
    let root: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!("{file}:{}: not JSON: {e}", e.line()));
            return out;
        }
    };
    let Some(groups) = root.get("SecurityGroups").and_then(Value::as_array) else {
        return out;
    };
    let mut ql = QuotedLines::new(text);
    for g in groups {
        let id = g.get("GroupId").and_then(Value::as_str).unwrap_or("");
        let name = g.get("GroupName").and_then(Value::as_str).unwrap_or("");
        let tag_owner = g.get("Tags").and_then(Value::as_array).and_then(|tags| {
            tags.iter().find_map(|t| {
                let k = t.get("Key").and_then(Value::as_str)?;
                let v = t.get("Value").and_then(Value::as_str)?;
                ["owner", "team"]
                    .contains(&k.to_ascii_lowercase().as_str())
                    .then(|| v.to_string())
            })
        });
        for (dir, key) in [
            ("ingress", "IpPermissions"),
            ("egress", "IpPermissionsEgress"),
        ] {
            for p in g.get(key).and_then(Value::as_array).into_iter().flatten() {
                let proto = p.get("IpProtocol").and_then(Value::as_str).unwrap_or("-");
                let port = p.get("FromPort").map(|v| v.to_string()).unwrap_or_default();
                let ctx = Some(
                    format!("{id} ({name}) {dir} {proto} {port}")
                        .trim_end()
                        .to_string(),
                );
                for (rk, ck) in [("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")] {
                    for r in p.get(rk).and_then(Value::as_array).into_iter().flatten() {
                        let Some(cidr) = r.get(ck).and_then(Value::as_str) else {
                            continue;
                        };
                        let owner = tag_owner
                            .clone()
                            .map(|o| Owner::new(o, OwnerSource::RuleTag))
                            .or_else(|| {
                                r.get("Description")
                                    .and_then(Value::as_str)
                                    .and_then(owner_in_text)
                                    .map(|o| Owner::new(o, OwnerSource::Comment))
                            });
                        let (line, lt) = ql.next(cidr);
                        for (t, matched, coverage) in m.token(cidr) {
                            out.push(Hit {
                                target: t,
                                matched,
                                line,
                                kind: RefKind::FirewallRule,
                                text: lt.clone(),
                                context: ctx.clone(),
                                coverage,
                                owner: owner.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}
