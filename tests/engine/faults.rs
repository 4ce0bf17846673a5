//! Faults from a scenario, through the engine: an import that fails once recovers (CDI
//! restarts it); an import that always fails fails its VM with CDI's reason, and the VM that
//! waits for it fails too instead of waiting forever; an operator's retry completes the
//! wave; a guest agent that never connects fails the VM after the agent timeout; a failed
//! live migration says why. Also: a dry run creates nothing, import concurrency stays within
//! the wave's limit, and the 40-VM example verifies every VM, also with 5 % of API requests
//! answered 500 and watches dropped. A busy vCenter (503s) is
//! ridden out by retries; one that stays down fails the VM with the last error.

use crate::common;

use common::{config, interact, load_plan, run_to_end, Reply};
use kube::api::{Api, ListParams};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::probe::{Prober, SimProber};
use wavelift::cluster::resources::{DataVolume, NetworkAttachmentDefinition, VirtualMachine};
use wavelift::engine::runtime::RunSummary;
use wavelift::engine::{EngineRequest, EventKind, Status, Step};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{Fault, FaultKind, FaultMode, PowerState, Scenario};
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, RetryPolicy, Secret};

const LIMIT: Duration = Duration::from_secs(60);

fn fault(kind: FaultKind, vm: &str, mode: FaultMode) -> Fault {
    Fault {
        kind,
        vm: vm.into(),
        mode,
        factor: None,
    }
}

fn scenario(plan: &Plan, speed: f64, faults: Vec<Fault>) -> Scenario {
    let mut sc = Scenario::from_plan(plan);
    sc.speed = speed;
    sc.faults = faults;
    sc
}

async fn run_only(
    plan: &Arc<Plan>,
    sc: Scenario,
    only: &[&str],
    agent_timeout: Option<Duration>,
) -> (RunSummary, Rehearsal) {
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(plan, &r);
    cfg.only_vms = only.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    if let Some(t) = agent_timeout {
        cfg.agent_timeout = t;
    }
    let (s, _) = run_to_end(cfg, LIMIT).await;
    (s, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_failures_once_recover_always_fail_and_dependents_fail() {
    let plan = load_plan("plans/quickstart.toml");
    let sc = scenario(
        &plan,
        4000.0,
        vec![
            fault(FaultKind::ImportFailure, "shop-db-01", FaultMode::Once),
            fault(FaultKind::ImportFailure, "shop-app-01", FaultMode::Always),
        ],
    );
    let (s, _r) = run_only(&plan, sc, &[], None).await;
    assert_eq!(s.verified, vec!["shop-db-01".to_string()], "{s:?}");
    let app = s
        .failed
        .iter()
        .find(|(v, _)| v == "shop-app-01")
        .expect("app failed");
    assert!(app.1.contains("simulated import failure"), "{app:?}");
    let web = s
        .failed
        .iter()
        .find(|(v, _)| v == "shop-web-01")
        .expect("web failed");
    assert!(web.1.contains("waits for shop-app-01"), "{web:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_agent_that_never_connects_fails_the_vm() {
    let plan = load_plan("plans/quickstart.toml");
    let sc = scenario(
        &plan,
        4000.0,
        vec![fault(FaultKind::AgentNever, "shop-db-01", FaultMode::Once)],
    );
    let (s, _r) = run_only(&plan, sc, &["shop-db-01"], Some(Duration::from_millis(500))).await;
    let (_, why) = s.failed.first().expect("failed");
    assert!(why.contains("guest agent not connected"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vmi_that_never_runs_fails_the_vm() {
    let plan = load_plan("plans/quickstart.toml");
    let sc = scenario(
        &plan,
        4000.0,
        vec![fault(FaultKind::BootNever, "shop-db-01", FaultMode::Once)],
    );
    let (s, _r) = run_only(&plan, sc, &["shop-db-01"], Some(Duration::from_millis(500))).await;
    let (_, why) = s.failed.first().expect("failed");
    assert!(
        why.contains("the VirtualMachineInstance is not running after"),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_creates_nothing() {
    let plan = load_plan("plans/quickstart.toml");
    let r = Rehearsal::start(scenario(&plan, 4000.0, vec![]), 0)
        .await
        .expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.dry_run = true;
    let (s, _) = run_to_end(cfg, LIMIT).await;
    assert_eq!(s.dry_run_ok.len(), 3, "{s:?}");
    let ns = plan.meta.namespace.as_str();
    let lp = ListParams::default();
    assert!(Api::<DataVolume>::namespaced(r.client(), ns)
        .list(&lp)
        .await
        .expect("list")
        .items
        .is_empty());
    assert!(Api::<VirtualMachine>::namespaced(r.client(), ns)
        .list(&lp)
        .await
        .expect("list")
        .items
        .is_empty());
    assert!(
        Api::<NetworkAttachmentDefinition>::namespaced(r.client(), ns)
            .list(&lp)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        let src = r.controllers.world.find(vm).expect("source");
        assert_eq!(src.power, PowerState::On, "a dry run powers nothing off");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_concurrency_never_exceeds_the_wave_limit() {
    use wavelift::plan::synth::{generate, SynthSpec};
    let text = generate(SynthSpec {
        vms: 30,
        waves: 1,
        networks: 2,
        l3_every: 0,
    });
    let plan = Arc::new(
        wavelift::plan::check_str(&text, "synthetic.toml")
            .plan
            .expect("valid"),
    );
    let limit = plan.waves[0].max_parallel_imports as usize;
    // Slow enough that imports overlap (several progress ticks each), fast enough for CI.
    let mut sc = scenario(&plan, 200.0, vec![]);
    sc.bandwidth_total = 64 << 30;
    let (s, r) = run_only(&plan, sc, &[], None).await;
    assert_eq!(s.verified.len(), 30, "{s:?}");
    let peak = r.controllers.imports.peak();
    assert!(peak <= limit, "{peak} imports at once, limit {limit}");
    assert!(peak >= 2, "imports ran one at a time (peak {peak})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_live_migration_is_reported_with_its_reason() {
    let plan = load_plan("plans/quickstart.toml");
    let sc = scenario(
        &plan,
        4000.0,
        vec![fault(
            FaultKind::MigrationFailure,
            "shop-db-01",
            FaultMode::Once,
        )],
    );
    let (s, r) = run_only(&plan, sc, &["shop-db-01"], None).await;
    assert_eq!(s.verified, vec!["shop-db-01".to_string()]);
    let vm = plan.vm("shop-db-01").expect("vm").clone();
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let prober: Arc<dyn Prober> = Arc::new(SimProber::new(r.world_url.clone()));
    let o =
        wavelift::engine::migrate::migrate(r.client(), plan.clone(), &vm, prober, ev_tx, tx, LIMIT)
            .await
            .expect("migration runs");
    assert_eq!(o.phase, "Failed");
    assert!(
        o.failure
            .as_deref()
            .is_some_and(|f| f.contains("simulated migration failure")),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_40_vm_estate_verifies_every_vm() {
    let plan = load_plan("plans/payments-estate.toml");
    let r = Rehearsal::start(scenario(&plan, 20000.0, vec![]), 0)
        .await
        .expect("rehearsal");
    let mut cfg = config(&plan, &r);
    // The estate's waves are a week apart; this test is about the whole estate, the
    // windows have their own tests.
    cfg.ignore_window = true;
    let (s, _) = run_to_end(cfg, LIMIT).await;
    assert_eq!(s.verified.len(), 40, "{s:?}");
}

/// The 40-VM estate with 10 % of the engine's API requests answered 500: every VM
/// verifies, and the sim's record shows the errors were served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_40_vm_estate_verifies_through_api_server_errors() {
    let plan = load_plan("plans/payments-estate.toml");
    let mut sc = scenario(&plan, 20000.0, vec![]);
    sc.seed = 5;
    sc.api_error_rate = 0.10;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.ignore_window = true; // the waves are a week apart (windows: tests/engine/windows.rs)
    let (s, events) = run_to_end(cfg, LIMIT).await;
    assert_eq!(
        s.verified.len(),
        40,
        "{s:?}\n{}",
        story_of_failed(&s, &events)
    );
    let (requests, _, injected) = r.sim.server().stats().snapshot();
    assert!(
        injected * 20 > requests / 10,
        "{injected} errors in {requests} requests: the fault barely fired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_retried_by_the_operator_completes_the_wave() {
    let plan = load_plan("plans/quickstart.toml");
    let sc = scenario(
        &plan,
        4000.0,
        vec![fault(
            FaultKind::ImportFailure,
            "shop-db-01",
            FaultMode::UntilRetry,
        )],
    );
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false; // an operator is at the keyboard
    let mut retried = false;
    let mut verified = BTreeSet::new();
    interact(cfg, LIMIT, |ev| match &ev.kind {
        EventKind::Phase {
            step: Step::Importing,
            status: Status::Failed(why),
            ..
        } if ev.vm == "shop-db-01" => {
            assert!(why.contains("simulated import failure"), "{why}");
            assert!(!retried, "the retried import failed again");
            retried = true;
            Reply::Send(EngineRequest::RetryVm("shop-db-01".into()))
        }
        EventKind::Phase {
            step: Step::Verified,
            ..
        } => {
            verified.insert(ev.vm.clone());
            if verified.len() == 3 {
                Reply::Done
            } else {
                Reply::Wait
            }
        }
        _ => Reply::Wait,
    })
    .await;
    assert!(retried, "the fault never fired");
}

/// 5 % of the engine's API requests answer 500 InternalError (which kube-rs does not
/// retry: the engine's calls do), and every watch is ended after 0.3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_watch_drops_do_not_stop_the_wave() {
    let plan = load_plan("plans/quickstart.toml");
    let mut sc = scenario(&plan, 2000.0, vec![]);
    sc.seed = 11;
    sc.api_error_rate = 0.05;
    assert_eq!(
        sc.api_error_code, 500,
        "the default injected error is a 500"
    );
    sc.watch_drop_seconds = Some(0.3);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let (s, _) = run_to_end(config(&plan, &r), LIMIT).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    let (requests, watches, injected) = r.sim.server().stats().snapshot();
    assert!(injected > 0, "no fault was injected ({requests} requests)");
    assert!(
        watches > 5,
        "watches were not dropped and re-established ({watches} watch requests)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_deletes_what_wavelift_created_and_powers_the_source_back_on() {
    let plan = load_plan("plans/quickstart.toml");
    let r = Rehearsal::start(scenario(&plan, 4000.0, vec![]), 0)
        .await
        .expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = ["shop-db-01".to_string()].into_iter().collect();
    cfg.exit_when_done = false;
    // Something wavelift did not create, in the same namespace: rollback must leave it.
    let foreign: DataVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": "shop-db-01-disk9", "namespace": "mig-quickstart", "labels": {"team": "dba"}},
        "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}
    }))
    .expect("dv");
    let dvs = Api::<DataVolume>::namespaced(r.client(), "mig-quickstart");
    dvs.create(&Default::default(), &foreign)
        .await
        .expect("foreign DV");
    let world = r.controllers.world.clone();
    interact(cfg, LIMIT, |ev| match &ev.kind {
        EventKind::Phase {
            step: Step::Verified,
            ..
        } if ev.vm == "shop-db-01" => {
            assert_eq!(
                world.find("shop-db-01").expect("src").power,
                PowerState::Off
            );
            Reply::Send(EngineRequest::RollbackVm("shop-db-01".into()))
        }
        EventKind::Phase {
            step: Step::RolledBack,
            ..
        } if ev.vm == "shop-db-01" => Reply::Done,
        _ => Reply::Wait,
    })
    .await;
    let vms = Api::<VirtualMachine>::namespaced(r.client(), "mig-quickstart");
    assert!(
        vms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "the VM is gone"
    );
    let left: Vec<String> = dvs
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(
        left,
        vec!["shop-db-01-disk9".to_string()],
        "only wavelift's DataVolumes were deleted"
    );
    assert_eq!(
        r.controllers.world.find("shop-db-01").expect("src").power,
        PowerState::On,
        "the source runs again"
    );
    let a = r.controllers.world.probe("192.0.2.15", None);
    assert_eq!(a.holders, vec!["source/shop-db-01".to_string()], "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_ip_that_keeps_answering_stops_the_vm_at_the_cutover_gate() {
    // Manual power-off, confirmed by a script, but the source is in fact still running.
    let plan = load_plan("plans/http-images.toml");
    let r = Rehearsal::start(scenario(&plan, 4000.0, vec![]), 0)
        .await
        .expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = ["wiki-01".to_string()].into_iter().collect();
    cfg.confirm_power_off = true;
    cfg.guard_interval = Duration::from_millis(20);
    let (s, events) = run_to_end(cfg, LIMIT).await;
    let (_, why) = s
        .failed
        .first()
        .unwrap_or_else(|| panic!("wiki-01 did not fail: {s:?}"));
    assert!(
        why.contains("original IP still answers") && why.contains("198.51.100.21"),
        "{why}"
    );
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::Phase { step: Step::CutoverGate, status: Status::Blocked(b), .. } if b.contains("198.51.100.21"))));
    assert!(
        !events.iter().any(
            |e| matches!(&e.kind, EventKind::Mutation { kind, .. } if kind == "VirtualMachine")
        ),
        "no VM was created or started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_preflight_reports_every_problem_and_creates_nothing() {
    let plan = load_plan("plans/quickstart.toml");
    let mut sc = scenario(&plan, 4000.0, vec![]);
    sc.secrets.clear(); // no credentials Secret
    sc.storage_classes.retain(|c| c != "sim-standard");
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    // The API server seeds sim-standard itself; delete it to make the StorageClass missing.
    let scs: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(r.client());
    scs.delete("sim-standard", &Default::default())
        .await
        .expect("delete class");
    let (s, events) = run_to_end(config(&plan, &r), LIMIT).await;
    assert_eq!(s.failed.len(), 3, "{s:?}");
    let why = &s.failed[0].1;
    assert!(
        why.contains("StorageClass sim-standard does not exist")
            && why.contains("Secret mig-quickstart/vsphere-creds does not exist"),
        "{why}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Mutation { .. })),
        "nothing was mutated"
    );
}

/// An engine config whose vSphere client retries with `policy` (short delays for tests).
fn config_with_retry(
    plan: &Arc<Plan>,
    r: &Rehearsal,
    policy: RetryPolicy,
) -> wavelift::engine::runtime::EngineConfig {
    let creds = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let mut cfg = config(plan, r);
    cfg.source = Some(Arc::new(
        VsphereClient::new(&r.world_url, None, creds)
            .expect("client")
            .with_retry(policy),
    ));
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_vcenter_is_ridden_out_by_retries() {
    let plan = load_plan("plans/quickstart.toml");
    let mut sc = scenario(&plan, 4000.0, vec![]);
    sc.vcenter_error_rate = 0.3;
    sc.seed = 11;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let policy = RetryPolicy {
        attempts: 12,
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
    };
    let (s, _) = run_to_end(config_with_retry(&plan, &r, policy), LIMIT).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    let injected = r
        .vcenter
        .injected
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(injected > 0, "the scenario answered no request with 503");
    let world = &r.controllers.world;
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        assert_eq!(
            world.find(vm).map(|v| v.power),
            Some(PowerState::Off),
            "{vm}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcenter_that_stays_down_fails_the_vm_with_the_last_error() {
    let plan = load_plan("plans/quickstart.toml");
    let mut sc = scenario(&plan, 4000.0, vec![]);
    sc.vcenter_error_rate = 1.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let policy = RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    let mut cfg = config_with_retry(&plan, &r, policy);
    cfg.only_vms = ["shop-db-01".to_string()].into_iter().collect();
    let (s, events) = run_to_end(cfg, LIMIT).await;
    let (vm, why) = s.failed.first().expect("failed");
    assert_eq!(vm, "shop-db-01");
    assert!(
        why.contains("503") && why.contains("gave up after 3 attempts"),
        "{why}"
    );
    // Three attempts, each stopped at its first request (the login).
    assert_eq!(
        r.vcenter
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert!(
        !events.iter().any(
            |e| matches!(&e.kind, EventKind::Mutation { kind, .. } if kind == "VirtualMachine")
        ),
        "no VM was created while the source could not be powered off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_wave_stops_vms_before_cutover_and_a_restart_resumes_them() {
    // Cold: shop-db-01 cuts over first (its source off, its disk importing); shop-app-01 and
    // shop-web-01 wait for it, their sources running. Cancel during db's import.
    let plan = load_plan("plans/quickstart.toml");
    let mut slow = fault(FaultKind::SlowImport, "shop-db-01", FaultMode::Once);
    slow.factor = Some(40.0);
    let r = Rehearsal::start(scenario(&plan, 4000.0, vec![slow]), 0)
        .await
        .expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false;
    // db's import is slowed 40-fold: the throughput measured from it would (rightly) make
    // the window too short for the others' cutovers; windows are not what this tests.
    cfg.ignore_window = true;
    let mut cancelled_sent = false;
    let mut wave_done: Option<(usize, usize, usize)> = None;
    let mut last: std::collections::BTreeMap<String, Step> = Default::default();
    let mut restarted = false;
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    interact(cfg, LIMIT, |ev| {
        if let EventKind::Phase { step, .. } = &ev.kind {
            if wave_done.is_none() {
                last.insert(ev.vm.clone(), *step);
            }
        }
        if let EventKind::Mutation {
            verb, kind, name, ..
        } = &ev.kind
        {
            if wave_done.is_none() && verb == "delete" && kind == "DataVolume" {
                deleted.insert(name.clone());
            }
        }
        match &ev.kind {
            EventKind::Phase {
                step: Step::Importing,
                progress: Some(p),
                ..
            } if ev.vm == "shop-db-01" && *p > 0.0 && !cancelled_sent => {
                cancelled_sent = true;
                Reply::Send(EngineRequest::CancelWave("w1".into()))
            }
            EventKind::WaveDone {
                verified,
                failed,
                cancelled,
                ..
            } if wave_done.is_none() => {
                wave_done = Some((*verified, *failed, *cancelled));
                Reply::Send(EngineRequest::StartWave("w1".into()))
            }
            EventKind::Mutation {
                verb, kind, name, ..
            } if wave_done.is_some()
                && verb == "power-off"
                && kind == "SourceVM"
                && name == "shop-app-01" =>
            {
                restarted = true;
                Reply::Done
            }
            _ => Reply::Wait,
        }
    })
    .await;
    let (verified, failed, cancelled) = wave_done.expect("the cancelled wave reported");
    assert_eq!(
        (verified, failed, cancelled),
        (1, 0, 2),
        "db was in its cutover and finished; app and web had not reached theirs"
    );
    assert!(restarted, "StartWave runs the cancelled VMs again");
    assert_eq!(last.get("shop-db-01"), Some(&Step::Verified));
    assert_eq!(last.get("shop-app-01"), Some(&Step::Cancelled));
    assert_eq!(last.get("shop-web-01"), Some(&Step::Cancelled));
    assert!(
        deleted.is_empty(),
        "nothing was imported before a cutover: {deleted:?}"
    );
    assert_eq!(
        r.controllers.world.find("shop-web-01").expect("src").power,
        PowerState::On,
        "a cancelled VM's source was never touched"
    );
    let vms = Api::<VirtualMachine>::namespaced(r.client(), "mig-quickstart");
    assert!(
        vms.get_opt("shop-web-01").await.expect("get").is_none(),
        "shop-web-01 was cancelled before its cutover: no VirtualMachine"
    );
}

/// A source VM vCenter does not know fails preflight by name, and since preflight must pass
/// for the whole wave before anything in it is created, nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_vm_vcenter_does_not_know_fails_preflight() {
    let plan = load_plan("plans/quickstart.toml");
    let mut sc = scenario(&plan, 4000.0, vec![]);
    sc.source_vms.retain(|v| v.name != "shop-web-01");
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let (s, events) = run_to_end(config(&plan, &r), LIMIT).await;
    let web = s
        .failed
        .iter()
        .find(|(v, _)| v == "shop-web-01")
        .expect("web failed");
    assert!(
        web.1
            .contains("source VM `shop-web-01` not found in vCenter"),
        "{web:?}"
    );
    assert_eq!(s.failed.len(), 3, "{s:?}");
    for (vm, why) in s.failed.iter().filter(|(v, _)| v != "shop-web-01") {
        assert!(
            why.contains("the preflight of shop-web-01 failed"),
            "{vm}: {why}"
        );
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Mutation { .. })),
        "nothing was created in a wave whose preflight failed"
    );
}

/// The events of every VM that failed, one per line, to read why.
fn story_of_failed(s: &RunSummary, events: &[wavelift::engine::EngineEvent]) -> String {
    s.failed
        .iter()
        .flat_map(|(vm, _)| {
            events
                .iter()
                .filter(move |e| e.vm == *vm)
                .map(|e| format!("{} {} {:?}", e.at_ms, e.vm, e.kind))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
