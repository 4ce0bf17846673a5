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
        auto_waves: vec!["w1".into()],
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
