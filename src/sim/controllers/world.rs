//! The simulated world outside Kubernetes: the source VMs in "vSphere" (power state, NICs,
//! open ports) and the network that answers probes.
//!
//! The source VMs sit behind one `std::sync::RwLock`, held only for short synchronous
//! sections (never across `.await`): the vSphere endpoint writes power states, the KubeVirt
//! controller and the probe endpoint read them. VMIs come from the KubeVirt controller's
//! reflector store, so a probe costs no API request.

use super::scenario::{PowerState, Scenario, SourceVmSpec};
use serde::Serialize;
use std::sync::RwLock;

#[derive(Debug, Clone)]
pub struct SourceVm {
    /// vSphere managed object id (`vm-1001`).
    pub moid: String,
    pub spec: SourceVmSpec,
    pub power: PowerState,
    /// Simulated seconds at which the source was last powered off (`None` while it runs)
    /// and last powered on.
    pub off_since: Option<f64>,
    pub last_on: f64,
}

/// One full copy of a source disk by the simulated CDI, in simulated seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskCopy {
    pub started: f64,
    pub finished: Option<f64>,
    /// The source had stopped writing (powered off, or it never writes) when the copy
    /// began and did not write again before it ended.
    pub consistent: bool,
}

/// What the simulated guest's disks hold compared with what the source wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskVerdict {
    /// `consistent`, `inconsistent` or `unknown`.
    pub result: &'static str,
    pub detail: String,
}

#[derive(Debug)]
pub struct World {
    vms: RwLock<Vec<SourceVm>>,
    /// Simulated time: real time since the world began × the scenario's speed.
    started: std::time::Instant,
    speed: f64,
    /// (source VM, disk index) → its latest copy.
    copies: RwLock<std::collections::HashMap<(String, usize), DiskCopy>>,
    /// The world's wall clock (Unix ms) when it began; it runs `speed` times faster.
    clock_start_ms: i64,
    /// IP → the running VMIs whose guest reports it (`NS/NAME`, guest name). Kept by the
    /// simulated KubeVirt as it boots and removes VMIs, so a probe is a lookup.
    vmi_ips: RwLock<std::collections::HashMap<String, Vec<(String, String)>>>,
}

/// Answer of the simulated network to one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeAnswer {
    /// `reachable`, `unreachable` or `conflict` (two machines hold the IP).
    pub result: &'static str,
    /// Who holds the IP: `source/NAME` (a powered-on vSphere VM) or `vmi/NS/NAME`.
    pub holders: Vec<String>,
    pub detail: String,
}

impl World {
    pub fn new(scenario: &Scenario) -> World {
        let vms = scenario
            .source_vms
            .iter()
            .enumerate()
            .map(|(i, spec)| SourceVm {
                moid: format!("vm-{}", 1001 + i),
                spec: spec.clone(),
                power: spec.power,
                off_since: (spec.power == PowerState::Off).then_some(0.0),
                last_on: 0.0,
            })
            .collect();
        World {
            vms: RwLock::new(vms),
            started: std::time::Instant::now(),
            speed: scenario.speed,
            copies: RwLock::default(),
            clock_start_ms: scenario.clock_start_ms.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
            }),
            vmi_ips: RwLock::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<SourceVm>> {
        self.vms.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn source_vms(&self) -> Vec<SourceVm> {
        self.read().clone()
    }

    /// The source VMs with these names (one pass; nothing else is copied).
    pub fn find_names(&self, names: &[&str]) -> Vec<SourceVm> {
        let wanted: std::collections::HashSet<&str> = names.iter().copied().collect();
        self.read()
            .iter()
            .filter(|v| wanted.contains(v.spec.name.as_str()))
            .cloned()
            .collect()
    }

    pub fn find(&self, name_or_moid: &str) -> Option<SourceVm> {
        self.read()
            .iter()
            .find(|v| {
                v.moid == name_or_moid
                    || v.spec.name == name_or_moid
                    || v.spec.uuid.as_deref() == Some(name_or_moid)
            })
            .cloned()
    }

    /// Sets a source VM's power; `None` when there is no such VM.
    pub fn set_power(&self, moid: &str, power: PowerState) -> Option<PowerState> {
        let now = self.now();
        let mut vms = self.vms.write().unwrap_or_else(|p| p.into_inner());
        let vm = vms.iter_mut().find(|v| v.moid == moid)?;
        match (vm.power, power) {
            (PowerState::On, PowerState::Off) => vm.off_since = Some(now),
            (PowerState::Off, PowerState::On) => {
                vm.off_since = None;
                vm.last_on = now;
            }
            _ => {}
        }
        vm.power = power;
        Some(power)
    }

    /// The world's clock (Unix ms): change windows are judged by it in a rehearsal.
    pub fn clock_ms(&self) -> i64 {
        self.clock_start_ms + (self.now() * 1000.0) as i64
    }

    /// Clock milliseconds per real millisecond.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Simulated seconds since the world began.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.speed
    }

    /// The simulated CDI begins a full copy of disk `disk` of source VM `vm`. The copy
    /// holds every write only if the source had stopped writing before it began: a copy of
    /// a running disk misses every later write (and is crash-inconsistent).
    pub fn copy_started(&self, vm: &str, disk: usize) {
        let now = self.now();
        let quiet = self
            .source_of(vm)
            .is_none_or(|s| s.spec.write_rate == 0 || s.off_since.is_some_and(|t| t <= now));
        let mut copies = self.copies.write().unwrap_or_else(|p| p.into_inner());
        copies.insert(
            (vm.to_string(), disk),
            DiskCopy {
                started: now,
                finished: None,
                consistent: quiet,
            },
        );
    }

    /// The copy of disk `disk` of `vm` ended; a source powered on meanwhile wrote again.
    pub fn copy_finished(&self, vm: &str, disk: usize) {
        let now = self.now();
        let source = self.source_of(vm);
        let mut copies = self.copies.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = copies.get_mut(&(vm.to_string(), disk)) {
            c.finished = Some(now);
            if let Some(s) = source {
                if s.spec.write_rate > 0 && (s.off_since.is_none() || s.last_on > c.started) {
                    c.consistent = false;
                }
            }
        }
    }

    /// Whether the guest booted from `vm`'s imported disks holds every write its source
    /// made before it was powered off (`disks`: how many disks the VM has).
    pub fn disk_verdict(&self, vm: &str, disks: usize) -> DiskVerdict {
        let copies = self.copies.read().unwrap_or_else(|p| p.into_inner());
        let source = self.source_of(vm);
        let mut missing = Vec::new();
        for d in 0..disks {
            match copies.get(&(vm.to_string(), d)) {
                None | Some(DiskCopy { finished: None, .. }) => missing.push(d),
                Some(c) if !c.consistent => {
                    let rate = source.as_ref().map_or(0, |s| s.spec.write_rate);
                    return DiskVerdict {
                        result: "inconsistent",
                        detail: format!(
                            "disk {d} was copied (from t={:.0}s) while the source ran, writing {:.1} MiB/s: every write after the copy began is missing",
                            c.started,
                            rate as f64 / (1024.0 * 1024.0)
                        ),
                    };
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            return DiskVerdict {
                result: "unknown",
                detail: format!(
                    "disk(s) {missing:?} of {vm} were never copied by the simulated CDI"
                ),
            };
        }
        DiskVerdict {
            result: "consistent",
            detail: format!("every disk of {vm} was copied after its source stopped writing"),
        }
    }

    /// The source VM whose disks a KubeVirt VM booted from (its `wavelift.io/vm` name).
    pub fn source_of(&self, name: &str) -> Option<SourceVm> {
        self.read().iter().find(|v| v.spec.name == name).cloned()
    }

    /// The guest IP a booted KubeVirt VM reports on an interface: a guest configured
    /// statically (as its source was) brings up its IP only when the NIC has the source's
    /// MAC and sits on the source's VLAN.
    pub fn guest_ip(&self, mac: &str, vlan: Option<u16>) -> Option<(String, String)> {
        let mac = mac.to_ascii_lowercase();
        self.read().iter().find_map(|vm| {
            vm.spec
                .nics
                .iter()
                .find(|n| n.mac.to_ascii_lowercase() == mac && n.vlan == vlan)
                .and_then(|n| n.ip.clone().map(|ip| (vm.spec.name.clone(), ip)))
        })
    }

    /// Ports the guest behind `ip` listens on (the source VM's, a migrated VM keeps them).
    fn open_ports(&self, source_name: &str) -> Vec<u16> {
        self.read()
            .iter()
            .find(|v| v.spec.name == source_name)
            .map(|v| v.spec.open_ports.clone())
            .unwrap_or_default()
    }

    /// Records the IPs the guest of VMI `key` (`NS/NAME`) reports (replacing earlier ones).
    pub fn set_vmi_ips(&self, key: &str, guest: &str, ips: &[String]) {
        let mut m = self.vmi_ips.write().unwrap_or_else(|p| p.into_inner());
        for holders in m.values_mut() {
            holders.retain(|(k, _)| k != key);
        }
        m.retain(|_, h| !h.is_empty());
        for ip in ips {
            m.entry(ip.clone())
                .or_default()
                .push((key.to_string(), guest.to_string()));
        }
    }

    /// Forgets VMI `key` (stopped, deleted).
    pub fn clear_vmi(&self, key: &str) {
        self.set_vmi_ips(key, "", &[]);
    }

    /// Probes `ip` (ICMP when `port` is `None`) against the world: powered-on source VMs and
    /// running VMIs whose guest agent reports the IP.
    pub fn probe(&self, ip: &str, port: Option<u16>) -> ProbeAnswer {
        let mut holders: Vec<(String, String)> = Vec::new(); // (holder, guest name for ports)
        for vm in self.read().iter() {
            if vm.power == PowerState::On
                && vm.spec.nics.iter().any(|n| n.ip.as_deref() == Some(ip))
            {
                holders.push((format!("source/{}", vm.spec.name), vm.spec.name.clone()));
            }
        }
        if let Some(vmis) = self
            .vmi_ips
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ip)
        {
            holders.extend(
                vmis.iter()
                    .map(|(key, guest)| (format!("vmi/{key}"), guest.clone())),
            );
        }
        let names: Vec<String> = holders.iter().map(|(h, _)| h.clone()).collect();
        match holders.len() {
            0 => ProbeAnswer {
                result: "unreachable",
                holders: names,
                detail: format!("nothing answers on {ip}"),
            },
            1 => {
                let (holder, guest) = &holders[0];
                match port {
                    Some(p) if !self.open_ports(guest).contains(&p) => ProbeAnswer {
                        result: "unreachable",
                        holders: names,
                        detail: format!("{holder} holds {ip} but port {p} is closed"),
                    },
                    _ => ProbeAnswer {
                        result: "reachable",
                        holders: names,
                        detail: format!("{ip} answers from {holder}"),
                    },
                }
            }
            _ => ProbeAnswer {
                result: "conflict",
                detail: format!("IP conflict: {ip} is held by {}", names.join(" and ")),
                holders: names,
            },
        }
    }
}
