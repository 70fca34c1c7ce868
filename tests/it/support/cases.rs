//! Specs that break one rule each, as (name, patch onto a valid spec, the field named). The
//! integration tests check them against admission and the operator's validation; the
//! end-to-end tests against a real API server and the running operator.

use serde_json::{Value, json};

/// A valid spec with `patch` merged in (JSON merge patch: null removes a field).
pub fn spec_with(patch: Value) -> Value {
    let mut spec = json!({"userPoolId": "eu-west-1_AbC123", "mfaConfiguration": "OPTIONAL",
                          "softwareTokenMfaConfiguration": {"enabled": true}});
    merge(&mut spec, patch);
    spec
}

fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in fields {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other,
    }
}

/// A string of `n` characters.
pub fn long(n: usize) -> String {
    "x".repeat(n)
}

const ROLE: &str = "arn:aws:iam::123456789012:role/cognito-sms";

/// Valid specs, one per kind of setup and at every limit, as (name, spec).
pub fn valid_specs() -> Vec<(&'static str, Value)> {
    [
        ("totp_optional", json!({})),
        ("off_alone", json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null})),
        (
            "off_with_passkeys",
            json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null,
                   "webAuthnConfiguration": {"relyingPartyId": "auth.example.com"}}),
        ),
        ("on_with_totp", json!({"mfaConfiguration": "ON"})),
        (
            "sms_only",
            json!({"softwareTokenMfaConfiguration": null, "smsMfaConfiguration": {
                "smsAuthenticationMessage": "Your code is {####}",
                "smsConfiguration": {"snsCallerArn": ROLE, "externalId": "ext-1", "snsRegion": "eu-west-1"}}}),
        ),
        (
            "sms_with_end_user_messaging",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {
                "callerArn": ROLE, "originationIdentity": "+15555550100", "region": "eu-west-1"}}}}),
        ),
        (
            "sms_with_end_user_messaging_in_a_replica_region",
            json!({"region": "us-east-1", "smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {
                "callerArn": ROLE, "region": "us-east-1"}}}}),
        ),
        (
            "email_only",
            json!({"softwareTokenMfaConfiguration": null, "emailMfaConfiguration": {
                "message": "Bonjour, votre code est {####} — merci !", "subject": "Code de connexion ✓"}}),
        ),
        (
            "totp_off_but_email_on",
            json!({"softwareTokenMfaConfiguration": {"enabled": false}, "emailMfaConfiguration": {}}),
        ),
        (
            "passkeys_as_mfa",
            json!({"webAuthnConfiguration": {"relyingPartyId": "auth.example.com",
                   "userVerification": "required", "factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}),
        ),
        ("replica_region", json!({"region": "us-east-1"})),
        (
            "cross_account",
            json!({"credentials": {"roleArn": "arn:aws:iam::210987654321:role/mfa-operator", "externalId": "abc-123"}}),
        ),
        ("observe_restore", json!({"managementPolicy": "Observe", "deletionPolicy": "Restore"})),
        (
            "longest_limits",
            json!({"userPoolId": format!("eu-west-1_{}", "A".repeat(45)),
                   "smsMfaConfiguration": {"smsAuthenticationMessage": format!("{{####}}{}", long(134))},
                   "emailMfaConfiguration": {"message": format!("{{####}}{}", long(19_994)), "subject": long(140)},
                   "webAuthnConfiguration": {"relyingPartyId": long(127)}}),
        ),
    ]
    .into_iter()
    .map(|(name, patch)| (name, spec_with(patch)))
    .collect()
}

/// One case per rule and limit of the API.
pub fn invalid_specs() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("pool_id_empty", json!({"userPoolId": ""}), "spec.userPoolId"),
        (
            "pool_id_without_region",
            json!({"userPoolId": "AbC123"}),
            "spec.userPoolId",
        ),
        (
            "pool_id_too_long",
            json!({"userPoolId": format!("eu-west-1_{}", "A".repeat(46))}),
            "spec.userPoolId",
        ),
        (
            "pool_id_bad_character",
            json!({"userPoolId": "eu-west-1_Ab$1"}),
            "spec.userPoolId",
        ),
        ("region_too_short", json!({"region": "eu"}), "spec.region"),
        (
            "region_not_a_region",
            json!({"region": "EU-WEST-1"}),
            "spec.region",
        ),
        (
            "off_with_totp_disabled",
            json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": {"enabled": false}}),
            "spec.mfaConfiguration",
        ),
        (
            "off_with_sms",
            json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null, "smsMfaConfiguration": {}}),
            "spec.mfaConfiguration",
        ),
        (
            "off_with_email",
            json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null, "emailMfaConfiguration": {}}),
            "spec.mfaConfiguration",
        ),
        (
            "on_without_factor",
            json!({"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": null}),
            "spec.mfaConfiguration",
        ),
        (
            "optional_with_totp_disabled_only",
            json!({"softwareTokenMfaConfiguration": {"enabled": false}}),
            "spec.mfaConfiguration",
        ),
        (
            "optional_with_passkey_only",
            json!({"softwareTokenMfaConfiguration": null,
    "webAuthnConfiguration": {"factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}),
            "spec.mfaConfiguration",
        ),
        (
            "sms_message_too_short",
            json!({"smsMfaConfiguration": {"smsAuthenticationMessage": "{###}"}}),
            "spec.smsMfaConfiguration.smsAuthenticationMessage",
        ),
        (
            "sms_message_without_code",
            json!({"smsMfaConfiguration": {"smsAuthenticationMessage": "Your code"}}),
            "spec.smsMfaConfiguration.smsAuthenticationMessage",
        ),
        (
            "sms_message_too_long",
            json!({"smsMfaConfiguration": {"smsAuthenticationMessage": format!("{{####}}{}", long(135))}}),
            "spec.smsMfaConfiguration.smsAuthenticationMessage",
        ),
        (
            "sns_role_too_short",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": "arn:aws:iam::1:r/x"}}}),
            "spec.smsMfaConfiguration.smsConfiguration.snsCallerArn",
        ),
        (
            "sns_role_not_an_arn",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": "role/cognito-sms-sender"}}}),
            "spec.smsMfaConfiguration.smsConfiguration.snsCallerArn",
        ),
        (
            "sms_external_id_too_long",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"externalId": long(131_073)}}}),
            "spec.smsMfaConfiguration.smsConfiguration.externalId",
        ),
        (
            "sns_region_too_short",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"snsRegion": "eu"}}}),
            "spec.smsMfaConfiguration.smsConfiguration.snsRegion",
        ),
        (
            "eums_role_not_an_arn",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {"callerArn": "not an arn, not at all"}}}}),
            "spec.smsMfaConfiguration.smsConfiguration.eumsSms.callerArn",
        ),
        (
            "sns_and_end_user_messaging_together",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": ROLE, "eumsSms": {"callerArn": ROLE}}}}),
            "spec.smsMfaConfiguration.smsConfiguration.eumsSms",
        ),
        (
            "end_user_messaging_in_another_region",
            json!({"smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {"callerArn": ROLE, "region": "us-east-1"}}}}),
            "spec.smsMfaConfiguration.smsConfiguration.eumsSms.region",
        ),
        (
            "end_user_messaging_not_in_the_replica_region",
            json!({"region": "us-east-1", "smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {"callerArn": ROLE, "region": "eu-west-1"}}}}),
            "spec.smsMfaConfiguration.smsConfiguration.eumsSms.region",
        ),
        (
            "email_message_without_code",
            json!({"emailMfaConfiguration": {"message": "Hello there"}}),
            "spec.emailMfaConfiguration.message",
        ),
        (
            "email_message_too_short",
            json!({"emailMfaConfiguration": {"message": "{###}"}}),
            "spec.emailMfaConfiguration.message",
        ),
        (
            "email_message_too_long",
            json!({"emailMfaConfiguration": {"message": format!("{{####}}{}", long(19_995))}}),
            "spec.emailMfaConfiguration.message",
        ),
        (
            "email_message_control_character",
            json!({"emailMfaConfiguration": {"message": "Code \u{7} {####}"}}),
            "spec.emailMfaConfiguration.message",
        ),
        (
            "email_subject_empty",
            json!({"emailMfaConfiguration": {"subject": ""}}),
            "spec.emailMfaConfiguration.subject",
        ),
        (
            "email_subject_too_long",
            json!({"emailMfaConfiguration": {"subject": long(141)}}),
            "spec.emailMfaConfiguration.subject",
        ),
        (
            "email_subject_control_character",
            json!({"emailMfaConfiguration": {"subject": "Code\u{7}"}}),
            "spec.emailMfaConfiguration.subject",
        ),
        (
            "relying_party_empty",
            json!({"webAuthnConfiguration": {"relyingPartyId": ""}}),
            "spec.webAuthnConfiguration.relyingPartyId",
        ),
        (
            "relying_party_too_long",
            json!({"webAuthnConfiguration": {"relyingPartyId": long(128)}}),
            "spec.webAuthnConfiguration.relyingPartyId",
        ),
        (
            "role_arn_short_account",
            json!({"credentials": {"roleArn": "arn:aws:iam::123:role/mfa-operator"}}),
            "spec.credentials.roleArn",
        ),
        (
            "role_arn_not_a_role",
            json!({"credentials": {"roleArn": "arn:aws:iam::123456789012:user/mfa"}}),
            "spec.credentials.roleArn",
        ),
        (
            "sts_external_id_too_short",
            json!({"credentials": {"roleArn": "arn:aws:iam::123456789012:role/x", "externalId": "a"}}),
            "spec.credentials.externalId",
        ),
        (
            "sts_external_id_bad_character",
            json!({"credentials": {"roleArn": "arn:aws:iam::123456789012:role/x", "externalId": "has space"}}),
            "spec.credentials.externalId",
        ),
    ]
}

/// Unicode that the engines involved read differently: Rust's `regex` (the operator's
/// validation), Go's RE2 (the API server's schema) and Java's (AWS): their `\s`, `\w` and `.`.
const NBSP: char = '\u{a0}';
const EM_SPACE: char = '\u{2003}';
const IDEOGRAPHIC_SPACE: char = '\u{3000}';
const LINE_SEPARATOR: char = '\u{2028}';
const PARAGRAPH_SEPARATOR: char = '\u{2029}';
const NEXT_LINE: char = '\u{85}';
const EMOJI: char = '🔐';
const COMBINING_ACUTE: char = '\u{301}';
const BELL: char = '\u{7}';
const VERTICAL_TAB: char = '\u{b}';

/// One case per patterned field and kind of character, as (name, patch, field, valid): the same
/// verdict is expected from the Rust validation, the API server and AWS.
pub fn unicode_cases() -> Vec<(String, Value, &'static str, bool)> {
    let kinds = [
        ("nbsp", NBSP),
        ("em_space", EM_SPACE),
        ("ideographic_space", IDEOGRAPHIC_SPACE),
        ("line_separator", LINE_SEPARATOR),
        ("paragraph_separator", PARAGRAPH_SEPARATOR),
        ("next_line", NEXT_LINE),
        ("emoji", EMOJI),
        ("combining_mark", COMBINING_ACUTE),
        ("control", BELL),
        ("vertical_tab", VERTICAL_TAB),
        ("newline", '\n'),
        ("tab", '\t'),
    ];
    // (field, the patch with the character in it, which characters are valid there)
    type Patch = fn(char) -> Value;
    let fields: [(&'static str, Patch, &[char]); 9] = [
        (
            "spec.userPoolId",
            |c| json!({"userPoolId": format!("eu-west-1_Ab{c}C1")}),
            &[],
        ),
        ("spec.region", |c| json!({"region": format!("eu-west-{c}1")}), &[]),
        (
            "spec.smsMfaConfiguration.smsAuthenticationMessage",
            |c| json!({"smsMfaConfiguration": {"smsAuthenticationMessage": format!("Code{c}{{####}}")}}),
            // Java's `.`: anything but a line terminator.
            &[
                NBSP,
                EM_SPACE,
                IDEOGRAPHIC_SPACE,
                EMOJI,
                COMBINING_ACUTE,
                BELL,
                VERTICAL_TAB,
                '\t',
            ],
        ),
        (
            "spec.smsMfaConfiguration.smsConfiguration.snsCallerArn",
            |c| json!({"smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": format!("{ROLE}{c}x")}}}),
            &[],
        ),
        (
            "spec.smsMfaConfiguration.smsConfiguration.eumsSms.callerArn",
            |c| json!({"smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {"callerArn": format!("{ROLE}{c}x")}}}}),
            &[],
        ),
        (
            "spec.emailMfaConfiguration.message",
            |c| json!({"emailMfaConfiguration": {"message": format!("Code{c}{{####}}")}}),
            // Letters, marks, symbols, numbers, punctuation and Java's ASCII `\s`.
            &[EMOJI, COMBINING_ACUTE, VERTICAL_TAB, '\n', '\t'],
        ),
        (
            "spec.emailMfaConfiguration.subject",
            |c| json!({"emailMfaConfiguration": {"subject": format!("Sign-in{c}code")}}),
            &[EMOJI, COMBINING_ACUTE, VERTICAL_TAB, '\n', '\t'],
        ),
        (
            "spec.credentials.roleArn",
            |c| json!({"credentials": {"roleArn": format!("arn:aws:iam::123456789012:role/x{c}y")}}),
            &[],
        ),
        (
            "spec.credentials.externalId",
            |c| json!({"credentials": {"roleArn": "arn:aws:iam::123456789012:role/x", "externalId": format!("ab{c}cd")}}),
            &[],
        ),
    ];
    let mut out = Vec::new();
    for (field, patch, valid) in fields {
        let short = field.rsplit('.').next().unwrap_or(field);
        for (kind, c) in kinds {
            out.push((format!("{short}_{kind}"), patch(c), field, valid.contains(&c)));
        }
    }
    out
}
