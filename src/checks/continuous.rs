//! Continuous probe for live migrations: probe one target at a fixed interval until a
//! duration elapses or the caller cancels, counting sent and lost probes and the longest
//! gap in service.
//!
//! The *gap* of an outage is the time from the last successful probe before a run of
//! losses to the first successful probe after it (what a client of the VM experienced, to
//! the resolution of the interval). An outage still open when the probe stops is measured
//! up to the stop and reported as unrecovered.

use super::probe::Prober;
use super::result::Outcome;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Icmp(IpAddr),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Icmp(ip) => write!(f, "icmp {ip}"),
            Target::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// Time between probe starts.
    pub interval: Duration,
    /// Per-probe timeout (keep it ≤ `interval`; probes do not overlap).
    pub timeout: Duration,
    /// Stop after this long; `None` = until cancelled.
    pub duration: Option<Duration>,
}

/// One probe, sent on the progress channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// 1-based probe number.
    pub seq: u64,
    /// Time since the continuous probe started, when this probe was sent.
    pub elapsed: Duration,
    pub ok: bool,
    pub latency: Option<Duration>,
    pub detail: String,
    /// Counters so far (including this probe).
    pub sent: u64,
    pub lost: u64,
    /// Longest closed gap so far.
    pub longest_gap: Option<Duration>,
}

/// The outcome of a continuous probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub sent: u64,
    pub lost: u64,
    /// Number of loss runs (outages).
    pub outages: u64,
    /// Longest gap (see the module doc); `None` when nothing was lost.
    pub longest_gap: Option<Duration>,
    /// The probe stopped inside an outage (the last probe was lost).
    pub unrecovered: bool,
    /// Losses before the first success (the target was down from the start).
    pub lost_before_first_success: u64,
    pub run_for: Duration,
}

/// Counting logic, separate from timing so it can be tested with made-up times.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    sent: u64,
    lost: u64,
    outages: u64,
    lost_before_first: u64,
    last_ok: Option<Duration>,
    in_outage: bool,
    /// Start of an outage with no success before it.
    outage_start: Option<Duration>,
    longest: Option<Duration>,
}

impl Tracker {
    /// Records a probe sent at `at` (time since start).
    pub fn record(&mut self, at: Duration, ok: bool) {
        self.sent += 1;
        if ok {
            if self.in_outage {
                let from = self.last_ok.or(self.outage_start).unwrap_or_default();
                let gap = at.saturating_sub(from);
                self.longest = Some(self.longest.map_or(gap, |g| g.max(gap)));
                self.in_outage = false;
            }
            self.last_ok = Some(at);
        } else {
            self.lost += 1;
            if self.last_ok.is_none() {
                self.lost_before_first += 1;
            }
            if !self.in_outage {
                self.in_outage = true;
                self.outages += 1;
                if self.last_ok.is_none() {
                    self.outage_start = Some(at);
                }
            }
        }
    }

    pub fn longest_gap(&self) -> Option<Duration> {
        self.longest
    }

    /// Summary at `end`: an open outage counts up to `end`.
    pub fn summary(&self, end: Duration) -> Summary {
        let mut longest = self.longest;
        if self.in_outage {
            let from = self.last_ok.or(self.outage_start).unwrap_or_default();
            let gap = end.saturating_sub(from);
            longest = Some(longest.map_or(gap, |g| g.max(gap)));
        }
        Summary {
            sent: self.sent,
            lost: self.lost,
            outages: self.outages,
            longest_gap: longest,
            unrecovered: self.in_outage,
            lost_before_first_success: self.lost_before_first,
            run_for: end,
        }
    }
}

/// Probes `cfg.target` every `cfg.interval` until `cfg.duration` elapses or `cancel` fires;
/// each probe is reported on `progress` (if given; a full or closed channel never blocks
/// or stops the probing).
pub async fn run(
    prober: &dyn Prober,
    cfg: &Config,
    cancel: CancellationToken,
    progress: Option<mpsc::Sender<Tick>>,
) -> Summary {
    let start = Instant::now();
    let stop_at = cfg.duration.map(|d| start + d);
    let mut tracker = Tracker::default();
    let mut interval = tokio::time::interval(cfg.interval.max(Duration::from_millis(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline_hit = async {
            match stop_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = deadline_hit => break,
            _ = interval.tick() => {}
        }
        let sent_at = start.elapsed();
        let probe = tokio::select! {
            _ = cancel.cancelled() => break,
            p = async {
                match cfg.target {
                    Target::Icmp(ip) => prober.icmp(ip, cfg.timeout).await,
                    Target::Tcp(a) => prober.tcp(a, cfg.timeout).await,
                }
            } => p,
        };
        let ok = probe.outcome == Outcome::Pass;
        tracker.record(sent_at, ok);
        if let Some(tx) = &progress {
            let _ = tx.try_send(Tick {
                seq: tracker.sent,
                elapsed: sent_at,
                ok,
                latency: probe.latency,
                detail: probe.detail,
                sent: tracker.sent,
                lost: tracker.lost,
                longest_gap: tracker.longest_gap(),
            });
        }
    }
    tracker.summary(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn counts_gaps_between_successes() {
        let mut t = Tracker::default();
        // ok at 0, 100; lost 200, 300, 400; ok 500; lost 600; ok 700
        for (at, ok) in [
            (0, true),
            (100, true),
            (200, false),
            (300, false),
            (400, false),
            (500, true),
            (600, false),
            (700, true),
        ] {
            t.record(ms(at), ok);
        }
        let s = t.summary(ms(750));
        assert_eq!((s.sent, s.lost, s.outages), (8, 4, 2));
        assert_eq!(s.longest_gap, Some(ms(400)));
        assert!(!s.unrecovered);
    }

    #[test]
    fn open_outage_counts_to_the_end() {
        let mut t = Tracker::default();
        t.record(ms(0), true);
        t.record(ms(100), false);
        let s = t.summary(ms(1000));
        assert_eq!(s.longest_gap, Some(ms(1000)));
        assert!(s.unrecovered);
    }

    #[test]
    fn down_from_the_start() {
        let mut t = Tracker::default();
        t.record(ms(0), false);
        t.record(ms(100), false);
        t.record(ms(200), true);
        let s = t.summary(ms(250));
        assert_eq!(s.lost_before_first_success, 2);
        assert_eq!(s.longest_gap, Some(ms(200)));
    }
}
