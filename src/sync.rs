//! One pass of a policy against its pool: read the live configuration once, plan, write only
//! when the plan says so (always the complete request), and take what the write answers (the
//! configuration Cognito stored) as the read-back: a change costs one Get and one Set. The controller and
//! the offline commands share it, so `plan`/`apply` on a laptop do exactly what the operator does.

use tracing::debug;

use crate::{
    api::MfaSettings,
    cognito::{CallError, Cognito, ErrorClass, Target},
    plan::{self, Action, Approval, FieldChange, Plan},
};

/// Whether a pass may write to AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read and plan only (`plan`, managementPolicy Observe).
    DryRun,
    /// Write when the plan says so.
    Enforce,
}

/// What one pass found and did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The plan against the configuration read first.
    pub plan: Plan,
    /// The configuration read first, as Cognito returned it.
    pub before: MfaSettings,
    /// Prerequisites the pool does not meet (the write was not attempted).
    pub missing_prerequisites: Vec<String>,
    /// What Cognito is known to refuse beside the pool's other settings (the write is still
    /// attempted: Cognito has the last word).
    pub warnings: Vec<String>,
    /// Whether SetUserPoolMfaConfig was called.
    pub wrote: bool,
    /// The configuration SetUserPoolMfaConfig answered with (what Cognito stored), or `before`
    /// when nothing was written.
    pub after: MfaSettings,
    /// Differences left after the write (Cognito did not take part of the request); empty when
    /// the pool matches the policy.
    pub remaining: Vec<FieldChange>,
}

impl Outcome {
    /// Whether the plan says to write now (a change, approved if disruptive, prerequisites met).
    pub fn should_write(&self) -> bool {
        self.plan.action == Action::Apply && self.missing_prerequisites.is_empty()
    }

    /// Whether the pool matches the policy at the end of the pass.
    pub fn in_sync(&self) -> bool {
        if self.wrote {
            self.remaining.is_empty()
        } else {
            self.plan.is_in_sync()
        }
    }
}

/// Runs one pass. A steady-state pass (nothing to change) costs exactly one Get; a change one
/// Get and one Set.
pub async fn run(
    cognito: &Cognito,
    target: &Target,
    desired: &MfaSettings,
    approval: &Approval,
    mode: Mode,
) -> Result<Outcome, CallError> {
    let mut outcome = read(cognito, target, desired, approval).await?;
    if mode == Mode::Enforce && outcome.should_write() {
        write(cognito, target, desired, &mut outcome).await?;
    }
    Ok(outcome)
}

/// The first half of a pass: read the pool once and plan. Prerequisites (tier, email sending
/// account, first factors, SMS configuration) are checked with DescribeUserPool only when there
/// is a change that depends on them; a pool whose Describe is not permitted is not held back
/// (the check is optional: Set's own error then speaks).
pub async fn read(
    cognito: &Cognito,
    target: &Target,
    desired: &MfaSettings,
    approval: &Approval,
) -> Result<Outcome, CallError> {
    let before = cognito.get(target).await?;
    plan_against(cognito, target, desired, approval, before).await
}

/// The read half of a pass against a configuration already read (`before`, as Cognito returned
/// it): plan, and check prerequisites where a write could happen now.
pub async fn plan_against(
    cognito: &Cognito,
    target: &Target,
    desired: &MfaSettings,
    approval: &Approval,
    before: MfaSettings,
) -> Result<Outcome, CallError> {
    let plan = plan::plan(desired, &before, approval);
    let mut outcome = Outcome {
        missing_prerequisites: Vec::new(),
        warnings: Vec::new(),
        wrote: false,
        after: before.clone(),
        remaining: Vec::new(),
        before,
        plan,
    };
    // Prerequisites matter only for a write that could happen now.
    if outcome.plan.action == Action::Apply && plan::has_prerequisites(&outcome.plan.request, &outcome.before)
    {
        match cognito.describe(target).await {
            Ok(facts) => {
                outcome.missing_prerequisites = plan::missing_prerequisites(&outcome.plan.request, &facts);
                outcome.warnings = plan::warnings(&outcome.plan.request, &outcome.before, &facts);
            }
            Err(e) if e.class == ErrorClass::AccessDenied => {
                debug!(pool = %target, "DescribeUserPool not permitted; prerequisites not checked");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(outcome)
}

/// The second half: send the complete request once, and take Cognito's answer (the
/// configuration it stored) as the read-back. What still differs is reported in
/// [`Outcome::remaining`], never retried here.
pub async fn write(
    cognito: &Cognito,
    target: &Target,
    desired: &MfaSettings,
    outcome: &mut Outcome,
) -> Result<(), CallError> {
    outcome.after = cognito.set(target, &outcome.plan.request).await?;
    outcome.wrote = true;
    // Approval does not matter any more: what is left is reported, never looped on.
    outcome.remaining = plan::plan(desired, &outcome.after, &Approval::standing()).changes;
    Ok(())
}
