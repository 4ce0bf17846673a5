//! DNS zone files (RFC 1035 / BIND): `$ORIGIN`, `$TTL`, `$INCLUDE`, `$GENERATE` (BIND's, which
//! zone-file crates reject, expanded here), parentheses, relative and `@` names, blank owners.
//! Only A, AAAA, PTR and CNAME records matter for a blast radius; the rest is skipped.
//!
//! Owners: a record's comment `; owner: NAME` names its owner; a comment line of that form on
//! its own applies to the records after it in the same file.
//!
//! Bounded and confined (a zone file is input, not trusted):
//! - `$INCLUDE` reads only regular files under one of the `--sources` roots (the path is
//!   canonicalized first, so `../` and symlinks cannot leave them; a file root allows only
//!   itself), at most [`INCLUDE_DEPTH_MAX`] deep, never a file already being included (a
//!   loop), each at most [`crate::fsio::ZONE_INCLUDE_MAX`] bytes; refusals are warnings
//!   naming the path;
//! - `$GENERATE` makes at most [`GENERATE_RECORDS_MAX`] records a line, a width of at
//!   most [`GENERATE_WIDTH_MAX`], and names of at most [`GENERATED_NAME_MAX`] bytes;
//! - per scan, at most [`RECORDS_MAX`] records (generated, included and plain together),
//!   [`INCLUDES_MAX`] `$INCLUDE` reads and [`INCLUDE_BYTES_MAX`] bytes read through them:
//!   exceeding one stops the scan with an error naming the limit.

use super::matcher::Matcher;
use super::model::{clip, owner_in_text, Coverage, Hit, Owner, OwnerSource, RefKind};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Zone records per scan (every zone file and everything it includes or generates).
pub const RECORDS_MAX: usize = 1_000_000;
/// `$INCLUDE` reads per scan.
pub const INCLUDES_MAX: usize = 10_000;
/// Bytes read through `$INCLUDE` per scan.
pub const INCLUDE_BYTES_MAX: u64 = 1 << 30;
/// `$INCLUDE` nesting.
pub const INCLUDE_DEPTH_MAX: usize = 8;
/// The width of a `$GENERATE` `${offset,width,base}` (a DNS name has at most 255 bytes).
pub const GENERATE_WIDTH_MAX: usize = 255;
/// Records one `$GENERATE` line makes.
pub const GENERATE_RECORDS_MAX: u64 = 65_536;
/// A name or target made by `$GENERATE`, in bytes.
pub const GENERATED_NAME_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// Absolute owner name, lowercase, without the trailing dot.
    pub name: String,
    /// `A`, `AAAA`, `PTR` or `CNAME` (the only types kept).
    pub rtype: &'static str,
    /// Rdata, absolute and lowercase for names.
    pub rdata: String,
    /// Shared by every record of a file.
    pub file: Arc<str>,
    pub line: usize,
    /// The line, clipped; shared by the records one `$GENERATE` line makes.
    pub text: Arc<str>,
    pub owner: Option<String>,
}

/// What zone parsing may read and how much, shared by every file of one scan.
#[derive(Debug)]
pub struct ZoneBudget {
    /// Canonical `--sources` roots: directories (anything below) and files (only themselves).
    roots: Vec<(PathBuf, bool)>,
    records: AtomicUsize,
    includes: AtomicUsize,
    include_bytes: AtomicU64,
}

impl ZoneBudget {
    /// A budget for a scan of `roots` (canonicalized here; a root that cannot be is left out,
    /// so nothing under it can be included).
    pub fn new(roots: &[PathBuf]) -> ZoneBudget {
        ZoneBudget {
            roots: roots
                .iter()
                .filter_map(|r| {
                    let c = std::fs::canonicalize(r).ok()?;
                    let is_dir = c.is_dir();
                    Some((c, is_dir))
                })
                .collect(),
            records: AtomicUsize::new(0),
            includes: AtomicUsize::new(0),
            include_bytes: AtomicU64::new(0),
        }
    }

    fn allows(&self, canonical: &Path) -> bool {
        self.roots.iter().any(|(r, is_dir)| {
            if *is_dir {
                canonical.starts_with(r)
            } else {
                canonical == r
            }
        })
    }

    fn take_records(&self, n: usize) -> Result<(), String> {
        let before = self.records.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > RECORDS_MAX {
            return Err(format!(
                "more than {RECORDS_MAX} DNS zone records (plain, included and generated) in \
                 this scan; refused (wavelift::blast::zone::RECORDS_MAX)"
            ));
        }
        Ok(())
    }
}

/// A problem that stops the whole scan (a budget exceeded), with where it happened.
pub type Fatal = String;

/// Whether a file looks like a zone file (by name or by its first lines).
pub fn looks_like_zone(name: &str, head: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".zone") || n.starts_with("db.") {
        return true;
    }
    // Each test below needs a `$` or `SOA`: one SIMD search (memchr) rules most files out.
    if memchr::memchr(b'$', head.as_bytes()).is_none()
        && memchr::memmem::find(head.as_bytes(), b"SOA").is_none()
    {
        return false;
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

/// Parses a zone file (its bytes, already read) and everything it `$INCLUDE`s. Problems go
/// to `warnings` as `file:line: why`; an exceeded budget is the `Err`.
pub fn parse_bytes(
    bytes: &[u8],
    path: &Path,
    display: &str,
    budget: &ZoneBudget,
    warnings: &mut Vec<String>,
) -> Result<Vec<ZoneRecord>, Fatal> {
    let text = String::from_utf8_lossy(bytes);
    let origin = origin_from_name(
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut out = Vec::new();
    let mut chain: Vec<PathBuf> = std::fs::canonicalize(path).into_iter().collect();
    let mut p = Parse {
        budget,
        out: &mut out,
        warnings,
        chain: &mut chain,
    };
    p.text(&text, path, display, &origin, 0)?;
    Ok(out)
}

/// One file's parse: the budget, where records and warnings go, the `$INCLUDE` chain.
struct Parse<'a> {
    budget: &'a ZoneBudget,
    out: &'a mut Vec<ZoneRecord>,
    warnings: &'a mut Vec<String>,
    /// Canonical paths of the files being parsed, outermost first (loops are refused).
    chain: &'a mut Vec<PathBuf>,
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

impl Parse<'_> {
    /// Parses zone text; `path` is the file it came from (for `$INCLUDE`), `display` its name
    /// in reports.
    fn text(
        &mut self,
        text: &str,
        path: &Path,
        display: &str,
        origin0: &str,
        depth: usize,
    ) -> Result<(), Fatal> {
        let file: Arc<str> = Arc::from(display);
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
            let at = Line {
                file: &file,
                n,
                raw,
                team: inline_owner.or(file_owner.clone()),
            };
            match upper.as_str() {
                "$ORIGIN" => {
                    match toks.get(1) {
                        Some(o) => origin = absolute(o, &origin),
                        None => self
                            .warnings
                            .push(format!("{display}:{n}: $ORIGIN without a name")),
                    }
                    continue;
                }
                "$TTL" => continue,
                "$INCLUDE" => {
                    let Some(f) = toks.get(1) else {
                        self.warnings
                            .push(format!("{display}:{n}: $INCLUDE without a file"));
                        continue;
                    };
                    let inc_origin = toks.get(2).map_or(origin.clone(), |o| absolute(o, &origin));
                    self.include(f.trim_matches('"'), path, display, n, &inc_origin, depth)?;
                    continue;
                }
                "$GENERATE" => {
                    self.generate(&toks, &origin, &at)?;
                    continue;
                }
                _ if upper.starts_with('$') => {
                    self.warnings
                        .push(format!("{display}:{n}: unknown directive {first}; skipped"));
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
                self.warnings
                    .push(format!("{display}:{n}: record without a type; skipped"));
                continue;
            };
            let rtype = rtype.to_ascii_uppercase();
            let rdata = &rest[k + 1..];
            let text: Arc<str> = Arc::from(clip(raw));
            self.record(owner, &rtype, rdata, &origin, &at, &text)?;
        }
        Ok(())
    }

    /// `$INCLUDE file [origin]` on line `n` of `display` (read from `path`).
    fn include(
        &mut self,
        f: &str,
        path: &Path,
        display: &str,
        n: usize,
        origin: &str,
        depth: usize,
    ) -> Result<(), Fatal> {
        if depth >= INCLUDE_DEPTH_MAX {
            self.warnings.push(format!(
                "{display}:{n}: $INCLUDE {f}: nested more than {INCLUDE_DEPTH_MAX} deep; skipped"
            ));
            return Ok(());
        }
        let inc = path.parent().unwrap_or(Path::new(".")).join(f);
        let inc_display = Path::new(display)
            .parent()
            .unwrap_or(Path::new(""))
            .join(f)
            .display()
            .to_string();
        let canonical = match std::fs::canonicalize(&inc) {
            Ok(c) => c,
            Err(e) => {
                self.warnings
                    .push(format!("{display}:{n}: $INCLUDE {f}: {e}"));
                return Ok(());
            }
        };
        if !self.budget.allows(&canonical) {
            self.warnings.push(format!(
                "{display}:{n}: $INCLUDE {f}: {} is outside the --sources roots; refused",
                canonical.display()
            ));
            return Ok(());
        }
        if self.chain.contains(&canonical) {
            self.warnings.push(format!(
                "{display}:{n}: $INCLUDE {f}: includes itself (a loop through {}); skipped",
                canonical.display()
            ));
            return Ok(());
        }
        let count = self.budget.includes.fetch_add(1, Ordering::Relaxed) + 1;
        if count > INCLUDES_MAX {
            return Err(format!(
                "{display}:{n}: more than {INCLUDES_MAX} $INCLUDE reads in this scan; refused \
                 (wavelift::blast::zone::INCLUDES_MAX)"
            ));
        }
        let bytes = match crate::fsio::read_bounded(
            &canonical,
            crate::fsio::ZONE_INCLUDE_MAX,
            "the included zone file",
        ) {
            Ok(b) => b,
            Err(e) => {
                self.warnings
                    .push(format!("{display}:{n}: $INCLUDE {f}: {}", e.into_io()));
                return Ok(());
            }
        };
        let len = bytes.len() as u64;
        let total = self.budget.include_bytes.fetch_add(len, Ordering::Relaxed) + len;
        if total > INCLUDE_BYTES_MAX {
            return Err(format!(
                "{display}:{n}: more than {} read through $INCLUDE in this scan; refused \
                 (wavelift::blast::zone::INCLUDE_BYTES_MAX)",
                crate::fsio::human(INCLUDE_BYTES_MAX)
            ));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        drop(bytes);
        self.chain.push(canonical);
        let r = self.text(&text, &inc, &inc_display, origin, depth + 1);
        self.chain.pop();
        r
    }

    /// One record; only A, AAAA, PTR and CNAME are kept.
    fn record(
        &mut self,
        owner: String,
        rtype: &str,
        rdata: &[&str],
        origin: &str,
        at: &Line<'_>,
        text: &Arc<str>,
    ) -> Result<(), Fatal> {
        let (file, line) = (at.file, at.n);
        let (rtype, data): (&'static str, String) = match rtype {
            "A" | "AAAA" => match rdata.first().map(|t| t.parse::<IpAddr>()) {
                Some(Ok(ip)) if (rtype == "A") == ip.is_ipv4() => {
                    (if rtype == "A" { "A" } else { "AAAA" }, ip.to_string())
                }
                _ => {
                    self.warnings.push(format!(
                        "{file}:{line}: {rtype} record with bad address `{}`; skipped",
                        clip(&rdata.join(" "))
                    ));
                    return Ok(());
                }
            },
            "PTR" | "CNAME" => match rdata.first() {
                Some(t) => (
                    if rtype == "PTR" { "PTR" } else { "CNAME" },
                    absolute(t, origin),
                ),
                None => {
                    self.warnings.push(format!(
                        "{file}:{line}: {rtype} record without a target; skipped"
                    ));
                    return Ok(());
                }
            },
            _ => return Ok(()),
        };
        self.budget
            .take_records(1)
            .map_err(|e| format!("{file}:{line}: {e}"))?;
        self.out.push(ZoneRecord {
            name: owner,
            rtype,
            rdata: data,
            file: at.file.clone(),
            line,
            text: text.clone(),
            owner: at.team.clone(),
        });
        Ok(())
    }

    /// `$GENERATE 10-20[/step] lhs [ttl] [class] type rhs`, with `$`, `${offset,width,base}`
    /// and `\$` in lhs and rhs. At most [`GENERATE_RECORDS_MAX`] records per line.
    fn generate(&mut self, toks: &[&str], origin: &str, at: &Line<'_>) -> Result<(), Fatal> {
        let (file, line) = (at.file, at.n);
        let bad = |w: &mut Vec<String>, why: &str| {
            w.push(format!("{file}:{line}: malformed $GENERATE{why}; skipped"));
            Ok(())
        };
        let Some(range) = toks.get(1) else {
            return bad(self.warnings, "");
        };
        let (range, step) = match range.split_once('/') {
            Some((r, s)) => (r, s.parse::<u64>().ok()),
            None => (*range, Some(1)),
        };
        let Some((a, b)) = range.split_once('-') else {
            return bad(self.warnings, "");
        };
        let (Ok(a), Ok(b), Some(step)) = (a.parse::<u64>(), b.parse::<u64>(), step) else {
            return bad(self.warnings, "");
        };
        if step == 0 || a > b || (b - a) / step >= GENERATE_RECORDS_MAX {
            return bad(
                self.warnings,
                &format!(" (at most {GENERATE_RECORDS_MAX} records a line)"),
            );
        }
        let Some(lhs) = toks.get(2) else {
            return bad(self.warnings, "");
        };
        let mut k = 3;
        while k < toks.len() && k < 5 && (is_ttl(toks[k]) || is_class(toks[k])) {
            k += 1;
        }
        let (Some(rtype), Some(rhs)) = (toks.get(k), toks.get(k + 1)) else {
            return bad(self.warnings, "");
        };
        // Check both templates once (a width over the limit, a name over the limit) before
        // making any record.
        for t in [lhs, rhs] {
            if let Err(why) = subst(t, b).and(subst(t, a)) {
                return bad(self.warnings, &format!(" ({why})"));
            }
        }
        let rtype = rtype.to_ascii_uppercase();
        let text: Arc<str> = Arc::from(clip(at.raw));
        let mut i = a;
        while i <= b {
            let (Ok(l), Ok(r)) = (subst(lhs, i), subst(rhs, i)) else {
                return bad(self.warnings, "");
            };
            let owner = absolute(&l, origin);
            self.record(owner, &rtype, &[r.as_str()], origin, at, &text)?;
            i += step;
        }
        Ok(())
    }
}

/// Where a record comes from: file, line number, the line, the owner comment in force.
struct Line<'a> {
    file: &'a Arc<str>,
    n: usize,
    raw: &'a str,
    team: Option<String>,
}

/// Substitutes `$`, `${offset,width,base}` and `\$` in a `$GENERATE` template for `i`. The
/// width is at most [`GENERATE_WIDTH_MAX`], the result at most [`GENERATED_NAME_MAX`] bytes.
fn subst(t: &str, i: u64) -> Result<String, String> {
    let mut o = String::new();
    let b = t.as_bytes();
    let mut k = 0;
    let bad = || "bad ${offset,width,base}".to_string();
    while k < b.len() {
        match b[k] {
            b'\\' if b.get(k + 1) == Some(&b'$') => {
                o.push('$');
                k += 2;
            }
            b'$' if b.get(k + 1) == Some(&b'{') => {
                let end = t[k..].find('}').ok_or_else(bad)? + k;
                let args: Vec<&str> = t[k + 2..end].split(',').collect();
                let off: i64 = args
                    .first()
                    .filter(|s| !s.is_empty())
                    .map_or(Ok(0), |s| s.parse())
                    .map_err(|_| bad())?;
                let width: usize = args
                    .get(1)
                    .map_or(Ok(0), |s| s.parse())
                    .map_err(|_| bad())?;
                if width > GENERATE_WIDTH_MAX {
                    return Err(format!(
                        "width {width} is over the limit of {GENERATE_WIDTH_MAX}"
                    ));
                }
                let v = i64::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_add(off))
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| "offset out of range".to_string())?;
                let s = match args.get(2).copied().unwrap_or("d") {
                    "d" => format!("{v:0width$}"),
                    "o" => format!("{v:0width$o}"),
                    "x" => format!("{v:0width$x}"),
                    "X" => format!("{v:0width$X}"),
                    _ => return Err(bad()),
                };
                o.push_str(&s);
                k = end + 1;
            }
            b'$' => {
                o.push_str(&i.to_string());
                k += 1;
            }
            _ => {
                let c = t[k..].chars().next().ok_or_else(bad)?;
                o.push(c);
                k += c.len_utf8();
            }
        }
        if o.len() > GENERATED_NAME_MAX {
            return Err(format!(
                "a generated name is over the limit of {GENERATED_NAME_MAX} bytes"
            ));
        }
    }
    Ok(o)
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
        let (kind, targets): (RefKind, Vec<usize>) = match r.rtype {
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
                r.file.to_string(),
                Hit {
                    target: t,
                    matched,
                    line: r.line,
                    kind,
                    text: r.text.to_string(),
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
                        r.file.to_string(),
                        Hit {
                            target: t,
                            matched: r.rdata.clone(),
                            line: r.line,
                            kind: RefKind::DnsCname,
                            text: r.text.to_string(),
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
        assert_eq!(subst("host-$", 7).as_deref(), Ok("host-7"));
        assert_eq!(subst("h${10,3,d}", 7).as_deref(), Ok("h017"));
        assert_eq!(subst("h${0,4,x}", 255).as_deref(), Ok("h00ff"));
        assert_eq!(subst("a\\$b", 1).as_deref(), Ok("a$b"));
        assert!(subst("h${x}", 1).is_err());
        // Widths past the limit are refused before any formatting (65,536 used to panic).
        let e = subst("h${0,65536,d}", 1).expect_err("width");
        assert!(e.contains("width 65536 is over the limit of 255"), "{e}");
        assert_eq!(subst("h${0,255,d}", 1).map(|s| s.len()), Ok(256));
        let e = subst(&"${0,255}".repeat(5), 1).expect_err("name length");
        assert!(e.contains("over the limit of 1024 bytes"), "{e}");
        assert!(subst("${-5}", 1).is_err(), "negative value");
    }

    fn parse(text: &str, budget: &ZoneBudget) -> (Result<Vec<ZoneRecord>, Fatal>, Vec<String>) {
        let mut w = Vec::new();
        let r = parse_bytes(text.as_bytes(), Path::new("z"), "z", budget, &mut w);
        (r, w)
    }

    #[test]
    fn generate_widths_and_the_records_budget() {
        let budget = ZoneBudget::new(&[]);
        let (r, w) = parse("$GENERATE 1-3 h${0,70000} A 192.0.2.$\n", &budget);
        assert_eq!(r.map(|v| v.len()), Ok(0));
        assert!(
            w[0].contains("z:1: malformed $GENERATE (width 70000"),
            "{w:?}"
        );
        // 16 lines of 65,536 records each are past the per-scan budget: an error, not 1M+
        // records.
        let many = "$GENERATE 0-65535 h$ CNAME x\n".repeat(16);
        let (r, _) = parse(&many, &budget);
        let e = r.expect_err("over budget");
        assert!(e.contains("more than 1000000 DNS zone records"), "{e}");
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
        let budget = ZoneBudget::new(&[]);
        let (out, w) = parse(text, &budget);
        let got: Vec<(String, String, String, usize)> = out
            .expect("parsed")
            .iter()
            .map(|r| (r.name.clone(), r.rtype.into(), r.rdata.clone(), r.line))
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
