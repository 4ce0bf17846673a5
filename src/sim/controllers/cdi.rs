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

use super::scenario::{FaultKind, FaultMode, Scenario};
use super::world::World;
use super::SimClock;
use crate::cluster::labels;
use crate::cluster::resources::{DataVolume, DvPhase};
use crate::plan::quantity::Quantity;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Watches DataVolumes and runs one import task per DataVolume that is not finished.
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
    let mut in_flight: HashMap<String, CancellationToken> = HashMap::new();
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
                        if let Some(stop) = in_flight.get(&uid) {
                            stop.cancel();
                        }
                        continue;
                    }
                    _ => continue,
                };
                let phase = dv.status.as_ref().and_then(|s| s.phase.clone());
                if matches!(phase, Some(DvPhase::Succeeded | DvPhase::Failed)) {
                    continue;
                }
                let uid = dv.uid().unwrap_or_else(|| dv.name_any());
                if ended.contains(&uid) || in_flight.contains_key(&uid) {
                    continue;
                }
                let stop = CancellationToken::new();
                in_flight.insert(uid.clone(), stop.clone());
                let (client, scenario, active, done) = (client.clone(), scenario.clone(), active.clone(), done_tx.clone());
                let world = world.clone();
                let failed_before = failed_before.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        r = import(client, scenario, clock, active, failed_before, world, dv) => {
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

fn vm_of(dv: &DataVolume) -> String {
    dv.labels().get(labels::VM).cloned().unwrap_or_else(|| {
        dv.name_any()
            .rsplit_once("-disk")
            .map_or(dv.name_any(), |(v, _)| v.to_string())
    })
}

/// The sim's record of imports in flight: how many now, and the most at once (tests assert
/// the engine's concurrency limits against it).
#[derive(Debug, Default)]
pub struct ImportRecord {
    active: AtomicUsize,
    peak: AtomicUsize,
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
    /// Imports running right now.
    pub fn active(&self) -> usize {
        self.load()
    }
    /// The most imports that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Ends an import in the record, however it ends.
struct ActiveGuard(Arc<ImportRecord>);
impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.end();
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

async fn import(
    client: Client,
    scenario: Arc<Scenario>,
    clock: SimClock,
    active: Arc<ImportRecord>,
    failed_before: Arc<std::sync::Mutex<HashSet<String>>>,
    world: Arc<World>,
    dv: DataVolume,
) -> Result<(), kube::Error> {
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
    let vm = vm_of(&dv);
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
    // Every write names the DataVolume's uid: one deleted and created again under the same
    // name is another object, and the API server refuses the old import's writes to it.
    let uid = dv.uid().unwrap_or_default();
    let status =
        |v: serde_json::Value| Patch::Merge(json!({ "metadata": { "uid": uid }, "status": v }));
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
        Err(kube::Error::Api(e)) if e.code == 409 => {}
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
        api.patch_status(&name, &pp, &status(json!({
            "phase": phase.as_str(), "claimName": name, "progress": "N/A", "restartCount": 0,
            "conditions": [
                { "type": "Bound", "status": "False", "reason": "Pending", "message": format!("PVC {name} Pending") },
                { "type": "Ready", "status": "False" },
                { "type": "Running", "status": "False" },
            ]
        }))).await?;
        return Ok(());
    }
    let _ = pvcs
        .patch_status(&name, &pp, &Patch::Merge(json!({ "status": { "phase": "Bound", "capacity": { "storage": size.to_string() } } })))
        .await;

    let start_restarts = dv.status.as_ref().map_or(0, |s| s.restart_count);
    let mut restarts = start_restarts;
    let mut done: u64 = dv
        .status
        .as_ref()
        .and_then(|s| s.progress_fraction())
        .map_or(0, |f| (f * size as f64) as u64);
    api.patch_status(&name, &pp, &status(json!({
        "phase": "PVCBound", "claimName": name, "progress": "N/A", "restartCount": restarts,
        "conditions": [
            { "type": "Bound", "status": "True", "reason": "Bound", "message": format!("PVC {name} Bound") },
            { "type": "Ready", "status": "False", "reason": "TransferRunning" },
            { "type": "Running", "status": "False", "reason": "Pending" },
        ]
    }))).await?;
    clock.sleep(1.0).await;
    // With populators the importer's conditions and restarts live on the hidden `prime-*`
    // PVC: the DataVolume shows a bare `Running` False and no restarts.
    let shown = |restarts: i64, reason: &str, message: &str| {
        if populator {
            (0, json!({ "type": "Running", "status": "False" }))
        } else {
            (
                restarts,
                json!({ "type": "Running", "status": "False", "reason": reason, "message": message }),
            )
        }
    };
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
                api.patch_status(&name, &pp, &status(json!({
                    "phase": "ImportScheduled",
                    "conditions": [
                        { "type": "Bound", "status": "False", "reason": "AwaitingVDDK",
                          "message": "waiting for v2v-vmware configmap or cdi.kubevirt.io/storage.pod.vddk.initimageurl annotation for VDDK image" },
                        { "type": "Ready", "status": "False" },
                        { "type": "Running", "status": "False" },
                    ]
                }))).await?;
            }
            Blocker::Waiting(reason, message) => {
                let (r, running) = shown(restarts, reason, &message);
                api.patch_status(
                    &name,
                    &pp,
                    &status(json!({
                        "phase": "ImportScheduled", "restartCount": r,
                        "conditions": [
                            { "type": "Bound", "status": "True", "reason": "Bound" },
                            { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                            running,
                        ]
                    })),
                )
                .await?;
            }
            Blocker::Crashes(message) => {
                restarts += 1;
                let (r, running) = shown(restarts, "Error", &message);
                api.patch_status(
                    &name,
                    &pp,
                    &status(json!({
                        "phase": "ImportInProgress", "progress": "N/A", "restartCount": r,
                        "conditions": [
                            { "type": "Bound", "status": "True", "reason": "Bound" },
                            { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                            running,
                        ]
                    })),
                )
                .await?;
                // CrashLoopBackOff: 10 s doubling to 5 min between restarts.
                let backoff = (10.0
                    * 2f64.powi((restarts - start_restarts - 1).clamp(0, 5) as i32))
                .min(300.0);
                clock.sleep(backoff).await;
                continue;
            }
        }
        // Blocked until something changes (the Secret, a ConfigMap): look again later.
        clock.sleep(30.0).await;
    }
    api.patch_status(&name, &pp, &status(json!({ "phase": "ImportScheduled" })))
        .await?;
    clock.sleep(1.0).await;

    active.start();
    let mut guard = Some(ActiveGuard(active.clone()));
    // The transfer reads the source disk from here on (world.rs: what the copy holds).
    let disk_index = name
        .rsplit_once("-disk")
        .and_then(|(_, n)| n.parse::<usize>().ok())
        .unwrap_or(0);
    world.copy_started(&vm, disk_index);
    let tick = 0.25_f64; // real seconds between progress updates
    let mut failed_once = false;
    loop {
        let n = active.load().max(1) as u64;
        let rate = (scenario
            .bandwidth_per_import
            .min(scenario.bandwidth_total / n) as f64
            / slow)
            .max(1.0);
        let sim_dt = tick * clock.speed;
        done = (done as f64 + rate * sim_dt).min(size as f64) as u64;
        let frac = done as f64 / size as f64;
        if frac >= 0.4 {
            if let Some(f) = fault(FaultKind::ImportFatal) {
                // A fatal error (a checksum mismatch): the only way a DataVolume ends
                // `Failed` (CDI `pkg/controller/datavolume/controller-base.go`).
                let _ = f;
                drop(guard.take());
                api.patch_status(
                    &name,
                    &pp,
                    &status(json!({
                        "phase": "Failed", "restartCount": restarts,
                        "conditions": [
                            { "type": "Bound", "status": "True", "reason": "Bound" },
                            { "type": "Ready", "status": "False", "reason": "Error" },
                            { "type": "Running", "status": "False", "reason": "Error",
                              "message": "Unable to process data: checksum mismatch (simulated)" },
                        ]
                    })),
                )
                .await?;
                return Ok(());
            }
        }
        if let Some(f) = &failure {
            let forever = matches!(f.mode, FaultMode::Always | FaultMode::UntilRetry);
            if frac >= 0.4 && (forever || !failed_once) {
                // The importer exits with an error and is restarted in place: the
                // DataVolume stays `ImportInProgress` with a rising `restartCount` and a
                // `Running` condition `False` carrying the container's reason and message
                // (CDI `pkg/controller/util.go`, `pkg/controller/datavolume/conditions.go`).
                failed_once = true;
                restarts += 1;
                done = 0;
                if f.mode == FaultMode::UntilRetry {
                    failed_before
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(vm.clone());
                }
                let (r, running) = shown(
                    restarts,
                    "Error",
                    "Unable to connect to vddk data source: simulated import failure",
                );
                api.patch_status(
                    &name,
                    &pp,
                    &status(json!({
                        "phase": "ImportInProgress", "progress": "0.00%", "restartCount": r,
                        "conditions": [
                            { "type": "Bound", "status": "True", "reason": "Bound" },
                            { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                            running,
                        ]
                    })),
                )
                .await?;
                let backoff = (10.0
                    * 2f64.powi((restarts - start_restarts - 1).clamp(0, 5) as i32))
                .min(300.0);
                clock.sleep(backoff).await;
                continue;
            }
        }
        if done >= size {
            break;
        }
        api.patch_status(
            &name,
            &pp,
            &status(json!({
                "phase": "ImportInProgress", "progress": format!("{:.2}%", frac * 100.0),
                "restartCount": if populator { 0 } else { restarts },
                "conditions": [
                    { "type": "Bound", "status": "True", "reason": "Bound" },
                    { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                    { "type": "Running", "status": "True", "reason": "Pod is running" },
                ]
            })),
        )
        .await?;
        clock.sleep_real(tick).await;
    }
    // The transfer is over before the phase says so: a watcher that sees `Succeeded` and
    // starts the next import never overlaps this one in the record.
    drop(guard.take());
    world.copy_finished(&vm, disk_index);
    api.patch_status(
        &name,
        &pp,
        &status(json!({
            "phase": "Succeeded", "progress": "100.0%",
            "restartCount": if populator { 0 } else { restarts },
            "conditions": [
                { "type": "Bound", "status": "True", "reason": "Bound" },
                { "type": "Ready", "status": "True", "reason": "" },
                { "type": "Running", "status": "False", "reason": "Completed" },
            ]
        })),
    )
    .await?;
    Ok(())
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
