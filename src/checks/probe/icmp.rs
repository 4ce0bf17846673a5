//! ICMP echo: unprivileged datagram socket, else raw socket (root), else a TCP fallback that
//! says so in the detail.

use super::tcp::{connect, Connect};
use super::{ms, IcmpMode, Probe, RealProber};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

static SEQ: AtomicU16 = AtomicU16::new(1);
static DETECTED: OnceLock<IcmpMode> = OnceLock::new();

/// Which ICMP mode this process can use (probes for the socket kinds once).
pub fn detect_mode() -> IcmpMode {
    *DETECTED.get_or_init(|| {
        if open(Domain::IPV4, Type::DGRAM).is_ok() {
            IcmpMode::Datagram
        } else if open(Domain::IPV4, Type::RAW).is_ok() {
            IcmpMode::Raw
        } else {
            IcmpMode::TcpFallback
        }
    })
}

fn open(domain: Domain, ty: Type) -> io::Result<Socket> {
    let proto = if domain == Domain::IPV6 {
        Protocol::ICMPV6
    } else {
        Protocol::ICMPV4
    };
    Socket::new(domain, ty, Some(proto))
}

fn permission_denied(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || matches!(e.raw_os_error(), Some(1) | Some(13))
}

pub(crate) async fn probe(p: &RealProber, ip: IpAddr, timeout: Duration) -> Probe {
    let mode = p.icmp_mode.unwrap_or_else(detect_mode);
    let ty = match mode {
        IcmpMode::Datagram => Type::DGRAM,
        IcmpMode::Raw => Type::RAW,
        IcmpMode::TcpFallback => {
            return tcp_fallback(
                p,
                ip,
                timeout,
                "ICMP sockets not permitted here (net.ipv4.ping_group_range excludes this \
                 group and no CAP_NET_RAW)",
            )
            .await
        }
    };
    match echo(ip, ty, timeout).await {
        Ok(Some(rtt)) => Probe::pass(format!("echo reply in {}", ms(rtt)), rtt),
        Ok(None) => Probe::fail(format!("no echo reply within {}", ms(timeout))),
        Err(e) if permission_denied(&e) => {
            tcp_fallback(p, ip, timeout, &format!("ICMP socket refused ({e})")).await
        }
        Err(e) if super::tcp::is_unreachable(&e) => Probe::fail(format!("unreachable: {e}")),
        Err(e) => Probe::error(format!("ICMP probe failed: {e}")),
    }
}

/// One echo request; `Ok(None)` when no reply came in time.
async fn echo(ip: IpAddr, ty: Type, timeout: Duration) -> io::Result<Option<Duration>> {
    let domain = if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = open(domain, ty)?;
    sock.set_nonblocking(true)?;
    let target = SocketAddr::new(ip, 0);
    sock.connect(&SockAddr::from(target))?;
    let std_sock: std::net::UdpSocket = sock.into();
    let sock = UdpSocket::from_std(std_sock)?;

    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    // With datagram sockets the kernel replaces the identifier with the socket's own and
    // routes replies to it; with raw sockets we match the identifier ourselves.
    let ident = (std::process::id() as u16) ^ 0x5757;
    let (req_type, reply_type) = if ip.is_ipv4() { (8u8, 0u8) } else { (128, 129) };
    let mut pkt = vec![req_type, 0, 0, 0];
    pkt.extend_from_slice(&ident.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"wavelift-probe..");
    if ip.is_ipv4() {
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let start = Instant::now();
    sock.send(&pkt).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(None),
        };
        let mut reply = &buf[..n];
        // A raw IPv4 socket delivers the IP header too.
        if ty == Type::RAW && ip.is_ipv4() && !reply.is_empty() {
            let ihl = usize::from(reply[0] & 0x0f) * 4;
            reply = reply.get(ihl..).unwrap_or(&[]);
        }
        if reply.len() < 8 || reply[0] != reply_type {
            continue;
        }
        let r_ident = u16::from_be_bytes([reply[4], reply[5]]);
        let r_seq = u16::from_be_bytes([reply[6], reply[7]]);
        if r_seq == seq && (ty == Type::DGRAM || r_ident == ident) {
            return Ok(Some(start.elapsed()));
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Stands in for ICMP with TCP connects to a few ports at once: any answer (accepted or
/// refused) proves the host is up. The detail always says a fallback was used.
async fn tcp_fallback(p: &RealProber, ip: IpAddr, timeout: Duration, why: &str) -> Probe {
    let ports: Vec<u16> = if p.fallback_ports.is_empty() {
        vec![22, 80, 443]
    } else {
        p.fallback_ports.clone()
    };
    let attempts = ports.iter().map(|&port| {
        Box::pin(async move { (port, connect(SocketAddr::new(ip, port), timeout).await) })
    });
    let mut pending: Vec<_> = attempts.collect();
    let mut unreachable = None;
    while !pending.is_empty() {
        let ((port, res), _, rest) = futures::future::select_all(pending).await;
        pending = rest;
        match res {
            Connect::Connected(t) => {
                return Probe::pass(
                    format!("{why}; TCP fallback: port {port} accepted in {}", ms(t)),
                    t,
                )
            }
            Connect::Refused(t) => {
                return Probe::pass(
                    format!(
                        "{why}; TCP fallback: port {port} refused in {} (host is up)",
                        ms(t)
                    ),
                    t,
                )
            }
            Connect::Unreachable(e) => unreachable = Some(e),
            Connect::TimedOut | Connect::Other(_) => {}
        }
    }
    match unreachable {
        Some(e) => Probe::fail(format!("{why}; TCP fallback: unreachable: {e}")),
        None => Probe::fail(format!(
            "{why}; TCP fallback: no answer on ports {ports:?} within {}",
            ms(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_of_known_packet() {
        // echo request id 1 seq 1, no payload: 0x0800 + 0x0001 + 0x0001 → !0x0802 = 0xf7fd
        assert_eq!(super::checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }
}
