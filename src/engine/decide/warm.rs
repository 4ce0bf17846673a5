//! Warm migration's decisions, pure like [`super::decide`]: the disks are copied while the
//! source runs, as a multi-stage CDI import of vSphere snapshots (changed block tracking),
//! and only the last delta is copied after the power-off.
//!
//! The sequence (Forklift's, `pkg/controller/plan/migration.go`, and the facts in the
//! README's "Cold and warm migration"):
//!
//! 1. CBT on (with `enable_cbt`, `ReconfigVM` and one stun), change IDs on every disk;
//! 2. snapshot `…-1`, then a DataVolume per disk with checkpoint `{previous: "", current: snap}`;
//! 3. when every disk's PVC carries `checkpoint.copied.<snap>`: write each disk's change ID
//!    at that snapshot on its DataVolume, then remove the snapshot (at most one wavelift
//!    snapshot exists at a time);
//! 4. every `precopy_interval`: snapshot `…-N`, append `{previous: change ID, current: snap}`;
//! 5. at the cutover (window, `after`, cutover slot; only between stages): power off, final
//!    snapshot `…-final` once vCenter reports POWERED_OFF, append it with
//!    `finalCheckpoint: true`, wait for `Succeeded`, remove the final snapshot;
//! 6. then as cold: the duplicate-IP guard, create, boot, checks.
//!
//! Everything is derived from what vCenter and the cluster show (snapshots by name, the
//! DataVolumes' checkpoints, the PVCs' annotations, the change IDs recorded on the
//! DataVolumes), so a run killed at any point resumes without a second snapshot,
//! DataVolume or VM.

use super::{
    cutover_guard, decision, gated, import_progress, preflight_steps, Command, Control, Decision,
    DiskObs, Observed, Power, Status, Step, VmContext,
};
use crate::plan::{Migration, Plan, Vm};
use std::collections::BTreeSet;

/// What the plan says about a warm VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmCtx {
    /// Snapshot names start with this: `wavelift-PLAN-VM` (then `-1`, `-2`, …, `-final`).
    pub prefix: String,
    /// wavelift may turn CBT on.
    pub enable_cbt: bool,
}

impl WarmCtx {
    pub fn stage_name(&self, round: u32) -> String {
        format!("{}-{round}", self.prefix)
    }

    pub fn final_name(&self) -> String {
        format!("{}-final", self.prefix)
    }
}

/// The warm context of `vm` (`None`: a cold VM).
pub fn ctx_for(plan: &Plan, vm: &Vm) -> Option<WarmCtx> {
    (plan.migration_of(vm) == Migration::Warm).then(|| WarmCtx {
        prefix: format!("wavelift-{}-{}", plan.meta.name.value, vm.name.value),
        enable_cbt: plan.source.enable_cbt,
    })
}

/// A wavelift snapshot on the source VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub moref: String,
    /// `Some(n)`: precopy round `n`; `None`: the final snapshot.
    pub round: Option<u32>,
    pub quiesced: bool,
}

/// The source VM as vCenter showed it last.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WarmSource {
    pub cbt_enabled: bool,
    /// CBT is on and every disk has a change ID.
    pub cbt_ready: bool,
    /// wavelift's snapshots of this VM (by name).
    pub ours: Vec<Snap>,
    /// Names of the VM's other snapshots.
    pub foreign: Vec<String>,
    /// A snapshot task of the VM is queued or running.
    pub task_running: bool,
    /// The ESXi host it runs on (`runtime.host`), if vCenter said.
    pub host: Option<String>,
}

impl WarmSource {
    /// Reads vCenter's view: wavelift's snapshots are those named `prefix-N` and
    /// `prefix-final`.
    pub fn from_view(view: &crate::source::WarmView, ctx: &WarmCtx) -> WarmSource {
        let mut ours = Vec::new();
        let mut foreign = Vec::new();
        for s in &view.snapshots {
            let round = s
                .name
                .strip_prefix(&ctx.prefix)
                .and_then(|rest| rest.strip_prefix('-'));
            match round {
                Some("final") => ours.push(Snap {
                    moref: s.moref.clone(),
                    round: None,
                    quiesced: s.quiesced,
                }),
                Some(n) if n.parse::<u32>().is_ok() => ours.push(Snap {
                    moref: s.moref.clone(),
                    round: n.parse().ok(),
                    quiesced: s.quiesced,
                }),
                // The client's own CBT stun snapshot (removed by `enable_cbt`).
                _ if s.name == "wavelift-cbt-stun" => {}
                _ => foreign.push(s.name.clone()),
            }
        }
        WarmSource {
            cbt_enabled: view.cbt_enabled,
            cbt_ready: view.cbt_enabled && view.change_ids_ready(),
            ours,
            foreign,
            task_running: view.snapshot_task_running,
            host: view.host.clone(),
        }
    }

    fn stage(&self) -> Option<&Snap> {
        self.ours
            .iter()
            .filter(|s| s.round.is_some())
            .max_by_key(|s| s.round)
    }

    fn final_snap(&self) -> Option<&Snap> {
        self.ours.iter().find(|s| s.round.is_none())
    }

    fn has(&self, moref: &str) -> bool {
        self.ours.iter().any(|s| s.moref == moref)
    }
}

/// One disk's multi-stage import as the cluster shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskStages {
    /// The DataVolume's `spec.checkpoints` (`(previous, current)`), in order.
    pub checkpoints: Vec<(String, String)>,
    pub final_checkpoint: bool,
    /// Checkpoints (`current`) its PVC says are copied.
    pub copied: BTreeSet<String>,
    /// The change ID recorded on the DataVolume: `(snapshot, change ID)` of the last
    /// checkpoint copied (the next stage's `previous`).
    pub change_id: Option<(String, String)>,
}

/// What the engine knows of a warm VM besides [`Observed`]'s cold fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WarmObs {
    /// `None` until vCenter was read in this run.
    pub source: Option<WarmSource>,
    /// One per planned disk (empty entries for disks without a DataVolume).
    pub stages: Vec<DiskStages>,
    /// `precopy_interval` has passed since the last stage was copied.
    pub precopy_due: bool,
    /// When the next precopy round falls due, for the waiting reason (`in 42m`).
    pub next_round_in: Option<String>,
}

/// DataVolume annotation holding the change ID of the last copied checkpoint,
/// `SNAPSHOT=CHANGE-ID` (a change ID stays valid after its snapshot is removed).
pub const ANN_CHANGE_ID: &str = "wavelift.io/change-id";

/// Remove every wavelift snapshot of the VM (cancel, rollback).
pub fn remove_ours(obs: &Observed) -> Vec<Command> {
    obs.warm
        .source
        .iter()
        .flat_map(|s| &s.ours)
        .map(|s| Command::RemoveSnapshot {
            moref: s.moref.clone(),
            record: false,
        })
        .collect()
}

/// The checkpoints every disk shares (they are appended to all disks at once); the first
/// disk's list when they differ mid-append.
fn checkpoints(obs: &Observed) -> &[(String, String)] {
    obs.warm
        .stages
        .iter()
        .find(|s| !s.checkpoints.is_empty())
        .map_or(&[], |s| s.checkpoints.as_slice())
}

/// Every disk's DataVolume exists and its PVC says checkpoint `current` is copied.
fn copied_everywhere(ctx: &VmContext, obs: &Observed, current: &str) -> bool {
    (0..ctx.disk_bytes.len()).all(|i| {
        obs.warm
            .stages
            .get(i)
            .is_some_and(|s| s.copied.contains(current))
    })
}

/// Each disk's `previous` for the checkpoint after `current`: the change ID recorded when
/// `current` was retired. `None` while one is missing.
fn previous_ids(ctx: &VmContext, obs: &Observed, current: &str) -> Option<Vec<String>> {
    (0..ctx.disk_bytes.len())
        .map(|i| {
            obs.warm
                .stages
                .get(i)
                .and_then(|s| s.change_id.as_ref())
                .filter(|(snap, _)| snap == current)
                .map(|(_, id)| id.clone())
        })
        .collect()
}

fn with_progress(mut d: Decision, ctx: &VmContext, obs: &Observed) -> Decision {
    d.phase.progress = import_progress(ctx, obs);
    d
}

/// A warm VM's pipeline once no KubeVirt VM exists and no disk failed: precopy rounds,
/// the cutover and the final stage, then the cold tail (guard, create).
pub fn decide_stages(ctx: &VmContext, obs: &Observed, ctl: Control) -> Decision {
    let w = ctx.warm.as_ref().expect("warm VM");
    let cps = checkpoints(obs);
    let final_added = obs.warm.stages.iter().any(|s| s.final_checkpoint);
    let all_succeeded = !obs.disks.is_empty()
        && obs.disks.len() == ctx.disk_bytes.len()
        && obs.disks.iter().all(|d| *d == DiskObs::Succeeded);
    let source = obs.warm.source.as_ref();

    // Data safety: a source running again after its final stage was set writes what the
    // copy will never hold.
    if (final_added || all_succeeded) && obs.source_power == Power::On && !obs.power_off_in_flight {
        return with_progress(
            decision(
                Step::Importing,
                Status::Failed(
                    "the source VM runs again after its final snapshot: the copy misses its writes since; roll the VM back and retry".into(),
                ),
                vec![],
            ),
            ctx,
            obs,
        );
    }

    if all_succeeded {
        // The final stage is copied: remove the final snapshot, then as cold.
        if let Some(f) = source.and_then(|s| s.final_snap()) {
            return gated(
                ctl,
                decision(
                    Step::Imported,
                    Status::Active,
                    vec![Command::RemoveSnapshot {
                        moref: f.moref.clone(),
                        record: false,
                    }],
                ),
            );
        }
        if source.is_none() {
            return decision(Step::Imported, Status::Active, vec![Command::ReadSource]);
        }
        let mut d = gated(
            ctl,
            cutover_guard(ctx, obs, Step::Imported, Command::CreateVm),
        );
        d.wants_cutover_slot = !ctl.paused;
        return d;
    }

    if !(obs.networks_ready && obs.preflight == super::Gate::Passed) {
        return preflight_steps(obs, ctl);
    }
    let Some(src) = source else {
        return decision(Step::Precopy, Status::Active, vec![Command::ReadSource]);
    };
    let cutting_over = obs.source_power == Power::Off || obs.power_off_in_flight || final_added;
    if cutting_over {
        let mut d = gated(ctl, final_stage(ctx, w, obs, src, cps));
        d.wants_cutover_slot = !ctl.paused;
        return with_progress(d, ctx, obs);
    }
    let d = precopy(ctx, w, obs, ctl, src, cps);
    with_progress(d, ctx, obs)
}

/// Before the power-off: CBT, the first snapshot and DataVolumes, rounds, and the cutover
/// when its gates open between stages.
fn precopy(
    ctx: &VmContext,
    w: &WarmCtx,
    obs: &Observed,
    ctl: Control,
    src: &WarmSource,
    cps: &[(String, String)],
) -> Decision {
    let busy = |what: &str| decision(Step::Precopy, Status::Active, vec![]).with_reason(what);
    if src.task_running {
        return busy("waiting for a snapshot task of the source VM to finish");
    }
    if !src.cbt_ready {
        if !src.cbt_enabled && !w.enable_cbt {
            return decision(
                Step::Precopy,
                Status::Failed(
                    "warm-cbt-off: changed block tracking is off on the source VM; set `enable_cbt = true` in [source] or migrate it cold".into(),
                ),
                vec![],
            );
        }
        return gated(
            ctl,
            decision(Step::Precopy, Status::Active, vec![Command::EnableCbt]),
        );
    }
    let stage = src.stage();
    let any_dv = obs.disks.iter().any(|d| *d != DiskObs::Absent);
    let slot = |mut d: Decision| {
        d.wants_import_slot = !ctl.paused;
        if !obs.import_slot {
            d.commands.clear();
            d.phase.status = Status::Waiting(super::waiting_for_import(obs));
        }
        gated(ctl, d)
    };
    let Some((_, last)) = cps.last() else {
        // No stage yet: the first snapshot, then the DataVolumes with it as checkpoint.
        return match stage {
            Some(s) => {
                let missing: Vec<Command> = (0..ctx.disk_bytes.len())
                    .filter(|&i| obs.disks.get(i).is_none_or(|d| *d == DiskObs::Absent))
                    .map(|disk| Command::CreateStageVolume {
                        disk,
                        current: s.moref.clone(),
                        last: false,
                    })
                    .collect();
                slot(decision(Step::Precopy, Status::Active, missing))
            }
            None if any_dv => busy("waiting for the DataVolumes' checkpoints"),
            None => slot(decision(
                Step::Precopy,
                Status::Active,
                vec![Command::CreateSnapshot {
                    name: w.stage_name(1),
                }],
            )),
        };
    };
    let round = cps.len() as u32;
    // A disk whose DataVolume is missing (a crash between creations) gets it now.
    let missing: Vec<Command> = (0..ctx.disk_bytes.len())
        .filter(|&i| obs.disks.get(i).is_none_or(|d| *d == DiskObs::Absent))
        .map(|disk| Command::CreateStageVolume {
            disk,
            current: cps[0].1.clone(),
            last: false,
        })
        .collect();
    if !missing.is_empty() {
        return slot(decision(Step::Precopy, Status::Active, missing));
    }
    if !copied_everywhere(ctx, obs, last) {
        // Round `round` is copying (its progress shows).
        let mut d = decision(Step::Precopy, Status::Active, vec![]);
        d.wants_import_slot = !ctl.paused;
        return d;
    }
    if src.has(last) {
        // Copied: record the change IDs, then remove the snapshot.
        return gated(
            ctl,
            decision(
                Step::Precopy,
                Status::Active,
                vec![Command::RemoveSnapshot {
                    moref: last.clone(),
                    record: true,
                }],
            ),
        );
    }
    let Some(previous) = previous_ids(ctx, obs, last) else {
        // The IDs are always written before the snapshot is removed (`RemoveSnapshot {
        // record: true }`), so a snapshot gone without them means the DataVolume watch has
        // not shown the write yet: wait for it, never fail on a stale view.
        return decision(Step::Precopy, Status::Waiting(ids_pending(last)), vec![]);
    };
    if let Some(s) = stage.filter(|s| s.moref != *last) {
        // A new round's snapshot exists: add it as the next checkpoint.
        return slot(decision(
            Step::Precopy,
            Status::Active,
            vec![Command::AddCheckpoint {
                current: s.moref.clone(),
                previous,
                last: false,
            }],
        ));
    }
    // Between stages: the cutover when its gates are open, else the next round when due.
    let gate = if let Some(why) = &obs.outside_window {
        Some(why.clone())
    } else if !obs.deps_verified {
        Some(format!(
            "waiting for {} to be verified",
            if obs.deps_pending.is_empty() {
                "dependencies".to_string()
            } else {
                obs.deps_pending.join(", ")
            }
        ))
    } else if !obs.cutover_slot {
        Some("waiting for a cutover slot".to_string())
    } else {
        None
    };
    match gate {
        None => {
            let mut d = gated(
                ctl,
                decision(
                    Step::CutoverGate,
                    Status::Active,
                    vec![Command::PowerOffSource],
                ),
            );
            d.wants_cutover_slot = !ctl.paused;
            if !ctx.power_off_by_api {
                d = gated(
                    ctl,
                    cutover_guard(ctx, obs, Step::CutoverGate, Command::PowerOffSource),
                );
                d.wants_cutover_slot = !ctl.paused;
            }
            d
        }
        Some(why) => {
            let mut d = if obs.warm.precopy_due {
                slot(decision(
                    Step::Precopy,
                    Status::Active,
                    vec![Command::CreateSnapshot {
                        name: w.stage_name(round + 1),
                    }],
                ))
            } else {
                let next = obs
                    .warm
                    .next_round_in
                    .as_deref()
                    .map_or(String::new(), |n| format!("; next round in {n}"));
                decision(
                    Step::Precopy,
                    Status::Waiting(format!("precopy round {round} copied{next}; {why}")),
                    vec![],
                )
            };
            d.wants_cutover_slot = why == "waiting for a cutover slot" && !ctl.paused;
            d
        }
    }
}

/// After the power-off: retire the last precopy snapshot, the final snapshot, the final
/// checkpoint; the copy finishes in [`decide_stages`]' `all_succeeded` branch.
fn final_stage(
    ctx: &VmContext,
    w: &WarmCtx,
    obs: &Observed,
    src: &WarmSource,
    cps: &[(String, String)],
) -> Decision {
    let step = Step::Importing;
    if obs.power_off_in_flight || obs.source_power != Power::Off {
        return decision(Step::CutoverGate, Status::Active, vec![]);
    }
    if src.task_running {
        return decision(step, Status::Active, vec![])
            .with_reason("waiting for a snapshot task of the source VM to finish");
    }
    let final_added = obs.warm.stages.iter().any(|s| s.final_checkpoint);
    if final_added {
        // The final stage is copying (`Succeeded` ends it).
        return decision(step, Status::Active, vec![]);
    }
    let last = cps.last().map(|(_, c)| c.as_str());
    // A precopy snapshot left: one under copy finishes first; a copied one is retired
    // (recording its change IDs); one never added is just removed.
    if let Some(s) = src.stage() {
        if Some(s.moref.as_str()) == last {
            if !copied_everywhere(ctx, obs, &s.moref) {
                return decision(step, Status::Active, vec![])
                    .with_reason("the last precopy round finishes before the final stage");
            }
            return decision(
                step,
                Status::Active,
                vec![Command::RemoveSnapshot {
                    moref: s.moref.clone(),
                    record: true,
                }],
            );
        }
        return decision(
            step,
            Status::Active,
            vec![Command::RemoveSnapshot {
                moref: s.moref.clone(),
                record: false,
            }],
        );
    }
    let Some(f) = src.final_snap() else {
        // Only now, with the source off: the final snapshot.
        return decision(
            step,
            Status::Active,
            vec![Command::CreateSnapshot {
                name: w.final_name(),
            }],
        );
    };
    let Some(last) = last else {
        // No precopy stage (the source was off before the run): one stage, final.
        let cmds = (0..ctx.disk_bytes.len())
            .filter(|&i| obs.disks.get(i).is_none_or(|d| *d == DiskObs::Absent))
            .map(|disk| Command::CreateStageVolume {
                disk,
                current: f.moref.clone(),
                last: true,
            })
            .collect();
        return decision(step, Status::Active, cmds);
    };
    match previous_ids(ctx, obs, last) {
        Some(previous) => decision(
            step,
            Status::Active,
            vec![Command::AddCheckpoint {
                current: f.moref.clone(),
                previous,
                last: true,
            }],
        ),
        // As in `precopy`: written before the removal, so only not seen yet.
        None => decision(step, Status::Waiting(ids_pending(last)), vec![]),
    }
}

/// Waiting for the DataVolume watch to show the change IDs recorded at `checkpoint`.
fn ids_pending(checkpoint: &str) -> String {
    format!(
        "waiting for the DataVolumes to show the change IDs recorded at checkpoint {checkpoint} (if they were removed by hand, roll the VM back)"
    )
}

impl Decision {
    /// An active decision that says what it is doing (shown as its reason).
    fn with_reason(mut self, what: &str) -> Decision {
        if self.phase.status == Status::Active {
            self.phase.status = Status::Waiting(what.to_string());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decide::{decide, Gate, IpGuard};

    fn ctx() -> VmContext {
        VmContext {
            disk_bytes: vec![30, 10],
            power_off_by_api: true,
            has_checks: true,
            import_restart_limit: 3,
            guest_agent: false,
            warm: Some(WarmCtx {
                prefix: "wavelift-p-web".into(),
                enable_cbt: false,
            }),
            forklift: false,
        }
    }

    fn snap(moref: &str, round: Option<u32>) -> Snap {
        Snap {
            moref: moref.into(),
            round,
            quiesced: true,
        }
    }

    /// Preflight passed, networks ready, CBT on, nothing copied yet, the source running.
    fn start() -> Observed {
        Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            disks: vec![DiskObs::Absent, DiskObs::Absent],
            source_power: Power::On,
            deps_verified: true,
            import_slot: true,
            warm: WarmObs {
                source: Some(WarmSource {
                    cbt_enabled: true,
                    cbt_ready: true,
                    ..Default::default()
                }),
                stages: vec![DiskStages::default(), DiskStages::default()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Both disks carry these checkpoints, with `copied` copied and change IDs recorded
    /// for `recorded`.
    fn staged(obs: &mut Observed, cps: &[(&str, &str)], copied: &[&str], recorded: Option<&str>) {
        obs.disks = vec![
            DiskObs::importing(crate::cluster::phase::DvPhase::Paused, Some(1.0)),
            DiskObs::importing(crate::cluster::phase::DvPhase::Paused, Some(1.0)),
        ];
        for (i, s) in obs.warm.stages.iter_mut().enumerate() {
            s.checkpoints = cps
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect();
            s.copied = copied.iter().map(|c| c.to_string()).collect();
            s.change_id = recorded.map(|r| (r.to_string(), format!("52 aa/{i}{r}")));
        }
    }

    fn run(obs: &Observed) -> Decision {
        decide(&ctx(), obs, Control::default())
    }

    fn src(obs: &mut Observed) -> &mut WarmSource {
        obs.warm.source.as_mut().expect("source read")
    }

    #[test]
    fn reads_the_source_first_then_enables_cbt_only_when_allowed() {
        let mut o = start();
        o.warm.source = None;
        assert_eq!(run(&o).commands, vec![Command::ReadSource]);
        let mut o = start();
        src(&mut o).cbt_ready = false;
        src(&mut o).cbt_enabled = false;
        let d = run(&o);
        assert!(matches!(&d.phase.status, Status::Failed(w) if w.starts_with("warm-cbt-off")));
        let mut c = ctx();
        c.warm.as_mut().expect("warm").enable_cbt = true;
        assert_eq!(
            decide(&c, &o, Control::default()).commands,
            vec![Command::EnableCbt]
        );
        // CBT on but not yet effective (no change IDs): the stun is part of EnableCbt.
        src(&mut o).cbt_enabled = true;
        assert_eq!(run(&o).commands, vec![Command::EnableCbt]);
    }

    #[test]
    fn first_round_snapshot_then_volumes_with_the_checkpoint() {
        let mut o = start();
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Precopy);
        assert_eq!(
            d.commands,
            vec![Command::CreateSnapshot {
                name: "wavelift-p-web-1".into()
            }]
        );
        assert!(d.wants_import_slot);
        // No import slot: it waits, and takes no snapshot.
        o.import_slot = false;
        let d = run(&o);
        assert!(d.commands.is_empty());
        assert!(matches!(d.phase.status, Status::Waiting(_)));
        o.import_slot = true;
        src(&mut o).ours.push(snap("snapshot-1", Some(1)));
        let d = run(&o);
        assert_eq!(
            d.commands,
            (0..2)
                .map(|disk| Command::CreateStageVolume {
                    disk,
                    current: "snapshot-1".into(),
                    last: false
                })
                .collect::<Vec<_>>()
        );
        // Warm disks exist while the source runs: that is no data-safety failure.
        staged(&mut o, &[("", "snapshot-1")], &[], None);
        let d = run(&o);
        assert_eq!(
            (d.phase.step, &d.phase.status),
            (Step::Precopy, &Status::Active)
        );
        assert!(d.commands.is_empty());
    }

    #[test]
    fn a_copied_stage_records_change_ids_and_removes_its_snapshot_then_waits_for_the_round() {
        let mut o = start();
        o.outside_window = Some("waiting for the change window: it opens in 3h".into());
        src(&mut o).ours.push(snap("snapshot-1", Some(1)));
        staged(&mut o, &[("", "snapshot-1")], &["snapshot-1"], None);
        assert_eq!(
            run(&o).commands,
            vec![Command::RemoveSnapshot {
                moref: "snapshot-1".into(),
                record: true
            }]
        );
        // Removed and recorded: wait for the next round (at most one snapshot at a time).
        src(&mut o).ours.clear();
        staged(
            &mut o,
            &[("", "snapshot-1")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        o.warm.next_round_in = Some("42m".into());
        let d = run(&o);
        assert!(d.commands.is_empty());
        assert!(
            matches!(&d.phase.status, Status::Waiting(w) if w.contains("precopy round 1 copied; next round in 42m") && w.contains("change window")),
            "{:?}",
            d.phase.status
        );
        // Due: round 2's snapshot, then its checkpoint with each disk's change ID.
        o.warm.precopy_due = true;
        assert_eq!(
            run(&o).commands,
            vec![Command::CreateSnapshot {
                name: "wavelift-p-web-2".into()
            }]
        );
        src(&mut o).ours.push(snap("snapshot-2", Some(2)));
        assert_eq!(
            run(&o).commands,
            vec![Command::AddCheckpoint {
                current: "snapshot-2".into(),
                previous: vec!["52 aa/0snapshot-1".into(), "52 aa/1snapshot-1".into()],
                last: false
            }]
        );
    }

    /// The IDs are written before their snapshot is removed: a snapshot gone without them
    /// in view is a DataVolume watch that lags (CI saw it under API errors), so the VM waits,
    /// naming what for, and issues nothing (no next stage from a wrong `previous`).
    #[test]
    fn change_ids_not_yet_seen_after_their_snapshot_went_are_waited_for() {
        let mut o = start();
        staged(&mut o, &[("", "snapshot-1")], &["snapshot-1"], None);
        let d = run(&o);
        assert!(
            matches!(&d.phase.status, Status::Waiting(w) if w.contains("change IDs recorded at checkpoint snapshot-1")),
            "{:?}",
            d.phase
        );
        assert!(d.commands.is_empty());
    }

    #[test]
    fn cutover_powers_off_between_stages_only_when_the_gates_open() {
        let mut o = start();
        staged(
            &mut o,
            &[("", "snapshot-1")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        // Gates open but no cutover slot yet: it asks for one.
        let d = run(&o);
        assert!(d.wants_cutover_slot);
        assert!(d.commands.is_empty());
        o.cutover_slot = true;
        let d = run(&o);
        assert_eq!(
            (d.phase.step, d.commands.clone()),
            (Step::CutoverGate, vec![Command::PowerOffSource])
        );
        // A round still copying: the cutover waits for it.
        staged(
            &mut o,
            &[("", "snapshot-1"), ("x", "snapshot-2")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        src(&mut o).ours.push(snap("snapshot-2", Some(2)));
        let d = run(&o);
        assert_eq!(d.phase.step, Step::Precopy);
        assert!(d.commands.is_empty());
    }

    #[test]
    fn final_stage_after_power_off_then_snapshot_removed_then_guard_and_create() {
        let mut o = start();
        o.cutover_slot = true;
        staged(
            &mut o,
            &[("", "snapshot-1")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        // Powering off: nothing else happens until vCenter says it is off.
        o.power_off_in_flight = true;
        let d = run(&o);
        assert_eq!((d.phase.step, d.commands.len()), (Step::CutoverGate, 0));
        o.power_off_in_flight = false;
        o.source_power = Power::Off;
        let d = run(&o);
        assert_eq!(
            d.commands,
            vec![Command::CreateSnapshot {
                name: "wavelift-p-web-final".into()
            }]
        );
        src(&mut o).ours.push(snap("snapshot-9", None));
        assert_eq!(
            run(&o).commands,
            vec![Command::AddCheckpoint {
                current: "snapshot-9".into(),
                previous: vec!["52 aa/0snapshot-1".into(), "52 aa/1snapshot-1".into()],
                last: true
            }]
        );
        staged(
            &mut o,
            &[("", "snapshot-1"), ("c", "snapshot-9")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        for s in &mut o.warm.stages {
            s.final_checkpoint = true;
        }
        let d = run(&o);
        assert_eq!((d.phase.step, d.commands.len()), (Step::Importing, 0));
        o.disks = vec![DiskObs::Succeeded, DiskObs::Succeeded];
        assert_eq!(
            run(&o).commands,
            vec![Command::RemoveSnapshot {
                moref: "snapshot-9".into(),
                record: false
            }]
        );
        src(&mut o).ours.clear();
        assert_eq!(run(&o).commands, vec![Command::ProbeOriginalIp]);
        o.ip_guard = IpGuard::Silent;
        assert_eq!(run(&o).commands, vec![Command::CreateVm]);
    }

    #[test]
    fn a_precopy_snapshot_left_at_power_off_is_finished_or_retired_first() {
        let mut o = start();
        o.source_power = Power::Off;
        // Round 2 copying when the source went off: it finishes first.
        staged(
            &mut o,
            &[("", "snapshot-1"), ("c1", "snapshot-2")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        src(&mut o).ours.push(snap("snapshot-2", Some(2)));
        assert!(run(&o).commands.is_empty());
        // Copied: retired with its change IDs, and only then the final snapshot.
        staged(
            &mut o,
            &[("", "snapshot-1"), ("c1", "snapshot-2")],
            &["snapshot-1", "snapshot-2"],
            Some("snapshot-1"),
        );
        assert_eq!(
            run(&o).commands,
            vec![Command::RemoveSnapshot {
                moref: "snapshot-2".into(),
                record: true
            }]
        );
        // A round-3 snapshot never added: removed without recording.
        staged(
            &mut o,
            &[("", "snapshot-1")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        src(&mut o).ours = vec![snap("snapshot-3", Some(3))];
        assert_eq!(
            run(&o).commands,
            vec![Command::RemoveSnapshot {
                moref: "snapshot-3".into(),
                record: false
            }]
        );
    }

    #[test]
    fn a_source_running_after_its_final_stage_fails_the_vm() {
        let mut o = start();
        staged(
            &mut o,
            &[("", "snapshot-1"), ("c", "snapshot-9")],
            &["snapshot-1"],
            Some("snapshot-1"),
        );
        for s in &mut o.warm.stages {
            s.final_checkpoint = true;
        }
        let d = run(&o);
        assert!(
            matches!(&d.phase.status, Status::Failed(w) if w.contains("runs again after its final snapshot"))
        );
    }

    #[test]
    fn cancel_and_rollback_remove_wavelifts_snapshots() {
        let mut o = start();
        src(&mut o).ours.push(snap("snapshot-4", Some(4)));
        staged(&mut o, &[("", "snapshot-4")], &[], None);
        let cancel = Control {
            cancel: true,
            ..Default::default()
        };
        let d = decide(&ctx(), &o, cancel);
        assert_eq!(d.phase.step, Step::Cancelled);
        assert_eq!(
            d.commands,
            vec![
                Command::DeleteDataVolumes,
                Command::RemoveSnapshot {
                    moref: "snapshot-4".into(),
                    record: false
                }
            ]
        );
        let rollback = Control {
            rollback: true,
            ..Default::default()
        };
        let d = decide(&ctx(), &o, rollback);
        assert!(d.commands.contains(&Command::RemoveSnapshot {
            moref: "snapshot-4".into(),
            record: false
        }));
    }

    #[test]
    fn cancel_and_rollback_read_vcenter_first_when_this_run_has_not() {
        // A resumed run, cancelled before it read vCenter: an earlier run's snapshot may be
        // there, so vCenter is read before the VM counts as cancelled or rolled back.
        let mut o = start();
        o.warm.source = None;
        staged(&mut o, &[("", "snapshot-4")], &[], None);
        let cancel = Control {
            cancel: true,
            ..Default::default()
        };
        let d = decide(&ctx(), &o, cancel);
        assert_eq!(
            d.commands,
            vec![Command::DeleteDataVolumes, Command::ReadSource]
        );
        let rollback = Control {
            rollback: true,
            ..Default::default()
        };
        let d = decide(&ctx(), &o, rollback);
        assert_eq!(d.phase.step, Step::RollingBack);
        assert!(d.commands.contains(&Command::ReadSource));
        assert!(!d.commands.contains(&Command::PowerOnSource));
        // Once read, the snapshot it shows is removed.
        o.warm.source = start().warm.source;
        src(&mut o).ours.push(snap("snapshot-4", Some(4)));
        let d = decide(&ctx(), &o, cancel);
        assert!(d.commands.contains(&Command::RemoveSnapshot {
            moref: "snapshot-4".into(),
            record: false
        }));
    }

    #[test]
    fn snapshots_are_told_apart_by_name() {
        use crate::source::{Snapshot, SourceDisk, SourcePower, WarmView};
        let s = |name: &str, moref: &str| Snapshot {
            moref: moref.into(),
            name: name.into(),
            quiesced: true,
        };
        let view = WarmView {
            power: SourcePower::On,
            cbt_enabled: true,
            disks: vec![SourceDisk {
                file: "[ds1] web/web.vmdk".into(),
                change_id: Some("52 aa/3".into()),
            }],
            snapshots: vec![
                s("pre-patch", "snapshot-1"),
                s("wavelift-p-web-2", "snapshot-2"),
                s("wavelift-p-web-final", "snapshot-3"),
                s("wavelift-p-web-x", "snapshot-4"),
                s("wavelift-cbt-stun", "snapshot-5"),
            ],
            snapshot_task_running: false,
            tools_running: true,
            host: Some("esx-07".into()),
        };
        let w = WarmSource::from_view(&view, ctx().warm.as_ref().expect("warm"));
        assert!(w.cbt_ready);
        assert_eq!(w.foreign, vec!["pre-patch", "wavelift-p-web-x"]);
        assert_eq!(
            w.ours,
            vec![snap("snapshot-2", Some(2)), snap("snapshot-3", None)]
        );
    }
}
