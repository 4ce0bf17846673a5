//! DNS probe: forward (A/AAAA of NAME contains the planned IP) and reverse (PTR of the IP
//! names NAME), asked over UDP of one resolver with hickory-proto's wire format.
//!
//! Outcomes: a wrong or missing answer (NXDOMAIN, no records, other addresses) is a `fail`;
//! a resolver that does not answer, refuses, or answers SERVFAIL is an `error` (it says
//! nothing about the VM). A truncated UDP answer is used as far as it goes (no TCP retry).

use super::{ms, DnsQuery, Probe};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// The first `nameserver` of `/etc/resolv.conf`, port 53.
pub fn system_resolver() -> Option<SocketAddr> {
    let text = crate::fsio::read_bounded_string(
        std::path::Path::new("/etc/resolv.conf"),
        crate::fsio::SYSTEM_FILE_MAX,
        "resolv.conf",
    )
    .ok()?;
    parse_resolv_conf(&text)
}

fn parse_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next())
            .flatten()
            .and_then(|a| a.split('%').next())
            .and_then(|a| a.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

enum Answer {
    Records(Vec<RData>),
    NxDomain,
}

pub(crate) async fn probe(q: DnsQuery<'_>, timeout: Duration) -> Probe {
    let Some(server) = q.server.or_else(system_resolver) else {
        return Probe::error("no resolver: no dns_server in the plan and none in /etc/resolv.conf");
    };
    let Ok(name) = Name::from_ascii(q.name) else {
        return Probe::error(format!("`{}` is not a DNS name", q.name));
    };
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let rtype = if q.expected.is_ipv4() {
        RecordType::A
    } else {
        RecordType::AAAA
    };
    let forward = match ask(server, &name, rtype, deadline).await {
        Ok(a) => a,
        Err(e) => return Probe::error(e),
    };
    let addrs: Vec<IpAddr> = match &forward {
        Answer::Records(r) => r
            .iter()
            .filter_map(|d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect(),
        Answer::NxDomain => {
            return Probe::fail(format!(
                "{} does not exist (NXDOMAIN from {server})",
                q.name
            ))
            .with_latency(start.elapsed())
        }
    };
    if !addrs.contains(&q.expected) {
        let seen = if addrs.is_empty() {
            "no address".to_string()
        } else {
            join(&addrs)
        };
        return Probe::fail(format!(
            "{rtype} {} → {seen}, expected {} (resolver {server})",
            q.name, q.expected
        ))
        .with_latency(start.elapsed());
    }
    let reverse = Name::from(q.expected);
    let ptrs: Vec<String> = match ask(server, &reverse, RecordType::PTR, deadline).await {
        Ok(Answer::Records(r)) => r
            .iter()
            .filter_map(|d| match d {
                RData::PTR(p) => Some(p.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(Answer::NxDomain) => Vec::new(),
        Err(e) => return Probe::error(e),
    };
    let want = q.name.trim_end_matches('.').to_ascii_lowercase();
    let t = start.elapsed();
    if ptrs.contains(&want) {
        Probe::pass(
            format!(
                "{rtype} {} → {}, PTR → {want} ({})",
                q.name,
                q.expected,
                ms(t)
            ),
            t,
        )
    } else if ptrs.is_empty() {
        Probe::fail(format!(
            "{rtype} matches, but {} has no PTR record (resolver {server})",
            q.expected
        ))
        .with_latency(t)
    } else {
        Probe::fail(format!(
            "{rtype} matches, but PTR of {} → {}, expected {want}",
            q.expected,
            ptrs.join(", ")
        ))
        .with_latency(t)
    }
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One question to `server`; `Err` (a per-check error) when the resolver does not answer
/// usefully.
async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    deadline: tokio::time::Instant,
) -> Result<Answer, String> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), rtype));
    let id = msg.metadata.id;
    let bytes = msg
        .to_vec()
        .map_err(|e| format!("cannot encode DNS query: {e}"))?;
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("resolver {server} unreachable: {e}"))?;
    sock.send(&bytes)
        .await
        .map_err(|e| format!("resolver {server} unreachable: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(format!("resolver {server} unreachable: {e}")),
            Err(_) => return Err(format!("resolver {server} did not answer in time")),
        };
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if reply.metadata.id != id {
            continue;
        }
        return match reply.metadata.response_code {
            ResponseCode::NoError => Ok(Answer::Records(
                reply
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect(),
            )),
            ResponseCode::NXDomain => Ok(Answer::NxDomain),
            code => Err(format!(
                "resolver {server} answered {code} for {rtype} {}",
                name.to_ascii()
            )),
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_resolv_conf() {
        let text = "# x\nsearch corp\nnameserver fe80::1%eth0\nnameserver 192.0.2.53\n";
        assert_eq!(
            super::parse_resolv_conf(text),
            Some("[fe80::1]:53".parse().expect("addr"))
        );
        assert_eq!(super::parse_resolv_conf("search x\n"), None);
    }
}
