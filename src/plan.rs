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
        self.changes.iter().map(|c| c.field.clone()).collect()
    }
}

/// Plans one policy against one pool.
///
/// `desired` is the policy's settings (assumed valid, see [`crate::api::validate`]); `live` is
/// what GetUserPoolMfaConfig returned (normalised here); `approved` is whether the object carries
/// the approval annotation.
pub fn plan(desired: &MfaSettings, live: &MfaSettings, approved: bool) -> Plan {
    let live = normalise(live);
    let changes = diff(desired, &live);
    let request = request(desired, &live);
    let disruptions = if changes.is_empty() {
        Vec::new()
    } else {
        disruptions(&live, &normalise(&request))
    };
    let action = if changes.is_empty() {
        Action::InSync
    } else if !disruptions.is_empty() && !approved {
        Action::AwaitApproval
    } else {
        Action::Apply
    };
    Plan {
        action,
        changes,
        disruptions,
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
        .map(|d| merged(live.sms_mfa_configuration.as_ref(), d));
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
}

/// Whether checking prerequisites is worth a DescribeUserPool call for these settings.
pub fn has_prerequisites(desired: &MfaSettings) -> bool {
    desired.email_mfa_configuration.is_some()
        || desired.web_authn_configuration.as_ref().is_some_and(|w| {
            w.factor_configuration == crate::api::FactorConfiguration::MultiFactorWithUserVerification
        })
        || desired.mfa_configuration == MfaMode::On
}

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
        let p = plan(&settings(desired), &settings(live), false);
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
        assert_eq!(plan(&desired, &live, false).request.web_authn_configuration, None);
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
        let p = plan(&desired, &live, false);
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
        let r = plan(&desired, &live, false).request;
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
        let p = plan(&desired, &live, false);
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
        let waiting = plan(&desired, &live, false);
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
        let approved = plan(&desired, &live, true);
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
            false,
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
        assert!(has_prerequisites(&request));
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
            let first = plan(&desired, &live, true);
            let after = cognito_after(&first.request);
            let second = plan(&desired, &after, true);
            prop_assert!(second.is_in_sync(), "left: {:?}", second.changes);
            prop_assert_eq!(second.action, Action::InSync);
        }

        #[test]
        fn an_apply_never_alters_what_the_policy_does_not_mention(desired in desired(), live in live()) {
            let request = plan(&desired, &live, true).request;
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
            let r = plan(&desired, &live, true).request;
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
            let p = plan(&desired, &desired, false);
            prop_assert!(p.is_in_sync(), "{:?}", p.changes);
        }
    }
}
