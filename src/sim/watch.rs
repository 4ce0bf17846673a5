//! Watch streams: newline-delimited `{"type":..,"object":..}` events over a chunked
//! response, with resourceVersion resume, bookmarks, timeouts and 410 Expired.
//!
//! A watch is a stream the response body pulls: it produces the next events only when the
//! client has taken the previous ones, reading them from the store's shared snapshot and
//! history ([`Store::watch`], [`Store::events_after`]). An object goes out as the store
//! keeps it (its JSON is sent by reference, between a short prefix and suffix), so a
//! watcher copies no object and buffers at most one batch of events, however slow it is;
//! one that falls behind the history is told its resourceVersion expired (410).

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::resources::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector, Selectable};
use super::store::{event_line, EventType, ObjKey, Snapshot, Store, Stored, WatchEvent};
use super::table;

/// Events read from the history at a time, by accounted bytes (at least one event).
const BATCH_BYTES: usize = 1024 * 1024;

/// Initial objects read from the snapshot at a time.
const SNAPSHOT_BATCH: usize = 64;

/// What a watch asks for.
pub struct WatchRequest {
    /// The resource.
    pub res: &'static ResourceDef,
    /// Namespace filter (`None`: all namespaces or cluster-scoped).
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// `resourceVersion` (`None` or `Some(0)`: current state first as ADDED events).
    pub since: Option<u64>,
    /// `timeoutSeconds`, as the client sent it (see [`watch_timeout`]).
    pub timeout: Option<i64>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true` (watch-list): current objects as ADDED, then a BOOKMARK
    /// annotated `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
    /// The server's cap on a watch's life (`None`: until the client goes away).
    pub max_duration: Option<Duration>,
    /// Send each object as a one-row `meta.k8s.io/v1` Table (kubectl `get -w`).
    pub table: bool,
}

/// How long a watch lasts, from its `timeoutSeconds` and the server's cap. The API server
/// turns `timeoutSeconds` into a `time.Duration` and ends the watch when it elapses, a
/// negative one at once; zero or none means its own default (staging/src/k8s.io/apiserver/
/// pkg/endpoints/handlers/get.go `ListResource`: `minRequestTimeout`, here the server's
/// cap, if any). Seconds beyond what a deadline can hold mean no end rather than an
/// overflow. `None`: no end.
pub fn watch_timeout(timeout: Option<i64>, max_duration: Option<Duration>) -> Option<Duration> {
    let asked = match timeout {
        None | Some(0) => None,
        Some(s) => Some(Duration::from_secs(u64::try_from(s).unwrap_or(0))),
    };
    match (asked, max_duration) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl WatchRequest {
    fn matches(&self, obj: &Selectable) -> bool {
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| obj.namespace == ns);
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The frames to send for an event, if any: a change that makes an object start or
    /// stop matching the filter is sent as ADDED or DELETED.
    fn frames_for(&self, ev: &WatchEvent, out: &mut VecDeque<Bytes>) {
        let now = self.matches(&ev.object.sel);
        let ty = match (ev.kind, &ev.prev) {
            (EventType::Modified, Some(prev)) => match (self.matches(&prev.sel), now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return,
            },
            (kind, _) if now => kind.as_str(),
            _ => return,
        };
        self.object_frames(ty, &ev.object, out);
    }

    fn object_frames(&self, ty: &str, object: &Stored, out: &mut VecDeque<Bytes>) {
        if self.table {
            let row = table::table(self.res, vec![object.value()], None);
            out.push_back(event_line(ty, &row));
            return;
        }
        out.push_back(Bytes::from(format!("{{\"type\":\"{ty}\",\"object\":")));
        out.push_back(object.json.clone());
        out.push_back(Bytes::from_static(b"}\n"));
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        event_line(
            "BOOKMARK",
            &json!({
                "kind": self.res.kind,
                "apiVersion": self.res.api_version(),
                "metadata": metadata,
            }),
        )
    }

    /// The namespace a snapshot walk is confined to.
    fn snapshot_namespace(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|_| self.res.namespaced)
    }
}

fn streaming(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// One watch in progress: what is ready to send and where it is.
struct Watching {
    store: Arc<Store>,
    req: WatchRequest,
    frames: VecDeque<Bytes>,
    /// Initial objects not sent yet, and the key of the last one sent.
    snapshot: Option<(Snapshot, Option<ObjKey>)>,
    last_rv: u64,
    changes: watch::Receiver<u64>,
    deadline: Option<Instant>,
    tick: Option<tokio::time::Interval>,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl Watching {
    /// The next frame to send, or `None` at the end of the watch.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            if self.done || *self.shutdown.borrow() {
                return None;
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.finish();
                continue;
            }
            if self.snapshot.is_some() {
                self.send_snapshot_batch();
                continue;
            }
            // Mark the changes seen before reading, so a write after the read wakes us.
            self.changes.borrow_and_update();
            match self
                .store
                .events_after(self.req.res, self.last_rv, BATCH_BYTES)
            {
                Err(e) => {
                    self.frames.push_back(event_line("ERROR", &e.to_status()));
                    self.done = true;
                }
                Ok(events) if !events.is_empty() => {
                    for ev in &events {
                        self.last_rv = ev.rv;
                        self.req.frames_for(ev, &mut self.frames);
                    }
                }
                Ok(_) => self.wait().await,
            }
        }
    }

    /// Queue the next initial objects (and, after the last, the bookmark ending them).
    fn send_snapshot_batch(&mut self) {
        let Some((objects, after)) = self.snapshot.take() else {
            return;
        };
        let ns = self.req.snapshot_namespace();
        let start = match &after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match ns {
                Some(n) => Bound::Included((n.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        let mut last = None;
        let mut taken = 0;
        for (k, o) in objects
            .range((start, Bound::Unbounded))
            .take_while(|((ons, _), _)| ns.is_none_or(|n| n == ons))
        {
            last = Some(k.clone());
            taken += 1;
            if self.req.matches(&o.sel) {
                self.req.object_frames("ADDED", o, &mut self.frames);
            }
            if taken == SNAPSHOT_BATCH {
                break;
            }
        }
        if taken == SNAPSHOT_BATCH {
            self.snapshot = Some((objects, last));
        } else if self.req.send_initial_events && self.req.bookmarks {
            self.frames.push_back(self.req.bookmark(self.last_rv, true));
        }
    }

    /// Wait for a write, a bookmark tick, the deadline or the server's shutdown.
    async fn wait(&mut self) {
        enum Woke {
            Changed,
            Gone,
            Tick,
            Deadline,
        }
        let deadline = self.deadline;
        let timeout = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        let tick = self.tick.as_mut();
        let tick = async move {
            match tick {
                Some(t) => {
                    t.tick().await;
                }
                None => futures::future::pending::<()>().await,
            }
        };
        let changes = &mut self.changes;
        let shutdown = &mut self.shutdown;
        let woke = tokio::select! {
            changed = changes.changed() => if changed.is_ok() { Woke::Changed } else { Woke::Gone },
            () = tick => Woke::Tick,
            () = timeout => Woke::Deadline,
            _ = shutdown.changed() => Woke::Gone,
        };
        match woke {
            Woke::Changed => {}
            Woke::Gone => self.done = true,
            Woke::Tick => {
                let bm = self.req.bookmark(self.last_rv, false);
                self.frames.push_back(bm);
            }
            Woke::Deadline => self.finish(),
        }
    }

    /// End the watch at its deadline (with a last bookmark when the client takes them).
    fn finish(&mut self) {
        if self.req.bookmarks {
            self.frames
                .push_back(self.req.bookmark(self.last_rv, false));
        }
        self.done = true;
    }
}

/// Start a watch and answer with its stream. A resourceVersion older than the retained
/// window answers 200 with one `ERROR` event holding a 410 `Status`, as a real API
/// server does; kube-rs's watcher then relists.
pub fn serve(
    store: &Arc<Store>,
    req: WatchRequest,
    bookmark_every: Duration,
    shutdown: watch::Receiver<bool>,
) -> Response {
    let since = if req.send_initial_events {
        None
    } else {
        req.since
    };
    let start = match store.watch(req.res, since) {
        Ok(s) => s,
        Err(e) => {
            let line = event_line("ERROR", &e.to_status());
            return streaming(Body::from(line));
        }
    };
    let now = Instant::now();
    // A deadline too far away to represent is no deadline.
    let deadline = watch_timeout(req.timeout, req.max_duration).and_then(|t| now.checked_add(t));
    let tick = req.bookmarks.then(|| {
        let every = bookmark_every.max(Duration::from_millis(10));
        tokio::time::interval_at(now + every, every)
    });
    let state = Watching {
        store: store.clone(),
        frames: VecDeque::new(),
        snapshot: start.snapshot.map(|s| (s, None)),
        last_rv: start.start_rv,
        changes: start.changes,
        deadline,
        tick,
        shutdown,
        done: false,
        req,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let frame = state.next().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(frame), state))
    });
    streaming(Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_clamp_instead_of_overflowing() {
        assert_eq!(watch_timeout(None, None), None);
        assert_eq!(watch_timeout(Some(0), None), None);
        assert_eq!(watch_timeout(Some(5), None), Some(Duration::from_secs(5)));
        assert_eq!(watch_timeout(Some(-3), None), Some(Duration::ZERO));
        let cap = Some(Duration::from_secs(60));
        assert_eq!(watch_timeout(Some(i64::MAX), cap), cap);
        let far = watch_timeout(Some(i64::MAX), None).expect("a duration");
        assert!(Instant::now()
            .checked_add(far)
            .is_none_or(|d| d > Instant::now()));
    }
}
