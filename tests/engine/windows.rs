//! Change windows through the engine and the rehearsal world's clock: no power-off before
//! the window opens; when it closes, no new cutover starts, the ones under way finish, and
//! the VMs left are postponed with the reason.

use crate::common;

use common::{config, run_to_end};
use std::sync::Arc;
use std::time::Duration;
use wavelift::engine::{EventKind, Status, Step};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

const LIMIT: Duration = Duration::from_secs(90);

fn quickstart_window(start: &str, end: &str) -> Arc<Plan> {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "window = { start = 2026-12-05T22:00:00Z, end = 2026-12-06T04:00:00Z }",
            &format!("window = {{ start = {start}, end = {end} }}"),
        );
    let checked = wavelift::plan::check_str(&text, "quickstart.toml");
    let problems: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    Arc::new(
        checked
            .plan
            .unwrap_or_else(|| panic!("invalid plan: {problems:?}")),
    )
}

/// A 16-minute window: shop-db-01 (80 GiB, about 14 minutes by the estimate) starts when
/// it opens; once it is verified (about 7 minutes later) the window is too short for
/// shop-app-01 (about 9.5 minutes), and shop-web-01 waits for shop-app-01: both are
/// postponed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_closes_mid_wave_postpones_the_vms_left_with_the_reason() {
    let plan = quickstart_window("2026-12-05T22:00:00Z", "2026-12-05T22:16:00Z");
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 100.0;
    // The world's clock starts ten minutes before the window (6 s here).
    let window_start = plan.waves[0].window.as_ref().expect("window").start.unix * 1000;
    sc.clock_start_ms = Some(window_start - 10 * 60_000);
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let (s, events) = run_to_end(config(&plan, &r), LIMIT).await;
    // Nothing is powered off before the window opens.
    let first_power_off = events
        .iter()
        .position(|e| matches!(&e.kind, EventKind::Mutation { verb, .. } if verb == "power-off"));
    let waited = events.iter().position(|e| {
        matches!(&e.kind, EventKind::Phase { status: Status::Waiting(w), .. } if w.starts_with("waiting for the change window"))
    });
    assert!(
        waited.is_some() && waited < first_power_off,
        "waited for the window before the first power-off"
    );
    assert_eq!(s.verified, vec!["shop-db-01"], "{s:?}");
    assert_eq!(s.postponed, vec!["shop-app-01", "shop-web-01"], "{s:?}");
    let reasons: Vec<&String> = events
        .iter()
        .filter(|e| e.vm == "shop-app-01")
        .filter_map(|e| match &e.kind {
            EventKind::Phase {
                step: Step::NetworkReady,
                status: Status::Waiting(w),
                ..
            } => Some(w),
            _ => None,
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|w| w.starts_with("window-too-short") || w.starts_with("the change window closed")),
        "{reasons:?}"
    );
    assert_eq!(
        r.controllers
            .world
            .find("shop-web-01")
            .expect("source")
            .power,
        wavelift::sim::controllers::scenario::PowerState::On,
        "a postponed VM's source was never touched"
    );
}

/// The 40-VM payments estate, each wave in its own change window (a week apart: one
/// rehearsal per wave, its clock starting as a derived one would before that window,
/// precopy rounds included for the warm wave), windows enforced: every VM is verified
/// inside its window and `disk-consistent` passes for every VM of every wave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_estate_rehearses_wave_by_wave_in_its_windows_with_every_disk_consistent() {
    let plan = common::load_plan("plans/payments-estate.toml");
    // No `after` crosses a wave here, so each wave can be rehearsed on its own.
    for vm in &plan.vms {
        for dep in &vm.after {
            assert_eq!(
                plan.vm(dep).map(|d| d.wave.as_str()),
                Some(vm.wave.as_str()),
                "{dep}"
            );
        }
    }
    for wave in &plan.waves {
        let window = wave.window.as_ref().expect("every wave has a window");
        let members: Vec<String> = plan
            .vms_in_wave(&wave.name)
            .map(|v| v.name.value.clone())
            .collect();
        let warm = plan
            .vms_in_wave(&wave.name)
            .any(|v| plan.migration_of(v) == wavelift::plan::Migration::Warm);
        let mut sc = Scenario::from_plan(&plan);
        sc.speed = 1000.0;
        let precopy = if warm {
            wave.precopy_interval.as_millis() as i64
                * wavelift::sim::controllers::scenario::PRECOPY_ROUNDS_BEFORE_WINDOW
        } else {
            0
        };
        sc.clock_start_ms = Some(window.start.unix * 1000 - precopy - 60_000);
        let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
        let mut cfg = config(&plan, &r);
        cfg.auto_waves = vec![wave.name.value.clone()];
        cfg.only_vms = members.iter().cloned().collect();
        let (s, events) = run_to_end(cfg, LIMIT).await;
        assert_eq!(
            s.verified.len(),
            members.len(),
            "wave {}: {s:?}",
            wave.name.value
        );
        assert!(s.postponed.is_empty(), "{s:?}");
        for vm in &members {
            let dc: Vec<_> = events
                .iter()
                .filter(|e| e.vm == *vm)
                .filter_map(|e| match &e.kind {
                    EventKind::Check { check, outcome, .. } if check == "disk-consistent" => {
                        Some(*outcome)
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(
                dc.last(),
                Some(&wavelift::checks::result::Outcome::Pass),
                "{vm}: {dc:?}"
            );
        }
        // Every power-off happened inside the window, on the rehearsal's clock.
        let cutovers: Vec<u64> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Cutover { downtime_ms, .. } => Some(*downtime_ms),
                _ => None,
            })
            .collect();
        assert_eq!(cutovers.len(), members.len(), "wave {}", wave.name.value);
        r.sim.shutdown().await;
    }
}
