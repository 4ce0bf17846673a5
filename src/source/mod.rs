//! The migration source: power state and power operations on the source VMs.
//! `vsphere` talks to the vSphere Automation REST API (vCenter, or the sim's endpoint);
//! credentials come from a Secret or the environment and are never logged.

pub(crate) mod http;
pub mod vsphere;

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Power state of a source VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePower {
    On,
    Off,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A request that could not be sent or parsed for a reason retrying will not fix (bad
    /// URL, TLS pin mismatch, an answer that is not the API's JSON).
    #[error("vCenter: {0}")]
    Http(String),
    /// vCenter did not answer (connect refused, reset, timeout): worth another attempt.
    #[error("vCenter unreachable: {0}")]
    Unavailable(String),
    #[error("vCenter refused the credentials: {0}")]
    Unauthorized(String),
    #[error("source VM `{0}` not found in vCenter")]
    NotFound(String),
    #[error("vCenter answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        attempts: u32,
        last: Box<SourceError>,
    },
}

impl SourceError {
    /// Errors a later attempt can fix: no answer, or an answer that says "busy" (429, 500,
    /// 502, 503, 504). Refused credentials, unknown VMs and other 4xx are final.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Unavailable(_) => true,
            SourceError::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// Source operations retry transient errors with the crate's [`RetryPolicy`]. Power
/// operations are safe to repeat: a power-off that reached vCenter before the answer was
/// lost is answered `ALREADY_IN_DESIRED_STATE` the second time, which counts as done.
pub use crate::retry::RetryPolicy;

/// Runs a source operation under `policy`: transient errors are retried; the last error
/// after several attempts says how many there were.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    op: F,
) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SourceError>>,
{
    policy
        .run(what, SourceError::is_transient, op)
        .await
        .map_err(|f| {
            if f.attempts > 1 {
                SourceError::GaveUp {
                    attempts: f.attempts,
                    last: Box::new(f.error),
                }
            } else {
                f.error
            }
        })
}

/// What the engine needs from the source platform.
pub trait SourceOps: Send + Sync {
    fn power_state<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<SourcePower, SourceError>>;
    /// The power state of many VMs at once (`(name, instance UUID)`), in the same order:
    /// one list request per batch instead of two requests per VM. The outer error is a
    /// failure of the whole query; an inner one is about that VM (not found).
    fn power_states<'a>(
        &'a self,
        vms: &'a [(String, Option<String>)],
    ) -> BoxFuture<'a, Result<Vec<Result<SourcePower, SourceError>>, SourceError>>;
    fn power_off<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SourceError>>;
    fn power_on<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SourceError>>;
}

/// A password that never shows in `Debug` or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// vCenter credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl Credentials {
    /// From `WAVELIFT_VSPHERE_USER` / `WAVELIFT_VSPHERE_PASSWORD`.
    pub fn from_env() -> Option<Credentials> {
        let user = std::env::var("WAVELIFT_VSPHERE_USER").ok()?;
        let password = std::env::var("WAVELIFT_VSPHERE_PASSWORD").ok()?;
        Some(Credentials {
            user,
            password: Secret::new(password),
        })
    }

    /// From a Secret's data: CDI's `accessKeyId`/`secretKey` (the same Secret serves the
    /// vddk import), or `username`/`password`.
    pub fn from_secret_data(
        data: &std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Option<Credentials> {
        let get = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.clone()).ok());
        let user = get("accessKeyId").or_else(|| get("username"))?;
        let password = get("secretKey").or_else(|| get("password"))?;
        Some(Credentials {
            user,
            password: Secret::new(password),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_named() {
        assert!(SourceError::Unavailable("timed out after 20s".into()).is_transient());
        for status in [429, 500, 502, 503, 504] {
            let e = SourceError::Api {
                status,
                message: String::new(),
            };
            assert!(e.is_transient(), "{status}");
        }
        for e in [
            SourceError::Api {
                status: 400,
                message: String::new(),
            },
            SourceError::Unauthorized("no".into()),
            SourceError::NotFound("vm".into()),
            SourceError::Http("bad thumbprint".into()),
        ] {
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_gives_up_or_stops_at_final_ones() {
        let p = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        // Two 503s, then success.
        let mut calls = 0;
        let r = with_retry(&p, "power-off", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(SourceError::Api {
                        status: 503,
                        message: "busy".into(),
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.expect("third attempt succeeds"), 3);
        // Always unavailable: three attempts, then the last error with the count.
        let mut calls = 0;
        let r: Result<(), _> = with_retry(&p, "power-off", || {
            calls += 1;
            async { Err(SourceError::Unavailable("timed out after 20s".into())) }
        })
        .await;
        assert_eq!(calls, 3);
        let e = r.expect_err("gives up");
        assert_eq!(
            e.to_string(),
            "vCenter unreachable: timed out after 20s (gave up after 3 attempts)"
        );
        // A final error is returned at once, as it is.
        let mut calls = 0;
        let r: Result<(), _> = with_retry(&p, "power-off", || {
            calls += 1;
            async { Err(SourceError::NotFound("shop-db-01".into())) }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(matches!(r, Err(SourceError::NotFound(_))));
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials {
            user: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn credentials_from_cdi_or_plain_keys() {
        let mut d = std::collections::BTreeMap::new();
        d.insert("accessKeyId".to_string(), b"admin".to_vec());
        d.insert("secretKey".to_string(), b"pw".to_vec());
        let c = Credentials::from_secret_data(&d).expect("cdi keys");
        assert_eq!((c.user.as_str(), c.password.expose()), ("admin", "pw"));
        let mut d = std::collections::BTreeMap::new();
        d.insert("username".to_string(), b"u".to_vec());
        assert!(Credentials::from_secret_data(&d).is_none());
    }
}
