//! The engine's interface to front ends: an event stream out (consumed by the TUI and by
//! `wavelift run --output jsonl`) and a request channel in (operator actions). Front ends
//! never call the cluster themselves.

use super::decide::{Status, Step};
use crate::checks::result::{CheckResult, Outcome};
use crate::cluster::phase::MigrationPhase;
use serde::Serialize;
use tokio::sync::mpsc;

/// Unix milliseconds now (event time stamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The engine's one way to the front end. A front end that went away (closed its
/// receiver) loses nothing the cluster does not keep: what is sent to it then is dropped.
#[derive(Clone)]
pub struct Emitter(mpsc::Sender<EngineEvent>);

impl From<mpsc::Sender<EngineEvent>> for Emitter {
    fn from(events: mpsc::Sender<EngineEvent>) -> Emitter {
        Emitter(events)
    }
}

impl Emitter {
    pub fn new(events: mpsc::Sender<EngineEvent>) -> Emitter {
        Emitter(events)
    }

    pub async fn send(&self, event: EngineEvent) {
        let _ = self.0.send(event).await;
    }

    /// An event about `vm`, stamped now.
    pub async fn vm(&self, vm: &crate::plan::Vm, kind: EventKind) {
        self.send(EngineEvent::now(vm, kind)).await
    }

    /// A run-wide log line.
    pub async fn log(&self, level: LogLevel, message: String) {
        self.send(EngineEvent {
            vm: String::new(),
            wave: String::new(),
            at_ms: now_ms(),
            kind: EventKind::Log { level, message },
        })
        .await
    }
}

/// One thing that happened to one VM (or to the run, when `vm` is empty).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineEvent {
    /// VM name; empty for run-wide events.
    pub vm: String,
    pub wave: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// The VM's pipeline phase changed (or its import progress moved).
    Phase {
        step: Step,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        progress: Option<f64>,
        message: String,
        /// The import backend's own step (Forklift: `DiskTransferV2v`, `ImageConversion`…).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        backend_step: Option<String>,
    },
    /// The VMI runs on this node.
    Node { node: String },
    /// A Kubernetes condition of one of the VM's objects.
    Condition {
        object: String,
        type_: String,
        status: String,
        reason: String,
        message: String,
    },
    /// A Kubernetes Event about one of the VM's objects.
    KubeEvent {
        object: String,
        reason: String,
        message: String,
    },
    /// One check finished.
    Check {
        /// As written in the plan (`tcp:5432`, `icmp`, the URL, …).
        check: String,
        /// Serialised `pass`, `fail`, `error`, `skipped`.
        outcome: Outcome,
        detail: String,
        latency_ms: Option<u64>,
        /// The check's kind name ([`crate::plan::check::CheckKind::kind_name`]): `tcp`,
        /// `icmp`, `dns`, `https`, …
        kind: String,
    },
    /// Live migration progress.
    Migration {
        name: String,
        phase: MigrationPhase,
        source_node: Option<String>,
        target_node: Option<String>,
        lost_probes: u32,
        sent_probes: u32,
    },
    /// A mutating API call (the audit journal).
    Mutation {
        verb: String,
        kind: String,
        name: String,
        dry_run: bool,
        result: String,
    },
    /// Free-form log line.
    Log { level: LogLevel, message: String },
    /// A VM's cutover ended with every check passing: its downtime, from the power-off
    /// request to the moment its checks passed after boot.
    Cutover {
        /// `cold` (power-off, full import, boot) or `warm` (precopy rounds while the
        /// source ran, power-off, final delta, boot).
        migration: String,
        downtime_ms: u64,
        /// Multi-stage (warm) precopy rounds before the cutover; 0 for cold.
        precopy_rounds: u32,
        /// Bytes copied while the source was off: cold, every disk; warm, the areas vCenter
        /// says changed since the last precopy round (`QueryChangedDiskAreas`), `None` when
        /// it could not say.
        final_delta_bytes: Option<u64>,
        /// The guest shut down cleanly before the final copy; `false` after a hard stop
        /// (the copy is crash-consistent).
        consistent_copy: bool,
    },
    /// A wave's change window: the time left in it (its whole length until it opens), the
    /// cutovers not started yet and whether they fit, `max_parallel_cutovers` at a time, by
    /// estimates from this run's measured import throughput and the warm VMs' last precopy
    /// rounds. Sent when one of these changes (by the minute).
    WindowFit {
        left_ms: u64,
        open: bool,
        remaining: usize,
        needed_ms: u64,
        fits: bool,
        /// What the copy estimates assume: `a measured 212 MiB/s`, `an assumed 150 MiB/s`.
        throughput: String,
    },
    /// The wave finished (every VM verified, failed, rolled back or cancelled).
    WaveDone {
        verified: usize,
        failed: usize,
        cancelled: usize,
        /// VMs whose cutover had not started when the wave's window closed.
        postponed: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// What an operator can ask of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineRequest {
    StartWave(String),
    PauseWave(String),
    ResumeWave(String),
    /// Stop the wave: VMs before their cutover stop and their imports are deleted (the
    /// sources run on, untouched); VMs already in their cutover finish it. The next queued
    /// wave does not start. `StartWave` runs the wave again.
    CancelWave(String),
    /// Cancel one VM: as `CancelWave` for that VM alone; with Forklift, the VM is added to
    /// its Plan's running Migration's `spec.cancel` (Forklift powers its source back on).
    CancelVm(String),
    RetryVm(String),
    RollbackVm(String),
    ConfirmPowerOff(String),
    RunChecks(String),
    Migrate(String),
    /// The operator's override of the wave's change window, as `run --ignore-window` for
    /// one wave: its cutovers may start outside the window, in one too short, or before a
    /// VM's own cutover time. Postponed VMs are picked up when the wave is started again.
    IgnoreWindow(String),
    /// Stop driving the cluster (state lives in the cluster: nothing is lost).
    Shutdown,
}

/// A front end's end of the engine.
pub struct EngineHandle {
    pub events: mpsc::Receiver<EngineEvent>,
    pub requests: mpsc::Sender<EngineRequest>,
}

impl EventKind {
    /// The event of one finished check.
    pub fn check(r: &CheckResult) -> Self {
        EventKind::Check {
            check: r.check.clone(),
            outcome: r.outcome,
            detail: r.detail.clone(),
            latency_ms: r.latency.map(|d| d.as_millis() as u64),
            kind: r.kind.clone(),
        }
    }
}

impl EngineEvent {
    /// An event about `vm`, stamped now.
    pub fn now(vm: &crate::plan::Vm, kind: EventKind) -> Self {
        EngineEvent {
            vm: vm.name.value.clone(),
            wave: vm.wave.value.clone(),
            at_ms: now_ms(),
            kind,
        }
    }

    pub fn phase(
        vm: &str,
        wave: &str,
        at_ms: i64,
        step: Step,
        status: Status,
        progress: Option<f64>,
        message: impl Into<String>,
    ) -> Self {
        EngineEvent {
            vm: vm.to_string(),
            wave: wave.to_string(),
            at_ms,
            kind: EventKind::Phase {
                step,
                status,
                progress,
                message: message.into(),
                backend_step: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_as_one_flat_json_object() {
        let e = EngineEvent::phase(
            "db-01",
            "w1",
            1_000,
            Step::Importing,
            Status::Active,
            Some(0.5),
            "importing",
        );
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["event"], "phase");
        assert_eq!(v["vm"], "db-01");
        assert_eq!(v["step"], "importing");
        assert_eq!(v["status"]["state"], "active");
        assert_eq!(v["progress"], 0.5);
    }

    #[test]
    fn check_events_keep_their_json_keys_and_add_the_kind() {
        let e = EngineEvent {
            vm: "db-01".into(),
            wave: "w1".into(),
            at_ms: 1_000,
            kind: EventKind::Check {
                check: "tcp:5432".into(),
                outcome: Outcome::Skipped,
                detail: "no VMI yet".into(),
                latency_ms: Some(3),
                kind: "tcp".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&e).expect("json"),
            serde_json::json!({
                "vm": "db-01", "wave": "w1", "at_ms": 1_000, "event": "check",
                "check": "tcp:5432", "outcome": "skipped", "detail": "no VMI yet",
                "latency_ms": 3, "kind": "tcp",
            })
        );
        for (o, s) in [
            (Outcome::Pass, "pass"),
            (Outcome::Fail, "fail"),
            (Outcome::Error, "error"),
        ] {
            assert_eq!(serde_json::to_value(o).expect("json"), s);
        }
    }
}
