//! The Forklift backend's decisions (`[plan] backend = "forklift"`), pure like
//! [`super::decide`]: Forklift copies and converts; wavelift keeps preflight, the networks,
//! the gates (window, cutover slot, `after`), the duplicate-IP guard, the boot and the checks.
//!
//! - cold: once the VM's cutover may start (window, cutover slot, every `after` dependency
//!   verified) it asks for its Forklift Plan's Migration ([`Command::StartMigration`]); the
//!   scheduler creates one Migration per Plan, only when every VM of the Plan asks (a cold
//!   Migration powers each source off at once);
//! - warm: the Migration is asked for at wave start (Forklift precopies), and the cutover
//!   ([`Command::SetCutover`], `Migration.spec.cutover`) once the cutover may start;
//! - while Forklift runs: step `Importing` (warm: `Precopy` until the cutover), progress from
//!   Forklift's `DiskTransfer`/`DiskTransferV2v`, its own step name as `backend_step`; a
//!   Forklift failure fails the VM with Forklift's step and reasons;
//! - once Forklift's VM succeeded, the VM exists halted (`targetPowerState: off`): wavelift
//!   labels it as its own ([`Command::AdoptVm`]), runs its duplicate-IP guard (Forklift
//!   powered the source off) and starts it, then as with CDI: boot, checks, `Verified`.
//!
//! Controls: cancel patches `Migration.spec.cancel` for the VM ([`Command::CancelInForklift`])
//! while Forklift runs it, nothing before; retry is a new Migration for the Plan whose
//! `spec.cancel` lists every other VM; rollback deletes the VM Forklift created, then powers
//! the source on. A cancel after Forklift finished the VM is refused by the scheduler (it
//! says why); so is a rollback while Forklift still runs the VM.

use super::{
    decision, gated, preflight_steps, Command, Control, Decision, Gate, Observed, Power, Status,
    Step, VmContext,
};

/// How Forklift ended a VM's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Canceled,
}

/// One VM as Forklift shows it: its Plan's latest Migration and the VM's entry in
/// `Plan.status.migration.vms[]` (mapped by the runtime).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForkliftObs {
    /// The latest Migration of the VM's Plan (`<plan>-m<attempt>`), if any.
    pub migration: Option<MigrationObs>,
    /// The VM's status from that Migration (`None`: Forklift has not started it yet).
    pub vm: Option<VmObs>,
}

/// The latest Migration of a VM's Plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationObs {
    pub name: String,
    pub attempt: u32,
    /// `spec.cutover` is set.
    pub cutover_set: bool,
    /// The VM is in its `spec.cancel`.
    pub cancels_vm: bool,
}

/// The VM's entry in `Plan.status.migration.vms[]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VmObs {
    /// Forklift's current (or last) step, e.g. `DiskTransferV2v`.
    pub step: String,
    /// Forklift's VM phase, e.g. `CopyDisksVirtV2V`, `Completed`.
    pub phase: String,
    /// Disk transfer progress (`DiskTransfer` or `DiskTransferV2v`), 0.0–1.0.
    pub progress: Option<f64>,
    /// `Failed`: Forklift's step and reasons.
    pub error: Option<String>,
    pub outcome: Option<Outcome>,
    /// Forklift powered the source off (cold: `Initialize` completed; warm: the `Cutover`
    /// step's power-off is done).
    pub source_off: bool,
    /// Warm: Forklift is past its precopies (the cutover started).
    pub cutting_over: bool,
    /// Every step of the VM's pipeline as Forklift reports it (for the cutover record).
    pub steps: Vec<crate::checks::report::BackendStep>,
}

fn with_backend(mut d: Decision, fk: &ForkliftObs) -> Decision {
    if let Some(v) = &fk.vm {
        d.phase.backend_step = Some(v.step.clone()).filter(|s| !s.is_empty());
        if d.phase.progress.is_none() && matches!(d.phase.step, Step::Importing | Step::Precopy) {
            d.phase.progress = v.progress;
        }
    }
    d
}

/// The Forklift backend's pipeline (see the module doc).
pub fn decide(ctx: &VmContext, obs: &Observed, ctl: Control) -> Decision {
    let fk = obs.forklift.clone().unwrap_or_default();
    if ctl.rollback {
        return with_backend(rollback(obs, &fk), &fk);
    }
    let d = pipeline(ctx, obs, ctl, &fk);
    if ctl.cancel {
        if let Some(c) = cancel(&d, &fk) {
            return with_backend(c, &fk);
        }
    }
    with_backend(d, &fk)
}

/// Cancel: before Forklift has the VM, it is cancelled as it is (a later Migration lists it
/// in `spec.cancel`); while Forklift runs it, `Migration.spec.cancel`; once Forklift
/// finished it, the cutover goes on (`None`: the pipeline's decision stands).
fn cancel(d: &Decision, fk: &ForkliftObs) -> Option<Decision> {
    let running = fk.migration.is_some() && fk.vm.as_ref().is_some_and(|v| v.outcome.is_none());
    if d.phase.step.before_cutover() && !running {
        return Some(decision(Step::Cancelled, Status::Active, vec![]));
    }
    match fk.vm.as_ref().and_then(|v| v.outcome) {
        Some(Outcome::Canceled) => Some(decision(Step::Cancelled, Status::Active, vec![])),
        None if fk.migration.is_some() => {
            let cmds = match &fk.migration {
                Some(m) if !m.cancels_vm => vec![Command::CancelInForklift {
                    migration: m.name.clone(),
                }],
                _ => vec![],
            };
            Some(decision(Step::Importing, Status::Active, cmds))
        }
        _ => None,
    }
}

fn rollback(obs: &Observed, _fk: &ForkliftObs) -> Decision {
    let mut cmds = Vec::new();
    if obs.vm_started.is_some() || obs.vmi_phase.is_some() {
        cmds.push(Command::DeleteVm);
    }
    if cmds.is_empty() && obs.source_power != Power::On {
        cmds.push(Command::PowerOnSource);
    }
    if cmds.is_empty() {
        decision(Step::RolledBack, Status::Active, vec![])
    } else {
        decision(Step::RollingBack, Status::Active, cmds)
    }
}

fn pipeline(ctx: &VmContext, obs: &Observed, ctl: Control, fk: &ForkliftObs) -> Decision {
    let warm = ctx.warm.is_some();
    let vm = fk.vm.as_ref();
    let outcome = vm.and_then(|v| v.outcome);
    // Forklift's VM succeeded: the VirtualMachine exists, halted. wavelift labels it as its
    // own, then as with CDI: the duplicate-IP guard in this run (Forklift powered the source
    // off), the start, the boot and the checks.
    if let Some(started) = obs.vm_started {
        if outcome == Some(Outcome::Succeeded) || started {
            if obs.vm_labelled {
                return super::after_creation(ctx, obs, ctl);
            }
            return gated(
                ctl,
                decision(Step::Created, Status::Active, vec![Command::AdoptVm]),
            );
        }
    } else if outcome == Some(Outcome::Succeeded) {
        return decision(
            Step::Imported,
            Status::Waiting(
                "Forklift reports the VM migrated; waiting for its VirtualMachine".into(),
            ),
            vec![],
        );
    }
    if let (Some(v), Some(o)) = (vm, outcome) {
        let why = match o {
            Outcome::Failed => format!(
                "Forklift: {}",
                v.error
                    .clone()
                    .unwrap_or_else(|| "the VM migration failed".into())
            ),
            Outcome::Canceled => {
                "Forklift canceled the VM's migration (retry starts a new Migration)".into()
            }
            Outcome::Succeeded => unreachable!(),
        };
        if obs.forklift_retry {
            // A retry: a new Migration for the Plan (the scheduler lists the Plan's other
            // VMs in its `spec.cancel`).
            return gated(
                ctl,
                decision(
                    Step::Importing,
                    Status::Active,
                    vec![Command::StartMigration],
                ),
            );
        }
        return decision(Step::Importing, Status::Failed(why), vec![]);
    }
    if let Some(m) = &fk.migration {
        if m.cancels_vm {
            return decision(Step::Cancelled, Status::Active, vec![]);
        }
        let Some(v) = vm else {
            return decision(
                if warm { Step::Precopy } else { Step::Importing },
                Status::Waiting(format!(
                    "waiting for Forklift to start Migration {}",
                    m.name
                )),
                vec![],
            );
        };
        if warm && !v.cutting_over {
            // Precopying: the cutover is set once it may start (every VM of the Plan).
            if m.cutover_set {
                // Forklift cuts over now: the VM holds its cutover slot from here.
                let mut d = decision(Step::Precopy, Status::Active, vec![]);
                d.wants_cutover_slot = true;
                return d;
            }
            if let Some(why) = gate_wait(obs) {
                return decision(Step::Precopy, Status::Waiting(why), vec![]);
            }
            let mut d = if obs.cutover_slot {
                decision(Step::Precopy, Status::Active, vec![Command::SetCutover])
            } else {
                decision(
                    Step::Precopy,
                    Status::Waiting("waiting for a cutover slot".into()),
                    vec![],
                )
            };
            d.wants_cutover_slot = !ctl.paused;
            return paused_too(ctl, d);
        }
        return decision(Step::Importing, Status::Active, vec![]);
    }
    if obs.networks_ready && obs.preflight == Gate::Passed {
        if warm {
            // Warm: the Migration at wave start; Forklift precopies until the cutover.
            return gated(
                ctl,
                decision(
                    Step::NetworkReady,
                    Status::Active,
                    vec![Command::StartMigration],
                ),
            );
        }
        if let Some(why) = gate_wait(obs) {
            return decision(Step::NetworkReady, Status::Waiting(why), vec![]);
        }
        let mut d = if obs.cutover_slot {
            decision(
                Step::CutoverGate,
                Status::Active,
                vec![Command::StartMigration],
            )
        } else {
            decision(
                Step::NetworkReady,
                Status::Waiting("waiting for a cutover slot".into()),
                vec![],
            )
        };
        d.wants_cutover_slot = !ctl.paused;
        return paused_too(ctl, d);
    }
    preflight_steps(obs, ctl)
}

/// Paused: no new Migration or cutover, and a VM waiting for its slot shows `Paused` too
/// (as with CDI: the same answer with or without the slot it gives up).
fn paused_too(ctl: Control, d: Decision) -> Decision {
    let mut d = gated(ctl, d);
    if ctl.paused && !matches!(d.phase.status, Status::Failed(_)) {
        d.phase.status = Status::Paused;
        d.commands.clear();
        d.wants_cutover_slot = false;
    }
    d
}

/// Why the cutover may not start yet: the window, then the `after` dependencies.
fn gate_wait(obs: &Observed) -> Option<String> {
    if let Some(why) = &obs.outside_window {
        return Some(why.clone());
    }
    if !obs.deps_verified {
        let who = if obs.deps_pending.is_empty() {
            "dependencies".to_string()
        } else {
            obs.deps_pending.join(", ")
        };
        return Some(format!("waiting for {who} to be verified"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::warm::WarmCtx;
    use super::super::{decide as decide_vm, IpGuard};
    use super::*;

    fn ctx(warm: bool) -> VmContext {
        VmContext {
            disk_bytes: vec![10],
            power_off_by_api: true,
            has_checks: true,
            import_restart_limit: 3,
            guest_agent: false,
            warm: warm.then(|| WarmCtx {
                prefix: "wavelift-p-a".into(),
                enable_cbt: false,
            }),
            forklift: true,
        }
    }

    fn ready() -> Observed {
        Observed {
            preflight: Gate::Passed,
            networks_ready: true,
            deps_verified: true,
            forklift: Some(ForkliftObs::default()),
            ..Observed::default()
        }
    }

    fn running(step: &str, outcome: Option<Outcome>) -> Observed {
        Observed {
            forklift: Some(ForkliftObs {
                migration: Some(MigrationObs {
                    name: "p-w1-1-m1".into(),
                    attempt: 1,
                    ..MigrationObs::default()
                }),
                vm: Some(VmObs {
                    step: step.into(),
                    progress: Some(0.5),
                    outcome,
                    error: (outcome == Some(Outcome::Failed))
                        .then(|| "ImageConversion: virt-v2v failed".into()),
                    source_off: true,
                    ..VmObs::default()
                }),
            }),
            ..ready()
        }
    }

    fn run(warm: bool, o: &Observed) -> Decision {
        decide_vm(&ctx(warm), o, Control::default())
    }

    #[test]
    fn cold_asks_for_its_migration_only_once_its_cutover_may_start() {
        let waiting = Observed {
            deps_verified: false,
            deps_pending: vec!["db".into()],
            ..ready()
        };
        let d = run(false, &waiting);
        assert_eq!(d.phase.step, Step::NetworkReady);
        assert!(d.commands.is_empty() && !d.wants_cutover_slot);
        let d = run(false, &ready());
        assert!(d.wants_cutover_slot && d.commands.is_empty());
        let d = run(
            false,
            &Observed {
                cutover_slot: true,
                ..ready()
            },
        );
        assert_eq!(d.commands, vec![Command::StartMigration]);
    }

    #[test]
    fn warm_starts_at_once_and_asks_for_the_cutover_when_it_may() {
        assert_eq!(run(true, &ready()).commands, vec![Command::StartMigration]);
        let precopy = running("DiskTransfer", None);
        let d = run(true, &precopy);
        assert_eq!(d.phase.step, Step::Precopy);
        assert!(d.wants_cutover_slot && d.commands.is_empty());
        let d = run(
            true,
            &Observed {
                cutover_slot: true,
                ..precopy
            },
        );
        assert_eq!(d.commands, vec![Command::SetCutover]);
        assert_eq!(d.phase.backend_step.as_deref(), Some("DiskTransfer"));
    }

    #[test]
    fn forklift_progress_and_failure_are_the_vms() {
        let d = run(false, &running("DiskTransferV2v", None));
        assert_eq!(
            (d.phase.step, d.phase.progress),
            (Step::Importing, Some(0.5))
        );
        let d = run(false, &running("ImageConversion", Some(Outcome::Failed)));
        assert_eq!(
            d.phase.status,
            Status::Failed("Forklift: ImageConversion: virt-v2v failed".into())
        );
        let retry = Observed {
            forklift_retry: true,
            ..running("ImageConversion", Some(Outcome::Failed))
        };
        assert_eq!(run(false, &retry).commands, vec![Command::StartMigration]);
    }

    #[test]
    fn a_migrated_vm_is_adopted_guarded_then_started() {
        let done = Observed {
            vm_started: Some(false),
            ..running("VirtualMachineCreation", Some(Outcome::Succeeded))
        };
        assert_eq!(run(false, &done).commands, vec![Command::AdoptVm]);
        let adopted = Observed {
            vm_labelled: true,
            source_power: Power::Off,
            ..done
        };
        assert_eq!(
            run(false, &adopted).commands,
            vec![Command::ProbeOriginalIp]
        );
        let silent = Observed {
            ip_guard: IpGuard::Silent,
            ..adopted
        };
        assert_eq!(run(false, &silent).commands, vec![Command::StartVm]);
    }

    #[test]
    fn cancel_and_rollback_map_onto_forklift() {
        let cancel = Control {
            cancel: true,
            ..Control::default()
        };
        let d = decide_vm(&ctx(false), &running("DiskTransferV2v", None), cancel);
        assert_eq!(
            d.commands,
            vec![Command::CancelInForklift {
                migration: "p-w1-1-m1".into()
            }]
        );
        assert_eq!(
            decide_vm(&ctx(false), &ready(), cancel).phase.step,
            Step::Cancelled
        );
        let rb = Control {
            rollback: true,
            ..Control::default()
        };
        let created = Observed {
            vm_started: Some(true),
            ..running("VirtualMachineCreation", Some(Outcome::Succeeded))
        };
        assert_eq!(
            decide_vm(&ctx(false), &created, rb).commands,
            vec![Command::DeleteVm]
        );
        let gone = Observed {
            source_power: Power::Off,
            ..ready()
        };
        assert_eq!(
            decide_vm(&ctx(false), &gone, rb).commands,
            vec![Command::PowerOnSource]
        );
    }
}
