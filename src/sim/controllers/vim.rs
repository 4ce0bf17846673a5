//! The simulated vCenter's vim25 API as VI/JSON (vCenter 8.0 U1 and later), beside its
//! Automation REST API ([`super::endpoints`]): `https://VC/sdk/vim25/{release}/{MoType}/{moId}/{member}`,
//! `GET` for a property, `POST` with a JSON body for a method.
//!
//! Wire format (how govmomi's JSON client reads it: `vim25/soap/json_client.go`, and the
//! VI/JSON API reference):
//! - every object carries `_typeName`; a managed object reference is
//!   `{"_typeName":"ManagedObjectReference","type":"VirtualMachine","value":"vm-1001"}`;
//! - a fault is HTTP 500 with the fault object as the body: `_typeName`, `faultstring`,
//!   `faultMessage` (`LocalizableMessage`s) and the fault's own properties; a missing or
//!   unknown `vmware-api-session-id` is the `NotAuthenticated` fault; an unknown object
//!   `ManagedObjectNotFound`;
//! - a method without a result (`ShutdownGuest`, `Logout`) and an unset property (`snapshot`
//!   of a VM without snapshots) answer 204 No Content with no body (govmomi's client reads
//!   204, or an empty 2xx body, as "no value"; what vCenter itself sends for an unset
//!   property is not documented: clients should accept `null` too);
//! - a malformed body is HTTP 400 with an `InvalidRequest` fault; an unknown member 404;
//!   the wrong HTTP method 405;
//! - releases `8.0.1.0` up to the scenario's `vcenter_version` are served; any other
//!   release in the path, and every `/sdk/vim25` path of a vCenter older than 8.0.1, is
//!   404.
//!
//! Served: `ServiceInstance/ServiceInstance/content` (no session),
//! `SessionManager/SessionManager/Login|Logout|currentSession`,
//! `VirtualMachine/{vm}/config|runtime|guest|snapshot|recentTask|name` and
//! `CreateSnapshot_Task|CreateSnapshotEx_Task|ReconfigVM_Task|ShutdownGuest|PowerOffVM_Task|PowerOnVM_Task|QueryChangedDiskAreas`,
//! `VirtualMachineSnapshot/{snap}/config|vm|childSnapshot` and `RemoveSnapshot_Task`,
//! `HostSystem/{host}/name` (the hosts of `runtime.host`), `Task/{task}/info`. The model behind them is [`super::vsphere`].
//!
//! `QueryChangedDiskAreas` answers at most [`super::vsphere::CHANGED_AREAS_PER_CALL`] (1024) areas per call,
//! its `length` ending at the last one listed, so clients must page by
//! `startOffset + length` up to the disk's `capacityInBytes` (govmomi's simulator does not
//! implement the method; shapes from govmomi `vim25/types/types.go` `DiskChangeInfo`,
//! `DiskChangeExtent`, `QueryChangedDiskAreasRequestType` and the VI/JSON API reference).

use super::vsphere::{host_moid, moref, vim_releases, TaskKind, VimFault, VmEntry};
use super::world::World;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The VI/JSON endpoint's state: the world, its sessions and the accepted credentials.
#[derive(Clone)]
pub struct VimState {
    pub world: Arc<World>,
    /// token → (session key, simulated login time).
    sessions: Arc<Mutex<HashMap<String, (String, f64)>>>,
    credentials: Arc<(String, String)>,
}

impl VimState {
    /// Accepts `credentials` (user, password) at login.
    pub fn new(world: Arc<World>, credentials: Arc<(String, String)>) -> Self {
        VimState {
            world,
            sessions: Arc::default(),
            credentials,
        }
    }

    /// The same sessions, accepting other credentials.
    pub fn with_credentials(mut self, credentials: Arc<(String, String)>) -> Self {
        self.credentials = credentials;
        self
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, f64)>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Equal byte strings, compared in time that depends on their lengths only.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// `{fault}` as VI/JSON sends it: HTTP 500 and the fault object.
fn fault(f: VimFault) -> Response {
    fault_with(StatusCode::INTERNAL_SERVER_ERROR, f)
}

fn fault_with(status: StatusCode, f: VimFault) -> Response {
    let mut body = f.to_json();
    body["faultstring"] = json!(f.message);
    (status, axum::Json(body)).into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn not_authenticated() -> Response {
    fault(
        VimFault::new("NotAuthenticated", "The session is not authenticated.").with(json!({
            "object": moref("SessionManager", "SessionManager"),
            "privilegeId": "System.View",
        })),
    )
}

fn no_object(ty: &str, id: &str) -> Response {
    let kind = match ty {
        "VirtualMachine" => "vim.VirtualMachine",
        "VirtualMachineSnapshot" => "vim.vm.Snapshot",
        "Task" => "vim.Task",
        "HostSystem" => "vim.HostSystem",
        other => other,
    };
    fault(
        VimFault::new(
            "ManagedObjectNotFound",
            format!("The object '{kind}:{id}' has already been deleted or has not been completely created"),
        )
        .with(json!({ "obj": moref(ty, id) })),
    )
}

fn method_not_found(ty: &str, member: &str) -> Response {
    fault_with(
        StatusCode::NOT_FOUND,
        VimFault::new(
            "MethodNotFound",
            format!("Unknown method or property {member} of {ty}"),
        )
        .with(json!({ "receiver": moref(ty, ty), "method": member })),
    )
}

fn invalid_argument(property: &str) -> Response {
    fault(
        VimFault::new(
            "InvalidArgument",
            format!("A specified parameter was not correct: {property}"),
        )
        .with(json!({ "invalidProperty": property })),
    )
}

fn task_ref(id: &str) -> Response {
    ok(moref("Task", id))
}

/// The releases this vCenter serves (none before 8.0.1).
pub fn releases(world: &World) -> Vec<String> {
    vim_releases(world.vcenter.version)
}

/// `GET|POST /sdk/vim25/{release}/{MoType}/{moId}/{member}`.
pub async fn sdk(
    State(state): State<VimState>,
    method: Method,
    Path((release, rest)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !releases(&state.world).contains(&release) {
        return not_found();
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let [ty, id, member] = parts[..] else {
        return not_found();
    };
    let get = method == Method::GET;
    let post = method == Method::POST;
    if !get && !post {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let args: Value = if post && !body.is_empty() {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) | Err(_) => {
                return fault_with(
                    StatusCode::BAD_REQUEST,
                    VimFault::new("InvalidRequest", "The request body is not a JSON object."),
                )
            }
        }
    } else {
        json!({})
    };
    match (ty, id, member) {
        ("ServiceInstance", "ServiceInstance", "content") => {
            if !get {
                return StatusCode::METHOD_NOT_ALLOWED.into_response();
            }
            return ok(service_content(&state, &release));
        }
        ("SessionManager", "SessionManager", "Login") => {
            if !post {
                return StatusCode::METHOD_NOT_ALLOWED.into_response();
            }
            return state.vim_login(&args);
        }
        _ => {}
    }
    let Some(token) = state.vim_session(&headers) else {
        return not_authenticated();
    };
    let want = |is_method: bool| -> Option<Response> {
        match (is_method, get, post) {
            (true, _, true) | (false, true, _) => None,
            _ => Some(StatusCode::METHOD_NOT_ALLOWED.into_response()),
        }
    };
    match ty {
        "SessionManager" if id == "SessionManager" => match member {
            "Logout" => want(true).unwrap_or_else(|| {
                state.vim_logout(&token);
                no_content()
            }),
            "currentSession" => want(false).unwrap_or_else(|| ok(state.user_session(&token))),
            _ => method_not_found(ty, member),
        },
        "VirtualMachine" => virtual_machine(&state, id, member, get, &args),
        "VirtualMachineSnapshot" => snapshot(&state, id, member, get, &args),
        "HostSystem" => match member {
            "name" => want(false).unwrap_or_else(|| {
                // The hosts are those the scenario's source VMs run on.
                let name = state
                    .world
                    .source_vms()
                    .into_iter()
                    .filter_map(|v| v.spec.host)
                    .find(|h| host_moid(h) == id);
                name.map_or_else(|| no_object(ty, id), |n| ok(json!(n)))
            }),
            _ => method_not_found(ty, member),
        },
        "Task" => match member {
            "info" => want(false).unwrap_or_else(|| task_info(&state, id)),
            _ => method_not_found(ty, member),
        },
        _ => method_not_found(ty, member),
    }
}

fn service_content(state: &VimState, release: &str) -> Value {
    let (a, b, c) = state.world.vcenter.version;
    let newest = releases(&state.world)
        .last()
        .cloned()
        .unwrap_or_else(|| release.to_string());
    json!({
        "_typeName": "ServiceContent",
        "rootFolder": moref("Folder", "group-d1"),
        "propertyCollector": moref("PropertyCollector", "propertyCollector"),
        "viewManager": moref("ViewManager", "ViewManager"),
        "about": {
            "_typeName": "AboutInfo",
            "name": "VMware vCenter Server",
            "fullName": format!("VMware vCenter Server {a}.{b}.{c} build-24000000 (simulated)"),
            "vendor": "VMware, Inc.",
            "version": format!("{a}.{b}.{c}"),
            "build": "24000000",
            "localeVersion": "INTL",
            "localeBuild": "000",
            "osType": "linux-x64",
            "productLineId": "vpx",
            "apiType": "VirtualCenter",
            "apiVersion": newest,
            "instanceUuid": "8a3c1f0e-6b2d-4e5f-9a1b-0c2d3e4f5a6b",
            "licenseProductName": "VMware VirtualCenter Server",
            "licenseProductVersion": format!("{a}.0"),
        },
        "setting": moref("OptionManager", "VpxSettings"),
        "userDirectory": moref("UserDirectory", "UserDirectory"),
        "sessionManager": moref("SessionManager", "SessionManager"),
        "authorizationManager": moref("AuthorizationManager", "AuthorizationManager"),
        "searchIndex": moref("SearchIndex", "SearchIndex"),
        "taskManager": moref("TaskManager", "TaskManager"),
        "eventManager": moref("EventManager", "EventManager"),
        "fileManager": moref("FileManager", "FileManager"),
        "virtualDiskManager": moref("VirtualDiskManager", "virtualDiskManager"),
    })
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

fn bool_arg(args: &Value, key: &str) -> bool {
    args.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn virtual_machine(state: &VimState, id: &str, member: &str, get: bool, args: &Value) -> Response {
    let world = &state.world;
    let render = world.render();
    let shutdown_delay = world.vcenter.shutdown_seconds;
    let is_method =
        member.ends_with("_Task") || member == "ShutdownGuest" || member == "QueryChangedDiskAreas";
    if is_method == get {
        return if is_method
            || matches!(
                member,
                "config" | "runtime" | "guest" | "snapshot" | "recentTask" | "name"
            ) {
            StatusCode::METHOD_NOT_ALLOWED.into_response()
        } else {
            method_not_found("VirtualMachine", member)
        };
    }
    // A task to queue, or the argument that is not correct.
    let create = |ex: bool| -> Result<TaskKind, &'static str> {
        let name = str_arg(args, "name")
            .filter(|n| !n.is_empty())
            .ok_or("name")?;
        Ok(TaskKind::CreateSnapshot {
            name: name.to_string(),
            description: str_arg(args, "description").unwrap_or_default().to_string(),
            memory: bool_arg(args, "memory"),
            quiesce: if ex {
                args.get("quiesceSpec").is_some_and(|q| !q.is_null())
            } else {
                bool_arg(args, "quiesce")
            },
            ex,
        })
    };
    let task = match member {
        "CreateSnapshot_Task" => Some(create(false)),
        "CreateSnapshotEx_Task" => Some(create(true)),
        "ReconfigVM_Task" => Some(match args.get("spec") {
            Some(spec) if spec.is_object() => Ok(TaskKind::Reconfigure {
                change_tracking: spec.get("changeTrackingEnabled").and_then(Value::as_bool),
            }),
            _ => Err("spec"),
        }),
        "PowerOffVM_Task" => Some(Ok(TaskKind::PowerOff)),
        "PowerOnVM_Task" => Some(Ok(TaskKind::PowerOn)),
        _ => None,
    };
    let answer = world.with_moid(id, |e: &mut VmEntry, now, ids| -> Response {
        if let Some(kind) = task {
            return match kind {
                Ok(kind) => task_ref(&e.queue(kind, now, ids)),
                Err(property) => invalid_argument(property),
            };
        }
        match member {
            "QueryChangedDiskAreas" => query_changed_disk_areas(e, args),
            "ShutdownGuest" => match e.shutdown_guest(now, shutdown_delay) {
                Ok(()) => no_content(),
                Err(f) => fault(f),
            },
            "config" => ok(render.vm_config(e)),
            "runtime" => ok(render.runtime(e)),
            "guest" => ok(render.guest(e)),
            "name" => ok(json!(e.vm.spec.name)),
            "snapshot" => render.snapshot_info(e).map_or_else(no_content, ok),
            "recentTask" => ok(Value::Array(
                e.recent_tasks(now)
                    .iter()
                    .map(|t| moref("Task", &t.id))
                    .collect(),
            )),
            _ => method_not_found("VirtualMachine", member),
        }
    });
    answer.unwrap_or_else(|| no_object("VirtualMachine", id))
}

/// `VirtualMachine.QueryChangedDiskAreas` (`QueryChangedDiskAreasRequestType`: `snapshot`,
/// `deviceKey`, `startOffset`, `changeId`; govmomi `vim25/types/types.go`) answered with a
/// `DiskChangeInfo` of at most [`super::vsphere::CHANGED_AREAS_PER_CALL`] `DiskChangeExtent`s, from the
/// VM's write log ([`VmEntry::changed_areas`]). vSphere computes the changes against the
/// VM's current state when `snapshot` is unset (powered-off VMs only); the sim requires
/// it (`InvalidArgument`), as a running VM is what warm migration queries.
fn query_changed_disk_areas(e: &VmEntry, args: &Value) -> Response {
    let snapshot = match args.get("snapshot") {
        Some(Value::Object(o)) => o.get("value").and_then(Value::as_str),
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let Some(snapshot) = snapshot.filter(|s| !s.is_empty()) else {
        return invalid_argument("snapshot");
    };
    let Some(device_key) = args.get("deviceKey").and_then(Value::as_i64) else {
        return invalid_argument("deviceKey");
    };
    let Some(start) = args.get("startOffset").and_then(Value::as_i64) else {
        return invalid_argument("startOffset");
    };
    let Some(change_id) = str_arg(args, "changeId") else {
        return invalid_argument("changeId");
    };
    match e.changed_areas(snapshot, device_key, start, change_id) {
        Ok(info) => ok(json!({
            "_typeName": "DiskChangeInfo",
            "startOffset": info.start_offset,
            "length": info.length,
            "changedArea": info
                .areas
                .iter()
                .map(|&(start, length)| json!({
                    "_typeName": "DiskChangeExtent",
                    "start": start,
                    "length": length,
                }))
                .collect::<Vec<_>>(),
        })),
        Err(f) => fault(f),
    }
}

fn snapshot(state: &VimState, id: &str, member: &str, get: bool, args: &Value) -> Response {
    let world = &state.world;
    let render = world.render();
    match (member, get) {
        ("RemoveSnapshot_Task", false) => {
            let remove_children = bool_arg(args, "removeChildren");
            world
                .with_vm(
                    |e| e.sim.snapshots.iter().any(|s| s.moref == id),
                    |e, now, ids| {
                        task_ref(&e.queue(
                            TaskKind::RemoveSnapshot {
                                snapshot: id.to_string(),
                                remove_children,
                            },
                            now,
                            ids,
                        ))
                    },
                )
                .unwrap_or_else(|| no_object("VirtualMachineSnapshot", id))
        }
        ("config" | "vm" | "childSnapshot", true) => world
            .with_vm(
                |e| e.sim.snapshots.iter().any(|s| s.moref == id),
                |e, _, _| {
                    let Some(snap) = e.sim.snapshots.iter().find(|s| s.moref == id) else {
                        return no_object("VirtualMachineSnapshot", id);
                    };
                    match member {
                        "config" => ok(render.snapshot_config(e, snap)),
                        "vm" => ok(moref("VirtualMachine", &e.vm.moid)),
                        _ => ok(Value::Array(
                            e.sim
                                .snapshots
                                .iter()
                                .filter(|s| s.parent.as_deref() == Some(id))
                                .map(|s| moref("VirtualMachineSnapshot", &s.moref))
                                .collect(),
                        )),
                    }
                },
            )
            .unwrap_or_else(|| no_object("VirtualMachineSnapshot", id)),
        ("RemoveSnapshot_Task" | "config" | "vm" | "childSnapshot", _) => {
            StatusCode::METHOD_NOT_ALLOWED.into_response()
        }
        _ => method_not_found("VirtualMachineSnapshot", member),
    }
}

fn task_info(state: &VimState, id: &str) -> Response {
    let render = state.world.render();
    state
        .world
        .with_vm(
            |e| e.sim.tasks.iter().any(|t| t.id == id),
            |e, now, _| {
                let Some(t) = e.sim.tasks.iter().find(|t| t.id == id) else {
                    return no_object("Task", id);
                };
                ok(render.task_info(e, t, now))
            },
        )
        .unwrap_or_else(|| no_object("Task", id))
}

impl VimState {
    /// `SessionManager.Login`: the scenario's credentials, else `InvalidLogin`.
    fn vim_login(&self, args: &Value) -> Response {
        let (user, password) = &*self.credentials;
        let given_user = str_arg(args, "userName").unwrap_or_default();
        let given_password = str_arg(args, "password").unwrap_or_default();
        if !(same(given_user, user) & same(given_password, password)) {
            return fault(VimFault::new(
                "InvalidLogin",
                "Cannot complete login due to an incorrect user name or password.",
            ));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let key = uuid::Uuid::new_v4().to_string();
        self.sessions()
            .insert(token.clone(), (key, self.world.now()));
        let session = self.user_session(&token);
        (
            StatusCode::OK,
            [("vmware-api-session-id", token.as_str())],
            axum::Json(session),
        )
            .into_response()
    }

    fn vim_logout(&self, token: &str) {
        self.sessions().remove(token);
    }

    /// The VI/JSON session a request's `vmware-api-session-id` names.
    fn vim_session(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers
            .get("vmware-api-session-id")
            .and_then(|v| v.to_str().ok())?;
        self.sessions()
            .contains_key(token)
            .then(|| token.to_string())
    }

    fn user_session(&self, token: &str) -> Value {
        let render = self.world.render();
        let (key, since) = self
            .sessions()
            .get(token)
            .cloned()
            .unwrap_or_else(|| (String::new(), self.world.now()));
        let user = &self.credentials.0;
        json!({
            "_typeName": "UserSession",
            "key": key,
            "userName": user,
            "fullName": user,
            "loginTime": render.time(since),
            "lastActiveTime": render.time(self.world.now()),
            "locale": "en",
            "messageLocale": "en",
            "extensionSession": false,
            "ipAddress": "127.0.0.1",
            "userAgent": "",
            "callCount": 0,
        })
    }
}
