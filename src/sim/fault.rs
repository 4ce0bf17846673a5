//! Seeded fault decisions, shared by the API server's and the simulated vCenter's injected
//! errors: the same seed and request number always give the same answer, so a scenario's
//! faults replay exactly.

/// SplitMix64: a well-mixed hash of (seed, request number).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Whether request `key` (seed and request number mixed by the caller) is one of the
/// `rate` share that fails.
pub(crate) fn strikes(key: u64, rate: f64) -> bool {
    rate > 0.0 && (mix(key) as f64 / u64::MAX as f64) < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_strikes_follows_the_rate_and_replays() {
        let hits = (0..10_000u64).filter(|&n| strikes(42 ^ n, 0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
        let again = (0..10_000u64).filter(|&n| strikes(42 ^ n, 0.1)).count();
        assert_eq!(hits, again);
        assert!(!(0..1000u64).any(|n| strikes(n, 0.0)));
    }
}
