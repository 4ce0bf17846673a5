//! The engine's event stream, consumed by the TUI and by `wavelift run --output jsonl`.

use super::decide::{Status, Step};
use serde::Serialize;

/// One change in one VM's pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineEvent {
    pub vm: String,
    pub wave: String,
    pub step: Step,
    pub status: Status,
    /// Import progress 0.0–1.0 while importing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    pub message: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}
