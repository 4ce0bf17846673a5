//! The simulated vCenter's model of one source VM beyond its power state: disks and what
//! the guest wrote to them ([`super::disks`]), snapshots, changed block tracking (CBT),
//! VMware Tools, tasks and a guest shutdown under way.
//!
//! Everything is state advanced lazily to "now" ([`VmEntry::advance`]): a task's effect
//! (a snapshot taken, CBT turned on, a power-off) happens at its simulated end time, in
//! time order with the guest's writes, so nothing runs in the background and a test that
//! drives the clock fast sees the same history as a slow one.
//!
//! Behaviour modelled on vSphere (read in govmomi's `simulator/virtual_machine.go`
//! `CreateSnapshotExTask`/`ShutdownGuest`, `simulator/snapshot.go` `RemoveSnapshotTask`,
//! `simulator/task.go` `CreateTask`, and `object/virtual_machine.go` `FindSnapshot`):
//! - tasks of one VM run one at a time; a later one is `queued` until the earlier ends;
//!   durations (simulated seconds): [`CREATE_SNAPSHOT_SECONDS`] (+[`QUIESCE_SECONDS`] when
//!   the guest is quiesced), [`REMOVE_SNAPSHOT_SECONDS`], [`RECONFIGURE_SECONDS`],
//!   [`POWER_SECONDS`];
//! - snapshots form a tree (a new one is a child of the current one); removing one
//!   re-parents its children (`removeChildren: false`); while any exists the VM runs on a
//!   delta disk (`NAME-000001.vmdk`), with none on its base disk again;
//! - a snapshot's config is the VM's as of the instant it was taken: its disks name the
//!   files the VM wrote to then (the base for the first snapshot) with their change IDs;
//! - CBT turned on by `ReconfigVM_Task` gives change IDs only after the VM is stunned once
//!   (a snapshot create or remove, or a power-on); turning it on again starts a new change-ID
//!   epoch, so an older change ID no longer works;
//! - without VMware Tools a quiesced snapshot is taken unquiesced (`quiesced: false`);
//!   guest shutdown needs Tools (`ToolsUnavailable`) and a powered-on VM
//!   (`InvalidPowerState`); the guest powers off `shutdown_seconds` later.

use super::disks::{
    change_id, change_id_prefix, looks_like_change_id, parse_change_id, CopyState, WriteLog,
};
pub use super::scenario::parse_version;
use super::scenario::{FaultKind, FaultMode, PowerState, Scenario, SourceDisk, SourceVmSpec};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Simulated seconds a `CreateSnapshot_Task` runs.
pub const CREATE_SNAPSHOT_SECONDS: f64 = 3.0;
/// Extra seconds when the guest's file systems are quiesced (VMware Tools runs).
pub const QUIESCE_SECONDS: f64 = 2.0;
/// Simulated seconds a `RemoveSnapshot_Task` (with consolidation) runs.
pub const REMOVE_SNAPSHOT_SECONDS: f64 = 5.0;
/// Simulated seconds a `ReconfigVM_Task` runs.
pub const RECONFIGURE_SECONDS: f64 = 1.0;
/// Simulated seconds a `PowerOffVM_Task`/`PowerOnVM_Task` runs.
pub const POWER_SECONDS: f64 = 1.0;
/// A finished task stays in the VM's `recentTask` this long (simulated seconds).
pub const RECENT_TASK_SECONDS: f64 = 600.0;
/// Finished tasks kept per VM for `Task/{id}/info` (the oldest go first).
const TASKS_KEPT: usize = 500;

/// The VI/JSON releases a vCenter of version `v` serves, oldest first (none before 8.0.1).
pub fn vim_releases(v: (u32, u32, u32)) -> Vec<String> {
    const KNOWN: [(u32, u32, u32); 4] = [(8, 0, 1), (8, 0, 2), (8, 0, 3), (9, 0, 0)];
    let mut out: Vec<String> = KNOWN
        .iter()
        .filter(|k| **k <= v)
        .map(|(a, b, c)| format!("{a}.{b}.{c}.0"))
        .collect();
    let own = format!("{}.{}.{}.0", v.0, v.1, v.2);
    if v >= (8, 0, 1) && !out.contains(&own) {
        out.push(own);
    }
    out
}

/// A vSphere fault: its type name, message and type-specific properties.
#[derive(Debug, Clone, PartialEq)]
pub struct VimFault {
    pub type_name: &'static str,
    pub message: String,
    pub props: Value,
}

impl VimFault {
    pub fn new(type_name: &'static str, message: impl Into<String>) -> Self {
        VimFault {
            type_name,
            message: message.into(),
            props: json!({}),
        }
    }

    pub fn with(mut self, props: Value) -> Self {
        self.props = props;
        self
    }

    /// The fault object (`MethodFault` with `faultMessage`), as in a task's error.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "_typeName": self.type_name,
            "faultMessage": [{
                "_typeName": "LocalizableMessage",
                "key": format!("vim.fault.{}", self.type_name),
                "message": self.message,
            }],
        });
        if let (Some(o), Some(p)) = (v.as_object_mut(), self.props.as_object()) {
            for (k, x) in p {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    pub fn invalid_power_state(requested: PowerState, existing: PowerState) -> Self {
        VimFault::new(
            "InvalidPowerState",
            "The attempted operation cannot be performed in the current state (Powered off).",
        )
        .with(json!({
            "requestedState": power_text(requested),
            "existingState": power_text(existing),
        }))
    }
}

/// `poweredOn` / `poweredOff`.
pub fn power_text(p: PowerState) -> &'static str {
    match p {
        PowerState::On => "poweredOn",
        PowerState::Off => "poweredOff",
    }
}

/// `{"_typeName":"ManagedObjectReference","type":T,"value":V}`.
/// An ESXi host's managed object id (`host-1234`), stable for its name.
pub fn host_moid(name: &str) -> String {
    // FNV-1a: the same name gives the same id in every run.
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("host-{}", 1000 + h % 9000)
}

pub fn moref(ty: &str, value: &str) -> Value {
    json!({ "_typeName": "ManagedObjectReference", "type": ty, "value": value })
}

/// Global counters for managed object ids (`snapshot-N`, `task-N`), as vCenter's are.
#[derive(Debug)]
pub struct Ids {
    snapshot: AtomicU64,
    task: AtomicU64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            snapshot: AtomicU64::new(100),
            task: AtomicU64::new(200),
        }
    }
}

impl Ids {
    fn snapshot(&self) -> String {
        format!(
            "snapshot-{}",
            self.snapshot.fetch_add(1, Ordering::Relaxed) + 1
        )
    }
    fn task(&self) -> String {
        format!("task-{}", self.task.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskKind {
    CreateSnapshot {
        name: String,
        description: String,
        memory: bool,
        quiesce: bool,
        /// `CreateSnapshotEx_Task` rather than `CreateSnapshot_Task`.
        ex: bool,
    },
    RemoveSnapshot {
        snapshot: String,
        remove_children: bool,
    },
    Reconfigure {
        change_tracking: Option<bool>,
    },
    PowerOff,
    PowerOn,
}

impl TaskKind {
    /// The method name (`TaskInfo.name`).
    pub fn method(&self) -> &'static str {
        match self {
            TaskKind::CreateSnapshot { ex: false, .. } => "CreateSnapshot_Task",
            TaskKind::CreateSnapshot { ex: true, .. } => "CreateSnapshotEx_Task",
            TaskKind::RemoveSnapshot { .. } => "RemoveSnapshot_Task",
            TaskKind::Reconfigure { .. } => "ReconfigVM_Task",
            TaskKind::PowerOff => "PowerOffVM_Task",
            TaskKind::PowerOn => "PowerOnVM_Task",
        }
    }

    /// `TaskInfo.descriptionId`, as vCenter names the operations.
    pub fn description_id(&self) -> &'static str {
        match self {
            TaskKind::CreateSnapshot { ex: false, .. } => "VirtualMachine.createSnapshot",
            TaskKind::CreateSnapshot { ex: true, .. } => "VirtualMachine.createSnapshotEx",
            TaskKind::RemoveSnapshot { .. } => "VirtualMachineSnapshot.remove",
            TaskKind::Reconfigure { .. } => "VirtualMachine.reconfigure",
            TaskKind::PowerOff => "VirtualMachine.powerOff",
            TaskKind::PowerOn => "VirtualMachine.powerOn",
        }
    }
}

/// One task of a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub kind: TaskKind,
    pub queued: f64,
    pub start: f64,
    pub end: f64,
    /// `None` until the task ends; then its result (a snapshot reference) or fault.
    pub outcome: Option<Result<Option<String>, VimFault>>,
}

impl Task {
    /// `queued`, `running`, `success` or `error` at `now`.
    pub fn state(&self, now: f64) -> &'static str {
        match &self.outcome {
            Some(Ok(_)) => "success",
            Some(Err(_)) => "error",
            None if now < self.start => "queued",
            None => "running",
        }
    }
}

/// A snapshot of a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub moref: String,
    pub name: String,
    pub description: String,
    pub id: i32,
    pub created: f64,
    pub quiesced: bool,
    /// The power state it holds (`poweredOff` unless memory was included).
    pub state: PowerState,
    pub parent: Option<String>,
    /// Per disk: the file the VM wrote to when it was taken, the disk's write generation
    /// then, and its change ID then (CBT active).
    pub files: Vec<String>,
    pub gens: Vec<u64>,
    pub change_ids: Vec<Option<String>>,
}

/// Why a stage of a multi-stage import cannot be copied, as CDI's importer fails: at
/// connect time (`NewVDDKDataSource`: the current snapshot, the disk) or while processing
/// (`TransferURL`: the previous checkpoint, `QueryChangedDiskAreas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageError {
    Connect(String),
    Process(String),
}

impl StageError {
    /// The importer's termination message (containerized-data-importer
    /// `cmd/cdi-importer/importer.go`: `errorCannotConnectDataSource` and the processing
    /// error).
    pub fn message(&self) -> String {
        match self {
            StageError::Connect(e) => format!("Unable to connect to vddk data source: {e}"),
            StageError::Process(e) => format!("Unable to process data: {e}"),
        }
    }
}

/// What one stage copies: write generations `(lo, hi]` of disk `disk`, `delta_bytes` of
/// them (`None`: the whole disk, a first stage).
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    pub disk: usize,
    pub lo: u64,
    pub hi: u64,
    pub delta_bytes: Option<u64>,
}

/// Device key of the first virtual disk (disk `i` has `DISK_KEY_BASE + i`).
pub const DISK_KEY_BASE: i64 = 2000;

/// The most areas one `QueryChangedDiskAreas` answer lists (vSphere documents no number;
/// a cap makes clients page by `startOffset + length`, as they must with a real vCenter).
pub const CHANGED_AREAS_PER_CALL: usize = 1024;

/// One `QueryChangedDiskAreas` answer (`DiskChangeInfo`): the span `startOffset`,
/// `length` it describes and the changed `(start, length)` areas inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskChangeInfo {
    pub start_offset: u64,
    pub length: u64,
    pub areas: Vec<(u64, u64)>,
}

/// The vSphere side of one source VM.
#[derive(Debug, Clone)]
pub struct VmSim {
    pub seed: u64,
    pub disks: Vec<SourceDisk>,
    pub log: WriteLog,
    /// What the simulated CDI copied, per disk index.
    pub copies: BTreeMap<usize, CopyState>,
    pub tools: bool,
    pub cbt_enabled: bool,
    /// CBT took effect (the VM was stunned since it was turned on).
    pub cbt_active: bool,
    pub cbt_epoch: u32,
    /// Creation order.
    pub snapshots: Vec<Snapshot>,
    pub current_snapshot: Option<String>,
    /// The delta-disk number the VM writes to (0: its base disks).
    pub delta: u32,
    next_snapshot_id: i32,
    pub tasks: Vec<Task>,
    /// A guest shutdown under way powers the VM off then.
    pub shutdown_at: Option<f64>,
    quiesce_fault: Option<FaultMode>,
    quiesce_fault_fired: bool,
}

/// A source VM as the Automation REST API shows it.
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

/// A source VM: what the REST API shows ([`SourceVm`]) and its vSphere model.
#[derive(Debug, Clone)]
pub struct VmEntry {
    pub vm: SourceVm,
    pub sim: VmSim,
}

fn name_seed(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A UUID made of 16 deterministic bytes.
fn uuid_from(seed: u64, first: u8) -> String {
    let a = crate::sim::fault::mix(seed).to_be_bytes();
    let b = crate::sim::fault::mix(seed ^ 0x5555).to_be_bytes();
    let mut x: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
    x[0] = first;
    let h: Vec<String> = x.iter().map(|v| format!("{v:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// `[ds1] web/web.vmdk` → `[ds1] web/web-000002.vmdk` for delta 2.
pub fn delta_file(base: &str, delta: u32) -> String {
    if delta == 0 {
        return base.to_string();
    }
    match base.strip_suffix(".vmdk") {
        Some(stem) => format!("{stem}-{delta:06}.vmdk"),
        None => format!("{base}-{delta:06}"),
    }
}

/// The base disk a file names: `[ds1] web/web-000002.vmdk` → `[ds1] web/web.vmdk`.
pub fn base_file(file: &str) -> String {
    if let Some(stem) = file.strip_suffix(".vmdk") {
        if let Some((base, n)) = stem.rsplit_once('-') {
            if n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()) {
                return format!("{base}.vmdk");
            }
        }
    }
    file.to_string()
}

impl VmEntry {
    /// The VM as the scenario describes it at simulated time 0.
    pub fn new(moid: String, spec: &SourceVmSpec, scenario: &Scenario, ids: &Ids) -> Self {
        let fault = |k: FaultKind| {
            scenario
                .faults
                .iter()
                .find(|f| f.kind == k && f.vm == spec.name)
        };
        let seed = name_seed(&moid) ^ name_seed(&spec.name).rotate_left(7);
        let disks = spec.disk_specs();
        let on = spec.power == PowerState::On;
        let log = WriteLog::new(
            seed,
            spec.write_rate,
            disks.iter().map(|d| d.size).collect(),
            on.then_some(0.0),
        );
        let cbt = spec.cbt && fault(FaultKind::CbtDisabled).is_none();
        let sim = VmSim {
            seed,
            disks,
            log,
            copies: BTreeMap::new(),
            tools: spec.tools && fault(FaultKind::ToolsUnavailable).is_none(),
            cbt_enabled: cbt,
            cbt_active: cbt,
            cbt_epoch: u32::from(cbt),
            snapshots: Vec::new(),
            current_snapshot: None,
            delta: 0,
            next_snapshot_id: 1,
            tasks: Vec::new(),
            shutdown_at: None,
            quiesce_fault: fault(FaultKind::SnapshotFailure).map(|f| f.mode),
            quiesce_fault_fired: false,
        };
        let vm = SourceVm {
            moid,
            spec: spec.clone(),
            power: spec.power,
            off_since: (!on).then_some(0.0),
            last_on: 0.0,
        };
        let mut e = VmEntry { vm, sim };
        for name in &spec.snapshots {
            // Pre-existing snapshots, taken at the beginning, not quiesced.
            e.take_snapshot(ids.snapshot(), name, "", false, false, 0.0);
        }
        e
    }

    /// The BIOS UUID vCenter reports (`config.uuid`, as the VI/JSON rendering has it).
    pub fn bios_uuid(&self) -> String {
        uuid_from(self.sim.seed, 0x42)
    }

    fn disk_count(&self) -> usize {
        self.sim.disks.len()
    }

    /// The files the VM writes to now.
    pub fn current_files(&self) -> Vec<String> {
        self.sim
            .disks
            .iter()
            .map(|d| delta_file(&d.file, self.sim.delta))
            .collect()
    }

    /// The change-ID prefix of disk `disk` in the current CBT epoch.
    fn prefix(&self, disk: usize) -> String {
        change_id_prefix(self.sim.seed, disk, self.sim.cbt_epoch)
    }

    /// Disk `disk`'s change ID now (`None` until CBT took effect).
    pub fn change_id_now(&self, disk: usize) -> Option<String> {
        (self.sim.cbt_enabled && self.sim.cbt_active)
            .then(|| change_id(&self.prefix(disk), self.sim.log.disk_gen(disk)))
    }

    /// The simulated time of the next thing that happens by itself (a task's end, a
    /// guest's power-off), if any.
    pub fn next_event(&self) -> Option<f64> {
        let task = self
            .sim
            .tasks
            .iter()
            .find(|t| t.outcome.is_none())
            .map(|t| t.end);
        match (task, self.sim.shutdown_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs everything due up to `now` in time order (task ends, a guest power-off), then
    /// writes up to `now`.
    pub fn advance(&mut self, now: f64, ids: &Ids) {
        loop {
            let task = self
                .sim
                .tasks
                .iter()
                .position(|t| t.outcome.is_none())
                .filter(|&i| self.sim.tasks[i].end <= now);
            let shutdown = self.sim.shutdown_at.filter(|&t| t <= now);
            match (task, shutdown) {
                (Some(i), Some(s)) if s < self.sim.tasks[i].end => self.guest_power_off(s),
                (Some(i), _) => self.complete(i, ids),
                (None, Some(s)) => self.guest_power_off(s),
                (None, None) => break,
            }
        }
        self.sim.log.materialise(now);
    }

    fn guest_power_off(&mut self, at: f64) {
        self.sim.shutdown_at = None;
        if self.vm.power == PowerState::On {
            self.set_power(at, PowerState::Off);
        }
    }

    /// Changes the power state at `at` (the writes up to then first).
    pub fn set_power(&mut self, at: f64, power: PowerState) {
        match (self.vm.power, power) {
            (PowerState::On, PowerState::Off) => {
                self.sim.log.power_off(at);
                self.vm.off_since = Some(at);
                self.sim.shutdown_at = None;
            }
            (PowerState::Off, PowerState::On) => {
                self.sim.log.materialise(at);
                self.sim.log.power_on(at);
                self.vm.off_since = None;
                self.vm.last_on = at;
                // A power-on stuns the VM: CBT turned on takes effect.
                self.stun();
            }
            _ => {}
        }
        self.vm.power = power;
    }

    fn stun(&mut self) {
        if self.sim.cbt_enabled {
            self.sim.cbt_active = true;
        }
    }

    /// Queues a task at `now`; it starts when the VM's earlier tasks have ended.
    pub fn queue(&mut self, kind: TaskKind, now: f64, ids: &Ids) -> String {
        let duration = match &kind {
            TaskKind::CreateSnapshot { quiesce, .. } => {
                CREATE_SNAPSHOT_SECONDS
                    + if *quiesce && self.sim.tools {
                        QUIESCE_SECONDS
                    } else {
                        0.0
                    }
            }
            TaskKind::RemoveSnapshot { .. } => REMOVE_SNAPSHOT_SECONDS,
            TaskKind::Reconfigure { .. } => RECONFIGURE_SECONDS,
            TaskKind::PowerOff | TaskKind::PowerOn => POWER_SECONDS,
        };
        let start = self
            .sim
            .tasks
            .iter()
            .filter(|t| t.outcome.is_none())
            .map(|t| t.end)
            .fold(now, f64::max);
        let id = ids.task();
        self.sim.tasks.push(Task {
            id: id.clone(),
            kind,
            queued: now,
            start,
            end: start + duration,
            outcome: None,
        });
        // Keep the finished tasks bounded.
        let finished = self
            .sim
            .tasks
            .iter()
            .filter(|t| t.outcome.is_some())
            .count();
        if finished > TASKS_KEPT {
            let mut drop = finished - TASKS_KEPT;
            self.sim.tasks.retain(|t| {
                if drop > 0 && t.outcome.is_some() {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
        id
    }

    /// Ends task `i` at its end time: its effect happens then.
    fn complete(&mut self, i: usize, ids: &Ids) {
        let at = self.sim.tasks[i].end;
        self.sim.log.materialise(at);
        let kind = self.sim.tasks[i].kind.clone();
        let outcome = match kind {
            TaskKind::CreateSnapshot {
                name,
                description,
                memory,
                quiesce,
                ..
            } => self.create_snapshot(ids, &name, &description, memory, quiesce, at),
            TaskKind::RemoveSnapshot {
                snapshot,
                remove_children,
            } => self
                .remove_snapshot(&snapshot, remove_children)
                .map(|()| None),
            TaskKind::Reconfigure { change_tracking } => {
                match change_tracking {
                    Some(true) if !self.sim.cbt_enabled => {
                        self.sim.cbt_enabled = true;
                        self.sim.cbt_active = false;
                        self.sim.cbt_epoch += 1;
                    }
                    Some(false) => {
                        self.sim.cbt_enabled = false;
                        self.sim.cbt_active = false;
                    }
                    _ => {}
                }
                Ok(None)
            }
            TaskKind::PowerOff => {
                if self.vm.power == PowerState::On {
                    self.set_power(at, PowerState::Off);
                    Ok(None)
                } else {
                    Err(VimFault::invalid_power_state(PowerState::On, self.vm.power))
                }
            }
            TaskKind::PowerOn => {
                if self.vm.power == PowerState::Off {
                    self.set_power(at, PowerState::On);
                    Ok(None)
                } else {
                    Err(VimFault::invalid_power_state(
                        PowerState::Off,
                        self.vm.power,
                    ))
                }
            }
        };
        self.sim.tasks[i].outcome = Some(outcome);
    }

    fn create_snapshot(
        &mut self,
        ids: &Ids,
        name: &str,
        description: &str,
        memory: bool,
        quiesce: bool,
        at: f64,
    ) -> Result<Option<String>, VimFault> {
        // Without VMware Tools vSphere takes the snapshot without quiescing.
        let quiesced = quiesce && self.sim.tools && self.vm.power == PowerState::On;
        if quiesced {
            match self.sim.quiesce_fault {
                Some(FaultMode::Once) if !self.sim.quiesce_fault_fired => {
                    self.sim.quiesce_fault_fired = true;
                    return Err(quiesce_fault());
                }
                Some(FaultMode::Always | FaultMode::UntilRetry) => return Err(quiesce_fault()),
                _ => {}
            }
        }
        let moref = ids.snapshot();
        let memory = memory && self.vm.power == PowerState::On;
        self.take_snapshot(moref.clone(), name, description, quiesced, memory, at);
        Ok(Some(moref))
    }

    fn take_snapshot(
        &mut self,
        moref: String,
        name: &str,
        description: &str,
        quiesced: bool,
        memory: bool,
        at: f64,
    ) {
        // The stun makes CBT turned on take effect; the snapshot carries the change IDs.
        self.stun();
        let n = self.disk_count();
        let files = self.current_files();
        let gens: Vec<u64> = (0..n).map(|d| self.sim.log.disk_gen(d)).collect();
        let change_ids: Vec<Option<String>> = (0..n).map(|d| self.change_id_now(d)).collect();
        let id = self.sim.next_snapshot_id;
        self.sim.next_snapshot_id += 1;
        self.sim.snapshots.push(Snapshot {
            moref: moref.clone(),
            name: name.to_string(),
            description: description.to_string(),
            id,
            created: at,
            quiesced,
            state: if memory {
                PowerState::On
            } else {
                PowerState::Off
            },
            parent: self.sim.current_snapshot.clone(),
            files,
            gens,
            change_ids,
        });
        self.sim.current_snapshot = Some(moref);
        self.sim.delta += 1;
    }

    fn remove_snapshot(&mut self, moref: &str, remove_children: bool) -> Result<(), VimFault> {
        let Some(snap) = self
            .sim
            .snapshots
            .iter()
            .find(|s| s.moref == moref)
            .cloned()
        else {
            return Err(VimFault::new(
                "ManagedObjectNotFound",
                format!("The object 'vim.vm.Snapshot:{moref}' has already been deleted or has not been completely created"),
            )
            .with(json!({ "obj": moref_json_snapshot(moref) })));
        };
        let mut gone = vec![snap.moref.clone()];
        if remove_children {
            let mut i = 0;
            while i < gone.len() {
                let p = gone[i].clone();
                gone.extend(
                    self.sim
                        .snapshots
                        .iter()
                        .filter(|s| s.parent.as_deref() == Some(p.as_str()))
                        .map(|s| s.moref.clone()),
                );
                i += 1;
            }
        } else {
            for s in &mut self.sim.snapshots {
                if s.parent.as_deref() == Some(moref) {
                    s.parent = snap.parent.clone();
                }
            }
        }
        if self
            .sim
            .current_snapshot
            .as_ref()
            .is_some_and(|c| gone.contains(c))
        {
            self.sim.current_snapshot = snap.parent.clone();
        }
        self.sim.snapshots.retain(|s| !gone.contains(&s.moref));
        if self.sim.snapshots.is_empty() {
            // Consolidated: the VM writes to its base disks again.
            self.sim.current_snapshot = None;
            self.sim.delta = 0;
        }
        // Consolidation stuns the VM too.
        self.stun();
        Ok(())
    }

    /// A snapshot by reference value or name, as govmomi's `FindSnapshot` resolves it (the
    /// errors are its words; CDI's importer reports them).
    pub fn find_snapshot(&self, name: &str) -> Result<&Snapshot, String> {
        if self.sim.snapshots.is_empty() {
            return Err("no snapshots for this VM".to_string());
        }
        if let Some(s) = self.sim.snapshots.iter().find(|s| s.moref == name) {
            return Ok(s);
        }
        let named: Vec<&Snapshot> = self
            .sim
            .snapshots
            .iter()
            .filter(|s| s.name == name)
            .collect();
        match named.len() {
            0 => Err(format!("snapshot {name:?} not found")),
            1 => Ok(named[0]),
            n => Err(format!("{name:?} resolves to {n} snapshots")),
        }
    }

    /// The disk of this VM a DataVolume's `backingFile` names (its base disk or a delta).
    pub fn disk_of(&self, backing_file: &str) -> Option<usize> {
        let base = base_file(backing_file);
        self.sim.disks.iter().position(|d| d.file == base)
    }

    /// What a stage `previous` → `current` of disk `disk` copies, or why the importer
    /// fails (containerized-data-importer `pkg/importer/vddk-datasource_amd64.go`:
    /// `NewVDDKDataSource` finds the current snapshot; `TransferURL` tells a change ID from a
    /// snapshot by `changeIDPattern` and queries the changed areas between them).
    pub fn stage_plan(
        &self,
        disk: usize,
        previous: &str,
        current: &str,
    ) -> Result<StagePlan, StageError> {
        if current.is_empty() {
            return Err(StageError::Connect(
                "previous checkpoint set without current".to_string(),
            ));
        }
        let file = self
            .sim
            .disks
            .get(disk)
            .map(|d| d.file.clone())
            .unwrap_or_default();
        let cur = self.find_snapshot(current).map_err(StageError::Connect)?;
        let hi = cur.gens.get(disk).copied().unwrap_or(0);
        if previous.is_empty() {
            return Ok(StagePlan {
                disk,
                lo: 0,
                hi,
                delta_bytes: None,
            });
        }
        let bad_file = || {
            StageError::Process(format!(
                "Failed to query changed areas: ServerFaultCode: Error caused by file {}",
                cur.files.get(disk).cloned().unwrap_or(file.clone())
            ))
        };
        let cur_prefix = cur
            .change_ids
            .get(disk)
            .cloned()
            .flatten()
            .and_then(|c| parse_change_id(&c).map(|(p, _)| p.to_string()))
            .ok_or_else(bad_file)?;
        let lo = if looks_like_change_id(previous) {
            let (prefix, gen) = parse_change_id(previous).unwrap_or_default();
            if prefix != cur_prefix {
                return Err(StageError::Process(
                    "Failed to query changed areas: ServerFaultCode: A specified parameter was not correct: changeId"
                        .to_string(),
                ));
            }
            gen
        } else {
            let prev = self.find_snapshot(previous).map_err(|e| {
                StageError::Process(format!("Could not find previous snapshot {previous}: {e}"))
            })?;
            let prev_prefix = prev
                .change_ids
                .get(disk)
                .cloned()
                .flatten()
                .and_then(|c| parse_change_id(&c).map(|(p, _)| p.to_string()));
            if prev_prefix.as_deref() != Some(cur_prefix.as_str()) {
                return Err(StageError::Process(format!(
                    "Unable to query changed areas: ServerFaultCode: Error caused by file {}",
                    prev.files.get(disk).cloned().unwrap_or(file)
                )));
            }
            prev.gens.get(disk).copied().unwrap_or(0)
        };
        Ok(StagePlan {
            disk,
            lo,
            hi,
            delta_bytes: Some(self.sim.log.bytes_between(disk, lo, hi.max(lo))),
        })
    }

    /// `QueryChangedDiskAreas` of snapshot `snapshot`, the disk with device key
    /// `device_key`, from byte `start`, since change ID `change_id`: the areas written in
    /// write generations `(gen(change_id), gen(snapshot)]` (`"*"`: every area written up to
    /// the snapshot, VMware's "all allocated areas"), merged, at most
    /// [`CHANGED_AREAS_PER_CALL`] of them. Faults as vSphere's: an unknown snapshot
    /// `ManagedObjectNotFound`; a bad device key or offset, or a malformed change ID,
    /// `InvalidArgument`; a snapshot without a change ID (CBT off then), or a change ID of
    /// another disk or CBT epoch, `FileFault` on the snapshot's disk file (what CDI's
    /// importer reports as "Error caused by file …"). A change ID newer than the snapshot
    /// gives no areas.
    pub fn changed_areas(
        &self,
        snapshot: &str,
        device_key: i64,
        start: i64,
        change_id: &str,
    ) -> Result<DiskChangeInfo, VimFault> {
        let snap = self
            .sim
            .snapshots
            .iter()
            .find(|s| s.moref == snapshot)
            .ok_or_else(|| {
                VimFault::new(
                    "ManagedObjectNotFound",
                    format!("The object 'vim.vm.Snapshot:{snapshot}' has already been deleted or has not been completely created"),
                )
                .with(json!({ "obj": moref_json_snapshot(snapshot) }))
            })?;
        let invalid = |property: &str| {
            VimFault::new(
                "InvalidArgument",
                format!("A specified parameter was not correct: {property}"),
            )
            .with(json!({ "invalidProperty": property }))
        };
        let disk = usize::try_from(device_key - DISK_KEY_BASE)
            .ok()
            .filter(|&d| d < self.disk_count())
            .ok_or_else(|| invalid("deviceKey"))?;
        let capacity = self.sim.disks[disk].size;
        let start = u64::try_from(start)
            .ok()
            .filter(|&s| s < capacity)
            .ok_or_else(|| invalid("startOffset"))?;
        let file = snap
            .files
            .get(disk)
            .cloned()
            .unwrap_or_else(|| self.sim.disks[disk].file.clone());
        let file_fault = || {
            VimFault::new("FileFault", format!("Error caused by file {file}"))
                .with(json!({ "file": file }))
        };
        let prefix = snap
            .change_ids
            .get(disk)
            .cloned()
            .flatten()
            .and_then(|c| parse_change_id(&c).map(|(p, _)| p.to_string()))
            .ok_or_else(file_fault)?;
        let hi = snap.gens.get(disk).copied().unwrap_or(0);
        let lo = if change_id == "*" {
            0
        } else {
            let (p, gen) = parse_change_id(change_id).ok_or_else(|| invalid("changeId"))?;
            if p != prefix {
                return Err(file_fault());
            }
            gen
        };
        let mut areas = Vec::new();
        let mut end = capacity;
        for (s, n) in self.sim.log.areas_between(disk, lo, hi) {
            if s + n <= start {
                continue;
            }
            if areas.len() == CHANGED_AREAS_PER_CALL {
                // More to come: this answer ends where its last area does.
                end = areas.last().map_or(capacity, |&(s, n): &(u64, u64)| s + n);
                break;
            }
            let from = s.max(start);
            areas.push((from, s + n - from));
        }
        Ok(DiskChangeInfo {
            start_offset: start,
            length: end - start,
            areas,
        })
    }

    /// Tasks queued, running, or finished in the last [`RECENT_TASK_SECONDS`].
    pub fn recent_tasks(&self, now: f64) -> Vec<&Task> {
        self.sim
            .tasks
            .iter()
            .filter(|t| t.outcome.is_none() || t.end >= now - RECENT_TASK_SECONDS)
            .collect()
    }

    /// The guest's VMware Tools runs now.
    pub fn tools_running(&self) -> bool {
        self.sim.tools && self.vm.power == PowerState::On
    }

    /// Asks VMware Tools to shut the guest down; it powers off `delay` seconds later.
    pub fn shutdown_guest(&mut self, now: f64, delay: f64) -> Result<(), VimFault> {
        if self.vm.power != PowerState::On {
            return Err(VimFault::invalid_power_state(PowerState::On, self.vm.power));
        }
        if !self.sim.tools {
            return Err(VimFault::new(
                "ToolsUnavailable",
                "Cannot complete operation because VMware Tools is not running in this virtual machine.",
            ));
        }
        let at = now + delay;
        self.sim.shutdown_at = Some(self.sim.shutdown_at.map_or(at, |t| t.min(at)));
        Ok(())
    }
}

fn moref_json_snapshot(value: &str) -> Value {
    moref("VirtualMachineSnapshot", value)
}

fn quiesce_fault() -> VimFault {
    VimFault::new(
        "ApplicationQuiesceFault",
        "An error occurred while quiescing the virtual machine. See the virtual machine's event log for details.",
    )
}

/// Renders the model as vim25 JSON objects, times by the world's clock.
pub struct Render {
    /// The world's clock (Unix ms) at simulated time 0.
    pub clock_start_ms: i64,
    pub user: String,
}

impl Render {
    pub fn time(&self, t: f64) -> String {
        let ms = self.clock_start_ms + (t * 1000.0) as i64;
        let secs = crate::sim::time::rfc3339(ms.div_euclid(1000).max(0) as u64);
        format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms.rem_euclid(1000))
    }

    fn datastore(file: &str) -> (String, String) {
        let ds = file
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map_or("datastore1", |(d, _)| d)
            .to_string();
        let moid = format!("datastore-{}", 10 + name_seed(&ds) % 90);
        (ds, moid)
    }

    /// The `VirtualDisk` devices for `files` with `change_ids`, plus the VM's controller
    /// and NICs.
    fn devices(
        &self,
        e: &VmEntry,
        files: &[String],
        change_ids: &[Option<String>],
        parents: &dyn Fn(usize) -> Vec<String>,
    ) -> Vec<Value> {
        let mut out = vec![json!({
            "_typeName": "ParaVirtualSCSIController",
            "key": 1000,
            "deviceInfo": { "_typeName": "Description", "label": "SCSI controller 0", "summary": "VMware paravirtual SCSI" },
            "controllerKey": 100,
            "unitNumber": 3,
            "busNumber": 0,
            "device": (0..files.len()).map(|i| DISK_KEY_BASE + i as i64).collect::<Vec<_>>(),
            "hotAddRemove": true,
            "sharedBus": "noSharing",
            "scsiCtlrUnitNumber": 7,
        })];
        for (i, d) in e.sim.disks.iter().enumerate() {
            let file = files.get(i).cloned().unwrap_or_else(|| d.file.clone());
            let (_, ds) = Self::datastore(&file);
            let mut backing = json!({
                "_typeName": "VirtualDiskFlatVer2BackingInfo",
                "fileName": file,
                "datastore": moref("Datastore", &ds),
                "diskMode": "persistent",
                "thinProvisioned": true,
                "uuid": uuid_from(e.sim.seed ^ ((i as u64 + 1) * 7919), 0x60),
                "contentId": format!("{:032x}", u128::from(crate::sim::fault::mix(e.sim.seed ^ i as u64))),
                "digestEnabled": false,
                "sharing": "sharingNone",
            });
            if let Some(Some(c)) = change_ids.get(i) {
                backing["changeId"] = json!(c);
            }
            // The chain of parent disks, newest first, down to the base.
            let mut parent = Value::Null;
            for p in parents(i).iter().rev() {
                let (_, pds) = Self::datastore(p);
                let mut b = json!({
                    "_typeName": "VirtualDiskFlatVer2BackingInfo",
                    "fileName": p,
                    "datastore": moref("Datastore", &pds),
                    "diskMode": "persistent",
                    "thinProvisioned": true,
                });
                if !parent.is_null() {
                    b["parent"] = parent;
                }
                parent = b;
            }
            if !parent.is_null() {
                backing["parent"] = parent;
            }
            let unit = if i >= 7 { i + 1 } else { i };
            out.push(json!({
                "_typeName": "VirtualDisk",
                "key": DISK_KEY_BASE + i as i64,
                "deviceInfo": {
                    "_typeName": "Description",
                    "label": format!("Hard disk {}", i + 1),
                    "summary": format!("{} KB", d.size / 1024),
                },
                "backing": backing,
                "controllerKey": 1000,
                "unitNumber": unit,
                "capacityInKB": d.size / 1024,
                "capacityInBytes": d.size,
            }));
        }
        for (i, n) in e.vm.spec.nics.iter().enumerate() {
            out.push(json!({
                "_typeName": "VirtualVmxnet3",
                "key": 4000 + i as i64,
                "deviceInfo": {
                    "_typeName": "Description",
                    "label": format!("Network adapter {}", i + 1),
                    "summary": n.vlan.map_or_else(|| "VM Network".to_string(), |v| format!("VLAN {v}")),
                },
                "backing": {
                    "_typeName": "VirtualEthernetCardNetworkBackingInfo",
                    "deviceName": n.vlan.map_or_else(|| "VM Network".to_string(), |v| format!("VLAN {v}")),
                },
                "controllerKey": 100,
                "unitNumber": 7 + i,
                "addressType": "assigned",
                "macAddress": n.mac.to_ascii_lowercase(),
                "wakeOnLanEnabled": true,
            }));
        }
        out
    }

    fn config(
        &self,
        e: &VmEntry,
        files: &[String],
        change_ids: &[Option<String>],
        cbt: bool,
        parents: &dyn Fn(usize) -> Vec<String>,
    ) -> Value {
        let spec = &e.vm.spec;
        let first = e
            .sim
            .disks
            .first()
            .map(|d| d.file.clone())
            .unwrap_or_default();
        let vmx = match first.strip_suffix(".vmdk") {
            Some(stem) => format!("{stem}.vmx"),
            None => format!("[datastore1] {0}/{0}.vmx", spec.name),
        };
        let dir = vmx
            .rsplit_once('/')
            .map_or(vmx.clone(), |(d, _)| format!("{d}/"));
        let windows = spec.os == super::scenario::GuestOsKind::Windows;
        json!({
            "_typeName": "VirtualMachineConfigInfo",
            "changeVersion": self.time(0.0),
            "modified": "1970-01-01T00:00:00Z",
            "name": spec.name,
            "guestFullName": if windows { "Microsoft Windows Server 2019 (64-bit)" } else { "Other 5.x or later Linux (64-bit)" },
            "version": "vmx-19",
            "uuid": uuid_from(e.sim.seed, 0x42),
            "instanceUuid": spec.uuid.clone().unwrap_or_else(|| uuid_from(e.sim.seed ^ 1, 0x50)),
            "template": false,
            "guestId": if windows { "windows2019srv_64Guest" } else { "other5xLinux64Guest" },
            "files": {
                "_typeName": "VirtualMachineFileInfo",
                "vmPathName": vmx,
                "snapshotDirectory": dir,
                "suspendDirectory": dir,
                "logDirectory": dir,
            },
            "hardware": {
                "_typeName": "VirtualHardware",
                "numCPU": 2,
                "numCoresPerSocket": 1,
                "memoryMB": 4096,
                "device": self.devices(e, files, change_ids, parents),
            },
            "changeTrackingEnabled": cbt,
        })
    }

    /// `GET VirtualMachine/{vm}/config`.
    pub fn vm_config(&self, e: &VmEntry) -> Value {
        let n = e.disk_count();
        let change_ids: Vec<Option<String>> = (0..n).map(|d| e.change_id_now(d)).collect();
        // The current delta's parents: the files of the current snapshot and its ancestors.
        let chain = snapshot_chain(e, e.sim.current_snapshot.as_deref());
        let parents = |disk: usize| -> Vec<String> {
            chain
                .iter()
                .filter_map(|s| s.files.get(disk).cloned())
                .collect()
        };
        self.config(
            e,
            &e.current_files(),
            &change_ids,
            e.sim.cbt_enabled,
            &parents,
        )
    }

    /// `GET VirtualMachineSnapshot/{snap}/config`: the VM as of the snapshot.
    pub fn snapshot_config(&self, e: &VmEntry, snap: &Snapshot) -> Value {
        let chain = snapshot_chain(e, snap.parent.as_deref());
        let parents = |disk: usize| -> Vec<String> {
            chain
                .iter()
                .filter_map(|s| s.files.get(disk).cloned())
                .collect()
        };
        let cbt = snap.change_ids.iter().any(Option::is_some);
        self.config(e, &snap.files, &snap.change_ids, cbt, &parents)
    }

    /// `GET VirtualMachine/{vm}/snapshot` (`None`: the property is unset).
    pub fn snapshot_info(&self, e: &VmEntry) -> Option<Value> {
        if e.sim.snapshots.is_empty() {
            return None;
        }
        let mut v = json!({
            "_typeName": "VirtualMachineSnapshotInfo",
            "rootSnapshotList": self.tree(e, None),
        });
        if let Some(c) = &e.sim.current_snapshot {
            v["currentSnapshot"] = moref("VirtualMachineSnapshot", c);
        }
        Some(v)
    }

    fn tree(&self, e: &VmEntry, parent: Option<&str>) -> Vec<Value> {
        e.sim
            .snapshots
            .iter()
            .filter(|s| s.parent.as_deref() == parent)
            .map(|s| {
                json!({
                    "_typeName": "VirtualMachineSnapshotTree",
                    "snapshot": moref("VirtualMachineSnapshot", &s.moref),
                    "vm": moref("VirtualMachine", &e.vm.moid),
                    "name": s.name,
                    "description": s.description,
                    "id": s.id,
                    "createTime": self.time(s.created),
                    "state": power_text(s.state),
                    "quiesced": s.quiesced,
                    "childSnapshotList": self.tree(e, Some(&s.moref)),
                    "replaySupported": false,
                })
            })
            .collect()
    }

    /// `GET VirtualMachine/{vm}/runtime`.
    pub fn runtime(&self, e: &VmEntry) -> Value {
        let mut v = json!({
            "_typeName": "VirtualMachineRuntimeInfo",
            "connectionState": "connected",
            "powerState": power_text(e.vm.power),
            "faultToleranceState": "notConfigured",
            "toolsInstallerMounted": false,
            "suspendInterval": 0,
            "consolidationNeeded": false,
        });
        if e.vm.power == PowerState::On {
            v["bootTime"] = json!(self.time(e.vm.last_on));
        }
        // `runtime.host`: the ESXi host it runs on, a ManagedObjectReference to a
        // HostSystem (govmomi `vim25/types/types.go` `VirtualMachineRuntimeInfo.Host`); its
        // name is the HostSystem's `name` property (`HostSystem/{id}/name`).
        if let Some(h) = &e.vm.spec.host {
            v["host"] = moref("HostSystem", &host_moid(h));
        }
        v
    }

    /// `GET VirtualMachine/{vm}/guest`.
    pub fn guest(&self, e: &VmEntry) -> Value {
        let running = e.tools_running();
        let mut v = json!({
            "_typeName": "GuestInfo",
            "toolsStatus": if running { "toolsOk" } else { "toolsNotRunning" },
            "toolsVersionStatus2": if e.sim.tools { "guestToolsCurrent" } else { "guestToolsNotInstalled" },
            "toolsRunningStatus": if running { "guestToolsRunning" } else { "guestToolsNotRunning" },
            "guestState": if running { "running" } else { "notRunning" },
            "guestOperationsReady": running,
            "interactiveGuestOperationsReady": false,
        });
        if running {
            v["hostName"] = json!(e.vm.spec.name);
            if let Some(ip) = e.vm.spec.nics.iter().find_map(|n| n.ip.clone()) {
                v["ipAddress"] = json!(ip);
            }
        }
        v
    }

    /// `GET Task/{task}/info`.
    pub fn task_info(&self, e: &VmEntry, t: &Task, now: f64) -> Value {
        let state = t.state(now);
        let mut v = json!({
            "_typeName": "TaskInfo",
            "key": t.id,
            "task": moref("Task", &t.id),
            "name": t.kind.method(),
            "descriptionId": t.kind.description_id(),
            "entity": moref("VirtualMachine", &e.vm.moid),
            "entityName": e.vm.spec.name,
            "state": state,
            "cancelled": false,
            "cancelable": false,
            "reason": { "_typeName": "TaskReasonUser", "userName": self.user },
            "queueTime": self.time(t.queued),
            "eventChainId": t.id.trim_start_matches("task-").parse::<i64>().unwrap_or(0),
        });
        if state != "queued" {
            v["startTime"] = json!(self.time(t.start));
        }
        match &t.outcome {
            None if state == "running" => {
                let span = (t.end - t.start).max(f64::EPSILON);
                v["progress"] = json!((((now - t.start) / span) * 100.0).clamp(0.0, 99.0) as i64);
            }
            None => {}
            Some(Ok(result)) => {
                v["completeTime"] = json!(self.time(t.end));
                if let Some(r) = result {
                    v["result"] = moref("VirtualMachineSnapshot", r);
                }
            }
            Some(Err(f)) => {
                v["completeTime"] = json!(self.time(t.end));
                v["error"] = json!({
                    "_typeName": "LocalizedMethodFault",
                    "fault": f.to_json(),
                    "localizedMessage": f.message,
                });
            }
        }
        v
    }
}

/// Snapshot `from` and its ancestors, oldest first.
fn snapshot_chain<'a>(e: &'a VmEntry, from: Option<&str>) -> Vec<&'a Snapshot> {
    let mut out = Vec::new();
    let mut cur = from;
    while let Some(m) = cur {
        match e.sim.snapshots.iter().find(|s| s.moref == m) {
            Some(s) if out.len() <= e.sim.snapshots.len() => {
                out.push(s);
                cur = s.parent.as_deref();
            }
            _ => break,
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml: &str) -> VmEntry {
        let s = Scenario::from_toml(toml, "t.toml").expect("scenario");
        VmEntry::new("vm-1001".into(), &s.source_vms[0], &s, &Ids::default())
    }

    const WEB: &str = r#"
[[source_vm]]
name = "web"
disks = [{ file = "[ds1] web/web.vmdk", size = "40Gi" }, { file = "[ds1] web/web_1.vmdk", size = "10Gi" }]
"#;

    #[test]
    fn versions_and_releases() {
        assert_eq!(parse_version("8.0.3"), Some((8, 0, 3)));
        assert_eq!(parse_version("8.0.2.0"), Some((8, 0, 2)));
        assert_eq!(parse_version("8.x"), None);
        assert!(vim_releases((8, 0, 0)).is_empty());
        assert_eq!(
            vim_releases((8, 0, 3)),
            vec!["8.0.1.0", "8.0.2.0", "8.0.3.0"]
        );
        assert_eq!(
            vim_releases((9, 0, 0)).last().map(String::as_str),
            Some("9.0.0.0")
        );
    }

    #[test]
    fn files_and_deltas() {
        assert_eq!(
            delta_file("[ds1] web/web.vmdk", 1),
            "[ds1] web/web-000001.vmdk"
        );
        assert_eq!(base_file("[ds1] web/web-000012.vmdk"), "[ds1] web/web.vmdk");
        assert_eq!(base_file("[ds1] web/web-a.vmdk"), "[ds1] web/web-a.vmdk");
    }

    #[test]
    fn tasks_run_one_at_a_time_and_take_effect_at_their_end() {
        let ids = Ids::default();
        let mut e = entry(WEB);
        let create = |name: &str| TaskKind::CreateSnapshot {
            name: name.into(),
            description: String::new(),
            memory: false,
            quiesce: true,
            ex: false,
        };
        let a = e.queue(create("a"), 100.0, &ids);
        let b = e.queue(create("b"), 100.0, &ids);
        e.advance(101.0, &ids);
        assert_eq!(e.sim.tasks[0].state(101.0), "running");
        assert_eq!(e.sim.tasks[1].state(101.0), "queued");
        // Quiesced (Tools run): 5 s each.
        e.advance(105.0, &ids);
        assert_eq!(e.sim.tasks[0].state(105.0), "success");
        assert_eq!(e.sim.tasks[1].state(105.0), "running");
        e.advance(110.0, &ids);
        assert_eq!(e.sim.snapshots.len(), 2);
        assert_eq!(
            e.sim.snapshots[1].parent.as_deref(),
            Some(e.sim.snapshots[0].moref.as_str())
        );
        assert!(e.sim.snapshots[0].quiesced);
        assert_ne!(a, b);
        // The first snapshot's disks are the base files; the VM now writes to delta 2.
        assert_eq!(e.sim.snapshots[0].files[0], "[ds1] web/web.vmdk");
        assert_eq!(e.sim.snapshots[1].files[0], "[ds1] web/web-000001.vmdk");
        assert_eq!(e.current_files()[0], "[ds1] web/web-000002.vmdk");
        // The snapshot holds the writes up to its instant (105 s: one chunk at 60 s).
        assert_eq!(e.sim.snapshots[0].gens.iter().sum::<u64>(), 1);
        // Remove the first: the second becomes a root, the VM stays on its delta.
        let first = e.sim.snapshots[0].moref.clone();
        e.queue(
            TaskKind::RemoveSnapshot {
                snapshot: first,
                remove_children: false,
            },
            110.0,
            &ids,
        );
        e.advance(115.0, &ids);
        assert_eq!(e.sim.snapshots.len(), 1);
        assert_eq!(e.sim.snapshots[0].parent, None);
        assert_eq!(e.sim.delta, 2);
        let last = e.sim.snapshots[0].moref.clone();
        e.queue(
            TaskKind::RemoveSnapshot {
                snapshot: last.clone(),
                remove_children: false,
            },
            115.0,
            &ids,
        );
        e.advance(120.0, &ids);
        assert!(e.sim.snapshots.is_empty());
        assert_eq!(e.current_files()[0], "[ds1] web/web.vmdk");
        // Removing it again: the task fails.
        e.queue(
            TaskKind::RemoveSnapshot {
                snapshot: last,
                remove_children: false,
            },
            120.0,
            &ids,
        );
        e.advance(130.0, &ids);
        assert!(matches!(
            e.sim.tasks.last().and_then(|t| t.outcome.clone()),
            Some(Err(VimFault {
                type_name: "ManagedObjectNotFound",
                ..
            }))
        ));
    }

    #[test]
    fn cbt_gives_change_ids_after_a_stun_and_a_new_epoch_each_time() {
        let ids = Ids::default();
        let mut e = entry(
            r#"
[[source_vm]]
name = "db"
cbt = false
"#,
        );
        assert_eq!(e.change_id_now(0), None);
        e.queue(
            TaskKind::Reconfigure {
                change_tracking: Some(true),
            },
            0.0,
            &ids,
        );
        e.advance(10.0, &ids);
        assert!(e.sim.cbt_enabled);
        assert_eq!(e.change_id_now(0), None, "not before a stun");
        e.queue(
            TaskKind::CreateSnapshot {
                name: "s".into(),
                description: String::new(),
                memory: false,
                quiesce: false,
                ex: true,
            },
            10.0,
            &ids,
        );
        e.advance(20.0, &ids);
        let id = e.change_id_now(0).expect("change id after the stun");
        assert!(e.sim.snapshots[0].change_ids[0].is_some());
        assert!(id.starts_with("52 "));
    }

    #[test]
    fn changed_areas_page_at_the_cap_and_match_the_log() {
        let ids = Ids::default();
        // 4 KiB/s: one 240 KiB write a minute, spread over a 200 GiB disk.
        let mut e = entry(
            r#"
[[source_vm]]
name = "db"
write_rate = "4Ki"
disks = [{ file = "[ds1] db/db.vmdk", size = "200Gi" }]
"#,
        );
        let snap = |e: &mut VmEntry, name: &str, at: f64| {
            e.queue(
                TaskKind::CreateSnapshot {
                    name: name.into(),
                    description: String::new(),
                    memory: false,
                    quiesce: false,
                    ex: false,
                },
                at,
                &ids,
            );
            e.advance(at + 10.0, &ids);
            e.sim.snapshots.last().expect("taken").clone()
        };
        let first = snap(&mut e, "s1", 600.0);
        let second = snap(&mut e, "s2", 600.0 + 2500.0 * 60.0);
        let since = first.change_ids[0].clone().expect("change id");
        let (lo, hi) = (first.gens[0], second.gens[0]);
        let want = e.sim.log.areas_between(0, lo, hi);
        assert!(want.len() > CHANGED_AREAS_PER_CALL, "{}", want.len());
        // Page through as a client does.
        let (mut got, mut offset, mut calls) = (Vec::new(), 0u64, 0);
        let capacity = 200u64 << 30;
        while offset < capacity {
            let info = e
                .changed_areas(&second.moref, 2000, offset as i64, &since)
                .expect("areas");
            assert_eq!(info.start_offset, offset);
            assert!(info.areas.len() <= CHANGED_AREAS_PER_CALL);
            assert!(info
                .areas
                .iter()
                .all(|&(s, n)| s >= offset && s + n <= offset + info.length));
            got.extend(info.areas);
            offset += info.length;
            calls += 1;
        }
        assert_eq!(calls, want.len().div_ceil(CHANGED_AREAS_PER_CALL));
        assert_eq!(got, want);
        // The bytes are the writes of those generations (less any overlap).
        let bytes: u64 = got.iter().map(|a| a.1).sum();
        assert!(bytes <= e.sim.log.bytes_between(0, lo, hi) && bytes > 0);
        // "*": everything written up to the snapshot.
        let all = e.changed_areas(&first.moref, 2000, 0, "*").expect("all");
        assert_eq!(all.areas, e.sim.log.areas_between(0, 0, first.gens[0]));
        assert_eq!(all.length, capacity);
        // Since the snapshot's own change ID: nothing.
        let none = e
            .changed_areas(&first.moref, 2000, 0, &since)
            .expect("none");
        assert!(none.areas.is_empty());
        // Faults.
        let kind = |r: Result<DiskChangeInfo, VimFault>| r.expect_err("fault").type_name;
        assert_eq!(
            kind(e.changed_areas("snapshot-9", 2000, 0, &since)),
            "ManagedObjectNotFound"
        );
        assert_eq!(
            kind(e.changed_areas(&second.moref, 2001, 0, &since)),
            "InvalidArgument"
        );
        assert_eq!(
            kind(e.changed_areas(&second.moref, 2000, -1, &since)),
            "InvalidArgument"
        );
        assert_eq!(
            kind(e.changed_areas(&second.moref, 2000, capacity as i64, &since)),
            "InvalidArgument"
        );
        assert_eq!(
            kind(e.changed_areas(&second.moref, 2000, 0, "snapshot-1")),
            "InvalidArgument"
        );
        let foreign = change_id(&change_id_prefix(1, 0, 1), lo);
        let f = e
            .changed_areas(&second.moref, 2000, 0, &foreign)
            .expect_err("another disk's change ID");
        assert_eq!(f.type_name, "FileFault");
        assert!(
            f.message.contains("[ds1] db/db-000001.vmdk"),
            "{}",
            f.message
        );
    }

    #[test]
    fn pre_existing_snapshots_form_a_chain_and_the_vm_runs_on_a_delta() {
        let e = entry(
            r#"
[[source_vm]]
name = "db"
snapshots = ["pre-patch", "post-patch"]
"#,
        );
        assert_eq!(e.sim.snapshots.len(), 2);
        assert_eq!(
            e.sim.snapshots[1].parent.as_deref(),
            Some(e.sim.snapshots[0].moref.as_str())
        );
        assert_eq!(e.current_files()[0], "[datastore1] db/db-000002.vmdk");
        assert_eq!(e.find_snapshot("pre-patch").map(|s| s.id), Ok(1));
        let r = Render {
            clock_start_ms: 0,
            user: "u".into(),
        };
        let info = r.snapshot_info(&e).expect("snapshots");
        assert_eq!(
            info["rootSnapshotList"][0]["childSnapshotList"][0]["name"],
            "post-patch"
        );
        assert_eq!(
            info["rootSnapshotList"][0]["createTime"],
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn guest_shutdown_needs_tools_and_powers_off_later() {
        let ids = Ids::default();
        let mut e = entry(WEB);
        e.shutdown_guest(100.0, 20.0).expect("tools run");
        e.advance(119.0, &ids);
        assert_eq!(e.vm.power, PowerState::On);
        e.advance(121.0, &ids);
        assert_eq!(e.vm.power, PowerState::Off);
        assert_eq!(e.vm.off_since, Some(120.0));
        let gen = e.sim.log.gen();
        e.advance(10_000.0, &ids);
        assert_eq!(e.sim.log.gen(), gen, "no writes after the power-off");
        let f = e.shutdown_guest(10_000.0, 20.0).expect_err("off");
        assert_eq!(f.type_name, "InvalidPowerState");
        let mut no_tools = entry(
            r#"
[[source_vm]]
name = "db"
tools = false
"#,
        );
        let f = no_tools.shutdown_guest(0.0, 20.0).expect_err("no tools");
        assert_eq!(f.type_name, "ToolsUnavailable");
    }
}
