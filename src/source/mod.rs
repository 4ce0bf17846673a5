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
    /// A vSphere fault by its type name (`ToolsUnavailable`, `ApplicationQuiesceFault`,
    /// `FilesystemQuiesceFault`, `SnapshotFault`, `InvalidState`, …) and its message: from a
    /// VI/JSON fault body (`_typeName`, `faultMessage`) or a failed task's `info.error`.
    #[error("vCenter fault {kind}: {message}")]
    Fault { kind: String, message: String },
    /// vCenter does not serve VI/JSON (older than 8.0 U1): warm migration is impossible,
    /// cold keeps working over the Automation REST API.
    #[error("vCenter has no VI/JSON API (needs 8.0 U1 or later): {0}")]
    NoVimJson(String),
    /// A vCenter task, or the wait for a VM's queued and running tasks to end, outlasted the
    /// client's task timeout (the task itself may still finish later).
    #[error("{what}: not finished after {after:?}")]
    TaskTimeout {
        what: String,
        after: std::time::Duration,
    },
    /// Changed block tracking is on but a disk still has no change ID after a stun.
    #[error("changed block tracking on `{vm}` did not take effect: {reason}")]
    CbtNotReady { vm: String, reason: String },
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
    /// Snapshots, CBT and guest shutdown (VI/JSON), when this source offers them.
    fn warm(&self) -> Option<&dyn WarmOps> {
        None
    }
    /// The VM's vSphere managed object id (`vm-42`): Forklift Plans name VMs by it.
    fn vm_id<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        let _ = (vm, uuid);
        Box::pin(async {
            Err(SourceError::Fault {
                kind: "NotSupported".into(),
                message: "this source cannot name a VM's managed object id".into(),
            })
        })
    }
}

/// A snapshot in a source VM's snapshot tree (flattened, tree order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Managed object reference value (`snapshot-123`): a CDI checkpoint's `current`.
    pub moref: String,
    pub name: String,
    /// vSphere quiesced the guest's file systems for it (VMware Tools ran); `false`: the
    /// copy is crash-consistent.
    pub quiesced: bool,
}

/// One virtual disk of a VM or of a snapshot, in device order (the plan's disk order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDisk {
    /// `backing.fileName`, `[ds1] vm/vm.vmdk` (a snapshot's names its delta,
    /// `[ds1] vm/vm-000001.vmdk`).
    pub file: String,
    /// `backing.changeId` (CBT); `None` or empty until CBT is on and the VM was stunned once.
    pub change_id: Option<String>,
}

/// What a warm migration needs to know about a source VM, read in one go (VM config,
/// runtime, snapshot tree, recent tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmView {
    pub power: SourcePower,
    /// `config.changeTrackingEnabled`.
    pub cbt_enabled: bool,
    /// The VM's disks now.
    pub disks: Vec<SourceDisk>,
    /// Every snapshot of the VM (not only wavelift's).
    pub snapshots: Vec<Snapshot>,
    /// A `CreateSnapshot_Task`/`RemoveSnapshot_Task` (or a CBT reconfigure) of the VM is
    /// queued or running (`recentTask`): no new snapshot operation may start. The vSphere
    /// client counts any queued or running task of the VM (vCenter runs one operation of a
    /// VM at a time, and task description ids are no stable contract).
    pub snapshot_task_running: bool,
    /// VMware Tools runs in the guest (graceful shutdown and quiescing need it).
    pub tools_running: bool,
    /// The ESXi host it runs on (`runtime.host`'s name): its disks are read through that
    /// host's NFC server.
    pub host: Option<String>,
}

impl WarmView {
    /// Every disk has a non-empty change ID: CBT is on and took effect.
    pub fn change_ids_ready(&self) -> bool {
        !self.disks.is_empty()
            && self
                .disks
                .iter()
                .all(|d| d.change_id.as_deref().is_some_and(|c| !c.is_empty()))
    }
}

/// The vim25 side of vSphere (VI/JSON, vCenter 8.0 U1+): snapshots, CBT and guest
/// shutdown, for warm migration and graceful power-off. Every method waits for any queued
/// or running snapshot task of the VM before it starts one, so a resumed run never stacks a
/// second operation on one still under way.
pub trait WarmOps: Send + Sync {
    /// The VI/JSON release vCenter serves (`8.0.3.0`), or [`SourceError::NoVimJson`].
    fn vim_release(&self) -> BoxFuture<'_, Result<String, SourceError>>;
    fn warm_view<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<WarmView, SourceError>>;
    /// The name of the ESXi host the VM runs on now (`runtime.host`), if vCenter says.
    fn host<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, SourceError>>;
    /// Turns CBT on (`ReconfigVM_Task`), then stuns the VM once (creates and removes a
    /// throw-away snapshot) so every disk gets a change ID. Done when
    /// [`WarmView::change_ids_ready`]; a no-op when it already is.
    fn enable_cbt<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SourceError>>;
    /// Creates snapshot `name` (no memory) and waits for the task. When a snapshot of that
    /// name exists already (a resumed run), returns it instead. A quiesce fault comes back
    /// as [`SourceError::Fault`] with its type name.
    fn create_snapshot<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
        name: &'a str,
        quiesce: bool,
    ) -> BoxFuture<'a, Result<Snapshot, SourceError>>;
    /// Removes snapshot `moref` (consolidating) and waits for the task; an absent
    /// snapshot counts as removed.
    fn remove_snapshot<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
        moref: &'a str,
    ) -> BoxFuture<'a, Result<(), SourceError>>;
    /// The snapshot's disks with their change IDs (device order).
    fn snapshot_disks<'a>(
        &'a self,
        moref: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SourceDisk>, SourceError>>;
    /// Bytes changed on disk `disk` (device order) between change ID `since` and snapshot `moref`
    /// (`QueryChangedDiskAreas`, summed over every returned area, paging by startOffset).
    fn changed_bytes<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
        moref: &'a str,
        disk: usize,
        since: &'a str,
    ) -> BoxFuture<'a, Result<u64, SourceError>>;
    /// Asks VMware Tools to shut the guest down (returns at once; the power state follows).
    /// Without Tools running: [`SourceError::Fault`] `ToolsUnavailable`.
    fn shutdown_guest<'a>(
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
