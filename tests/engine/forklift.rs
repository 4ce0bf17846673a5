//! The Forklift backend (`[plan] backend = "forklift"`) against the rehearsal cluster's
//! simulated Forklift, through the real kube-rs client over HTTP: preflight writes the
//! Providers, maps and Plans with `fieldValidation=Strict` and waits for Forklift's own
//! validation (Ready, or Critical conditions named), refuses a Forklift whose Plan CRD lacks
//! `targetPowerState`, and persists nothing under `--dry-run`.
//!
//! The engine driving Forklift: a wave end to end to Verified with checks, cancel of one VM,
//! retry after a conversion failure, resume mid-Migration, the Windows guest on both
//! backends, `plans/forklift-estate.toml` rehearsed, and (ignored: a measurement) the API
//! requests per VM of a 40-VM wave.

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use wavelift::cluster::forklift::{self as fk, SourceConn};
use wavelift::engine::forklift_preflight::{self as pf, Verdict};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret};

const LIMIT: Duration = Duration::from_secs(60);

fn quickstart_forklift(source_network: &str, extra_plan_keys: &str) -> Arc<Plan> {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replacen(
            "network_model = \"l2\"",
            &format!("network_model = \"l2\"\nbackend = \"forklift\"\n{extra_plan_keys}"),
            1,
        )
        .replacen(
            "owner = \"netsec\"",
            &format!("owner = \"netsec\"\nsource_network = \"{source_network}\""),
            1,
        );
    let checked = wavelift::plan::check_str(&text, "quickstart.toml");
    let problems: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    Arc::new(
        checked
            .plan
            .unwrap_or_else(|| panic!("invalid plan: {problems:?}")),
    )
}

fn creds() -> Credentials {
    Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    }
}

/// The simulated vCenter's SDK endpoint is the API's own address (plain HTTP inside the
/// sim: its "certificate" is a fixture; the sim checks that `ca.crt` is there).
fn sim_conn(r: &Rehearsal) -> SourceConn {
    SourceConn {
        url: format!("https://{}/sdk", r.sim.addr),
        ca_pem: fk::pem(b"rehearsal: the simulated vCenter has no certificate"),
    }
}

/// Each VM's managed object id, asked of the simulated vCenter.
async fn ids(plan: &Plan, r: &Rehearsal) -> HashMap<String, String> {
    let vc = VsphereClient::new(&r.world_url, None, creds()).expect("vsphere client");
    let mut out = HashMap::new();
    for vm in &plan.vms {
        let id = vc.find_vm(vm.name.as_str(), None).await.expect("moref");
        assert!(
            id.starts_with("vm-"),
            "a managed object id, not a UUID: {id}"
        );
        out.insert(vm.name.value.clone(), id);
    }
    out
}

async fn count(r: &Rehearsal, ns: &str, kind: &str) -> usize {
    let ar: ApiResource = if kind == "Secret" {
        ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
        }
    } else {
        pf::resource(kind)
    };
    let api: Api<DynamicObject> = Api::namespaced_with(r.client(), ns, &ar);
    api.list(&ListParams::default().labels("wavelift.io/plan=quickstart"))
        .await
        .expect("list")
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_creates_plans_without_migrations_and_waits_for_forklift_ready() {
    let plan = quickstart_forklift("VLAN-210", "");
    let r = Rehearsal::start(Scenario::from_plan(&plan), 0)
        .await
        .expect("rehearsal");
    let ids = ids(&plan, &r).await;
    let conn = sim_conn(&r);
    let c = creds();
    let rep = pf::preflight(&r.client(), &plan, Some((&c, &conn)), &ids, false, LIMIT).await;
    assert!(rep.global.is_empty(), "{:?}", rep.global);
    assert!(rep.validation_ran);
    let groups = fk::plan_groups(&plan);
    assert!(!groups.is_empty());
    for g in &groups {
        assert_eq!(
            rep.plans.get(&g.name),
            Some(&Verdict::Ready),
            "{:?}",
            rep.plans
        );
    }
    let ns = plan.meta.namespace.as_str();
    assert_eq!(count(&r, ns, "Plan").await, groups.len());
    assert_eq!(
        count(&r, ns, "Migration").await,
        0,
        "a Plan alone moves nothing"
    );
    // A second preflight (a restarted run) applies the same objects: nothing new.
    let again = pf::preflight(&r.client(), &plan, Some((&c, &conn)), &ids, false, LIMIT).await;
    assert!(again.global.is_empty(), "{:?}", again.global);
    assert_eq!(count(&r, ns, "Plan").await, groups.len());
    assert_eq!(count(&r, ns, "Provider").await, 2);
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_network_is_refused_in_preflight_naming_forklifts_condition() {
    // The plan maps port group VLAN-210; in vCenter shop-db-01's NIC is on `DB-Trunk`.
    let plan = quickstart_forklift("VLAN-210", "");
    let mut sc = Scenario::from_plan(&plan);
    let db = sc
        .source_vms
        .iter_mut()
        .find(|v| v.name == "shop-db-01")
        .expect("source vm");
    db.nics[0].network = Some("DB-Trunk".into());
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let ids = ids(&plan, &r).await;
    let conn = sim_conn(&r);
    let c = creds();
    let rep = pf::preflight(&r.client(), &plan, Some((&c, &conn)), &ids, false, LIMIT).await;
    assert!(rep.validation_ran, "{:?}", rep.global);
    let groups = fk::plan_groups(&plan);
    let problems = rep.problems_of(&groups, "shop-db-01");
    assert!(
        problems.iter().any(|p| p.contains("VMNetworksNotMapped")),
        "{problems:?}"
    );
    // The others are in Plans of their own (max_parallel_cutovers = 2 batches) or share
    // shop-db-01's: a Plan is refused whole, as Forklift validates it whole.
    let blocked: Vec<&String> = rep
        .plans
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Blocked(_)))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(blocked.len(), 1, "{:?}", rep.plans);
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_persists_nothing_and_says_forklift_did_not_validate() {
    let plan = quickstart_forklift("VLAN-210", "");
    let r = Rehearsal::start(Scenario::from_plan(&plan), 0)
        .await
        .expect("rehearsal");
    let ids = ids(&plan, &r).await;
    let conn = sim_conn(&r);
    let c = creds();
    let rep = pf::preflight(&r.client(), &plan, Some((&c, &conn)), &ids, true, LIMIT).await;
    assert!(rep.global.is_empty(), "{:?}", rep.global);
    assert!(!rep.validation_ran);
    assert!(
        rep.notes.iter().any(|n| n.contains("did not run")),
        "{:?}",
        rep.notes
    );
    let ns = plan.meta.namespace.as_str();
    for kind in [
        "Secret",
        "Provider",
        "NetworkMap",
        "StorageMap",
        "Plan",
        "Migration",
    ] {
        assert_eq!(
            count(&r, ns, kind).await,
            0,
            "{kind} persisted under --dry-run"
        );
    }
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forklift_without_target_power_state_or_no_forklift_is_refused() {
    let plan = quickstart_forklift("VLAN-210", "");
    let mut sc = Scenario::from_plan(&plan);
    sc.forklift.version = "2.10.3".into();
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let ids = ids(&plan, &r).await;
    let conn = sim_conn(&r);
    let c = creds();
    let rep = pf::preflight(&r.client(), &plan, Some((&c, &conn)), &ids, false, LIMIT).await;
    assert!(
        rep.global
            .iter()
            .any(|p| p.contains("targetPowerState") && p.contains("2.10.4")),
        "{:?}",
        rep.global
    );
    assert_eq!(
        count(&r, plan.meta.namespace.as_str(), "Plan").await,
        0,
        "nothing written"
    );
    r.sim.shutdown().await;

    let mut sc = Scenario::from_plan(&plan);
    sc.forklift.installed = false;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let rep = pf::preflight(&r.client(), &plan, Some((&c, &conn)), &ids, false, LIMIT).await;
    assert!(
        rep.global.iter().any(|p| p.contains("not installed")),
        "{:?}",
        rep.global
    );
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_with_wrong_credentials_blocks_by_forklifts_condition() {
    let plan = quickstart_forklift("VLAN-210", "");
    let r = Rehearsal::start(Scenario::from_plan(&plan), 0)
        .await
        .expect("rehearsal");
    let ids = ids(&plan, &r).await;
    let conn = sim_conn(&r);
    let bad = Credentials {
        user: "sim-user".into(),
        password: Secret::new("wrong"),
    };
    let rep = pf::preflight(&r.client(), &plan, Some((&bad, &conn)), &ids, false, LIMIT).await;
    assert!(
        rep.global
            .iter()
            .any(|p| p.contains("ConnectionAuthFailed")),
        "{:?}",
        rep.global
    );
    assert!(!rep.validation_ran);
    r.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The engine drives Forklift: Migrations per Plan, progress, controls, resume.

use crate::common::{config, run_to_end};
use wavelift::engine::{EngineEvent, EventKind, Step};

/// The Forklift step names the run's phase events carried.
fn backend_steps(events: &[EngineEvent], vm: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events.iter().filter(|e| e.vm == vm) {
        if let EventKind::Phase {
            backend_step: Some(s),
            ..
        } = &e.kind
        {
            if out.last() != Some(s) {
                out.push(s.clone());
            }
        }
    }
    out
}

fn sped(plan: &Plan) -> Scenario {
    let mut sc = Scenario::from_plan(plan);
    sc.speed = 2000.0;
    sc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forklift_wave_goes_end_to_end_to_verified_with_checks() {
    let plan = quickstart_forklift("VLAN-210", "");
    let r = Rehearsal::start(sped(&plan), 0).await.expect("rehearsal");
    let (summary, events) = run_to_end(config(&plan, &r), Duration::from_secs(120)).await;
    assert_eq!(summary.verified.len(), 3, "{summary:?}");
    // `after` still orders the VMs: each is in a Plan of its own `after` depth, whose
    // Migration is created only once its dependency is verified.
    let first = |vm: &str, f: &dyn Fn(&EngineEvent) -> bool| {
        events
            .iter()
            .position(|e| e.vm == vm && f(e))
            .unwrap_or_else(|| panic!("{vm}: not found"))
    };
    let verified = |e: &EngineEvent| {
        matches!(
            e.kind,
            EventKind::Phase {
                step: Step::Verified,
                ..
            }
        )
    };
    let migration_created = |e: &EngineEvent| matches!(&e.kind, EventKind::Mutation { verb, kind, .. } if verb == "create" && kind == "Migration");
    let trail: Vec<String> = events
        .iter()
        .filter(|e| verified(e) || migration_created(e))
        .map(|e| format!("{} {:?}", e.vm, e.kind))
        .collect();
    assert!(
        first("shop-db-01", &verified) < first("shop-app-01", &migration_created),
        "{trail:#?}"
    );
    assert!(first("shop-app-01", &verified) < first("shop-web-01", &migration_created));
    // Forklift's own steps reached the phase events (cold: virt-v2v).
    let steps = backend_steps(&events, "shop-db-01");
    for s in ["Initialize", "DiskTransferV2v", "VirtualMachineCreation"] {
        assert!(steps.iter().any(|x| x == s), "{steps:?}");
    }
    // Every check passed; wavelift labelled and started the VM Forklift created halted.
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::Check { outcome, .. } if *outcome == wavelift::checks::result::Outcome::Pass)
    ));
    for verb in ["label", "start"] {
        let n = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Mutation { verb: v, .. } if v == verb))
            .count();
        assert_eq!(n, 3, "{verb}");
    }
    let ns = plan.meta.namespace.as_str();
    let groups = fk::plan_groups(&plan);
    assert_eq!(count(&r, ns, "Plan").await, groups.len());
    assert_eq!(
        count(&r, ns, "Migration").await,
        groups.len(),
        "one Migration per Plan"
    );
    r.sim.shutdown().await;
}

use crate::common::{interact, Reply};
use wavelift::engine::{EngineRequest, Status};
use wavelift::sim::controllers::scenario::{Fault, FaultKind, FaultMode, PowerState};

/// quickstart on Forklift, edited by `edit` (applied to the plan text first).
fn forklift_plan(edit: impl Fn(String) -> String) -> Arc<Plan> {
    let text = edit(std::fs::read_to_string("plans/quickstart.toml").expect("quickstart"))
        .replacen(
            "network_model = \"l2\"",
            "network_model = \"l2\"\nbackend = \"forklift\"",
            1,
        )
        .replacen(
            "owner = \"netsec\"",
            "owner = \"netsec\"\nsource_network = \"VLAN-210\"",
            1,
        );
    let checked = wavelift::plan::check_str(&text, "quickstart.toml");
    let problems: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    Arc::new(
        checked
            .plan
            .unwrap_or_else(|| panic!("invalid plan: {problems:?}")),
    )
}

/// No `after`: shop-db-01 and shop-app-01 share a Forklift Plan (cutover batches of 2),
/// shop-web-01 has its own.
fn no_after(t: String) -> String {
    t.lines()
        .filter(|l| !l.trim_start().starts_with("after ="))
        .collect::<Vec<_>>()
        .join("\n")
}

fn phase_of<'e>(e: &'e EngineEvent, vm: &str) -> Option<(&'e Step, &'e Status, Option<&'e str>)> {
    match &e.kind {
        EventKind::Phase {
            step,
            status,
            backend_step,
            ..
        } if e.vm == vm => Some((step, status, backend_step.as_deref())),
        _ => None,
    }
}

async fn migrations(r: &Rehearsal, ns: &str) -> Vec<serde_json::Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(r.client(), ns, &pf::resource("Migration"));
    let mut v: Vec<serde_json::Value> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).expect("json"))
        .collect();
    v.sort_by_key(|m| {
        m["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_a_conversion_failure_is_a_new_migration_cancelling_the_plans_other_vms() {
    let plan = forklift_plan(no_after);
    let groups = fk::plan_groups(&plan);
    let shared = groups
        .iter()
        .find(|g| g.vms.contains(&"shop-db-01".to_string()))
        .expect("db's Plan");
    assert_eq!(shared.vms, vec!["shop-db-01", "shop-app-01"]);
    let mut sc = sped(&plan);
    sc.faults.push(Fault {
        kind: FaultKind::ConversionFailure,
        vm: "shop-db-01".into(),
        mode: FaultMode::Once,
        factor: None,
    });
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false;
    let mut failed_why = None;
    let mut verified = BTreeSet::new();
    interact(cfg, Duration::from_secs(120), |e| {
        if let Some((step, status, _)) = phase_of(e, &e.vm) {
            if *step == Step::Verified {
                verified.insert(e.vm.clone());
            }
            if let Status::Failed(why) = status {
                assert_eq!(e.vm, "shop-db-01", "{why}");
                if failed_why.is_none() {
                    failed_why = Some(why.clone());
                    return Reply::Send(EngineRequest::RetryVm(e.vm.clone()));
                }
            }
        }
        if verified.len() == 3 {
            Reply::Done
        } else {
            Reply::Wait
        }
    })
    .await;
    let why = failed_why.expect("shop-db-01 failed first");
    assert!(
        why.starts_with("Forklift: "),
        "Forklift's step and reason: {why}"
    );
    let ms = migrations(&r, plan.meta.namespace.as_str()).await;
    let names: Vec<&str> = ms
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    let m2 = fk::migration_name(&shared.name, 2);
    assert!(names.contains(&m2.as_str()), "{names:?}");
    assert_eq!(
        names.len(),
        groups.len() + 1,
        "one retry Migration: {names:?}"
    );
    let retry = ms
        .iter()
        .find(|m| m["metadata"]["name"] == m2.as_str())
        .expect("m2");
    let cancel: Vec<&str> = retry["spec"]["cancel"]
        .as_array()
        .expect("spec.cancel")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(cancel, vec!["shop-app-01"], "every other VM of the Plan");
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_one_vm_goes_into_its_migrations_spec_cancel_and_the_source_runs_again() {
    let plan = forklift_plan(no_after);
    let mut sc = sped(&plan);
    // Slow enough to cancel mid-copy.
    sc.bandwidth_per_import = (sc.bandwidth_per_import / 20).max(1);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false;
    // Another writer adds to the same `spec.cancel` just before wavelift's patch lands.
    let race = Arc::new(race::Race::new(r.client()));
    cfg.client = race::client(&r, race.clone());
    let (mut sent, mut cancelled, mut verified) = (false, false, BTreeSet::new());
    interact(cfg, Duration::from_secs(120), |e| {
        if let Some((step, _, backend)) = phase_of(e, &e.vm) {
            if e.vm == "shop-db-01" && !sent && backend == Some("DiskTransferV2v") {
                sent = true;
                return Reply::Send(EngineRequest::CancelVm(e.vm.clone()));
            }
            match step {
                Step::Cancelled if e.vm == "shop-db-01" => cancelled = true,
                Step::Verified => {
                    verified.insert(e.vm.clone());
                }
                _ => {}
            }
        }
        if cancelled && verified.len() == 2 {
            Reply::Done
        } else {
            Reply::Wait
        }
    })
    .await;
    assert!(!verified.contains("shop-db-01"));
    let ms = migrations(&r, plan.meta.namespace.as_str()).await;
    let with_cancel: Vec<&serde_json::Value> = ms
        .iter()
        .filter(|m| {
            m["spec"]["cancel"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        })
        .collect();
    assert_eq!(with_cancel.len(), 1, "{ms:#?}");
    // `spec.cancel` is an atomic list: wavelift's patch carried the resourceVersion it read,
    // was refused (409) after the other writer's, read again and kept its entry.
    let names: Vec<&str> = with_cancel[0]["spec"]["cancel"]
        .as_array()
        .expect("cancel")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["elsewhere", "shop-db-01"], "{ms:#?}");
    let seen = race.seen.lock().expect("seen").clone();
    assert_eq!(
        seen.iter()
            .filter(|(m, _)| m == "PATCH migrations (merge)")
            .count(),
        2,
        "a refused patch and its retry: {seen:?}"
    );
    // Every patch of a Forklift object, and the merge patches labelling the VMs Forklift
    // created (the two verified), asked for strict field validation.
    for (what, query) in &seen {
        let forklift = [
            "migrations",
            "plans",
            "providers",
            "networkmaps",
            "storagemaps",
        ]
        .iter()
        .any(|k| what.starts_with(&format!("PATCH {k}")));
        if forklift {
            assert!(query.contains("fieldValidation=Strict"), "{what}?{query}");
        }
    }
    let strict_vm_merges = seen
        .iter()
        .filter(|(w, q)| {
            w == "PATCH virtualmachines (merge)" && q.contains("fieldValidation=Strict")
        })
        .count();
    assert!(strict_vm_merges >= 2, "{seen:?}");
    // Forklift powered the source back on; no VirtualMachine of its was left.
    let src = r.controllers.world.find("shop-db-01").expect("source");
    assert_eq!(src.power, PowerState::On);
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_migration_resumes_without_a_second_plan_or_migration() {
    let plan = quickstart_forklift("VLAN-210", "");
    let mut sc = sped(&plan);
    sc.bandwidth_per_import = (sc.bandwidth_per_import / 20).max(1);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false;
    interact(cfg, Duration::from_secs(60), |e| {
        match phase_of(e, "shop-db-01") {
            Some((_, _, Some("DiskTransferV2v"))) => Reply::Done,
            _ => Reply::Wait,
        }
    })
    .await;
    let ns = plan.meta.namespace.as_str();
    assert_eq!(count(&r, ns, "Migration").await, 1, "killed mid-Migration");
    // The change window (six hours, 11 s at this speed) is not what this test is about: on
    // a loaded machine it closed before the resumed run's last cutover.
    let mut cfg = config(&plan, &r);
    cfg.ignore_window = true;
    let (summary, events) = run_to_end(cfg, Duration::from_secs(120)).await;
    assert_eq!(summary.verified.len(), 3, "{summary:?}");
    let groups = fk::plan_groups(&plan);
    assert_eq!(count(&r, ns, "Plan").await, groups.len());
    assert_eq!(
        count(&r, ns, "Migration").await,
        groups.len(),
        "no second Migration"
    );
    // The resumed run adopted shop-db-01's Migration: it created none for its Plan.
    let db_creates = events
        .iter()
        .filter(|e| e.vm == "shop-db-01")
        .filter(|e| matches!(&e.kind, EventKind::Mutation { verb, kind, .. } if verb == "create" && kind == "Migration"))
        .count();
    assert_eq!(db_creates, 0);
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windows_guest_without_virtio_drivers_fails_on_cdi_and_verifies_on_forklift() {
    let windows = |t: String| {
        t.replace(
            "name = \"shop-db-01\"\n",
            "name = \"shop-db-01\"\nos = \"windows\"\ndisk_bus = \"virtio\"\n",
        )
    };
    for forklift in [false, true] {
        let plan = if forklift {
            forklift_plan(windows)
        } else {
            let text = windows(std::fs::read_to_string("plans/quickstart.toml").expect("qs"));
            Arc::new(
                wavelift::plan::check_str(&text, "quickstart.toml")
                    .plan
                    .expect("valid"),
            )
        };
        let r = Rehearsal::start(sped(&plan), 0).await.expect("rehearsal");
        let mut cfg = config(&plan, &r);
        cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
        cfg.agent_timeout = Duration::from_secs(3);
        let (s, _) = run_to_end(cfg, Duration::from_secs(120)).await;
        if forklift {
            assert_eq!(
                s.verified,
                vec!["shop-db-01".to_string()],
                "forklift: {s:?}"
            );
        } else {
            let (_, why) = s.failed.first().unwrap_or_else(|| panic!("cdi: {s:?}"));
            assert!(why.contains("guest agent not connected"), "cdi: {why}");
        }
        r.sim.shutdown().await;
    }
}

/// The example plan `plans/forklift-estate.toml` (a warm wave of mixed Windows and Linux
/// guests on Forklift) rehearsed end to end, as CI rehearses the other example plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forklift_estate_example_plan_rehearses_to_verified() {
    let plan = crate::common::load_plan("plans/forklift-estate.toml");
    let mut sc = Scenario::from_plan(&plan);
    // 1000×: the 6-hour window lasts 21.6 real seconds, enough for the wave on a loaded
    // machine (at 4000× a busy CI machine let the window close before the last cutover).
    sc.speed = 1000.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let (summary, events) = run_to_end(config(&plan, &r), Duration::from_secs(240)).await;
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.verified.len(), plan.vms.len(), "{summary:?}");
    // `disk-consistent` passed for every VM: the rehearsal's world judged each disk Forklift
    // copied (its precopies through CDI's checkpoints, the last after the power-off) against
    // every write its source made.
    for vm in &plan.vms {
        let outcomes: Vec<String> = events
            .iter()
            .filter(|e| e.vm == vm.name.as_str())
            .filter_map(|e| match &e.kind {
                EventKind::Check {
                    check,
                    outcome,
                    detail,
                    ..
                } if check == "disk-consistent" => Some(format!("{outcome:?}: {detail}")),
                _ => None,
            })
            .collect();
        // The sources wrote (the scenario's default write rate): a real judgement.
        assert!(
            outcomes
                .last()
                .is_some_and(|o| o.starts_with("Pass") && !o.contains("(0 writes)")),
            "{}: {outcomes:?}",
            vm.name.value
        );
    }
    // Warm: Forklift precopied (DiskTransfer), then cut over when wavelift set the cutover.
    let steps = backend_steps(&events, plan.vms[0].name.as_str());
    for s in ["DiskTransfer", "Cutover", "ImageConversion"] {
        assert!(steps.iter().any(|x| x == s), "{steps:?}");
    }
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::Mutation { verb, kind, .. } if verb == "patch" && kind == "Migration")
    ));
    // The cutover record `verify` reads carries Forklift's own step history.
    let vms: kube::Api<wavelift::cluster::resources::VirtualMachine> =
        kube::Api::namespaced(r.client(), plan.meta.namespace.as_str());
    let list = vms
        .list(&kube::api::ListParams::default())
        .await
        .expect("vms");
    assert_eq!(list.items.len(), plan.vms.len());
    for vm in list.items {
        let text = vm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(wavelift::checks::report::ANN_CUTOVER))
            .unwrap_or_else(|| panic!("{:?} has no cutover record", vm.metadata.name));
        let rec: wavelift::checks::report::CutoverRecord =
            serde_json::from_str(text).expect("record");
        assert_eq!(rec.backend.as_deref(), Some("forklift"), "{rec:?}");
        let names: Vec<&str> = rec.backend_steps.iter().map(|s| s.name.as_str()).collect();
        for s in [
            "Initialize",
            "DiskTransfer",
            "Cutover",
            "VirtualMachineCreation",
        ] {
            assert!(names.contains(&s), "{s} missing from {names:?}");
        }
        assert!(
            rec.backend_steps
                .iter()
                .all(|s| s.phase == "Completed" && s.completed.is_some()),
            "{rec:?}"
        );
    }
    r.sim.shutdown().await;
}

use crate::count;

/// Kubernetes API requests per VM of a 40-VM cold Forklift wave in the rehearsal (the
/// engine's requests only: the simulated controllers have their own client). Run with
/// `cargo test --test engine forklift_requests -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints the API requests per VM of a 40-VM Forklift wave"]
async fn forklift_requests_per_vm_of_a_40_vm_wave() {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;
    let plan = forklift_plan(|t| {
        // No change window: the measurement is of requests, not of window fits.
        let mut t = no_after(t)
            .lines()
            .filter(|l| !l.starts_with("window ="))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("max_parallel_imports = 2", "max_parallel_imports = 10")
            .replace("max_parallel_cutovers = 2", "max_parallel_cutovers = 10");
        for n in 4..=40u32 {
            let _ = write!(
                t,
                "\n\n[[vm]]\nname = \"vm-{n:02}\"\nwave = \"w1\"\nsource_id = \"4207c1b2-5f0e-4c1e-9a7b-0123456789{n:02}\"\ncpu = 2\nmemory = \"4Gi\"\nnics = [{{ network = \"vlan-210\", ip = \"192.0.2.{}\", mac = \"00:50:56:ab:ce:{n:02}\" }}]\ndisks = [{{ backing_file = \"[ds1] vm-{n:02}/vm-{n:02}.vmdk\", size = \"20Gi\" }}]\nchecks = [\"icmp\"]\n",
                100 + n
            );
        }
        t
    });
    assert_eq!(plan.vms.len(), 40);
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let counts = Arc::new(count::Counts::default());
    let kcfg = kube::Config::new(r.sim.url().parse().expect("url"));
    let client = kube::client::ClientBuilder::try_from(kcfg)
        .expect("builder")
        .with_layer(&count::CountLayer(counts.clone()))
        .build();
    let mut cfg = config(&plan, &r);
    cfg.client = client;
    let (summary, _) = run_to_end(cfg, Duration::from_secs(600)).await;
    assert_eq!(summary.verified.len(), 40, "{summary:?}");
    let requests = counts.requests.load(Ordering::Relaxed);
    let watches = counts.watches.load(Ordering::Relaxed);
    println!(
        "40-VM Forklift wave: {requests} API requests ({:.1} per VM) + {watches} watches",
        requests as f64 / 40.0
    );
    for (k, n) in counts.breakdown() {
        println!("  {n:5} {k}");
    }
    r.sim.shutdown().await;
}

/// A client layer that records the engine's requests, and before the engine's first patch
/// of a Migration adds `elsewhere` to its `spec.cancel` with another client: a concurrent
/// writer, deterministically first.
mod race {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use wavelift::sim::controllers::rehearsal::Rehearsal;

    pub struct Race {
        other: kube::Client,
        raced: Mutex<bool>,
        /// `(METHOD resource, query)` of each request.
        pub seen: Mutex<Vec<(String, String)>>,
    }

    impl Race {
        pub fn new(other: kube::Client) -> Self {
            Race {
                other,
                raced: Mutex::new(false),
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    pub fn client(r: &Rehearsal, race: Arc<Race>) -> kube::Client {
        let kcfg = kube::Config::new(r.sim.url().parse().expect("url"));
        kube::client::ClientBuilder::try_from(kcfg)
            .expect("builder")
            .with_layer(&Layer(race))
            .build()
    }

    #[derive(Clone)]
    pub struct Layer(Arc<Race>);

    /// The inner service is not `Clone` (kube boxes it): shared, it is locked only while a
    /// request is handed to it, not while its response is awaited.
    #[derive(Clone)]
    pub struct Service<S> {
        inner: Arc<tokio::sync::Mutex<S>>,
        race: Arc<Race>,
    }

    impl<S> tower::Layer<S> for Layer {
        type Service = Service<S>;
        fn layer(&self, inner: S) -> Self::Service {
            Service {
                inner: Arc::new(tokio::sync::Mutex::new(inner)),
                race: self.0.clone(),
            }
        }
    }

    /// Adds `elsewhere` to the Migration's `spec.cancel` (a merge patch of the whole list,
    /// as any writer of an atomic list must).
    async fn interfere(c: kube::Client, ns: String, name: String) {
        use kube::api::{Api, DynamicObject, Patch, PatchParams};
        let api: Api<DynamicObject> = Api::namespaced_with(
            c,
            &ns,
            &wavelift::engine::forklift_preflight::resource("Migration"),
        );
        let m = serde_json::to_value(api.get(&name).await.expect("get")).expect("json");
        let mut cancel = m["spec"]["cancel"].as_array().cloned().unwrap_or_default();
        cancel.push(serde_json::json!({ "id": "vm-9999", "name": "elsewhere" }));
        let patch = serde_json::json!({ "spec": { "cancel": cancel } });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("the other writer's patch");
    }

    impl<S, B> tower::Service<http::Request<B>> for Service<S>
    where
        S: tower::Service<http::Request<B>> + Send + 'static,
        S::Future: Send,
        B: Send + 'static,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            let path = req.uri().path().to_string();
            let segs: Vec<&str> = path.split('/').collect();
            let kind = segs
                .iter()
                .position(|s| *s == "namespaces")
                .and_then(|i| segs.get(i + 2))
                .copied()
                .unwrap_or_default();
            // A merge patch (server-side apply creates the Migrations: not raced).
            let merge = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes() == b"application/merge-patch+json");
            let what = format!(
                "{} {kind}{}",
                req.method(),
                if merge { " (merge)" } else { "" }
            );
            let query = req.uri().query().unwrap_or_default().to_string();
            self.race
                .seen
                .lock()
                .expect("seen")
                .push((what.clone(), query));
            let first = what == "PATCH migrations (merge)" && {
                let mut raced = self.race.raced.lock().expect("raced");
                !std::mem::replace(&mut *raced, true)
            };
            let inner = self.inner.clone();
            let other = self.race.other.clone();
            Box::pin(async move {
                if first {
                    let ns = segs_at(&path, "namespaces", 1);
                    let name = segs_at(&path, "migrations", 1);
                    interfere(other, ns, name).await;
                }
                let response = {
                    let mut s = inner.lock().await;
                    std::future::poll_fn(|cx| s.poll_ready(cx)).await?;
                    s.call(req)
                };
                response.await
            })
        }
    }

    fn segs_at(path: &str, after: &str, n: usize) -> String {
        let segs: Vec<&str> = path.split('/').collect();
        segs.iter()
            .position(|s| *s == after)
            .and_then(|i| segs.get(i + n))
            .map_or_else(String::new, |s| s.to_string())
    }
}

/// Every object of `kinds` in `ns`, by kind, whatever its labels.
async fn all_in(r: &Rehearsal, ns: &str, kinds: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for kind in kinds {
        let builtin = |group: &str, version: &str, plural: &str| ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.to_string(),
            plural: plural.into(),
        };
        let ar = match *kind {
            "Secret" => builtin("", "v1", "secrets"),
            "DataVolume" => builtin("cdi.kubevirt.io", "v1beta1", "datavolumes"),
            "VirtualMachine" => builtin("kubevirt.io", "v1", "virtualmachines"),
            "NetworkAttachmentDefinition" => {
                builtin("k8s.cni.cncf.io", "v1", "network-attachment-definitions")
            }
            _ => pf::resource(kind),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(r.client(), ns, &ar);
        for o in api.list(&ListParams::default()).await.expect("list").items {
            out.push(format!("{kind} {}", o.metadata.name.unwrap_or_default()));
        }
    }
    out
}

/// A whole `--dry-run` on the Forklift backend: every VM is reported dry-run ok, and
/// nothing persisted (no Secret, Provider, map, Plan, Migration, NAD, DataVolume or VM in
/// the namespace), no source powered off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_dry_run_on_forklift_persists_nothing() {
    let plan = quickstart_forklift("VLAN-210", "");
    let r = Rehearsal::start(sped(&plan), 0).await.expect("rehearsal");
    let kinds = [
        "Secret",
        "Provider",
        "NetworkMap",
        "StorageMap",
        "Plan",
        "Migration",
        "NetworkAttachmentDefinition",
        "DataVolume",
        "VirtualMachine",
    ];
    let ns = plan.meta.namespace.as_str();
    // The rehearsal's own objects (the credentials Secret the plan names).
    let before = all_in(&r, ns, &kinds).await;
    let mut cfg = config(&plan, &r);
    cfg.dry_run = true;
    let (s, _) = run_to_end(cfg, Duration::from_secs(120)).await;
    assert_eq!(s.dry_run_ok.len(), 3, "{s:?}");
    assert_eq!(
        all_in(&r, ns, &kinds).await,
        before,
        "persisted under --dry-run"
    );
    for vm in &plan.vms {
        let src = r.controllers.world.find(vm.name.as_str()).expect("source");
        assert_eq!(src.power, PowerState::On, "a dry run powers nothing off");
    }
    r.sim.shutdown().await;
}

/// The real binary: `wavelift run --sim --output jsonl` on the Forklift estate prints phase
/// events carrying Forklift's step (`backend_step`) for every VM.
#[test]
fn the_jsonl_phase_events_of_a_sim_run_carry_forklifts_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wavelift"))
        .args([
            "run",
            "plans/forklift-estate.toml",
            "--sim",
            "--output",
            "jsonl",
            "--speed",
            "1000",
        ])
        .env("WAVELIFT_LOG_DIR", dir.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run wavelift");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = crate::common::load_plan("plans/forklift-estate.toml");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for vm in &plan.vms {
        let steps: BTreeSet<&str> = events
            .iter()
            .filter(|e| e["event"] == "phase" && e["vm"] == vm.name.as_str())
            .filter_map(|e| e["backend_step"].as_str())
            .collect();
        for s in ["DiskTransfer", "Cutover", "ImageConversion"] {
            assert!(steps.contains(s), "{}: {steps:?}", vm.name.value);
        }
    }
}

/// The two Forklift refusals and a rollback end to end: a rollback while Forklift copies
/// the VM is refused (cancel it first); a cancel once Forklift migrated it is refused (roll
/// it back instead); the rollback of the verified VM deletes the VirtualMachine Forklift
/// created, then powers the source on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forklift_refuses_a_rollback_mid_copy_and_a_cancel_after_it_and_rolls_back_end_to_end() {
    let plan = forklift_plan(no_after);
    let mut sc = sped(&plan);
    sc.bandwidth_per_import = (sc.bandwidth_per_import / 20).max(1);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false;
    let vm = "shop-db-01";
    let (mut rollback_early, mut cancel_late, mut rollback) = (false, false, false);
    let mut refusals: Vec<String> = Vec::new();
    let mut rolled_back = false;
    interact(cfg, Duration::from_secs(120), |e| {
        if let EventKind::Log { message, .. } = &e.kind {
            if message.contains("refused") {
                refusals.push(message.clone());
            }
        }
        match phase_of(e, vm) {
            Some((_, _, Some("DiskTransferV2v"))) if !rollback_early => {
                rollback_early = true;
                return Reply::Send(EngineRequest::RollbackVm(vm.into()));
            }
            Some((Step::Booting, _, _)) if !cancel_late => {
                cancel_late = true;
                return Reply::Send(EngineRequest::CancelVm(vm.into()));
            }
            Some((Step::Verified, _, _)) if !rollback => {
                rollback = true;
                return Reply::Send(EngineRequest::RollbackVm(vm.into()));
            }
            Some((Step::RolledBack, _, _)) => rolled_back = true,
            _ => {}
        }
        if rolled_back {
            Reply::Done
        } else {
            Reply::Wait
        }
    })
    .await;
    assert!(
        refusals.iter().any(|m| m.starts_with(&format!(
            "rollback of {vm} refused: Forklift is migrating it"
        ))),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|m| m.starts_with(&format!(
            "cancel of {vm} refused: Forklift already migrated it"
        ))),
        "{refusals:?}"
    );
    // The VirtualMachine Forklift created is gone, and the source runs again.
    let vms: Api<DynamicObject> = Api::namespaced_with(
        r.client(),
        plan.meta.namespace.as_str(),
        &ApiResource {
            group: "kubevirt.io".into(),
            version: "v1".into(),
            api_version: "kubevirt.io/v1".into(),
            kind: "VirtualMachine".into(),
            plural: "virtualmachines".into(),
        },
    );
    assert!(vms.get_opt(vm).await.expect("get").is_none());
    let src = r.controllers.world.find(vm).expect("source");
    assert_eq!(src.power, PowerState::On);
    r.sim.shutdown().await;
}

/// Pause on Forklift: a wave paused from its start holds every VM (`paused`) and creates no
/// Migration; resumed, it goes on, one Migration per Plan, to verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_on_forklift_creates_no_migration_while_paused() {
    let plan = quickstart_forklift("VLAN-210", "");
    let r = Rehearsal::start(sped(&plan), 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.exit_when_done = false;
    #[derive(PartialEq, Debug, Clone, Copy)]
    enum Stage {
        Start,
        PauseSent,
        Paused,
        Resumed,
    }
    let mut stage = Stage::Start;
    let mut creates: Vec<(Stage, String)> = Vec::new();
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut verified = BTreeSet::new();
    interact(cfg, Duration::from_secs(120), |e| {
        match &e.kind {
            EventKind::Mutation { verb, kind, .. } if verb == "create" && kind == "Migration" => {
                creates.push((stage, e.vm.clone()));
            }
            EventKind::Log { message, .. }
                if message == "wave w1 paused" && stage == Stage::PauseSent =>
            {
                stage = Stage::Paused;
            }
            EventKind::Phase {
                status: Status::Paused,
                ..
            } if stage == Stage::Paused => {
                held.insert(e.vm.clone());
                if held.len() == plan.vms.len() {
                    stage = Stage::Resumed;
                    return Reply::Send(EngineRequest::ResumeWave("w1".into()));
                }
            }
            EventKind::Phase {
                step: Step::Verified,
                ..
            } => {
                verified.insert(e.vm.clone());
            }
            _ => {}
        }
        if stage == Stage::Start {
            stage = Stage::PauseSent;
            return Reply::Send(EngineRequest::PauseWave("w1".into()));
        }
        if verified.len() == 3 {
            Reply::Done
        } else {
            Reply::Wait
        }
    })
    .await;
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(
        creates.iter().all(|(s, _)| *s == Stage::Resumed),
        "a Migration was created while paused: {creates:?}"
    );
    assert_eq!(creates.len(), 3, "one Migration per Plan: {creates:?}");
    r.sim.shutdown().await;
}
