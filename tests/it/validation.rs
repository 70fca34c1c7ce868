//! Every rule of the API, checked twice: by admission (the CRD's schema and CEL rules, as the API
//! server applies them) and by the Rust validation that the controller and the offline commands
//! run. Both must reject the same inputs, naming the same field.

use cognito_mfa_operator::api::{self, CognitoMfaPolicySpec};
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::admission;

fn policy(spec: &Value) -> Value {
    json!({"apiVersion": "cognitomfa.io/v1alpha1", "kind": "CognitoMfaPolicy",
           "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
}

/// A valid spec with `patch` merged in (JSON merge patch: null removes a field).
fn spec_with(patch: Value) -> Value {
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

const ROLE: &str = "arn:aws:iam::123456789012:role/cognito-sms";

fn long(n: usize) -> String {
    "x".repeat(n)
}

#[rstest]
#[case::totp_optional(json!({}))]
#[case::off_alone(json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null}))]
#[case::off_with_passkeys(json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null,
    "webAuthnConfiguration": {"relyingPartyId": "auth.example.com"}}))]
#[case::on_with_totp(json!({"mfaConfiguration": "ON"}))]
#[case::sms_only(json!({"softwareTokenMfaConfiguration": null, "smsMfaConfiguration": {
    "smsAuthenticationMessage": "Your code is {####}",
    "smsConfiguration": {"snsCallerArn": ROLE, "externalId": "ext-1", "snsRegion": "eu-west-1"}}}))]
#[case::sms_with_end_user_messaging(json!({"smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {
    "callerArn": ROLE, "originationIdentity": "+15555550100", "region": "us-east-1"}}}}))]
#[case::email_only(json!({"softwareTokenMfaConfiguration": null, "emailMfaConfiguration": {
    "message": "Bonjour, votre code est {####} — merci !", "subject": "Code de connexion ✓"}}))]
#[case::totp_off_but_email_on(json!({"softwareTokenMfaConfiguration": {"enabled": false}, "emailMfaConfiguration": {}}))]
#[case::passkeys_as_mfa(json!({"webAuthnConfiguration": {"relyingPartyId": "auth.example.com",
    "userVerification": "required", "factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}))]
#[case::replica_region(json!({"region": "us-east-1"}))]
#[case::cross_account(json!({"credentials": {"roleArn": "arn:aws:iam::210987654321:role/mfa-operator", "externalId": "abc-123"}}))]
#[case::observe_restore(json!({"managementPolicy": "Observe", "deletionPolicy": "Restore"}))]
#[case::longest_limits(json!({"userPoolId": format!("eu-west-1_{}", "A".repeat(45)),
    "smsMfaConfiguration": {"smsAuthenticationMessage": format!("{{####}}{}", long(134))},
    "emailMfaConfiguration": {"message": format!("{{####}}{}", long(19_994)), "subject": long(140)},
    "webAuthnConfiguration": {"relyingPartyId": long(127)}}))]
fn valid_specs_pass_admission_and_validation(#[case] patch: Value) {
    let spec = spec_with(patch);
    assert_eq!(admission::errors(&policy(&spec), None), vec![], "admission");
    let typed: CognitoMfaPolicySpec = serde_json::from_value(spec).unwrap();
    assert_eq!(api::validate(&typed), vec![], "validation");
}

#[rstest]
#[case::pool_id_empty(json!({"userPoolId": ""}), "spec.userPoolId")]
#[case::pool_id_without_region(json!({"userPoolId": "AbC123"}), "spec.userPoolId")]
#[case::pool_id_too_long(json!({"userPoolId": format!("eu-west-1_{}", "A".repeat(46))}), "spec.userPoolId")]
#[case::pool_id_bad_character(json!({"userPoolId": "eu-west-1_Ab$1"}), "spec.userPoolId")]
#[case::region_too_short(json!({"region": "eu"}), "spec.region")]
#[case::region_not_a_region(json!({"region": "EU-WEST-1"}), "spec.region")]
#[case::off_with_totp_disabled(json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": {"enabled": false}}), "spec.mfaConfiguration")]
#[case::off_with_sms(json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null, "smsMfaConfiguration": {}}), "spec.mfaConfiguration")]
#[case::off_with_email(json!({"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null, "emailMfaConfiguration": {}}), "spec.mfaConfiguration")]
#[case::on_without_factor(json!({"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": null}), "spec.mfaConfiguration")]
#[case::optional_with_totp_disabled_only(json!({"softwareTokenMfaConfiguration": {"enabled": false}}), "spec.mfaConfiguration")]
#[case::optional_with_passkey_only(json!({"softwareTokenMfaConfiguration": null,
    "webAuthnConfiguration": {"factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}), "spec.mfaConfiguration")]
#[case::sms_message_too_short(json!({"smsMfaConfiguration": {"smsAuthenticationMessage": "{###}"}}), "spec.smsMfaConfiguration.smsAuthenticationMessage")]
#[case::sms_message_without_code(json!({"smsMfaConfiguration": {"smsAuthenticationMessage": "Your code"}}), "spec.smsMfaConfiguration.smsAuthenticationMessage")]
#[case::sms_message_too_long(json!({"smsMfaConfiguration": {"smsAuthenticationMessage": format!("{{####}}{}", long(135))}}), "spec.smsMfaConfiguration.smsAuthenticationMessage")]
#[case::sns_role_too_short(json!({"smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": "arn:aws:iam::1:r/x"}}}), "spec.smsMfaConfiguration.smsConfiguration.snsCallerArn")]
#[case::sns_role_not_an_arn(json!({"smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": "role/cognito-sms-sender"}}}), "spec.smsMfaConfiguration.smsConfiguration.snsCallerArn")]
#[case::sms_external_id_too_long(json!({"smsMfaConfiguration": {"smsConfiguration": {"externalId": long(131_073)}}}), "spec.smsMfaConfiguration.smsConfiguration.externalId")]
#[case::sns_region_too_short(json!({"smsMfaConfiguration": {"smsConfiguration": {"snsRegion": "eu"}}}), "spec.smsMfaConfiguration.smsConfiguration.snsRegion")]
#[case::eums_role_not_an_arn(json!({"smsMfaConfiguration": {"smsConfiguration": {"eumsSms": {"callerArn": "not an arn, not at all"}}}}), "spec.smsMfaConfiguration.smsConfiguration.eumsSms.callerArn")]
#[case::email_message_without_code(json!({"emailMfaConfiguration": {"message": "Hello there"}}), "spec.emailMfaConfiguration.message")]
#[case::email_message_too_short(json!({"emailMfaConfiguration": {"message": "{###}"}}), "spec.emailMfaConfiguration.message")]
#[case::email_message_too_long(json!({"emailMfaConfiguration": {"message": format!("{{####}}{}", long(19_995))}}), "spec.emailMfaConfiguration.message")]
#[case::email_message_control_character(json!({"emailMfaConfiguration": {"message": "Code \u{7} {####}"}}), "spec.emailMfaConfiguration.message")]
#[case::email_subject_empty(json!({"emailMfaConfiguration": {"subject": ""}}), "spec.emailMfaConfiguration.subject")]
#[case::email_subject_too_long(json!({"emailMfaConfiguration": {"subject": long(141)}}), "spec.emailMfaConfiguration.subject")]
#[case::email_subject_control_character(json!({"emailMfaConfiguration": {"subject": "Code\u{7}"}}), "spec.emailMfaConfiguration.subject")]
#[case::relying_party_empty(json!({"webAuthnConfiguration": {"relyingPartyId": ""}}), "spec.webAuthnConfiguration.relyingPartyId")]
#[case::relying_party_too_long(json!({"webAuthnConfiguration": {"relyingPartyId": long(128)}}), "spec.webAuthnConfiguration.relyingPartyId")]
#[case::role_arn_short_account(json!({"credentials": {"roleArn": "arn:aws:iam::123:role/mfa-operator"}}), "spec.credentials.roleArn")]
#[case::role_arn_not_a_role(json!({"credentials": {"roleArn": "arn:aws:iam::123456789012:user/mfa"}}), "spec.credentials.roleArn")]
#[case::sts_external_id_too_short(json!({"credentials": {"roleArn": "arn:aws:iam::123456789012:role/x", "externalId": "a"}}), "spec.credentials.externalId")]
#[case::sts_external_id_bad_character(json!({"credentials": {"roleArn": "arn:aws:iam::123456789012:role/x", "externalId": "has space"}}), "spec.credentials.externalId")]
fn invalid_specs_are_rejected_by_admission_and_validation(#[case] patch: Value, #[case] field: &str) {
    let spec = spec_with(patch);
    let admitted = admission::errors(&policy(&spec), None);
    assert!(
        admitted.iter().any(|(path, _)| path == field),
        "admission should reject {field}: {admitted:?}"
    );
    let typed: CognitoMfaPolicySpec = serde_json::from_value(spec).unwrap();
    let violations = api::validate(&typed);
    assert!(
        violations.iter().any(|v| v.field == field),
        "validation should reject {field}: {violations:?}"
    );
    // One clear message per broken rule: no field is reported twice.
    let mut seen: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    seen.dedup();
    assert_eq!(seen.len(), violations.len(), "{violations:?}");
}

#[rstest]
#[case::enum_value(json!({"mfaConfiguration": "MAYBE"}), "spec.mfaConfiguration")]
#[case::user_verification(json!({"webAuthnConfiguration": {"userVerification": "sometimes"}}), "spec.webAuthnConfiguration.userVerification")]
#[case::factor_configuration(json!({"webAuthnConfiguration": {"factorConfiguration": "TWO"}}), "spec.webAuthnConfiguration.factorConfiguration")]
#[case::management_policy(json!({"managementPolicy": "Sometimes"}), "spec.managementPolicy")]
#[case::deletion_policy(json!({"deletionPolicy": "Delete"}), "spec.deletionPolicy")]
#[case::totp_enabled_type(json!({"softwareTokenMfaConfiguration": {"enabled": "yes"}}), "spec.softwareTokenMfaConfiguration.enabled")]
#[case::totp_enabled_required(json!({"softwareTokenMfaConfiguration": {"enabled": null}}), "spec.softwareTokenMfaConfiguration")]
#[case::pool_id_required(json!({"userPoolId": null}), "spec")]
fn enums_types_and_required_fields_are_rejected_at_admission(#[case] patch: Value, #[case] field: &str) {
    let admitted = admission::errors(&policy(&spec_with(patch)), None);
    assert!(
        admitted.iter().any(|(path, _)| path == field),
        "admission should reject {field}: {admitted:?}"
    );
}

#[rstest]
#[case::pool_id_changed(json!({"userPoolId": "eu-west-1_Other1"}), Some("spec.userPoolId"))]
#[case::region_added(json!({"region": "us-east-1"}), Some("spec.region"))]
#[case::mode_changed(json!({"mfaConfiguration": "ON"}), None)]
fn pool_and_region_are_immutable(#[case] patch: Value, #[case] field: Option<&str>) {
    let old = policy(&spec_with(json!({})));
    let new = policy(&spec_with(patch));
    let errors = admission::errors(&new, Some(&old));
    match field {
        Some(f) => assert!(errors.iter().any(|(path, _)| path == f), "{errors:?}"),
        None => assert_eq!(errors, vec![]),
    }
}

#[rstest]
#[case::region_removed(json!({"region": "us-east-1"}), json!({}))]
#[case::region_changed(json!({"region": "us-east-1"}), json!({"region": "us-west-2"}))]
fn region_cannot_be_removed_or_changed(#[case] old: Value, #[case] new: Value) {
    let errors = admission::errors(&policy(&spec_with(new)), Some(&policy(&spec_with(old))));
    assert!(errors.iter().any(|(path, _)| path == "spec.region"), "{errors:?}");
}

#[test]
fn region_comes_from_the_pool_id_unless_set() {
    let typed: CognitoMfaPolicySpec = serde_json::from_value(spec_with(json!({}))).unwrap();
    assert_eq!(typed.effective_region(), Some("eu-west-1"));
    let typed: CognitoMfaPolicySpec =
        serde_json::from_value(spec_with(json!({"region": "us-east-1"}))).unwrap();
    assert_eq!(typed.effective_region(), Some("us-east-1"));
    let typed: CognitoMfaPolicySpec =
        serde_json::from_value(spec_with(json!({"userPoolId": "local_AbC123"}))).unwrap();
    assert_eq!(typed.effective_region(), None);
    assert!(api::validate(&typed).iter().any(|v| v.field == "spec.region"));
}
