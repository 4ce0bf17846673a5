//! Network-namespace test (issue 5 item 6): a switch namespace with one Linux bridge per
//! VLAN, a prober namespace, a "VM" namespace with a fixed IP and MAC attached through two
//! "node" ports, and a VM on the wrong VLAN.
//!
//! ```text
//!   ns PROBE (192.0.2.10)        ns VM (192.0.2.15, 00:50:56:ab:cd:01)     ns BAD (192.0.2.16)
//!     p0                            eth0 (node 1)   eth1 (node 2)            eth0
//!     |                               |               |                       |
//!   sp (vlan 210)                   n1 (vlan 210)   n2 (vlan 210)           n3 (vlan 211)
//!   └─────────────── br210 (VLAN 210) in ns SW ───────────┘                 br211 (VLAN 211)
//! ```
//!
//! A VLAN is its own bridge (an access port per VLAN), not one bridge with `vlan_filtering`:
//! the two isolate alike for this test, and kernels without `CONFIG_BRIDGE_VLAN_FILTERING`
//! (this CI's) have only the first.
//!
//! The VM "migrates" from node 1 to node 2: its link on port n1 goes down, then the same
//! MAC and IP come up on port n2. The continuous probe must see the loss and the recovery.
//! The VM on VLAN 211 must fail its checks (same subnet, wrong VLAN).
//!
//! Needs root and iproute2, so the tests are ignored by default; `tools/test` (CI) runs them
//! as root with iproute2 installed. Where a namespace, bridge or veth pair cannot be made they
//! fail, saying why: they never pass without running. Namespaces are named `wl-test-PID-*`
//! and always deleted (Drop guard). Only addresses inside these namespaces are probed.

use crate::common;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wavelift::checks::continuous::{self, Config, Summary, Target, Tick};
use wavelift::checks::probe::RealProber;
use wavelift::checks::result::Outcome;
use wavelift::checks::runner::{Observations, RunSettings};
use wavelift::checks::verify;

const VM_MAC: &str = "00:50:56:ab:cd:01";
const WAIT: Duration = Duration::from_secs(15);
/// What these tests need, for their failure messages.
const NEEDS: &str =
    "this test needs root and iproute2 (`ip`) to create network namespaces; run it with tools/test as root";

/// Deletes every namespace it holds when dropped, also when the test panics.
struct Netns {
    names: Vec<String>,
}

impl Netns {
    fn name(&self, role: &str) -> String {
        format!("wl-test-{}-{role}", std::process::id())
    }

    /// Creates namespace `wl-test-PID-ROLE`; panics, saying why, where that is not possible.
    fn add(&mut self, role: &str) -> String {
        let name = self.name(role);
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap_or_else(|e| panic!("{NEEDS}: cannot run `ip` ({e})"));
        assert!(
            out.status.success(),
            "{NEEDS}: `ip netns add {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        self.names.push(name.clone());
        name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Runs a command, panicking with its stderr on failure.
fn run(cmd: &str) {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cmd}`: {e}"));
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bridge of VLAN `vid` in `sw`, up.
fn vlan_bridge(sw: &str, vid: u16) {
    run(&format!("ip -n {sw} link add br{vid} type bridge"));
    run(&format!("ip -n {sw} link set br{vid} up"));
}

/// A port in `sw` carrying VLAN `vid` untagged: a port of that VLAN's bridge.
fn access_port(sw: &str, dev: &str, vid: u16) {
    run(&format!("ip -n {sw} link set {dev} master br{vid}"));
    run(&format!("ip -n {sw} link set {dev} up"));
}

/// Runs `f` on a thread inside namespace `ns` with its own tokio runtime.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn plan() -> wavelift::plan::Plan {
    let head = common::plan_header("netns", "mig-netns", "");
    let text = format!(
        r#"{head}
[defaults]
storage_class = "sim-standard"
checks = ["icmp"]
check_timeout = "300ms"
check_retries = 1

[[network]]
name = "vlan-210"
vlan = 210
provider = "bridge"
bridge = "br-trunk"
cidr = "192.0.2.0/24"
owner = "netsec"

[[wave]]
name = "w1"

[[vm]]
name = "vm-ok"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a1"
cpu = 1
memory = "1Gi"
nics = [{{ network = "vlan-210", ip = "192.0.2.15", mac = "{VM_MAC}" }}]
disks = [{{ backing_file = "[ds1] a/a.vmdk", size = "1Gi" }}]
checks = ["tcp:22"]

[[vm]]
name = "vm-wrong-vlan"
wave = "w1"
source_id = "4207c1b2-5f0e-4c1e-9a7b-0123456789a2"
cpu = 1
memory = "1Gi"
nics = [{{ network = "vlan-210", ip = "192.0.2.16", mac = "00:50:56:ab:cd:02" }}]
disks = [{{ backing_file = "[ds1] b/b.vmdk", size = "1Gi" }}]
checks = ["tcp:22"]
"#
    );
    let checked = wavelift::plan::check_str(&text, "netns.toml");
    let diags = format!("{:#?}", checked.located());
    checked
        .plan
        .unwrap_or_else(|| panic!("netns plan invalid: {diags}"))
}

#[test]
#[ignore = "needs root and iproute2"]
fn migration_gap_and_wrong_vlan_in_network_namespaces() {
    let mut ns = Netns { names: Vec::new() };
    let sw = ns.add("sw");
    let probe = ns.add("probe");
    let vm = ns.add("vm");
    let bad = ns.add("bad");

    vlan_bridge(&sw, 210);
    vlan_bridge(&sw, 211);
    for n in [&sw, &probe, &vm, &bad] {
        run(&format!("ip -n {n} link set lo up"));
    }
    run(&format!(
        "ip -n {probe} link add p0 type veth peer name sp netns {sw}"
    ));
    access_port(&sw, "sp", 210);
    run(&format!("ip -n {probe} addr add 192.0.2.10/24 dev p0"));
    run(&format!("ip -n {probe} link set p0 up"));

    // The VM: one link per node port; it starts on node 1.
    run(&format!(
        "ip -n {vm} link add eth0 type veth peer name n1 netns {sw}"
    ));
    run(&format!(
        "ip -n {vm} link add eth1 type veth peer name n2 netns {sw}"
    ));
    access_port(&sw, "n1", 210);
    access_port(&sw, "n2", 210);
    run(&format!("ip -n {vm} link set eth0 address {VM_MAC}"));
    run(&format!("ip -n {vm} addr add 192.0.2.15/24 dev eth0"));
    run(&format!("ip -n {vm} link set eth0 up"));

    // Same subnet, wrong VLAN.
    run(&format!(
        "ip -n {bad} link add eth0 type veth peer name n3 netns {sw}"
    ));
    access_port(&sw, "n3", 211);
    run(&format!(
        "ip -n {bad} link set eth0 address 00:50:56:ab:cd:02"
    ));
    run(&format!("ip -n {bad} addr add 192.0.2.16/24 dev eth0"));
    run(&format!("ip -n {bad} link set eth0 up"));

    // Checks before the migration: vm-ok answers (ICMP, and TCP 22 is refused = host up but
    // port closed: a fail), vm-wrong-vlan does not answer at all.
    let plan = plan();
    let verify_thread = in_netns(&probe, move || {
        runtime().block_on(async move {
            let mut settings = RunSettings::from_plan(&plan);
            settings.retry_pause = Duration::from_millis(50);
            verify::run_with(
                &plan,
                &RealProber::new(),
                &Observations::new(),
                None,
                &settings,
            )
            .await
        })
    });
    let out = verify_thread.join().expect("verify thread");
    let outcome = |vm: &str, check: &str| {
        out.results
            .iter()
            .find(|r| r.vm == vm && r.check == check)
            .map(|r| (r.outcome, r.detail.clone()))
            .unwrap_or_else(|| panic!("no {vm} {check}: {:#?}", out.results))
    };
    let (o, d) = outcome("vm-ok", "icmp");
    assert_eq!(o, Outcome::Pass, "{d}");
    let (o, d) = outcome("vm-ok", "tcp:22");
    assert_eq!(o, Outcome::Fail, "{d}");
    assert!(d.contains("refused"), "{d}");
    let (o, d) = outcome("vm-wrong-vlan", "icmp");
    assert_eq!(o, Outcome::Fail, "wrong VLAN must fail: {d}");
    let (o, d) = outcome("vm-wrong-vlan", "tcp:22");
    assert_eq!(o, Outcome::Fail, "wrong VLAN must fail: {d}");
    assert!(!d.contains("refused"), "{d}");

    // Continuous probe from the probe namespace while the VM moves.
    let (tick_tx, tick_rx) = std_mpsc::channel::<Tick>();
    let cancel = CancellationToken::new();
    let probe_cancel = cancel.clone();
    let cont = in_netns(&probe, move || -> Summary {
        runtime().block_on(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
            let forward = tokio::spawn(async move {
                while let Some(t) = rx.recv().await {
                    if tick_tx.send(t).is_err() {
                        break;
                    }
                }
            });
            let cfg = Config {
                target: Target::Icmp("192.0.2.15".parse().expect("ip")),
                interval: Duration::from_millis(25),
                timeout: Duration::from_millis(100),
                duration: Some(Duration::from_secs(60)),
            };
            let s = continuous::run(&RealProber::new(), &cfg, probe_cancel, Some(tx)).await;
            let _ = forward.await;
            s
        })
    });
    let next = || {
        tick_rx
            .recv_timeout(WAIT)
            .expect("a probe tick within 15 s")
    };
    let mut ticks: Vec<Tick> = Vec::new();
    while ticks.iter().filter(|t| t.ok).count() < 3 {
        ticks.push(next());
    }
    // Migration, step 1: the source side goes away.
    run(&format!("ip -n {vm} link set eth0 down"));
    run(&format!("ip -n {vm} addr flush dev eth0"));
    let mut lost = 0;
    while lost < 3 {
        let t = next();
        lost += u32::from(!t.ok);
        ticks.push(t);
    }
    // Step 2: the same MAC and IP come up behind node 2's port.
    run(&format!("ip -n {vm} link set eth1 address {VM_MAC}"));
    run(&format!("ip -n {vm} addr add 192.0.2.15/24 dev eth1"));
    run(&format!("ip -n {vm} link set eth1 up"));
    loop {
        let t = next();
        let ok = t.ok;
        ticks.push(t);
        if ok {
            break;
        }
    }
    cancel.cancel();
    let summary = cont.join().expect("continuous probe thread");
    println!("continuous probe: {summary:?}");
    assert!(summary.lost >= 3, "{summary:?}");
    // The migration's outage (a lost first probe, before ARP settled, could add one).
    assert!((1..=2).contains(&summary.outages), "{summary:?}");
    assert!(!summary.unrecovered, "{summary:?}");
    let gap = summary.longest_gap.expect("a gap");
    assert!(gap >= Duration::from_millis(75), "{gap:?}");
    drop(ns);
}

/// The unprivileged datagram ICMP path, exercised where it is permitted: inside a namespace
/// of our own whose `net.ipv4.ping_group_range` admits every group (the host's may not).
#[test]
#[ignore = "needs root and iproute2"]
fn icmp_datagram_socket_inside_a_namespace() {
    use std::net::{IpAddr, Ipv4Addr};
    use wavelift::checks::probe::{IcmpMode, Prober};
    let mut ns = Netns { names: Vec::new() };
    let n = ns.add("ping");
    run(&format!("ip -n {n} link set lo up"));
    // `sysctl -w net.ipv4.ping_group_range=…` inside the namespace, without needing procps.
    let out = Command::new("ip")
        .args(["netns", "exec", &n, "sh", "-c"])
        .arg("echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range")
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "setting ping_group_range in {n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = in_netns(&n, || {
        runtime().block_on(async {
            let prober = RealProber {
                icmp_mode: Some(IcmpMode::Datagram),
                ..RealProber::default()
            };
            let up = prober
                .icmp(IpAddr::V4(Ipv4Addr::LOCALHOST), Duration::from_secs(2))
                .await;
            // The namespace has only `lo`: no route to a documentation address.
            let down = prober
                .icmp(
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                    Duration::from_millis(300),
                )
                .await;
            (up, down)
        })
    });
    let (up, down) = probe.join().expect("probe thread");
    assert_eq!(up.outcome, Outcome::Pass, "{up:?}");
    assert!(up.detail.contains("echo reply"), "{}", up.detail);
    assert_ne!(down.outcome, Outcome::Pass, "{down:?}");
    drop(ns);
}

/// `wavelift probe` (the probe pod's program) for real, inside a namespace on a veth, with
/// only `CAP_NET_RAW` (setpriv drops root and every other capability): ARP finds the
/// neighbour's MAC, two namespaces answering for one IP are both reported (a conflict),
/// ICMP and TCP work from the probe address, and the termination log it writes reads
/// back through the engine's own parser.
///
/// ```text
///   ns PROBE (p0: 192.0.2.10, the probe_ip)   ns A (192.0.2.20)   ns B (192.0.2.20)   ns C (192.0.2.30, TCP 8080)
///              └──────────────────── br0 in ns SW ──────────────────────────┘
/// ```
#[test]
#[ignore = "needs root and iproute2"]
fn the_probe_program_arps_pings_and_connects_with_only_cap_net_raw() {
    use wavelift::checks::probe::pod::decode;
    let mut ns = Netns { names: Vec::new() };
    let sw = ns.add("psw");
    let probe = ns.add("pprobe");
    let hosts = [
        (ns.add("pa"), "192.0.2.20", "02:00:00:00:00:0a"),
        (ns.add("pb"), "192.0.2.20", "02:00:00:00:00:0b"),
        (ns.add("pc"), "192.0.2.30", "02:00:00:00:00:0c"),
    ];
    run(&format!("ip -n {sw} link add br0 type bridge"));
    run(&format!("ip -n {sw} link set br0 up"));
    run(&format!(
        "ip -n {probe} link add p0 type veth peer name sp netns {sw}"
    ));
    run(&format!("ip -n {sw} link set sp master br0"));
    run(&format!("ip -n {sw} link set sp up"));
    run(&format!("ip -n {probe} addr add 192.0.2.10/24 dev p0"));
    run(&format!("ip -n {probe} link set p0 up"));
    for (i, (n, ip, mac)) in hosts.iter().enumerate() {
        run(&format!(
            "ip -n {n} link add eth0 type veth peer name h{i} netns {sw}"
        ));
        run(&format!("ip -n {sw} link set h{i} master br0"));
        run(&format!("ip -n {sw} link set h{i} up"));
        run(&format!("ip -n {n} link set eth0 address {mac}"));
        // Two hosts share 192.0.2.20 on purpose: no duplicate address detection.
        run(&format!("ip -n {n} addr add {ip}/24 dev eth0 nodad"));
        run(&format!("ip -n {n} link set eth0 up"));
    }
    // ns C listens on TCP 8080 until the probe is done.
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let (done_tx, done_rx) = std_mpsc::channel::<()>();
    let listener = in_netns(&hosts[2].0, move || {
        let l = std::net::TcpListener::bind("192.0.2.30:8080").expect("listen");
        ready_tx.send(()).expect("ready");
        l.set_nonblocking(true).expect("nonblocking");
        while done_rx.try_recv().is_err() {
            let _ = l.accept();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    ready_rx.recv_timeout(WAIT).expect("listener up");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").expect("log");
    // The unprivileged user must be able to write it.
    run(&format!("chmod 0777 {}", dir.path().display()));
    run(&format!("chmod 0666 {}", log.display()));
    let out = Command::new("ip")
        .args(["netns", "exec", &probe, "setpriv"])
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+net_raw",
            "--ambient-caps=-all,+net_raw",
            "--bounding-set=-all,+net_raw",
        ])
        .arg(env!("CARGO_BIN_EXE_wavelift"))
        .args([
            "probe",
            "--interface",
            "p0",
            "--arp",
            "192.0.2.20",
            "--arp",
            "192.0.2.30",
            "--gateway",
            "192.0.2.1",
            "--icmp",
            "192.0.2.30",
            "--tcp",
            "192.0.2.30:8080",
            "--tcp",
            "192.0.2.30:8081",
            "--arp-interval",
            "200ms",
            "--arp-wait",
            "500ms",
            "--termination-log",
        ])
        .arg(&log)
        .env("WAVELIFT_LOG_DIR", dir.path())
        .output()
        .expect("run wavelift probe");
    let _ = done_tx.send(());
    listener.join().expect("listener");
    assert!(
        out.status.success(),
        "wavelift probe: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).expect("termination log");
    assert!(text.len() <= 4096);
    let r = decode(&text).expect("the engine's parser reads it");
    let get = |k: &str, t: &str| {
        r.r.iter()
            .find(|p| p.k == k && p.t == t)
            .unwrap_or_else(|| panic!("no {k} {t} in {text}"))
            .clone()
    };
    let conflict = get("arp", "192.0.2.20");
    assert_eq!(
        conflict.m,
        vec!["02:00:00:00:00:0a", "02:00:00:00:00:0b"],
        "two holders of one IP: {text}"
    );
    assert_eq!(
        get("arp", "192.0.2.30").m,
        vec!["02:00:00:00:00:0c"],
        "{text}"
    );
    let gw = get("gateway", "192.0.2.1");
    assert!(
        gw.m.is_empty() && gw.e.is_none(),
        "nobody holds the gateway: {text}"
    );
    assert_eq!(get("icmp", "192.0.2.30").ok, Some(true), "{text}");
    assert_eq!(get("tcp", "192.0.2.30:8080").ok, Some(true), "{text}");
    assert_eq!(get("tcp", "192.0.2.30:8081").ok, Some(false), "{text}");
    drop(ns);
}
