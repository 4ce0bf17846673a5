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
        self.inner.call(req)
    }
}
