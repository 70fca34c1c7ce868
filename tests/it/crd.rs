//! The generated CRD: committed, structural, acceptable to old and new API servers, documented.

use cognito_mfa_operator::api;
use serde_json::Value;

use crate::support::admission;

#[test]
fn committed_crd_matches_the_rust_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/cognitomfapolicies.cognitomfa.io.yaml"
    ))
    .expect("crds/cognitomfapolicies.cognitomfa.io.yaml exists");
    assert!(
        committed == api::crd_yaml(),
        "crds/ is out of date: run `cargo run -- crd > crds/cognitomfapolicies.cognitomfa.io.yaml`"
    );
}

#[test]
fn committed_baseline_crd_matches_the_rust_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/cognitomfabaselines.cognitomfa.io.yaml"
    ))
    .expect("crds/cognitomfabaselines.cognitomfa.io.yaml exists");
    assert!(
        committed == api::baseline_crd_yaml(),
        "crds/ is out of date: run `cargo run -- crd --kind baseline > crds/cognitomfabaselines.cognitomfa.io.yaml`"
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    let crd = api::crd();
    let names = &crd.spec.names;
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("cognitomfapolicies.cognitomfa.io")
    );
    assert_eq!(
        (names.kind.as_str(), names.plural.as_str()),
        ("CognitoMfaPolicy", "cognitomfapolicies")
    );
    assert_eq!(names.short_names.as_deref(), Some(&["cmp".to_owned()][..]));
    assert_eq!(names.categories.as_deref(), Some(&["cognito".to_owned()][..]));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Pool", "MFA", "Ready", "Reason", "Age"]);
}

/// Walks every schema node with its path.
fn walk<'a>(path: &str, node: &'a Value, visit: &mut impl FnMut(&str, &'a Value)) {
    visit(path, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(&format!("{path}.{k}"), v, visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(&format!("{path}[]"), items, visit);
    }
}

#[test]
fn schema_is_structural_and_servers_accept_it() {
    let schema = admission::schema();
    let mut problems = Vec::new();
    walk("", &schema, &mut |path, node| {
        // Structural: every node has a type (kube's metadata is the only object left open).
        if node.get("type").is_none() && node.get("x-kubernetes-preserve-unknown-fields").is_none() {
            problems.push(format!("{path}: no type"));
        }
        // Still needed on current servers: 1.37.2 refuses an explicit null for a nullable field
        // whose enum lists null ("Unsupported value: null: supported values: ..., \"null\""),
        // as 1.20 did.
        if let Some(values) = node.get("enum").and_then(Value::as_array)
            && values.iter().any(Value::is_null)
        {
            problems.push(format!("{path}: null in enum"));
        }
        for keyword in ["anyOf", "oneOf", "allOf", "not", "$ref", "additionalProperties"] {
            if node.get(keyword).is_some() && path.starts_with(".spec") {
                problems.push(format!("{path}: {keyword}"));
            }
        }
    });
    assert_eq!(problems, Vec::<String>::new());
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    let schema = admission::schema();
    let mut undocumented = Vec::new();
    walk("", &schema, &mut |path, node| {
        // Condition is metav1's (documented upstream); list items are described by their list.
        let inside_condition = path.contains(".conditions") || path.ends_with("[]");
        if !path.is_empty()
            && !inside_condition
            && node
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            undocumented.push(path.to_owned());
        }
    });
    assert_eq!(undocumented, Vec::<String>::new());
    let root = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        root.contains("multi-factor authentication"),
        "root description: {root}"
    );
}

#[test]
fn status_accepts_whatever_cognito_returns() {
    // Input limits apply to the spec only: the status reports Cognito's own values.
    let schema = admission::schema();
    let mut limited = Vec::new();
    walk("", &schema["properties"]["status"], &mut |path, node| {
        for keyword in ["pattern", "minLength", "maxLength", "x-kubernetes-validations"] {
            if node.get(keyword).is_some() {
                limited.push(format!("status{path}: {keyword}"));
            }
        }
    });
    assert_eq!(limited, Vec::<String>::new());
    let conditions = &schema["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
}

#[test]
fn crd_command_prints_the_committed_crd() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cognito-mfa-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}{}", api::crd_yaml(), api::baseline_crd_yaml())
    );
}
