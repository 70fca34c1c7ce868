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
#[serde(rename_all = "camelCase", tag = "kind")]
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
