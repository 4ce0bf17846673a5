//! Simulated CDI: imports DataVolumes at a modelled bandwidth. A kube-rs client of the API,
//! so it runs against the embedded sim or any API server with the CDI CRD.
//!
//! Phases follow CDI (containerized-data-importer `pkg/controller/datavolume/` and
//! `pkg/controller/import-controller.go`): the PVC is created and bound (`PVCBound`,
//! condition `Bound`), then `ImportScheduled`, `ImportInProgress` with `status.progress`
//! ("45.20%") advancing at `min(bandwidth_per_import, bandwidth_total / active imports)`,
//! then `Succeeded` ("100.0%", `Ready`).
//!
//! Failures as CDI reports them, not as a tidy `Failed`:
//! - an importer error (bad credentials, `import-failure`) restarts the importer in place:
//!   `ImportInProgress`, a rising `restartCount`, `Running` False with the reason and
//!   message; it never ends by itself (`once`: one restart, then success);
//! - a missing VDDK image keeps it `ImportScheduled` with `Bound` reason `AwaitingVDDK`;
//! - a missing Secret or key: `Running` False `CreateContainerConfigError`, no restarts;
//! - an init image that cannot be pulled (`vddk-image-pull`): `PodInitializing`;
//! - only a fatal error (`import-fatal`, a checksum mismatch) ends `Failed`;
//! - with volume populators (no `usePopulator: "false"`) the reasons and restarts live on
//!   a hidden PVC and the DataVolume shows a bare `Running` False;
//! - a `WaitForFirstConsumer` StorageClass without the immediate-binding annotation never
//!   starts (`WaitForFirstConsumer`, or `PendingPopulation` with populators).
//!
//! `slow-import` divides the rate.
//!
//! Every importer reads its disk through one NFC connection to the source VM's ESXi host
//! (scenario `host`); with `nfc_per_host` connections open there, the next importer cannot
//! open its disk, exits with the NFC limit error ([`nfc_limit_message`]) and is restarted
//! in place like any importer error, until the host has room. [`ImportRecord`] keeps the
//! per-host load, its peak and the refusals.
//!
//! A DataVolume with `spec.checkpoints` (and a `vddk` source) is a multi-stage (warm)
//! import ([`Stages`]): each checkpoint is copied by its own importer pod (the first the
//! whole disk, later ones the bytes the source wrote between `previous` and `current`, as
//! the world's extents say), the PVC records `storage.checkpoint.copied.<current>`, and the
//! DataVolume is `Paused` until the spec names the next checkpoint; after the final one it
//! is `Succeeded` and the PVC says `storage.checkpoint.done: "true"`. An importer that
//! cannot find its snapshot (removed too early), or is given a change ID of another disk,
//! restarts in place with vddk's error message; `delta-import-failure` fails a stage after
//! the first.

use super::scenario::{Fault, FaultKind, FaultMode, Scenario};
use super::world::World;
use super::SimClock;
use crate::cluster::labels;
use crate::cluster::resources::{DataVolume, DvPhase, ANN_CHECKPOINT_COPIED, ANN_MULTI_STAGE_DONE};
use crate::plan::quantity::Quantity;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Watches DataVolumes and runs one import task per DataVolume that is not finished; the
/// task sees every later version of its DataVolume (a multi-stage import's new
/// checkpoints) through a `watch` channel.
pub async fn run(
    client: Client,
    scenario: Arc<Scenario>,
    clock: SimClock,
    record: Arc<ImportRecord>,
    world: Arc<World>,
) {
    let api: Api<DataVolume> = Api::all(client.clone());
    let active = record.clone();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    // Imports under way, by DataVolume uid: deleting the DataVolume stops its import (CDI
    // deletes the importer pod with it), so a DataVolume created again under the same name
    // is never written by the old import.
    let mut in_flight: HashMap<String, (CancellationToken, watch::Sender<DataVolume>)> =
        HashMap::new();
    // DataVolumes whose import ended. A DataVolume is imported once (restarts happen inside
    // its import); a watch that lags can still deliver an older event of it
    // (`ImportInProgress`) after the import ended, and that must not start it again.
    let mut ended: HashSet<String> = HashSet::new();
    // VMs whose DataVolume already failed once (`until-retry` faults).
    let failed_before: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        tokio::select! {
            Some(uid) = done_rx.recv() => {
                in_flight.remove(&uid);
                ended.insert(uid);
            }
            next = stream.next() => {
                let Some(item) = next else { break };
                let dv = match item {
                    Ok(watcher::Event::Apply(dv) | watcher::Event::InitApply(dv)) => dv,
                    Ok(watcher::Event::Delete(dv)) => {
                        let uid = dv.uid().unwrap_or_else(|| dv.name_any());
                        if let Some((stop, _)) = in_flight.get(&uid) {
                            stop.cancel();
                        }
                        // The garbage collector deletes the PVC the DataVolume controls
                        // (kubernetes `pkg/controller/garbagecollector/garbagecollector.go`,
                        // background propagation): a DataVolume created again under the
                        // same name starts from an empty disk, without the old checkpoints.
                        tokio::spawn(collect_pvc(client.clone(), dv));
                        continue;
                    }
                    _ => continue,
                };
                let phase = dv.status.as_ref().and_then(|s| s.phase.clone());
                if matches!(phase, Some(DvPhase::Succeeded | DvPhase::Failed)) {
                    continue;
                }
                let uid = dv.uid().unwrap_or_else(|| dv.name_any());
                if let Some((_, latest)) = in_flight.get(&uid) {
                    // The import under way sees the new spec (a checkpoint appended).
                    latest.send_replace(dv);
                    continue;
                }
                if ended.contains(&uid) {
                    continue;
                }
                let stop = CancellationToken::new();
                let (latest_tx, latest) = watch::channel(dv);
                in_flight.insert(uid.clone(), (stop.clone(), latest_tx));
                let (client, scenario, active, done) = (client.clone(), scenario.clone(), active.clone(), done_tx.clone());
                let world = world.clone();
                let failed_before = failed_before.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        r = import(client, scenario, clock, active, failed_before, world, latest) => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "sim CDI import ended");
                            }
                        }
                        () = stop.cancelled() => {}
                    }
                    let _ = done.send(uid);
                });
            }
        }
    }
}

/// The uid of the object that controls `pvc` (its `controller: true` owner reference).
fn controller_uid(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Deletes the PVC deleted DataVolume `dv` controlled, if it still does.
async fn collect_pvc(client: Client, dv: DataVolume) {
    let (Some(ns), Some(uid)) = (dv.namespace(), dv.uid()) else {
        return;
    };
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client, &ns);
    if let Ok(Some(pvc)) = pvcs.get_opt(&dv.name_any()).await {
        if controller_uid(&pvc) == Some(uid.as_str()) {
            let _ = pvcs.delete(&dv.name_any(), &Default::default()).await;
        }
    }
}

/// The source VM of a DataVolume Forklift created: its `vmID` label names the vSphere
/// managed object id (kubev2v/forklift `pkg/controller/plan/kubevirt.go` `vmLabels`).
fn forklift_vm(dv: &DataVolume, world: &World) -> Option<String> {
    let id = dv
        .labels()
        .get(crate::cluster::forklift_types::labels::VM_ID)?;
    world.find(id).map(|v| v.spec.name)
}

fn vm_of(dv: &DataVolume) -> String {
    dv.labels().get(labels::VM).cloned().unwrap_or_else(|| {
        dv.name_any()
            .rsplit_once("-disk")
            .map_or(dv.name_any(), |(v, _)| v.to_string())
    })
}

/// The sim's record of imports in flight: how many now, and the most at once (tests assert
/// the engine's concurrency limits against it); per ESXi host, the NFC connections open
/// (disk transfers reading through it) and the most at once; and how many importers a host
/// refused for its NFC limit.
#[derive(Debug, Default)]
pub struct ImportRecord {
    active: AtomicUsize,
    peak: AtomicUsize,
    hosts: Mutex<BTreeMap<String, HostLoad>>,
    refusals: AtomicUsize,
}

/// The NFC connections one ESXi host serves: now, and the most at once.
#[derive(Debug, Default, Clone, Copy)]
struct HostLoad {
    active: usize,
    peak: usize,
}

impl ImportRecord {
    fn start(&self) {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn end(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
    fn load(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
    fn hosts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, HostLoad>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Opens an NFC connection to `host`, unless `limit` are open already (then the
    /// refusal is counted).
    fn nfc_open(&self, host: &str, limit: Option<u32>) -> bool {
        let mut hosts = self.hosts();
        let load = hosts.entry(host.to_string()).or_default();
        if limit.is_some_and(|l| load.active >= l as usize) {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        load.active += 1;
        load.peak = load.peak.max(load.active);
        true
    }
    fn nfc_close(&self, host: &str) {
        if let Some(load) = self.hosts().get_mut(host) {
            load.active = load.active.saturating_sub(1);
        }
    }
    /// Imports running right now.
    pub fn active(&self) -> usize {
        self.load()
    }
    /// The most imports that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
    /// Per ESXi host, the disk transfers reading through it right now (its open NFC
    /// connections). Transfers of source VMs without a host are not counted.
    pub fn host_active(&self) -> BTreeMap<String, usize> {
        self.hosts()
            .iter()
            .map(|(h, l)| (h.clone(), l.active))
            .collect()
    }
    /// Per ESXi host, the most disk transfers that ever read through it at once.
    pub fn host_peaks(&self) -> BTreeMap<String, usize> {
        self.hosts()
            .iter()
            .map(|(h, l)| (h.clone(), l.peak))
            .collect()
    }
    /// Importers that could not open their disk because the host was at `nfc_per_host`
    /// (each one an importer exit and an in-place restart).
    pub fn nfc_refusals(&self) -> usize {
        self.refusals.load(Ordering::SeqCst)
    }
}

/// Ends an import in the record, however it ends.
struct ActiveGuard(Arc<ImportRecord>);
impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The importer's exit message when the ESXi host refuses it another NFC connection.
///
/// VMware's VDDK programming guide ("NFC Session Limits and Timeouts") documents that
/// `VixDiskLib_Open()` takes one NFC connection per virtual disk on the ESXi host and that
/// the host limits them (a connection count on old releases, a 32/48 MB buffer budget
/// since 5.x); SAN and HotAdd are exempt, CDI uses NBD(SSL). CDI's importer starts nbdkit
/// with the VDDK plugin and connects to it (containerized-data-importer
/// `pkg/importer/vddk-datasource_amd64.go` `createNbdKitWrapper`, from
/// `createVddkDataSource`); when the plugin cannot open the disk the NBD handshake fails,
/// `cmd/cdi-importer` exits with `Unable to connect to vddk data source: <error>` in its
/// termination message, and CDI shows it as the `Running` condition (reason `Error`) and
/// restarts the pod in place, the path [`Writer::restart`] models. The real termination
/// message carries only libnbd's handshake error (the VDDK line is in nbdkit's log, which
/// the importer dumps to its own log); the sim appends that line so the rehearsal names
/// the cause. The VDDK error name and text (`NBD_ERR_INSUFFICIENT_RESOURCES`, "The host
/// … has reached its NFC connection limit") are written from memory, not checked against
/// a VDDK build.
pub fn nfc_limit_message(host: &str, file: &str) -> String {
    format!(
        "Unable to connect to vddk data source: nbd_connect_uri: handshake: server has no export named '': No such file or directory (nbdkit vddk: VixDiskLib_Open: {file}: NBD_ERR_INSUFFICIENT_RESOURCES: The host {host} has reached its NFC connection limit)"
    )
}

/// The source side of one DataVolume's transfers: the ESXi host its VM runs on, that
/// host's NFC limit (`nfc_per_host`), and the NFC connection the running importer holds.
struct Nfc {
    record: Arc<ImportRecord>,
    host: Option<String>,
    limit: Option<u32>,
    /// The disk the importer opens (`vddk.backingFile`), for the message.
    file: String,
    open: bool,
}

impl Nfc {
    /// The importer opens its disk: `false` when the host has no NFC connection left.
    /// A VM without a host is never refused (and not counted).
    fn try_open(&mut self) -> bool {
        if self.open {
            return true;
        }
        let Some(host) = &self.host else {
            return true;
        };
        self.open = self.record.nfc_open(host, self.limit);
        self.open
    }

    /// The importer exits (done, failed or restarting): its connection closes.
    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            if let Some(host) = &self.host {
                self.record.nfc_close(host);
            }
        }
    }

    fn new(record: &Arc<ImportRecord>, scenario: &Scenario, vm: &str, dv: &DataVolume) -> Nfc {
        Nfc {
            record: record.clone(),
            host: scenario.host_of(vm).map(str::to_string),
            limit: scenario.nfc_per_host,
            file: dv
                .spec
                .source
                .pointer("/vddk/backingFile")
                .and_then(|v| v.as_str())
                .map_or_else(|| dv.name_any(), str::to_string),
            open: false,
        }
    }

    fn refused(&self) -> String {
        nfc_limit_message(self.host.as_deref().unwrap_or_default(), &self.file)
    }

    /// Opens the connection, the importer exiting and restarting in place (CrashLoopBackOff)
    /// for as long as the host refuses it.
    async fn open(
        &mut self,
        w: &Writer,
        clock: SimClock,
        restarts: &mut Restarts,
    ) -> Result<(), kube::Error> {
        while !self.try_open() {
            restarts.bump();
            w.restart(clock, restarts.shown, restarts.pod, &self.refused())
                .await?;
        }
        Ok(())
    }
}

impl Drop for Nfc {
    fn drop(&mut self) {
        self.close();
    }
}

/// What keeps an importer from running, decided each time CDI (re)starts it.
enum Blocker {
    /// No VDDK image: no `initImageURL`, no `v2v-vmware` ConfigMap. CDI does not create the
    /// importer pod; the PVC's `Bound` condition reads `AwaitingVDDK`
    /// (containerized-data-importer `pkg/controller/import-controller.go`).
    AwaitingVddk,
    /// The importer pod cannot start: its container waits with this reason and message
    /// (CDI copies the first container's waiting reason, `pkg/controller/util.go`
    /// `setAnnotationsFromPodWithPrefix`): a missing Secret or key is
    /// `CreateContainerConfigError`; an init image that cannot be pulled leaves the main
    /// container in `PodInitializing` (CDI inspects only the main container).
    Waiting(&'static str, String),
    /// The importer runs and exits with an error; the pod restarts it in place
    /// (`RestartPolicy: OnFailure`) and `restartCount` rises.
    Crashes(String),
}

/// Writes one DataVolume's status (every write names its uid: one deleted and created again
/// under the same name is another object, and the API server refuses the old import's
/// writes to it).
struct Writer {
    api: Api<DataVolume>,
    name: String,
    uid: String,
    /// Volume populators in use: the importer's reasons and restarts live on the hidden
    /// `prime-*` PVC; the DataVolume shows a bare `Running` False and no restarts.
    populator: bool,
}

impl Writer {
    async fn status(&self, v: serde_json::Value) -> Result<(), kube::Error> {
        self.api
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "uid": self.uid }, "status": v })),
            )
            .await
            .map(|_| ())
    }

    /// The restart count and `Running` condition the DataVolume shows.
    fn shown(&self, restarts: i64, reason: &str, message: &str) -> (i64, serde_json::Value) {
        if self.populator {
            (0, json!({ "type": "Running", "status": "False" }))
        } else {
            (
                restarts,
                json!({ "type": "Running", "status": "False", "reason": reason, "message": message }),
            )
        }
    }

    /// The importer exited with `message` and is restarted in place: the DataVolume stays
    /// `ImportInProgress` with a rising `restartCount` and a `Running` condition `False`
    /// carrying the container's reason and message (CDI `pkg/controller/util.go`,
    /// `pkg/controller/datavolume/conditions.go`). Waits out the CrashLoopBackOff (10 s
    /// doubling to 5 min; `nth`: the pod's restarts so far).
    async fn restart(
        &self,
        clock: SimClock,
        shown_restarts: i64,
        nth: i64,
        message: &str,
    ) -> Result<(), kube::Error> {
        let (r, running) = self.shown(shown_restarts, "Error", message);
        self.status(json!({
            "phase": "ImportInProgress", "progress": "0.00%", "restartCount": r,
            "conditions": [
                { "type": "Bound", "status": "True", "reason": "Bound" },
                { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                running,
            ]
        }))
        .await?;
        clock
            .sleep((10.0 * 2f64.powi((nth - 1).clamp(0, 5) as i32)).min(300.0))
            .await;
        Ok(())
    }
}

/// How an importer run ends early.
enum Fail {
    /// Exits with this message; restarted in place.
    Restart(String),
    /// A fatal error (a checksum mismatch): the only way a DataVolume ends `Failed`
    /// (CDI `pkg/controller/datavolume/controller-base.go`).
    Fatal,
}

/// The restart counts of one importer pod: the DataVolume shows `shown` (CDI raises the
/// PVC's `AnnPodRestarts` only when a pod's count exceeds it, `pkg/controller/util.go`
/// `setAnnotationsFromPodWithPrefix`), `pod` counts this pod's own.
struct Restarts {
    shown: i64,
    pod: i64,
}

impl Restarts {
    fn bump(&mut self) {
        self.pod += 1;
        self.shown = self.shown.max(self.pod);
    }
}

/// One importer pod copying `size` bytes (from `done` on) at the modelled bandwidth, with
/// progress; `fail(fraction)` says whether it fails at that point. `Ok(false)`: it ended
/// `Failed`.
#[allow(clippy::too_many_arguments)]
async fn transfer(
    w: &Writer,
    scenario: &Scenario,
    clock: SimClock,
    active: &ImportRecord,
    nfc: &mut Nfc,
    slow: f64,
    size: u64,
    mut done: u64,
    restarts: &mut Restarts,
    mut fail: impl FnMut(f64) -> Option<Fail>,
) -> Result<bool, kube::Error> {
    let tick = 0.25_f64; // real seconds between progress updates
    loop {
        let n = active.load().max(1) as u64;
        let rate = (scenario
            .bandwidth_per_import
            .min(scenario.bandwidth_total / n) as f64
            / slow)
            .max(1.0);
        // Time passes before the bytes arrive: the copy takes its simulated time (the
        // last step only what the rest needs), and the source writes meanwhile.
        let step = ((size.saturating_sub(done)) as f64 / rate / clock.speed).clamp(0.0, tick);
        clock.sleep_real(step).await;
        done = (done as f64 + rate * step * clock.speed)
            .ceil()
            .min(size as f64) as u64;
        let frac = done as f64 / size as f64;
        match fail(frac) {
            Some(Fail::Fatal) => {
                w.status(json!({
                    "phase": "Failed", "restartCount": if w.populator { 0 } else { restarts.shown },
                    "conditions": [
                        { "type": "Bound", "status": "True", "reason": "Bound" },
                        { "type": "Ready", "status": "False", "reason": "Error" },
                        { "type": "Running", "status": "False", "reason": "Error",
                          "message": "Unable to process data: checksum mismatch (simulated)" },
                    ]
                }))
                .await?;
                return Ok(false);
            }
            Some(Fail::Restart(message)) => {
                restarts.bump();
                done = 0;
                // The importer exits: its NFC connection closes, and the restarted one
                // must open another (the host may be full by then).
                nfc.close();
                w.restart(clock, restarts.shown, restarts.pod, &message)
                    .await?;
                nfc.open(w, clock, restarts).await?;
                continue;
            }
            None => {}
        }
        if done >= size {
            return Ok(true);
        }
        w.status(json!({
            "phase": "ImportInProgress", "progress": format!("{:.2}%", frac * 100.0),
            "restartCount": if w.populator { 0 } else { restarts.shown },
            "conditions": [
                { "type": "Bound", "status": "True", "reason": "Bound" },
                { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                { "type": "Running", "status": "True", "reason": "Pod is running" },
            ]
        }))
        .await?;
    }
}

async fn import(
    client: Client,
    scenario: Arc<Scenario>,
    clock: SimClock,
    active: Arc<ImportRecord>,
    failed_before: Arc<std::sync::Mutex<HashSet<String>>>,
    world: Arc<World>,
    mut latest: watch::Receiver<DataVolume>,
) -> Result<(), kube::Error> {
    let dv = latest.borrow_and_update().clone();
    let ns = dv.namespace().unwrap_or_default();
    let name = dv.name_any();
    let api: Api<DataVolume> = Api::namespaced(client.clone(), &ns);
    let size = dv
        .spec
        .storage
        .pointer("/resources/requests/storage")
        .and_then(|v| v.as_str())
        .and_then(|s| Quantity::parse(s).ok())
        .map_or(1 << 30, |q| q.bytes.max(1));
    let vm = forklift_vm(&dv, &world).unwrap_or_else(|| vm_of(&dv));
    let fault = |k: FaultKind| {
        scenario
            .faults
            .iter()
            .find(|f| f.kind == k && f.vm == vm)
            .cloned()
    };
    let slow = fault(FaultKind::SlowImport)
        .and_then(|f| f.factor)
        .unwrap_or(1.0)
        .max(1.0);
    let failure = fault(FaultKind::ImportFailure).filter(|f| {
        // `until-retry`: only the first DataVolume of the VM fails.
        f.mode != FaultMode::UntilRetry
            || !failed_before
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&vm)
    });
    let fatal = fault(FaultKind::ImportFatal).is_some();
    let uid = dv.uid().unwrap_or_default();
    let pp = PatchParams::default();
    let anno = dv.annotations().clone();
    let class = dv
        .spec
        .storage
        .get("storageClassName")
        .and_then(|v| v.as_str())
        .unwrap_or("sim-standard")
        .to_string();
    let binding = storage_binding(&client, &class).await;
    // CDI uses volume populators unless the DataVolume says `usePopulator: "false"` or the
    // StorageClass is not CSI (`pkg/controller/datavolume/controller-base.go`
    // `shouldUseCDIPopulator`); every sim StorageClass is CSI (`sim.wavelift.io/*`).
    let populator = anno
        .get("cdi.kubevirt.io/storage.usePopulator")
        .is_none_or(|v| v != "false");
    let immediate = anno.contains_key("cdi.kubevirt.io/storage.bind.immediate.requested");
    let w = Writer {
        api: api.clone(),
        name: name.clone(),
        uid: uid.clone(),
        populator,
    };

    // The PVC (the sim's storage binds at once unless the class waits for a consumer).
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let mut pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": name, "namespace": ns, "labels": dv.labels(),
            "ownerReferences": [{ "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "name": name,
                                  "uid": dv.uid().unwrap_or_default(), "controller": true }] },
        "spec": {
            "accessModes": dv.spec.storage.get("accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "storageClassName": class,
            "resources": { "requests": { "storage": size.to_string() } }
        }
    }))
    .map_err(kube::Error::SerdeError)?;
    pvc.metadata.resource_version = None;
    match pvcs.create(&PostParams::default(), &pvc).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // A PVC of a former DataVolume of this name that the garbage collector has not
            // removed yet: it goes, and this DataVolume gets its own.
            let stale = pvcs
                .get_opt(&name)
                .await?
                .is_some_and(|p| controller_uid(&p).is_some_and(|owner| owner != uid.as_str()));
            if stale {
                let _ = pvcs.delete(&name, &Default::default()).await;
                match pvcs.create(&PostParams::default(), &pvc).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    }
    if binding == Binding::WaitForFirstConsumer && !immediate {
        // Nothing consumes the PVC before the VM exists: the import never starts
        // (`shouldBeMarkedPendingPopulation` / `shouldBeMarkedWaitForFirstConsumer`).
        let phase = if populator {
            DvPhase::PendingPopulation
        } else {
            DvPhase::WaitForFirstConsumer
        };
        w.status(json!({
            "phase": phase.as_str(), "claimName": name, "progress": "N/A", "restartCount": 0,
            "conditions": [
                { "type": "Bound", "status": "False", "reason": "Pending", "message": format!("PVC {name} Pending") },
                { "type": "Ready", "status": "False" },
                { "type": "Running", "status": "False" },
            ]
        }))
        .await?;
        return Ok(());
    }
    let _ = pvcs
        .patch_status(&name, &pp, &Patch::Merge(json!({ "status": { "phase": "Bound", "capacity": { "storage": size.to_string() } } })))
        .await;
    // A blank image (`source.blank`): the importer writes an empty disk and is done
    // (containerized-data-importer `pkg/importer/data-processor.go` with a `none` source
    // creates a blank image); nothing is read from a source. Forklift's cold virt-v2v path
    // creates these for virt-v2v to write into.
    if dv.spec.source.get("blank").is_some() {
        w.status(json!({
            "phase": "Succeeded", "claimName": name, "progress": "100.0%", "restartCount": 0,
            "conditions": [
                { "type": "Bound", "status": "True", "reason": "Bound", "message": format!("PVC {name} Bound") },
                { "type": "Ready", "status": "True", "reason": "" },
                { "type": "Running", "status": "False", "reason": "Completed" },
            ]
        }))
        .await?;
        return Ok(());
    }

    let start_restarts = dv.status.as_ref().map_or(0, |s| s.restart_count);
    let mut restarts = Restarts {
        shown: start_restarts,
        pod: 0,
    };
    let done: u64 = dv
        .status
        .as_ref()
        .and_then(|s| s.progress_fraction())
        .map_or(0, |f| (f * size as f64) as u64);
    w.status(json!({
        "phase": "PVCBound", "claimName": name, "progress": "N/A", "restartCount": restarts.shown,
        "conditions": [
            { "type": "Bound", "status": "True", "reason": "Bound", "message": format!("PVC {name} Bound") },
            { "type": "Ready", "status": "False", "reason": "TransferRunning" },
            { "type": "Running", "status": "False", "reason": "Pending" },
        ]
    }))
    .await?;
    clock.sleep(1.0).await;
    loop {
        let blocker = match blocker(
            &client,
            &scenario,
            &dv,
            &ns,
            fault(FaultKind::VddkImagePull).is_some(),
        )
        .await
        {
            Some(b) => b,
            None => break,
        };
        match blocker {
            Blocker::AwaitingVddk => {
                w.status(json!({
                    "phase": "ImportScheduled",
                    "conditions": [
                        { "type": "Bound", "status": "False", "reason": "AwaitingVDDK",
                          "message": "waiting for v2v-vmware configmap or cdi.kubevirt.io/storage.pod.vddk.initimageurl annotation for VDDK image" },
                        { "type": "Ready", "status": "False" },
                        { "type": "Running", "status": "False" },
                    ]
                }))
                .await?;
            }
            Blocker::Waiting(reason, message) => {
                let (r, running) = w.shown(restarts.shown, reason, &message);
                w.status(json!({
                    "phase": "ImportScheduled", "restartCount": r,
                    "conditions": [
                        { "type": "Bound", "status": "True", "reason": "Bound" },
                        { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                        running,
                    ]
                }))
                .await?;
            }
            Blocker::Crashes(message) => {
                restarts.bump();
                let (r, running) = w.shown(restarts.shown, "Error", &message);
                w.status(json!({
                    "phase": "ImportInProgress", "progress": "N/A", "restartCount": r,
                    "conditions": [
                        { "type": "Bound", "status": "True", "reason": "Bound" },
                        { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                        running,
                    ]
                }))
                .await?;
                // CrashLoopBackOff: 10 s doubling to 5 min between restarts.
                let backoff = (10.0 * 2f64.powi((restarts.pod - 1).clamp(0, 5) as i32)).min(300.0);
                clock.sleep(backoff).await;
                continue;
            }
        }
        // Blocked until something changes (the Secret, a ConfigMap): look again later.
        clock.sleep(30.0).await;
    }
    w.status(json!({ "phase": "ImportScheduled" })).await?;
    clock.sleep(1.0).await;

    let backing = dv
        .spec
        .source
        .pointer("/vddk/backingFile")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    // The disk this DataVolume copies is the one its `vddk.backingFile` names, as a real
    // importer reads that VMDK (`pkg/importer/vddk-datasource_amd64.go` opens the backing
    // file it is given); without one (http, or a file the source has not), its name's.
    let disk_index = backing
        .as_deref()
        .and_then(|b| world.disk_of(&vm, b))
        .unwrap_or_else(|| {
            name.rsplit_once("-disk")
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .unwrap_or(0)
        });
    world.copy_of(&format!("{ns}/{name}"), &vm, disk_index);
    if let (Some(backing), false) = (backing, dv.spec.checkpoints.is_empty()) {
        let stages = Stages {
            w: &w,
            pvcs: &pvcs,
            scenario: &scenario,
            clock,
            active: &active,
            world: &world,
            vm: &vm,
            backing,
            size,
            slow,
        };
        return stages
            .run(
                &mut latest,
                restarts,
                failure,
                fatal,
                fault(FaultKind::DeltaImportFailure),
            )
            .await;
    }

    active.start();
    let guard = ActiveGuard(active.clone());
    // The importer opens the disk through the ESXi host's NFC server (refused, and
    // restarted in place, while the host is at `nfc_per_host`).
    let mut nfc = Nfc::new(&active, &scenario, &vm, &dv);
    nfc.open(&w, clock, &mut restarts).await?;
    // The transfer reads the source disk from here on (world.rs: what the copy holds).
    world.copy_started(&vm, disk_index);
    let mut failed_once = false;
    let finished = transfer(
        &w,
        &scenario,
        clock,
        &active,
        &mut nfc,
        slow,
        size,
        done,
        &mut restarts,
        |frac| {
            if frac < 0.4 {
                return None;
            }
            if fatal {
                return Some(Fail::Fatal);
            }
            let f = failure.as_ref()?;
            let forever = matches!(f.mode, FaultMode::Always | FaultMode::UntilRetry);
            if !forever && failed_once {
                return None;
            }
            failed_once = true;
            if f.mode == FaultMode::UntilRetry {
                failed_before
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(vm.clone());
            }
            Some(Fail::Restart(
                "Unable to connect to vddk data source: simulated import failure".to_string(),
            ))
        },
    )
    .await?;
    // The transfer is over before the phase says so: a watcher that sees `Succeeded` and
    // starts the next import never overlaps this one in the record.
    drop(nfc);
    drop(guard);
    if !finished {
        return Ok(());
    }
    world.copy_finished(&vm, disk_index);
    w.status(json!({
        "phase": "Succeeded", "progress": "100.0%",
        "restartCount": if populator { 0 } else { restarts.shown },
        "conditions": [
            { "type": "Bound", "status": "True", "reason": "Bound" },
            { "type": "Ready", "status": "True", "reason": "" },
            { "type": "Running", "status": "False", "reason": "Completed" },
        ]
    }))
    .await?;
    Ok(())
}

/// A multi-stage (warm) import of one DataVolume: each checkpoint of `spec.checkpoints`
/// not yet copied is copied by a new importer pod, then the DataVolume pauses until the
/// spec names another (containerized-data-importer `pkg/controller/common/checkpoint-util.go`
/// `GetNextCheckpoint`, `setPvcMultistageImportAnnotations`,
/// `deleteMultistageImportAnnotations`; `pkg/controller/datavolume/import-controller.go`
/// sets `Paused` while the PVC's multi-stage import is in progress, `Succeeded` once it is
/// done).
///
/// On the DataVolume's PVC (with `usePopulator: "false"`; with populators CDI keeps them on
/// the hidden `prime-*` PVC, which the sim does not create): `storage.checkpoint.current`,
/// `.previous`, `.final` (`"true"`/`"false"`) and `.pod.id` for the stage under way;
/// `storage.checkpoint.copied.<current>` = the importer pod's id once a stage is copied;
/// after the final stage every one of those is removed and `storage.checkpoint.done` is
/// `"true"`. Whether a stage is the final one is decided when its pod starts: the final
/// checkpoint and `finalCheckpoint: true` must arrive in the same update, as with CDI.
struct Stages<'a> {
    w: &'a Writer,
    pvcs: &'a Api<PersistentVolumeClaim>,
    scenario: &'a Scenario,
    clock: SimClock,
    active: &'a Arc<ImportRecord>,
    world: &'a World,
    vm: &'a str,
    /// The DataVolume's `vddk.backingFile` (the base disk).
    backing: String,
    /// The whole disk (a first stage copies it all).
    size: u64,
    slow: f64,
}

const ANN_CURRENT: &str = "cdi.kubevirt.io/storage.checkpoint.current";
const ANN_PREVIOUS: &str = "cdi.kubevirt.io/storage.checkpoint.previous";
const ANN_FINAL: &str = "cdi.kubevirt.io/storage.checkpoint.final";
const ANN_POD_ID: &str = "cdi.kubevirt.io/storage.checkpoint.pod.id";

impl Stages<'_> {
    async fn annotate(&self, annotations: serde_json::Value) -> Result<(), kube::Error> {
        if self.w.populator {
            return Ok(());
        }
        self.pvcs
            .patch(
                &self.w.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": annotations } })),
            )
            .await
            .map(|_| ())
    }

    async fn run(
        &self,
        latest: &mut watch::Receiver<DataVolume>,
        mut restarts: Restarts,
        failure: Option<Fault>,
        fatal: bool,
        delta_failure: Option<Fault>,
    ) -> Result<(), kube::Error> {
        let (w, vm) = (self.w, self.vm);
        // What the PVC says is copied already (a restarted controller resumes there).
        let pvc = self.pvcs.get(&w.name).await?;
        let pvc_anno = pvc.metadata.annotations.unwrap_or_default();
        if pvc_anno.get(ANN_MULTI_STAGE_DONE).map(String::as_str) == Some("true") {
            return self.succeeded(&restarts).await;
        }
        let prefix = format!("{ANN_CHECKPOINT_COPIED}.");
        let mut copied: HashSet<String> = pvc_anno
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .collect();
        if copied.is_empty() {
            // A new DataVolume: its copy holds nothing yet.
            if let Some(disk) = self.world.disk_of(vm, &self.backing) {
                self.world.copy_reset(vm, disk);
            }
        }
        let mut failed_once = false;
        let mut delta_failed_once = false;
        loop {
            let dv = latest.borrow_and_update().clone();
            let count = dv.spec.checkpoints.len();
            let next = dv
                .spec
                .checkpoints
                .iter()
                .enumerate()
                .find(|(_, c)| !c.current.is_empty() && !copied.contains(&c.current));
            let Some((i, cp)) = next else {
                // Paused until the spec names another checkpoint.
                if latest.changed().await.is_err() {
                    return Ok(());
                }
                continue;
            };
            let cp = cp.clone();
            let is_final = i + 1 == count && dv.spec.final_checkpoint == Some(true);
            let first = copied.is_empty();
            // A new importer pod for this checkpoint.
            let pod_id = uuid::Uuid::new_v4().to_string();
            self.annotate(json!({
                ANN_CURRENT: cp.current, ANN_PREVIOUS: cp.previous,
                ANN_FINAL: is_final.to_string(), ANN_POD_ID: pod_id,
            }))
            .await?;
            restarts.pod = 0;
            w.status(json!({
                "phase": "ImportScheduled", "progress": "N/A",
                "conditions": [
                    { "type": "Bound", "status": "True", "reason": "Bound" },
                    { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                    { "type": "Running", "status": "False", "reason": "Pending" },
                ]
            }))
            .await?;
            self.clock.sleep(1.0).await;
            self.active.start();
            let guard = ActiveGuard(self.active.clone());
            // This stage's importer pod holds its own NFC connection to the host.
            let mut nfc = Nfc::new(self.active, self.scenario, vm, &dv);
            loop {
                // The importer connects: the current snapshot, the disk, the previous
                // checkpoint (vddk-datasource_amd64.go).
                let plan = match self
                    .world
                    .stage_plan(vm, &self.backing, &cp.previous, &cp.current)
                {
                    Ok(p) => p,
                    Err(e) => {
                        restarts.bump();
                        w.restart(self.clock, restarts.shown, restarts.pod, &e.message())
                            .await?;
                        continue;
                    }
                };
                // With the snapshot and disk found, nbdkit opens the disk through the host
                // (vddk-datasource_amd64.go: `createNbdKitWrapper` comes last).
                if !nfc.try_open() {
                    restarts.bump();
                    w.restart(self.clock, restarts.shown, restarts.pod, &nfc.refused())
                        .await?;
                    continue;
                }
                let bytes = plan
                    .delta_bytes
                    .unwrap_or(self.size)
                    .clamp(1, self.size.max(1));
                let done = transfer(
                    w,
                    self.scenario,
                    self.clock,
                    self.active,
                    &mut nfc,
                    self.slow,
                    bytes,
                    0,
                    &mut restarts,
                    |frac| {
                        if frac < 0.4 {
                            return None;
                        }
                        if first {
                            if fatal {
                                return Some(Fail::Fatal);
                            }
                            let f = failure.as_ref()?;
                            if f.mode == FaultMode::Once && failed_once {
                                return None;
                            }
                            failed_once = true;
                            return Some(Fail::Restart(
                                "Unable to connect to vddk data source: simulated import failure"
                                    .to_string(),
                            ));
                        }
                        let f = delta_failure.as_ref()?;
                        if f.mode == FaultMode::Once && delta_failed_once {
                            return None;
                        }
                        delta_failed_once = true;
                        Some(Fail::Restart(
                            "Unable to process data: simulated failure copying changed blocks"
                                .to_string(),
                        ))
                    },
                )
                .await?;
                if !done {
                    return Ok(());
                }
                // The snapshot went away while the importer read it: the read fails and
                // the pod restarts (and then cannot find the snapshot at all).
                if !self.world.snapshot_exists(vm, &cp.current) {
                    restarts.bump();
                    let msg = format!(
                        "Unable to process data: Could not find current snapshot {}: snapshot {:?} not found",
                        cp.current, cp.current
                    );
                    nfc.close();
                    w.restart(self.clock, restarts.shown, restarts.pod, &msg)
                        .await?;
                    continue;
                }
                self.world.stage_finished(vm, &plan);
                break;
            }
            drop(nfc);
            drop(guard);
            copied.insert(cp.current.clone());
            let copied_key = format!("{ANN_CHECKPOINT_COPIED}.{}", cp.current);
            self.annotate(json!({ copied_key: pod_id })).await?;
            // The pod succeeded while the multi-stage import is in progress: `Paused`.
            self.paused(&restarts).await?;
            if is_final {
                // The final checkpoint is copied: the annotations go, `done` stays.
                let mut clean = serde_json::Map::new();
                for k in [ANN_CURRENT, ANN_PREVIOUS, ANN_FINAL, ANN_POD_ID] {
                    clean.insert(k.to_string(), serde_json::Value::Null);
                }
                for c in &copied {
                    clean.insert(
                        format!("{ANN_CHECKPOINT_COPIED}.{c}"),
                        serde_json::Value::Null,
                    );
                }
                clean.insert(ANN_MULTI_STAGE_DONE.to_string(), json!("true"));
                self.annotate(serde_json::Value::Object(clean)).await?;
                return self.succeeded(&restarts).await;
            }
        }
    }

    async fn paused(&self, restarts: &Restarts) -> Result<(), kube::Error> {
        let w = self.w;
        w.status(json!({
            "phase": "Paused", "progress": "100.0%",
            "restartCount": if w.populator { 0 } else { restarts.shown },
            "conditions": [
                { "type": "Bound", "status": "True", "reason": "Bound", "message": format!("PVC {} Bound", w.name) },
                { "type": "Ready", "status": "False", "reason": "ImportPaused",
                  "message": format!("Multistage import into PVC {} is paused", w.name) },
                { "type": "Running", "status": "False", "reason": "Completed" },
            ]
        }))
        .await
    }

    async fn succeeded(&self, restarts: &Restarts) -> Result<(), kube::Error> {
        let w = self.w;
        w.status(json!({
            "phase": "Succeeded", "progress": "100.0%",
            "restartCount": if w.populator { 0 } else { restarts.shown },
            "conditions": [
                { "type": "Bound", "status": "True", "reason": "Bound" },
                { "type": "Ready", "status": "True", "reason": "" },
                { "type": "Running", "status": "False", "reason": "Completed" },
            ]
        }))
        .await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    Immediate,
    WaitForFirstConsumer,
}

/// The StorageClass's binding mode (Immediate when it cannot be read).
async fn storage_binding(client: &Client, class: &str) -> Binding {
    let scs: Api<StorageClass> = Api::all(client.clone());
    match scs.get_opt(class).await {
        Ok(Some(sc)) if sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") => {
            Binding::WaitForFirstConsumer
        }
        _ => Binding::Immediate,
    }
}

/// Why the importer cannot run now, read afresh at every (re)start: the VDDK image, the
/// credentials Secret (`accessKeyId`/`secretKey`, the only keys CDI reads:
/// `pkg/controller/import-controller.go` `makeImporterPodSpec`), the credentials against
/// the simulated vCenter, and an init image that cannot be pulled.
async fn blocker(
    client: &Client,
    scenario: &Scenario,
    dv: &DataVolume,
    ns: &str,
    init_image_fails: bool,
) -> Option<Blocker> {
    let vddk = dv.spec.source.get("vddk")?;
    let has_image = vddk
        .get("initImageURL")
        .and_then(|v| v.as_str())
        .is_some_and(|s| !s.is_empty());
    if !has_image && !vddk_configmap(client).await {
        return Some(Blocker::AwaitingVddk);
    }
    if init_image_fails {
        return Some(Blocker::Waiting("PodInitializing", String::new()));
    }
    let secret = vddk.get("secretRef").and_then(|v| v.as_str())?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let data = match secrets.get_opt(secret).await {
        Ok(Some(s)) => s.data.unwrap_or_default(),
        Ok(None) => {
            return Some(Blocker::Waiting(
                "CreateContainerConfigError",
                format!("secret \"{secret}\" not found"),
            ))
        }
        Err(_) => return None,
    };
    let key = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    for k in ["accessKeyId", "secretKey"] {
        if key(k).is_none() {
            return Some(Blocker::Waiting(
                "CreateContainerConfigError",
                format!("couldn't find key {k} in Secret {ns}/{secret}"),
            ));
        }
    }
    if key("accessKeyId").as_deref() != Some(scenario.vcenter_user.as_str())
        || key("secretKey").as_deref() != Some(scenario.vcenter_password.as_str())
    {
        return Some(Blocker::Crashes(
            "Unable to connect to vddk data source: ServerFaultCode: Cannot complete login due to an incorrect user name or password."
                .to_string(),
        ));
    }
    None
}

/// CDI's `v2v-vmware` ConfigMap with a `vddk-init-image`, in CDI's namespace (`cdi` or,
/// on OpenShift, `openshift-cnv`).
async fn vddk_configmap(client: &Client) -> bool {
    for ns in ["cdi", "openshift-cnv"] {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        if let Ok(Some(cm)) = cms.get_opt("v2v-vmware").await {
            if cm
                .data
                .as_ref()
                .and_then(|d| d.get("vddk-init-image"))
                .is_some_and(|v| !v.is_empty())
            {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfc_connections_per_host_are_limited_and_recorded() {
        let r = ImportRecord::default();
        assert!(r.nfc_open("esx-01", Some(2)));
        assert!(r.nfc_open("esx-01", Some(2)));
        assert!(!r.nfc_open("esx-01", Some(2)), "the third is refused");
        assert!(r.nfc_open("esx-02", Some(2)), "another host has room");
        r.nfc_close("esx-01");
        assert!(r.nfc_open("esx-01", Some(2)), "room again");
        assert!(r.nfc_open("esx-03", None) && r.nfc_open("esx-03", None));
        assert_eq!(r.nfc_refusals(), 1);
        assert_eq!(r.host_peaks()["esx-01"], 2);
        assert_eq!(r.host_active()["esx-01"], 2);
        assert_eq!(r.host_peaks()["esx-03"], 2);
        let m = nfc_limit_message("esx-01", "[ds1] a/a.vmdk");
        assert!(
            m.starts_with("Unable to connect to vddk data source: "),
            "{m}"
        );
        assert!(
            m.contains("The host esx-01 has reached its NFC connection limit"),
            "{m}"
        );
    }
}
