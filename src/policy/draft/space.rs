//! Sets of addresses as sorted disjoint intervals, and their CIDR decomposition.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address family's key space: IPv4 addresses as `0..=u32::MAX`, IPv6 as `0..=u128::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    pub fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    pub fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }
    pub fn addr(self, k: u128) -> IpAddr {
        match self {
            // Keys of the V4 space are below 2^32 by construction.
            Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(k).unwrap_or(u32::MAX))),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(k)),
        }
    }
}

pub fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Sorted, disjoint, non-adjacent inclusive intervals of one family's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    pub fn empty() -> Ranges {
        Ranges(Vec::new())
    }
    pub fn full(f: Family) -> Ranges {
        Ranges(vec![(0, f.max())])
    }
    /// Normalises any intervals (`lo > hi` ones are dropped).
    pub fn from_intervals(mut v: Vec<(u128, u128)>) -> Ranges {
        v.retain(|(a, b)| a <= b);
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Ranges(out)
    }
    pub fn intervals(&self) -> &[(u128, u128)] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn contains(&self, k: u128) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < k);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= k)
    }
    pub fn union(&self, o: &Ranges) -> Ranges {
        if o.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return o.clone();
        }
        let mut v = self.0.clone();
        v.extend_from_slice(&o.0);
        Ranges::from_intervals(v)
    }
    pub fn intersect(&self, o: &Ranges) -> Ranges {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.0.len() && j < o.0.len() {
            let (a, b) = self.0[i];
            let (c, d) = o.0[j];
            let lo = a.max(c);
            let hi = b.min(d);
            if lo <= hi {
                out.push((lo, hi));
            }
            if b < d {
                i += 1;
            } else {
                j += 1;
            }
        }
        Ranges(out)
    }
    pub fn intersects(&self, o: &Ranges) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < o.0.len() {
            let (a, b) = self.0[i];
            let (c, d) = o.0[j];
            if a.max(c) <= b.min(d) {
                return true;
            }
            if b < d {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }
    pub fn minus(&self, o: &Ranges) -> Ranges {
        if o.is_empty() || self.is_empty() {
            return self.clone();
        }
        let mut out = Vec::new();
        let mut j = 0;
        for &(a, b) in &self.0 {
            let mut lo = a;
            let mut done = false;
            while j < o.0.len() && o.0[j].1 < lo {
                j += 1;
            }
            let mut k = j;
            while k < o.0.len() && o.0[k].0 <= b {
                let (c, d) = o.0[k];
                if c > lo {
                    out.push((lo, c - 1));
                }
                if d >= b {
                    done = true;
                    break;
                }
                lo = d + 1;
                k += 1;
            }
            if !done {
                out.push((lo, b));
            }
        }
        Ranges(out)
    }
    /// `self ⊇ o`.
    pub fn covers(&self, o: &Ranges) -> bool {
        o.minus(self).is_empty()
    }
}

/// A CIDR block of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub family: Family,
    pub base: u128,
    pub prefix: u32,
}

impl Cidr {
    pub fn last(&self) -> u128 {
        let host = self.family.bits() - self.prefix;
        if host >= 128 {
            u128::MAX
        } else {
            self.base | ((1u128 << host) - 1)
        }
    }
    pub fn ranges(&self) -> Ranges {
        Ranges(vec![(self.base, self.last())])
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.family.addr(self.base), self.prefix)
    }
}

/// The fewest CIDR blocks covering exactly `[lo, hi]`.
pub fn cidrs_of(f: Family, lo: u128, hi: u128, out: &mut Vec<Cidr>) {
    let bits = f.bits();
    let mut cur = lo;
    loop {
        if cur > hi {
            break;
        }
        // The largest block aligned at `cur` that stays within `hi`.
        let align = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        let mut host = align;
        loop {
            let last = if host >= 128 {
                u128::MAX
            } else {
                cur | ((1u128 << host) - 1)
            };
            if last <= hi {
                break;
            }
            host -= 1;
        }
        out.push(Cidr {
            family: f,
            base: cur,
            prefix: bits - host,
        });
        let last = if host >= 128 {
            u128::MAX
        } else {
            cur | ((1u128 << host) - 1)
        };
        if last >= hi {
            break;
        }
        cur = last + 1;
    }
}

pub fn cidrs(f: Family, r: &Ranges) -> Vec<Cidr> {
    let mut out = Vec::new();
    for &(lo, hi) in r.intervals() {
        cidrs_of(f, lo, hi, &mut out);
    }
    out
}

/// An `ipBlock`: a CIDR and the blocks inside it it leaves out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    pub cidr: Cidr,
    pub except: Vec<Cidr>,
}

/// `10.0.0.0/24`, or `10.0.0.0/24 except 10.0.0.8/29 10.0.0.64/26`.
impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cidr)?;
        for (i, e) in self.except.iter().enumerate() {
            let sep = if i == 0 { " except " } else { " " };
            write!(f, "{sep}{e}")?;
        }
        Ok(())
    }
}

/// `target` (a subset of `shape`) as ipBlocks: each CIDR of `shape` that `target` touches,
/// with `except` for what `target` leaves out of it, unless listing `target`'s own CIDRs
/// there is shorter.
pub fn blocks(f: Family, target: &Ranges, shape: &Ranges) -> Vec<Block> {
    let per_shape = blocks_in_shape(f, target, shape);
    // Or one block, the smallest CIDR holding all of `target`, with `except` for the rest
    // (a negated source such as iptables `! -s 192.0.2.0/24`).
    let (Some(&(lo, _)), Some(&(_, hi))) = (target.intervals().first(), target.intervals().last())
    else {
        return per_shape;
    };
    let prefix = (lo ^ hi).leading_zeros().saturating_sub(128 - f.bits());
    let host = f.bits() - prefix;
    let base = if host >= 128 {
        0
    } else {
        lo & !((1u128 << host) - 1)
    };
    let hull = Cidr {
        family: f,
        base,
        prefix,
    };
    let except = cidrs(f, &hull.ranges().minus(target));
    let cost = |v: &[Block]| v.iter().map(|b| 1 + b.except.len()).sum::<usize>();
    if 1 + except.len() < cost(&per_shape) {
        vec![Block { cidr: hull, except }]
    } else {
        per_shape
    }
}

fn blocks_in_shape(f: Family, target: &Ranges, shape: &Ranges) -> Vec<Block> {
    let mut out = Vec::new();
    for c in cidrs(f, shape) {
        let cr = c.ranges();
        let part = target.intersect(&cr);
        if part.is_empty() {
            continue;
        }
        let ex = cr.minus(&part);
        if ex.is_empty() {
            out.push(Block {
                cidr: c,
                except: Vec::new(),
            });
            continue;
        }
        let ex_c = cidrs(f, &ex);
        let part_c = cidrs(f, &part);
        if ex_c.len() < part_c.len() {
            out.push(Block {
                cidr: c,
                except: ex_c,
            });
        } else {
            out.extend(part_c.into_iter().map(|cidr| Block {
                cidr,
                except: Vec::new(),
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[(u128, u128)]) -> Ranges {
        Ranges::from_intervals(v.to_vec())
    }

    #[test]
    fn set_algebra() {
        let a = r(&[(0, 10), (20, 30)]);
        let b = r(&[(5, 25)]);
        assert_eq!(a.minus(&b), r(&[(0, 4), (26, 30)]));
        assert_eq!(a.intersect(&b), r(&[(5, 10), (20, 25)]));
        assert_eq!(a.union(&b), r(&[(0, 30)]));
        assert!(a.covers(&r(&[(21, 22)])));
        assert!(!a.covers(&r(&[(9, 21)])));
        assert_eq!(r(&[(0, 5), (6, 7)]), r(&[(0, 7)]));
        assert_eq!(
            Ranges::full(Family::V6).minus(&Ranges::full(Family::V6)),
            Ranges::empty()
        );
        assert!(a.contains(30) && !a.contains(15));
    }

    #[test]
    fn cidr_decomposition() {
        let f = Family::V4;
        let ip = |s: &str| key(s.parse().expect("ip"));
        let mut v = Vec::new();
        cidrs_of(f, ip("10.0.0.1"), ip("10.0.0.6"), &mut v);
        let s: Vec<String> = v.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            s,
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        let all = cidrs(f, &Ranges::full(f));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].to_string(), "0.0.0.0/0");
        let all6 = cidrs(Family::V6, &Ranges::full(Family::V6));
        assert_eq!(all6[0].to_string(), "::/0");
        let b = blocks(
            f,
            &r(&[
                (ip("10.0.0.0"), ip("10.0.0.4")),
                (ip("10.0.0.6"), ip("10.0.0.255")),
            ]),
            &r(&[(ip("10.0.0.0"), ip("10.0.0.255"))]),
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].except[0].to_string(), "10.0.0.5/32");
        // A negated set: everything but 192.0.2.0/24.
        let not = Ranges::full(f).minus(&r(&[(ip("192.0.2.0"), ip("192.0.2.255"))]));
        let b = blocks(f, &not, &not);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].cidr.to_string(), "0.0.0.0/0");
        assert_eq!(b[0].except.len(), 1);
        assert_eq!(b[0].except[0].to_string(), "192.0.2.0/24");
        let b = blocks(f, &r(&[(ip("10.0.0.4"), ip("10.0.0.7"))]), &Ranges::full(f));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].cidr.to_string(), "10.0.0.4/30");
        assert!(b[0].except.is_empty());
    }
}
