//! The plan: what must change in a pool's MFA configuration, as a pure function of the desired
//! settings (a spec), the live settings (read just before) and the guardrail's approval.
//!
//! Nothing here does I/O. The controller and the offline commands both call [`plan`]; what they
//! do with the result (write, wait, report) is theirs.
//!
//! The rules encoded here are those of Cognito's SetUserPoolMfaConfig (a full replace) and
//! GetUserPoolMfaConfig (which leaves out what is not configured):
//! - the SMS, email and TOTP blocks present in the spec are the factors that are on;
//! - optional values the spec leaves unset are not managed: they are neither compared nor
//!   changed, and the request carries the live value over so that Set does not reset them;
//! - the request is always complete: the MFA mode, an explicit TOTP flag, every factor that stays
//!   on, and the passkey settings.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::{
    EmailMfa, Factor, MfaMode, MfaSettings, SmsMfa, SoftwareTokenMfa, WebAuthn, enabled_factors,
};

/// What the plan says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// The pool already matches the policy: no write.
    InSync,
    /// Send [`Plan::request`] with SetUserPoolMfaConfig.
    Apply,
    /// The change is disruptive and not approved: wait for the annotation.
    AwaitApproval,
}

/// One field that differs between the policy and the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// Path of the field in the spec, for example `smsMfaConfiguration.smsAuthenticationMessage`.
    pub field: String,
    /// The live value; `None` when the pool does not have the field.
    pub from: Option<String>,
    /// The policy's value; `None` when the policy turns the block off.
    pub to: Option<String>,
}

/// A change that can lock users out or invalidate their credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum Disruption {
    /// OPTIONAL or OFF to ON: users without a factor can no longer sign in without setting one up.
    MfaRequired {
        /// The live mode.
        from: MfaMode,
    },
    /// Every factor users may have enrolled in is turned off while MFA stays on.
    FactorsRemoved {
        /// The factors that are turned off.
        removed: Vec<Factor>,
    },
    /// A new relying party ID invalidates every passkey users have registered.
    RelyingPartyChanged {
        /// The live relying party ID.
        from: String,
        /// The policy's relying party ID.
        to: String,
    },
}

impl fmt::Display for Disruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MfaRequired { from } => write!(
                f,
                "mfaConfiguration {from} -> ON makes MFA mandatory: users without a factor must set one up at their next sign-in"
            ),
            Self::FactorsRemoved { removed } => {
                let names: Vec<String> = removed.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "turns off every factor users may have enrolled in ({}): they lose their second factor",
                    names.join(", ")
                )
            }
            Self::RelyingPartyChanged { from, to } => write!(
                f,
                "webAuthnConfiguration.relyingPartyId {from} -> {to} invalidates every passkey registered for {from}"
            ),
        }
    }
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        write!(f, "{}: {} -> {}", self.field, show(&self.from), show(&self.to))
    }
}

/// What approves a disruptive change of one policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// What tokens are bound to: the pool (its ID and region), so that a token copied to another
    /// policy approves nothing there.
    pub scope: String,
    /// `cognitomfa.io/allow-disruptive-changes: "true"`: every disruptive change is approved,
    /// now and later.
    pub standing: bool,
    /// The tokens in `cognitomfa.io/approve-change` (one, or several separated by commas, as a
    /// baseline that covers many pools takes them): each approves the one change whose
    /// [`approval_token`] it is.
    pub tokens: Vec<String>,
}

impl Approval {
    /// No approval at all for the pool `scope`.
    pub fn none(scope: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            ..Self::default()
        }
    }

    /// Approval of everything (deletion, which puts back what the owner chose).
    pub fn standing() -> Self {
        Self {
            standing: true,
            ..Self::default()
        }
    }
}

/// The tokens in the value of a `cognitomfa.io/approve-change` annotation: separated by commas or
/// white space.
pub fn tokens_of(annotation: Option<&str>) -> Vec<String> {
    annotation
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What let a disruptive change through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ApprovedBy {
    /// The standing approval (`allow-disruptive-changes: "true"`).
    Standing,
    /// A token for exactly this change (`approve-change`).
    Token,
}

/// The token that approves exactly these disruptions of the pool `scope`: `cmp-` and 12
/// hexadecimal digits of a SHA-256 over the scope and each disruption with its values (the mode
/// it leaves, the factors it removes, the relying party IDs). It depends on nothing else, so the
/// operator and the offline `plan` give the same token, and a different disruptive change (a
/// turn to ON from another mode, a new relying party ID) gets a different one.
pub fn approval_token(scope: &str, disruptions: &[Disruption]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"cognitomfa.io/approve-change/v1\n");
    hash.update(scope.as_bytes());
    for d in disruptions {
        hash.update(b"\n");
        hash.update(
            serde_json::to_string(d)
                .expect("a disruption serializes")
                .as_bytes(),
        );
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("cmp-{hex}")
}

/// The outcome of planning one policy against one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// What to do.
    pub action: Action,
    /// Fields where the pool differs from the policy (empty when in sync).
    pub changes: Vec<FieldChange>,
    /// Why the change needs approval (empty when it does not).
    pub disruptions: Vec<Disruption>,
    /// The token that approves exactly these disruptions (see [`approval_token`]); `None` when
    /// there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_token: Option<String>,
    /// What approved the disruptions, when they are approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<ApprovedBy>,
    /// The complete SetUserPoolMfaConfig request that makes the pool match the policy. Meaningful
    /// when `action` is not `InSync`.
    #[serde(skip)]
    pub request: MfaSettings,
}

impl Plan {
    /// Whether the pool already matches the policy.
    pub fn is_in_sync(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changed field paths, for status and events.
    pub fn changed_fields(&self) -> Vec<String> {
        field_names(&self.changes)
    }
}

/// The names of the fields that `changes` change, each once: a block that is turned on or off
/// (`smsMfaConfiguration`) stands for its leaves, which are not listed beside it.
pub fn field_names(changes: &[FieldChange]) -> Vec<String> {
    let blocks: Vec<&str> = changes
        .iter()
        .map(|c| c.field.as_str())
        .filter(|f| !f.contains('.'))
        .collect();
    changes
        .iter()
        .map(|c| c.field.as_str())
        .filter(|f| {
            !blocks
                .iter()
                .any(|b| f.strip_prefix(b).is_some_and(|rest| rest.starts_with('.')))
        })
        .map(str::to_owned)
        .collect()
}

/// Plans one policy against one pool.
///
/// `desired` is the policy's settings (assumed valid, see [`crate::api::validate`]); `live` is
/// what GetUserPoolMfaConfig returned (normalised here); `approval` is what the object's
/// annotations approve.
pub fn plan(desired: &MfaSettings, live: &MfaSettings, approval: &Approval) -> Plan {
    let live = normalise(live);
    let changes = diff(desired, &live);
    let request = request(desired, &live);
    let disruptions = if changes.is_empty() {
        Vec::new()
    } else {
        disruptions(&live, &normalise(&request))
    };
    let approval_token = (!disruptions.is_empty()).then(|| approval_token(&approval.scope, &disruptions));
    let approved_by = match &approval_token {
        None => None,
        Some(token) if approval.tokens.iter().any(|t| t == token) => Some(ApprovedBy::Token),
        Some(_) if approval.standing => Some(ApprovedBy::Standing),
        Some(_) => None,
    };
    let action = if changes.is_empty() {
        Action::InSync
    } else if !disruptions.is_empty() && approved_by.is_none() {
        Action::AwaitApproval
    } else {
        Action::Apply
    };
    Plan {
        action,
        changes,
        disruptions,
        approval_token,
        approved_by,
        request,
    }
}

/// Normalises what GetUserPoolMfaConfig returned, so that equal configurations compare equal:
/// - TOTP is present only when enabled (Get may return `Enabled: false` or nothing);
/// - SMS and email blocks are on when present (Get leaves out factors that are off);
/// - a WebAuthn block equal to Cognito's defaults (no relying party, `preferred`,
///   `SINGLE_FACTOR`) is what Get returns for a pool where nobody set passkeys: it is dropped.
///
/// Missing `UserVerification` and `FactorConfiguration` are already Cognito's defaults in
/// [`WebAuthn`]'s representation.
pub fn normalise(live: &MfaSettings) -> MfaSettings {
    let mut out = live.clone();
    if !out
        .software_token_mfa_configuration
        .as_ref()
        .is_some_and(|t| t.enabled)
    {
        out.software_token_mfa_configuration = None;
    }
    if out.web_authn_configuration.as_ref() == Some(&WebAuthn::default()) {
        out.web_authn_configuration = None;
    }
    out
}

/// Paths whose values are never shown (they are credentials of a kind).
pub fn is_sensitive(field: &str) -> bool {
    field.ends_with("externalId")
}

const REDACTED: &str = "(redacted)";

/// The fields where `live` (normalised) differs from what `desired` says. Only what the policy
/// says is compared: a value it leaves unset is not drift.
fn diff(desired: &MfaSettings, live: &MfaSettings) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut change = |field: &str, from: Option<String>, to: Option<String>| {
        if from != to {
            let redact = |v: Option<String>| v.map(|_| REDACTED.to_owned());
            let (from, to) = if is_sensitive(field) {
                (redact(from), redact(to))
            } else {
                (from, to)
            };
            out.push(FieldChange {
                field: field.to_owned(),
                from,
                to,
            });
        }
    };
    change(
        "mfaConfiguration",
        Some(live.mfa_configuration.to_string()),
        Some(desired.mfa_configuration.to_string()),
    );
    let totp = |s: &MfaSettings| {
        s.software_token_mfa_configuration
            .as_ref()
            .is_some_and(|t| t.enabled)
    };
    change(
        "softwareTokenMfaConfiguration.enabled",
        Some(totp(live).to_string()),
        Some(totp(desired).to_string()),
    );
    for (name, want, have) in [
        (
            "smsMfaConfiguration",
            desired.sms_mfa_configuration.as_ref().map(to_json),
            live.sms_mfa_configuration.as_ref().map(to_json),
        ),
        (
            "emailMfaConfiguration",
            desired.email_mfa_configuration.as_ref().map(to_json),
            live.email_mfa_configuration.as_ref().map(to_json),
        ),
    ] {
        let on_off = |v: &Option<Value>| Some(if v.is_some() { "on" } else { "off" }.to_owned());
        change(name, on_off(&have), on_off(&want));
        if let Some(want) = want {
            leaf_changes(name, &want, have.as_ref(), &mut change);
        }
    }
    // One SMS transport: the one the policy names replaces the other.
    let transport = |s: &MfaSettings| {
        s.sms_mfa_configuration
            .as_ref()
            .and_then(|m| m.sms_configuration.clone())
    };
    if let (Some(want), Some(have)) = (transport(desired), transport(live)) {
        if want.eums_sms.is_some() && have.sns_caller_arn.is_some() {
            change(
                "smsMfaConfiguration.smsConfiguration.snsCallerArn",
                have.sns_caller_arn.clone(),
                None,
            );
        }
        if want.sns_caller_arn.is_some()
            && let Some(eums) = &have.eums_sms
        {
            change(
                "smsMfaConfiguration.smsConfiguration.eumsSms",
                Some(eums.caller_arn.clone()),
                None,
            );
        }
    }
    if let Some(want) = &desired.web_authn_configuration {
        let have = live.web_authn_configuration.clone().unwrap_or_default();
        leaf_changes(
            "webAuthnConfiguration",
            &to_json(want),
            Some(&to_json(&have)),
            &mut change,
        );
    }
    out
}

/// Compares every scalar that `want` sets with the same path in `have`.
fn leaf_changes(
    path: &str,
    want: &Value,
    have: Option<&Value>,
    change: &mut impl FnMut(&str, Option<String>, Option<String>),
) {
    match want {
        Value::Object(fields) => {
            for (key, value) in fields {
                let have = have.and_then(|h| h.get(key));
                leaf_changes(&format!("{path}.{key}"), value, have, change);
            }
        }
        scalar => change(path, have.map(render), Some(render(scalar))),
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("MFA settings serialize to JSON")
}

/// `live` with every field that `overlay` sets replaced, recursively.
fn overlay(live: Option<&Value>, overlay: &Value) -> Value {
    match (live, overlay) {
        (Some(Value::Object(base)), Value::Object(over)) => {
            let mut out: Map<String, Value> = base.clone();
            for (key, value) in over {
                let merged = self::overlay(base.get(key), value);
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (_, over) => over.clone(),
    }
}

fn merged<T: Serialize + serde::de::DeserializeOwned>(live: Option<&T>, desired: &T) -> T {
    let live = live.map(to_json);
    serde_json::from_value(overlay(live.as_ref(), &to_json(desired)))
        .expect("merging two valid settings gives valid settings")
}

/// The complete SetUserPoolMfaConfig request: the policy, with every optional value it leaves
/// unset carried over from the live configuration.
fn request(desired: &MfaSettings, live: &MfaSettings) -> MfaSettings {
    let mode = desired.mfa_configuration;
    // OFF with any SMS, email or TOTP block (even TOTP disabled) is rejected by Cognito; ON and
    // OPTIONAL get an explicit TOTP flag so that nothing relies on omission.
    let factors_allowed = mode != MfaMode::Off;
    let sms: Option<SmsMfa> = desired
        .sms_mfa_configuration
        .as_ref()
        .filter(|_| factors_allowed)
        .map(|d| one_transport(d, merged(live.sms_mfa_configuration.as_ref(), d)));
    let email: Option<EmailMfa> = desired
        .email_mfa_configuration
        .as_ref()
        .filter(|_| factors_allowed)
        .map(|d| merged(live.email_mfa_configuration.as_ref(), d));
    let totp = factors_allowed.then(|| SoftwareTokenMfa {
        enabled: desired
            .software_token_mfa_configuration
            .as_ref()
            .is_some_and(|t| t.enabled),
    });
    // Passkey settings the policy does not mention are carried over whole (a normalised live
    // block equal to Cognito's defaults is left out, which Cognito reads as those defaults).
    let web_authn = match &desired.web_authn_configuration {
        Some(d) => Some(merged(live.web_authn_configuration.as_ref(), d)),
        None => live.web_authn_configuration.clone(),
    };
    MfaSettings {
        mfa_configuration: mode,
        software_token_mfa_configuration: totp,
        sms_mfa_configuration: sms,
        email_mfa_configuration: email,
        web_authn_configuration: web_authn,
    }
}

/// The merged SMS settings with only the transport the policy names: Cognito takes Amazon SNS
/// (`SnsCallerArn`) or End User Messaging (`EumsSms`), not both, so the live values of the other
/// one are not carried over. SNS's external ID and region go with its role, unless the policy
/// sets them.
fn one_transport(desired: &SmsMfa, mut merged: SmsMfa) -> SmsMfa {
    if let (Some(want), Some(out)) = (
        desired.sms_configuration.as_ref(),
        merged.sms_configuration.as_mut(),
    ) {
        if want.eums_sms.is_some() {
            out.sns_caller_arn = None;
            out.external_id = want.external_id.clone();
            out.sns_region = want.sns_region.clone();
        } else if want.sns_caller_arn.is_some() {
            out.eums_sms = None;
        }
    }
    merged
}

/// What in going from `live` to `next` (both normalised) can lock users out.
fn disruptions(live: &MfaSettings, next: &MfaSettings) -> Vec<Disruption> {
    let mut out = Vec::new();
    if live.mfa_configuration != MfaMode::On && next.mfa_configuration == MfaMode::On {
        out.push(Disruption::MfaRequired {
            from: live.mfa_configuration,
        });
    }
    let before = enabled_factors(live);
    let after = enabled_factors(next);
    if next.mfa_configuration != MfaMode::Off
        && !before.is_empty()
        && before.iter().all(|f| !after.contains(f))
    {
        out.push(Disruption::FactorsRemoved { removed: before });
    }
    let rp = |s: &MfaSettings| {
        s.web_authn_configuration
            .as_ref()
            .and_then(|w| w.relying_party_id.clone())
    };
    if let (Some(from), Some(to)) = (rp(live), rp(next))
        && from != to
    {
        out.push(Disruption::RelyingPartyChanged { from, to });
    }
    out
}

/// Facts about a pool (from DescribeUserPool) that some MFA settings depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolFacts {
    /// The feature plan: `LITE`, `ESSENTIALS` or `PLUS` (`None` when Cognito did not say).
    pub tier: Option<String>,
    /// `COGNITO_DEFAULT` or `DEVELOPER` (`None` when Cognito did not say).
    pub email_sending_account: Option<String>,
    /// The sign-in policy's allowed first factors, such as `PASSWORD`, `WEB_AUTHN`.
    pub allowed_first_auth_factors: Vec<String>,
    /// Whether the pool has an SMS configuration (`SmsConfiguration`, also used for phone
    /// number verification), which Cognito does not let SMS MFA be turned off beside.
    pub sms_configuration: bool,
}

/// Whether checking prerequisites is worth a DescribeUserPool call for the request that moves
/// the pool from `live`.
pub fn has_prerequisites(request: &MfaSettings, live: &MfaSettings) -> bool {
    request.email_mfa_configuration.is_some()
        || request.web_authn_configuration.as_ref().is_some_and(|w| {
            w.factor_configuration == crate::api::FactorConfiguration::MultiFactorWithUserVerification
        })
        || request.mfa_configuration == MfaMode::On
        || turns_sms_off(request, live)
}

fn turns_sms_off(request: &MfaSettings, live: &MfaSettings) -> bool {
    request.sms_mfa_configuration.is_none() && normalise(live).sms_mfa_configuration.is_some()
}

/// What Cognito is known to refuse beside the pool's other settings, told in advance: a request
/// that turns SMS MFA off on a pool with an SMS configuration.
pub fn warnings(request: &MfaSettings, live: &MfaSettings, facts: &PoolFacts) -> Vec<String> {
    let mut out = Vec::new();
    if facts.sms_configuration && turns_sms_off(request, live) {
        out.push(SMS_CONFIGURATION_IN_USE.to_owned());
    }
    out
}

/// Why a pool with an SMS configuration keeps SMS MFA, and the two ways out.
pub const SMS_CONFIGURATION_IN_USE: &str = "Cognito does not turn SMS MFA off while the user pool has an SMS configuration (used for phone number verification too). Either add smsMfaConfiguration to the policy to keep SMS MFA, or remove the pool's SMS configuration (UpdateUserPool, outside this operator) and let the operator retry";

/// The prerequisites of `desired` that the pool does not meet, in words. Facts Cognito did not
/// report are not held against the pool.
pub fn missing_prerequisites(desired: &MfaSettings, facts: &PoolFacts) -> Vec<String> {
    use crate::api::FactorConfiguration::*;
    let mut out = Vec::new();
    let lite = facts.tier.as_deref() == Some("LITE");
    let multi_factor = desired
        .web_authn_configuration
        .as_ref()
        .map(|w| w.factor_configuration);
    if desired.email_mfa_configuration.is_some() {
        if lite {
            out.push("email MFA needs the Essentials tier or higher; the pool is on Lite".to_owned());
        }
        if facts.email_sending_account.as_deref() == Some("COGNITO_DEFAULT") {
            out.push(
                "email MFA needs email sent through Amazon SES (EmailSendingAccount DEVELOPER); the pool uses COGNITO_DEFAULT"
                    .to_owned(),
            );
        }
    }
    if multi_factor == Some(MultiFactorWithUserVerification) && lite {
        out.push(
            "webAuthnConfiguration.factorConfiguration MULTI_FACTOR_WITH_USER_VERIFICATION needs the Essentials tier or higher; the pool is on Lite"
                .to_owned(),
        );
    }
    if desired.mfa_configuration == MfaMode::On
        && facts.allowed_first_auth_factors.iter().any(|f| f == "WEB_AUTHN")
        && multi_factor != Some(MultiFactorWithUserVerification)
    {
        out.push(
            "mfaConfiguration ON with WEB_AUTHN among the pool's allowed first factors needs webAuthnConfiguration.factorConfiguration MULTI_FACTOR_WITH_USER_VERIFICATION"
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rstest::rstest;

    use super::*;
    use crate::api::{FactorConfiguration, SmsConfiguration, UserVerification};

    fn settings(json: serde_json::Value) -> MfaSettings {
        serde_json::from_value(json).expect("test settings parse")
    }

    fn fields(p: &Plan) -> Vec<&str> {
        p.changes.iter().map(|c| c.field.as_str()).collect()
    }

    const SMS_ROLE: &str = "arn:aws:iam::123456789012:role/sms";
    const EUMS_ROLE: &str = "arn:aws:iam::123456789012:role/eums";
    const POOL: &str = "eu-west-1_AbC123 (eu-west-1)";

    fn token_for(desired: &MfaSettings, live: &MfaSettings) -> String {
        plan(desired, live, &Approval::none(POOL))
            .approval_token
            .expect("a disruptive change has a token")
    }

    fn with_token(token: &str) -> Approval {
        Approval {
            tokens: vec![token.to_owned()],
            ..Approval::none(POOL)
        }
    }

    /// Messages name each changed field once: a block turned on stands for its leaves; a block
    /// that stays on lists the leaves that change.
    #[test]
    fn field_names_list_a_block_or_its_leaves_not_both() {
        let live = settings(serde_json::json!({"mfaConfiguration": "OFF"}));
        let desired = settings(serde_json::json!({"mfaConfiguration": "OPTIONAL",
            "smsMfaConfiguration": {"smsAuthenticationMessage": "Code {####}",
                "smsConfiguration": {"snsCallerArn": SMS_ROLE, "externalId": "x-1"}}}));
        let p = plan(&desired, &live, &Approval::none(POOL));
        assert!(
            fields(&p).contains(&"smsMfaConfiguration.smsAuthenticationMessage"),
            "{:?}",
            fields(&p)
        );
        assert_eq!(p.changed_fields(), ["mfaConfiguration", "smsMfaConfiguration"]);
        let message = settings(serde_json::json!({"mfaConfiguration": "OPTIONAL",
            "smsMfaConfiguration": {"smsAuthenticationMessage": "New code {####}",
                "smsConfiguration": {"snsCallerArn": SMS_ROLE, "externalId": "x-1"}}}));
        let p = plan(&message, &normalise(&desired), &Approval::none(POOL));
        assert_eq!(
            p.changed_fields(),
            ["smsMfaConfiguration.smsAuthenticationMessage"]
        );
    }

    /// A token approves the change it was given for, and no other: another disruption, other
    /// target values, another pool.
    #[test]
    fn an_approval_token_approves_only_its_own_change() {
        let optional = settings(
            serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
            "webAuthnConfiguration": {"relyingPartyId": "a.example.com"}}),
        );
        let on = settings(
            serde_json::json!({"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true},
            "webAuthnConfiguration": {"relyingPartyId": "a.example.com"}}),
        );
        let new_rp = settings(
            serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
            "webAuthnConfiguration": {"relyingPartyId": "b.example.com"}}),
        );
        let other_rp = settings(
            serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
            "webAuthnConfiguration": {"relyingPartyId": "c.example.com"}}),
        );
        let off = settings(
            serde_json::json!({"mfaConfiguration": "OFF", "webAuthnConfiguration": {"relyingPartyId": "a.example.com"}}),
        );

        let to_on = token_for(&on, &optional);
        // Deterministic: the same change gives the same token, in this shape.
        assert_eq!(to_on, token_for(&on, &optional));
        assert!(
            to_on.len() == 16
                && to_on.starts_with("cmp-")
                && to_on[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{to_on}"
        );
        let p = plan(&on, &optional, &with_token(&to_on));
        assert_eq!(
            (p.action, p.approved_by),
            (Action::Apply, Some(ApprovedBy::Token))
        );

        // Another disruptive change needs its own token.
        for (name, desired, live) in [
            ("new relying party", &new_rp, &optional),
            ("another relying party", &other_rp, &optional),
            ("ON from OFF", &on, &off),
        ] {
            let p = plan(desired, live, &with_token(&to_on));
            assert_eq!(p.action, Action::AwaitApproval, "{name}");
            assert_ne!(p.approval_token.as_deref(), Some(to_on.as_str()), "{name}");
        }
        assert_ne!(token_for(&new_rp, &optional), token_for(&other_rp, &optional));
        // The same change on another pool.
        let elsewhere = Approval {
            tokens: vec![to_on.clone()],
            ..Approval::none("eu-west-1_Other (eu-west-1)")
        };
        assert_eq!(plan(&on, &optional, &elsewhere).action, Action::AwaitApproval);
        // The standing approval lets any of them through, and says so.
        let standing = Approval {
            standing: true,
            ..Approval::none(POOL)
        };
        let p = plan(&new_rp, &optional, &standing);
        assert_eq!(
            (p.action, p.approved_by),
            (Action::Apply, Some(ApprovedBy::Standing))
        );
        // No disruption: no token, nothing to approve.
        let p = plan(&optional, &on, &Approval::none(POOL));
        assert_eq!(
            (p.action, p.approval_token, p.approved_by),
            (Action::Apply, None, None)
        );
    }

    fn sms_with(configuration: serde_json::Value) -> MfaSettings {
        settings(serde_json::json!({"mfaConfiguration": "OPTIONAL",
            "smsMfaConfiguration": {"smsAuthenticationMessage": "Code {####}", "smsConfiguration": configuration}}))
    }

    /// Cognito takes SNS or End User Messaging, not both: the request carries only the one the
    /// policy names, whatever the pool has, and the other one in the pool is a change.
    #[rstest]
    #[case::sns_to_eums(
        serde_json::json!({"snsCallerArn": SMS_ROLE, "externalId": "sns-secret", "snsRegion": "eu-west-1"}),
        serde_json::json!({"eumsSms": {"callerArn": EUMS_ROLE}}),
        serde_json::json!({"eumsSms": {"callerArn": EUMS_ROLE}}),
        "smsMfaConfiguration.smsConfiguration.snsCallerArn"
    )]
    #[case::eums_to_sns(
        serde_json::json!({"eumsSms": {"callerArn": EUMS_ROLE, "externalId": "eums-secret", "originationIdentity": "+15555550100"}}),
        serde_json::json!({"snsCallerArn": SMS_ROLE}),
        serde_json::json!({"snsCallerArn": SMS_ROLE}),
        "smsMfaConfiguration.smsConfiguration.eumsSms"
    )]
    #[case::eums_settings_carried_over(
        serde_json::json!({"eumsSms": {"callerArn": EUMS_ROLE, "externalId": "eums-secret", "originationIdentity": "+15555550100"}}),
        serde_json::json!({"eumsSms": {"callerArn": "arn:aws:iam::123456789012:role/eums-2"}}),
        serde_json::json!({"eumsSms": {"callerArn": "arn:aws:iam::123456789012:role/eums-2", "externalId": "eums-secret", "originationIdentity": "+15555550100"}}),
        "smsMfaConfiguration.smsConfiguration.eumsSms.callerArn"
    )]
    fn one_sms_transport_is_sent(
        #[case] live: serde_json::Value,
        #[case] desired: serde_json::Value,
        #[case] sent: serde_json::Value,
        #[case] changed: &str,
    ) {
        let p = plan(&sms_with(desired), &sms_with(live), &Approval::none(POOL));
        assert_eq!(p.action, Action::Apply);
        assert!(fields(&p).contains(&changed), "{:?}", fields(&p));
        let request = serde_json::to_value(&p.request).unwrap();
        assert_eq!(request["smsMfaConfiguration"]["smsConfiguration"], sent);
        // Once the pool has what was sent, it is in sync.
        assert!(plan(&sms_with(desired_of(&p)), &p.request, &Approval::none(POOL)).is_in_sync());
    }

    fn desired_of(p: &Plan) -> serde_json::Value {
        serde_json::to_value(&p.request).unwrap()["smsMfaConfiguration"]["smsConfiguration"].clone()
    }

    /// Turning SMS MFA off on a pool with an SMS configuration is told in advance.
    #[test]
    fn turning_sms_off_beside_an_sms_configuration_is_warned_about() {
        let live = sms_with(serde_json::json!({"snsCallerArn": SMS_ROLE}));
        let desired = settings(
            serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        );
        let request = plan(&desired, &live, &Approval::none(POOL)).request;
        assert!(has_prerequisites(&request, &live));
        let with_sms = PoolFacts {
            sms_configuration: true,
            ..PoolFacts::default()
        };
        assert_eq!(
            warnings(&request, &live, &with_sms),
            vec![SMS_CONFIGURATION_IN_USE.to_owned()]
        );
        assert_eq!(
            warnings(&request, &live, &PoolFacts::default()),
            Vec::<String>::new()
        );
        // Keeping SMS on, or a pool without SMS MFA, warns of nothing.
        let keep = plan(&live, &live, &Approval::none(POOL)).request;
        assert_eq!(warnings(&keep, &live, &with_sms), Vec::<String>::new());
        assert_eq!(warnings(&request, &desired, &with_sms), Vec::<String>::new());
    }

    /// One case per rule of the drift comparison (see the module's documentation) and of the plan.
    #[rstest]
    // Set is a full replace: the same configuration is in sync.
    #[case::same_config_in_sync(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        &[]
    )]
    // Missing TOTP block = Enabled false.
    #[case::missing_totp_is_disabled(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {}, "softwareTokenMfaConfiguration": {"enabled": false}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {}}),
        &[]
    )]
    // Get may return Enabled: false for TOTP: that is off.
    #[case::totp_enabled_false_is_off(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {}, "softwareTokenMfaConfiguration": {"enabled": false}}),
        &[]
    )]
    #[case::totp_turned_on(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {}}),
        &["softwareTokenMfaConfiguration.enabled", "smsMfaConfiguration"]
    )]
    // Missing SMS or email block = disabled.
    #[case::sms_block_absent_is_off(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}, "smsMfaConfiguration": {}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        &["smsMfaConfiguration"]
    )]
    #[case::email_block_absent_is_off(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        &["softwareTokenMfaConfiguration.enabled", "emailMfaConfiguration"]
    )]
    // A message or subject the spec leaves out is the AWS default: not diffed.
    #[case::unset_messages_not_diffed(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {}, "emailMfaConfiguration": {}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL",
            "smsMfaConfiguration": {"smsAuthenticationMessage": "Code {####}", "smsConfiguration": {"snsCallerArn": SMS_ROLE}},
            "emailMfaConfiguration": {"message": "Code {####}", "subject": "Sign in"}}),
        &[]
    )]
    #[case::set_message_diffed(
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {"subject": "New"}}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {"message": "Code {####}", "subject": "Old"}}),
        &["emailMfaConfiguration.subject"]
    )]
    // A WebAuthn configuration the spec does not set is not drift.
    #[case::unmanaged_webauthn_not_drift(
        serde_json::json!({"mfaConfiguration": "OFF"}),
        serde_json::json!({"mfaConfiguration": "OFF", "webAuthnConfiguration": {"relyingPartyId": "a.example.com", "userVerification": "required"}}),
        &[]
    )]
    // Missing FactorConfiguration = SINGLE_FACTOR, missing UserVerification = preferred.
    #[case::webauthn_defaults(
        serde_json::json!({"mfaConfiguration": "OFF", "webAuthnConfiguration": {}}),
        serde_json::json!({"mfaConfiguration": "OFF"}),
        &[]
    )]
    #[case::webauthn_factor_changed(
        serde_json::json!({"mfaConfiguration": "OFF", "webAuthnConfiguration": {"factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}),
        serde_json::json!({"mfaConfiguration": "OFF", "webAuthnConfiguration": {"relyingPartyId": "a.example.com"}}),
        &["webAuthnConfiguration.factorConfiguration"]
    )]
    #[case::mode_changed(
        serde_json::json!({"mfaConfiguration": "OFF"}),
        serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        &["mfaConfiguration", "softwareTokenMfaConfiguration.enabled"]
    )]
    fn drift_comparison(
        #[case] desired: serde_json::Value,
        #[case] live: serde_json::Value,
        #[case] expected: &[&str],
    ) {
        let p = plan(&settings(desired), &settings(live), &Approval::none(POOL));
        assert_eq!(fields(&p), expected);
        assert_eq!(p.action == Action::InSync, expected.is_empty());
    }

    #[test]
    fn unsolicited_single_factor_webauthn_is_dropped_and_not_sent() {
        // Get may return WebAuthnConfiguration{FactorConfiguration: SINGLE_FACTOR} that nobody set.
        let live = settings(
            serde_json::json!({"mfaConfiguration": "OFF", "webAuthnConfiguration": {"factorConfiguration": "SINGLE_FACTOR"}}),
        );
        assert_eq!(normalise(&live).web_authn_configuration, None);
        let desired = settings(
            serde_json::json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
        );
        assert_eq!(
            plan(&desired, &live, &Approval::none(POOL))
                .request
                .web_authn_configuration,
            None
        );
    }

    #[test]
    fn request_is_complete_and_carries_unset_values_over() {
        let desired = settings(serde_json::json!({
            "mfaConfiguration": "OPTIONAL",
            "smsMfaConfiguration": {"smsAuthenticationMessage": "New {####}"},
            "emailMfaConfiguration": {"subject": "Sign-in code"}
        }));
        let live = settings(serde_json::json!({
            "mfaConfiguration": "ON",
            "softwareTokenMfaConfiguration": {"enabled": true},
            "smsMfaConfiguration": {"smsAuthenticationMessage": "Old {####}",
                "smsConfiguration": {"snsCallerArn": SMS_ROLE, "externalId": "ext", "snsRegion": "eu-west-1"}},
            "emailMfaConfiguration": {"message": "Mail {####}", "subject": "Old subject"},
            "webAuthnConfiguration": {"relyingPartyId": "auth.example.com", "userVerification": "required"}
        }));
        let p = plan(&desired, &live, &Approval::none(POOL));
        let r = &p.request;
        assert_eq!(r.mfa_configuration, MfaMode::Optional);
        // TOTP is turned off explicitly, never by omission.
        assert_eq!(
            r.software_token_mfa_configuration,
            Some(SoftwareTokenMfa { enabled: false })
        );
        let sms = r.sms_mfa_configuration.as_ref().expect("SMS stays on");
        assert_eq!(sms.sms_authentication_message.as_deref(), Some("New {####}"));
        assert_eq!(
            sms.sms_configuration,
            Some(SmsConfiguration {
                sns_caller_arn: Some(SMS_ROLE.into()),
                external_id: Some("ext".into()),
                sns_region: Some("eu-west-1".into()),
                eums_sms: None
            })
        );
        let email = r.email_mfa_configuration.as_ref().expect("email stays on");
        assert_eq!(email.message.as_deref(), Some("Mail {####}"));
        assert_eq!(email.subject.as_deref(), Some("Sign-in code"));
        let w = r.web_authn_configuration.as_ref().expect("passkeys carried over");
        assert_eq!(w.relying_party_id.as_deref(), Some("auth.example.com"));
        assert_eq!(w.user_verification, UserVerification::Required);
    }

    #[test]
    fn off_request_has_no_factor_blocks_but_keeps_passkeys() {
        let desired = settings(serde_json::json!({"mfaConfiguration": "OFF"}));
        let live = settings(serde_json::json!({"mfaConfiguration": "OPTIONAL",
            "softwareTokenMfaConfiguration": {"enabled": true}, "emailMfaConfiguration": {},
            "webAuthnConfiguration": {"relyingPartyId": "auth.example.com"}}));
        let r = plan(&desired, &live, &Approval::none(POOL)).request;
        assert_eq!(r.software_token_mfa_configuration, None);
        assert_eq!(r.sms_mfa_configuration, None);
        assert_eq!(r.email_mfa_configuration, None);
        assert!(r.web_authn_configuration.is_some());
    }

    #[test]
    fn external_ids_are_redacted_in_changes() {
        let desired = settings(serde_json::json!({"mfaConfiguration": "OPTIONAL",
            "smsMfaConfiguration": {"smsConfiguration": {"externalId": "new-secret"}}}));
        let live = settings(serde_json::json!({"mfaConfiguration": "OPTIONAL",
            "smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": SMS_ROLE, "externalId": "old-secret"}}}));
        let p = plan(&desired, &live, &Approval::none(POOL));
        assert_eq!(fields(&p), ["smsMfaConfiguration.smsConfiguration.externalId"]);
        let shown = format!("{:?} {}", p.changes, serde_json::to_string(&p).unwrap());
        assert!(!shown.contains("secret"), "{shown}");
        // The request still carries the real value.
        let c = p
            .request
            .sms_mfa_configuration
            .unwrap()
            .sms_configuration
            .unwrap();
        assert_eq!(c.external_id.as_deref(), Some("new-secret"));
    }

    const TOTP_OPTIONAL: &str =
        r#"{"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}"#;

    /// The guardrail: which changes are disruptive, and that approval lets them through.
    #[rstest]
    #[case::optional_to_on(
        TOTP_OPTIONAL,
        r#"{"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}}"#,
        "MfaRequired"
    )]
    #[case::off_to_on(
        r#"{"mfaConfiguration": "OFF"}"#,
        r#"{"mfaConfiguration": "ON", "smsMfaConfiguration": {}}"#,
        "MfaRequired"
    )]
    #[case::last_factor_removed(
        r#"{"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {}}"#,
        r#"{"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}"#,
        "FactorsRemoved"
    )]
    #[case::relying_party_changed(
        r#"{"mfaConfiguration": "OFF", "webAuthnConfiguration": {"relyingPartyId": "old.example.com"}}"#,
        r#"{"mfaConfiguration": "OFF", "webAuthnConfiguration": {"relyingPartyId": "new.example.com"}}"#,
        "RelyingPartyChanged"
    )]
    fn disruptive_changes_wait_for_approval(#[case] live: &str, #[case] desired: &str, #[case] kind: &str) {
        let (live, desired) = (
            settings(serde_json::from_str(live).unwrap()),
            settings(serde_json::from_str(desired).unwrap()),
        );
        let waiting = plan(&desired, &live, &Approval::none(POOL));
        assert_eq!(waiting.action, Action::AwaitApproval);
        let kinds: Vec<String> = waiting
            .disruptions
            .iter()
            .map(|d| {
                serde_json::to_value(d).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(kinds.contains(&kind.to_owned()), "{kinds:?}");
        let approved = plan(&desired, &live, &Approval::standing());
        assert_eq!(approved.action, Action::Apply);
        assert_eq!(approved.request, waiting.request);
    }

    /// Changes that are not disruptive go through without approval.
    #[rstest]
    #[case::on_to_optional(
        r#"{"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}}"#,
        TOTP_OPTIONAL
    )]
    #[case::off_to_optional(r#"{"mfaConfiguration": "OFF"}"#, TOTP_OPTIONAL)]
    #[case::factor_added(TOTP_OPTIONAL, r#"{"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}, "smsMfaConfiguration": {}}"#)]
    #[case::one_of_two_factors_removed(
        r#"{"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}, "smsMfaConfiguration": {}}"#,
        r#"{"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}}"#
    )]
    #[case::mfa_turned_off(TOTP_OPTIONAL, r#"{"mfaConfiguration": "OFF"}"#)]
    #[case::first_relying_party(
        r#"{"mfaConfiguration": "OFF"}"#,
        r#"{"mfaConfiguration": "OFF", "webAuthnConfiguration": {"relyingPartyId": "a.example.com"}}"#
    )]
    fn safe_changes_apply_without_approval(#[case] live: &str, #[case] desired: &str) {
        let p = plan(
            &settings(serde_json::from_str(desired).unwrap()),
            &settings(serde_json::from_str(live).unwrap()),
            &Approval::none(POOL),
        );
        assert_eq!(p.action, Action::Apply, "{:?}", p.disruptions);
        assert!(p.disruptions.is_empty());
    }

    #[rstest]
    #[case::email_on_lite(
        r#"{"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {}}"#,
        PoolFacts { tier: Some("LITE".into()), email_sending_account: Some("DEVELOPER".into()), ..Default::default() },
        1
    )]
    #[case::email_without_ses(
        r#"{"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {}}"#,
        PoolFacts { tier: Some("ESSENTIALS".into()), email_sending_account: Some("COGNITO_DEFAULT".into()), ..Default::default() },
        1
    )]
    #[case::email_ready(
        r#"{"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {}}"#,
        PoolFacts { tier: Some("ESSENTIALS".into()), email_sending_account: Some("DEVELOPER".into()), ..Default::default() },
        0
    )]
    #[case::multi_factor_passkey_on_lite(
        r#"{"mfaConfiguration": "OFF", "webAuthnConfiguration": {"factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}"#,
        PoolFacts { tier: Some("LITE".into()), ..Default::default() },
        1
    )]
    #[case::on_with_passkey_first_factor(
        r#"{"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}}"#,
        PoolFacts { allowed_first_auth_factors: vec!["PASSWORD".into(), "WEB_AUTHN".into()], ..Default::default() },
        1
    )]
    #[case::on_with_multi_factor_passkey(
        r#"{"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}, "webAuthnConfiguration": {"factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}"#,
        PoolFacts { allowed_first_auth_factors: vec!["WEB_AUTHN".into()], tier: Some("PLUS".into()), ..Default::default() },
        0
    )]
    #[case::unknown_facts_do_not_block(
        r#"{"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {}}"#,
        PoolFacts::default(),
        0
    )]
    fn prerequisites(#[case] request: &str, #[case] facts: PoolFacts, #[case] missing: usize) {
        let request = settings(serde_json::from_str(request).unwrap());
        assert!(has_prerequisites(&request, &MfaSettings::default()));
        assert_eq!(missing_prerequisites(&request, &facts).len(), missing);
    }

    // --- Properties ----------------------------------------------------------------------------

    fn opt_text(prefix: &'static str) -> impl Strategy<Value = Option<String>> {
        proptest::option::of(
            proptest::sample::select(vec!["a", "b"]).prop_map(move |s| format!("{prefix} {s} {{####}}")),
        )
    }

    fn sms() -> impl Strategy<Value = SmsMfa> {
        (
            opt_text("sms"),
            proptest::option::of((
                proptest::option::of(proptest::sample::select(vec![
                    SMS_ROLE,
                    "arn:aws:iam::123456789012:role/other",
                ])),
                proptest::option::of(proptest::sample::select(vec!["x1", "x2"])),
                proptest::option::of(proptest::sample::select(vec!["eu-west-1", "us-east-1"])),
            )),
        )
            .prop_map(|(message, conf)| SmsMfa {
                sms_authentication_message: message,
                sms_configuration: conf.map(|(arn, ext, region)| SmsConfiguration {
                    sns_caller_arn: arn.map(Into::into),
                    external_id: ext.map(Into::into),
                    sns_region: region.map(Into::into),
                    eums_sms: None,
                }),
            })
    }

    fn email() -> impl Strategy<Value = EmailMfa> {
        (
            opt_text("mail"),
            proptest::option::of(proptest::sample::select(vec!["S1", "S2"])),
        )
            .prop_map(|(message, subject)| EmailMfa {
                message,
                subject: subject.map(Into::into),
            })
    }

    fn web_authn() -> impl Strategy<Value = WebAuthn> {
        (
            proptest::option::of(proptest::sample::select(vec!["a.example.com", "b.example.com"])),
            proptest::bool::ANY,
            proptest::bool::ANY,
        )
            .prop_map(|(rp, required, multi)| WebAuthn {
                relying_party_id: rp.map(Into::into),
                user_verification: if required {
                    UserVerification::Required
                } else {
                    UserVerification::Preferred
                },
                factor_configuration: if multi {
                    FactorConfiguration::MultiFactorWithUserVerification
                } else {
                    FactorConfiguration::SingleFactor
                },
            })
    }

    /// Any configuration Cognito could return.
    fn live() -> impl Strategy<Value = MfaSettings> {
        (
            proptest::sample::select(vec![MfaMode::Off, MfaMode::On, MfaMode::Optional]),
            proptest::option::of(proptest::bool::ANY),
            proptest::option::of(sms()),
            proptest::option::of(email()),
            proptest::option::of(web_authn()),
        )
            .prop_map(|(mode, totp, sms, email, web_authn)| {
                let factors = mode != MfaMode::Off;
                MfaSettings {
                    mfa_configuration: mode,
                    software_token_mfa_configuration: totp
                        .filter(|_| factors)
                        .map(|enabled| SoftwareTokenMfa { enabled }),
                    sms_mfa_configuration: sms.filter(|_| factors),
                    email_mfa_configuration: email.filter(|_| factors),
                    web_authn_configuration: web_authn,
                }
            })
    }

    /// Any valid spec.
    fn desired() -> impl Strategy<Value = MfaSettings> {
        live().prop_filter("valid specs only", |s| {
            let factors = !enabled_factors(s).is_empty();
            if s.mfa_configuration == MfaMode::Off {
                s.software_token_mfa_configuration.is_none() && !factors
            } else {
                factors
            }
        })
    }

    /// What GetUserPoolMfaConfig returns after SetUserPoolMfaConfig(request): a disabled TOTP
    /// factor left out, and a default passkey block that nobody set (as Cognito does).
    fn cognito_after(request: &MfaSettings) -> MfaSettings {
        let mut out = request.clone();
        if out
            .software_token_mfa_configuration
            .as_ref()
            .is_some_and(|t| !t.enabled)
        {
            out.software_token_mfa_configuration = None;
        }
        if out.web_authn_configuration.is_none() {
            out.web_authn_configuration = Some(WebAuthn::default());
        }
        out
    }

    proptest! {
        #[test]
        fn applying_the_plan_converges(desired in desired(), live in live()) {
            let first = plan(&desired, &live, &Approval::standing());
            let after = cognito_after(&first.request);
            let second = plan(&desired, &after, &Approval::standing());
            prop_assert!(second.is_in_sync(), "left: {:?}", second.changes);
            prop_assert_eq!(second.action, Action::InSync);
        }

        #[test]
        fn an_apply_never_alters_what_the_policy_does_not_mention(desired in desired(), live in live()) {
            let request = plan(&desired, &live, &Approval::standing()).request;
            let live = normalise(&live);
            // Passkeys the policy does not mention stay as they are.
            if desired.web_authn_configuration.is_none() {
                prop_assert_eq!(&normalise(&request).web_authn_configuration, &live.web_authn_configuration);
            }
            // Unset messages and SMS settings of a factor that stays on stay as they are.
            if let (Some(d), Some(l), Some(r)) = (&desired.sms_mfa_configuration, &live.sms_mfa_configuration, &request.sms_mfa_configuration) {
                if d.sms_authentication_message.is_none() {
                    prop_assert_eq!(&r.sms_authentication_message, &l.sms_authentication_message);
                }
                if d.sms_configuration.is_none() {
                    prop_assert_eq!(&r.sms_configuration, &l.sms_configuration);
                }
            }
            if let (Some(d), Some(l), Some(r)) = (&desired.email_mfa_configuration, &live.email_mfa_configuration, &request.email_mfa_configuration) {
                if d.message.is_none() { prop_assert_eq!(&r.message, &l.message); }
                if d.subject.is_none() { prop_assert_eq!(&r.subject, &l.subject); }
            }
        }

        #[test]
        fn requests_are_complete_and_acceptable_to_cognito(desired in desired(), live in live()) {
            let r = plan(&desired, &live, &Approval::standing()).request;
            prop_assert_eq!(r.mfa_configuration, desired.mfa_configuration);
            if r.mfa_configuration == MfaMode::Off {
                // OFF with any factor block is rejected by Cognito.
                prop_assert!(r.software_token_mfa_configuration.is_none() && r.sms_mfa_configuration.is_none() && r.email_mfa_configuration.is_none());
            } else {
                // TOTP is always explicit, and at least one factor is on.
                prop_assert!(r.software_token_mfa_configuration.is_some());
                prop_assert!(!enabled_factors(&r).is_empty());
            }
        }

        #[test]
        fn in_sync_exactly_when_nothing_the_policy_says_differs(desired in desired()) {
            // A pool that already is what the request says is in sync, whatever it was before.
            let p = plan(&desired, &desired, &Approval::none(POOL));
            prop_assert!(p.is_in_sync(), "{:?}", p.changes);
        }
    }
}
