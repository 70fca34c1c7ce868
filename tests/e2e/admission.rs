//! Admission, by the API server itself: every invalid spec of the shared table is refused with
//! the message the CRD declares for the broken rule, every valid spec and every example is
//! accepted, `userPoolId` and `region` cannot change, `kubectl explain` shows the doc comments,
//! and the client-side check (the CRD's schema and CEL rules evaluated in Rust) gives the
//! server's verdict on every case. The Unicode cases get the same verdict from the server (Go's
//! RE2) as from the operator's validation (Rust's regex).

use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
    core::Status,
};
use serde_json::{Value, json};

use crate::{
    harness::{Setup, baseline_examples, examples_in, kubectl_ok, kubectl_run, policy, wait},
    support::{
        admission,
        cases::{invalid_specs, spec_with, unicode_cases, valid_specs},
    },
};
use cognito_mfa_operator::api::CognitoMfaPolicy;

/// What the server answered to a create: the causes of a refusal as (field, message), or
/// nothing for an admitted object.
async fn create(api: &Api<CognitoMfaPolicy>, object: &CognitoMfaPolicy) -> Result<(), Box<Status>> {
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status),
        Err(e) => panic!("{e}"),
    }
}

/// The schema node at a field path like `spec.smsMfaConfiguration.smsAuthenticationMessage`.
fn schema_at<'a>(schema: &'a Value, field: &str) -> &'a Value {
    field
        .split('.')
        .fold(schema, |node, name| &node["properties"][name])
}

/// The value at a field path of `object`.
fn value_at<'a>(object: &'a Value, field: &str) -> &'a Value {
    field.split('.').fold(object, |v, name| &v[name])
}

/// The message the CRD declares for what `object` breaks at `field`: the rule's own message for
/// a CEL rule (as the client-side check reports it), otherwise the schema keyword the value
/// breaks, in the words the API server uses for it.
fn declared_message(object: &Value, field: &str, client: &[(String, String)]) -> String {
    let schema = admission::schema();
    let node = schema_at(&schema, field);
    let value = value_at(object, field);
    if let Some(s) = value.as_str() {
        let chars = s.chars().count();
        if let Some(max) = node["maxLength"].as_u64()
            && chars as u64 > max
        {
            return format!("may not be more than {max} bytes");
        }
        if let Some(min) = node["minLength"].as_u64()
            && (chars as u64) < min
        {
            return format!("should be at least {min} chars long");
        }
        if let Some(pattern) = node["pattern"].as_str()
            && !regex::Regex::new(pattern).unwrap().is_match(s)
        {
            return format!("should match '{pattern}'");
        }
    }
    // A CEL rule: the client-side check names it by its declared message.
    let rules: Vec<String> = schema_rules(&schema);
    client
        .iter()
        .filter(|(path, _)| path == field)
        .map(|(_, message)| message.clone())
        .find(|m| rules.iter().any(|r| m.contains(r.as_str())))
        .unwrap_or_else(|| panic!("{field}: no declared rule explains {value}; client: {client:?}"))
}

/// Every CEL rule message the CRD declares.
fn schema_rules(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(rules) = m.get("x-kubernetes-validations").and_then(Value::as_array) {
                    out.extend(
                        rules
                            .iter()
                            .filter_map(|r| r["message"].as_str().map(str::to_owned)),
                    );
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(schema, &mut out);
    out
}

fn causes(status: &Status) -> Vec<(String, String)> {
    status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| (c.field.clone(), c.message.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_spec_is_refused_by_the_server_with_the_declared_message() {
    let t = Setup::new().await;
    let api = t.api();
    let mut failures = Vec::new();
    for (name, patch, field) in invalid_specs() {
        let object = policy(
            &format!("case-{}", name.replace('_', "-")),
            &t.run,
            spec_with(patch),
        );
        let document = serde_json::to_value(&object).unwrap();
        let client = admission::errors(&document, None);
        let expected = declared_message(&document, field, &client);
        match create(&api, &object).await {
            Ok(()) => failures.push(format!(
                "{name}: admitted by the server; the client check says {client:?}"
            )),
            Err(status) => {
                let causes = causes(&status);
                if status.code != 422 || !causes.iter().any(|(f, m)| f == field && m.contains(&expected)) {
                    failures.push(format!(
                        "{name}: want {field}: {expected:?}; the server said {} {causes:?} ({})",
                        status.code, status.message
                    ));
                }
            }
        }
        // The client-side check gives the same verdict, on the same field.
        if !client.iter().any(|(path, _)| path == field) {
            failures.push(format!(
                "{name}: the client check does not refuse {field}: {client:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unicode_gets_the_same_verdict_from_the_server_and_the_operator() {
    let t = Setup::new().await;
    let api = t.api();
    let mut failures = Vec::new();
    for (i, (name, patch, field, valid)) in unicode_cases().into_iter().enumerate() {
        let object = policy(&format!("unicode-{i}"), &t.run, spec_with(patch));
        let validated = !cognito_mfa_operator::api::validate(&object.spec)
            .iter()
            .any(|v| v.field == field);
        let admitted = match create(&api, &object).await {
            Ok(()) => true,
            Err(status) => !causes(&status).iter().any(|(f, _)| f == field),
        };
        if (admitted, validated) != (valid, valid) {
            failures.push(format!(
                "{name}: expected valid={valid}; the server says {admitted}, the operator {validated}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_valid_spec_and_every_example_is_accepted_by_the_server() {
    let t = Setup::new().await;
    let api = t.api();
    for (name, spec) in valid_specs() {
        let object = policy(&format!("valid-{}", name.replace('_', "-")), &t.run, spec);
        let client = admission::errors(&serde_json::to_value(&object).unwrap(), None);
        assert_eq!(client, vec![], "{name}: the client check refuses it");
        if let Err(status) = create(&api, &object).await {
            panic!("{name}: refused by the server: {}", status.message);
        }
    }
    // The examples as written, moved into the test's namespace, applied with kubectl.
    let examples = examples_in(&t.ns.name);
    assert!(examples.len() >= 6);
    for manifest in examples {
        let out = kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(&manifest));
        assert!(out.contains("cognitomfapolicy"), "{out}");
    }
    // The baselines' examples (cluster-scoped; a dry run stores nothing).
    let baselines = baseline_examples();
    assert_eq!(baselines.len(), 2);
    for manifest in baselines {
        let out = kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(&manifest));
        assert!(out.contains("cognitomfabaseline"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_and_region_cannot_change_on_update() {
    let t = Setup::new().await;
    let api = t.api();
    let base = spec_with(json!({"region": "eu-west-1"}));
    create(&api, &policy("immutable", &t.run, base.clone()))
        .await
        .unwrap();
    let old = serde_json::to_value(api.get("immutable").await.unwrap()).unwrap();
    for (patch, field) in [
        (json!({"userPoolId": "eu-west-1_Other1"}), "spec.userPoolId"),
        (json!({"region": "us-east-1"}), "spec.region"),
        (json!({"region": null}), "spec.region"),
    ] {
        let result = api
            .patch(
                "immutable",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": patch})),
            )
            .await;
        let Err(kube::Error::Api(status)) = result else {
            panic!("{field}: the change {patch} was admitted");
        };
        // The message the CRD declares for the rule, as the client-side check reports it.
        let mut new = old.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                new["spec"].as_object_mut().unwrap().remove(k);
            } else {
                new["spec"][k] = v.clone();
            }
        }
        let client = admission::errors(&new, Some(&old));
        let (_, expected) = client
            .iter()
            .find(|(path, _)| path == field)
            .unwrap_or_else(|| panic!("{field}: the client check admits {patch}: {client:?}"));
        assert!(
            status.message.contains(expected.as_str()),
            "{field}: want {expected:?}, the server said {}",
            status.message
        );
    }
    // Other fields may change.
    api.patch(
        "immutable",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"mfaConfiguration": "ON"}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_explain_shows_the_doc_comments() {
    let _t = Setup::new().await;
    // The API server publishes a new CRD's OpenAPI a moment after it serves the resource.
    let out = wait(
        std::time::Duration::from_secs(60),
        "kubectl explain to know the CRD",
        || async {
            let (ok, out, _) = kubectl_run(&["explain", "cognitomfapolicy.spec.webAuthnConfiguration"], None);
            ok.then_some(out)
        },
    )
    .await;
    let schema = admission::schema();
    let node = schema_at(&schema, "spec.webAuthnConfiguration");
    // kubectl wraps the text: compare words.
    let words = |s: &str| {
        s.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first_sentence = node["description"]
        .as_str()
        .unwrap()
        .split(". ")
        .next()
        .unwrap()
        .to_owned();
    assert!(words(&out).contains(&words(&first_sentence)), "{out}");
    for field in node["properties"].as_object().unwrap().keys() {
        assert!(out.contains(field.as_str()), "{field} missing: {out}");
    }

    // Every field shows its type, the optional (nullable) blocks included. (kubectl reads the
    // OpenAPI v3; in v2, which has no nullable, the API server leaves nullable fields untyped,
    // and `--output plaintext-openapiv2` shows them as `<>`.)
    let all = kubectl_ok(&["explain", "cognitomfapolicy", "--recursive"], None);
    assert!(!all.contains("<>"), "a field without a type:\n{all}");
    assert!(
        all.contains("credentials") && all.contains("adoptedFrom"),
        "{all}"
    );
    for path in [
        "spec.credentials",
        "spec.smsMfaConfiguration",
        "spec.emailMfaConfiguration",
        "spec.webAuthnConfiguration",
        "status.observed",
        "status.adoptedFrom",
        "status.drift",
    ] {
        let out = kubectl_ok(&["explain", &format!("cognitomfapolicy.{path}")], None);
        let field = path.rsplit('.').next().unwrap();
        assert!(
            out.lines()
                .any(|l| l.starts_with("FIELD:") && l.contains(field) && l.contains("<Object>")),
            "{path}:\n{out}"
        );
    }
}

/// An explicit `null` for an optional field (what Helm renders for an empty value) means the
/// field is unset, with server-side apply (Argo CD's ServerSideApply, kubectl --server-side) as
/// with a create. The schema keeps optional fields nullable for this: without it, server-side
/// apply refuses the null ("must be of type string").
#[tokio::test(flavor = "multi_thread")]
async fn explicit_nulls_are_unset_fields_with_server_side_apply() {
    let t = Setup::new().await;
    let manifest = format!(
        "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaPolicy\nmetadata: {{name: nulls, namespace: {}}}\nspec:\n  userPoolId: eu-west-1_AbCdEf123\n  region: null\n  mfaConfiguration: OPTIONAL\n  softwareTokenMfaConfiguration: {{enabled: true}}\n  emailMfaConfiguration: null\n  credentials: null\n",
        t.ns.name
    );
    kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&manifest));
    let p = t.api().get("nulls").await.unwrap();
    assert_eq!(p.spec.region, None);
    assert_eq!(p.spec.credentials, None);
    assert!(p.spec.settings.email_mfa_configuration.is_none());
    assert!(cognito_mfa_operator::api::validate(&p.spec).is_empty());
}
