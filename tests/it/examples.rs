//! The examples in examples/ are valid policies and baselines, by every rule admission applies
//! (schema and CEL) and by the operator's own checks; and the IAM policy in docs/ permits every
//! call the operator makes, with nothing wider.

use cognito_mfa_operator::{
    api::{
        self, MfaMode,
        baseline::{self, BaselineAction, CognitoMfaBaseline},
    },
    cli::parse_policies,
    cognito::Operation,
};
use serde_json::Value;

use crate::support::admission;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn examples() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(format!("{ROOT}/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Whether an example file holds CognitoMfaBaselines (checked by `every_baseline_example_is_valid`)
/// rather than CognitoMfaPolicies.
fn is_baseline(text: &str) -> bool {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .iter()
        .any(|d| d["kind"] == "CognitoMfaBaseline")
}

fn policy_examples() -> Vec<(String, String)> {
    examples()
        .into_iter()
        .filter(|(_, text)| !is_baseline(text))
        .collect()
}

#[test]
fn every_example_is_a_valid_policy() {
    let files = policy_examples();
    assert!(files.len() >= 6, "{files:?}");
    for (name, text) in &files {
        // The operator's own checks: kinds, unknown fields, types, limits, cross-field rules.
        let policies = parse_policies(text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        // Admission: the CRD's schema and CEL rules.
        let documents: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
        for doc in documents.iter().filter(|d| !d.is_null()) {
            let errors = admission::errors(doc, None);
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
        assert!(!policies.is_empty());
    }
}

#[test]
fn the_examples_cover_the_main_setups() {
    let policies: Vec<_> = policy_examples()
        .iter()
        .flat_map(|(_, text)| parse_policies(text).unwrap())
        .collect();
    let any = |f: &dyn Fn(&cognito_mfa_operator::api::CognitoMfaPolicySpec) -> bool| {
        policies.iter().any(|p| f(&p.spec))
    };
    assert!(
        any(&|s| s.settings.mfa_configuration == MfaMode::Optional
            && s.settings.software_token_mfa_configuration.is_some()),
        "TOTP optional"
    );
    assert!(
        any(&|s| s.settings.mfa_configuration == MfaMode::On && s.settings.sms_mfa_configuration.is_some()),
        "TOTP + SMS required"
    );
    assert!(
        any(&|s| s.settings.email_mfa_configuration.is_some()),
        "email OTP"
    );
    assert!(
        any(&|s| s
            .settings
            .web_authn_configuration
            .as_ref()
            .is_some_and(|w| w.factor_configuration.to_string() == "MULTI_FACTOR_WITH_USER_VERIFICATION")),
        "passkeys as MFA"
    );
    assert!(
        any(&|s| s.management_policy == cognito_mfa_operator::api::ManagementPolicy::Observe),
        "observe-only adoption"
    );
    assert!(any(&|s| s.credentials.is_some()), "cross-account");
    // A disruptive example carries the approval it needs.
    let on = policies
        .iter()
        .find(|p| p.spec.settings.mfa_configuration == MfaMode::On)
        .unwrap();
    assert!(on.allows_disruptive_changes());
}

#[test]
fn every_baseline_example_is_valid() {
    let crd = baseline::crd();
    let schema = admission::schema_of(&crd);
    let mut actions = Vec::new();
    for (name, text) in examples().iter().filter(|(_, text)| is_baseline(text)) {
        let documents: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
        for doc in documents.into_iter().filter(|d| !d.is_null()) {
            assert_eq!(doc["apiVersion"], "cognitomfa.io/v1alpha1", "{name}");
            assert_eq!(doc["kind"], "CognitoMfaBaseline", "{name}: one kind a file");
            assert!(
                doc["metadata"].get("namespace").is_none(),
                "{name}: baselines are cluster-scoped"
            );
            // Admission: the CRD's schema and CEL rules.
            let unknown = api::unknown_fields_in(&crd, &doc);
            assert!(unknown.is_empty(), "{name}: unknown fields {unknown:?}");
            let errors = admission::errors_against(&schema, &doc, None);
            assert!(errors.is_empty(), "{name}: {errors:?}");
            // The operator's own checks.
            let b: CognitoMfaBaseline = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            let violations: Vec<String> = baseline::validate(&b.spec)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert!(violations.is_empty(), "{name}: {violations:?}");
            actions.push(b.spec.action);
        }
    }
    assert!(
        actions.contains(&BaselineAction::Report) && actions.contains(&BaselineAction::Enforce),
        "a Report and an Enforce baseline: {actions:?}"
    );
}

/// The statements of a policy document: (effect, actions, resources).
fn statements(path: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap()).unwrap();
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
            _ => Vec::new(),
        }
    };
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Effect"].as_str().unwrap().to_owned(),
                list(&s["Action"]),
                list(&s["Resource"]),
            )
        })
        .collect()
}

#[test]
fn the_iam_policy_covers_every_call_and_nothing_more() {
    let statements = statements("examples/iam/operator-policy.json");
    let allowed: Vec<&String> = statements
        .iter()
        .filter(|(e, _, _)| e == "Allow")
        .flat_map(|(_, a, _)| a)
        .collect();
    // Every call the operator makes, and the two it makes through others: passing the SMS role
    // to Cognito, and assuming cross-account roles.
    let mut needed: Vec<String> = Operation::ALL.iter().map(|o| o.iam_action()).collect();
    needed.extend(["iam:PassRole".to_owned(), "sts:AssumeRole".to_owned()]);
    for action in &needed {
        assert!(
            allowed.contains(&action),
            "{action} is not allowed by examples/iam/operator-policy.json"
        );
    }
    for action in &allowed {
        assert!(needed.contains(action), "{action} is allowed but never used");
        assert!(!action.contains('*'), "wildcard action {action}");
    }
    for (_, actions, resources) in &statements {
        // ListUserPools has no resource to name (IAM's service authorization reference lists
        // no resource type for it): "*" is the only resource it takes, and only it may have it.
        if actions == &["cognito-idp:ListUserPools".to_owned()] {
            assert_eq!(resources, &["*".to_owned()]);
            continue;
        }
        for resource in resources {
            assert!(
                resource.starts_with("arn:aws:"),
                "{actions:?} on {resource}: resources are ARNs, never *"
            );
            if actions.iter().any(|a| a.starts_with("cognito-idp:")) {
                assert!(resource.contains(":userpool/"), "{resource}");
            }
        }
    }
}

#[test]
fn the_readme_shows_the_policy_as_it_is() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let policy = std::fs::read_to_string(format!("{ROOT}/examples/iam/operator-policy.json")).unwrap();
    assert!(
        readme.contains(&format!("```json\n{policy}```")),
        "README's IAM policy differs from examples/iam/operator-policy.json"
    );
}

#[test]
fn the_cross_account_role_has_the_cognito_permissions_only() {
    let statements = statements("examples/iam/cross-account-role-policy.json");
    let actions: Vec<&String> = statements.iter().flat_map(|(_, a, _)| a).collect();
    for operation in Operation::ALL {
        assert!(
            actions.contains(&&operation.iam_action()),
            "{}",
            operation.iam_action()
        );
    }
    assert!(
        !actions.iter().any(|a| a.starts_with("sts:") || a.contains('*')),
        "{actions:?}"
    );
}

#[test]
fn the_cross_account_trust_requires_the_external_id() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/examples/iam/cross-account-trust.json")).unwrap(),
    )
    .unwrap();
    let statement = &doc["Statement"][0];
    assert_eq!(statement["Action"], "sts:AssumeRole");
    assert!(statement["Condition"]["StringEquals"]["sts:ExternalId"].is_string());
    // The example policy that names this role uses the same external ID.
    let example =
        parse_policies(&std::fs::read_to_string(format!("{ROOT}/examples/cross-account.yaml")).unwrap())
            .unwrap();
    let credentials = example[0].spec.credentials.as_ref().unwrap();
    assert_eq!(
        Some(credentials.external_id.as_deref().unwrap()),
        statement["Condition"]["StringEquals"]["sts:ExternalId"].as_str()
    );
}
