//! The engine end to end on the rehearsal cluster: real kube-rs client over HTTP, simulated
//! CDI/KubeVirt, the vSphere REST endpoint for power-off and the sim network for the
//! duplicate-IP guard and checks.

use crate::common;

use common::{config, load_plan, run_to_end};
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::probe::SimProber;
use wavelift::checks::result::Outcome;
use wavelift::engine::{EventKind, Step};
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{PowerState, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_wave_reaches_verified() {
    let plan = load_plan("plans/quickstart.toml");
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 2000.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let (summary, events) = run_to_end(config(&plan, &r), Duration::from_secs(60)).await;
    assert_eq!(summary.verified.len(), 3, "{summary:?}");
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
    // Every check passed (the sim network does not model HTTP: those are skipped, saying so).
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Check { outcome, .. } if *outcome == Outcome::Pass)));
    let not_passed: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::Check { outcome, detail, .. }
                if *outcome != Outcome::Pass && !(*outcome == Outcome::Skipped && detail.contains("not HTTP")))
        })
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    // Every mutation is in the journal: one create per DataVolume and per VM.
    let creates = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Mutation { verb, result, .. } if verb == "create" && result == "created"))
        .count();
    assert_eq!(creates, 3 + 3);
    // The sources are off; the IPs now answer from the migrated VMs.
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        let src = r.controllers.world.find(vm).expect("source");
        assert_eq!(src.power, PowerState::Off, "{vm}");
    }
    let a = r.controllers.world.probe("192.0.2.15", None);
    assert_eq!(a.result, "reachable", "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_after_cutover_keeps_the_vm_reachable() {
    let plan = load_plan("plans/quickstart.toml");
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 2000.0;
    scenario.migration_seconds = 600.0; // 0.3 s real: long enough for a few probes
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = ["shop-db-01".to_string()].into_iter().collect();
    let (summary, _) = run_to_end(cfg, Duration::from_secs(60)).await;
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
    assert_eq!(phases.last().map(|p| p.as_str()), Some("Succeeded"));
    assert!(phases.iter().any(|p| p == "TargetReady"), "{phases:?}");
    let ev = final_event.await.expect("join").expect("final event");
    assert!(
        matches!(ev.kind, EventKind::Migration { sent_probes, .. } if sent_probes as u64 == o.sent_probes)
    );
}
