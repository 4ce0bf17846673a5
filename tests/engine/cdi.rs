//! Import failures as CDI reports them, through the engine and the rehearsal cluster's CDI:
//! an importer whose VDDK login fails restarts in place forever (CDI never marks it
//! `Failed`); the engine fails the disk after `import_restart_limit` restarts naming CDI's
//! reason, and a retry after the Secret is fixed verifies. A missing VDDK image fails at
//! once (`AwaitingVDDK`); an init image that cannot be pulled (`PodInitializing`) fails
//! after the stall timeout.

use crate::common;

use common::{config, load_plan, run_to_end};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wavelift::engine::runtime::spawn;
use wavelift::engine::{EngineRequest, EventKind, Status, Step};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::{Fault, FaultKind, FaultMode, Scenario};

const LIMIT: Duration = Duration::from_secs(90);

fn plan_from(text: &str) -> Arc<Plan> {
    let checked = wavelift::plan::check_str(text, "t.toml");
    let problems: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    Arc::new(
        checked
            .plan
            .unwrap_or_else(|| panic!("invalid test plan: {problems:?}")),
    )
}

async fn set_password(r: &Rehearsal, ns: &str, password: &str) {
    let secrets: Api<KubeSecret> = Api::namespaced(r.client(), ns);
    secrets
        .patch(
            "vsphere-creds",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "data": {
                "secretKey": wavelift::sim::store::base64(password.as_bytes()) } })),
        )
        .await
        .expect("patch Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vddk_login_that_restarts_forever_fails_after_the_limit_and_a_retry_after_the_fix_verifies(
) {
    let plan = load_plan("plans/quickstart.toml");
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    set_password(&r, "mig-quickstart", "a-wrong-password").await;
    let mut cfg = config(&plan, &r);
    cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
    cfg.exit_when_done = false; // an operator is at the keyboard
    let (mut handle, task) = spawn(cfg);
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut retried = false;
    loop {
        let ev = tokio::time::timeout_at(deadline, handle.events.recv())
            .await
            .expect("the run got there in time")
            .expect("engine alive");
        match &ev.kind {
            EventKind::Phase {
                step: Step::Importing,
                status: Status::Failed(why),
                ..
            } if ev.vm == "shop-db-01" => {
                assert!(!retried, "the retried import failed again: {why}");
                assert!(
                    why.contains("the importer restarted 3 times")
                        && why.contains("incorrect user name or password"),
                    "{why}"
                );
                set_password(&r, "mig-quickstart", "sim-password").await;
                retried = true;
                handle
                    .requests
                    .send(EngineRequest::RetryVm("shop-db-01".into()))
                    .await
                    .expect("retry");
            }
            EventKind::Phase {
                step: Step::Verified,
                ..
            } if ev.vm == "shop-db-01" => break,
            _ => {}
        }
    }
    assert!(retried, "the fault never fired");
    handle
        .requests
        .send(EngineRequest::Shutdown)
        .await
        .expect("shutdown");
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vddk_image_fails_at_once_naming_awaiting_vddk() {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "vddk_init_image = \"registry.example.internal/vddk-init:8.0.3\"\n",
            "",
        );
    let plan = plan_from(&text);
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
    let (s, _) = run_to_end(cfg, LIMIT).await;
    let (_, why) = s.failed.first().unwrap_or_else(|| panic!("{s:?}"));
    assert!(why.contains("AwaitingVDDK"), "{why}");
    assert!(why.contains("v2v-vmware"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_image_that_cannot_be_pulled_fails_after_the_stall_timeout() {
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "[defaults]\n",
            "[defaults]\nimport_stall_timeout = \"2s\"\n",
        );
    let plan = plan_from(&text);
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = 4000.0;
    sc.faults.push(Fault {
        kind: FaultKind::VddkImagePull,
        vm: "shop-db-01".into(),
        mode: FaultMode::Always,
        factor: None,
    });
    let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
    let mut cfg = config(&plan, &r);
    cfg.only_vms = BTreeSet::from(["shop-db-01".to_string()]);
    let (s, _) = run_to_end(cfg, LIMIT).await;
    let (_, why) = s.failed.first().unwrap_or_else(|| panic!("{s:?}"));
    assert!(why.contains("no import progress for 2s"), "{why}");
    assert!(why.contains("PodInitializing"), "{why}");
}
