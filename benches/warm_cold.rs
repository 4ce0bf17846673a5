//! Warm against cold migration of one wave on the rehearsal cluster, in one bench run:
//! 20 VMs of 200 GiB whose guests write 1 % of their disk per hour.
//!
//! Fixed parameters (printed): 200 MiB/s per import, 1 GiB/s in total, boot 20 s, guest
//! agent 15 s, guest shutdown 20 s, precopy interval 1 h; the warm wave's window opens
//! 3 h 20 min after the world's clock starts (3 precopy rounds: the first a whole copy),
//! the cold wave's at once. Both waves: 20 imports and 20 cutovers at a time.
//!
//! Reported per type: median and maximum downtime per VM (power-off request to every
//! check passing, on the rehearsal's clock), the wave's total time (world clock), and
//! Kubernetes API requests (besides watches) and vCenter requests (REST and VI/JSON) per
//! VM; beside them the downtime ratio the parameters predict.
//!
//! `cargo bench --bench warm_cold` (`WAVELIFT_BENCH_SPEED`, default 100: simulated seconds
//! per real second; faster rehearsals add the engine's reaction time × speed to every
//! step). Differences from `wavelift run PLAN`: the engine runs in this process against an
//! embedded rehearsal (as `wavelift run` does without a kubeconfig), with a
//! request-counting layer on its kube client, and the world's clock set as described.
//! Target: warm median downtime ≤ 5 % of cold.

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

const VMS: usize = 20;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const DISK: u64 = 200 * GIB;
const PER_IMPORT: u64 = 200 * MIB;
const TOTAL: u64 = GIB;
const BOOT_S: f64 = 20.0;
const AGENT_S: f64 = 15.0;
const SHUTDOWN_S: f64 = 20.0;
const INTERVAL_S: u64 = 3600;
/// 1 % of the disk per hour, in bytes per second.
const WRITE_RATE: u64 = DISK / 100 / 3600;
/// The warm wave's window opens this long after the world's clock starts.
const WARM_WINDOW_AFTER_S: i64 = 3 * 3600 + 20 * 60;
const WINDOW_START: &str = "2026-12-05T22:00:00Z";

fn plan_text(warm: bool) -> String {
    let mut t = format!(
        r#"[plan]
name = "bench-{kind}"
namespace = "mig-bench"

[source]
type = "vsphere"
url = "https://vcenter.example.internal"
credentials_secret = "vsphere-creds"
thumbprint = "20:6C:8A:1F:3B:94:D2:77:0E:5C:A1:B8:49:33:F0:6E:12:9D:C4:A3"
vddk_init_image = "registry.example.internal/vddk-init:8.0.3"
power_off = "vsphere-api"

[defaults]
storage_class = "sim-standard"
guest_agent = true
checks = ["icmp", "disk-consistent"]

[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "10.21.0.0/16"
gateway = "10.21.0.1"
owner = "netsec"

[[wave]]
name = "w1"
window = {{ start = {WINDOW_START}, end = 2026-12-06T10:00:00Z }}
max_parallel_imports = {VMS}
max_parallel_cutovers = {VMS}
migration = "{kind}"
precopy_interval = "1h"
"#,
        kind = if warm { "warm" } else { "cold" }
    );
    for i in 0..VMS {
        t.push_str(&format!(
            r#"
[[vm]]
name = "db-{i:02}"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789{i:02}"
cpu = 4
memory = "16Gi"
nics = [{{ network = "vlan-210", ip = "10.21.1.{ip}", mac = "00:50:56:aa:01:{i:02x}" }}]
disks = [{{ backing_file = "[ds1] db-{i:02}/db-{i:02}.vmdk", size = "200Gi" }}]
"#,
            ip = 10 + i
        ));
    }
    t
}

struct Outcome {
    downtimes_s: Vec<f64>,
    wave_s: f64,
    verified: usize,
    k8s_per_vm: f64,
    vcenter_per_vm: f64,
    rounds: Vec<u32>,
    /// Bytes each warm VM's final stage copied (vCenter's changed areas).
    final_deltas: Vec<f64>,
}

fn run(warm: bool, speed: f64) -> Outcome {
    let plan = Arc::new(
        wavelift::plan::check_str(&plan_text(warm), "bench.toml")
            .plan
            .unwrap_or_else(|| {
                panic!(
                    "invalid bench plan: {:?}",
                    wavelift::plan::check_str(&plan_text(warm), "bench.toml")
                        .located()
                        .iter()
                        .map(|d| d.render_text())
                        .collect::<Vec<_>>()
                )
            }),
    );
    let mut sc = Scenario::from_plan(&plan);
    sc.speed = speed;
    sc.bandwidth_per_import = PER_IMPORT;
    sc.bandwidth_total = TOTAL;
    sc.boot_seconds = BOOT_S;
    sc.agent_seconds = AGENT_S;
    sc.shutdown_seconds = SHUTDOWN_S;
    for v in &mut sc.source_vms {
        v.write_rate = WRITE_RATE;
    }
    let window = plan.waves[0].window.as_ref().expect("window").start.unix * 1000;
    sc.clock_start_ms = Some(if warm {
        window - WARM_WINDOW_AFTER_S * 1000
    } else {
        window - 1000
    });
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
                // As `wavelift run` polls the rehearsal's tasks: every simulated second.
                .with_task_poll(Duration::from_secs_f64((1.0 / speed).clamp(0.005, 1.0))),
        );
        let clock = WindowClock {
            start_ms: r.controllers.world.clock_ms(),
            speed: r.controllers.world.speed(),
        };
        let vcenter_before = r.vcenter.requests.load(Ordering::Relaxed);
        let (mut handle, task) = spawn(EngineConfig {
            plan: plan.clone(),
            client,
            source: Some(source),
            prober: Arc::new(SimProber::new(r.world_url.clone())),
            dry_run: false,
            only_vms: Default::default(),
            auto_waves: vec!["w1".into()],
            confirm_power_off: false,
            exit_when_done: true,
            agent_timeout: AGENT_TIMEOUT,
            guard_interval: GUARD_INTERVAL,
            window_clock: Some(clock),
            ignore_window: false,
            policies: Default::default(),
            forklift_source: None,
        });
        let events = tokio::spawn(async move {
            let mut downtimes = Vec::new();
            let mut rounds = Vec::new();
            let mut deltas = Vec::new();
            while let Some(ev) = handle.events.recv().await {
                if let EventKind::Cutover {
                    downtime_ms,
                    precopy_rounds,
                    final_delta_bytes,
                    ..
                } = ev.kind
                {
                    downtimes.push(downtime_ms as f64 / 1000.0);
                    rounds.push(precopy_rounds);
                    if let Some(b) = final_delta_bytes {
                        deltas.push(b as f64);
                    }
                }
            }
            (downtimes, rounds, deltas)
        });
        let started = r.controllers.world.clock_ms();
        let summary = tokio::time::timeout(Duration::from_secs(3600), task)
            .await
            .expect("the wave ends within an hour")
            .expect("join")
            .expect("run");
        let wave_s = (r.controllers.world.clock_ms() - started) as f64 / 1000.0;
        let (downtimes_s, rounds, final_deltas) = events.await.expect("events");
        for (vm, why) in summary.failed.iter().take(3) {
            println!("  failed {vm}: {why}");
        }
        Outcome {
            downtimes_s,
            wave_s,
            verified: summary.verified.len(),
            k8s_per_vm: counts.requests.load(Ordering::Relaxed) as f64 / VMS as f64,
            vcenter_per_vm: (r.vcenter.requests.load(Ordering::Relaxed) - vcenter_before) as f64
                / VMS as f64,
            rounds,
            final_deltas,
        }
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    let speed: f64 = std::env::var("WAVELIFT_BENCH_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100.0);
    println!(
        "warm_cold: {VMS} VMs × {} GiB, writes {:.0} MiB/h each (1 %/h); {} MiB/s per import, {} GiB/s total; boot {BOOT_S} s, agent {AGENT_S} s, guest shutdown {SHUTDOWN_S} s; precopy interval {} h; speed {speed}",
        DISK / GIB,
        (WRITE_RATE * 3600) as f64 / MIB as f64,
        PER_IMPORT / MIB,
        TOTAL / GIB,
        INTERVAL_S / 3600
    );
    // What the parameters predict: a cold cutover copies the whole disk with all 20 at
    // once sharing the total bandwidth; a warm one copies the writes since its last round
    // (at most one interval's, about 20 min's here with the window 20 min after round 3).
    let share = (PER_IMPORT as f64).min(TOTAL as f64 / VMS as f64);
    let fixed = SHUTDOWN_S + BOOT_S + AGENT_S;
    let cold_pred = fixed + DISK as f64 / share;
    let delta = WRITE_RATE as f64 * 20.0 * 60.0;
    // Final snapshot (3 s), removal (5 s), the delta, and the rest as cold.
    let warm_pred = fixed + 3.0 + 5.0 + delta / share;
    let cold = run(false, speed);
    let warm = run(true, speed);
    for (name, o) in [("cold", &cold), ("warm", &warm)] {
        println!(
            "warm_cold/{name}: verified {}/{VMS}; downtime per VM median {:.0} s, max {:.0} s; wave {:.0} s (world clock); {:.2} Kubernetes API requests per VM besides watches; {:.2} vCenter requests per VM; precopy rounds {:?}; final delta per VM median {:.2} GiB",
            o.verified,
            median(&o.downtimes_s),
            o.downtimes_s.iter().copied().fold(0.0, f64::max),
            o.wave_s,
            o.k8s_per_vm,
            o.vcenter_per_vm,
            o.rounds.iter().max(),
            median(&o.final_deltas) / GIB as f64,
        );
    }
    let measured = median(&warm.downtimes_s) / median(&cold.downtimes_s);
    println!(
        "warm_cold: warm/cold median downtime {:.2} % measured, {:.2} % predicted ({:.0} s / {:.0} s); target ≤ 5 %",
        measured * 100.0,
        warm_pred / cold_pred * 100.0,
        warm_pred,
        cold_pred
    );
}
