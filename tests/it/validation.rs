//! Every rule of the API, checked twice: by admission (the CRD's schema and CEL rules, as the API
//! server applies them) and by the Rust validation that the controller and the offline commands
//! run. Both must reject the same inputs, naming the same field.

use cognito_mfa_operator::api::{self, CognitoMfaPolicySpec};
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::{
    admission,
    cases::{invalid_specs, spec_with, unicode_cases, valid_specs},
};

fn policy(spec: &Value) -> Value {
    json!({"apiVersion": "cognitomfa.io/v1alpha1", "kind": "CognitoMfaPolicy",
           "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
}

#[test]
fn valid_specs_pass_admission_and_validation() {
    for (name, spec) in valid_specs() {
        assert_eq!(
            admission::errors(&policy(&spec), None),
            vec![],
            "{name}: admission"
        );
        let typed: CognitoMfaPolicySpec = serde_json::from_value(spec).unwrap();
        assert_eq!(api::validate(&typed), vec![], "{name}: validation");
    }
}

#[test]
fn invalid_specs_are_rejected_by_admission_and_validation() {
    let mut failures = Vec::new();
    for (name, patch, field) in invalid_specs() {
        let spec = spec_with(patch);
        let admitted = admission::errors(&policy(&spec), None);
        if !admitted.iter().any(|(path, _)| path == field) {
            failures.push(format!("{name}: admission should reject {field}: {admitted:?}"));
        }
        let typed: CognitoMfaPolicySpec = serde_json::from_value(spec).unwrap();
        let violations = api::validate(&typed);
        if !violations.iter().any(|v| v.field == field) {
            failures.push(format!(
                "{name}: validation should reject {field}: {violations:?}"
            ));
        }
        // One clear message per broken rule: no field is reported twice.
        let mut seen: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        seen.dedup();
        if seen.len() != violations.len() {
            failures.push(format!("{name}: a field reported twice: {violations:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every Unicode case gets one verdict on its field: from the schema (as admission applies it)
/// and from the Rust validation, and it is the verdict AWS's pattern gives.
#[test]
fn unicode_gets_one_verdict_from_admission_and_validation() {
    let mut failures = Vec::new();
    for (name, patch, field, valid) in unicode_cases() {
        let spec = spec_with(patch);
        let admitted = !admission::errors(&policy(&spec), None)
            .iter()
            .any(|(path, _)| path == field);
        let typed: CognitoMfaPolicySpec = serde_json::from_value(spec).unwrap();
        let validated = !api::validate(&typed).iter().any(|v| v.field == field);
        if (admitted, validated) != (valid, valid) {
            failures.push(format!(
                "{name}: expected valid={valid}, admission says {admitted}, validation says {validated}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
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
