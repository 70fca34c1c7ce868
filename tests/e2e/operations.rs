//! Operations: leader election and failover, the API server restarted under a running
//! operator, the metrics and probe endpoints, and the real binary with graceful shutdown.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use cognito_mfa_operator::{controller::LeaseSettings, server, telemetry::Metrics};
use kube::api::PostParams;
use serde_json::json;

use crate::{
    harness::{Operator, Setup, policy, unique, wait, wait_for_reason},
    support::moto,
};

const REGION: &str = "eu-west-1";

fn totp(pool: &str) -> serde_json::Value {
    json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_takes_over_when_the_leader_dies() {
    let t = Setup::new().await;
    let lease_name = unique("lease");
    let start = |identity: &str| {
        let mut config = t.config(&moto::endpoint());
        config.lease = Some(LeaseSettings {
            namespace: t.ns.name.clone(),
            name: lease_name.clone(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(3),
        });
        t.operator(config)
    };
    let a = start("instance-a").await;
    let b = start("instance-b").await;
    let leaders =
        |a: &Operator, b: &Operator| a.metric("cognito_mfa_leader") + b.metric("cognito_mfa_leader");
    wait(Duration::from_secs(30), "a leader", || async {
        (leaders(&a, &b) == 1.0).then_some(())
    })
    .await;
    let api = t.api();
    t.create("first", totp(&moto::create_pool(REGION).await)).await;
    wait_for_reason(&api, "first", "Applied").await;
    assert_eq!(leaders(&a, &b), 1.0, "exactly one instance reconciles");

    // The leader crashes without releasing the Lease; the standby takes over when it lapses.
    let (leader, standby) = if a.metric("cognito_mfa_leader") == 1.0 {
        (a, b)
    } else {
        (b, a)
    };
    let reconciles_before = standby.metric("cognito_mfa_reconciles_total{result=\"Applied\"}");
    assert_eq!(reconciles_before, 0.0, "a standby does not reconcile");
    leader.kill();
    t.create("second", totp(&moto::create_pool(REGION).await)).await;
    wait_for_reason(&api, "second", "Applied").await;
    assert_eq!(standby.metric("cognito_mfa_leader"), 1.0);
    standby.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn survives_an_api_server_restart() {
    // Restarting needs the local API server's script; on another cluster there is nothing this
    // test may restart.
    let Ok(state) = std::env::var("CMO_APISERVER_STATE") else {
        eprintln!(
            "skipped: CMO_APISERVER_STATE is not set (the local API server of hack/test.sh is not in use)"
        );
        return;
    };
    let t = Setup::new().await;
    let mut config = t.config(&moto::endpoint());
    config.resync = Duration::from_secs(2);
    let operator = t.operator(config).await;
    let api = t.api();
    let pool = moto::create_pool(REGION).await;
    t.create("before", totp(&pool)).await;
    wait_for_reason(&api, "before", "Applied").await;

    // The API server goes away for five seconds; meanwhile the pool drifts.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/local-apiserver.sh");
    let restart = tokio::process::Command::new("bash")
        .args([script, "restart-apiserver", &state, "5"])
        .output();
    let restart = tokio::spawn(restart);
    tokio::time::sleep(Duration::from_secs(2)).await;
    moto::set_mode_out_of_band(
        REGION,
        &pool,
        aws_sdk_cognitoidentityprovider::types::UserPoolMfaType::Off,
    )
    .await;
    let out = restart.await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The drift is corrected (the AWS side does not need the API server), and the status says so
    // once the server is back.
    wait(Duration::from_secs(60), "the drift to be corrected", || async {
        let mode = moto::mfa_config(REGION, &pool).await.mfa_configuration;
        (mode == Some(aws_sdk_cognitoidentityprovider::types::UserPoolMfaType::Optional)).then_some(())
    })
    .await;
    let p = wait(
        Duration::from_secs(60),
        "the status after the restart",
        || async {
            let p = api.get("before").await.ok()?;
            let drift = p.status.as_ref()?.drift.clone()?;
            drift.fields.contains(&"mfaConfiguration".to_owned()).then_some(p)
        },
    )
    .await;
    assert_eq!(crate::harness::condition(&p, "Ready").unwrap().0, "True");

    // The operator's watch re-establishes itself: a policy created after the restart is handled.
    t.create("after", totp(&moto::create_pool(REGION).await)).await;
    wait_for_reason(&api, "after", "Applied").await;
    operator.stop().await;
}

/// Stopped before its first list (a SIGTERM during start-up, here an API server that never
/// answers), the operator stops: it has reconciled nothing, so nothing waits to finish. The
/// bound only catches a hang; a stop takes milliseconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_before_the_first_list_stops() {
    let mut config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    config.connect_timeout = Some(Duration::from_secs(1));
    let unreachable = kube::Client::try_from(config).unwrap();
    let mut settings = crate::harness::OperatorConfig::new(&unique("run"), &moto::endpoint());
    settings.baselines = true;
    let operator = Operator::start(&unreachable, settings).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !operator.ready.load(std::sync::atomic::Ordering::SeqCst),
        "nothing was listed"
    );
    tokio::time::timeout(Duration::from_secs(60), operator.stop())
        .await
        .expect("the operator stops without its first list");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_probes() {
    let t = Setup::new().await;
    let operator = t.operator(t.config(&moto::endpoint())).await;
    let (addr, _server) = server::serve(
        "127.0.0.1:0".parse().unwrap(),
        operator.metrics.clone(),
        operator.ready.clone(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let api = t.api();
    t.create("measured", totp(&moto::create_pool(REGION).await)).await;
    wait_for_reason(&api, "measured", "Applied").await;
    let get = |path: &'static str| async move {
        let out = crate::support::http_get(&format!("http://{addr}{path}")).await;
        (out.0, out.1)
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await.0, 200);
    let (code, body) = get("/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "cognito_mfa_reconciles_total{result=\"Applied\"} ",
        "cognito_mfa_aws_calls_total{operation=\"GetUserPoolMfaConfig\",outcome=\"ok\"} ",
        "cognito_mfa_aws_calls_total{operation=\"SetUserPoolMfaConfig\",outcome=\"ok\"} 1",
        "cognito_mfa_policies{reason=\"Applied\"} 1",
        "cognito_mfa_reconcile_duration_seconds_count ",
        "cognito_mfa_leader 1",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    operator.stop().await;

    // Not ready before the first view of the policies.
    let (addr, _server) = server::serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(false)),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        crate::support::http_get(&format!("http://{addr}/readyz")).await.0,
        503
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_runs_and_shuts_down_gracefully() {
    let t = Setup::new().await;
    let api = t.api();
    let pool = moto::create_pool(REGION).await;
    // Without a label: the binary watches the test's namespace only.
    let mut p = policy("binary", "none", totp(&pool));
    p.metadata.labels = None;
    api.create(&PostParams::default(), &p).await.unwrap();

    let mut child = crate::harness::operator_command()
        .args([
            "--namespace",
            &t.ns.name,
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(["--endpoint-url", &moto::endpoint()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_reason(&api, "binary", "Applied").await;

    // SIGTERM: a clean exit.
    let pid = child.id().unwrap() as i32;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut logs)
        .await
        .unwrap();
    let first = logs.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "--log-format json: {first}"
    );
    assert!(logs.contains("shutting down"), "{logs}");
}
