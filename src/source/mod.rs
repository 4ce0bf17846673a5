//! The migration source: power state and power operations on the source VMs.
//! `vsphere` talks to the vSphere Automation REST API (vCenter, or the sim's endpoint);
//! credentials come from a Secret or the environment and are never logged.

pub mod http;
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
    #[error("vCenter: {0}")]
    Http(String),
    #[error("vCenter refused the credentials: {0}")]
    Unauthorized(String),
    #[error("source VM `{0}` not found in vCenter")]
    NotFound(String),
    #[error("vCenter answered {status}: {message}")]
    Api { status: u16, message: String },
}

/// What the engine needs from the source platform.
pub trait SourceOps: Send + Sync {
    fn power_state<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<SourcePower, SourceError>>;
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
