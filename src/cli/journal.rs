//! The audit journal (`--journal FILE` of `run` and `tui`): one JSON line per mutating
//! call the engine made, and per operator override (a change window ignored), appended
//! and flushed as each happens, so a killed run's journal is whole up to its last call.
//! Timestamps are the wall clock (`at_ms`), also in a rehearsal.

use crate::engine::{EngineEvent, EngineHandle, EventKind};
use std::io::Write;
use std::path::Path;
use tokio::sync::mpsc;

/// An open journal.
pub(crate) struct Journal(std::io::BufWriter<std::fs::File>);

impl Journal {
    /// Opens (appends to) the journal: before anything reaches the cluster.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self(std::io::BufWriter::new(f)))
    }

    /// The `--journal` of a command: opened, or the error printed and the exit code.
    pub(crate) fn open_arg(path: Option<&Path>) -> Result<Option<Self>, std::process::ExitCode> {
        let Some(p) = path else { return Ok(None) };
        Self::open(p).map(Some).map_err(|e| {
            eprintln!("error: journal {}: {e}", p.display());
            std::process::ExitCode::from(super::EXIT_INVALID)
        })
    }

    /// Writes `ev` when it belongs in the journal (a `Mutation`).
    pub(crate) fn record(&mut self, ev: &EngineEvent) {
        if !matches!(ev.kind, EventKind::Mutation { .. }) {
            return;
        }
        if let Ok(line) = serde_json::to_string(ev) {
            let _ = writeln!(self.0, "{line}");
            let _ = self.0.flush();
        }
    }
}

/// The engine's events through `journal` on their way to the consumer (the TUI): every
/// event is passed on unchanged, in order.
pub(crate) fn tee(engine: EngineHandle, mut journal: Journal) -> EngineHandle {
    let EngineHandle {
        mut events,
        requests,
    } = engine;
    let (tx, rx) = mpsc::channel::<EngineEvent>(4096);
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            journal.record(&ev);
            if tx.send(ev).await.is_err() {
                break;
            }
        }
    });
    EngineHandle {
        events: rx,
        requests,
    }
}
