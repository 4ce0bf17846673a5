//! The typed wave plan. Values that diagnostics point at keep their [`Spanned`] location.

use super::mac::Mac;
use super::quantity::Quantity;
use super::span::{Span, Spanned};
use super::time::Timestamp;
use crate::plan::check::{CheckKind, CheckSpec};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkModel {
    /// Keep IP, MAC and VLAN: bridge binding on a multus network carrying the VLAN.
    L2,
    /// Pod network with masquerade binding: the VM gets a new IP.
    L3,
}

impl NetworkModel {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkModel::L2 => "l2",
            NetworkModel::L3 => "l3",
        }
    }
}

/// What wavelift does with network policy for migrated VMs (`[plan] policy`, README
/// "Network policy after the move").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyMode {
    /// No policy (the default).
    #[default]
    Off,
    /// Draft each VM's policy from the firewall exports (shown in the TUI, written by
    /// `wavelift policy draft`); nothing is applied.
    Draft,
    /// After a VM is Verified, apply its drafted policy, wait `policy_settle`, and run its
    /// checks again; a check that passed before and fails now reverts the policy.
    Apply,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Off => "off",
            PolicyMode::Draft => "draft",
            PolicyMode::Apply => "apply",
        }
    }
}

/// Who copies the disks and creates the VirtualMachines (README, "Backends: CDI or Forklift").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// wavelift drives CDI DataVolumes and KubeVirt VirtualMachines itself.
    #[default]
    Cdi,
    /// Forklift (MTV) copies and converts (virt-v2v) from wavelift-written Plans and
    /// Migrations; wavelift keeps waves, windows, the guard, checks and reports.
    Forklift,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cdi => "cdi",
            Backend::Forklift => "forklift",
        }
    }
}

/// Forklift's documented tested Plan size (not an API limit).
pub const DEFAULT_FORKLIFT_PLAN_SIZE: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// CDI `vddk` import from vCenter.
    Vsphere,
    /// CDI `http` import of disk images by URL.
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOff {
    /// wavelift powers the source VM off through the vSphere Automation REST API.
    VsphereApi,
    /// The operator powers it off and confirms.
    Manual,
}

/// How a VM's disks move (see the README, "Cold and warm migration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Migration {
    /// Power off, then import every disk whole, then boot: downtime is the full copy.
    #[default]
    Cold,
    /// Copy while the source runs, in stages of vSphere snapshots with CBT (CDI
    /// checkpoints); at cutover power off and copy only the last delta.
    Warm,
}

impl Migration {
    pub fn as_str(self) -> &'static str {
        match self {
            Migration::Cold => "cold",
            Migration::Warm => "warm",
        }
    }
}

/// How `power_off = "vsphere-api"` stops the source VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shutdown {
    /// Ask VMware Tools to shut the guest down; fail by name if it is not off in time.
    Guest,
    /// Ask the guest, and stop the VM hard if it is not off within `shutdown_timeout`
    /// (or has no VMware Tools).
    #[default]
    GuestThenHard,
    /// Stop it hard at once (a pulled power cord: the guest's file systems are not synced).
    Hard,
}

impl Shutdown {
    pub fn as_str(self) -> &'static str {
        match self {
            Shutdown::Guest => "guest",
            Shutdown::GuestThenHard => "guest-then-hard",
            Shutdown::Hard => "hard",
        }
    }
}

/// Where connectivity checks run from: the operator's workstation, or probe pods on the VMs'
/// VLANs (the duplicate-IP guard by ARP, ip/mac-preserved by ARP, icmp/tcp from the
/// network's `probe_ip`, and the per-node L2 proof in preflight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksFrom {
    #[default]
    Workstation,
    /// Probe pods on the VMs' networks (`wavelift probe`).
    Cluster,
}

/// Whether a node without the VLAN stops the wave (`required`) or only keeps VMs off it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L2Path {
    #[default]
    Warn,
    Required,
}

/// How a plan network's VLAN reaches the VMs. (`calico-l2` was withdrawn: Calico's CNI has
/// no VLAN field; `plan check` answers it with `unsupported-provider`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Linux bridge CNI with `vlan`, `preserveDefaultVlan: false`, `"ipam": {}`.
    Bridge,
    /// OVN-Kubernetes localnet topology with `vlanID`.
    OvnLocalnet,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Bridge => "bridge",
            Provider::OvnLocalnet => "ovn-localnet",
        }
    }
}

/// How the guest boots: the source VM's firmware (RVTools vInfo `Firmware`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Efi,
    /// UEFI with Secure Boot (KubeVirt needs SMM for it).
    EfiSecure,
}

/// The bus the guest's disks attach to. `virtio` needs virtio drivers in the guest (Linux
/// has them; Windows needs them installed or injected); `sata` boots anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBus {
    Virtio,
    Sata,
    Scsi,
}

impl DiskBus {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskBus::Virtio => "virtio",
            DiskBus::Sata => "sata",
            DiskBus::Scsi => "scsi",
        }
    }
}

/// The emulated NIC. A guest whose network config is bound to an interface name loses it
/// when the model (and with it the name or PCI slot) changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicModel {
    Virtio,
    E1000e,
}

impl NicModel {
    pub fn as_str(self) -> &'static str {
        match self {
            NicModel::Virtio => "virtio",
            NicModel::E1000e => "e1000e",
        }
    }
}

/// The guest operating system family (RVTools vInfo OS columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestOs {
    Linux,
    Windows,
    Other,
}

/// What the KubeVirt VM must offer the guest, and what the guest offers back: the VM's own
/// keys, else `[defaults]`, else the built-in defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    /// qemu-guest-agent runs in the guest. Most VMware guests run VMware Tools instead:
    /// without an agent, Running is judged by the VMI phase and the network checks, and
    /// `ip-preserved` / `mac-preserved` are skipped.
    pub guest_agent: bool,
    pub firmware: Firmware,
    pub disk_bus: DiskBus,
    pub os: Option<GuestOs>,
}

#[derive(Debug, Clone)]
pub struct PlanMeta {
    pub name: Spanned<String>,
    pub namespace: Spanned<String>,
    pub context: Option<String>,
    pub network_model: NetworkModel,
    /// Resolver used by `dns:` checks (`IP` or `IP:PORT`); the system resolver when absent.
    pub dns_server: Option<Spanned<String>>,
    pub checks_from: Spanned<ChecksFrom>,
    /// An image holding the wavelift binary, for probe pods.
    pub probe_image: Option<Spanned<String>>,
    /// Import throughput assumed per import until a run measures one (bytes per second).
    pub import_throughput: Option<Spanned<u64>>,
    /// `backend` (default `cdi`).
    pub backend: Spanned<Backend>,
    /// `forklift_provider`: an existing Forklift source Provider (in the plan's namespace)
    /// to use instead of the one wavelift writes.
    pub forklift_provider: Option<Spanned<String>>,
    /// `forklift_plan_size`: the most VMs in one Forklift Plan (default 500).
    pub forklift_plan_size: u32,
    /// `policy` (default `off`).
    pub policy: Spanned<PolicyMode>,
    /// `policy_sources`: firewall exports (files or directories, relative to the plan file)
    /// the VMs' policies are drafted from. Required by `policy = "draft" | "apply"`.
    pub policy_sources: Vec<Spanned<String>>,
    /// `probe_sources`: CIDRs of the operator's workstation(s), admitted by a separate rule
    /// of every drafted policy so that workstation checks keep working. Required by
    /// `policy = "apply"` unless `checks_from = "cluster"` (then the networks' `probe_ip`s).
    pub probe_sources: Vec<Spanned<IpNet>>,
    /// `policy_settle`: how long after applying a policy the checks run again (default
    /// 10 s: real clusters take time to program rules).
    pub policy_settle: Duration,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub kind: SourceKind,
    pub url: Option<Spanned<String>>,
    pub credentials_secret: Option<Spanned<String>>,
    pub thumbprint: Option<Spanned<String>>,
    pub vddk_init_image: Option<Spanned<String>>,
    pub power_off: PowerOff,
    /// How the API power-off stops the guest (default `guest-then-hard`).
    pub shutdown: Shutdown,
    /// How long a guest shutdown may take before it counts as failed (or, with
    /// `guest-then-hard`, the VM is stopped hard). Default 5 minutes.
    pub shutdown_timeout: Duration,
    /// Warm migration may turn CBT on for VMs that have it off (`ReconfigVM`).
    pub enable_cbt: bool,
    /// A snapshot whose quiescing failed is retried once unquiesced (crash-consistent)
    /// instead of failing the VM.
    pub allow_unquiesced: bool,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub storage_class: Option<Spanned<String>>,
    pub access_mode: Option<Spanned<String>>,
    pub volume_mode: Option<Spanned<String>>,
    pub checks: Vec<Spanned<CheckSpec>>,
    pub check_timeout: Duration,
    pub check_retries: u32,
    /// A disk fails after CDI restarted its importer this many times (real CDI never marks
    /// a DataVolume `Failed` for a VDDK error: it restarts the importer in place).
    pub import_restart_limit: u32,
    /// A disk fails after this long without import progress (also while `ImportScheduled`;
    /// never while a multi-stage import is `Paused` between checkpoints).
    pub import_stall_timeout: Duration,
    pub guest_agent: Option<Spanned<bool>>,
    pub firmware: Option<Spanned<Firmware>>,
    pub disk_bus: Option<Spanned<DiskBus>>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            storage_class: None,
            access_mode: None,
            volume_mode: None,
            checks: Vec::new(),
            check_timeout: Duration::from_secs(2),
            check_retries: 2,
            import_restart_limit: 3,
            import_stall_timeout: Duration::from_secs(15 * 60),
            guest_agent: None,
            firmware: None,
            disk_bus: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Network {
    pub name: Spanned<String>,
    pub vlan: Option<Spanned<u16>>,
    pub provider: Spanned<Provider>,
    /// Linux bridge on the nodes (provider `bridge`).
    pub bridge: Option<Spanned<String>>,
    /// OVN physical network name (provider `ovn-localnet`), written as the NAD's
    /// `physicalNetworkName`, which ovn-kubernetes honours from v1.1.0 on. Absent: the
    /// localnet maps by the network name (the CNI `name`), which every version does.
    pub physical_network: Option<Spanned<String>>,
    pub cidr: Option<Spanned<IpNet>>,
    pub gateway: Option<Spanned<IpAddr>>,
    pub mtu: Option<u32>,
    pub owner: Option<String>,
    /// Provider `bridge`: the NAD requests the node resource
    /// `bridge.network.kubevirt.io/<bridge>` that bridge-marker advertises, so VMs are
    /// scheduled only on nodes with the bridge, and preflight checks every node has it
    /// (default true). `false`: no resource request; nothing keeps a VM off a node without
    /// the bridge.
    pub bridge_marker: bool,
    /// A spare address on the network for probes that need one (icmp, tcp from a pod).
    pub probe_ip: Option<Spanned<IpAddr>>,
    pub l2_path: L2Path,
    /// What the per-node L2 proof ARPs for (default: the gateway).
    pub l2_probe_target: Option<Spanned<IpAddr>>,
    /// The vSphere port group (name, or id such as `network-12`) this network carries, for
    /// Forklift's NetworkMap (`plan init` fills it from RVTools vNetwork).
    pub source_network: Option<Spanned<String>>,
    /// `multi_network_policy`: the MultiNetworkPolicy implementation that enforces policy on
    /// this network's nodes (e.g. `multi-networkpolicy-iptables`). `policy = "apply"` on a
    /// `bridge` network is refused without it: Linux-bridge attachments are not enforced by
    /// default, and a policy nobody enforces is false comfort.
    pub multi_network_policy: Option<Spanned<String>>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub start: Spanned<Timestamp>,
    pub end: Spanned<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Wave {
    pub name: Spanned<String>,
    pub window: Option<Window>,
    pub max_parallel_imports: u32,
    pub max_parallel_cutovers: u32,
    /// Concurrent disk transfers (DataVolumes, warm stages included) on one ESXi host.
    pub max_imports_per_host: u32,
    /// Concurrent disk transfers reading one datastore.
    pub max_imports_per_datastore: u32,
    /// Where `max_imports_per_host` / `max_imports_per_datastore` were written, if they were
    /// (the Forklift backend cannot apply them).
    pub import_limits_span: Option<Span>,
    /// The wave's migration type; a VM may override it.
    pub migration: Option<Spanned<Migration>>,
    /// Warm: time between precopy rounds (default 1 hour, as Forklift's).
    pub precopy_interval: Duration,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Nic {
    pub network: Spanned<String>,
    pub ip: Option<Spanned<IpAddr>>,
    pub mac: Spanned<Mac>,
    /// The emulated NIC (default `virtio`).
    pub model: Option<Spanned<NicModel>>,
    pub span: Span,
}

impl Disk {
    /// The datastore of a vSphere disk: `ds1` of `[ds1] vm/vm.vmdk`.
    pub fn datastore(&self) -> Option<&str> {
        let b = self.backing_file.as_ref()?.value.trim_start();
        let rest = b.strip_prefix('[')?;
        let end = rest.find(']')?;
        Some(rest[..end].trim()).filter(|d| !d.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct Disk {
    /// vSphere datastore path, `[ds1] vm/vm.vmdk` (vsphere sources).
    pub backing_file: Option<Spanned<String>>,
    /// Image URL (http sources).
    pub url: Option<Spanned<String>>,
    pub size: Spanned<Quantity>,
    pub storage_class: Option<Spanned<String>>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Vm {
    pub name: Spanned<String>,
    pub wave: Spanned<String>,
    pub source_id: Option<Spanned<String>>,
    pub cpu: u32,
    pub memory: Spanned<Quantity>,
    /// Per-VM override of `[plan] network_model`.
    pub network_model: Option<Spanned<NetworkModel>>,
    pub nics: Vec<Nic>,
    pub disks: Vec<Disk>,
    /// The VM's own checks; the effective list adds `[defaults] checks` (see [`Plan::checks_for`]).
    pub checks: Vec<Spanned<CheckSpec>>,
    pub after: Vec<Spanned<String>>,
    pub owner: Option<String>,
    /// The ESXi host the source VM runs on (RVTools vInfo `Host`): imports are limited per
    /// host (`max_imports_per_host`).
    pub host: Option<Spanned<String>>,
    pub guest_agent: Option<Spanned<bool>>,
    pub firmware: Option<Spanned<Firmware>>,
    pub disk_bus: Option<Spanned<DiskBus>>,
    pub os: Option<Spanned<GuestOs>>,
    /// The VM's own cutover time: its power-off does not start before it. It lies inside
    /// its wave's window (which still gates the cutover, and its closing still postpones).
    pub cutover: Option<Spanned<Timestamp>>,
    /// Per-VM override of the wave's `migration`.
    pub migration: Option<Spanned<Migration>>,
    pub span: Span,
}

/// A whole, validated wave plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub meta: PlanMeta,
    pub source: Source,
    pub defaults: Defaults,
    pub networks: Vec<Network>,
    pub waves: Vec<Wave>,
    pub vms: Vec<Vm>,
}

impl Plan {
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| *n.name == name)
    }

    pub fn wave(&self, name: &str) -> Option<&Wave> {
        self.waves.iter().find(|w| *w.name == name)
    }

    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| *v.name == name)
    }

    pub fn vms_in_wave<'a>(&'a self, wave: &'a str) -> impl Iterator<Item = &'a Vm> + 'a {
        self.vms.iter().filter(move |v| *v.wave == wave)
    }

    /// The guest as planned: the VM's keys, else `[defaults]`, else no agent, BIOS, virtio.
    pub fn guest_of(&self, vm: &Vm) -> Guest {
        let d = &self.defaults;
        Guest {
            guest_agent: vm
                .guest_agent
                .as_ref()
                .or(d.guest_agent.as_ref())
                .is_some_and(|a| a.value),
            firmware: vm
                .firmware
                .as_ref()
                .or(d.firmware.as_ref())
                .map_or(Firmware::Bios, |f| f.value),
            disk_bus: vm
                .disk_bus
                .as_ref()
                .or(d.disk_bus.as_ref())
                .map_or(DiskBus::Virtio, |b| b.value),
            os: vm.os.as_ref().map(|o| o.value),
        }
    }

    /// Import throughput assumed per import (bytes per second): `[plan] import_throughput`,
    /// else 150 MiB/s.
    pub fn import_rate(&self) -> f64 {
        self.meta
            .import_throughput
            .as_ref()
            .map_or(super::estimate::ASSUMED_IMPORT_BYTES_PER_SEC, |t| {
                t.value as f64
            })
    }

    /// The VM's migration type: its own `migration`, else its wave's, else cold.
    pub fn migration_of(&self, vm: &Vm) -> Migration {
        vm.migration
            .as_ref()
            .or_else(|| self.wave(&vm.wave).and_then(|w| w.migration.as_ref()))
            .map_or(Migration::Cold, |m| m.value)
    }

    pub fn model_of(&self, vm: &Vm) -> NetworkModel {
        vm.network_model
            .as_ref()
            .map(|m| m.value)
            .unwrap_or(self.meta.network_model)
    }

    /// Defaults first, then the VM's own checks; a VM check replaces a default of the same kind
    /// and target. `ip-preserved` and `mac-preserved` defaults do not apply to L3 VMs (they get
    /// a new address on the pod network); written on an L3 VM itself, `ip-preserved` is an error.
    pub fn checks_for(&self, vm: &Vm) -> Vec<CheckSpec> {
        let l3 = self.model_of(vm) == NetworkModel::L3;
        let mut out: Vec<CheckSpec> = self
            .defaults
            .checks
            .iter()
            .filter(|d| !vm.checks.iter().any(|c| c.kind == d.kind))
            .filter(|d| !(l3 && matches!(d.kind, CheckKind::IpPreserved | CheckKind::MacPreserved)))
            .map(|c| c.value.clone())
            .collect();
        out.extend(vm.checks.iter().map(|c| c.value.clone()));
        out
    }
}
