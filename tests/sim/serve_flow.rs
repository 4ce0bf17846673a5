//! The operator's flow across processes: `wavelift sim serve --plan` in one, then, through
//! the kubeconfig it wrote, `kubectl`, `wavelift run`, `wavelift verify` (all three report
//! formats) and `wavelift migrate` in others. Ignored by default (`needs kubectl`; `tools/test`
//! runs them).

use crate::common;

use common::serve::SimServer;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
#[ignore = "needs kubectl"]
fn sim_serve_then_run_verify_report_and_migrate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = SimServer::start(
        &["--plan", "plans/quickstart.toml", "--speed", "500"],
        dir.path(),
    );
    assert_eq!(
        server.banner[1],
        format!("export KUBECONFIG={}", server.kubeconfig.display())
    );

    let out = server.kubectl(&["get", "storageclass", "-o", "name", "--request-timeout=20s"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("storageclass.storage.k8s.io/sim-standard")
    );

    let run = server.run(&["run", "plans/quickstart.toml"]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(text.contains("[REHEARSAL]"), "{text}");
    assert!(text.contains("done: 3 verified, 0 failed"), "{text}");

    let vms = server.kubectl(&["get", "vm", "-A", "-o", "name", "--request-timeout=20s"]);
    assert_eq!(
        String::from_utf8_lossy(&vms.stdout).lines().count(),
        3,
        "{vms:?}"
    );

    for (fmt, marker) in [
        ("md", "# Verify report"),
        ("json", "\"wavelift.verify/v1\""),
        ("junit", "<testsuites"),
    ] {
        let file = dir.path().join(format!("report.{fmt}"));
        let out = server.run(&[
            "verify",
            "plans/quickstart.toml",
            "--report",
            fmt,
            "--out",
            file.to_str().expect("utf8"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(vm) && l.contains(" verified:")),
                "{vm} not verified:\n{text}"
            );
        }
        let report = std::fs::read_to_string(&file).expect("report written");
        assert!(report.contains(marker), "{fmt}: {report}");
        // Each VM's downtime, as `run` recorded it on the VirtualMachine.
        let downtime = match fmt {
            "md" => "| shop-db-01 | cold |",
            "json" => "\"downtime_ms\"",
            _ => "name=\"cutover.shop-db-01\" value=\"cold migration, downtime",
        };
        assert!(report.contains(downtime), "{fmt}: {report}");
    }

    let mig = server.run(&["migrate", "plans/quickstart.toml", "--vm", "shop-db-01"]);
    let text = String::from_utf8_lossy(&mig.stdout);
    assert_eq!(
        mig.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&mig.stderr)
    );
    assert!(text.contains("Succeeded"), "{text}");
    drop(server);
}

/// `wavelift run` killed with SIGKILL at two points and started again: every VM verified,
/// nothing created twice (the cluster holds one DataVolume per disk, one VM per VM).
#[test]
#[ignore = "needs kubectl"]
fn run_killed_with_sigkill_resumes_from_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = SimServer::start(
        &["--plan", "plans/quickstart.toml", "--speed", "100"],
        dir.path(),
    );

    // Kill points: mid-import, then right after a VirtualMachine was created.
    let kill_points: [fn(&serde_json::Value) -> bool; 2] = [
        |e| {
            e["event"] == "phase"
                && e["step"] == "importing"
                && e["progress"].as_f64().is_some_and(|p| p > 0.2)
        },
        |e| e["event"] == "mutation" && e["kind"] == "VirtualMachine" && e["result"] == "created",
    ];
    for (n, kill_when) in kill_points.into_iter().enumerate() {
        run_until_killed(
            &server,
            "plans/quickstart.toml",
            &dir.path().join(format!("journal-{n}.jsonl")),
            kill_when,
        );
    }
    // The last run also overrides the change window (it is open: nothing else changes), and
    // says so in its journal.
    let last = server
        .wavelift(&[
            "run",
            "plans/quickstart.toml",
            "--ignore-window",
            "--journal",
        ])
        .arg(dir.path().join("journal.jsonl"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&last.stdout);
    assert_eq!(last.status.code(), Some(0), "{text}");
    assert!(text.contains("done: 3 verified"), "{text}");
    // Every VM's downtime is known, though two of the power-offs were requested by the
    // killed runs: the stamps on their DataVolumes carried the times over.
    assert!(text.contains("over 3 VM(s)"), "{text}");
    assert!(!text.contains("downtime unknown"), "{text}");
    let own = std::fs::read_to_string(dir.path().join("journal.jsonl")).expect("journal");
    let overrides: Vec<serde_json::Value> = own
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["verb"] == "override")
        .collect();
    assert_eq!(overrides.len(), 1, "{own}");
    assert_eq!(overrides[0]["kind"], "ChangeWindow");
    assert_eq!(overrides[0]["name"], "w1");
    assert!(overrides[0]["result"]
        .as_str()
        .is_some_and(|r| r.contains("--ignore-window")));
    // Across the three runs no object was created twice (a cold cutover imports after the
    // power-off, so the last run legitimately creates the disks of the VMs that had not
    // reached their cutover yet).
    let journal: String = ["journal-0.jsonl", "journal-1.jsonl", "journal.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
        .collect();
    let mut created: std::collections::BTreeMap<String, usize> = Default::default();
    for l in journal.lines() {
        let e: serde_json::Value = serde_json::from_str(l).expect("journal line");
        if e["result"] == "created" {
            *created
                .entry(format!("{}/{}", e["kind"], e["name"]))
                .or_default() += 1;
        }
    }
    assert!(
        created.values().all(|&n| n == 1),
        "created twice: {created:?}\n{journal}"
    );
    for (kind, n) in [("dv", 3), ("vm", 3)] {
        let out = server.kubectl(&["get", kind, "-A", "-o", "name", "--request-timeout=20s"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            n,
            "{kind}: {out:?}"
        );
    }
}

/// `wavelift run PLAN --output jsonl --journal JOURNAL`, killed with SIGKILL at the first
/// event `kill_when` picks; panics when the run ends without one.
fn run_until_killed(
    server: &SimServer,
    plan: &str,
    journal: &std::path::Path,
    kill_when: fn(&serde_json::Value) -> bool,
) {
    let mut run = server
        .wavelift(&["run", plan, "--output", "jsonl", "--journal"])
        .arg(journal)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run");
    let out = run.stdout.take().expect("stdout");
    let mut killed = false;
    for line in BufReader::new(out).lines() {
        let line = line.expect("utf8");
        let ev: serde_json::Value = serde_json::from_str(&line).expect("jsonl");
        if kill_when(&ev) {
            run.kill().expect("SIGKILL");
            killed = true;
            break;
        }
    }
    let _ = run.wait();
    assert!(
        killed,
        "the kill point was never reached ({})",
        journal.display()
    );
}

/// A scripted fault scenario file served by `wavelift sim serve --scenario`, run with
/// `wavelift run`, inspected with kubectl.
#[test]
#[ignore = "needs kubectl"]
fn scripted_fault_scenario_through_sim_serve_run_and_kubectl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = SimServer::start(
        &["--scenario", "tests/fixtures/scenario-faults.toml"],
        dir.path(),
    );
    let run = server.run(&["run", "plans/quickstart.toml"]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{text}");
    assert!(text.contains("done: 1 verified, 2 failed"), "{text}");
    // CDI restarts the failing importer in place; wavelift gives up after its limit.
    assert!(
        text.contains(
            "FAILED shop-app-01: disk 0: the importer restarted 3 times (Running Error): Unable to connect to vddk data source: simulated import failure"
        ),
        "{text}"
    );
    assert!(
        text.contains("FAILED shop-web-01: waits for shop-app-01, which failed"),
        "{text}"
    );
    let phase = |dv: &str| {
        let out = server.kubectl(&[
            "get",
            "dv",
            dv,
            "-n",
            "mig-quickstart",
            "-o",
            "jsonpath={.status.phase}/{.status.restartCount}",
            "--request-timeout=20s",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        phase("shop-db-01-disk0"),
        "Succeeded/1",
        "restarted once, then imported"
    );
    // Never `Failed`: the importer goes on restarting after wavelift gave up on it.
    let app = phase("shop-app-01-disk0");
    let (app_phase, restarts) = app.split_once('/').unwrap_or_default();
    assert_eq!(app_phase, "ImportInProgress", "{app}");
    assert!(restarts.parse::<u32>().is_ok_and(|n| n >= 3), "{app}");
}

/// A warm `wavelift run` killed with SIGKILL mid-precopy (right after a checkpoint was
/// added) and after a power-off, then run again: every VM verified with `disk-consistent`,
/// no snapshot, DataVolume or VM created twice, no snapshot left on any source VM.
#[test]
#[ignore = "needs kubectl"]
fn a_warm_run_killed_with_sigkill_resumes_without_a_second_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("warm.toml");
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "max_parallel_cutovers = 2\n",
            "max_parallel_cutovers = 2\nmigration = \"warm\"\nprecopy_interval = \"10m\"\n",
        );
    std::fs::write(&plan, text).expect("plan");
    let plan = plan.to_str().expect("utf8");
    let server = SimServer::start(&["--plan", plan, "--speed", "100"], dir.path());
    let kill_points: [fn(&serde_json::Value) -> bool; 2] = [
        |e| {
            e["event"] == "mutation"
                && e["kind"] == "DataVolume"
                && e["result"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("checkpoint"))
        },
        |e| {
            e["event"] == "mutation"
                && e["verb"] == "power-off"
                && e["result"]
                    .as_str()
                    .is_some_and(|r| !r.starts_with("error"))
        },
    ];
    for (n, kill_when) in kill_points.into_iter().enumerate() {
        run_until_killed(
            &server,
            plan,
            &dir.path().join(format!("journal-{n}.jsonl")),
            kill_when,
        );
    }
    let last = server
        .wavelift(&["run", plan, "--journal"])
        .arg(dir.path().join("journal.jsonl"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&last.stdout);
    assert_eq!(last.status.code(), Some(0), "{text}");
    assert!(text.contains("done: 3 verified"), "{text}");
    assert_eq!(
        text.matches("check disk-consistent: pass").count(),
        3,
        "{text}"
    );
    let journal: String = ["journal-0.jsonl", "journal-1.jsonl", "journal.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
        .collect();
    let mut created: std::collections::BTreeMap<String, usize> = Default::default();
    let mut snapshots = 0;
    for l in journal.lines() {
        let e: serde_json::Value = serde_json::from_str(l).expect("journal line");
        if e["verb"] == "create"
            && e["result"]
                .as_str()
                .is_some_and(|r| r.starts_with("created"))
        {
            *created
                .entry(format!("{}/{}", e["kind"], e["name"]))
                .or_default() += 1;
            snapshots += (e["kind"] == "VirtualMachineSnapshot") as usize;
        }
    }
    assert!(
        created.values().all(|&n| n == 1),
        "created twice: {created:?}\n{journal}"
    );
    assert!(
        snapshots >= 6,
        "two rounds and a final snapshot per VM: {created:?}"
    );
    // At most one wavelift snapshot per VM at any time, across the three runs (the journal
    // is in the order the calls were made).
    let mut held: std::collections::BTreeMap<String, i32> = Default::default();
    for l in journal.lines() {
        let e: serde_json::Value = serde_json::from_str(l).expect("journal line");
        if e["kind"] != "VirtualMachineSnapshot" {
            continue;
        }
        let r = e["result"].as_str().unwrap_or_default();
        let n = held
            .entry(e["vm"].as_str().unwrap_or_default().to_string())
            .or_default();
        if e["verb"] == "create" && r.starts_with("created") {
            *n += 1;
        } else if e["verb"] == "remove" && r == "removed" {
            *n -= 1;
        }
        assert!(*n <= 1, "two snapshots of {} at once:\n{journal}", e["vm"]);
    }
    // kubectl shows the stages wavelift wrote: each DataVolume's checkpoints, the final one.
    let out = server.kubectl(&["get", "dv", "-A", "-o", "yaml", "--request-timeout=20s"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert_eq!(yaml.matches("finalCheckpoint: true").count(), 3, "{yaml}");
    assert!(yaml.contains("checkpoints:"), "{yaml}");
    assert!(yaml.contains("previous: \"\""), "the first stage: {yaml}");
    assert!(yaml.contains("current: snapshot-"), "{yaml}");
    for (kind, n) in [("dv", 3), ("vm", 3)] {
        let out = server.kubectl(&["get", kind, "-A", "-o", "name", "--request-timeout=20s"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            n,
            "{kind}: {out:?}"
        );
    }
    // No snapshot is left on any source VM (vCenter's own answer, over VI/JSON).
    let url = server.banner[0]
        .rsplit(' ')
        .next()
        .expect("url")
        .trim()
        .to_string();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use wavelift::source::WarmOps;
        let vc = wavelift::source::vsphere::VsphereClient::new(
            &url,
            None,
            wavelift::source::Credentials {
                user: "sim-user".into(),
                password: wavelift::source::Secret::new("sim-password"),
            },
        )
        .expect("client");
        for vm in ["shop-db-01", "shop-app-01", "shop-web-01"] {
            let view = vc.warm_view(vm, None).await.expect("warm view");
            assert!(view.snapshots.is_empty(), "{vm}: {:?}", view.snapshots);
        }
    });
}

/// In-cluster probes through the CLI (`checks_from = "cluster"`): `wavelift run` is killed
/// with SIGKILL while a probe pod exists (the per-node proof's pod on sim-node-3, which has
/// no bridge and so waits in ContainerCreating); `kubectl get pods` shows it with its
/// status; the resumed run deletes it as left over, keeps the VMs off sim-node-3, verifies
/// every VM through ARP, and leaves no probe pod behind.
#[test]
#[ignore = "needs kubectl"]
fn a_run_killed_while_probe_pods_exist_resumes_without_leaving_any() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string("plans/quickstart.toml")
        .expect("quickstart")
        .replace(
            "network_model = \"l2\"",
            "network_model = \"l2\"\nchecks_from = \"cluster\"\nprobe_image = \"registry.example.internal/wavelift:0.1\"",
        )
        .replace("guest_agent = true ", "guest_agent = false ")
        .replace(
            "gateway = \"192.0.2.1\"\n",
            "gateway = \"192.0.2.1\"\nprobe_ip = \"192.0.2.250\"\nbridge_marker = false\n",
        );
    std::fs::write(&plan, text).expect("plan");
    let plan = plan.to_str().expect("utf8");
    let server = SimServer::start(
        &["--scenario", "tests/fixtures/scenario-probes.toml"],
        dir.path(),
    );
    run_until_killed(&server, plan, &dir.path().join("journal-0.jsonl"), |e| {
        e["event"] == "mutation"
            && e["kind"] == "Pod"
            && e["verb"] == "create"
            && e["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("sim-node-3"))
    });
    let pods = |server: &SimServer| {
        let out = server.kubectl(&[
            "get",
            "pods",
            "-n",
            "mig-quickstart",
            "-l",
            "wavelift.io/probe",
        ]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let during = pods(&server);
    assert!(
        during.contains("wl-probe-l2-vlan-210-sim-node-3") && during.contains("STATUS"),
        "{during}"
    );
    assert!(during.contains("ContainerCreating"), "{during}");
    let last = server
        .wavelift(&["run", plan, "--output", "jsonl", "--journal"])
        .arg(dir.path().join("journal.jsonl"))
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&last.stdout);
    assert_eq!(last.status.code(), Some(0), "{out}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let said = |needle: &str| {
        events
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
    };
    assert!(said("left over"), "{out}");
    assert!(said("bridge br-trunk is missing"), "{out}");
    let passes = events
        .iter()
        .filter(|e| {
            e["event"] == "check"
                && e["check"] == "mac-preserved"
                && e["outcome"] == "pass"
                && e["detail"].as_str().is_some_and(|d| d.contains("ARP"))
        })
        .count();
    assert_eq!(passes, 3, "{out}");
    assert!(pods(&server).contains("No resources found"));
    let nodes = server.kubectl(&[
        "get",
        "vmi",
        "-n",
        "mig-quickstart",
        "-o",
        "jsonpath={.items[*].status.nodeName}",
    ]);
    let nodes = String::from_utf8_lossy(&nodes.stdout).to_string();
    assert_eq!(nodes.split_whitespace().count(), 3, "{nodes}");
    assert!(!nodes.contains("sim-node-3"), "{nodes}");
}
