//! What in-cluster probes cost (issue 14): the 40-VM payments estate (`plans/payments-estate
//! .toml`) run on the rehearsal cluster with checks from the workstation and from the
//! cluster (`checks_from = "cluster"`, a `probe_image`, a `probe_ip` on each of its four
//! networks), in one bench run.
//!
//! Reported per mode: VMs verified, Kubernetes API requests besides watches (total and per
//! VM), watches opened, and probe pods run (from the engine's journal). The difference is
//! what probes add.
//!
//! `cargo bench --bench probe_cost` (`WAVELIFT_BENCH_SPEED`, default 20000). Differences
//! from `wavelift run PLAN`: the engine runs in this process against an embedded rehearsal
//! (as `wavelift run` does without a kubeconfig), with a request-counting layer on its kube
//! client, and change windows ignored (the estate's waves are a week apart; as `--ignore-
//! window`).

#[path = "common/count.rs"]
mod count;

use count::{CountLayer, Counts};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use wavelift::checks::probe::SimProber;
use wavelift::engine::runtime::{spawn, EngineConfig, AGENT_TIMEOUT, GUARD_INTERVAL};
use wavelift::engine::{EventKind, WindowClock};
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, SourceOps};

/// Each network's gateway and the spare address given to it as `probe_ip`.
const PROBE_IPS: &[(&str, &str)] = &[
    ("192.0.2.1", "192.0.2.120"),
    ("192.0.2.129", "192.0.2.250"),
    ("198.51.100.1", "198.51.100.250"),
    ("203.0.113.1", "203.0.113.250"),
];

fn plan_text(cluster: bool) -> String {
    let mut t = std::fs::read_to_string("plans/payments-estate.toml").expect("estate plan");
    if cluster {
        t = t.replacen(
            "network_model = \"l2\"",
            "network_model = \"l2\"\nchecks_from = \"cluster\"\nprobe_image = \"registry.example.internal/wavelift:0.1\"",
            1,
        );
        for (gw, pip) in PROBE_IPS {
            t = t.replacen(
                &format!("gateway = \"{gw}\"\n"),
                &format!("gateway = \"{gw}\"\nprobe_ip = \"{pip}\"\n"),
                1,
            );
        }
    }
    t
}

struct Outcome {
    vms: usize,
    verified: usize,
    requests: u64,
    watches: u64,
    pods: usize,
    /// Probe pods by purpose (`l2`, `guard`, `checks`).
    by_purpose: std::collections::BTreeMap<String, usize>,
    l2_vms: usize,
    nodes: usize,
    seconds: f64,
}

fn run(cluster: bool, speed: f64) -> Outcome {
    let text = plan_text(cluster);
    let checked = wavelift::plan::check_str(&text, "payments-estate.toml");
    let errors: Vec<String> = checked.located().iter().map(|d| d.render_text()).collect();
    let plan = Arc::new(
        checked
            .plan
            .unwrap_or_else(|| panic!("invalid plan: {errors:?}")),
    );
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = speed;
    let nodes = sc.nodes.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let r = Rehearsal::start(sc, 0).await.expect("rehearsal");
        let counts = Arc::new(Counts::default());
        let cfg = kube::Config::new(r.sim.url().parse().expect("url"));
        let client = kube::client::ClientBuilder::try_from(cfg)
            .expect("builder")
            .with_layer(&CountLayer(counts.clone()))
            .build();
        let creds = Credentials {
            user: "sim-user".into(),
            password: Secret::new("sim-password"),
        };
        let source: Arc<dyn SourceOps> = Arc::new(
            VsphereClient::new(&r.world_url, None, creds)
                .expect("vsphere")
                .with_task_poll(Duration::from_secs_f64((1.0 / speed).clamp(0.005, 1.0))),
        );
        let started = std::time::Instant::now();
        let (mut handle, task) = spawn(EngineConfig {
            plan: plan.clone(),
            client,
            source: Some(source),
            prober: Arc::new(SimProber::new(r.world_url.clone())),
            dry_run: false,
            only_vms: Default::default(),
            auto_waves: plan.waves.iter().map(|w| w.name.value.clone()).collect(),
            confirm_power_off: false,
            exit_when_done: true,
            agent_timeout: AGENT_TIMEOUT,
            guard_interval: GUARD_INTERVAL,
            window_clock: Some(WindowClock {
                start_ms: r.controllers.world.clock_ms(),
                speed: r.controllers.world.speed(),
            }),
            ignore_window: true,
            policies: Default::default(),
            forklift_source: None,
        });
        let events = tokio::spawn(async move {
            let mut pods = std::collections::BTreeMap::<String, usize>::new();
            while let Some(ev) = handle.events.recv().await {
                if let EventKind::Mutation {
                    kind, verb, name, ..
                } = &ev.kind
                {
                    if kind == "Pod" && verb == "create" {
                        let purpose = name
                            .strip_prefix("wl-probe-")
                            .and_then(|n| n.split('-').next())
                            .unwrap_or("other");
                        *pods.entry(purpose.to_string()).or_default() += 1;
                    }
                }
            }
            pods
        });
        let summary = task.await.expect("engine").expect("run");
        let by_purpose = events.await.expect("events");
        Outcome {
            vms: plan.vms.len(),
            verified: summary.verified.len(),
            requests: counts.requests.load(Ordering::Relaxed),
            watches: counts.watches.load(Ordering::Relaxed),
            pods: by_purpose.values().sum(),
            l2_vms: plan
                .vms
                .iter()
                .filter(|v| plan.model_of(v) == wavelift::plan::NetworkModel::L2)
                .count(),
            by_purpose,
            nodes,
            seconds: started.elapsed().as_secs_f64(),
        }
    })
}

fn main() {
    let speed: f64 = std::env::var("WAVELIFT_BENCH_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20000.0);
    println!("probe_cost: the 40-VM payments estate, speed {speed}, windows ignored");
    let ws = run(false, speed);
    let cl = run(true, speed);
    println!(
        "{:<12} {:>8} {:>10} {:>9} {:>8} {:>6} {:>8}",
        "checks_from", "verified", "requests", "req/VM", "watches", "pods", "wall s"
    );
    for (name, o) in [("workstation", &ws), ("cluster", &cl)] {
        println!(
            "{:<12} {:>5}/{:<2} {:>10} {:>9.2} {:>8} {:>6} {:>8.1}",
            name,
            o.verified,
            o.vms,
            o.requests,
            o.requests as f64 / o.vms as f64,
            o.watches,
            o.pods,
            o.seconds
        );
    }
    println!(
        "probe pods by purpose: {:?} ({} L2 VMs of {}; {} nodes)",
        cl.by_purpose, cl.l2_vms, cl.vms, cl.nodes
    );
    println!(
        "added by in-cluster probes: {} probe pods ({:.2} per VM), {} API requests ({:.2} per VM), {} watches",
        cl.pods,
        cl.pods as f64 / cl.vms as f64,
        cl.requests as i64 - ws.requests as i64,
        (cl.requests as f64 - ws.requests as f64) / cl.vms as f64,
        cl.watches as i64 - ws.watches as i64
    );
}
