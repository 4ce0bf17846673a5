//! Baselines (check results recorded before cutover) and their diff against a later run.
//!
//! # File format
//!
//! A baseline is one JSON document (UTF-8), written by `wavelift verify PLAN
//! --baseline-out FILE`:
//!
//! ```json
//! {
//!   "format": "wavelift.baseline/v1",
//!   "plan": "payments",
//!   "taken_at": "2026-12-05T21:58:03.120Z",
//!   "results": [
//!     {"wave": "w1", "vm": "pay-db-01", "check": "tcp:5432", "kind": "tcp",
//!      "target": "192.0.2.15:5432", "outcome": "pass", "detail": "connected in 0.4 ms",
//!      "latency_ms": 0.412, "at": "2026-12-05T21:58:03.101Z", "attempts": 1}
//!   ]
//! }
//! ```
//!
//! `results` holds [`CheckResult`]s; a check is identified by `(vm, check)`, where `check`
//! is the check as written in the plan (`tcp:5432`, `dns:NAME`, the URL, `icmp`, …).
//! `outcome` is `pass` | `fail` | `error` | `skipped`; `latency_ms` may be absent.

use super::result::{now_rfc3339, CheckResult, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The format tag written into every baseline.
pub const BASELINE_FORMAT: &str = "wavelift.baseline/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub format: String,
    pub plan: String,
    pub taken_at: String,
    pub results: Vec<CheckResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read baseline {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write baseline {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("baseline {path} is not a wavelift baseline: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("baseline {path} has format `{found}`, expected `{BASELINE_FORMAT}`")]
    Format { path: String, found: String },
    #[error("cannot encode baseline: {0}")]
    Encode(serde_json::Error),
}

impl Baseline {
    /// A baseline of `results` taken now.
    pub fn new(plan: impl Into<String>, results: Vec<CheckResult>) -> Self {
        Baseline {
            format: BASELINE_FORMAT.to_string(),
            plan: plan.into(),
            taken_at: now_rfc3339(),
            results,
        }
    }

    pub fn to_json(&self) -> Result<String, BaselineError> {
        serde_json::to_string_pretty(self).map_err(BaselineError::Encode)
    }

    pub fn from_json(text: &str, path: &str) -> Result<Self, BaselineError> {
        let b: Baseline = serde_json::from_str(text).map_err(|source| BaselineError::Parse {
            path: path.to_string(),
            source,
        })?;
        if b.format != BASELINE_FORMAT {
            return Err(BaselineError::Format {
                path: path.to_string(),
                found: b.format,
            });
        }
        Ok(b)
    }

    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let p = path.display().to_string();
        let text =
            crate::fsio::read_bounded_string(path, crate::fsio::BASELINE_MAX, "the baseline")
                .map_err(|e| BaselineError::Read {
                    path: p.clone(),
                    source: e.into_io(),
                })?;
        Self::from_json(&text, &p)
    }

    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let mut text = self.to_json()?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| BaselineError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// The recorded result of `(vm, check)`.
    pub fn get(&self, vm: &str, check: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.vm == vm && r.check == check)
    }
}

/// How a check now compares with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum DiffStatus {
    /// Passed before, fails (or errors) now. Listed first in reports.
    Regression,
    /// Failed (or errored) before, and still does.
    StillFailing,
    /// No usable baseline entry (none, or it was skipped) and not passing now; or no baseline
    /// was given at all and the check fails.
    New,
    /// Skipped now (reason in the detail).
    Skipped,
    /// Failed before, passes now.
    Fixed,
    /// Passes now (and passed before, or had no baseline entry).
    Ok,
}

impl DiffStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffStatus::Regression => "regression",
            DiffStatus::StillFailing => "still-failing",
            DiffStatus::New => "new",
            DiffStatus::Skipped => "skipped",
            DiffStatus::Fixed => "fixed",
            DiffStatus::Ok => "ok",
        }
    }
}

impl std::fmt::Display for DiffStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A current result with its comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diffed {
    pub result: CheckResult,
    pub status: DiffStatus,
    /// The baseline's outcome for this check, when it had one.
    pub before: Option<Outcome>,
}

/// Classifies each current result against the baseline (`None`: no baseline given).
///
/// | now \ before  | pass       | fail/error    | skipped / absent |
/// |---------------|------------|---------------|------------------|
/// | pass          | ok         | fixed         | ok               |
/// | fail/error    | regression | still-failing | new              |
/// | skipped       | skipped    | skipped       | skipped          |
pub fn diff(baseline: Option<&Baseline>, now: &[CheckResult]) -> Vec<Diffed> {
    let index: HashMap<(&str, &str), &CheckResult> = baseline
        .map(|b| b.results.iter().map(|r| (r.key(), r)).collect())
        .unwrap_or_default();
    now.iter()
        .map(|r| {
            let before = index.get(&r.key()).map(|b| b.outcome);
            let status = match (r.outcome, before) {
                (Outcome::Skipped, _) => DiffStatus::Skipped,
                (Outcome::Pass, Some(b)) if b.is_failure() => DiffStatus::Fixed,
                (Outcome::Pass, _) => DiffStatus::Ok,
                (_, Some(Outcome::Pass)) => DiffStatus::Regression,
                (_, Some(Outcome::Fail | Outcome::Error)) => DiffStatus::StillFailing,
                (_, Some(Outcome::Skipped) | None) => DiffStatus::New,
            };
            Diffed {
                result: r.clone(),
                status,
                before,
            }
        })
        .collect()
}

/// Process exit code for a verify run: `0` all checks pass or are skipped; `1` some check
/// fails or errors (still failing or new), no regression; `2` at least one regression.
pub fn exit_code(diffs: &[Diffed]) -> u8 {
    if diffs.iter().any(|d| d.status == DiffStatus::Regression) {
        2
    } else if diffs.iter().any(|d| d.result.outcome.is_failure()) {
        1
    } else {
        0
    }
}
