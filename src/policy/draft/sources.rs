//! Reading the firewall exports of `--sources`: the blast scan's walk (symlinks, VCS
//! directories and special files skipped), each file read with the blast scan's size limit
//! ([`crate::fsio::SCAN_WHOLE_MAX`]), binary files (a NUL byte in the first 8 KiB) skipped,
//! and every other file offered to [`crate::policy::fw::parse`], which recognises the
//! formats it knows by content. Most files of a tree are not exports: a test on the bytes
//! ([`crate::policy::fw::may_be_export`], a `memchr`/`memmem` pass, never stricter than the
//! recognisers) turns them away before any UTF-8 decoding or line splitting. Files are read on `threads` workers; the result is in file
//! order. Only the texts of recognised exports and of the files that serve them (`ipset
//! save`, `aws ec2 describe-network-interfaces`) are kept: when there are such files, those
//! texts go through [`crate::policy::fw::parse_all`] together, so that `--match-set` names
//! and security-group members resolve across files (the rest of the tree is never held in
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
    /// `ipset save` output or security-group members: read with the exports.
    Auxiliary(String),
    Other,
}

/// A cheap necessary condition for [`fw::is_auxiliary`] on the bytes' lossy text: the first
/// line that is not blank or a comment starts with `create ` (`ipset save`) or `{` (a JSON
/// `describe-network-interfaces` export), or, conservatively, with a non-ASCII byte, which
/// may be Unicode white space the text's `trim` would drop.
fn may_be_auxiliary(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        // ASCII white space as `str::trim` has it (with U+000B, which `trim_ascii` keeps).
        let l = &rest[..end];
        let l = &l[l
            .iter()
            .take_while(|b| b.is_ascii_whitespace() || **b == 0x0b)
            .count()..];
        rest = rest.get(end + 1..).unwrap_or_default();
        match l.first() {
            None | Some(b'#') => continue,
            Some(&b) if b >= 0x80 => return true,
            Some(b'{') => return true,
            Some(_) => return l.starts_with(b"create "),
        }
    }
    false
}

fn read_one(f: &SourceFile, buf: &mut Vec<u8>) -> Result<Read, String> {
    crate::fsio::read_bounded_into(
        &f.path,
        crate::fsio::SCAN_WHOLE_MAX,
        "a file of --sources",
        buf,
    )
    .map_err(|e| format!("{e}; skipped"))?;
    let bytes = buf.as_slice();
    if memchr::memchr(0, &bytes[..bytes.len().min(BINARY_SNIFF)]).is_some() {
        return Ok(Read::Other);
    }
    // Most files of a sources tree are not firewall exports: reject them on their bytes,
    // before any UTF-8 decoding or line splitting (as the blast scan's recognisers do).
    if !fw::may_be_export(bytes) && !may_be_auxiliary(bytes) {
        return Ok(Read::Other);
    }
    let text = String::from_utf8_lossy(bytes);
    Ok(match fw::parse(&f.rel, &text) {
        Some(set) => Read::Export(set, text.into_owned()),
        None if fw::is_auxiliary(&text) => Read::Auxiliary(text.into_owned()),
        None => Read::Other,
    })
}

/// How each directory root is shown in origins: its last component (`fw` for
/// `/etc/exports/fw`; the current directory's name for `.`), or, when two roots would show
/// the same, the root as given (so that two roots never print the same origin).
fn root_labels(roots: &[PathBuf]) -> Vec<String> {
    let last = |r: &PathBuf| -> String {
        let named = r.file_name().map(|n| n.to_string_lossy().into_owned());
        named
            .or_else(|| {
                std::fs::canonicalize(r)
                    .ok()
                    .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| r.display().to_string())
    };
    let short: Vec<String> = roots.iter().map(last).collect();
    roots
        .iter()
        .zip(&short)
        .map(|(r, s)| {
            let clash = roots.iter().zip(&short).any(|(r2, s2)| s2 == s && r2 != r);
            if clash {
                r.display().to_string().trim_end_matches('/').to_string()
            } else {
                s.clone()
            }
        })
        .collect()
}

/// Walks `roots` and parses every firewall export found. Each export is shown (in origins
/// and warnings) by its path relative to the parent of its `--sources` root:
/// `fw/edge.iptables` under the root `exports/fw`; see [`root_labels`].
pub fn read_exports(roots: &[PathBuf], threads: usize) -> Exports {
    let mut warnings = Vec::new();
    let mut files = tree::walk(roots, &mut warnings);
    let labels = root_labels(roots);
    for f in &mut files {
        // The walk names a file relative to its root; the draft shows it relative to the
        // root's parent (`fw/edge.iptables`), a file given as a root by its name.
        if let Some((_, label)) = roots
            .iter()
            .zip(&labels)
            .find(|(r, _)| f.path.starts_with(r) && f.path != **r)
        {
            f.rel = format!("{label}/{}", f.rel);
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Read, String>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    let threads = threads.clamp(1, 64).min(files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                // The worker's read buffer, reused from file to file.
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    let r = read_one(f, &mut buf);
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(r);
                    }
                }
            });
        }
    });
    let mut sets = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut auxiliary = false;
    let results = results.into_inner().unwrap_or_default();
    for (f, r) in files.iter().zip(results) {
        match r {
            Some(Ok(Read::Export(set, text))) => {
                sets.push(set);
                texts.push((f.rel.clone(), text));
            }
            Some(Ok(Read::Auxiliary(text))) => {
                auxiliary = true;
                texts.push((f.rel.clone(), text));
            }
            Some(Ok(Read::Other)) | None => {}
            Some(Err(w)) => warnings.push(w),
        }
    }
    if auxiliary {
        sets = fw::parse_all(&texts);
    }
    Exports {
        sets,
        files: files.len(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy");
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("fixtures") {
            let p = e.expect("entry").path();
            if p.is_file() {
                out.push(std::fs::read(p).expect("read"));
            }
        }
        out
    }

    /// What the slow path decides for these bytes: an export, `ipset save`, or neither.
    fn slow(bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(bytes);
        fw::parse("f", &text).is_some() || fw::is_auxiliary(&text)
    }

    fn fast(bytes: &[u8]) -> bool {
        fw::may_be_export(bytes) || may_be_auxiliary(bytes)
    }

    #[test]
    fn the_byte_prefilter_never_rejects_what_the_parsers_recognise() {
        let mut cases = Vec::new();
        for f in fixtures() {
            let mut lines: Vec<&[u8]> = f.split(|&b| b == b'\n').collect();
            cases.push(f.clone());
            for prefix in [
                "\u{feff}".as_bytes(),
                "\u{feff}\u{feff}".as_bytes(),
                "\u{a0}\u{2003}\n".as_bytes(),
                b"\x0b\x0c \t\r\n",
                b"\xff\xfe",
                b"# a comment\n\n",
            ] {
                cases.push([prefix, &f].concat());
            }
            // Every line dropped in turn from the top, CRLF line ends, and an invalid byte
            // in each line.
            while lines.len() > 1 {
                lines.remove(0);
                cases.push(lines.join(&b'\n'));
                cases.push(lines.join(&b"\r\n"[..]));
                cases.push(lines.join(&b"\xc3\n"[..]));
            }
        }
        let mut recognised = 0;
        for c in &cases {
            if slow(c) {
                recognised += 1;
                assert!(fast(c), "rejected: {}", String::from_utf8_lossy(c));
            }
        }
        // The cases do exercise the parsers.
        assert!(recognised > 100, "{recognised}");
    }

    #[test]
    fn plain_config_files_are_rejected_on_their_bytes() {
        for text in [
            "# generated\ntimeout = 30 ; pool = 4\nbackend.host = 10.1.2.3:8080\n",
            "server web-01 192.0.2.17:8443 check\n",
            "retry = 1\n[section]\nname = app\n",
            "create-time = 12\n",
        ] {
            assert!(!fast(text.as_bytes()), "{text}");
            assert!(!slow(text.as_bytes()), "{text}");
        }
        // What it lets through, the parsers decide.
        assert!(fast(b"a,b,c\n1,2,3\n"));
        assert!(!slow(b"a,b,c\n1,2,3\n"));
    }
}
