//! Carrying out warm migration's [`Command`]s: vCenter snapshots and CBT through
//! [`WarmOps`], the DataVolumes' checkpoints through the cluster. Each mutation is a journal
//! entry; each is safe to repeat (snapshots are found by name, checkpoints by `current`).

use super::decide::warm::{ctx_for, WarmCtx, WarmSource, ANN_CHANGE_ID};
use super::decide::{Command, Power};
use super::error::{api_message, Error};
use super::ops::Ops;
use super::schedule::Update;
use crate::cluster::build;
use crate::cluster::call::call;
use crate::cluster::labels;
use crate::cluster::resources::{DataVolume, DataVolumeCheckpoint};
use crate::plan::Vm;
use crate::source::{SourceError, SourcePower, WarmOps};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The base disk of a delta disk's file name: `[ds1] vm/vm-000002.vmdk` → `[ds1] vm/vm.vmdk`
/// (a warm import reads the base disk and applies the snapshots' changes).
pub fn base_disk(file: &str) -> String {
    if let Some(stem) = file.strip_suffix(".vmdk") {
        if let Some((base, n)) = stem.rsplit_once('-') {
            if n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()) {
                return format!("{base}.vmdk");
            }
        }
    }
    file.to_string()
}

/// Quiesce faults vSphere reports when VMware Tools could not quiesce the guest.
fn quiesce_fault(e: &SourceError) -> bool {
    let e = match e {
        SourceError::GaveUp { last, .. } => last.as_ref(),
        e => e,
    };
    matches!(e, SourceError::Fault { kind, .. } if kind == "ApplicationQuiesceFault" || kind == "FilesystemQuiesceFault")
}

impl Ops {
    fn warm_source(&self) -> Result<&dyn WarmOps, Error> {
        self.source
            .as_ref()
            .and_then(|s| s.warm())
            .ok_or(Error::NoSourceApi)
    }

    /// Reads vCenter's view of the VM's source.
    async fn read_source(&self, vm: &Vm, ctx: &WarmCtx) -> Result<Update, Error> {
        let w = self.warm_source()?;
        let uuid = vm.source_id.as_ref().map(|u| u.as_str());
        let view = w.warm_view(vm.name.as_str(), uuid).await?;
        let power = match view.power {
            SourcePower::On => Power::On,
            SourcePower::Off => Power::Off,
        };
        Ok(Update::Warm(WarmSource::from_view(&view, ctx), power, None))
    }

    /// One of warm migration's commands.
    pub(super) async fn execute_warm(
        &self,
        vm: &Vm,
        cmd: &Command,
        stamp: Option<labels::PowerOffStamp>,
    ) -> Result<Update, Error> {
        let Some(ctx) = ctx_for(&self.plan, vm) else {
            return Err(Error::Api {
                what: format!("{cmd:?}"),
                message: "not a warm VM".into(),
            });
        };
        let name = vm.name.as_str();
        let uuid = vm.source_id.as_ref().map(|u| u.as_str());
        match cmd {
            Command::ReadSource => {}
            Command::EnableCbt => {
                let w = self.warm_source()?;
                match w.enable_cbt(name, uuid).await {
                    Ok(()) => {
                        self.journal(vm, "enable-cbt", "SourceVM", name, "done")
                            .await
                    }
                    Err(e) => {
                        self.journal(vm, "enable-cbt", "SourceVM", name, &format!("error: {e}"))
                            .await;
                        return Err(e.into());
                    }
                }
            }
            Command::CreateSnapshot { name: snap } => {
                self.create_snapshot(vm, &ctx, snap).await?;
            }
            Command::RemoveSnapshot { moref, record } => {
                let w = self.warm_source()?;
                let recorded = if *record {
                    Some((moref.clone(), self.record_change_ids(vm, w, moref).await?))
                } else {
                    None
                };
                match w.remove_snapshot(name, uuid, moref).await {
                    Ok(()) => {
                        self.journal(vm, "remove", "VirtualMachineSnapshot", moref, "removed")
                            .await;
                        return match self.read_source(vm, &ctx).await? {
                            Update::Warm(s, p, _) => Ok(Update::Warm(s, p, recorded)),
                            other => Ok(other),
                        };
                    }
                    Err(e) => {
                        self.journal(
                            vm,
                            "remove",
                            "VirtualMachineSnapshot",
                            moref,
                            &format!("error: {e}"),
                        )
                        .await;
                        return Err(e.into());
                    }
                }
            }
            Command::CreateStageVolume {
                disk,
                current,
                last,
            } => {
                let Some(mut dv) = build::data_volume(&self.plan, vm, *disk) else {
                    return Err(Error::NoDisk(*disk));
                };
                if let Some(file) = dv.spec.source.pointer_mut("/vddk/backingFile") {
                    if let Some(f) = file.as_str() {
                        *file = json!(base_disk(f));
                    }
                }
                dv.spec.checkpoints = vec![DataVolumeCheckpoint {
                    previous: String::new(),
                    current: current.clone(),
                }];
                dv.spec.final_checkpoint = Some(*last);
                let dv_name = labels::data_volume_name(name, *disk);
                let api: Api<DataVolume> = Api::namespaced(self.client.clone(), self.ns());
                self.create(vm, &api, &dv, "DataVolume", &dv_name).await?;
                return Ok(Update::Nothing);
            }
            Command::AddCheckpoint {
                current,
                previous,
                last,
            } => {
                // The final checkpoint is added after the power-off: it carries its stamp.
                let stamp = stamp.filter(|_| *last);
                self.add_checkpoint(vm, current, previous, *last, stamp)
                    .await?;
                if !*last {
                    return Ok(Update::Nothing);
                }
                // The final stage's size: the areas changed since the last precopy round
                // (`QueryChangedDiskAreas`). Only reported; a failure costs the figure.
                let w = self.warm_source()?;
                let mut bytes = 0u64;
                for (disk, since) in previous.iter().enumerate() {
                    match w.changed_bytes(name, uuid, current, disk, since).await {
                        Ok(b) => bytes += b,
                        Err(e) => {
                            tracing::warn!(vm = name, disk, error = %e, "final delta size unknown");
                            return Ok(Update::FinalDelta(None));
                        }
                    }
                }
                return Ok(Update::FinalDelta(Some(bytes)));
            }
            other => {
                return Err(Error::Api {
                    what: format!("{other:?}"),
                    message: "not a warm migration command".into(),
                })
            }
        }
        self.read_source(vm, &ctx).await
    }

    /// Creates a snapshot (quiesced while the guest runs; a powered-off VM's final snapshot
    /// needs none). A quiesce fault fails the VM by name unless `allow_unquiesced` allows one
    /// unquiesced (crash-consistent) retry.
    async fn create_snapshot(&self, vm: &Vm, ctx: &WarmCtx, snap: &str) -> Result<(), Error> {
        let w = self.warm_source()?;
        let name = vm.name.as_str();
        let uuid = vm.source_id.as_ref().map(|u| u.as_str());
        let quiesce = *snap != ctx.final_name();
        let mut r = w.create_snapshot(name, uuid, snap, quiesce).await;
        if let Err(e) = &r {
            if quiesce && quiesce_fault(e) && self.plan.source.allow_unquiesced {
                self.journal(
                    vm,
                    "create",
                    "VirtualMachineSnapshot",
                    snap,
                    &format!("error: {e}; retrying unquiesced (allow_unquiesced)"),
                )
                .await;
                r = w.create_snapshot(name, uuid, snap, false).await;
            }
        }
        match r {
            Ok(s) => {
                let how = if s.quiesced {
                    "created (quiesced)"
                } else {
                    "created (crash-consistent: not quiesced)"
                };
                self.journal(vm, "create", "VirtualMachineSnapshot", snap, how)
                    .await;
                Ok(())
            }
            Err(e) => {
                self.journal(
                    vm,
                    "create",
                    "VirtualMachineSnapshot",
                    snap,
                    &format!("error: {e}"),
                )
                .await;
                Err(e.into())
            }
        }
    }

    /// Writes each disk's change ID at snapshot `moref` on its DataVolume (the next stage's
    /// `previous`): it must outlive the snapshot, and a resumed run reads it from there.
    async fn record_change_ids(
        &self,
        vm: &Vm,
        w: &dyn WarmOps,
        moref: &str,
    ) -> Result<Vec<String>, Error> {
        let disks = w.snapshot_disks(moref).await?;
        if disks.len() < vm.disks.len() {
            return Err(Error::Api {
                what: format!("read snapshot {moref}"),
                message: format!("it has {} disks, the plan {}", disks.len(), vm.disks.len()),
            });
        }
        let api: Api<DataVolume> = Api::namespaced(self.client.clone(), self.ns());
        let mut ids = Vec::with_capacity(vm.disks.len());
        for (i, d) in disks.iter().take(vm.disks.len()).enumerate() {
            let Some(id) = d.change_id.as_deref().filter(|c| !c.is_empty()) else {
                return Err(Error::Api {
                    what: format!("read snapshot {moref}"),
                    message: format!("disk {i} ({}) has no change ID: is CBT on?", d.file),
                });
            };
            let dv = labels::data_volume_name(vm.name.as_str(), i);
            let patch = json!({ "metadata": { "annotations": { ANN_CHANGE_ID: format!("{moref}={id}") } } });
            let (pp, mp) = (self.patch_params(), Patch::Merge(&patch));
            call(&format!("annotate DataVolume {dv}"), || {
                api.patch(&dv, &pp, &mp)
            })
            .await
            .map_err(|e| Error::api(format!("annotate DataVolume {dv}"), &e))?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    /// Appends checkpoint `current` (with each disk's `previous`) to every disk's DataVolume,
    /// unless it is there already; `last` makes it the final stage.
    async fn add_checkpoint(
        &self,
        vm: &Vm,
        current: &str,
        previous: &[String],
        last: bool,
        stamp: Option<labels::PowerOffStamp>,
    ) -> Result<(), Error> {
        let api: Api<DataVolume> = Api::namespaced(self.client.clone(), self.ns());
        for i in 0..vm.disks.len() {
            let dv_name = labels::data_volume_name(vm.name.as_str(), i);
            let dv = call(&format!("get DataVolume {dv_name}"), || api.get(&dv_name))
                .await
                .map_err(|e| Error::api(format!("get DataVolume {dv_name}"), &e))?;
            let mut cps = dv.spec.checkpoints.clone();
            if cps.iter().any(|c| c.current == current) {
                continue;
            }
            cps.push(DataVolumeCheckpoint {
                previous: previous.get(i).cloned().unwrap_or_default(),
                current: current.to_string(),
            });
            // The resourceVersion makes it a compare-and-swap: CDI's webhook allows only
            // these two fields to change.
            let mut patch = json!({
                "metadata": { "resourceVersion": dv.metadata.resource_version },
                "spec": { "checkpoints": cps, "finalCheckpoint": last },
            });
            if let Some(s) = stamp {
                patch["metadata"]["annotations"] = json!({ labels::POWER_OFF: s.to_annotation() });
            }
            let (pp, mp) = (self.patch_params(), Patch::Merge(&patch));
            let what = if last {
                format!("final checkpoint {current} added")
            } else {
                format!("checkpoint {current} added")
            };
            match call(&format!("patch DataVolume {dv_name}"), || {
                api.patch(&dv_name, &pp, &mp)
            })
            .await
            {
                Ok(_) => {
                    self.journal(vm, "patch", "DataVolume", &dv_name, &what)
                        .await
                }
                Err(e) => {
                    self.journal(
                        vm,
                        "patch",
                        "DataVolume",
                        &dv_name,
                        &format!("error: {}", api_message(&e)),
                    )
                    .await;
                    return Err(Error::api(format!("patch DataVolume {dv_name}"), &e));
                }
            }
        }
        Ok(())
    }

    fn patch_params(&self) -> PatchParams {
        let p = PatchParams {
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        if self.dry_run {
            p.dry_run()
        } else {
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_disks_drop_the_delta_suffix() {
        assert_eq!(base_disk("[ds1] web/web-000002.vmdk"), "[ds1] web/web.vmdk");
        assert_eq!(base_disk("[ds1] web/web.vmdk"), "[ds1] web/web.vmdk");
        assert_eq!(base_disk("[ds1] a-b/a-b.vmdk"), "[ds1] a-b/a-b.vmdk");
        assert_eq!(base_disk("[ds1] db/db_1-000001.vmdk"), "[ds1] db/db_1.vmdk");
    }
}
