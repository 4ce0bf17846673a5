//! Faults from a scenario, through the engine: an import that fails once recovers (CDI
//! restarts it); an import that always fails fails its VM with CDI's reason, and the VM that
//! waits for it fails too instead of waiting forever; a guest agent that never connects
//! fails the VM after the agent timeout; a source that keeps its IP blocks the cutover.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::probe::SimProber;
use wavelift::engine::runtime::{spawn, EngineConfig, RunSummary, AGENT_TIMEOUT};
use wavelift::plan::Plan;
use wavelift::sim_controllers::rehearsal::Rehearsal;
use wavelift::sim_controllers::scenario::{Fault, FaultKind, FaultMode, Scenario};
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, SourceOps};

fn quickstart() -> Arc<Plan> {
    Arc::new(
        wavelift::plan::check_file(std::path::Path::new("plans/quickstart.toml"))
            .expect("read")
            .plan
            .expect("valid"),
    )
}

fn fault(kind: FaultKind, vm: &str, mode: FaultMode) -> Fault {
    Fault {
        kind,
        vm: vm.into(),
        mode,
        factor: None,
    }
}

async fn run(
    plan: &Arc<Plan>,
    scenario: Scenario,
    agent_timeout: Duration,
    only: &[&str],
) -> (RunSummary, Rehearsal) {
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let creds = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let source: Arc<dyn SourceOps> =
        Arc::new(VsphereClient::new(&r.world_url, None, creds).expect("client"));
    let (mut handle, task) = spawn(EngineConfig {
        plan: plan.clone(),
        client: r.client(),
        source: Some(source),
        prober: Arc::new(SimProber::new(r.world_url.clone())),
        dry_run: false,
        only_vms: only.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        auto_waves: plan.waves.iter().map(|w| w.name.value.clone()).collect(),
        confirm_power_off: false,
        exit_when_done: true,
        agent_timeout,
    });
    let requests = handle.requests.clone();
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = handle.events.recv().await {
            v.push(e);
        }
        v
    });
    match tokio::time::timeout(Duration::from_secs(60), task).await {
        Ok(s) => (s.expect("join").expect("run"), r),
        Err(_) => {
            let _ = requests
                .send(wavelift::engine::EngineRequest::Shutdown)
                .await;
            let events = collect.await.expect("events");
            let last: Vec<String> = events
                .iter()
                .rev()
                .take(30)
                .map(|e| format!("{} {:?}", e.vm, e.kind))
                .collect();
            panic!("run did not end; last events:\n{}", last.join("\n"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_failures_once_recover_always_fail_and_dependents_fail() {
    let plan = quickstart();
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.faults.push(fault(
        FaultKind::ImportFailure,
        "shop-db-01",
        FaultMode::Once,
    ));
    sc.faults.push(fault(
        FaultKind::ImportFailure,
        "shop-app-01",
        FaultMode::Always,
    ));
    let (s, _r) = run(&plan, sc, AGENT_TIMEOUT, &[]).await;
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
    let plan = quickstart();
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.faults
        .push(fault(FaultKind::AgentNever, "shop-db-01", FaultMode::Once));
    let (s, _r) = run(&plan, sc, Duration::from_millis(500), &["shop-db-01"]).await;
    let (_, why) = s.failed.first().expect("failed");
    assert!(why.contains("guest agent not connected"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_creates_nothing() {
    let plan = quickstart();
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let creds = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let source: Arc<dyn SourceOps> =
        Arc::new(VsphereClient::new(&r.world_url, None, creds).expect("client"));
    let (mut handle, task) = spawn(EngineConfig {
        plan: plan.clone(),
        client: r.client(),
        source: Some(source),
        prober: Arc::new(SimProber::new(r.world_url.clone())),
        dry_run: true,
        only_vms: BTreeSet::new(),
        auto_waves: plan.waves.iter().map(|w| w.name.value.clone()).collect(),
        confirm_power_off: false,
        exit_when_done: true,
        agent_timeout: AGENT_TIMEOUT,
    });
    tokio::spawn(async move { while handle.events.recv().await.is_some() {} });
    let s = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("ends")
        .expect("join")
        .expect("run");
    assert_eq!(s.dry_run_ok.len(), 3, "{s:?}");
    let ns = plan.meta.namespace.as_str();
    use kube::api::{Api, ListParams};
    use wavelift::cluster::resources::{DataVolume, NetworkAttachmentDefinition, VirtualMachine};
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
        assert_eq!(
            src.power,
            wavelift::sim_controllers::scenario::PowerState::On,
            "a dry run powers nothing off"
        );
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
    let mut sc = Scenario::from_plan(&plan);
    // Slow enough that imports overlap (several progress ticks each), fast enough for CI.
    sc.speed = 200.0;
    sc.bandwidth_total = 64 << 30;
    let (s, r) = run(&plan, sc, AGENT_TIMEOUT, &[]).await;
    assert_eq!(s.verified.len(), 30, "{s:?}");
    let peak = r.controllers.imports.peak();
    assert!(peak <= limit, "{peak} imports at once, limit {limit}");
    assert!(peak >= 2, "imports ran one at a time (peak {peak})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_live_migration_is_reported_with_its_reason() {
    let plan = quickstart();
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.faults.push(fault(
        FaultKind::MigrationFailure,
        "shop-db-01",
        FaultMode::Once,
    ));
    let (s, r) = run(&plan, sc, AGENT_TIMEOUT, &["shop-db-01"]).await;
    assert_eq!(s.verified, vec!["shop-db-01".to_string()]);
    let vm = plan.vm("shop-db-01").expect("vm").clone();
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let prober: Arc<dyn wavelift::checks::probe::Prober> =
        Arc::new(SimProber::new(r.world_url.clone()));
    let o = wavelift::engine::migrate::migrate(
        r.client(),
        plan.clone(),
        &vm,
        prober,
        ev_tx,
        tx,
        Duration::from_secs(60),
    )
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
    let plan = Arc::new(
        wavelift::plan::check_file(std::path::Path::new("plans/payments-estate.toml"))
            .expect("read")
            .plan
            .expect("valid"),
    );
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 20000.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let creds = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let source: Arc<dyn SourceOps> =
        Arc::new(VsphereClient::new(&r.world_url, None, creds).expect("client"));
    let (mut handle, task) = spawn(EngineConfig {
        plan: plan.clone(),
        client: r.client(),
        source: Some(source),
        prober: Arc::new(SimProber::new(r.world_url.clone())),
        dry_run: false,
        only_vms: BTreeSet::new(),
        auto_waves: plan.waves.iter().map(|w| w.name.value.clone()).collect(),
        confirm_power_off: false,
        exit_when_done: true,
        agent_timeout: AGENT_TIMEOUT,
    });
    tokio::spawn(async move { while handle.events.recv().await.is_some() {} });
    let s = tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .expect("ends")
        .expect("join")
        .expect("run");
    assert_eq!(s.verified.len(), 40, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_retried_by_the_operator_completes_the_wave() {
    use wavelift::engine::{EngineRequest, EventKind, Status, Step};
    let plan = quickstart();
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.faults.push(fault(
        FaultKind::ImportFailure,
        "shop-db-01",
        FaultMode::UntilRetry,
    ));
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let creds = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let source: Arc<dyn SourceOps> =
        Arc::new(VsphereClient::new(&r.world_url, None, creds).expect("client"));
    let (mut handle, task) = spawn(EngineConfig {
        plan: plan.clone(),
        client: r.client(),
        source: Some(source),
        prober: Arc::new(SimProber::new(r.world_url.clone())),
        dry_run: false,
        only_vms: BTreeSet::new(),
        auto_waves: vec!["w1".into()],
        confirm_power_off: false,
        exit_when_done: false, // an operator is at the keyboard
        agent_timeout: AGENT_TIMEOUT,
    });
    let mut retried = false;
    let mut verified = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while verified.len() < 3 {
        let ev = tokio::time::timeout_at(deadline, handle.events.recv())
            .await
            .expect("progress within 60 s")
            .expect("engine alive");
        match &ev.kind {
            EventKind::Phase {
                step: Step::Importing,
                status: Status::Failed(why),
                ..
            } if ev.vm == "shop-db-01" => {
                assert!(why.contains("simulated import failure"), "{why}");
                assert!(!retried, "the retried import failed again");
                retried = true;
                handle
                    .requests
                    .send(EngineRequest::RetryVm("shop-db-01".into()))
                    .await
                    .expect("retry");
            }
            EventKind::Phase {
                step: Step::Verified,
                ..
            } => {
                verified.insert(ev.vm.clone());
            }
            _ => {}
        }
    }
    assert!(retried, "the fault never fired");
    handle
        .requests
        .send(EngineRequest::Shutdown)
        .await
        .expect("shutdown");
    let _ = task.await;
}
