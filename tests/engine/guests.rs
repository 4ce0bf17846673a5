//! Guests as they are, in rehearsal: the rehearsal's guests can lose their IP the way real
//! ones do, so a rehearsal does not agree with the engine by construction. A guest whose
//! network config is bound to an interface name comes up without its IP on KubeVirt's NIC,
//! and `ip-preserved` says why; a Windows guest without virtio drivers never boots from
//! virtio disks, and boots from SATA; a plan without guest agents verifies through the
//! network checks, with `ip-preserved`/`mac-preserved` skipped and saying why.

use crate::common;

use common::{config, run_to_end};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::result::Outcome;
use wavelift::engine::EventKind;
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{NicConfig, Scenario};

const LIMIT: Duration = Duration::from_secs(90);

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

/// The check events of `vm`, by check.
fn checks(events: &[wavelift::engine::EngineEvent], vm: &str) -> Vec<(String, Outcome, String)> {
    events
        .iter()
        .filter(|e| e.vm == vm)
        .filter_map(|e| match &e.kind {
            EventKind::Check {
                check,
                outcome,
                detail,
                ..
            } => Some((check.clone(), *outcome, detail.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_with_a_name_bound_network_config_fails_ip_preserved_saying_why() {
    let plan = quickstart_with(|t| t);
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.source_vms
        .iter_mut()
        .find(|v| v.name == "shop-db-01")
        .expect("source VM")
        .nic_config = NicConfig::ByName;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
    let (s, events) = run_to_end(cfg, LIMIT).await;
    let (_, why) = s.failed.first().unwrap_or_else(|| panic!("{s:?}"));
    assert!(why.contains("ip-preserved fail"), "{why}");
    let ip = checks(&events, "shop-db-01")
        .into_iter()
        .find(|(c, _, _)| c == "ip-preserved")
        .expect("ip-preserved ran");
    assert_eq!(ip.1, Outcome::Fail, "{ip:?}");
    assert!(
        ip.2.contains("bound to an interface name") && ip.2.contains("the guest calls it enp1s0"),
        "{ip:?}"
    );
    // The MAC is still right: only the guest's own config is lost.
    let mac = checks(&events, "shop-db-01")
        .into_iter()
        .find(|(c, _, _)| c == "mac-preserved")
        .expect("mac-preserved ran");
    assert_eq!(mac.1, Outcome::Pass, "{mac:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windows_guest_boots_from_sata_but_not_from_virtio_without_drivers() {
    for (bus, boots) in [("virtio", false), ("sata", true)] {
        let plan = quickstart_with(|t| {
            t.replace(
                "name = \"shop-db-01\"\n",
                &format!("name = \"shop-db-01\"\nos = \"windows\"\ndisk_bus = \"{bus}\"\n"),
            )
        });
        let mut sc = Scenario::from_plan(&plan);
        sc.speed = 4000.0;
        let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
        let mut cfg = config(&plan, &r);
        cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
        cfg.agent_timeout = Duration::from_secs(3);
        let (s, _) = run_to_end(cfg, LIMIT).await;
        if boots {
            assert_eq!(s.verified, vec!["shop-db-01".to_string()], "{bus}: {s:?}");
        } else {
            let (_, why) = s.failed.first().unwrap_or_else(|| panic!("{bus}: {s:?}"));
            assert!(why.contains("guest agent not connected"), "{bus}: {why}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_without_an_agent_verify_through_the_network_with_agent_checks_skipped() {
    let plan = quickstart_with(|t| t.replace("guest_agent = true", "guest_agent = false"));
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    assert!(sc.source_vms.iter().all(|v| !v.guest_agent));
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    // An agent timeout of 3 s would fail every VM if the engine still waited for one.
    let mut cfg = config(&plan, &r);
    cfg.agent_timeout = Duration::from_secs(3);
    let (s, events) = run_to_end(cfg, LIMIT).await;
    assert_eq!(s.verified.len(), 3, "{s:?}");
    for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
        let results = checks(&events, vm);
        for kind in ["ip-preserved", "mac-preserved"] {
            let (_, outcome, detail) = results
                .iter()
                .find(|(c, _, _)| c == kind)
                .unwrap_or_else(|| panic!("{vm} {kind}: {results:?}"));
            assert_eq!(*outcome, Outcome::Skipped, "{vm} {kind}");
            assert!(detail.contains("no qemu-guest-agent"), "{detail}");
        }
        assert!(
            results
                .iter()
                .any(|(c, o, _)| c == "icmp" && *o == Outcome::Pass),
            "{vm}: {results:?}"
        );
    }
}
