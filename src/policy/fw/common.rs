//! Helpers shared by the format parsers: address tokens, range arithmetic, services, ports.

use crate::policy::rules::{AddrRange, AddrSet, Origin, Proto, Service, Services};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `(is_v4, value)` of an address, for arithmetic.
pub fn ip_num(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (true, u32::from(a) as u128),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

pub fn num_ip(v4: bool, v: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v.min(u32::MAX as u128) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn family_max(v4: bool) -> u128 {
    if v4 {
        u32::MAX as u128
    } else {
        u128::MAX
    }
}

/// `a/len` (host bits are cleared, as the firewalls do).
pub fn cidr(s: &str) -> Option<AddrRange> {
    let (a, l) = s.split_once('/')?;
    let ip: IpAddr = a.trim().parse().ok()?;
    let len: u32 = l.trim().parse().ok()?;
    let (v4, n) = ip_num(ip);
    let bits = if v4 { 32 } else { 128 };
    if len > bits {
        return None;
    }
    let host = if len == bits {
        0
    } else {
        family_max(v4) >> len
    };
    Some(AddrRange {
        lo: num_ip(v4, n & !host),
        hi: num_ip(v4, (n & !host) | host),
    })
}

/// `A MASK` with a dotted (contiguous) IPv4 netmask.
pub fn mask_range(addr: &str, mask: &str) -> Result<AddrRange, String> {
    let ip: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
    let m: Ipv4Addr = mask
        .parse()
        .map_err(|_| format!("`{mask}` is not a netmask"))?;
    let m = u32::from(m);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(format!("`{mask}` is not a contiguous netmask"));
    }
    let n = u32::from(ip) & m;
    Ok(AddrRange {
        lo: IpAddr::V4(Ipv4Addr::from(n)),
        hi: IpAddr::V4(Ipv4Addr::from(n | !m)),
    })
}

/// `a-b` (same family, a <= b).
pub fn dash_range(a: &str, b: &str) -> Result<AddrRange, String> {
    let lo: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not an address"))?;
    let hi: IpAddr = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not an address"))?;
    if lo.is_ipv4() != hi.is_ipv4() || lo > hi {
        return Err(format!("`{a}-{b}` is not a range"));
    }
    Ok(AddrRange { lo, hi })
}

/// One address token as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Any,
    Range(AddrRange),
    /// A host name or object name to be resolved elsewhere (or left unresolved).
    Name(String),
}

/// Whether `s` can be a DNS host name (letters, digits, `-`, `.`, `_`, starting with a letter
/// or digit, and not all digits and dots).
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

/// IP, CIDR, `a/dotted-mask`, `a-b`, `any`/`*`/`0.0.0.0/0`/`::/0`, or a host name.
pub fn addr_token(s: &str) -> Result<Tok, String> {
    let s = s.trim();
    let l = s.to_ascii_lowercase();
    if matches!(l.as_str(), "any" | "*" | "all" | "0.0.0.0/0" | "::/0") {
        return Ok(Tok::Any);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Tok::Range(AddrRange::host(ip)));
    }
    if let Some((a, m)) = s.split_once('/') {
        if m.contains('.') {
            return mask_range(a, m).map(Tok::Range);
        }
        return cidr(s)
            .map(Tok::Range)
            .ok_or_else(|| format!("`{s}` is not a valid CIDR"));
    }
    if let Some((a, b)) = s.split_once('-') {
        if a.trim().parse::<IpAddr>().is_ok() {
            return dash_range(a, b).map(Tok::Range);
        }
    }
    if is_hostname(s) {
        return Ok(Tok::Name(s.to_string()));
    }
    Err(format!("`{s}` is not an address, range or host name"))
}

/// Accumulates an [`AddrSet`].
#[derive(Debug, Default, Clone)]
pub struct AddrAcc {
    pub any: bool,
    pub ranges: Vec<AddrRange>,
    pub unresolved: Vec<String>,
}

impl AddrAcc {
    pub fn push_tok(&mut self, t: Tok) {
        match t {
            Tok::Any => self.any = true,
            Tok::Range(r) => self.ranges.push(r),
            Tok::Name(n) => self.unresolved.push(n),
        }
    }
    pub fn build(self) -> AddrSet {
        if self.any {
            AddrSet::Any
        } else {
            AddrSet::Some {
                ranges: self.ranges,
                unresolved: self.unresolved,
            }
        }
    }
}

/// Sorted, merged (per family) copy of `rs`.
pub fn normalize(rs: &[AddrRange]) -> Vec<AddrRange> {
    let mut v: Vec<(bool, u128, u128)> = rs
        .iter()
        .map(|r| {
            let (f, lo) = ip_num(r.lo);
            let (_, hi) = ip_num(r.hi);
            (!f, lo, hi) // v4 first
        })
        .collect();
    v.sort();
    let mut out: Vec<(bool, u128, u128)> = Vec::with_capacity(v.len());
    for (f, lo, hi) in v {
        if let Some(last) = out.last_mut() {
            if last.0 == f && lo <= last.2.saturating_add(1) {
                last.2 = last.2.max(hi);
                continue;
            }
        }
        out.push((f, lo, hi));
    }
    out.into_iter()
        .map(|(f, lo, hi)| AddrRange {
            lo: num_ip(!f, lo),
            hi: num_ip(!f, hi),
        })
        .collect()
}

/// `a` without the addresses of `b` (result normalized).
pub fn subtract(a: &[AddrRange], b: &[AddrRange]) -> Vec<AddrRange> {
    let b = normalize(b);
    let mut out = Vec::new();
    for r in normalize(a) {
        let (f, mut lo) = ip_num(r.lo);
        let (_, hi) = ip_num(r.hi);
        let mut done = false;
        for x in &b {
            let (xf, xlo) = ip_num(x.lo);
            let (_, xhi) = ip_num(x.hi);
            if xf != f || xhi < lo || xlo > hi {
                continue;
            }
            if xlo > lo {
                out.push(AddrRange {
                    lo: num_ip(f, lo),
                    hi: num_ip(f, xlo - 1),
                });
            }
            if xhi >= hi {
                done = true;
                break;
            }
            lo = xhi + 1;
        }
        if !done {
            out.push(AddrRange {
                lo: num_ip(f, lo),
                hi: num_ip(f, hi),
            });
        }
    }
    out
}

/// Every address of the families present in `rs`, except `rs`.
pub fn complement(rs: &[AddrRange]) -> Vec<AddrRange> {
    let mut full = Vec::new();
    for v4 in [true, false] {
        if rs.iter().any(|r| r.lo.is_ipv4() == v4) {
            full.push(AddrRange {
                lo: num_ip(v4, 0),
                hi: num_ip(v4, family_max(v4)),
            });
        }
    }
    subtract(&full, rs)
}

/// The negation of an address set (`! -s`, `!=`, PAN-OS `negate-source`). Exact for resolved
/// ranges (within the families they use); an unresolved name keeps the result unresolved
/// (`not NAME`), which matches nothing: conservative for an allow, and warned about.
pub fn negate(set: AddrSet) -> AddrSet {
    match set {
        AddrSet::Any => AddrSet::Some {
            ranges: vec![],
            unresolved: vec![],
        },
        AddrSet::Some { ranges, unresolved } if unresolved.is_empty() => {
            if ranges.is_empty() {
                AddrSet::Any
            } else {
                AddrSet::Some {
                    ranges: complement(&ranges),
                    unresolved: vec![],
                }
            }
        }
        AddrSet::Some { unresolved, .. } => AddrSet::Some {
            ranges: vec![],
            unresolved: unresolved.into_iter().map(|u| format!("not {u}")).collect(),
        },
    }
}

/// Both sets (a packet matching two conditions). Unresolved names of both are kept.
pub fn intersect(a: &AddrSet, b: &AddrSet) -> AddrSet {
    match (a, b) {
        (AddrSet::Any, x) | (x, AddrSet::Any) => x.clone(),
        (
            AddrSet::Some {
                ranges: ra,
                unresolved: ua,
            },
            AddrSet::Some {
                ranges: rb,
                unresolved: ub,
            },
        ) => {
            let (na, nb) = (normalize(ra), normalize(rb));
            let mut out = Vec::new();
            let (mut i, mut j) = (0, 0);
            while i < na.len() && j < nb.len() {
                let (fa, alo) = ip_num(na[i].lo);
                let (_, ahi) = ip_num(na[i].hi);
                let (fb, blo) = ip_num(nb[j].lo);
                let (_, bhi) = ip_num(nb[j].hi);
                if fa != fb {
                    // v4 sorts first
                    if fa {
                        i += 1
                    } else {
                        j += 1
                    }
                    continue;
                }
                let (lo, hi) = (alo.max(blo), ahi.min(bhi));
                if lo <= hi {
                    out.push(AddrRange {
                        lo: num_ip(fa, lo),
                        hi: num_ip(fa, hi),
                    });
                }
                if ahi < bhi {
                    i += 1
                } else {
                    j += 1
                }
            }
            let mut un = ua.clone();
            un.extend(ub.iter().cloned());
            AddrSet::Some {
                ranges: out,
                unresolved: un,
            }
        }
    }
}

/// Whether a set matches nothing and names nothing.
pub fn is_nothing(a: &AddrSet) -> bool {
    matches!(a, AddrSet::Some { ranges, unresolved } if ranges.is_empty() && unresolved.is_empty())
}

/// Services both lists match.
pub fn intersect_services(a: &Services, b: &Services) -> Services {
    match (a, b) {
        (Services::Any, x) | (x, Services::Any) => x.clone(),
        (Services::List(la), Services::List(lb)) => {
            let mut out = Vec::new();
            for x in la {
                for y in lb {
                    if x.proto != y.proto {
                        continue;
                    }
                    let ports = match (x.ports, y.ports) {
                        (None, p) | (p, None) => Some(p),
                        (Some((a1, a2)), Some((b1, b2))) => {
                            let (lo, hi) = (a1.max(b1), a2.min(b2));
                            (lo <= hi).then_some(Some((lo, hi)))
                        }
                    };
                    if let Some(ports) = ports {
                        let s = Service {
                            proto: x.proto,
                            ports,
                        };
                        if !out.contains(&s) {
                            out.push(s);
                        }
                    }
                }
            }
            Services::List(out)
        }
    }
}

/// A protocol by name or number (`tcp`, `6`, `esp`, `icmpv6`).
pub fn proto_named(s: &str) -> Option<Proto> {
    let l = s.trim().to_ascii_lowercase();
    let n: u8 = match l.as_str() {
        "tcp" => return Some(Proto::Tcp),
        "udp" => return Some(Proto::Udp),
        "sctp" => return Some(Proto::Sctp),
        "icmp" => return Some(Proto::Icmp),
        "icmpv6" | "icmp6" | "ipv6-icmp" => 58,
        "igmp" => 2,
        "ipip" | "ipinip" => 4,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "eigrp" => 88,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "l2tp" => 115,
        _ => l.parse().ok()?,
    };
    Some(match n {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        132 => Proto::Sctp,
        1 => Proto::Icmp,
        n => Proto::Other(n),
    })
}

/// Whether a protocol has ports.
pub fn has_ports(p: Proto) -> bool {
    matches!(p, Proto::Tcp | Proto::Udp | Proto::Sctp)
}

/// `80`, `80-90`, `80:90` (a missing bound is 0 or 65535: `:1024`, `1024:`).
pub fn port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    let (a, b) = match s.split_once(['-', ':']) {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s, s),
    };
    let lo = if a.is_empty() { 0 } else { port_value(a)? };
    let hi = if b.is_empty() { 65535 } else { port_value(b)? };
    (lo <= hi).then_some((lo, hi))
}

/// A port number or one of the common service names (the Cisco ASA literals and
/// `/etc/services` names).
pub fn port_value(s: &str) -> Option<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return Some(n);
    }
    let l = s.to_ascii_lowercase();
    PORT_NAMES
        .binary_search_by(|(n, _)| n.cmp(&l.as_str()))
        .ok()
        .map(|i| PORT_NAMES[i].1)
}

/// Sorted by name (binary search).
const PORT_NAMES: &[(&str, u16)] = &[
    ("aol", 5190),
    ("bgp", 179),
    ("biff", 512),
    ("bootpc", 68),
    ("bootps", 67),
    ("chargen", 19),
    ("cifs", 3020),
    ("citrix-ica", 1494),
    ("cmd", 514),
    ("ctiqbe", 2748),
    ("daytime", 13),
    ("discard", 9),
    ("dnsix", 195),
    ("domain", 53),
    ("echo", 7),
    ("exec", 512),
    ("finger", 79),
    ("ftp", 21),
    ("ftp-data", 20),
    ("gopher", 70),
    ("h323", 1720),
    ("hostname", 101),
    ("http", 80),
    ("https", 443),
    ("ident", 113),
    ("imap4", 143),
    ("irc", 194),
    ("isakmp", 500),
    ("kerberos", 88),
    ("klogin", 543),
    ("kshell", 544),
    ("ldap", 389),
    ("ldaps", 636),
    ("login", 513),
    ("lotusnotes", 1352),
    ("lpd", 515),
    ("mobile-ip", 434),
    ("mysql", 3306),
    ("nameserver", 42),
    ("netbios-dgm", 138),
    ("netbios-ns", 137),
    ("netbios-ssn", 139),
    ("nfs", 2049),
    ("nntp", 119),
    ("ntp", 123),
    ("pcanywhere-data", 5631),
    ("pcanywhere-status", 5632),
    ("pim-auto-rp", 496),
    ("pop2", 109),
    ("pop3", 110),
    ("postgres", 5432),
    ("pptp", 1723),
    ("radius", 1645),
    ("radius-acct", 1646),
    ("rdp", 3389),
    ("rip", 520),
    ("rsh", 514),
    ("rtsp", 554),
    ("secureid-udp", 5510),
    ("sip", 5060),
    ("smtp", 25),
    ("snmp", 161),
    ("snmptrap", 162),
    ("sqlnet", 1521),
    ("ssh", 22),
    ("sunrpc", 111),
    ("syslog", 514),
    ("tacacs", 49),
    ("talk", 517),
    ("telnet", 23),
    ("tftp", 69),
    ("time", 37),
    ("uucp", 540),
    ("who", 513),
    ("whois", 43),
    ("www", 80),
    ("xdmcp", 177),
];

/// The complement of port ranges within 0-65535.
pub fn complement_ports(ps: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut v = ps.to_vec();
    v.sort();
    let mut out = Vec::new();
    let mut next: u32 = 0;
    for (lo, hi) in v {
        if (lo as u32) > next {
            out.push((next as u16, lo - 1));
        }
        next = next.max(hi as u32 + 1);
    }
    if next <= 65535 {
        out.push((next as u16, 65535));
    }
    out
}

/// Protocols × port ranges (`ports` empty = every port); protocols without ports get `None`.
pub fn services(protos: &[Proto], ports: &[(u16, u16)]) -> Vec<Service> {
    let mut out = Vec::new();
    for &p in protos {
        if ports.is_empty() || !has_ports(p) {
            out.push(Service {
                proto: p,
                ports: None,
            });
        } else {
            for &r in ports {
                let r = if r == (0, 65535) { None } else { Some(r) };
                out.push(Service { proto: p, ports: r });
            }
        }
    }
    out
}

/// A rule comment as the rule's name, without the `owner: NAME` (or `team: NAME`) the
/// owner was read from ([`crate::blast::model::owner_in_text`]), which the origin shows
/// on its own: `app-to-db owner: dba` is named `app-to-db`. `None` when nothing else is left.
pub fn name_without_owner(comment: &str) -> Option<String> {
    let lower = comment.to_ascii_lowercase();
    let mut cut: Option<(usize, usize)> = None;
    'keys: for key in ["owner", "team"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            let at = from + i;
            from = at + key.len();
            if at > 0 && lower.as_bytes()[at - 1].is_ascii_alphanumeric() {
                continue;
            }
            let after = &comment[at + key.len()..];
            let rest = after.trim_start();
            let Some(rest) = rest.strip_prefix([':', '=']) else {
                continue;
            };
            let value = rest.trim_start();
            let len = value
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
                .map_or(value.len(), |(i, _)| i);
            if len == 0 {
                continue;
            }
            let end = comment.len() - value.len() + len;
            cut = Some((at, end));
            break 'keys;
        }
    }
    let Some((a, b)) = cut else {
        return Some(comment.to_string()).filter(|c| !c.trim().is_empty());
    };
    let sep = |c: char| c.is_whitespace() || matches!(c, ',' | ';' | '-' | '(' | ')' | '[' | ']');
    let head = comment[..a].trim_end_matches(sep);
    let tail = comment[b..].trim_start_matches(sep);
    let name = match (head.is_empty(), tail.is_empty()) {
        (true, true) => return None,
        (false, true) => head.to_string(),
        (true, false) => tail.to_string(),
        (false, false) => format!("{head} {tail}"),
    };
    Some(name)
}

pub fn origin(file: &str, line: usize, name: Option<String>, owner: Option<String>) -> Origin {
    Origin {
        file: file.to_string(),
        line,
        name,
        owner,
    }
}

/// 1-based line of byte offsets, by binary search over line starts.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex { starts }
    }
    pub fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// Shell-like words: double and single quotes group (the iptables-save quoting).
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q: Option<char> = None;
    let mut any = false;
    let mut esc = false;
    for c in line.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match (q, c) {
            (Some('"'), '\\') => esc = true,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> AddrRange {
        AddrRange {
            lo: a.parse().unwrap(),
            hi: b.parse().unwrap(),
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(
            addr_token("192.0.2.0/28"),
            Ok(Tok::Range(r("192.0.2.0", "192.0.2.15")))
        );
        assert_eq!(
            addr_token("192.0.2.9/28"),
            Ok(Tok::Range(r("192.0.2.0", "192.0.2.15")))
        );
        assert_eq!(
            addr_token("192.0.2.0/255.255.255.0"),
            Ok(Tok::Range(r("192.0.2.0", "192.0.2.255")))
        );
        assert_eq!(
            addr_token("192.0.2.10-192.0.2.20"),
            Ok(Tok::Range(r("192.0.2.10", "192.0.2.20")))
        );
        assert_eq!(addr_token("any"), Ok(Tok::Any));
        assert_eq!(addr_token("0.0.0.0/0"), Ok(Tok::Any));
        assert_eq!(
            addr_token("db.example.internal"),
            Ok(Tok::Name("db.example.internal".into()))
        );
        assert!(addr_token("192.0.2.0/33").is_err());
        assert!(addr_token("192.0.2.20-192.0.2.10").is_err());
        assert!(addr_token("1.2.3.4/255.0.255.0").is_err());
        assert!(addr_token("a b").is_err());
        assert_eq!(
            addr_token("2001:db8::/126"),
            Ok(Tok::Range(r("2001:db8::", "2001:db8::3")))
        );
    }

    #[test]
    fn range_arithmetic() {
        let a = [r("192.0.2.0", "192.0.2.255")];
        let b = [r("192.0.2.16", "192.0.2.31"), r("192.0.2.0", "192.0.2.0")];
        assert_eq!(
            subtract(&a, &b),
            vec![r("192.0.2.1", "192.0.2.15"), r("192.0.2.32", "192.0.2.255")]
        );
        assert_eq!(
            complement(&[r("0.0.0.0", "9.255.255.255")]),
            vec![r("10.0.0.0", "255.255.255.255")]
        );
        let x = AddrSet::Some {
            ranges: vec![r("192.0.2.10", "192.0.2.20")],
            unresolved: vec![],
        };
        let y = AddrSet::Some {
            ranges: vec![r("192.0.2.0", "192.0.2.15"), r("2001:db8::", "2001:db8::1")],
            unresolved: vec!["h".into()],
        };
        assert_eq!(
            intersect(&x, &y),
            AddrSet::Some {
                ranges: vec![r("192.0.2.10", "192.0.2.15")],
                unresolved: vec!["h".into()]
            }
        );
        assert_eq!(
            normalize(&[r("192.0.2.5", "192.0.2.9"), r("192.0.2.0", "192.0.2.4")]),
            vec![r("192.0.2.0", "192.0.2.9")]
        );
    }

    #[test]
    fn ports() {
        assert_eq!(port_range("8000-8090"), Some((8000, 8090)));
        assert_eq!(port_range("1024:"), Some((1024, 65535)));
        assert_eq!(port_range("https"), Some((443, 443)));
        assert_eq!(port_range("90-80"), None);
        assert_eq!(complement_ports(&[(22, 22)]), vec![(0, 21), (23, 65535)]);
        assert!(PORT_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn lines() {
        let li = LineIndex::new("a\nbb\n\nc");
        assert_eq!(
            [li.line(0), li.line(2), li.line(4), li.line(5), li.line(6)],
            [1, 2, 2, 3, 4]
        );
    }
}

#[cfg(test)]
mod name_tests {
    use super::name_without_owner as n;

    #[test]
    fn the_owner_is_not_repeated_in_the_name() {
        assert_eq!(n("app-to-db owner: dba").as_deref(), Some("app-to-db"));
        assert_eq!(
            n("ssh from admins owner: netsec").as_deref(),
            Some("ssh from admins")
        );
        assert_eq!(
            n("owner=dba; nightly batch").as_deref(),
            Some("nightly batch")
        );
        assert_eq!(n("web (team: web-ops) edge").as_deref(), Some("web edge"));
        assert_eq!(n("owner: dba"), None);
        // No owner written: the comment as it is; `owners` is not `owner:`.
        assert_eq!(n("partners to app").as_deref(), Some("partners to app"));
        assert_eq!(n("co-owners: none").as_deref(), Some("co-owners: none"));
        assert_eq!(n("  "), None);
    }
}
