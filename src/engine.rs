//! The decisions of a reconcile, as pure functions shared by the policy and the baseline
//! controllers (and, for the plan, by the offline commands).
//!
//! A pass against a pool goes: read (I/O: [`crate::sync::read`]) -> [`decide`] (pure: a finding,
//! or a write) -> write (I/O: [`crate::sync::write`]) -> [`after_write`] (pure: the finding)
//! -> [`report`] (pure: the status, the events and when to look again). The controllers only
//! carry out what these return; nothing here calls AWS or Kubernetes, so every decision is
//! unit-tested without a server.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{self, CognitoMfaPolicyStatus, MfaSettings},
    cognito::{CallError, ErrorClass, Retry},
    plan::{self, Action as PlanAction},
    status::{self, Found, Reason},
    sync::Outcome,
};

/// What to do after the read half of a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to write: this is what the pass found.
    Found(Found),
    /// Send the plan's request (SetUserPoolMfaConfig), then take [`after_write`].
    Write {
        /// The pool's configuration before the operator's first write, to record as
        /// `adoptedFrom` (external IDs left out); `None` when one is recorded already.
        adopt: Option<MfaSettings>,
        /// Record `adopt` in status before the write (deletionPolicy Restore depends on it: a
        /// crash between the write and its report would lose it).
        adopt_first: bool,
    },
}

/// What the pass is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    /// Never write (managementPolicy Observe, action Report).
    pub observe_only: bool,
    /// `adoptedFrom` is recorded already (or not wanted: baselines keep none).
    pub adopted: bool,
    /// deletionPolicy Restore: `adoptedFrom` is written before the first write.
    pub restore: bool,
    /// What the approval annotations go on, in messages: `policy` or `baseline`.
    pub object: &'static str,
}

/// Decides, from the read half of a pass, whether to write. Pure.
pub fn decide(intent: Intent, outcome: &Outcome) -> Decision {
    let observed = plan::normalise(&outcome.before);
    let fields = outcome.plan.changed_fields();
    if outcome.plan.is_in_sync() {
        return Decision::Found(Found::InSync { observed });
    }
    if intent.observe_only {
        return Decision::Found(Found::Drifted { observed, fields });
    }
    if outcome.plan.action == PlanAction::AwaitApproval {
        return Decision::Found(Found::AwaitingApproval {
            observed,
            fields,
            token: outcome.plan.approval_token.clone().unwrap_or_default(),
            message: approval_message(&outcome.plan, intent.object),
        });
    }
    if !outcome.missing_prerequisites.is_empty() {
        let message = format!("Not applied: {}.", outcome.missing_prerequisites.join("; "));
        return Decision::Found(Found::PrerequisiteMissing {
            observed,
            fields,
            message,
        });
    }
    Decision::Write {
        adopt: (!intent.adopted).then(|| observed.redacted()),
        adopt_first: !intent.adopted && intent.restore,
    }
}

/// What a pass found after its write (`outcome` holds what Cognito stored), and the note of the
/// Warning event a write on the standing approval gets. Pure.
pub fn after_write(outcome: &Outcome) -> (Found, Option<String>) {
    let observed = plan::normalise(&outcome.after);
    let found = if outcome.remaining.is_empty() {
        Found::Written {
            observed,
            fields: outcome.plan.changed_fields(),
        }
    } else {
        Found::NotTaken {
            observed,
            fields: plan::field_names(&outcome.remaining),
        }
    };
    let standing = (outcome.plan.approved_by == Some(plan::ApprovedBy::Standing)).then(|| {
        let why: Vec<String> = outcome.plan.disruptions.iter().map(ToString::to_string).collect();
        format!(
            "A disruptive change went through on the standing approval {}: \"true\": {}. To approve one change at a time, use {} with the token of that change instead (this one: {}).",
            api::ALLOW_DISRUPTIVE_ANNOTATION,
            why.join("; "),
            api::APPROVE_CHANGE_ANNOTATION,
            outcome.plan.approval_token.as_deref().unwrap_or_default()
        )
    });
    (found, standing)
}

/// The finding of a failed call. `given_up`: an SMS role refused for longer than the grace
/// period (the caller keeps the time). Pure.
pub fn failed(error: &CallError, given_up: bool) -> Found {
    Found::AwsError {
        class: error.class,
        message: error.to_string(),
        given_up: given_up && error.class == ErrorClass::InvalidSmsRole,
    }
}

/// The AwaitingApproval message: what would change, why it waits, and the two ways to approve.
pub fn approval_message(plan: &plan::Plan, object: &str) -> String {
    let changes: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    let why: Vec<String> = plan.disruptions.iter().map(ToString::to_string).collect();
    format!(
        "Waiting for approval to change {}. Why: {}. To apply this change only, annotate the {} with {}: {} (a different disruptive change needs its own token); {}: \"true\" approves every disruptive change, now and later.",
        changes.join("; "),
        why.join("; "),
        object,
        api::APPROVE_CHANGE_ANNOTATION,
        plan.approval_token.as_deref().unwrap_or_default(),
        api::ALLOW_DISRUPTIVE_ANNOTATION
    )
}

/// An event to publish: what happened, in the object's own events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Warning (needs attention) or Normal.
    pub warning: bool,
    /// The event's reason (the Ready reason, or what was done).
    pub reason: String,
    /// What the operator did: SetUserPoolMfaConfig, Reconcile, Scan.
    pub action: &'static str,
    /// What happened, in words.
    pub note: String,
}

/// When to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Retry with backoff, doubling from `base` to `cap` with the consecutive failures.
    Backoff {
        /// The first wait.
        base: Duration,
        /// The longest wait.
        cap: Duration,
    },
    /// The periodic drift check (the resync interval).
    Resync,
    /// Waiting on a person: the stalled recheck interval.
    Stalled,
}

/// The waits of the retries of a failing pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Throttling, 5xx and Kubernetes API errors: the first wait.
    pub backoff_base: Duration,
    /// Throttling, 5xx and Kubernetes API errors: the longest wait.
    pub backoff_cap: Duration,
    /// ConcurrentModificationException: the first wait.
    pub short_retry_base: Duration,
    /// ConcurrentModificationException: the longest wait.
    pub short_retry_cap: Duration,
    /// InvalidSmsRole*: the first wait while IAM may still be propagating.
    pub sms_role_retry_base: Duration,
    /// InvalidSmsRole*: the longest wait while IAM may still be propagating.
    pub sms_role_retry_cap: Duration,
    /// How long InvalidSmsRole* is taken for IAM propagation before it counts as real (IAM
    /// changes usually propagate within a minute or two).
    pub sms_role_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            short_retry_base: Duration::from_secs(2),
            short_retry_cap: Duration::from_secs(30),
            sms_role_retry_base: Duration::from_secs(10),
            sms_role_retry_cap: Duration::from_secs(30),
            sms_role_grace: Duration::from_secs(120),
        }
    }
}

impl Timing {
    /// Every wait divided by `factor`: tests and benchmarks run an hour of retries in seconds.
    pub fn scaled_down(factor: u32) -> Self {
        let d = Self::default();
        Self {
            backoff_base: d.backoff_base / factor,
            backoff_cap: d.backoff_cap / factor,
            short_retry_base: d.short_retry_base / factor,
            short_retry_cap: d.short_retry_cap / factor,
            sms_role_retry_base: d.sms_role_retry_base / factor,
            sms_role_retry_cap: d.sms_role_retry_cap / factor,
            sms_role_grace: d.sms_role_grace / factor,
        }
    }
}

/// When to look again after finding `found`. Pure.
pub fn wait(found: &Found, timing: &Timing) -> Wait {
    match found {
        Found::AwsError { class, given_up, .. } => match class.retry() {
            Retry::Backoff => Wait::Backoff {
                base: timing.backoff_base,
                cap: timing.backoff_cap,
            },
            Retry::Short => Wait::Backoff {
                base: timing.short_retry_base,
                cap: timing.short_retry_cap,
            },
            Retry::ForAWhile if !given_up => Wait::Backoff {
                base: timing.sms_role_retry_base,
                cap: timing.sms_role_retry_cap,
            },
            Retry::ForAWhile | Retry::Terminal | Retry::Gone => Wait::Stalled,
        },
        // Stalled: waiting on a person, who changes the object (which triggers a reconcile at
        // once) or something outside it.
        _ if found.is_terminal() => Wait::Stalled,
        _ => Wait::Resync,
    }
}

/// The events of a finding about the pool `pool`: every write to AWS, and each move into a state
/// that needs attention (drift observed, conflict, approval, terminal errors). A state that
/// persists (`before` is the Ready reason already reported) is not repeated. Pure.
pub fn events(pool: &str, found: &Found, reason: Reason, before: Option<Reason>) -> Vec<Event> {
    let event = |warning, action, note| Event {
        warning,
        reason: reason.as_str().to_owned(),
        action,
        note,
    };
    match found {
        Found::Written { fields, .. } => vec![event(
            false,
            "SetUserPoolMfaConfig",
            format!("SetUserPoolMfaConfig on {pool}: {}", fields.join(", ")),
        )],
        Found::NotTaken { fields, .. } => vec![event(
            true,
            "SetUserPoolMfaConfig",
            format!(
                "SetUserPoolMfaConfig on {pool} was not fully taken: {}",
                fields.join(", ")
            ),
        )],
        // A passing failure (the SDK's retries gave up; backoff follows) is logged, not an event.
        Found::AwsError { .. } if !found.is_terminal() => Vec::new(),
        _ if before == Some(reason) || reason.is_ready() => Vec::new(),
        Found::Drifted { fields, .. } => vec![event(
            true,
            "Reconcile",
            format!("The user pool differs in {}.", fields.join(", ")),
        )],
        Found::AwaitingApproval { message, .. }
        | Found::PrerequisiteMissing { message, .. }
        | Found::Conflict { message }
        | Found::InvalidSpec { message }
        | Found::AwsError { message, .. } => vec![event(true, "Reconcile", message.clone())],
        Found::InSync { .. } => Vec::new(),
    }
}

/// Everything a reconcile of a policy reports: the status to write, the Ready reason in it, the
/// events, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The status (written only when it differs from the object's).
    pub status: CognitoMfaPolicyStatus,
    /// The Ready reason in it.
    pub reason: Reason,
    /// The events to publish.
    pub events: Vec<Event>,
    /// When to look again.
    pub wait: Wait,
}

/// What a policy's reconcile reports, from its previous status and what it found. Pure.
pub fn report(
    pool: &str,
    prev: Option<&CognitoMfaPolicyStatus>,
    generation: i64,
    found: &Found,
    timing: &Timing,
    now: &Time,
) -> Report {
    let (status, reason) = status::next(prev, generation, found, now);
    let events = events(pool, found, reason, status::ready_reason(prev));
    Report {
        status,
        reason,
        events,
        wait: wait(found, timing),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::{
        api::{MfaMode, SoftwareTokenMfa},
        plan::Approval,
    };

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
    }

    fn totp(mode: MfaMode) -> MfaSettings {
        MfaSettings {
            mfa_configuration: mode,
            software_token_mfa_configuration: Some(SoftwareTokenMfa { enabled: true }),
            ..MfaSettings::default()
        }
    }

    /// The read half of a pass of `desired` against a pool that has `live`.
    fn read(desired: &MfaSettings, live: &MfaSettings, approval: &Approval, missing: &[&str]) -> Outcome {
        Outcome {
            plan: plan::plan(desired, live, approval),
            before: live.clone(),
            missing_prerequisites: missing.iter().map(|m| m.to_string()).collect(),
            warnings: Vec::new(),
            wrote: false,
            after: live.clone(),
            remaining: Vec::new(),
        }
    }

    /// The write half, with what Cognito stored.
    fn wrote(mut outcome: Outcome, desired: &MfaSettings, stored: &MfaSettings) -> Outcome {
        outcome.after = stored.clone();
        outcome.wrote = true;
        outcome.remaining = plan::plan(desired, stored, &Approval::standing()).changes;
        outcome
    }

    const ENFORCE: Intent = Intent {
        observe_only: false,
        adopted: false,
        restore: false,
        object: "policy",
    };

    /// Every branch of the decision, against the same two pools: one in sync, one with MFA off.
    #[test]
    fn decisions_from_what_was_read() {
        let scope = "eu-west-1_A (eu-west-1)";
        let none = Approval::none(scope);
        let want = totp(MfaMode::Optional);
        let off = MfaSettings::default();
        // In sync: found, whatever the intent.
        for intent in [
            ENFORCE,
            Intent {
                observe_only: true,
                ..ENFORCE
            },
        ] {
            let d = decide(intent, &read(&want, &want, &none, &[]));
            assert!(matches!(d, Decision::Found(Found::InSync { .. })), "{d:?}");
        }
        // Observe: drift, never a write.
        let d = decide(
            Intent {
                observe_only: true,
                ..ENFORCE
            },
            &read(&want, &off, &none, &[]),
        );
        assert!(
            matches!(&d, Decision::Found(Found::Drifted { fields, .. }) if fields.contains(&"mfaConfiguration".to_owned())),
            "{d:?}"
        );
        // Enforce: a write, adopting what was there (first, for Restore).
        let d = decide(ENFORCE, &read(&want, &off, &none, &[]));
        assert_eq!(
            d,
            Decision::Write {
                adopt: Some(MfaSettings::default()),
                adopt_first: false
            }
        );
        let d = decide(
            Intent {
                restore: true,
                ..ENFORCE
            },
            &read(&want, &off, &none, &[]),
        );
        assert!(matches!(
            d,
            Decision::Write {
                adopt: Some(_),
                adopt_first: true
            }
        ));
        let d = decide(
            Intent {
                adopted: true,
                restore: true,
                ..ENFORCE
            },
            &read(&want, &off, &none, &[]),
        );
        assert_eq!(
            d,
            Decision::Write {
                adopt: None,
                adopt_first: false
            }
        );
        // A prerequisite missing: no write.
        let d = decide(ENFORCE, &read(&want, &off, &none, &["the tier"]));
        assert!(
            matches!(&d, Decision::Found(Found::PrerequisiteMissing { message, .. }) if message.contains("the tier"))
        );
        // ON from OPTIONAL: waits, with the token of that change; the token approves it.
        let on = totp(MfaMode::On);
        let d = decide(ENFORCE, &read(&on, &want, &none, &[]));
        let Decision::Found(Found::AwaitingApproval { token, message, .. }) = d else {
            panic!("{d:?}")
        };
        assert!(token.starts_with("cmp-") && message.contains(&token), "{message}");
        let approved = Approval {
            tokens: vec!["cmp-other".into(), token.clone()],
            ..none.clone()
        };
        assert!(matches!(
            decide(ENFORCE, &read(&on, &want, &approved, &[])),
            Decision::Write { .. }
        ));
        // The standing approval lets it through, and the write is told in a Warning.
        let standing = Approval {
            standing: true,
            ..none.clone()
        };
        let outcome = read(&on, &want, &standing, &[]);
        assert!(matches!(decide(ENFORCE, &outcome), Decision::Write { .. }));
        let (found, note) = after_write(&wrote(outcome, &on, &on));
        assert!(matches!(found, Found::Written { .. }));
        assert!(note.unwrap().contains(&token));
    }

    #[test]
    fn after_a_write_what_cognito_stored_decides() {
        let want = totp(MfaMode::Optional);
        let off = MfaSettings::default();
        let outcome = read(&want, &off, &Approval::none("p"), &[]);
        let (found, note) = after_write(&wrote(outcome.clone(), &want, &want));
        assert_eq!(
            found,
            Found::Written {
                observed: plan::normalise(&want),
                fields: vec![
                    "mfaConfiguration".into(),
                    "softwareTokenMfaConfiguration.enabled".into()
                ]
            }
        );
        assert_eq!(note, None);
        // Cognito kept MFA off: not taken, the fields that still differ named.
        let (found, _) = after_write(&wrote(outcome, &want, &off));
        assert!(matches!(found, Found::NotTaken { fields, .. } if !fields.is_empty()));
    }

    /// Status, events and wait together, along a policy's life: what the controller carries out.
    #[test]
    fn reports_along_a_life() {
        let timing = Timing::default();
        let want = totp(MfaMode::Optional);
        let written = Found::Written {
            observed: want.clone(),
            fields: vec!["mfaConfiguration".into()],
        };
        let first = report("p", None, 1, &written, &timing, &at(0));
        assert_eq!(first.reason, Reason::Applied);
        assert_eq!(first.wait, Wait::Resync);
        assert_eq!(first.events.len(), 1);
        assert!(!first.events[0].warning && first.events[0].note.contains("SetUserPoolMfaConfig on p"));
        // A check in sync: the same status, no event.
        let steady = report(
            "p",
            Some(&first.status),
            1,
            &Found::InSync {
                observed: want.clone(),
            },
            &timing,
            &at(600),
        );
        assert_eq!(steady.status, first.status);
        assert!(steady.events.is_empty());
        // Throttled: no event, backoff; denied: one Warning, stalled, and not again.
        let throttled = Found::AwsError {
            class: ErrorClass::Throttled,
            message: "slow down".into(),
            given_up: false,
        };
        let r = report("p", Some(&steady.status), 1, &throttled, &timing, &at(700));
        assert!(r.events.is_empty());
        assert!(matches!(r.wait, Wait::Backoff { .. }));
        let denied = Found::AwsError {
            class: ErrorClass::AccessDenied,
            message: "denied".into(),
            given_up: false,
        };
        let r = report("p", Some(&steady.status), 1, &denied, &timing, &at(800));
        assert_eq!((r.events.len(), r.wait), (1, Wait::Stalled));
        assert!(r.events[0].warning);
        let again = report("p", Some(&r.status), 1, &denied, &timing, &at(900));
        assert!(again.events.is_empty(), "a state that persists is not repeated");
        // An SMS role: retried for a while, then stalled.
        let sms = |given_up| Found::AwsError {
            class: ErrorClass::InvalidSmsRole,
            message: "role".into(),
            given_up,
        };
        assert!(
            matches!(wait(&sms(false), &timing), Wait::Backoff { base, .. } if base == timing.sms_role_retry_base)
        );
        assert_eq!(wait(&sms(true), &timing), Wait::Stalled);
    }
}
