//! Deletion policies: Retain lets go at once, Reset and Restore act on the pool before the
//! finalizer goes, and a pool that no longer exists never blocks deletion.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types as aws;
use cognito_mfa_operator::controller::FINALIZER;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    harness::{Setup, wait, wait_for_reason},
    support::moto,
};

const REGION: &str = "eu-west-1";

async fn gone(api: &kube::Api<cognito_mfa_operator::api::CognitoMfaPolicy>, name: &str) {
    wait(
        Duration::from_secs(60),
        &format!("{name} to be deleted"),
        || async { api.get_opt(name).await.unwrap().is_none().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retain_reset_and_restore() {
    let t = Setup::new().await;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let api = t.api();
    let totp = |pool: &str, deletion: &str| {
        json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
               "deletionPolicy": deletion})
    };

    // Retain: no finalizer; deleting leaves the pool as it is.
    let retained = moto::create_pool(REGION).await;
    t.create("retain", totp(&retained, "Retain")).await;
    let p = wait_for_reason(&api, "retain", "Applied").await;
    assert!(p.finalizers().is_empty());
    api.delete("retain", &Default::default()).await.unwrap();
    gone(&api, "retain").await;
    assert_eq!(
        moto::mfa_config(REGION, &retained).await.mfa_configuration,
        Some(aws::UserPoolMfaType::Optional)
    );

    // Reset: MFA goes OFF before the object goes.
    let reset = moto::create_pool(REGION).await;
    t.create("reset", totp(&reset, "Reset")).await;
    let p = wait_for_reason(&api, "reset", "Applied").await;
    assert_eq!(p.finalizers(), [FINALIZER.to_owned()]);
    api.delete("reset", &Default::default()).await.unwrap();
    gone(&api, "reset").await;
    assert_eq!(
        moto::mfa_config(REGION, &reset).await.mfa_configuration,
        Some(aws::UserPoolMfaType::Off)
    );
    assert_eq!(
        moto::mfa_config(REGION, &reset)
            .await
            .software_token_mfa_configuration
            .map(|t| t.enabled),
        None
    );

    // Restore: the configuration seen before the first write comes back.
    let restored = moto::create_pool(REGION).await;
    let sms = aws::SmsMfaConfigType::builder()
        .sms_authentication_message("Before {####}")
        .sms_configuration(
            aws::SmsConfigurationType::builder()
                .sns_caller_arn("arn:aws:iam::123456789012:role/sms")
                .external_id("keep-me")
                .build(),
        )
        .build();
    moto::client(REGION)
        .await
        .set_user_pool_mfa_config()
        .user_pool_id(&restored)
        .mfa_configuration(aws::UserPoolMfaType::Optional)
        .sms_mfa_configuration(sms)
        .send()
        .await
        .unwrap();
    // The policy keeps SMS (turning off the only factor would need approval), changes its
    // message and adds TOTP.
    let mut spec = totp(&restored, "Restore");
    spec["smsMfaConfiguration"] = json!({"smsAuthenticationMessage": "Policy {####}"});
    t.create("restore", spec).await;
    let p = wait_for_reason(&api, "restore", "Applied").await;
    let adopted = p.status.unwrap().adopted_from.unwrap();
    assert_eq!(
        adopted
            .sms_mfa_configuration
            .unwrap()
            .sms_authentication_message
            .as_deref(),
        Some("Before {####}")
    );
    assert!(adopted.software_token_mfa_configuration.is_none());
    let during = moto::mfa_config(REGION, &restored).await;
    assert_eq!(
        during
            .sms_mfa_configuration
            .unwrap()
            .sms_authentication_message
            .as_deref(),
        Some("Policy {####}")
    );
    assert_eq!(
        during.software_token_mfa_configuration.map(|t| t.enabled),
        Some(true)
    );
    api.delete("restore", &Default::default()).await.unwrap();
    gone(&api, "restore").await;
    let back = moto::mfa_config(REGION, &restored).await;
    assert_eq!(back.mfa_configuration, Some(aws::UserPoolMfaType::Optional));
    let sms = back.sms_mfa_configuration.expect("SMS stays on");
    assert_eq!(sms.sms_authentication_message.as_deref(), Some("Before {####}"));
    // The external ID is not kept in status: the pool's current one is carried over.
    assert_eq!(
        sms.sms_configuration.and_then(|c| c.external_id).as_deref(),
        Some("keep-me")
    );
    assert!(
        !back.software_token_mfa_configuration.is_some_and(|t| t.enabled),
        "TOTP off again"
    );
    let events = t.events("restore").await;
    assert!(events.iter().any(|(r, _)| r == "Restored"), "{events:?}");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_pool_never_blocks_deletion() {
    let t = Setup::new().await;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let api = t.api();
    let pool = moto::create_pool(REGION).await;
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
                      "deletionPolicy": "Reset"});
    t.create("orphan", spec).await;
    wait_for_reason(&api, "orphan", "Applied").await;
    moto::client(REGION)
        .await
        .delete_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    api.delete("orphan", &Default::default()).await.unwrap();
    gone(&api, "orphan").await;

    // Switching Reset to Retain drops the finalizer; the object then goes at once.
    let pool = moto::create_pool(REGION).await;
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OFF", "deletionPolicy": "Reset"});
    t.create("switch", spec).await;
    wait(Duration::from_secs(60), "the finalizer", || async {
        api.get("switch")
            .await
            .ok()
            .filter(|p| !p.finalizers().is_empty())
            .map(|_| ())
    })
    .await;
    api.patch(
        "switch",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"deletionPolicy": "Retain"}})),
    )
    .await
    .unwrap();
    wait(Duration::from_secs(60), "the finalizer to go", || async {
        api.get("switch")
            .await
            .ok()
            .filter(|p| p.finalizers().is_empty())
            .map(|_| ())
    })
    .await;
    operator.stop().await;
}
