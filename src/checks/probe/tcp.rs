//! TCP connect probe.

use super::{ms, Probe};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How a TCP connect attempt ended.
#[derive(Debug)]
pub(crate) enum Connect {
    Connected(Duration),
    /// RST: the host is up, the port is closed.
    Refused(Duration),
    TimedOut,
    /// Host or network unreachable (ICMP unreachable from a router, no route).
    Unreachable(io::Error),
    /// Anything else (permission denied, address not available, …).
    Other(io::Error),
}

pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Connect {
    let start = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => Connect::Connected(start.elapsed()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Connect::Refused(start.elapsed())
        }
        Ok(Err(e)) if is_unreachable(&e) => Connect::Unreachable(e),
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => Connect::TimedOut,
        Ok(Err(e)) => Connect::Other(e),
        Err(_) => Connect::TimedOut,
    }
}

pub(crate) fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable
    ) || matches!(e.raw_os_error(), Some(113) | Some(101))
}

pub(crate) async fn probe(addr: SocketAddr, timeout: Duration) -> Probe {
    match connect(addr, timeout).await {
        Connect::Connected(t) => Probe::pass(format!("connected in {}", ms(t)), t),
        Connect::Refused(t) => {
            Probe::fail("connection refused (host answered, port closed)").with_latency(t)
        }
        Connect::TimedOut => Probe::fail(format!("no answer within {}", ms(timeout))),
        Connect::Unreachable(e) => Probe::fail(format!("unreachable: {e}")),
        Connect::Other(e) => Probe::error(format!("cannot connect: {e}")),
    }
}
