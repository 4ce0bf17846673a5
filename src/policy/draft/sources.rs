//! Reading the firewall exports of `--sources`: the blast scan's walk (symlinks, VCS
//! directories and special files skipped), each file read with the blast scan's size limit
//! ([`crate::fsio::SCAN_WHOLE_MAX`]), binary files (a NUL byte in the first 8 KiB) skipped,
//! and every other file offered to [`crate::policy::fw::parse`], which recognises the
//! formats it knows by content. Files are read on `threads` workers; the result is in file
//! order.

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

fn read_one(f: &SourceFile) -> Result<Option<RuleSet>, String> {
    let bytes =
        crate::fsio::read_bounded(&f.path, crate::fsio::SCAN_WHOLE_MAX, "a file of --sources")
            .map_err(|e| format!("{e}; skipped"))?;
    if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(fw::parse(&f.rel, &text))
}

/// Walks `roots` and parses every firewall export found.
pub fn read_exports(roots: &[PathBuf], threads: usize) -> Exports {
    let mut warnings = Vec::new();
    let files = tree::walk(roots, &mut warnings);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Option<RuleSet>, String>>>> =
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
    for r in results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
    {
        match r {
            Ok(Some(set)) => sets.push(set),
            Ok(None) => {}
            Err(w) => warnings.push(w),
        }
    }
    Exports {
        sets,
        files: files.len(),
        warnings,
    }
}
