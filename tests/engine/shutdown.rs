//! Graceful power-off and warm migration's refusals and quiescing, on the rehearsal
//! cluster: the guest is asked to shut down through VMware Tools and stopped hard only when
//! the plan allows; warm is refused by name where it cannot work; a quiesce fault fails the
//! VM unless `allow_unquiesced` allows one unquiesced retry.

use crate::common;

use common::{config, run_to_end};
use std::sync::Arc;
use std::time::Duration;
use wavelift::engine::{EngineEvent, EventKind};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{Fault, FaultKind, FaultMode, Scenario};

const LIMIT: Duration = Duration::from_secs(90);

/// The quickstart plan with `edit` applied to its text.
fn quickstart_with(edit: impl Fn(String) -> String) -> Arc<Plan> {
    let text = edit(std::fs::read_to_string("plans/quickstart.toml").expect("quickstart"));
    let checked = wavelift::plan::check_str(&text, "quickstart.toml");
    let problems: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    Arc::new(
        checked
            .plan
            .unwrap_or_else(|| panic!("invalid plan: {problems:?}")),
    )
}

fn warm(text: String) -> String {
    text.replace(
        "max_parallel_cutovers = 2\n",
        "max_parallel_cutovers = 2\nmigration = \"warm\"\nprecopy_interval = \"10m\"\n",
    )
}

fn source_line(text: String, line: &str) -> String {
    text.replace(
        "power_off = \"vsphere-api\"\n",
        &format!("power_off = \"vsphere-api\"\n{line}\n"),
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
    sc: Scenario,
) -> (wavelift::engine::runtime::RunSummary, Vec<EngineEvent>) {
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(plan, &r);
    cfg.ignore_window = true;
    run_to_end(cfg, LIMIT).await
}

fn scenario(plan: &Plan, faults: Vec<Fault>) -> Scenario {
    let mut sc = Scenario::from_plan(plan);
    sc.speed = 400.0;
    sc.faults = faults;
    sc
}

/// `(verb, result)` of the power mutations of `vm`, in order.
fn power_ops(events: &[EngineEvent], vm: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.vm == vm)
        .filter_map(|e| match &e.kind {
            EventKind::Mutation { verb, result, .. }
                if verb == "power-off" || verb == "shutdown-guest" =>
            {
                Some((verb.clone(), result.clone()))
            }
            _ => None,
        })
        .collect()
}

fn consistent_copy(events: &[EngineEvent], vm: &str) -> Option<bool> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::Cutover {
            consistent_copy, ..
        } if e.vm == vm => Some(*consistent_copy),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_is_shut_down_and_stopped_hard_only_without_tools() {
    // Default `guest-then-hard`: db has no VMware Tools, the others do.
    let plan = quickstart_with(|t| t);
    let sc = scenario(
        &plan,
        vec![fault(
            FaultKind::ToolsUnavailable,
            "shop-db-01",
            FaultMode::Always,
        )],
    );
    let (s, events) = run(&plan, sc).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    let app = power_ops(&events, "shop-app-01");
    assert_eq!(
        app,
        vec![
            ("shutdown-guest".to_string(), "requested".to_string()),
            ("power-off".to_string(), "guest shut down".to_string())
        ]
    );
    assert_eq!(consistent_copy(&events, "shop-app-01"), Some(true));
    let db = power_ops(&events, "shop-db-01");
    assert_eq!(db.len(), 2, "{db:?}");
    assert!(db[0].1.contains("ToolsUnavailable"), "{db:?}");
    assert!(db[1].1.starts_with("hard stop"), "{db:?}");
    assert_eq!(consistent_copy(&events, "shop-db-01"), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_guest_fails_a_vm_without_tools_by_name_and_hard_stops_at_once() {
    let plan = quickstart_with(|t| source_line(t, "shutdown = \"guest\""));
    let sc = scenario(
        &plan,
        vec![fault(
            FaultKind::ToolsUnavailable,
            "shop-web-01",
            FaultMode::Always,
        )],
    );
    let (s, _) = run(&plan, sc).await;
    let web = s.failed.iter().find(|(vm, _)| vm == "shop-web-01");
    assert!(
        web.is_some_and(|(_, why)| why.contains("ToolsUnavailable")),
        "{s:?}"
    );
    assert!(s.verified.contains(&"shop-db-01".to_string()), "{s:?}");
    // Hard: no guest shutdown is asked for.
    let plan = quickstart_with(|t| source_line(t, "shutdown = \"hard\""));
    let (s, events_hard) = run(&plan, scenario(&plan, vec![])).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    let ops = power_ops(&events_hard, "shop-db-01");
    assert_eq!(
        ops,
        vec![("power-off".to_string(), "hard stop".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_is_refused_by_name_where_it_cannot_work() {
    let plan = quickstart_with(warm);
    // CBT off, a snapshot left from patching, and an old vCenter: each refused by name.
    let mut sc = scenario(
        &plan,
        vec![fault(
            FaultKind::CbtDisabled,
            "shop-db-01",
            FaultMode::Always,
        )],
    );
    for v in &mut sc.source_vms {
        if v.name == "shop-app-01" {
            v.snapshots = vec!["pre-patch".into()];
        }
    }
    let (s, _) = run(&plan, sc).await;
    let why = |vm: &str| common::why_failed(&s, vm);
    assert!(why("shop-db-01").contains("warm-cbt-off"), "{s:?}");
    assert!(
        why("shop-app-01").contains("warm-has-snapshots")
            && why("shop-app-01").contains("pre-patch"),
        "{s:?}"
    );
    assert!(
        s.verified.is_empty(),
        "nothing starts while the wave's preflight fails: {s:?}"
    );

    let mut sc = scenario(&plan, vec![]);
    sc.vcenter_version = "7.0.3".into();
    let (s, _) = run(&plan, sc).await;
    assert_eq!(s.failed.len(), 3, "{s:?}");
    assert!(
        s.failed.iter().all(|(_, w)| w.contains("warm-no-vim-json")),
        "{s:?}"
    );
    // Cold keeps working on that vCenter: power state and power-off over the Automation
    // REST API, no VI/JSON needed.
    let cold = quickstart_with(|t| t);
    let mut sc = scenario(&cold, vec![]);
    sc.vcenter_version = "7.0.3".into();
    let (s, _) = run(&cold, sc).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");

    // With `enable_cbt`, wavelift turns CBT on and the VM migrates warm.
    let plan = quickstart_with(|t| source_line(warm(t), "enable_cbt = true"));
    let sc = scenario(
        &plan,
        vec![fault(
            FaultKind::CbtDisabled,
            "shop-db-01",
            FaultMode::Always,
        )],
    );
    let (s, events) = run(&plan, sc).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    assert!(events.iter().any(|e| e.vm == "shop-db-01"
        && matches!(&e.kind, EventKind::Mutation { verb, result, .. } if verb == "enable-cbt" && result == "done")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiesce_fault_fails_the_vm_unless_an_unquiesced_retry_is_allowed() {
    let plan = quickstart_with(warm);
    let faults = || {
        vec![fault(
            FaultKind::SnapshotFailure,
            "shop-web-01",
            FaultMode::Always,
        )]
    };
    let (s, _) = run(&plan, scenario(&plan, faults())).await;
    let web = s.failed.iter().find(|(vm, _)| vm == "shop-web-01");
    assert!(
        web.is_some_and(|(_, why)| why.contains("ApplicationQuiesceFault")),
        "{s:?}"
    );
    let plan = quickstart_with(|t| source_line(warm(t), "allow_unquiesced = true"));
    let (s, events) = run(&plan, scenario(&plan, faults())).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    assert!(events.iter().any(|e| e.vm == "shop-web-01"
        && matches!(&e.kind, EventKind::Mutation { kind, result, .. }
            if kind == "VirtualMachineSnapshot" && result.contains("crash-consistent"))));
}
