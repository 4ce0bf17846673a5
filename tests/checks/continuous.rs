//! Continuous probe against a loopback listener that goes away and comes back.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wavelift::checks::continuous::{self, Config, Target, Tick};
use wavelift::checks::probe::RealProber;

const WAIT: Duration = Duration::from_secs(10);

/// Listens on `addr` (port 0 = any) and accepts and drops connections until aborted.
fn serve(addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    let l: TcpListener = sock.listen(64)?;
    let local = l.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    Ok((local, task))
}

async fn next(rx: &mut mpsc::Receiver<Tick>) -> Tick {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a probe within 10 s")
        .expect("probe still running")
}

#[tokio::test]
async fn counts_lost_probes_and_the_gap_across_a_restart() {
    let (addr, server) = serve(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
    let (tx, mut rx) = mpsc::channel(4096);
    let cancel = CancellationToken::new();
    let interval = Duration::from_millis(20);
    let cfg = Config {
        target: Target::Tcp(addr),
        interval,
        timeout: Duration::from_millis(200),
        duration: None,
    };
    let probe = {
        let cancel = cancel.clone();
        tokio::spawn(
            async move { continuous::run(&RealProber::new(), &cfg, cancel, Some(tx)).await },
        )
    };

    let mut ticks = Vec::new();
    while ticks.iter().filter(|t: &&Tick| t.ok).count() < 3 {
        ticks.push(next(&mut rx).await);
    }
    assert!(ticks.iter().all(|t| t.ok), "up from the start: {ticks:?}");

    // The "VM" goes away (its link moves): connections are refused.
    server.abort();
    let _ = server.await;
    let mut lost = 0;
    while lost < 3 {
        let t = next(&mut rx).await;
        if !t.ok {
            lost += 1;
        }
        ticks.push(t);
    }

    // …and comes back on the same address.
    let deadline = tokio::time::Instant::now() + WAIT;
    let server = loop {
        match serve(addr) {
            Ok((_, task)) => break task,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("rebind {addr}: {e}; retrying");
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("cannot rebind {addr}: {e}"),
        }
    };
    loop {
        let t = next(&mut rx).await;
        let ok = t.ok;
        ticks.push(t);
        if ok {
            break;
        }
    }
    cancel.cancel();
    let summary = tokio::time::timeout(WAIT, probe)
        .await
        .expect("stops on cancel")
        .expect("probe task");
    server.abort();
    while let Ok(t) = rx.try_recv() {
        ticks.push(t);
    }

    let lost_ticks = ticks.iter().filter(|t| !t.ok).count() as u64;
    assert_eq!(summary.sent, ticks.len() as u64, "{summary:?}");
    assert_eq!(summary.lost, lost_ticks, "{summary:?}");
    assert!(summary.lost >= 3, "{summary:?}");
    assert_eq!(summary.outages, 1, "{summary:?}");
    assert!(!summary.unrecovered, "{summary:?}");
    // The gap spans from the last success before the outage to the first after it: at
    // least (lost + 1) intervals apart, as measured on the probe's own clock.
    let first_lost = ticks.iter().position(|t| !t.ok).expect("a loss");
    let last_ok_before = &ticks[first_lost - 1];
    let first_ok_after = ticks[first_lost..]
        .iter()
        .find(|t| t.ok)
        .expect("recovered");
    let gap = summary.longest_gap.expect("a gap");
    assert_eq!(gap, first_ok_after.elapsed - last_ok_before.elapsed);
    assert!(gap >= interval * 3, "{gap:?}");
    assert_eq!(ticks.last().and_then(|t| t.longest_gap), Some(gap));
}

#[tokio::test]
async fn stops_after_its_duration_and_reports_an_open_outage() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    let cfg = Config {
        target: Target::Tcp(addr),
        interval: Duration::from_millis(10),
        timeout: Duration::from_millis(100),
        duration: Some(Duration::from_millis(100)),
    };
    let summary = tokio::time::timeout(
        WAIT,
        continuous::run(&RealProber::new(), &cfg, CancellationToken::new(), None),
    )
    .await
    .expect("stops by itself");
    assert!(summary.sent >= 1, "{summary:?}");
    assert_eq!(summary.lost, summary.sent, "nothing listens: {summary:?}");
    assert!(summary.unrecovered);
    assert_eq!(summary.lost_before_first_success, summary.sent);
}
