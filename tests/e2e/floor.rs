//! The chart's ValidatingAdmissionPolicy on the real API server: a CognitoMfaPolicy below the
//! floor of a CognitoMfaBaseline that covers its pool is refused with a message naming the
//! baseline; one at or above the floor, or whose pool no baseline covers, is admitted. Every
//! verdict is also the operator's own (`CognitoMfaBaselineSpec::refuses_at_admission`).

use std::time::Duration;

use cognito_mfa_operator::api::{CognitoMfaBaseline, CognitoMfaPolicy};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    harness::{ClusterObjects, TestNamespace, client, ensure_crd, kubectl_ok, policy, unique},
    helm,
};

/// A region no other test's policies use (its pools need not exist: admission never calls AWS).
const REGION: &str = "ca-central-1";
const OTHER_ACCOUNT_ROLE: &str = "arn:aws:iam::210987654321:role/cognito-mfa";

/// Whether the operator itself finds `spec` below `baseline` (covered, and failing the floor).
fn operator_refuses(baseline: &CognitoMfaBaseline, spec: &Value) -> bool {
    let p: CognitoMfaPolicy = policy("x", "x", spec.clone());
    !baseline.spec.refuses_at_admission(&p.spec).is_empty()
}

/// Creates the policy as a server-side dry run (admission runs, nothing is stored): the
/// refusal's message, or `None` when admitted.
async fn verdict(api: &Api<CognitoMfaPolicy>, spec: &Value) -> Option<String> {
    let p = policy(&unique("floor"), "floor", spec.clone());
    match api
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &p,
        )
        .await
    {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.message),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admission_policy_holds_policies_to_the_baselines_floor() {
    let client = client().await;
    ensure_crd(&client).await;
    let ns = TestNamespace::new(&client).await;
    let api = ns.policies();
    let pool = format!("{REGION}_Floor1");
    let release = unique("floor");

    // A policy below the floor that exists before the baseline: its metadata may still change,
    // its spec may not, and it can be deleted.
    let below = json!({"userPoolId": pool, "mfaConfiguration": "OFF"});
    api.create(
        &PostParams::default(),
        &policy("existing", "floor", below.clone()),
    )
    .await
    .unwrap();

    // The chart's policy and binding, judging only this test's namespace (other tests' policies
    // are no business of this one).
    let mut rendered = helm::render(
        &release,
        &ns.name,
        &[
            "--set",
            "baselineAdmission.enabled=true",
            "--show-only",
            "templates/baseline-admission.yaml",
        ],
    );
    assert_eq!(rendered.len(), 2, "{rendered:?}");
    let mut names = Vec::new();
    for object in &mut rendered {
        if object["kind"] == "ValidatingAdmissionPolicyBinding" {
            object["spec"]["matchResources"] =
                json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name}}});
        }
        names.push(format!(
            "{}/{}",
            object["kind"].as_str().unwrap().to_lowercase(),
            object["metadata"]["name"].as_str().unwrap()
        ));
    }
    let baseline_name = unique("floor");
    names.push(format!("cognitomfabaseline/{baseline_name}"));
    let _cleanup = ClusterObjects(names);
    let manifests: Vec<String> = rendered
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&manifests.join("\n")),
    );

    // No baseline yet: everything is admitted.
    assert_eq!(verdict(&api, &below).await, None);

    let baseline: CognitoMfaBaseline = serde_json::from_value(json!({
        "apiVersion": "cognitomfa.io/v1alpha1", "kind": "CognitoMfaBaseline",
        "metadata": {"name": baseline_name},
        "spec": {
            "regions": [REGION],
            "excludePoolIds": [format!("{REGION}_Excluded")],
            "floor": {"mfaConfiguration": ["ON", "OPTIONAL"], "factors": ["TOTP", "PASSKEY"]}
        }
    }))
    .unwrap();
    let baseline = Api::<CognitoMfaBaseline>::all(client.clone())
        .create(&PostParams::default(), &baseline)
        .await
        .unwrap();

    // The API server picks the binding and the baseline up within moments.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some(message) = verdict(&api, &below).await {
            break message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the policy was never enforced"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        first.contains(&format!("spec is below CognitoMfaBaseline {baseline_name}: mfaConfiguration is OFF, the floor allows ON, OPTIONAL")),
        "{first}"
    );

    let totp = json!({"enabled": true});
    let passkey_mfa = json!({"relyingPartyId": "auth.example.com", "factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"});
    // (spec, refused with a message containing this)
    let sms = json!({"smsConfiguration": {"snsCallerArn": "arn:aws:iam::123456789012:role/sns", "externalId": "x"}});
    let email = json!({"subject": "Your code"});
    // (spec, refused with a message containing this)
    let cases: Vec<(Value, Option<&str>)> = vec![
        (
            json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": sms}),
            Some("none of the factors TOTP, PASSKEY is on"),
        ),
        (
            json!({"userPoolId": pool, "mfaConfiguration": "ON", "emailMfaConfiguration": email, "webAuthnConfiguration": {"relyingPartyId": "auth.example.com"}}),
            Some("none of the factors TOTP, PASSKEY is on"),
        ),
        // spec.region decides the region, before the pool ID's prefix.
        (
            json!({"userPoolId": "eu-central-2_Floor2", "region": REGION, "mfaConfiguration": "OFF"}),
            Some("mfaConfiguration is OFF"),
        ),
        // At the floor, and above it (a passkey as MFA counts as a factor).
        (
            json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": totp}),
            None,
        ),
        (
            json!({"userPoolId": pool, "mfaConfiguration": "ON", "softwareTokenMfaConfiguration": totp, "webAuthnConfiguration": passkey_mfa}),
            None,
        ),
        (
            json!({"userPoolId": pool, "mfaConfiguration": "ON", "emailMfaConfiguration": email, "webAuthnConfiguration": passkey_mfa}),
            None,
        ),
        // Not covered: another region, an excluded pool, another account.
        (
            json!({"userPoolId": "eu-central-2_Floor1", "mfaConfiguration": "OFF"}),
            None,
        ),
        (
            json!({"userPoolId": format!("{REGION}_Excluded"), "mfaConfiguration": "OFF"}),
            None,
        ),
        (
            json!({"userPoolId": pool, "mfaConfiguration": "OFF", "credentials": {"roleArn": OTHER_ACCOUNT_ROLE, "externalId": "ext"}}),
            None,
        ),
        // Observe never writes the pool.
        (
            json!({"userPoolId": pool, "mfaConfiguration": "OFF", "managementPolicy": "Observe"}),
            None,
        ),
    ];
    for (spec, refused) in &cases {
        let got = verdict(&api, spec).await;
        match refused {
            Some(part) => {
                let message = got.unwrap_or_else(|| panic!("admitted: {spec}"));
                assert!(
                    message.contains(part) && message.contains(&baseline_name),
                    "{spec}: {message}"
                );
            }
            None => assert_eq!(got, None, "{spec}"),
        }
        assert_eq!(
            operator_refuses(&baseline, spec),
            refused.is_some(),
            "the operator disagrees: {spec}"
        );
    }

    // The policy that was there before: a label may change, the spec may not (unless it rises
    // to the floor), and it can be deleted.
    let patch = |v: Value| {
        let api = api.clone();
        async move {
            api.patch("existing", &PatchParams::default(), &Patch::Merge(&v))
                .await
        }
    };
    patch(json!({"metadata": {"labels": {"team": "identity"}}}))
        .await
        .expect("a label is admitted");
    let err = patch(json!({"spec": {"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": sms}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&baseline_name), "{err}");
    patch(json!({"spec": {"mfaConfiguration": "ON", "smsMfaConfiguration": null, "softwareTokenMfaConfiguration": totp}}))
        .await
        .expect("up to the floor is admitted");
    api.delete("existing", &Default::default())
        .await
        .expect("deletion is admitted");
}
