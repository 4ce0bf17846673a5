//! `wavelift probe`: the probe pod's program. It makes the probes it is given from the
//! interface it sits on, writes one compact JSON result to the termination log (see
//! [`crate::checks::probe::pod`]), prints it, and exits 0; a probe that could not be made
//! says why in its entry. Exit 2: the result could not be written.

use super::{ProbeArgs, EXIT_INVALID, EXIT_OK};
use crate::checks::probe::arp::{self, ArpTiming};
use crate::checks::probe::pod::{encode, PodProbe, PodResult};
use crate::checks::probe::{Prober, RealProber};
use crate::checks::result::Outcome;
use std::process::ExitCode;

pub fn run(args: ProbeArgs) -> ExitCode {
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(probe_all(&args));
    let text = encode(&result);
    println!("{text}");
    if let Err(e) = std::fs::write(&args.termination_log, &text) {
        eprintln!("error: {}: {e}", args.termination_log.display());
        return ExitCode::from(EXIT_INVALID);
    }
    ExitCode::from(EXIT_OK)
}

async fn probe_all(args: &ProbeArgs) -> PodResult {
    // SIGTERM (the pod's graceful deletion) ends a continuous probe. The handler is set
    // first: as PID 1 in its container the program would ignore a SIGTERM it has no handler
    // for, and one arriving during the other probes must still end the watch.
    let cancel = tokio_util::sync::CancellationToken::new();
    let term = args.watch.map(|_| {
        let on_term = cancel.clone();
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        tokio::spawn(async move {
            if let Ok(mut s) = signal {
                s.recv().await;
                on_term.cancel();
            }
        })
    });
    let timing = ArpTiming {
        probes: 3,
        interval: args.arp_interval,
        wait: args.arp_wait,
    };
    // The ARP probes run at once, each on its own blocking thread (they mostly wait).
    let arps: Vec<_> = args
        .arp
        .iter()
        .map(|ip| ("arp", *ip))
        .chain(args.gateway.iter().map(|ip| ("gateway", *ip)))
        .map(|(kind, ip)| {
            let iface = args.interface.clone();
            let task = tokio::task::spawn_blocking(move || arp::probe(&iface, ip, timing));
            (kind, ip, task)
        })
        .collect();
    let prober = RealProber::new();
    let mut out = Vec::new();
    for ip in &args.icmp {
        out.push(reach(
            "icmp",
            ip.to_string(),
            prober.icmp(*ip, args.timeout).await,
        ));
    }
    for addr in &args.tcp {
        out.push(reach(
            "tcp",
            addr.to_string(),
            prober.tcp(*addr, args.timeout).await,
        ));
    }
    let mut r = Vec::new();
    for (kind, ip, task) in arps {
        let probe = match task.await {
            Ok(Ok(macs)) => PodProbe {
                k: kind.into(),
                t: ip.to_string(),
                m: macs,
                ..Default::default()
            },
            Ok(Err(e)) => PodProbe {
                k: kind.into(),
                t: ip.to_string(),
                e: Some(e.to_string()),
                ..Default::default()
            },
            Err(e) => PodProbe {
                k: kind.into(),
                t: ip.to_string(),
                e: Some(format!("probe task: {e}")),
                ..Default::default()
            },
        };
        r.push(probe);
    }
    r.extend(out);
    if let Some(ip) = args.watch {
        r.push(watch(&prober, ip, args.watch_for, cancel).await);
    }
    if let Some(t) = term {
        t.abort();
    }
    PodResult { v: 1, r }
}

/// The continuous probe of a live migration: ICMP every 100 ms until SIGTERM (the kubelet's
/// signal when the engine deletes the pod, which keeps it for its grace period) or `limit`.
async fn watch(
    prober: &RealProber,
    ip: std::net::IpAddr,
    limit: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) -> PodProbe {
    use crate::checks::continuous::{self, Target};
    let cfg = continuous::Config {
        target: Target::Icmp(ip),
        interval: std::time::Duration::from_millis(100),
        timeout: std::time::Duration::from_millis(100),
        duration: Some(limit),
    };
    let s = continuous::run(prober, &cfg, cancel, None).await;
    PodProbe {
        k: "watch".into(),
        t: ip.to_string(),
        n: Some(s.sent),
        lost: Some(s.lost),
        gap: s.longest_gap.map(|g| g.as_millis() as u64),
        ..Default::default()
    }
}

fn reach(kind: &str, target: String, p: crate::checks::probe::Probe) -> PodProbe {
    let ok = p.outcome == Outcome::Pass;
    PodProbe {
        k: kind.into(),
        t: target,
        ok: Some(ok),
        ms: p.latency.map(|l| l.as_millis() as u64),
        e: (!ok).then_some(p.detail),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::probe::pod::ProbeRequest;
    use clap::Parser;

    /// The arguments the engine writes into a probe pod are what `wavelift probe` accepts.
    #[test]
    fn the_engines_probe_arguments_parse_as_wavelift_probe() {
        let r = ProbeRequest {
            arp: vec!["192.0.2.15".parse().unwrap()],
            gateway: vec!["192.0.2.1".parse().unwrap()],
            icmp: vec!["192.0.2.15".parse().unwrap()],
            tcp: vec!["192.0.2.15:5432".parse().unwrap()],
            watch: Some("192.0.2.15".parse().unwrap()),
            watch_for: Some(std::time::Duration::from_secs(600)),
        };
        let mut argv = vec!["wavelift".to_string(), "probe".into()];
        argv.extend(r.to_args());
        let cli = crate::cli::Cli::try_parse_from(argv).expect("parses");
        match cli.command {
            crate::cli::Command::Probe(a) => {
                assert_eq!(a.arp, r.arp);
                assert_eq!(a.gateway, r.gateway);
                assert_eq!(a.icmp, r.icmp);
                assert_eq!(a.tcp, r.tcp);
                assert_eq!(a.watch, r.watch);
                assert_eq!(Some(a.watch_for), r.watch_for);
            }
            _ => panic!("not probe"),
        }
    }
}
