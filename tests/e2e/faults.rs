//! Errors by class: terminal errors stall and recheck slowly, throttling backs off, and no
//! persistent error makes the operator loop (the fault proxy counts every request).

use std::time::Duration;

use serde_json::json;

use crate::{
    harness::{Setup, condition, wait_for_reason},
    support::{
        fault_proxy::{Fault, FaultProxy},
        moto,
    },
};

const REGION: &str = "eu-west-1";
const GET: &str = "GetUserPoolMfaConfig";

#[tokio::test(flavor = "multi_thread")]
async fn terminal_errors_stall_and_do_not_loop() {
    let t = Setup::new().await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    proxy.inject(GET, Fault::Error(400, "AccessDeniedException"), None);
    let operator = t.operator(t.config(&proxy.url)).await;
    let pool = moto::create_pool(REGION).await;
    let api = t.api();
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}});
    t.create("denied", spec).await;
    let p = wait_for_reason(&api, "denied", "AccessDenied").await;
    assert_eq!(condition(&p, "Stalled").unwrap().0, "True");
    assert_eq!(condition(&p, "Synced").unwrap().1, "AccessDenied");
    assert!(t.events("denied").await.iter().any(|(r, _)| r == "AccessDenied"));
    let seen = proxy.seen(GET);
    assert_eq!(seen, 1, "a terminal error is not retried");
    // Over a window: nothing more (the recheck is 30 minutes away).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(proxy.seen(GET), seen, "no call while stalled");

    // A pool that does not exist: UserPoolNotFound, stalled too.
    let spec = json!({"userPoolId": "eu-west-1_NoSuchPool1", "mfaConfiguration": "OFF"});
    proxy.clear();
    t.create("missing", spec).await;
    let p = wait_for_reason(&api, "missing", "UserPoolNotFound").await;
    assert_eq!(condition(&p, "Stalled").unwrap().0, "True");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_backs_off_and_recovers() {
    let t = Setup::new().await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    proxy.inject(GET, Fault::Throttle, None);
    let operator = t.operator(t.config(&proxy.url)).await;
    let pool = moto::create_pool(REGION).await;
    let api = t.api();
    let spec = json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}});
    t.create("throttled", spec).await;
    let p = wait_for_reason(&api, "throttled", "Throttled").await;
    assert_eq!(
        condition(&p, "Stalled").unwrap().0,
        "False",
        "throttling is waited out, not a person's problem"
    );
    let start = proxy.seen(GET);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let in_window = proxy.seen(GET) - start;
    // Each reconcile makes 3 attempts (the SDK's retries); reconciles back off at least 0.5 s,
    // 1 s, 2 s, 4 s, 8 s (the waits double; jitter takes at most half): at most 5 reconciles
    // in 10 s. A hot loop would make hundreds.
    assert!(
        in_window <= 15,
        "{in_window} requests in 10 s under persistent throttling"
    );
    assert!(operator.metric("cognito_mfa_aws_throttles_total{operation=\"GetUserPoolMfaConfig\"}") >= 3.0);

    proxy.clear();
    wait_for_reason(&api, "throttled", "Applied").await;
    operator.stop().await;
}
