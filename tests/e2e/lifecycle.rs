//! A policy's life: create, update, drift, observe, approval, conflict, invalid spec.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types as aws;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    harness::{self, Operator, Setup, TestNamespace, condition, policy, wait, wait_for_reason},
    support::moto,
};

const REGION: &str = "eu-west-1";

/// A new pool and a policy `name` asking for TOTP, applied; returns the pool's ID.
async fn totp_applied(t: &Setup, name: &str) -> String {
    let pool = moto::create_pool(REGION).await;
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}});
    t.create(name, spec).await;
    wait_for_reason(&t.api(), name, "Applied").await;
    t.wait_for_event(name, "Applied").await;
    pool
}

async fn mode(pool: &str) -> Option<aws::UserPoolMfaType> {
    moto::mfa_config(REGION, pool).await.mfa_configuration
}

#[tokio::test(flavor = "multi_thread")]
async fn create_update_and_drift_correction() {
    let t = Setup::new().await;
    let mut config = t.config(&moto::endpoint());
    config.resync = Duration::from_secs(2);
    let operator = t.operator(config).await;
    let pool = moto::create_pool(REGION).await;
    let api = t.api();

    // Create.
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}});
    t.create("shop", spec).await;
    let p = wait_for_reason(&api, "shop", "Applied").await;
    let status = p.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&p, "Synced").unwrap().0, "True");
    assert_eq!(condition(&p, "Stalled").unwrap().0, "False");
    let observed = status.observed.unwrap();
    assert_eq!(observed.mfa_configuration.to_string(), "OPTIONAL");
    assert_eq!(
        status.adopted_from.unwrap().mfa_configuration.to_string(),
        "OFF",
        "the pool before the first write"
    );
    assert!(status.last_sync_time.is_some());
    assert_eq!(mode(&pool).await, Some(aws::UserPoolMfaType::Optional));
    assert_eq!(moto::calls(&pool, "SetUserPoolMfaConfig").await, 1);

    // Update: add SMS (the external ID must never show in status or events).
    let patch = json!({"spec": {"smsMfaConfiguration": {"smsAuthenticationMessage": "Code {####}",
        "smsConfiguration": {"snsCallerArn": "arn:aws:iam::123456789012:role/cognito-sms", "externalId": "very-secret-4711"}}}});
    api.patch("shop", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let p = wait_for_reason(&api, "shop", "Applied").await;
    assert_eq!(p.status.as_ref().unwrap().observed_generation, Some(2));
    let sms = moto::client(REGION)
        .await
        .get_user_pool_mfa_config()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap()
        .sms_mfa_configuration;
    assert_eq!(
        sms.and_then(|s| s.sms_configuration)
            .and_then(|c| c.external_id)
            .as_deref(),
        Some("very-secret-4711")
    );

    // Drift: someone turns MFA off; the periodic check puts it back.
    moto::set_mode_out_of_band(REGION, &pool, aws::UserPoolMfaType::Off).await;
    let p = wait_for_reason(&api, "shop", "DriftCorrected").await;
    let drift = p.status.as_ref().unwrap().drift.clone().unwrap();
    assert!(!drift.detected);
    assert!(
        drift.fields.contains(&"mfaConfiguration".to_owned()),
        "{:?}",
        drift.fields
    );
    assert_eq!(mode(&pool).await, Some(aws::UserPoolMfaType::Optional));

    // The event follows the status write: wait for it rather than race it.
    let events = wait(Duration::from_secs(30), "the DriftCorrected event", || async {
        let events = t.events("shop").await;
        let has = |reason: &str| events.iter().any(|(r, _)| r == reason);
        (has("Applied") && has("DriftCorrected")).then_some(events)
    })
    .await;
    assert!(
        events.iter().any(|(_, note)| note.contains("mfaConfiguration")),
        "{events:?}"
    );
    let everything = format!("{:?} {:?}", serde_json::to_string(&p.status).unwrap(), events);
    assert!(
        !everything.contains("very-secret-4711"),
        "external IDs never appear in status or events"
    );
    assert!(operator.metric("cognito_mfa_drift_corrected_total") >= 1.0);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn steady_state_makes_no_writes() {
    let t = Setup::new().await;
    let mut config = t.config(&moto::endpoint());
    config.resync = Duration::from_millis(500);
    let operator = t.operator(config).await;
    let api = t.api();
    let pool = totp_applied(&t, "steady").await;
    let before = api.get("steady").await.unwrap();

    let sets = moto::calls(&pool, "SetUserPoolMfaConfig").await;
    let writes = operator.metric("cognito_mfa_kubernetes_writes_total{kind=\"status\"}");
    let event_count = t.events("steady").await.len();
    // Drift checks and Gets, read from the same instant of the operator's metrics.
    let counts = |op: &Operator| {
        let checks = op.metric("cognito_mfa_reconciles_total{result=\"Applied\"}");
        let gets =
            op.metric("cognito_mfa_aws_calls_total{operation=\"GetUserPoolMfaConfig\",outcome=\"ok\"}");
        (checks, gets)
    };
    let (checks0, gets0) = counts(&operator);
    // At least five periodic drift checks.
    wait(Duration::from_secs(60), "five drift checks", || async {
        (counts(&operator).0 >= checks0 + 5.0).then_some(())
    })
    .await;
    let status_writes = operator.metric("cognito_mfa_kubernetes_writes_total{kind=\"status\"}");
    // Stopping lets a check in flight finish, so the counts below are complete.
    let metrics = operator.metrics.clone();
    operator.stop().await;
    let (checks1, gets1) = {
        let text = metrics.encode();
        let value = |prefix: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0.0)
        };
        (
            value("cognito_mfa_reconciles_total{result=\"Applied\"}"),
            value("cognito_mfa_aws_calls_total{operation=\"GetUserPoolMfaConfig\",outcome=\"ok\"}"),
        )
    };
    let after = api.get("steady").await.unwrap();
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "no Kubernetes write: the object is unchanged"
    );
    assert_eq!(t.events("steady").await.len(), event_count, "no new events");
    assert_eq!(status_writes, writes, "no status write");
    assert_eq!(
        moto::calls(&pool, "SetUserPoolMfaConfig").await,
        sets,
        "no AWS writes"
    );
    let (new_checks, new_gets) = ((checks1 - checks0) as usize, (gets1 - gets0) as usize);
    // One Get per drift check. A check in flight when counting started has its Get before the
    // window and its count inside it.
    assert!(new_checks >= 5, "{new_checks} checks");
    assert!(
        new_checks == new_gets || new_checks == new_gets + 1,
        "{new_gets} Gets for {new_checks} checks"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn own_status_writes_do_not_trigger_reconciles() {
    let t = Setup::new().await;
    // A long resync: any reconcile after Ready would come from a watch event.
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let api = t.api();
    totp_applied(&t, "quiet").await;
    let total = |op: &Operator| -> f64 {
        op.metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("cognito_mfa_reconciles_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let settled = total(&operator);
    // Status writes (adoptedFrom, then the status) came back as watch events meanwhile; give
    // them time to arrive and be filtered.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(total(&operator), settled, "status writes triggered a reconcile");
    // A label change is not a trigger either; an annotation other than the approval neither.
    api.patch(
        "quiet",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"note": "x"}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(total(&operator), settled);
    // A spec change is.
    api.patch(
        "quiet",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null}})),
    )
    .await
    .unwrap();
    wait(
        Duration::from_secs(30),
        "a reconcile of the new generation",
        || async { (total(&operator) > settled).then_some(()) },
    )
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_reports_drift_and_never_writes() {
    let t = Setup::new().await;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let pool = moto::create_pool(REGION).await;
    let api = t.api();
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
                      "managementPolicy": "Observe", "deletionPolicy": "Reset"});
    t.create("watcher", spec).await;
    let p = wait_for_reason(&api, "watcher", "Drifted").await;
    assert_eq!(condition(&p, "Ready").unwrap().0, "False");
    let drift = p.status.as_ref().unwrap().drift.clone().unwrap();
    assert!(
        drift.detected && drift.fields.contains(&"mfaConfiguration".to_owned()),
        "{drift:?}"
    );
    assert!(
        p.finalizers().is_empty(),
        "Observe never acts on deletion: no finalizer"
    );
    assert_eq!(moto::calls(&pool, "SetUserPoolMfaConfig").await, 0);
    t.wait_for_event("watcher", "Drifted").await;

    // The pool is made to match by someone else: in sync, without a write.
    moto::client(REGION)
        .await
        .set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .mfa_configuration(aws::UserPoolMfaType::Optional)
        .software_token_mfa_configuration(aws::SoftwareTokenMfaConfigType::builder().enabled(true).build())
        .send()
        .await
        .unwrap();
    api.patch(
        "watcher",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"deletionPolicy": "Retain"}})),
    )
    .await
    .unwrap();
    let p = wait_for_reason(&api, "watcher", "InSync").await;
    assert!(!p.status.unwrap().drift.unwrap().detected);
    assert_eq!(
        moto::calls(&pool, "SetUserPoolMfaConfig").await,
        1,
        "only the out-of-band write"
    );
    operator.stop().await;
}

/// A policy that needs a change converges at the cost floor: one Get (before the write), one
/// Set (its answer is the read-back), and two Kubernetes writes: the status, with adoptedFrom,
/// in one patch, and the event.
#[tokio::test(flavor = "multi_thread")]
async fn a_converging_policy_costs_one_get_one_set_and_two_kubernetes_writes() {
    let t = Setup::new().await;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let api = t.api();
    let pool = totp_applied(&t, "frugal").await;
    let p = api.get("frugal").await.unwrap();
    assert!(p.status.as_ref().unwrap().adopted_from.is_some());
    let writes =
        |kind: &str| operator.metric(&format!("cognito_mfa_kubernetes_writes_total{{kind=\"{kind}\"}}"));
    wait(Duration::from_secs(30), "the Applied event", || async {
        (writes("event") >= 1.0).then_some(())
    })
    .await;
    let calls = |op: &str| {
        operator.metric(&format!(
            "cognito_mfa_aws_calls_total{{operation=\"{op}\",outcome=\"ok\"}}"
        ))
    };
    assert_eq!(
        (
            calls("GetUserPoolMfaConfig"),
            calls("SetUserPoolMfaConfig"),
            calls("DescribeUserPool")
        ),
        (1.0, 1.0, 0.0)
    );
    assert_eq!(
        (writes("status"), writes("event"), writes("finalizer")),
        (1.0, 1.0, 0.0)
    );
    assert_eq!(moto::calls(&pool, "SetUserPoolMfaConfig").await, 1);
    operator.stop().await;
}

/// The token in an AwaitingApproval message.
fn token_in(message: &str) -> String {
    let at = message
        .find("cognitomfa.io/approve-change: cmp-")
        .unwrap_or_else(|| panic!("no token in: {message}"));
    let start = at + "cognitomfa.io/approve-change: ".len();
    message[start..start + 16].to_owned()
}

async fn annotate(
    api: &kube::Api<cognito_mfa_operator::api::CognitoMfaPolicy>,
    name: &str,
    key: &str,
    value: &str,
) {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn set_spec(
    api: &kube::Api<cognito_mfa_operator::api::CognitoMfaPolicy>,
    name: &str,
    spec: serde_json::Value,
) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": spec})),
    )
    .await
    .unwrap();
}

/// A disruptive change waits; the token it gives approves it, and the offline `plan` gives the
/// same token. A later, different disruptive change is not approved by that token: it waits for
/// its own. The standing approval lets it through, with a Warning event.
#[tokio::test(flavor = "multi_thread")]
async fn disruptive_changes_wait_for_their_own_approval() {
    let t = Setup::new().await;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let api = t.api();
    let pool = totp_applied(&t, "guarded").await;

    set_spec(&api, "guarded", json!({"mfaConfiguration": "ON"})).await;
    let p = wait_for_reason(&api, "guarded", "AwaitingApproval").await;
    let (_, _, message) = condition(&p, "Ready").unwrap();
    assert!(message.contains("mfaConfiguration: OPTIONAL -> ON"), "{message}");
    let to_on = token_in(&message);
    assert_eq!(condition(&p, "Stalled").unwrap().0, "True");
    assert_eq!(
        mode(&pool).await,
        Some(aws::UserPoolMfaType::Optional),
        "nothing written while waiting"
    );

    // The offline plan of the same policy gives the same token, ahead of any sync.
    let manifest = serde_json::to_string(&json!({
        "apiVersion": "cognitomfa.io/v1alpha1", "kind": "CognitoMfaPolicy",
        "metadata": {"name": "guarded", "namespace": t.ns.name}, "spec": p.spec}))
    .unwrap();
    let planned = crate::support::cli(
        &[
            "plan",
            "-f",
            "-",
            "-o",
            "json",
            "--endpoint-url",
            &moto::endpoint(),
        ],
        Some(&manifest),
    )
    .await;
    let report: serde_json::Value =
        serde_json::from_str(&planned.stdout).unwrap_or_else(|_| panic!("{planned:?}"));
    assert_eq!(report[0]["approvalToken"], to_on.as_str(), "{planned:?}");

    annotate(&api, "guarded", "cognitomfa.io/approve-change", &to_on).await;
    wait_for_reason(&api, "guarded", "Applied").await;
    assert_eq!(mode(&pool).await, Some(aws::UserPoolMfaType::On));

    // Another disruptive change: TOTP, the only factor users may have, replaced by SMS.
    let before = moto::mfa_config(REGION, &pool).await;
    set_spec(
        &api,
        "guarded",
        json!({"softwareTokenMfaConfiguration": null,
               "smsMfaConfiguration": {"smsConfiguration": {"snsCallerArn": "arn:aws:iam::123456789012:role/cognito-sms"}}}),
    )
    .await;
    let p = wait_for_reason(&api, "guarded", "AwaitingApproval").await;
    let (_, _, message) = condition(&p, "Ready").unwrap();
    let to_sms = token_in(&message);
    assert_ne!(to_sms, to_on, "{message}");
    assert!(message.contains("turns off every factor"), "{message}");
    let after = moto::mfa_config(REGION, &pool).await;
    assert_eq!(
        (
            after.mfa_configuration,
            after.software_token_mfa_configuration,
            after.sms_mfa_configuration
        ),
        (
            before.mfa_configuration,
            before.software_token_mfa_configuration,
            before.sms_mfa_configuration
        ),
        "the first change's token does not let the second through"
    );

    // The standing approval lets it through, and says so.
    annotate(&api, "guarded", "cognitomfa.io/allow-disruptive-changes", "true").await;
    wait_for_reason(&api, "guarded", "Applied").await;
    assert!(
        moto::mfa_config(REGION, &pool)
            .await
            .sms_mfa_configuration
            .is_some()
    );
    let events = wait(
        Duration::from_secs(30),
        "the standing approval's Warning event",
        || async {
            let events = t.events("guarded").await;
            events
                .iter()
                .any(|(reason, note)| reason == "StandingApprovalUsed" && note.contains(&to_sms))
                .then_some(events)
        },
    )
    .await;
    assert!(!events.is_empty());
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pool_one_policy_across_namespaces() {
    let t = Setup::new().await;
    let (first_ns, second_ns) = (&t.ns, TestNamespace::new(&t.client).await);
    let run = &t.run;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let pool = moto::create_pool(REGION).await;
    let owner = json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}});
    first_ns
        .policies()
        .create(&PostParams::default(), &policy("owner", run, owner))
        .await
        .unwrap();
    wait_for_reason(&first_ns.policies(), "owner", "Applied").await;
    // Creation times have a one-second resolution: make the second one clearly younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = json!({"userPoolId": pool, "mfaConfiguration": "OFF"});
    second_ns
        .policies()
        .create(&PostParams::default(), &policy("latecomer", run, other))
        .await
        .unwrap();
    let p = wait_for_reason(&second_ns.policies(), "latecomer", "Conflict").await;
    let (_, _, message) = condition(&p, "Ready").unwrap();
    assert!(message.contains(&format!("{}/owner", first_ns.name)), "{message}");
    assert_eq!(condition(&p, "Stalled").unwrap().0, "True");
    assert!(
        harness::events(&t.client, &second_ns.name, "latecomer")
            .await
            .iter()
            .any(|(r, _)| r == "Conflict")
    );
    assert_eq!(
        moto::calls(&pool, "SetUserPoolMfaConfig").await,
        1,
        "the latecomer never writes"
    );
    assert_eq!(mode(&pool).await, Some(aws::UserPoolMfaType::Optional));

    // The owner goes (Retain: the pool stays as it is); the latecomer takes over.
    first_ns
        .policies()
        .delete("owner", &Default::default())
        .await
        .unwrap();
    wait_for_reason(&second_ns.policies(), "latecomer", "Applied").await;
    assert_eq!(mode(&pool).await, Some(aws::UserPoolMfaType::Off));
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spec_is_refused_without_aws_calls() {
    let t = Setup::new().await;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let pool = moto::create_pool(REGION).await;
    let api = t.api();
    // OFF with a TOTP block: Cognito rejects it, and so does admission where the API server
    // has CEL. Servers without CEL admit it, and the operator reports it.
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": {"enabled": false}});
    match api
        .create(&PostParams::default(), &policy("invalid", &t.run, spec))
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(
                e.message.contains("mfaConfiguration OFF allows no"),
                "{}",
                e.message
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => {
            let p = wait_for_reason(&api, "invalid", "InvalidSpec").await;
            let (_, _, message) = condition(&p, "Ready").unwrap();
            assert!(message.contains("spec.mfaConfiguration"), "{message}");
            assert_eq!(condition(&p, "Stalled").unwrap().0, "True");
            t.wait_for_event("invalid", "InvalidSpec").await;
        }
    }
    assert_eq!(
        moto::calls(&pool, "GetUserPoolMfaConfig").await,
        0,
        "no AWS call for an invalid spec"
    );
    operator.stop().await;
}
