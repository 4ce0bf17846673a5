//! The result of one check of one VM, as stored in baselines and reports.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a check concluded.
///
/// - `pass`: the property holds (the address answered, the record matched, …);
/// - `fail`: the property does not hold (no answer, wrong answer, wrong status);
/// - `error`: the check could not be carried out (resolver unreachable, permission denied,
///   malformed target) — says nothing about the VM;
/// - `skipped`: not applicable now, with the reason in the detail (no VMI observed yet, no
///   planned IP, a probe kind the sim network does not model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Error,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }

    /// `fail` or `error`: the VM is not proven to answer.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Error)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check of one VM.
///
/// JSON form (used in baseline files and the JSON report):
/// `{"wave":"w1","vm":"shop-db-01","check":"tcp:5432","kind":"tcp",
///   "target":"192.0.2.15:5432","outcome":"pass","detail":"connected",
///   "latency_ms":0.41,"at":"2026-12-05T22:41:07.123Z","attempts":1}`.
/// `(vm, check)` identifies a check across runs (baseline diff).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Wave of the VM.
    #[serde(default)]
    pub wave: String,
    pub vm: String,
    /// The check as written in the plan (`CheckKind`'s display form: `tcp:5432`, `dns:NAME`,
    /// the URL, `icmp`, …).
    pub check: String,
    /// Short kind name: `ip-preserved`, `mac-preserved`, `icmp`, `tcp`, `http`, `https`, `dns`.
    pub kind: String,
    /// What was probed: `IP`, `IP:PORT`, the URL with `{ip}` substituted, the DNS name.
    pub target: String,
    pub outcome: Outcome,
    /// Why: what was seen, the error, the skip reason, or notes such as a TCP fallback.
    pub detail: String,
    /// Duration of the last attempt, when it was measured.
    #[serde(
        rename = "latency_ms",
        with = "latency_ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    /// When the check finished, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// Attempts made (1 + retries used).
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

impl CheckResult {
    /// Identity across runs.
    pub fn key(&self) -> (&str, &str) {
        (&self.vm, &self.check)
    }
}

mod latency_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            // Microsecond resolution is plenty and keeps the JSON short.
            Some(d) => s.serialize_f64((d.as_micros() as f64) / 1000.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        Ok(v.filter(|ms| ms.is_finite() && *ms >= 0.0 && *ms < 1e12)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0)))
    }
}

/// The current time as RFC 3339 UTC with milliseconds: `2026-12-05T22:41:07.123Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Formats a time as RFC 3339 UTC with milliseconds (times before 1970 print as the epoch).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_510_467_123);
        assert_eq!(rfc3339(t), "2026-12-05T22:41:07.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn round_trips_json() {
        let r = CheckResult {
            wave: "w1".into(),
            vm: "a".into(),
            check: "tcp:22".into(),
            kind: "tcp".into(),
            target: "192.0.2.1:22".into(),
            outcome: Outcome::Fail,
            detail: "connection refused".into(),
            latency: Some(Duration::from_micros(1500)),
            at: now_rfc3339(),
            attempts: 3,
        };
        let text = serde_json::to_string(&r).expect("serialise");
        assert!(text.contains("\"latency_ms\":1.5"), "{text}");
        assert!(text.contains("\"outcome\":\"fail\""), "{text}");
        let back: CheckResult = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, r);
    }
}
