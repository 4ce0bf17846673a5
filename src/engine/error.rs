//! Why a command failed. The text of each error is the reason a failed VM shows (the TUI's
//! VM detail, `run`'s summary, the journal), so every variant names what was being done.

use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mutating call the cluster refused (it is in the journal too).
    #[error("{verb} {kind} {name}: {message}")]
    Refused {
        verb: &'static str,
        kind: &'static str,
        name: String,
        message: String,
    },
    /// A read (or a delete) that failed: `what` names the call.
    #[error("{what}: {message}")]
    Api { what: String, message: String },
    /// vCenter failed or refused a power operation.
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("no vSphere API configured: set `power_off = \"manual\"` or provide credentials")]
    NoSourceApi,
    /// The guest did not power off within `shutdown_timeout` (`shutdown = "guest"`).
    #[error("the guest did not shut down within {0} (shutdown = \"guest\"): power it off, or use \"guest-then-hard\"")]
    ShutdownTimeout(String),
    #[error("the plan has no disk {0} for this VM")]
    NoDisk(usize),
    /// An object by the VM's name exists but is not wavelift's (labels): left alone.
    #[error("{kind} {name} is not labelled for this plan and VM: left alone")]
    NotOurs { kind: &'static str, name: String },
}

impl Error {
    /// A failed read or delete of `what`.
    pub fn api(what: impl Into<String>, e: &kube::Error) -> Error {
        Error::Api {
            what: what.into(),
            message: api_message(e),
        }
    }
}

/// The API server's message and code (`"… (409)"`), or the client error.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// The API server answered with this HTTP code.
pub fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
