//! One driver per plan: the plan's Lease (`wavelift-<plan>` in the plan's namespace).
//!
//! In-process against the embedded rehearsal cluster: create / refuse / release / take over,
//! a dead holder of this host taken over at once, another host's silent holder taken over
//! after its lease duration (waiting on the result, with a 1 s Lease), a renewing one
//! refused, RBAC denials naming the permission, renewal and loss.
//!
//! Across processes against `wavelift sim serve` (the real binary, like a second operator):
//! a second `wavelift run` on a held plan refuses naming the holder (a dry run does not need
//! the Lease), two runs started together end with exactly one driving, a run killed with
//! SIGKILL is resumed at once by the next, a run whose Lease is taken stops (exit 3), and
//! (tmux) the TUI opens read-only naming the holder, or drives and releases on quit.

use crate::common;

use common::serve::SimServer;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use wavelift::cluster::lease::{
    self, Alive, Identity, LeaseError, LeaseTarget, LeaseTiming, Liveness, Record, TakeReason,
};
use wavelift::sim::access::AccessRule;
use wavelift::sim::controllers::rehearsal::Rehearsal;
use wavelift::sim::controllers::scenario::Scenario;

const NS: &str = "mig-quickstart";
const LEASE: &str = "wavelift-quickstart";

// ---------------------------------------------------------------------------------------
// In-process

async fn rehearsal(deny: Vec<AccessRule>) -> Rehearsal {
    let plan = common::load_plan("plans/quickstart.toml");
    let mut scenario = Scenario::from_plan(&plan);
    scenario.rbac_deny = deny;
    Rehearsal::start(scenario, 0).await.expect("rehearsal")
}

/// Fast timing for tests: the renewer and the watcher look every 100 ms.
const FAST: LeaseTiming = LeaseTiming {
    duration: Duration::from_secs(30),
    renew_period: Duration::from_millis(100),
    renew_deadline: Duration::from_secs(1),
    retry_period: Duration::from_millis(100),
    request_timeout: Duration::from_secs(5),
};

fn target(client: Client, user: &str, host: &str, pid: u32) -> LeaseTarget {
    let mut t = LeaseTarget::new(client, NS, "quickstart");
    t.me = Identity {
        user: user.into(),
        host: host.into(),
        pid,
    };
    t.timing = FAST;
    t
}

async fn record(client: &Client) -> Record {
    let l = Api::<Lease>::namespaced(client.clone(), NS)
        .get(LEASE)
        .await
        .expect("the Lease exists");
    Record::from_spec(l.spec.as_ref())
}

/// Writes a Lease as another wavelift (on another host) would have.
async fn foreign_lease(client: &Client, holder: &str, duration_seconds: i32, transitions: i32) {
    let now = Timestamp::now();
    Api::<Lease>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(
                    Record {
                        holder: holder.into(),
                        duration_seconds,
                        acquire_time: Some(now),
                        renew_time: Some(now),
                        transitions,
                    }
                    .to_spec(),
                ),
            },
        )
        .await
        .expect("create");
}

/// Sets the Lease's holder as another driver taking it would (an update with the
/// resourceVersion read).
async fn steal(client: &Client, thief: &str) {
    let api = Api::<Lease>::namespaced(client.clone(), NS);
    let mut l = api.get(LEASE).await.expect("get");
    let mut r = Record::from_spec(l.spec.as_ref());
    r.holder = thief.into();
    r.transitions += 1;
    r.acquire_time = Some(Timestamp::now());
    r.renew_time = r.acquire_time;
    l.spec = Some(r.to_spec());
    api.replace(LEASE, &PostParams::default(), &l)
        .await
        .expect("steal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_refused_while_held_released_then_taken_with_a_transition() {
    let r = rehearsal(Vec::new()).await;
    let c = r.client();
    let first = target(c.clone(), "alice", "jump-1", 1);
    let (g1, got) = lease::acquire_with(&first, |_| Liveness::Running, &mut |_| {})
        .await
        .expect("free: taken");
    assert_eq!(got.reason, TakeReason::Absent);
    let rec = record(&c).await;
    assert_eq!(rec.holder, "alice@jump-1/1");
    assert_eq!(rec.duration_seconds, 30);
    assert_eq!(rec.transitions, 0);
    assert!(rec.acquire_time.is_some() && rec.renew_time.is_some());
    let raw = Api::<Lease>::namespaced(c.clone(), NS)
        .get(LEASE)
        .await
        .expect("get");
    assert_eq!(
        raw.metadata
            .labels
            .unwrap_or_default()
            .get("wavelift.io/plan")
            .map(String::as_str),
        Some("quickstart")
    );
    // Wall-clock MicroTime: within a minute of this machine's clock.
    let acquired = rec.acquire_time.expect("acquireTime");
    let skew = Timestamp::now().duration_since(acquired).as_secs().abs();
    assert!(skew < 60, "acquireTime {acquired} is not wall-clock time");

    // Another terminal of the same operator: refused at once, naming holder and time.
    let second = target(c.clone(), "alice", "jump-1", 2);
    let t = Instant::now();
    let e = lease::acquire_with(&second, |_| Liveness::Running, &mut |_| {})
        .await
        .err()
        .expect("held: refused");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "refused without waiting"
    );
    match &e {
        LeaseError::Held {
            holder,
            since,
            alive,
            lease,
        } => {
            assert_eq!(holder, "alice@jump-1/1");
            assert_eq!(*since, Some(acquired));
            assert_eq!(*alive, Alive::RunningHere);
            assert_eq!(lease, "mig-quickstart/wavelift-quickstart");
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("driven by alice@jump-1/1 since ") && msg.contains(" UTC"),
        "{msg}"
    );

    // Release clears the holder (only ours: with our resourceVersion).
    assert!(g1.release().await.expect("release"));
    let rec = record(&c).await;
    assert_eq!(rec.holder, "");
    assert_eq!(rec.transitions, 0);

    let (g2, got) = lease::acquire_with(&second, |_| Liveness::Running, &mut |_| {})
        .await
        .expect("released: taken");
    assert_eq!(got.reason, TakeReason::Released);
    let rec = record(&c).await;
    assert_eq!(rec.holder, "alice@jump-1/2");
    assert_eq!(rec.transitions, 1);
    assert!(g2.release().await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_of_this_host_is_taken_over_at_once() {
    let r = rehearsal(Vec::new()).await;
    let c = r.client();
    let dead = target(c.clone(), "alice", "jump-1", 41);
    let (g, _) = lease::acquire_with(&dead, |_| Liveness::Running, &mut |_| {})
        .await
        .expect("taken");
    drop(g); // SIGKILL: no release, no more renewals
    let next = target(c.clone(), "alice", "jump-1", 42);
    let t = Instant::now();
    let (g, got) = lease::acquire_with(
        &next,
        |pid| {
            if pid == 41 {
                Liveness::Gone
            } else {
                Liveness::Running
            }
        },
        &mut |w| panic!("waited for a dead holder: {w:?}"),
    )
    .await
    .expect("taken over");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(got.reason, TakeReason::HolderGone("alice@jump-1/41".into()));
    let rec = record(&c).await;
    assert_eq!(rec.holder, "alice@jump-1/42");
    assert_eq!(rec.transitions, 1);
    g.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_silent_holder_is_taken_over_after_its_lease_duration() {
    let r = rehearsal(Vec::new()).await;
    let c = r.client();
    // Stopped renewing (its host crashed); a 1 s Lease keeps the test short.
    foreign_lease(&c, "bob@jump-2/7", 1, 4).await;
    let me = target(c.clone(), "alice", "jump-1", 1);
    let mut waits = Vec::new();
    let t = Instant::now();
    let (g, got) = tokio::time::timeout(
        Duration::from_secs(20),
        lease::acquire_with(&me, |_| panic!("bob's pid is not of this host"), &mut |w| {
            waits.push(w.clone())
        }),
    )
    .await
    .expect("taken over within 20 s")
    .expect("taken over");
    assert_eq!(got.reason, TakeReason::Expired("bob@jump-2/7".into()));
    // Not before a full lease duration from our first look.
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(!waits.is_empty());
    assert_eq!(waits[0].holder, "bob@jump-2/7");
    assert_eq!(waits[0].lease, "mig-quickstart/wavelift-quickstart");
    let rec = record(&c).await;
    assert_eq!(rec.holder, "alice@jump-1/1");
    assert_eq!(rec.transitions, 5);
    g.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_holder_that_renews_is_refused() {
    let r = rehearsal(Vec::new()).await;
    let c = r.client();
    foreign_lease(&c, "bob@jump-2/7", 5, 0).await;
    // Bob renews every 200 ms.
    let bob = {
        let api = Api::<Lease>::namespaced(c.clone(), NS);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(mut l) = api.get(LEASE).await {
                    if let Some(s) = l.spec.as_mut() {
                        s.renew_time = Some(MicroTime(Timestamp::now()));
                    }
                    let _ = api.replace(LEASE, &PostParams::default(), &l).await;
                }
            }
        })
    };
    let me = target(c.clone(), "alice", "jump-1", 1);
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        lease::acquire_with(&me, |_| Liveness::Unknown, &mut |_| {}),
    )
    .await
    .expect("decided within 20 s")
    .err()
    .expect("refused");
    bob.abort();
    assert!(
        matches!(&e, LeaseError::Held { holder, alive: Alive::Renewing, .. } if holder == "bob@jump-2/7"),
        "{e:?}"
    );
    assert!(e.to_string().contains("it renews the Lease"), "{e}");
    assert_eq!(record(&c).await.holder, "bob@jump-2/7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_denials_on_leases_name_the_missing_permission() {
    for verb in ["get", "create"] {
        let r = rehearsal(vec![AccessRule::new(verb, "coordination.k8s.io", "leases")]).await;
        let me = target(r.client(), "alice", "jump-1", 1);
        let e = lease::acquire_with(&me, |_| Liveness::Running, &mut |_| {})
            .await
            .err()
            .expect("forbidden");
        assert!(
            matches!(&e, LeaseError::Forbidden { verb: v, .. } if *v == verb),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "cannot {verb} Lease mig-quickstart/wavelift-quickstart: forbidden"
            )) && msg.contains(
                "get, create and update on leases.coordination.k8s.io in namespace mig-quickstart"
            ),
            "{msg}"
        );
    }
    // Update denied: a released Lease cannot be taken.
    let r = rehearsal(vec![AccessRule::new(
        "update",
        "coordination.k8s.io",
        "leases",
    )])
    .await;
    let c = r.client();
    foreign_lease(&c, "", 1, 0).await;
    let me = target(c, "alice", "jump-1", 1);
    let e = lease::acquire_with(&me, |_| Liveness::Running, &mut |_| {})
        .await
        .err()
        .expect("forbidden");
    assert!(
        matches!(&e, LeaseError::Forbidden { verb: "update", .. }),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_named() {
    let r = rehearsal(Vec::new()).await;
    let mut me = target(r.client(), "alice", "jump-1", 1);
    me.api = Api::namespaced(r.client(), "nowhere");
    me.namespace = "nowhere".into();
    let e = lease::acquire_with(&me, |_| Liveness::Running, &mut |_| {})
        .await
        .err()
        .expect("no namespace");
    let msg = e.to_string();
    assert!(
        msg.contains(
            "cannot create Lease nowhere/wavelift-quickstart: namespace nowhere does not exist"
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_renews_and_learns_when_another_driver_took_the_lease() {
    let r = rehearsal(Vec::new()).await;
    let c = r.client();
    let me = target(c.clone(), "alice", "jump-1", 1);
    let (g, got) = lease::acquire_with(&me, |_| Liveness::Running, &mut |_| {})
        .await
        .expect("taken");
    let first = got.record.renew_time;
    // Renewed: renewTime moves (waiting on that, bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rec = record(&c).await;
        if rec.renew_time != first {
            assert_eq!(rec.holder, "alice@jump-1/1");
            assert_eq!(
                rec.acquire_time, got.record.acquire_time,
                "acquireTime kept"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never renewed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(g.lost_reason(), None);
    steal(&c, "mallory@jump-3/9").await;
    let why = tokio::time::timeout(Duration::from_secs(10), g.lost())
        .await
        .expect("the loss is noticed at the next renewal");
    assert!(why.contains("taken over by mallory@jump-3/9"), "{why}");
    // Not ours any more: release leaves the thief's Lease alone.
    assert!(!g.release().await.expect("release"));
    assert_eq!(record(&c).await.holder, "mallory@jump-3/9");
}

// ---------------------------------------------------------------------------------------
// Across processes: the real binary against `wavelift sim serve`

/// The quickstart plan with `power_off = "manual"`, written into `dir`: a run of it without
/// `--confirm-power-off` (and no terminal) waits at the cutover gate for ever, so the
/// run holding the Lease stays alive as long as the test needs it.
fn manual_plan(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string("plans/quickstart.toml").expect("quickstart");
    let text = text.replace("power_off = \"vsphere-api\"", "power_off = \"manual\"");
    assert!(text.contains("\"manual\""));
    let p = dir.join("manual.toml");
    std::fs::write(&p, text).expect("write plan");
    p
}

/// A `wavelift` child: its stdout lines arrive on a channel, its stderr is collected.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn start(server: &SimServer, args: &[&str]) -> Running {
        let mut child = server
            .wavelift(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wavelift");
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, so) = (child.stdout.take().expect("stdout"), stdout.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                so.lock().expect("lock").push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let (mut err, se) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            let mut s = String::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                *se.lock().expect("lock") = s.clone();
            }
        });
        Running {
            child,
            lines,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a stdout line matching `pred`.
    fn wait_line(&self, pred: impl Fn(&str) -> bool, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "no such line within {limit:?}; stdout:\n{}\nstderr:\n{}",
                    self.stdout.lock().expect("lock"),
                    self.stderr.lock().expect("lock")
                ),
            }
        }
    }

    /// Waits (bounded) for the process to exit; its exit code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads take the last output.
                std::thread::sleep(Duration::from_millis(100));
                return s.code();
            }
            assert!(
                Instant::now() < end,
                "still running after {limit:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout.lock().expect("lock"),
                self.stderr.lock().expect("lock")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_header(l: &str) -> bool {
    l.starts_with("wavelift run quickstart on ")
}

/// The plan's Lease on `server` (through its kubeconfig), read with a client of its own.
fn lease_on(server: &SimServer) -> Option<Record> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = client_of(&server.kubeconfig).await;
        Api::<Lease>::namespaced(client, NS)
            .get_opt(LEASE)
            .await
            .expect("get lease")
            .map(|l| Record::from_spec(l.spec.as_ref()))
    })
}

async fn client_of(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    Client::try_from(cfg).expect("client")
}

#[test]
fn a_second_run_on_a_held_plan_refuses_naming_the_holder_and_a_dry_run_needs_no_lease() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = manual_plan(dir.path());
    let plan = plan.to_str().expect("utf8");
    let server = SimServer::start(&["--plan", plan, "--speed", "200"], dir.path());
    let a = Running::start(&server, &["run", plan]);
    a.wait_line(is_header, Duration::from_secs(60));
    let held = lease_on(&server).expect("A took the Lease");
    assert!(held.holder.ends_with(&format!("/{}", a.pid())), "{held:?}");

    let b = server.run(&["run", plan]);
    assert!(b.status.code().is_some(), "{b:?}");
    let err = String::from_utf8_lossy(&b.stderr);
    assert_eq!(b.status.code(), Some(2), "{err}");
    let since = lease::show_time(&held.acquire_time.expect("acquireTime"));
    assert!(
        err.contains(&format!("driven by {} since {since}", held.holder)),
        "{err}"
    );
    assert!(
        err.contains("Lease mig-quickstart/wavelift-quickstart"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&b.stdout).contains("Preflight"),
        "the refused run drove nothing"
    );

    // A server-side dry run persists nothing: it runs without the Lease. (It is not run to
    // its end: a dry run of a plan whose VMs are mid-flight waits with them at their gates.)
    let d = Running::start(&server, &["run", plan, "--dry-run"]);
    d.wait_line(|l| l.contains("[DRY-RUN]"), Duration::from_secs(60));
    d.wait_line(|l| l.contains("Preflight"), Duration::from_secs(60));
    assert!(!d.stderr().contains("driven by"), "{}", d.stderr());
    assert_eq!(lease_on(&server), Some(held), "the Lease is still A's");
}

#[test]
fn two_runs_started_together_end_with_exactly_one_driving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = manual_plan(dir.path());
    let plan = plan.to_str().expect("utf8");
    let server = SimServer::start(&["--plan", plan, "--speed", "200"], dir.path());
    let mut runs = [
        Running::start(&server, &["run", plan]),
        Running::start(&server, &["run", plan]),
    ];
    // The loser exits at once (2); the winner waits at the cutover gate.
    let end = Instant::now() + Duration::from_secs(60);
    let loser = loop {
        if let Some(i) = (0..2).find(|&i| !runs[i].running()) {
            break i;
        }
        assert!(Instant::now() < end, "neither run was refused");
        std::thread::sleep(Duration::from_millis(50));
    };
    let winner = 1 - loser;
    let code = runs[loser].wait_exit(Duration::from_secs(5));
    let err = runs[loser].stderr();
    assert_eq!(code, Some(2), "{err}");
    let winner_pid = runs[winner].pid();
    assert!(
        err.contains(&format!("/{winner_pid} since ")),
        "the refusal names the winner (pid {winner_pid}):\n{err}"
    );
    runs[winner].wait_line(|l| l.contains("Preflight"), Duration::from_secs(60));
    assert!(runs[winner].running(), "the winner drives on");
    let rec = lease_on(&server).expect("lease");
    assert!(rec.holder.ends_with(&format!("/{winner_pid}")), "{rec:?}");
    assert_eq!(rec.transitions, 0);
    assert!(
        !runs[loser].stdout().contains("Preflight"),
        "the loser drove nothing"
    );
}

#[test]
fn a_run_killed_with_sigkill_is_resumed_at_once_by_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = SimServer::start(
        &["--plan", "plans/quickstart.toml", "--speed", "50"],
        dir.path(),
    );
    let mut a = Running::start(&server, &["run", "plans/quickstart.toml"]);
    a.wait_line(|l| l.contains("Importing"), Duration::from_secs(60));
    let a_pid = a.pid();
    a.child.kill().expect("SIGKILL"); // no release, no shutdown
    a.child.wait().expect("reaped");
    let held = lease_on(&server).expect("lease");
    assert!(held.holder.ends_with(&format!("/{a_pid}")), "{held:?}");

    let t = Instant::now();
    let mut c = Running::start(&server, &["run", "plans/quickstart.toml"]);
    c.wait_line(is_header, Duration::from_secs(60));
    // Well inside the 30 s lease duration: nobody waited for expiry.
    let took = t.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let code = c.wait_exit(Duration::from_secs(120));
    let (out, err) = (c.stdout(), c.stderr());
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("done: 3 verified, 0 failed"), "{out}");
    assert!(
        err.contains(&format!(
            "took over Lease mig-quickstart/wavelift-quickstart from {}: its process no longer runs on this host",
            held.holder
        )),
        "{err}"
    );
    // Released on exit: no holder; one transition (A → C).
    let rec = lease_on(&server).expect("lease");
    assert_eq!(rec.holder, "", "{rec:?}");
    assert_eq!(rec.transitions, 1, "{rec:?}");
}

#[test]
fn a_run_whose_lease_is_taken_stops_driving_and_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = manual_plan(dir.path());
    let plan = plan.to_str().expect("utf8");
    let server = SimServer::start(&["--plan", plan, "--speed", "200"], dir.path());
    let mut a = Running::start(&server, &["run", plan]);
    a.wait_line(is_header, Duration::from_secs(60));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = client_of(&server.kubeconfig).await;
        steal(&c, "mallory@jump-3/9").await;
    });
    // Noticed at A's next renewal (every 10 s).
    let code = a.wait_exit(Duration::from_secs(40));
    let err = a.stderr();
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("lost the Lease of plan quickstart")
            && err.contains("taken over by mallory@jump-3/9")
            && err.contains("The engine was stopped"),
        "{err}"
    );
    assert_eq!(
        lease_on(&server).map(|r| r.holder),
        Some("mallory@jump-3/9".into()),
        "a lost Lease is not released"
    );
}

// ---------------------------------------------------------------------------------------
// The TUI (tmux)

/// A tmux session on its own server (`-L NAME`): a session ending never takes down the
/// server the next one is starting on ("server exited unexpectedly").
struct Tmux(String);

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

impl Tmux {
    fn start(name: &str, script: &str) -> Tmux {
        let name = format!("{name}-{}", std::process::id());
        let out = Command::new("tmux")
            .args([
                "-L",
                &name,
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "200",
                "-y",
                "45",
                script,
            ])
            .output()
            .expect("tmux runs (apt-get install tmux)");
        assert!(out.status.success(), "{out:?}");
        Tmux(name)
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < end, "`{what}` not on screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, k: &str) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "send-keys", "-t", &self.0, k])
            .output();
    }

    /// `q`, confirmed when VMs are in flight; the screen once the shell says it exited.
    fn quit(&self) -> String {
        self.keys("q");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.contains("EXITED:") {
                return s;
            }
            if s.contains("Quit wavelift?") {
                self.keys("y");
            }
            assert!(Instant::now() < end, "the TUI did not quit:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tui_script(server: &SimServer, dir: &Path, plan: &str) -> String {
    format!(
        "cd {root} && KUBECONFIG={kc} WAVELIFT_LOG_DIR={logs} {bin} tui {plan}; echo EXITED:$?; sleep 60",
        root = env!("CARGO_MANIFEST_DIR"),
        kc = server.kubeconfig.display(),
        logs = dir.display(),
        bin = env!("CARGO_BIN_EXE_wavelift"),
    )
}

#[test]
#[ignore = "needs tmux"]
fn the_tui_opens_read_only_naming_the_holder_and_otherwise_drives_and_releases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = manual_plan(dir.path());
    let plan = plan.to_str().expect("utf8");
    let server = SimServer::start(&["--plan", plan, "--speed", "200"], dir.path());
    let mut a = Running::start(&server, &["run", plan]);
    a.wait_line(is_header, Duration::from_secs(60));
    let holder = lease_on(&server).expect("lease").holder;

    let s = Tmux::start("wavelift-lease-ro", &tui_script(&server, dir.path(), plan));
    let screen = s.wait_for("READ-ONLY: driven by", Duration::from_secs(30));
    assert!(screen.contains(&holder), "{screen}");
    assert!(screen.contains(" since "), "{screen}");
    s.keys("w"); // start the wave: not for an observer
    s.wait_for("read-only: disabled", Duration::from_secs(10));
    let end = s.quit();
    assert!(end.contains("EXITED:0"), "{end}");
    assert!(a.running(), "the driver was not disturbed");
    assert_eq!(lease_on(&server).expect("lease").holder, holder);

    // The driver dies: the next TUI takes the Lease at once, drives, and releases on quit.
    a.child.kill().expect("kill");
    a.child.wait().expect("reap");
    drop(s);
    let s = Tmux::start("wavelift-lease-rw", &tui_script(&server, dir.path(), plan));
    let screen = s.wait_for("REHEARSAL", Duration::from_secs(30));
    assert!(!screen.contains("READ-ONLY"), "{screen}");
    let rec = lease_on(&server).expect("lease");
    assert!(rec.holder != holder && !rec.holder.is_empty(), "{rec:?}");
    assert_eq!(rec.transitions, 1);
    let end = s.quit();
    assert!(end.contains("EXITED:0"), "{end}");
    assert_eq!(lease_on(&server).expect("lease").holder, "");
}
