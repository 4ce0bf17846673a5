//! Firewall export parsers producing the ordered rule model of [`super::rules`].
//!
//! One file per format, detected from the content:
//! - [`neutral`]: the neutral firewall CSV (`firewall-csv`);
//! - [`iptables`]: `iptables-save` with `ipset save` sets (`iptables`);
//! - [`nft`]: `nft -j list ruleset` (`nft`);
//! - [`aws`]: `aws ec2 describe-security-groups` (`aws-sg`), its groups' members from
//!   `aws ec2 describe-network-interfaces`;
//! - [`asa`]: Cisco ASA `show running-config` (`asa`);
//! - [`panos`]: Palo Alto PAN-OS XML configuration (`panos`).
//!
//! Shared pieces: [`common`] (addresses, ranges, services, ports), [`flatten`] (jumps
//! inlined for iptables and nftables), [`json`] (a JSON reader that keeps each element's line).
//!
//! Whatever a format has that the model cannot express keeps the rule conservative (an
//! allow is never widened without `narrowed_by` saying so, a deny is never dropped silently)
//! and adds a `file:line: …` warning to [`RuleSet::warnings`].

mod asa;
mod aws;
mod common;
mod flatten;
mod iptables;
mod json;
mod neutral;
mod nft;
mod panos;

use super::rules::RuleSet;
use iptables::IpsetDb;

/// What one file may tell the parsers of the others: `ipset save` sets, security-group
/// members.
#[derive(Default)]
struct Shared {
    ipsets: IpsetDb,
    members: aws::Members,
}

impl Shared {
    fn collect(&mut self, file: &str, text: &str) {
        self.ipsets.collect(file, text);
        self.members.collect(text);
    }
}

/// Parses `text` (shown to the user as `file`) when it is a firewall export this module
/// knows, detecting the format from the content; `None` for any other file (an `ipset save`
/// file or an `aws ec2 describe-network-interfaces` export alone included: they serve the
/// other files, see [`parse_all`]).
pub fn parse(file: &str, text: &str) -> Option<RuleSet> {
    let mut db = Shared::default();
    db.collect(file, text);
    parse_with(file, text, &db)
}

/// Files that are not exports but serve the exports of [`parse_all`]: `ipset save` output
/// and `aws ec2 describe-network-interfaces` exports.
pub fn is_auxiliary(text: &str) -> bool {
    iptables::is_ipset_save(text) || aws::is_interfaces(text)
}

/// Many files (e.g. a sources tree, as `(display path, text)`): like [`parse`] per file, in
/// order, but what the files say about each other is shared: `ipset save` output found in
/// any of the files resolves `-m set --match-set NAME src|dst` in the iptables files (a set
/// defined in the file itself wins, then the only one in the same directory, then the only
/// one anywhere), and `aws ec2 describe-network-interfaces` exports give the members of the
/// security groups of the `describe-security-groups` exports.
pub fn parse_all(files: &[(String, String)]) -> Vec<RuleSet> {
    let mut db = Shared::default();
    for (f, t) in files {
        db.collect(f, t);
    }
    files
        .iter()
        .filter_map(|(f, t)| parse_with(f, t, &db))
        .collect()
}

/// A cheap test on a file's bytes, before any decoding: `false` means [`parse`] returns
/// `None` for the file's text (`String::from_utf8_lossy` of the bytes), so the file need not
/// be decoded or split into lines. It is a necessary condition of each format's recogniser
/// in [`parse_with`], never a stricter one (`true` only means "parse it and see"):
///
/// - neutral CSV: the first line has a comma;
/// - iptables-save: the head has a `*` (a table line);
/// - JSON (nft, AWS) and XML (PAN-OS): the first byte that is not ASCII white space is `{`
///   or `<`, or is not ASCII (it may be Unicode white space);
/// - ASA: the text has `access-list ` or `ASA Version` somewhere.
///
/// Replacement characters of invalid UTF-8 are never ASCII and take at least as many bytes
/// as what they replace, so the byte tests see at least what the text tests see.
pub fn may_be_export(bytes: &[u8]) -> bool {
    let mut b = bytes;
    while let Some(rest) = b.strip_prefix("\u{feff}".as_bytes()) {
        b = rest;
    }
    let head = &b[..b.len().min(HEAD)];
    let first = &head[..memchr::memchr(b'\n', head).unwrap_or(head.len())];
    if memchr::memchr(b',', first).is_some() || memchr::memchr(b'*', head).is_some() {
        return true;
    }
    if let Some(&c) = head
        .iter()
        .find(|c| !c.is_ascii_whitespace() && **c != 0x0b)
    {
        if c == b'{' || c == b'<' || c >= 0x80 {
            return true;
        }
    }
    memchr::memmem::find(b, b"access-list ").is_some()
        || memchr::memmem::find(b, b"ASA Version").is_some()
}

/// The head of a text the recognisers look at.
const HEAD: usize = 16384;

fn parse_with(file: &str, text: &str, db: &Shared) -> Option<RuleSet> {
    let text = text.trim_start_matches('\u{feff}');
    let mut cut = text.len().min(HEAD);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &text[..cut];
    let first = head.lines().next().unwrap_or("");
    let start = head.trim_start();
    if crate::blast::firewall::is_neutral_header(first)
        && ["src", "dst", "action"].iter().all(|k| {
            first
                .to_ascii_lowercase()
                .split(',')
                .any(|h| h.trim() == *k)
        })
    {
        return Some(neutral::parse(file, text));
    }
    if iptables::looks_like(head) {
        return Some(iptables::parse(file, text, &db.ipsets));
    }
    if start.starts_with('{') {
        if head.contains("\"nftables\"") {
            return Some(nft::parse(file, text));
        }
        if head.contains("\"SecurityGroups\"") {
            return Some(aws::parse(file, text, &db.members));
        }
        return None;
    }
    if start.starts_with('<') {
        return panos::looks_like(head).then(|| panos::parse(file, text));
    }
    if asa::looks_like(text) {
        return Some(asa::parse(file, text));
    }
    None
}
