//! A synthetic estate through the rehearsal cluster, end to end, in two ways (each run in
//! its own process, `wavelift sim serve --speed 1000000` in another, so the sim's memory is
//! not counted):
//!
//! - `cli`: what a user runs, `wavelift run PLAN` with its defaults (text output to a pipe)
//!   through the sim's kubeconfig. Reports its wall time and peak RSS (`wait4`), and whether
//!   it exited 0 (every VM verified).
//! - `engine`: the same engine in this process ([`spawn`] with `wavelift run`'s settings)
//!   with a request-counting layer on its kube client: wall time, Kubernetes API requests
//!   per VM besides watches, peak RSS (VmHWM). Differences from `cli`: no Lease, no journal,
//!   no text output, no `connect` (discovery of the sim's clock).
//!
//! The plan: `plan::synth` with its default shape (8 imports and 4 cutovers per wave, one
//! wave per 2,000 VMs, a tenth of the VMs on the pod network), without change windows (the
//! synthetic waves' windows lie on different nights, which pass in a blink at the sim's
//! speed: every VM would be postponed).
//!
//! `cargo bench --bench engine_wave` (VM counts: `WAVELIFT_BENCH_VMS=1000,5000,10000`; runs
//! per count, reported as medians: `WAVELIFT_BENCH_RUNS=3`; `WAVELIFT_BENCH_MODE=cli|engine|both`).
//! Targets: wall time 5,000 → 10,000 VMs ≤ 2.2×; ≤ 5 requests per VM besides watches; peak
//! RSS ≤ 150 MiB at 10,000 VMs. `WAVELIFT_BENCH_PLAN=N:FILE` writes the plan for N VMs
//! and stops (to run `wavelift sim serve` and `wavelift run` by hand, under a profiler).

#[path = "common/count.rs"]
mod count;

use count::{CountLayer, Counts};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wavelift::checks::probe::SimProber;
use wavelift::engine::runtime::{spawn, EngineConfig, AGENT_TIMEOUT, GUARD_INTERVAL};
use wavelift::plan::synth::{generate, SynthSpec};
use wavelift::source::vsphere::VsphereClient;
use wavelift::source::{Credentials, Secret, SourceOps};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The bench plan for `n` VMs (see the module doc).
fn bench_plan(n: usize) -> String {
    let text = generate(SynthSpec {
        vms: n,
        waves: n.div_ceil(2000),
        networks: n.div_ceil(250).max(1),
        l3_every: 10,
    });
    text.lines()
        .filter(|l| !l.starts_with("window = "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `wavelift sim serve` for the plan, and its URL.
fn sim_serve(
    plan_path: &std::path::Path,
    kubeconfig: &std::path::Path,
    dir: &std::path::Path,
) -> (std::process::Child, String) {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_wavelift"))
        .args(["sim", "serve", "--speed", "1000000", "--plan"])
        .arg(plan_path)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("WAVELIFT_LOG_DIR", dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("sim serve");
    let out = sim.stdout.take().expect("stdout");
    let mut url = String::new();
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line.expect("read");
        if let Some(u) = line.strip_prefix("wavelift rehearsal cluster serving on ") {
            url = u.trim().to_string();
            break;
        }
    }
    // Keep reading the server's output so it never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    assert!(!url.is_empty(), "sim serve did not start");
    (sim, url)
}

/// The user's path: `wavelift run PLAN` (defaults) against `sim serve`.
// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn cli(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, bench_plan(n)).expect("write plan");
    let kubeconfig = dir.path().join("kubeconfig");
    let (mut sim, _url) = sim_serve(&plan_path, &kubeconfig, dir.path());
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_wavelift"))
        .arg("run")
        .arg(&plan_path)
        .env("KUBECONFIG", &kubeconfig)
        .env("WAVELIFT_LOG_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wavelift run");
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    // wait4: the exit status and the child's own peak RSS.
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, status and usage point to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(r, pid, "wait4");
    let _ = sim.kill();
    let _ = sim.wait();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let text = errors.join().unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        println!("  wavelift run exited {status}: {tail:?}");
    }
    let rss = usage.ru_maxrss as f64 / 1024.0;
    println!(
        "engine_wave/cli/{n}_vms: wall {:.1} s, exit {}, peak RSS {rss:.1} MiB",
        wall.as_secs_f64(),
        if ok {
            "0 (every VM verified)"
        } else {
            "non-zero"
        },
    );
    println!(
        "RESULT {} {} NaN NaN {rss}",
        wall.as_secs_f64(),
        if ok { n } else { 0 }
    );
}

/// The engine in this process, with a request-counting kube client.
fn one(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = bench_plan(n);
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, &text).expect("write plan");
    let kubeconfig = dir.path().join("kubeconfig");
    let (mut sim, url) = sim_serve(&plan_path, &kubeconfig, dir.path());
    // As `wavelift run` does.
    wavelift::engine::runtime::limit_malloc_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let counts = Arc::new(Counts::default());
    let (wall, summary) = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        let client = kube::client::ClientBuilder::try_from(cfg)
            .expect("builder")
            .with_layer(&CountLayer(counts.clone()))
            .build();
        let plan = Arc::new(
            wavelift::plan::check_str(&text, "bench.toml")
                .plan
                .expect("valid"),
        );
        wavelift::engine::runtime::release_free_memory();
        let creds = Credentials {
            user: "sim-user".into(),
            password: Secret::new("sim-password"),
        };
        let source: Arc<dyn SourceOps> =
            Arc::new(VsphereClient::new(&url, None, creds).expect("vsphere"));
        let start = Instant::now();
        let (mut handle, task) = spawn(EngineConfig {
            plan: plan.clone(),
            client,
            source: Some(source),
            prober: Arc::new(SimProber::new(url.clone())),
            dry_run: false,
            only_vms: Default::default(),
            auto_waves: plan.waves.iter().map(|w| w.name.value.clone()).collect(),
            confirm_power_off: false,
            exit_when_done: true,
            agent_timeout: AGENT_TIMEOUT,
            guard_interval: GUARD_INTERVAL,
            // The bench plan has no windows (see the module doc).
            window_clock: None,
            ignore_window: false,
            policies: Default::default(),
            forklift_source: None,
        });
        // `WAVELIFT_BENCH_EVENTS=FILE`: the run's events as JSON lines (to see where time
        // went); otherwise they are drained.
        let dump = std::env::var_os("WAVELIFT_BENCH_EVENTS")
            .and_then(|p| std::fs::File::create(p).ok())
            .map(std::io::BufWriter::new);
        tokio::spawn(async move {
            use std::io::Write;
            let mut dump = dump;
            while let Some(ev) = handle.events.recv().await {
                if let Some(w) = dump.as_mut() {
                    if let Ok(line) = serde_json::to_string(&ev) {
                        let _ = writeln!(w, "{line}");
                    }
                }
            }
            if let Some(mut w) = dump {
                let _ = w.flush();
            }
        });
        let s = tokio::time::timeout(Duration::from_secs(1800), task)
            .await
            .expect("ends")
            .expect("join")
            .expect("run");
        (start.elapsed(), s)
    });
    for (vm, why) in summary.failed.iter().take(5) {
        println!("  failed {vm}: {why}");
    }
    for vm in summary.unfinished.iter().take(5) {
        println!("  unfinished {vm}");
    }
    let _ = sim.kill();
    let _ = sim.wait();
    let requests = counts.requests.load(Ordering::Relaxed);
    let watches = counts.watches.load(Ordering::Relaxed);
    let rss = vm_hwm_kib() as f64 / 1024.0;
    println!(
        "engine_wave/engine/{n}_vms: wall {:.1} s, verified {}/{n}, {} API requests besides watches ({:.2} per VM), {} watch requests, peak RSS {rss:.1} MiB",
        wall.as_secs_f64(),
        summary.verified.len(),
        requests,
        requests as f64 / n as f64,
        watches,
    );
    let per_vm: Vec<String> = counts
        .breakdown()
        .iter()
        .map(|(k, c)| format!("{k} {:.2}", *c as f64 / n as f64))
        .collect();
    println!("  requests per VM by kind: {}", per_vm.join(", "));
    // For the parent's medians.
    println!(
        "RESULT {} {} {} {} {rss}",
        wall.as_secs_f64(),
        summary.verified.len(),
        requests as f64 / n as f64,
        watches
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() {
    // `cargo test --benches` runs benches as tests: keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list")
        && std::env::var_os("WAVELIFT_BENCH_VMS").is_none()
    {
        one(20);
        cli(20);
        return;
    }
    // `WAVELIFT_BENCH_PLAN=N:FILE`: write the bench plan for N VMs and stop (to run
    // `wavelift sim serve` and `wavelift run` by hand, e.g. under a heap profiler).
    if let Ok(spec) = std::env::var("WAVELIFT_BENCH_PLAN") {
        let (n, file) = spec.split_once(':').expect("N:FILE");
        std::fs::write(file, bench_plan(n.parse().expect("VM count"))).expect("write plan");
        return;
    }
    if let Ok(n) = std::env::var("WAVELIFT_BENCH_CHILD") {
        let n = n.parse().expect("VM count");
        match std::env::var("WAVELIFT_BENCH_CHILD_MODE").as_deref() {
            Ok("cli") => cli(n),
            _ => one(n),
        }
        return;
    }
    let sizes = std::env::var("WAVELIFT_BENCH_VMS").unwrap_or_else(|_| "1000,5000,10000".into());
    let runs: usize = std::env::var("WAVELIFT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let modes: Vec<&str> = match std::env::var("WAVELIFT_BENCH_MODE").as_deref() {
        Ok("cli") => vec!["cli"],
        Ok("engine") => vec!["engine"],
        _ => vec!["cli", "engine"],
    };
    // Median wall time per mode and size, for the growth ratios.
    let mut walls: Vec<(String, usize, f64)> = Vec::new();
    for mode in &modes {
        // One process per run, so each peak RSS is its own.
        for n in sizes.split(',').filter(|s| !s.is_empty()) {
            let n: usize = n.trim().parse().expect("VM count");
            let mut rows: Vec<[f64; 5]> = Vec::new();
            for _ in 0..runs {
                let out = Command::new(std::env::current_exe().expect("self"))
                    .env("WAVELIFT_BENCH_CHILD", n.to_string())
                    .env("WAVELIFT_BENCH_CHILD_MODE", mode)
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("child");
                let text = String::from_utf8_lossy(&out.stdout);
                for line in text.lines().filter(|l| !l.starts_with("RESULT ")) {
                    println!("{line}");
                }
                assert!(out.status.success(), "{n} VMs failed");
                let row: Vec<f64> = text
                    .lines()
                    .find_map(|l| l.strip_prefix("RESULT "))
                    .expect("result line")
                    .split(' ')
                    .map(|x| x.parse().expect("number"))
                    .collect();
                rows.push([row[0], row[1], row[2], row[3], row[4]]);
            }
            let col = |i: usize| median(rows.iter().map(|r| r[i]).collect());
            let worst_verified = rows.iter().map(|r| r[1]).fold(f64::INFINITY, f64::min);
            // The CLI's requests are not counted (it has its own client): only the engine's.
            let requests = if col(2).is_nan() {
                String::new()
            } else {
                format!(
                    ", {:.2} requests per VM besides watches, {} watch requests",
                    col(2),
                    col(3)
                )
            };
            println!(
                "engine_wave/{mode}/{n}_vms median of {runs}: wall {:.1} s, verified {}/{n} (fewest {worst_verified}){requests}, peak RSS {:.1} MiB",
                col(0),
                col(1),
                col(4)
            );
            walls.push((mode.to_string(), n, col(0)));
        }
    }
    for (mode, n, wall) in &walls {
        if let Some((_, half, w)) = walls.iter().find(|(m, h, _)| m == mode && h * 2 == *n) {
            println!(
                "engine_wave/{mode}: {half} → {n} VMs: wall time × {:.2} (target ≤ 2.2)",
                wall / w
            );
        }
    }
}
