//! Probes answered by the embedded sim's simulated network.
//!
//! # Contract (the sim serves it; this client and its test server speak it)
//!
//! ```text
//! GET {base}/sim/v1/probe?ip=IP&proto=icmp[&from=SRC]
//! GET {base}/sim/v1/probe?ip=IP&port=PORT&proto=tcp[&from=SRC]
//! → 200, Content-Type: application/json
//!   {"result": "reachable" | "unreachable" | "conflict", "holders": ["vm-name", ...]}
//! ```
//!
//! - `from` (since issue 17) is the flow's source address: the sim's network enforces the
//!   cluster's NetworkPolicies and MultiNetworkPolicies on migrated VMs' pods, so who asks
//!   matters. Without it the sim takes its rehearsal workstation address
//!   (`wavelift::sim::WORKSTATION_IP`, 198.51.100.254): where workstation checks come from.
//!   [`SimProber`] sends it only when given one ([`SimProber::with_from`]).
//! - A flow the policies drop is `unreachable`; the sim then also sends
//!   `"blocked_by": ["MultiNetworkPolicy NS/NAME", ...]` and names them in `detail`.
//!
//! - `reachable`: exactly one running machine (source VM, or migrated VM on the right VLAN)
//!   holds the IP (and, for tcp, listens on PORT); `holders` names it.
//! - `unreachable`: nobody holds it (or the port is closed); `holders` may be empty.
//! - `conflict`: two or more running machines hold the IP; `holders` names them all.
//! - `holders` may be omitted (empty); an optional `"detail": "…"` string is appended to
//!   the check's detail. Unknown fields are ignored. Any other status, a body
//!   that is not this JSON, or no answer is a probe *error* (the sim, not the VM, failed).
//!
//! `base` is the sim's HTTP root, e.g. `http://127.0.0.1:6443` (plain HTTP). HTTP and DNS
//! checks are `skipped` against the sim: its network models ICMP and TCP reachability only.

use super::http::parse_url;
use super::{ms, DnsQuery, Probe, ProbeFuture, Prober};
use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The sim's answer to one probe.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SimProbeAnswer {
    pub result: String,
    #[serde(default)]
    pub holders: Vec<String>,
    /// Optional explanation from the sim (e.g. which VLAN the holder is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Asks the sim network; see the module doc for the wire contract.
#[derive(Debug, Clone)]
pub struct SimProber {
    /// `http://HOST:PORT` of the sim (a trailing `/` is ignored).
    pub base: String,
    /// The source address the probes claim (`from=`); `None`: the sim's workstation address.
    pub from: Option<IpAddr>,
}

impl SimProber {
    pub fn new(base: impl Into<String>) -> Self {
        SimProber {
            base: base.into(),
            from: None,
        }
    }

    /// Probes from `from` (the sim evaluates the cluster's policies for that source).
    pub fn with_from(mut self, from: IpAddr) -> Self {
        self.from = Some(from);
        self
    }

    /// The sim's raw answer for `ip` (ICMP) or `ip:port` (TCP) — for callers that need the
    /// holders themselves, such as the engine's duplicate-IP guard. `Err` says why the sim
    /// could not be asked.
    pub async fn answer(
        &self,
        ip: IpAddr,
        port: Option<u16>,
        timeout: Duration,
    ) -> Result<SimProbeAnswer, String> {
        let proto = if port.is_some() { "tcp" } else { "icmp" };
        let mut path = format!("/sim/v1/probe?ip={ip}&proto={proto}");
        if let Some(p) = port {
            path.push_str(&format!("&port={p}"));
        }
        if let Some(f) = self.from {
            path.push_str(&format!("&from={f}"));
        }
        match tokio::time::timeout(timeout, self.get(&path)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}", ms(timeout))),
        }
    }

    async fn ask(&self, ip: IpAddr, port: Option<u16>, timeout: Duration) -> Probe {
        let start = Instant::now();
        let answer = match self.answer(ip, port, timeout).await {
            Ok(a) => a,
            Err(e) => return Probe::error(format!("sim probe: {e}")),
        };
        let t = start.elapsed();
        let holders = answer.holders.join(", ");
        let probe = match answer.result.as_str() {
            "reachable" if holders.is_empty() => Probe::pass("sim: reachable", t),
            "reachable" => Probe::pass(format!("sim: reachable (held by {holders})"), t),
            "unreachable" => Probe::fail("sim: unreachable").with_latency(t),
            "conflict" => {
                Probe::fail(format!("sim: IP conflict, held by {holders}")).with_latency(t)
            }
            other => Probe::error(format!("sim probe: unknown result `{other}`")),
        };
        match answer.detail.as_deref().map(str::trim) {
            Some(d) if !d.is_empty() => Probe {
                detail: format!("{}: {d}", probe.detail),
                ..probe
            },
            _ => probe,
        }
    }

    /// The rehearsal world's clock (Unix ms) and speed (`GET /sim/v1/clock`).
    pub async fn clock(&self) -> Result<(i64, f64), String> {
        #[derive(serde::Deserialize)]
        struct Clock {
            unix_ms: i64,
            speed: f64,
        }
        let c: Clock = self.get_json("/sim/v1/clock").await?;
        Ok((c.unix_ms, c.speed))
    }

    async fn get(&self, path: &str) -> Result<SimProbeAnswer, String> {
        self.get_json(path).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let base = self.base.trim_end_matches('/');
        let u = parse_url(base).ok_or_else(|| format!("`{base}` is not an http URL"))?;
        if u.https {
            return Err("the sim prober speaks plain http only".into());
        }
        let addr = match u.host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, u.port),
            Err(_) => tokio::net::lookup_host((u.host.as_str(), u.port))
                .await
                .map_err(|e| format!("cannot resolve `{}`: {e}", u.host))?
                .next()
                .ok_or_else(|| format!("`{}` resolves to no address", u.host))?,
        };
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to sim at {addr}: {e}"))?;
        let prefix = u.path.trim_end_matches('/');
        let req = hyper::Request::get(format!("{prefix}{path}"))
            .header(hyper::header::HOST, format!("{}:{}", u.host, u.port))
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("bad request: {e}"))?;
        let out = async {
            let res = crate::http1::exchange(tcp, None, req, true)
                .await
                .map_err(|e| format!("no HTTP response from sim: {e}"))?;
            let (status, body) = (
                hyper::StatusCode::from_u16(res.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY),
                res.body,
            );
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body);
                return Err(format!("sim answered HTTP {status}: {}", text.trim()));
            }
            serde_json::from_slice::<T>(&body)
                .map_err(|e| format!("sim answer is not the expected JSON: {e}"))
        }
        .await;
        out
    }
}

impl Prober for SimProber {
    fn icmp(&self, ip: IpAddr, timeout: Duration) -> ProbeFuture<'_> {
        Box::pin(self.ask(ip, None, timeout))
    }
    fn tcp(&self, addr: SocketAddr, timeout: Duration) -> ProbeFuture<'_> {
        Box::pin(self.ask(addr.ip(), Some(addr.port()), timeout))
    }
    fn http<'a>(&'a self, _url: &'a str, _expect: &'a [u16], _t: Duration) -> ProbeFuture<'a> {
        Box::pin(async {
            Probe::skipped("the sim network models ICMP and TCP reachability only, not HTTP")
        })
    }
    fn dns<'a>(&'a self, _query: DnsQuery<'a>, _t: Duration) -> ProbeFuture<'a> {
        Box::pin(async { Probe::skipped("the sim network has no DNS") })
    }

    fn disk_consistent<'a>(
        &'a self,
        vm: &'a str,
        disks: usize,
        timeout: Duration,
    ) -> ProbeFuture<'a> {
        Box::pin(async move {
            #[derive(serde::Deserialize)]
            struct Verdict {
                result: String,
                detail: String,
            }
            let path = format!(
                "/sim/v1/disks?vm={}&disks={disks}",
                percent_encoding::utf8_percent_encode(vm, percent_encoding::NON_ALPHANUMERIC)
            );
            match tokio::time::timeout(timeout, self.get_json::<Verdict>(&path)).await {
                Err(_) => Probe::error(format!(
                    "the rehearsal's world did not answer within {timeout:?}"
                )),
                Ok(Err(e)) => Probe::error(e),
                Ok(Ok(v)) => match v.result.as_str() {
                    "consistent" => Probe {
                        outcome: crate::checks::result::Outcome::Pass,
                        detail: v.detail,
                        latency: None,
                    },
                    "inconsistent" => Probe::fail(v.detail),
                    _ => Probe::skipped(v.detail),
                },
            }
        })
    }
}
