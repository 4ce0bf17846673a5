//! Retrying transient errors: capped exponential backoff with jitter, for the boundary's
//! calls to vCenter (power operations) and to the Kubernetes API (kube-rs itself retries
//! only 429, 503 and 504; a 500 or a dropped connection reaches the engine).

use std::future::Future;
use std::time::Duration;

/// How often and how patiently an operation is retried on a transient error.
///
/// The default (5 attempts, 0.5 s doubling to at most 8 s, with jitter) rides out a
/// vCenter restart or a busy appliance for about 15 s before the caller sees the last
/// error. [`RetryPolicy::API`] is the quicker policy for Kubernetes API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1 (1: no retry).
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// The error an operation ended with, and how many attempts it took.
#[derive(Debug)]
pub struct Attempted<E> {
    pub error: E,
    pub attempts: u32,
}

impl RetryPolicy {
    /// For Kubernetes API calls: 6 attempts, 0.1 s doubling to at most 2 s (about 3 s in
    /// all), so that a burst of server errors never fails a VM but a down API server is
    /// reported quickly.
    pub const API: RetryPolicy = RetryPolicy {
        attempts: 6,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
    };

    /// The delay after failed attempt `n` (1-based): exponential, capped, and jittered
    /// into [½, 1] of that so that many callers failing together do not retry in lockstep.
    pub fn delay(&self, n: u32) -> Duration {
        use std::hash::{BuildHasher, Hasher};
        let exp = self
            .first_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_delay);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(n);
        let frac = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        exp.mul_f64(0.5 + 0.5 * frac)
    }

    /// Runs `op` until it succeeds, fails with an error `transient` says is final, or the
    /// attempts are used up.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        transient: impl Fn(&E) -> bool,
        mut op: F,
    ) -> Result<T, Attempted<E>>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = self.attempts.max(1);
        let mut n = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) && n < attempts => {
                    let wait = self.delay(n);
                    tracing::warn!(
                        target: "wavelift::retry",
                        "{what}: {e}; attempt {n} of {attempts}, retrying in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                Err(error) => return Err(Attempted { error, attempts: n }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_cap_and_jitter() {
        for p in [RetryPolicy::default(), RetryPolicy::API] {
            for n in 1..=10 {
                let exp = (p.first_delay * 2u32.pow(n - 1)).min(p.max_delay);
                let d = p.delay(n);
                assert!(d >= exp / 2 && d <= exp, "attempt {n}: {d:?} vs {exp:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counts_attempts_and_stops_at_final_errors() {
        let p = RetryPolicy {
            attempts: 4,
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let r: Result<(), _> = p
            .run(
                "op",
                |e: &String| e == "busy",
                || {
                    calls += 1;
                    let n = calls;
                    async move {
                        Err(if n < 3 {
                            "busy".to_string()
                        } else {
                            "bad".to_string()
                        })
                    }
                },
            )
            .await;
        let f = r.expect_err("a final error");
        assert_eq!((f.error.as_str(), f.attempts), ("bad", 3));
        let r: Result<(), _> = p
            .run(
                "op",
                |_: &String| true,
                || async { Err("busy".to_string()) },
            )
            .await;
        assert_eq!(r.expect_err("gives up").attempts, 4);
    }
}
