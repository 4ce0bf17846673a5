//! One driver per plan, at the command line: `wavelift run` and `wavelift tui` take the
//! plan's Lease ([`crate::cluster::lease`]) before the engine starts, stop the engine when
//! it is lost, and release it on exit.
//!
//! - A server-side dry run (`--dry-run`) persists nothing, so it drives nothing: it does not
//!   take the Lease (and runs while another wavelift drives the plan).
//! - The embedded rehearsal cluster is process-local: its Lease is taken all the same (one
//!   request; the code path is the one a real cluster sees).

use crate::cluster::lease::{self, Acquired, LeaseError, LeaseGuard, LeaseTarget, TakeReason};
use crate::engine::{EngineEvent, EngineHandle, EngineRequest, EventKind, LogLevel};
use crate::plan::Plan;
use tokio::sync::mpsc;

/// Takes the plan's Lease, telling the operator on stderr while another host's Lease is
/// watched and when a Lease is taken over.
pub(crate) async fn claim(plan: &Plan, client: kube::Client) -> Result<LeaseGuard, LeaseError> {
    let target = LeaseTarget::new(
        client,
        plan.meta.namespace.as_str(),
        plan.meta.name.as_str(),
    );
    let mut told: Option<String> = None;
    let (guard, acquired) = lease::acquire(&target, |w| {
        if told.as_deref() != Some(w.holder.as_str()) {
            eprintln!(
                "wavelift: Lease {} is held by {} (not a process of this host); taking it over in {} s unless it renews",
                w.lease,
                lease::holder_text(&w.holder, w.since.as_ref()),
                w.remaining.as_secs().max(1)
            );
            told = Some(w.holder.clone());
        }
    })
    .await?;
    let Acquired { reason, .. } = acquired;
    match reason {
        TakeReason::HolderGone(h) => eprintln!(
            "wavelift: took over Lease {} from {h}: its process no longer runs on this host",
            guard.describe()
        ),
        TakeReason::Expired(h) => eprintln!(
            "wavelift: took over Lease {} from {h}: it was not renewed for its lease duration",
            guard.describe()
        ),
        TakeReason::Absent | TakeReason::Released | TakeReason::Ours => {}
    }
    tracing::info!(lease = %guard.describe(), holder = %guard.identity(), "holding the plan's lease");
    Ok(guard)
}

/// Releases the Lease at exit; a failure is only worth a warning (the Lease expires, or
/// the next run on this host takes it over at once).
pub(crate) async fn release(guard: LeaseGuard) {
    let lease = guard.describe();
    match guard.release().await {
        Ok(true) => tracing::info!(%lease, "released the plan's lease"),
        Ok(false) => tracing::warn!(%lease, "the plan's lease was no longer ours at exit"),
        Err(e) => eprintln!("wavelift: warning: could not release the plan's lease: {e}"),
    }
}

/// The message of a lost Lease.
pub(crate) fn lost_message(plan: &Plan, why: &str) -> String {
    format!(
        "lost the Lease of plan {}: {why}. The engine was stopped so that two drivers never act at once; \
the migration state lives in the cluster: run again (or open `wavelift tui`) once the other driver is done",
        plan.meta.name.value
    )
}

/// Requests a read-only TUI may send while another wavelift drives the plan: only the
/// engine's shutdown (every other request would act on the cluster or mislead the operator
/// into thinking they paused the other run).
pub(crate) fn observer_allows(req: &EngineRequest) -> bool {
    matches!(req, EngineRequest::Shutdown)
}

/// Wraps an engine handle so that only [`observer_allows`] requests reach the engine; the
/// others are answered with a warning line in the event stream naming the driver.
pub(crate) fn observe_only(engine: EngineHandle, driver: String) -> EngineHandle {
    let EngineHandle {
        mut events,
        requests,
    } = engine;
    let (ev_tx, ev_rx) = mpsc::channel::<EngineEvent>(4096);
    let (req_tx, mut req_rx) = mpsc::channel::<EngineRequest>(64);
    let notes = ev_tx.downgrade();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if ev_tx.send(ev).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(req) = req_rx.recv().await {
            if observer_allows(&req) {
                let _ = requests.send(req).await;
                continue;
            }
            let Some(tx) = notes.upgrade() else { break };
            let _ = tx
                .send(EngineEvent {
                    vm: String::new(),
                    wave: String::new(),
                    at_ms: crate::engine::events::now_ms(),
                    kind: EventKind::Log {
                        level: LogLevel::Warn,
                        message: format!(
                            "read-only: the plan is driven by {driver}; {req:?} was not sent"
                        ),
                    },
                })
                .await;
        }
        // The TUI went away: stop the engine as dropping its handle would.
        let _ = requests.send(EngineRequest::Shutdown).await;
    });
    EngineHandle {
        events: ev_rx,
        requests: req_tx,
    }
}

/// Resolves on SIGINT or SIGTERM (a headless run then stops its engine and releases the
/// Lease instead of dying with it).
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observer_can_only_stop_its_engine() {
        assert!(observer_allows(&EngineRequest::Shutdown));
        for r in [
            EngineRequest::StartWave("w1".into()),
            EngineRequest::PauseWave("w1".into()),
            EngineRequest::ResumeWave("w1".into()),
            EngineRequest::CancelWave("w1".into()),
            EngineRequest::RetryVm("a".into()),
            EngineRequest::RollbackVm("a".into()),
            EngineRequest::ConfirmPowerOff("a".into()),
            EngineRequest::RunChecks("a".into()),
            EngineRequest::Migrate("a".into()),
        ] {
            assert!(!observer_allows(&r), "{r:?}");
        }
    }

    #[tokio::test]
    async fn observer_handle_forwards_events_and_answers_other_requests_itself() {
        let (ev_tx, ev_rx) = mpsc::channel(8);
        let (req_tx, mut req_rx) = mpsc::channel(8);
        let mut h = observe_only(
            EngineHandle {
                events: ev_rx,
                requests: req_tx,
            },
            "bob@jump-2/77".into(),
        );
        h.requests
            .send(EngineRequest::StartWave("w1".into()))
            .await
            .expect("send");
        let note = h.events.recv().await.expect("note");
        assert!(
            matches!(&note.kind, EventKind::Log { level: LogLevel::Warn, message } if message.contains("driven by bob@jump-2/77")),
            "{note:?}"
        );
        let ev = EngineEvent {
            vm: "a".into(),
            wave: "w1".into(),
            at_ms: 1,
            kind: EventKind::Log {
                level: LogLevel::Info,
                message: "x".into(),
            },
        };
        ev_tx.send(ev.clone()).await.expect("send");
        assert_eq!(h.events.recv().await, Some(ev));
        h.requests
            .send(EngineRequest::Shutdown)
            .await
            .expect("send");
        assert_eq!(req_rx.recv().await, Some(EngineRequest::Shutdown));
        assert!(
            req_rx.try_recv().is_err(),
            "StartWave never reached the engine"
        );
    }
}
