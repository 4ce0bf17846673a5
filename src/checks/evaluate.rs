//! `ip-preserved` and `mac-preserved`: pure evaluation of a VMI's `status.interfaces`
//! (as reported by KubeVirt, with the guest agent's view) against the plan's NICs.
//!
//! A VMI interface looks like
//! `{"name":"nic0","mac":"00:50:56:ab:cd:01","ipAddress":"192.0.2.15",
//!   "ipAddresses":["192.0.2.15","fe80::1"],"infoSource":"domain, guest-agent",
//!   "interfaceName":"eth0"}`.
//! Only data with `guest-agent` in `infoSource` proves what the guest itself sees.

use crate::plan::Nic;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use super::result::Outcome;

/// One entry of a VMI's `status.interfaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmiInterface {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// e.g. `domain, guest-agent`, `guest-agent`, `domain, guest-agent, multus-status`.
    #[serde(default)]
    pub info_source: Option<String>,
    /// The interface name inside the guest (`eth0`).
    #[serde(default)]
    pub interface_name: Option<String>,
}

impl VmiInterface {
    pub fn from_guest_agent(&self) -> bool {
        self.info_source
            .as_deref()
            .is_some_and(|s| s.split(',').any(|p| p.trim() == "guest-agent"))
    }

    /// Every IP the entry lists (`ipAddress` and `ipAddresses`; prefixes like `/24` dropped).
    pub fn ips(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for text in self.ip_address.iter().chain(self.ip_addresses.iter()) {
            let addr = text.split('/').next().unwrap_or("").trim();
            if let Ok(ip) = addr.parse::<IpAddr>() {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
        out
    }

    fn describe(&self) -> String {
        let ips = self.ips();
        format!(
            "{} mac={} ips=[{}] source={}",
            self.name.as_deref().unwrap_or("?"),
            self.mac.as_deref().unwrap_or("-"),
            ips.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
            self.info_source.as_deref().unwrap_or("-")
        )
    }
}

/// Reads `status.interfaces` from a VMI object (the whole object or its `status`); entries
/// that do not parse are skipped. A missing list is empty.
pub fn interfaces_from_vmi(vmi: &serde_json::Value) -> Vec<VmiInterface> {
    let status = vmi.get("status").unwrap_or(vmi);
    status
        .get("interfaces")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// An evaluation: outcome and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub outcome: Outcome,
    pub detail: String,
}

fn same_mac(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn seen(ifaces: &[VmiInterface]) -> String {
    if ifaces.is_empty() {
        "the VMI reports no interfaces".into()
    } else {
        format!(
            "seen: {}",
            ifaces
                .iter()
                .map(VmiInterface::describe)
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// What ARP probes from inside the VLAN saw (`checks_from = "cluster"`): IP → every MAC
/// that answered, or why the probe could not be made.
pub type ArpAnswers = std::collections::BTreeMap<IpAddr, Result<Vec<String>, String>>;

/// `ip-preserved` (`mac = false`) or `mac-preserved` (`mac = true`) from ARP, without a
/// guest agent: every planned NIC whose IP was probed must be answered by exactly one MAC
/// (none: the guest has not brought the address up; more: an IP conflict), and for
/// `mac-preserved` that MAC must be the planned one. `None` when no planned IP was probed.
pub fn arp_preserved(nics: &[Nic], answers: &ArpAnswers, mac: bool) -> Option<Evaluation> {
    let mut judged = 0;
    let mut ok = Vec::new();
    for nic in nics {
        let Some(ip) = nic.ip.as_ref().map(|i| i.value) else {
            continue;
        };
        let Some(answer) = answers.get(&ip) else {
            continue;
        };
        judged += 1;
        let planned = nic.mac.value.to_string();
        let fail = |outcome: Outcome, detail: String| Evaluation { outcome, detail };
        match answer {
            Err(e) => return Some(fail(Outcome::Error, format!("ARP probe of {ip}: {e}"))),
            Ok(macs) if macs.is_empty() => {
                return Some(fail(
                    Outcome::Fail,
                    format!("no answer to an ARP probe of {ip} on its VLAN: the guest has not brought the address up"),
                ))
            }
            Ok(macs) if macs.len() > 1 => {
                return Some(fail(
                    Outcome::Fail,
                    format!("IP conflict: {ip} is claimed by MACs {} (ARP)", macs.join(", ")),
                ))
            }
            Ok(macs) if mac && !same_mac(&macs[0], &planned) => {
                return Some(fail(
                    Outcome::Fail,
                    format!("{ip} is answered by MAC {}, not the planned {planned} (ARP)", macs[0]),
                ))
            }
            Ok(macs) => ok.push(if mac {
                format!("{ip} answers from the planned MAC {}", macs[0])
            } else {
                format!("{ip} answers ARP from one MAC, {}", macs[0])
            }),
        }
    }
    (judged > 0).then(|| Evaluation {
        outcome: Outcome::Pass,
        detail: format!("{} (ARP from inside the VLAN)", ok.join("; ")),
    })
}

/// `ip-preserved`: for every planned NIC with an IP, the guest agent reports that IP on the
/// interface carrying the NIC's planned MAC. NICs without a planned IP are not judged; a VM
/// with none is `skipped`.
pub fn ip_preserved(nics: &[Nic], ifaces: &[VmiInterface]) -> Evaluation {
    let planned: Vec<(&Nic, IpAddr)> = nics
        .iter()
        .filter_map(|n| n.ip.as_ref().map(|ip| (n, ip.value)))
        .collect();
    if planned.is_empty() {
        return Evaluation {
            outcome: Outcome::Skipped,
            detail: "no planned IP".into(),
        };
    }
    let mut ok = Vec::new();
    for (nic, ip) in planned {
        let mac = nic.mac.to_string();
        let Some(iface) = ifaces
            .iter()
            .find(|i| i.mac.as_deref().is_some_and(|m| same_mac(m, &mac)))
        else {
            return fail(format!("no interface with MAC {mac}; {}", seen(ifaces)));
        };
        if !iface.from_guest_agent() {
            return fail(format!(
                "interface {} has MAC {mac} but the guest agent has not reported it \
                 (infoSource={}); cannot confirm {ip}",
                iface.name.as_deref().unwrap_or("?"),
                iface.info_source.as_deref().unwrap_or("-")
            ));
        }
        if !iface.ips().contains(&ip) {
            let elsewhere = ifaces
                .iter()
                .find(|i| i.ips().contains(&ip))
                .map(|i| {
                    format!(
                        "; {ip} is on interface {} with MAC {}",
                        i.name.as_deref().unwrap_or("?"),
                        i.mac.as_deref().unwrap_or("-")
                    )
                })
                .unwrap_or_default();
            // No address at all on the right MAC: the guest did not configure its planned
            // IP on this NIC. The usual cause is a static config bound to an interface
            // name, which a new NIC model or PCI slot renames.
            let why = if iface.ips().is_empty() && elsewhere.is_empty() {
                format!(
                    ": the guest did not bring up its configured IP on this NIC{}; a network config bound to an interface name (e.g. ens192) does not follow a new NIC model or PCI slot: bind it to the MAC, or convert the guest",
                    iface
                        .interface_name
                        .as_deref()
                        .map(|n| format!(" (the guest calls it {n})"))
                        .unwrap_or_default()
                )
            } else {
                String::new()
            };
            return fail(format!(
                "guest agent reports {} on MAC {mac}, planned {ip}{elsewhere}{why}",
                if iface.ips().is_empty() {
                    "no IP".to_string()
                } else {
                    iface
                        .ips()
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        ok.push(format!("{ip} on {mac}"));
    }
    Evaluation {
        outcome: Outcome::Pass,
        detail: format!("guest agent reports {}", ok.join(", ")),
    }
}

/// `mac-preserved`: every planned NIC's MAC is on an interface the guest agent reports
/// (the guest sees its original MAC, so MAC-bound licences and DHCP reservations keep
/// working).
pub fn mac_preserved(nics: &[Nic], ifaces: &[VmiInterface]) -> Evaluation {
    if nics.is_empty() {
        return Evaluation {
            outcome: Outcome::Skipped,
            detail: "no planned NIC".into(),
        };
    }
    let mut ok = Vec::new();
    for nic in nics {
        let mac = nic.mac.to_string();
        match ifaces
            .iter()
            .find(|i| i.mac.as_deref().is_some_and(|m| same_mac(m, &mac)))
        {
            None => return fail(format!("no interface with MAC {mac}; {}", seen(ifaces))),
            Some(i) if !i.from_guest_agent() => {
                return fail(format!(
                    "MAC {mac} is on interface {} but not confirmed by the guest agent \
                     (infoSource={})",
                    i.name.as_deref().unwrap_or("?"),
                    i.info_source.as_deref().unwrap_or("-")
                ))
            }
            Some(i) => ok.push(format!(
                "{mac} on {}",
                i.interface_name
                    .as_deref()
                    .or(i.name.as_deref())
                    .unwrap_or("?")
            )),
        }
    }
    Evaluation {
        outcome: Outcome::Pass,
        detail: format!("guest agent reports {}", ok.join(", ")),
    }
}

fn fail(detail: String) -> Evaluation {
    Evaluation {
        outcome: Outcome::Fail,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::mac::Mac;
    use crate::plan::span::Spanned;

    fn nic(ip: &str, mac: &str) -> Nic {
        Nic {
            network: Spanned::new("vlan-210".into(), 0..0),
            ip: Some(Spanned::new(ip.parse().expect("ip"), 0..0)),
            mac: Spanned::new(Mac::parse(mac).expect("mac"), 0..0),
            model: None,
            span: 0..0,
        }
    }

    fn ifaces(v: serde_json::Value) -> Vec<VmiInterface> {
        interfaces_from_vmi(&serde_json::json!({ "status": { "interfaces": v } }))
    }

    #[test]
    fn passes_when_the_guest_agent_reports_the_planned_ip_on_the_planned_mac() {
        let n = [nic("192.0.2.15", "00:50:56:ab:cd:01")];
        let i = ifaces(
            serde_json::json!([{"name": "nic0", "mac": "00:50:56:AB:CD:01",
            "ipAddresses": ["192.0.2.15/24"], "infoSource": "domain, guest-agent"}]),
        );
        assert_eq!(ip_preserved(&n, &i).outcome, Outcome::Pass);
        assert_eq!(mac_preserved(&n, &i).outcome, Outcome::Pass);
    }

    #[test]
    fn fails_without_guest_agent_or_on_the_wrong_interface() {
        let n = [nic("192.0.2.15", "00:50:56:ab:cd:01")];
        // Domain-only data: KubeVirt knows the MAC, the guest has not confirmed anything.
        let i = ifaces(
            serde_json::json!([{"name": "nic0", "mac": "00:50:56:ab:cd:01",
            "ipAddress": "192.0.2.15", "infoSource": "domain"}]),
        );
        let e = ip_preserved(&n, &i);
        assert_eq!(e.outcome, Outcome::Fail);
        assert!(
            e.detail.contains("guest agent has not reported"),
            "{}",
            e.detail
        );
        assert_eq!(mac_preserved(&n, &i).outcome, Outcome::Fail);

        // The IP is up, but on an interface with another MAC.
        let i = ifaces(serde_json::json!([
            {"name": "nic0", "mac": "00:50:56:ab:cd:01", "ipAddresses": [],
             "infoSource": "domain, guest-agent"},
            {"name": "nic1", "mac": "02:00:00:00:00:09", "ipAddresses": ["192.0.2.15"],
             "infoSource": "guest-agent"}]));
        let e = ip_preserved(&n, &i);
        assert_eq!(e.outcome, Outcome::Fail);
        assert!(e.detail.contains("on interface nic1"), "{}", e.detail);

        // No interface with the MAC at all.
        let i = ifaces(
            serde_json::json!([{"name": "default", "mac": "02:00:00:00:00:01",
            "ipAddress": "10.0.2.2", "infoSource": "domain, guest-agent"}]),
        );
        let e = mac_preserved(&n, &i);
        assert_eq!(e.outcome, Outcome::Fail);
        assert!(
            e.detail.contains("no interface with MAC 00:50:56:ab:cd:01"),
            "{}",
            e.detail
        );
        assert!(ifaces(serde_json::json!(null)).is_empty());
    }
}
