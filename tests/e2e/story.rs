//! What a platform engineer sees of the real binary: its log lines and its `/metrics`, over one
//! scripted sequence (create, a spec change, steady checks, an out-of-band change and its
//! correction, an approval wait, a conflict, a missing pool, deletion), in both log formats.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_cognitoidentityprovider::types::UserPoolMfaType;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::{
    harness::{Setup, operator_command, wait, wait_for_reason},
    support::{
        fault_proxy::{Fault, FaultProxy},
        http_get, moto,
    },
};

const REGION: &str = "eu-west-1";
const EXTERNAL_ID: &str = "story-external-id-5e1f";

/// The binary, its stderr read line by line as it comes, and its metrics endpoint.
struct Binary {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    metrics_url: String,
}

impl Binary {
    async fn start(t: &Setup, format: &str, endpoint: &str) -> Self {
        let mut child = operator_command()
            .args(["--namespace", &t.ns.name])
            .args(["--label-selector", &format!("cognitomfa.io/e2e-run={}", t.run)])
            .args(["--metrics-addr", "127.0.0.1:0", "--log-format", format])
            .args(["--resync-interval", "1s", "--endpoint-url", endpoint])
            // The default filter, as users run it.
            .env_remove("RUST_LOG")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the operator starts");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut reader = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let serving = wait(Duration::from_secs(30), "the serving line", || async {
            lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("serving /metrics"))
                .cloned()
        })
        .await;
        let port: String = serving
            .split("127.0.0.1:")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {serving}"))
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Self {
            child,
            lines,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn metric(&self, series: &str) -> f64 {
        let (_, body) = http_get(&self.metrics_url).await;
        body.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    }

    async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .unwrap();
        assert!(exit.success(), "{exit:?}");
        // The reader drains what is left once the pipe closes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.lines()
    }
}

/// The fields of a log line: a JSON line's keys, or a text line's `key=value` pairs (values as
/// printed, quotes removed).
fn fields_of(line: &str, format: &str) -> Option<serde_json::Map<String, Value>> {
    if format == "json" {
        return serde_json::from_str::<Value>(line).ok()?.as_object().cloned();
    }
    // After the target (`cognito_mfa_operator::controller: `): the message, then the fields.
    let (_, body) = line.split_once(" cognito_mfa_operator::")?;
    let (_, body) = body.split_once(": ")?;
    let mut out = serde_json::Map::new();
    let mut rest = body;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].rsplit(' ').next().unwrap_or_default().to_owned();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            // Up to the first quote that is not escaped.
            let mut escaped = false;
            let end = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .map_or(quoted.len(), |(i, _)| i);
            (&quoted[..end], &quoted[(end + 1).min(quoted.len())..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.insert(key, Value::String(value.to_owned()));
        rest = next;
    }
    // The message is what precedes the first field.
    let message = body.split(" policy=").next().unwrap_or(body);
    out.insert("message".into(), Value::String(message.to_owned()));
    // The level follows the time stamp.
    let level = line.split_whitespace().nth(1).unwrap_or_default();
    out.insert("level".into(), Value::String(level.to_owned()));
    Some(out)
}

/// The lines whose message starts with `message`, as fields.
fn find(lines: &[String], format: &str, message: &str) -> Vec<serde_json::Map<String, Value>> {
    lines
        .iter()
        .filter_map(|l| fields_of(l, format))
        .filter(|f| {
            f.get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.starts_with(message))
        })
        .collect()
}

async fn patch_spec(t: &Setup, name: &str, spec: Value) {
    t.api()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": spec})),
        )
        .await
        .unwrap();
}

async fn the_story(format: &str) {
    let t = Setup::new().await;
    let api = t.api();
    // Cognito through a proxy that passes everything, until told to throttle.
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let operator = Binary::start(&t, format, &proxy.url).await;
    let pool = moto::create_pool(REGION).await;
    let sms = json!({"smsConfiguration": {"snsCallerArn": "arn:aws:iam::123456789012:role/cognito-sms", "externalId": EXTERNAL_ID}});
    t.create(
        "story",
        json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL",
               "softwareTokenMfaConfiguration": {"enabled": true},
               "smsMfaConfiguration": sms, "deletionPolicy": "Reset"}),
    )
    .await;
    wait_for_reason(&api, "story", "Applied").await;
    t.wait_for_event("story", "Applied").await;
    let drift = "cognito_mfa_drift_detected_total";
    let writes = |cause: &str| format!("cognito_mfa_aws_writes_total{{cause=\"{cause}\"}}");
    assert_eq!(operator.metric(drift).await, 0.0, "a first write is not drift");
    assert_eq!(operator.metric(&writes("first_apply")).await, 1.0);

    // Steady state: checks every second, and not a line at info.
    let gets = "cognito_mfa_aws_calls_total{operation=\"GetUserPoolMfaConfig\",outcome=\"ok\"}";
    let (quiet_from, gets_before) = (operator.lines().len(), operator.metric(gets).await);
    wait(Duration::from_secs(30), "three steady checks", || async {
        (operator.metric(gets).await >= gets_before + 3.0).then_some(())
    })
    .await;
    let steady = operator.lines()[quiet_from..].to_vec();
    assert!(steady.is_empty(), "steady-state checks logged: {steady:#?}");

    // A spec change.
    patch_spec(
        &t,
        "story",
        json!({"smsMfaConfiguration": {"smsAuthenticationMessage": "Your code is {####}"}}),
    )
    .await;
    wait(Duration::from_secs(60), "the spec change applied", || async {
        let p = api.get("story").await.ok()?;
        let s = p.status.as_ref()?;
        (s.observed_generation == Some(2)
            && s.observed
                .as_ref()?
                .sms_mfa_configuration
                .as_ref()?
                .sms_authentication_message
                .is_some())
        .then_some(())
    })
    .await;

    // Someone turns MFA off in the console; the next check corrects it.
    moto::set_mode_out_of_band(REGION, &pool, UserPoolMfaType::Off).await;
    wait_for_reason(&api, "story", "DriftCorrected").await;
    t.wait_for_event("story", "DriftCorrected").await;

    // A disruptive change waits.
    patch_spec(&t, "story", json!({"mfaConfiguration": "ON"})).await;
    wait_for_reason(&api, "story", "AwaitingApproval").await;
    t.wait_for_event("story", "AwaitingApproval").await;

    // A second policy for the same pool, and one for a pool that does not exist.
    t.create(
        "rival",
        json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
    )
    .await;
    wait_for_reason(&api, "rival", "Conflict").await;
    t.wait_for_event("rival", "Conflict").await;
    t.create(
        "ghost",
        json!({"userPoolId": "eu-west-1_NoSuchPool0", "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
    )
    .await;
    wait_for_reason(&api, "ghost", "UserPoolNotFound").await;
    t.wait_for_event("ghost", "UserPoolNotFound").await;

    // Deletion: the others first (deletionPolicy Retain: no write), then the owner (Reset).
    for name in ["ghost", "rival", "story"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
        wait(
            Duration::from_secs(60),
            &format!("{name} to be deleted"),
            || async { api.get_opt(name).await.unwrap().is_none().then_some(()) },
        )
        .await;
    }

    // Cognito throttles every attempt of one call: the SDK's retries give up, the reconcile
    // backs off and tries again.
    let reads_before = proxy.seen("GetUserPoolMfaConfig");
    proxy.inject("GetUserPoolMfaConfig", Fault::Throttle, Some(3));
    t.create(
        "flaky",
        json!({"userPoolId": moto::create_pool(REGION).await, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}),
    )
    .await;
    wait_for_reason(&api, "flaky", "Applied").await;
    t.wait_for_event("flaky", "Applied").await;
    assert!(
        proxy.seen("GetUserPoolMfaConfig") - reads_before >= 4,
        "throttled three times, then read"
    );

    // The counters: each cause once (the last policy's first write aside), one drift found and
    // corrected.
    for (series, value) in [
        (writes("first_apply"), 2.0),
        (writes("spec_change"), 1.0),
        (writes("drift_correction"), 1.0),
        (writes("deletion"), 1.0),
        (drift.to_owned(), 1.0),
        ("cognito_mfa_drift_corrected_total".to_owned(), 1.0),
        (
            "cognito_mfa_aws_calls_total{operation=\"SetUserPoolMfaConfig\",outcome=\"ok\"}".to_owned(),
            5.0,
        ),
        (
            "cognito_mfa_aws_calls_total{operation=\"GetUserPoolMfaConfig\",outcome=\"Throttled\"}"
                .to_owned(),
            1.0,
        ),
        (
            "cognito_mfa_aws_throttles_total{operation=\"GetUserPoolMfaConfig\"}".to_owned(),
            3.0,
        ),
        // The finalizer of deletionPolicy Reset, added and released.
        (
            "cognito_mfa_kubernetes_writes_total{kind=\"finalizer\"}".to_owned(),
            2.0,
        ),
        // Applied twice, DriftCorrected, AwaitingApproval and Reset for the first policy;
        // Conflict, UserPoolNotFound and Applied for the others.
        (
            "cognito_mfa_kubernetes_writes_total{kind=\"event\"}".to_owned(),
            8.0,
        ),
    ] {
        assert_eq!(operator.metric(&series).await, value, "{series}");
    }
    // Only the last policy is left, and the gauge says so once the deletions are seen.
    let gauge = |reason: &str| format!("cognito_mfa_policies{{reason=\"{reason}\"}}");
    wait(
        Duration::from_secs(30),
        "the gauge to forget deleted policies",
        || async {
            let mut left = 0.0;
            for reason in ["AwaitingApproval", "Conflict", "UserPoolNotFound"] {
                left += operator.metric(&gauge(reason)).await;
            }
            (left == 0.0).then_some(())
        },
    )
    .await;
    assert_eq!(operator.metric(&gauge("Applied")).await, 1.0);
    let lines = operator.stop().await;
    let all = lines.join("\n");
    assert!(!all.contains(EXTERNAL_ID), "an external ID in the logs:\n{all}");

    // One line for each thing that happened, with its fields.
    let ns = t.ns.name.as_str();
    let expect = |message: &str, policy: &str, reason: &str, extra: &[(&str, &str)]| {
        let found = find(&lines, format, message);
        let matching: Vec<_> = found
            .iter()
            .filter(|f| {
                f.get("policy").and_then(Value::as_str) == Some(policy)
                    && f.get("reason").and_then(Value::as_str) == Some(reason)
                    && extra
                        .iter()
                        .all(|(k, v)| f.get(*k).and_then(Value::as_str).is_some_and(|x| x.contains(v)))
            })
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "one {message:?} line for {policy} ({reason}, {extra:?}) in:\n{all}"
        );
        let line = matching[0];
        for (key, value) in [("namespace", ns), ("region", REGION)] {
            assert_eq!(
                line.get(key).and_then(Value::as_str),
                Some(value),
                "{key} in {line:?}"
            );
        }
        let pool_field = line.get("pool").and_then(Value::as_str).unwrap_or_default();
        assert!(pool_field.starts_with("eu-west-1_"), "pool in {line:?}");
    };
    expect(
        "applied the policy",
        "story",
        "Applied",
        &[("cause", "first_apply"), ("fields", "smsMfaConfiguration")],
    );
    expect(
        "applied the policy",
        "story",
        "Applied",
        &[("cause", "spec_change"), ("fields", "smsAuthenticationMessage")],
    );
    expect(
        "drift found",
        "story",
        "DriftDetected",
        &[("fields", "mfaConfiguration")],
    );
    expect(
        "drift corrected",
        "story",
        "DriftCorrected",
        &[("cause", "drift_correction"), ("fields", "mfaConfiguration")],
    );
    expect(
        "a disruptive change waits for approval",
        "story",
        "AwaitingApproval",
        &[("token", "cmp-")],
    );
    expect("conflict", "rival", "Conflict", &[("detail", "owned by policy")]);
    expect(
        "the policy waits on a person",
        "ghost",
        "UserPoolNotFound",
        &[("error", "ResourceNotFoundException")],
    );
    expect(
        "deletion policy applied",
        "story",
        "Reset",
        &[("cause", "deletion")],
    );
    expect("finalizer released", "story", "Deleted", &[]);
    expect(
        "Cognito call failed after retries",
        "flaky",
        "Throttled",
        &[("error", "TooManyRequestsException")],
    );
    // Retries that give up are warnings; the rest is information (what needs a person is also
    // a Warning event and a Stalled condition).
    for (message, level) in [
        ("applied the policy", "INFO"),
        ("drift found", "INFO"),
        ("drift corrected", "INFO"),
        ("a disruptive change waits for approval", "INFO"),
        ("deletion policy applied", "INFO"),
        ("finalizer released", "INFO"),
        ("conflict", "INFO"),
        ("the policy waits on a person", "INFO"),
        ("Cognito call failed after retries", "WARN"),
    ] {
        for line in find(&lines, format, message) {
            assert_eq!(line.get("level").and_then(Value::as_str), Some(level), "{line:?}");
        }
    }
    if format == "json" {
        for line in &lines {
            assert!(serde_json::from_str::<Value>(line).is_ok(), "not JSON: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_and_metrics_tell_the_story() {
    the_story("json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_and_metrics_tell_the_story() {
    the_story("text").await;
}
