//! RVTools exports: the xlsx workbook (`ExportAll2xlsx`) or the per-tab CSV files
//! (`ExportAll2csv`, named `RVTools_tab<tab>.csv`). Tabs used: `vInfo` (one row per VM),
//! `vNetwork` (one row per VM NIC; `vNIC` is the hosts' physical NICs and is ignored),
//! `vDisk` (one row per virtual disk), `vPort` and `dvPort` (port group → VLAN).
//!
//! Headers are matched after normalisation (case, spaces and punctuation ignored, `MB` read
//! as `MiB`, `-DBColumnNames` prefixes such as `vInfoVMName` stripped). Any vInfo column that
//! is not a known RVTools column becomes a VM attribute (custom attributes such as `owner`).

use super::model::{parse_ips, InvDisk, InvNic, InvVm, Inventory};
use super::table::{norm_header, read_csv, read_xlsx, Row, Table};
use std::collections::HashMap;
use std::path::Path;

pub(crate) const TABS: &[&str] = &["vInfo", "vNetwork", "vDisk", "vPort", "dvPort"];

/// Known vInfo headers (normalised); everything else is an attribute.
const VINFO_KNOWN: &[&str] = &[
    "vm",
    "vmname",
    "powerstate",
    "template",
    "srmplaceholder",
    "configstatus",
    "dnsname",
    "connectionstate",
    "gueststate",
    "heartbeat",
    "consolidationneeded",
    "poweron",
    "suspendedtomemory",
    "suspendtime",
    "suspendinterval",
    "creationdate",
    "changeversion",
    "cpus",
    "memory",
    "memorymib",
    "nics",
    "disks",
    "totaldiskcapacitymib",
    "fixedpassthruhotplug",
    "minrequiredevcmodekey",
    "latencysensitivity",
    "opnotificationtimeout",
    "enableuuid",
    "cbt",
    "primaryipaddress",
    "network1",
    "network2",
    "network3",
    "network4",
    "network5",
    "network6",
    "network7",
    "network8",
    "nummonitors",
    "videoramkib",
    "resourcepool",
    "folderid",
    "folder",
    "vapp",
    "dasprotection",
    "ftstate",
    "ftrole",
    "ftlatency",
    "ftbandwidth",
    "ftseclatency",
    "provisionedmib",
    "inusemib",
    "unsharedmib",
    "harestartpriority",
    "haisolationresponse",
    "havmmonitoring",
    "clusterrules",
    "clusterrulenames",
    "bootrequired",
    "bootdelay",
    "bootretrydelay",
    "bootretryenabled",
    "bootbiossetup",
    "rebootpoweroff",
    "efisecureboot",
    "firmware",
    "hwversion",
    "hwupgradestatus",
    "hwupgradepolicy",
    "hwtarget",
    "path",
    "logdirectory",
    "snapshotdirectory",
    "suspenddirectory",
    "annotation",
    "datacenter",
    "cluster",
    "host",
    "osaccordingtotheconfigurationfile",
    "osaccordingtothevmwaretools",
    "customizationinfo",
    "guestdetaileddata",
    "vmid",
    "smbiosuuid",
    "vmuuid",
    "visdkservertype",
    "visdkapiversion",
    "visdkserver",
    "visdkuuid",
    "vitag",
    "tags",
];

/// Reads an RVTools export: an `.xlsx` workbook, a directory of `RVTools_tab*.csv` files, or
/// one of those CSV files (its siblings are read too). An export without a vInfo tab, a
/// vInfo without a `VM` column, or no VM at all is an error: nothing recognisable.
pub fn read(path: &Path) -> anyhow::Result<Inventory> {
    let mut warnings = Vec::new();
    let tables: Vec<Table> = if path.is_dir() {
        csv_tabs(path, &mut warnings)?
    } else {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "csv" => {
                let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new("."));
                let mut t = csv_tabs(dir, &mut warnings)?;
                if t.is_empty() {
                    // A lone CSV not named RVTools_tab*.csv: treat it as vInfo.
                    t.push(
                        read_csv(path, "vInfo", &mut warnings)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    );
                }
                t
            }
            _ => read_xlsx(path, TABS)?,
        }
    };
    let Some(vinfo) = tables.iter().find(|t| t.tab == "vInfo") else {
        anyhow::bail!(
            "{}: no RVTools inventory found: no vInfo tab (expected an RVTools .xlsx export or \
             its RVTools_tab*.csv files)",
            path.display()
        );
    };
    if vinfo.col(&["vm", "vmname", "name"]).is_none() {
        anyhow::bail!(
            "{}: no RVTools inventory found: the vInfo tab has no `VM` column (its header row \
             is {:?})",
            path.display(),
            vinfo.headers.iter().take(12).collect::<Vec<_>>()
        );
    }
    let mut inv = from_tables(&tables, warnings);
    inv.source = path.display().to_string();
    if inv.vms.is_empty() {
        let why = inv
            .warnings
            .first()
            .map_or(String::new(), |w| format!(" ({w})"));
        anyhow::bail!(
            "{}: no VM found in the vInfo tab{why}; nothing to import",
            path.display()
        );
    }
    Ok(inv)
}

fn csv_tabs(dir: &Path, warnings: &mut Vec<String>) -> anyhow::Result<Vec<Table>> {
    let mut out = Vec::new();
    for tab in TABS {
        let want = format!("rvtools_tab{}.csv", tab.to_ascii_lowercase());
        let found = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.to_ascii_lowercase() == want)
            });
        if let Some(p) = found {
            out.push(
                read_csv(&p, tab, warnings).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            );
        }
    }
    Ok(out)
}

/// Builds the inventory from already-read tabs.
pub fn from_tables(tables: &[Table], mut warnings: Vec<String>) -> Inventory {
    let mut inv = Inventory::default();
    let get = |tab: &str| tables.iter().find(|t| t.tab.eq_ignore_ascii_case(tab));
    if let Some(t) = get("vInfo") {
        vinfo(t, &mut inv, &mut warnings);
    }
    for tab in ["vPort", "dvPort"] {
        if let Some(t) = get(tab) {
            ports(t, &mut inv, &mut warnings);
        }
    }
    let by_uuid: HashMap<String, usize> = inv
        .vms
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.uuid.as_ref().map(|u| (u.to_ascii_lowercase(), i)))
        .collect();
    let by_name: HashMap<String, usize> = inv
        .vms
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name.clone(), i))
        .collect();
    let find = |t: &Table, r: &Row| -> Option<usize> {
        let uuid = r.get(t.col(&["vmuuid"])).map(|u| u.to_ascii_lowercase());
        uuid.and_then(|u| by_uuid.get(&u).copied()).or_else(|| {
            r.get(t.col(&["vm", "vmname"]))
                .and_then(|n| by_name.get(n).copied())
        })
    };
    let has_vnetwork = get("vNetwork").is_some();
    if let Some(t) = get("vNetwork") {
        let c_adapter = t.col(&["adapter", "type"]);
        let (c_label, c_net, c_mac, c_ip4, c_ip6) = (
            t.col(&["niclabel", "nic"]),
            t.col(&["network", "portgroup"]),
            t.col(&["macaddress", "mac"]),
            t.col(&["ipv4address", "ipaddress", "ip4address"]),
            t.col(&["ipv6address", "ip6address"]),
        );
        for r in &t.rows {
            let Some(i) = find(t, r) else {
                warnings.push(format!(
                    "{}: vNetwork row for unknown VM `{}` skipped",
                    r.location,
                    r.get(t.col(&["vm", "vmname"])).unwrap_or("")
                ));
                continue;
            };
            let mut ips = r.get(c_ip4).map(parse_ips).unwrap_or_default();
            ips.extend(r.get(c_ip6).map(parse_ips).unwrap_or_default());
            let mac = r.get(c_mac).map(str::to_string);
            if let Some(m) = &mac {
                if crate::plan::mac::Mac::parse(m).is_none() {
                    warnings.push(format!(
                        "{}: `{m}` is not a MAC address; NIC skipped",
                        r.location
                    ));
                    continue;
                }
            }
            inv.vms[i].nics.push(InvNic {
                label: r.get(c_label).map(str::to_string),
                network: r.get(c_net).map(str::to_string),
                mac,
                ips,
                adapter: r.get(c_adapter).map(str::to_string),
            });
        }
    }
    if !has_vnetwork {
        // Without vNetwork the VM's networks are vInfo's `Network #n`, with no MAC known.
        if let Some(t) = get("vInfo") {
            for r in &t.rows {
                let Some(i) = find(t, r) else { continue };
                for n in 1..=8 {
                    let key = format!("network{n}");
                    if let Some(net) = r.get(t.col(&[key.as_str()])) {
                        inv.vms[i].nics.push(InvNic {
                            label: Some(format!("Network adapter {n}")),
                            network: Some(net.to_string()),
                            mac: None,
                            ips: Vec::new(),
                            adapter: None,
                        });
                    }
                }
            }
        }
    }
    if let Some(t) = get("vDisk") {
        let (c_label, c_path, c_cap) = (
            t.col(&["disk", "label"]),
            t.col(&["diskpath", "path", "filename"]),
            t.col(&["capacitymib", "capacity"]),
        );
        for r in &t.rows {
            let Some(i) = find(t, r) else {
                warnings.push(format!(
                    "{}: vDisk row for unknown VM `{}` skipped",
                    r.location,
                    r.get(t.col(&["vm", "vmname"])).unwrap_or("")
                ));
                continue;
            };
            let cap = match r.get(c_cap).map(parse_number) {
                Some(Some(c)) => Some(c),
                Some(None) => {
                    warnings.push(format!(
                        "{}: disk capacity `{}` is not a number; disk skipped",
                        r.location,
                        r.get(c_cap).unwrap_or("")
                    ));
                    continue;
                }
                None => None,
            };
            inv.vms[i].disks.push(InvDisk {
                label: r.get(c_label).map(str::to_string),
                path: r.get(c_path).map(str::to_string),
                capacity_mib: cap,
            });
        }
    }
    inv.warnings = warnings;
    inv
}

/// `8192`, `8,192`, `8192.0` → 8192.
fn parse_number(s: &str) -> Option<u64> {
    let t: String = s
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '\u{a0}'))
        .collect();
    t.parse::<u64>().ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0 && f.is_finite())
            .map(|f| f.round() as u64)
    })
}

fn vinfo(t: &Table, inv: &mut Inventory, warnings: &mut Vec<String>) {
    let c = |names: &[&str]| t.col(names);
    let (c_name, c_power, c_tpl, c_dns, c_cpu, c_mem, c_ip) = (
        c(&["vm", "vmname", "name"]),
        c(&["powerstate"]),
        c(&["template"]),
        c(&["dnsname"]),
        c(&["cpus", "numcpu", "cpu"]),
        c(&["memory", "memorymib"]),
        c(&["primaryipaddress", "primaryip", "ipaddress"]),
    );
    let (c_fw, c_secure, c_os_tools, c_os_cfg) = (
        c(&["firmware"]),
        c(&["efisecureboot"]),
        c(&["osaccordingtothevmwaretools"]),
        c(&["osaccordingtotheconfigurationfile", "os", "guestos"]),
    );
    let c_host = c(&["host"]);
    let (c_ann, c_dc, c_cl, c_folder, c_uuid, c_smbios, c_vc) = (
        c(&["annotation"]),
        c(&["datacenter"]),
        c(&["cluster"]),
        c(&["folder"]),
        c(&["vmuuid", "uuid", "instanceuuid"]),
        c(&["smbiosuuid", "biosuuid"]),
        c(&["visdkserver"]),
    );
    if c_name.is_none() {
        warnings.push(format!(
            "vInfo: no `VM` column among {:?}; no VM imported",
            t.headers
        ));
        return;
    }
    let attr_cols: Vec<usize> = t
        .headers
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            let n = norm_header(&t.tab, h);
            !n.is_empty() && !VINFO_KNOWN.contains(&n.as_str())
        })
        .map(|(i, _)| i)
        .collect();
    for r in &t.rows {
        let Some(name) = r.get(c_name) else {
            warnings.push(format!(
                "{}: vInfo row without a VM name skipped",
                r.location
            ));
            continue;
        };
        let cpus = match r.get(c_cpu) {
            None => None,
            Some(s) => match parse_number(s).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => Some(n),
                None => {
                    warnings.push(format!(
                        "{}: VM `{name}`: CPUs `{s}` is not a number; row skipped",
                        r.location
                    ));
                    continue;
                }
            },
        };
        let memory_mib = match r.get(c_mem) {
            None => None,
            Some(s) => match parse_number(s) {
                Some(n) => Some(n),
                None => {
                    warnings.push(format!(
                        "{}: VM `{name}`: Memory `{s}` is not a number; row skipped",
                        r.location
                    ));
                    continue;
                }
            },
        };
        if inv.vcenter.is_none() {
            inv.vcenter = r.get(c_vc).map(str::to_string);
        }
        let attributes = attr_cols
            .iter()
            .filter_map(|&i| {
                let v = r.cells.get(i)?.trim();
                let h = t.headers.get(i)?.trim();
                (!v.is_empty()).then(|| (h.to_string(), v.to_string()))
            })
            .collect();
        inv.vms.push(InvVm {
            name: name.to_string(),
            uuid: r.get(c_uuid).or(r.get(c_smbios)).map(str::to_string),
            power_state: r.get(c_power).map(str::to_string),
            template: r.get(c_tpl).is_some_and(|s| {
                s.eq_ignore_ascii_case("true") || s == "1" || s.eq_ignore_ascii_case("yes")
            }),
            dns_name: r.get(c_dns).map(str::to_string),
            firmware: r.get(c_fw).map(str::to_string),
            secure_boot: r.get(c_secure).is_some_and(|s| {
                s.eq_ignore_ascii_case("true") || s == "1" || s.eq_ignore_ascii_case("yes")
            }),
            guest_os: r.get(c_os_tools).or(r.get(c_os_cfg)).map(str::to_string),
            cpus,
            memory_mib,
            primary_ips: r.get(c_ip).map(parse_ips).unwrap_or_default(),
            nics: Vec::new(),
            disks: Vec::new(),
            attributes,
            annotation: r.get(c_ann).map(str::to_string),
            datacenter: r.get(c_dc).map(str::to_string),
            cluster: r.get(c_cl).map(str::to_string),
            host: r.get(c_host).map(str::to_string),
            folder: r.get(c_folder).map(str::to_string),
            location: r.location.clone(),
        });
    }
}

/// Parses a VLAN cell: `210` → `Some(Some(210))`; `0`, trunk ranges (`0-4094`) and `4095`
/// → `Some(None)` (no single VLAN); anything else → `None` (malformed).
pub fn parse_vlan(s: &str) -> Option<Option<u16>> {
    let s = s.trim();
    if s.contains('-') || s.contains(',') || s.eq_ignore_ascii_case("trunk") {
        return Some(None);
    }
    match s.parse::<u32>() {
        Ok(0) | Ok(4095) => Some(None),
        Ok(v) if v <= 4094 => Some(Some(v as u16)),
        _ => None,
    }
}

fn ports(t: &Table, inv: &mut Inventory, warnings: &mut Vec<String>) {
    let c_pg = t.col(&["portgroup", "port", "name", "network"]);
    let c_vlan = t.col(&["vlan", "vlanid"]);
    for r in &t.rows {
        let Some(pg) = r.get(c_pg) else {
            warnings.push(format!(
                "{}: {} row without a port group skipped",
                r.location, t.tab
            ));
            continue;
        };
        let vlan = match r.get(c_vlan).map(parse_vlan) {
            None => None,
            Some(Some(v)) => v,
            Some(None) => {
                warnings.push(format!(
                    "{}: port group `{pg}`: VLAN `{}` is not a VLAN id; row skipped",
                    r.location,
                    r.get(c_vlan).unwrap_or("")
                ));
                continue;
            }
        };
        let e = inv.port_groups.entry(pg.to_string()).or_insert(None);
        if e.is_none() {
            *e = vlan;
        }
    }
}
