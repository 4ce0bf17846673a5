//! Resume: the engine is killed (its task aborted: all its memory gone, no shutdown) at
//! several points of a rehearsal and started again on the same cluster. Nothing is created
//! twice and every VM reaches Verified.

use crate::common;

use common::{config, load_plan, run_to_end};
use kube::api::{Api, ListParams};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wavelift::cluster::resources::{DataVolume, VirtualMachine};
use wavelift::engine::runtime::spawn;
use wavelift::engine::{EngineEvent, EventKind, Step};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

/// Decides, per event, whether to kill the engine now.
type KillPoint = Box<dyn Fn(&EngineEvent) -> bool>;

/// Runs the engine until `kill_after` returns true for an event, then aborts it.
async fn run_until(
    plan: &Arc<Plan>,
    r: &Rehearsal,
    kill_after: impl Fn(&EngineEvent) -> bool,
) -> Vec<EngineEvent> {
    let (mut handle, task) = spawn(config(plan, r));
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ev = tokio::time::timeout_at(deadline, handle.events.recv())
            .await
            .expect("the kill point is reached within 60 s");
        let Some(ev) = ev else { break };
        let stop = kill_after(&ev);
        seen.push(ev);
        if stop {
            break;
        }
    }
    task.abort(); // kill -9: no cleanup, no graceful shutdown
    let _ = task.await;
    seen
}

fn created(events: &[EngineEvent]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in events {
        if let EventKind::Mutation {
            verb,
            kind,
            name,
            result,
            ..
        } = &e.kind
        {
            if verb == "create" && result == "created" {
                *m.entry(format!("{kind}/{name}")).or_insert(0) += 1;
            }
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_several_points_resumes_without_duplicates() {
    let plan = load_plan("plans/quickstart.toml");
    let mut scenario = Scenario::from_plan(&plan);
    scenario.speed = 400.0;
    let r = Rehearsal::start(scenario, 0).await.expect("rehearsal");
    let mut all: Vec<EngineEvent> = Vec::new();
    // Kill points: mid-import, right after the first VM was created, while booting/verifying.
    let points: Vec<KillPoint> = vec![
        Box::new(
            |e| matches!(&e.kind, EventKind::Phase { step: Step::Importing, progress: Some(p), .. } if *p > 0.2),
        ),
        Box::new(
            |e| matches!(&e.kind, EventKind::Mutation { kind, result, .. } if kind == "VirtualMachine" && result == "created"),
        ),
        Box::new(|e| {
            matches!(
                &e.kind,
                EventKind::Phase {
                    step: Step::Verified,
                    ..
                }
            )
        }),
    ];
    for p in points {
        all.extend(run_until(&plan, &r, p).await);
    }
    let (summary, events) = run_to_end(config(&plan, &r), Duration::from_secs(60)).await;
    all.extend(events);
    assert_eq!(summary.verified.len(), 3, "{summary:?}");
    for (obj, n) in created(&all) {
        assert_eq!(n, 1, "{obj} was created {n} times");
    }
    // The cluster holds exactly one DataVolume per disk and one VM per planned VM.
    let ns = plan.meta.namespace.as_str();
    let dvs = Api::<DataVolume>::namespaced(r.client(), ns)
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(dvs.items.len(), 3);
    let vms = Api::<VirtualMachine>::namespaced(r.client(), ns)
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(vms.items.len(), 3);
}
