//! A baseline's status, as a pure function of the previous status and of what the scan found:
//! counts, the non-compliant pools (bounded), and the conditions Ready, Synced and Stalled with
//! reasons from a closed set ([`BaselineReason`]).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{READY, STALLED, SYNCED, set_condition};
use crate::{
    api::{
        MfaSettings,
        baseline::{CognitoMfaBaselineStatus, MAX_LISTED, NonCompliantPool, PoolCounts, PoolRef},
    },
    cognito::ErrorClass,
};

/// Who writes a pool's MFA settings, as a baseline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This baseline (action Enforce, no policy and no older baseline owns the pool).
    This,
    /// Nobody: the baseline only reports (action Report).
    Reported,
    /// A CognitoMfaPolicy (namespace/name): evaluated, never written by the baseline.
    Policy(String),
    /// An older CognitoMfaBaseline with action Enforce (its name): this one only reports.
    Baseline(String),
}

impl Owner {
    fn name(&self) -> Option<String> {
        match self {
            Self::This | Self::Reported => None,
            Self::Policy(p) => Some(format!("CognitoMfaPolicy {p}")),
            Self::Baseline(b) => Some(format!("CognitoMfaBaseline {b}")),
        }
    }
}

/// What the last read of one covered pool found.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolFinding {
    /// The pool.
    pub pool: PoolRef,
    /// Its configuration, normalised, after any write; `None` when it could not be read.
    pub observed: Option<MfaSettings>,
    /// Why it is below the floor (or could not be read); empty: it meets the floor.
    pub reasons: Vec<String>,
    /// Who writes it.
    pub owner: Owner,
    /// The token that approves writing the template, while that change waits for approval.
    pub approval_token: Option<String>,
    /// The class of the error of its last read or write, if it failed.
    pub error: Option<ErrorClass>,
}

impl PoolFinding {
    /// Whether the pool meets the floor.
    pub fn compliant(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// What a baseline's scan found so far.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The covered pools read since the scan began (each once).
    pub findings: Vec<PoolFinding>,
    /// Covered pools listed but not read yet.
    pub pending: usize,
    /// When the last complete scan ended (every listed pool read).
    pub last_scan_time: Option<Time>,
    /// ListUserPools failed: its class and message.
    pub list_error: Option<(ErrorClass, String)>,
    /// The spec breaks a rule: the violations.
    pub invalid: Option<String>,
}

/// Why a baseline is (not) ready: the closed set of reasons of its `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaselineReason {
    /// Every covered pool meets the floor.
    Compliant,
    /// Some covered pools are below the floor (listed in status.nonCompliant).
    NonCompliant,
    /// Writing the template to some pools waits for approval on the baseline.
    AwaitingApproval,
    /// The first scan is under way.
    Scanning,
    /// The spec breaks a rule.
    InvalidSpec,
    /// The credentials may not list or read the pools.
    AccessDenied,
    /// Cognito throttled the scan.
    Throttled,
    /// Cognito failed or could not be reached.
    AwsUnavailable,
}

impl BaselineReason {
    /// Every reason.
    pub const ALL: [BaselineReason; 8] = [
        Self::Compliant,
        Self::NonCompliant,
        Self::AwaitingApproval,
        Self::Scanning,
        Self::InvalidSpec,
        Self::AccessDenied,
        Self::Throttled,
        Self::AwsUnavailable,
    ];

    /// The reason as it appears in conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "Compliant",
            Self::NonCompliant => "NonCompliant",
            Self::AwaitingApproval => "AwaitingApproval",
            Self::Scanning => "Scanning",
            Self::InvalidSpec => "InvalidSpec",
            Self::AccessDenied => "AccessDenied",
            Self::Throttled => "Throttled",
            Self::AwsUnavailable => "AwsUnavailable",
        }
    }

    /// The reason of a failed call.
    pub fn of_error(class: ErrorClass) -> Self {
        match class {
            ErrorClass::Throttled => Self::Throttled,
            ErrorClass::AccessDenied => Self::AccessDenied,
            _ => Self::AwsUnavailable,
        }
    }

    /// Whether a person has to act before this changes.
    pub fn is_stalled(self) -> bool {
        matches!(
            self,
            Self::InvalidSpec | Self::AccessDenied | Self::AwaitingApproval
        )
    }
}

impl fmt::Display for BaselineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counts of a scan.
pub fn counts(findings: &[PoolFinding]) -> PoolCounts {
    let n = |f: &dyn Fn(&PoolFinding) -> bool| findings.iter().filter(|p| f(p)).count() as i64;
    PoolCounts {
        scanned: findings.len() as i64,
        compliant: n(&|p| p.compliant()),
        non_compliant: n(&|p| !p.compliant()),
        owned_by_policies: n(&|p| matches!(p.owner, Owner::Policy(_))),
        enforced: n(&|p| p.owner == Owner::This),
        awaiting_approval: n(&|p| p.approval_token.is_some()),
        conflicts: n(&|p| matches!(p.owner, Owner::Baseline(_))),
    }
}

/// The status after a scan step of `generation` that found `scan`, and the Ready reason in it.
/// Everything that did not change keeps its value (transition times), so a scan step that finds
/// nothing new gives an equal status and no write.
pub fn next(
    prev: Option<&CognitoMfaBaselineStatus>,
    generation: i64,
    scan: &Scan,
    now: &Time,
) -> (CognitoMfaBaselineStatus, BaselineReason) {
    let mut status = prev.cloned().unwrap_or_default();
    status.observed_generation = Some(generation);
    status.last_scan_time = scan.last_scan_time.clone();
    let mut findings: Vec<&PoolFinding> = scan.findings.iter().collect();
    findings.sort_by(|a, b| a.pool.cmp(&b.pool));
    let below: Vec<&PoolFinding> = findings.iter().copied().filter(|p| !p.compliant()).collect();
    status.non_compliant = below
        .iter()
        .take(MAX_LISTED)
        .map(|p| NonCompliantPool {
            user_pool_id: p.pool.user_pool_id.clone(),
            region: p.pool.region.clone(),
            name: Some(p.pool.name.clone()).filter(|n| !n.is_empty()),
            reasons: p.reasons.clone(),
            owner: p.owner.name(),
            approval_token: p.approval_token.clone(),
        })
        .collect();
    status.non_compliant_omitted = (below.len() > MAX_LISTED).then(|| (below.len() - MAX_LISTED) as i64);
    let c = counts(&scan.findings);
    status.pools = Some(c.clone());
    let first_scan = scan.last_scan_time.is_none();
    let (reason, message) = if let Some(why) = &scan.invalid {
        (BaselineReason::InvalidSpec, why.clone())
    } else if let (Some((class, message)), true) = (&scan.list_error, first_scan) {
        (BaselineReason::of_error(*class), message.clone())
    } else if c.awaiting_approval > 0 {
        (
            BaselineReason::AwaitingApproval,
            format!(
                "Writing the template to {} pool(s) waits for approval: annotate the baseline with cognitomfa.io/approve-change: the tokens in status.nonCompliant (comma-separated), or cognitomfa.io/allow-disruptive-changes: \"true\".",
                c.awaiting_approval
            ),
        )
    } else if c.non_compliant > 0 {
        (
            BaselineReason::NonCompliant,
            format!(
                "{} of {} pool(s) are below the floor (status.nonCompliant says why).",
                c.non_compliant, c.scanned
            ),
        )
    } else if first_scan {
        (
            BaselineReason::Scanning,
            format!(
                "The first scan is under way: {} pool(s) read, {} to go.",
                c.scanned, scan.pending
            ),
        )
    } else {
        (
            BaselineReason::Compliant,
            format!("Every covered pool ({}) meets the floor.", c.scanned),
        )
    };
    let ready = if reason == BaselineReason::Compliant {
        "True"
    } else {
        "False"
    };
    set_condition(
        &mut status.conditions,
        READY,
        ready,
        reason.as_str(),
        &message,
        generation,
        now,
    );
    let failed = findings.iter().find_map(|p| p.error);
    let (synced, synced_reason, synced_message) = match (&scan.invalid, &scan.list_error, failed) {
        (Some(why), _, _) => ("False", "InvalidSpec", why.clone()),
        (None, Some((class, message)), _) => (
            "False",
            BaselineReason::of_error(*class).as_str(),
            message.clone(),
        ),
        (None, None, Some(class)) => (
            "False",
            BaselineReason::of_error(class).as_str(),
            "Reading or writing some pools failed (status.nonCompliant says which).".to_owned(),
        ),
        (None, None, None) => (
            "True",
            "ReconcileSuccess",
            "The last scan's calls to AWS worked.".to_owned(),
        ),
    };
    set_condition(
        &mut status.conditions,
        SYNCED,
        synced,
        synced_reason,
        &synced_message,
        generation,
        now,
    );
    // Stalled says what waits on a person: the Ready reason when it is one, else a list that
    // access denies (after a complete scan, Ready still reports that scan's verdict).
    let denied_list = scan
        .list_error
        .as_ref()
        .filter(|(class, _)| *class == ErrorClass::AccessDenied);
    let (stalled_status, stalled_reason, stalled_message) = if reason.is_stalled() {
        ("True", reason.as_str(), message.as_str())
    } else if let Some((_, why)) = denied_list {
        ("True", BaselineReason::AccessDenied.as_str(), why.as_str())
    } else {
        ("False", "Progressing", "Nothing waits on a person.")
    };
    set_condition(
        &mut status.conditions,
        STALLED,
        stalled_status,
        stalled_reason,
        stalled_message,
        generation,
        now,
    );
    (status, reason)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::api::{MfaMode, SoftwareTokenMfa, baseline::Floor};

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
    }

    fn finding(id: &str, mode: MfaMode, owner: Owner) -> PoolFinding {
        let observed = MfaSettings {
            mfa_configuration: mode,
            software_token_mfa_configuration: (mode != MfaMode::Off)
                .then_some(SoftwareTokenMfa { enabled: true }),
            ..MfaSettings::default()
        };
        PoolFinding {
            pool: PoolRef {
                region: "eu-west-1".into(),
                user_pool_id: format!("eu-west-1_{id}"),
                name: id.into(),
            },
            reasons: Floor::default()
                .failures(&observed)
                .iter()
                .map(ToString::to_string)
                .collect(),
            observed: Some(observed),
            owner,
            approval_token: None,
            error: None,
        }
    }

    fn condition<'a>(s: &'a CognitoMfaBaselineStatus, t: &str) -> (&'a str, &'a str) {
        let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn counts_list_and_conditions() {
        let mut scan = Scan {
            findings: vec![
                finding("A", MfaMode::On, Owner::This),
                finding("B", MfaMode::Off, Owner::Reported),
                finding("C", MfaMode::Optional, Owner::Policy("team/c".into())),
                finding("D", MfaMode::On, Owner::Baseline("older".into())),
            ],
            pending: 2,
            ..Scan::default()
        };
        let (status, reason) = next(None, 1, &scan, &at(0));
        assert_eq!(reason, BaselineReason::NonCompliant);
        assert_eq!(
            status.pools,
            Some(PoolCounts {
                scanned: 4,
                compliant: 2,
                non_compliant: 2,
                owned_by_policies: 1,
                enforced: 1,
                awaiting_approval: 0,
                conflicts: 1,
            })
        );
        let listed: Vec<(&str, Option<&str>)> = status
            .non_compliant
            .iter()
            .map(|p| (p.user_pool_id.as_str(), p.owner.as_deref()))
            .collect();
        assert_eq!(
            listed,
            [
                ("eu-west-1_B", None),
                ("eu-west-1_C", Some("CognitoMfaPolicy team/c"))
            ]
        );
        assert!(status.non_compliant[0].reasons[0].contains("mfaConfiguration is OFF"));
        assert_eq!(condition(&status, READY), ("False", "NonCompliant"));
        assert_eq!(condition(&status, SYNCED), ("True", "ReconcileSuccess"));
        assert_eq!(condition(&status, STALLED), ("False", "Progressing"));
        // The same scan again: the same status (nothing to write).
        let (again, _) = next(Some(&status), 1, &scan, &at(60));
        assert_eq!(again, status);
        // Waiting for approval: stalled, with the token in the list.
        scan.findings[1].approval_token = Some("cmp-0123456789ab".into());
        let (waiting, reason) = next(Some(&status), 1, &scan, &at(120));
        assert_eq!(reason, BaselineReason::AwaitingApproval);
        assert_eq!(condition(&waiting, STALLED), ("True", "AwaitingApproval"));
        assert_eq!(
            waiting.non_compliant[0].approval_token.as_deref(),
            Some("cmp-0123456789ab")
        );
        // All compliant, the scan complete: Ready.
        let ok = Scan {
            findings: vec![finding("A", MfaMode::On, Owner::This)],
            last_scan_time: Some(at(180)),
            ..Scan::default()
        };
        let (ready, reason) = next(Some(&waiting), 1, &ok, &at(180));
        assert_eq!(reason, BaselineReason::Compliant);
        assert_eq!(condition(&ready, READY), ("True", "Compliant"));
        assert_eq!(ready.last_scan_time, Some(at(180)));
        assert!(ready.non_compliant.is_empty());
    }

    #[test]
    fn the_list_is_bounded_and_errors_are_reasons() {
        let scan = Scan {
            findings: (0..75)
                .map(|i| finding(&format!("P{i:03}"), MfaMode::Off, Owner::Reported))
                .collect(),
            ..Scan::default()
        };
        let (status, _) = next(None, 1, &scan, &at(0));
        assert_eq!(status.non_compliant.len(), MAX_LISTED);
        assert_eq!(status.non_compliant_omitted, Some(25));
        assert_eq!(status.non_compliant[0].user_pool_id, "eu-west-1_P000");
        // ListUserPools denied before any scan: AccessDenied, stalled.
        let denied = Scan {
            list_error: Some((ErrorClass::AccessDenied, "ListUserPools denied".into())),
            ..Scan::default()
        };
        let (status, reason) = next(None, 1, &denied, &at(0));
        assert_eq!(reason, BaselineReason::AccessDenied);
        assert_eq!(condition(&status, STALLED), ("True", "AccessDenied"));
        assert_eq!(condition(&status, SYNCED), ("False", "AccessDenied"));
        // Throttled after a complete scan: Ready keeps the verdict, Synced says it.
        let throttled = Scan {
            findings: vec![finding("A", MfaMode::On, Owner::Reported)],
            list_error: Some((ErrorClass::Throttled, "slow down".into())),
            last_scan_time: Some(at(0)),
            ..Scan::default()
        };
        let (status, reason) = next(None, 1, &throttled, &at(10));
        assert_eq!(reason, BaselineReason::Compliant);
        assert_eq!(condition(&status, SYNCED), ("False", "Throttled"));
        assert_eq!(condition(&status, STALLED), ("False", "Progressing"));
        // Denied after a complete scan: Ready keeps the verdict, Stalled names the denial.
        let denied_later = Scan {
            list_error: Some((ErrorClass::AccessDenied, "ListUserPools denied".into())),
            ..throttled
        };
        let (status, reason) = next(None, 1, &denied_later, &at(10));
        assert_eq!(reason, BaselineReason::Compliant);
        assert_eq!(condition(&status, STALLED), ("True", "AccessDenied"));
        let stalled = status.conditions.iter().find(|c| c.type_ == STALLED).unwrap();
        assert_eq!(stalled.message, "ListUserPools denied");
        let invalid = Scan {
            invalid: Some("spec.poolNameRegex: bad".into()),
            ..Scan::default()
        };
        let (status, reason) = next(None, 1, &invalid, &at(0));
        assert_eq!(reason, BaselineReason::InvalidSpec);
        assert_eq!(condition(&status, STALLED), ("True", "InvalidSpec"));
    }
}
