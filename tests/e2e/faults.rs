//! Fault injection: Cognito's errors of every class, a throttling storm, the operator killed in
//! the middle of its writes, bad input, and Kubernetes faults (broken watches, status patch
//! conflicts). Each test asserts the end state and a bound on the effort spent.
//!
//! Cognito faults come from the project's fault proxy in front of moto; Kubernetes faults from
//! the Kubernetes fault proxy in front of the API server, or the API server itself restarted
//! (operations.rs).

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserPoolMfaType;
use cognito_mfa_operator::controller::Timing;
use kube::api::{Patch, PatchParams, PostParams};
use rand::RngExt as _;
use rstest::rstest;
use serde_json::json;

use crate::{
    harness::{Operator, Setup, condition, policy, wait, wait_for_reason},
    support::{
        cases,
        fault_proxy::{Fault, FaultProxy, max_in_window},
        kube_proxy::KubeProxy,
        moto,
    },
};

const REGION: &str = "eu-west-1";
const GET: &str = "GetUserPoolMfaConfig";
const SET: &str = "SetUserPoolMfaConfig";

fn totp() -> serde_json::Value {
    json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}})
}

fn with_pool(pool: &str, mut spec: serde_json::Value) -> serde_json::Value {
    spec["userPoolId"] = json!(pool);
    spec
}

/// Every wait of the operator divided by this: ten minutes of retries take ten seconds.
const SCALE: u32 = 60;
const WINDOW: Duration = Duration::from_secs(10);

/// The most reconciles that fit in `window` when the waits start at `base` and double up to
/// `cap`, each at least half its ceiling (the operator's jitter): what no loop can exceed.
fn most_reconciles(window: Duration, base: Duration, cap: Duration) -> usize {
    let (mut elapsed, mut ceiling, mut reconciles) = (Duration::ZERO, base, 1);
    loop {
        elapsed += ceiling / 2;
        if elapsed > window {
            return reconciles;
        }
        reconciles += 1;
        ceiling = (ceiling * 2).min(cap);
    }
}

/// How the operator treats a persistent error: the faulted operation, the reason and Stalled it
/// reports, and the most requests of that operation in ten (simulated) minutes.
#[rstest]
#[case::throttled(GET, Fault::Throttle, "Throttled", false)]
#[case::internal_error(GET, Fault::Error(500, "InternalErrorException"), "AwsUnavailable", false)]
#[case::connection_reset(GET, Fault::Reset, "AwsUnavailable", false)]
#[case::access_denied(GET, Fault::Error(400, "AccessDeniedException"), "AccessDenied", true)]
#[case::not_authorized(GET, Fault::Error(400, "NotAuthorizedException"), "AccessDenied", true)]
#[case::pool_gone(GET, Fault::Error(400, "ResourceNotFoundException"), "UserPoolNotFound", true)]
#[case::concurrent_modification(
    SET,
    Fault::Error(400, "ConcurrentModificationException"),
    "AwsUnavailable",
    false
)]
#[case::invalid_sms_role(
    SET,
    Fault::Error(400, "InvalidSmsRoleTrustRelationshipException"),
    "InvalidSmsRole",
    true
)]
#[case::invalid_parameter(SET, Fault::Error(400, "InvalidParameterException"), "InvalidSpec", true)]
#[case::tier(
    SET,
    Fault::Error(400, "FeatureUnavailableInTierException"),
    "FeatureUnavailableInTier",
    true
)]
#[case::not_enabled(
    SET,
    Fault::Error(400, "OperationNotEnabledException"),
    "OperationNotEnabled",
    true
)]
#[tokio::test(flavor = "multi_thread")]
async fn persistent_errors_are_reported_and_bounded(
    #[case] operation: &str,
    #[case] fault: Fault,
    #[case] reason: &str,
    #[case] stalls: bool,
) {
    let t = Setup::new().await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    proxy.inject(operation, fault, None);
    let timing = Timing::scaled_down(SCALE);
    let mut config = t.config(&proxy.url);
    config.resync = Duration::from_secs(600) / SCALE;
    config.stalled_recheck = Duration::from_secs(1800) / SCALE;
    config.timing = timing.clone();
    config.sdk_backoff = (Duration::from_millis(200) / SCALE, Duration::from_secs(5) / SCALE);
    let operator = t.operator(config).await;
    let pool = moto::create_pool(REGION).await;
    t.create("faulty", with_pool(&pool, totp())).await;
    let p = wait_for_reason(&t.api(), "faulty", reason).await;
    assert_eq!(condition(&p, "Synced").unwrap().0, "False");
    tokio::time::sleep(WINDOW).await;
    let requests = proxy.seen(operation);
    let attempts_per_call = if fault_is_retried_by_the_sdk(fault) { 3 } else { 1 };
    let bound = match reason {
        _ if stalls && reason != "InvalidSmsRole" => 1,
        "InvalidSmsRole" => {
            most_reconciles(
                timing.sms_role_grace,
                timing.sms_role_retry_base,
                timing.sms_role_retry_cap,
            ) + 1
        }
        _ if operation == SET => most_reconciles(WINDOW, timing.short_retry_base, timing.short_retry_cap),
        _ => most_reconciles(WINDOW, timing.backoff_base, timing.backoff_cap),
    } * attempts_per_call;
    assert!(
        requests <= bound,
        "{requests} {operation} requests in ten simulated minutes of {fault:?}; at most {bound}"
    );
    assert!(requests >= 1);
    let p = t.api().get("faulty").await.unwrap();
    assert_eq!(
        condition(&p, "Stalled").unwrap().0,
        if stalls { "True" } else { "False" },
        "{p:?}"
    );
    assert_eq!(condition(&p, "Ready").unwrap().1, reason);
    // Nothing was written while the error lasted.
    if operation == GET {
        assert_eq!(proxy.seen(SET), 0);
    }
    assert_eq!(
        moto::mfa_config(REGION, &pool).await.mfa_configuration,
        Some(UserPoolMfaType::Off)
    );
    operator.stop().await;
}

fn fault_is_retried_by_the_sdk(fault: Fault) -> bool {
    match fault {
        Fault::Throttle | Fault::Reset => true,
        Fault::Error(status, code) => status >= 500 || code == "TooManyRequestsException",
        Fault::InternalError => true,
        Fault::Delay(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_cognito_only_slows_the_operator_down() {
    let t = Setup::new().await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    // Every answer a third of a second late: slow, but within every timeout.
    proxy.inject(GET, Fault::Delay(Duration::from_millis(300)), None);
    proxy.inject(SET, Fault::Delay(Duration::from_millis(300)), None);
    let operator = t.operator(t.config(&proxy.url)).await;
    let pool = moto::create_pool(REGION).await;
    t.create("slow", with_pool(&pool, totp())).await;
    wait_for_reason(&t.api(), "slow", "Applied").await;
    // One read, one write (its answer is the read-back): nothing retried, nothing timed out.
    assert_eq!((proxy.seen(GET), proxy.seen(SET)), (1, 1));
    assert_eq!(
        moto::mfa_config(REGION, &pool).await.mfa_configuration,
        Some(UserPoolMfaType::Optional)
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttling_storm_slows_the_operator_and_loses_nothing() {
    const POLICIES: usize = 20;
    let t = Setup::new().await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let mut config = t.config(&proxy.url);
    config.budget = (10, 4);
    config.timing = Timing::scaled_down(10);
    let operator = t.operator(config).await;
    let mut pools = Vec::new();
    for _ in 0..POLICIES {
        pools.push(moto::create_pool(REGION).await);
    }
    // The storm: every call is throttled while the policies arrive and some change again.
    proxy.inject(GET, Fault::Throttle, None);
    proxy.inject(SET, Fault::Throttle, None);
    for (i, pool) in pools.iter().enumerate() {
        t.create(&format!("p{i}"), with_pool(pool, totp())).await;
    }
    wait_for_reason(&t.api(), "p0", "Throttled").await;
    let sms = json!({"spec": {"smsMfaConfiguration": {"smsAuthenticationMessage": "Storm {####}",
        "smsConfiguration": {"snsCallerArn": "arn:aws:iam::123456789012:role/sms"}}}});
    for i in 0..5 {
        t.api()
            .patch(&format!("p{i}"), &PatchParams::default(), &Patch::Merge(&sms))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(operator.metric("cognito_mfa_aws_throttles_total{operation=\"GetUserPoolMfaConfig\"}") > 0.0);
    proxy.clear();

    // Converges, with every update applied.
    for i in 0..POLICIES {
        let name = format!("p{i}");
        wait(
            Duration::from_secs(120),
            &format!("{name} to be ready"),
            || async {
                let p = t.api().get(&name).await.ok()?;
                let current = p.status.as_ref()?.observed_generation == p.metadata.generation;
                (current && condition(&p, "Ready").is_some_and(|(s, _, _)| s == "True")).then_some(())
            },
        )
        .await;
    }
    for (i, pool) in pools.iter().enumerate() {
        let live = moto::mfa_config(REGION, pool).await;
        assert_eq!(live.mfa_configuration, Some(UserPoolMfaType::Optional), "p{i}");
        let message = live
            .sms_mfa_configuration
            .and_then(|s| s.sms_authentication_message);
        assert_eq!(
            message.as_deref(),
            (i < 5).then_some("Storm {####}"),
            "p{i}: the update during the storm"
        );
    }
    // Within the budget all along, retries included (0.9 s windows: a slow machine only
    // spreads requests further).
    let reads = max_in_window(&proxy.arrivals(GET), Duration::from_millis(900));
    let writes = max_in_window(&proxy.arrivals(SET), Duration::from_millis(900));
    assert!(
        reads <= 10 && writes <= 4,
        "{reads} reads, {writes} writes in a second"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_write_it_converges_with_one_redundant_write_per_kill_at_most() {
    const POLICIES: usize = 30;
    const KILLS: usize = 20;
    let t = Setup::new().await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let mut pools = Vec::new();
    for i in 0..POLICIES {
        let pool = moto::create_pool(REGION).await;
        let mut p = policy(&format!("k{i}"), "none", with_pool(&pool, totp()));
        p.metadata.labels = None;
        t.api().create(&PostParams::default(), &p).await.unwrap();
        pools.push(pool);
    }
    // Three writes a second: the thirty writes take ten seconds, across the kills.
    let spawn = || {
        crate::harness::operator_command()
            .args(["--namespace", &t.ns.name, "--metrics-addr", "127.0.0.1:0"])
            .args([
                "--endpoint-url",
                &proxy.url,
                "--aws-write-rps",
                "3",
                "--aws-read-rps",
                "15",
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("the operator starts")
    };
    let mut delays = Vec::new();
    for _ in 0..KILLS {
        let mut operator = spawn();
        let delay = Duration::from_millis(rand::rng().random_range(300..1200));
        delays.push(delay);
        tokio::time::sleep(delay).await;
        operator.start_kill().unwrap(); // SIGKILL: no cleanup at all.
        operator.wait().await.unwrap();
    }
    let writes_before_last = proxy.seen(SET);
    let mut last = spawn();
    for i in 0..POLICIES {
        let name = format!("k{i}");
        wait(
            Duration::from_secs(120),
            &format!("{name} to be ready"),
            || async {
                let p = t.api().get(&name).await.ok()?;
                condition(&p, "Ready")
                    .is_some_and(|(s, _, _)| s == "True")
                    .then_some(())
            },
        )
        .await;
    }
    last.start_kill().unwrap();
    for (i, pool) in pools.iter().enumerate() {
        let live = moto::mfa_config(REGION, pool).await;
        assert_eq!(live.mfa_configuration, Some(UserPoolMfaType::Optional), "k{i}");
        assert_eq!(
            live.software_token_mfa_configuration.map(|s| s.enabled),
            Some(true),
            "k{i}"
        );
    }
    let writes = proxy.seen(SET);
    assert!(
        writes <= POLICIES + KILLS,
        "{writes} writes for {POLICIES} changes and {KILLS} kills (after {delays:?}); {writes_before_last} before the last start"
    );
    assert!(
        writes_before_last > 0,
        "the kills came while writes were under way"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_is_refused_at_admission_or_reported_without_aws_calls() {
    let t = Setup::new().await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let operator = t.operator(t.config(&proxy.url)).await;
    let mut reported = Vec::new();
    for (name, patch, field) in cases::invalid_specs() {
        // All name the same pool: an invalid spec is refused before ownership or AWS.
        let spec = cases::spec_with(patch);
        let object = format!("case-{}", name.replace('_', "-"));
        match t
            .api()
            .create(&PostParams::default(), &policy(&object, &t.run, spec))
            .await
        {
            // Where the schema (or CEL, on 1.25+) can say it, admission refuses, naming the field.
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(e.message.contains(field), "{name}: {}", e.message);
            }
            Err(e) => panic!("{name}: {e}"),
            // Where it cannot, the operator reports it, naming the field, without calling AWS.
            Ok(_) => reported.push((object, field)),
        }
    }
    for (object, field) in &reported {
        let p = wait_for_reason(&t.api(), object, "InvalidSpec").await;
        let (_, _, message) = condition(&p, "Ready").unwrap();
        assert!(message.contains(field), "{object}: {message}");
        assert_eq!(condition(&p, "Stalled").unwrap().0, "True");
    }
    assert_eq!(
        proxy.seen(GET) + proxy.seen(SET),
        0,
        "no AWS call for an invalid spec"
    );
    eprintln!(
        "{} refused at admission, {} reported by the operator",
        cases::invalid_specs().len() - reported.len(),
        reported.len()
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_watches_lose_no_update() {
    let t = Setup::new().await;
    let kube = KubeProxy::start(t.client.clone()).await;
    let operator = Operator::start(&kube.client(), t.config(&moto::endpoint())).await;
    let pool = moto::create_pool(REGION).await;
    t.create("watched", with_pool(&pool, totp())).await;
    wait_for_reason(&t.api(), "watched", "Applied").await;
    let off = json!({"spec": {"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null}});
    let on =
        json!({"spec": {"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}});
    for round in 0..10 {
        kube.break_watches();
        let patch = if round % 2 == 0 { &off } else { &on };
        t.api()
            .patch("watched", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The last change (round 9: OPTIONAL) reaches the pool, whatever the cuts.
    let p = wait(Duration::from_secs(60), "the last generation", || async {
        let p = t.api().get("watched").await.ok()?;
        let current = p.status.as_ref()?.observed_generation == p.metadata.generation;
        (current && condition(&p, "Ready").is_some_and(|(s, _, _)| s == "True")).then_some(p)
    })
    .await;
    assert_eq!(p.metadata.generation, Some(11));
    assert_eq!(
        moto::mfa_config(REGION, &pool).await.mfa_configuration,
        Some(UserPoolMfaType::Optional)
    );
    assert!(kube.watches_cut() >= 10, "{} watches cut", kube.watches_cut());
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_patch_conflicts_are_retried_without_writing_twice() {
    let t = Setup::new().await;
    let kube = KubeProxy::start(t.client.clone()).await;
    let mut config = t.config(&moto::endpoint());
    config.timing = Timing::scaled_down(10);
    let operator = Operator::start(&kube.client(), config).await;
    kube.conflict_next_status_patches(3);
    let pool = moto::create_pool(REGION).await;
    t.create("contended", with_pool(&pool, totp())).await;
    let p = wait_for_reason(&t.api(), "contended", "Applied").await;
    assert_eq!(kube.conflicts_sent(), 3);
    assert!(kube.status_patches() >= 4, "retried after each conflict");
    assert_eq!(moto::calls(&pool, SET).await, 1, "the AWS write is not repeated");
    // adoptedFrom goes with the status that reports the write: refused, it is kept for the retry.
    assert_eq!(
        p.status
            .unwrap()
            .adopted_from
            .map(|a| a.mfa_configuration.to_string()),
        Some("OFF".to_owned())
    );
    assert!(operator.metric("cognito_mfa_reconciles_total{result=\"Error\"}") >= 1.0);
    operator.stop().await;
}
