//! Blast-radius scan throughput beside ripgrep, in the same run on the same tree.
//!
//! Generates (once, reused while its parameters match) a config tree of `BLAST_BENCH_BYTES`
//! (default 1 GiB) under `BLAST_BENCH_DIR` (default `$TMPDIR/wavelift-blast-bench`; never
//! inside the repository), 5,000 VMs with IPs and names (and firewall exports for them under
//! `tree/fw/`, see `common/blast_tree.rs`; `BLAST_BENCH_NAMES=diverse` gives names that share
//! no prefix), writes their IPs to `ips.txt`, then times, `BLAST_BENCH_RUNS` times each
//! (default 5, after one warm-up), alternating which goes first, the wavelift scanner and
//! `rg -F -f ips.txt -c -j N DIR` (IPs only, plain substring semantics), both on N threads, N
//! being what `wavelift blast` uses by default (the available cores). Prints the medians and
//! the ratio, wall-clock and CPU time. Run it with `benches/blast_vs_ripgrep.sh` (installs
//! ripgrep if missing) or `cargo bench --bench blast_scan`.
//!
//! The timed scan is the part of `wavelift blast` (`blast::run_blast`) that reads the tree:
//! walk, read, recognise each file (zone, firewall export, Prometheus, HAProxy, nginx; the
//! firewall exports under `tree/fw/` are parsed), the literal/name/range search with its
//! boundary checks, line numbers and line text per hit. What `run_blast` does besides, and
//! this bench does not time, named:
//! - the targets come from `common/blast_tree.rs` (each VM's name and FQDN), not from a
//!   plan's parse;
//! - the matcher is built once, outside the timed scan, as `run_blast` builds it once per
//!   run; its build time is printed (median), and a second ratio counts it in;
//! - after the scan: zone records resolved across files, hits deduplicated per line and VM,
//!   owners attached, the report rendered (proportional to the hits, not to the bytes).

#[path = "common/blast_tree.rs"]
mod blast_tree;

use blast_tree::{prepare, targets, VMS};
use std::process::Command;
use std::time::{Duration, Instant};
use wavelift::blast::matcher::Matcher;
use wavelift::blast::tree;

/// CPU time (user + system) of this process and of its waited-for children, from
/// `/proc/self/stat` (clock ticks of 10 ms). Under a shared machine's load, wall time depends
/// on what else runs; CPU time is the fairer comparison, so both are printed.
fn cpu_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After ")": state is field 3, utime 14, stime 15, cutime 16, cstime 17 (1-based).
    let tick = |i: usize| f.get(i - 3).copied().unwrap_or(0);
    let ms = |t: u64| Duration::from_millis(t * 10);
    (ms(tick(14) + tick(15)), ms(tick(16) + tick(17)))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; run as a test (`cargo test --benches`) it is a smoke
    // run on a small tree.
    let (dir, runs) = prepare();
    let tree_dir = dir.join("tree");

    // `wavelift blast`'s default: one scanner thread per available core.
    let threads = wavelift::blast::BlastOptions::default().threads;
    let build = || {
        let t = Instant::now();
        let m = Matcher::new(targets());
        (m, t.elapsed())
    };
    let (m, built) = build();
    println!(
        "matcher: {VMS} VMs, {} patterns built in {built:.1?}; {threads} threads",
        VMS * 3,
    );

    let scan = || {
        let mut w = Vec::new();
        let files = tree::walk(std::slice::from_ref(&tree_dir), &mut w);
        let ctx = tree::ScanContext::new(std::slice::from_ref(&tree_dir));
        let scans = tree::scan_all(&files, &m, threads, &ctx);
        let hits: usize = scans.iter().map(|s| s.hits.len()).sum();
        let total: u64 = scans.iter().map(|s| s.bytes).sum();
        (hits, total)
    };
    let rg = || -> Option<usize> {
        let out = Command::new("rg")
            .args(["-F", "-c", "--no-messages", "-f"])
            .arg(dir.join("ips.txt"))
            .arg("-j")
            .arg(threads.to_string())
            .arg(&tree_dir)
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout);
        Some(
            s.lines()
                .filter_map(|l| l.rsplit(':').next()?.parse::<usize>().ok())
                .sum(),
        )
    };
    let have_rg = rg().is_some(); // also the warm-up
    let (hits, total) = scan(); // warm-up
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut ours_cpu = Vec::new();
    let mut theirs_cpu = Vec::new();
    let mut rg_lines = 0;
    let mut builds = Vec::new();
    // Alternate which one goes first, so neither always finds the page cache warmed by the
    // other (a shared machine's other work can evict parts of the tree between runs).
    for run in 0..runs {
        let mut ours_run = || {
            let (c0, _) = cpu_times();
            let t = Instant::now();
            let _ = scan();
            ours.push(t.elapsed());
            ours_cpu.push(cpu_times().0.saturating_sub(c0));
        };
        let mut rg_run = || {
            if have_rg {
                let (_, k0) = cpu_times();
                let t = Instant::now();
                rg_lines = rg().unwrap_or(0);
                theirs.push(t.elapsed());
                theirs_cpu.push(cpu_times().1.saturating_sub(k0));
            }
        };
        builds.push(build().1);
        if run % 2 == 0 {
            ours_run();
            rg_run();
        } else {
            rg_run();
            ours_run();
        }
    }
    let mb = total as f64 / (1 << 20) as f64;
    let b = median(builds);
    let o = median(ours);
    let oc = median(ours_cpu);
    println!("wavelift scan: median {o:.2?} over {runs} runs, {:.0} MiB/s, {hits} hits (IPs, names and ranges, boundary-checked)", mb / o.as_secs_f64());
    if have_rg {
        let r = median(theirs);
        println!("rg -F -f ips.txt: median {r:.2?} over {runs} runs, {:.0} MiB/s, {rg_lines} matching lines (IPs only, substring)", mb / r.as_secs_f64());
        let rc = median(theirs_cpu);
        let diverse = std::env::var("BLAST_BENCH_NAMES").is_ok_and(|v| v == "diverse");
        println!(
            "throughput ratio wavelift/ripgrep: {:.2} wall-clock (target >= {}, issue #15)",
            r.as_secs_f64() / o.as_secs_f64(),
            if diverse {
                "0.90 with these names"
            } else {
                "1.00"
            }
        );
        println!(
            "matcher build: median {b:.1?}; ratio with it counted in: {:.2} wall-clock",
            r.as_secs_f64() / (o + b).as_secs_f64()
        );
        println!(
            "CPU time (user+sys): wavelift {oc:.2?}, ripgrep {rc:.2?}; ratio {:.2}; load average now: {}",
            rc.as_secs_f64() / oc.as_secs_f64().max(1e-9),
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        );
    } else {
        println!("ripgrep not found: install it (apt-get install -y ripgrep) for the comparison");
    }
}
