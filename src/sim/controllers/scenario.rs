//! Rehearsal scenarios: the simulated estate (source VMs, nodes, storage), its speed and its
//! faults. Written as TOML (`wavelift sim serve --scenario FILE`) or derived from a wave plan
//! (`--plan FILE`: every planned VM exists as a powered-on source VM with its IPs, MACs,
//! VLANs, disk sizes and the ports its checks use).
//!
//! ```toml
//! seed = 7
//! speed = 50.0                       # simulated seconds per real second
//! nodes = ["sim-node-1", "sim-node-2", "sim-node-3"]
//! storage_classes = ["sim-standard", "sim-fast"]
//! namespaces = ["mig-quickstart"]
//! secrets = [{ namespace = "mig-quickstart", name = "vsphere-creds" }]
//! bandwidth_per_import = "200Mi"     # bytes per simulated second, each import
//! bandwidth_total = "1Gi"            # shared by all imports
//! boot_seconds = 20                  # VMI Pending → Running
//! agent_seconds = 15                 # Running → guest agent connected
//! migration_seconds = 12
//! api_error_rate = 0.05              # 5 % of wavelift's API requests fail …
//! api_error_code = 500               # … with this status: 500 (default), 429, 502, 503, 504
//! vcenter_error_rate = 0.1           # 10 % of vSphere REST requests answer 503
//! api_latency_ms = 5                 # every API answer waits 5 ms
//! watch_drop_seconds = 10            # the server ends every watch after 10 s
//! clock_start = "2026-12-05T21:59:00Z" # the world's clock (default, derived from a plan:
//!                                    # a minute before the first window, 2 precopy
//!                                    # intervals earlier for a wave with warm VMs; else now)
//! node_bridges = ["br-trunk"]       # host bridges bridge-marker advertises on every node
//! bridgeless_nodes = ["sim-node-3"]  # … except these (no bridge: no sandbox on a bridge NAD)
//! node_vlans = { sim-node-2 = [210] } # VLANs a node's trunk carries (unlisted node: all)
//! gateways = [{ ip = "192.0.2.1", vlan = 210 }] # routers answering ARP (a plan: its gateways)
//! vcenter_user = "sim-user"          # the credentials the simulated vCenter and VDDK accept
//! vcenter_password = "sim-password"
//! vcenter_version = "8.0.3"          # the vCenter release: VI/JSON (`/sdk/vim25/…`) from 8.0.1,
//!                                    # releases 8.0.1.0 up to this one; `system?action=hello`
//!                                    # from 8.0.2; "8.0.0" or older: no VI/JSON at all (404)
//! shutdown_seconds = 20              # a guest shutdown (VMware Tools) powers off this much later
//! nfc_per_host = 10                  # disk transfers one ESXi host serves at once (absent:
//!                                    # unlimited); one more fails its importer (see below)
//!
//! [[source_vm]]
//! name = "shop-db-01"
//! uuid = "4207c1b2-5f0e-4c1e-9a7b-0123456789a1"
//! host = "esx-07"                    # the ESXi host it runs on (a plan VM's `host`)
//! power = "on"
//! open_ports = [22, 5432]
//! nics = [{ ip = "192.0.2.15", mac = "00:50:56:ab:cd:01", vlan = 210 }]
//!                                    # a NIC's `network` is its port group (default
//!                                    # "VLAN-<vlan>", untagged "VM Network")
//! guest_agent = true                 # qemu-guest-agent runs in the guest (default true)
//! nic_config = "by-mac"              # by-mac | by-name (config bound to `ens192`: no IP on KubeVirt)
//! os = "linux"                       # linux | windows (no virtio drivers unless virtio_drivers = true)
//! write_rate = "1Mi"                 # bytes the guest writes per simulated second while it runs
//! disks = [{ file = "[ds1] shop-db-01/shop-db-01.vmdk", size = "80Gi" }]
//!                                    # default: one 10 GiB disk `[datastore1] NAME/NAME.vmdk`
//! tools = true                       # VMware Tools runs (guest shutdown, quiesced snapshots)
//! cbt = true                         # changed block tracking on, change IDs ready
//! snapshots = ["pre-patch"]          # snapshots the VM has already (default none)
//!
//! [[fault]]
//! kind = "import-failure"            # import-failure | import-fatal | vddk-image-pull | slow-import
//!                                    # | boot-never | agent-never | migration-failure
//!                                    # | snapshot-failure | cbt-disabled | tools-unavailable
//!                                    # | delta-import-failure | ghost-holder
//!                                    # | conversion-failure (Forklift's virt-v2v conversion fails)
//! vm = "shop-db-01"
//! mode = "once"                      # import-failure, delta-import-failure, snapshot-failure,
//!                                    # conversion-failure: once | always
//!                                    # (| until-retry for import-failure)
//! # factor = 10.0                    # slow-import: N times slower
//!
//! [forklift]                         # the simulated Forklift (MTV) operator
//! installed = true                   # default true; false: no forklift.konveyor.io API, no controller
//! version = "2.12.5"                 # release (default 2.12.5); before "2.10.4" the Plan CRD has
//!                                    # no targetPowerState and the API server prunes it
//! precopy_interval_minutes = 60      # warm precopy interval (Forklift's PRECOPY_INTERVAL)
//! conversion_seconds = 60            # simulated time virt-v2v takes to convert a guest
//!
//! [[rbac_deny]]                      # a permission wavelift's user lacks (missing RBAC):
//! verb = "create"                    # the request answers 403 Forbidden and a
//! group = "kubevirt.io"              # SelfSubjectAccessReview for it `allowed: false`
//! resource = "virtualmachines"       # ("plural" or "plural/subresource"; "*" for any)
//! # namespace = "mig-quickstart"     # only there (default: everywhere)
//! ```
//!
//! The warm-migration side of the world (see [`super::disks`], [`super::vsphere`] and
//! [`super::vim`]):
//! - a running source writes `write_rate` bytes per simulated second to its `disks`, as one
//!   extent per minute of running (and a last, shorter one at power-off);
//! - `tools = false` (or the `tools-unavailable` fault): VMware Tools does not run, so a
//!   guest shutdown is refused (`ToolsUnavailable`, REST 503) and a quiesced snapshot is
//!   taken unquiesced;
//! - `cbt = false` (or the `cbt-disabled` fault): changed block tracking is off and the
//!   disks have no change IDs until a `ReconfigVM_Task` turns it on and the VM is stunned
//!   once (a snapshot create or remove, or a power-on);
//! - `snapshot-failure`: a quiesced `CreateSnapshot_Task` ends in `error` with
//!   `ApplicationQuiesceFault` (`once`: the first quiesced one; `always`: every one); an
//!   unquiesced one succeeds;
//! - `delta-import-failure`: the importer fails at 40 % of a stage after the first of a
//!   multi-stage import and CDI restarts it in place (`once` or `always`).
//! - `ghost-holder`: once the source is powered off, a ghost ([`ghost_mac`]) keeps
//!   answering ARP and ICMP for its IPs on its VLANs.
//!
//! `nfc_per_host`: every disk transfer (a DataVolume's import, or one stage of a warm one)
//! holds one NFC connection to its source VM's ESXi `host` while its importer runs. With
//! this many open on the host, the next importer cannot open its disk: it exits with the
//! NFC limit error and CDI restarts it in place, as with `import-failure` (see
//! [`super::cdi`]); a later attempt succeeds once the host has room. VMs without a `host`
//! are not limited.

use crate::plan::check::CheckKind;
use crate::plan::quantity::Quantity;
use crate::plan::Plan;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceNic {
    pub ip: Option<String>,
    pub mac: String,
    pub vlan: Option<u16>,
    /// The vSphere network (port group) the NIC is on; default `VM Network` untagged,
    /// `VLAN-<n>` on a VLAN (see [`SourceNic::network_name`]).
    #[serde(default)]
    pub network: Option<String>,
}

impl SourceNic {
    /// The name of the port group the NIC is on (what a Forklift NetworkMap's `source.name`
    /// names).
    pub fn network_name(&self) -> String {
        self.network.clone().unwrap_or_else(|| match self.vlan {
            Some(v) => format!("VLAN-{v}"),
            None => "VM Network".to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceVmSpec {
    pub name: String,
    #[serde(default)]
    pub uuid: Option<String>,
    /// The ESXi host the VM runs on: its disks are read through that host's NFC server
    /// (limited by [`Scenario::nfc_per_host`]).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "power_on")]
    pub power: PowerState,
    #[serde(default)]
    pub open_ports: Vec<u16>,
    #[serde(default)]
    pub nics: Vec<SourceNic>,
    /// The guest runs qemu-guest-agent (reports its interfaces and IPs to KubeVirt).
    #[serde(default = "yes")]
    pub guest_agent: bool,
    /// How the guest's static network config finds its NIC.
    #[serde(default)]
    pub nic_config: NicConfig,
    #[serde(default)]
    pub os: GuestOsKind,
    /// The guest has virtio drivers (default: Linux yes, Windows no).
    #[serde(default)]
    pub virtio_drivers: Option<bool>,
    /// Bytes the guest writes to its disks per simulated second while it runs (0: never).
    #[serde(default = "default_write_rate", deserialize_with = "de_bytes")]
    pub write_rate: u64,
    /// The VM's virtual disks, in device order (default: one 10 GiB disk
    /// `[datastore1] NAME/NAME.vmdk`, see [`SourceVmSpec::disk_specs`]).
    #[serde(default)]
    pub disks: Vec<SourceDisk>,
    /// VMware Tools runs in the guest.
    #[serde(default = "yes")]
    pub tools: bool,
    /// Changed block tracking is on and took effect (every disk has a change ID).
    #[serde(default = "yes")]
    pub cbt: bool,
    /// Snapshots the VM has when the rehearsal begins (names, oldest first, a chain).
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// One virtual disk of a source VM.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceDisk {
    /// The base disk's datastore path, `[ds1] web/web.vmdk`.
    pub file: String,
    #[serde(deserialize_with = "de_bytes")]
    pub size: u64,
}

/// The default write rate of a source VM: 1 MiB per simulated second.
fn default_write_rate() -> u64 {
    1 << 20
}

impl SourceVmSpec {
    pub fn has_virtio_drivers(&self) -> bool {
        self.virtio_drivers.unwrap_or(self.os == GuestOsKind::Linux)
    }

    /// The VM's disks: the scenario's, or one 10 GiB disk `[datastore1] NAME/NAME.vmdk`.
    pub fn disk_specs(&self) -> Vec<SourceDisk> {
        if self.disks.is_empty() {
            vec![SourceDisk {
                file: format!("[datastore1] {0}/{0}.vmdk", self.name),
                size: 10 << 30,
            }]
        } else {
            self.disks.clone()
        }
    }
}

/// How a guest's static network config is bound to its NIC.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NicConfig {
    /// Bound to the MAC (NetworkManager with `mac-address=`, Windows by adapter MAC): the
    /// config follows the NIC to KubeVirt when the MAC is kept.
    #[default]
    ByMac,
    /// Bound to an interface name (`ens192` in ifcfg/netplan): on KubeVirt the NIC has
    /// another model and PCI slot, so another name, and the guest comes up without its IP.
    ByName,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum GuestOsKind {
    #[default]
    Linux,
    Windows,
}

fn yes() -> bool {
    true
}

fn power_on() -> PowerState {
    PowerState::On
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The importer exits with an error and CDI restarts it in place (see [`FaultMode`]).
    ImportFailure,
    /// A fatal import error (a checksum mismatch): the DataVolume ends `Failed`.
    ImportFatal,
    /// The VDDK init image cannot be pulled: the importer waits in `PodInitializing`.
    VddkImagePull,
    SlowImport,
    AgentNever,
    /// The VMI never leaves `Scheduling` (no node fits).
    BootNever,
    MigrationFailure,
    /// A quiesced `CreateSnapshot_Task` ends in `error` with `ApplicationQuiesceFault`
    /// (`once`: the first; `always`: every one); unquiesced snapshots succeed.
    SnapshotFailure,
    /// Changed block tracking is off: no change IDs until it is turned on.
    CbtDisabled,
    /// VMware Tools is not running: no guest shutdown, no quiesced snapshot.
    ToolsUnavailable,
    /// The importer fails on a stage after the first of a multi-stage import and CDI
    /// restarts it in place (`once` or `always`).
    DeltaImportFailure,
    /// Once the source is powered off, something else (a clone, an HA restart, a proxy-ARP
    /// router) keeps answering ARP and ICMP for its IPs on its VLANs, with another MAC
    /// ([`ghost_mac`]).
    GhostHolder,
    /// Forklift's virt-v2v conversion of the guest fails (the conversion pod exits with an
    /// error): the VM's `ImageConversion` step gets the error and the VM fails. `once`: the
    /// first conversion of the VM; `always`: every one.
    ConversionFailure,
}

/// The MAC of a `ghost-holder` fault's ghost of `vm`: a VMware OUI address
/// (`00:50:56:3f:…`, the range vCenter leaves to manual MACs) from the name's hash, so
/// never the source's own (vCenter's generated MACs are `00:50:56:80`–`bf`).
pub fn ghost_mac(vm: &str) -> String {
    let h = vm.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("00:50:56:3f:{:02x}:{:02x}", (h >> 8) & 0xff, h & 0xff)
}

/// The MAC a gateway answers ARP with: a VRRP virtual router MAC
/// (`00:00:5e:00:01:<VRID>`, RFC 5798 §7.3), the VRID being the VLAN's low byte (1 when
/// untagged).
pub fn gateway_mac(vlan: Option<u16>) -> String {
    format!("00:00:5e:00:01:{:02x}", vlan.map_or(1, |v| v & 0xff))
}

/// A router interface on a VLAN (a plan network's `gateway`): it answers ARP for `ip`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    pub ip: String,
    #[serde(default)]
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    /// The importer fails once and CDI restarts it (`restartCount` 1); the import succeeds.
    #[default]
    Once,
    /// Every import of the VM fails and is restarted, forever (CDI never gives up).
    Always,
    /// The VM's first DataVolume restarts forever; one created again (a retry) succeeds.
    #[serde(rename = "until-retry")]
    UntilRetry,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    pub vm: String,
    #[serde(default)]
    pub mode: FaultMode,
    #[serde(default)]
    pub factor: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_speed")]
    pub speed: f64,
    #[serde(default = "default_nodes")]
    pub nodes: Vec<String>,
    #[serde(default = "default_storage_classes")]
    pub storage_classes: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    #[serde(default = "default_bw_import", deserialize_with = "de_bytes")]
    pub bandwidth_per_import: u64,
    #[serde(default = "default_bw_total", deserialize_with = "de_bytes")]
    pub bandwidth_total: u64,
    #[serde(default = "default_boot")]
    pub boot_seconds: f64,
    #[serde(default = "default_agent")]
    pub agent_seconds: f64,
    #[serde(default = "default_migration")]
    pub migration_seconds: f64,
    /// Share of Kubernetes API requests (other than the simulated controllers' own)
    /// answered with an error (0.0–1.0).
    #[serde(default)]
    pub api_error_rate: f64,
    /// The status of those errors: 500 InternalError (the default; kube-rs does not retry
    /// it, the engine must), or 429, 502, 503, 504.
    #[serde(default = "default_error_code")]
    pub api_error_code: u16,
    /// Share of vSphere REST requests (login, VM list, power) answered
    /// `503 SERVICE_UNAVAILABLE` (0.0–1.0): a busy or restarting vCenter.
    #[serde(default)]
    pub vcenter_error_rate: f64,
    /// Delay before every API answer, in real milliseconds.
    #[serde(default)]
    pub api_latency_ms: u64,
    /// The server ends every watch after this many real seconds (clients must re-watch).
    #[serde(default)]
    pub watch_drop_seconds: Option<f64>,
    /// The credentials the simulated vCenter (and VDDK) accepts; seeded Secrets carry them.
    #[serde(default = "default_vcenter_user")]
    pub vcenter_user: String,
    #[serde(default = "default_vcenter_password")]
    pub vcenter_password: String,
    /// The vCenter release (`8.0.3`): VI/JSON from 8.0.1 (releases `8.0.1.0` up to this
    /// one), `POST /api/vcenter/system?action=hello` from 8.0.2.
    #[serde(default = "default_vcenter_version")]
    pub vcenter_version: String,
    /// Simulated seconds from a guest shutdown request (VMware Tools) to the power-off.
    #[serde(default = "default_shutdown")]
    pub shutdown_seconds: f64,
    /// Disk transfers (NFC connections) one ESXi host serves at once; one more fails its
    /// importer and CDI restarts it (absent: unlimited).
    #[serde(default)]
    pub nfc_per_host: Option<u32>,
    /// The world's clock when the rehearsal begins (Unix ms; RFC 3339 in a file). A
    /// scenario derived from a plan starts it a minute before the first change window
    /// opens; absent: the wall clock.
    #[serde(default, rename = "clock_start", deserialize_with = "de_time")]
    pub clock_start_ms: Option<i64>,
    /// Host bridges every node has and bridge-marker advertises
    /// (`bridge.network.kubevirt.io/<bridge>`); none when absent.
    #[serde(default)]
    pub node_bridges: Vec<String>,
    /// Per node, the VLANs its trunk carries (a node not listed carries every VLAN): a pod
    /// or VM on a node without its network's VLAN is cut off from it.
    #[serde(default)]
    pub node_vlans: std::collections::BTreeMap<String, Vec<u16>>,
    /// Nodes without any of the `node_bridges` (bridge-marker advertises none there, and a
    /// pod attached to a `bridge` network never gets its sandbox).
    #[serde(default)]
    pub bridgeless_nodes: Vec<String>,
    /// Routers on the VLANs: each answers ARP for its IP (derived from the plan networks'
    /// `gateway`).
    #[serde(default)]
    pub gateways: Vec<GatewaySpec>,
    #[serde(default, rename = "source_vm")]
    pub source_vms: Vec<SourceVmSpec>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// Permissions the user lacks (see [`crate::sim::access`]).
    #[serde(default)]
    pub rbac_deny: Vec<crate::sim::access::AccessRule>,
    /// The simulated Forklift (see [`ForkliftScenario`]).
    #[serde(default)]
    pub forklift: ForkliftScenario,
}

/// `[forklift]`: whether the cluster has Forklift (MTV) installed, which release, and its
/// controller's settings (see [`super::forklift`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForkliftScenario {
    /// The operator is installed: its CRDs are served and its controller runs (default).
    #[serde(default = "yes")]
    pub installed: bool,
    /// The release (`2.12.5`, the default). Before 2.10.4 the Plan CRD has no
    /// `targetPowerState`: the API server prunes it.
    #[serde(default = "default_forklift_version")]
    pub version: String,
    /// Minutes between warm precopies (the controller's `PRECOPY_INTERVAL`, 60 by default:
    /// kubev2v/forklift `pkg/settings/migration.go`).
    #[serde(default = "default_precopy_interval")]
    pub precopy_interval_minutes: f64,
    /// Simulated seconds virt-v2v takes to inspect and convert a guest (beside copying).
    #[serde(default = "default_conversion_seconds")]
    pub conversion_seconds: f64,
}

impl Default for ForkliftScenario {
    fn default() -> Self {
        ForkliftScenario {
            installed: true,
            version: default_forklift_version(),
            precopy_interval_minutes: default_precopy_interval(),
            conversion_seconds: default_conversion_seconds(),
        }
    }
}

impl ForkliftScenario {
    /// The CRDs this installation serves.
    pub fn crds(&self) -> crate::sim::resources::Crds {
        crate::sim::resources::Crds {
            forklift: self.installed.then(|| crate::sim::resources::ForkliftCrds {
                version: parse_version(&self.version)
                    .unwrap_or(crate::sim::resources::FORKLIFT_LATEST),
            }),
        }
    }
}

fn default_forklift_version() -> String {
    let (a, b, c) = crate::sim::resources::FORKLIFT_LATEST;
    format!("{a}.{b}.{c}")
}
fn default_precopy_interval() -> f64 {
    60.0
}
fn default_conversion_seconds() -> f64 {
    60.0
}

fn default_vcenter_user() -> String {
    "sim-user".to_string()
}
fn default_vcenter_password() -> String {
    "sim-password".to_string()
}
fn default_vcenter_version() -> String {
    "8.0.3".to_string()
}
fn default_shutdown() -> f64 {
    20.0
}

fn de_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let s = String::deserialize(d)?;
    let dt: toml::value::Datetime = s.parse().map_err(serde::de::Error::custom)?;
    crate::plan::time::from_datetime(&dt)
        .map(|t| Some(t.unix * 1000))
        .map_err(serde::de::Error::custom)
}

fn default_error_code() -> u16 {
    500
}

fn default_speed() -> f64 {
    50.0
}
fn default_nodes() -> Vec<String> {
    (1..=3).map(|i| format!("sim-node-{i}")).collect()
}
fn default_storage_classes() -> Vec<String> {
    vec!["sim-standard".to_string()]
}
fn default_bw_import() -> u64 {
    200 << 20
}
fn default_bw_total() -> u64 {
    1 << 30
}
fn default_boot() -> f64 {
    20.0
}
fn default_agent() -> f64 {
    15.0
}
fn default_migration() -> f64 {
    12.0
}

fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => Quantity::parse(&s)
            .map(|q| q.bytes)
            .map_err(serde::de::Error::custom),
    }
}

impl Default for Scenario {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|e| panic!("the empty scenario is valid: {e}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid plan ({errors} errors); run `wavelift plan check {path}`")]
    Plan { path: String, errors: usize },
}

/// Precopy rounds a derived scenario's clock leaves room for before a warm wave's window.
pub const PRECOPY_ROUNDS_BEFORE_WINDOW: i64 = 2;

impl Scenario {
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|sp| {
                    let idx = crate::plan::span::LineIndex::new(text);
                    let p = idx.position(text, sp.start);
                    (p.line, p.column)
                })
                .unwrap_or((1, 1));
            ScenarioError::Parse {
                path: format!("{origin}:{line}:{col}"),
                message: e.message().to_string(),
            }
        })?;
        for (key, rate) in [
            ("api_error_rate", s.api_error_rate),
            ("vcenter_error_rate", s.vcenter_error_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ScenarioError::Parse {
                    path: origin.to_string(),
                    message: format!("{key} must be between 0 and 1, found {rate}"),
                });
            }
        }
        if ![429, 500, 502, 503, 504].contains(&s.api_error_code) {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: format!(
                    "api_error_code must be 429, 500, 502, 503 or 504, found {}",
                    s.api_error_code
                ),
            });
        }
        if s.watch_drop_seconds
            .is_some_and(|w| !(w.is_finite() && w > 0.0))
        {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: "watch_drop_seconds must be a positive number".to_string(),
            });
        }
        if !(s.shutdown_seconds.is_finite() && s.shutdown_seconds >= 0.0) {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: format!(
                    "shutdown_seconds must be a number of seconds, found {}",
                    s.shutdown_seconds
                ),
            });
        }
        if let Some(n) = s
            .node_vlans
            .keys()
            .chain(s.bridgeless_nodes.iter())
            .find(|n| !s.nodes.contains(n))
        {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: format!(
                    "node_vlans and bridgeless_nodes name nodes of `nodes`; `{n}` is not one"
                ),
            });
        }
        if let Some(g) = s
            .gateways
            .iter()
            .find(|g| g.ip.parse::<std::net::IpAddr>().is_err())
        {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: format!("gateways: `{}` is not an IP address", g.ip),
            });
        }
        if parse_version(&s.vcenter_version).is_none() {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: format!(
                    "vcenter_version must look like 8.0.3, found `{}`",
                    s.vcenter_version
                ),
            });
        }
        for vm in &s.source_vms {
            if let Some(d) = vm.disks.iter().find(|d| d.size == 0 || d.file.is_empty()) {
                return Err(ScenarioError::Parse {
                    path: origin.to_string(),
                    message: format!(
                        "source VM `{}`: a disk needs a file and a size above 0 (`{}`)",
                        vm.name, d.file
                    ),
                });
            }
        }
        if parse_version(&s.forklift.version).is_none() {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: format!(
                    "forklift.version must look like 2.10.4, found `{}`",
                    s.forklift.version
                ),
            });
        }
        for (key, v) in [
            (
                "forklift.precopy_interval_minutes",
                s.forklift.precopy_interval_minutes,
            ),
            ("forklift.conversion_seconds", s.forklift.conversion_seconds),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ScenarioError::Parse {
                    path: origin.to_string(),
                    message: format!("{key} must be a number of at least 0, found {v}"),
                });
            }
        }
        if s.nfc_per_host == Some(0) {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: "nfc_per_host must be at least 1 (leave it out: unlimited)".to_string(),
            });
        }
        if !(s.speed.is_finite() && s.speed > 0.0) {
            return Err(ScenarioError::Parse {
                path: origin.to_string(),
                message: format!("speed must be a positive number, found {}", s.speed),
            });
        }
        Ok(s)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            crate::fsio::read_bounded_string(path, crate::fsio::SCENARIO_MAX, "the scenario")
                .map_err(|e| ScenarioError::Read {
                    path: path.display().to_string(),
                    source: e.into_io(),
                })?;
        Scenario::from_toml(&text, &path.display().to_string())
    }

    /// The default scenario for a plan: its namespace, credentials Secret and StorageClasses
    /// exist, and every planned VM is a powered-on source VM with the ports its checks use.
    /// A derived scenario: every planned VM a running source VM, with the plan's disks,
    /// networks and checks' ports.
    pub fn from_plan(plan: &Plan) -> Scenario {
        let mut s = Scenario::default();
        s.namespaces.push(plan.meta.namespace.value.clone());
        // The rehearsal's night begins a minute before the first change window opens, and
        // early enough for a warm wave's precopy rounds before its window:
        // `PRECOPY_ROUNDS_BEFORE_WINDOW` intervals earlier.
        s.clock_start_ms = plan
            .waves
            .iter()
            .filter_map(|w| {
                let window = w.window.as_ref()?;
                let warm = plan
                    .vms_in_wave(&w.name)
                    .any(|v| plan.migration_of(v) == crate::plan::Migration::Warm);
                let precopy = if warm {
                    w.precopy_interval.as_millis() as i64 * PRECOPY_ROUNDS_BEFORE_WINDOW
                } else {
                    0
                };
                Some(window.start.unix * 1000 - precopy - 60_000)
            })
            .min();
        // The nodes carry every bridge the plan's networks name (bridge-marker runs).
        s.node_bridges = plan
            .networks
            .iter()
            .filter_map(|n| n.bridge.as_ref().map(|b| b.value.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // Each network's gateway answers ARP on its VLAN.
        s.gateways = plan
            .networks
            .iter()
            .filter_map(|n| {
                n.gateway.as_ref().map(|g| GatewaySpec {
                    ip: g.value.to_string(),
                    vlan: n.vlan.as_ref().map(|v| v.value),
                })
            })
            .collect();
        if let Some(sec) = &plan.source.credentials_secret {
            s.secrets.push(SecretRef {
                namespace: plan.meta.namespace.value.clone(),
                name: sec.value.clone(),
            });
        }
        let mut classes: Vec<String> = plan
            .defaults
            .storage_class
            .iter()
            .map(|c| c.value.clone())
            .chain(plan.vms.iter().flat_map(|v| {
                v.disks
                    .iter()
                    .filter_map(|d| d.storage_class.as_ref().map(|c| c.value.clone()))
            }))
            .collect();
        classes.sort();
        classes.dedup();
        for c in classes {
            if !s.storage_classes.contains(&c) {
                s.storage_classes.push(c);
            }
        }
        for vm in &plan.vms {
            let mut ports: Vec<u16> = vec![22];
            for c in plan.checks_for(vm) {
                match c.kind {
                    CheckKind::Tcp { port } => ports.push(port),
                    CheckKind::Http { url } => ports.push(url_port(&url)),
                    CheckKind::Dns { .. } => ports.push(53),
                    _ => {}
                }
            }
            ports.sort_unstable();
            ports.dedup();
            let guest = plan.guest_of(vm);
            s.source_vms.push(SourceVmSpec {
                name: vm.name.value.clone(),
                uuid: vm.source_id.as_ref().map(|u| u.value.clone()),
                host: vm.host.as_ref().map(|h| h.value.clone()),
                power: PowerState::On,
                open_ports: ports,
                // The rehearsal's guests are what the plan says they are: healthy, bound
                // to their MACs, with an agent only if the plan says so.
                guest_agent: guest.guest_agent,
                nic_config: NicConfig::ByMac,
                os: if guest.os == Some(crate::plan::GuestOs::Windows) {
                    GuestOsKind::Windows
                } else {
                    GuestOsKind::Linux
                },
                virtio_drivers: None,
                write_rate: default_write_rate(),
                // The plan's disks, as vCenter has them (a disk without a backing file in
                // the plan, an http one, still exists in the source).
                disks: vm
                    .disks
                    .iter()
                    .enumerate()
                    .map(|(i, d)| SourceDisk {
                        file: d.backing_file.as_ref().map_or_else(
                            || {
                                let n = vm.name.as_str();
                                if i == 0 {
                                    format!("[datastore1] {n}/{n}.vmdk")
                                } else {
                                    format!("[datastore1] {n}/{n}_{i}.vmdk")
                                }
                            },
                            |b| b.value.clone(),
                        ),
                        size: d.size.value.bytes.max(1),
                    })
                    .collect(),
                tools: true,
                cbt: true,
                snapshots: Vec::new(),
                nics: vm
                    .nics
                    .iter()
                    .map(|n| SourceNic {
                        ip: n.ip.as_ref().map(|ip| ip.value.to_string()),
                        mac: n.mac.value.to_string(),
                        // The source VM sits on its network's VLAN whatever the target model.
                        vlan: plan
                            .network(n.network.as_str())
                            .and_then(|net| net.vlan.as_ref().map(|v| v.value)),
                        network: None,
                    })
                    .collect(),
            });
        }
        s
    }
}

impl Scenario {
    /// Whether `node`'s trunk carries `vlan` (untagged traffic always reaches a node).
    pub fn node_carries(&self, node: &str, vlan: Option<u16>) -> bool {
        match (self.node_vlans.get(node), vlan) {
            (Some(vlans), Some(v)) => vlans.contains(&v),
            _ => true,
        }
    }

    /// Whether `node` has none of the host bridges.
    pub fn is_bridgeless(&self, node: &str) -> bool {
        self.bridgeless_nodes.iter().any(|n| n == node)
    }

    /// The ESXi host source VM `vm` runs on, if the scenario says.
    pub fn host_of(&self, vm: &str) -> Option<&str> {
        self.source_vms
            .iter()
            .find(|v| v.name == vm)
            .and_then(|v| v.host.as_deref())
    }

    /// Whether `vm` has a fault of this kind.
    pub fn has_fault(&self, kind: FaultKind, vm: &str) -> bool {
        self.faults.iter().any(|f| f.kind == kind && f.vm == vm)
    }
}

/// `8.0.3` (or `8.0.3.0`) as numbers.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.trim().split('.').map(|p| p.parse::<u32>().ok());
    let v = (it.next()??, it.next()??, it.next().flatten().unwrap_or(0));
    match it.next() {
        None | Some(Some(0)) => Some(v),
        _ => None,
    }
}

/// The port an http(s) check URL connects to.
pub fn url_port(url: &str) -> u16 {
    let https = url.starts_with("https://");
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let port = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once("]:").and_then(|(_, p)| p.parse().ok())
    } else {
        authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    };
    port.unwrap_or(if https { 443 } else { 80 })
}

impl Scenario {
    /// The Kubernetes objects a scenario needs at start: its namespaces, Secrets and
    /// StorageClasses (nodes are seeded by the API server).
    pub fn seed_objects(&self) -> Vec<serde_json::Value> {
        use serde_json::json;
        let mut out = Vec::new();
        for ns in &self.namespaces {
            out.push(
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } }),
            );
        }
        for s in &self.secrets {
            // Simulated credentials: the sim's vSphere endpoint accepts them; nothing real.
            out.push(json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": { "name": s.name, "namespace": s.namespace },
                "data": {
                    "accessKeyId": crate::sim::store::base64(self.vcenter_user.as_bytes()),
                    "secretKey": crate::sim::store::base64(self.vcenter_password.as_bytes()),
                }
            }));
        }
        // The API server seeds `sim-standard` as the default class itself.
        for sc in self.storage_classes.iter().filter(|c| *c != "sim-standard") {
            out.push(json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": { "name": sc },
                "provisioner": "sim.wavelift.io/block",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": true
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
seed = 7
speed = 50.0
bandwidth_per_import = "200Mi"
[[source_vm]]
name = "shop-db-01"
open_ports = [22, 5432]
nics = [{ ip = "192.0.2.15", mac = "00:50:56:ab:cd:01", vlan = 210 }]
[[fault]]
kind = "import-failure"
vm = "shop-db-01"
mode = "always"
"#;
        let s = Scenario::from_toml(text, "s.toml").expect("valid");
        assert_eq!(s.bandwidth_per_import, 200 << 20);
        assert_eq!(s.source_vms[0].power, PowerState::On);
        assert_eq!(s.faults[0].mode, FaultMode::Always);
        assert_eq!(s.nodes.len(), 3);
        assert!(s.rbac_deny.is_empty());
    }

    #[test]
    fn warm_keys_and_faults() {
        let text = r#"
vcenter_version = "8.0.1"
shutdown_seconds = 45
[[source_vm]]
name = "web"
disks = [{ file = "[ds1] web/web.vmdk", size = "40Gi" }]
tools = false
cbt = false
snapshots = ["pre-patch"]
[[fault]]
kind = "snapshot-failure"
vm = "web"
mode = "always"
[[fault]]
kind = "delta-import-failure"
vm = "web"
[[fault]]
kind = "cbt-disabled"
vm = "web"
[[fault]]
kind = "tools-unavailable"
vm = "web"
"#;
        let s = Scenario::from_toml(text, "s.toml").expect("valid");
        assert_eq!(s.vcenter_version, "8.0.1");
        assert_eq!(s.shutdown_seconds, 45.0);
        let web = &s.source_vms[0];
        assert_eq!(web.disk_specs()[0].size, 40 << 30);
        assert!(!web.tools && !web.cbt);
        assert_eq!(web.snapshots, vec!["pre-patch"]);
        assert_eq!(s.faults[0].kind, FaultKind::SnapshotFailure);
        assert_eq!(s.faults[1].kind, FaultKind::DeltaImportFailure);
        // Defaults: one 10 GiB disk named after the VM, Tools and CBT on, vCenter 8.0.3.
        let d = Scenario::from_toml("[[source_vm]]\nname = \"db\"\n", "s.toml").expect("valid");
        assert_eq!(d.vcenter_version, "8.0.3");
        assert_eq!(d.shutdown_seconds, 20.0);
        let db = &d.source_vms[0];
        assert!(db.tools && db.cbt && db.snapshots.is_empty());
        assert_eq!(db.disk_specs()[0].file, "[datastore1] db/db.vmdk");
        assert_eq!(db.disk_specs()[0].size, 10 << 30);
        for bad in [
            "vcenter_version = \"eight\"\n",
            "shutdown_seconds = -1\n",
            "[[source_vm]]\nname = \"x\"\ndisks = [{ file = \"[ds1] x/x.vmdk\", size = 0 }]\n",
        ] {
            assert!(Scenario::from_toml(bad, "s.toml").is_err(), "{bad}");
        }
    }

    #[test]
    fn rbac_denials() {
        let text = r#"
[[rbac_deny]]
verb = "create"
group = "kubevirt.io"
resource = "virtualmachines"
[[rbac_deny]]
verb = "update"
group = "subresources.kubevirt.io"
resource = "virtualmachines/start"
namespace = "mig"
"#;
        let s = Scenario::from_toml(text, "s.toml").expect("valid");
        assert_eq!(
            s.rbac_deny[0],
            crate::sim::access::AccessRule::new("create", "kubevirt.io", "virtualmachines")
        );
        assert_eq!(s.rbac_deny[1].namespace.as_deref(), Some("mig"));
        let e = Scenario::from_toml("[[rbac_deny]]\nverb = \"get\"\n", "s.toml")
            .expect_err("resource missing");
        assert!(e.to_string().contains("resource"), "{e}");
    }

    #[test]
    fn bad_scenarios_name_the_place() {
        let e = Scenario::from_toml("speeed = 3\n", "s.toml").expect_err("unknown key");
        assert!(e.to_string().starts_with("s.toml:1:1"), "{e}");
        let e = Scenario::from_toml("speed = -1.0\n", "s.toml").expect_err("negative speed");
        assert!(e.to_string().contains("positive"), "{e}");
    }

    #[test]
    fn derived_from_the_quickstart_plan() {
        let c = crate::plan::check_file(Path::new("plans/quickstart.toml")).expect("read");
        let s = Scenario::from_plan(&c.plan.expect("valid"));
        assert_eq!(s.source_vms.len(), 3);
        let db = &s.source_vms[0];
        assert_eq!(db.nics[0].vlan, Some(210));
        assert!(db.open_ports.contains(&5432));
        let web = &s.source_vms[2];
        assert!(web.open_ports.contains(&80) && web.open_ports.contains(&443));
        // The source's disks are the plan's.
        assert_eq!(db.disks.len(), 1);
        assert_eq!(db.disks[0].file, "[ds1] shop-db-01/shop-db-01.vmdk");
        assert_eq!(db.disks[0].size, 80 << 30);
        assert_eq!(s.namespaces, vec!["mig-quickstart"]);
        assert!(s.storage_classes.contains(&"sim-standard".to_string()));
        assert_eq!(
            s.gateways,
            vec![GatewaySpec {
                ip: "192.0.2.1".into(),
                vlan: Some(210)
            }]
        );
    }

    #[test]
    fn node_vlans_bridgeless_nodes_gateways_and_ghosts() {
        let text = r#"
bridgeless_nodes = ["sim-node-3"]
node_vlans = { sim-node-2 = [210, 211] }
gateways = [{ ip = "192.0.2.1", vlan = 210 }]
[[fault]]
kind = "ghost-holder"
vm = "web"
"#;
        let s = Scenario::from_toml(text, "s.toml").expect("valid");
        assert!(s.is_bridgeless("sim-node-3") && !s.is_bridgeless("sim-node-1"));
        assert!(s.node_carries("sim-node-1", Some(999)));
        assert!(s.node_carries("sim-node-2", Some(211)));
        assert!(!s.node_carries("sim-node-2", Some(212)));
        assert!(s.node_carries("sim-node-2", None));
        assert!(s.has_fault(FaultKind::GhostHolder, "web"));
        assert_eq!(gateway_mac(Some(210)), "00:00:5e:00:01:d2");
        assert!(ghost_mac("web").starts_with("00:50:56:3f:"));
        assert_ne!(ghost_mac("web"), ghost_mac("db"));
        for bad in [
            "bridgeless_nodes = [\"nope\"]\n",
            "node_vlans = { nope = [1] }\n",
            "gateways = [{ ip = \"x\" }]\n",
            "gateways = [{ ip = \"192.0.2.1\", vlun = 3 }]\n",
        ] {
            assert!(Scenario::from_toml(bad, "s.toml").is_err(), "{bad}");
        }
    }

    #[test]
    fn source_host_and_nfc_limit() {
        let text = "nfc_per_host = 2\n[[source_vm]]\nname = \"db\"\nhost = \"esx-01\"\n[[source_vm]]\nname = \"web\"\n";
        let s = Scenario::from_toml(text, "s.toml").expect("valid");
        assert_eq!(s.nfc_per_host, Some(2));
        assert_eq!(s.host_of("db"), Some("esx-01"));
        assert_eq!(s.host_of("web"), None);
        assert_eq!(Scenario::default().nfc_per_host, None, "absent: unlimited");
        let e = Scenario::from_toml("nfc_per_host = 0\n", "s.toml").expect_err("zero");
        assert!(e.to_string().contains("nfc_per_host"), "{e}");
    }

    #[test]
    fn url_ports() {
        assert_eq!(url_port("https://{ip}/health"), 443);
        assert_eq!(url_port("http://{ip}:8080/"), 8080);
        assert_eq!(url_port("http://[2001:db8::1]:81/"), 81);
    }
}
