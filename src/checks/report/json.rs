//! JSON report for tools.
//!
//! ## Verify report JSON (`wavelift verify --report json`)
//!
//! One JSON object, UTF-8, pretty-printed:
//!
//! ```json
//! {
//!   "schema": "wavelift.verify/v1",
//!   "plan": "payments",
//!   "generated_at": "2026-12-06T01:12:44.210Z",
//!   "baseline_taken_at": "2026-12-05T21:58:03.120Z",
//!   "passed": false,
//!   "exit_code": 2,
//!   "summary": {"vms": 2, "checks": 6, "pass": 4, "fail": 1, "error": 0, "skipped": 1,
//!               "regressions": 1, "still_failing": 0, "new": 0, "fixed": 0},
//!   "waves": [
//!     {"name": "w1",
//!      "summary": { …same keys as above… },
//!      "vms": [
//!        {"name": "pay-db-01",
//!         "checks": [
//!           {"check": "tcp:5432", "kind": "tcp", "target": "192.0.2.15:5432",
//!            "outcome": "fail", "status": "regression", "before": "pass",
//!            "detail": "no answer within 2000.0 ms", "latency_ms": null,
//!            "at": "2026-12-06T01:12:44.101Z", "attempts": 3}
//!         ]}
//!      ]}
//!   ],
//!   "cutovers": [
//!     {"vm": "pay-db-01", "migration": "warm", "downtime_ms": 82000, "precopy_rounds": 3,
//!      "consistent_copy": true},
//!     {"vm": "pay-win-02", "migration": "cold", "downtime_ms": 1260000, "precopy_rounds": 0,
//!      "consistent_copy": true, "backend": "forklift",
//!      "backend_steps": [{"name": "Initialize", "phase": "Completed",
//!                         "started": "2026-12-06T01:00:02Z", "completed": "2026-12-06T01:00:09Z"}]}
//!   ]
//! }
//! ```
//!
//! Fields:
//! - `schema`: always `wavelift.verify/v1`; a change that breaks readers changes it.
//! - `baseline_taken_at`: `null` when no baseline was given.
//! - `passed`: no check failed or errored. `exit_code`: what `wavelift verify` exits with
//!   (0 all pass or skipped, 1 failures, 2 regressions).
//! - `summary`: counts; `new` counts checks without a baseline entry that fail now.
//! - `waves[].vms[].checks[]`: `check` is the check as written in the plan and, with the VM
//!   name, identifies it across runs; `kind` is one of `ip-preserved`, `mac-preserved`,
//!   `icmp`, `tcp`, `http`, `https`, `dns`; `outcome` is `pass` | `fail` | `error` |
//!   `skipped`; `status` is `ok` | `fixed` | `regression` | `still-failing` | `new` |
//!   `skipped`; `before` is the baseline outcome or `null`; `latency_ms` a number or `null`;
//!   `at` RFC 3339 UTC; `attempts` ≥ 1.
//! - `cutovers`: each VM's cutover as the engine recorded it on its VirtualMachine
//!   (`migration` `cold` | `warm`; `downtime_ms` from the power-off request to every check
//!   passing; `consistent_copy` `false` after a hard stop; `backend` and `backend_steps`
//!   only with the Forklift backend: Forklift's pipeline steps with phase and times, as it
//!   reported them when the VM was verified); empty when none was recorded.
//! - Order: waves, VMs and checks in plan order.

use super::{group, Report, Summary};
use crate::checks::baseline::exit_code;
use serde_json::{json, Value};

/// The `schema` value.
pub const SCHEMA: &str = "wavelift.verify/v1";

pub fn to_value(r: &Report<'_>) -> Value {
    let total = Summary::of(r.diffs);
    let waves: Vec<Value> = group(r.diffs)
        .into_iter()
        .map(|(wave, vms)| {
            let s = Summary::of(vms.iter().flat_map(|(_, l)| l.iter().copied()));
            let vms: Vec<Value> = vms
                .into_iter()
                .map(|(vm, list)| {
                    let checks: Vec<Value> = list
                        .into_iter()
                        .map(|d| {
                            let x = &d.result;
                            json!({
                                "check": x.check,
                                "kind": x.kind,
                                "target": x.target,
                                "outcome": x.outcome,
                                "status": d.status,
                                "before": d.before,
                                "detail": x.detail,
                                "latency_ms": x.latency.map(|l| (l.as_micros() as f64) / 1000.0),
                                "at": x.at,
                                "attempts": x.attempts,
                            })
                        })
                        .collect();
                    json!({"name": vm, "checks": checks})
                })
                .collect();
            json!({"name": wave, "summary": s, "vms": vms})
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "plan": r.plan,
        "generated_at": r.generated_at,
        "baseline_taken_at": r.baseline_taken_at,
        "passed": total.passed(),
        "exit_code": exit_code(r.diffs),
        "summary": total,
        "waves": waves,
        "cutovers": r.cutovers,
    })
}

pub fn render(r: &Report<'_>) -> String {
    let mut s = serde_json::to_string_pretty(&to_value(r)).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
