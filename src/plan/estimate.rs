//! How long cutovers take: import throughput (bytes per second of the window's clock, per
//! import), assumed from `[plan] import_throughput` until a run measures it, and, for warm
//! VMs, how long their last precopy round took to copy. Pure and the only estimator:
//! `plan check` uses it for `window-too-short`, the engine's scheduler for the window fit
//! it reports as imports run.

use std::time::Duration;

/// The import throughput assumed until one is measured (per import): an assumption to
/// tune, not a measured fact.
pub const ASSUMED_IMPORT_BYTES_PER_SEC: f64 = 150.0 * 1024.0 * 1024.0;

/// Time a cutover needs besides the copy (power-off, guard, create, boot, checks).
pub const CUTOVER_OVERHEAD: Duration = Duration::from_secs(5 * 60);

/// Import throughput per import, an exponentially weighted mean of what was observed;
/// until then, the assumption.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    mean: Option<f64>,
    assumed: f64,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput::assuming(ASSUMED_IMPORT_BYTES_PER_SEC)
    }
}

impl Throughput {
    /// Nothing measured yet; `bytes_per_sec` per import assumed (`[plan] import_throughput`).
    pub fn assuming(bytes_per_sec: f64) -> Throughput {
        Throughput {
            mean: None,
            assumed: if bytes_per_sec > 0.0 {
                bytes_per_sec
            } else {
                ASSUMED_IMPORT_BYTES_PER_SEC
            },
        }
    }

    /// `bytes` copied by `imports` concurrent imports in `secs` seconds of the clock.
    pub fn observe(&mut self, bytes: f64, secs: f64, imports: usize) {
        if bytes <= 0.0 || secs <= 0.0 || imports == 0 {
            return;
        }
        let rate = bytes / secs / imports as f64;
        self.mean = Some(match self.mean {
            None => rate,
            Some(m) => 0.7 * m + 0.3 * rate,
        });
    }

    /// Bytes per second per import, and whether it was measured (else assumed).
    pub fn rate(&self) -> (f64, bool) {
        match self.mean {
            Some(m) => (m, true),
            None => (self.assumed, false),
        }
    }

    /// `measured 212 MiB/s` or `an assumed 150 MiB/s`.
    pub fn describe(&self) -> String {
        let (r, measured) = self.rate();
        let mib = r / (1024.0 * 1024.0);
        if measured {
            format!("a measured {mib:.0} MiB/s")
        } else {
            format!("an assumed {mib:.0} MiB/s")
        }
    }
}

/// How long one VM's cutover takes, from the power-off to its checks passing: a warm VM
/// whose last precopy round was timed copies about as much again (the writes of one
/// interval); otherwise the whole disk at the throughput.
pub fn cutover(disk_bytes: u64, last_round: Option<Duration>, t: &Throughput) -> Duration {
    let copy = match last_round {
        Some(d) => d,
        None => Duration::from_secs_f64(disk_bytes as f64 / t.rate().0),
    };
    copy + CUTOVER_OVERHEAD
}

/// Whether a wave's remaining cutovers fit the time left in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Time left in the window (its whole length while it has not opened).
    pub left: Duration,
    /// Cutovers not started yet.
    pub remaining: usize,
    /// Their estimated time, `max_parallel_cutovers` at a time.
    pub needed: Duration,
}

impl Fit {
    pub fn new(left: Duration, estimates: &[Duration], parallel: u32) -> Fit {
        // Longest first over `parallel` lanes, each to the least loaded lane (a min-heap:
        // 10,000 cutovers over 100 lanes cost n log p, not n × p): the time the last lane
        // ends.
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut sorted = estimates.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let mut lanes: BinaryHeap<Reverse<Duration>> =
            std::iter::repeat_n(Reverse(Duration::ZERO), parallel.max(1) as usize).collect();
        for e in sorted {
            let Reverse(least) = lanes.pop().expect("one lane at least");
            lanes.push(Reverse(least + e));
        }
        Fit {
            left,
            remaining: estimates.len(),
            needed: lanes
                .into_iter()
                .map(|Reverse(d)| d)
                .max()
                .unwrap_or_default(),
        }
    }

    pub fn fits(&self) -> bool {
        self.needed <= self.left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn throughput_is_assumed_until_measured_then_follows_the_measurements() {
        let mut t = Throughput::default();
        assert_eq!(t.rate(), (ASSUMED_IMPORT_BYTES_PER_SEC, false));
        assert_eq!(t.describe(), "an assumed 150 MiB/s");
        // 400 MiB in 2 s by two imports: 100 MiB/s each.
        t.observe(400.0 * MIB, 2.0, 2);
        assert_eq!(t.rate(), (100.0 * MIB, true));
        t.observe(200.0 * MIB, 1.0, 1);
        assert_eq!(t.rate().0, 0.7 * 100.0 * MIB + 0.3 * 200.0 * MIB);
        assert_eq!(t.describe(), "a measured 130 MiB/s");
        // Nothing copied, no time, no import: ignored.
        t.observe(0.0, 1.0, 1);
        t.observe(1.0, 0.0, 1);
        t.observe(1.0, 1.0, 0);
        assert_eq!(t.rate().0, 130.0 * MIB);
    }

    #[test]
    fn the_plans_assumption_stands_until_a_measurement() {
        let t = Throughput::assuming(300.0 * MIB);
        assert_eq!(t.rate(), (300.0 * MIB, false));
        assert_eq!(t.describe(), "an assumed 300 MiB/s");
        assert_eq!(
            Throughput::assuming(0.0).rate().0,
            ASSUMED_IMPORT_BYTES_PER_SEC
        );
    }

    #[test]
    fn a_warm_vm_needs_its_last_round_a_cold_one_its_whole_disk() {
        let mut t = Throughput::default();
        t.observe(100.0 * MIB, 1.0, 1);
        let gib = 1u64 << 30;
        assert_eq!(
            cutover(10 * gib, None, &t),
            Duration::from_secs_f64(10.0 * 1024.0 / 100.0) + CUTOVER_OVERHEAD
        );
        assert_eq!(
            cutover(10 * gib, Some(Duration::from_secs(40)), &t),
            Duration::from_secs(40) + CUTOVER_OVERHEAD
        );
    }

    #[test]
    fn a_wave_fits_when_its_lanes_end_before_the_window() {
        let m = Duration::from_secs(60);
        // Three cutovers of 30, 20, 10 minutes on two lanes: 30 | 20+10 = 30 minutes.
        let f = Fit::new(40 * m, &[10 * m, 30 * m, 20 * m], 2);
        assert_eq!((f.remaining, f.needed), (3, 30 * m));
        assert!(f.fits());
        let f = Fit::new(25 * m, &[10 * m, 30 * m, 20 * m], 2);
        assert!(!f.fits());
        assert_eq!(Fit::new(m, &[], 2).needed, Duration::ZERO);
    }
}
