//! Network policy after verification (`[plan] policy = "apply"`, issue 17): once a VM's
//! checks passed, its drafted policy is applied, left to settle (`policy_settle`: real
//! clusters take time to program rules), and the checks run again with it in place. A check
//! that passed before and fails now means the policy would cut off traffic the VM serves:
//! the policy is reverted and the VM ends `Verified` but blocked, with that reason.
//!
//! Cancel and rollback: a cancel does not undo finished work, so a policy confirmed by the
//! checks (`Checking(Passed)`) stays; one applied but not confirmed yet (settling, or its
//! checks not passed yet) is removed, and the VM ends without one, reported as cancelled
//! ([`PolicyObs::Cancelled`]), not as a failed policy. Rollback deletes the policies with the
//! VM (`Command::DeleteVm`, by wavelift's labels).
//!
//! Pure: the scheduler keeps the state ([`PolicyObs`]), the runtime applies and deletes.

use super::{decision, gated, Command, Control, Decision, Gate, Status, Step};

/// Where a VM's policy stands, as this run knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PolicyObs {
    /// No policy for this VM (`policy` off or `draft`).
    #[default]
    None,
    /// To be applied (not applied by this run yet; a resumed run applies it again, which
    /// server-side apply makes idempotent).
    NotApplied,
    /// Applied; the checks run again once it settled (`left`: a countdown for the status).
    Settling { left: String },
    /// Settled: the checks with the policy in place.
    Checking(Gate),
    /// Reverted because a check failed with the policy in place (or the cluster refused
    /// it): the reason.
    Reverted(String),
    /// The wave (or the VM) was cancelled before the policy was confirmed: it was removed
    /// (or never applied). The VM runs without it and ends cancelled.
    Cancelled,
}

impl PolicyObs {
    /// The policy may be in the cluster (rollback must delete it).
    pub fn maybe_applied(&self) -> bool {
        matches!(self, PolicyObs::Settling { .. } | PolicyObs::Checking(_))
    }
}

/// The VM's checks passed: what the policy still needs before the VM is `Verified`.
pub(super) fn after_checks(policy: &PolicyObs, ctl: Control) -> Decision {
    match policy {
        PolicyObs::None => decision(Step::Verified, Status::Active, vec![]),
        // Cancelled before the policy went on: the VM stays as it is, without one.
        PolicyObs::NotApplied if ctl.cancel => cancelled(),
        PolicyObs::NotApplied => gated(
            ctl,
            decision(Step::Verifying, Status::Active, vec![Command::ApplyPolicy]),
        ),
        // Applied but not confirmed (a failed check is reverted as such, below): removed.
        PolicyObs::Settling { .. } | PolicyObs::Checking(Gate::NotRun | Gate::Running)
            if ctl.cancel =>
        {
            decision(
                Step::Verifying,
                Status::Active,
                vec![Command::RevertPolicy {
                    reason: CANCELLED.into(),
                }],
            )
        }
        PolicyObs::Settling { left } => decision(
            Step::Verifying,
            Status::Waiting(format!(
                "network policy applied; checks run again in {left}"
            )),
            vec![],
        ),
        PolicyObs::Checking(Gate::NotRun) => gated(
            ctl,
            decision(Step::Verifying, Status::Active, vec![Command::RunChecks]),
        ),
        PolicyObs::Checking(Gate::Running) => decision(Step::Verifying, Status::Active, vec![]),
        PolicyObs::Checking(Gate::Passed) => decision(Step::Verified, Status::Active, vec![]),
        PolicyObs::Checking(Gate::Failed(why)) => decision(
            Step::Verifying,
            Status::Active,
            vec![Command::RevertPolicy {
                reason: format!("a check failed with the policy in place: {why}"),
            }],
        ),
        PolicyObs::Reverted(why) => decision(
            Step::Verified,
            Status::Blocked(format!("network policy reverted: {why}")),
            vec![],
        ),
        PolicyObs::Cancelled => cancelled(),
    }
}

/// Why a cancel removes a policy that was not confirmed yet.
pub const CANCELLED: &str = "the wave was cancelled before the policy was confirmed";

/// The VM was verified but its policy cancelled: it runs without one.
fn cancelled() -> Decision {
    decision(
        Step::Verified,
        Status::Blocked(format!(
            "cancelled: runs without its network policy ({CANCELLED})"
        )),
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &PolicyObs) -> Decision {
        after_checks(p, Control::default())
    }

    #[test]
    fn apply_settle_check_then_verified() {
        assert_eq!(run(&PolicyObs::None).phase.step, Step::Verified);
        let d = run(&PolicyObs::NotApplied);
        assert_eq!(
            (d.phase.step, d.commands),
            (Step::Verifying, vec![Command::ApplyPolicy])
        );
        let d = run(&PolicyObs::Settling { left: "8s".into() });
        assert_eq!(
            d.phase.status,
            Status::Waiting("network policy applied; checks run again in 8s".into())
        );
        assert!(d.commands.is_empty());
        assert_eq!(
            run(&PolicyObs::Checking(Gate::NotRun)).commands,
            vec![Command::RunChecks]
        );
        assert_eq!(
            run(&PolicyObs::Checking(Gate::Passed)).phase,
            super::super::phase(Step::Verified, Status::Active)
        );
    }

    #[test]
    fn a_failed_check_reverts_and_the_vm_ends_blocked_with_the_reason() {
        let d = run(&PolicyObs::Checking(Gate::Failed(
            "tcp:5432: refused".into(),
        )));
        assert_eq!(
            d.commands,
            vec![Command::RevertPolicy {
                reason: "a check failed with the policy in place: tcp:5432: refused".into()
            }]
        );
        let d = run(&PolicyObs::Reverted("tcp:5432 blocked".into()));
        assert_eq!(d.phase.step, Step::Verified);
        assert_eq!(
            d.phase.status,
            Status::Blocked("network policy reverted: tcp:5432 blocked".into())
        );
    }

    #[test]
    fn paused_holds_new_work_and_cancel_never_leaves_an_unconfirmed_policy() {
        let paused = Control {
            paused: true,
            ..Control::default()
        };
        assert!(after_checks(&PolicyObs::NotApplied, paused)
            .commands
            .is_empty());
        let cancel = Control {
            cancel: true,
            ..Control::default()
        };
        let cancelled = super::super::phase(
            Step::Verified,
            Status::Blocked(
                "cancelled: runs without its network policy (the wave was cancelled before the policy was confirmed)"
                    .into(),
            ),
        );
        let d = after_checks(&PolicyObs::NotApplied, cancel);
        assert_eq!(d.phase, cancelled);
        assert!(d.commands.is_empty());
        // Applied, not confirmed: removed, for the cancel.
        let revert = vec![Command::RevertPolicy {
            reason: CANCELLED.into(),
        }];
        for p in [
            PolicyObs::Settling { left: "3s".into() },
            PolicyObs::Checking(Gate::NotRun),
            PolicyObs::Checking(Gate::Running),
        ] {
            let d = after_checks(&p, cancel);
            assert_eq!(
                (d.phase.step, &d.commands),
                (Step::Verifying, &revert),
                "{p:?}"
            );
        }
        let d = after_checks(&PolicyObs::Cancelled, cancel);
        assert_eq!(d.phase, cancelled);
        assert!(d.commands.is_empty());
    }

    #[test]
    fn cancel_keeps_a_confirmed_policy_and_reverts_a_failed_one_as_failed() {
        let cancel = Control {
            cancel: true,
            ..Control::default()
        };
        let d = after_checks(&PolicyObs::Checking(Gate::Passed), cancel);
        assert_eq!(d.phase, super::super::phase(Step::Verified, Status::Active));
        assert!(d.commands.is_empty(), "a confirmed policy stays");
        let d = after_checks(
            &PolicyObs::Checking(Gate::Failed("icmp: no reply".into())),
            cancel,
        );
        assert_eq!(
            d.commands,
            vec![Command::RevertPolicy {
                reason: "a check failed with the policy in place: icmp: no reply".into()
            }]
        );
    }
}
