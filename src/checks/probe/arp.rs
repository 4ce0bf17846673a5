//! RFC 5227 ARP probe over an `AF_PACKET` socket: who answers for an IPv4 address on this
//! link. The probe's sender IP is 0.0.0.0, so the prober needs no address of its own, and
//! the socket needs only `CAP_NET_RAW`. Every distinct sender MAC that claims the target
//! (in a reply or a request of its own) is reported: more than one is an IP conflict.
//!
//! Linux only (`packet(7)`): `SOCK_DGRAM` lets the kernel add and strip the Ethernet
//! header; the socket is bound to the interface and to `ETH_P_ARP`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const ETH_P_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// How an ARP probe is sent: RFC 5227 §2.1.1 sends PROBE_NUM (3) probes PROBE_MIN–PROBE_MAX
/// (1–2 s) apart and waits ANNOUNCE_WAIT (2 s) after the last.
#[derive(Debug, Clone, Copy)]
pub struct ArpTiming {
    pub probes: u32,
    pub interval: Duration,
    pub wait: Duration,
}

impl Default for ArpTiming {
    fn default() -> Self {
        ArpTiming {
            probes: 3,
            interval: Duration::from_secs(1),
            wait: Duration::from_secs(2),
        }
    }
}

/// A MAC as `00:50:56:ab:cd:01`.
pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The ARP probe packet (28 bytes): request, sender `sha` / 0.0.0.0, target `tpa`.
pub fn probe_packet(sha: &[u8; 6], tpa: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    p[8..14].copy_from_slice(sha);
    // spa 0.0.0.0 (p[14..18]), tha zero (p[18..24])
    p[24..28].copy_from_slice(&tpa.octets());
    p
}

/// The sender MAC of an ARP packet that claims `target` (a reply, or a request whose sender
/// IP is `target`), if it is one.
pub fn claimant(pkt: &[u8], target: Ipv4Addr) -> Option<[u8; 6]> {
    if pkt.len() < 28 || pkt[0..2] != [0, 1] || pkt[2..4] != [8, 0] || pkt[4] != 6 || pkt[5] != 4 {
        return None;
    }
    let op = u16::from_be_bytes([pkt[6], pkt[7]]);
    if op != ARP_REPLY && op != ARP_REQUEST {
        return None;
    }
    let spa = Ipv4Addr::new(pkt[14], pkt[15], pkt[16], pkt[17]);
    if spa != target {
        return None;
    }
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&pkt[8..14]);
    Some(sha)
}

/// Owns a file descriptor.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn last_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The interface's index and hardware address.
fn interface(iface: &str, fd: libc::c_int) -> io::Result<(i32, [u8; 6])> {
    let name = CString::new(iface).map_err(|_| io::Error::other("interface name has a NUL"))?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(last_err(&format!("interface {iface}")));
    }
    // SAFETY: ifreq is plain data; the name fits (checked) and the ioctl fills the union.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = iface.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::other(format!("interface name {iface} too long")));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR with a valid ifreq.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(last_err(&format!("hardware address of {iface}")));
    }
    // SAFETY: the ioctl filled ifru_hwaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok((index as i32, mac))
}

fn link_addr(index: i32, dest: [u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ARP.to_be();
    sll.sll_ifindex = index;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&dest);
    sll
}

/// Probes `target` on `iface` (blocking for about `(probes - 1) × interval + wait`):
/// every distinct MAC that claims it, sorted. Needs `CAP_NET_RAW`.
pub fn probe(iface: &str, target: Ipv4Addr, timing: ArpTiming) -> io::Result<Vec<String>> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ARP.to_be()),
        )
    };
    if fd < 0 {
        return Err(last_err("AF_PACKET socket (needs CAP_NET_RAW)"));
    }
    let fd = Fd(fd);
    let (index, own) = interface(iface, fd.0)?;
    let bound = link_addr(index, [0; 6]);
    // SAFETY: a valid sockaddr_ll of its own size.
    if unsafe {
        libc::bind(
            fd.0,
            &bound as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    } < 0
    {
        return Err(last_err(&format!("bind to {iface}")));
    }
    let packet = probe_packet(&own, target);
    let to = link_addr(index, [0xff; 6]);
    let mut seen: BTreeSet<[u8; 6]> = BTreeSet::new();
    let start = Instant::now();
    let last_send = timing.interval * timing.probes.saturating_sub(1);
    let end = start + last_send + timing.wait;
    let mut sent = 0u32;
    let mut buf = [0u8; 128];
    loop {
        let now = Instant::now();
        if sent < timing.probes && now >= start + timing.interval * sent {
            // SAFETY: a valid buffer and sockaddr_ll.
            let n = unsafe {
                libc::sendto(
                    fd.0,
                    packet.as_ptr() as *const libc::c_void,
                    packet.len(),
                    0,
                    &to as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n < 0 {
                return Err(last_err(&format!("send ARP probe on {iface}")));
            }
            sent += 1;
            continue;
        }
        if now >= end {
            break;
        }
        let next = if sent < timing.probes {
            start + timing.interval * sent
        } else {
            end
        };
        let ms = next.saturating_duration_since(now).as_millis().max(1) as i32;
        let mut pfd = libc::pollfd {
            fd: fd.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            continue;
        }
        // SAFETY: a valid buffer.
        let n = unsafe {
            libc::recv(
                fd.0,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            continue;
        }
        if let Some(mac) = claimant(&buf[..n as usize], target) {
            if mac != own {
                seen.insert(mac);
            }
        }
    }
    Ok(seen.iter().map(mac_text).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_packet_is_rfc_5227s() {
        let p = probe_packet(&[0, 0x50, 0x56, 1, 2, 3], Ipv4Addr::new(192, 0, 2, 15));
        assert_eq!(&p[0..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&p[8..14], &[0, 0x50, 0x56, 1, 2, 3]);
        assert_eq!(&p[14..18], &[0, 0, 0, 0], "sender IP 0.0.0.0");
        assert_eq!(&p[18..24], &[0; 6]);
        assert_eq!(&p[24..28], &[192, 0, 2, 15]);
    }

    #[test]
    fn claimants_are_replies_or_requests_from_the_target() {
        let target = Ipv4Addr::new(192, 0, 2, 15);
        let mut reply = probe_packet(&[2, 0, 0, 0, 0, 9], Ipv4Addr::new(0, 0, 0, 0));
        reply[6..8].copy_from_slice(&ARP_REPLY.to_be_bytes());
        reply[14..18].copy_from_slice(&target.octets());
        assert_eq!(claimant(&reply, target), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(mac_text(&[2, 0, 0, 0, 0, 9]), "02:00:00:00:00:09");
        // Another host's probe (sender 0.0.0.0) claims nothing; a short packet neither.
        let other = probe_packet(&[2, 0, 0, 0, 0, 8], target);
        assert_eq!(claimant(&other, target), None);
        assert_eq!(claimant(&reply[..20], target), None);
        // A reply for another address.
        assert_eq!(claimant(&reply, Ipv4Addr::new(192, 0, 2, 16)), None);
    }
}
