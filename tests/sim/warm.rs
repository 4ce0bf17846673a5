//! Warm migration against the rehearsal world, over real HTTP: the simulated vCenter's
//! VI/JSON (sessions, VM config with CBT change IDs, snapshots and their tasks, faults,
//! releases and `hello`), guest shutdown over REST and VI/JSON, and CDI's multi-stage
//! imports through the real kube-rs client (checkpoints, `Paused`, the PVC's checkpoint
//! annotations, the update webhook, an importer that cannot find its snapshot) judged by the
//! world's disk verdict.
//!
//! Waits are conditions with a bounded deadline; the sim runs fast (`speed`), except where
//! a task must still be running when the test looks.

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wavelift::cluster::build;
use wavelift::cluster::resources::{
    DataVolume, DataVolumeCheckpoint, ANN_CHECKPOINT_COPIED, ANN_MULTI_STAGE_DONE,
};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{PowerState, Scenario};
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, WarmOps};

const LIMIT: Duration = Duration::from_secs(30);
const SDK: &str = "/sdk/vim25/8.0.3.0";

/// One HTTP request to the sim (`Value::Null` for an empty body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, http::HeaderMap, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "vcenter.example.internal")
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = send
        .send_request(
            req.body(Full::new(bytes::Bytes::from(bytes)))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    (status, headers, v)
}

/// Polls `f` until it gives a value, at most [`LIMIT`].
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A VI/JSON client of the rehearsal's vCenter.
struct Vim {
    addr: SocketAddr,
    token: String,
}

impl Vim {
    async fn login(addr: SocketAddr) -> Vim {
        let (code, headers, body) = http(
            addr,
            "POST",
            &format!("{SDK}/SessionManager/SessionManager/Login"),
            &[],
            Some(&json!({ "_typeName": "Login", "userName": "sim-user", "password": "sim-password" })),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["_typeName"], "UserSession", "{body}");
        let token = headers
            .get("vmware-api-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("session header")
            .to_string();
        Vim { addr, token }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (c, _, b) = http(
            self.addr,
            "GET",
            &format!("{SDK}/{path}"),
            &[("vmware-api-session-id", &self.token)],
            None,
        )
        .await;
        (c, b)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (c, _, b) = http(
            self.addr,
            "POST",
            &format!("{SDK}/{path}"),
            &[("vmware-api-session-id", &self.token)],
            Some(&body),
        )
        .await;
        (c, b)
    }

    /// Starts a task and returns its id.
    async fn task(&self, path: &str, body: Value) -> String {
        let (c, b) = self.post(path, body).await;
        assert_eq!(c, 200, "{path}: {b}");
        assert_eq!(b["_typeName"], "ManagedObjectReference", "{b}");
        assert_eq!(b["type"], "Task", "{b}");
        b["value"].as_str().expect("task id").to_string()
    }

    /// Waits for task `id` to end; its `TaskInfo`.
    async fn wait(&self, id: &str) -> Value {
        until(&format!("task {id}"), || async {
            let (c, info) = self.get(&format!("Task/{id}/info")).await;
            assert_eq!(c, 200, "{info}");
            matches!(info["state"].as_str(), Some("success" | "error")).then_some(info)
        })
        .await
    }

    /// Creates a snapshot (not quiesced) and returns its reference value.
    async fn snapshot(&self, vm: &str, name: &str) -> String {
        let id = self
            .task(
                &format!("VirtualMachine/{vm}/CreateSnapshot_Task"),
                json!({ "name": name, "description": "wavelift", "memory": false, "quiesce": false }),
            )
            .await;
        let info = self.wait(&id).await;
        assert_eq!(info["state"], "success", "{info}");
        assert_eq!(info["result"]["type"], "VirtualMachineSnapshot", "{info}");
        info["result"]["value"]
            .as_str()
            .expect("snapshot")
            .to_string()
    }

    async fn remove(&self, snap: &str) {
        let id = self
            .task(
                &format!("VirtualMachineSnapshot/{snap}/RemoveSnapshot_Task"),
                json!({ "removeChildren": false, "consolidate": true }),
            )
            .await;
        let info = self.wait(&id).await;
        assert_eq!(info["state"], "success", "{info}");
    }

    /// The `VirtualDisk` devices of a config.
    fn disks(config: &Value) -> Vec<Value> {
        config["hardware"]["device"]
            .as_array()
            .expect("devices")
            .iter()
            .filter(|d| d["_typeName"] == "VirtualDisk")
            .cloned()
            .collect()
    }

    /// Disk 0's change ID in snapshot `snap`.
    async fn change_id(&self, snap: &str) -> String {
        let (c, config) = self
            .get(&format!("VirtualMachineSnapshot/{snap}/config"))
            .await;
        assert_eq!(c, 200, "{config}");
        Self::disks(&config)[0]["backing"]["changeId"]
            .as_str()
            .expect("change id")
            .to_string()
    }
}

fn moid(r: &Rehearsal, vm: &str) -> String {
    r.controllers.world.find(vm).expect("source VM").moid
}

/// Waits until the source VM `vm` wrote more than `gen` (the world's clock runs).
async fn writes_after(r: &Rehearsal, vm: &str, gen: u64) -> u64 {
    until("the source writes", || async {
        let (_, _, d) = http(
            r.sim.addr,
            "GET",
            &format!("/sim/v1/disks?vm={vm}&disks=1"),
            &[],
            None,
        )
        .await;
        let g = d["generation"].as_u64().expect("generation");
        (g > gen).then_some(g)
    })
    .await
}

const TWO_VMS: &str = r#"
speed = 2000.0
[[source_vm]]
name = "web"
nics = [{ ip = "192.0.2.20", mac = "00:50:56:00:00:20" }]
disks = [{ file = "[ds1] web/web.vmdk", size = "40Gi" }, { file = "[ds1] web/web_1.vmdk", size = "10Gi" }]

[[source_vm]]
name = "legacy"
tools = false
cbt = false
disks = [{ file = "[ds2] legacy/legacy.vmdk", size = "20Gi" }]

[[fault]]
kind = "snapshot-failure"
vm = "web"
mode = "once"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vi_json_sessions_config_snapshots_and_faults() {
    let scenario = Scenario::from_toml(TWO_VMS, "warm.toml").expect("scenario");
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let addr = r.sim.addr;
    let before = r
        .vcenter
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);

    // The service content needs no session.
    let (c, _, content) = http(
        addr,
        "GET",
        &format!("{SDK}/ServiceInstance/ServiceInstance/content"),
        &[],
        None,
    )
    .await;
    assert_eq!(c, 200, "{content}");
    assert_eq!(content["_typeName"], "ServiceContent");
    assert_eq!(content["sessionManager"]["value"], "SessionManager");
    assert_eq!(content["propertyCollector"]["type"], "PropertyCollector");
    assert_eq!(content["about"]["apiVersion"], "8.0.3.0");
    // Anything else does: NotAuthenticated, as a fault (HTTP 500).
    for token in [None, Some("not-a-session")] {
        let h: Vec<(&str, &str)> = token
            .map(|t| ("vmware-api-session-id", t))
            .into_iter()
            .collect();
        let (c, _, f) = http(
            addr,
            "GET",
            &format!("{SDK}/VirtualMachine/vm-1001/config"),
            &h,
            None,
        )
        .await;
        assert_eq!(c, 500, "{f}");
        assert_eq!(f["_typeName"], "NotAuthenticated", "{f}");
        assert_eq!(
            f["faultMessage"][0]["_typeName"], "LocalizableMessage",
            "{f}"
        );
    }
    let (c, _, f) = http(
        addr,
        "POST",
        &format!("{SDK}/SessionManager/SessionManager/Login"),
        &[],
        Some(&json!({ "userName": "sim-user", "password": "wrong" })),
    )
    .await;
    assert_eq!(
        (c, f["_typeName"].as_str()),
        (500, Some("InvalidLogin")),
        "{f}"
    );
    let vim = Vim::login(addr).await;
    let (web, legacy) = (moid(&r, "web"), moid(&r, "legacy"));

    // Config: CBT on with change IDs on every disk, base files, device keys 2000+.
    let (c, config) = vim.get(&format!("VirtualMachine/{web}/config")).await;
    assert_eq!(c, 200, "{config}");
    assert_eq!(config["_typeName"], "VirtualMachineConfigInfo");
    assert_eq!(config["name"], "web");
    assert_eq!(config["changeTrackingEnabled"], true);
    assert!(config["uuid"].is_string() && config["instanceUuid"].is_string());
    let disks = Vim::disks(&config);
    assert_eq!(disks.len(), 2);
    assert_eq!(disks[0]["key"], 2000);
    assert_eq!(disks[1]["key"], 2001);
    assert_eq!(disks[0]["capacityInBytes"], 40u64 << 30);
    assert_eq!(
        disks[0]["backing"]["_typeName"],
        "VirtualDiskFlatVer2BackingInfo"
    );
    assert_eq!(disks[0]["backing"]["fileName"], "[ds1] web/web.vmdk");
    let c0 = disks[0]["backing"]["changeId"].as_str().expect("change id");
    let c1 = disks[1]["backing"]["changeId"].as_str().expect("change id");
    assert!(
        c0.starts_with("52 ") && c0.contains('-') && c0.contains('/'),
        "{c0}"
    );
    assert_ne!(
        c0.split('/').next(),
        c1.split('/').next(),
        "each disk its own prefix"
    );
    assert!(config["hardware"]["device"]
        .as_array()
        .expect("devices")
        .iter()
        .any(|d| d["_typeName"] == "VirtualVmxnet3" && d["macAddress"] == "00:50:56:00:00:20"));
    // CBT off: no change IDs.
    let (_, config) = vim.get(&format!("VirtualMachine/{legacy}/config")).await;
    assert_eq!(config["changeTrackingEnabled"], false);
    assert!(
        Vim::disks(&config)[0]["backing"].get("changeId").is_none(),
        "{config}"
    );
    // Runtime, guest.
    let (_, rt) = vim.get(&format!("VirtualMachine/{web}/runtime")).await;
    assert_eq!(
        (rt["_typeName"].as_str(), rt["powerState"].as_str()),
        (Some("VirtualMachineRuntimeInfo"), Some("poweredOn"))
    );
    let (_, g) = vim.get(&format!("VirtualMachine/{web}/guest")).await;
    assert_eq!(g["toolsRunningStatus"], "guestToolsRunning");
    let (_, g) = vim.get(&format!("VirtualMachine/{legacy}/guest")).await;
    assert_eq!(g["toolsRunningStatus"], "guestToolsNotRunning");
    let (c, f) = vim
        .post(&format!("VirtualMachine/{legacy}/ShutdownGuest"), json!({}))
        .await;
    assert_eq!(
        (c, f["_typeName"].as_str()),
        (500, Some("ToolsUnavailable")),
        "{f}"
    );
    // No snapshot: the property is unset (204, no body).
    let (c, s) = vim.get(&format!("VirtualMachine/{web}/snapshot")).await;
    assert_eq!((c, s), (204, Value::Null));

    // The scenario's quiesce fault fails the first quiesced snapshot.
    let quiesced = json!({ "name": "warm-1", "description": "", "memory": false, "quiesce": true });
    let id = vim
        .task(
            &format!("VirtualMachine/{web}/CreateSnapshot_Task"),
            quiesced.clone(),
        )
        .await;
    let info = vim.wait(&id).await;
    assert_eq!(info["_typeName"], "TaskInfo");
    assert_eq!(info["state"], "error", "{info}");
    assert_eq!(info["descriptionId"], "VirtualMachine.createSnapshot");
    assert_eq!(info["entity"]["value"], web.as_str());
    assert_eq!(info["error"]["_typeName"], "LocalizedMethodFault");
    assert_eq!(
        info["error"]["fault"]["_typeName"], "ApplicationQuiesceFault",
        "{info}"
    );
    assert!(info["error"]["localizedMessage"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    // Once: the next quiesced one succeeds, quiesced.
    let id = vim
        .task(
            &format!("VirtualMachine/{web}/CreateSnapshot_Task"),
            quiesced.clone(),
        )
        .await;
    let info = vim.wait(&id).await;
    assert_eq!(info["state"], "success", "{info}");
    let snap = info["result"]["value"]
        .as_str()
        .expect("snapshot")
        .to_string();
    assert!(snap.starts_with("snapshot-"), "{snap}");
    let (c, tree) = vim.get(&format!("VirtualMachine/{web}/snapshot")).await;
    assert_eq!(c, 200);
    assert_eq!(tree["_typeName"], "VirtualMachineSnapshotInfo");
    assert_eq!(tree["currentSnapshot"]["value"], snap.as_str());
    let root = &tree["rootSnapshotList"][0];
    assert_eq!(root["_typeName"], "VirtualMachineSnapshotTree");
    assert_eq!(root["snapshot"]["value"], snap.as_str());
    assert_eq!(root["vm"]["value"], web.as_str());
    assert_eq!(root["name"], "warm-1");
    assert_eq!(root["quiesced"], true);
    assert_eq!(root["state"], "poweredOff");
    assert!(root["createTime"].is_string() && root["id"].is_i64());
    assert_eq!(root["childSnapshotList"], json!([]));
    // The VM writes to a delta now; the snapshot's disks are the base files, with their
    // change IDs of that instant.
    let (_, config) = vim.get(&format!("VirtualMachine/{web}/config")).await;
    assert_eq!(
        Vim::disks(&config)[0]["backing"]["fileName"],
        "[ds1] web/web-000001.vmdk"
    );
    assert_eq!(
        Vim::disks(&config)[0]["backing"]["parent"]["fileName"],
        "[ds1] web/web.vmdk"
    );
    let (_, sconf) = vim
        .get(&format!("VirtualMachineSnapshot/{snap}/config"))
        .await;
    assert_eq!(
        Vim::disks(&sconf)[0]["backing"]["fileName"],
        "[ds1] web/web.vmdk"
    );
    assert!(Vim::disks(&sconf)[0]["backing"]["changeId"].is_string());
    // Without Tools, a quiesced snapshot is taken unquiesced.
    let id = vim
        .task(
            &format!("VirtualMachine/{legacy}/CreateSnapshot_Task"),
            quiesced,
        )
        .await;
    assert_eq!(vim.wait(&id).await["state"], "success");
    let (_, tree) = vim.get(&format!("VirtualMachine/{legacy}/snapshot")).await;
    assert_eq!(tree["rootSnapshotList"][0]["quiesced"], false, "{tree}");
    // Remove: no snapshot, the base disk again; the recent tasks list them all.
    vim.remove(&snap).await;
    let (c, _) = vim.get(&format!("VirtualMachine/{web}/snapshot")).await;
    assert_eq!(c, 204);
    let (_, config) = vim.get(&format!("VirtualMachine/{web}/config")).await;
    assert_eq!(
        Vim::disks(&config)[0]["backing"]["fileName"],
        "[ds1] web/web.vmdk"
    );
    let (_, recent) = vim.get(&format!("VirtualMachine/{web}/recentTask")).await;
    assert_eq!(recent.as_array().map(Vec::len), Some(3), "{recent}");
    assert_eq!(recent[0]["type"], "Task");
    // The removed snapshot is gone; so is an unknown VM.
    let (c, f) = vim
        .get(&format!("VirtualMachineSnapshot/{snap}/config"))
        .await;
    assert_eq!(
        (c, f["_typeName"].as_str()),
        (500, Some("ManagedObjectNotFound")),
        "{f}"
    );
    let (c, f) = vim.get("VirtualMachine/vm-9999/runtime").await;
    assert_eq!(
        (c, f["_typeName"].as_str()),
        (500, Some("ManagedObjectNotFound")),
        "{f}"
    );
    assert_eq!(f["obj"]["value"], "vm-9999");
    // Releases: 8.0.1.0 to the vCenter's own; not later ones.
    let (c, _, _) = http(
        addr,
        "GET",
        "/sdk/vim25/8.0.1.0/ServiceInstance/ServiceInstance/content",
        &[],
        None,
    )
    .await;
    assert_eq!(c, 200);
    let (c, _, _) = http(
        addr,
        "GET",
        "/sdk/vim25/9.0.0.0/ServiceInstance/ServiceInstance/content",
        &[],
        None,
    )
    .await;
    assert_eq!(c, 404);
    // hello: the first of the client's releases this vCenter serves.
    let (c, _, h) = http(
        addr,
        "POST",
        "/api/vcenter/system?action=hello",
        &[],
        Some(&json!({ "api_releases": ["9.0.0.0", "8.0.3.0", "8.0.1.0"] })),
    )
    .await;
    assert_eq!((c, h), (200, json!({ "api_release": "8.0.3.0" })));
    let (_, _, h) = http(
        addr,
        "POST",
        "/api/vcenter/system?action=hello",
        &[],
        Some(&json!({ "api_releases": ["7.0.3.0"] })),
    )
    .await;
    assert_eq!(h, json!({ "api_release": "" }));
    // Every request counted as the vCenter's.
    let after = r
        .vcenter
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(after - before >= 30, "{before} → {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbt_gives_change_ids_only_after_a_stun() {
    let scenario = Scenario::from_toml(TWO_VMS, "warm.toml").expect("scenario");
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let vim = Vim::login(r.sim.addr).await;
    let legacy = moid(&r, "legacy");
    let id = vim
        .task(
            &format!("VirtualMachine/{legacy}/ReconfigVM_Task"),
            json!({ "spec": { "_typeName": "VirtualMachineConfigSpec", "changeTrackingEnabled": true } }),
        )
        .await;
    let info = vim.wait(&id).await;
    assert_eq!(info["state"], "success", "{info}");
    assert_eq!(info["descriptionId"], "VirtualMachine.reconfigure");
    let (_, config) = vim.get(&format!("VirtualMachine/{legacy}/config")).await;
    assert_eq!(config["changeTrackingEnabled"], true);
    assert!(
        Vim::disks(&config)[0]["backing"].get("changeId").is_none(),
        "not before a stun: {config}"
    );
    // A snapshot create stuns the VM: change IDs from then on (the snapshot has them too).
    let snap = vim.snapshot(&legacy, "stun").await;
    let (_, config) = vim.get(&format!("VirtualMachine/{legacy}/config")).await;
    assert!(
        Vim::disks(&config)[0]["backing"]["changeId"].is_string(),
        "{config}"
    );
    assert!(vim.change_id(&snap).await.starts_with("52 "));
    vim.remove(&snap).await;
}

/// Tasks of one VM run one at a time: a second is `queued` while the first runs, and
/// starts when it ends. (The clock runs slowly here so the first is still running when
/// the test looks: 3 simulated seconds are 1.5 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_vm_run_one_at_a_time() {
    let mut scenario = Scenario::from_toml(TWO_VMS, "warm.toml").expect("scenario");
    scenario.speed = 2.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let vim = Vim::login(r.sim.addr).await;
    let web = moid(&r, "web");
    let body = |n: &str| json!({ "name": n, "memory": false, "quiesce": false });
    let a = vim
        .task(
            &format!("VirtualMachine/{web}/CreateSnapshot_Task"),
            body("a"),
        )
        .await;
    let b = vim
        .task(
            &format!("VirtualMachine/{web}/CreateSnapshotEx_Task"),
            body("b"),
        )
        .await;
    let (_, ia) = vim.get(&format!("Task/{a}/info")).await;
    let (_, ib) = vim.get(&format!("Task/{b}/info")).await;
    assert_eq!(ia["state"], "running", "{ia}");
    assert_eq!(ib["state"], "queued", "{ib}");
    assert!(ib.get("startTime").is_none(), "{ib}");
    let (_, recent) = vim.get(&format!("VirtualMachine/{web}/recentTask")).await;
    assert_eq!(recent.as_array().map(Vec::len), Some(2), "{recent}");
    let ia = vim.wait(&a).await;
    let ib = vim.wait(&b).await;
    assert_eq!(
        (ia["state"].as_str(), ib["state"].as_str()),
        (Some("success"), Some("success"))
    );
    assert_eq!(ib["descriptionId"], "VirtualMachine.createSnapshotEx");
    // The second started when the first completed.
    assert_eq!(ib["startTime"], ia["completeTime"]);
    let (_, tree) = vim.get(&format!("VirtualMachine/{web}/snapshot")).await;
    assert_eq!(
        tree["rootSnapshotList"][0]["childSnapshotList"][0]["name"], "b",
        "{tree}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcenters_before_8_0_1_have_no_vi_json_and_before_8_0_2_no_hello() {
    for (version, sdk, hello) in [
        ("8.0.0", 404, 404),
        ("8.0.1", 200, 404),
        ("8.0.2", 200, 200),
    ] {
        let mut scenario = Scenario::from_toml(TWO_VMS, "warm.toml").expect("scenario");
        scenario.vcenter_version = version.into();
        let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
        let (c, _, _) = http(
            r.sim.addr,
            "GET",
            "/sdk/vim25/8.0.1.0/ServiceInstance/ServiceInstance/content",
            &[],
            None,
        )
        .await;
        assert_eq!(c, sdk, "{version}");
        let (c, _, _) = http(
            r.sim.addr,
            "POST",
            "/sdk/vim25/8.0.1.0/SessionManager/SessionManager/Login",
            &[],
            Some(&json!({ "userName": "sim-user", "password": "sim-password" })),
        )
        .await;
        assert_eq!(c, sdk, "{version}");
        let (c, _, _) = http(
            r.sim.addr,
            "POST",
            "/api/vcenter/system?action=hello",
            &[],
            Some(&json!({ "api_releases": ["8.0.1.0"] })),
        )
        .await;
        assert_eq!(c, hello, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_shutdown_powers_off_later_and_the_writes_stop() {
    let mut scenario = Scenario::from_toml(TWO_VMS, "warm.toml").expect("scenario");
    scenario.shutdown_seconds = 120.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let addr = r.sim.addr;
    let (c, _, token) = http(
        addr,
        "POST",
        "/api/session",
        &[("authorization", "Basic c2ltLXVzZXI6c2ltLXBhc3N3b3Jk")],
        None,
    )
    .await;
    assert_eq!(c, 201);
    let token = token.as_str().expect("token").to_string();
    let rest = |method: &'static str, path: String| {
        let token = token.clone();
        async move {
            http(
                addr,
                method,
                &path,
                &[("vmware-api-session-id", &token)],
                None,
            )
            .await
        }
    };
    let (web, legacy) = (moid(&r, "web"), moid(&r, "legacy"));
    let (c, _, gp) = rest("GET", format!("/api/vcenter/vm/{web}/guest/power")).await;
    assert_eq!(
        (c, gp),
        (200, json!({ "state": "RUNNING", "operations_ready": true }))
    );
    // Tools not running: 503 SERVICE_UNAVAILABLE.
    let (_, _, gp) = rest("GET", format!("/api/vcenter/vm/{legacy}/guest/power")).await;
    assert_eq!(gp["state"], "NOT_RUNNING");
    let (c, _, e) = rest(
        "POST",
        format!("/api/vcenter/vm/{legacy}/guest/power?action=shutdown"),
    )
    .await;
    assert_eq!(
        (c, e["error_type"].as_str()),
        (503, Some("SERVICE_UNAVAILABLE")),
        "{e}"
    );
    // The source writes while it runs.
    let g = writes_after(&r, "web", 0).await;
    let (c, _, _) = rest(
        "POST",
        format!("/api/vcenter/vm/{web}/guest/power?action=shutdown"),
    )
    .await;
    assert_eq!(c, 204);
    until("powered off after the delay", || async {
        let (_, _, p) = rest("GET", format!("/api/vcenter/vm/{web}/power")).await;
        (p["state"] == "POWERED_OFF").then_some(())
    })
    .await;
    let (c, _, e) = rest(
        "POST",
        format!("/api/vcenter/vm/{web}/guest/power?action=shutdown"),
    )
    .await;
    assert_eq!(
        (c, e["error_type"].as_str()),
        (400, Some("NOT_ALLOWED_IN_CURRENT_STATE")),
        "{e}"
    );
    // No write after the power-off, however long the world runs.
    let (_, _, d) = http(addr, "GET", "/sim/v1/disks?vm=web&disks=2", &[], None).await;
    let off_gen = d["generation"].as_u64().expect("generation");
    assert!(off_gen > g, "the delay's writes");
    let (_, _, clock) = http(addr, "GET", "/sim/v1/clock", &[], None).await;
    let t0 = clock["unix_ms"].as_i64().expect("clock");
    until("five simulated minutes pass", || async {
        let (_, _, clock) = http(addr, "GET", "/sim/v1/clock", &[], None).await;
        (clock["unix_ms"].as_i64().expect("clock") > t0 + 300_000).then_some(())
    })
    .await;
    let (_, _, d) = http(addr, "GET", "/sim/v1/disks?vm=web&disks=2", &[], None).await;
    assert_eq!(d["generation"].as_u64(), Some(off_gen), "{d}");
    assert_eq!(d["power"], "poweredOff");

    // The same through VI/JSON, on a VM with Tools powered on again.
    let vim = Vim::login(addr).await;
    let id = vim
        .task(&format!("VirtualMachine/{web}/PowerOnVM_Task"), json!({}))
        .await;
    assert_eq!(vim.wait(&id).await["state"], "success");
    let (c, b) = vim
        .post(&format!("VirtualMachine/{web}/ShutdownGuest"), json!({}))
        .await;
    assert_eq!((c, b), (204, Value::Null));
    until("VI/JSON shutdown powers off", || async {
        let (_, rt) = vim.get(&format!("VirtualMachine/{web}/runtime")).await;
        (rt["powerState"] == "poweredOff").then_some(())
    })
    .await;
    let (c, f) = vim
        .post(&format!("VirtualMachine/{web}/ShutdownGuest"), json!({}))
        .await;
    assert_eq!(
        (c, f["_typeName"].as_str()),
        (500, Some("InvalidPowerState")),
        "{f}"
    );
    assert_eq!(
        r.controllers.world.find("web").expect("web").power,
        PowerState::Off
    );
}

fn quickstart() -> Plan {
    wavelift::plan::check_file(std::path::Path::new("plans/quickstart.toml"))
        .expect("read")
        .plan
        .expect("valid")
}

fn phase(d: &DataVolume) -> Option<&str> {
    d.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str())
}

async fn wait_dv(
    api: &Api<DataVolume>,
    name: &str,
    what: &str,
    cond: impl Fn(&DataVolume) -> bool,
) -> DataVolume {
    until(what, || async {
        api.get_opt(name).await.expect("get").filter(|d| cond(d))
    })
    .await
}

async fn wait_pvc(
    api: &Api<PersistentVolumeClaim>,
    name: &str,
    what: &str,
    cond: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    until(what, || async {
        api.get_opt(name)
            .await
            .expect("get")
            .and_then(|p| p.metadata.annotations)
            .filter(|a| cond(a))
    })
    .await
}

fn copied(snap: &str) -> String {
    format!("{ANN_CHECKPOINT_COPIED}.{snap}")
}

/// A warm import the way Forklift sequences it: snapshot, first stage (the whole disk),
/// `Paused`; a later snapshot, a delta from the first snapshot's change ID; the source off,
/// a final snapshot and stage, `Succeeded`: the disk holds every write. A stage that skips
/// one (its `previous` is a later change ID than the last copied snapshot's) leaves the
/// copy without the writes between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_stage_imports_hold_every_write_unless_a_stage_is_skipped() {
    let plan = quickstart();
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 3000.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let ns = plan.meta.namespace.as_str();
    let dvs: Api<DataVolume> = Api::namespaced(r.client(), ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(r.client(), ns);
    let vim = Vim::login(r.sim.addr).await;
    let pp = PatchParams::default();

    for (vm, skip) in [("shop-web-01", false), ("shop-app-01", true)] {
        let moid = moid(&r, vm);
        let name = format!("{vm}-disk0");
        let s1 = vim.snapshot(&moid, "wavelift-1").await;
        let c1 = vim.change_id(&s1).await;
        let mut dv = build::data_volume(&plan, plan.vm(vm).expect("vm"), 0).expect("dv");
        dv.spec.checkpoints = vec![DataVolumeCheckpoint {
            previous: String::new(),
            current: s1.clone(),
        }];
        dvs.create(&PostParams::default(), &dv)
            .await
            .expect("create");
        let a = wait_pvc(&pvcs, &name, "stage 1 copied", |a| {
            a.contains_key(&copied(&s1))
        })
        .await;
        assert_eq!(
            a.get("cdi.kubevirt.io/storage.checkpoint.current"),
            Some(&s1)
        );
        assert_eq!(
            a.get("cdi.kubevirt.io/storage.checkpoint.final")
                .map(String::as_str),
            Some("false")
        );
        let d = wait_dv(&dvs, &name, "paused", |d| phase(d) == Some("Paused")).await;
        let ready = d
            .status
            .as_ref()
            .expect("status")
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned();
        assert_eq!(
            ready.map(|c| c.reason),
            Some(Some("ImportPaused".to_string())),
            "{d:?}"
        );

        // The source writes on; a second snapshot.
        let g = r.controllers.world.disk_verdict(vm, 1);
        assert_eq!(g.result, "inconsistent", "the source still runs: {g:?}");
        writes_after(&r, vm, 0).await;
        let s2 = vim.snapshot(&moid, "wavelift-2").await;
        let c2 = vim.change_id(&s2).await;
        assert_ne!(c1, c2);
        if !skip {
            dvs.patch(
                &name,
                &pp,
                &Patch::Merge(json!({ "spec": { "checkpoints": [
                    { "previous": "", "current": s1 },
                    { "previous": c1, "current": s2 },
                ] } })),
            )
            .await
            .expect("append checkpoint 2");
            wait_pvc(&pvcs, &name, "stage 2 copied", |a| {
                a.contains_key(&copied(&s2))
            })
            .await;
            wait_dv(&dvs, &name, "paused again", |d| phase(d) == Some("Paused")).await;
        }
        // A change ID outlives its snapshot: remove the first.
        vim.remove(&s1).await;
        // Cutover: the source off, the final snapshot, the final stage.
        let off = r.controllers.world.set_power(&moid, PowerState::Off);
        assert_eq!(off, Some(PowerState::Off));
        let s3 = vim.snapshot(&moid, "wavelift-final").await;
        vim.remove(&s2).await;
        let mut checkpoints = vec![json!({ "previous": "", "current": s1 })];
        if !skip {
            checkpoints.push(json!({ "previous": c1, "current": s2 }));
        }
        checkpoints.push(json!({ "previous": c2, "current": s3 }));
        dvs.patch(
            &name,
            &pp,
            &Patch::Merge(
                json!({ "spec": { "checkpoints": checkpoints, "finalCheckpoint": true } }),
            ),
        )
        .await
        .expect("final checkpoint");
        let d = wait_dv(&dvs, &name, "succeeded", |d| phase(d) == Some("Succeeded")).await;
        assert_eq!(
            d.status.expect("status").progress.as_deref(),
            Some("100.0%")
        );
        let a = pvcs
            .get(&name)
            .await
            .expect("pvc")
            .metadata
            .annotations
            .unwrap_or_default();
        assert_eq!(
            a.get(ANN_MULTI_STAGE_DONE).map(String::as_str),
            Some("true"),
            "{a:?}"
        );
        assert!(
            !a.keys().any(|k| k.starts_with(ANN_CHECKPOINT_COPIED)),
            "cleaned up: {a:?}"
        );
        vim.remove(&s3).await;

        let (_, _, v) = http(
            r.sim.addr,
            "GET",
            &format!("/sim/v1/disks?vm={vm}&disks=1"),
            &[],
            None,
        )
        .await;
        let stages = if skip { 2 } else { 3 };
        assert_eq!(v["disks"][0]["stages"], stages, "{v}");
        if skip {
            assert_eq!(v["result"], "inconsistent", "{v}");
            let detail = v["detail"].as_str().expect("detail");
            assert!(detail.starts_with("disk 0 misses "), "{detail}");
            assert!(v["disks"][0]["missing_writes"].as_u64() > Some(0), "{v}");
        } else {
            assert_eq!(v["result"], "consistent", "{v}");
            assert_eq!(v["disks"][0]["missing_writes"], 0);
        }
        // The check itself, as the engine runs it: the rehearsal's prober fails it for the
        // skipped stage, and passes it for the whole chain.
        use wavelift::checks::probe::Prober;
        let prober = wavelift::checks::probe::SimProber::new(r.world_url.clone());
        let p = prober.disk_consistent(vm, 1, Duration::from_secs(5)).await;
        let want = if skip {
            wavelift::checks::result::Outcome::Fail
        } else {
            wavelift::checks::result::Outcome::Pass
        };
        assert_eq!(p.outcome, want, "{p:?}");
    }
}

/// After creation only `checkpoints` and `finalCheckpoint` may change (CDI's webhook);
/// an importer whose snapshot was removed before its stage restarts in place with vddk's
/// message; `delta-import-failure` restarts a later stage once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_edits_are_refused_and_a_missing_snapshot_restarts_the_importer() {
    let plan = quickstart();
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 3000.0;
    scenario
        .faults
        .push(wavelift::sim::controllers::scenario::Fault {
            kind: wavelift::sim::controllers::scenario::FaultKind::DeltaImportFailure,
            vm: "shop-web-01".into(),
            mode: wavelift::sim::controllers::scenario::FaultMode::Once,
            factor: None,
        });
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let ns = plan.meta.namespace.as_str();
    let dvs: Api<DataVolume> = Api::namespaced(r.client(), ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(r.client(), ns);
    let vim = Vim::login(r.sim.addr).await;
    let pp = PatchParams::default();

    // shop-db-01: its snapshot removed before the import.
    let db = moid(&r, "shop-db-01");
    let gone = vim.snapshot(&db, "too-early").await;
    vim.remove(&gone).await;
    let mut dv = build::data_volume(&plan, plan.vm("shop-db-01").expect("vm"), 0).expect("dv");
    dv.spec.checkpoints = vec![DataVolumeCheckpoint {
        previous: String::new(),
        current: gone.clone(),
    }];
    dvs.create(&PostParams::default(), &dv)
        .await
        .expect("create");
    let d = wait_dv(&dvs, "shop-db-01-disk0", "restarting", |d| {
        d.status.as_ref().is_some_and(|s| s.restart_count >= 1)
    })
    .await;
    let st = d.status.expect("status");
    assert_eq!(
        st.phase.as_ref().map(|p| p.as_str()),
        Some("ImportInProgress")
    );
    let running = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Running")
        .expect("Running");
    assert_eq!(running.status, "False");
    assert_eq!(
        running.message.as_deref(),
        Some("Unable to connect to vddk data source: no snapshots for this VM"),
        "{running:?}"
    );

    // The webhook: the spec may change only in checkpoints and finalCheckpoint.
    let err = dvs
        .patch(
            "shop-db-01-disk0",
            &pp,
            &Patch::Merge(json!({ "spec": { "storage": { "resources": { "requests": { "storage": "1Ti" } } } } })),
        )
        .await
        .expect_err("a spec edit");
    match err {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 422, "{e:?}");
            assert!(
                e.message.contains("datavolume-validate.cdi.kubevirt.io"),
                "{e:?}"
            );
            assert!(e.message.contains("Cannot update DataVolume Spec"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    dvs.patch(
        "shop-db-01-disk0",
        &pp,
        &Patch::Merge(json!({ "metadata": { "labels": { "team": "dba" } } })),
    )
    .await
    .expect("metadata may change");
    // Deleting the DataVolume takes its PVC (the garbage collector): a new one of the same
    // name starts from nothing.
    dvs.delete("shop-db-01-disk0", &Default::default())
        .await
        .expect("delete");
    until("the PVC collected", || async {
        pvcs.get_opt("shop-db-01-disk0")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;

    // shop-web-01: the second stage fails once and is restarted, then copies.
    let web = moid(&r, "shop-web-01");
    let s1 = vim.snapshot(&web, "w1").await;
    let c1 = vim.change_id(&s1).await;
    let mut dv = build::data_volume(&plan, plan.vm("shop-web-01").expect("vm"), 0).expect("dv");
    dv.spec.checkpoints = vec![DataVolumeCheckpoint {
        previous: String::new(),
        current: s1.clone(),
    }];
    dvs.create(&PostParams::default(), &dv)
        .await
        .expect("create");
    wait_pvc(&pvcs, "shop-web-01-disk0", "stage 1", |a| {
        a.contains_key(&copied(&s1))
    })
    .await;
    writes_after(&r, "shop-web-01", 0).await;
    let s2 = vim.snapshot(&web, "w2").await;
    dvs.patch(
        "shop-web-01-disk0",
        &pp,
        &Patch::Merge(json!({ "spec": { "checkpoints": [
            { "previous": "", "current": s1 },
            { "previous": c1, "current": s2 },
        ] } })),
    )
    .await
    .expect("append");
    wait_pvc(&pvcs, "shop-web-01-disk0", "stage 2 after a restart", |a| {
        a.contains_key(&copied(&s2))
    })
    .await;
    let d = wait_dv(&dvs, "shop-web-01-disk0", "paused", |d| {
        phase(d) == Some("Paused")
    })
    .await;
    assert_eq!(d.status.expect("status").restart_count, 1);
}

/// VI/JSON requests count as the vCenter's and get the scenario's injected 503s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vi_json_requests_count_and_can_be_refused_by_a_busy_vcenter() {
    let mut scenario = Scenario::from_toml(TWO_VMS, "warm.toml").expect("scenario");
    scenario.vcenter_error_rate = 1.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    for _ in 0..3 {
        let (c, _, _) = http(
            r.sim.addr,
            "GET",
            &format!("{SDK}/ServiceInstance/ServiceInstance/content"),
            &[],
            None,
        )
        .await;
        assert_eq!(c, 503);
    }
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&r.vcenter.requests), 3);
    assert_eq!(load(&r.vcenter.injected), 3);
}

const WRITER: &str = r#"
speed = 100000.0
[[source_vm]]
name = "db"
write_rate = "4Ki"
disks = [{ file = "[ds1] db/db.vmdk", size = "200Gi" }, { file = "[ds1] db/db_1.vmdk", size = "10Gi" }]
"#;

/// The generation a change ID ends with.
fn gen_of(change_id: &str) -> u64 {
    change_id
        .rsplit_once('/')
        .and_then(|(_, g)| g.parse().ok())
        .expect("a change ID")
}

/// `QueryChangedDiskAreas` over HTTP: the areas the VM wrote to disk 0 between two snapshots
/// (known from the world's write log, merged here), paged past the 1024-area cap; `*`; a
/// foreign change ID is a `FileFault`; the real client sums the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_disk_areas_are_the_writes_between_two_snapshots() {
    let scenario = Scenario::from_toml(WRITER, "warm.toml").expect("scenario");
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let vim = Vim::login(r.sim.addr).await;
    let db = moid(&r, "db");
    let first = vim.snapshot(&db, "warm-1").await;
    let (_, config) = vim
        .get(&format!("VirtualMachineSnapshot/{first}/config"))
        .await;
    let disks = Vim::disks(&config);
    let since = disks[0]["backing"]["changeId"]
        .as_str()
        .expect("change id")
        .to_string();
    let other_disk = disks[1]["backing"]["changeId"]
        .as_str()
        .expect("change id")
        .to_string();
    let capacity = disks[0]["capacityInBytes"].as_u64().expect("capacity");
    // Enough writes for more than one page of areas on disk 0 (writes go to either disk).
    writes_after(&r, "db", gen_of(&since) + 3000).await;
    let second = vim.snapshot(&db, "warm-2").await;
    let (lo, hi) = (gen_of(&since), gen_of(&vim.change_id(&second).await));
    assert!(hi > lo);

    // What the VM wrote to disk 0 in (lo, hi], merged where writes overlap or touch.
    let areas_between = |lo: u64, hi: u64| {
        let mut spans: Vec<(u64, u64)> = r
            .controllers
            .world
            .with_name("db", |e, _, _| {
                e.sim
                    .log
                    .extents()
                    .iter()
                    .filter(|x| x.disk == 0 && x.gen > lo && x.gen <= hi)
                    .map(|x| (x.offset, x.offset + x.len))
                    .collect()
            })
            .expect("the VM");
        spans.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(m) if s <= m.1 => m.1 = m.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
            .into_iter()
            .map(|(s, e)| (s, e - s))
            .collect::<Vec<_>>()
    };
    let want = areas_between(lo, hi);
    assert!(want.len() > 1024, "{} areas", want.len());

    let query = |snap: String, key: u64, offset: u64, change_id: String| {
        let vim = &vim;
        let path = format!("VirtualMachine/{db}/QueryChangedDiskAreas");
        async move {
            vim.post(
                &path,
                json!({
                    "_typeName": "QueryChangedDiskAreasRequestType",
                    "snapshot": { "_typeName": "ManagedObjectReference", "type": "VirtualMachineSnapshot", "value": snap },
                    "deviceKey": key,
                    "startOffset": offset,
                    "changeId": change_id,
                }),
            )
            .await
        }
    };
    // Page by startOffset + length up to the capacity.
    let (mut got, mut offset, mut calls) = (Vec::new(), 0u64, 0);
    while offset < capacity {
        let (c, info) = query(second.clone(), 2000, offset, since.clone()).await;
        assert_eq!(c, 200, "{info}");
        assert_eq!(info["_typeName"], "DiskChangeInfo");
        assert_eq!(info["startOffset"].as_u64(), Some(offset));
        let length = info["length"].as_u64().expect("length");
        let page = info["changedArea"].as_array().expect("areas");
        assert!(page.len() <= 1024);
        for a in page {
            assert_eq!(a["_typeName"], "DiskChangeExtent");
            let (s, n) = (
                a["start"].as_u64().expect("start"),
                a["length"].as_u64().expect("length"),
            );
            assert!(
                s >= offset && s + n <= offset + length,
                "{a} outside {offset}+{length}"
            );
            got.push((s, n));
        }
        offset += length;
        calls += 1;
    }
    assert!(calls >= 2, "paged");
    assert_eq!(got, want);

    // `*`: every area written up to the first snapshot.
    let (c, info) = query(first.clone(), 2000, 0, "*".into()).await;
    assert_eq!(c, 200, "{info}");
    let all: Vec<(u64, u64)> = info["changedArea"]
        .as_array()
        .expect("areas")
        .iter()
        .map(|a| {
            (
                a["start"].as_u64().unwrap_or(0),
                a["length"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(all, areas_between(0, lo));
    // Another disk's change ID: FileFault on the snapshot's disk; a snapshot reference is
    // no change ID.
    let (c, f) = query(second.clone(), 2000, 0, other_disk).await;
    assert_eq!(
        (c, f["_typeName"].as_str()),
        (500, Some("FileFault")),
        "{f}"
    );
    assert!(
        f["faultstring"]
            .as_str()
            .is_some_and(|m| m.contains("Error caused by file [ds1] db/db-000001.vmdk")),
        "{f}"
    );
    let (c, f) = query(second.clone(), 2000, 0, first.clone()).await;
    assert_eq!(
        (c, f["_typeName"].as_str()),
        (500, Some("InvalidArgument")),
        "{f}"
    );
    let (c, f) = query(second.clone(), 2007, 0, since.clone()).await;
    assert_eq!(
        (c, f["invalidProperty"].as_str()),
        (500, Some("deviceKey")),
        "{f}"
    );

    // The client: the same bytes, summed over its pages.
    let client = VsphereClient::new(
        &r.world_url,
        None,
        Credentials {
            user: "sim-user".into(),
            password: Secret::new("sim-password"),
        },
    )
    .expect("client");
    let bytes = client
        .changed_bytes("db", None, &second, 0, &since)
        .await
        .expect("changed bytes");
    assert_eq!(bytes, want.iter().map(|a| a.1).sum::<u64>());
}
