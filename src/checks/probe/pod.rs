//! The result document of `wavelift probe`: one compact JSON object written to the
//! container's termination message (`/dev/termination-log`), which the kubelet keeps up to
//! 4,096 bytes. The engine reads it back with [`decode`] (the rehearsal cluster's kubelet
//! writes its own with [`encode`]).
//!
//! ```json
//! {"v":1,"r":[{"k":"arp","t":"192.0.2.15","m":["00:50:56:ab:cd:01"]},
//!             {"k":"icmp","t":"192.0.2.15","ok":true,"ms":1},
//!             {"k":"tcp","t":"192.0.2.15:5432","ok":false,"e":"refused"}]}
//! ```
//!
//! `k`: `arp`, `gateway` (an ARP probe of the gateway), `icmp`, `tcp`, `watch` (a continuous
//! ICMP probe during a live migration: `n` sent, `lost`, `gap` the longest gap in ms); `t`:
//! the target; `m`:
//! every MAC that claimed the IP (ARP; more than one is a conflict); `more`: MACs left out
//! to stay within the limit; `ok`/`ms`: reachability and round trip (icmp, tcp); `e`: why
//! the probe could not be made or failed.

use serde::{Deserialize, Serialize};

/// The kubelet's limit on a termination message.
pub const TERMINATION_LOG_LIMIT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PodResult {
    /// Format version: 1.
    pub v: u8,
    pub r: Vec<PodProbe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PodProbe {
    pub k: String,
    pub t: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub m: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// `watch`: probes sent, lost, and the longest gap in service (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<u64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The document as compact JSON within [`TERMINATION_LOG_LIMIT`] bytes: when it does not
/// fit, error texts are shortened and the longest MAC lists cut (counted in `more`) until
/// it does.
pub fn encode(result: &PodResult) -> String {
    let mut r = result.clone();
    loop {
        let text = serde_json::to_string(&r).unwrap_or_default();
        if text.len() <= TERMINATION_LOG_LIMIT {
            return text;
        }
        if let Some(e) =
            r.r.iter_mut()
                .filter_map(|p| p.e.as_mut())
                .find(|e| e.len() > 64)
        {
            let cut = (0..=64).rev().find(|&i| e.is_char_boundary(i)).unwrap_or(0);
            e.truncate(cut);
            continue;
        }
        match r
            .r
            .iter_mut()
            .filter(|p| !p.m.is_empty())
            .max_by_key(|p| p.m.len())
        {
            Some(p) => {
                p.m.pop();
                p.more += 1;
            }
            None => {
                // Too many probes: drop the last ones (never written by one invocation).
                r.r.pop();
            }
        }
    }
}

/// What one probe pod is asked to do: the `wavelift probe` arguments the engine writes
/// into the pod and the rehearsal cluster's kubelet reads back ([`ProbeRequest::to_args`],
/// [`ProbeRequest::from_args`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeRequest {
    /// ARP probes (`arp` entries).
    pub arp: Vec<std::net::Ipv4Addr>,
    /// ARP probes of the gateway or the `l2_probe_target` (`gateway` entries).
    pub gateway: Vec<std::net::Ipv4Addr>,
    pub icmp: Vec<std::net::IpAddr>,
    pub tcp: Vec<std::net::SocketAddr>,
    /// A continuous ICMP probe (`watch` entry: `n` sent, `lost`, `gap` ms): every 100 ms
    /// until SIGTERM (the pod's graceful deletion) or `watch_for`, whichever comes first.
    pub watch: Option<std::net::IpAddr>,
    pub watch_for: Option<std::time::Duration>,
}

impl ProbeRequest {
    /// The arguments after `wavelift probe --interface net1`.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut put = |flag: &str, v: String| {
            a.push(flag.to_string());
            a.push(v);
        };
        self.arp.iter().for_each(|ip| put("--arp", ip.to_string()));
        self.gateway
            .iter()
            .for_each(|ip| put("--gateway", ip.to_string()));
        self.icmp
            .iter()
            .for_each(|ip| put("--icmp", ip.to_string()));
        self.tcp.iter().for_each(|t| put("--tcp", t.to_string()));
        if let Some(ip) = self.watch {
            put("--watch", ip.to_string());
        }
        if let Some(d) = self.watch_for {
            put("--watch-for", format!("{}s", d.as_secs().max(1)));
        }
        a
    }

    /// Reads a probe container's arguments (`probe`, `--interface IF` and the timing flags
    /// are skipped). `Err` names the first argument it does not understand.
    pub fn from_args(args: &[String]) -> Result<ProbeRequest, String> {
        let mut r = ProbeRequest::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "probe" {
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("`{flag}` without a value"))?;
            let bad = |what: &str| format!("`{flag} {value}`: not {what}");
            match flag.as_str() {
                "--arp" => r
                    .arp
                    .push(value.parse().map_err(|_| bad("an IPv4 address"))?),
                "--gateway" => r
                    .gateway
                    .push(value.parse().map_err(|_| bad("an IPv4 address"))?),
                "--icmp" => r
                    .icmp
                    .push(value.parse().map_err(|_| bad("an IP address"))?),
                "--tcp" => r.tcp.push(value.parse().map_err(|_| bad("IP:PORT"))?),
                "--watch" => r.watch = Some(value.parse().map_err(|_| bad("an IP address"))?),
                "--watch-for" => {
                    r.watch_for = Some(
                        crate::plan::check::parse_duration(value)
                            .ok_or_else(|| bad("a duration"))?,
                    )
                }
                "--interface" | "--termination-log" | "--arp-interval" | "--arp-wait"
                | "--timeout" => {}
                _ => return Err(format!("unknown argument `{flag}`")),
            }
        }
        Ok(r)
    }
}

/// Reads a termination message back.
pub fn decode(text: &str) -> Result<PodResult, String> {
    let r: PodResult = serde_json::from_str(text.trim())
        .map_err(|e| format!("probe result is not the expected JSON: {e}"))?;
    if r.v != 1 {
        return Err(format!(
            "probe result version {} (this wavelift reads 1)",
            r.v
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_macs_fit_the_termination_log_and_read_back() {
        let macs: Vec<String> = (0..50).map(|i| format!("00:50:56:ab:cd:{i:02x}")).collect();
        let doc = PodResult {
            v: 1,
            r: vec![
                PodProbe {
                    k: "arp".into(),
                    t: "192.0.2.15".into(),
                    m: macs.clone(),
                    ..Default::default()
                },
                PodProbe {
                    k: "tcp".into(),
                    t: "192.0.2.15:5432".into(),
                    ok: Some(false),
                    e: Some("refused".into()),
                    ..Default::default()
                },
            ],
        };
        let text = encode(&doc);
        assert!(text.len() <= TERMINATION_LOG_LIMIT, "{}", text.len());
        assert_eq!(decode(&text).expect("decode"), doc);
    }

    #[test]
    fn a_request_reads_back_from_its_arguments() {
        let r = ProbeRequest {
            arp: vec!["192.0.2.15".parse().unwrap()],
            gateway: vec!["192.0.2.1".parse().unwrap()],
            icmp: vec!["192.0.2.15".parse().unwrap()],
            tcp: vec!["192.0.2.15:5432".parse().unwrap()],
            watch: Some("192.0.2.15".parse().unwrap()),
            watch_for: Some(std::time::Duration::from_secs(600)),
        };
        let mut args = vec!["probe".to_string(), "--interface".into(), "net1".into()];
        args.extend(r.to_args());
        assert_eq!(ProbeRequest::from_args(&args), Ok(r));
        assert!(ProbeRequest::from_args(&["--arp".into(), "x".into()]).is_err());
        assert!(ProbeRequest::from_args(&["--bogus".into(), "1".into()]).is_err());
        assert!(ProbeRequest::from_args(&["--arp".into()]).is_err());
    }

    #[test]
    fn too_much_is_cut_and_counted_never_overflowing() {
        let macs: Vec<String> = (0..400)
            .map(|i| format!("00:50:56:ab:{:02x}:{:02x}", i / 256, i % 256))
            .collect();
        let doc = PodResult {
            v: 1,
            r: vec![PodProbe {
                k: "arp".into(),
                t: "192.0.2.15".into(),
                m: macs,
                e: Some("x".repeat(3000)),
                ..Default::default()
            }],
        };
        let text = encode(&doc);
        assert!(text.len() <= TERMINATION_LOG_LIMIT);
        let back = decode(&text).expect("decode");
        assert_eq!(back.r[0].m.len() + back.r[0].more, 400);
        assert!(back.r[0].more > 0);
        assert!(decode("{\"v\":2,\"r\":[]}").is_err());
        assert!(decode("not json").is_err());
    }
}
