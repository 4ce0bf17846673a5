//! Simulated CDI: imports DataVolumes at a modelled bandwidth. A kube-rs client of the API,
//! so it runs against the embedded sim or any API server with the CDI CRD.
//!
//! Phases follow CDI: the PVC is created and bound (`PVCBound`, condition `Bound`), then
//! `ImportScheduled`, `ImportInProgress` with `status.progress` ("45.20%") advancing at
//! `min(bandwidth_per_import, bandwidth_total / active imports)`, then `Succeeded`
//! ("100.0%", `Ready`). Faults: `import-failure` restarts the import (`restartCount`);
//! `always` fails the DataVolume after three restarts; `slow-import` divides the rate.

use super::scenario::{FaultKind, FaultMode, Scenario};
use super::SimClock;
use crate::cluster::labels;
use crate::cluster::resources::{DataVolume, DvPhase};
use crate::plan::quantity::Quantity;
use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

const RESTART_LIMIT: i64 = 3;

/// Watches DataVolumes and runs one import task per DataVolume that is not finished.
pub async fn run(
    client: Client,
    scenario: Arc<Scenario>,
    clock: SimClock,
    record: Arc<ImportRecord>,
) {
    let api: Api<DataVolume> = Api::all(client.clone());
    let active = record.clone();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut in_flight: HashSet<String> = HashSet::new();
    // DataVolumes whose import ended. A DataVolume is imported once (restarts happen inside
    // its import); a watch that lags can still deliver an older event of it
    // (`ImportInProgress`) after the import ended, and that must not start it again.
    let mut ended: HashSet<String> = HashSet::new();
    // VMs whose DataVolume already failed once (`until-retry` faults).
    let failed_before: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    loop {
        tokio::select! {
            Some(uid) = done_rx.recv() => {
                in_flight.remove(&uid);
                ended.insert(uid);
            }
            next = stream.next() => {
                let Some(item) = next else { break };
                let Ok(dv) = item else { continue };
                let phase = dv.status.as_ref().and_then(|s| s.phase.clone());
                if matches!(phase, Some(DvPhase::Succeeded | DvPhase::Failed)) {
                    continue;
                }
                let uid = dv.uid().unwrap_or_else(|| dv.name_any());
                if ended.contains(&uid) || !in_flight.insert(uid.clone()) {
                    continue;
                }
                let (client, scenario, active, done) = (client.clone(), scenario.clone(), active.clone(), done_tx.clone());
                let failed_before = failed_before.clone();
                tokio::spawn(async move {
                    if let Err(e) = import(client, scenario, clock, active, failed_before, dv).await {
                        tracing::debug!(error = %e, "sim CDI import ended");
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

async fn import(
    client: Client,
    scenario: Arc<Scenario>,
    clock: SimClock,
    active: Arc<ImportRecord>,
    failed_before: Arc<std::sync::Mutex<HashSet<String>>>,
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
    let status = |v: serde_json::Value| Patch::Merge(json!({ "status": v }));
    let pp = PatchParams::default();

    // The PVC, bound at once (the sim's storage binds immediately).
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let mut pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": name, "namespace": ns, "labels": dv.labels(),
            "ownerReferences": [{ "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "name": name,
                                  "uid": dv.uid().unwrap_or_default(), "controller": true }] },
        "spec": {
            "accessModes": dv.spec.storage.get("accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "storageClassName": dv.spec.storage.get("storageClassName").cloned().unwrap_or(json!("sim-standard")),
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
    api.patch_status(&name, &pp, &status(json!({ "phase": "ImportScheduled" })))
        .await?;
    clock.sleep(1.0).await;

    active.start();
    let guard = ActiveGuard(active.clone());
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
        if let Some(f) = &failure {
            let fails_hard = matches!(f.mode, FaultMode::Always | FaultMode::UntilRetry);
            let should_fail = frac >= 0.4 && (fails_hard || !failed_once);
            if should_fail {
                failed_once = true;
                restarts += 1;
                done = 0;
                if fails_hard && restarts - start_restarts >= RESTART_LIMIT {
                    failed_before
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(vm.clone());
                    // The transfer has stopped before anyone can see the phase.
                    drop(guard);
                    api.patch_status(&name, &pp, &status(json!({
                        "phase": "Failed", "restartCount": restarts,
                        "conditions": [
                            { "type": "Bound", "status": "True", "reason": "Bound" },
                            { "type": "Ready", "status": "False", "reason": "Error" },
                            { "type": "Running", "status": "False", "reason": "Error",
                              "message": "Unable to connect to vddk data source: simulated import failure" },
                        ]
                    }))).await?;
                    return Ok(());
                }
                api.patch_status(
                    &name,
                    &pp,
                    &status(json!({
                        "phase": "ImportInProgress", "progress": "0.00%", "restartCount": restarts,
                        "conditions": [
                            { "type": "Bound", "status": "True", "reason": "Bound" },
                            { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                            { "type": "Running", "status": "False", "reason": "Error",
                              "message": "importer pod restarted: simulated import failure" },
                        ]
                    })),
                )
                .await?;
                clock.sleep_real(tick).await;
                continue;
            }
        }
        if done >= size {
            break;
        }
        api.patch_status(&name, &pp, &status(json!({
            "phase": "ImportInProgress", "progress": format!("{:.2}%", frac * 100.0), "restartCount": restarts,
            "conditions": [
                { "type": "Bound", "status": "True", "reason": "Bound" },
                { "type": "Ready", "status": "False", "reason": "TransferRunning" },
                { "type": "Running", "status": "True", "reason": "Pod is running" },
            ]
        }))).await?;
        clock.sleep_real(tick).await;
    }
    // The transfer is over before the phase says so: a watcher that sees `Succeeded` and
    // starts the next import never overlaps this one in the record.
    drop(guard);
    api.patch_status(
        &name,
        &pp,
        &status(json!({
            "phase": "Succeeded", "progress": "100.0%", "restartCount": restarts,
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
