//! The `CognitoMfaBaseline` API: an account-wide MFA floor over every user pool of one or more
//! regions, reported (`Report`) or enforced (`Enforce`) on the pools that no policy owns.
//!
//! The floor is evaluated by one pure function, [`Floor::failures`], shared by the baseline
//! controller, the policy controller (its `BelowBaseline` condition), the offline `audit`
//! command and, written in CEL, admission (the template, and the chart's
//! ValidatingAdmissionPolicy).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    Checker, Credentials, FactorConfiguration, MfaMode, MfaSettings, REGION_MAX, REGION_MIN, REGION_PATTERN,
    USER_POOL_ID_MAX, USER_POOL_ID_PATTERN, UserVerification, Violation,
};

/// Most regions one baseline covers.
pub const MAX_REGIONS: u32 = 40;
/// Most pool IDs in `includePoolIds` or `excludePoolIds`.
pub const MAX_POOL_IDS: u32 = 1000;
/// Most non-compliant pools listed in status (the others are counted in `nonCompliantOmitted`).
pub const MAX_LISTED: usize = 50;
/// The default scan interval.
pub const DEFAULT_SCAN_INTERVAL: &str = "10m";
/// A scan interval: a Go-style duration such as `30s`, `10m` or `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(s|m|h))+$";

/// An MFA floor for every user pool of an account in one or more regions, including the pools
/// nobody wrote a policy for. The operator lists the pools (ListUserPools), reads each one's MFA
/// configuration once per scan interval, and reports which pools fall below the floor
/// (action Report), or writes the template to those that no CognitoMfaPolicy owns (action
/// Enforce). Pools owned by a CognitoMfaPolicy are evaluated, never written. Deleting a
/// baseline writes nothing to any pool.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cognitomfa.io",
    version = "v1alpha1",
    kind = "CognitoMfaBaseline",
    plural = "cognitomfabaselines",
    shortname = "cmb",
    category = "cognito",
    status = "CognitoMfaBaselineStatus",
    derive = "PartialEq",
    doc = "CognitoMfaBaseline is an MFA floor for every Amazon Cognito user pool of an account in one or more regions, including the pools nobody wrote a policy for: the operator scans them, reports the pools below the floor, and with action Enforce writes the template to those that no CognitoMfaPolicy owns.",
    printcolumn(
        name = "Regions",
        type_ = "string",
        description = "The regions the baseline covers",
        json_path = ".spec.regions"
    ),
    printcolumn(
        name = "Pools",
        type_ = "integer",
        description = "User pools covered by the last scan",
        json_path = ".status.pools.scanned"
    ),
    printcolumn(
        name = "Compliant",
        type_ = "integer",
        description = "User pools that meet the floor",
        json_path = ".status.pools.compliant"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether every covered pool meets the floor",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("self.action != 'Enforce' || has(self.template)")
        .message("action Enforce needs a template: the complete MFA settings written to pools below the floor")
        .field_path(".template"),
    validation = Rule::new("!has(self.template) || self.template.mfaConfiguration in self.floor.mfaConfiguration")
        .message("the template is below the floor: its mfaConfiguration is not one of floor.mfaConfiguration")
        .field_path(".template.mfaConfiguration"),
    validation = Rule::new("!has(self.template) || self.floor.factors.exists(f, (f == 'SMS' && has(self.template.smsMfaConfiguration)) || (f == 'EMAIL' && has(self.template.emailMfaConfiguration)) || (f == 'TOTP' && has(self.template.softwareTokenMfaConfiguration) && self.template.softwareTokenMfaConfiguration.enabled) || (f == 'PASSKEY' && has(self.template.webAuthnConfiguration) && self.template.webAuthnConfiguration.factorConfiguration == 'MULTI_FACTOR_WITH_USER_VERIFICATION'))")
        .message("the template is below the floor: it turns on none of floor.factors")
        .field_path(".template"),
    validation = Rule::new("!has(self.template) || !has(self.floor.passkeyUserVerification) || self.floor.passkeyUserVerification != 'required' || (has(self.template.webAuthnConfiguration) && self.template.webAuthnConfiguration.userVerification == 'required')")
        .message("the template is below the floor: floor.passkeyUserVerification is required, so the template needs webAuthnConfiguration.userVerification: required")
        .field_path(".template.webAuthnConfiguration")
)]
#[serde(rename_all = "camelCase")]
pub struct CognitoMfaBaselineSpec {
    /// The AWS regions whose user pools the baseline covers, for example [eu-west-1, us-east-1].
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(length(min = 1, max = MAX_REGIONS), inner(length(min = REGION_MIN, max = REGION_MAX), pattern(REGION_PATTERN)))]
    pub regions: Vec<String>,

    /// Credentials for the pools of another AWS account, as in a CognitoMfaPolicy. Default: the
    /// operator's own credentials (its own account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,

    /// Cover only the pools whose name matches this regular expression (RE2 syntax, unanchored:
    /// use ^ and $ to match the whole name). With includePoolIds, the pools that match or are
    /// listed. Default: every pool of the regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub pool_name_regex: Option<String>,

    /// Cover these pools, whatever their name. With neither includePoolIds nor poolNameRegex,
    /// every pool of the regions is covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(length(max = MAX_POOL_IDS), inner(length(min = 1, max = USER_POOL_ID_MAX), pattern(USER_POOL_ID_PATTERN)))]
    pub include_pool_ids: Vec<String>,

    /// Never cover these pools (they are not scanned, reported or written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(length(max = MAX_POOL_IDS), inner(length(min = 1, max = USER_POOL_ID_MAX), pattern(USER_POOL_ID_PATTERN)))]
    pub exclude_pool_ids: Vec<String>,

    /// The least every covered pool must have.
    pub floor: Floor,

    /// Report (default): only report the pools below the floor. Enforce: also write the template
    /// to the pools below the floor that no CognitoMfaPolicy owns (a disruptive change, such as
    /// OPTIONAL to ON, waits for approval on the baseline, as on a policy). Pools that meet the
    /// floor are never written.
    #[serde(default)]
    pub action: BaselineAction,

    /// The complete MFA settings written to a pool below the floor (action Enforce): the same
    /// fields and rules as a CognitoMfaPolicy's spec, and it must itself meet the floor. Leave
    /// webAuthnConfiguration.relyingPartyId unset: each pool keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<BaselineTemplate>,

    /// How often every covered pool is read (GetUserPoolMfaConfig), each at its own point of the
    /// interval, and the pool list refreshed (ListUserPools): a duration such as 30s, 10m or 1h.
    /// Default 10m.
    #[serde(default = "default_scan_interval")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub scan_interval: String,
}

fn default_scan_interval() -> String {
    DEFAULT_SCAN_INTERVAL.to_owned()
}

/// Why a floor cannot allow MFA OFF.
pub const FLOOR_OFF_MESSAGE: &str =
    "a floor cannot allow OFF: with MFA off no factor is on, so no pool could meet it";

/// The least every covered pool must have.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Floor {
    /// The MFA modes a pool may have, for example [ON] or [ON, OPTIONAL]. Default [ON]. OFF is
    /// refused: with MFA off no factor is on, so no pool could meet the floor.
    #[serde(default = "default_modes")]
    #[x_kube(validation = Rule::new("!self.exists(m, m == 'OFF')").message(FLOOR_OFF_MESSAGE))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(length(min = 1, max = 3))]
    pub mfa_configuration: Vec<MfaMode>,

    /// The factors of which at least one must be on: SMS, EMAIL, TOTP, and PASSKEY (a passkey
    /// with factorConfiguration MULTI_FACTOR_WITH_USER_VERIFICATION, which counts as MFA).
    /// Default [SMS, EMAIL, TOTP].
    #[serde(default = "default_factors")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(length(min = 1, max = 4))]
    pub factors: Vec<FloorFactor>,

    /// required: the pool's passkeys must verify the user (webAuthnConfiguration.userVerification
    /// required). preferred or unset: no requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_user_verification: Option<UserVerification>,
}

impl Default for Floor {
    /// Prowler's floor: MFA ON, with at least one factor.
    fn default() -> Self {
        Self {
            mfa_configuration: default_modes(),
            factors: default_factors(),
            passkey_user_verification: None,
        }
    }
}

fn default_modes() -> Vec<MfaMode> {
    vec![MfaMode::On]
}

fn default_factors() -> Vec<FloorFactor> {
    vec![FloorFactor::Sms, FloorFactor::Email, FloorFactor::Totp]
}

/// A factor of the floor: SMS, EMAIL, TOTP or PASSKEY.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FloorFactor {
    Sms,
    Email,
    Totp,
    Passkey,
}

impl fmt::Display for FloorFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sms => "SMS",
            Self::Email => "EMAIL",
            Self::Totp => "TOTP",
            Self::Passkey => "PASSKEY",
        })
    }
}

/// What a baseline does about pools below its floor: Report (default) or Enforce.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum BaselineAction {
    // Report only.
    #[default]
    Report,
    // Write the template to the pools below the floor that no policy owns.
    Enforce,
}

/// The MFA settings a baseline writes: a CognitoMfaPolicy's settings, with its rules.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("self.mfaConfiguration != 'OFF' || (!has(self.smsMfaConfiguration) && !has(self.emailMfaConfiguration) && !has(self.softwareTokenMfaConfiguration))")
        .message("mfaConfiguration OFF allows no smsMfaConfiguration, emailMfaConfiguration or softwareTokenMfaConfiguration (Cognito rejects turning MFA off while configuring a factor)")
        .field_path(".mfaConfiguration"),
    validation = Rule::new("self.mfaConfiguration == 'OFF' || has(self.smsMfaConfiguration) || has(self.emailMfaConfiguration) || (has(self.softwareTokenMfaConfiguration) && self.softwareTokenMfaConfiguration.enabled)")
        .message("mfaConfiguration ON or OPTIONAL needs an enabled factor: smsMfaConfiguration, emailMfaConfiguration or softwareTokenMfaConfiguration with enabled: true (a passkey alone does not count)")
        .field_path(".mfaConfiguration"),
    validation = Rule::new("!has(self.smsMfaConfiguration) || !has(self.smsMfaConfiguration.smsConfiguration) || !has(self.smsMfaConfiguration.smsConfiguration.eumsSms) || !has(self.smsMfaConfiguration.smsConfiguration.eumsSms.region)")
        .message("a template's smsConfiguration.eumsSms.region must be unset: Cognito uses each pool's own region")
        .field_path(".smsMfaConfiguration.smsConfiguration.eumsSms.region")
)]
#[serde(rename_all = "camelCase")]
pub struct BaselineTemplate {
    /// The settings, as in a CognitoMfaPolicy's spec.
    #[serde(flatten)]
    pub settings: MfaSettings,
}

/// What the operator last found across the baseline's pools.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CognitoMfaBaselineStatus {
    /// The metadata.generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: every covered pool meets the floor. Synced: the last scan's calls to AWS worked.
    /// Stalled: waiting on a person (invalid spec, denied access, approval). Reasons: Compliant,
    /// NonCompliant, AwaitingApproval, Scanning, InvalidSpec, AccessDenied, Throttled,
    /// AwsUnavailable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// When the last complete scan ended: every covered pool listed and read once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,

    /// Counts of the covered pools, as of the last read of each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<PoolCounts>,

    /// The pools below the floor, each with why (at most 50, by region and pool ID).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_compliant: Vec<NonCompliantPool>,

    /// How many pools below the floor are left out of nonCompliant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_compliant_omitted: Option<i64>,
}

/// Counts of the covered pools.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolCounts {
    /// Pools covered and read.
    pub scanned: i64,
    /// Pools that meet the floor.
    pub compliant: i64,
    /// Pools below the floor (or whose configuration could not be read).
    pub non_compliant: i64,
    /// Pools owned by a CognitoMfaPolicy: evaluated, never written by the baseline.
    pub owned_by_policies: i64,
    /// Pools this baseline enforces (action Enforce, no policy and no older baseline owns them).
    pub enforced: i64,
    /// Pools whose correction waits for approval on the baseline.
    pub awaiting_approval: i64,
    /// Pools that an older Enforce baseline owns: this one only reports them.
    pub conflicts: i64,
}

/// A pool below the floor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NonCompliantPool {
    /// The user pool ID.
    pub user_pool_id: String,
    /// The pool's region.
    pub region: String,
    /// The pool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why the pool is below the floor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Who owns the pool's MFA settings when it is not this baseline: CognitoMfaPolicy
    /// namespace/name, or CognitoMfaBaseline name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The value of the cognitomfa.io/approve-change annotation (on the baseline) that approves
    /// writing the template to this pool, when that change is disruptive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_token: Option<String>,
}

/// Why a configuration is below a floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The MFA mode is not one the floor allows.
    Mode {
        /// The pool's mode.
        found: MfaMode,
        /// The modes the floor allows.
        allowed: Vec<MfaMode>,
    },
    /// None of the floor's factors is on.
    NoFactor {
        /// The factors of which one must be on.
        needed: Vec<FloorFactor>,
    },
    /// Passkeys do not require user verification.
    UserVerification,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: Vec<String>| v.join(", ");
        match self {
            Self::Mode { found, allowed } => write!(
                f,
                "mfaConfiguration is {found}, the floor allows {}",
                join(allowed.iter().map(ToString::to_string).collect())
            ),
            Self::NoFactor { needed } => write!(
                f,
                "none of the factors {} is on",
                join(needed.iter().map(ToString::to_string).collect())
            ),
            Self::UserVerification => {
                f.write_str("passkeys do not require user verification (the floor requires it)")
            }
        }
    }
}

impl Floor {
    /// Why `settings` (a pool's live configuration, or a spec's) are below this floor; empty
    /// when they meet it. Pure: the controllers, `audit` and the tests share it.
    pub fn failures(&self, settings: &MfaSettings) -> Vec<Failure> {
        let mut out = Vec::new();
        if !self.mfa_configuration.contains(&settings.mfa_configuration) {
            out.push(Failure::Mode {
                found: settings.mfa_configuration,
                allowed: self.mfa_configuration.clone(),
            });
        }
        let on = factors_on(settings);
        if !self.factors.iter().any(|f| on.contains(f)) {
            out.push(Failure::NoFactor {
                needed: self.factors.clone(),
            });
        }
        let verification = settings
            .web_authn_configuration
            .as_ref()
            .map_or(UserVerification::Preferred, |w| w.user_verification);
        if self.passkey_user_verification == Some(UserVerification::Required)
            && verification != UserVerification::Required
        {
            out.push(Failure::UserVerification);
        }
        out
    }
}

/// The floor's factors that `settings` turn on. MFA OFF turns none on, whatever the blocks say.
pub fn factors_on(settings: &MfaSettings) -> Vec<FloorFactor> {
    if settings.mfa_configuration == MfaMode::Off {
        return Vec::new();
    }
    let mut on: Vec<FloorFactor> = super::enabled_factors(settings)
        .into_iter()
        .map(|f| match f {
            super::Factor::Sms => FloorFactor::Sms,
            super::Factor::Email => FloorFactor::Email,
            super::Factor::Totp => FloorFactor::Totp,
        })
        .collect();
    if settings
        .web_authn_configuration
        .as_ref()
        .is_some_and(|w| w.factor_configuration == FactorConfiguration::MultiFactorWithUserVerification)
    {
        on.push(FloorFactor::Passkey);
    }
    on
}

/// A user pool as ListUserPools names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolRef {
    /// The pool's region.
    pub region: String,
    /// The user pool ID.
    pub user_pool_id: String,
    /// The pool's name.
    pub name: String,
}

/// The account a role ARN belongs to; `None`: the operator's own credentials.
pub fn account_of(credentials: Option<&Credentials>) -> Option<&str> {
    credentials.and_then(|c| c.role_arn.split(':').nth(4))
}

impl CognitoMfaBaselineSpec {
    /// Whether the baseline covers the pool: one of its regions, not excluded, and listed or
    /// matching poolNameRegex (every pool when neither is given). `regex` is poolNameRegex
    /// compiled (see [`Self::name_regex`]).
    pub fn covers(&self, pool: &PoolRef, regex: Option<&regex::Regex>) -> bool {
        if !self.regions.contains(&pool.region) || self.exclude_pool_ids.contains(&pool.user_pool_id) {
            return false;
        }
        if self.include_pool_ids.is_empty() && self.pool_name_regex.is_none() {
            return true;
        }
        self.include_pool_ids.contains(&pool.user_pool_id) || regex.is_some_and(|r| r.is_match(&pool.name))
    }

    /// Whether the baseline covers the pool of a policy, as admission sees it (the pool's name
    /// is not known there): the same account (the account of credentials.roleArn on either side,
    /// or the operator's own when neither names a role), one of its regions, and not excluded.
    pub fn covers_policy(&self, policy: &super::CognitoMfaPolicySpec) -> bool {
        account_of(self.credentials.as_ref()) == account_of(policy.credentials.as_ref())
            && policy
                .effective_region()
                .is_some_and(|r| self.regions.iter().any(|own| own == r))
            && !self.exclude_pool_ids.contains(&policy.user_pool_id)
    }

    /// Why the chart's ValidatingAdmissionPolicy refuses `policy` under this baseline: the
    /// floor's failures of its spec when the baseline covers its pool ([`Self::covers_policy`])
    /// and the policy writes (managementPolicy Enforce); empty when it is admitted. The CEL of
    /// `templates/baseline-admission.yaml` says the same, and the end-to-end tests hold both to it.
    pub fn refuses_at_admission(&self, policy: &super::CognitoMfaPolicySpec) -> Vec<Failure> {
        if policy.management_policy == super::ManagementPolicy::Observe || !self.covers_policy(policy) {
            return Vec::new();
        }
        self.floor.failures(&policy.settings)
    }

    /// poolNameRegex compiled; an error names what is wrong with it.
    pub fn name_regex(&self) -> Result<Option<regex::Regex>, String> {
        self.pool_name_regex
            .as_deref()
            .map(|r| {
                regex::RegexBuilder::new(r)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .transpose()
    }

    /// The scan interval.
    pub fn interval(&self) -> Result<std::time::Duration, String> {
        parse_interval(&self.scan_interval)
    }
}

/// Parses a duration such as `30s`, `10m`, `1h30m` (scan intervals, and the command line's).
pub fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d: k8s_openapi::jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("not a duration like 30s, 10m or 1h: {e}"))?;
    std::time::Duration::try_from(d)
        .map_err(|_| "must not be negative".to_owned())
        .and_then(|d| {
            if d.is_zero() {
                Err("must be more than zero".to_owned())
            } else {
                Ok(d)
            }
        })
}

/// Checks a baseline's spec against every rule the CRD enforces at admission, and what only
/// Rust can check (the regex, the interval). Empty: valid.
pub fn validate(spec: &CognitoMfaBaselineSpec) -> Vec<Violation> {
    let mut v = Checker::default();
    if spec.regions.is_empty() {
        v.fail("spec.regions", "at least one region");
    }
    for (i, r) in spec.regions.iter().enumerate() {
        v.string(
            &format!("spec.regions[{i}]"),
            Some(r),
            REGION_MIN,
            REGION_MAX,
            Some(REGION_PATTERN),
        );
    }
    for (name, ids) in [
        ("includePoolIds", &spec.include_pool_ids),
        ("excludePoolIds", &spec.exclude_pool_ids),
    ] {
        for (i, id) in ids.iter().enumerate() {
            v.string(
                &format!("spec.{name}[{i}]"),
                Some(id),
                1,
                USER_POOL_ID_MAX,
                Some(USER_POOL_ID_PATTERN),
            );
        }
    }
    if let Err(e) = spec.name_regex() {
        v.fail(
            "spec.poolNameRegex",
            format!("not a valid regular expression: {e}"),
        );
    }
    if let Err(e) = spec.interval() {
        v.fail("spec.scanInterval", e);
    }
    if spec.floor.mfa_configuration.is_empty() {
        v.fail("spec.floor.mfaConfiguration", "at least one mode");
    }
    if spec.floor.mfa_configuration.contains(&MfaMode::Off) {
        v.fail("spec.floor.mfaConfiguration", FLOOR_OFF_MESSAGE);
    }
    if spec.floor.factors.is_empty() {
        v.fail("spec.floor.factors", "at least one factor");
    }
    if let Some(c) = &spec.credentials {
        super::check_credentials(&mut v, c);
    }
    match (&spec.template, spec.action) {
        (None, BaselineAction::Enforce) => v.fail(
            "spec.template",
            "action Enforce needs a template: the complete MFA settings written to pools below the floor",
        ),
        (Some(t), _) => {
            super::check_settings(&mut v, "spec.template", &t.settings, None);
            if t.settings
                .sms_mfa_configuration
                .as_ref()
                .and_then(|s| s.sms_configuration.as_ref())
                .and_then(|c| c.eums_sms.as_ref())
                .is_some_and(|e| e.region.is_some())
            {
                v.fail(
                    "spec.template.smsMfaConfiguration.smsConfiguration.eumsSms.region",
                    "a template's smsConfiguration.eumsSms.region must be unset: Cognito uses each pool's own region",
                );
            }
            for failure in spec.floor.failures(&t.settings) {
                v.fail(
                    "spec.template",
                    format!("the template is below the floor: {failure}"),
                );
            }
        }
        (None, BaselineAction::Report) => {}
    }
    v.0
}

/// The CustomResourceDefinition of CognitoMfaBaseline, as installed (see [`super::crd`]).
pub fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;
    super::finish_crd(CognitoMfaBaseline::crd())
}
