//! Walking the sources and scanning every file: each file is read once, recognised (zone,
//! firewall export, Prometheus, HAProxy, nginx, or plain text), parsed by its structured
//! parser if it has one, and always searched for literal addresses, names and ranges. Files run
//! in parallel (one worker per core). Binary files (a NUL byte in the first 8 KiB) are skipped
//! and counted.
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
use super::zone::{self, ZoneRecord};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A file to scan.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    /// Path relative to its sources root, `/`-separated (for the owners file).
    pub rel: String,
}

/// Names of owners files, found at the root of a sources directory (never scanned).
pub const OWNERS_NAMES: &[&str] = &["OWNERS", "wavelift-owners", ".wavelift-owners"];

/// Every regular file under the roots (symlinks and `.git`/`.svn`/`.hg` skipped), sorted.
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
}

/// Scans one file's bytes.
pub fn scan_bytes(f: &SourceFile, bytes: &[u8], m: &Matcher) -> FileScan {
    let mut out = FileScan {
        bytes: bytes.len() as u64,
        parser: "text",
        ..FileScan::default()
    };
    if memchr::memchr(0, &bytes[..bytes.len().min(8192)]).is_some() {
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
    // Structured parsers only look at small files (< 64 MiB); text is decoded lossily.
    if bytes.len() < 64 << 20 {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(16384)]);
        let is_json = lname.ends_with(".json");
        let is_yaml = lname.ends_with(".yml") || lname.ends_with(".yaml");
        let text = || String::from_utf8_lossy(bytes);
        if zone::looks_like_zone(&name, &head) {
            out.parser = "zone";
            out.zone = zone::parse_file(&f.path, &display, &mut out.warnings);
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
    let kind = if is_document(&f.rel) || is_compliance(&f.rel) {
        RefKind::Document
    } else {
        RefKind::ConfigLiteral
    };
    literal_hits(bytes, m, kind, &mut out.hits);
    out
}

/// Literal and range hits with line numbers and line text.
pub fn literal_hits(bytes: &[u8], m: &Matcher, kind: RefKind, out: &mut Vec<Hit>) {
    let hits = m.scan(bytes);
    let mut line = 1usize;
    let mut at = 0usize;
    for h in hits {
        line += memchr::memchr_iter(b'\n', &bytes[at..h.start]).count();
        at = h.start;
        let ls = memchr::memrchr(b'\n', &bytes[..h.start]).map_or(0, |p| p + 1);
        let le = memchr::memchr(b'\n', &bytes[h.start..]).map_or(bytes.len(), |p| h.start + p);
        out.push(Hit {
            target: h.target,
            matched: h.matched,
            line,
            kind,
            text: clip(&String::from_utf8_lossy(&bytes[ls..le])),
            context: None,
            coverage: h.coverage,
            owner: None,
        });
    }
}

/// Keeps one hit per (line, VM): the structured one if any, else one that names the host
/// rather than a range.
pub fn dedup(hits: Vec<Hit>) -> Vec<Hit> {
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    let mut seen: std::collections::HashMap<(usize, usize), usize> =
        std::collections::HashMap::new();
    for h in hits {
        match seen.get(&(h.line, h.target)) {
            None => {
                seen.insert((h.line, h.target), out.len());
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
    out
}

/// Scans every file on `threads` workers. Results come back in file order.
pub fn scan_all(files: &[SourceFile], m: &Matcher, threads: usize) -> Vec<FileScan> {
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
                    let r = match read_into(&f.path, &mut buf) {
                        Ok(()) => scan_bytes(f, &buf, m),
                        Err(e) => FileScan {
                            warnings: vec![format!("{}: {e}", f.path.display())],
                            ..FileScan::default()
                        },
                    };
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

fn read_into(p: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    buf.clear();
    let mut f = std::fs::File::open(p)?;
    f.read_to_end(buf)?;
    Ok(())
}
