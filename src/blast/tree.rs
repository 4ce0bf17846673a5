//! Walking the sources and scanning every file: each file is read once, recognised (zone,
//! firewall export, Prometheus, HAProxy, nginx, or plain text), parsed by its structured
//! parser if it has one, and always searched for literal addresses, names and ranges. Files run
//! in parallel (one worker per core).
//!
//! Reading (see `fsio`): only regular files are opened (a FIFO or device found in a tree is
//! skipped with a warning). The first 8 KiB are read first: a NUL byte there makes the file
//! binary, skipped and counted, without reading the rest (a 2 GB sparse file costs 8 KiB). A
//! text file of at most [`crate::fsio::SCAN_WHOLE_MAX`] bytes is read whole; a larger one is
//! streamed through the literal scan in windows of [`STREAM_WINDOW`] bytes (line numbers and
//! matches across window edges are exact), without the structured parsers. At most
//! [`REFERENCES_MAX`] references are kept per scan: more stops the scan with an error.
//!
//! Documents and compliance (the rule the risk flag uses):
//! - a *document* is a file named `*.md`, `*.txt`, `*.rst`, `*.adoc`, `*.html`, `*.htm`,
//!   `*.org` or `*.tex`: its literal hits are `document`, other files' are `config-literal`;
//! - a *compliance document* is a document, or any file, under a directory named
//!   `compliance`, `audit`, `audits`, `pci`, `sox` or `iso27001` (any case), or a file whose
//!   name ends in `.pdf.txt`, `.docx.txt`, `.doc.txt`, `.xlsx.txt` or `.odt.txt` (text
//!   extracted from office documents, which are what auditors keep).

use super::firewall;
use super::lb;
use super::matcher::Matcher;
use super::model::{clip, Coverage, Hit, RefKind};
use super::prometheus;
use super::zone::{self, ZoneBudget, ZoneRecord};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The window a large text file is streamed in.
pub const STREAM_WINDOW: usize = 4 << 20;
/// References (hits) kept per scan, every file together.
pub const REFERENCES_MAX: usize = 1_000_000;
/// Bytes read first to tell a binary file (a NUL byte among them).
const BINARY_SNIFF: usize = 8192;

/// What every file of one scan shares: the zone budget and confinement, the reference count.
#[derive(Debug)]
pub struct ScanContext {
    pub zone: ZoneBudget,
    references: AtomicUsize,
}

impl ScanContext {
    /// A context for a scan of `roots` (the `--sources`).
    pub fn new(roots: &[PathBuf]) -> ScanContext {
        ScanContext {
            zone: ZoneBudget::new(roots),
            references: AtomicUsize::new(0),
        }
    }

    /// Counts `n` more references; the error once the scan has more than [`REFERENCES_MAX`].
    fn take_references(&self, n: usize) -> Result<(), String> {
        let before = self.references.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > REFERENCES_MAX {
            return Err(format!(
                "more than {REFERENCES_MAX} references in this scan; refused (narrow \
                 --sources; wavelift::blast::tree::REFERENCES_MAX)"
            ));
        }
        Ok(())
    }
}

/// A file to scan.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    /// Path relative to its sources root, `/`-separated (for the owners file).
    pub rel: String,
}

/// Names of owners files, found at the root of a sources directory (never scanned).
pub const OWNERS_NAMES: &[&str] = &["OWNERS", "wavelift-owners", ".wavelift-owners"];

/// Every regular file under the roots (symlinks and `.git`/`.svn`/`.hg` skipped; FIFOs,
/// sockets and devices skipped with a warning), sorted.
pub fn walk(roots: &[PathBuf], warnings: &mut Vec<String>) -> Vec<SourceFile> {
    let mut out = Vec::new();
    for root in roots {
        if root.is_file() {
            let name = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(SourceFile {
                path: root.clone(),
                rel: name,
            });
            continue;
        }
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(r) => r,
                Err(e) => {
                    warnings.push(format!("{}: {e}", dir.display()));
                    continue;
                }
            };
            for e in rd.filter_map(Result::ok) {
                let Ok(ft) = e.file_type() else { continue };
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if ft.is_dir() {
                    if ![".git", ".svn", ".hg"].contains(&name.as_str()) {
                        stack.push(p);
                    }
                } else if ft.is_file() {
                    if dir == *root && OWNERS_NAMES.contains(&name.as_str()) {
                        continue;
                    }
                    let rel = p
                        .strip_prefix(root)
                        .map(|r| r.to_string_lossy().replace('\\', "/"))
                        .unwrap_or(name);
                    out.push(SourceFile { path: p, rel });
                } else if !ft.is_symlink() {
                    // A FIFO, socket or device in a config tree: never opened.
                    warnings.push(format!(
                        "{}: not a regular file (a FIFO, socket or device); skipped",
                        p.display()
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

pub fn is_document(rel: &str) -> bool {
    let n = rel.rsplit('/').next().unwrap_or(rel).to_ascii_lowercase();
    [
        ".md", ".txt", ".rst", ".adoc", ".html", ".htm", ".org", ".tex",
    ]
    .iter()
    .any(|e| n.ends_with(e))
}

pub fn is_compliance(rel: &str) -> bool {
    let lower = rel.to_ascii_lowercase();
    let mut segs: Vec<&str> = lower.split('/').collect();
    let name = segs.pop().unwrap_or("");
    segs.iter()
        .any(|s| ["compliance", "audit", "audits", "pci", "sox", "iso27001"].contains(s))
        || [".pdf.txt", ".docx.txt", ".doc.txt", ".xlsx.txt", ".odt.txt"]
            .iter()
            .any(|e| name.ends_with(e))
}

/// What scanning one file gave.
#[derive(Debug, Default)]
pub struct FileScan {
    /// Structured hits first, then literal hits (deduplicated later by line and VM).
    pub hits: Vec<Hit>,
    /// Zone records (resolved across files afterwards).
    pub zone: Vec<ZoneRecord>,
    pub binary: bool,
    pub bytes: u64,
    pub parser: &'static str,
    pub warnings: Vec<String>,
    /// A budget exceeded: the scan stops with this error.
    pub fatal: Option<String>,
}

fn is_binary(head: &[u8]) -> bool {
    memchr::memchr(0, &head[..head.len().min(BINARY_SNIFF)]).is_some()
}

/// The kind of a file's literal hits.
fn literal_kind(f: &SourceFile) -> RefKind {
    if is_document(&f.rel) || is_compliance(&f.rel) {
        RefKind::Document
    } else {
        RefKind::ConfigLiteral
    }
}

/// Scans one file's bytes (the whole file).
pub fn scan_bytes(f: &SourceFile, bytes: &[u8], m: &Matcher, ctx: &ScanContext) -> FileScan {
    let mut out = FileScan {
        bytes: bytes.len() as u64,
        parser: "text",
        ..FileScan::default()
    };
    if is_binary(bytes) {
        out.binary = true;
        return out;
    }
    let display = f.path.display().to_string();
    let name = f
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lname = name.to_ascii_lowercase();
    // Structured parsers only look at files read whole; text is decoded lossily.
    if bytes.len() as u64 <= crate::fsio::SCAN_WHOLE_MAX {
        let head = &bytes[..bytes.len().min(16384)];
        // The same text as `from_utf8_lossy`; `from_utf8` checks valid UTF-8 faster.
        let head = match std::str::from_utf8(head) {
            Ok(h) => std::borrow::Cow::Borrowed(h),
            Err(_) => String::from_utf8_lossy(head),
        };
        let is_json = lname.ends_with(".json");
        let is_yaml = lname.ends_with(".yml") || lname.ends_with(".yaml");
        let text = || String::from_utf8_lossy(bytes);
        if zone::looks_like_zone(&name, &head) {
            out.parser = "zone";
            match zone::parse_bytes(bytes, &f.path, &display, &ctx.zone, &mut out.warnings) {
                Ok(z) => out.zone = z,
                Err(e) => {
                    out.fatal = Some(e);
                    return out;
                }
            }
        } else if lname.ends_with(".csv")
            && firewall::is_neutral_header(head.lines().next().unwrap_or(""))
        {
            out.parser = "firewall-csv";
            out.hits = firewall::neutral_csv(&text(), &display, m, &mut out.warnings);
        } else if firewall::looks_like_iptables(&head) {
            out.parser = "iptables-save";
            out.hits = firewall::iptables(&text(), &display, m, &mut out.warnings);
        } else if is_json && head.contains("\"nftables\"") {
            out.parser = "nftables-json";
            out.hits = firewall::nft_json(&text(), &display, m, &mut out.warnings);
        } else if is_json && head.contains("\"SecurityGroups\"") {
            out.parser = "aws-security-groups";
            out.hits = firewall::aws_sg(&text(), &display, m, &mut out.warnings);
        } else if is_json || is_yaml {
            let t = text();
            if let Some(doc) = prometheus::sniff(&t, is_json) {
                out.parser = "prometheus";
                out.hits = prometheus::hits(&doc, &t, m);
            }
        } else if lb::looks_like_haproxy(&name, &head) {
            out.parser = "haproxy";
            out.hits = lb::haproxy(&text(), m);
        } else if lb::looks_like_nginx(&name, &display, &head) {
            out.parser = "nginx";
            out.hits = lb::nginx(&text(), m);
        }
    }
    literal_hits(bytes, m, literal_kind(f), &mut out.hits);
    if let Err(e) = ctx.take_references(out.hits.len()) {
        out.fatal = Some(format!("{display}: {e}"));
        out.hits = Vec::new();
        out.zone = Vec::new();
    }
    out
}

/// Reads and scans one file: binary files after their first 8 KiB, small text files whole,
/// large ones streamed. `buf` is the worker's buffer, reused.
pub fn scan_file(f: &SourceFile, m: &Matcher, ctx: &ScanContext, buf: &mut Vec<u8>) -> FileScan {
    let display = f.path.display().to_string();
    let failed = |e: String| FileScan {
        warnings: vec![e],
        ..FileScan::default()
    };
    let (file, size) = match crate::fsio::open_regular(&f.path, "the source file") {
        Ok(x) => x,
        Err(e) => return failed(format!("{e}; skipped")),
    };
    buf.clear();
    let mut reader = file.take(crate::fsio::SCAN_WHOLE_MAX + 1);
    if let Err(e) = (&mut reader).take(BINARY_SNIFF as u64).read_to_end(buf) {
        return failed(format!("{display}: {e}"));
    }
    if is_binary(buf) {
        return FileScan {
            binary: true,
            bytes: size,
            parser: "binary",
            ..FileScan::default()
        };
    }
    if buf.len() == BINARY_SNIFF {
        buf.reserve(usize::try_from(size.min(crate::fsio::SCAN_WHOLE_MAX)).unwrap_or(0));
        if let Err(e) = reader.read_to_end(buf) {
            return failed(format!("{display}: {e}"));
        }
    }
    if buf.len() as u64 <= crate::fsio::SCAN_WHOLE_MAX {
        return scan_bytes(f, buf, m, ctx);
    }
    // Larger than a whole read: stream the rest through the literal scan.
    let mut out = FileScan {
        parser: "text-streamed",
        ..FileScan::default()
    };
    let mut rest = reader.into_inner();
    let kind = literal_kind(f);
    match stream_literal(&mut rest, buf, STREAM_WINDOW, m, kind, ctx, &mut out.hits) {
        Ok(Ok(n)) => out.bytes = n,
        Ok(Err(fatal)) => {
            out.fatal = Some(format!("{display}: {fatal}"));
            out.hits = Vec::new();
        }
        Err(e) => out.warnings.push(format!("{display}: {e}")),
    }
    // The window may have grown to the whole-read size: give the memory back.
    buf.clear();
    buf.shrink_to(STREAM_WINDOW);
    out
}

/// The literal scan over a reader, window by window: `buf` holds what was read so far. Each
/// window keeps the hits that start in the part it owns (up to its last newline, or all but
/// a tail longer than any match when a line is longer than the window); the next window
/// starts a little before that (the bytes a boundary check looks back at). Returns the bytes
/// scanned, or the exceeded reference budget.
#[allow(clippy::too_many_arguments)]
fn stream_literal(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    window: usize,
    m: &Matcher,
    kind: RefKind,
    ctx: &ScanContext,
    out: &mut Vec<Hit>,
) -> std::io::Result<Result<u64, String>> {
    /// Longer than any match plus what a boundary check looks at after it.
    const TAIL: usize = 1024;
    let window = window.max(2 * TAIL);
    /// What a boundary check (or a range's start) looks at before a match.
    const BEFORE: usize = 64;
    let mut line_base = 0usize;
    let mut own_from = 0usize;
    // The text of the line `buf[0]` is in, when it started in an earlier window.
    let mut carry: Option<String> = None;
    let mut dropped = 0u64;
    let mut eof = false;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        while !eof && buf.len() < own_from + window {
            let n = match r.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                eof = true;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let own_to = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf[own_from..]) {
                Some(p) => own_from + p + 1,
                None => buf.len() - TAIL,
            }
        };
        let before = out.len();
        window_hits(
            buf,
            m,
            kind,
            line_base,
            own_from..own_to,
            carry.as_deref(),
            out,
        );
        if let Err(e) = ctx.take_references(out.len() - before) {
            return Ok(Err(e));
        }
        if eof {
            return Ok(Ok(dropped + buf.len() as u64));
        }
        let keep_from = own_to.saturating_sub(BEFORE);
        if keep_from > 0 {
            // The line `buf[keep_from]` is in: its text while its start is still here.
            carry = match memchr::memrchr(b'\n', &buf[..keep_from]) {
                Some(p) if p + 1 == keep_from => None,
                Some(p) => Some(line_text_at(buf, p + 1)),
                None => carry.or_else(|| Some(line_text_at(buf, 0))),
            };
        }
        line_base += memchr::memchr_iter(b'\n', &buf[..keep_from]).count();
        buf.drain(..keep_from);
        dropped += keep_from as u64;
        own_from = own_to - keep_from;
    }
}

/// Literal and range hits with line numbers and line text.
pub fn literal_hits(bytes: &[u8], m: &Matcher, kind: RefKind, out: &mut Vec<Hit>) {
    window_hits(bytes, m, kind, 0, 0..bytes.len(), None, out);
}

/// The hits of `bytes` that start in `own`; `line_base` newlines come before `bytes`, and
/// `first_text` is the text of the line `bytes[0]` is in when that line started before. Each
/// line is looked at once however many hits it has (a single 64 MiB line of addresses is
/// linear, not quadratic).
#[allow(clippy::too_many_arguments)]
fn window_hits(
    bytes: &[u8],
    m: &Matcher,
    kind: RefKind,
    line_base: usize,
    own: std::ops::Range<usize>,
    first_text: Option<&str>,
    out: &mut Vec<Hit>,
) {
    let hits = m.scan(bytes);
    let mut line = line_base + 1;
    let mut at = 0usize;
    // The line `at` is on: where it starts, and its text once needed.
    let mut ls = 0usize;
    let mut text: Option<String> = first_text.map(str::to_string);
    for h in hits {
        if !own.contains(&h.start) {
            continue;
        }
        let seg = &bytes[at..h.start];
        if let Some(p) = memchr::memrchr(b'\n', seg) {
            line += memchr::memchr_iter(b'\n', seg).count();
            ls = at + p + 1;
            text = None;
        }
        at = h.start;
        let text = text.get_or_insert_with(|| line_text_at(bytes, ls)).clone();
        out.push(Hit {
            target: h.target,
            matched: h.matched,
            line,
            kind,
            text,
            context: None,
            coverage: h.coverage,
            owner: None,
        });
    }
}

/// The line starting at `start`, for a report.
fn line_text_at(bytes: &[u8], start: usize) -> String {
    let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |p| start + p);
    line_text(&bytes[start..end])
}

/// A line for a report: trimmed and clipped (`clip`), decoding at most 1 KiB of it.
fn line_text(line: &[u8]) -> String {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let line = &line[start..];
    clip(&String::from_utf8_lossy(&line[..line.len().min(1024)]))
}

/// How a hit names its VM: by address (the address itself, or a range containing it) or by
/// host name. The two are counted independently: a line naming both is two references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NamedBy {
    Address,
    Name,
}

fn named_by(h: &Hit) -> NamedBy {
    let is_ip = h
        .matched
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    if h.coverage == Coverage::NamesHost && !is_ip {
        NamedBy::Name
    } else {
        NamedBy::Address
    }
}

fn is_structured(h: &Hit) -> bool {
    !matches!(h.kind, RefKind::ConfigLiteral | RefKind::Document)
}

/// Keeps at most one hit per (line, VM) by address and one by name, whatever their order on
/// the line:
/// - by address, the first structured hit (a DNS record, a firewall rule, …) if any, else the
///   first literal one; a hit naming the host replaces a range hit of the same kind;
/// - by name, likewise, except that a literal name is dropped when a structured hit of that
///   line already names the VM (`web-01 IN A 192.0.2.10`, `server web-01 192.0.2.10:80` are
///   one reference: the record's own name is part of it).
pub fn dedup(hits: Vec<Hit>) -> Vec<Hit> {
    use std::collections::{HashMap, HashSet};
    let structured_lines: HashSet<(usize, usize)> = hits
        .iter()
        .filter(|h| is_structured(h))
        .map(|h| (h.line, h.target))
        .collect();
    // Structured hits first, so they win their (line, VM, named-by) slot whatever the order.
    let (first, then): (Vec<Hit>, Vec<Hit>) = hits.into_iter().partition(is_structured);
    let mut out: Vec<Hit> = Vec::with_capacity(first.len() + then.len());
    let mut seen: HashMap<(usize, usize, NamedBy), usize> = HashMap::new();
    for h in first.into_iter().chain(then) {
        let by = named_by(&h);
        if by == NamedBy::Name
            && !is_structured(&h)
            && structured_lines.contains(&(h.line, h.target))
        {
            continue;
        }
        match seen.get(&(h.line, h.target, by)) {
            None => {
                seen.insert((h.line, h.target, by), out.len());
                out.push(h);
            }
            Some(&i) => {
                let cur = &mut out[i];
                if cur.kind == h.kind
                    && cur.coverage != Coverage::NamesHost
                    && h.coverage == Coverage::NamesHost
                {
                    *cur = h;
                }
            }
        }
    }
    out.sort_by_key(|h| (h.line, h.target));
    out
}

/// Scans every file on `threads` workers. Results come back in file order; once one file
/// exceeds a budget (its `fatal`), the files not started yet are not read.
pub fn scan_all(
    files: &[SourceFile],
    m: &Matcher,
    threads: usize,
    ctx: &ScanContext,
) -> Vec<FileScan> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<FileScan>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    let threads = threads.clamp(1, 64).min(files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = scan_file(f, m, ctx, &mut buf);
                    if r.fatal.is_some() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blast::targets::Target;

    fn target(name: &str, ip: &str) -> Target {
        Target {
            name: name.into(),
            ips: vec![ip.parse().expect("ip")],
            hostnames: vec![name.to_string()],
            owner: None,
            networks: Vec::new(),
            vlan_known: true,
        }
    }

    /// Streaming in small windows finds exactly what a whole read finds: the same hits at the
    /// same lines with the same text, across window edges, in lines longer than a window,
    /// with ranges and boundary checks that look around a match.
    #[test]
    fn streaming_equals_a_whole_read_at_every_window_edge() {
        let m = Matcher::new(vec![
            target("app-05", "10.1.1.5"),
            target("db-01", "10.1.1.50"),
            target("web-01", "192.0.2.10"),
        ]);
        let pieces = [
            "10.1.1.5",
            "10.1.1.50",
            "app-05",
            "db-01",
            "web-01",
            "192.0.2.10",
            "10.1.1.0/24",
            "10.1.1.1-10.1.1.9",
            "x10.1.1.5",
            "app-05-old",
            " ",
            "  ",
            ",",
            ".",
            "\n",
            "\n",
            "filler-text",
            "0",
            "-",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize % n
        };
        for round in 0..20 {
            let mut text = String::new();
            while text.len() < 40_000 {
                text.push_str(pieces[next(pieces.len())]);
                if round % 5 == 0 && next(50) == 0 {
                    // a line longer than the window
                    text.push_str(&"a 10.1.1.5 ".repeat(400));
                }
            }
            let bytes = text.as_bytes();
            let mut whole = Vec::new();
            literal_hits(bytes, &m, RefKind::ConfigLiteral, &mut whole);
            let ctx = ScanContext::new(&[]);
            for window in [2048, 2500, 4099] {
                let mut got = Vec::new();
                let mut buf = bytes[..next(3000)].to_vec();
                let mut rest = &bytes[buf.len()..];
                let n = stream_literal(
                    &mut rest,
                    &mut buf,
                    window,
                    &m,
                    RefKind::ConfigLiteral,
                    &ctx,
                    &mut got,
                )
                .expect("read")
                .expect("budget");
                assert_eq!(n, bytes.len() as u64);
                let key = |h: &Hit| (h.line, h.target, h.matched.clone(), h.text.clone());
                let a: Vec<_> = whole.iter().map(key).collect();
                let b: Vec<_> = got.iter().map(key).collect();
                if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
                    let cut = |h: Option<&(usize, usize, String, String)>| {
                        h.map(|(l, t, m, x)| {
                            (*l, *t, m.clone(), x.chars().take(60).collect::<String>())
                        })
                    };
                    panic!(
                        "round {round}, window {window}: {} vs {} hits; first difference at \
                         {i}: whole {:?}, streamed {:?}",
                        a.len(),
                        b.len(),
                        cut(a.get(i)),
                        cut(b.get(i))
                    );
                }
            }
        }
    }
}
