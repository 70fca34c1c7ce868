//! What the API server's admission does to a CognitoMfaPolicy: the CRD's OpenAPI schema (limits,
//! patterns, enums, types) and its CEL rules, evaluated here from the generated CRD.

use serde_json::Value;

/// The CRD's openAPIV3Schema, as JSON.
pub fn schema() -> Value {
    schema_of(&cognito_mfa_operator::api::crd())
}

/// The openAPIV3Schema of `crd` (of its first version), as JSON.
pub fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// The field paths (like `spec.smsMfaConfiguration.smsAuthenticationMessage`) that admission
/// rejects in `object` (created, or updated from `old`), each with its message.
pub fn errors(object: &Value, old: Option<&Value>) -> Vec<(String, String)> {
    errors_against(&schema(), object, old)
}

/// The same against `schema` (the openAPIV3Schema of any CRD, e.g. [`schema_of`]).
pub fn errors_against(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<(String, String)> {
    let validator = jsonschema::draft4::new(schema).expect("the CRD schema is a valid JSON schema");
    let mut out: Vec<(String, String)> = validator
        .iter_errors(object)
        .map(|e| {
            let path = e
                .instance_path()
                .to_string()
                .trim_start_matches('/')
                .replace('/', ".");
            (path, e.to_string())
        })
        .collect();
    if let Err(errors) = kube::core::cel::Validator::new().validate(schema, object, old) {
        out.extend(errors.into_vec().into_iter().map(|e| (e.field_path, e.message)));
    }
    out
}
