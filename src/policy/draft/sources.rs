//! Reading the firewall exports of `--sources`: the blast scan's walk (symlinks, VCS
//! directories and special files skipped), each file read with the blast scan's size limit
//! ([`crate::fsio::SCAN_WHOLE_MAX`]), binary files (a NUL byte in the first 8 KiB) skipped,
//! and every other file offered to [`crate::policy::fw::parse`], which recognises the
//! formats it knows by content. Files are read on `threads` workers; the result is in file
//! order. Only the texts of recognised exports and of `ipset save` files are kept: when
//! there are ipset files, those texts go through [`crate::policy::fw::parse_all`] together,
//! so that `--match-set` names resolve across files (the rest of the tree is never held in
//! memory).

use crate::blast::tree::{self, SourceFile};
use crate::policy::fw;
use crate::policy::rules::RuleSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const BINARY_SNIFF: usize = 8192;

/// What reading the sources found.
#[derive(Debug, Default)]
pub struct Exports {
    pub sets: Vec<RuleSet>,
    /// Files looked at (every regular file of the walk).
    pub files: usize,
    /// Files skipped: unreadable, too large or binary.
    pub warnings: Vec<String>,
}

/// What one file turned out to be.
enum Read {
    Export(RuleSet, String),
    Ipset(String),
    Other,
}

/// `ipset save` output: its first line that is not a comment creates a set.
fn is_ipset_save(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| {
            l.starts_with("create ") && ["hash:", "bitmap:", "list:"].iter().any(|k| l.contains(k))
        })
}

fn read_one(f: &SourceFile) -> Result<Read, String> {
    let bytes =
        crate::fsio::read_bounded(&f.path, crate::fsio::SCAN_WHOLE_MAX, "a file of --sources")
            .map_err(|e| format!("{e}; skipped"))?;
    if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        return Ok(Read::Other);
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(match fw::parse(&f.rel, &text) {
        Some(set) => Read::Export(set, text.into_owned()),
        None if is_ipset_save(&text) => Read::Ipset(text.into_owned()),
        None => Read::Other,
    })
}

/// Walks `roots` and parses every firewall export found.
pub fn read_exports(roots: &[PathBuf], threads: usize) -> Exports {
    let mut warnings = Vec::new();
    let files = tree::walk(roots, &mut warnings);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Read, String>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    let threads = threads.clamp(1, 64).min(files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let r = read_one(f);
                if let Ok(mut g) = results.lock() {
                    g[i] = Some(r);
                }
            });
        }
    });
    let mut sets = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut ipsets = false;
    let results = results.into_inner().unwrap_or_default();
    for (f, r) in files.iter().zip(results) {
        match r {
            Some(Ok(Read::Export(set, text))) => {
                sets.push(set);
                texts.push((f.rel.clone(), text));
            }
            Some(Ok(Read::Ipset(text))) => {
                ipsets = true;
                texts.push((f.rel.clone(), text));
            }
            Some(Ok(Read::Other)) | None => {}
            Some(Err(w)) => warnings.push(w),
        }
    }
    if ipsets {
        sets = fw::parse_all(&texts);
    }
    Exports {
        sets,
        files: files.len(),
        warnings,
    }
}
