//! The owners file and owner resolution.
//!
//! # Owners file (`OWNERS` at the root of a `--sources` directory, or `--owners FILE`)
//!
//! CODEOWNERS-like: one rule a line, `PATTERN OWNER [OWNER…]`; `#` starts a comment. The
//! pattern is one of:
//!
//! - a CIDR or an address (`198.51.100.0/24`, `192.0.2.15`): references to VMs whose address is
//!   inside it;
//! - `vm:GLOB` (`vm:pay-db-*`): references to VMs whose name matches;
//! - otherwise a path glob, matched against the file's path relative to its sources directory,
//!   as in CODEOWNERS: `*` matches within one path segment, `**` across segments, `?` one
//!   character; a pattern without `/` matches a file or directory name at any depth
//!   (`*.zone`, `firewall`); a leading `/` anchors at the sources root (`/dns/`); a trailing `/`
//!   matches everything below a directory.
//!
//! The **last** matching line wins (as in CODEOWNERS). Several owners are kept together
//! (`netsec noc` → owner `netsec, noc`).
//!
//! ```text
//! # who must change what when a VM changes its address
//! /dns/                 dns-team
//! *.nft.json            netsec
//! firewall/             netsec
//! vm:pay-*              payments
//! 198.51.100.0/24       dmz-team
//! ```
//!
//! # Precedence
//!
//! A reference's owner is, first found: the owner its source states (rule tag or owner
//! column → `rule-tag`; `owner: NAME` comment → `comment`; Prometheus `team`/`owner` label →
//! `prometheus-label`); then the owners file (`owners-file`); then the VM's own owner (plan
//! `owner` → `plan`, RVTools custom attribute `owner` → `rvtools-attribute`).

use super::model::{Owner, OwnerSource};
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    Net(IpNet),
    Vm(String),
    Path(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub pattern: Pattern,
    pub owner: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct OwnersFile {
    pub rules: Vec<Rule>,
}

impl OwnersFile {
    pub fn parse(text: &str, file: &str, warnings: &mut Vec<String>) -> OwnersFile {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let mut w = l.split_whitespace();
            let (Some(p), owners) = (w.next(), w.collect::<Vec<_>>()) else {
                continue;
            };
            if owners.is_empty() {
                warnings.push(format!(
                    "{file}:{}: `{p}` has no owner; line skipped",
                    i + 1
                ));
                continue;
            }
            let pattern = if let Some(g) = p.strip_prefix("vm:") {
                Pattern::Vm(g.to_ascii_lowercase())
            } else if let Ok(n) = p.parse::<IpNet>() {
                Pattern::Net(n)
            } else if let Ok(a) = p.parse::<IpAddr>() {
                Pattern::Net(IpNet::from(a))
            } else {
                Pattern::Path(p.to_string())
            };
            rules.push(Rule {
                pattern,
                owner: owners.join(", "),
                line: i + 1,
            });
        }
        OwnersFile { rules }
    }

    /// The owner for a reference in `rel_path` (relative to its sources root) to `vm`.
    pub fn owner_for(&self, rel_path: &str, vm: &str, ips: &[IpAddr]) -> Option<Owner> {
        self.rules
            .iter()
            .rev()
            .find(|r| match &r.pattern {
                Pattern::Net(n) => ips.iter().any(|ip| n.contains(ip)),
                Pattern::Vm(g) => glob(g.as_bytes(), vm.to_ascii_lowercase().as_bytes()),
                Pattern::Path(p) => path_match(p, rel_path),
            })
            .map(|r| Owner::new(r.owner.clone(), OwnerSource::OwnersFile))
    }
}

/// CODEOWNERS-style path matching.
pub fn path_match(pattern: &str, rel: &str) -> bool {
    let rel = rel.trim_start_matches("./").trim_start_matches('/');
    let dir_only = pattern.ends_with('/');
    let p = pattern.trim_end_matches('/');
    let anchored = p.starts_with('/') || p.trim_start_matches('/').contains('/');
    let p = p.trim_start_matches('/');
    if p.is_empty() {
        return true;
    }
    let segs: Vec<&str> = rel.split('/').collect();
    // Candidate prefixes: a match on a directory covers everything below it.
    let upto = if dir_only {
        segs.len().saturating_sub(1)
    } else {
        segs.len()
    };
    if anchored {
        (1..=upto).any(|k| glob(p.as_bytes(), segs[..k].join("/").as_bytes()))
    } else {
        (0..upto).any(|k| glob(p.as_bytes(), segs[k].as_bytes()))
    }
}

/// `*` (not across `/`), `**` (across), `?`.
pub fn glob(p: &[u8], t: &[u8]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = p[2..].strip_prefix(b"/").unwrap_or(&p[2..]);
            (0..=t.len()).any(|i| glob(rest, &t[i..]))
        }
        Some(b'*') => (0..=t.len())
            .take_while(|&i| i == 0 || t[i - 1] != b'/')
            .any(|i| glob(&p[1..], &t[i..])),
        Some(b'?') => !t.is_empty() && t[0] != b'/' && glob(&p[1..], &t[1..]),
        Some(c) => t.first() == Some(c) && glob(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_globs_cidrs_last_wins() {
        let mut w = Vec::new();
        let f = OwnersFile::parse(
            "# c\n/dns/ dns-team\n*.nft.json netsec noc\nvm:pay-* payments\n198.51.100.0/24 dmz\nlonely\n",
            "OWNERS",
            &mut w,
        );
        assert_eq!(w.len(), 1, "a pattern without owner is reported");
        let o = |p: &str, vm: &str, ip: &str| {
            f.owner_for(p, vm, &[ip.parse().expect("ip")])
                .map(|o| o.name)
        };
        assert_eq!(
            o("dns/db.example", "x", "192.0.2.1").as_deref(),
            Some("dns-team")
        );
        assert_eq!(
            o("other/dns/db.example", "x", "192.0.2.1"),
            None,
            "anchored"
        );
        assert_eq!(
            o("fw/a/rules.nft.json", "x", "192.0.2.1").as_deref(),
            Some("netsec, noc")
        );
        assert_eq!(
            o("dns/db.example", "pay-db-01", "192.0.2.1").as_deref(),
            Some("payments"),
            "last match wins"
        );
        assert_eq!(o("x", "x", "198.51.100.7").as_deref(), Some("dmz"));
        assert!(glob(b"a/**/z", b"a/b/c/z"));
        assert!(!glob(b"a/*/z", b"a/b/c/z"));
    }
}
