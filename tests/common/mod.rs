//! Shared set-up of the test binaries: the header of the inline test plans, a rehearsal
//! cluster and an engine wired to it the way `wavelift run` wires them (vSphere REST client and
//! sim prober on the world endpoints), `sim serve` as a child process, a loopback HTTPS
//! server, and the TUI fixture.

#![allow(dead_code)] // each test file uses a different subset

pub mod bounded;
pub mod serve;
pub mod tls;
pub mod tui;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::probe::SimProber;
use wavelift::engine::runtime::{spawn, EngineConfig, RunSummary, AGENT_TIMEOUT, GUARD_INTERVAL};
use wavelift::engine::{EngineEvent, EngineRequest};
use wavelift::plan::Plan;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, SourceOps};

/// The `[plan]` and `[source]` tables the tests' inline plans start with: plan `name` in
/// `namespace` (L2), `plan_keys` (more `[plan]` lines, or "") and a vsphere source with a
/// thumbprint and a VDDK image. The test appends `[defaults]`, networks, waves and VMs.
pub fn plan_header(name: &str, namespace: &str, plan_keys: &str) -> String {
    let mut s =
        format!("[plan]\nname = \"{name}\"\nnamespace = \"{namespace}\"\nnetwork_model = \"l2\"\n");
    if !plan_keys.is_empty() {
        s.push_str(plan_keys);
        s.push('\n');
    }
    s.push_str(
        r#"
[source]
type = "vsphere"
url = "https://vcenter.example.internal"
credentials_secret = "vsphere-creds"
thumbprint = "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3"
vddk_init_image = "registry.example.internal/vddk-init:8.0.3"
"#,
    );
    s
}

pub fn load_plan(path: &str) -> Arc<Plan> {
    Arc::new(
        wavelift::plan::check_file(std::path::Path::new(path))
            .expect("read")
            .plan
            .expect("valid"),
    )
}

/// An engine config for `plan` on rehearsal `r`: every wave, headless.
pub fn config(plan: &Arc<Plan>, r: &Rehearsal) -> EngineConfig {
    let creds = Credentials {
        user: "sim-user".into(),
        password: Secret::new("sim-password"),
    };
    let source: Arc<dyn SourceOps> =
        // vCenter tasks in the rehearsal world take milliseconds: poll them as often.
        Arc::new(
            VsphereClient::new(&r.world_url, None, creds)
                .expect("client")
                .with_task_poll(Duration::from_millis(5)),
        );
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
        guard_interval: GUARD_INTERVAL,
        // Change windows are judged by the rehearsal world's clock, as `wavelift run` does.
        window_clock: Some(wavelift::engine::WindowClock {
            start_ms: r.controllers.world.clock_ms(),
            speed: r.controllers.world.speed(),
        }),
        ignore_window: false,
        policies: Default::default(),
        // The Forklift backend: the rehearsal's vCenter as Forklift's source Provider sees it.
        forklift_source: (plan.meta.backend.value == wavelift::plan::Backend::Forklift
            && plan.meta.forklift_provider.is_none())
        .then(|| {
            (
                Credentials {
                    user: "sim-user".into(),
                    password: Secret::new("sim-password"),
                },
                wavelift::cluster::forklift::SourceConn {
                    url: format!("https://{}/sdk", r.sim.addr),
                    ca_pem: wavelift::cluster::forklift::pem(
                        b"rehearsal: the simulated vCenter has no certificate",
                    ),
                },
            )
        }),
    }
}

/// Runs `cfg` to the end (within `limit`), returning the summary and every event. On a
/// timeout the engine is shut down and the test fails with the last events.
pub async fn run_to_end(cfg: EngineConfig, limit: Duration) -> (RunSummary, Vec<EngineEvent>) {
    let (mut handle, task) = spawn(cfg);
    let requests = handle.requests.clone();
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = handle.events.recv().await {
            v.push(e);
        }
        v
    });
    match tokio::time::timeout(limit, task).await {
        Ok(s) => {
            let summary = s.expect("join").expect("run");
            (summary, collect.await.expect("events"))
        }
        Err(_) => {
            let _ = requests.send(EngineRequest::Shutdown).await;
            let events = collect.await.expect("events");
            let last: Vec<String> = events
                .iter()
                .rev()
                .take(40)
                .map(|e| format!("{} {:?}", e.vm, e.kind))
                .collect();
            panic!(
                "run did not end within {limit:?}; last events:\n{}",
                last.join("\n")
            );
        }
    }
}

/// Why VM `vm` failed in `s` (empty when it did not).
pub fn why_failed(s: &RunSummary, vm: &str) -> String {
    s.failed
        .iter()
        .find(|(v, _)| v == vm)
        .map(|(_, w)| w.clone())
        .unwrap_or_default()
}

/// What a test does with one engine event while it drives an interactive run.
pub enum Reply {
    /// Nothing: wait for the next event.
    Wait,
    /// Send the engine this request (as the TUI would for a key press).
    Send(EngineRequest),
    /// The test saw what it waited for: shut the engine down.
    Done,
}

/// Drives an engine run the way an operator does: every event goes to `on_event`, whose
/// replies are sent back, until it answers [`Reply::Done`] (then the engine is shut down
/// and awaited). Panics when that does not happen within `limit`.
pub async fn interact(
    cfg: EngineConfig,
    limit: Duration,
    mut on_event: impl FnMut(&EngineEvent) -> Reply,
) {
    let (mut handle, task) = spawn(cfg);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ev = tokio::time::timeout_at(deadline, handle.events.recv())
            .await
            .unwrap_or_else(|_| panic!("the run did not get there within {limit:?}"))
            .expect("engine alive");
        match on_event(&ev) {
            Reply::Wait => {}
            Reply::Send(r) => handle.requests.send(r).await.expect("engine request"),
            Reply::Done => break,
        }
    }
    handle
        .requests
        .send(EngineRequest::Shutdown)
        .await
        .expect("shutdown");
    let _ = task.await;
}
