//! Watch streams: newline-delimited `{"type":..,"object":..}` events over a chunked
//! response, with resourceVersion resume, bookmarks, timeouts and 410 Expired.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use super::resources::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector, Selectable};
use super::status::ApiError;
use super::store::{event_line, raw_event_line, EventType, Store, WatchEvent};
use super::table;

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
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
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

impl WatchRequest {
    fn matches(&self, obj: &Selectable) -> bool {
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| obj.namespace == ns);
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The line to send for an event, if any: a change that makes an object start or
    /// stop matching the filter is sent as ADDED or DELETED.
    fn line_for(&self, ev: &WatchEvent) -> Option<Bytes> {
        let now = self.matches(&ev.object.sel);
        let ty = match (ev.kind, &ev.prev) {
            (EventType::Modified, Some(prev)) => match (self.matches(&prev.sel), now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            },
            (kind, _) if now => kind.as_str(),
            _ => return None,
        };
        if self.table {
            let row = table::table(self.res, vec![ev.object.value()], None);
            return Some(event_line(ty, &row));
        }
        if ty == ev.kind.as_str() {
            Some(ev.line.clone())
        } else {
            Some(raw_event_line(ty, &ev.object.json))
        }
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
}

fn streaming(rx: mpsc::Receiver<Bytes>) -> Response {
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(Ok::<Bytes, std::convert::Infallible>))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Start a watch and answer with its stream. A resourceVersion older than the retained
/// window answers 200 with one `ERROR` event holding a 410 `Status`, as a real API
/// server does; kube-rs's watcher then relists.
pub fn serve(
    store: &Store,
    req: WatchRequest,
    bookmark_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let since = if req.send_initial_events {
        None
    } else {
        req.since
    };
    let start = match store.watch(req.res, since) {
        Ok(s) => s,
        Err(e) => {
            let line = event_line("ERROR", &e.to_status());
            let _ = tx.try_send(line);
            return streaming(rx);
        }
    };
    tokio::spawn(async move {
        let mut last_rv = start.start_rv;
        for ev in &start.backlog {
            if let Some(line) = req.line_for(ev) {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            last_rv = last_rv.max(ev.rv);
        }
        if req.send_initial_events
            && req.bookmarks
            && tx.send(req.bookmark(last_rv, true)).await.is_err()
        {
            return;
        }
        let mut live = start.rx;
        let limit = match (req.timeout, req.max_duration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deadline = limit.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(bookmark_every.max(Duration::from_millis(10)));
        tick.tick().await;
        loop {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending::<()>().await,
                }
            };
            tokio::select! {
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(line) = req.line_for(&ev) {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let e = ApiError::expired(last_rv, last_rv + 1);
                        let _ = tx.send(event_line("ERROR", &e.to_status())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick(), if req.bookmarks => {
                    if tx.send(req.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = timeout => {
                    if req.bookmarks {
                        let _ = tx.send(req.bookmark(last_rv, false)).await;
                    }
                    return;
                }
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
            }
        }
    });
    streaming(rx)
}
