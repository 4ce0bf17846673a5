//! A tower layer for the engine's kube client that counts Kubernetes API requests, watches
//! apart (shared by the engine benches).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Default)]
pub struct Counts {
    /// Requests besides watches.
    pub requests: AtomicU64,
    pub watches: AtomicU64,
    /// Requests besides watches by method and resource (`POST datavolumes`), to say where
    /// they go.
    pub by_kind: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

// Each bench includes this file as its own module; not every one prints the breakdown.
#[allow(dead_code)]
impl Counts {
    /// `(method resource, count)`, most first.
    pub fn breakdown(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .by_kind
            .lock()
            .map(|m| m.iter().map(|(k, n)| (k.clone(), *n)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// The resource of an API path: the segment after `namespaces/NS/` (or the last plural
/// one), with a subresource (`virtualmachines/status`) kept.
fn resource_of(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(i) = segs.iter().position(|s| *s == "namespaces") {
        if let Some(kind) = segs.get(i + 2) {
            return match segs.get(i + 4) {
                Some(sub) => format!("{kind}/{sub}"),
                None => kind.to_string(),
            };
        }
        return "namespaces".into();
    }
    segs.last().map_or_else(String::new, |s| s.to_string())
}

#[derive(Clone)]
pub struct CountLayer(pub Arc<Counts>);

#[derive(Clone)]
pub struct CountService<S> {
    inner: S,
    counts: Arc<Counts>,
}

impl<S> tower::Layer<S> for CountLayer {
    type Service = CountService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountService {
            inner,
            counts: self.0.clone(),
        }
    }
}

impl<S, B> tower::Service<http::Request<B>> for CountService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let watch = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        let n = if watch {
            &self.counts.watches
        } else {
            &self.counts.requests
        };
        n.fetch_add(1, Ordering::Relaxed);
        if !watch {
            let key = format!("{} {}", req.method(), resource_of(req.uri().path()));
            if let Ok(mut m) = self.counts.by_kind.lock() {
                *m.entry(key).or_default() += 1;
            }
        }
        self.inner.call(req)
    }
}
