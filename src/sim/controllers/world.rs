//! The simulated world outside Kubernetes: the source VMs in "vSphere" (power state, NICs,
//! open ports, disks and what the guest writes to them, snapshots, tasks) and the network
//! that answers probes.
//!
//! The source VMs sit behind one `std::sync::RwLock`, held only for short synchronous
//! sections (never across `.await`): the vSphere endpoints write power states and queue
//! tasks, the simulated CDI records what it copied, the KubeVirt controller and the probe
//! endpoint read. Things that happen by themselves (a task's end, a guest's power-off after
//! a shutdown request) are applied lazily when someone looks ([`VmEntry::advance`]); a
//! reader checks one atomic first, so a probe takes the write lock only when something is
//! due. VMIs come from the KubeVirt controller's reflector store, so a probe costs no API
//! request.

use super::disks::{self, CopyState, DiskReport};
use super::scenario::{self, FaultKind, PowerState, Scenario};
pub use super::vsphere::SourceVm;
use super::vsphere::{Ids, StageError, StagePlan, VmEntry};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// What the simulated guest's disks hold compared with what the source wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskVerdict {
    /// `consistent`, `inconsistent` or `unknown`.
    pub result: &'static str,
    pub detail: String,
}

/// The `/sim/v1/disks` answer: the verdict and, per disk, what the source wrote and the
/// copy holds.
#[derive(Debug, Clone, Serialize)]
pub struct DisksAnswer {
    pub result: &'static str,
    pub detail: String,
    pub vm: String,
    /// `poweredOn`, `poweredOff`, or `unknown` (no such source VM).
    pub power: &'static str,
    /// The source's latest write generation and how many extents its log holds.
    pub generation: u64,
    pub extents: usize,
    pub disks: Vec<DiskReport>,
}

/// The simulated vCenter's identity, from the scenario.
#[derive(Debug, Clone)]
pub struct VcenterInfo {
    /// `8.0.3` as numbers.
    pub version: (u32, u32, u32),
    /// Simulated seconds from a guest shutdown request to the power-off.
    pub shutdown_seconds: f64,
    pub user: String,
}

#[derive(Debug)]
pub struct World {
    vms: RwLock<Vec<VmEntry>>,
    /// Each VM's index in `vms` by managed object id, and by name (the VMs never change).
    index: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    ids: Ids,
    /// The earliest simulated time something happens by itself (`f64` bits; infinity when
    /// nothing is pending).
    next_event: AtomicU64,
    /// Simulated time: real time since the world began × the scenario's speed.
    started: std::time::Instant,
    speed: f64,
    /// Copies of disks of VMs the world has no source VM for.
    orphan_copies: RwLock<HashMap<(String, usize), CopyState>>,
    /// Which source disk each DataVolume (`NS/NAME`) holds a copy of, as the simulated CDI
    /// copied it: (source VM, disk), the disk being the one its `vddk.backingFile` names.
    dv_copies: RwLock<HashMap<String, (String, usize)>>,
    /// The DataVolumes (`NS/NAME`) each KubeVirt VM's guest booted from, in its volumes'
    /// order (disk 0 first), recorded by the simulated KubeVirt as the VMI runs.
    boots: RwLock<HashMap<String, Vec<String>>>,
    /// The world's wall clock (Unix ms) when it began; it runs `speed` times faster.
    clock_start_ms: i64,
    /// IP → the running VMIs whose guest reports it (`NS/NAME`, guest name). Kept by the
    /// simulated KubeVirt as it boots and removes VMIs, so a probe is a lookup.
    vmi_ips: RwLock<HashMap<String, Vec<(String, String)>>>,
    /// Per running VMI (`NS/NAME`), the addresses its guest brought up on the wire:
    /// (IP, the interface's MAC, its network's VLAN). A booted guest has them whether or
    /// not an agent reports them.
    vmi_l2: RwLock<HashMap<String, Vec<L2Address>>>,
    /// Routers on the VLANs: (IP, VLAN).
    gateways: Vec<(String, Option<u16>)>,
    /// Source VMs with a `ghost-holder` fault.
    ghosts: std::collections::HashSet<String>,
    /// KubeVirt VMs (`NS/NAME`) Forklift created from a source VM whose guest virt-v2v
    /// converted: their source's name. virt-v2v installs virtio drivers in a Windows guest
    /// and rewrites the network configuration so that it follows the NIC by MAC
    /// (kubev2v/forklift `virt-v2v/` customisation scripts, the reason to use this backend).
    converted: RwLock<HashMap<String, String>>,
    pub vcenter: VcenterInfo,
    /// Cluster policy on the VMIs' pods (see [`super::policy`]).
    pub policy: std::sync::Arc<super::policy::PolicyNet>,
}

/// An address a guest brought up on a VLAN: what answers ARP for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Address {
    pub ip: String,
    /// Lowercase, colon form.
    pub mac: String,
    pub vlan: Option<u16>,
}

/// Answer of the simulated network to one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ProbeAnswer {
    /// `reachable`, `unreachable` or `conflict` (two machines hold the IP).
    pub result: &'static str,
    /// Who holds the IP: `source/NAME` (a powered-on vSphere VM) or `vmi/NS/NAME`.
    pub holders: Vec<String>,
    pub detail: String,
    /// For an `unreachable` answer the cluster's policy decided: the policies whose
    /// default deny dropped the flow (`MultiNetworkPolicy NS/NAME`); omitted otherwise. A
    /// dropped flow gets no answer at all (no RST, no ICMP error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
}

impl World {
    pub fn new(scenario: &Scenario) -> World {
        let ids = Ids::default();
        let vms: Vec<VmEntry> = scenario
            .source_vms
            .iter()
            .enumerate()
            .map(|(i, spec)| VmEntry::new(format!("vm-{}", 1001 + i), spec, scenario, &ids))
            .collect();
        // The first VM of a name wins, as a search in order would find it.
        let (mut index, mut by_name) = (HashMap::new(), HashMap::new());
        for (i, e) in vms.iter().enumerate() {
            index.entry(e.vm.moid.clone()).or_insert(i);
            by_name.entry(e.vm.spec.name.clone()).or_insert(i);
        }
        World {
            index,
            by_name,
            vms: RwLock::new(vms),
            ids,
            next_event: AtomicU64::new(f64::INFINITY.to_bits()),
            started: std::time::Instant::now(),
            speed: scenario.speed,
            orphan_copies: RwLock::default(),
            dv_copies: RwLock::default(),
            boots: RwLock::default(),
            clock_start_ms: scenario.clock_start_ms.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
            }),
            vmi_ips: RwLock::default(),
            vmi_l2: RwLock::default(),
            gateways: scenario
                .gateways
                .iter()
                .map(|g| (g.ip.clone(), g.vlan))
                .collect(),
            ghosts: scenario
                .faults
                .iter()
                .filter(|f| f.kind == FaultKind::GhostHolder)
                .map(|f| f.vm.clone())
                .collect(),
            converted: RwLock::default(),
            vcenter: VcenterInfo {
                version: super::vsphere::parse_version(&scenario.vcenter_version)
                    .unwrap_or((8, 0, 3)),
                shutdown_seconds: scenario.shutdown_seconds,
                user: scenario.vcenter_user.clone(),
            },
            policy: std::sync::Arc::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<VmEntry>> {
        self.settle();
        self.vms.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<VmEntry>> {
        self.vms.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies what is due (task ends, guest power-offs) when anything is.
    fn settle(&self) {
        let now = self.now();
        if now < f64::from_bits(self.next_event.load(Ordering::Acquire)) {
            return;
        }
        let mut vms = self.write();
        for e in vms.iter_mut() {
            if e.next_event().is_some_and(|t| t <= now) {
                e.advance(now, &self.ids);
            }
        }
        self.recompute_next(&vms);
    }

    fn recompute_next(&self, vms: &[VmEntry]) {
        let next = vms
            .iter()
            .filter_map(VmEntry::next_event)
            .fold(f64::INFINITY, f64::min);
        self.next_event.store(next.to_bits(), Ordering::Release);
    }

    /// `f` of every source VM, as they are (nothing advanced), in one pass.
    pub fn each_vm<R>(&self, f: impl FnMut(&VmEntry) -> R) -> Vec<R> {
        self.read().iter().map(f).collect()
    }

    /// Runs `f` on the source VM `pick` selects, brought up to now (writes materialised,
    /// due tasks ended), under the write lock. `None` when there is no such VM.
    pub fn with_vm<R>(
        &self,
        pick: impl Fn(&VmEntry) -> bool,
        f: impl FnOnce(&mut VmEntry, f64, &Ids) -> R,
    ) -> Option<R> {
        let i = self.read().iter().position(pick)?;
        self.with_index(i, f)
    }

    /// [`World::with_vm`] for the VM at index `i`. The next due time is kept without a pass
    /// over every VM unless this one held it.
    fn with_index<R>(&self, i: usize, f: impl FnOnce(&mut VmEntry, f64, &Ids) -> R) -> Option<R> {
        let now = self.now();
        let mut vms = self.write();
        let e = vms.get_mut(i)?;
        let before = e.next_event().unwrap_or(f64::INFINITY);
        e.advance(now, &self.ids);
        let r = f(e, now, &self.ids);
        let after = e.next_event().unwrap_or(f64::INFINITY);
        let next = f64::from_bits(self.next_event.load(Ordering::Acquire));
        if after < next {
            self.next_event.store(after.to_bits(), Ordering::Release);
        } else if before <= next && after != before {
            // It was (one of) the earliest: another may be now.
            self.recompute_next(&vms);
        }
        Some(r)
    }

    /// [`World::with_vm`] by managed object id.
    pub fn with_moid<R>(
        &self,
        moid: &str,
        f: impl FnOnce(&mut VmEntry, f64, &Ids) -> R,
    ) -> Option<R> {
        let i = self.index.get(moid).copied()?;
        self.with_index(i, f)
    }

    /// [`World::with_vm`] by VM name (the KubeVirt VM's, which is the source's).
    pub fn with_name<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut VmEntry, f64, &Ids) -> R,
    ) -> Option<R> {
        let i = self.by_name.get(name).copied()?;
        self.with_index(i, f)
    }

    pub fn source_vms(&self) -> Vec<SourceVm> {
        self.read().iter().map(|e| e.vm.clone()).collect()
    }

    /// The source VMs with these names (one pass; nothing else is copied).
    pub fn find_names(&self, names: &[&str]) -> Vec<SourceVm> {
        let wanted: std::collections::HashSet<&str> = names.iter().copied().collect();
        self.read()
            .iter()
            .filter(|e| wanted.contains(e.vm.spec.name.as_str()))
            .map(|e| e.vm.clone())
            .collect()
    }

    pub fn find(&self, name_or_moid: &str) -> Option<SourceVm> {
        self.read()
            .iter()
            .find(|e| {
                e.vm.moid == name_or_moid
                    || e.vm.spec.name == name_or_moid
                    || e.vm.spec.uuid.as_deref() == Some(name_or_moid)
            })
            .map(|e| e.vm.clone())
    }

    /// Sets a source VM's power; `None` when there is no such VM.
    pub fn set_power(&self, moid: &str, power: PowerState) -> Option<PowerState> {
        self.with_moid(moid, |e, now, _| {
            e.set_power(now, power);
            power
        })
    }

    /// Renders the vSphere model as vim25 JSON by this world's clock.
    pub fn render(&self) -> super::vsphere::Render {
        super::vsphere::Render {
            clock_start_ms: self.clock_start_ms,
            user: self.vcenter.user.clone(),
        }
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

    /// The simulated CDI begins a full (cold) copy of disk `disk` of source VM `vm`: it
    /// holds what the source wrote before it began; a source that writes during or after
    /// the copy leaves it without those writes (and crash-inconsistent).
    pub fn copy_started(&self, vm: &str, disk: usize) {
        let found = self.with_name(vm, |e, now, _| {
            e.sim.copies.insert(
                disk,
                CopyState {
                    cold: Some(disks::ColdCopy {
                        started: now,
                        gen_at_start: e.sim.log.gen(),
                        source_running: e.vm.power == PowerState::On,
                    }),
                    ..CopyState::default()
                },
            );
        });
        if found.is_none() {
            self.orphans()
                .insert((vm.to_string(), disk), CopyState::default());
        }
    }

    fn orphans(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(String, usize), CopyState>> {
        self.orphan_copies
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The cold copy of disk `disk` of `vm` ended.
    pub fn copy_finished(&self, vm: &str, disk: usize) {
        let found = self.with_name(vm, |e, _, _| {
            if let Some(c) = e.sim.copies.get_mut(&disk) {
                if let Some(cold) = c.cold {
                    c.coverage.add(0, cold.gen_at_start);
                }
                c.finished = true;
            }
        });
        if found.is_none() {
            if let Some(c) = self.orphans().get_mut(&(vm.to_string(), disk)) {
                c.finished = true;
            }
        }
    }

    /// A new multi-stage import of disk `disk` of `vm` begins: its copy holds nothing yet.
    pub fn copy_reset(&self, vm: &str, disk: usize) {
        self.with_name(vm, |e, _, _| {
            e.sim.copies.insert(disk, CopyState::default());
        });
    }

    /// The disk of `vm` a DataVolume's `backingFile` names.
    pub fn disk_of(&self, vm: &str, backing_file: &str) -> Option<usize> {
        self.with_name(vm, |e, _, _| e.disk_of(backing_file))
            .flatten()
    }

    /// What a stage `previous` → `current` of the disk `backing_file` names copies, or why
    /// the importer fails (see [`VmEntry::stage_plan`]).
    pub fn stage_plan(
        &self,
        vm: &str,
        backing_file: &str,
        previous: &str,
        current: &str,
    ) -> Result<StagePlan, StageError> {
        self.with_name(vm, |e, _, _| {
            let disk = e.disk_of(backing_file).ok_or_else(|| {
                StageError::Connect(format!(
                    "disk '{backing_file}' is not present in VM hardware config or snapshot list"
                ))
            })?;
            e.stage_plan(disk, previous, current)
        })
        .unwrap_or_else(|| {
            Err(StageError::Connect(format!(
                "unable to find VM {vm} (no such source VM)"
            )))
        })
    }

    /// Whether snapshot `current` of `vm` still exists (the importer reads it).
    pub fn snapshot_exists(&self, vm: &str, current: &str) -> bool {
        self.with_name(vm, |e, _, _| e.find_snapshot(current).is_ok())
            .unwrap_or(false)
    }

    /// A stage was copied: the disk's copy holds `(lo, hi]` now (the whole disk up to `hi`
    /// for a first stage).
    pub fn stage_finished(&self, vm: &str, plan: &StagePlan) {
        self.with_name(vm, |e, _, _| {
            let c = e.sim.copies.entry(plan.disk).or_default();
            c.coverage.add(plan.lo, plan.hi);
            c.finished = true;
            c.stages += 1;
        });
    }

    /// Whether the guest booted from `vm`'s imported disks holds every write its source
    /// made (`disks`: how many disks the VM has): `consistent` only when the source is off
    /// (or never writes) and every disk's copy holds every extent it wrote; `inconsistent`
    /// names the first disk missing writes, how many, their bytes and when they were made;
    /// `unknown` when a disk was never copied.
    pub fn disk_verdict(&self, vm: &str, disks: usize) -> DiskVerdict {
        let a = self.disks_answer(vm, disks);
        DiskVerdict {
            result: a.result,
            detail: a.detail,
        }
    }

    /// DataVolume `dv` (`NS/NAME`) holds a copy of disk `disk` of source VM `vm`.
    pub fn copy_of(&self, dv: &str, vm: &str, disk: usize) {
        self.dv_copies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dv.to_string(), (vm.to_string(), disk));
    }

    /// KubeVirt VM `vm`'s guest booted from DataVolumes `dvs` (`NS/NAME`, its volumes in
    /// order): its disk `j` holds what `dvs[j]` holds.
    pub fn booted_from(&self, vm: &str, dvs: Vec<String>) {
        self.boots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(vm.to_string(), dvs);
    }

    /// Whether the guest of `vm` booted from the copies of its own disks, in order: the
    /// first disk that is not, named. Judged only when the simulated CDI copied every
    /// DataVolume the guest booted from (a blank disk virt-v2v filled is not such a copy).
    fn boot_mismatch(&self, vm: &str, disks: usize) -> Option<String> {
        let boots = self.boots.read().unwrap_or_else(|p| p.into_inner());
        let booted = boots.get(vm).filter(|b| !b.is_empty())?;
        let copies = self.dv_copies.read().unwrap_or_else(|p| p.into_inner());
        let of: Vec<&(String, usize)> = booted.iter().filter_map(|d| copies.get(d)).collect();
        if of.len() != booted.len() {
            return None;
        }
        for (j, (d, (src, k))) in booted.iter().zip(of).enumerate() {
            if src != vm || *k != j {
                return Some(format!(
                    "the guest's disk {j} is DataVolume {d}, a copy of disk {k} of {src}, not of disk {j} of {vm}"
                ));
            }
        }
        (booted.len() < disks).then(|| {
            format!(
                "the guest booted from {} DataVolume(s); {vm} has {disks} disk(s)",
                booted.len()
            )
        })
    }

    /// The verdict with every disk's report (`GET /sim/v1/disks`).
    pub fn disks_answer(&self, vm: &str, disks: usize) -> DisksAnswer {
        let mut a = self.disks_answer_of_copies(vm, disks);
        // The guest holds what it booted from: another VM's copy, or its disks in the
        // wrong order, holds none of its writes where they belong.
        if let Some(why) = self.boot_mismatch(vm, disks) {
            a.result = "inconsistent";
            a.detail = why;
        }
        a
    }

    fn disks_answer_of_copies(&self, vm: &str, disks: usize) -> DisksAnswer {
        let answer = self.with_name(vm, |e, _, _| verdict_of(e, vm, disks));
        answer.unwrap_or_else(|| {
            let copies = self.orphan_copies.read().unwrap_or_else(|p| p.into_inner());
            let missing: Vec<usize> = (0..disks)
                .filter(|d| !copies.get(&(vm.to_string(), *d)).is_some_and(|c| c.finished))
                .collect();
            let (result, detail) = if missing.is_empty() {
                (
                    "consistent",
                    format!("every disk of {vm} was copied (the world has no source VM {vm}, which never wrote)"),
                )
            } else {
                (
                    "unknown",
                    format!("disk(s) {missing:?} of {vm} were never copied by the simulated CDI"),
                )
            };
            DisksAnswer {
                result,
                detail,
                vm: vm.to_string(),
                power: "unknown",
                generation: 0,
                extents: 0,
                disks: Vec::new(),
            }
        })
    }

    /// Records that Forklift created KubeVirt VM `ns/name` from source VM `source` with a
    /// guest virt-v2v converted.
    pub fn mark_converted(&self, ns: &str, name: &str, source: &str) {
        self.converted
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{ns}/{name}"), source.to_string());
    }

    /// The source VM of KubeVirt VM `ns/name` if Forklift created it with a converted guest.
    pub fn converted_source(&self, ns: &str, name: &str) -> Option<SourceVm> {
        let source = self
            .converted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{ns}/{name}"))
            .cloned()?;
        self.source_of(&source)
    }

    /// The source VM whose disks a KubeVirt VM booted from (its `wavelift.io/vm` name).
    pub fn source_of(&self, name: &str) -> Option<SourceVm> {
        self.read()
            .iter()
            .find(|e| e.vm.spec.name == name)
            .map(|e| e.vm.clone())
    }

    /// The guest IP a booted KubeVirt VM reports on an interface: a guest configured
    /// statically (as its source was) brings up its IP only when the NIC has the source's
    /// MAC and sits on the source's VLAN.
    pub fn guest_ip(&self, mac: &str, vlan: Option<u16>) -> Option<(String, String)> {
        let mac = mac.to_ascii_lowercase();
        self.read().iter().find_map(|e| {
            let vm = &e.vm;
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
            .find(|e| e.vm.spec.name == source_name)
            .map(|e| e.vm.spec.open_ports.clone())
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

    /// Records the addresses the guest of VMI `key` brought up on its VLANs (replacing
    /// earlier ones): what answers ARP from it.
    pub fn set_vmi_l2(&self, key: &str, addrs: Vec<L2Address>) {
        let mut m = self.vmi_l2.write().unwrap_or_else(|p| p.into_inner());
        if addrs.is_empty() {
            m.remove(key);
        } else {
            m.insert(key.to_string(), addrs);
        }
    }

    /// Forgets VMI `key` (stopped, deleted).
    pub fn clear_vmi(&self, key: &str) {
        self.set_vmi_ips(key, "", &[]);
        self.set_vmi_l2(key, Vec::new());
        self.policy.set_pod(key, None);
    }

    /// The MACs (lowercase, sorted, distinct) that answer an ARP probe of `ip` on `vlan`:
    /// powered-on source VMs' NICs with that IP on that VLAN, a powered-off source's
    /// ghost (`ghost-holder`), running VMIs whose guest brought the IP up on that VLAN,
    /// and the VLAN's router for its gateway IP.
    pub fn arp(&self, ip: &str, vlan: Option<u16>) -> Vec<String> {
        let mut macs = std::collections::BTreeSet::new();
        for e in self.read().iter() {
            let vm = &e.vm;
            let ghost = vm.power == PowerState::Off && self.ghosts.contains(&vm.spec.name);
            for n in &vm.spec.nics {
                if n.ip.as_deref() != Some(ip) || n.vlan != vlan {
                    continue;
                }
                if vm.power == PowerState::On {
                    macs.insert(n.mac.to_ascii_lowercase());
                } else if ghost {
                    macs.insert(scenario::ghost_mac(&vm.spec.name));
                }
            }
        }
        for addrs in self
            .vmi_l2
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            for a in addrs.iter().filter(|a| a.ip == ip && a.vlan == vlan) {
                macs.insert(a.mac.to_ascii_lowercase());
            }
        }
        if self.gateways.iter().any(|(g, v)| g == ip && *v == vlan) {
            macs.insert(scenario::gateway_mac(vlan));
        }
        macs.into_iter().collect()
    }

    /// [`World::probe_from`] the rehearsal workstation ([`crate::sim::WORKSTATION_IP`]).
    pub fn probe(&self, ip: &str, port: Option<u16>) -> ProbeAnswer {
        self.probe_from(ip, port, crate::sim::WORKSTATION_IP)
    }

    /// Probes `ip` (ICMP when `port` is `None`, else TCP) from `from` against the world:
    /// powered-on source VMs, ghosts of powered-off ones (`ghost-holder`,
    /// `ghost/NAME (MAC)`) and running VMIs whose guest agent reports the IP. A VMI's pod is
    /// subject to the NetworkPolicies and MultiNetworkPolicies of its namespace (see
    /// [`super::policy`]): a flow they deny is `unreachable`, naming the policies whose
    /// default deny applies. Source VMs are not subject to cluster policy.
    pub fn probe_from(&self, ip: &str, port: Option<u16>, from: std::net::IpAddr) -> ProbeAnswer {
        let mut holders: Vec<(String, String)> = Vec::new(); // (holder, guest name for ports)
        for e in self.read().iter() {
            let vm = &e.vm;
            if vm.power == PowerState::On
                && vm.spec.nics.iter().any(|n| n.ip.as_deref() == Some(ip))
            {
                holders.push((format!("source/{}", vm.spec.name), vm.spec.name.clone()));
            }
            // A ghost answers for a powered-off source (`ghost-holder`).
            if vm.power == PowerState::Off
                && self.ghosts.contains(&vm.spec.name)
                && vm.spec.nics.iter().any(|n| n.ip.as_deref() == Some(ip))
            {
                holders.push((
                    format!(
                        "ghost/{} ({})",
                        vm.spec.name,
                        scenario::ghost_mac(&vm.spec.name)
                    ),
                    vm.spec.name.clone(),
                ));
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
                ..ProbeAnswer::default()
            },
            1 => {
                let (holder, guest) = &holders[0];
                if let Some(key) = holder.strip_prefix("vmi/") {
                    if let Some(super::policy::DenyVerdict { by }) =
                        self.policy_denies(key, ip, from, port)
                    {
                        return ProbeAnswer {
                            result: "unreachable",
                            holders: names,
                            detail: format!(
                                "{holder} holds {ip} but the flow is blocked by {} (default deny; from {from})",
                                by.join(", ")
                            ),
                            blocked_by: by,
                        };
                    }
                }
                match port {
                    Some(p) if !self.open_ports(guest).contains(&p) => ProbeAnswer {
                        result: "unreachable",
                        holders: names,
                        detail: format!("{holder} holds {ip} but port {p} is closed"),
                        ..ProbeAnswer::default()
                    },
                    _ => ProbeAnswer {
                        result: "reachable",
                        holders: names,
                        detail: format!("{ip} answers from {holder}"),
                        ..ProbeAnswer::default()
                    },
                }
            }
            _ => ProbeAnswer {
                result: "conflict",
                detail: format!("IP conflict: {ip} is held by {}", names.join(" and ")),
                holders: names,
                ..ProbeAnswer::default()
            },
        }
    }
}

impl World {
    /// The policies that deny a flow from `from` to `ip` on VMI `key`, if they do.
    fn policy_denies(
        &self,
        key: &str,
        ip: &str,
        from: std::net::IpAddr,
        port: Option<u16>,
    ) -> Option<super::policy::DenyVerdict> {
        // Cheap first: most namespaces have no policy.
        let ns = key.split_once('/').map_or(key, |(ns, _)| ns);
        self.policy.policies(ns)?;
        // The VMI that holds the source address, if one alone does (a VM-to-VM flow).
        let source_pod = self
            .vmi_ips
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&from.to_string())
            .filter(|h| h.len() == 1)
            .map(|h| h[0].0.clone());
        match self
            .policy
            .ingress(key, ip, from, source_pod.as_deref(), port)?
        {
            crate::policy::eval::Verdict::Deny { by } => Some(super::policy::DenyVerdict { by }),
            _ => None,
        }
    }
}

/// The verdict on `e`'s copied disks (see [`World::disk_verdict`]).
fn verdict_of(e: &VmEntry, vm: &str, disks: usize) -> DisksAnswer {
    let on = e.vm.power == PowerState::On;
    let quiet = e.vm.spec.write_rate == 0;
    let n = disks.max(e.sim.disks.len());
    let mut reports = Vec::with_capacity(n);
    let mut first_bad: Option<String> = None;
    let mut bad = 0;
    let mut never: Vec<usize> = Vec::new();
    let at = |t: f64| {
        if !on && e.vm.off_since == Some(t) {
            "the power-off".to_string()
        } else {
            format!("t={t:.0}s")
        }
    };
    for d in 0..n {
        let file = e
            .sim
            .disks
            .get(d)
            .map(|x| x.file.clone())
            .unwrap_or_default();
        let size = e.sim.disks.get(d).map_or(0, |x| x.size);
        let (writes, written_bytes) = e
            .sim
            .log
            .extents()
            .iter()
            .filter(|x| x.disk as usize == d)
            .fold((0u64, 0u64), |(n, b), x| (n + 1, b + x.len));
        let copy = e.sim.copies.get(&d);
        let state = match copy {
            None => "none",
            Some(c) if c.finished => "copied",
            Some(_) => "copying",
        };
        let counted = d < disks;
        let (result, detail, m) = match copy.filter(|c| c.finished) {
            None => {
                if counted {
                    never.push(d);
                }
                (
                    "unknown",
                    format!("disk {d} was never copied by the simulated CDI"),
                    disks::Missing::default(),
                )
            }
            Some(c) => {
                let m = disks::missing(&e.sim.log, d, &c.coverage);
                if m.writes == 0 {
                    if on && !quiet {
                        (
                            "inconsistent",
                            format!("disk {d} holds every write so far, but the source still runs and writes"),
                            m,
                        )
                    } else {
                        (
                            "consistent",
                            format!("disk {d} holds all {writes} writes"),
                            m,
                        )
                    }
                } else {
                    let when = if m.writes == 1 {
                        format!("made at {}", at(m.first_at))
                    } else {
                        format!("made between t={:.0}s and {}", m.first_at, at(m.last_at))
                    };
                    let what = format!(
                        "misses {} write{} ({}) {when}",
                        m.writes,
                        if m.writes == 1 { "" } else { "s" },
                        disks::human_bytes(m.bytes)
                    );
                    let mut detail = match c.cold {
                        Some(cold) if cold.source_running => format!(
                            "disk {d} was copied (from t={:.0}s) while the source ran, writing {:.1} MiB/s: it {what}",
                            cold.started,
                            e.vm.spec.write_rate as f64 / f64::from(1u32 << 20)
                        ),
                        _ => format!("disk {d} {what}"),
                    };
                    if on {
                        detail.push_str(" (the source still runs and writes)");
                    }
                    ("inconsistent", detail, m)
                }
            }
        };
        if counted && result == "inconsistent" {
            bad += 1;
            if first_bad.is_none() {
                first_bad = Some(detail.clone());
            }
        }
        reports.push(DiskReport {
            index: d,
            file,
            size,
            writes,
            written_bytes,
            copy: state,
            stages: copy.map_or(0, |c| c.stages),
            holds: copy
                .map(|c| c.coverage.ranges().to_vec())
                .unwrap_or_default(),
            missing_writes: m.writes,
            missing_bytes: m.bytes,
            result,
            detail,
        });
    }
    let (result, detail) = if let Some(first) = first_bad {
        let more = if bad > 1 {
            format!(
                " (and {} more disk{})",
                bad - 1,
                if bad > 2 { "s" } else { "" }
            )
        } else {
            String::new()
        };
        ("inconsistent", format!("{first}{more}"))
    } else if !never.is_empty() {
        (
            "unknown",
            format!("disk(s) {never:?} of {vm} were never copied by the simulated CDI"),
        )
    } else if quiet {
        (
            "consistent",
            format!("every disk of {vm} was copied and its source never writes"),
        )
    } else {
        (
            "consistent",
            format!(
                "every disk of {vm} holds every write its source made before it was powered off ({} writes)",
                e.sim.log.gen()
            ),
        )
    };
    DisksAnswer {
        result,
        detail,
        vm: vm.to_string(),
        power: super::vsphere::power_text(e.vm.power),
        generation: e.sim.log.gen(),
        extents: e.sim.log.extents().len(),
        disks: reports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::controllers::vsphere::TaskKind;

    fn web() -> (VmEntry, Ids) {
        let s = Scenario::from_toml(
            r#"
[[source_vm]]
name = "web"
write_rate = "1Mi"
disks = [{ file = "[ds1] web/web.vmdk", size = "40Gi" }]
"#,
            "t.toml",
        )
        .expect("scenario");
        let ids = Ids::default();
        (
            VmEntry::new("vm-1001".into(), &s.source_vms[0], &s, &ids),
            ids,
        )
    }

    /// Takes snapshot `name` at `at` and returns its reference and disk 0's change ID.
    fn snapshot(e: &mut VmEntry, ids: &Ids, name: &str, at: f64) -> (String, String) {
        e.queue(
            TaskKind::CreateSnapshot {
                name: name.into(),
                description: String::new(),
                memory: false,
                quiesce: false,
                ex: false,
            },
            at,
            ids,
        );
        e.advance(at + 10.0, ids);
        let s = e.sim.snapshots.last().expect("taken");
        (s.moref.clone(), s.change_ids[0].clone().expect("CBT is on"))
    }

    fn copy(e: &mut VmEntry, previous: &str, current: &str) -> StagePlan {
        let plan = e.stage_plan(0, previous, current).expect("stage");
        let c = e.sim.copies.entry(0).or_default();
        c.coverage.add(plan.lo, plan.hi);
        c.finished = true;
        c.stages += 1;
        plan
    }

    /// The warm sequence: a full first stage, a delta from snapshot 1's change ID, then the
    /// source off and a final delta from snapshot 2's. The correct chain holds every
    /// write; a second checkpoint that skips a stage (its `previous` names snapshot 2's
    /// change ID while snapshot 1 → 2 was never copied) misses the writes between.
    #[test]
    fn a_warm_chain_is_consistent_and_a_skipped_stage_is_not() {
        for skip in [false, true] {
            let (mut e, ids) = web();
            let (s1, c1) = snapshot(&mut e, &ids, "s1", 600.0);
            let first = copy(&mut e, "", &s1);
            assert_eq!((first.lo, first.delta_bytes), (0, None));
            let (s2, c2) = snapshot(&mut e, &ids, "s2", 1800.0);
            if !skip {
                let p = copy(&mut e, &c1, &s2);
                assert_eq!(p.delta_bytes, Some(20 * (60 << 20)), "{p:?}");
            }
            e.set_power(2000.0, PowerState::Off);
            let (s3, _) = snapshot(&mut e, &ids, "s3", 2100.0);
            copy(&mut e, &c2, &s3);
            let v = verdict_of(&e, "web", 1);
            if skip {
                assert_eq!(v.result, "inconsistent", "{v:?}");
                assert!(
                    v.detail.starts_with(
                        "disk 0 misses 20 writes (1.2 GiB) made between t=660s and t=1800s"
                    ),
                    "{}",
                    v.detail
                );
                assert_eq!(v.disks[0].missing_writes, 20);
            } else {
                assert_eq!(v.result, "consistent", "{v:?}");
            }
        }
    }

    #[test]
    fn a_stage_needs_its_snapshot_and_a_change_id_of_its_own_disk() {
        let (mut e, ids) = web();
        let (s1, c1) = snapshot(&mut e, &ids, "s1", 600.0);
        assert!(matches!(
            e.stage_plan(0, "", "snapshot-999"),
            Err(StageError::Connect(m)) if m == "snapshot \"snapshot-999\" not found"
        ));
        // A change ID of another disk (or an older CBT epoch): QueryChangedDiskAreas refuses.
        let other = disks::change_id(&disks::change_id_prefix(1, 5, 1), 3);
        let err = e.stage_plan(0, &other, &s1).expect_err("foreign change ID");
        assert!(err.message().contains("changeId"), "{err:?}");
        // A previous snapshot that is gone.
        let err = e
            .stage_plan(0, "snapshot-998", &s1)
            .expect_err("no such snapshot");
        assert_eq!(
            err.message(),
            "Unable to process data: Could not find previous snapshot snapshot-998: snapshot \"snapshot-998\" not found"
        );
        // By name works as govmomi's FindSnapshot resolves it.
        assert!(e.stage_plan(0, &c1, "s1").is_ok());
        // The snapshot removed: the importer cannot connect.
        e.queue(
            TaskKind::RemoveSnapshot {
                snapshot: s1.clone(),
                remove_children: false,
            },
            700.0,
            &ids,
        );
        e.advance(800.0, &ids);
        assert_eq!(
            e.stage_plan(0, "", &s1).expect_err("removed").message(),
            "Unable to connect to vddk data source: no snapshots for this VM"
        );
    }

    #[test]
    fn a_cold_copy_of_a_running_source_misses_its_later_writes() {
        let (mut e, _) = web();
        e.advance(300.0, &Ids::default());
        e.sim.copies.insert(
            0,
            CopyState {
                cold: Some(disks::ColdCopy {
                    started: 300.0,
                    gen_at_start: e.sim.log.gen(),
                    source_running: true,
                }),
                ..CopyState::default()
            },
        );
        let v = verdict_of(&e, "web", 1);
        assert_eq!(v.result, "unknown", "copy not finished: {v:?}");
        if let Some(c) = e.sim.copies.get_mut(&0) {
            c.coverage.add(0, 5);
            c.finished = true;
        }
        e.set_power(420.0, PowerState::Off);
        let v = verdict_of(&e, "web", 1);
        assert_eq!(v.result, "inconsistent");
        assert!(
            v.detail.contains("while the source ran")
                && v.detail
                    .contains("misses 2 writes (120 MiB) made between t=360s and the power-off"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn arp_answers_sources_ghosts_vmis_and_gateways_on_their_vlan() {
        let s = Scenario::from_toml(
            r#"
gateways = [{ ip = "192.0.2.1", vlan = 210 }]
[[source_vm]]
name = "db"
nics = [{ ip = "192.0.2.15", mac = "00:50:56:AB:CD:01", vlan = 210 }]
[[fault]]
kind = "ghost-holder"
vm = "db"
"#,
            "t.toml",
        )
        .expect("scenario");
        let w = World::new(&s);
        assert_eq!(w.arp("192.0.2.15", Some(210)), vec!["00:50:56:ab:cd:01"]);
        assert!(w.arp("192.0.2.15", Some(211)).is_empty(), "another VLAN");
        assert_eq!(w.arp("192.0.2.1", Some(210)), vec!["00:00:5e:00:01:d2"]);
        w.set_power("vm-1001", PowerState::Off).expect("vm");
        let ghost = scenario::ghost_mac("db");
        assert_eq!(w.arp("192.0.2.15", Some(210)), vec![ghost.clone()]);
        let p = w.probe("192.0.2.15", None);
        assert_eq!(p.result, "reachable");
        assert_eq!(p.holders, vec![format!("ghost/db ({ghost})")]);
        w.set_vmi_l2(
            "ns/db",
            vec![L2Address {
                ip: "192.0.2.15".into(),
                mac: "00:50:56:ab:cd:01".into(),
                vlan: Some(210),
            }],
        );
        assert_eq!(
            w.arp("192.0.2.15", Some(210)),
            vec![ghost, "00:50:56:ab:cd:01".to_string()]
        );
        w.clear_vmi("ns/db");
        assert_eq!(w.arp("192.0.2.15", Some(210)).len(), 1);
    }
}
