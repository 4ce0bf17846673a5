//! vim25 over JSON ("VI/JSON", vCenter 8.0 U1 and later): the [`WarmOps`] of
//! [`VsphereClient`] (snapshots, changed block tracking, what warm migration reads about a
//! VM), and graceful guest shutdown over the Automation REST API.
//!
//! Wire decisions:
//! - Release: `POST /api/vcenter/system?action=hello` (8.0.2+; sent without a session, and
//!   again with the REST session if that is refused); when `hello` is unknown (404, 400,
//!   405) or finds
//!   no release in common, `8.0.1.0`'s `ServiceInstance` content is probed; a 404 there too is
//!   [`SourceError::NoVimJson`]. The release is asked for once per client.
//! - Session: VI/JSON has its own, separate from the REST one: `SessionManager/{sm}/Login`
//!   (the `sessionManager` named by the unauthenticated `ServiceInstance` content), token
//!   from the `vmware-api-session-id` response header, sent on every later call. A 401 or a
//!   `NotAuthenticated` fault logs in again once (one login for all callers that saw the same
//!   stale token) and repeats the call once.
//! - Bodies carry `_typeName` on every object, the request itself included (named as in the
//!   VI/JSON OpenAPI spec: `LoginRequestType`, `CreateSnapshotRequestType`, …); a managed
//!   object reference is `{"_typeName":"ManagedObjectReference","type":…,"value":…}` in a
//!   body and only its value (percent-encoded) in a path.
//! - Faults: a non-2xx answer whose body is a vim fault (`_typeName`, `faultMessage`) is a
//!   final [`SourceError::Fault`], except the few faults retrying cures ([`TRANSIENT_FAULTS`]);
//!   a 429/5xx without a fault body is transient, as for REST.
//! - Retry: reads (GET) are retried one by one under the client's [`RetryPolicy`]
//!   (`super::RetryPolicy`). Operations that start a task are retried as a whole, never
//!   the bare POST: each first waits for the VM's queued and running tasks and reads the
//!   snapshot tree, so a retry after a lost answer finds the snapshot the first attempt made
//!   instead of making a second one.
//! - "A snapshot task is running" ([`WarmView::snapshot_task_running`], and what every
//!   operation waits for) means any queued or running task in the VM's `recentTask`, not only
//!   snapshot ones: vCenter runs one operation of a VM at a time anyway, and task
//!   `descriptionId`s are not a stable contract.
//! - Changed areas: `POST VirtualMachine/{vm}/QueryChangedDiskAreas` with a
//!   `QueryChangedDiskAreasRequestType` (`snapshot` reference, the disk's `deviceKey`,
//!   `startOffset`, `changeId`) answers a `DiskChangeInfo` (`startOffset`, `length`,
//!   `changedArea[]` of `DiskChangeExtent` `start`/`length`) — shapes from govmomi
//!   `vim25/types/types.go` and the VI/JSON API reference (`QueryChangedDiskAreasRequestType`,
//!   `DiskChangeInfo`: "repeatedly calling queryChangedDiskAreas until a map for the entire
//!   virtual disk has been obtained"). The client pages with `startOffset + length` until
//!   that reaches the snapshot config's `capacityInBytes`; an answer that does not move
//!   forward is an error rather than a loop. Each page is a read, retried on its own.
//! - Tasks are polled (`Task/{id}/info`) every [`VsphereClient::with_task_poll`] (1 s by
//!   default) up to [`VsphereClient::with_task_timeout`] (30 min by default), then
//!   [`SourceError::TaskTimeout`]; the same timeout bounds the wait for other tasks.

use super::super::{
    with_retry, BoxFuture, Snapshot, SourceDisk, SourceError, SourcePower, WarmOps, WarmView,
};
use super::{shorten, vapi_error_type, vapi_message, VsphereClient};
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

/// API releases offered to `hello`, most preferred first.
const RELEASES: [&str; 4] = ["9.0.0.0", "8.0.3.0", "8.0.2.0", "8.0.1.0"];
/// Probed when `hello` is unknown: vCenter 8.0 U1 serves VI/JSON but has no `hello`.
const PROBE_RELEASE: &str = "8.0.1.0";
const HELLO: &str = "/api/vcenter/system?action=hello";
const SESSION_HEADER: &str = "vmware-api-session-id";
/// The throw-away snapshot whose create and remove stun the VM so CBT takes effect.
pub(crate) const CBT_STUN_SNAPSHOT: &str = "wavelift-cbt-stun";
/// vim faults on a 5xx answer that a later attempt can cure: the host did not answer
/// vCenter, or another task holds the VM (every operation waits for those first).
const TRANSIENT_FAULTS: &[&str] = &["HostCommunication", "TaskInProgress"];

/// A managed object reference value as one path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn seg(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}

/// The VI/JSON side of a [`VsphereClient`]: release, session and task polling.
pub(super) struct VimState {
    release: OnceCell<String>,
    session_manager: OnceCell<String>,
    token: Mutex<Option<String>>,
    task_poll: Duration,
    task_timeout: Duration,
    /// ESXi host names by managed object id (`host-12` → `esx-07`): few, and they never
    /// change.
    hosts: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Default for VimState {
    fn default() -> Self {
        VimState {
            release: OnceCell::new(),
            session_manager: OnceCell::new(),
            token: Mutex::new(None),
            task_poll: Duration::from_secs(1),
            task_timeout: Duration::from_secs(30 * 60),
            hosts: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

/// Never shows the session token.
impl std::fmt::Debug for VimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let logged_in = self.token.try_lock().map(|t| t.is_some()).ok();
        f.debug_struct("VimState")
            .field("release", &self.release.get())
            .field("session_manager", &self.session_manager.get())
            .field("logged_in", &logged_in)
            .field("task_poll", &self.task_poll)
            .field("task_timeout", &self.task_timeout)
            .finish()
    }
}

/// The value of a managed object reference: a flat one (`{"type":…,"value":…}`), one wrapped
/// in `_value` (`{"_typeName":…,"_value":{…}}` or `{"_value":"task-1"}`), or a bare string.
fn moref_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => match o.get("value") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => o.get("_value").and_then(moref_value),
        },
        _ => None,
    }
}

/// The elements of a list, bare or boxed (`{"_typeName":"ArrayOf…","_value":[…]}`).
fn list_of(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        Some(Value::Object(o)) => match o.get("_value") {
            Some(Value::Array(a)) => a,
            _ => &[],
        },
        _ => &[],
    }
}

/// The text of a `faultMessage` (a list of LocalizableMessage, one, or a string): the
/// `message`s, else the `key`s, joined by `; `.
fn messages(v: Option<&Value>) -> Option<String> {
    let items: Vec<&Value> = match v? {
        Value::Array(a) => a.iter().collect(),
        Value::String(s) if !s.trim().is_empty() => return Some(s.trim().to_string()),
        other => vec![other],
    };
    let pick = |field: &str| -> Vec<String> {
        items
            .iter()
            .filter_map(|m| m.get(field)?.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let texts = pick("message");
    let texts = if texts.is_empty() { pick("key") } else { texts };
    (!texts.is_empty()).then(|| texts.join("; "))
}

fn text_field(v: &Value, field: &str) -> Option<String> {
    v.get(field)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A vim fault's type name and message, from a fault body (`{"_typeName":"ToolsUnavailable",
/// "faultMessage":[…]}`) or a LocalizedMethodFault (`{"fault":{…},"localizedMessage":…}`, a
/// task's `info.error`). The message is empty when the fault carries none.
fn fault_of(v: &Value) -> Option<(String, String)> {
    let obj = v.as_object()?;
    if let Some(inner) = obj.get("fault").filter(|f| f.get("_typeName").is_some()) {
        let (kind, message) = fault_of(inner)?;
        let message = text_field(v, "localizedMessage").unwrap_or(message);
        return Some((kind, message));
    }
    let kind = obj.get("_typeName")?.as_str()?.trim();
    if kind.is_empty() {
        return None;
    }
    let message = messages(obj.get("faultMessage"))
        .or_else(|| text_field(v, "message"))
        .or_else(|| text_field(v, "localizedMessage"))
        .or_else(|| messages(obj.get("msg")))
        .unwrap_or_default();
    Some((kind.to_string(), message))
}

/// The error of a non-2xx VI/JSON answer: the vim fault it carries (final, unless in
/// [`TRANSIENT_FAULTS`]), or the status with the body's text.
fn vim_error(status: u16, body: &[u8]) -> SourceError {
    let fault = serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(fault_of);
    match fault {
        Some((kind, message)) => {
            let message = if message.is_empty() {
                shorten(body)
            } else {
                message
            };
            if TRANSIENT_FAULTS.contains(&kind.as_str())
                && matches!(status, 429 | 500 | 502 | 503 | 504)
            {
                SourceError::Api {
                    status,
                    message: format!("{kind}: {message}"),
                }
            } else {
                SourceError::Fault { kind, message }
            }
        }
        None => SourceError::Api {
            status,
            message: vapi_message(body),
        },
    }
}

/// A failed task's fault (`info.error`, a LocalizedMethodFault).
fn task_fault(info: &Value) -> SourceError {
    let error = info.get("error").filter(|e| !e.is_null());
    match error.and_then(fault_of) {
        Some((kind, message)) if !message.is_empty() => SourceError::Fault { kind, message },
        Some((kind, _)) => SourceError::Fault {
            kind,
            message: shorten(error.map(Value::to_string).unwrap_or_default().as_bytes()),
        },
        None => SourceError::Fault {
            kind: "VimFault".into(),
            message: match error {
                Some(e) => shorten(e.to_string().as_bytes()),
                None => "the task failed without saying why".into(),
            },
        },
    }
}

fn is_fault(e: &SourceError, which: &str) -> bool {
    matches!(e, SourceError::Fault { kind, .. } if kind == which)
}

fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The answer says the VI/JSON session is gone: 401, or a `NotAuthenticated` fault.
fn not_authenticated(res: &super::super::http::Response) -> bool {
    res.status == 401
        || (!is_2xx(res.status)
            && serde_json::from_slice::<Value>(&res.body)
                .ok()
                .as_ref()
                .and_then(fault_of)
                .is_some_and(|(kind, _)| kind == "NotAuthenticated"))
}

fn json_body(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}

fn content_path(release: &str) -> String {
    format!("/sdk/vim25/{release}/ServiceInstance/ServiceInstance/content")
}

/// The `sessionManager` a ServiceContent names.
fn session_manager_of(body: &[u8]) -> Result<String, SourceError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("sessionManager").and_then(moref_value))
        .ok_or_else(|| {
            SourceError::Http(format!(
                "the ServiceInstance content names no sessionManager: {}",
                shorten(body)
            ))
        })
}

/// The snapshot tree (`rootSnapshotList`, each node's `childSnapshotList`) depth-first.
fn flatten(list: Option<&Value>, out: &mut Vec<Snapshot>) {
    for node in list_of(list) {
        if let Some(moref) = node.get("snapshot").and_then(moref_value) {
            out.push(Snapshot {
                moref,
                name: text_field(node, "name").unwrap_or_default(),
                quiesced: node
                    .get("quiesced")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
        flatten(node.get("childSnapshotList"), out);
    }
}

/// The virtual disks of a VirtualMachineConfigInfo (a VM's or a snapshot's), device order.
fn disks_of(config: &Value) -> Vec<SourceDisk> {
    let hardware = config.get("hardware");
    list_of(hardware.and_then(|h| h.get("device")))
        .iter()
        .filter(|d| d.get("_typeName").and_then(Value::as_str) == Some("VirtualDisk"))
        .map(|d| {
            let backing = d.get("backing").cloned().unwrap_or(Value::Null);
            SourceDisk {
                file: text_field(&backing, "fileName").unwrap_or_default(),
                change_id: text_field(&backing, "changeId"),
            }
        })
        .collect()
}

/// The device `key` and capacity in bytes of every VirtualDisk of a config, device order
/// (`capacityInBytes`; `capacityInKB` × 1024 when only that is set).
fn disk_keys(config: &Value) -> Vec<(Option<i64>, Option<u64>)> {
    let hardware = config.get("hardware");
    list_of(hardware.and_then(|h| h.get("device")))
        .iter()
        .filter(|d| d.get("_typeName").and_then(Value::as_str) == Some("VirtualDisk"))
        .map(|d| {
            let capacity = d
                .get("capacityInBytes")
                .and_then(Value::as_u64)
                .or_else(|| d.get("capacityInKB")?.as_u64()?.checked_mul(1024));
            (d.get("key").and_then(Value::as_i64), capacity)
        })
        .collect()
}

/// One `DiskChangeInfo`: `startOffset`, `length` and the bytes of its `changedArea`s.
fn change_info(v: &Value) -> Option<(u64, u64, u64)> {
    let start = v.get("startOffset")?.as_u64()?;
    let length = v.get("length")?.as_u64()?;
    let mut bytes = 0u64;
    for area in list_of(v.get("changedArea")) {
        bytes = bytes.checked_add(area.get("length")?.as_u64()?)?;
    }
    Some((start, length, bytes))
}

impl VsphereClient {
    /// How often a vCenter task is polled, and the VM's running tasks re-read while waiting
    /// for them (default 1 s).
    pub fn with_task_poll(mut self, every: Duration) -> Self {
        self.vim.task_poll = every;
        self
    }

    /// How long a vCenter task (or the wait for a VM's running tasks) may take before
    /// [`SourceError::TaskTimeout`] (default 30 min).
    pub fn with_task_timeout(mut self, after: Duration) -> Self {
        self.vim.task_timeout = after;
        self
    }

    /// The VI/JSON release, asked for once (transient errors retried).
    async fn release(&self) -> Result<String, SourceError> {
        self.vim
            .release
            .get_or_try_init(|| {
                with_retry(&self.retry, "find the VI/JSON release", || {
                    self.discover_release()
                })
            })
            .await
            .cloned()
    }

    async fn discover_release(&self) -> Result<String, SourceError> {
        let body = json_body(&json!({ "api_releases": RELEASES }));
        let mut res = self
            .raw("POST", HELLO, None, false, Some(body.clone()))
            .await?;
        if matches!(res.status, 401 | 403) {
            res = self.call_with("POST", HELLO, Some(body)).await?;
        }
        let mut tried = Vec::new();
        match res.status {
            s if is_2xx(s) => {
                let release = serde_json::from_slice::<Value>(&res.body)
                    .ok()
                    .and_then(|v| Some(v.get("api_release")?.as_str()?.trim().to_string()))
                    .ok_or_else(|| {
                        SourceError::Http(format!(
                            "POST {HELLO}: no api_release in {}",
                            shorten(&res.body)
                        ))
                    })?;
                if !release.is_empty() {
                    tracing::debug!(target: "wavelift::vim", "VI/JSON release {release}");
                    return Ok(release);
                }
                tried.push(format!(
                    "POST {HELLO}: no release in common with {}",
                    RELEASES.join(", ")
                ));
            }
            // Older vCenters do not know the operation (404, or 400/405 from a front end).
            s @ (400 | 404 | 405) => tried.push(format!("POST {HELLO}: {s}")),
            s => {
                return Err(SourceError::Api {
                    status: s,
                    message: vapi_message(&res.body),
                })
            }
        }
        let probe = content_path(PROBE_RELEASE);
        let res = self.raw("GET", &probe, None, false, None).await?;
        match res.status {
            s if is_2xx(s) => {
                if let Ok(sm) = session_manager_of(&res.body) {
                    let _ = self.vim.session_manager.set(sm);
                }
                tracing::debug!(target: "wavelift::vim", "VI/JSON release {PROBE_RELEASE} (probed)");
                Ok(PROBE_RELEASE.to_string())
            }
            404 => {
                tried.push(format!("GET {probe}: 404"));
                Err(SourceError::NoVimJson(tried.join("; ")))
            }
            s => Err(vim_error(s, &res.body)),
        }
    }

    async fn session_manager(&self, release: &str) -> Result<String, SourceError> {
        self.vim
            .session_manager
            .get_or_try_init(|| async {
                let res = self
                    .raw("GET", &content_path(release), None, false, None)
                    .await?;
                if !is_2xx(res.status) {
                    return Err(vim_error(res.status, &res.body));
                }
                session_manager_of(&res.body)
            })
            .await
            .cloned()
    }

    async fn vim_login(&self, release: &str) -> Result<String, SourceError> {
        let sm = self.session_manager(release).await?;
        let user = &self.creds.user;
        let body = json!({
            "_typeName": "LoginRequestType",
            "userName": user,
            "password": self.creds.password.expose(),
        });
        let path = format!("/sdk/vim25/{release}/SessionManager/{}/Login", seg(&sm));
        tracing::debug!(target: "wavelift::vim", "VI/JSON login as `{user}`");
        let res = self
            .raw("POST", &path, None, false, Some(json_body(&body)))
            .await?;
        if is_2xx(res.status) {
            return res
                .headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    SourceError::Http(format!("VI/JSON login: no `{SESSION_HEADER}` header"))
                });
        }
        let e = vim_error(res.status, &res.body);
        if matches!(res.status, 401 | 403) || is_fault(&e, "InvalidLogin") {
            return Err(SourceError::Unauthorized(format!(
                "VI/JSON login as `{user}` refused"
            )));
        }
        Err(e)
    }

    /// The VI/JSON session token; a new login when there is none, or when the one the
    /// caller saw refused (`stale`) is still the current one.
    async fn vim_token(&self, release: &str, stale: Option<&str>) -> Result<String, SourceError> {
        let mut token = self.vim.token.lock().await;
        if let Some(current) = token.as_deref() {
            if stale != Some(current) {
                return Ok(current.to_string());
            }
        }
        let new = self.vim_login(release).await?;
        *token = Some(new.clone());
        Ok(new)
    }

    /// One VI/JSON call, `path` below `/sdk/vim25/{release}/`, with the session (logging in
    /// again once when it expired). The answer's JSON; `None` for an unset value (204, an
    /// empty body, `null`).
    async fn vim(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, SourceError> {
        let release = self.release().await?;
        let full = format!("/sdk/vim25/{release}/{path}");
        let body = body.map(json_body);
        let token = self.vim_token(&release, None).await?;
        tracing::debug!(target: "wavelift::vim", "{method} {full}");
        let mut res = self
            .raw(method, &full, Some(&token), false, body.clone())
            .await?;
        if not_authenticated(&res) {
            tracing::debug!(target: "wavelift::vim", "VI/JSON session expired; logging in again");
            let token = self.vim_token(&release, Some(&token)).await?;
            res = self.raw(method, &full, Some(&token), false, body).await?;
        }
        if res.status == 401 {
            return Err(SourceError::Unauthorized(format!(
                "{method} {full}: 401 after a new login"
            )));
        }
        if !is_2xx(res.status) {
            return Err(vim_error(res.status, &res.body));
        }
        let text = res.body.trim_ascii();
        if text.is_empty() {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(text)
            .map_err(|e| SourceError::Http(format!("{method} {full}: {e}")))?;
        Ok(Some(v).filter(|v| !v.is_null()))
    }

    /// A VI/JSON read, transient errors retried.
    async fn vim_get(&self, path: &str) -> Result<Option<Value>, SourceError> {
        with_retry(&self.retry, &format!("GET {path}"), || {
            self.vim("GET", path, None)
        })
        .await
    }

    /// POSTs a `…_Task` method (not retried: see the module doc) and returns the Task's
    /// reference value.
    async fn start_task(&self, path: &str, body: &Value) -> Result<String, SourceError> {
        let answer = self.vim("POST", path, Some(body)).await?;
        answer.as_ref().and_then(moref_value).ok_or_else(|| {
            SourceError::Http(format!("POST {path}: no Task reference in the answer"))
        })
    }

    async fn task_info(&self, task: &str) -> Result<Value, SourceError> {
        self.vim_get(&format!("Task/{}/info", seg(task)))
            .await?
            .ok_or_else(|| SourceError::Http(format!("task {task} has no info")))
    }

    /// Sleeps one poll interval, or fails with [`SourceError::TaskTimeout`] once the wait
    /// begun at `start` reached the task timeout.
    async fn next_poll(&self, start: Instant, what: &str) -> Result<(), SourceError> {
        let elapsed = start.elapsed();
        let limit = self.vim.task_timeout;
        if elapsed >= limit {
            return Err(SourceError::TaskTimeout {
                what: what.to_string(),
                after: limit,
            });
        }
        tokio::time::sleep(self.vim.task_poll.min(limit - elapsed)).await;
        Ok(())
    }

    /// Polls the task until it succeeded (its `result`, when set) or failed (its fault).
    async fn wait_task(&self, task: &str, what: &str) -> Result<Option<Value>, SourceError> {
        let start = Instant::now();
        loop {
            let info = self.task_info(task).await?;
            match info.get("state").and_then(Value::as_str) {
                Some("success") => {
                    return Ok(info.get("result").filter(|r| !r.is_null()).cloned());
                }
                Some("error") => return Err(task_fault(&info)),
                Some("queued" | "running") => {}
                other => {
                    return Err(SourceError::Http(format!(
                        "{what}: task {task} in an unknown state {other:?}"
                    )))
                }
            }
            self.next_poll(start, &format!("{what} ({task})")).await?;
        }
    }

    /// The VM's queued or running tasks (from `recentTask`); a task vCenter no longer knows
    /// counts as finished.
    async fn busy_tasks(&self, moid: &str) -> Result<Vec<String>, SourceError> {
        let recent = self
            .vim_get(&format!("VirtualMachine/{}/recentTask", seg(moid)))
            .await?;
        let mut busy = Vec::new();
        for task in list_of(recent.as_ref()).iter().filter_map(moref_value) {
            match self.task_info(&task).await {
                Ok(info) => {
                    if matches!(
                        info.get("state").and_then(Value::as_str),
                        Some("queued" | "running")
                    ) {
                        busy.push(task);
                    }
                }
                Err(e) if is_fault(&e, "ManagedObjectNotFound") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(busy)
    }

    /// Waits until the VM has no queued or running task (poll interval, task timeout).
    async fn wait_idle(&self, vm: &str, moid: &str) -> Result<(), SourceError> {
        let start = Instant::now();
        loop {
            let busy = self.busy_tasks(moid).await?;
            if busy.is_empty() {
                return Ok(());
            }
            tracing::debug!(target: "wavelift::vim", "`{vm}`: waiting for {}", busy.join(", "));
            let what = format!("waiting for the tasks of `{vm}` ({})", busy.join(", "));
            self.next_poll(start, &what).await?;
        }
    }

    async fn vm_property(&self, moid: &str, property: &str) -> Result<Option<Value>, SourceError> {
        self.vim_get(&format!("VirtualMachine/{}/{property}", seg(moid)))
            .await
    }

    /// The VM's snapshot tree, flattened depth-first; unset means none.
    async fn snapshots(&self, moid: &str) -> Result<Vec<Snapshot>, SourceError> {
        let info = self.vm_property(moid, "snapshot").await?;
        let mut out = Vec::new();
        if let Some(info) = info {
            flatten(info.get("rootSnapshotList"), &mut out);
        }
        Ok(out)
    }

    /// The name of the ESXi host a VM's `runtime` names (`runtime.host`), if any.
    async fn host_of_runtime(
        &self,
        runtime: Option<&Value>,
    ) -> Result<Option<String>, SourceError> {
        let Some(id) = runtime
            .and_then(|r| r.get("host"))
            .and_then(|h| h.get("value"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let known = self.vim.hosts.lock().ok().and_then(|m| m.get(id).cloned());
        if let Some(name) = known {
            return Ok(Some(name));
        }
        let name = self
            .vim_get(&format!("HostSystem/{}/name", seg(id)))
            .await?
            .and_then(|v| v.as_str().map(str::to_string));
        if let (Some(n), Ok(mut m)) = (&name, self.vim.hosts.lock()) {
            m.insert(id.to_string(), n.clone());
        }
        Ok(name)
    }

    async fn view(&self, moid: &str) -> Result<WarmView, SourceError> {
        let config = self
            .vm_property(moid, "config")
            .await?
            .ok_or_else(|| SourceError::Http(format!("VM {moid} has no config")))?;
        let runtime = self.vm_property(moid, "runtime").await?;
        let power = match runtime
            .as_ref()
            .and_then(|r| r.get("powerState"))
            .and_then(Value::as_str)
        {
            Some("poweredOn") => SourcePower::On,
            Some("poweredOff" | "suspended") => SourcePower::Off,
            other => {
                return Err(SourceError::Http(format!(
                    "VM {moid}: unknown runtime.powerState {other:?}"
                )))
            }
        };
        let snapshots = self.snapshots(moid).await?;
        let guest = self.vm_property(moid, "guest").await?;
        let tools_running = guest
            .as_ref()
            .and_then(|g| g.get("toolsRunningStatus"))
            .and_then(Value::as_str)
            == Some("guestToolsRunning");
        let snapshot_task_running = !self.busy_tasks(moid).await?.is_empty();
        let host = self.host_of_runtime(runtime.as_ref()).await?;
        Ok(WarmView {
            host,
            power,
            cbt_enabled: config
                .get("changeTrackingEnabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            disks: disks_of(&config),
            snapshots,
            snapshot_task_running,
            tools_running,
        })
    }

    /// The VM's managed object id (the REST lookup, cached), transient errors retried.
    async fn moid(&self, vm: &str, uuid: Option<&str>) -> Result<String, SourceError> {
        with_retry(&self.retry, &format!("find `{vm}`"), || {
            self.find_vm(vm, uuid)
        })
        .await
    }

    async fn create_snapshot_once(
        &self,
        vm: &str,
        moid: &str,
        name: &str,
        quiesce: bool,
        description: &str,
    ) -> Result<Snapshot, SourceError> {
        self.wait_idle(vm, moid).await?;
        if let Some(s) = self
            .snapshots(moid)
            .await?
            .into_iter()
            .find(|s| s.name == name)
        {
            tracing::debug!(target: "wavelift::vim", "`{vm}`: snapshot `{name}` exists ({})", s.moref);
            return Ok(s);
        }
        let body = json!({
            "_typeName": "CreateSnapshotRequestType",
            "name": name,
            "description": description,
            "memory": false,
            "quiesce": quiesce,
        });
        let what = format!("snapshot `{name}` of `{vm}`");
        let task = self
            .start_task(
                &format!("VirtualMachine/{}/CreateSnapshot_Task", seg(moid)),
                &body,
            )
            .await?;
        tracing::info!(target: "wavelift::vim", "`{vm}`: creating snapshot `{name}` ({task})");
        let created = self.wait_task(&task, &what).await?;
        let created = created.as_ref().and_then(moref_value);
        let tree = self.snapshots(moid).await?;
        tree.iter()
            .find(|s| created.as_ref() == Some(&s.moref))
            .or_else(|| tree.iter().find(|s| s.name == name))
            .cloned()
            .ok_or_else(|| {
                SourceError::Http(format!(
                    "{what}: the task succeeded ({}) but the snapshot is not in the tree",
                    created.as_deref().unwrap_or("no result")
                ))
            })
    }

    async fn remove_snapshot_once(
        &self,
        vm: &str,
        moid: &str,
        snapshot: &str,
    ) -> Result<(), SourceError> {
        self.wait_idle(vm, moid).await?;
        if !self
            .snapshots(moid)
            .await?
            .iter()
            .any(|s| s.moref == snapshot)
        {
            return Ok(());
        }
        let body = json!({
            "_typeName": "RemoveSnapshotRequestType",
            "removeChildren": false,
            "consolidate": true,
        });
        let what = format!("remove snapshot {snapshot} of `{vm}`");
        let done = async {
            let task = self
                .start_task(
                    &format!("VirtualMachineSnapshot/{}/RemoveSnapshot_Task", seg(snapshot)),
                    &body,
                )
                .await?;
            tracing::info!(target: "wavelift::vim", "`{vm}`: removing snapshot {snapshot} ({task})");
            self.wait_task(&task, &what).await
        }
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_fault(&e, "ManagedObjectNotFound") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn enable_cbt_once(&self, vm: &str, moid: &str) -> Result<(), SourceError> {
        let view = self.view(moid).await?;
        if view.change_ids_ready() {
            return Ok(());
        }
        let not_ready = |reason: String| SourceError::CbtNotReady {
            vm: vm.to_string(),
            reason,
        };
        if view.disks.is_empty() {
            return Err(not_ready("the VM has no virtual disk".into()));
        }
        self.wait_idle(vm, moid).await?;
        // A stun snapshot left by an interrupted run: removing it is the stun.
        let leftovers: Vec<Snapshot> = self
            .snapshots(moid)
            .await?
            .into_iter()
            .filter(|s| s.name == CBT_STUN_SNAPSHOT)
            .collect();
        for s in &leftovers {
            self.remove_snapshot_once(vm, moid, &s.moref).await?;
        }
        let view = if leftovers.is_empty() {
            view
        } else {
            let view = self.view(moid).await?;
            if view.change_ids_ready() {
                return Ok(());
            }
            view
        };
        if !view.cbt_enabled {
            let body = json!({
                "_typeName": "ReconfigVMRequestType",
                "spec": {
                    "_typeName": "VirtualMachineConfigSpec",
                    "changeTrackingEnabled": true,
                },
            });
            let task = self
                .start_task(
                    &format!("VirtualMachine/{}/ReconfigVM_Task", seg(moid)),
                    &body,
                )
                .await?;
            tracing::info!(target: "wavelift::vim", "`{vm}`: turning changed block tracking on ({task})");
            self.wait_task(&task, &format!("turn CBT on for `{vm}`"))
                .await?;
        }
        let stun = self
            .create_snapshot_once(
                vm,
                moid,
                CBT_STUN_SNAPSHOT,
                false,
                "wavelift: stuns the VM so changed block tracking takes effect; removed at once",
            )
            .await?;
        self.remove_snapshot_once(vm, moid, &stun.moref).await?;
        let view = self.view(moid).await?;
        if view.change_ids_ready() {
            return Ok(());
        }
        Err(not_ready(if !view.cbt_enabled {
            "changeTrackingEnabled is still false after the reconfigure".into()
        } else {
            let missing: Vec<&str> = view
                .disks
                .iter()
                .filter(|d| d.change_id.is_none())
                .map(|d| d.file.as_str())
                .collect();
            format!("no change ID after a stun on {}", missing.join(", "))
        }))
    }

    /// `QueryChangedDiskAreas` of disk `disk` of snapshot `snapshot` since `since`, paged by
    /// `startOffset + length` up to the disk's capacity: the changed bytes summed.
    async fn changed_bytes_of(
        &self,
        moid: &str,
        snapshot: &str,
        disk: usize,
        since: &str,
    ) -> Result<u64, SourceError> {
        let config = self
            .vim_get(&format!("VirtualMachineSnapshot/{}/config", seg(snapshot)))
            .await?
            .ok_or_else(|| SourceError::Http(format!("snapshot {snapshot} has no config")))?;
        let disks = disk_keys(&config);
        let (key, capacity) = match disks.get(disk) {
            Some((Some(key), Some(capacity))) => (*key, *capacity),
            Some(_) => {
                return Err(SourceError::Http(format!(
                    "snapshot {snapshot}: disk {disk} has no device key or capacity"
                )))
            }
            None => {
                return Err(SourceError::Http(format!(
                    "snapshot {snapshot} has {} disk(s), no disk {disk}",
                    disks.len()
                )))
            }
        };
        let path = format!("VirtualMachine/{}/QueryChangedDiskAreas", seg(moid));
        let what = format!("changed areas of disk {disk} of {snapshot} since {since}");
        let mut offset = 0u64;
        let mut total = 0u64;
        while offset < capacity {
            let body = json!({
                "_typeName": "QueryChangedDiskAreasRequestType",
                "snapshot": {
                    "_typeName": "ManagedObjectReference",
                    "type": "VirtualMachineSnapshot",
                    "value": snapshot,
                },
                "deviceKey": key,
                "startOffset": offset,
                "changeId": since,
            });
            let answer =
                with_retry(&self.retry, &what, || self.vim("POST", &path, Some(&body))).await?;
            let info = answer.as_ref().and_then(change_info).ok_or_else(|| {
                SourceError::Http(format!(
                    "{what}: not a DiskChangeInfo: {}",
                    shorten(answer.map(|a| a.to_string()).unwrap_or_default().as_bytes())
                ))
            })?;
            let (start, length, bytes) = info;
            // An answer that does not move forward would page for ever.
            let next = start.saturating_add(length);
            if next <= offset {
                return Err(SourceError::Http(format!(
                    "{what}: the answer for offset {offset} ends at {next}"
                )));
            }
            total = total.saturating_add(bytes);
            offset = next;
        }
        Ok(total)
    }

    async fn shutdown_guest_once(&self, vm: &str, uuid: Option<&str>) -> Result<(), SourceError> {
        let id = self.find_vm(vm, uuid).await?;
        let path = format!("/api/vcenter/vm/{id}/guest/power");
        let res = self.call_with("GET", &path, None).await?;
        if res.status != 200 {
            return Err(SourceError::Api {
                status: res.status,
                message: vapi_message(&res.body),
            });
        }
        let info: Value = serde_json::from_slice(&res.body)
            .map_err(|e| SourceError::Http(format!("guest power: {e}")))?;
        let state = text_field(&info, "state").unwrap_or_else(|| "unknown".into());
        let ready = info
            .get("operations_ready")
            .and_then(Value::as_bool)
            .unwrap_or(state == "RUNNING");
        let tools_unavailable = |detail: String| SourceError::Fault {
            kind: "ToolsUnavailable".into(),
            message: format!("VMware Tools in `{vm}` cannot shut the guest down: {detail}"),
        };
        if !ready {
            // Off already (a repeated request after the guest went down) is done.
            if self.get_power_once(vm, uuid).await? == SourcePower::Off {
                return Ok(());
            }
            return Err(tools_unavailable(format!(
                "guest operations not ready (guest state {state})"
            )));
        }
        let res = self
            .call_with("POST", &format!("{path}?action=shutdown"), None)
            .await?;
        if is_2xx(res.status) {
            tracing::info!(target: "wavelift::vim", "`{vm}`: guest shutdown requested");
            return Ok(());
        }
        let kind = vapi_error_type(&res.body);
        match (res.status, kind.as_deref()) {
            (503, Some("SERVICE_UNAVAILABLE")) => Err(tools_unavailable(vapi_message(&res.body))),
            (400, Some("NOT_ALLOWED_IN_CURRENT_STATE"))
                if self.get_power_once(vm, uuid).await? == SourcePower::Off =>
            {
                Ok(())
            }
            (status, _) => Err(SourceError::Api {
                status,
                message: vapi_message(&res.body),
            }),
        }
    }
}

impl WarmOps for VsphereClient {
    fn vim_release(&self) -> BoxFuture<'_, Result<String, SourceError>> {
        Box::pin(self.release())
    }

    fn warm_view<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<WarmView, SourceError>> {
        Box::pin(async move {
            let moid = self.moid(vm, uuid).await?;
            self.view(&moid).await
        })
    }

    fn host<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, SourceError>> {
        Box::pin(async move {
            let moid = self.moid(vm, uuid).await?;
            let runtime = self.vm_property(&moid, "runtime").await?;
            self.host_of_runtime(runtime.as_ref()).await
        })
    }

    fn enable_cbt<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let moid = self.moid(vm, uuid).await?;
            let what = format!("turn CBT on for `{vm}`");
            with_retry(&self.retry, &what, || self.enable_cbt_once(vm, &moid)).await
        })
    }

    fn create_snapshot<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
        name: &'a str,
        quiesce: bool,
    ) -> BoxFuture<'a, Result<Snapshot, SourceError>> {
        Box::pin(async move {
            let moid = self.moid(vm, uuid).await?;
            let what = format!("snapshot `{name}` of `{vm}`");
            with_retry(&self.retry, &what, || {
                self.create_snapshot_once(
                    vm,
                    &moid,
                    name,
                    quiesce,
                    "wavelift: warm-migration checkpoint",
                )
            })
            .await
        })
    }

    fn remove_snapshot<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
        moref: &'a str,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let moid = self.moid(vm, uuid).await?;
            let what = format!("remove snapshot {moref} of `{vm}`");
            with_retry(&self.retry, &what, || {
                self.remove_snapshot_once(vm, &moid, moref)
            })
            .await
        })
    }

    fn snapshot_disks<'a>(
        &'a self,
        moref: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SourceDisk>, SourceError>> {
        Box::pin(async move {
            let config = self
                .vim_get(&format!("VirtualMachineSnapshot/{}/config", seg(moref)))
                .await?
                .ok_or_else(|| SourceError::Http(format!("snapshot {moref} has no config")))?;
            Ok(disks_of(&config))
        })
    }

    fn changed_bytes<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
        moref: &'a str,
        disk: usize,
        since: &'a str,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(async move {
            let moid = self.moid(vm, uuid).await?;
            self.changed_bytes_of(&moid, moref, disk, since).await
        })
    }

    fn shutdown_guest<'a>(
        &'a self,
        vm: &'a str,
        uuid: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let what = format!("guest shutdown of `{vm}`");
            with_retry(&self.retry, &what, || self.shutdown_guest_once(vm, uuid)).await
        })
    }
}

#[cfg(test)]
mod tests;
