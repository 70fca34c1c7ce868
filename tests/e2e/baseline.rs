//! CognitoMfaBaseline against the real API server and moto: pools nobody wrote a policy for are
//! found and enforced, a disruptive correction waits for approval on the baseline, a pool owned
//! by a policy is evaluated and never written (the policy says it is below the baseline), pools
//! created and deleted during the run come and go, and deleting the baseline writes nothing.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserPoolMfaType;
use cognito_mfa_operator::api::CognitoMfaBaseline;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    harness::{ClusterObjects, Setup, condition, events, unique, wait},
    support::moto,
};

/// A region no other test uses: the baseline covers all of its pools that bear the run's prefix.
const REGION: &str = "ap-southeast-2";

/// Held by each test that runs the baseline controller: baselines are cluster-scoped and every
/// such operator acts on all of them, so these tests take turns.
static BASELINE_CONTROLLER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn baseline_status(api: &Api<CognitoMfaBaseline>, name: &str) -> CognitoMfaBaseline {
    api.get(name).await.unwrap()
}

#[tokio::test]
async fn baselines_find_enforce_and_leave_policies_alone() {
    let _turn = BASELINE_CONTROLLER.lock().await;
    let setup = Setup::new().await;
    let prefix = unique("bl");
    let pool = |n: &str| format!("{prefix}-{n}");
    // A: MFA off, nobody's. B: OPTIONAL with TOTP, nobody's (ON is disruptive). C: a policy's.
    let a = moto::create_named_pool(REGION, &pool("a")).await;
    let b = moto::create_named_pool(REGION, &pool("b")).await;
    moto::set_totp_out_of_band(REGION, &b, UserPoolMfaType::Optional).await;
    let c = moto::create_named_pool(REGION, &pool("c")).await;
    // Another pool of the region, not matching the regex: never read.
    let other = moto::create_named_pool(REGION, &unique("other")).await;
    setup
        .create(
            "owned",
            json!({"userPoolId": c, "region": REGION, "mfaConfiguration": "OPTIONAL",
                   "softwareTokenMfaConfiguration": {"enabled": true}}),
        )
        .await;
    let mut config = setup.config(&moto::endpoint());
    config.baselines = true;
    let operator = setup.operator(config).await;
    let api: Api<CognitoMfaBaseline> = Api::all(setup.client.clone());
    let name = unique("floor");
    // Deleted even when the test fails: a baseline covers every policy of its region and account.
    let _gone = ClusterObjects(vec![format!("cognitomfabaseline/{name}")]);
    let baseline: CognitoMfaBaseline = serde_json::from_value(json!({
        "apiVersion": "cognitomfa.io/v1alpha1", "kind": "CognitoMfaBaseline",
        "metadata": {"name": name},
        "spec": {
            "regions": [REGION],
            "poolNameRegex": format!("^{prefix}-"),
            "floor": {"mfaConfiguration": ["ON"]},
            "action": "Enforce",
            "template": {"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}},
            "scanInterval": "2s"
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &baseline).await.unwrap();

    // Turning MFA ON is disruptive: A and B wait for approval, each with its own token; C is
    // reported, owned by the policy, with no token.
    let tokens = wait(Duration::from_secs(60), "the first scan", || async {
        let s = baseline_status(&api, &name).await.status?;
        let pools = s.pools.clone()?;
        let token = |pool: &str| {
            s.non_compliant
                .iter()
                .find(|p| p.user_pool_id == pool)
                .and_then(|p| p.approval_token.clone())
        };
        (pools.scanned == 3 && pools.awaiting_approval == 2 && s.last_scan_time.is_some())
            .then(|| Some(format!("{},{}", token(&a)?, token(&b)?)))
            .flatten()
    })
    .await;
    for p in [&a, &b] {
        assert_ne!(
            moto::mfa_config(REGION, p).await.mfa_configuration,
            Some(UserPoolMfaType::On)
        );
    }
    let status = baseline_status(&api, &name).await.status.unwrap();
    let counts = status.pools.clone().unwrap();
    assert_eq!(
        (
            counts.compliant,
            counts.non_compliant,
            counts.owned_by_policies,
            counts.enforced
        ),
        (0, 3, 1, 2),
        "{status:?}"
    );
    let owned = status.non_compliant.iter().find(|p| p.user_pool_id == c).unwrap();
    assert_eq!(
        owned.owner.as_deref(),
        Some(format!("CognitoMfaPolicy {}/owned", setup.ns.name).as_str())
    );
    assert_eq!(owned.approval_token, None);
    assert!(
        owned.reasons[0].contains("mfaConfiguration is OPTIONAL"),
        "{owned:?}"
    );
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "AwaitingApproval")
    );
    assert_eq!(
        moto::calls(&other, "GetUserPoolMfaConfig").await,
        0,
        "outside the regex"
    );
    // The policy is applied (Ready: a re-reconcile that a baseline triggers may report InSync),
    // and says it is below the baseline.
    let policy = wait(
        Duration::from_secs(60),
        "the policy Ready and BelowBaseline",
        || async {
            let p = setup.api().get("owned").await.ok()?;
            let ready = condition(&p, "Ready").is_some_and(|(s, _, _)| s == "True");
            (ready && condition(&p, "BelowBaseline").is_some()).then_some(p)
        },
    )
    .await;
    let (status_, reason, message) = condition(&policy, "BelowBaseline").unwrap();
    assert_eq!((status_.as_str(), reason.as_str()), ("True", "BelowBaseline"));
    assert!(message.contains(&name), "{message}");

    // Approve both changes by their tokens (one annotation, comma-separated): written.
    let patch = json!({"metadata": {"annotations": {"cognitomfa.io/approve-change": tokens}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait(
        Duration::from_secs(60),
        "A and B enforced after approval",
        || async {
            let on = |p: String| async move {
                moto::mfa_config(REGION, &p).await.mfa_configuration == Some(UserPoolMfaType::On)
            };
            (on(a.clone()).await && on(b.clone()).await).then_some(())
        },
    )
    .await;
    assert_eq!(
        moto::mfa_config(REGION, &c).await.mfa_configuration,
        Some(UserPoolMfaType::Optional),
        "the policy's pool is never written"
    );
    // From now on, the standing approval.
    let patch = json!({"metadata": {"annotations": {"cognitomfa.io/allow-disruptive-changes": "true"}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    // A pool created during the run is found and enforced; a deleted one drops out.
    let d = moto::create_named_pool(REGION, &pool("d")).await;
    moto::delete_pool(REGION, &a).await;
    wait(Duration::from_secs(60), "D found, A gone", || async {
        let s = baseline_status(&api, &name).await.status?;
        let counts = s.pools?;
        let on = moto::mfa_config(REGION, &d).await.mfa_configuration == Some(UserPoolMfaType::On);
        (on && counts.scanned == 3 && counts.compliant == 2 && counts.awaiting_approval == 0).then_some(())
    })
    .await;
    // Drift on an enforced pool is corrected on a later scan.
    moto::set_mode_out_of_band(REGION, &d, UserPoolMfaType::Off).await;
    wait(Duration::from_secs(60), "D's drift corrected", || async {
        (moto::mfa_config(REGION, &d).await.mfa_configuration == Some(UserPoolMfaType::On)).then_some(())
    })
    .await;
    // Every write is an event on the baseline (cluster-scoped: in the default namespace).
    let events = wait(Duration::from_secs(30), "the baseline's events", || async {
        let e = events(&setup.client, "default", &name).await;
        let writes = e
            .iter()
            .filter(|(r, _)| r == "Enforced" || r == "DriftCorrected")
            .count();
        (writes >= 4).then_some(e)
    })
    .await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "AwaitingApproval" && n.contains(&b)),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(r, _)| r == "StandingApprovalUsed"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "DriftCorrected" && n.contains(&d)),
        "{events:?}"
    );
    assert!(
        operator.metric(&format!(
            "cognito_mfa_pool_compliant{{baseline=\"{name}\",region=\"{REGION}\",user_pool_id=\"{c}\"}}"
        )) == 0.0
    );
    assert!(
        operator.metric(&format!(
            "cognito_mfa_pool_compliant{{baseline=\"{name}\",region=\"{REGION}\",user_pool_id=\"{d}\"}}"
        )) == 1.0
    );

    // Deleting the baseline writes nothing to any pool; the policy's condition goes.
    let sets = |p: String| async move { moto::calls(&p, "SetUserPoolMfaConfig").await };
    let before = (sets(b.clone()).await, sets(d.clone()).await);
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    wait(Duration::from_secs(30), "the baseline to go", || async {
        api.get_opt(&name).await.ok().flatten().is_none().then_some(())
    })
    .await;
    moto::set_mode_out_of_band(REGION, &d, UserPoolMfaType::Off).await;
    wait(
        Duration::from_secs(30),
        "the policy's BelowBaseline condition to go",
        || async {
            let p = setup.api().get("owned").await.ok()?;
            condition(&p, "BelowBaseline").is_none().then_some(())
        },
    )
    .await;
    // Three scan intervals later, still nothing written.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        (sets(b.clone()).await, sets(d.clone()).await),
        (before.0, before.1 + 1)
    );
    assert_eq!(
        moto::mfa_config(REGION, &d).await.mfa_configuration,
        Some(UserPoolMfaType::Off)
    );
    operator.stop().await;
}

/// A region of another account (moto keeps accounts apart, like AWS), for the next test only.
const OTHER_REGION: &str = "ap-northeast-3";

/// Two Enforce baselines over the pools of another account, reached through STS: the older
/// one owns a pool below both floors and writes it; the newer one reports the conflict and
/// never writes. The operator's own account's pools of the region are none of theirs.
#[tokio::test]
async fn the_oldest_baseline_owns_a_pool_of_another_account() {
    let _turn = BASELINE_CONTROLLER.lock().await;
    let setup = Setup::new().await;
    let prefix = unique("xa");
    let role = format!("arn:aws:iam::210987654321:role/{prefix}");
    let other = moto::client_as(OTHER_REGION, &role).await;
    let theirs = moto::create_named_pool_with(&other, &format!("{prefix}-theirs")).await;
    let ours = moto::create_named_pool(OTHER_REGION, &format!("{prefix}-ours")).await;
    let mut config = setup.config(&moto::endpoint());
    config.baselines = true;
    let operator = setup.operator(config).await;
    let api: Api<CognitoMfaBaseline> = Api::all(setup.client.clone());
    let spec = |modes: serde_json::Value, template: serde_json::Value| {
        json!({
            "regions": [OTHER_REGION],
            "credentials": {"roleArn": role, "externalId": "xa-ext"},
            "poolNameRegex": format!("^{prefix}-"),
            "floor": {"mfaConfiguration": modes, "factors": ["TOTP"]},
            "action": "Enforce",
            "template": template,
            "scanInterval": "2s"
        })
    };
    let baseline = |name: &str, spec: serde_json::Value| -> CognitoMfaBaseline {
        serde_json::from_value(json!({
            "apiVersion": "cognitomfa.io/v1alpha1", "kind": "CognitoMfaBaseline",
            "metadata": {"name": name, "annotations": {"cognitomfa.io/allow-disruptive-changes": "true"}},
            "spec": spec
        }))
        .unwrap()
    };
    let (older, newer) = (format!("{prefix}-older"), format!("{prefix}-newer"));
    let _gone = ClusterObjects(vec![
        format!("cognitomfabaseline/{older}"),
        format!("cognitomfabaseline/{newer}"),
    ]);
    api.create(
        &PostParams::default(),
        &baseline(
            &older,
            spec(
                json!(["ON", "OPTIONAL"]),
                json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
            ),
        ),
    )
    .await
    .unwrap();
    // Creation times have a resolution of a second: the newer one is a second younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.create(
        &PostParams::default(),
        &baseline(
            &newer,
            spec(
                json!(["ON"]),
                json!({"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}}),
            ),
        ),
    )
    .await
    .unwrap();

    // The older one brings the other account's pool to its own template.
    wait(
        Duration::from_secs(60),
        "the older baseline to enforce",
        || async {
            let live = other
                .get_user_pool_mfa_config()
                .user_pool_id(&theirs)
                .send()
                .await
                .ok()?;
            (live.mfa_configuration == Some(UserPoolMfaType::Optional)).then_some(())
        },
    )
    .await;
    // The newer one finds it below its floor (ON), owned by the older: a conflict, reported.
    let status = wait(
        Duration::from_secs(60),
        "the newer baseline's conflict",
        || async {
            let s = baseline_status(&api, &newer).await.status?;
            let counts = s.pools.clone()?;
            (counts.scanned == 1 && counts.conflicts == 1 && counts.non_compliant == 1).then_some(s)
        },
    )
    .await;
    let finding = &status.non_compliant[0];
    assert_eq!(finding.user_pool_id, theirs);
    assert_eq!(
        finding.owner.as_deref(),
        Some(format!("CognitoMfaBaseline {older}").as_str()),
        "{finding:?}"
    );
    let older_counts = baseline_status(&api, &older).await.status.unwrap().pools.unwrap();
    assert_eq!(
        (
            older_counts.scanned,
            older_counts.compliant,
            older_counts.enforced
        ),
        (1, 1, 1),
        "{older_counts:?}"
    );
    let events = wait(Duration::from_secs(30), "the conflict event", || async {
        let e = events(&setup.client, "default", &newer).await;
        e.iter().any(|(r, _)| r == "Conflict").then_some(e)
    })
    .await;
    assert!(events.iter().all(|(r, _)| r != "Enforced"), "{events:?}");
    // Scans later, the newer one has still not written: the pool is OPTIONAL, not ON.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let live = other
        .get_user_pool_mfa_config()
        .user_pool_id(&theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(live.mfa_configuration, Some(UserPoolMfaType::Optional));
    // The operator's own account was never read for them, and STS was asked with the external ID.
    assert_eq!(moto::calls(&ours, "GetUserPoolMfaConfig").await, 0);
    assert!(
        moto::assume_role_requests(&role)
            .await
            .iter()
            .any(|r| r.contains("ExternalId=xa-ext") && r.contains("RoleSessionName=cognito-mfa-operator"))
    );
    for name in [&newer, &older] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    operator.stop().await;
}
