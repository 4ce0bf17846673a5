//! The VI/JSON client against a small vCenter played on 127.0.0.1: it serves the REST
//! calls the client makes and a VI/JSON VM (`db01`, `vm-42`) with tasks that finish after a
//! set number of polls (no clock involved), and records every request.

use super::*;
use crate::source::{Credentials, RetryPolicy, Secret};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};

const USER: &str = "administrator@vsphere.local";
const PASSWORD: &str = "pa55-w0rd!";
const REST_TOKEN: &str = "rest-session-1";
const VM: &str = "vm-42";
const VM_NAME: &str = "db01";
const CID: &str = "52 3c 7a 11 9f 0e 4b 21-8d 55 6a 90 1b 2c 3d 4e/17";

/// No waiting between attempts: tests never depend on the clock.
const FAST: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_delay: Duration::ZERO,
    max_delay: Duration::ZERO,
};

fn mo(kind: &str, value: &str) -> Value {
    json!({"_typeName": "ManagedObjectReference", "type": kind, "value": value})
}

fn fault_json(kind: &str, message: &str) -> String {
    json!({
        "_typeName": kind,
        "faultMessage": [{
            "_typeName": "LocalizableMessage",
            "key": format!("vim.fault.{kind}"),
            "message": message,
        }],
    })
    .to_string()
}

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// Path and query.
    path: String,
    session: Option<String>,
    body: Value,
}

#[derive(Clone, Copy)]
enum Hello {
    Release(&'static str),
    Missing,
    NoCommon,
    /// Answers only with the REST session.
    NeedsSession(&'static str),
}

#[derive(Clone, Debug)]
enum Effect {
    Create {
        name: String,
        quiesce: bool,
    },
    Remove {
        snapshot: String,
    },
    Reconfig,
    /// Somebody else's task on the VM.
    Foreign,
}

struct Task {
    /// Polls left before the task finishes (`u32::MAX`: never).
    polls: u32,
    state: &'static str,
    effect: Effect,
    result: Option<Value>,
    error: Option<Value>,
}

struct Snap {
    id: String,
    name: String,
    quiesced: bool,
    parent: Option<String>,
}

struct World {
    seen: Vec<Seen>,
    hello: Hello,
    /// Releases served under `/sdk/vim25/`.
    served: Vec<&'static str>,
    logins: u32,
    token: Option<String>,
    /// The next authenticated VI/JSON call finds its session gone: answered 401 (plain) or
    /// 500 (a `NotAuthenticated` fault).
    expire_next: Option<u16>,
    /// One-shot answers: (method, path suffix, status, body).
    inject: Vec<(&'static str, &'static str, u16, String)>,
    cbt: bool,
    disks: Vec<(String, Option<String>)>,
    power: &'static str,
    tools: bool,
    snaps: Vec<Snap>,
    recent: Vec<String>,
    tasks: BTreeMap<String, Task>,
    next: u32,
    /// Polls a new task stays running.
    task_polls: u32,
    /// 0: flat reference; 1: `{"_value": reference}`; 2: `{"_typeName":…,"_value":"id"}`.
    result_shape: u8,
    /// How an unset `snapshot` property comes back: 0 `null`, 1 204, 2 an empty 200.
    unset_snapshot: u8,
    /// A stun (snapshot create or remove with CBT on) gives every disk a change ID.
    stun_sets_change_ids: bool,
    quiesce_fault: bool,
    /// The next CreateSnapshot_Task starts its task but the answer is lost (a 503).
    lose_create_answer: bool,
    /// `seen.len()` when the foreign task finished.
    foreign_done_at: Option<usize>,
    guest_ready: bool,
    /// The answer to the next guest shutdown, instead of doing it.
    shutdown_answer: Option<(u16, String)>,
    /// Every disk's `capacityInBytes`.
    capacity: u64,
    /// The changed areas `QueryChangedDiskAreas` reports (any disk), sorted.
    changed: Vec<(u64, u64)>,
    /// Areas per `QueryChangedDiskAreas` answer.
    areas_per_call: usize,
}

impl Default for World {
    fn default() -> Self {
        World {
            seen: Vec::new(),
            hello: Hello::Release("8.0.3.0"),
            served: vec!["8.0.3.0", "8.0.1.0"],
            logins: 0,
            token: None,
            expire_next: None,
            inject: Vec::new(),
            cbt: false,
            disks: vec![
                ("[ds1] db01/db01.vmdk".into(), None),
                ("[ds1] db01/db01_1.vmdk".into(), None),
            ],
            power: "poweredOn",
            tools: true,
            snaps: Vec::new(),
            recent: Vec::new(),
            tasks: BTreeMap::new(),
            next: 1,
            task_polls: 1,
            result_shape: 0,
            unset_snapshot: 0,
            stun_sets_change_ids: true,
            quiesce_fault: false,
            lose_create_answer: false,
            foreign_done_at: None,
            guest_ready: true,
            shutdown_answer: None,
            capacity: 1 << 30,
            changed: Vec::new(),
            areas_per_call: 1024,
        }
    }
}

struct Reply {
    status: u16,
    session: Option<String>,
    body: String,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        session: None,
        body: body.into(),
    }
}

fn ok(v: Value) -> Reply {
    reply(200, v.to_string())
}

fn fault(status: u16, kind: &str, message: &str) -> Reply {
    reply(status, fault_json(kind, message))
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut b = Response::builder()
            .status(self.status)
            .header("content-type", "application/json");
        if let Some(t) = self.session {
            b = b.header(SESSION_HEADER, t);
        }
        b.body(axum::body::Body::from(self.body))
            .expect("a valid response")
    }
}

impl World {
    fn answer(&mut self, method: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        let session = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let json_body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.seen.push(Seen {
            method: method.into(),
            path: path.into(),
            session: session.clone(),
            body: json_body.clone(),
        });
        if let Some(i) = self
            .inject
            .iter()
            .position(|(m, p, ..)| *m == method && path.ends_with(p))
        {
            let (_, _, status, body) = self.inject.remove(i);
            return reply(status, body);
        }
        if let Some(rest) = path.strip_prefix("/sdk/vim25/") {
            let (release, rest) = rest.split_once('/').expect("a release");
            if !self.served.contains(&release) {
                return reply(404, "Not Found");
            }
            return self.vim(method, rest, session, &json_body);
        }
        self.rest(method, path, headers, session)
    }

    fn rest(
        &mut self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        session: Option<String>,
    ) -> Reply {
        if (method, path) == ("POST", HELLO) {
            return match self.hello {
                Hello::Release(r) => ok(json!({ "api_release": r })),
                Hello::NeedsSession(r) if session.as_deref() == Some(REST_TOKEN) => {
                    ok(json!({ "api_release": r }))
                }
                Hello::NeedsSession(_) => reply(401, r#"{"error_type":"UNAUTHENTICATED"}"#),
                Hello::NoCommon => ok(json!({ "api_release": "" })),
                Hello::Missing => reply(404, ""),
            };
        }
        if (method, path) == ("POST", "/api/session") {
            let basic = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Basic "));
            return if basic {
                reply(201, format!("\"{REST_TOKEN}\""))
            } else {
                reply(401, r#"{"error_type":"UNAUTHENTICATED"}"#)
            };
        }
        if session.as_deref() != Some(REST_TOKEN) {
            return reply(401, r#"{"error_type":"UNAUTHENTICATED"}"#);
        }
        let on = self.power == "poweredOn";
        match (method, path) {
            ("GET", "/api/vcenter/vm?names=db01") => ok(json!([{
                "vm": VM, "name": VM_NAME,
                "power_state": if on { "POWERED_ON" } else { "POWERED_OFF" },
            }])),
            ("GET", "/api/vcenter/vm/vm-42/power") => {
                ok(json!({ "state": if on { "POWERED_ON" } else { "POWERED_OFF" } }))
            }
            ("GET", "/api/vcenter/vm/vm-42/guest/power") => ok(json!({
                "state": if self.tools { "RUNNING" } else { "NOT_RUNNING" },
                "guest_family": "LINUX",
                "operations_ready": self.guest_ready,
            })),
            ("POST", "/api/vcenter/vm/vm-42/guest/power?action=shutdown") => {
                match self.shutdown_answer.take() {
                    Some((status, body)) => reply(status, body),
                    None => {
                        self.power = "poweredOff";
                        reply(204, "")
                    }
                }
            }
            _ => reply(404, r#"{"error_type":"NOT_FOUND"}"#),
        }
    }

    fn vim(&mut self, method: &str, rest: &str, session: Option<String>, body: &Value) -> Reply {
        match (method, rest) {
            ("GET", "ServiceInstance/ServiceInstance/content") => {
                return ok(json!({
                    "_typeName": "ServiceContent",
                    "sessionManager": mo("SessionManager", "SessionManager"),
                    "propertyCollector": mo("PropertyCollector", "propertyCollector"),
                }))
            }
            ("POST", "SessionManager/SessionManager/Login") => {
                if body["userName"] != USER || body["password"] != PASSWORD {
                    return fault(
                        500,
                        "InvalidLogin",
                        "Cannot complete login due to an incorrect user name or password.",
                    );
                }
                self.logins += 1;
                let token = format!("vim-session-{}", self.logins);
                self.token = Some(token.clone());
                return Reply {
                    session: Some(token),
                    ..ok(json!({"_typeName": "UserSession", "userName": USER}))
                };
            }
            _ => {}
        }
        if let Some(status) = self.expire_next.take() {
            self.token = None;
            return if status == 401 {
                reply(401, "")
            } else {
                fault(
                    status,
                    "NotAuthenticated",
                    "The session is not authenticated.",
                )
            };
        }
        if session.is_none() || session != self.token {
            return fault(500, "NotAuthenticated", "The session is not authenticated.");
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let [kind, id, member] = parts[..] else {
            return reply(404, "");
        };
        match (method, kind, member) {
            ("GET", "VirtualMachine", "config") if id == VM => ok(self.config(None)),
            ("GET", "VirtualMachine", "runtime") if id == VM => ok(json!({
                "_typeName": "VirtualMachineRuntimeInfo", "powerState": self.power,
            })),
            ("GET", "VirtualMachine", "guest") if id == VM => ok(json!({
                "_typeName": "GuestInfo",
                "toolsRunningStatus": if self.tools { "guestToolsRunning" } else { "guestToolsNotRunning" },
            })),
            ("GET", "VirtualMachine", "recentTask") if id == VM => ok(Value::Array(
                self.recent.iter().map(|t| mo("Task", t)).collect(),
            )),
            ("GET", "VirtualMachine", "snapshot") if id == VM => {
                if self.snaps.is_empty() {
                    return match self.unset_snapshot {
                        0 => reply(200, "null"),
                        1 => reply(204, ""),
                        _ => reply(200, ""),
                    };
                }
                let current = self
                    .snaps
                    .last()
                    .map(|s| mo("VirtualMachineSnapshot", &s.id));
                ok(json!({
                    "_typeName": "VirtualMachineSnapshotInfo",
                    "currentSnapshot": current,
                    "rootSnapshotList": self.tree(None),
                }))
            }
            ("POST", "VirtualMachine", "CreateSnapshot_Task") if id == VM => {
                assert_eq!(body["_typeName"], "CreateSnapshotRequestType");
                let task = self.new_task(Effect::Create {
                    name: body["name"].as_str().expect("a name").into(),
                    quiesce: body["quiesce"].as_bool().expect("quiesce"),
                });
                if std::mem::take(&mut self.lose_create_answer) {
                    return reply(503, "upstream request timeout");
                }
                ok(mo("Task", &task))
            }
            ("POST", "VirtualMachine", "ReconfigVM_Task") if id == VM => {
                ok(mo("Task", &self.new_task(Effect::Reconfig)))
            }
            ("POST", "VirtualMachineSnapshot", "RemoveSnapshot_Task") => {
                if !self.snaps.iter().any(|s| s.id == id) {
                    return fault(
                        500,
                        "ManagedObjectNotFound",
                        &format!("The object 'vim.vm.Snapshot:{id}' has already been deleted"),
                    );
                }
                let task = self.new_task(Effect::Remove {
                    snapshot: id.into(),
                });
                ok(mo("Task", &task))
            }
            ("GET", "VirtualMachineSnapshot", "config") => {
                match self.snaps.iter().position(|s| s.id == id) {
                    Some(n) => ok(self.config(Some(n + 1))),
                    None => fault(500, "ManagedObjectNotFound", "gone"),
                }
            }
            ("POST", "VirtualMachine", "QueryChangedDiskAreas") if id == VM => {
                self.changed_areas(body)
            }
            ("GET", "Task", "info") => self.poll(id),
            _ => reply(404, ""),
        }
    }

    /// A `DiskChangeInfo` from `startOffset`: at most `areas_per_call` areas, its `length`
    /// ending at the last one when more remain, else at the disk's end.
    fn changed_areas(&self, body: &Value) -> Reply {
        assert_eq!(body["_typeName"], "QueryChangedDiskAreasRequestType");
        let start = body["startOffset"].as_u64().expect("startOffset");
        let areas: Vec<(u64, u64)> = self
            .changed
            .iter()
            .copied()
            .filter(|&(s, _)| s >= start)
            .collect();
        let page = &areas[..areas.len().min(self.areas_per_call)];
        let end = if areas.len() > page.len() {
            page.last().map_or(self.capacity, |&(s, n)| s + n)
        } else {
            self.capacity
        };
        ok(json!({
            "_typeName": "DiskChangeInfo",
            "startOffset": start,
            "length": end - start,
            "changedArea": page
                .iter()
                .map(|&(s, n)| json!({"_typeName": "DiskChangeExtent", "start": s, "length": n}))
                .collect::<Vec<_>>(),
        }))
    }

    /// The VM's config, or snapshot `n`'s (its delta disks and their change IDs).
    fn config(&self, snapshot: Option<usize>) -> Value {
        let mut devices = vec![json!({"_typeName": "VirtualIDEController", "key": 200})];
        for (i, (file, cid)) in self.disks.iter().enumerate() {
            let mut backing = json!({
                "_typeName": "VirtualDiskFlatVer2BackingInfo",
                "diskMode": "persistent",
            });
            match snapshot {
                Some(n) => {
                    backing["fileName"] = json!(file.replace(".vmdk", &format!("-00000{n}.vmdk")));
                    backing["changeId"] = json!(format!("snap{n}-disk{i}"));
                }
                None => {
                    backing["fileName"] = json!(file);
                    if let Some(c) = cid {
                        backing["changeId"] = json!(c);
                    }
                }
            }
            devices.push(json!({
                "_typeName": "VirtualDisk",
                "key": 2000 + i,
                "backing": backing,
                "capacityInBytes": self.capacity,
            }));
            devices.push(json!({"_typeName": "VirtualVmxnet3", "key": 4000 + i}));
        }
        json!({
            "_typeName": "VirtualMachineConfigInfo",
            "name": VM_NAME,
            "changeTrackingEnabled": self.cbt,
            "hardware": {"_typeName": "VirtualHardware", "numCPU": 2, "device": devices},
        })
    }

    fn tree(&self, parent: Option<&str>) -> Vec<Value> {
        self.snaps
            .iter()
            .filter(|s| s.parent.as_deref() == parent)
            .map(|s| {
                let mut node = json!({
                    "_typeName": "VirtualMachineSnapshotTree",
                    "snapshot": mo("VirtualMachineSnapshot", &s.id),
                    "vm": mo("VirtualMachine", VM),
                    "name": s.name,
                    "description": "",
                    "createTime": "2025-05-01T10:00:00Z",
                    "state": "poweredOn",
                    "quiesced": s.quiesced,
                });
                let children = self.tree(Some(&s.id));
                if !children.is_empty() {
                    node["childSnapshotList"] = Value::Array(children);
                }
                node
            })
            .collect()
    }

    fn new_task(&mut self, effect: Effect) -> String {
        let id = format!("task-{}", self.next);
        self.next += 1;
        let polls = match effect {
            Effect::Foreign => 0,
            _ => self.task_polls,
        };
        self.tasks.insert(
            id.clone(),
            Task {
                polls,
                state: "running",
                effect,
                result: None,
                error: None,
            },
        );
        self.recent.push(id.clone());
        id
    }

    /// Somebody else's task on the VM, running for `polls` polls.
    fn foreign_task(&mut self, polls: u32) -> String {
        let id = self.new_task(Effect::Foreign);
        self.tasks.get_mut(&id).expect("just made").polls = polls;
        id
    }

    fn add_snapshot(&mut self, name: &str, quiesced: bool) -> String {
        let id = format!("snapshot-{}", self.next);
        self.next += 1;
        let parent = self.snaps.last().map(|s| s.id.clone());
        self.snaps.push(Snap {
            id: id.clone(),
            name: name.into(),
            quiesced,
            parent,
        });
        id
    }

    fn stun(&mut self) {
        if self.cbt && self.stun_sets_change_ids {
            for d in &mut self.disks {
                d.1 = Some(CID.into());
            }
        }
    }

    fn poll(&mut self, id: &str) -> Reply {
        let Some(task) = self.tasks.get_mut(id) else {
            return fault(500, "ManagedObjectNotFound", "no such task");
        };
        if task.state == "running" {
            if task.polls > 0 {
                task.polls = task.polls.saturating_sub(u32::from(task.polls != u32::MAX));
            } else {
                let effect = task.effect.clone();
                self.finish(id, effect);
            }
        }
        let task = &self.tasks[id];
        let mut info = json!({
            "_typeName": "TaskInfo",
            "key": id,
            "task": mo("Task", id),
            "entity": mo("VirtualMachine", VM),
            "entityName": VM_NAME,
            "state": task.state,
            "cancelled": false,
        });
        if let Some(r) = &task.result {
            info["result"] = r.clone();
        }
        if let Some(e) = &task.error {
            info["error"] = e.clone();
        }
        ok(info)
    }

    fn finish(&mut self, id: &str, effect: Effect) {
        let (mut result, mut error) = (None, None);
        match effect {
            Effect::Create { name, quiesce } => {
                if quiesce && self.quiesce_fault {
                    error = Some(json!({
                        "_typeName": "LocalizedMethodFault",
                        "fault": serde_json::from_str::<Value>(&fault_json(
                            "ApplicationQuiesceFault",
                            "An error occurred while quiescing the virtual machine.",
                        )).expect("json"),
                        "localizedMessage": "An error occurred while quiescing the virtual machine. See the virtual machine's event log for details.",
                    }));
                } else {
                    let snap = self.add_snapshot(&name, quiesce);
                    self.stun();
                    result = Some(match self.result_shape {
                        0 => mo("VirtualMachineSnapshot", &snap),
                        1 => json!({ "_value": mo("VirtualMachineSnapshot", &snap) }),
                        _ => json!({"_typeName": "ManagedObjectReference", "_value": snap}),
                    });
                }
            }
            Effect::Remove { snapshot } => {
                let gone = self
                    .snaps
                    .iter()
                    .position(|s| s.id == snapshot)
                    .expect("the snapshot");
                let gone = self.snaps.remove(gone);
                for s in &mut self.snaps {
                    if s.parent.as_deref() == Some(&gone.id) {
                        s.parent = gone.parent.clone();
                    }
                }
                self.stun();
            }
            Effect::Reconfig => self.cbt = true,
            Effect::Foreign => self.foreign_done_at = Some(self.seen.len()),
        }
        let task = self.tasks.get_mut(id).expect("the task");
        task.state = if error.is_some() { "error" } else { "success" };
        task.result = result;
        task.error = error;
    }
}

type Shared = Arc<StdMutex<World>>;

async fn handle(
    axum::extract::State(world): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    world
        .lock()
        .expect("world")
        .answer(method.as_str(), path, &headers, &body)
}

fn creds() -> Credentials {
    Credentials {
        user: USER.into(),
        password: Secret::new(PASSWORD),
    }
}

/// The mock on a free loopback port, and a client for it that polls without waiting.
async fn start(world: World) -> (VsphereClient, Shared) {
    start_as(world, creds()).await
}

async fn start_as(world: World, creds: Credentials) -> (VsphereClient, Shared) {
    let shared: Shared = Arc::new(StdMutex::new(world));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    let client = VsphereClient::new(&format!("http://{addr}"), None, creds)
        .expect("client")
        .with_retry(FAST)
        .with_task_poll(Duration::ZERO);
    (client, shared)
}

fn seen(w: &Shared) -> Vec<Seen> {
    w.lock().expect("world").seen.clone()
}

/// `METHOD path` of every request.
fn lines(w: &Shared) -> Vec<String> {
    seen(w)
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

/// The VI/JSON POSTs (tasks and logins), path below the release.
fn vim_posts(w: &Shared) -> Vec<Seen> {
    seen(w)
        .into_iter()
        .filter(|s| s.method == "POST" && s.path.starts_with("/sdk/vim25/"))
        .map(|mut s| {
            s.path = s.path.splitn(5, '/').nth(4).unwrap_or_default().to_string();
            s
        })
        .collect()
}

fn post_paths(w: &Shared) -> Vec<String> {
    vim_posts(w)
        .into_iter()
        .filter(|s| !s.path.ends_with("/Login"))
        .map(|s| s.path)
        .collect()
}

// ---- pure helpers ----

#[test]
fn faults_read_from_every_shape() {
    let kind_msg = |body: &str| match vim_error(500, body.as_bytes()) {
        SourceError::Fault { kind, message } => (kind, message),
        other => panic!("not a fault: {other:?}"),
    };
    assert_eq!(
        kind_msg(&fault_json(
            "ToolsUnavailable",
            "VMware Tools is not running."
        )),
        (
            "ToolsUnavailable".into(),
            "VMware Tools is not running.".into()
        )
    );
    // No faultMessage: a top-level message, else the body itself.
    assert_eq!(
        kind_msg(r#"{"_typeName":"InvalidState","message":"busy"}"#).1,
        "busy"
    );
    let (kind, message) = kind_msg(r#"{"_typeName":"SnapshotFault"}"#);
    assert_eq!(kind, "SnapshotFault");
    assert_eq!(message, r#"{"_typeName":"SnapshotFault"}"#);
    // One message object instead of a list, messages without text (the key then).
    assert_eq!(
        kind_msg(r#"{"_typeName":"X","faultMessage":{"message":"one"}}"#).1,
        "one"
    );
    assert_eq!(
        kind_msg(r#"{"_typeName":"X","faultMessage":[{"key":"k.a"},{"key":"k.b"}]}"#).1,
        "k.a; k.b"
    );
    // A LocalizedMethodFault: the inner fault's kind, the localized message.
    assert_eq!(
        kind_msg(
            r#"{"_typeName":"LocalizedMethodFault","fault":{"_typeName":"FileLocked"},"localizedMessage":"locked"}"#
        ),
        ("FileLocked".into(), "locked".into())
    );
    // Not a fault: the status, transient or not as for REST.
    let e = vim_error(503, b"upstream connect error");
    assert!(e.is_transient(), "{e:?}");
    assert!(matches!(
        vim_error(404, b"Not Found"),
        SourceError::Api { status: 404, .. }
    ));
    // A vim fault on a 500 is final, unless retrying cures it.
    assert!(!vim_error(500, fault_json("InvalidState", "no").as_bytes()).is_transient());
    assert!(vim_error(500, fault_json("HostCommunication", "no").as_bytes()).is_transient());
    let long = format!(r#"{{"_typeName":"X","pad":"{}"}}"#, "y".repeat(400));
    assert_eq!(kind_msg(&long).1.chars().count(), 201);
}

#[test]
fn references_flat_or_wrapped() {
    let flat = mo("VirtualMachineSnapshot", "snapshot-7");
    assert_eq!(moref_value(&flat).as_deref(), Some("snapshot-7"));
    assert_eq!(
        moref_value(&json!({ "_value": flat })).as_deref(),
        Some("snapshot-7")
    );
    assert_eq!(
        moref_value(&json!({"_typeName": "ManagedObjectReference", "_value": "task-3"})).as_deref(),
        Some("task-3")
    );
    assert_eq!(moref_value(&json!("task-9")).as_deref(), Some("task-9"));
    assert_eq!(moref_value(&json!({"_typeName": "X"})), None);
    assert_eq!(seg("session[52b]x/y"), "session%5B52b%5Dx%2Fy");
    assert_eq!(seg("vm-42"), "vm-42");
}

#[test]
fn task_faults_name_the_inner_fault() {
    let info = json!({"state": "error", "error": {
        "_typeName": "LocalizedMethodFault",
        "fault": {"_typeName": "ApplicationQuiesceFault", "faultMessage": []},
        "localizedMessage": "quiescing failed",
    }});
    assert!(matches!(task_fault(&info),
        SourceError::Fault { kind, message } if kind == "ApplicationQuiesceFault" && message == "quiescing failed"));
    assert!(matches!(task_fault(&json!({"state": "error"})),
        SourceError::Fault { kind, .. } if kind == "VimFault"));
}

// ---- release and session ----

#[tokio::test]
async fn release_from_hello_is_asked_once() {
    let (c, w) = start(World::default()).await;
    assert_eq!(c.vim_release().await.expect("release"), "8.0.3.0");
    assert_eq!(c.vim_release().await.expect("cached"), "8.0.3.0");
    let s = seen(&w);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!((s[0].method.as_str(), s[0].path.as_str()), ("POST", HELLO));
    assert_eq!(
        s[0].body,
        json!({"api_releases": ["9.0.0.0", "8.0.3.0", "8.0.2.0", "8.0.1.0"]})
    );
    assert_eq!(s[0].session, None);
}

#[tokio::test]
async fn hello_refused_without_a_session_is_asked_again_with_the_rest_one() {
    let (c, w) = start(World {
        hello: Hello::NeedsSession("9.0.0.0"),
        served: vec!["9.0.0.0"],
        ..World::default()
    })
    .await;
    assert_eq!(c.vim_release().await.expect("release"), "9.0.0.0");
    let s = seen(&w);
    let hellos: Vec<Option<&str>> = s
        .iter()
        .filter(|r| r.path == HELLO)
        .map(|r| r.session.as_deref())
        .collect();
    assert_eq!(hellos, [None, Some(REST_TOKEN)]);
}

#[tokio::test]
async fn without_hello_probes_8_0_1() {
    let (c, w) = start(World {
        hello: Hello::Missing,
        served: vec!["8.0.1.0"],
        ..World::default()
    })
    .await;
    assert_eq!(c.vim_release().await.expect("probed"), "8.0.1.0");
    assert_eq!(
        lines(&w),
        [
            format!("POST {HELLO}"),
            "GET /sdk/vim25/8.0.1.0/ServiceInstance/ServiceInstance/content".into(),
        ]
    );
    // The probe's content named the session manager: the login needs no second read.
    c.warm_view(VM_NAME, None).await.expect("view");
    let l = lines(&w);
    assert!(l
        .iter()
        .any(|l| l == "POST /sdk/vim25/8.0.1.0/SessionManager/SessionManager/Login"));
    assert_eq!(
        l.iter().filter(|l| l.ends_with("/content")).count(),
        1,
        "{l:?}"
    );
    // No release in common is the same as no hello.
    let (c, _) = start(World {
        hello: Hello::NoCommon,
        served: vec!["8.0.1.0"],
        ..World::default()
    })
    .await;
    assert_eq!(c.vim_release().await.expect("probed"), "8.0.1.0");
}

#[tokio::test]
async fn no_vim_json_names_what_was_tried() {
    let (c, w) = start(World {
        hello: Hello::Missing,
        served: vec![],
        ..World::default()
    })
    .await;
    let e = c.vim_release().await.expect_err("no VI/JSON");
    let SourceError::NoVimJson(tried) = &e else {
        panic!("{e:?}")
    };
    assert!(tried.contains(HELLO), "{tried}");
    assert!(
        tried.contains("/sdk/vim25/8.0.1.0/ServiceInstance/ServiceInstance/content"),
        "{tried}"
    );
    // Warm operations fail the same way, and nothing was retried.
    assert!(matches!(
        c.warm_view(VM_NAME, None).await,
        Err(SourceError::NoVimJson(_))
    ));
    assert_eq!(
        lines(&w).iter().filter(|l| l.contains("hello")).count(),
        2,
        "one hello per call, not cached as a failure and not retried"
    );
}

#[tokio::test]
async fn login_and_the_session_header_on_every_call() {
    let (c, w) = start(World::default()).await;
    c.warm_view(VM_NAME, None).await.expect("view");
    let s = seen(&w);
    let login = s
        .iter()
        .position(|s| s.path == "/sdk/vim25/8.0.3.0/SessionManager/SessionManager/Login")
        .expect("a login");
    assert_eq!(
        s[login].body,
        json!({"_typeName": "LoginRequestType", "userName": USER, "password": PASSWORD})
    );
    assert_eq!(s[login].session, None);
    assert_eq!(
        s[login - 1].path,
        "/sdk/vim25/8.0.3.0/ServiceInstance/ServiceInstance/content"
    );
    for r in &s[login + 1..] {
        let want = if r.path.starts_with("/sdk/") {
            "vim-session-1"
        } else {
            REST_TOKEN
        };
        assert_eq!(r.session.as_deref(), Some(want), "{r:?}");
    }
    let vim: Vec<&str> = s[login + 1..]
        .iter()
        .filter_map(|r| r.path.strip_prefix("/sdk/vim25/8.0.3.0/"))
        .collect();
    assert_eq!(
        vim,
        [
            "VirtualMachine/vm-42/config",
            "VirtualMachine/vm-42/runtime",
            "VirtualMachine/vm-42/snapshot",
            "VirtualMachine/vm-42/guest",
            "VirtualMachine/vm-42/recentTask",
        ]
    );
    // The REST lookup gave the VM id, with the REST session.
    assert!(s.iter().any(|r| r.path == "/api/vcenter/vm?names=db01"));
}

#[tokio::test]
async fn logs_in_again_once_when_the_session_expired() {
    for status in [500, 401] {
        let (c, w) = start(World::default()).await;
        c.warm_view(VM_NAME, None).await.expect("view");
        w.lock().expect("world").expire_next = Some(status);
        let before = seen(&w).len();
        c.snapshot_disks("snapshot-1")
            .await
            .expect_err("no such snapshot, but after a new login");
        let s = seen(&w)[before..].to_vec();
        let paths: Vec<_> = s.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/sdk/vim25/8.0.3.0/VirtualMachineSnapshot/snapshot-1/config",
                "/sdk/vim25/8.0.3.0/SessionManager/SessionManager/Login",
                "/sdk/vim25/8.0.3.0/VirtualMachineSnapshot/snapshot-1/config",
            ],
            "{status}"
        );
        assert_eq!(s[0].session.as_deref(), Some("vim-session-1"));
        assert_eq!(s[2].session.as_deref(), Some("vim-session-2"));
    }
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_and_never_printed() {
    let wrong = Credentials {
        user: USER.into(),
        password: Secret::new("wrong-password"),
    };
    let (c, _) = start_as(World::default(), wrong).await;
    let e = c.warm_view(VM_NAME, None).await.expect_err("refused");
    assert!(matches!(e, SourceError::Unauthorized(_)), "{e:?}");
    assert!(!e.to_string().contains("wrong-password"));
}

// ---- reads ----

#[tokio::test]
async fn warm_view_reads_config_runtime_tree_guest_and_tasks() {
    let mut world = World {
        cbt: true,
        disks: vec![
            ("[ds1] db01/db01.vmdk".into(), Some(CID.into())),
            ("[ds2] db01/db01_1.vmdk".into(), None),
        ],
        tools: false,
        ..World::default()
    };
    let a = world.add_snapshot("before-upgrade", false);
    let b = world.add_snapshot("nightly", true);
    let c2 = world.add_snapshot("latest", false);
    world.snaps.push(Snap {
        id: "snapshot-90".into(),
        name: "branch".into(),
        quiesced: false,
        parent: Some(a.clone()),
    });
    world.foreign_task(5);
    let (c, _) = start(world).await;
    let v = c.warm_view(VM_NAME, None).await.expect("view");
    assert_eq!(v.power, SourcePower::On);
    assert!(v.cbt_enabled);
    assert_eq!(
        v.disks,
        [
            SourceDisk {
                file: "[ds1] db01/db01.vmdk".into(),
                change_id: Some(CID.into()),
            },
            SourceDisk {
                file: "[ds2] db01/db01_1.vmdk".into(),
                change_id: None,
            },
        ]
    );
    assert!(!v.change_ids_ready());
    // Depth-first: a, its children in order (b, then b's child `latest`; then the branch).
    let tree: Vec<(&str, &str, bool)> = v
        .snapshots
        .iter()
        .map(|s| (s.moref.as_str(), s.name.as_str(), s.quiesced))
        .collect();
    assert_eq!(
        tree,
        [
            (a.as_str(), "before-upgrade", false),
            (b.as_str(), "nightly", true),
            (c2.as_str(), "latest", false),
            ("snapshot-90", "branch", false),
        ]
    );
    assert!(v.snapshot_task_running);
    assert!(!v.tools_running);
}

#[tokio::test]
async fn an_unset_snapshot_property_means_no_snapshots() {
    for mode in 0..3 {
        let (c, _) = start(World {
            unset_snapshot: mode,
            power: "suspended",
            ..World::default()
        })
        .await;
        let v = c.warm_view(VM_NAME, None).await.expect("view");
        assert_eq!(v.snapshots, [], "mode {mode}");
        assert_eq!(v.power, SourcePower::Off);
        assert!(!v.snapshot_task_running);
        assert!(v.tools_running);
    }
}

#[tokio::test]
async fn snapshot_disks_in_device_order() {
    let mut world = World::default();
    let snap = world.add_snapshot("wavelift-1", false);
    let (c, w) = start(world).await;
    let disks = c.snapshot_disks(&snap).await.expect("disks");
    assert_eq!(
        disks,
        [
            SourceDisk {
                file: "[ds1] db01/db01-000001.vmdk".into(),
                change_id: Some("snap1-disk0".into()),
            },
            SourceDisk {
                file: "[ds1] db01/db01_1-000001.vmdk".into(),
                change_id: Some("snap1-disk1".into()),
            },
        ]
    );
    assert!(lines(&w).contains(&format!(
        "GET /sdk/vim25/8.0.3.0/VirtualMachineSnapshot/{snap}/config"
    )));
}

#[tokio::test]
async fn plain_5xx_is_retried_a_fault_is_not() {
    let (c, w) = start(World {
        inject: vec![("GET", "/VirtualMachine/vm-42/config", 503, "busy".into())],
        ..World::default()
    })
    .await;
    c.warm_view(VM_NAME, None)
        .await
        .expect("the second attempt");
    let configs = |w: &Shared| {
        lines(w)
            .iter()
            .filter(|l| l.ends_with("/VirtualMachine/vm-42/config"))
            .count()
    };
    assert_eq!(configs(&w), 2);
    let (c, w) = start(World {
        inject: vec![(
            "GET",
            "/VirtualMachine/vm-42/config",
            500,
            fault_json(
                "NoPermission",
                "Permission to perform this operation was denied.",
            ),
        )],
        ..World::default()
    })
    .await;
    let e = c.warm_view(VM_NAME, None).await.expect_err("a final fault");
    assert!(
        matches!(&e, SourceError::Fault { kind, .. } if kind == "NoPermission"),
        "{e:?}"
    );
    assert_eq!(configs(&w), 1);
}

// ---- changed areas ----

#[tokio::test]
async fn changed_bytes_pages_by_start_offset_and_sums_every_area() {
    let mut world = World {
        changed: vec![
            (0, 4096),
            (1 << 20, 65536),
            (8 << 20, 4096),
            (9 << 20, 1 << 20),
            (512 << 20, 8192),
        ],
        areas_per_call: 2,
        ..World::default()
    };
    let snap = world.add_snapshot("wavelift-2", false);
    let (c, w) = start(world).await;
    let bytes = c
        .changed_bytes(VM_NAME, None, &snap, 1, CID)
        .await
        .expect("changed bytes");
    assert_eq!(bytes, 4096 + 65536 + 4096 + (1 << 20) + 8192);
    let queries: Vec<Seen> = vim_posts(&w)
        .into_iter()
        .filter(|s| s.path.ends_with("/QueryChangedDiskAreas"))
        .collect();
    // Three pages: from 0, from the end of the second area, from the end of the fourth.
    let offsets: Vec<u64> = queries
        .iter()
        .map(|q| q.body["startOffset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, [0, (1 << 20) + 65536, 10 << 20]);
    for q in &queries {
        assert_eq!(q.path, "VirtualMachine/vm-42/QueryChangedDiskAreas");
        assert_eq!(
            q.body,
            json!({
                "_typeName": "QueryChangedDiskAreasRequestType",
                "snapshot": mo("VirtualMachineSnapshot", &snap),
                "deviceKey": 2001,
                "startOffset": q.body["startOffset"],
                "changeId": CID,
            })
        );
        assert!(q.session.is_some(), "with the VI/JSON session");
    }
    // The device key and capacity come from the snapshot's config.
    assert!(lines(&w).contains(&format!(
        "GET /sdk/vim25/8.0.3.0/VirtualMachineSnapshot/{snap}/config"
    )));
}

#[tokio::test]
async fn changed_bytes_of_an_unchanged_disk_is_zero_in_one_call() {
    let mut world = World::default();
    let snap = world.add_snapshot("wavelift-2", false);
    let (c, w) = start(world).await;
    assert_eq!(
        c.changed_bytes(VM_NAME, None, &snap, 0, "*")
            .await
            .expect("bytes"),
        0
    );
    let queries: Vec<Seen> = vim_posts(&w)
        .into_iter()
        .filter(|s| s.path.ends_with("/QueryChangedDiskAreas"))
        .collect();
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].body["deviceKey"], 2000);
    assert_eq!(queries[0].body["changeId"], "*");
}

#[tokio::test]
async fn changed_bytes_faults_are_final_busy_answers_retried() {
    let mut world = World {
        changed: vec![(0, 4096)],
        ..World::default()
    };
    let snap = world.add_snapshot("wavelift-2", false);
    world.inject = vec![(
        "POST",
        "/QueryChangedDiskAreas",
        500,
        fault_json("FileFault", "Error caused by file [ds1] db01/db01.vmdk"),
    )];
    let (c, w) = start(world).await;
    let e = c
        .changed_bytes(VM_NAME, None, &snap, 0, CID)
        .await
        .expect_err("a fault");
    assert!(
        matches!(&e, SourceError::Fault { kind, message }
            if kind == "FileFault" && message.contains("db01.vmdk")),
        "{e:?}"
    );
    let queries = |w: &Shared| {
        lines(w)
            .iter()
            .filter(|l| l.ends_with("/QueryChangedDiskAreas"))
            .count()
    };
    assert_eq!(queries(&w), 1, "a fault is not retried");
    // A plain 503 is: the second attempt answers.
    w.lock().expect("world").inject = vec![("POST", "/QueryChangedDiskAreas", 503, "busy".into())];
    let bytes = c
        .changed_bytes(VM_NAME, None, &snap, 0, CID)
        .await
        .expect("the second attempt");
    assert_eq!(bytes, 4096);
    assert_eq!(queries(&w), 3);
}

#[tokio::test]
async fn changed_bytes_refuses_answers_that_do_not_page_and_unknown_disks() {
    let mut world = World::default();
    let snap = world.add_snapshot("wavelift-2", false);
    let stuck = json!({"_typeName": "DiskChangeInfo", "startOffset": 0, "length": 0}).to_string();
    world.inject = vec![("POST", "/QueryChangedDiskAreas", 200, stuck)];
    let (c, _w) = start(world).await;
    let e = c
        .changed_bytes(VM_NAME, None, &snap, 0, CID)
        .await
        .expect_err("no progress");
    assert!(
        matches!(&e, SourceError::Http(m) if m.contains("ends at 0")),
        "{e:?}"
    );
    let e = c
        .changed_bytes(VM_NAME, None, &snap, 2, CID)
        .await
        .expect_err("no third disk");
    assert!(
        matches!(&e, SourceError::Http(m) if m.contains("no disk 2")),
        "{e:?}"
    );
}

// ---- tasks and snapshots ----

#[tokio::test]
async fn create_snapshot_polls_its_task_and_reads_every_result_shape() {
    for shape in 0..3 {
        let (c, w) = start(World {
            task_polls: 3,
            result_shape: shape,
            ..World::default()
        })
        .await;
        let s = c
            .create_snapshot(VM_NAME, None, "wavelift-1", true)
            .await
            .expect("created");
        let created = w.lock().expect("world").snaps[0].id.clone();
        assert_eq!(
            s,
            Snapshot {
                moref: created,
                name: "wavelift-1".into(),
                quiesced: true,
            },
            "shape {shape}"
        );
        let posts = vim_posts(&w);
        let create = posts.last().expect("the create");
        assert_eq!(create.path, "VirtualMachine/vm-42/CreateSnapshot_Task");
        assert_eq!(
            create.body,
            json!({
                "_typeName": "CreateSnapshotRequestType",
                "name": "wavelift-1",
                "description": "wavelift: warm-migration checkpoint",
                "memory": false,
                "quiesce": true,
            })
        );
        // Three polls running, the fourth finds it done.
        let polls = lines(&w)
            .iter()
            .filter(|l| l.ends_with("/Task/task-1/info"))
            .count();
        assert_eq!(polls, 4, "shape {shape}");
    }
}

#[tokio::test]
async fn a_failed_task_surfaces_its_fault() {
    let (c, w) = start(World {
        quiesce_fault: true,
        ..World::default()
    })
    .await;
    let e = c
        .create_snapshot(VM_NAME, None, "wavelift-1", true)
        .await
        .expect_err("quiescing fails");
    match &e {
        SourceError::Fault { kind, message } => {
            assert_eq!(kind, "ApplicationQuiesceFault");
            assert!(message.contains("quiescing"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(post_paths(&w).len(), 1, "a fault is not retried");
}

#[tokio::test]
async fn create_waits_for_the_vms_running_tasks() {
    let mut world = World::default();
    let foreign = world.foreign_task(3);
    let (c, w) = start(world).await;
    c.create_snapshot(VM_NAME, None, "wavelift-1", false)
        .await
        .expect("created");
    let done_at = w
        .lock()
        .expect("world")
        .foreign_done_at
        .expect("the other task finished");
    let l = lines(&w);
    let post = l
        .iter()
        .position(|l| l.ends_with("/CreateSnapshot_Task"))
        .expect("the create");
    assert!(
        post >= done_at,
        "created at {post}, before {foreign} finished ({done_at}): {l:?}"
    );
    assert!(
        l[..post]
            .iter()
            .filter(|l| l.ends_with(&format!("/Task/{foreign}/info")))
            .count()
            >= 4
    );
}

#[tokio::test]
async fn an_existing_snapshot_of_that_name_is_returned_without_a_post() {
    let mut world = World::default();
    world.add_snapshot("user", false);
    let id = world.add_snapshot("wavelift-1", true);
    let (c, w) = start(world).await;
    let s = c
        .create_snapshot(VM_NAME, None, "wavelift-1", false)
        .await
        .expect("found");
    assert_eq!(
        s,
        Snapshot {
            moref: id,
            name: "wavelift-1".into(),
            quiesced: true,
        }
    );
    assert_eq!(post_paths(&w), Vec::<String>::new());
}

#[tokio::test]
async fn a_lost_create_answer_does_not_make_a_second_snapshot() {
    let (c, w) = start(World {
        lose_create_answer: true,
        task_polls: 2,
        ..World::default()
    })
    .await;
    let s = c
        .create_snapshot(VM_NAME, None, "wavelift-1", false)
        .await
        .expect("found on the second attempt");
    let world = w.lock().expect("world");
    assert_eq!(world.snaps.len(), 1);
    assert_eq!(s.moref, world.snaps[0].id);
    drop(world);
    assert_eq!(post_paths(&w), ["VirtualMachine/vm-42/CreateSnapshot_Task"]);
}

#[tokio::test]
async fn remove_snapshot_posts_waits_and_tolerates_absence() {
    let mut world = World::default();
    let keep = world.add_snapshot("user", false);
    let gone = world.add_snapshot("wavelift-1", false);
    let child = world.add_snapshot("after", false);
    let (c, w) = start(world).await;
    c.remove_snapshot(VM_NAME, None, &gone)
        .await
        .expect("removed");
    let posts = vim_posts(&w);
    let remove = posts.last().expect("the remove");
    assert_eq!(
        remove.path,
        format!("VirtualMachineSnapshot/{gone}/RemoveSnapshot_Task")
    );
    assert_eq!(
        remove.body,
        json!({"_typeName": "RemoveSnapshotRequestType", "removeChildren": false, "consolidate": true})
    );
    let left: Vec<String> = w
        .lock()
        .expect("world")
        .snaps
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(left, [keep, child]);
    // Absent from the tree: nothing to do.
    c.remove_snapshot(VM_NAME, None, &gone)
        .await
        .expect("already gone");
    assert_eq!(post_paths(&w).len(), 1);
    // Gone between the read and the POST: ManagedObjectNotFound counts as removed.
    let mut world = World::default();
    let id = world.add_snapshot("wavelift-1", false);
    let (c, w) = start(World {
        inject: vec![(
            "POST",
            "/RemoveSnapshot_Task",
            500,
            fault_json("ManagedObjectNotFound", "deleted"),
        )],
        ..world
    })
    .await;
    c.remove_snapshot(VM_NAME, None, &id)
        .await
        .expect("not found is removed");
    assert_eq!(post_paths(&w).len(), 1);
}

// ---- CBT ----

#[tokio::test]
async fn enable_cbt_reconfigures_then_stuns_once() {
    let (c, w) = start(World::default()).await;
    c.enable_cbt(VM_NAME, None).await.expect("CBT on");
    let posts: Vec<Seen> = vim_posts(&w)
        .into_iter()
        .filter(|s| !s.path.ends_with("/Login"))
        .collect();
    let paths: Vec<&str> = posts.iter().map(|s| s.path.as_str()).collect();
    {
        let world = w.lock().expect("world");
        assert!(world.snaps.is_empty(), "the stun snapshot is gone");
        assert!(world.cbt);
    }
    // The mock numbers tasks and snapshots from one counter: task-1 (reconfigure),
    // task-2 (create), snapshot-3.
    assert_eq!(
        paths,
        [
            "VirtualMachine/vm-42/ReconfigVM_Task",
            "VirtualMachine/vm-42/CreateSnapshot_Task",
            "VirtualMachineSnapshot/snapshot-3/RemoveSnapshot_Task",
        ]
    );
    assert_eq!(
        posts[0].body,
        json!({
            "_typeName": "ReconfigVMRequestType",
            "spec": {"_typeName": "VirtualMachineConfigSpec", "changeTrackingEnabled": true},
        })
    );
    assert_eq!(posts[1].body["name"], CBT_STUN_SNAPSHOT);
    assert_eq!(posts[1].body["memory"], false);
    assert_eq!(posts[1].body["quiesce"], false);
    assert_eq!(posts[2].body["consolidate"], true);
    // Ready now: a second call reads and does nothing.
    let before = post_paths(&w).len();
    c.enable_cbt(VM_NAME, None).await.expect("no-op");
    assert_eq!(post_paths(&w).len(), before);
    let v = c.warm_view(VM_NAME, None).await.expect("view");
    assert!(v.change_ids_ready());
}

#[tokio::test]
async fn enable_cbt_requires_change_ids() {
    let (c, w) = start(World {
        stun_sets_change_ids: false,
        ..World::default()
    })
    .await;
    let e = c
        .enable_cbt(VM_NAME, None)
        .await
        .expect_err("no change IDs");
    let SourceError::CbtNotReady { vm, reason } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(vm, VM_NAME);
    assert!(reason.contains("[ds1] db01/db01.vmdk"), "{reason}");
    assert_eq!(
        post_paths(&w).len(),
        3,
        "reconfigure, stun create, stun remove; not retried"
    );
}

#[tokio::test]
async fn enable_cbt_removes_a_leftover_stun_snapshot_instead_of_a_second_one() {
    let mut world = World {
        cbt: true,
        ..World::default()
    };
    let leftover = world.add_snapshot(CBT_STUN_SNAPSHOT, false);
    let (c, w) = start(world).await;
    c.enable_cbt(VM_NAME, None).await.expect("CBT on");
    assert_eq!(
        post_paths(&w),
        [format!(
            "VirtualMachineSnapshot/{leftover}/RemoveSnapshot_Task"
        )]
    );
    assert!(w.lock().expect("world").snaps.is_empty());
}

// ---- guest shutdown ----

#[tokio::test]
async fn shutdown_without_tools_is_tools_unavailable_without_a_post() {
    let (c, w) = start(World {
        guest_ready: false,
        tools: false,
        ..World::default()
    })
    .await;
    let e = c.shutdown_guest(VM_NAME, None).await.expect_err("no Tools");
    assert!(
        matches!(&e, SourceError::Fault { kind, .. } if kind == "ToolsUnavailable"),
        "{e:?}"
    );
    assert!(
        !lines(&w).iter().any(|l| l.contains("action=shutdown")),
        "{:?}",
        lines(&w)
    );
}

#[tokio::test]
async fn shutdown_asks_the_guest() {
    let (c, w) = start(World::default()).await;
    c.shutdown_guest(VM_NAME, None).await.expect("asked");
    let l = lines(&w);
    assert!(l.contains(&"GET /api/vcenter/vm/vm-42/guest/power".to_string()));
    assert_eq!(
        l.iter()
            .filter(|l| *l == "POST /api/vcenter/vm/vm-42/guest/power?action=shutdown")
            .count(),
        1
    );
    assert!(
        seen(&w).iter().all(|s| !s.path.starts_with("/sdk/")),
        "REST only"
    );
    // Off now: a repeated request is done without a second POST.
    w.lock().expect("world").guest_ready = false;
    c.shutdown_guest(VM_NAME, None).await.expect("already off");
    assert_eq!(
        lines(&w)
            .iter()
            .filter(|l| l.contains("action=shutdown"))
            .count(),
        1
    );
}

#[tokio::test]
async fn shutdown_answers_tools_unavailable_or_already_off() {
    let (c, w) = start(World {
        shutdown_answer: Some((
            503,
            r#"{"error_type":"SERVICE_UNAVAILABLE","messages":[{"default_message":"Tools not running","id":"x"}]}"#.into(),
        )),
        ..World::default()
    })
    .await;
    let e = c.shutdown_guest(VM_NAME, None).await.expect_err("no Tools");
    assert!(
        matches!(&e, SourceError::Fault { kind, .. } if kind == "ToolsUnavailable"),
        "{e:?}"
    );
    assert_eq!(
        lines(&w)
            .iter()
            .filter(|l| l.contains("action=shutdown"))
            .count(),
        1,
        "not retried"
    );
    let (c, w) = start(World {
        shutdown_answer: Some((
            400,
            r#"{"error_type":"NOT_ALLOWED_IN_CURRENT_STATE","messages":[]}"#.into(),
        )),
        ..World::default()
    })
    .await;
    w.lock().expect("world").power = "poweredOff";
    c.shutdown_guest(VM_NAME, None).await.expect("already off");
}

// ---- time ----

#[tokio::test(start_paused = true)]
async fn a_task_that_never_ends_times_out() {
    let (c, w) = start(World {
        task_polls: u32::MAX,
        ..World::default()
    })
    .await;
    let c = c
        .with_task_poll(Duration::from_secs(1))
        .with_task_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let e = c
        .create_snapshot(VM_NAME, None, "wavelift-1", false)
        .await
        .expect_err("times out");
    assert!(
        matches!(&e, SourceError::TaskTimeout { after, .. } if *after == Duration::from_secs(5)),
        "{e:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    // Polled at 0, 1, …, 5 s.
    let polls = lines(&w)
        .iter()
        .filter(|l| l.ends_with("/Task/task-1/info"))
        .count();
    assert_eq!(polls, 6);
    // The wait for a VM's running tasks is bounded the same way.
    let e = c
        .create_snapshot(VM_NAME, None, "wavelift-2", false)
        .await
        .expect_err("task-1 still runs");
    assert!(
        matches!(&e, SourceError::TaskTimeout { what, .. } if what.contains("task-1")),
        "{e:?}"
    );
}

// ---- hygiene ----

#[tokio::test]
async fn credentials_and_tokens_stay_out_of_debug_and_logs() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Sink(Arc<StdMutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let make = {
        let sink = sink.clone();
        move || sink.clone()
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("wavelift=trace"))
        .with_writer(make)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (c, w) = start(World {
        inject: vec![("GET", "/VirtualMachine/vm-42/runtime", 503, "busy".into())],
        ..World::default()
    })
    .await;
    c.enable_cbt(VM_NAME, None).await.expect("CBT on");
    c.shutdown_guest(VM_NAME, None).await.expect("asked");
    let logs = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf-8");
    assert!(logs.contains("wavelift::vim"), "logs were captured: {logs}");
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    let debug = format!("{c:?}");
    assert!(debug.contains(USER), "{debug}");
    for secret in [PASSWORD, "vim-session-1", REST_TOKEN] {
        assert!(!logs.contains(secret), "`{secret}` in the logs: {logs}");
        assert!(!debug.contains(secret), "`{secret}` in Debug: {debug}");
    }
    assert!(w.lock().expect("world").logins >= 1);
}
