//! Network probes behind one object-safe trait, [`Prober`].
//!
//! Design: the trait's methods return a boxed future ([`ProbeFuture`]) instead of being
//! `async fn`, so `&dyn Prober` works (the engine and the TUI hold one prober, real or sim,
//! without generics) and no `async_trait` macro is needed. Every method resolves to a
//! [`Probe`] — an outcome with a detail — and never panics or returns `Err`: an unreachable
//! resolver or a refused permission is [`Outcome::Error`] with a detail, a target that does
//! not answer is [`Outcome::Fail`].
//!
//! Implementations:
//! - [`RealProber`]: sockets (ICMP datagram/raw sockets with a TCP fallback, TCP connect,
//!   HTTP(S) GET over hyper, DNS over UDP with hickory-proto's wire format);
//! - [`SimProber`]: asks the embedded sim's network (`GET /sim/v1/probe`).
//!
//! Retries are not a prober's business: the runner retries a probe that did not pass.

pub mod arp;
mod dns;
mod http;
mod icmp;
pub mod pod;
mod sim;
mod tcp;

pub use dns::system_resolver;
pub use icmp::detect_mode;
pub use sim::{SimProbeAnswer, SimProber};

use crate::checks::result::Outcome;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

/// What one probe attempt saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub outcome: Outcome,
    pub detail: String,
    /// Time the attempt took (round trip, connect time, response time), when measured.
    pub latency: Option<Duration>,
}

impl Probe {
    pub fn pass(detail: impl Into<String>, latency: Duration) -> Self {
        Probe {
            outcome: Outcome::Pass,
            detail: detail.into(),
            latency: Some(latency),
        }
    }
    pub fn fail(detail: impl Into<String>) -> Self {
        Probe {
            outcome: Outcome::Fail,
            detail: detail.into(),
            latency: None,
        }
    }
    pub fn error(detail: impl Into<String>) -> Self {
        Probe {
            outcome: Outcome::Error,
            detail: detail.into(),
            latency: None,
        }
    }
    pub fn skipped(detail: impl Into<String>) -> Self {
        Probe {
            outcome: Outcome::Skipped,
            detail: detail.into(),
            latency: None,
        }
    }
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }
}

/// The future every [`Prober`] method returns.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Probe> + Send + 'a>>;

/// A DNS check: A/AAAA of `name` must contain `expected`, and the PTR of `expected` must
/// name `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery<'a> {
    pub name: &'a str,
    pub expected: IpAddr,
    /// Resolver (`IP:PORT`); `None` = the system resolver (first `nameserver` of
    /// `/etc/resolv.conf` for the real prober).
    pub server: Option<SocketAddr>,
}

/// Probes the network. Object-safe: use it as `&dyn Prober` / `Arc<dyn Prober>`.
pub trait Prober: Send + Sync {
    /// Does `ip` answer ICMP echo (or, where ICMP is not permitted, a TCP fallback — the
    /// detail says so)?
    fn icmp(&self, ip: IpAddr, timeout: Duration) -> ProbeFuture<'_>;
    /// Does a TCP connect to `addr` succeed?
    fn tcp(&self, addr: SocketAddr, timeout: Duration) -> ProbeFuture<'_>;
    /// Does `GET url` answer with a status in `expect` (empty: any 2xx/3xx)?
    fn http<'a>(&'a self, url: &'a str, expect: &'a [u16], timeout: Duration) -> ProbeFuture<'a>;
    /// Do forward and reverse DNS agree with the plan?
    fn dns<'a>(&'a self, query: DnsQuery<'a>, timeout: Duration) -> ProbeFuture<'a>;
    /// Do the `disks` disks VM `vm` booted from hold every write its source made before
    /// it was powered off? Only the rehearsal cluster can answer; a real network cannot.
    fn disk_consistent<'a>(
        &'a self,
        vm: &'a str,
        disks: usize,
        timeout: Duration,
    ) -> ProbeFuture<'a> {
        let _ = (vm, disks, timeout);
        Box::pin(async {
            Probe::skipped("only the rehearsal cluster knows what the copied disks hold; on a real cluster, check the application's own data")
        })
    }
}

/// How the real prober sends ICMP echo, decided once per process on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpMode {
    /// Unprivileged `SOCK_DGRAM`/`IPPROTO_ICMP` socket (`net.ipv4.ping_group_range`).
    Datagram,
    /// `SOCK_RAW` socket (needs `CAP_NET_RAW`; used when datagram sockets are refused).
    Raw,
    /// Neither is permitted: a TCP connect to a few ports stands in (an answer — accepted or
    /// refused — proves the host is up; silence is a failure, never a pass).
    TcpFallback,
}

/// Probes with real sockets.
#[derive(Debug, Clone)]
pub struct RealProber {
    /// Ports tried by the ICMP → TCP fallback.
    pub fallback_ports: Vec<u16>,
    /// Force an ICMP mode (tests); `None` = detect.
    pub icmp_mode: Option<IcmpMode>,
}

impl Default for RealProber {
    fn default() -> Self {
        RealProber {
            fallback_ports: vec![22, 80, 443, 3389],
            icmp_mode: None,
        }
    }
}

impl RealProber {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Prober for RealProber {
    fn icmp(&self, ip: IpAddr, timeout: Duration) -> ProbeFuture<'_> {
        Box::pin(icmp::probe(self, ip, timeout))
    }
    fn tcp(&self, addr: SocketAddr, timeout: Duration) -> ProbeFuture<'_> {
        Box::pin(tcp::probe(addr, timeout))
    }
    fn http<'a>(&'a self, url: &'a str, expect: &'a [u16], timeout: Duration) -> ProbeFuture<'a> {
        Box::pin(http::probe(url, expect, timeout))
    }
    fn dns<'a>(&'a self, query: DnsQuery<'a>, timeout: Duration) -> ProbeFuture<'a> {
        Box::pin(dns::probe(query, timeout))
    }
}

/// Whether an HTTP status is accepted: listed in `expect`, or any 2xx/3xx when `expect` is
/// empty.
pub fn status_accepted(status: u16, expect: &[u16]) -> bool {
    if expect.is_empty() {
        (200..400).contains(&status)
    } else {
        expect.contains(&status)
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
