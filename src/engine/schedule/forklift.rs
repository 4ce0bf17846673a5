//! The Forklift backend's per-Plan gate: one Forklift Plan groups VMs that start together
//! (one Migration powers every cold source off at once), so
//! - its VMs get their cutover slots together, only when every VM of the Plan that has not
//!   started asks for one and the wave has room for all of them ([`grant_cutover_slots`]);
//! - its Migration is created only when every such VM asks to start
//!   ([`Command::StartMigration`]), with every other VM of the Plan (failed, cancelled, out
//!   of scope, or not retried) in its `spec.cancel`; a warm Plan's cutover is set only when
//!   every VM precopying asks ([`Command::SetCutover`]).
//!
//! Both read only the VMs' last decisions, so an incremental pass gives what deciding every
//! VM gives: a Plan's gate can open only in a pass that decided one of its VMs.

use super::{Command, Fleet, Status, Step, Turn};
use std::collections::{BTreeSet, HashSet};

/// A VM of the Plan that has not started in Forklift and still may: it holds the Plan's
/// Migration (or cutover) back until it asks too.
fn holds_back(fleet: &Fleet, i: usize, kind: &Command) -> bool {
    if !fleet.in_scope(i) {
        return false;
    }
    let Some(d) = fleet.rec.effective(i) else {
        return true;
    };
    if matches!(d.phase.status, Status::Failed(_)) || fleet.vms[i].control.cancel {
        return false;
    }
    match kind {
        Command::SetCutover => d.phase.step == Step::Precopy,
        _ => {
            matches!(
                d.phase.step,
                Step::Pending | Step::Preflight | Step::NetworkReady | Step::CutoverGate
            ) && fleet.vms[i]
                .cluster
                .forklift
                .as_ref()
                .is_none_or(|f| f.migration.is_none())
        }
    }
}

fn asks(fleet: &Fleet, i: usize, kind: &Command) -> bool {
    fleet.in_scope(i)
        && fleet
            .rec
            .effective(i)
            .is_some_and(|d| d.commands.contains(kind))
}

/// The latest Migration of group `g` as its VMs' views show it.
fn latest(fleet: &Fleet, g: usize) -> Option<(String, u32)> {
    fleet.fk.members[g]
        .iter()
        .filter_map(|&i| fleet.vms[i].cluster.forklift.as_ref()?.migration.as_ref())
        .max_by_key(|m| m.attempt)
        .map(|m| (m.name.clone(), m.attempt))
}

/// Issues the Plans' Migrations and cutovers whose VMs all ask (see the module doc).
pub(super) fn forklift_gates(
    fleet: &mut Fleet,
    decided: &BTreeSet<usize>,
    blocked: &HashSet<usize>,
    at_ms: i64,
    out: &mut Turn,
) {
    if fleet.fk.groups.is_empty() {
        return;
    }
    let groups: BTreeSet<usize> = decided
        .iter()
        .filter_map(|&i| fleet.fk.group_of[i])
        .collect();
    for g in groups {
        let members = fleet.fk.members[g].clone();
        if members
            .first()
            .is_some_and(|&i| blocked.contains(&fleet.rec.wave_of[i]))
        {
            continue;
        }
        for kind in [Command::StartMigration, Command::SetCutover] {
            let askers: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| asks(fleet, i, &kind))
                .collect();
            let Some(&leader) = askers.first() else {
                continue;
            };
            if members
                .iter()
                .any(|&i| !askers.contains(&i) && holds_back(fleet, i, &kind))
            {
                continue;
            }
            let seen = latest(fleet, g);
            let cmd = if kind == Command::StartMigration {
                let attempt = seen.as_ref().map_or(0, |(_, a)| *a) + 1;
                if fleet.fk.issued[g] >= attempt {
                    continue;
                }
                fleet.fk.issued[g] = attempt;
                let cancel = members
                    .iter()
                    .filter(|i| !askers.contains(i))
                    .map(|&i| fleet.plan.vms[i].name.value.clone())
                    .collect();
                Command::CreateMigration {
                    plan: fleet.fk.groups[g].name.clone(),
                    attempt,
                    cancel,
                    cutover: false,
                }
            } else {
                let Some((name, _)) = seen else { continue };
                if !fleet.fk.cutovers.insert(name.clone()) {
                    continue;
                }
                Command::PatchCutover {
                    migration: name,
                    at_ms,
                }
            };
            fleet.vms[leader].in_flight.insert(cmd.clone());
            out.commands.push((leader, cmd));
        }
    }
}

/// A failed Migration create or cutover patch may be issued again (after the operator's
/// retry of the VM it failed).
pub(super) fn command_failed(fleet: &mut Fleet, vm: usize, cmd: &Command) {
    let Some(g) = fleet.fk.group_of.get(vm).copied().flatten() else {
        return;
    };
    match cmd {
        Command::CreateMigration { attempt, .. } => {
            fleet.fk.issued[g] = fleet.fk.issued[g].min(attempt.saturating_sub(1));
        }
        Command::PatchCutover { migration, .. } => {
            fleet.fk.cutovers.remove(migration);
        }
        _ => {}
    }
}

/// Cutover slots for Forklift VMs, a Plan at a time: granted to all of a Plan's waiting
/// VMs at once when none of its VMs that may still start is without one and the wave has
/// room for them all (granted one by one, two interleaved Plans could each hold half the
/// slots and wait for each other forever). Returns whether a slot was granted.
pub(super) fn grant_cutover_slots(fleet: &mut Fleet, w: usize, mut free: u32) -> bool {
    let waiting: Vec<usize> = fleet.rec.cutover_waiters[w]
        .iter()
        .copied()
        .filter(|&i| fleet.in_scope(i) && fleet.fk.group_of[i].is_some())
        .collect();
    let mut granted = false;
    let mut seen = HashSet::new();
    for i in waiting {
        let Some(g) = fleet.fk.group_of[i] else {
            continue;
        };
        if !seen.insert(g) {
            continue;
        }
        let members = fleet.fk.members[g].clone();
        let want: Vec<usize> = members
            .iter()
            .copied()
            .filter(|j| fleet.rec.cutover_waiters[w].contains(j) && fleet.in_scope(*j))
            .collect();
        let all_ask = members.iter().all(|&j| {
            want.contains(&j)
                || fleet.vms[j].cutover_slot
                || !(holds_back(fleet, j, &Command::StartMigration)
                    || holds_back(fleet, j, &Command::SetCutover))
        });
        if !all_ask || want.len() as u32 > free {
            continue;
        }
        for j in want {
            fleet.set_cutover_slot(j, true);
            free -= 1;
            granted = true;
            fleet.rec.mark(j);
            let r = &fleet.vms[j];
            let (import_slot, cutover_slot) = (r.import_slot, r.cutover_slot);
            fleet.rec.sync_waiting(j, import_slot, cutover_slot);
        }
    }
    granted
}
