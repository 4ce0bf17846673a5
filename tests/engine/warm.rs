//! Warm migration end to end on the rehearsal cluster: the simulated vCenter takes
//! snapshots with CBT change IDs, the simulated CDI copies each checkpoint's changed
//! extents, and `disk-consistent` judges the booted disks against every write the source
//! made before it powered off. Killed mid-precopy and after the power-off, a run resumes
//! without a second snapshot, DataVolume or VM; cancel leaves no snapshot behind.

use crate::common;

use common::{config, interact, run_to_end, Reply};
use kube::api::{Api, ListParams};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::result::Outcome;
use wavelift::cluster::resources::{DataVolume, VirtualMachine};
use wavelift::engine::runtime::spawn;
use wavelift::engine::{EngineEvent, EngineRequest, EventKind, Step};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, WarmOps};

const LIMIT: Duration = Duration::from_secs(120);

/// The quickstart plan with its wave warm, a precopy round every 10 minutes.
fn warm_quickstart() -> Arc<Plan> {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "max_parallel_cutovers = 2\n",
            "max_parallel_cutovers = 2\nmigration = \"warm\"\nprecopy_interval = \"10m\"\n",
        );
    let checked = wavelift::plan::check_str(&text, "quickstart.toml");
    let problems: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    let plan = checked
        .plan
        .unwrap_or_else(|| panic!("invalid plan: {problems:?}"));
    assert!(plan
        .vms
        .iter()
        .all(|v| plan.migration_of(v) == wavelift::plan::Migration::Warm));
    Arc::new(plan)
}

/// A rehearsal whose clock starts 25 minutes before the window: two or three precopy
/// rounds happen before the first cutover may start.
async fn rehearsal(plan: &Plan, speed: f64) -> Rehearsal {
    let mut sc = Scenario::from_plan(plan);
    sc.speed = speed;
    let start = plan.waves[0].window.as_ref().expect("window").start.unix * 1000;
    sc.clock_start_ms = Some(start - 25 * 60_000);
    Rehearsal::start(sc, 0).await.expect("rehearsal")
}

fn vcenter(r: &Rehearsal) -> VsphereClient {
    VsphereClient::new(
        &r.world_url,
        None,
        Credentials {
            user: "sim-user".into(),
            password: Secret::new("sim-password"),
        },
    )
    .expect("client")
    .with_task_poll(Duration::from_millis(5))
}

/// Every snapshot on the plan's source VMs, by VM.
async fn snapshots(r: &Rehearsal, plan: &Plan) -> HashMap<String, Vec<String>> {
    let vc = vcenter(r);
    let mut out = HashMap::new();
    for vm in &plan.vms {
        let view = vc
            .warm_view(vm.name.as_str(), None)
            .await
            .expect("warm view");
        let names: Vec<String> = view.snapshots.into_iter().map(|s| s.name).collect();
        if !names.is_empty() {
            out.insert(vm.name.value.clone(), names);
        }
    }
    out
}

fn disk_consistent(events: &[EngineEvent]) -> Vec<(String, Outcome)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Check { check, outcome, .. } if check == "disk-consistent" => {
                Some((e.vm.clone(), *outcome))
            }
            _ => None,
        })
        .collect()
}

/// Mutations that created something, by `KIND/NAME`, counted.
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
            if verb == "create" && result.starts_with("created") {
                *m.entry(format!("{kind}/{name}")).or_insert(0) += 1;
            }
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_wave_verifies_every_vm_with_its_disks_consistent_and_no_snapshot_left() {
    let plan = warm_quickstart();
    let r = rehearsal(&plan, 300.0).await;
    let (s, events) = run_to_end(config(&plan, &r), LIMIT).await;
    assert_eq!(s.verified.len(), plan.vms.len(), "{s:?}");
    let dc = disk_consistent(&events);
    assert_eq!(dc.len(), plan.vms.len(), "{dc:?}");
    assert!(dc.iter().all(|(_, o)| *o == Outcome::Pass), "{dc:?}");
    // Each VM copied at least one precopy round before its cutover, then a final stage.
    for e in &events {
        if let EventKind::Cutover {
            migration,
            precopy_rounds,
            final_delta_bytes,
            ..
        } = &e.kind
        {
            assert_eq!(migration, "warm");
            assert!(*precopy_rounds >= 1, "{}: {precopy_rounds}", e.vm);
            // The final stage copied what the guest wrote since the last round: some, and
            // far less than the disk.
            let disk: u64 = plan
                .vm(&e.vm)
                .expect("planned")
                .disks
                .iter()
                .map(|d| d.size.bytes)
                .sum();
            let delta = final_delta_bytes.expect("vCenter reports the final delta");
            assert!(
                delta > 0 && delta < disk / 10,
                "{}: {delta} of {disk}",
                e.vm
            );
        }
    }
    // Between precopy rounds the VMs waited for the change window to open.
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Phase { step: Step::Precopy, status: wavelift::engine::Status::Waiting(w), .. }
            if w.contains("precopy round") && w.contains("change window"))));
    assert_eq!(
        snapshots(&r, &plan).await,
        HashMap::new(),
        "no snapshot is left"
    );
    // Each VM's cutover is recorded on its VirtualMachine for `verify`.
    let vms: Api<VirtualMachine> = Api::namespaced(r.client(), plan.meta.namespace.as_str());
    for vm in vms.list(&ListParams::default()).await.expect("vms").items {
        let text = vm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(wavelift::checks::report::ANN_CUTOVER))
            .unwrap_or_else(|| panic!("{:?} has no cutover record", vm.metadata.name));
        let rec: wavelift::checks::report::CutoverRecord =
            serde_json::from_str(text).expect("record");
        assert_eq!(rec.migration, "warm");
        assert!(rec.downtime_ms > 0 && rec.precopy_rounds >= 1, "{rec:?}");
    }
    let dvs: Api<DataVolume> = Api::namespaced(r.client(), plan.meta.namespace.as_str());
    for dv in dvs.list(&ListParams::default()).await.expect("list").items {
        assert_eq!(
            dv.spec.final_checkpoint,
            Some(true),
            "{:?}",
            dv.metadata.name
        );
        assert!(dv.spec.checkpoints.len() >= 2, "{:?}", dv.spec.checkpoints);
        assert_eq!(dv.spec.checkpoints[0].previous, "");
        // Later stages start from the previous snapshot's change ID, never from nothing.
        assert!(dv.spec.checkpoints[1..]
            .iter()
            .all(|c| !c.previous.is_empty()));
    }
}

/// Runs the engine until `kill` says so for an event, then aborts it (kill -9).
async fn run_until(
    plan: &Arc<Plan>,
    r: &Rehearsal,
    kill: impl Fn(&EngineEvent) -> bool,
) -> Vec<EngineEvent> {
    let (mut handle, task) = spawn(config(plan, r));
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, handle.events.recv())
            .await
            .expect("the kill point is reached in time");
        let Some(ev) = ev else { break };
        let stop = kill(&ev);
        seen.push(ev);
        if stop {
            break;
        }
    }
    task.abort();
    let _ = task.await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_run_killed_mid_precopy_and_after_power_off_resumes_without_duplicates() {
    let plan = warm_quickstart();
    let r = rehearsal(&plan, 300.0).await;
    let mut all = Vec::new();
    // Mid-precopy: right after the first checkpoint beyond the first was added.
    all.extend(
        run_until(&plan, &r, |e| {
            matches!(&e.kind, EventKind::Mutation { kind, result, .. }
                if kind == "DataVolume" && result.starts_with("checkpoint"))
        })
        .await,
    );
    // After a power-off, before the final stage.
    all.extend(
        run_until(&plan, &r, |e| {
            matches!(&e.kind, EventKind::Mutation { verb, result, .. }
                if verb == "power-off" && !result.starts_with("error"))
        })
        .await,
    );
    let (s, rest) = run_to_end(config(&plan, &r), LIMIT).await;
    all.extend(rest);
    assert_eq!(s.verified.len(), plan.vms.len(), "{s:?}");
    let twice: Vec<(String, usize)> = created(&all).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");
    assert_eq!(snapshots(&r, &plan).await, HashMap::new());
    let ns = plan.meta.namespace.as_str();
    let dvs: Api<DataVolume> = Api::namespaced(r.client(), ns);
    let disks: usize = plan.vms.iter().map(|v| v.disks.len()).sum();
    assert_eq!(
        dvs.list(&ListParams::default())
            .await
            .expect("dvs")
            .items
            .len(),
        disks
    );
    let vms: Api<VirtualMachine> = Api::namespaced(r.client(), ns);
    assert_eq!(
        vms.list(&ListParams::default())
            .await
            .expect("vms")
            .items
            .len(),
        plan.vms.len()
    );
    let dc = disk_consistent(&all);
    assert!(dc.iter().all(|(_, o)| *o == Outcome::Pass), "{dc:?}");
    // Every VM's downtime is known, also the one whose power-off the killed run requested:
    // its stamp was on its DataVolumes before the power-off went out.
    for vm in vms.list(&ListParams::default()).await.expect("vms").items {
        let rec: wavelift::checks::report::CutoverRecord = vm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(wavelift::checks::report::ANN_CUTOVER))
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_else(|| panic!("{:?} has no cutover record", vm.metadata.name));
        assert!(rec.downtime_ms > 0, "{rec:?}");
    }
    let powered_off_before_the_last_run: Vec<&str> = all
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::Mutation { verb, result, .. }
            if verb == "power-off" && !result.starts_with("error"))
        })
        .map(|e| e.vm.as_str())
        .collect();
    assert!(!powered_off_before_the_last_run.is_empty());
    assert!(!all.iter().any(|e| matches!(&e.kind,
        EventKind::Log { message, .. } if message.starts_with("downtime unknown"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_warm_wave_mid_precopy_leaves_no_snapshot_and_no_data_volume() {
    let plan = warm_quickstart();
    let r = rehearsal(&plan, 300.0).await;
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false;
    let wave = plan.waves[0].name.value.clone();
    let mut sent = false;
    interact(cfg, LIMIT, |ev| match &ev.kind {
        EventKind::Mutation { kind, result, .. }
            if !sent && kind == "DataVolume" && result == "created" =>
        {
            sent = true;
            Reply::Send(EngineRequest::CancelWave(wave.clone()))
        }
        EventKind::WaveDone { .. } if sent => Reply::Done,
        _ => Reply::Wait,
    })
    .await;
    assert_eq!(snapshots(&r, &plan).await, HashMap::new());
    let dvs: Api<DataVolume> = Api::namespaced(r.client(), plan.meta.namespace.as_str());
    assert!(dvs
        .list(&ListParams::default())
        .await
        .expect("dvs")
        .items
        .is_empty());
    // The sources were never touched.
    let vc = vcenter(&r);
    for vm in &plan.vms {
        let p = wavelift::source::SourceOps::power_state(&vc, vm.name.as_str(), None)
            .await
            .expect("power");
        assert_eq!(p, wavelift::source::SourcePower::On, "{}", vm.name.value);
    }
}
