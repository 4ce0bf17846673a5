//! Source-aware throttling through the engine against the rehearsal cluster's per-host NFC
//! limit (`nfc_per_host`): wavelift's `max_imports_per_host` keeps a wave below it (no
//! importer is ever refused, the host's peak stays at the cap); a cap above the host's
//! limit shows the importers' restarts with their NFC reason.

use crate::common;

use common::{config, run_to_end};
use std::sync::Arc;
use std::time::Duration;
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

const LIMIT: Duration = Duration::from_secs(90);

/// The quickstart's three VMs on one ESXi host, without `after` (their imports may
/// overlap), three cutovers and imports at a time, `max_imports_per_host = cap`.
fn plan(cap: u32) -> Arc<Plan> {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "max_parallel_imports = 2\nmax_parallel_cutovers = 2\n",
            &format!(
                "max_parallel_imports = 3\nmax_parallel_cutovers = 3\nmax_imports_per_host = {cap}\n"
            ),
        )
        .replace("after = [\"shop-db-01\"]               # cut over after the database\n", "")
        .replace("after = [\"shop-app-01\"]\n", "")
        .replace("wave = \"w1\"\n", "wave = \"w1\"\nhost = \"esx-01\"\n");
    let checked = wavelift::plan::check_str(&text, "throttle.toml");
    let errors: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    let plan = checked.plan.unwrap_or_else(|| panic!("{errors:?}"));
    assert!(plan
        .vms
        .iter()
        .all(|v| v.after.is_empty() && v.host.is_some()));
    Arc::new(plan)
}

async fn run(
    plan: &Arc<Plan>,
    nfc: u32,
) -> (wavelift::engine::runtime::RunSummary, String, Rehearsal) {
    run_in(plan, nfc, Scenario::from_plan(plan)).await
}

async fn run_in(
    plan: &Arc<Plan>,
    nfc: u32,
    mut sc: Scenario,
) -> (wavelift::engine::runtime::RunSummary, String, Rehearsal) {
    sc.speed = 4000.0;
    sc.nfc_per_host = Some(nfc);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(plan, &r);
    cfg.ignore_window = true;
    let (s, events) = run_to_end(cfg, LIMIT).await;
    (s, format!("{events:?}"), r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_host_cap_keeps_a_wave_below_the_hosts_nfc_limit() {
    let plan = plan(1);
    let (s, events, r) = run(&plan, 2).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    let peaks = r.controllers.imports.host_peaks();
    assert_eq!(peaks.get("esx-01"), Some(&1), "{peaks:?}");
    assert_eq!(r.controllers.imports.nfc_refusals(), 0);
    // The VMs held by the cap said so.
    assert!(events.contains("waiting: host esx-01 at 1/1"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_above_the_hosts_nfc_limit_shows_the_restarts_with_their_reason() {
    let plan = plan(3);
    let (_s, events, r) = run(&plan, 1).await;
    assert!(r.controllers.imports.nfc_refusals() > 0);
    assert!(
        events.contains("The host esx-01 has reached its NFC connection limit"),
        "{events}"
    );
}

/// The plan says every VM is on esx-01, but shop-app-01 was moved to esx-02 since (vMotion,
/// DRS): vCenter's `runtime.host`, read as its import starts, counts instead. Its import
/// does not wait for esx-01, and no host goes above the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_vcenter_reports_counts_not_the_planned_one() {
    let plan = plan(1);
    let mut sc = Scenario::from_plan(&plan);
    let app = sc
        .source_vms
        .iter_mut()
        .find(|v| v.name == "shop-app-01")
        .expect("shop-app-01 in the scenario");
    assert_eq!(app.host.as_deref(), Some("esx-01"), "from the plan");
    app.host = Some("esx-02".into());
    let (s, events, r) = run_in(&plan, 1, sc).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    assert!(
        events.contains(
            "vCenter says the source runs on ESXi host esx-02, not esx-01 as planned: its imports count toward esx-02"
        ),
        "{events}"
    );
    let peaks = r.controllers.imports.host_peaks();
    assert_eq!(peaks.get("esx-01"), Some(&1), "{peaks:?}");
    assert_eq!(peaks.get("esx-02"), Some(&1), "{peaks:?}");
    // With the limit at 1 per host, counting shop-app-01 on esx-01 would have made the
    // sim refuse (or the engine hold) it; neither happened.
    assert_eq!(r.controllers.imports.nfc_refusals(), 0);
}
