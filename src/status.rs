//! Status: what the operator reports, as a pure function of the previous status and of what one
//! reconcile found. The controller writes the result only when it differs from what is there,
//! so a check that finds nothing new makes no Kubernetes write at all.

use std::fmt;

pub mod baseline;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    api::{CognitoMfaPolicyStatus, Drift, MfaSettings},
    cognito::{ErrorClass, Retry},
};

/// Why a policy is (not) ready: the closed set of reasons of the `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The pool matched the policy; nothing was written.
    InSync,
    /// The policy (a new generation of it) was written to the pool.
    Applied,
    /// The pool had drifted from the policy and was corrected.
    DriftCorrected,
    /// The pool differs from the policy and is not corrected (managementPolicy Observe, or
    /// Cognito did not take a write).
    Drifted,
    /// The spec breaks a rule, or Cognito rejected the request as invalid.
    InvalidSpec,
    /// The user pool does not exist.
    UserPoolNotFound,
    /// The credentials are missing or not allowed to make the call.
    AccessDenied,
    /// The pool's feature plan lacks a feature the policy uses.
    FeatureUnavailableInTier,
    /// Cognito cannot use the SMS role (often IAM still propagating).
    InvalidSmsRole,
    /// Cognito throttled the operator's calls.
    Throttled,
    /// Cognito failed or could not be reached.
    AwsUnavailable,
    /// An older policy owns the same pool.
    Conflict,
    /// A disruptive change waits for the approval annotation.
    AwaitingApproval,
    /// The pool lacks something the policy needs (tier, SES, sign-in settings).
    PrerequisiteMissing,
    /// The policy turns SMS MFA off, and Cognito refuses while the pool has an SMS
    /// configuration.
    SmsConfigurationInUse,
    /// Cognito refuses the operation: a feature not enabled, or a secondary replica region.
    OperationNotEnabled,
}

impl Reason {
    /// Every reason, for metrics that report each one.
    pub const ALL: [Reason; 16] = [
        Self::InSync,
        Self::Applied,
        Self::DriftCorrected,
        Self::Drifted,
        Self::InvalidSpec,
        Self::UserPoolNotFound,
        Self::AccessDenied,
        Self::FeatureUnavailableInTier,
        Self::InvalidSmsRole,
        Self::Throttled,
        Self::AwsUnavailable,
        Self::Conflict,
        Self::AwaitingApproval,
        Self::PrerequisiteMissing,
        Self::SmsConfigurationInUse,
        Self::OperationNotEnabled,
    ];

    /// The reason as it appears in conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "InSync",
            Self::Applied => "Applied",
            Self::DriftCorrected => "DriftCorrected",
            Self::Drifted => "Drifted",
            Self::InvalidSpec => "InvalidSpec",
            Self::UserPoolNotFound => "UserPoolNotFound",
            Self::AccessDenied => "AccessDenied",
            Self::FeatureUnavailableInTier => "FeatureUnavailableInTier",
            Self::InvalidSmsRole => "InvalidSmsRole",
            Self::Throttled => "Throttled",
            Self::AwsUnavailable => "AwsUnavailable",
            Self::Conflict => "Conflict",
            Self::AwaitingApproval => "AwaitingApproval",
            Self::PrerequisiteMissing => "PrerequisiteMissing",
            Self::SmsConfigurationInUse => "SmsConfigurationInUse",
            Self::OperationNotEnabled => "OperationNotEnabled",
        }
    }

    /// The reason of an AWS error class.
    pub fn of_error(class: ErrorClass) -> Self {
        match class {
            ErrorClass::Throttled => Self::Throttled,
            ErrorClass::Unavailable | ErrorClass::ConcurrentModification => Self::AwsUnavailable,
            ErrorClass::InvalidSmsRole => Self::InvalidSmsRole,
            ErrorClass::InvalidParameter => Self::InvalidSpec,
            ErrorClass::FeatureUnavailableInTier => Self::FeatureUnavailableInTier,
            ErrorClass::SmsConfigurationInUse => Self::SmsConfigurationInUse,
            ErrorClass::OperationNotEnabled => Self::OperationNotEnabled,
            ErrorClass::AccessDenied => Self::AccessDenied,
            ErrorClass::PoolNotFound => Self::UserPoolNotFound,
        }
    }

    /// Whether the pool matches the policy with this reason.
    pub fn is_ready(self) -> bool {
        matches!(self, Self::InSync | Self::Applied | Self::DriftCorrected)
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one reconcile found (and did).
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// The pool matches the policy; nothing was written.
    InSync {
        /// The live configuration, normalised.
        observed: MfaSettings,
    },
    /// The policy was written and read back equal.
    Written {
        /// The live configuration after the write, normalised.
        observed: MfaSettings,
        /// The fields that were changed.
        fields: Vec<String>,
    },
    /// The policy was written but the read-back still differs.
    NotTaken {
        /// The live configuration after the write, normalised.
        observed: MfaSettings,
        /// The fields that still differ.
        fields: Vec<String>,
    },
    /// The pool differs and the policy only observes.
    Drifted {
        /// The live configuration, normalised.
        observed: MfaSettings,
        /// The fields that differ.
        fields: Vec<String>,
    },
    /// A disruptive change waits for approval.
    AwaitingApproval {
        /// The live configuration, normalised.
        observed: MfaSettings,
        /// The fields that differ.
        fields: Vec<String>,
        /// The value of the approve-change annotation that approves this change.
        token: String,
        /// What would change and why it waits.
        message: String,
    },
    /// The pool lacks a prerequisite of the change.
    PrerequisiteMissing {
        /// The live configuration, normalised.
        observed: MfaSettings,
        /// The fields that differ.
        fields: Vec<String>,
        /// What is missing.
        message: String,
    },
    /// An older policy owns the pool.
    Conflict {
        /// Why, naming the owner.
        message: String,
    },
    /// The spec breaks a rule; nothing was sent to AWS.
    InvalidSpec {
        /// The violations.
        message: String,
    },
    /// A call to Cognito failed.
    AwsError {
        /// The error's class.
        class: ErrorClass,
        /// The error, in words.
        message: String,
        /// Whether the error has lasted long enough to stop waiting for it (InvalidSmsRole).
        given_up: bool,
    },
}

impl Found {
    /// The fields that differ from the policy (or were written), where the finding has them.
    pub fn fields(&self) -> &[String] {
        match self {
            Self::Written { fields, .. }
            | Self::NotTaken { fields, .. }
            | Self::Drifted { fields, .. }
            | Self::AwaitingApproval { fields, .. }
            | Self::PrerequisiteMissing { fields, .. } => fields,
            Self::InSync { .. }
            | Self::Conflict { .. }
            | Self::InvalidSpec { .. }
            | Self::AwsError { .. } => &[],
        }
    }

    fn observed(&self) -> Option<&MfaSettings> {
        match self {
            Self::InSync { observed }
            | Self::Written { observed, .. }
            | Self::NotTaken { observed, .. }
            | Self::Drifted { observed, .. }
            | Self::AwaitingApproval { observed, .. }
            | Self::PrerequisiteMissing { observed, .. } => Some(observed),
            Self::Conflict { .. } | Self::InvalidSpec { .. } | Self::AwsError { .. } => None,
        }
    }

    /// Whether this needs a human (a spec change, a permission, an approval) before it can
    /// change: such policies are `Stalled` and rechecked slowly.
    pub fn is_terminal(&self) -> bool {
        match self {
            Self::AwaitingApproval { .. }
            | Self::PrerequisiteMissing { .. }
            | Self::Conflict { .. }
            | Self::InvalidSpec { .. } => true,
            Self::AwsError { class, given_up, .. } => match class.retry() {
                Retry::Terminal | Retry::Gone => true,
                Retry::ForAWhile => *given_up,
                Retry::Backoff | Retry::Short => false,
            },
            Self::InSync { .. } | Self::Written { .. } | Self::NotTaken { .. } | Self::Drifted { .. } => {
                false
            }
        }
    }
}

/// Condition types.
pub const READY: &str = "Ready";
/// The last exchange with AWS worked.
pub const SYNCED: &str = "Synced";
/// Waiting on a human.
pub const STALLED: &str = "Stalled";

/// The Ready reason a status reports, if any.
pub fn ready_reason(status: Option<&CognitoMfaPolicyStatus>) -> Option<Reason> {
    condition(status, READY).and_then(|c| Reason::parse(&c.reason))
}

fn condition<'a>(status: Option<&'a CognitoMfaPolicyStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the previous status says the pool matched this generation of the spec.
fn was_ready(prev: Option<&CognitoMfaPolicyStatus>, generation: i64) -> bool {
    prev.and_then(|s| s.observed_generation) == Some(generation)
        && condition(prev, READY).is_some_and(|c| c.status == "True")
}

/// Why the operator wrote to a pool: the `cause` label of `cognito_mfa_aws_writes_total` and
/// of the log line of each write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteCause {
    /// The policy's first write (it had never been confirmed in sync with the pool).
    FirstApply,
    /// A new generation of the spec (or an approval of one).
    SpecChange,
    /// The pool had changed after it matched this generation: it was put back.
    DriftCorrection,
    /// The policy was deleted with `deletionPolicy` `Reset` or `Restore`.
    Deletion,
    /// A baseline's template, written to a pool below its floor that nobody's policy owns.
    Baseline,
}

impl WriteCause {
    /// Every cause, for metrics that report each one.
    pub const ALL: [WriteCause; 5] = [
        Self::FirstApply,
        Self::SpecChange,
        Self::DriftCorrection,
        Self::Deletion,
        Self::Baseline,
    ];

    /// The cause as it appears in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstApply => "first_apply",
            Self::SpecChange => "spec_change",
            Self::DriftCorrection => "drift_correction",
            Self::Deletion => "deletion",
            Self::Baseline => "baseline",
        }
    }
}

impl fmt::Display for WriteCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the previous status records drift of this generation that waits to be corrected
/// (for an approval, a prerequisite, or past an AWS error). `Drifted` is not such drift: the
/// pool was only observed, or never took the write.
fn drift_pending(prev: Option<&CognitoMfaPolicyStatus>, generation: i64) -> bool {
    prev.is_some_and(|s| {
        s.observed_generation == Some(generation) && s.drift.as_ref().is_some_and(|d| d.detected)
    }) && ready_reason(prev) != Some(Reason::Drifted)
}

/// Why a write that a reconcile of `generation` made after `prev` was made (deletions aside).
pub fn write_cause(prev: Option<&CognitoMfaPolicyStatus>, generation: i64) -> WriteCause {
    if was_ready(prev, generation) || drift_pending(prev, generation) {
        WriteCause::DriftCorrection
    } else if prev.and_then(|s| s.last_sync_time.as_ref()).is_none() {
        WriteCause::FirstApply
    } else {
        WriteCause::SpecChange
    }
}

/// Whether a reconcile of `generation` that found `found` after `prev` found drift: the pool
/// differs from the policy after it had matched this generation. A new policy's first write,
/// a spec change and a pool that never matched are not drift; drift that persists is found
/// once, when the pool moves away.
pub fn drift_found(prev: Option<&CognitoMfaPolicyStatus>, generation: i64, found: &Found) -> bool {
    was_ready(prev, generation)
        && matches!(
            found,
            Found::Written { .. }
                | Found::NotTaken { .. }
                | Found::Drifted { .. }
                | Found::AwaitingApproval { .. }
                | Found::PrerequisiteMissing { .. }
        )
}

/// The status after a reconcile of `generation` that found `found`, and the Ready reason in it.
///
/// Everything that did not change keeps its previous value (condition transition times, the
/// time of the last sync, when drift was seen), so an unchanged finding gives an equal status.
pub fn next(
    prev: Option<&CognitoMfaPolicyStatus>,
    generation: i64,
    found: &Found,
    now: &Time,
) -> (CognitoMfaPolicyStatus, Reason) {
    let mut status = prev.cloned().unwrap_or_default();
    let ready_before = was_ready(prev, generation);
    let list = |fields: &[String]| fields.join(", ");
    let (reason, message) = match found {
        Found::InSync { .. } if ready_before => {
            // Keep what the last change said (Applied, DriftCorrected): nothing new happened.
            let c = condition(prev, READY).expect("a ready status has a Ready condition");
            (
                Reason::parse(&c.reason).unwrap_or(Reason::InSync),
                c.message.clone(),
            )
        }
        Found::InSync { .. } => (Reason::InSync, "The user pool matches the policy.".to_owned()),
        Found::Written { fields, .. } if write_cause(prev, generation) == WriteCause::DriftCorrection => (
            Reason::DriftCorrected,
            format!("Corrected drift in {}.", list(fields)),
        ),
        Found::Written { fields, .. } => (
            Reason::Applied,
            format!("Applied {} to the user pool.", list(fields)),
        ),
        Found::NotTaken { fields, .. } => (
            Reason::Drifted,
            format!(
                "Cognito did not take {} (read back after a write); rechecked at the next drift check.",
                list(fields)
            ),
        ),
        Found::Drifted { fields, .. } => (
            Reason::Drifted,
            format!(
                "The user pool differs in {} (managementPolicy Observe: not corrected).",
                list(fields)
            ),
        ),
        Found::AwaitingApproval { message, .. } => (Reason::AwaitingApproval, message.clone()),
        Found::PrerequisiteMissing { message, .. } => (Reason::PrerequisiteMissing, message.clone()),
        Found::Conflict { message } => (Reason::Conflict, message.clone()),
        Found::InvalidSpec { message } => (Reason::InvalidSpec, message.clone()),
        Found::AwsError { class, message, .. } => (Reason::of_error(*class), message.clone()),
    };

    let transient = matches!(found, Found::AwsError { .. }) && !found.is_terminal();
    // A passing AWS failure says nothing new about the pool: a Ready policy stays Ready.
    if !(transient && ready_before) {
        let ready = if reason.is_ready() { "True" } else { "False" };
        set_condition(
            &mut status.conditions,
            READY,
            ready,
            reason.as_str(),
            &message,
            generation,
            now,
        );
    }
    let (synced, synced_reason, synced_message) = match found {
        Found::AwsError { .. } | Found::Conflict { .. } | Found::InvalidSpec { .. } => {
            ("False", reason.as_str(), message.as_str())
        }
        _ => ("True", "ReconcileSuccess", "The last exchange with AWS worked."),
    };
    set_condition(
        &mut status.conditions,
        SYNCED,
        synced,
        synced_reason,
        synced_message,
        generation,
        now,
    );
    let (stalled, stalled_message) = if found.is_terminal() {
        ("True", message.as_str())
    } else {
        ("False", "Not waiting on a person.")
    };
    set_condition(
        &mut status.conditions,
        STALLED,
        stalled,
        reason.as_str(),
        stalled_message,
        generation,
        now,
    );
    status.observed_generation = Some(generation);

    if let Some(observed) = found.observed() {
        status.observed = Some(Box::new(observed.redacted()));
    }
    match found {
        Found::Written { .. } => status.last_sync_time = Some(now.clone()),
        Found::InSync { .. } if !ready_before => status.last_sync_time = Some(now.clone()),
        _ => {}
    }
    let drift = drift_found(prev, generation, found);
    status.drift = next_drift(status.drift.take(), found, reason, drift, now);
    (status, reason)
}

fn next_drift(prev: Option<Drift>, found: &Found, reason: Reason, drift: bool, now: &Time) -> Option<Drift> {
    let seen = |fields: &[String], detected: bool| {
        // The same drift, still there: nothing to rewrite (not even the time it was seen).
        match &prev {
            Some(d) if d.detected == detected && d.fields == fields => d.clone(),
            _ => Drift {
                detected,
                fields: fields.to_vec(),
                last_seen: Some(now.clone()),
            },
        }
    };
    match found {
        Found::Written { fields, .. } if reason == Reason::DriftCorrected => Some(seen(fields, false)),
        Found::Drifted { fields, .. } | Found::NotTaken { fields, .. } => Some(seen(fields, true)),
        // Drift that waits (for an approval, a prerequisite) before it can be corrected.
        Found::AwaitingApproval { fields, .. } | Found::PrerequisiteMissing { fields, .. } if drift => {
            Some(seen(fields, true))
        }
        // Drift that went away (or was overwritten by a new spec) is no longer current.
        Found::InSync { .. } | Found::Written { .. } => prev.map(|d| Drift { detected: false, ..d }),
        _ => prev,
    }
}

/// Sets a condition, keeping its transition time unless its status changes.
pub(crate) fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: &Time,
) {
    let new = |last_transition_time: Time| Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: Some(generation),
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let since = if c.status == status {
                c.last_transition_time.clone()
            } else {
                now.clone()
            };
            *c = new(since);
        }
        None => conditions.push(new(now.clone())),
    }
}

/// The condition a policy has while a baseline covers its pool: True when its spec is below
/// the floor of one (or more), False when it meets every covering floor. It does not hold up the
/// policy's own reconcile.
pub const BELOW_BASELINE: &str = "BelowBaseline";

/// What the baselines that cover a policy's pool say of its spec: `None` when none covers it;
/// else the failures, by baseline name (empty: it meets every floor). Pure.
pub fn baseline_verdict<'a>(
    spec: &crate::api::CognitoMfaPolicySpec,
    baselines: impl Iterator<Item = (String, &'a crate::api::CognitoMfaBaselineSpec)>,
) -> Option<Vec<(String, Vec<crate::api::baseline::Failure>)>> {
    let mut covering: Vec<(String, Vec<crate::api::baseline::Failure>)> = baselines
        .filter(|(_, b)| b.covers_policy(spec))
        .map(|(name, b)| (name, b.floor.failures(&spec.settings)))
        .collect();
    if covering.is_empty() {
        return None;
    }
    covering.retain(|(_, f)| !f.is_empty());
    covering.sort_by(|a, b| a.0.cmp(&b.0));
    Some(covering)
}

/// Sets (or, when no baseline covers the pool, removes) the BelowBaseline condition.
pub fn set_below_baseline(
    status: &mut CognitoMfaPolicyStatus,
    verdict: Option<&Vec<(String, Vec<crate::api::baseline::Failure>)>>,
    generation: i64,
    now: &Time,
) {
    match verdict {
        None => status.conditions.retain(|c| c.type_ != BELOW_BASELINE),
        Some(below) if below.is_empty() => set_condition(
            &mut status.conditions,
            BELOW_BASELINE,
            "False",
            "MeetsBaseline",
            "The spec meets the floor of every CognitoMfaBaseline that covers its pool.",
            generation,
            now,
        ),
        Some(below) => {
            let why: Vec<String> = below
                .iter()
                .map(|(name, failures)| {
                    let f: Vec<String> = failures.iter().map(ToString::to_string).collect();
                    format!("CognitoMfaBaseline {name}: {}", f.join("; "))
                })
                .collect();
            set_condition(
                &mut status.conditions,
                BELOW_BASELINE,
                "True",
                "BelowBaseline",
                &format!(
                    "The spec is below the floor of {}. The policy is still applied; raise the spec to the floor.",
                    why.join("; ")
                ),
                generation,
                now,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use rstest::rstest;

    use super::*;
    use crate::api::{MfaMode, SmsConfiguration, SmsMfa};

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
    }

    fn settings() -> MfaSettings {
        MfaSettings {
            mfa_configuration: MfaMode::Optional,
            ..MfaSettings::default()
        }
    }

    fn in_sync() -> Found {
        Found::InSync { observed: settings() }
    }

    fn written(fields: &[&str]) -> Found {
        Found::Written {
            observed: settings(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn cond<'a>(s: &'a CognitoMfaPolicyStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn error(class: ErrorClass, given_up: bool) -> Found {
        Found::AwsError {
            class,
            message: format!("{class:?}"),
            given_up,
        }
    }

    #[test]
    fn a_check_that_finds_nothing_new_changes_nothing() {
        let (first, reason) = next(None, 1, &in_sync(), &at(0));
        assert_eq!(reason, Reason::InSync);
        assert_eq!(cond(&first, READY).status, "True");
        assert_eq!(first.last_sync_time, Some(at(0)));
        // Later checks find the same: the status is equal, so nothing is written.
        let (again, _) = next(Some(&first), 1, &in_sync(), &at(600));
        assert_eq!(again, first);
    }

    #[test]
    fn applied_then_in_sync_keeps_what_the_change_said() {
        let (applied, reason) = next(None, 1, &written(&["mfaConfiguration"]), &at(0));
        assert_eq!(reason, Reason::Applied);
        assert!(cond(&applied, READY).message.contains("mfaConfiguration"));
        let (checked, reason) = next(Some(&applied), 1, &in_sync(), &at(600));
        assert_eq!(reason, Reason::Applied);
        assert_eq!(checked, applied);
    }

    #[test]
    fn a_write_on_the_same_generation_corrects_drift() {
        let (ready, _) = next(None, 1, &in_sync(), &at(0));
        let (corrected, reason) = next(Some(&ready), 1, &written(&["mfaConfiguration"]), &at(600));
        assert_eq!(reason, Reason::DriftCorrected);
        let drift = corrected.drift.clone().unwrap();
        assert!(!drift.detected);
        assert_eq!(drift.fields, ["mfaConfiguration"]);
        assert_eq!(drift.last_seen, Some(at(600)));
        assert_eq!(corrected.last_sync_time, Some(at(600)));
        // Ready stayed True throughout: its transition time is the first one.
        assert_eq!(cond(&corrected, READY).last_transition_time, at(0));
        // A write for a new generation is an apply, not a correction.
        let (applied, reason) = next(Some(&corrected), 2, &written(&["smsMfaConfiguration"]), &at(700));
        assert_eq!(reason, Reason::Applied);
        assert_eq!(applied.observed_generation, Some(2));
        assert_eq!(cond(&applied, READY).observed_generation, Some(2));
    }

    /// What the metrics count, along a policy's life: each write's cause, and drift found once,
    /// only for a pool that changed after it had matched the same generation.
    #[test]
    fn writes_have_causes_and_drift_is_found_once() {
        let approval = || Found::AwaitingApproval {
            observed: settings(),
            fields: vec!["mfaConfiguration".into()],
            token: "cmp-000000000000".into(),
            message: "waits".into(),
        };
        let drifted = || Found::Drifted {
            observed: settings(),
            fields: vec!["mfaConfiguration".into()],
        };
        let script: Vec<(i64, Found, Option<WriteCause>, bool, Reason)> = vec![
            (
                1,
                written(&["mfaConfiguration"]),
                Some(WriteCause::FirstApply),
                false,
                Reason::Applied,
            ),
            (1, in_sync(), None, false, Reason::Applied),
            (
                2,
                written(&["smsMfaConfiguration"]),
                Some(WriteCause::SpecChange),
                false,
                Reason::Applied,
            ),
            (2, in_sync(), None, false, Reason::Applied),
            // Changed out of band, put back.
            (
                2,
                written(&["mfaConfiguration"]),
                Some(WriteCause::DriftCorrection),
                true,
                Reason::DriftCorrected,
            ),
            (2, in_sync(), None, false, Reason::DriftCorrected),
            // Changed again, and putting it back needs an approval: found once, while it waits.
            (2, approval(), None, true, Reason::AwaitingApproval),
            (2, approval(), None, false, Reason::AwaitingApproval),
            (
                2,
                written(&["mfaConfiguration"]),
                Some(WriteCause::DriftCorrection),
                false,
                Reason::DriftCorrected,
            ),
            // A spec change that waits, then goes through: a spec change, not drift.
            (3, approval(), None, false, Reason::AwaitingApproval),
            (
                3,
                written(&["mfaConfiguration"]),
                Some(WriteCause::SpecChange),
                false,
                Reason::Applied,
            ),
            // Observed only: found when the pool moves away, not while it stays away.
            (3, in_sync(), None, false, Reason::Applied),
            (3, drifted(), None, true, Reason::Drifted),
            (3, drifted(), None, false, Reason::Drifted),
        ];
        let mut prev: Option<CognitoMfaPolicyStatus> = None;
        for (i, (generation, found, cause, drift, reason)) in script.into_iter().enumerate() {
            let wrote = matches!(found, Found::Written { .. } | Found::NotTaken { .. });
            let got_cause = wrote.then(|| write_cause(prev.as_ref(), generation));
            let got_drift = drift_found(prev.as_ref(), generation, &found);
            let (status, got_reason) = next(prev.as_ref(), generation, &found, &at(i as i64 * 60));
            assert_eq!(
                (got_cause, got_drift, got_reason),
                (cause, drift, reason),
                "step {i}: {found:?}"
            );
            if drift && matches!(found, Found::AwaitingApproval { .. }) {
                assert!(
                    status.drift.as_ref().unwrap().detected,
                    "drift waiting is in status"
                );
            }
            prev = Some(status);
        }

        // A policy whose first pass waited (an approval, an AWS error, a pool that never
        // matched) still makes its first write when it goes through.
        for first in [
            approval(),
            error(ErrorClass::Throttled, false),
            error(ErrorClass::AccessDenied, false),
            drifted(),
        ] {
            let (status, _) = next(None, 1, &first, &at(0));
            assert!(!drift_found(None, 1, &first), "{first:?}");
            assert_eq!(write_cause(Some(&status), 1), WriteCause::FirstApply, "{first:?}");
        }
    }

    #[test]
    fn observed_drift_is_reported_once() {
        let drifted = Found::Drifted {
            observed: settings(),
            fields: vec!["mfaConfiguration".into()],
        };
        let (first, reason) = next(None, 1, &drifted, &at(0));
        assert_eq!(reason, Reason::Drifted);
        assert_eq!(cond(&first, READY).status, "False");
        assert_eq!(cond(&first, STALLED).status, "False");
        assert!(first.drift.as_ref().unwrap().detected);
        let (again, _) = next(Some(&first), 1, &drifted, &at(600));
        assert_eq!(again, first, "the same drift, still there: no rewrite");
        let (gone, reason) = next(Some(&again), 1, &in_sync(), &at(1200));
        assert_eq!(reason, Reason::InSync);
        assert!(!gone.drift.unwrap().detected);
    }

    /// How each error class shows: Ready, Synced and Stalled.
    #[rstest]
    #[case::throttled(error(ErrorClass::Throttled, false), "Throttled", false)]
    #[case::unavailable(error(ErrorClass::Unavailable, false), "AwsUnavailable", false)]
    #[case::concurrent(error(ErrorClass::ConcurrentModification, false), "AwsUnavailable", false)]
    #[case::sms_role_propagating(error(ErrorClass::InvalidSmsRole, false), "InvalidSmsRole", false)]
    #[case::sms_role_for_real(error(ErrorClass::InvalidSmsRole, true), "InvalidSmsRole", true)]
    #[case::invalid_parameter(error(ErrorClass::InvalidParameter, false), "InvalidSpec", true)]
    #[case::tier(
        error(ErrorClass::FeatureUnavailableInTier, false),
        "FeatureUnavailableInTier",
        true
    )]
    #[case::not_enabled(error(ErrorClass::OperationNotEnabled, false), "OperationNotEnabled", true)]
    #[case::sms_configuration_in_use(
        error(ErrorClass::SmsConfigurationInUse, false),
        "SmsConfigurationInUse",
        true
    )]
    #[case::denied(error(ErrorClass::AccessDenied, false), "AccessDenied", true)]
    #[case::gone(error(ErrorClass::PoolNotFound, false), "UserPoolNotFound", true)]
    #[case::conflict(Found::Conflict { message: "owned by a/b".into() }, "Conflict", true)]
    #[case::invalid_spec(Found::InvalidSpec { message: "spec.x: bad".into() }, "InvalidSpec", true)]
    #[case::approval(Found::AwaitingApproval { observed: settings(), fields: vec![], token: "cmp-000000000000".into(), message: "waits".into() }, "AwaitingApproval", true)]
    #[case::prerequisite(Found::PrerequisiteMissing { observed: settings(), fields: vec![], message: "tier".into() }, "PrerequisiteMissing", true)]
    fn problems_are_reported_with_their_reason(
        #[case] found: Found,
        #[case] reason: &str,
        #[case] stalled: bool,
    ) {
        let (status, r) = next(None, 3, &found, &at(0));
        assert_eq!(r.as_str(), reason);
        let ready = cond(&status, READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", reason));
        assert_eq!(
            cond(&status, STALLED).status,
            if stalled { "True" } else { "False" }
        );
        let synced_ok = matches!(
            found,
            Found::AwaitingApproval { .. } | Found::PrerequisiteMissing { .. }
        );
        assert_eq!(
            cond(&status, SYNCED).status,
            if synced_ok { "True" } else { "False" }
        );
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn a_passing_failure_leaves_a_ready_policy_ready() {
        let (ready, _) = next(None, 1, &in_sync(), &at(0));
        let (throttled, reason) = next(Some(&ready), 1, &error(ErrorClass::Throttled, false), &at(600));
        assert_eq!(reason, Reason::Throttled);
        assert_eq!(cond(&throttled, READY), cond(&ready, READY), "Ready untouched");
        assert_eq!(
            (
                cond(&throttled, SYNCED).status.as_str(),
                cond(&throttled, SYNCED).reason.as_str()
            ),
            ("False", "Throttled")
        );
        assert_eq!(cond(&throttled, SYNCED).last_transition_time, at(600));
        // A terminal one does not.
        let (denied, _) = next(Some(&ready), 1, &error(ErrorClass::AccessDenied, false), &at(700));
        assert_eq!(cond(&denied, READY).status, "False");
        assert_eq!(cond(&denied, READY).last_transition_time, at(700));
        // Back to normal: Ready True again, Synced True.
        let (back, _) = next(Some(&denied), 1, &in_sync(), &at(800));
        assert_eq!(cond(&back, READY).status, "True");
        assert_eq!(cond(&back, SYNCED).reason, "ReconcileSuccess");
        assert_eq!(cond(&back, STALLED).status, "False");
    }

    #[test]
    fn external_ids_stay_out_of_status() {
        let observed = MfaSettings {
            mfa_configuration: MfaMode::Optional,
            sms_mfa_configuration: Some(SmsMfa {
                sms_authentication_message: None,
                sms_configuration: Some(SmsConfiguration {
                    sns_caller_arn: Some("arn:aws:iam::123456789012:role/sms".into()),
                    external_id: Some("secret-ext".into()),
                    ..SmsConfiguration::default()
                }),
            }),
            ..MfaSettings::default()
        };
        let (status, _) = next(None, 1, &Found::InSync { observed }, &at(0));
        assert!(!serde_json::to_string(&status).unwrap().contains("secret-ext"));
    }
}
