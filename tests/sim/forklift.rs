//! The rehearsal cluster's simulated Forklift (`forklift.konveyor.io/v1beta1`), through the
//! real kube-rs client over HTTP: Providers becoming Ready or not, Plan validation
//! conditions, cold migrations by virt-v2v (no VDDK DataVolume; the VM created as Forklift
//! does), warm migrations with precopies and a cutover, the `conversion-failure` fault and a
//! second Migration re-running only the failed VM, cancelling a running VM, converted
//! guests that boot with their IP where the CDI path leaves them without, an older Forklift
//! that prunes `targetPowerState`, a cluster without Forklift, and table printing.
//!
//! Waits are conditions polled with a bounded deadline; the sim runs fast (`speed`).

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wavelift::cluster::forklift_types::{labels, steps, VmStatus};
use wavelift::cluster::subresource::{put, VmAction};
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{Fault, FaultKind, FaultMode, PowerState, Scenario};

const LIMIT: Duration = Duration::from_secs(60);
const NS: &str = "mig";

fn ar(kind: &str) -> ApiResource {
    let (group, version, plural) = match kind {
        "Provider" => ("forklift.konveyor.io", "v1beta1", "providers"),
        "NetworkMap" => ("forklift.konveyor.io", "v1beta1", "networkmaps"),
        "StorageMap" => ("forklift.konveyor.io", "v1beta1", "storagemaps"),
        "Plan" => ("forklift.konveyor.io", "v1beta1", "plans"),
        "Migration" => ("forklift.konveyor.io", "v1beta1", "migrations"),
        "Secret" => ("", "v1", "secrets"),
        "NetworkAttachmentDefinition" => {
            ("k8s.cni.cncf.io", "v1", "network-attachment-definitions")
        }
        "DataVolume" => ("cdi.kubevirt.io", "v1beta1", "datavolumes"),
        "VirtualMachine" => ("kubevirt.io", "v1", "virtualmachines"),
        "VirtualMachineInstance" => ("kubevirt.io", "v1", "virtualmachineinstances"),
        other => panic!("no resource for {other}"),
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn api(client: &kube::Client, kind: &str, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ar(kind))
}

async fn create(client: &kube::Client, obj: Value) -> Value {
    let kind = obj["kind"].as_str().expect("kind").to_string();
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or(NS)
        .to_string();
    let o: DynamicObject = serde_json::from_value(obj).expect("object");
    let made = api(client, &kind, &ns)
        .create(&PostParams::default(), &o)
        .await
        .unwrap_or_else(|e| panic!("create {kind}: {e}"));
    serde_json::to_value(made).expect("json")
}

async fn get(client: &kube::Client, kind: &str, ns: &str, name: &str) -> Value {
    serde_json::to_value(api(client, kind, ns).get(name).await.expect("get")).expect("json")
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

/// Waits until the object has condition `t` and returns the object.
async fn until_condition(client: &kube::Client, kind: &str, name: &str, t: &str) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let o = get(client, kind, NS, name).await;
        if condition(&o, t).is_some() {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {name} {t}: not within {LIMIT:?}; status: {}",
            o["status"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn vm_statuses(plan: &Value) -> Vec<VmStatus> {
    serde_json::from_value(
        plan.pointer("/status/migration/vms")
            .cloned()
            .unwrap_or(json!([])),
    )
    .expect("vm statuses")
}

fn scenario(extra: &str) -> Scenario {
    let text = format!(
        r#"
speed = 400.0
namespaces = ["mig", "cdi-path"]
node_bridges = ["br-trunk"]
bandwidth_per_import = "2Gi"
boot_seconds = 4
agent_seconds = 4
{extra}
[[source_vm]]
name = "web"
nics = [{{ ip = "192.0.2.15", mac = "00:50:56:ab:cd:01", vlan = 210 }}]
disks = [{{ file = "[ds1] web/web.vmdk", size = "2Gi" }}, {{ file = "[ds1] web/web_1.vmdk", size = "1Gi" }}]
write_rate = 0
[[source_vm]]
name = "win"
os = "windows"
nics = [{{ ip = "192.0.2.16", mac = "00:50:56:ab:cd:02", vlan = 210 }}]
disks = [{{ file = "[ds1] win/win.vmdk", size = "1Gi" }}]
write_rate = 0
[[source_vm]]
name = "byname"
nic_config = "by-name"
nics = [{{ ip = "192.0.2.17", mac = "00:50:56:ab:cd:03", vlan = 210 }}]
disks = [{{ file = "[ds2] byname/byname.vmdk", size = "1Gi" }}]
write_rate = 0
[[source_vm]]
name = "nocbt"
cbt = false
snapshots = ["old"]
nics = [{{ mac = "00:50:56:ab:cd:04" }}]
disks = [{{ file = "[ds1] nocbt/nocbt.vmdk", size = "1Gi" }}]
"#
    );
    Scenario::from_toml(&text, "forklift.toml").expect("scenario")
}

/// Secret, Providers (vSphere at the sim's vCenter, the local cluster), the VLAN 210 NAD,
/// and maps: port group VLAN-210 → the NAD, `VM Network` → pod, ds1 and ds2 → sim-standard.
async fn setup(r: &Rehearsal) -> kube::Client {
    let c = r.client();
    create(&c, json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "vsphere", "namespace": NS },
        "stringData": { "user": "sim-user", "password": "sim-password", "insecureSkipVerify": "true" },
    }))
    .await;
    create(
        &c,
        json!({
            "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider",
            "metadata": { "name": "vsphere", "namespace": NS },
            "spec": { "type": "vsphere", "url": format!("https://{}/sdk", r.sim.addr),
                      "secret": { "name": "vsphere", "namespace": NS },
                      "settings": { "vddkInitImage": "registry.example/vddk:8" } },
        }),
    )
    .await;
    create(
        &c,
        json!({
            "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider",
            "metadata": { "name": "host", "namespace": NS },
            "spec": { "type": "openshift", "url": "", "secret": {} },
        }),
    )
    .await;
    for ns in [NS, "cdi-path"] {
        create(&c, json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": { "name": "vlan-210", "namespace": ns },
            "spec": { "config": r#"{"cniVersion":"0.3.1","name":"vlan-210","type":"bridge","bridge":"br-trunk","vlan":210,"ipam":{}}"# },
        }))
        .await;
    }
    let pair = json!({ "source": { "name": "vsphere", "namespace": NS }, "destination": { "name": "host", "namespace": NS } });
    create(&c, json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "NetworkMap",
        "metadata": { "name": "net", "namespace": NS },
        "spec": { "provider": pair, "map": [
            { "source": { "name": "VLAN-210" }, "destination": { "type": "multus", "name": "vlan-210", "namespace": NS } },
            { "source": { "name": "VM Network" }, "destination": { "type": "pod" } },
        ] },
    }))
    .await;
    create(&c, json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "StorageMap",
        "metadata": { "name": "storage", "namespace": NS },
        "spec": { "provider": pair, "map": [
            { "source": { "name": "ds1" }, "destination": { "storageClass": "sim-standard" } },
            { "source": { "name": "ds2" }, "destination": { "storageClass": "sim-standard", "accessMode": "ReadWriteOnce" } },
        ] },
    }))
    .await;
    until_condition(&c, "Provider", "vsphere", "Ready").await;
    until_condition(&c, "NetworkMap", "net", "Ready").await;
    until_condition(&c, "StorageMap", "storage", "Ready").await;
    c
}

fn plan(name: &str, vms: Value, extra: Value) -> Value {
    let mut p = json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Plan",
        "metadata": { "name": name, "namespace": NS },
        "spec": {
            "targetNamespace": NS,
            "provider": { "source": { "name": "vsphere", "namespace": NS }, "destination": { "name": "host", "namespace": NS } },
            "map": { "network": { "name": "net", "namespace": NS }, "storage": { "name": "storage", "namespace": NS } },
            "vms": vms,
        },
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        p["spec"][k] = v.clone();
    }
    p
}

fn migration(name: &str, plan: &str, extra: Value) -> Value {
    let mut m = json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Migration",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "plan": { "name": plan, "namespace": NS } },
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        m["spec"][k] = v.clone();
    }
    m
}

/// The managed object id of source VM `name` (`vm-1001`…, in scenario order).
fn moid(r: &Rehearsal, name: &str) -> String {
    r.controllers.world.find(name).expect("source VM").moid
}

#[tokio::test]
async fn providers_are_ready_only_with_their_secret_and_the_sims_vcenter() {
    let r = Rehearsal::start(scenario(""), 0).await.expect("rehearsal");
    let c = setup(&r).await;
    let host = until_condition(&c, "Provider", "host", "Ready").await;
    assert_eq!(host["status"]["phase"], "Ready");
    let vs = get(&c, "Provider", NS, "vsphere").await;
    assert_eq!(vs["status"]["phase"], "Ready");
    assert_eq!(
        condition(&vs, "ConnectionTestSucceeded").expect("tested")["category"],
        "Required"
    );
    assert_eq!(
        condition(&vs, "ConnectionInsecure").expect("insecure")["category"],
        "Warn"
    );
    // No Secret: SecretNotValid / NotFound.
    create(&c, json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider",
        "metadata": { "name": "nosecret", "namespace": NS },
        "spec": { "type": "vsphere", "url": format!("https://{}/sdk", r.sim.addr), "secret": { "name": "gone", "namespace": NS } },
    }))
    .await;
    let p = until_condition(&c, "Provider", "nosecret", "SecretNotValid").await;
    let cnd = condition(&p, "SecretNotValid").expect("condition");
    assert_eq!(cnd["reason"], "NotFound");
    assert_eq!(cnd["category"], "Critical");
    assert!(condition(&p, "Ready").is_none());
    // CDI's keys (accessKeyId/secretKey) are not Forklift's: the missing keys are named.
    create(
        &c,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "cdi-keys", "namespace": NS },
            "stringData": { "accessKeyId": "sim-user", "secretKey": "sim-password" },
        }),
    )
    .await;
    create(&c, json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider",
        "metadata": { "name": "wrongkeys", "namespace": NS },
        "spec": { "type": "vsphere", "url": format!("https://{}/sdk", r.sim.addr), "secret": { "name": "cdi-keys", "namespace": NS } },
    }))
    .await;
    let p = until_condition(&c, "Provider", "wrongkeys", "SecretNotValid").await;
    let cnd = condition(&p, "SecretNotValid").expect("condition");
    assert_eq!(cnd["reason"], "DataErr");
    assert_eq!(cnd["items"], json!(["user", "password", "ca.crt"]));
    // With a CA (the deprecated `cacert` key) but another vCenter: the connection test fails.
    create(&c, json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "ca", "namespace": NS },
        "stringData": { "user": "sim-user", "password": "sim-password", "cacert": "-----BEGIN CERTIFICATE-----" },
    }))
    .await;
    create(&c, json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "Provider",
        "metadata": { "name": "elsewhere", "namespace": NS },
        "spec": { "type": "vsphere", "url": "https://vcenter.example.invalid/sdk", "secret": { "name": "ca", "namespace": NS } },
    }))
    .await;
    let p = until_condition(&c, "Provider", "elsewhere", "ConnectionTestFailed").await;
    assert_eq!(p["status"]["phase"], "ConnectionFailed");
    r.sim.shutdown().await;
}

#[tokio::test]
async fn plan_validation_names_unmapped_networks_unknown_vms_and_warm_blockers() {
    let r = Rehearsal::start(scenario(""), 0).await.expect("rehearsal");
    let c = setup(&r).await;
    // A map without VLAN-210: web's NIC is unmapped.
    let pair = json!({ "source": { "name": "vsphere", "namespace": NS }, "destination": { "name": "host", "namespace": NS } });
    create(&c, json!({
        "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "NetworkMap",
        "metadata": { "name": "podonly", "namespace": NS },
        "spec": { "provider": pair, "map": [{ "source": { "name": "VM Network" }, "destination": { "type": "pod" } }] },
    }))
    .await;
    until_condition(&c, "NetworkMap", "podonly", "Ready").await;
    let web = moid(&r, "web");
    let mut p = plan("unmapped", json!([{ "id": web }]), json!({}));
    p["spec"]["map"]["network"]["name"] = json!("podonly");
    create(&c, p).await;
    let p = until_condition(&c, "Plan", "unmapped", "VMNetworksNotMapped").await;
    let cnd = condition(&p, "VMNetworksNotMapped").expect("condition");
    assert_eq!(cnd["category"], "Critical");
    assert_eq!(cnd["items"], json!([format!(" id:{web} name:'web' ")]));
    assert!(
        condition(&p, "Ready").is_none(),
        "a critical condition blocks Ready"
    );
    // The BIOS UUID is not a managed object id.
    let uuid = "4207c1b2-5f0e-4c1e-9a7b-0123456789a1";
    create(&c, plan("uuid", json!([{ "id": uuid }]), json!({}))).await;
    let p = until_condition(&c, "Plan", "uuid", "VMNotFound").await;
    let cnd = condition(&p, "VMNotFound").expect("condition");
    assert_eq!(cnd["category"], "Critical");
    assert_eq!(cnd["items"], json!([format!(" id:{uuid} name:'' ")]));
    // Warm: CBT off and a pre-existing snapshot.
    create(
        &c,
        plan(
            "warm-nocbt",
            json!([{ "name": "nocbt" }]),
            json!({ "type": "warm" }),
        ),
    )
    .await;
    let p = until_condition(&c, "Plan", "warm-nocbt", "VMMissingChangedBlockTracking").await;
    assert_eq!(
        condition(&p, "VMMissingChangedBlockTracking").expect("c")["category"],
        "Critical"
    );
    assert_eq!(
        condition(&p, "VMHasSnapshots").expect("c")["category"],
        "Critical"
    );
    // The same VM cold is fine; a ready plan says so.
    create(
        &c,
        plan("cold-nocbt", json!([{ "name": "nocbt" }]), json!({})),
    )
    .await;
    let p = until_condition(&c, "Plan", "cold-nocbt", "Ready").await;
    assert_eq!(
        condition(&p, "Ready").expect("ready")["category"],
        "Required"
    );
    // A target MAC already used by a VM in the cluster.
    create(&c, json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": { "name": "squatter", "namespace": "cdi-path" },
        "spec": { "runStrategy": "Halted", "template": { "spec": {
            "domain": { "devices": { "interfaces": [{ "name": "n", "bridge": {}, "macAddress": "00:50:56:ab:cd:02" }] } },
            "networks": [{ "name": "n", "multus": { "networkName": "cdi-path/vlan-210" } }] } } },
    }))
    .await;
    create(&c, plan("conflict", json!([{ "name": "win" }]), json!({}))).await;
    let p = until_condition(&c, "Plan", "conflict", "MacConflicts").await;
    let msg = condition(&p, "MacConflicts").expect("c")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("conflict with destination VM cdi-path/squatter"),
        "{msg}"
    );
    r.sim.shutdown().await;
}

#[tokio::test]
async fn a_cold_migration_copies_with_virt_v2v_and_creates_the_vm_as_forklift_does() {
    let r = Rehearsal::start(scenario("[forklift]\nconversion_seconds = 20\n"), 0)
        .await
        .expect("rehearsal");
    let c = setup(&r).await;
    let web = moid(&r, "web");
    create(
        &c,
        plan(
            "cold",
            json!([{ "id": web }]),
            json!({
                "targetPowerState": "off", "targetLabels": { "team": "shop", "tier": "web" },
            }),
        ),
    )
    .await;
    until_condition(&c, "Plan", "cold", "Ready").await;
    // Every DataVolume ever created in the namespace, from a watch.
    let dvs = api(&c, "DataVolume", NS);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let watch = {
        let seen = seen.clone();
        let dvs = dvs.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut w = kube::runtime::watcher(dvs, Default::default()).boxed();
            while let Some(ev) = w.next().await {
                if let Ok(
                    kube::runtime::watcher::Event::Apply(o)
                    | kube::runtime::watcher::Event::InitApply(o),
                ) = ev
                {
                    seen.lock()
                        .expect("lock")
                        .push(serde_json::to_value(o).expect("json"));
                }
            }
        })
    };
    let m = create(&c, migration("cold-1", "cold", json!({}))).await;
    let mig = until_condition(&c, "Migration", "cold-1", "Succeeded").await;
    assert_eq!(condition(&mig, "Ready").expect("ready")["status"], "True");
    let p = until_condition(&c, "Plan", "cold", "Succeeded").await;
    watch.abort();
    let vm = &vm_statuses(&p)[0];
    assert_eq!(
        (vm.id.as_str(), vm.name.as_str(), vm.phase.as_str()),
        (web.as_str(), "web", "Completed")
    );
    assert!(vm.has_condition("Succeeded"));
    assert_eq!(vm.restore_power_state, "On");
    let names: Vec<&str> = vm.pipeline.iter().map(|s| s.task.name.as_str()).collect();
    assert_eq!(
        names,
        [
            steps::INITIALIZE,
            steps::DISK_ALLOCATION,
            steps::IMAGE_CONVERSION,
            steps::DISK_TRANSFER_V2V,
            steps::VM_CREATION
        ]
    );
    let copy = vm.step(steps::DISK_TRANSFER_V2V).expect("copy");
    assert_eq!(copy.task.progress.total, 3072, "2 GiB + 1 GiB in MB");
    assert_eq!(copy.task.progress.completed, 3072);
    assert_eq!(copy.tasks.len(), 2);
    for s in &vm.pipeline {
        assert_eq!(s.task.phase, "Completed", "{}", s.task.name);
        assert!(
            s.task.started.is_some() && s.task.completed.is_some(),
            "{}",
            s.task.name
        );
        assert!(s.task.error.is_none());
    }
    // The migration powered the source off at its start.
    assert_eq!(
        r.controllers.world.find("web").expect("web").power,
        wavelift::sim::controllers::scenario::PowerState::Off
    );
    // virt-v2v wrote into blank volumes: no VDDK import, and none left.
    let seen = seen.lock().expect("lock").clone();
    assert!(!seen.is_empty(), "blank DataVolumes for virt-v2v");
    assert!(seen
        .iter()
        .all(|d| d.pointer("/spec/source/blank").is_some()
            && d.pointer("/spec/source/vddk").is_none()));
    assert!(dvs
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .is_empty());
    // The VM.
    let k = get(&c, "VirtualMachine", NS, "web").await;
    let l = &k["metadata"]["labels"];
    assert_eq!(l[labels::VM_ID], web.as_str());
    assert_eq!(l[labels::MIGRATION], m["metadata"]["uid"]);
    assert_eq!(l[labels::PLAN], p["metadata"]["uid"]);
    assert_eq!(l[labels::PLAN_NAME], "cold");
    assert_eq!(l[labels::GUEST_CONVERTED], "true");
    let tl = &k["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        (tl["team"].as_str(), tl["tier"].as_str(), tl["app"].as_str()),
        (Some("shop"), Some("web"), Some("web"))
    );
    assert_eq!(k["spec"]["runStrategy"], "Halted", "targetPowerState: off");
    let iface = &k["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0];
    assert_eq!(iface["macAddress"], "00:50:56:ab:cd:01");
    assert_eq!(
        k["spec"]["template"]["spec"]["networks"][0]["multus"]["networkName"],
        format!("{NS}/vlan-210")
    );
    let vols = k["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .clone();
    assert_eq!(vols.len(), 2);
    // The PVCs stay, owned by the VM.
    for v in &vols {
        let claim = v["persistentVolumeClaim"]["claimName"]
            .as_str()
            .expect("claim");
        let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            Api::namespaced(c.clone(), NS);
        let pvc = pvcs.get(claim).await.expect("pvc");
        assert_eq!(
            pvc.metadata.owner_references.expect("owner")[0].kind,
            "VirtualMachine"
        );
    }
    // `kubectl get plans`: the CRD's printer columns.
    let req = http::Request::get(format!(
        "/apis/forklift.konveyor.io/v1beta1/namespaces/{NS}/plans"
    ))
    .header(
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .expect("request");
    let table: Value = c.request(req).await.expect("table");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        cols,
        ["Name", "READY", "EXECUTING", "SUCCEEDED", "FAILED", "Age"]
    );
    let row = &table["rows"][0]["cells"];
    assert_eq!(
        (row[0].as_str(), row[1].as_str(), row[3].as_str()),
        (Some("cold"), Some("True"), Some("True"))
    );
    r.sim.shutdown().await;
}

#[tokio::test]
async fn a_warm_migration_precopies_until_the_cutover() {
    let r = Rehearsal::start(
        scenario("[forklift]\nprecopy_interval_minutes = 1\nconversion_seconds = 10\n"),
        0,
    )
    .await
    .expect("rehearsal");
    let c = setup(&r).await;
    create(
        &c,
        plan(
            "warm",
            json!([{ "name": "web" }]),
            json!({ "type": "warm", "targetPowerState": "on" }),
        ),
    )
    .await;
    until_condition(&c, "Plan", "warm", "Ready").await;
    // No cutover yet: precopies every (simulated) minute.
    create(&c, migration("warm-1", "warm", json!({}))).await;
    // Precopies go through CDI: VDDK DataVolumes with checkpoints on vSphere snapshots.
    let dv = until("a VDDK DataVolume", || async {
        let l = api(&c, "DataVolume", NS)
            .list(&Default::default())
            .await
            .ok()?;
        l.items
            .into_iter()
            .next()
            .map(|d| serde_json::to_value(d).expect("json"))
    })
    .await;
    assert!(dv.pointer("/spec/source/vddk/backingFile").is_some());
    assert!(dv["spec"]["checkpoints"][0]["current"]
        .as_str()
        .is_some_and(|s| s.starts_with("snapshot-")));
    until("two precopies", || async {
        let p = get(&c, "Plan", NS, "warm").await;
        let w = vm_statuses(&p).first()?.warm.clone()?;
        (w.successes >= 2).then_some(())
    })
    .await;
    // The cutover: now, by the world's clock.
    let cutover_ms = r.controllers.world.clock_ms();
    let cutover = wavelift::sim::time::rfc3339((cutover_ms / 1000) as u64);
    api(&c, "Migration", NS)
        .patch(
            "warm-1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "cutover": cutover } })),
        )
        .await
        .expect("cutover");
    let p = until_condition(&c, "Plan", "warm", "Succeeded").await;
    let vm = &vm_statuses(&p)[0];
    assert!(vm.has_condition("Succeeded"), "{vm:?}");
    let names: Vec<&str> = vm.pipeline.iter().map(|s| s.task.name.as_str()).collect();
    assert_eq!(
        names,
        [
            steps::INITIALIZE,
            steps::PREFLIGHT_INSPECTION,
            steps::DISK_TRANSFER,
            steps::CUTOVER,
            steps::IMAGE_CONVERSION,
            steps::VM_CREATION
        ]
    );
    let warm = vm.warm.as_ref().expect("warm status");
    // The initial copy, precopies every minute until the cutover, the final one.
    assert!(warm.precopies.len() >= 3, "{:?}", warm.precopies);
    assert!(warm.successes >= 2);
    assert!(
        warm.precopies.iter().all(|p| p.end.is_some()),
        "{:?}",
        warm.precopies
    );
    for p in &warm.precopies {
        assert!(p.snapshot.starts_with("snapshot-"), "{p:?}");
        assert!(!p.create_task_id.is_empty());
    }
    assert!(!warm.precopies[0].deltas.is_empty(), "change IDs stored");
    assert!(r.controllers.world.clock_ms() >= cutover_ms);
    let k = get(&c, "VirtualMachine", NS, "web").await;
    assert_eq!(k["spec"]["runStrategy"], "Always", "targetPowerState: on");
    r.sim.shutdown().await;
}

#[tokio::test]
async fn a_failed_conversion_fails_its_vm_and_a_new_migration_reruns_only_it() {
    let mut sc = scenario("[forklift]\nconversion_seconds = 10\n");
    sc.faults.push(Fault {
        kind: FaultKind::ConversionFailure,
        vm: "win".into(),
        mode: FaultMode::Once,
        factor: None,
    });
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let c = setup(&r).await;
    create(
        &c,
        plan(
            "two",
            json!([{ "name": "web" }, { "name": "win" }]),
            json!({}),
        ),
    )
    .await;
    until_condition(&c, "Plan", "two", "Ready").await;
    create(&c, migration("two-1", "two", json!({}))).await;
    let mig = until_condition(&c, "Migration", "two-1", "Failed").await;
    assert!(condition(&mig, "Succeeded").is_none());
    let p = until_condition(&c, "Plan", "two", "Failed").await;
    let vms = vm_statuses(&p);
    let (web, win) = (&vms[0], &vms[1]);
    assert!(web.has_condition("Succeeded"));
    assert!(win.has_condition("Failed"));
    let conv = win.step(steps::IMAGE_CONVERSION).expect("conversion step");
    let err = conv.task.error.as_ref().expect("step error");
    assert_eq!(
        err.reasons,
        ["Guest conversion failed. See pod logs for details."]
    );
    assert!(win
        .step(steps::VM_CREATION)
        .expect("creation")
        .task
        .started
        .is_none());
    let web_done = web.completed.clone();
    // A second Migration: only the failed VM runs again.
    create(&c, migration("two-2", "two", json!({}))).await;
    until_condition(&c, "Migration", "two-2", "Succeeded").await;
    let p = until_condition(&c, "Plan", "two", "Succeeded").await;
    let vms = vm_statuses(&p);
    assert_eq!(vms[0].completed, web_done, "web's pipeline was kept");
    assert!(vms[1].has_condition("Succeeded") && !vms[1].has_condition("Failed"));
    assert!(vms[1]
        .step(steps::IMAGE_CONVERSION)
        .expect("c")
        .task
        .error
        .is_none());
    assert_eq!(
        p["status"]["migration"]["history"].as_array().map(Vec::len),
        Some(2)
    );
    r.sim.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_running_vm_stops_it_and_restores_its_source() {
    let r = Rehearsal::start(scenario("[forklift]\nconversion_seconds = 1200\n"), 0)
        .await
        .expect("rehearsal");
    let c = setup(&r).await;
    let (web, win) = (moid(&r, "web"), moid(&r, "win"));
    create(
        &c,
        plan("cancel", json!([{ "id": web }, { "id": win }]), json!({})),
    )
    .await;
    until_condition(&c, "Plan", "cancel", "Ready").await;
    create(&c, migration("cancel-1", "cancel", json!({}))).await;
    until("win converting", || async {
        let p = get(&c, "Plan", NS, "cancel").await;
        vm_statuses(&p)
            .iter()
            .find(|v| v.id == win)
            .filter(|v| v.phase == "ConvertGuest")
            .map(|_| ())
    })
    .await;
    api(&c, "Migration", NS)
        .patch(
            "cancel-1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "cancel": [{ "id": win }] } })),
        )
        .await
        .expect("cancel");
    let p = until("win canceled", || async {
        let p = get(&c, "Plan", NS, "cancel").await;
        vm_statuses(&p)
            .iter()
            .any(|v| v.id == win && v.has_condition("Canceled"))
            .then_some(p)
    })
    .await;
    let v = vm_statuses(&p)
        .into_iter()
        .find(|v| v.id == win)
        .expect("win");
    assert_eq!(v.phase, "Completed");
    let cnd = v
        .conditions
        .iter()
        .find(|c| c.type_ == "Canceled")
        .expect("canceled");
    assert_eq!(cnd.reason, "UserRequested");
    // Its source was on: powered back on.
    until("win's source back on", || async {
        (r.controllers.world.find("win")?.power
            == wavelift::sim::controllers::scenario::PowerState::On)
            .then_some(())
    })
    .await;
    let p = until_condition(&c, "Plan", "cancel", "Succeeded").await;
    assert!(vm_statuses(&p)
        .iter()
        .any(|v| v.id == web && v.has_condition("Succeeded")));
    assert!(api(&c, "VirtualMachine", NS)
        .get_opt("win")
        .await
        .expect("get")
        .is_none());
    r.sim.shutdown().await;
}

/// The guest IP a started VM's VMI reports, once it does.
async fn vmi_ip(c: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let o = serde_json::to_value(
        api(c, "VirtualMachineInstance", ns)
            .get_opt(name)
            .await
            .ok()??,
    )
    .ok()?;
    let conds = o.pointer("/status/conditions")?.as_array()?;
    conds
        .iter()
        .any(|c| c["type"] == "AgentConnected")
        .then_some(())?;
    o.pointer("/status/interfaces/0/ipAddress")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[tokio::test]
async fn converted_guests_get_their_ip_where_the_cdi_path_leaves_them_without() {
    let r = Rehearsal::start(scenario("[forklift]\nconversion_seconds = 10\n"), 0)
        .await
        .expect("rehearsal");
    let c = setup(&r).await;
    create(
        &c,
        plan(
            "guests",
            json!([{ "name": "win" }, { "name": "byname" }]),
            json!({ "targetPowerState": "off" }),
        ),
    )
    .await;
    until_condition(&c, "Plan", "guests", "Ready").await;
    create(&c, migration("guests-1", "guests", json!({}))).await;
    until_condition(&c, "Plan", "guests", "Succeeded").await;
    for (name, ip) in [("win", "192.0.2.16"), ("byname", "192.0.2.17")] {
        put(&c, NS, name, VmAction::Start, false)
            .await
            .expect("start");
        let got = until(&format!("{name}'s IP"), || vmi_ip(&c, NS, name)).await;
        assert_eq!(got, ip, "{name}");
    }
    // The same guests brought over by CDI (their disks as they were, not converted): the
    // Windows guest never boots from virtio, the by-name config finds no NIC.
    for (name, mac) in [
        ("win", "00:50:56:ab:cd:02"),
        ("byname", "00:50:56:ab:cd:03"),
    ] {
        create(&c, json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": { "name": name, "namespace": "cdi-path" },
            "spec": { "runStrategy": "Always", "template": { "spec": {
                "domain": { "devices": {
                    "disks": [{ "name": "d", "disk": { "bus": "virtio" } }],
                    "interfaces": [{ "name": "n", "bridge": {}, "macAddress": mac }] } },
                "networks": [{ "name": "n", "multus": { "networkName": "cdi-path/vlan-210" } }],
                "volumes": [{ "name": "d", "persistentVolumeClaim": { "claimName": "none" } }] } } },
        }))
        .await;
    }
    // byname's guest agent reports, without the IP; win's never connects.
    let reported = until("byname's agent", || async {
        let o = serde_json::to_value(
            api(&c, "VirtualMachineInstance", "cdi-path")
                .get_opt("byname")
                .await
                .ok()??,
        )
        .ok()?;
        let conds = o.pointer("/status/conditions")?.as_array()?.clone();
        conds
            .iter()
            .any(|c| c["type"] == "AgentConnected")
            .then_some(o)
    })
    .await;
    assert!(
        reported.pointer("/status/interfaces/0/ipAddress").is_none(),
        "{reported}"
    );
    let win = serde_json::to_value(
        api(&c, "VirtualMachineInstance", "cdi-path")
            .get("win")
            .await
            .expect("vmi"),
    )
    .expect("json");
    assert!(condition(&win, "AgentConnected").is_none());
    r.sim.shutdown().await;
}

#[tokio::test]
async fn an_older_forklift_prunes_target_power_state_and_its_schema_lacks_it() {
    let openapi_has = |doc: &Value| {
        doc.pointer("/components/schemas/io.konveyor.forklift.v1beta1.Plan/properties/spec/properties/targetPowerState")
            .is_some()
    };
    let doc_of = |c: kube::Client| async move {
        let req = http::Request::get("/openapi/v3/apis/forklift.konveyor.io/v1beta1")
            .body(Vec::new())
            .expect("req");
        c.request::<Value>(req).await.expect("openapi")
    };
    // The newest release keeps it.
    let r = Rehearsal::start(scenario(""), 0).await.expect("rehearsal");
    let c = setup(&r).await;
    assert!(openapi_has(&doc_of(c.clone()).await));
    let p = create(
        &c,
        plan(
            "kept",
            json!([{ "name": "web" }]),
            json!({ "targetPowerState": "off" }),
        ),
    )
    .await;
    assert_eq!(p["spec"]["targetPowerState"], "off");
    // An enum the CRD does not allow is 422 Invalid.
    let bad: DynamicObject = serde_json::from_value(plan(
        "bad",
        json!([{ "name": "web" }]),
        json!({ "targetPowerState": "maybe" }),
    ))
    .expect("obj");
    match api(&c, "Plan", NS)
        .create(&PostParams::default(), &bad)
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(e.message.contains("spec.targetPowerState"), "{}", e.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    r.sim.shutdown().await;
    // 2.10.3: no targetPowerState; written, it is pruned.
    let r = Rehearsal::start(scenario("[forklift]\nversion = \"2.10.3\"\n"), 0)
        .await
        .expect("rehearsal");
    let c = setup(&r).await;
    assert!(!openapi_has(&doc_of(c.clone()).await));
    let p = create(
        &c,
        plan(
            "pruned",
            json!([{ "name": "web", "targetPowerState": "on" }]),
            json!({ "targetPowerState": "off" }),
        ),
    )
    .await;
    assert!(p["spec"].get("targetPowerState").is_none(), "{p}");
    assert!(p["spec"]["vms"][0].get("targetPowerState").is_none(), "{p}");
    let stored = get(&c, "Plan", NS, "pruned").await;
    assert!(stored["spec"].get("targetPowerState").is_none());
    r.sim.shutdown().await;
    // Not installed: no such API.
    let r = Rehearsal::start(scenario("[forklift]\ninstalled = false\n"), 0)
        .await
        .expect("rehearsal");
    let c = r.client();
    let req = http::Request::get("/apis/forklift.konveyor.io/v1beta1")
        .body(Vec::new())
        .expect("req");
    match c.request::<Value>(req).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    let groups: Value = c
        .request(http::Request::get("/apis").body(Vec::new()).expect("req"))
        .await
        .expect("groups");
    assert!(!groups.to_string().contains("forklift.konveyor.io"));
    match api(&c, "Plan", NS).list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    r.sim.shutdown().await;
}

/// The CRDs' `required` lists (operator/config/crd/bases/forklift.konveyor.io_*.yaml):
/// each missing field is a 422 cause naming it, as the API server's OpenAPI validation words
/// it; Forklift's own host Provider (`secret: {}`) passes.
#[tokio::test]
async fn the_crds_required_fields_are_refused_when_missing() {
    let r = Rehearsal::start(scenario(""), 0).await.expect("rehearsal");
    let c = r.client();
    let refused = |obj: Value| {
        let c = c.clone();
        async move {
            let kind = obj["kind"].as_str().expect("kind").to_string();
            let o: DynamicObject = serde_json::from_value(obj).expect("obj");
            match api(&c, &kind, NS).create(&PostParams::default(), &o).await {
                Err(kube::Error::Api(e)) => {
                    assert_eq!(e.code, 422, "{}", e.message);
                    e.message
                }
                other => panic!("{kind}: expected 422, got {other:?}"),
            }
        }
    };
    let obj = |kind: &str, name: &str, spec: Value| {
        json!({
            "apiVersion": "forklift.konveyor.io/v1beta1", "kind": kind,
            "metadata": { "name": name, "namespace": NS }, "spec": spec,
        })
    };
    let m = refused(obj(
        "Provider",
        "nosecret",
        json!({ "type": "openshift", "url": "" }),
    ))
    .await;
    assert!(m.contains("spec.secret: Required value"), "{m}");
    create(
        &c,
        obj(
            "Provider",
            "host",
            json!({ "type": "openshift", "url": "", "secret": {} }),
        ),
    )
    .await;
    let pair = json!({ "source": { "name": "vsphere", "namespace": NS } });
    let m = refused(obj(
        "NetworkMap",
        "n",
        json!({ "provider": pair, "map": [
            { "source": { "name": "VLAN-210" }, "destination": { "type": "pod" } },
            { "destination": { "name": "x" } },
        ] }),
    ))
    .await;
    for f in [
        "spec.provider.destination: Required value",
        "spec.map[1].source: Required value",
        "spec.map[1].destination.type: Required value",
    ] {
        assert!(m.contains(f), "{f}: {m}");
    }
    assert!(!m.contains("spec.map[0]"), "{m}");
    let m = refused(obj(
        "StorageMap",
        "s",
        json!({ "provider": pair, "map": [{ "source": { "name": "ds1" }, "destination": { "accessMode": "ReadWriteOnce" } }] }),
    ))
    .await;
    assert!(
        m.contains("spec.map[0].destination.storageClass: Required value"),
        "{m}"
    );
    let mut p = plan(
        "p",
        json!([{ "name": "web", "hooks": [{ "step": "PreHook" }] }]),
        json!({}),
    );
    p["spec"]["map"] = json!({ "network": { "name": "net", "namespace": NS } });
    let m = refused(p).await;
    for f in [
        "spec.map.storage: Required value",
        "spec.vms[0].hooks[0].hook: Required value",
    ] {
        assert!(m.contains(f), "{f}: {m}");
    }
    let m = refused(obj(
        "Migration",
        "m",
        json!({ "cutover": "2026-12-05T22:00:00Z" }),
    ))
    .await;
    assert!(m.contains("spec.plan: Required value"), "{m}");
    r.sim.shutdown().await;
}

/// The CA key each release reads (kubev2v/forklift pkg/lib/util/util.go,
/// pkg/controller/provider/validation.go): v2.10.x and v2.11.x only `cacert` (v2.11 names
/// it when missing), v2.12 on `ca.crt` or `cacert`. A Secret with only `ca.crt` is refused
/// by 2.11 and ignored by 2.10 (its fingerprint is not the written certificate's); the
/// Secret wavelift writes (both keys) is Ready on every release with the written
/// certificate's fingerprint.
#[tokio::test]
async fn each_forklift_release_reads_its_own_ca_key() {
    use wavelift::cluster::forklift::{pem, provider_secret, source_provider, SourceConn};
    let plan = wavelift::plan::check_str(
        &std::fs::read_to_string("plans/forklift-estate.toml").expect("estate plan"),
        "forklift-estate.toml",
    )
    .plan
    .expect("valid plan");
    let der = b"the certificate wavelift pinned".to_vec();
    for (version, only_ca_crt) in [
        ("2.10.4", "fixture"),
        ("2.11.7", "cacert"),
        ("2.12.0", "ready"),
        ("2.12.5", "ready"),
    ] {
        let r = Rehearsal::start(
            scenario(&format!("[forklift]\nversion = \"{version}\"\n")),
            0,
        )
        .await
        .expect("rehearsal");
        let c = setup(&r).await;
        let ns = NS.to_string();
        let conn = SourceConn {
            url: format!("https://{}/sdk", r.sim.addr),
            ca_pem: pem(&der),
        };
        // wavelift's Secret and Provider (moved to the scenario's namespace).
        let mut secret = provider_secret(&plan, "sim-user", "sim-password", &conn);
        secret["metadata"]["namespace"] = json!(ns);
        create(&c, secret.clone()).await;
        let mut provider = source_provider(&plan, &conn);
        provider["metadata"]["namespace"] = json!(ns);
        provider["spec"]["secret"]["namespace"] = json!(ns);
        let name = provider["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        create(&c, provider.clone()).await;
        let fp_of = |o: &Value| o["status"]["fingerprint"].as_str().map(str::to_string);
        let ready = until(&format!("{version}: wavelift's Provider Ready"), || {
            let c = c.clone();
            let (ns, name) = (ns.clone(), name.clone());
            async move {
                let o = get(&c, "Provider", &ns, &name).await;
                (o["status"]["phase"] == "Ready").then_some(o)
            }
        })
        .await;
        let written = fp_of(&ready).expect("fingerprint");
        // Only `ca.crt`: as this release reads it.
        secret["metadata"]["name"] = json!("only-ca-crt");
        secret["stringData"]
            .as_object_mut()
            .expect("data")
            .remove("cacert");
        create(&c, secret).await;
        let mut p = provider;
        p["metadata"]["name"] = json!("only-ca-crt");
        p["spec"]["secret"]["name"] = json!("only-ca-crt");
        create(&c, p).await;
        let o = until(&format!("{version}: only-ca-crt settled"), || {
            let c = c.clone();
            let ns = ns.clone();
            async move {
                let o = get(&c, "Provider", &ns, "only-ca-crt").await;
                (o["status"]["phase"] == "Ready" || o["status"]["phase"] == "ValidationFailed")
                    .then_some(o)
            }
        })
        .await;
        match only_ca_crt {
            "cacert" => {
                let cnd = condition(&o, "SecretNotValid").expect("SecretNotValid");
                assert_eq!(cnd["items"], json!(["cacert"]), "{version}");
            }
            "fixture" => {
                assert_eq!(o["status"]["phase"], "Ready", "{version}");
                assert_ne!(fp_of(&o), Some(written.clone()), "{version}: ca.crt unread");
            }
            _ => {
                assert_eq!(o["status"]["phase"], "Ready", "{version}");
                assert_eq!(fp_of(&o), Some(written.clone()), "{version}");
            }
        }
        r.sim.shutdown().await;
    }
}

/// Source VMs for the power-off and validation tests: one without VMware Tools, one with two
/// NICs, one whose disk is on no datastore.
const MORE_VMS: &str = r#"
[[source_vm]]
name = "notools"
tools = false
nics = [{ ip = "192.0.2.18", mac = "00:50:56:ab:cd:05", vlan = 210 }]
disks = [{ file = "[ds1] notools/notools.vmdk", size = "1Gi" }]
write_rate = 0
[[source_vm]]
name = "twonics"
nics = [{ mac = "00:50:56:ab:cd:06", vlan = 210 }, { mac = "00:50:56:ab:cd:07" }]
disks = [{ file = "[ds1] twonics/twonics.vmdk", size = "1Gi" }]
write_rate = 0
[[source_vm]]
name = "nods"
nics = [{ mac = "00:50:56:ab:cd:08", vlan = 210 }]
disks = [{ file = "nods/nods.vmdk", size = "1Gi" }]
write_rate = 0
"#;

/// Forklift powers the source off with `ShutdownGuest` (pkg/controller/plan/adapter/
/// vsphere/client.go `PowerOff`): without VMware Tools vCenter's `ToolsUnavailable` fault
/// fails the VM in its step (migration.go PhasePowerOffSource `step.AddError`), and the
/// source keeps running; with Tools the guest shuts down.
#[tokio::test]
async fn the_source_is_shut_down_through_vmware_tools_and_fails_without_them() {
    let r = Rehearsal::start(scenario(MORE_VMS), 0)
        .await
        .expect("rehearsal");
    let c = setup(&r).await;
    create(
        &c,
        plan(
            "tools",
            json!([{ "name": "web" }, { "name": "notools" }]),
            json!({}),
        ),
    )
    .await;
    until_condition(&c, "Plan", "tools", "Ready").await;
    create(&c, migration("tools-1", "tools", json!({}))).await;
    until_condition(&c, "Migration", "tools-1", "Failed").await;
    let p = get(&c, "Plan", NS, "tools").await;
    let vms = vm_statuses(&p);
    assert!(vms[0].has_condition("Succeeded"), "web has Tools");
    assert!(vms[1].has_condition("Failed"));
    let init = vms[1].step(steps::INITIALIZE).expect("Initialize");
    assert_eq!(
        init.task.error.as_ref().expect("step error").reasons,
        ["ServerFaultCode: Cannot complete operation because VMware Tools is not running in this virtual machine."]
    );
    assert!(vms[1]
        .step(steps::DISK_TRANSFER_V2V)
        .expect("transfer")
        .task
        .started
        .is_none());
    let src = r.controllers.world.find("notools").expect("source");
    assert_eq!(src.power, PowerState::On, "never powered off");
    let web = r.controllers.world.find("web").expect("source");
    assert_eq!(web.power, PowerState::Off);
    r.sim.shutdown().await;
}

/// validation.go: `VMMultiplePodNetworkMappings` (a VM with more than one NIC whose
/// network maps to the pod network; every release) and `VMCriticalConcerns` (the
/// inventory's Critical concerns, from v2.12.0: `datastore.rego`'s disk on no datastore).
#[tokio::test]
async fn plan_validation_names_pod_network_duplicates_and_critical_concerns() {
    for (version, concerns) in [("2.12.5", true), ("2.11.7", false)] {
        let r = Rehearsal::start(
            scenario(&format!("[forklift]\nversion = \"{version}\"\n{MORE_VMS}")),
            0,
        )
        .await
        .expect("rehearsal");
        let c = setup(&r).await;
        let pair = json!({ "source": { "name": "vsphere", "namespace": NS }, "destination": { "name": "host", "namespace": NS } });
        create(
            &c,
            json!({
                "apiVersion": "forklift.konveyor.io/v1beta1", "kind": "NetworkMap",
                "metadata": { "name": "allpod", "namespace": NS },
                "spec": { "provider": pair, "map": [
                    { "source": { "name": "VLAN-210" }, "destination": { "type": "pod" } },
                    { "source": { "name": "VM Network" }, "destination": { "type": "pod" } },
                ] },
            }),
        )
        .await;
        until_condition(&c, "NetworkMap", "allpod", "Ready").await;
        let mut p = plan(
            "pod",
            json!([{ "name": "web" }, { "name": "twonics" }]),
            json!({}),
        );
        p["spec"]["map"]["network"]["name"] = json!("allpod");
        create(&c, p).await;
        let p = until_condition(&c, "Plan", "pod", "VMMultiplePodNetworkMappings").await;
        let cnd = condition(&p, "VMMultiplePodNetworkMappings").expect("condition");
        assert_eq!(cnd["category"], "Critical");
        let twonics = moid(&r, "twonics");
        assert_eq!(
            cnd["items"],
            json!([format!(" id:{twonics} name:'twonics' ")]),
            "{version}: web's one NIC is not a duplicate"
        );
        assert!(condition(&p, "Ready").is_none());
        // The same VM with its VLAN on a NAD is fine.
        create(
            &c,
            plan("multus", json!([{ "name": "twonics" }]), json!({})),
        )
        .await;
        let p = until_condition(&c, "Plan", "multus", "Ready").await;
        assert!(condition(&p, "VMMultiplePodNetworkMappings").is_none());
        // A disk on no datastore.
        create(&c, plan("nods", json!([{ "name": "nods" }]), json!({}))).await;
        let nods = moid(&r, "nods");
        if concerns {
            let p = until_condition(&c, "Plan", "nods", "VMCriticalConcerns").await;
            let cnd = condition(&p, "VMCriticalConcerns").expect("condition");
            assert_eq!(cnd["category"], "Critical");
            assert_eq!(
                cnd["items"],
                json!([format!(
                    " id:{nods} name:'nods'  (Disk is not located on a datastore)"
                )])
            );
        } else {
            let p = until_condition(&c, "Plan", "nods", "VMStorageNotMapped").await;
            assert!(condition(&p, "VMCriticalConcerns").is_none(), "{version}");
        }
        r.sim.shutdown().await;
    }
}
