//! The rehearsal cluster behaves as KubeVirt and the CNI plugins do, checked through the
//! real kube-rs client (and, once, the `wavelift` binary):
//! - the `start` subresource reads its dry run from the body only (virt-api
//!   `pkg/virt-api/rest/lifecycle.go`): wavelift's dry-run start starts nothing, a query-only
//!   `?dryRun=All` really starts the VM; starting a running VM is a 409;
//! - `Manual` VMs start, restart and stop through `status.stateChangeRequests`;
//! - the VMI's `LiveMigratable` condition follows its PVCs' access modes (virt-handler
//!   `pkg/virt-handler/vm.go`), and the migration admission webhook
//!   (`migration-create-admitter.go`) refuses an RWO VM's migration, which `wavelift migrate`
//!   reports with the disk; an RWX VM migrates;
//! - a VLAN is read from a NAD only where its CNI plugin has one.

use crate::common;

use common::serve::SimServer;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use kube::ResourceExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::probe::{Prober, SimProber};
use wavelift::cluster::build;
use wavelift::cluster::resources::{
    DataVolume, NetworkAttachmentDefinition, VirtualMachine, VirtualMachineInstance,
    VirtualMachineInstanceMigration,
};
use wavelift::cluster::subresource::{put, VmAction};
use wavelift::plan::Plan;
use wavelift::sim::controllers::kubevirt::cni_vlan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

const LIMIT: Duration = Duration::from_secs(30);
const VM: &str = "shop-db-01";

/// The quickstart plan, its disks on `access_mode`.
fn quickstart(access_mode: &str) -> Plan {
    let text = std::fs::read_to_string("plans/quickstart.toml").expect("quickstart");
    let text = text.replace(
        "access_mode = \"ReadWriteMany\"",
        &format!("access_mode = \"{access_mode}\""),
    );
    wavelift::plan::check_str(&text, "quickstart.toml")
        .plan
        .expect("valid plan")
}

async fn rehearsal(plan: &Plan) -> Rehearsal {
    let mut scenario = Scenario::from_plan(plan);
    scenario.speed = 2000.0;
    scenario.migration_seconds = 200.0;
    Rehearsal::start(scenario, 0).await.expect("rehearsal")
}

async fn wait<K, F>(api: &Api<K>, name: &str, what: &str, cond: F) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&K) -> bool,
{
    let c = move |o: Option<&K>| o.is_some_and(&cond);
    match tokio::time::timeout(LIMIT, await_condition(api.clone(), name, c)).await {
        Ok(Ok(Some(o))) => o,
        other => panic!("{what}: not reached within {LIMIT:?}: {other:?}"),
    }
}

/// NAD, imported disks and the (Halted) VirtualMachine of `vm`, as wavelift creates them.
async fn vm_ready_to_start(plan: &Plan, client: &kube::Client, vm: &str) -> Api<VirtualMachine> {
    let ns = plan.meta.namespace.as_str();
    let v = plan.vm(vm).expect("vm");
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), ns);
    for net in &plan.networks {
        let nad = build::network_attachment(plan, net);
        if nads.get_opt(&nad.name_any()).await.expect("get").is_none() {
            nads.create(&PostParams::default(), &nad)
                .await
                .expect("NAD");
        }
    }
    let dvs: Api<DataVolume> = Api::namespaced(client.clone(), ns);
    for dv in build::data_volumes(plan, v) {
        let name = dv.name_any();
        dvs.create(&PostParams::default(), &dv).await.expect("DV");
        wait(&dvs, &name, "import", |d: &DataVolume| {
            d.status
                .as_ref()
                .and_then(|s| s.phase.as_ref())
                .is_some_and(|p| p.as_str() == "Succeeded")
        })
        .await;
    }
    let vms: Api<VirtualMachine> = Api::namespaced(client.clone(), ns);
    vms.create(&PostParams::default(), &build::virtual_machine(plan, v))
        .await
        .expect("VM");
    vms
}

fn running(v: &VirtualMachineInstance) -> bool {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .is_some_and(|p| p.as_str() == "Running")
}

/// Starts `vm` through the subresource (no dry run) and waits for its running VMI.
async fn start_and_wait(plan: &Plan, client: &kube::Client, vm: &str) -> VirtualMachineInstance {
    let ns = plan.meta.namespace.as_str();
    put(client, ns, vm, VmAction::Start, false)
        .await
        .expect("start");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), ns);
    wait(&vmis, vm, "running VMI", running).await
}

fn run_strategy(vm: &VirtualMachine) -> Option<&str> {
    vm.spec.run_strategy.as_deref()
}

fn status_of(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

/// The VMI as JSON (volumeStatus, migrationMethod are not in wavelift's typed status).
async fn vmi_json(client: &kube::Client, ns: &str, name: &str) -> serde_json::Value {
    let req = http::Request::get(format!(
        "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}"
    ))
    .body(Vec::new())
    .expect("request");
    serde_json::from_str(&client.request_text(req).await.expect("get vmi")).expect("json")
}

fn live_migratable(vmi: &serde_json::Value) -> serde_json::Value {
    vmi["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "LiveMigratable"))
        .cloned()
        .unwrap_or_else(|| panic!("no LiveMigratable condition: {vmi}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_start_starts_nothing_but_a_query_dry_run_is_ignored() {
    let plan = quickstart("ReadWriteMany");
    let r = rehearsal(&plan).await;
    let client = r.client();
    let ns = plan.meta.namespace.as_str();
    let vms = vm_ready_to_start(&plan, &client, VM).await;
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), ns);

    // wavelift's dry-run start: `{"dryRun":["All"]}` in the body.
    put(&client, ns, VM, VmAction::Start, true)
        .await
        .expect("dry-run start accepted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let vm = vms.get(VM).await.expect("vm");
    assert_eq!(
        run_strategy(&vm),
        Some("Halted"),
        "a dry run changes nothing"
    );
    assert!(
        vmis.get_opt(VM).await.expect("get").is_none(),
        "a dry-run start boots no VMI"
    );

    // A client that puts the dry run in the query (as `?dryRun=All` works for plain
    // resources) really starts the VM: virt-api does not read the query.
    let req = http::Request::put(format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{VM}/start?dryRun=All"
    ))
    .header("content-type", "application/json")
    .body(b"{}".to_vec())
    .expect("request");
    client.request_text(req).await.expect("start accepted");
    let vm = vms.get(VM).await.expect("vm");
    assert_eq!(
        run_strategy(&vm),
        Some("Always"),
        "runStrategy Halted → Always"
    );
    wait(&vmis, VM, "VMI of the query-dry-run start", running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_running_vm_is_a_conflict() {
    let plan = quickstart("ReadWriteMany");
    let r = rehearsal(&plan).await;
    let client = r.client();
    let ns = plan.meta.namespace.as_str();
    vm_ready_to_start(&plan, &client, VM).await;
    start_and_wait(&plan, &client, VM).await;
    let s = status_of(
        put(&client, ns, VM, VmAction::Start, false)
            .await
            .expect_err("already running"),
    );
    assert_eq!(s.code, 409, "{s:?}");
    assert_eq!(s.reason, "Conflict");
    assert_eq!(
        s.message,
        format!("Operation cannot be fulfilled on virtualmachine.kubevirt.io \"{VM}\": VM is already running")
    );
    // A dry run is judged the same way: the conflict comes before any write.
    let s = status_of(
        put(&client, ns, VM, VmAction::Start, true)
            .await
            .expect_err("already running"),
    );
    assert_eq!(s.code, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_vm_starts_restarts_and_stops_through_state_change_requests() {
    let plan = quickstart("ReadWriteMany");
    let r = rehearsal(&plan).await;
    let client = r.client();
    let ns = plan.meta.namespace.as_str();
    let vms = vm_ready_to_start(&plan, &client, VM).await;
    vms.patch(
        VM,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"runStrategy": "Manual"}})),
    )
    .await
    .expect("Manual");
    let vmis: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), ns);
    let first = start_and_wait(&plan, &client, VM).await;
    let vm = vms.get(VM).await.expect("vm");
    assert_eq!(
        run_strategy(&vm),
        Some("Manual"),
        "a Manual VM keeps its strategy"
    );
    // The start request is trimmed once its VMI exists.
    let vms2 = vms.clone();
    wait(&vms2, VM, "start request trimmed", |v: &VirtualMachine| {
        v.status
            .as_ref()
            .is_some_and(|s| s.state_change_requests.is_empty())
    })
    .await;

    put(&client, ns, VM, VmAction::Restart, false)
        .await
        .expect("restart");
    let old = first.uid();
    let again = wait(
        &vmis,
        VM,
        "restarted VMI",
        move |v: &VirtualMachineInstance| v.uid() != old && running(v),
    )
    .await;
    assert_ne!(again.uid(), first.uid());

    put(&client, ns, VM, VmAction::Stop, false)
        .await
        .expect("stop");
    let gone = tokio::time::timeout(
        LIMIT,
        await_condition(vmis.clone(), VM, |o: Option<&VirtualMachineInstance>| {
            o.is_none()
        }),
    )
    .await;
    assert!(gone.is_ok(), "a stop request deletes the VMI");
    let s = status_of(
        put(&client, ns, VM, VmAction::Stop, false)
            .await
            .expect_err("not running"),
    );
    assert_eq!(s.code, 409);
    assert!(s.message.ends_with("VM is not running"), "{}", s.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rwo_vm_is_not_live_migratable_and_its_migration_is_refused_at_admission() {
    let plan = Arc::new(quickstart("ReadWriteOnce"));
    let r = rehearsal(&plan).await;
    let client = r.client();
    let ns = plan.meta.namespace.as_str();
    vm_ready_to_start(&plan, &client, VM).await;
    start_and_wait(&plan, &client, VM).await;

    let vmi = vmi_json(&client, ns, VM).await;
    let cond = live_migratable(&vmi);
    let pvc_msg = format!("cannot migrate VMI: PVC {VM}-disk0 is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)");
    assert_eq!(cond["status"], "False", "{vmi}");
    assert_eq!(cond["reason"], "DisksNotLiveMigratable");
    assert_eq!(cond["message"], pvc_msg.as_str());
    assert_eq!(vmi["status"]["migrationMethod"], "BlockMigration");
    assert_eq!(
        vmi["status"]["volumeStatus"][0]["persistentVolumeClaimInfo"]["accessModes"],
        json!(["ReadWriteOnce"])
    );

    // Creating the migration: the webhook refuses, the API server words it.
    let migs: Api<VirtualMachineInstanceMigration> = Api::namespaced(client.clone(), ns);
    let s = status_of(
        migs.create(
            &PostParams::default(),
            &build::migration(&plan, plan.vm(VM).expect("vm")),
        )
        .await
        .expect_err("refused"),
    );
    assert_eq!(s.code, 400, "{s:?}");
    assert_eq!(s.reason, "Forbidden");
    assert!(
        s.message.starts_with(&format!(
            "virtualmachineinstancemigrations.kubevirt.io \"{VM}-migration-"
        )),
        "{}",
        s.message
    );
    assert!(
        s.message.ends_with(&format!(
            "is forbidden: admission webhook \"migration-create-validator.kubevirt.io\" denied the request: Cannot migrate VMI, Reason: DisksNotLiveMigratable, Message: {pvc_msg}"
        )),
        "{}",
        s.message
    );
    assert!(
        migs.list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "nothing was stored"
    );

    // virtctl's path: the migrate subresource wraps the refusal in a 500.
    let s = status_of(
        put(&client, ns, VM, VmAction::Migrate, false)
            .await
            .expect_err("refused"),
    );
    assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
    assert!(
        s.message.contains("DisksNotLiveMigratable"),
        "{}",
        s.message
    );

    // What `wavelift migrate` reports: KubeVirt's reason and the plan's disk.
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::channel(16);
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let prober: Arc<dyn Prober> = Arc::new(SimProber::new(r.world_url.clone()));
    let vm = plan.vm(VM).expect("vm").clone();
    let e = wavelift::engine::migrate::migrate(
        client.clone(),
        plan.clone(),
        &vm,
        prober,
        ev_tx,
        tx,
        LIMIT,
    )
    .await
    .expect_err("refused");
    let text = format!("{e:#}");
    for want in [
        "KubeVirt refused to live-migrate VM `shop-db-01`",
        "Reason: DisksNotLiveMigratable",
        "PVC shop-db-01-disk0 is not shared",
        "disk 0 ([ds1] shop-db-01/shop-db-01.vmdk)",
        "access mode ReadWriteOnce",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rwx_vm_is_live_migratable_and_migrates() {
    let plan = Arc::new(quickstart("ReadWriteMany"));
    let r = rehearsal(&plan).await;
    let client = r.client();
    let ns = plan.meta.namespace.as_str();
    vm_ready_to_start(&plan, &client, VM).await;
    start_and_wait(&plan, &client, VM).await;
    let vmi = vmi_json(&client, ns, VM).await;
    assert_eq!(
        live_migratable(&vmi),
        json!({"type": "LiveMigratable", "status": "True"})
    );
    assert_eq!(vmi["status"]["migrationMethod"], "LiveMigration");
    assert_eq!(
        vmi["status"]["volumeStatus"][0]["persistentVolumeClaimInfo"]["claimName"],
        format!("{VM}-disk0")
    );
    assert_eq!(
        vmi["status"]["volumeStatus"][0]["persistentVolumeClaimInfo"]["accessModes"],
        json!(["ReadWriteMany"])
    );

    // One migration at a time: a second one while the first is in flight is refused.
    let migs: Api<VirtualMachineInstanceMigration> = Api::namespaced(client.clone(), ns);
    let spec = build::migration(&plan, plan.vm(VM).expect("vm"));
    let first = migs
        .create(&PostParams::default(), &spec)
        .await
        .expect("first migration admitted");
    let first_name = first.name_any();
    wait(
        &migs,
        &first_name,
        "labelled by virt-controller",
        |m: &VirtualMachineInstanceMigration| {
            m.labels().get("kubevirt.io/vmi-name").map(String::as_str) == Some(VM)
        },
    )
    .await;
    let s = status_of(
        migs.create(&PostParams::default(), &spec)
            .await
            .expect_err("in flight"),
    );
    assert_eq!(s.code, 400);
    assert!(
        s.message.ends_with(&format!(
            "in-flight migration detected. Active migration job ({}) is currently already in progress for VMI {VM}.",
            first.uid().unwrap_or_default()
        )),
        "{}",
        s.message
    );
    wait(
        &migs,
        &first_name,
        "first migration",
        |m: &VirtualMachineInstanceMigration| {
            m.status
                .as_ref()
                .and_then(|s| s.phase.as_ref())
                .is_some_and(|p| p.as_str() == "Succeeded")
        },
    )
    .await;

    let (ev_tx, _ev_rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let prober: Arc<dyn Prober> = Arc::new(SimProber::new(r.world_url.clone()));
    let vm = plan.vm(VM).expect("vm").clone();
    let o = wavelift::engine::migrate::migrate(
        client.clone(),
        plan.clone(),
        &vm,
        prober,
        ev_tx,
        tx,
        LIMIT,
    )
    .await
    .expect("migration");
    assert_eq!(o.phase.as_str(), "Succeeded", "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_of_a_missing_vmi_is_refused() {
    let plan = quickstart("ReadWriteMany");
    let r = rehearsal(&plan).await;
    let ns = plan.meta.namespace.as_str();
    let migs: Api<VirtualMachineInstanceMigration> = Api::namespaced(r.client(), ns);
    let s = status_of(
        migs.create(
            &PostParams::default(),
            &build::migration(&plan, plan.vm(VM).expect("vm")),
        )
        .await
        .expect_err("no VMI"),
    );
    assert_eq!(s.code, 400);
    assert!(
        s.message.ends_with(&format!(
            "denied the request: the VMI \"{ns}/{VM}\" does not exist"
        )),
        "{}",
        s.message
    );
}

#[test]
fn a_vlan_is_read_only_where_the_cni_plugin_has_one() {
    let cfg = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
    assert_eq!(
        cni_vlan(&cfg(
            r#"{"type":"bridge","bridge":"br-trunk","vlan":210,"ipam":{}}"#
        )),
        Some(210)
    );
    assert_eq!(
        cni_vlan(&cfg(r#"{"type":"bridge","bridge":"br-trunk","ipam":{}}"#)),
        None
    );
    assert_eq!(
        cni_vlan(&cfg(
            r#"{"type":"ovn-k8s-cni-overlay","topology":"localnet","vlanID":310}"#
        )),
        Some(310)
    );
    // vlanID is "valid in localnet topology network only".
    assert_eq!(
        cni_vlan(&cfg(
            r#"{"type":"ovn-k8s-cni-overlay","topology":"layer2","vlanID":310}"#
        )),
        None
    );
    // Calico's CNI has no VLAN (nor `network`) field: a config naming one carries none.
    assert_eq!(
        cni_vlan(&cfg(
            r#"{"type":"calico","network":"vlan-410","vlan":410,"ipam":{}}"#
        )),
        None
    );
    // A conflist: the first plugin attaches the interface.
    assert_eq!(
        cni_vlan(&cfg(
            r#"{"cniVersion":"0.3.1","name":"n","plugins":[{"type":"bridge","vlan":7},{"type":"tuning"}]}"#
        )),
        Some(7)
    );
}

/// `wavelift migrate` on an RWO VM, across processes: exit non-zero, KubeVirt's reason and
/// the disk on stderr.
#[test]
fn wavelift_migrate_reports_the_refusal_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string("plans/quickstart.toml").expect("quickstart");
    let plan_path = dir.path().join("rwo.toml");
    std::fs::write(
        &plan_path,
        text.replace(
            "access_mode = \"ReadWriteMany\"",
            "access_mode = \"ReadWriteOnce\"",
        ),
    )
    .expect("write plan");
    let plan = plan_path.to_str().expect("utf8");
    let server = SimServer::start(&["--plan", plan, "--speed", "500"], dir.path());
    let run = server.run(&["run", plan, "--vm", VM]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let mig = server.run(&["migrate", plan, "--vm", VM]);
    let err = String::from_utf8_lossy(&mig.stderr);
    assert_ne!(mig.status.code(), Some(0), "{err}");
    for want in [
        "KubeVirt refused to live-migrate VM `shop-db-01`",
        "admission webhook \"migration-create-validator.kubevirt.io\" denied the request",
        "DisksNotLiveMigratable",
        "PVC shop-db-01-disk0 is not shared",
        "access mode ReadWriteOnce",
    ] {
        assert!(err.contains(want), "`{want}` missing from:\n{err}");
    }
}
