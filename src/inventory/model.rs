//! The imported inventory: what vSphere says about each VM, before it becomes a plan.

use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Where it came from (file or directory), for messages.
    pub source: String,
    /// vCenter host name (RVTools `VI SDK Server`), when known.
    pub vcenter: Option<String>,
    pub vms: Vec<InvVm>,
    /// Port group name → VLAN (from vPort/dvPort), `None` for untagged or trunk port groups.
    pub port_groups: BTreeMap<String, Option<u16>>,
    /// Malformed rows and other import problems, each with `file:line` or `file:sheet:row`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InvVm {
    /// The vSphere display name (not yet a Kubernetes name).
    pub name: String,
    /// RVTools `VM UUID` (govc `config.instanceUuid`), falling back to the SMBIOS UUID.
    pub uuid: Option<String>,
    pub power_state: Option<String>,
    pub template: bool,
    pub dns_name: Option<String>,
    pub cpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// `Primary IP Address` and any other address the VM reported.
    pub primary_ips: Vec<IpAddr>,
    pub nics: Vec<InvNic>,
    pub disks: Vec<InvDisk>,
    /// Custom attributes and other unknown columns, by header as written.
    pub attributes: BTreeMap<String, String>,
    pub annotation: Option<String>,
    pub datacenter: Option<String>,
    pub cluster: Option<String>,
    /// The ESXi host it runs on (RVTools vInfo `Host`; govc `runtime.host`).
    pub host: Option<String>,
    pub folder: Option<String>,
    /// RVTools vInfo `Firmware` (`bios`, `efi`) and `EFI Secure boot`.
    pub firmware: Option<String>,
    pub secure_boot: bool,
    /// vInfo `OS according to the VMware Tools`, else `… the configuration file`.
    pub guest_os: Option<String>,
    /// Where the VM's row is (`file:line` / `file:sheet:row`).
    pub location: String,
}

#[derive(Debug, Clone, Default)]
pub struct InvNic {
    pub label: Option<String>,
    /// Port group.
    pub network: Option<String>,
    pub mac: Option<String>,
    pub ips: Vec<IpAddr>,
    /// vNetwork `Adapter` (`Vmxnet3`, `E1000E`, `E1000`).
    pub adapter: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InvDisk {
    pub label: Option<String>,
    /// Datastore path, `[ds1] vm/vm.vmdk`.
    pub path: Option<String>,
    pub capacity_mib: Option<u64>,
}

impl InvVm {
    /// The guest family, from the OS name vSphere knows.
    pub fn is_windows(&self) -> Option<bool> {
        self.guest_os
            .as_deref()
            .map(|os| os.to_ascii_lowercase().contains("windows"))
    }

    /// The owner custom attribute (`owner`, `Owner`, `team`, …), if any.
    pub fn owner(&self) -> Option<&str> {
        const KEYS: &[&str] = &[
            "owner",
            "team",
            "owner team",
            "application owner",
            "contact",
        ];
        KEYS.iter().find_map(|k| {
            self.attributes
                .iter()
                .find(|(h, v)| h.trim().eq_ignore_ascii_case(k) && !v.trim().is_empty())
                .map(|(_, v)| v.trim())
        })
    }

    /// Every IP known for the VM: NIC addresses first, then primary addresses, deduplicated.
    pub fn all_ips(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in self
            .nics
            .iter()
            .flat_map(|n| n.ips.iter())
            .chain(&self.primary_ips)
        {
            if !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }
}

/// Splits a cell holding several addresses (`a, b; c d`) and keeps those that parse; link-local
/// IPv6 and unspecified addresses are dropped (they never identify a VM).
pub fn parse_ips(cell: &str) -> Vec<IpAddr> {
    cell.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter_map(|t| t.trim().parse::<IpAddr>().ok())
        .filter(|ip| match ip {
            IpAddr::V4(v) => !v.is_unspecified() && !v.is_loopback() && !v.is_link_local(),
            IpAddr::V6(v) => {
                !v.is_unspecified() && !v.is_loopback() && (v.segments()[0] & 0xffc0) != 0xfe80
            }
        })
        .collect()
}
