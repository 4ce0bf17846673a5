//! A static interval-stabbing index (a centred interval tree): which rules' address ranges
//! contain one address, without scanning every rule.

struct Node {
    center: u128,
    /// Intervals containing `center`, by ascending `lo` and by descending `hi`.
    by_lo: Vec<u32>,
    by_hi: Vec<u32>,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

pub struct Stab<T> {
    items: Vec<(u128, u128, T)>,
    root: Option<Box<Node>>,
}

impl<T> Stab<T> {
    pub fn new(items: Vec<(u128, u128, T)>) -> Stab<T> {
        let idx: Vec<u32> = (0..items.len() as u32).collect();
        let root = build(&items, idx);
        Stab { items, root }
    }

    /// Every item whose interval contains `p`, in no particular order.
    pub fn query<'a>(&'a self, p: u128, out: &mut Vec<&'a T>) {
        let mut node = self.root.as_deref();
        while let Some(n) = node {
            let item = |i: &u32| &self.items[*i as usize];
            if p < n.center {
                for i in &n.by_lo {
                    let it = item(i);
                    if it.0 > p {
                        break;
                    }
                    out.push(&it.2);
                }
                node = n.left.as_deref();
            } else if p > n.center {
                for i in &n.by_hi {
                    let it = item(i);
                    if it.1 < p {
                        break;
                    }
                    out.push(&it.2);
                }
                node = n.right.as_deref();
            } else {
                out.extend(n.by_lo.iter().map(|i| &item(i).2));
                break;
            }
        }
    }
}

fn build<T>(items: &[(u128, u128, T)], idx: Vec<u32>) -> Option<Box<Node>> {
    if idx.is_empty() {
        return None;
    }
    let mut mids: Vec<u128> = idx
        .iter()
        .map(|&i| {
            let (lo, hi, _) = &items[i as usize];
            lo + (hi - lo) / 2
        })
        .collect();
    let m = mids.len() / 2;
    let center = *mids.select_nth_unstable(m).1;
    let (mut left, mut right, mut here) = (Vec::new(), Vec::new(), Vec::new());
    for i in idx {
        let (lo, hi, _) = &items[i as usize];
        if *hi < center {
            left.push(i);
        } else if *lo > center {
            right.push(i);
        } else {
            here.push(i);
        }
    }
    let mut by_lo = here.clone();
    by_lo.sort_by_key(|&i| items[i as usize].0);
    let mut by_hi = here;
    by_hi.sort_by_key(|&i| std::cmp::Reverse(items[i as usize].1));
    Some(Box::new(Node {
        center,
        by_lo,
        by_hi,
        left: build(items, left),
        right: build(items, right),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stabbing_equals_a_scan() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let items: Vec<(u128, u128, usize)> = (0..500)
            .map(|i| {
                let lo = u128::from(next(1000));
                let len = if next(4) == 0 { next(400) } else { next(5) };
                (lo, lo + u128::from(len), i)
            })
            .collect();
        let s = Stab::new(items.clone());
        for p in 0..1500u128 {
            let mut got = Vec::new();
            s.query(p, &mut got);
            let mut got: Vec<usize> = got.into_iter().copied().collect();
            got.sort_unstable();
            let want: Vec<usize> = items
                .iter()
                .filter(|(lo, hi, _)| *lo <= p && p <= *hi)
                .map(|x| x.2)
                .collect();
            assert_eq!(got, want, "at {p}");
        }
    }
}
