//! The blast benchmark's config tree (shared by `blast_scan` and `policy_draft`): 5,000 VMs
//! with IPs and names, files of generated config lines with a reference now and then, and
//! firewall exports for every VM under `tree/fw/`.

// Each bench includes this file as its own module; not every one uses every item.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use wavelift::blast::targets::Target;

pub const VMS: usize = 5000;
const FILE_BYTES: usize = 256 * 1024;

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// VM names: `vm-w00042` (a shared prefix, as many estates have), or with
/// `BLAST_BENCH_NAMES=diverse` names with no common prefix (`pay-db-042`, `shop-etl-117`…),
/// the worst case for the name automaton's prefilter.
pub fn vm_name(i: usize) -> String {
    const A: &[&str] = &[
        "pay", "shop", "db", "web", "app", "cache", "mq", "etl", "api", "auth", "crm", "erp", "hr",
        "log", "mon",
    ];
    if std::env::var("BLAST_BENCH_NAMES").is_ok_and(|v| v == "diverse") {
        format!("{}-{}-{i:04}", A[i % A.len()], A[(i / A.len()) % A.len()])
    } else {
        format!("vm-w{i:05}")
    }
}

pub fn vm_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        20 + (i / 250 / 250) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    )
}

pub fn targets() -> Vec<Target> {
    (0..VMS)
        .map(|i| Target {
            name: vm_name(i),
            ips: vec![IpAddr::V4(vm_ip(i))],
            hostnames: vec![vm_name(i), format!("{}.corp.example.internal", vm_name(i))],
            owner: None,
            networks: vec![("vlan-210".into(), Some(210))],
            vlan_known: true,
        })
        .collect()
}

const WORDS: &[&str] = &[
    "timeout", "retry", "pool", "listen", "backend", "upstream", "cache", "session", "replica",
    "primary", "weight", "health", "check", "interval", "buffer", "worker", "queue", "batch",
];

fn line(r: &mut Rng, out: &mut Vec<u8>) {
    let w = |r: &mut Rng| WORDS[r.below(WORDS.len() as u64) as usize];
    match r.below(20) {
        0..=5 => {
            // a random 10.x address, almost never a VM's; sometimes a near miss
            let (a, b, c) = (r.below(256), r.below(256), r.below(256));
            let _ = writeln!(
                out,
                "{}.{}.host = 10.{a}.{b}.{c}:{}",
                w(r),
                w(r),
                1024 + r.below(60000)
            );
        }
        6 => {
            let i = r.below(VMS as u64) as usize;
            let ip = vm_ip(i);
            let _ = writeln!(out, "{}_peer = {ip}{} # near miss", w(r), r.below(9) + 1);
        }
        7..=10 => {
            let _ = writeln!(
                out,
                "# {} {} {} {} {} {} {}",
                w(r),
                w(r),
                w(r),
                w(r),
                w(r),
                w(r),
                w(r)
            );
        }
        11..=13 => {
            let _ = writeln!(
                out,
                "{}.path = /var/lib/{}/{}-{}.log",
                w(r),
                w(r),
                w(r),
                r.below(100_000)
            );
        }
        14..=15 => {
            let _ = writeln!(
                out,
                "{}.name = app-{}-{}.corp.example.internal",
                w(r),
                w(r),
                r.below(100_000)
            );
        }
        16 => {
            let _ = writeln!(
                out,
                "allow 10.{}.{}.0/24; {} {}",
                r.below(256),
                r.below(256),
                w(r),
                w(r)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "{} = {} ; {} = {}",
                w(r),
                r.below(1_000_000),
                w(r),
                r.below(1000)
            );
        }
    }
    // A real reference now and then.
    if r.below(400) == 0 {
        let i = r.below(VMS as u64) as usize;
        if r.below(2) == 0 {
            let _ = writeln!(out, "server {} {}:8443 check", vm_name(i), vm_ip(i));
        } else {
            let _ = writeln!(
                out,
                "backend_url = http://{}.corp.example.internal:8080/api",
                vm_name(i)
            );
        }
    }
}

pub fn generate(dir: &Path, bytes: u64) -> std::io::Result<()> {
    let marker = dir.join(".generated");
    let want = format!("v4 {bytes} {}", vm_name(1));
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    let files = (bytes as usize).div_ceil(FILE_BYTES);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(FILE_BYTES + 256);
    for f in 0..files {
        let sub = dir
            .join("tree")
            .join(format!("d{:03}", f % 64))
            .join(format!("s{:02}", (f / 64) % 16));
        std::fs::create_dir_all(&sub)?;
        buf.clear();
        while buf.len() < FILE_BYTES {
            line(&mut r, &mut buf);
        }
        std::fs::write(sub.join(format!("svc-{f:05}.conf")), &buf)?;
    }
    let mut ips = String::new();
    for i in 0..VMS {
        ips.push_str(&vm_ip(i).to_string());
        ips.push('\n');
    }
    std::fs::write(dir.join("ips.txt"), ips)?;
    firewall_exports(&dir.join("tree").join("fw"))?;
    std::fs::write(marker, want)
}

/// Firewall exports for every VM, in formats `wavelift::policy::fw` parses (so that the
/// policy-draft bench has rules to evaluate; the blast scan reads them like any file):
/// 20 `iptables-save` files of 250 VMs each (a deny, a multiport allow with an owner
/// comment, an egress allow per VM, behind a FORWARD chain with policy DROP) and 5 neutral
/// firewall CSVs of 1,000 VMs each (one allow per VM).
fn firewall_exports(fw: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(fw)?;
    for f in 0..20 {
        let mut s = String::from(
            "# Generated by iptables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
        );
        for i in f * (VMS / 20)..(f + 1) * (VMS / 20) {
            let ip = vm_ip(i);
            let _ = writeln!(
                s,
                "-A FORWARD -s 10.200.{}.0/24 -d {ip}/32 -p tcp -m tcp --dport 22 -m comment --comment \"no-ssh-{i} owner: netsec\" -j DROP",
                i % 250
            );
            let _ = writeln!(
                s,
                "-A FORWARD -s 10.200.0.0/16 -d {ip}/32 -p tcp -m multiport --dports 22,80,443,8000:8090 -m comment --comment \"{} owner: team-{}\" -j ACCEPT",
                vm_name(i),
                i % 20
            );
            let _ = writeln!(
                s,
                "-A FORWARD -s {ip}/32 -d 10.30.0.0/16 -p udp -m udp --dport 53 -j ACCEPT"
            );
        }
        s.push_str("COMMIT\n");
        std::fs::write(fw.join(format!("edge-{f:02}.iptables")), s)?;
    }
    for f in 0..5 {
        let mut s = String::from(
            "source,device,rule_id,rule_name,direction,src,dst,proto,dport,action,owner,ticket,comment\n",
        );
        for i in f * (VMS / 5)..(f + 1) * (VMS / 5) {
            let _ = writeln!(
                s,
                "fw-core,fw{f:02},{i},db-{i},in,10.50.0.0/16,{},tcp,5432,allow,dba,CHG-{i},",
                vm_ip(i)
            );
        }
        std::fs::write(fw.join(format!("core-{f}.csv")), s)?;
    }
    Ok(())
}

/// The bench's tree, as both blast-tree benches set it up: `cargo bench` passes `--bench`
/// (a 1 GiB tree, 5 runs); run as a test (`cargo test --benches`) it is a smoke run on an
/// 8 MiB tree, 1 run. `BLAST_BENCH_BYTES`, `BLAST_BENCH_RUNS` and `BLAST_BENCH_DIR`
/// override. Generates the tree (or reuses it while its parameters match) and returns its
/// directory (the tree is its `tree`, the VMs' IPs its `ips.txt`) and the number of runs;
/// exits when it cannot be generated.
pub fn prepare() -> (std::path::PathBuf, usize) {
    let full = std::env::args().any(|a| a == "--bench");
    let bytes: u64 = std::env::var("BLAST_BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 1 << 30 } else { 8 << 20 });
    let runs: usize = std::env::var("BLAST_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 5 } else { 1 })
        .max(1);
    let dir: std::path::PathBuf = std::env::var_os("BLAST_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(if full {
                "wavelift-blast-bench"
            } else {
                "wavelift-blast-bench-smoke"
            })
        });
    let t = std::time::Instant::now();
    if let Err(e) = generate(&dir, bytes) {
        eprintln!("cannot generate the tree in {}: {e}", dir.display());
        std::process::exit(1);
    }
    println!(
        "tree: {} ({:.1} MiB, ready in {:.1?})",
        dir.display(),
        bytes as f64 / (1 << 20) as f64,
        t.elapsed()
    );
    (dir, runs)
}
