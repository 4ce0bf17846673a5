//! `wavelift policy draft` beside the blast scan, in the same run on the same tree.
//!
//! Generates (or reuses) the blast benchmark's tree (`common/blast_tree.rs`: 5,000 VMs,
//! `BLAST_BENCH_BYTES` of config files, default 1 GiB, plus firewall exports for every VM
//! under `tree/fw/`: 20 iptables-save files and 5 neutral CSVs), then times
//! `BLAST_BENCH_RUNS` times each (default 5 with `--bench`, after one warm-up), alternating
//! which goes first:
//!
//! - (a) the blast scan as `blast_scan` runs it (walk + read + recognise + search; its
//!   matcher built once, outside the timing);
//! - (b) the path `wavelift policy draft` runs (`cli::policy_draft::run`): walk + read +
//!   recognise + parse the firewall exports (`policy::draft::sources::read_exports`), index
//!   the rules, draft and render the YAML of all 5,000 VMs (`policy::draft::draft_all`).
//!
//! Both on the threads the commands use by default (`available_parallelism`, as
//! `BlastOptions::default()` and `policy draft` take it), with `DraftOptions::default()`
//! (`--mnp-version v1beta2`, the command's default). What the command does besides, and this
//! bench does not time:
//! - the VM inputs are built once outside the timing (like the matcher), from
//!   `common/blast_tree.rs`, not from a plan's parse or an inventory (`--plan`/`--rvtools`);
//! - the `--sources` existence check, and the warnings and summary written to stderr;
//! - the YAML is not written: the command writes it to stdout, or 5,000 small files with
//!   `--out` (each written atomically, with an fsync).
//!
//! Prints both medians and the ratio draft/scan (target: at most 2.0). Environment:
//! `BLAST_BENCH_BYTES`, `BLAST_BENCH_RUNS`, `BLAST_BENCH_DIR` as for `blast_scan`.

#[path = "common/blast_tree.rs"]
mod blast_tree;

use blast_tree::{prepare, targets, vm_ip, vm_name, VMS};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use wavelift::blast::matcher::Matcher;
use wavelift::blast::tree;
use wavelift::blast::BlastOptions;
use wavelift::policy::draft::{self, sources, DraftOptions, VmInput, VmNetwork};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn inputs() -> Vec<VmInput> {
    (0..VMS)
        .map(|i| {
            let name = vm_name(i);
            VmInput {
                name: name.clone(),
                namespace: "mig-bench".into(),
                labels: BTreeMap::from([
                    ("app.kubernetes.io/managed-by".into(), "wavelift".into()),
                    ("wavelift.io/plan".into(), "bench".into()),
                    ("wavelift.io/vm".into(), name.clone()),
                ]),
                pod_selector: BTreeMap::from([
                    ("wavelift.io/plan".into(), "bench".into()),
                    ("wavelift.io/vm".into(), name.clone()),
                ]),
                ips: vec![IpAddr::V4(vm_ip(i))],
                network: VmNetwork::Attachments(vec!["mig-bench/vlan-210".into()]),
                probes: Vec::new(),
            }
        })
        .collect()
}

fn main() {
    let (dir, runs) = prepare();
    let tree_dir = dir.join("tree");
    let m = Matcher::new(targets());
    let vms = inputs();
    let opts = DraftOptions::default();
    // What `wavelift blast` and `wavelift policy draft` use by default.
    let threads = BlastOptions::default().threads;
    println!("threads: {threads}");

    let scan = || {
        let mut w = Vec::new();
        let files = tree::walk(std::slice::from_ref(&tree_dir), &mut w);
        let ctx = tree::ScanContext::new(std::slice::from_ref(&tree_dir));
        let scans = tree::scan_all(&files, &m, threads, &ctx);
        scans.iter().map(|s| s.hits.len()).sum::<usize>()
    };
    let policy = || {
        let ex = sources::read_exports(std::slice::from_ref(&tree_dir), threads);
        let drafts = draft::draft_all(&vms, &ex.sets, &opts, threads);
        let rules: usize = ex
            .sets
            .iter()
            .flat_map(|s| &s.lists)
            .map(|l| l.rules.len())
            .sum();
        let yaml: usize = drafts.iter().map(|d| d.yaml.len()).sum();
        let k8s: usize = drafts
            .iter()
            .map(|d| d.ingress.len() + d.egress.len())
            .sum();
        (ex.sets.len(), rules, drafts.len(), k8s, yaml)
    };
    let hits = scan(); // warm-up
    {
        let t = Instant::now();
        let ex = sources::read_exports(std::slice::from_ref(&tree_dir), threads);
        let read = t.elapsed();
        let t = Instant::now();
        let d = draft::draft_all(&vms, &ex.sets, &opts, threads);
        println!(
            "policy draft parts: walk + read + recognise + parse {read:.2?}, index + draft + YAML of {} VMs {:.2?}",
            d.len(),
            t.elapsed()
        );
    }
    let (exports, rules, drafted, k8s, yaml) = policy(); // warm-up
    println!(
        "policy draft: {exports} firewall exports, {rules} rules; {drafted} VMs drafted, \
         {k8s} Kubernetes rules, {:.1} MiB of YAML",
        yaml as f64 / (1 << 20) as f64
    );
    if exports == 0 {
        println!("warning: no firewall export was recognised (policy::fw): the draft has nothing to evaluate");
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let mut run_scan = || {
            let t = Instant::now();
            let _ = scan();
            a.push(t.elapsed());
        };
        let mut run_policy = || {
            let t = Instant::now();
            let _ = policy();
            b.push(t.elapsed());
        };
        if run % 2 == 0 {
            run_scan();
            run_policy();
        } else {
            run_policy();
            run_scan();
        }
    }
    let (sa, sb) = (median(a), median(b));
    println!("blast scan: median {sa:.2?} over {runs} runs ({hits} hits)");
    println!("policy draft (walk + parse + draft {drafted} VMs + YAML): median {sb:.2?} over {runs} runs");
    println!(
        "ratio draft/scan: {:.2} (target <= 2.0); load average now: {}",
        sb.as_secs_f64() / sa.as_secs_f64().max(1e-9),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
