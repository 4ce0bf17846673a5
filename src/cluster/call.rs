//! Kubernetes API calls that survive a busy API server. kube-rs retries 429, 503 and 504
//! itself; a 500, a 502 or a dropped connection reaches the caller. Every call the engine
//! makes goes through [`call`], which retries those with [`RetryPolicy::API`] (short,
//! jittered backoff). Creating again after a lost answer is safe: the engine treats
//! `AlreadyExists` as done, and deletes treat `NotFound` as done.

use crate::retry::RetryPolicy;
use std::future::Future;

/// Whether a Kubernetes API error may go away on its own: a server error (500, 502, 503,
/// 504), throttling (429), or no answer at all (connection, timeout).
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// One API call, retried on transient errors; `what` names it in the log.
pub async fn call<T, F, Fut>(what: &str, op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    RetryPolicy::API
        .run(what, is_transient, op)
        .await
        .map_err(|f| f.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "y").with_code(code),
        ))
    }

    #[test]
    fn server_errors_are_transient_client_errors_are_not() {
        for c in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api(c)), "{c}");
        }
        for c in [400, 403, 404, 409, 422] {
            assert!(!is_transient(&api(c)), "{c}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_500_is_retried_a_404_is_not() {
        let mut calls = 0;
        let r = call("get", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(api(500))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.expect("third attempt"), 3);
        let mut calls = 0;
        let r: Result<(), _> = call("get", || {
            calls += 1;
            async { Err(api(404)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
