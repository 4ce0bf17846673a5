//! govc JSON: `govc vm.info -json -r VM…` (`{"virtualMachines":[…]}`; before govc 0.32 the
//! keys were PascalCase, `{"VirtualMachines":[{"Config":…,"Guest":…}]}`), or a bare array of
//! VM objects. Keys are matched case-insensitively.
//!
//! Fields used: `config.name`, `config.instanceUuid` (else `config.uuid`),
//! `config.hardware.numCPU`, `config.hardware.memoryMB`, `config.hardware.device[]` (NICs:
//! `macAddress` + `backing.deviceName`; disks: `backing.fileName` + `capacityInKB`),
//! `config.annotation`, `guest.net[].{network, macAddress, ipAddress[]}`, `guest.ipAddress`,
//! `guest.hostName`, `runtime.powerState`, `config.template`, and `customValue[]` resolved
//! through `availableField[]` into attributes.

use super::model::{parse_ips, InvDisk, InvNic, InvVm, Inventory};
use serde_json::Value;
use std::path::Path;

/// Case-insensitive object lookup.
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| get(v, k))
}

fn s(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn read(path_: &Path) -> anyhow::Result<Inventory> {
    let text =
        crate::fsio::read_bounded_string(path_, crate::fsio::GOVC_JSON_MAX, "the govc JSON")?;
    let mut inv = parse(&text, &path_.display().to_string())?;
    inv.source = path_.display().to_string();
    if inv.vms.is_empty() {
        let why = inv
            .warnings
            .first()
            .map_or(String::new(), |w| format!(" ({w})"));
        anyhow::bail!(
            "{}: no VM found in the govc JSON{why}; nothing to import",
            path_.display()
        );
    }
    Ok(inv)
}

pub fn parse(text: &str, file: &str) -> anyhow::Result<Inventory> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{file}:{}: not JSON: {e}", e.line()))?;
    let vms: &[Value] = match &root {
        Value::Array(a) => a,
        other => match get(other, "virtualMachines").and_then(Value::as_array) {
            Some(a) => a,
            None => anyhow::bail!(
                "{file}: no `virtualMachines` array (expected `govc vm.info -json` output)"
            ),
        },
    };
    let mut inv = Inventory::default();
    for (i, vm) in vms.iter().enumerate() {
        let loc = format!("{file}:virtualMachines[{i}]");
        let Some(name) = s(path(vm, &["config", "name"])).or_else(|| s(get(vm, "name"))) else {
            inv.warnings
                .push(format!("{loc}: VM without `config.name` skipped"));
            continue;
        };
        let hw = path(vm, &["config", "hardware"]);
        let mut out = InvVm {
            name,
            uuid: s(path(vm, &["config", "instanceUuid"]))
                .or_else(|| s(path(vm, &["config", "uuid"]))),
            power_state: s(path(vm, &["runtime", "powerState"])),
            template: path(vm, &["config", "template"])
                .and_then(Value::as_bool)
                .unwrap_or(false),
            dns_name: s(path(vm, &["guest", "hostName"])),
            cpus: hw
                .and_then(|h| get(h, "numCPU"))
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
            memory_mib: hw.and_then(|h| get(h, "memoryMB")).and_then(Value::as_u64),
            primary_ips: s(path(vm, &["guest", "ipAddress"]))
                .map(|t| parse_ips(&t))
                .unwrap_or_default(),
            annotation: s(path(vm, &["config", "annotation"])),
            firmware: s(path(vm, &["config", "firmware"])),
            secure_boot: path(vm, &["config", "bootOptions", "efiSecureBootEnabled"])
                .and_then(Value::as_bool)
                .unwrap_or(false),
            guest_os: s(path(vm, &["guest", "guestFullName"]))
                .or_else(|| s(path(vm, &["config", "guestFullName"]))),
            location: loc.clone(),
            ..InvVm::default()
        };
        // Custom attributes: customValue[{key, value}] named by availableField[{key, name}].
        let fields = get(vm, "availableField").and_then(Value::as_array);
        if let Some(cv) = get(vm, "customValue").and_then(Value::as_array) {
            for c in cv {
                let key = get(c, "key").and_then(Value::as_i64);
                let name = fields
                    .and_then(|f| {
                        f.iter()
                            .find(|f| get(f, "key").and_then(Value::as_i64) == key)
                    })
                    .and_then(|f| s(get(f, "name")))
                    .unwrap_or_else(|| format!("attribute-{}", key.unwrap_or(0)));
                if let Some(v) = s(get(c, "value")) {
                    out.attributes.insert(name, v);
                }
            }
        }
        let devices = hw.and_then(|h| get(h, "device")).and_then(Value::as_array);
        let guest_net = path(vm, &["guest", "net"]).and_then(Value::as_array);
        for d in devices.into_iter().flatten() {
            if let Some(mac) = s(get(d, "macAddress")) {
                let label = s(path(d, &["deviceInfo", "label"]));
                let gn = guest_net.and_then(|g| {
                    g.iter().find(|n| {
                        s(get(n, "macAddress")).is_some_and(|m| m.eq_ignore_ascii_case(&mac))
                    })
                });
                let network = s(path(d, &["backing", "deviceName"]))
                    .or_else(|| gn.and_then(|n| s(get(n, "network"))));
                let ips = gn.map(guest_ips).unwrap_or_default();
                // The device type: `VirtualVmxnet3`, `VirtualE1000e` (`_typeName` in
                // govc's camelCase JSON, `Type` in older versions).
                let adapter = s(get(d, "_typeName"))
                    .or_else(|| s(get(d, "type")))
                    .map(|t| t.trim_start_matches("Virtual").to_string());
                out.nics.push(InvNic {
                    label,
                    network,
                    mac: Some(mac),
                    ips,
                    adapter,
                });
            } else if let Some(file) = s(path(d, &["backing", "fileName"])) {
                let kb = get(d, "capacityInKB").and_then(Value::as_u64);
                let bytes = get(d, "capacityInBytes").and_then(Value::as_u64);
                out.disks.push(InvDisk {
                    label: s(path(d, &["deviceInfo", "label"])),
                    path: Some(file),
                    capacity_mib: bytes.map(|b| b >> 20).or(kb.map(|k| k >> 10)),
                });
            }
        }
        if out.nics.is_empty() {
            // No hardware section (`vm.info -json` without -r on some versions): guest NICs.
            for n in guest_net.into_iter().flatten() {
                out.nics.push(InvNic {
                    label: None,
                    network: s(get(n, "network")),
                    mac: s(get(n, "macAddress")),
                    ips: guest_ips(n),
                    adapter: None,
                });
            }
        }
        for n in &out.nics {
            if let Some(m) = &n.mac {
                if crate::plan::mac::Mac::parse(m).is_none() {
                    inv.warnings
                        .push(format!("{loc}: `{m}` is not a MAC address"));
                }
            }
        }
        inv.vms.push(out);
    }
    Ok(inv)
}

fn guest_ips(n: &Value) -> Vec<std::net::IpAddr> {
    let mut v = Vec::new();
    match get(n, "ipAddress") {
        Some(Value::Array(a)) => {
            for ip in a.iter().filter_map(Value::as_str) {
                v.extend(parse_ips(ip));
            }
        }
        Some(Value::String(t)) => v.extend(parse_ips(t)),
        _ => {}
    }
    // `guest.net[].ipConfig.ipAddress[].ipAddress` on newer versions.
    if v.is_empty() {
        if let Some(a) = path(n, &["ipConfig", "ipAddress"]).and_then(Value::as_array) {
            for e in a {
                if let Some(t) = get(e, "ipAddress").and_then(Value::as_str) {
                    v.extend(parse_ips(t));
                }
            }
        }
    }
    v
}
