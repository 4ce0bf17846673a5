//! The matcher: every VM's addresses and names, found with the engines ripgrep uses
//! (`aho-corasick`, with its SIMD `packed`/Teddy searcher, and `memchr`), with boundary checks
//! after each match, plus a scan for CIDRs and ranges that contain a VM's address.
//!
//! Search paths (each finds exactly what the plain automata find; the tests compare them):
//! - IPv4: a memmem search for the addresses' common prefix (`10.20.`), then a bit set and the
//!   sorted address list; without a common prefix, an automaton.
//! - names: a Teddy search for a few short literals the names hold (`ay-` of `pay-db-0042`),
//!   a word-start check and a bit set of the names' first bytes at each, then the longest name
//!   there by a look-up of its first bytes (see [`NameFast`]); names with other bytes than letters,
//!   digits, `-`, `_` and `.`, or too many distinct literals: one case-insensitive automaton.
//! - ranges: a Teddy search for a digit followed by `/` or `-`.
//!
//! Boundary rules (a match is kept only when they hold):
//! - IPv4 `10.1.1.5`: the byte before is not a letter, digit, `.` or `_`, nor a `-` that follows
//!   a digit (a range `a-b` is a range reference); the byte after is not a letter, digit or `_`,
//!   not `.` or `-` followed by a digit. So `10.1.1.5` never matches inside `10.1.1.50`,
//!   `110.1.1.5`, `10.1.1.5.6` or `10.1.1.1-10.1.1.5`. `10.1.1.5/32` and `10.1.1.5/24` (an
//!   interface address) name the host; `10.1.1.0/24` is a range.
//! - IPv6: the bytes around are not hex digits, `:` or `.`.
//! - Names (case-insensitive): the byte before is not a letter, digit, `-`, `_` or `.`; the byte
//!   after is not a letter, digit, `-` or `_`. `app01` matches `app01`, `app01:8080` and
//!   `app01.corp.example`, never `app01-old`, `xapp01` or `db.app01`.
//! - Ranges: IPv4 CIDRs with host bits clear (`198.51.100.0/24`, or a dotted mask), and
//!   `a-b` ranges, no wider than `/min_prefix` (default /8: `0.0.0.0/0` and other "any"
//!   spellings are not references).

use super::model::Coverage;
use super::targets::Target;
use aho_corasick::{packed, AhoCorasick, Input, MatchKind, Span};
use ipnet::IpNet;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone)]
struct Pat {
    targets: Vec<usize>,
    kind: PatKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatKind {
    V4 = 0,
    V6 = 1,
    Name = 2,
}

/// A hit of the literal/range scan, by byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanHit {
    pub target: usize,
    pub start: usize,
    pub end: usize,
    pub matched: String,
    pub coverage: Coverage,
}

/// One hit per target of a match at `start..` (`matched`: the text, lossily UTF-8).
#[inline]
fn push_hits(
    out: &mut Vec<ScanHit>,
    matched: &[u8],
    start: usize,
    targets: impl Iterator<Item = usize>,
) {
    let text = String::from_utf8_lossy(matched).into_owned();
    for t in targets {
        out.push(ScanHit {
            target: t,
            start,
            end: start + matched.len(),
            matched: text.clone(),
            coverage: Coverage::NamesHost,
        });
    }
}

/// Patterns of one kind being collected: strings, what each stands for, string → index.
type PatSet = (Vec<String>, Vec<Pat>, HashMap<String, usize>);

/// One Aho-Corasick automaton and what its patterns stand for.
struct Automaton {
    ac: AhoCorasick,
    pats: Vec<Pat>,
}

/// The names' fast path, when every name is made of letters, digits, `-`, `_` and `.` (host
/// names are): a SIMD search (`aho_corasick::packed`, Teddy) for a few dozen short literals
/// the names hold (see [`name_literals`]) in a lowercased copy of the text (or for each case
/// variant of them in the text itself, when that makes at most [`CASE_VARIANTS_MAX`]); where
/// one occurs,
/// the name would start a few bytes before: when that is a word start (the byte before is not
/// a letter, digit, `-`, `_` or `.`), the longest name there, looked up by its head. It
/// finds exactly what [`scan_automaton`] finds (see the proof on [`NameFast::scan`]).
struct NameFast {
    /// The literals (lowercase, searched in a lowercased copy of the text), or every case
    /// variant of them (searched in the text itself) when there are few.
    literals: packed::Searcher,
    case_variants: bool,
    /// Per literal, its offsets from the start of the names holding it.
    offsets: Vec<Vec<usize>>,
    /// The lowercase names.
    names: Vec<Vec<u8>>,
    /// Lowercase head (first `head_len` bytes, see [`head_key`]) → the names starting with
    /// it, longest first: the longest name at a word start is the first of its head's that
    /// the text there equals, ASCII case-insensitively. (This is what an anchored
    /// leftmost-longest automaton answers; building one for thousands of names was most of
    /// the matcher's build, in failure transitions an anchored search never takes.)
    by_head: std::collections::HashMap<u64, Vec<usize>, foldhash::fast::FixedState>,
    pats: Vec<Pat>,
    /// A filter before the automaton: the names' first `head_len` bytes (at most 8, no more
    /// than the shortest name has), hashed into a bit set. A candidate whose first bytes are
    /// not in it starts no name (most candidates: a literal inside an ordinary word).
    head_len: usize,
    heads: Vec<u64>,
}

/// Bits of the [`Matcher::v4_bits`] set (2^18 bits, 32 KiB).
const V4_BITS: u32 = 18;

fn v4_bit(a: u32) -> usize {
    (u64::from(a).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - V4_BITS)) as usize
}

/// At most this many case variants of the names' literals are searched for in the text
/// itself (Teddy's slim searcher); more, and the text is lowercased first.
const CASE_VARIANTS_MAX: usize = 16;

/// Every ASCII case variant of `l`.
fn case_variants(l: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for &b in l {
        let up = b.to_ascii_uppercase();
        if up == b {
            out.iter_mut().for_each(|v| v.push(b));
        } else {
            out = out
                .into_iter()
                .flat_map(|v| {
                    let mut w = v.clone();
                    w.push(up);
                    let mut v = v;
                    v.push(b);
                    [v, w]
                })
                .collect();
        }
    }
    out
}

/// Bits of the [`NameFast::heads`] set (2^17 bits, 16 KiB): few false positives for tens of
/// thousands of names.
const HEAD_BITS: u32 = 17;

/// The bit of `head` (1 to 8 bytes) in [`NameFast::heads`].
/// Case-insensitive: the bytes are lowercased.
/// The first bytes of a name (at most 8), lowercased, as one word.
fn head_key(head: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..head.len()].copy_from_slice(head);
    b.make_ascii_lowercase();
    u64::from_le_bytes(b)
}

fn head_bit(head: &[u8]) -> usize {
    (head_key(head).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - HEAD_BITS)) as usize
}

thread_local! {
    /// The lowercased copy of the text the name search runs on and the candidate starts,
    /// reused per thread.
    static LOWER: RefCell<(Vec<u8>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

pub struct Matcher {
    pub targets: Vec<Target>,
    /// IPv4 addresses; names (case-insensitive); IPv6 addresses. Separate automata are
    /// several times faster than one: each is smaller and gets its own prefilter.
    v4_ac: Option<Automaton>,
    /// The names: the fast path when it applies, else one case-insensitive automaton.
    name_fast: Option<NameFast>,
    name_ac: Option<Automaton>,
    v6_ac: Option<Automaton>,
    /// Where a range can be (a digit, then `/` or `-`): a SIMD search for those 20 two-byte
    /// strings instead of stopping at every `/` and `-` of the text (paths, host names).
    range_seps: Option<packed::Searcher>,
    /// The longest common prefix of all IPv4 patterns (`10.20.` for an estate in
    /// 10.20.0.0/16), when it has at least 3 bytes: a memmem search for it, then a lookup of
    /// the address at each hit, replaces the IPv4 automaton (the prefilter ripgrep gets from
    /// its regex engine for the same patterns).
    v4_prefix: Option<memchr::memmem::Finder<'static>>,
    by_ip: HashMap<IpAddr, Vec<usize>>,
    by_name: HashMap<String, Vec<usize>>,
    /// IPv4 addresses of the targets, sorted, for range lookups.
    v4: Vec<(u32, usize)>,
    /// The same addresses hashed into a bit set ([`V4_BITS`] bits): most addresses found in
    /// a text are no VM's, and one bit tells so without searching `v4`.
    v4_bits: Vec<u64>,
    /// Ranges wider than this prefix are ignored.
    pub min_prefix: u8,
}

impl Matcher {
    pub fn new(targets: Vec<Target>) -> Matcher {
        Matcher::build(targets, true)
    }

    /// `fast`: use the SIMD prefilters where they apply (always, but in tests comparing them
    /// with the plain automata).
    fn build(targets: Vec<Target>, fast: bool) -> Matcher {
        let mut by_ip: HashMap<IpAddr, Vec<usize>> = HashMap::new();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut v4 = Vec::new();
        // pattern text → (kind, targets), in first-seen order per kind
        let mut sets: [PatSet; 3] = Default::default();
        let mut add = |s: String, kind: PatKind, t: usize| {
            let (strings, pats, index) = &mut sets[kind as usize];
            let i = *index.entry(s.clone()).or_insert_with(|| {
                strings.push(s);
                pats.push(Pat {
                    targets: Vec::new(),
                    kind,
                });
                pats.len() - 1
            });
            if !pats[i].targets.contains(&t) {
                pats[i].targets.push(t);
            }
        };
        for (t, target) in targets.iter().enumerate() {
            for ip in &target.ips {
                let e = by_ip.entry(*ip).or_default();
                if !e.contains(&t) {
                    e.push(t);
                }
                match ip {
                    IpAddr::V4(a) => {
                        v4.push((u32::from(*a), t));
                        add(a.to_string(), PatKind::V4, t);
                    }
                    IpAddr::V6(a) => add(a.to_string(), PatKind::V6, t),
                }
            }
            for n in &target.hostnames {
                let e = by_name.entry(n.clone()).or_default();
                if !e.contains(&t) {
                    e.push(t);
                }
                add(n.clone(), PatKind::Name, t);
            }
        }
        v4.sort_unstable();
        let mut v4_bits = vec![0u64; (1 << V4_BITS) / 64];
        for (a, _) in &v4 {
            let bit = v4_bit(*a);
            v4_bits[bit / 64] |= 1 << (bit % 64);
        }
        let [v4s, v6s, names] = sets;
        let v4_prefix = common_prefix(&v4s.0)
            .filter(|p| p.len() >= 3)
            .map(|p| memchr::memmem::Finder::new(p.as_bytes()).into_owned());
        // The crate picks the automaton (a contiguous NFA for thousands of patterns); a full
        // DFA measured no faster in the whole scan on this 2-core machine.
        let build = |(strings, pats, _): PatSet, ci: bool| {
            if strings.is_empty() {
                return None;
            }
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(ci)
                .build(&strings)
                .ok()
                .map(|ac| Automaton { ac, pats })
        };
        let name_fast = if fast { NameFast::new(&names) } else { None };
        let name_ac = if name_fast.is_none() {
            build(names, true)
        } else {
            None
        };
        let range_seps = if fast {
            let mut b = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder();
            for d in b'0'..=b'9' {
                b.add([d, b'/']).add([d, b'-']);
            }
            b.build()
        } else {
            None
        };
        Matcher {
            targets,
            // The common-prefix search replaces the IPv4 automaton when there is one.
            v4_ac: if v4_prefix.is_some() {
                None
            } else {
                build(v4s, false)
            },
            name_fast,
            name_ac,
            v6_ac: build(v6s, false),
            range_seps,
            v4_prefix,
            by_ip,
            by_name,
            v4,
            v4_bits,
            min_prefix: 8,
        }
    }

    /// VMs holding this address.
    pub fn targets_of_ip(&self, ip: &IpAddr) -> &[usize] {
        self.by_ip.get(ip).map_or(&[], Vec::as_slice)
    }

    /// VMs with this host name (an FQDN also matches by its first label).
    pub fn targets_of_name(&self, name: &str) -> Vec<usize> {
        let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some(v) = self.by_name.get(&n) {
            return v.clone();
        }
        match n.split_once('.') {
            Some((short, _)) => self.by_name.get(short).cloned().unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// IPv4 VMs inside `lo..=hi`, unless the range is wider than `/min_prefix`.
    pub fn covered_v4(&self, lo: u32, hi: u32) -> Vec<usize> {
        if lo > hi || u64::from(hi - lo) >= 1u64 << (32 - u32::from(self.min_prefix.min(32))) {
            return Vec::new();
        }
        // Most ranges in a text hold no VM at all.
        if self.v4.first().is_none_or(|(a, _)| hi < *a)
            || self.v4.last().is_none_or(|(a, _)| lo > *a)
        {
            return Vec::new();
        }
        let from = self.v4.partition_point(|(a, _)| *a < lo);
        let mut out: Vec<usize> = self.v4[from..]
            .iter()
            .take_while(|(a, _)| *a <= hi)
            .map(|(_, t)| *t)
            .collect();
        out.dedup();
        out
    }

    /// What a single address-like token names: an IP (`10.1.1.5`, `10.1.1.5:443`,
    /// `[2001:db8::5]:443`), a CIDR, an `a-b` range, a URL or a host name.
    pub fn token(&self, tok: &str) -> Vec<(usize, String, Coverage)> {
        let tok = tok
            .trim()
            .trim_matches(|c| c == '"' || c == '\'' || c == ',');
        let tok = tok.strip_prefix('!').unwrap_or(tok);
        if tok.is_empty() || tok.eq_ignore_ascii_case("any") {
            return Vec::new();
        }
        // URL → host[:port]
        let tok = match tok.split_once("://") {
            Some((_, rest)) => rest.split(['/', '?', '#']).next().unwrap_or(""),
            None => tok,
        };
        let tok = tok.rsplit_once('@').map_or(tok, |(_, h)| h);
        if let Ok(ip) = tok.parse::<IpAddr>() {
            return self.host(ip, tok);
        }
        if let Some((a, b)) = tok.split_once('/') {
            if let Ok(ip) = a.parse::<IpAddr>() {
                let len = match b.parse::<u8>() {
                    Ok(l) => Some(l),
                    Err(_) => b.parse::<Ipv4Addr>().ok().and_then(mask_len),
                };
                let Some(len) = len else { return Vec::new() };
                let Ok(net) = IpNet::new(ip, len) else {
                    return Vec::new();
                };
                if len == net.max_prefix_len() || net.network() != ip {
                    return self.host(ip, a);
                }
                return self.range(net.network(), net.broadcast(), &net.to_string());
            }
        }
        if let Some((a, b)) = tok.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
                return self.range(lo, hi, tok);
            }
        }
        // host:port, [v6]:port
        if let Some(rest) = tok.strip_prefix('[') {
            if let Some((h, _)) = rest.split_once(']') {
                if let Ok(ip) = h.parse::<IpAddr>() {
                    return self.host(ip, h);
                }
            }
        }
        if let Some((h, p)) = tok.rsplit_once(':') {
            if p.chars().all(|c| c.is_ascii_digit()) {
                if let Ok(ip) = h.parse::<IpAddr>() {
                    return self.host(ip, h);
                }
                return self.name(h);
            }
        }
        self.name(tok)
    }

    fn host(&self, ip: IpAddr, text: &str) -> Vec<(usize, String, Coverage)> {
        self.targets_of_ip(&ip)
            .iter()
            .map(|t| (*t, text.to_string(), Coverage::NamesHost))
            .collect()
    }

    fn name(&self, n: &str) -> Vec<(usize, String, Coverage)> {
        let valid = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Vec::new();
        }
        self.targets_of_name(n)
            .into_iter()
            .map(|t| (t, n.trim_end_matches('.').to_string(), Coverage::NamesHost))
            .collect()
    }

    fn range(&self, lo: IpAddr, hi: IpAddr, text: &str) -> Vec<(usize, String, Coverage)> {
        let ts = match (lo, hi) {
            (IpAddr::V4(a), IpAddr::V4(b)) => self.covered_v4(u32::from(a), u32::from(b)),
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let (a, b) = (u128::from(a), u128::from(b));
                if a > b || b - a >= 1u128 << 80 {
                    Vec::new()
                } else {
                    let mut v: Vec<usize> = self
                        .by_ip
                        .iter()
                        .filter(|(ip, _)| match ip {
                            IpAddr::V6(x) => (a..=b).contains(&u128::from(*x)),
                            IpAddr::V4(_) => false,
                        })
                        .flat_map(|(_, t)| t.iter().copied())
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                }
            }
            _ => Vec::new(),
        };
        ts.into_iter()
            .map(|t| {
                (
                    t,
                    text.to_string(),
                    Coverage::CoveredByRange(text.to_string()),
                )
            })
            .collect()
    }

    /// Every literal and range hit in `hay`, sorted by offset.
    pub fn scan(&self, hay: &[u8]) -> Vec<ScanHit> {
        let mut out = Vec::new();
        match (&self.v4_prefix, &self.v4_ac) {
            (Some(prefix), _) => self.scan_v4_prefixed(prefix, hay, &mut out),
            (None, Some(a)) => scan_automaton(a, hay, &mut out),
            (None, None) => {}
        }
        match (&self.name_fast, &self.name_ac) {
            (Some(f), _) => f.scan(hay, &mut out),
            (None, Some(a)) => scan_automaton(a, hay, &mut out),
            (None, None) => {}
        }
        if let Some(a) = &self.v6_ac {
            scan_automaton(a, hay, &mut out);
        }
        if !self.v4.is_empty() {
            self.scan_ranges(hay, &mut out);
        }
        out.sort_by_key(|h| h.start);
        out
    }

    /// IPv4 through the common-prefix prefilter: at each occurrence, the run of digits and
    /// dots is the candidate address; the same boundary rules as the automaton apply.
    fn scan_v4_prefixed(
        &self,
        prefix: &memchr::memmem::Finder<'_>,
        hay: &[u8],
        out: &mut Vec<ScanHit>,
    ) {
        for s in prefix.find_iter(hay) {
            let mut e = s;
            while e < hay.len() && e - s < 15 && (hay[e].is_ascii_digit() || hay[e] == b'.') {
                e += 1;
            }
            while e > s && hay[e - 1] == b'.' {
                e -= 1;
            }
            let Some(a) = v4_parse(&hay[s..e]) else {
                continue;
            };
            // The bit set first, then the sorted address list.
            let bit = v4_bit(a);
            if self.v4_bits[bit / 64] & (1 << (bit % 64)) == 0 {
                continue;
            }
            let from = self.v4.partition_point(|(x, _)| *x < a);
            if self.v4.get(from).is_none_or(|(x, _)| *x != a)
                || !boundary_ok(hay, s, e, PatKind::V4)
            {
                continue;
            }
            let ts = self.v4[from..].iter().take_while(|(x, _)| *x == a);
            push_hits(out, &hay[s..e], s, ts.map(|&(_, t)| t));
        }
    }

    fn scan_ranges(&self, hay: &[u8], out: &mut Vec<ScanHit>) {
        match &self.range_seps {
            Some(seps) => {
                let mut at = 0;
                while let Some(m) = seps.find_in(hay, Span::from(at..hay.len())) {
                    at = m.end();
                    self.range_at(hay, m.start() + 1, out);
                }
            }
            None => {
                for pos in memchr::memchr2_iter(b'/', b'-', hay) {
                    if pos > 0 && hay[pos - 1].is_ascii_digit() {
                        self.range_at(hay, pos, out);
                    }
                }
            }
        }
    }

    /// The range whose `/` or `-` is at `pos` (a digit before it), if it covers VMs.
    fn range_at(&self, hay: &[u8], pos: usize, out: &mut Vec<ScanHit>) {
        let Some((start, lo)) = v4_back(hay, pos) else {
            return;
        };
        let (end, lo, hi) = if hay[pos] == b'/' {
            let Some((end, len)) = prefix_after(hay, pos + 1) else {
                return;
            };
            if len >= 32 {
                return;
            }
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            if lo & !mask != 0 {
                return; // interface notation: names the host (the literal scan has it)
            }
            (end, lo, lo | !mask)
        } else {
            let Some((end, hi)) = v4_fwd(hay, pos + 1) else {
                return;
            };
            (end, lo, hi)
        };
        let ts = self.covered_v4(lo, hi);
        if ts.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&hay[start..end]).into_owned();
        for t in ts {
            out.push(ScanHit {
                target: t,
                start,
                end,
                matched: text.clone(),
                coverage: Coverage::CoveredByRange(text.clone()),
            });
        }
    }
}

/// A byte a host name is made of: a name never starts right after one.
fn is_name_byte(b: u8) -> bool {
    is_word(b) || b == b'-' || b == b'.'
}

/// The literals and, per literal, its offsets in the names (see [`name_literals`]).
type Literals = (Vec<Vec<u8>>, Vec<Vec<usize>>);

/// Literals to search for, few enough for Teddy (at most 64), and where each sits in the
/// names (`literals[i]` at offsets `offsets[i]` from a name's start): every name holds one of
/// them at one of its offsets. As rare in ordinary text as that allows: each name's 3 bytes
/// ending at its first byte that is not a letter, past the first two (`ay-` in `pay-db-01`,
/// `eb0` in `web01`, `vm-` in `vm-w00042`; a word followed by a separator or digit is rarer
/// than a word); when that gives too many literals, each name's first `k` bytes for the
/// largest `k` (at most 8) that does not. No literal is a prefix of another, so at most one
/// occurs at a position.
fn name_literals(names: &[Vec<u8>]) -> Option<Literals> {
    const MAX: usize = 64;
    // (literal, offset) per name → the prefix-free literal set with each one's offsets.
    let group = |per_name: Vec<(&[u8], usize)>| {
        let set: BTreeSet<&[u8]> = per_name.iter().map(|(l, _)| *l).collect();
        // Sorted, a literal comes right before the ones it is a prefix of.
        let mut lits: Vec<&[u8]> = Vec::new();
        for l in set {
            if !lits.last().is_some_and(|p| l.starts_with(p)) {
                lits.push(l);
            }
        }
        let mut offsets = vec![Vec::new(); lits.len()];
        for (l, o) in per_name {
            // The kept literal that is a prefix of `l` (itself, or the one before it).
            let i = lits.partition_point(|p| *p <= l) - 1;
            if !offsets[i].contains(&o) {
                offsets[i].push(o);
            }
        }
        let lits: Vec<Vec<u8>> = lits.into_iter().map(<[u8]>::to_vec).collect();
        (lits, offsets)
    };
    let inner = group(
        names
            .iter()
            .map(|n| {
                let end = n
                    .iter()
                    .skip(2)
                    .position(|b| !b.is_ascii_alphabetic())
                    .map_or(n.len(), |i| i + 3);
                let start = end.saturating_sub(3);
                (&n[start..end], start)
            })
            .collect(),
    );
    if inner.0.len() <= MAX {
        return Some(inner);
    }
    (1..=8).rev().find_map(|k| {
        let g = group(names.iter().map(|n| (&n[..k.min(n.len())], 0)).collect());
        (g.0.len() <= if k == 1 { 16 } else { MAX }).then_some(g)
    })
}

impl NameFast {
    /// `None` when a name has a byte the fast path does not allow, or Teddy is unavailable
    /// (no SSSE3/AVX2, or too many literals): the case-insensitive automaton is used then.
    fn new((strings, pats, _): &PatSet) -> Option<NameFast> {
        if strings.is_empty()
            || strings
                .iter()
                .any(|s| s.is_empty() || !s.bytes().all(is_name_byte))
        {
            return None;
        }
        // Case variants of one name become one pattern; the first one's VMs are kept, as the
        // case-insensitive automaton reports the first of equal patterns.
        let mut seen = std::collections::HashSet::new();
        let mut lower: Vec<Vec<u8>> = Vec::new();
        let mut kept: Vec<Pat> = Vec::new();
        for (s, p) in strings.iter().zip(pats) {
            let l = s.to_ascii_lowercase().into_bytes();
            if seen.insert(l.clone()) {
                lower.push(l);
                kept.push(p.clone());
            }
        }
        let (literals, offsets) = name_literals(&lower)?;
        // Few enough case variants of the literals: search for them all in the text itself,
        // which saves the lowercased copy.
        let variants: Vec<(Vec<u8>, &Vec<usize>)> = literals
            .iter()
            .zip(&offsets)
            .flat_map(|(l, o)| case_variants(l).into_iter().map(move |v| (v, o)))
            .collect();
        let case_variants = variants.len() <= CASE_VARIANTS_MAX;
        let (literals, offsets) = if case_variants {
            variants.into_iter().map(|(v, o)| (v, o.clone())).unzip()
        } else {
            (literals, offsets)
        };
        let literals = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&literals)
            .build()?;
        let head_len = lower.iter().map(Vec::len).min().unwrap_or(1).min(8);
        let mut heads = vec![0u64; (1 << HEAD_BITS) / 64];
        let mut by_head: std::collections::HashMap<u64, Vec<usize>, _> = Default::default();
        for (i, n) in lower.iter().enumerate() {
            let bit = head_bit(&n[..head_len]);
            heads[bit / 64] |= 1 << (bit % 64);
            by_head.entry(head_key(&n[..head_len])).or_default().push(i);
        }
        for v in by_head.values_mut() {
            // Longest first; names are unique, so two of one length never both match.
            v.sort_by_key(|&i| std::cmp::Reverse(lower[i].len()));
        }
        Some(NameFast {
            literals,
            offsets,
            case_variants,
            names: lower,
            by_head,
            pats: kept,
            head_len,
            heads,
        })
    }

    /// The name hits of `hay`, by offset.
    ///
    /// Why this equals [`scan_automaton`] (leftmost-longest from the start, a match failing
    /// its boundary check retried one byte further, a kept match skipped): a match's start
    /// `s` passes the check only if `hay[s - 1]` is not a name byte. Every byte of a name is
    /// one, so no start inside a kept match, nor right after it, passes: skipping them
    /// changes nothing, and the result is "at every word start, the longest name there, kept
    /// when the byte after it allows". Every name holds one of the literals at one of its
    /// offsets, and every occurrence of a literal is found (the search resumes one byte after
    /// each), so every word start where a name begins is a candidate.
    fn scan(&self, hay: &[u8], out: &mut Vec<ScanHit>) {
        LOWER.with(|cell| {
            let (lower, starts) = &mut *cell.borrow_mut();
            let text = if self.case_variants {
                hay
            } else {
                lower.clear();
                lower.extend_from_slice(hay);
                lower.make_ascii_lowercase();
                &lower[..]
            };
            starts.clear();
            let mut at = 0;
            while let Some(l) = self.literals.find_in(text, Span::from(at..text.len())) {
                at = l.start() + 1;
                for &o in &self.offsets[l.pattern().as_usize()] {
                    let Some(s) = l.start().checked_sub(o) else {
                        continue;
                    };
                    if s == 0 || !is_name_byte(text[s - 1]) {
                        starts.push(s);
                    }
                }
            }
            starts.sort_unstable();
            starts.dedup();
            for &s in starts.iter() {
                let Some(head) = text.get(s..s + self.head_len) else {
                    continue; // too close to the end for any name
                };
                let bit = head_bit(head);
                if self.heads[bit / 64] & (1 << (bit % 64)) == 0 {
                    continue;
                }
                let Some(i) = self.by_head.get(&head_key(head)).and_then(|ns| {
                    ns.iter().copied().find(|&i| {
                        let n = &self.names[i];
                        text.get(s..s + n.len())
                            .is_some_and(|w| w.eq_ignore_ascii_case(n))
                    })
                }) else {
                    continue;
                };
                let e = s + self.names[i].len();
                if text.get(e).is_some_and(|&b| is_word(b) || b == b'-') {
                    continue;
                }
                push_hits(out, &hay[s..e], s, self.pats[i].targets.iter().copied());
            }
        });
    }
}

/// Leftmost-longest matches of one automaton; a match failing its boundary check is retried
/// one byte further, so it never hides an overlapping valid match.
fn scan_automaton(a: &Automaton, hay: &[u8], out: &mut Vec<ScanHit>) {
    let mut pos = 0;
    while pos < hay.len() {
        let Some(m) = a.ac.find(Input::new(hay).span(pos..hay.len())) else {
            break;
        };
        let (s, e) = (m.start(), m.end());
        let pat = &a.pats[m.pattern().as_usize()];
        if boundary_ok(hay, s, e, pat.kind) {
            push_hits(out, &hay[s..e], s, pat.targets.iter().copied());
            pos = e;
        } else {
            pos = s + 1;
        }
    }
}

fn common_prefix(v: &[String]) -> Option<String> {
    let first = v.first()?;
    let mut len = first.len();
    for s in &v[1..] {
        len = len.min(
            first
                .bytes()
                .zip(s.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    Some(first[..len].to_string())
}

fn mask_len(m: Ipv4Addr) -> Option<u8> {
    let v = u32::from(m);
    let len = v.leading_ones();
    (v.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn boundary_ok(hay: &[u8], s: usize, e: usize, kind: PatKind) -> bool {
    let before = s.checked_sub(1).map(|i| hay[i]);
    let before2 = s.checked_sub(2).map(|i| hay[i]);
    let after = hay.get(e).copied();
    let after2 = hay.get(e + 1).copied();
    match kind {
        PatKind::V4 => {
            let bad_before = match before {
                Some(b) if is_word(b) || b == b'.' => true,
                Some(b'-') => before2.is_some_and(|c| c.is_ascii_digit()),
                _ => false,
            };
            let bad_after = match after {
                Some(b) if is_word(b) => true,
                Some(b'.') | Some(b'-') => after2.is_some_and(|c| c.is_ascii_digit()),
                Some(b'/') => {
                    // `a/len` with host bits clear is a range (the range scan has it).
                    match (v4_parse(&hay[s..e]), prefix_after(hay, e + 1)) {
                        (Some(a), Some((_, len))) if len < 32 => {
                            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                            a & !mask == 0
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            !bad_before && !bad_after
        }
        PatKind::V6 => {
            let bad =
                |b: Option<u8>| b.is_some_and(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            !bad(before) && !bad(after)
        }
        PatKind::Name => {
            let bad_before = before.is_some_and(|b| is_word(b) || b == b'-' || b == b'.');
            let bad_after = after.is_some_and(|b| is_word(b) || b == b'-');
            !bad_before && !bad_after
        }
    }
}

/// Dotted-quad IPv4 as `std` accepts it (four decimal octets ≤ 255, no leading zeros),
/// parsed straight from bytes in one pass (the scanner's hot path).
fn v4_parse(b: &[u8]) -> Option<u32> {
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    let mut out: u32 = 0;
    let mut dots = 0;
    let mut v: u32 = 0;
    let mut digits = 0;
    // An octet ends: 1 to 3 digits, no leading zero, at most 255.
    let octet = |v: u32, digits: usize, first: u8| {
        (1..=3).contains(&digits) && !(digits > 1 && first == b'0') && v <= 255
    };
    let mut first = 0u8;
    for &c in b {
        if c == b'.' {
            if dots == 3 || !octet(v, digits, first) {
                return None;
            }
            out = (out << 8) | v;
            dots += 1;
            v = 0;
            digits = 0;
        } else if c.is_ascii_digit() {
            if digits == 0 {
                first = c;
            }
            digits += 1;
            if digits > 3 {
                return None; // no octet has more (and more would overflow `v`)
            }
            v = v * 10 + u32::from(c - b'0');
        } else {
            return None;
        }
    }
    (dots == 3 && octet(v, digits, first)).then_some((out << 8) | v)
}

/// An IPv4 address ending right before `end`.
fn v4_back(hay: &[u8], end: usize) -> Option<(usize, u32)> {
    let mut s = end;
    while s > 0 && end - s < 15 && (hay[s - 1].is_ascii_digit() || hay[s - 1] == b'.') {
        s -= 1;
    }
    if s > 0 && (is_word(hay[s - 1]) || hay[s - 1] == b'.') {
        return None;
    }
    Some((s, v4_parse(&hay[s..end])?))
}

/// An IPv4 address starting at `start`.
fn v4_fwd(hay: &[u8], start: usize) -> Option<(usize, u32)> {
    let mut e = start;
    while e < hay.len() && e - start < 15 && (hay[e].is_ascii_digit() || hay[e] == b'.') {
        e += 1;
    }
    while e > start && hay[e - 1] == b'.' {
        e -= 1;
    }
    if hay.get(e).is_some_and(|b| is_word(*b)) {
        return None;
    }
    Some((e, v4_parse(&hay[start..e])?))
}

/// A prefix length (`24`) or dotted mask (`255.255.255.0`) starting at `start`.
fn prefix_after(hay: &[u8], start: usize) -> Option<(usize, u8)> {
    let mut e = start;
    while e < hay.len() && e - start < 3 && hay[e].is_ascii_digit() {
        e += 1;
    }
    if e == start {
        return None;
    }
    if hay.get(e) == Some(&b'.') && hay.get(e + 1).is_some_and(u8::is_ascii_digit) {
        let (end, m) = v4_fwd(hay, start)?;
        return Some((end, mask_len(Ipv4Addr::from(m))?));
    }
    if hay.get(e).is_some_and(|b| is_word(*b)) {
        return None;
    }
    // At most 3 digits, leading zeros allowed (as `u8::from_str` reads them).
    let len = hay[start..e]
        .iter()
        .fold(0u32, |v, c| v * 10 + u32::from(c - b'0'));
    (len <= 32).then_some((e, len as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, ips: &[&str]) -> Target {
        Target {
            name: name.into(),
            ips: ips.iter().filter_map(|i| i.parse().ok()).collect(),
            hostnames: vec![name.to_string()],
            owner: None,
            networks: Vec::new(),
            vlan_known: true,
        }
    }

    fn found(m: &Matcher, text: &str) -> Vec<(String, String)> {
        m.scan(text.as_bytes())
            .into_iter()
            .map(|h| {
                let c = match h.coverage {
                    Coverage::NamesHost => "host".to_string(),
                    Coverage::CoveredByRange(r) => r,
                };
                (m.targets[h.target].name.clone(), c)
            })
            .collect()
    }

    /// The same boundary semantics with the common-prefix prefilter and with the automaton.
    #[test]
    fn ipv4_boundaries_both_paths() {
        let prefixed = Matcher::new(vec![t("app-05", &["10.1.1.5"]), t("db", &["10.1.1.50"])]);
        assert!(prefixed.v4_prefix.is_some());
        let plain = Matcher::new(vec![
            t("app-05", &["10.1.1.5"]),
            t("db", &["10.1.1.50"]),
            t("x", &["192.0.2.9"]),
        ]);
        assert!(plain.v4_prefix.is_none());
        for m in [&prefixed, &plain] {
            let host = |n: &str| vec![(n.to_string(), "host".to_string())];
            assert_eq!(found(m, "a 10.1.1.5 b"), host("app-05"));
            assert_eq!(found(m, "a=10.1.1.50;"), host("db"));
            assert!(found(m, "110.1.1.5").is_empty());
            assert!(found(m, "10.1.1.5.6").is_empty());
            assert!(found(m, "v10.1.1.5").is_empty());
            assert!(found(m, "10.1.1.51").is_empty());
            assert_eq!(found(m, "end 10.1.1.5."), host("app-05"));
            assert_eq!(found(m, "10.1.1.5:8080"), host("app-05"));
            assert_eq!(found(m, "10.1.1.5/32"), host("app-05"));
            assert_eq!(
                found(m, "addr 10.1.1.5/24"),
                host("app-05"),
                "interface notation"
            );
            let r = found(m, "10.1.1.0/24");
            assert!(
                r.contains(&("app-05".into(), "10.1.1.0/24".into())) && r.len() == 2,
                "{r:?}"
            );
            let r = found(m, "10.1.1.1-10.1.1.9");
            assert_eq!(r, vec![("app-05".into(), "10.1.1.1-10.1.1.9".into())]);
            assert!(
                found(m, "0.0.0.0/0 10.0.0.0/7").is_empty(),
                "wider than /8 is not a reference"
            );
            assert_eq!(found(m, "10.1.1.0/255.255.255.0").len(), 2);
        }
    }

    #[test]
    fn v4_parse_agrees_with_std() {
        for t in [
            "10.1.1.5",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.1.1.1",
            "1.1.1",
            "1.1.1.1.1",
            "1..1.1",
            "1.1.1.",
            "a.1.1.1",
            "1.1.1.1000",
            "",
            "1.2.3.4.",
            ".1.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1.2.3.4444",
            "999.1.1.1",
            "1.2.3.255",
            "1.2.3.256",
            "001.2.3.4",
            "1.2..3",
            "1.2.3.4/5",
            "12.34.56.78",
            "123.123.123.123",
            "1234.1.1.1",
            "1.1.1.1.",
        ] {
            let std = t.parse::<Ipv4Addr>().ok().map(u32::from);
            assert_eq!(v4_parse(t.as_bytes()), std, "{t}");
        }
        // And on random strings of digits and dots (an occasional other byte).
        let mut seed: u64 = 7;
        for _ in 0..200_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let mut r = seed;
            let len = (r % 17) as usize;
            r >>= 5;
            let t: String = (0..len)
                .map(|_| {
                    r = r.rotate_left(7).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    b"0123456789....12502a"[(r >> 40) as usize % 20] as char
                })
                .collect();
            let std = t.parse::<Ipv4Addr>().ok().map(u32::from);
            assert_eq!(v4_parse(t.as_bytes()), std, "{t}");
        }
    }

    #[test]
    fn name_boundaries() {
        let m = Matcher::new(vec![t("app01", &[])]);
        assert_eq!(found(&m, "host=APP01.corp.example").len(), 1);
        assert_eq!(found(&m, "app01:8080").len(), 1);
        assert!(found(&m, "app01-old xapp01 db.app01 app01_x").is_empty());
    }

    #[test]
    fn tokens() {
        let m = Matcher::new(vec![
            t("web-01", &["192.0.2.10"]),
            t("v6", &["2001:db8::5"]),
        ]);
        let names = |tok: &str| {
            m.token(tok)
                .into_iter()
                .map(|(t, _, _)| m.targets[t].name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("192.0.2.10:443"), ["web-01"]);
        assert_eq!(names("https://web-01.example.internal:8443/x"), ["web-01"]);
        assert_eq!(names("[2001:db8::5]:443"), ["v6"]);
        assert_eq!(names("2001:db8::/64"), ["v6"]);
        assert_eq!(names("192.0.2.0/255.255.255.0"), ["web-01"]);
        assert!(names("any").is_empty());
        assert!(names("192.0.2.100").is_empty());
    }

    /// Teddy (the packed searchers) is there on x86_64 with SSSE3 and on aarch64 with NEON;
    /// elsewhere the fast paths are not built and the automata run.
    fn teddy_available() -> bool {
        packed::Searcher::new(["abc"]).is_some()
    }

    fn key(h: &ScanHit) -> (usize, usize, usize, String, Coverage) {
        (
            h.target,
            h.start,
            h.end,
            h.matched.clone(),
            h.coverage.clone(),
        )
    }

    /// The fast paths (names: literals + anchored automaton; ranges: digit-separator search)
    /// find exactly what the plain automata and the `/`/`-` scan find, on random texts made of
    /// names in every case, near misses, separators, addresses and ranges, cut anywhere (a
    /// name at the very start or end of the text, a text shorter than Teddy's minimum).
    fn assert_fast_equals_plain(targets: Vec<Target>, pieces: &[&str], seed: u64) {
        let fast = Matcher::build(targets.clone(), true);
        let plain = Matcher::build(targets, false);
        assert!(plain.name_fast.is_none() && plain.range_seps.is_none());
        if teddy_available() {
            assert!(fast.range_seps.is_some());
        }
        let mut seed = seed;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for round in 0..300 {
            let mut text = String::new();
            let len = if round % 10 == 0 {
                1 + next(12)
            } else {
                50 + next(400)
            };
            while text.len() < len {
                let p = pieces[next(pieces.len())];
                // Random case, so that case-insensitivity is exercised on every piece.
                text.extend(p.chars().map(|c| {
                    if next(3) == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                }));
            }
            let hay = text.as_bytes();
            for (a, b) in [
                (0, hay.len()),
                (next(hay.len()), hay.len()),
                (0, next(hay.len())),
            ] {
                let hay = &hay[a..b];
                let f: Vec<_> = fast.scan(hay).iter().map(key).collect();
                let p: Vec<_> = plain.scan(hay).iter().map(key).collect();
                assert_eq!(f, p, "text {:?}", String::from_utf8_lossy(hay));
            }
        }
    }

    const PIECES: &[&str] = &[
        "app01",
        "app01.corp",
        "app01-old",
        "xapp01",
        "pp01",
        "db-1",
        "db-10",
        "db_1",
        "web01",
        "web01.corp.example",
        "pay-db-0042",
        "pay-db-00421",
        "cache-",
        "cache",
        "ay-db",
        "-",
        ".",
        "_",
        " ",
        "\n",
        "=",
        ":8080",
        "/",
        "10.1.1.5",
        "10.1.1.0/24",
        "10.1.1.1-10.1.1.9",
        "5-6",
        "0/",
        "1",
        "12345",
        "a",
        "vm-w00042",
        "vm-w0004",
        "vm-",
        "x",
        "é",
        "app",
    ];

    fn named(names: &[&str], ips: &[&str]) -> Vec<Target> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut t = t(n, ips.get(i).map_or(&[][..], std::slice::from_ref));
                if let Some((short, _)) = n.split_once('.') {
                    t.hostnames.push(short.to_string());
                }
                t
            })
            .collect()
    }

    #[test]
    fn fast_paths_equal_the_automata() {
        // Overlapping names (one a prefix of another, one inside another), a name with `_`,
        // digits only, two letters, case variants of one name on two VMs.
        let targets = named(
            &[
                "app01",
                "app01.corp",
                "pp01",
                "db-1",
                "db_1",
                "web01.corp.example",
                "pay-db-0042",
                "12345",
                "ab",
                "vm-w00042",
                "APP01",
            ],
            &["10.1.1.5", "10.1.1.50", "192.0.2.9"],
        );
        let fast = Matcher::build(targets.clone(), true);
        if teddy_available() {
            assert!(fast.name_fast.is_some());
        }
        assert_fast_equals_plain(targets, PIECES, 1);
        if teddy_available() {
            assert!(!fast.name_fast.as_ref().is_some_and(|f| f.case_variants));
        }
        // Names sharing a prefix: few literals (`vm-`), searched by their case variants in
        // the text itself.
        let targets = named(
            &["vm-w00042", "vm-w00042.corp.example", "vm-w0004", "vm-x1"],
            &["10.20.0.1", "10.20.0.2"],
        );
        if teddy_available() {
            let fast = Matcher::build(targets.clone(), true);
            assert!(fast.name_fast.as_ref().is_some_and(|f| f.case_variants));
        }
        assert_fast_equals_plain(targets, PIECES, 4);
    }

    /// More distinct literals than Teddy takes (the fixed-length prefixes then), and a name
    /// the fast path does not take (a space: the automaton then).
    #[test]
    fn fast_path_fallbacks_equal_the_automata() {
        let many: Vec<String> = (0..300)
            .map(|i| {
                let a = (b'a' + (i % 26) as u8) as char;
                let b = (b'a' + (i / 26 % 26) as u8) as char;
                format!("q{a}{b}-{i}")
            })
            .collect();
        let names: Vec<&str> = many.iter().map(String::as_str).collect();
        let targets = named(&names, &["10.1.1.5"]);
        let lower: Vec<Vec<u8>> = many.iter().map(|n| n.clone().into_bytes()).collect();
        let (lits, _) = name_literals(&lower).expect("literals");
        assert!(
            lits.len() <= 64 && lits.iter().all(|l| l.len() <= 3),
            "{lits:?}"
        );
        let mut pieces: Vec<&str> = PIECES.to_vec();
        pieces.extend(names.iter().take(40));
        pieces.extend(["qab", "qab-", "ab-1", "q"]);
        assert_fast_equals_plain(targets, &pieces, 2);

        let targets = named(&["app01", "web 01"], &[]);
        assert!(Matcher::build(targets.clone(), true).name_fast.is_none());
        assert_fast_equals_plain(targets, &["web 01", "app01", " ", "web", "01"], 3);
    }

    /// Every name holds one of its literals at one of that literal's offsets, and no literal
    /// is a prefix of another (so one occurrence per position is all there is to find).
    #[test]
    fn name_literals_cover_every_name() {
        let names: Vec<Vec<u8>> = [
            "pay-db-0042",
            "cache-mq-0001",
            "db-pay-0042.corp.example.internal",
            "web01",
            "ab",
            "12345",
            "database",
            "x",
            "vm-w00042",
        ]
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .collect();
        let (lits, offsets) = name_literals(&names).expect("literals");
        for n in &names {
            assert!(
                lits.iter().zip(&offsets).any(|(l, os)| os
                    .iter()
                    .any(|&o| n.get(o..).is_some_and(|r| r.starts_with(l)))),
                "{}",
                String::from_utf8_lossy(n)
            );
        }
        for a in &lits {
            for b in &lits {
                assert!(a == b || !b.starts_with(a), "{a:?} is a prefix of {b:?}");
            }
        }
        assert!(lits.contains(&b"ay-".to_vec()) && lits.contains(&b"vm-".to_vec()));
    }
}
