//! The engine end to end on the rehearsal cluster: real kube-rs client over HTTP, simulated
//! CDI/KubeVirt, the vSphere REST endpoint for power-off and the sim network for the
//! duplicate-IP guard and checks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::probe::SimProber;
use wavelift::engine::runtime::{spawn, EngineConfig, AGENT_TIMEOUT};
use wavelift::engine::{EventKind, Step};
use wavelift::plan::Plan;
use wavelift::sim_controllers::rehearsal::Rehearsal;
use wavelift::sim_controllers::scenario::Scenario;
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, SourceOps};

fn plan(path: &str) -> Plan {
    wavelift::plan::check_file(std::path::Path::new(path))
        .expect("read")
        .plan
        .expect("valid")
}

fn config(plan: &Arc<Plan>, r: &Rehearsal) -> EngineConfig {
    let creds = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let source: Arc<dyn SourceOps> =
        Arc::new(VsphereClient::new(&r.world_url, None, creds).expect("client"));
    EngineConfig {
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_wave_reaches_verified() {
    let plan = Arc::new(plan("plans/quickstart.toml"));
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 2000.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let (mut handle, task) = spawn(config(&plan, &r));
    let requests = handle.requests.clone();
    let collect = tokio::spawn(async move {
        let mut evs = Vec::new();
        while let Some(e) = handle.events.recv().await {
            evs.push(e);
        }
        evs
    });
    let summary = match tokio::time::timeout(Duration::from_secs(60), task).await {
        Ok(s) => s.expect("join").expect("run"),
        Err(_) => {
            let _ = requests
                .send(wavelift::engine::EngineRequest::Shutdown)
                .await;
            let events = collect.await.expect("events");
            let last: Vec<String> = events
                .iter()
                .rev()
                .take(40)
                .map(|e| format!("{} {:?}", e.vm, e.kind))
                .collect();
            panic!("run did not end; last events:\n{}", last.join("\n"));
        }
    };
    let events = collect.await.expect("events");
    assert_eq!(
        summary.verified.len(),
        3,
        "{summary:?}\n{:#?}",
        events.iter().rev().take(20).collect::<Vec<_>>()
    );
    // `after`: shop-app-01 is verified only after shop-db-01, shop-web-01 after shop-app-01.
    let pos = |vm: &str| {
        events
            .iter()
            .position(|e| {
                e.vm == vm
                    && matches!(
                        e.kind,
                        EventKind::Phase {
                            step: Step::Verified,
                            ..
                        }
                    )
            })
            .unwrap_or_else(|| panic!("{vm} never verified"))
    };
    assert!(pos("shop-db-01") < pos("shop-app-01") && pos("shop-app-01") < pos("shop-web-01"));
    // Every check passed and every mutation is in the journal.
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Check { outcome, .. } if outcome == "pass")));
    let not_passed: Vec<_> = events.iter().filter(|e| matches!(&e.kind, EventKind::Check { outcome, detail, .. } if outcome != "pass" && !(outcome == "skipped" && detail.contains("not HTTP")))).collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    let creates = events.iter().filter(|e| matches!(&e.kind, EventKind::Mutation { verb, result, .. } if verb == "create" && result == "created")).count();
    assert_eq!(creates, 3 /* DVs */ + 3 /* VMs */);
    // The sources are off; the IPs now answer from the migrated VMs.
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        let src = r.controllers.world.find(vm).expect("source");
        assert_eq!(
            src.power,
            wavelift::sim_controllers::scenario::PowerState::Off,
            "{vm}"
        );
    }
    let a = r
        .controllers
        .world
        .probe(&r.controllers.stores.vmis, "192.0.2.15", None);
    assert_eq!(a.result, "reachable", "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_after_cutover_keeps_the_vm_reachable() {
    let plan = Arc::new(plan("plans/quickstart.toml"));
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 2000.0;
    scenario.migration_seconds = 600.0; // 0.3 s real: long enough for a few probes
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = ["shop-db-01".to_string()].into_iter().collect();
    let (mut handle, task) = spawn(cfg);
    tokio::spawn(async move { while handle.events.recv().await.is_some() {} });
    let summary = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("ends")
        .expect("join")
        .expect("run");
    assert_eq!(summary.verified, vec!["shop-db-01".to_string()]);
    let vm = plan.vm("shop-db-01").expect("vm").clone();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let phases = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some((p, _, _)) = rx.recv().await {
            v.push(p);
        }
        v
    });
    let final_event = tokio::spawn(async move { ev_rx.recv().await });
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
    .expect("migration");
    assert_eq!(o.phase, "Succeeded", "{o:?}");
    assert_ne!(o.source_node, o.target_node);
    assert!(o.sent_probes >= 2, "{o:?}");
    assert_eq!(
        o.lost_probes, 0,
        "an L2 VM stays reachable while it live-migrates: {o:?}"
    );
    let phases = phases.await.expect("phases");
    assert_eq!(phases.last().map(String::as_str), Some("Succeeded"));
    assert!(phases.iter().any(|p| p == "TargetReady"), "{phases:?}");
    let ev = final_event.await.expect("join").expect("final event");
    assert!(
        matches!(ev.kind, EventKind::Migration { sent_probes, .. } if sent_probes as u64 == o.sent_probes)
    );
}
