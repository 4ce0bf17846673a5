//! DNS zone files (RFC 1035 / BIND): `$ORIGIN`, `$TTL`, `$INCLUDE`, `$GENERATE` (BIND's, which
//! zone-file crates reject, expanded here), parentheses, relative and `@` names, blank owners.
//! Only A, AAAA, PTR and CNAME records matter for a blast radius; the rest is skipped.
//!
//! Owners: a record's comment `; owner: NAME` names its owner; a comment line of that form on
//! its own applies to the records after it in the same file.

use super::matcher::Matcher;
use super::model::{clip, owner_in_text, Coverage, Hit, Owner, OwnerSource, RefKind};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// Absolute owner name, lowercase, without the trailing dot.
    pub name: String,
    pub rtype: String,
    /// Rdata, absolute and lowercase for names.
    pub rdata: String,
    pub file: String,
    pub line: usize,
    pub text: String,
    pub owner: Option<String>,
}

/// Whether a file looks like a zone file (by name or by its first lines).
pub fn looks_like_zone(name: &str, head: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".zone") || n.starts_with("db.") {
        return true;
    }
    head.lines().take(50).any(|l| {
        let t = l.trim_start();
        t.starts_with("$ORIGIN")
            || t.starts_with("$TTL")
            || t.contains(" SOA ")
            || t.contains("\tSOA\t")
    })
}

/// The origin a file implies when it has no `$ORIGIN`: `db.example.internal` and
/// `example.internal.zone` → `example.internal`.
fn origin_from_name(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    let n = n.strip_prefix("db.").unwrap_or(&n);
    n.strip_suffix(".zone").unwrap_or(n).to_string()
}

/// Parses a zone file and everything it `$INCLUDE`s. Problems go to `warnings` as
/// `file:line: why`.
pub fn parse_file(path: &Path, display: &str, warnings: &mut Vec<String>) -> Vec<ZoneRecord> {
    let Ok(bytes) = std::fs::read(path) else {
        warnings.push(format!("{display}: cannot read"));
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let origin = origin_from_name(
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut out = Vec::new();
    parse_text(&text, path, display, &origin, 0, &mut out, warnings);
    out
}

fn absolute(name: &str, origin: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n == "@" {
        return origin.to_string();
    }
    if let Some(a) = n.strip_suffix('.') {
        return a.to_string();
    }
    if origin.is_empty() {
        n
    } else {
        format!("{n}.{origin}")
    }
}

fn strip_comment(line: &str) -> (&str, Option<&str>) {
    let mut in_q = false;
    let mut esc = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if !esc => {
                esc = true;
                continue;
            }
            '"' if !esc => in_q = !in_q,
            ';' if !in_q => return (&line[..i], Some(&line[i + 1..])),
            _ => {}
        }
        esc = false;
    }
    (line, None)
}

fn is_ttl(t: &str) -> bool {
    !t.is_empty()
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || "smhdwSMHDW".contains(c))
}

fn is_class(t: &str) -> bool {
    matches!(t.to_ascii_uppercase().as_str(), "IN" | "CH" | "HS" | "CS")
}

#[allow(clippy::too_many_arguments)]
fn parse_text(
    text: &str,
    path: &Path,
    display: &str,
    origin0: &str,
    depth: usize,
    out: &mut Vec<ZoneRecord>,
    warnings: &mut Vec<String>,
) {
    let mut origin = origin0.trim_end_matches('.').to_ascii_lowercase();
    let mut last_owner = origin.clone();
    let mut file_owner: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        let raw = lines[i];
        let (mut body, comment) = strip_comment(raw);
        let mut joined = String::new();
        let mut comments: Vec<&str> = comment.into_iter().collect();
        // Parentheses continue a record over several lines.
        if body.contains('(') && !body.contains(')') {
            joined.push_str(body);
            while i + 1 < lines.len() {
                i += 1;
                let (b, c) = strip_comment(lines[i]);
                comments.extend(c);
                joined.push(' ');
                joined.push_str(b);
                if b.contains(')') {
                    break;
                }
            }
            body = &joined;
        }
        i += 1;
        let body_owned = body.replace(['(', ')'], " ");
        let inline_owner = comments.iter().find_map(|c| owner_in_text(c));
        if body_owned.trim().is_empty() {
            if let Some(o) = inline_owner {
                file_owner = Some(o);
            }
            continue;
        }
        let starts_blank = body_owned.starts_with([' ', '\t']);
        let toks: Vec<&str> = body_owned.split_whitespace().collect();
        let Some(first) = toks.first() else { continue };
        let upper = first.to_ascii_uppercase();
        match upper.as_str() {
            "$ORIGIN" => {
                match toks.get(1) {
                    Some(o) => origin = absolute(o, &origin),
                    None => warnings.push(format!("{display}:{n}: $ORIGIN without a name")),
                }
                continue;
            }
            "$TTL" => continue,
            "$INCLUDE" => {
                let Some(f) = toks.get(1) else {
                    warnings.push(format!("{display}:{n}: $INCLUDE without a file"));
                    continue;
                };
                if depth >= 8 {
                    warnings.push(format!("{display}:{n}: $INCLUDE nested too deep; skipped"));
                    continue;
                }
                let inc = path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(f.trim_matches('"'));
                let inc_display = Path::new(display)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(f.trim_matches('"'));
                let inc_display = inc_display.display().to_string();
                let inc_origin = toks.get(2).map_or(origin.clone(), |o| absolute(o, &origin));
                match std::fs::read(&inc) {
                    Ok(b) => {
                        let t = String::from_utf8_lossy(&b).into_owned();
                        parse_text(
                            &t,
                            &inc,
                            &inc_display,
                            &inc_origin,
                            depth + 1,
                            out,
                            warnings,
                        );
                    }
                    Err(e) => warnings.push(format!("{display}:{n}: $INCLUDE {f}: {e}")),
                }
                continue;
            }
            "$GENERATE" => {
                generate(
                    &toks,
                    &origin,
                    display,
                    n,
                    raw,
                    inline_owner.or(file_owner.clone()),
                    out,
                    warnings,
                );
                continue;
            }
            _ if upper.starts_with('$') => {
                warnings.push(format!("{display}:{n}: unknown directive {first}; skipped"));
                continue;
            }
            _ => {}
        }
        let (owner, rest) = if starts_blank {
            (last_owner.clone(), &toks[..])
        } else {
            (absolute(first, &origin), &toks[1..])
        };
        last_owner = owner.clone();
        let mut k = 0;
        while k < rest.len() && k < 2 && (is_ttl(rest[k]) || is_class(rest[k])) {
            k += 1;
        }
        let Some(rtype) = rest.get(k) else {
            warnings.push(format!("{display}:{n}: record without a type; skipped"));
            continue;
        };
        let rtype = rtype.to_ascii_uppercase();
        let rdata = &rest[k + 1..];
        record(
            &owner,
            &rtype,
            rdata,
            &origin,
            display,
            n,
            raw,
            inline_owner.or(file_owner.clone()),
            out,
            warnings,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    owner: &str,
    rtype: &str,
    rdata: &[&str],
    origin: &str,
    file: &str,
    line: usize,
    raw: &str,
    team: Option<String>,
    out: &mut Vec<ZoneRecord>,
    warnings: &mut Vec<String>,
) {
    let data = match rtype {
        "A" | "AAAA" => match rdata.first().map(|t| t.parse::<IpAddr>()) {
            Some(Ok(ip)) if (rtype == "A") == ip.is_ipv4() => ip.to_string(),
            _ => {
                warnings.push(format!(
                    "{file}:{line}: {rtype} record with bad address `{}`; skipped",
                    rdata.join(" ")
                ));
                return;
            }
        },
        "PTR" | "CNAME" => match rdata.first() {
            Some(t) => absolute(t, origin),
            None => {
                warnings.push(format!(
                    "{file}:{line}: {rtype} record without a target; skipped"
                ));
                return;
            }
        },
        _ => return,
    };
    out.push(ZoneRecord {
        name: owner.to_string(),
        rtype: rtype.to_string(),
        rdata: data,
        file: file.to_string(),
        line,
        text: clip(raw),
        owner: team,
    });
}

/// `$GENERATE 10-20[/step] lhs [ttl] [class] type rhs`, with `$`, `${offset,width,base}` and
/// `\$` in lhs and rhs. At most 65,536 records per line.
#[allow(clippy::too_many_arguments)]
fn generate(
    toks: &[&str],
    origin: &str,
    file: &str,
    line: usize,
    raw: &str,
    team: Option<String>,
    out: &mut Vec<ZoneRecord>,
    warnings: &mut Vec<String>,
) {
    let bad = |w: &mut Vec<String>| w.push(format!("{file}:{line}: malformed $GENERATE; skipped"));
    let Some(range) = toks.get(1) else {
        return bad(warnings);
    };
    let (range, step) = match range.split_once('/') {
        Some((r, s)) => (r, s.parse::<u64>().ok()),
        None => (*range, Some(1)),
    };
    let Some((a, b)) = range.split_once('-') else {
        return bad(warnings);
    };
    let (Ok(a), Ok(b), Some(step)) = (a.parse::<u64>(), b.parse::<u64>(), step) else {
        return bad(warnings);
    };
    if step == 0 || a > b || (b - a) / step > 65_535 {
        return bad(warnings);
    }
    let Some(lhs) = toks.get(2) else {
        return bad(warnings);
    };
    let mut k = 3;
    while k < toks.len() && k < 5 && (is_ttl(toks[k]) || is_class(toks[k])) {
        k += 1;
    }
    let (Some(rtype), Some(rhs)) = (toks.get(k), toks.get(k + 1)) else {
        return bad(warnings);
    };
    let rtype = rtype.to_ascii_uppercase();
    let mut i = a;
    while i <= b {
        let (Some(l), Some(r)) = (subst(lhs, i), subst(rhs, i)) else {
            return bad(warnings);
        };
        let owner = absolute(&l, origin);
        record(
            &owner,
            &rtype,
            &[r.as_str()],
            origin,
            file,
            line,
            raw,
            team.clone(),
            out,
            warnings,
        );
        i += step;
    }
}

fn subst(t: &str, i: u64) -> Option<String> {
    let mut o = String::new();
    let b = t.as_bytes();
    let mut k = 0;
    while k < b.len() {
        match b[k] {
            b'\\' if b.get(k + 1) == Some(&b'$') => {
                o.push('$');
                k += 2;
            }
            b'$' if b.get(k + 1) == Some(&b'{') => {
                let end = t[k..].find('}')? + k;
                let args: Vec<&str> = t[k + 2..end].split(',').collect();
                let off: i64 = args
                    .first()
                    .filter(|s| !s.is_empty())
                    .map_or(Ok(0), |s| s.parse())
                    .ok()?;
                let width: usize = args.get(1).map_or(Ok(0), |s| s.parse()).ok()?;
                let v = u64::try_from(i as i64 + off).ok()?;
                let s = match args.get(2).copied().unwrap_or("d") {
                    "d" => format!("{v:0width$}"),
                    "o" => format!("{v:0width$o}"),
                    "x" => format!("{v:0width$x}"),
                    "X" => format!("{v:0width$X}"),
                    _ => return None,
                };
                o.push_str(&s);
                k = end + 1;
            }
            b'$' => {
                o.push_str(&i.to_string());
                k += 1;
            }
            _ => {
                let c = t[k..].chars().next()?;
                o.push(c);
                k += c.len_utf8();
            }
        }
    }
    Some(o)
}

/// The address a reverse name stands for: `41.30.20.10.in-addr.arpa` → 10.20.30.41.
pub fn reverse_ip(name: &str) -> Option<IpAddr> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(p) = n.strip_suffix(".in-addr.arpa") {
        let mut o: Vec<u8> = p
            .split('.')
            .map(|x| x.parse::<u8>())
            .collect::<Result<_, _>>()
            .ok()?;
        if o.len() != 4 {
            return None;
        }
        o.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3])));
    }
    if let Some(p) = n.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<&str> = p.split('.').collect();
        if nibbles.len() != 32 {
            return None;
        }
        let mut v: u128 = 0;
        for x in nibbles.iter().rev() {
            v = (v << 4) | u128::from(u8::from_str_radix(x, 16).ok()?);
        }
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// Blast-radius hits of all zone records together (CNAME chains may cross files):
/// `(file, hit)` pairs.
pub fn hits(records: &[ZoneRecord], m: &Matcher) -> Vec<(String, Hit)> {
    let mut out = Vec::new();
    // name → VMs it stands for: A/AAAA owners first, then CNAMEs to a fixpoint.
    let mut names: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let owner = |r: &ZoneRecord| r.owner.clone().map(|o| Owner::new(o, OwnerSource::Comment));
    for r in records {
        let (kind, targets): (RefKind, Vec<usize>) = match r.rtype.as_str() {
            "A" | "AAAA" => {
                let ts = r
                    .rdata
                    .parse::<IpAddr>()
                    .map(|ip| m.targets_of_ip(&ip).to_vec())
                    .unwrap_or_default();
                for t in &ts {
                    names.entry(r.name.clone()).or_default().insert(*t);
                }
                (
                    if r.rtype == "A" {
                        RefKind::DnsA
                    } else {
                        RefKind::DnsAaaa
                    },
                    ts,
                )
            }
            "PTR" => {
                let by_ip = reverse_ip(&r.name)
                    .map(|ip| m.targets_of_ip(&ip).to_vec())
                    .unwrap_or_default();
                let ts = if by_ip.is_empty() {
                    m.targets_of_name(&r.rdata)
                } else {
                    by_ip
                };
                (RefKind::DnsPtr, ts)
            }
            _ => continue,
        };
        for t in targets {
            let matched = if r.rtype == "PTR" {
                reverse_ip(&r.name).map_or(r.rdata.clone(), |ip| ip.to_string())
            } else {
                r.rdata.clone()
            };
            out.push((
                r.file.clone(),
                Hit {
                    target: t,
                    matched,
                    line: r.line,
                    kind,
                    text: r.text.clone(),
                    context: Some(format!("{} {} {}", r.name, r.rtype, r.rdata)),
                    coverage: Coverage::NamesHost,
                    owner: owner(r),
                },
            ));
        }
    }
    let cnames: Vec<&ZoneRecord> = records.iter().filter(|r| r.rtype == "CNAME").collect();
    let mut done: BTreeSet<(usize, usize)> = BTreeSet::new();
    loop {
        let mut changed = false;
        for (ci, r) in cnames.iter().enumerate() {
            let mut ts: BTreeSet<usize> = names.get(&r.rdata).cloned().unwrap_or_default();
            if ts.is_empty() {
                ts.extend(m.targets_of_name(&r.rdata));
            }
            for t in ts {
                if done.insert((ci, t)) {
                    changed = true;
                    names.entry(r.name.clone()).or_default().insert(t);
                    out.push((
                        r.file.clone(),
                        Hit {
                            target: t,
                            matched: r.rdata.clone(),
                            line: r.line,
                            kind: RefKind::DnsCname,
                            text: r.text.clone(),
                            context: Some(format!("{} CNAME {}", r.name, r.rdata)),
                            coverage: Coverage::NamesHost,
                            owner: owner(r),
                        },
                    ));
                }
            }
        }
        if !changed {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_substitutions() {
        assert_eq!(subst("host-$", 7).as_deref(), Some("host-7"));
        assert_eq!(subst("h${10,3,d}", 7).as_deref(), Some("h017"));
        assert_eq!(subst("h${0,4,x}", 255).as_deref(), Some("h00ff"));
        assert_eq!(subst("a\\$b", 1).as_deref(), Some("a$b"));
        assert_eq!(subst("h${x}", 1), None);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_ip("41.30.20.10.in-addr.arpa."),
            "10.20.30.41".parse().ok()
        );
        let v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
        assert_eq!(reverse_ip(v6), "2001:db8::5".parse().ok());
        assert_eq!(reverse_ip("x.in-addr.arpa"), None);
    }

    #[test]
    fn records_origin_blank_owner_parens_and_errors() {
        let text = "$ORIGIN example.internal.\n@ IN SOA ns1 host (\n 1 2 3\n 4 5 )\nweb 60 IN A 192.0.2.10\n    IN AAAA 2001:db8::10\nbad IN A not-an-ip\n$GENERATE 1-2 p$ CNAME web\n";
        let mut w = Vec::new();
        let mut out = Vec::new();
        parse_text(text, Path::new("z"), "z", "", 0, &mut out, &mut w);
        let got: Vec<(String, String, String, usize)> = out
            .iter()
            .map(|r| (r.name.clone(), r.rtype.clone(), r.rdata.clone(), r.line))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "web.example.internal".into(),
                    "A".into(),
                    "192.0.2.10".into(),
                    5
                ),
                (
                    "web.example.internal".into(),
                    "AAAA".into(),
                    "2001:db8::10".into(),
                    6
                ),
                (
                    "p1.example.internal".into(),
                    "CNAME".into(),
                    "web.example.internal".into(),
                    8
                ),
                (
                    "p2.example.internal".into(),
                    "CNAME".into(),
                    "web.example.internal".into(),
                    8
                ),
            ]
        );
        assert!(w.iter().any(|w| w.starts_with("z:7:")), "{w:?}");
    }
}
