//! Inventory → wave plan skeleton (`wavelift plan init`). The TOML written here passes
//! `wavelift plan check` with no error: whatever would be an error (a NIC without MAC, an
//! address shared by two VMs, a port group without a known VLAN, …) is left out or downgraded
//! and said both as a comment in the file and as a warning of the outcome.

use super::model::{InvVm, Inventory};
use crate::plan::mac::{Mac, VmwareMac};
use crate::plan::{is_backing_file, is_uuid};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

/// One line of a VLAN map file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VlanEntry {
    pub vlan: Option<u16>,
    pub cidr: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    pub owner: Option<String>,
}

/// Port group → VLAN, CIDR, gateway and owner, from a VLAN map file.
///
/// # VLAN map format (`--vlan-map FILE`)
///
/// A CSV file, one port group a line: `portgroup,vlan,cidr,gateway,owner`. A header line
/// starting with `portgroup` is optional; lines starting with `#` and blank lines are ignored;
/// trailing columns may be left out or empty. The map wins over the VLAN found in RVTools'
/// vPort/dvPort tabs; CIDR and gateway are only ever taken from here (never guessed).
///
/// ```text
/// portgroup,vlan,cidr,gateway,owner
/// PG-APP-VLAN210,210,192.0.2.0/24,192.0.2.1,netsec
/// PG-DMZ,410,203.0.113.0/24,,dmz-team
/// ```
#[derive(Debug, Clone, Default)]
pub struct VlanMap {
    pub entries: BTreeMap<String, VlanEntry>,
    /// Malformed lines, `file:line: why`.
    pub warnings: Vec<String>,
}

impl VlanMap {
    pub fn read(path: &Path) -> anyhow::Result<VlanMap> {
        let text =
            crate::fsio::read_bounded_string(path, crate::fsio::VLAN_MAP_MAX, "the vlan map")?;
        Ok(VlanMap::parse(&text, &path.display().to_string()))
    }

    pub fn parse(text: &str, file: &str) -> VlanMap {
        let mut map = VlanMap::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim().trim_start_matches('\u{feff}');
            let n = i + 1;
            if line.is_empty()
                || line.starts_with('#')
                || line.to_ascii_lowercase().starts_with("portgroup")
            {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let pg = f[0];
            if pg.is_empty() {
                map.warnings
                    .push(format!("{file}:{n}: no port group; line skipped"));
                continue;
            }
            let col = |k: usize| f.get(k).copied().filter(|s| !s.is_empty());
            let mut e = VlanEntry::default();
            if let Some(v) = col(1) {
                match super::rvtools::parse_vlan(v) {
                    Some(v) => e.vlan = v,
                    None => {
                        map.warnings.push(format!(
                            "{file}:{n}: VLAN `{v}` is not 1–4094; line skipped"
                        ));
                        continue;
                    }
                }
            }
            if let Some(c) = col(2) {
                match c.parse::<IpNet>() {
                    Ok(c) => e.cidr = Some(c.trunc()),
                    Err(_) => {
                        map.warnings
                            .push(format!("{file}:{n}: `{c}` is not a CIDR; line skipped"));
                        continue;
                    }
                }
            }
            if let Some(g) = col(3) {
                match g.parse::<IpAddr>() {
                    Ok(g) if e.cidr.is_none_or(|c| c.contains(&g)) => e.gateway = Some(g),
                    _ => {
                        map.warnings.push(format!("{file}:{n}: gateway `{g}` is not an address of the CIDR; gateway ignored"));
                    }
                }
            }
            e.owner = col(4).map(str::to_string);
            map.entries.insert(pg.to_string(), e);
        }
        map
    }
}

/// What `plan init` produced.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    /// The plan, TOML.
    pub toml: String,
    /// Import problems and everything left out of the plan (also written as comments).
    pub warnings: Vec<String>,
}

/// A Kubernetes name (RFC 1123 label) for a vSphere name: lowercase, runs of anything but
/// letters and digits become one `-`, at most 63 characters, `vm` when nothing is left.
pub fn k8s_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut t = out.trim_matches('-').to_string();
    t.truncate(63);
    let t = t.trim_end_matches('-').to_string();
    if t.is_empty() {
        "vm".into()
    } else {
        t
    }
}

fn unique(base: String, used: &mut HashSet<String>) -> String {
    if used.insert(base.clone()) {
        return base;
    }
    for i in 2.. {
        let suffix = format!("-{i}");
        let mut b = base.clone();
        b.truncate(63 - suffix.len());
        let cand = format!("{}{suffix}", b.trim_end_matches('-'));
        if used.insert(cand.clone()) {
            return cand;
        }
    }
    unreachable!("an unused name exists")
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn mib_quantity(mib: u64) -> String {
    if mib > 0 && mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

struct NetOut {
    name: String,
    pg: String,
    entry: VlanEntry,
}

/// The plan skeleton as TOML (see [`skeleton`] for the warnings too).
pub fn plan_skeleton(inv: &Inventory, vlan_map: &VlanMap) -> String {
    skeleton(inv, vlan_map, "imported").toml
}

/// Writes the plan skeleton: `[plan]` named `plan_name`, `[source]` from the vCenter the
/// export names, `[defaults]`, one `[[network]]` per port group in use, one wave `w1`, and
/// one `[[vm]]` per VM that is not a template.
pub fn skeleton(inv: &Inventory, vlan_map: &VlanMap, plan_name: &str) -> InitOutcome {
    let mut warnings: Vec<String> = inv.warnings.clone();
    warnings.extend(vlan_map.warnings.iter().cloned());
    let plan_name = k8s_name(plan_name);

    // Networks: port groups used by the VMs' NICs, in first-use order.
    let mut nets: Vec<NetOut> = Vec::new();
    let mut net_names: HashSet<String> = HashSet::new();
    let mut pg_index: HashMap<String, usize> = HashMap::new();
    for vm in inv.vms.iter().filter(|v| !v.template) {
        for pg in vm.nics.iter().filter_map(|n| n.network.as_deref()) {
            if pg_index.contains_key(pg) {
                continue;
            }
            let mut entry = vlan_map.entries.get(pg).cloned().unwrap_or_default();
            if entry.vlan.is_none() {
                entry.vlan = inv.port_groups.get(pg).copied().flatten();
            }
            let base = match k8s_name(pg) {
                n if n == "vm" => entry.vlan.map_or("network".into(), |v| format!("vlan-{v}")),
                n => n,
            };
            pg_index.insert(pg.to_string(), nets.len());
            nets.push(NetOut {
                name: unique(base, &mut net_names),
                pg: pg.to_string(),
                entry,
            });
        }
    }

    let mut body = String::new();
    let mut vm_names: HashSet<String> = HashSet::new();
    let mut ips_used: HashMap<IpAddr, String> = HashMap::new();
    let mut macs_used: HashMap<Mac, String> = HashMap::new();
    let mut no_ip: Vec<String> = Vec::new();
    let mut written = 0usize;
    for vm in &inv.vms {
        if vm.template {
            warnings.push(format!(
                "{}: `{}` is a template; not planned",
                vm.location, vm.name
            ));
            continue;
        }
        let Some(uuid) = vm.uuid.as_deref().filter(|u| is_uuid(u)) else {
            warnings.push(format!(
                "{}: VM `{}` has no vSphere UUID (`VM UUID`); not planned",
                vm.location, vm.name
            ));
            continue;
        };
        let name = unique(k8s_name(&vm.name), &mut vm_names);
        let (text, has_ip) = vm_block(
            vm,
            &name,
            uuid,
            &nets,
            &pg_index,
            &mut ips_used,
            &mut macs_used,
            &mut warnings,
        );
        if !has_ip {
            no_ip.push(name.clone());
        }
        body.push_str(&text);
        written += 1;
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Plan skeleton written by `wavelift plan init` from {}.",
        inv.source
    );
    out.push_str("# Review every TODO, then run `wavelift plan check` and `wavelift blast`.\n");
    if !no_ip.is_empty() {
        out.push_str("#\n# VMs without a known IP (VMware Tools reported none; fill in `ip` from DNS or IPAM):\n");
        for n in &no_ip {
            let _ = writeln!(out, "#   - {n}");
            warnings.push(format!("VM `{n}` has no known IP"));
        }
    }
    let skipped: Vec<&String> = warnings.iter().filter(|w| !w.starts_with("VM `")).collect();
    if !skipped.is_empty() {
        out.push_str("#\n# Import notes:\n");
        for w in skipped {
            let _ = writeln!(out, "#   - {}", w.replace('\n', " "));
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "[plan]\nname = {}\nnamespace = {}",
        toml_str(&plan_name),
        toml_str(&k8s_name(&format!("mig-{plan_name}")))
    );
    out.push_str("network_model = \"l2\"                 # keep IP, MAC and VLAN unless a VM says otherwise\n\n");
    let vc = inv
        .vcenter
        .clone()
        .unwrap_or_else(|| "vcenter.example.internal".into());
    let _ = writeln!(
        out,
        "[source]\ntype = \"vsphere\"\nurl = {}",
        toml_str(&format!("https://{vc}"))
    );
    out.push_str("credentials_secret = \"vsphere-creds\"  # TODO: Secret holding the vCenter user and password\n");
    out.push_str("thumbprint = \"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\"  # TODO: the vCenter certificate's SHA-1 thumbprint\n");
    out.push_str("power_off = \"vsphere-api\"\n\n");
    warnings.push("[source] thumbprint is a placeholder: replace it with the vCenter certificate's SHA-1 thumbprint".into());
    out.push_str("[defaults]\nchecks = [\"ip-preserved\", \"mac-preserved\", \"icmp\"]\n\n");
    for n in &nets {
        let _ = writeln!(
            out,
            "[[network]]\nname = {}    # port group {}",
            toml_str(&n.name),
            toml_str(&n.pg)
        );
        // Forklift's NetworkMap source (`backend = "forklift"`): the port group by name.
        let _ = writeln!(out, "source_network = {}", toml_str(&n.pg));
        match n.entry.vlan {
            Some(v) => {
                let _ = writeln!(out, "vlan = {v}");
            }
            None => out.push_str("# TODO: VLAN unknown (not in vPort/dvPort nor the VLAN map); VMs on it are planned as l3\n"),
        }
        out.push_str("provider = \"bridge\"\nbridge = \"br-trunk\"                  # TODO: the node bridge carrying this VLAN\n");
        if let Some(c) = n.entry.cidr {
            let _ = writeln!(out, "cidr = {}", toml_str(&c.to_string()));
        }
        if let Some(g) = n.entry.gateway {
            let _ = writeln!(out, "gateway = {}", toml_str(&g.to_string()));
        }
        if let Some(o) = &n.entry.owner {
            let _ = writeln!(out, "owner = {}", toml_str(o));
        }
        out.push('\n');
    }
    out.push_str("[[wave]]\nname = \"w1\"\n# TODO: window = { start = 2026-12-05T22:00:00Z, end = 2026-12-06T04:00:00Z }\nmax_parallel_imports = 4\nmax_parallel_cutovers = 2\n\n");
    out.push_str(&body);
    if written == 0 {
        warnings.push("no VM could be planned".into());
    }
    InitOutcome {
        toml: out,
        warnings,
    }
}

#[allow(clippy::too_many_arguments)]
fn vm_block(
    vm: &InvVm,
    name: &str,
    uuid: &str,
    nets: &[NetOut],
    pg_index: &HashMap<String, usize>,
    ips_used: &mut HashMap<IpAddr, String>,
    macs_used: &mut HashMap<Mac, String>,
    warnings: &mut Vec<String>,
) -> (String, bool) {
    let loc = &vm.location;
    let mut notes: Vec<String> = Vec::new();
    let mut nics: Vec<String> = Vec::new();
    let mut l3_reason: Option<String> = None;
    let mut has_ip = false;
    let single_nic = vm.nics.len() == 1;
    for nic in &vm.nics {
        let label = nic.label.clone().unwrap_or_else(|| "NIC".into());
        let Some(pg) = nic.network.as_deref() else {
            notes.push(format!("{label} has no port group; left out"));
            continue;
        };
        let Some(&ni) = pg_index.get(pg) else {
            continue;
        };
        let net = &nets[ni];
        let Some(mac) = nic.mac.as_deref().and_then(Mac::parse) else {
            notes.push(format!("{label} on `{pg}` has no MAC address; left out"));
            continue;
        };
        if mac.is_multicast() || mac.is_zero() || mac.vmware() == VmwareMac::Reserved {
            notes.push(format!(
                "{label}: MAC {mac} cannot be kept (multicast or VMware-reserved); left out"
            ));
            continue;
        }
        if let Some(other) = macs_used.get(&mac) {
            notes.push(format!(
                "{label}: MAC {mac} is also on VM `{other}`; left out"
            ));
            continue;
        }
        macs_used.insert(mac, name.to_string());
        // One address per NIC in a plan: the first IPv4, else the first address.
        let mut cands: Vec<IpAddr> = nic.ips.clone();
        if cands.is_empty() && single_nic {
            cands = vm.primary_ips.clone();
        }
        cands.sort_by_key(|ip| !ip.is_ipv4());
        let mut ip = cands.first().copied();
        if let Some(a) = ip {
            let mut drop = None;
            if let Some(other) = ips_used.get(&a) {
                drop = Some(format!(
                    "{a} is also reported by VM `{other}` (shared address or VIP)"
                ));
            } else if let Some(c) = net.entry.cidr {
                if !c.contains(&a) {
                    drop = Some(format!("{a} is outside {c} of `{pg}`"));
                } else if net.entry.gateway == Some(a) {
                    drop = Some(format!("{a} is the gateway of `{pg}`"));
                } else if c.prefix_len() < c.max_prefix_len().saturating_sub(1)
                    && a.is_ipv4()
                    && (a == c.network() || a == c.broadcast())
                {
                    drop = Some(format!("{a} is the network or broadcast address of {c}"));
                }
            }
            if let Some(why) = drop {
                notes.push(format!("{label}: IP {why}; left out"));
                ip = None;
            } else {
                ips_used.insert(a, name.to_string());
                has_ip = true;
            }
        }
        if net.entry.vlan.is_none() && l3_reason.is_none() {
            l3_reason = Some(format!("port group `{pg}` has no known VLAN"));
        }
        let mut t = format!("{{ network = {}", toml_str(&net.name));
        if let Some(a) = ip {
            let _ = write!(t, ", ip = {}", toml_str(&a.to_string()));
        }
        let _ = write!(t, ", mac = {}", toml_str(&mac.to_string()));
        if let Some(model) = nic_model(nic.adapter.as_deref(), vm.is_windows()) {
            let _ = write!(t, ", model = {}", toml_str(model));
        }
        t.push_str(" }");
        nics.push(t);
    }
    if nics.is_empty() && l3_reason.is_none() {
        l3_reason = Some("no NIC with a MAC could be planned".into());
    }
    let mut disks: Vec<String> = Vec::new();
    for d in &vm.disks {
        let label = d.label.clone().unwrap_or_else(|| "disk".into());
        match (d.path.as_deref(), d.capacity_mib) {
            (Some(p), Some(c)) if is_backing_file(p) && c > 0 => disks.push(format!(
                "  {{ backing_file = {}, size = {} }},",
                toml_str(p),
                toml_str(&mib_quantity(c))
            )),
            (Some(p), Some(c)) if c > 0 => {
                notes.push(format!("{label}: `{p}` is not a datastore path; left out"))
            }
            _ => notes.push(format!("{label}: path or capacity unknown; left out")),
        }
    }
    if disks.is_empty() {
        notes.push("no disk known: add `disks`".into());
    }
    let mut t = String::new();
    let _ = writeln!(t, "[[vm]]\nname = {}", toml_str(name));
    if name != vm.name {
        let _ = writeln!(t, "# vSphere name: {}", toml_str(&vm.name));
    }
    for n in &notes {
        let _ = writeln!(t, "# WARNING: {n}");
        warnings.push(format!("{loc}: VM `{}`: {n}", vm.name));
    }
    t.push_str("wave = \"w1\"\n");
    let _ = writeln!(t, "source_id = {}", toml_str(uuid));
    if let Some(h) = vm.host.as_deref().filter(|h| !h.is_empty()) {
        // Imports are limited per ESXi host (`max_imports_per_host`).
        let _ = writeln!(t, "host = {}", toml_str(h));
    }
    let cpu = vm
        .cpus
        .filter(|c| (1..=1024).contains(c))
        .unwrap_or_else(|| {
            warnings.push(format!(
                "{loc}: VM `{}`: CPU count unknown; 1 written",
                vm.name
            ));
            1
        });
    let _ = writeln!(t, "cpu = {cpu}");
    let mem = vm.memory_mib.filter(|m| *m > 0).unwrap_or_else(|| {
        warnings.push(format!(
            "{loc}: VM `{}`: memory unknown; 1Gi written",
            vm.name
        ));
        1024
    });
    let _ = writeln!(t, "memory = {}", toml_str(&mib_quantity(mem)));
    match vm.is_windows() {
        Some(true) => {
            let _ = writeln!(
                t,
                "os = \"windows\"                     # {}: virtio disks need its virtio drivers",
                vm.guest_os.as_deref().unwrap_or("Windows")
            );
        }
        Some(false) => {
            let _ = writeln!(
                t,
                "os = \"linux\"                       # {}",
                vm.guest_os.as_deref().unwrap_or("")
            );
        }
        None => {}
    }
    match (
        vm.firmware.as_deref().map(str::to_ascii_lowercase),
        vm.secure_boot,
    ) {
        (Some(f), true) if f == "efi" => t.push_str("firmware = \"efi-secure\"\n"),
        (Some(f), false) if f == "efi" => t.push_str("firmware = \"efi\"\n"),
        (Some(f), _) if f == "bios" => t.push_str("firmware = \"bios\"\n"),
        _ => {}
    }
    if let Some(why) = &l3_reason {
        let _ = writeln!(t, "network_model = \"l3\"               # {why}: re-IP unless the VLAN is added to the VLAN map");
        warnings.push(format!("{loc}: VM `{}` planned as l3: {why}", vm.name));
    }
    let _ = writeln!(t, "nics = [{}]", nics.join(", "));
    if disks.is_empty() {
        t.push_str("disks = []\n");
    } else {
        let _ = writeln!(t, "disks = [\n{}\n]", disks.join("\n"));
    }
    if let Some(o) = vm.owner() {
        let _ = writeln!(t, "owner = {}", toml_str(o));
    }
    t.push('\n');
    (t, has_ip)
}

/// The KubeVirt NIC model for a vSphere adapter type: `vmxnet3` has no KubeVirt
/// equivalent, so Linux (virtio in the kernel) gets `virtio` and Windows (which has an
/// e1000e driver built in, but no virtio one unless installed) gets `e1000e`; E1000/E1000E
/// stay `e1000e`. `None` when the adapter is unknown (the plan's default, virtio, applies).
pub fn nic_model(adapter: Option<&str>, windows: Option<bool>) -> Option<&'static str> {
    let a = adapter?.to_ascii_lowercase();
    if a.starts_with("e1000") {
        Some("e1000e")
    } else if a.contains("vmxnet") {
        Some(if windows == Some(true) {
            "e1000e"
        } else {
            "virtio"
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::model::{InvDisk, InvNic, InvVm};

    #[test]
    fn vmxnet3_becomes_virtio_on_linux_and_e1000e_on_windows() {
        assert_eq!(nic_model(Some("Vmxnet3"), Some(false)), Some("virtio"));
        assert_eq!(nic_model(Some("vmxnet3"), None), Some("virtio"));
        assert_eq!(nic_model(Some("Vmxnet3"), Some(true)), Some("e1000e"));
        assert_eq!(nic_model(Some("E1000E"), Some(false)), Some("e1000e"));
        assert_eq!(nic_model(Some("E1000"), Some(true)), Some("e1000e"));
        assert_eq!(nic_model(Some("PCNet32"), Some(false)), None);
        assert_eq!(nic_model(None, Some(true)), None);
    }

    #[test]
    fn a_windows_uefi_guest_is_planned_with_its_os_firmware_and_nic_model() {
        let inv = Inventory {
            source: "t".into(),
            vms: vec![InvVm {
                name: "win-app-01".into(),
                uuid: Some("4207c1b2-5f0e-4c1e-9a7b-0123456789a1".into()),
                cpus: Some(2),
                memory_mib: Some(4096),
                guest_os: Some("Microsoft Windows Server 2022 (64-bit)".into()),
                firmware: Some("efi".into()),
                secure_boot: true,
                nics: vec![InvNic {
                    network: Some("PG-APP".into()),
                    mac: Some("00:50:56:80:00:01".into()),
                    adapter: Some("Vmxnet3".into()),
                    ..InvNic::default()
                }],
                disks: vec![InvDisk {
                    path: Some("[ds1] win-app-01/win-app-01.vmdk".into()),
                    capacity_mib: Some(40 * 1024),
                    ..InvDisk::default()
                }],
                location: "t:2".into(),
                ..InvVm::default()
            }],
            ..Inventory::default()
        };
        let out = skeleton(&inv, &VlanMap::default(), "t");
        assert!(out.toml.contains("os = \"windows\""), "{}", out.toml);
        assert!(
            out.toml.contains("firmware = \"efi-secure\""),
            "{}",
            out.toml
        );
        assert!(out.toml.contains("model = \"e1000e\""), "{}", out.toml);
        let checked = crate::plan::check_str(&out.toml, "t.toml");
        assert!(
            checked
                .diagnostics
                .iter()
                .any(|d| d.code == "windows-virtio-disks"),
            "plan check warns: {:?}",
            checked.diagnostics
        );
    }
}
