//! The offline commands against a real Cognito-compatible server: moto's server on loopback,
//! reached through the real SDK client. moto's request recorder counts the writes.

use aws_sdk_cognitoidentityprovider::types as aws;
use serde_json::Value;

use crate::support::{
    TempFile, cli,
    fault_proxy::{Fault, FaultProxy},
    moto,
};

const REGION: &str = "eu-west-1";
const SMS_ROLE: &str = "arn:aws:iam::123456789012:role/cognito-sms";

fn policy_yaml(pool: &str, body: &str) -> String {
    format!(
        "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaPolicy\nmetadata:\n  name: shop\n  namespace: identity\nspec:\n  userPoolId: {pool}\n{body}"
    )
}

const TOTP_AND_SMS: &str = r#"  mfaConfiguration: OPTIONAL
  softwareTokenMfaConfiguration: {enabled: true}
  smsMfaConfiguration:
    smsAuthenticationMessage: "Your code is {####}"
    smsConfiguration: {snsCallerArn: "arn:aws:iam::123456789012:role/cognito-sms", externalId: "ext-secret-1"}
"#;

/// The pool's configuration, comparable across reads.
async fn snapshot(pool: &str) -> String {
    let l = moto::mfa_config(REGION, pool).await;
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        l.mfa_configuration,
        l.software_token_mfa_configuration,
        l.sms_mfa_configuration,
        l.email_mfa_configuration,
        l.web_authn_configuration
    )
}

/// A new pool with TOTP_AND_SMS applied through the CLI, and its snapshot.
async fn applied(endpoint: &str) -> (String, String) {
    let pool = moto::create_pool(REGION).await;
    let file = TempFile::new("p.yaml", &policy_yaml(&pool, TOTP_AND_SMS));
    assert_eq!(run(&["apply"], &file, endpoint).await.code, 0);
    let before = snapshot(&pool).await;
    (pool, before)
}

async fn run(args: &[&str], file: &TempFile, endpoint: &str) -> crate::support::CliOutput {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-f", &file.path, "--endpoint-url", endpoint]);
    cli(&all, None).await
}

#[tokio::test]
async fn apply_then_plan_is_clean_and_reads_back() {
    let pool = moto::create_pool(REGION).await;
    let file = TempFile::new("p.yaml", &policy_yaml(&pool, TOTP_AND_SMS));
    let endpoint = moto::endpoint();

    let planned = run(&["plan"], &file, &endpoint).await;
    assert_eq!(planned.code, 2, "plan with changes pending exits 2: {planned:?}");
    assert!(
        planned.stdout.contains("mfaConfiguration: OFF -> OPTIONAL"),
        "{}",
        planned.stdout
    );
    assert!(
        !planned.stdout.contains("ext-secret-1"),
        "external IDs are never shown"
    );
    assert_eq!(
        moto::calls(&pool, "SetUserPoolMfaConfig").await,
        0,
        "plan never writes"
    );

    let applied = run(&["apply"], &file, &endpoint).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied.stdout.contains("read back: the pool matches the policy"),
        "{}",
        applied.stdout
    );
    assert_eq!(moto::calls(&pool, "SetUserPoolMfaConfig").await, 1);

    let after = moto::mfa_config(REGION, &pool).await;
    assert_eq!(after.mfa_configuration, Some(aws::UserPoolMfaType::Optional));
    assert_eq!(
        after.software_token_mfa_configuration.map(|t| t.enabled),
        Some(true)
    );
    let sms = after.sms_mfa_configuration.unwrap();
    assert_eq!(
        sms.sms_authentication_message.as_deref(),
        Some("Your code is {####}")
    );
    assert_eq!(
        sms.sms_configuration.unwrap().external_id.as_deref(),
        Some("ext-secret-1")
    );

    let again = run(&["plan", "-o", "json"], &file, &endpoint).await;
    assert_eq!(again.code, 0, "{again:?}");
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report[0]["action"], "InSync");
    assert_eq!(report[0]["changes"], serde_json::json!([]));

    // Applying again is a no-op: no write.
    let reapplied = run(&["apply"], &file, &endpoint).await;
    assert_eq!(reapplied.code, 0);
    assert_eq!(moto::calls(&pool, "SetUserPoolMfaConfig").await, 1);
}

#[tokio::test]
async fn export_then_apply_is_a_no_op() {
    let pool = moto::create_pool(REGION).await;
    let endpoint = moto::endpoint();
    // A pool configured by someone else.
    moto::client(REGION)
        .await
        .set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .mfa_configuration(aws::UserPoolMfaType::On)
        .software_token_mfa_configuration(aws::SoftwareTokenMfaConfigType::builder().enabled(true).build())
        .sms_mfa_configuration(
            aws::SmsMfaConfigType::builder()
                .sms_authentication_message("Code: {####}")
                .sms_configuration(
                    aws::SmsConfigurationType::builder()
                        .sns_caller_arn(SMS_ROLE)
                        .external_id("x-1")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sets_before = moto::calls(&pool, "SetUserPoolMfaConfig").await;

    let exported = cli(
        &[
            "export",
            "--user-pool-id",
            &pool,
            "--namespace",
            "identity",
            "--endpoint-url",
            &endpoint,
        ],
        None,
    )
    .await;
    assert_eq!(exported.code, 0, "{exported:?}");
    assert!(
        exported.stdout.contains("mfaConfiguration: \"ON\""),
        "ON is quoted for YAML 1.1 readers: {}",
        exported.stdout
    );
    let file = TempFile::new("exported.yaml", &exported.stdout);

    let applied = run(&["apply"], &file, &endpoint).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(applied.stdout.contains("No changes"), "{}", applied.stdout);
    assert_eq!(
        moto::calls(&pool, "SetUserPoolMfaConfig").await,
        sets_before,
        "zero Set calls"
    );

    // The exported policy is a valid policy in every respect (the offline commands parse it as
    // admission would).
    let policies = cognito_mfa_operator::cli::parse_policies(&exported.stdout).unwrap();
    assert_eq!(policies[0].metadata.namespace.as_deref(), Some("identity"));
}

#[tokio::test]
async fn out_of_band_change_shows_in_plan_and_apply_undoes_it() {
    let pool = moto::create_pool(REGION).await;
    let endpoint = moto::endpoint();
    let file = TempFile::new("p.yaml", &policy_yaml(&pool, TOTP_AND_SMS));
    assert_eq!(run(&["apply"], &file, &endpoint).await.code, 0);

    // Someone turns TOTP off and SMS off behind the operator's back.
    moto::set_mode_out_of_band(REGION, &pool, aws::UserPoolMfaType::Off).await;

    let planned = run(&["plan", "-o", "json"], &file, &endpoint).await;
    assert_eq!(planned.code, 2, "{planned:?}");
    let report: Value = serde_json::from_str(&planned.stdout).unwrap();
    let fields: Vec<&str> = report[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"mfaConfiguration") && fields.contains(&"smsMfaConfiguration"),
        "{fields:?}"
    );

    let applied = run(&["apply"], &file, &endpoint).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert_eq!(
        moto::mfa_config(REGION, &pool).await.mfa_configuration,
        Some(aws::UserPoolMfaType::Optional)
    );
    assert_eq!(run(&["plan"], &file, &endpoint).await.code, 0);
}

#[tokio::test]
async fn disruptive_change_needs_the_annotation() {
    let endpoint = moto::endpoint();
    let (pool, before) = applied(&endpoint).await;

    let on = TOTP_AND_SMS.replace("mfaConfiguration: OPTIONAL", "mfaConfiguration: \"ON\"");
    let file = TempFile::new("on.yaml", &policy_yaml(&pool, &on));
    let refused = run(&["apply"], &file, &endpoint).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stdout.contains("cognitomfa.io/allow-disruptive-changes"),
        "{}",
        refused.stdout
    );
    assert_eq!(snapshot(&pool).await, before, "nothing written");

    // plan gives the change's token, the same each time, in text and in JSON.
    let planned = run(&["plan", "-o", "json"], &file, &endpoint).await;
    let report: Value = serde_json::from_str(&planned.stdout).unwrap();
    let token = report[0]["approvalToken"].as_str().expect("a token").to_owned();
    let text = run(&["plan"], &file, &endpoint).await;
    assert!(
        text.stdout
            .contains(&format!("cognitomfa.io/approve-change: {token}")),
        "{}",
        text.stdout
    );
    // A token of another change approves nothing here.
    let wrong = policy_yaml(&pool, &on).replace(
        "  namespace: identity\n",
        "  namespace: identity\n  annotations:\n    cognitomfa.io/approve-change: cmp-000000000000\n",
    );
    let refused = run(&["apply"], &TempFile::new("wrong.yaml", &wrong), &endpoint).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert_eq!(snapshot(&pool).await, before, "nothing written");
    // Its own token does.
    let one = policy_yaml(&pool, &on).replace(
        "  namespace: identity\n",
        &format!("  namespace: identity\n  annotations:\n    cognitomfa.io/approve-change: {token}\n"),
    );
    let applied = run(&["apply"], &TempFile::new("one.yaml", &one), &endpoint).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert_eq!(
        moto::mfa_config(REGION, &pool).await.mfa_configuration,
        Some(aws::UserPoolMfaType::On)
    );
    // Back to OPTIONAL (not disruptive), then the standing approval.
    let optional = run(
        &["apply"],
        &TempFile::new("opt.yaml", &policy_yaml(&pool, TOTP_AND_SMS)),
        &endpoint,
    )
    .await;
    assert_eq!(optional.code, 0, "{optional:?}");

    let approved = policy_yaml(&pool, &on).replace(
        "  namespace: identity\n",
        "  namespace: identity\n  annotations:\n    cognitomfa.io/allow-disruptive-changes: \"true\"\n",
    );
    let applied = run(&["apply"], &TempFile::new("approved.yaml", &approved), &endpoint).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert_eq!(
        moto::mfa_config(REGION, &pool).await.mfa_configuration,
        Some(aws::UserPoolMfaType::On)
    );
}

#[tokio::test]
async fn observe_policies_are_never_written() {
    let pool = moto::create_pool(REGION).await;
    let body = format!("{TOTP_AND_SMS}  managementPolicy: Observe\n");
    let file = TempFile::new("observe.yaml", &policy_yaml(&pool, &body));
    let out = run(&["apply"], &file, &moto::endpoint()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Not applied") || out.stdout.contains("change(s)"),
        "{}",
        out.stdout
    );
    assert_eq!(moto::calls(&pool, "SetUserPoolMfaConfig").await, 0);
}

/// Bad input: a non-zero exit, one message naming the cause, and the pool unchanged.
#[rstest::rstest]
#[case::malformed_yaml("spec: [", "not valid YAML")]
#[case::wrong_kind(
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    "expected apiVersion cognitomfa.io/v1alpha1"
)]
#[case::unknown_field("POLICY  mfaConfig: OFF\n", "unknown field(s): spec.mfaConfig")]
#[case::unquoted_off("POLICY_OFF", "is a boolean; quote the mode")]
#[case::rule_violation("POLICY_OFF_WITH_TOTP", "mfaConfiguration OFF allows no")]
#[case::limit_violation(
    "POLICY_BAD_MESSAGE",
    "spec.smsMfaConfiguration.smsAuthenticationMessage: must contain {####}"
)]
#[case::bad_enum("POLICY_MAYBE", "unknown variant `MAYBE`")]
#[case::empty("", "no CognitoMfaPolicy document found")]
#[tokio::test]
async fn bad_input_is_rejected_before_any_call(#[case] input: &str, #[case] message: &str) {
    let endpoint = moto::endpoint();
    let (pool, before) = applied(&endpoint).await;
    let gets_before = moto::calls(&pool, "GetUserPoolMfaConfig").await;
    let text = match input {
        "POLICY_OFF" => policy_yaml(&pool, "  mfaConfiguration: OFF\n"),
        "POLICY_OFF_WITH_TOTP" => policy_yaml(
            &pool,
            "  mfaConfiguration: \"OFF\"\n  softwareTokenMfaConfiguration: {enabled: false}\n",
        ),
        "POLICY_BAD_MESSAGE" => policy_yaml(&pool, &TOTP_AND_SMS.replace("Your code is {####}", "Your code")),
        "POLICY_MAYBE" => policy_yaml(&pool, "  mfaConfiguration: MAYBE\n"),
        other => other.replace("POLICY", &policy_yaml(&pool, TOTP_AND_SMS)),
    };
    let file = TempFile::new("bad.yaml", &text);
    for command in ["plan", "apply"] {
        let out = run(&[command], &file, &endpoint).await;
        assert_eq!(out.code, 1, "{command}: {out:?}");
        assert!(
            out.stderr.contains(message),
            "{command}: expected {message:?} in {:?}",
            out.stderr
        );
        assert_eq!(
            out.stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "one message: {:?}",
            out.stderr
        );
    }
    assert_eq!(snapshot(&pool).await, before);
    // The one Get since is the snapshot's: the commands made no call at all.
    assert_eq!(moto::calls(&pool, "GetUserPoolMfaConfig").await, gets_before + 1);
    assert_eq!(
        moto::calls(&pool, "SetUserPoolMfaConfig").await,
        1,
        "only the setup's write"
    );
}

#[tokio::test]
async fn missing_pool_is_named() {
    let file = TempFile::new("p.yaml", &policy_yaml("eu-west-1_DoesNotExist1", TOTP_AND_SMS));
    let out = run(&["apply"], &file, &moto::endpoint()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("ResourceNotFoundException") && out.stderr.contains("eu-west-1_DoesNotExist1"),
        "{}",
        out.stderr
    );
    let exported = cli(
        &[
            "export",
            "--user-pool-id",
            "eu-west-1_DoesNotExist1",
            "--endpoint-url",
            &moto::endpoint(),
        ],
        None,
    )
    .await;
    assert_eq!(exported.code, 1);
    assert!(
        exported.stderr.contains("ResourceNotFoundException"),
        "{}",
        exported.stderr
    );
}

#[tokio::test]
async fn throttled_writes_fail_cleanly_within_bounded_attempts() {
    let pool = moto::create_pool(REGION).await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    proxy.inject("SetUserPoolMfaConfig", Fault::Throttle, None);
    let before = snapshot(&pool).await;
    let out = run(
        &["apply"],
        &TempFile::new("p.yaml", &policy_yaml(&pool, TOTP_AND_SMS)),
        &proxy.url,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("TooManyRequestsException"), "{}", out.stderr);
    assert_eq!(
        proxy.seen("SetUserPoolMfaConfig"),
        3,
        "the SDK's bounded retries, then a clean failure"
    );
    assert_eq!(snapshot(&pool).await, before);
}

#[tokio::test]
async fn failing_and_unreachable_endpoints_fail_cleanly() {
    let pool = moto::create_pool(REGION).await;
    let file = TempFile::new("p.yaml", &policy_yaml(&pool, TOTP_AND_SMS));
    let before = snapshot(&pool).await;

    let proxy = FaultProxy::start(&moto::endpoint()).await;
    proxy.inject("GetUserPoolMfaConfig", Fault::InternalError, None);
    let out = run(&["apply"], &file, &proxy.url).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("InternalErrorException"), "{}", out.stderr);
    assert_eq!(proxy.seen("SetUserPoolMfaConfig"), 0);

    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = run(&["plan"], &file, &closed).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("DispatchFailure") || out.stderr.contains("Connection refused"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(&pool).await, before);
}

/// `plan` warns ahead when a policy turns SMS MFA off on a pool that keeps an SMS configuration
/// (DescribeUserPool tells), which Cognito refuses.
#[tokio::test]
async fn plan_warns_before_turning_sms_off_beside_an_sms_configuration() {
    let endpoint = moto::endpoint();
    let (pool, _) = applied(&endpoint).await;
    moto::client(REGION)
        .await
        .update_user_pool()
        .user_pool_id(&pool)
        .sms_configuration(
            aws::SmsConfigurationType::builder()
                .sns_caller_arn(SMS_ROLE)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let totp_only = "  mfaConfiguration: OPTIONAL\n  softwareTokenMfaConfiguration: {enabled: true}\n";
    let file = TempFile::new("totp.yaml", &policy_yaml(&pool, totp_only));
    let out = run(&["plan"], &file, &endpoint).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stdout.contains(
            "! warning: Cognito does not turn SMS MFA off while the user pool has an SMS configuration"
        ) && out.stdout.contains("add smsMfaConfiguration to the policy"),
        "{}",
        out.stdout
    );
    // Keeping SMS on warns of nothing.
    let keep = run(
        &["plan"],
        &TempFile::new("keep.yaml", &policy_yaml(&pool, TOTP_AND_SMS)),
        &endpoint,
    )
    .await;
    assert!(!keep.stdout.contains("warning"), "{}", keep.stdout);
}

/// An error prints each cause once, on one line, although the Kubernetes client's errors
/// include their sources in their own text.
#[tokio::test]
async fn a_missing_kubeconfig_names_each_cause_once() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cognito-mfa-operator"));
    let out = cmd
        .arg("run")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    for cause in [
        "cannot set up the Kubernetes client",
        "/nonexistent/kubeconfig",
        "No such file or directory",
        "in-cluster",
    ] {
        assert_eq!(line.matches(cause).count(), 1, "{cause:?} in: {line}");
    }
}

#[tokio::test]
async fn help_and_usage_errors() {
    let help = cli(&["--help"], None).await;
    assert_eq!(help.code, 0);
    for command in ["crd", "plan", "apply", "export"] {
        assert!(help.stdout.contains(command), "{}", help.stdout);
    }
    let plan_help = cli(&["plan", "--help"], None).await;
    assert!(
        plan_help.stdout.contains("--endpoint-url") && plan_help.stdout.contains("Exit code"),
        "{}",
        plan_help.stdout
    );
    let usage = cli(&["plan"], None).await;
    assert_eq!(
        usage.code, 1,
        "usage errors exit 1 (2 means changes pending): {usage:?}"
    );
    // Zero would mean "no limit" to the controller runtime: refused before anything starts.
    let zero = cli(&["run", "--concurrency", "0"], None).await;
    assert_eq!(zero.code, 1, "{zero:?}");
    assert!(zero.stderr.contains("--concurrency"), "{}", zero.stderr);
}

/// Runs the binary with `args` and the environment variable `var`.
async fn cli_with_env(args: &[&str], var: (&str, &str)) -> crate::support::CliOutput {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cognito-mfa-operator"))
        .args(args)
        .env(var.0, var.1)
        .output()
        .await
        .unwrap();
    crate::support::CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Each command offers the flags it uses: the commands that never write take no write budget,
/// and export offers the formats it prints.
#[tokio::test]
async fn each_command_offers_only_the_flags_it_uses() {
    for (command, writes) in [("run", true), ("apply", true), ("plan", false), ("export", false)] {
        let help = cli(&[command, "--help"], None).await;
        assert_eq!(help.code, 0, "{help:?}");
        assert_eq!(
            help.stdout.contains("--aws-write-rps"),
            writes,
            "{command} --help:\n{}",
            help.stdout
        );
        assert!(
            help.stdout.contains("--aws-read-rps"),
            "{command}: {}",
            help.stdout
        );
    }
    let export = cli(&["export", "--help"], None).await;
    assert!(
        export.stdout.contains("- yaml:")
            && export.stdout.contains("- json:")
            && !export.stdout.contains("- text"),
        "{}",
        export.stdout
    );
    let run_help = cli(&["run", "--help"], None).await;
    assert!(!run_help.stdout.contains("--filename"), "{}", run_help.stdout);

    // What scripts of earlier releases pass still works: --aws-write-rps on plan (with a warning
    // that it does nothing), and export -o text (YAML, as before).
    let endpoint = moto::endpoint();
    let (pool, _) = applied(&endpoint).await;
    let file = TempFile::new("p.yaml", &policy_yaml(&pool, TOTP_AND_SMS));
    let planned = run(&["plan", "--aws-write-rps", "3"], &file, &endpoint).await;
    assert_eq!(planned.code, 0, "{planned:?}");
    assert!(
        planned.stderr.contains("--aws-write-rps is deprecated for plan"),
        "{planned:?}"
    );
    let export = |format: &'static str| {
        let endpoint = endpoint.clone();
        let pool = pool.clone();
        async move {
            cli(
                &[
                    "export",
                    "--user-pool-id",
                    &pool,
                    "-o",
                    format,
                    "--endpoint-url",
                    &endpoint,
                ],
                None,
            )
            .await
        }
    };
    let (text, yaml) = (export("text").await, export("yaml").await);
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(text.stdout, yaml.stdout);
}

#[tokio::test]
async fn every_help_states_the_exit_codes() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["crd", "--help"],
        &["plan", "--help"],
        &["apply", "--help"],
        &["export", "--help"],
        &["-h"],
        &["plan", "-h"],
    ] {
        let help = cli(args, None).await;
        assert_eq!(help.code, 0, "{args:?}: {help:?}");
        assert!(
            help.stdout.contains("Exit codes: 0 "),
            "{args:?}:\n{}",
            help.stdout
        );
    }
    let plan = cli(&["plan", "--help"], None).await;
    assert!(plan.stdout.contains("2 changes are pending"), "{}", plan.stdout);
}

/// A flag given by the environment is not shown as one the usage requires.
#[tokio::test]
async fn a_usage_error_shows_the_usage_not_the_environment() {
    for command in ["plan", "apply", "export"] {
        let out = cli_with_env(&[command], ("AWS_ENDPOINT_URL", "http://127.0.0.1:9")).await;
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("Usage: cognito-mfa-operator {command} ")),
            "{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("--endpoint-url"),
            "{command}:\n{}",
            out.stderr
        );
    }
}

/// `run` finds the cluster as kubectl does, and says so where users look.
#[tokio::test]
async fn run_finds_the_cluster_as_its_help_and_the_readme_say() {
    let help = cli(&["run", "--help"], None).await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for text in [&help.stdout, &readme] {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in ["--kubeconfig", "--context"] {
            assert!(flat.contains(needle), "{needle} in:\n{text}");
        }
        // The order, in the sentence that gives it.
        let from = flat
            .find("in-cluster")
            .unwrap_or_else(|| panic!("in-cluster in:\n{flat}"));
        let sentence: String = flat[from..].chars().take(200).collect();
        let (env, home) = (sentence.find("KUBECONFIG"), sentence.find("~/.kube/config"));
        assert!(
            env.is_some() && home.is_some() && env < home,
            "in-cluster, then KUBECONFIG, then ~/.kube/config: {sentence}"
        );
    }
    // --kubeconfig wins over KUBECONFIG and is named when it cannot be read.
    let out = cli_with_env(
        &["run", "--kubeconfig", "/nonexistent/given.yaml"],
        ("KUBECONFIG", "/nonexistent/from-env.yaml"),
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("/nonexistent/given.yaml") && !out.stderr.contains("from-env"),
        "{}",
        out.stderr
    );
}

/// The recheck interval of stalled policies lists the same cases in --help and in the README.
#[tokio::test]
async fn the_stalled_recheck_cases_agree() {
    let help = cli(&["run", "--help"], None).await.stdout;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let flag = help
        .split("--stalled-recheck-interval")
        .nth(1)
        .and_then(|s| s.split("\n      --").next())
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `--stalled-recheck-interval"))
        .unwrap();
    for case in [
        "an invalid spec",
        "a denied permission",
        "a missing pool or prerequisite",
        "a change awaiting approval",
        "a conflict with an older policy",
        "an error Cognito repeats",
    ] {
        assert!(flag.contains(case), "{case:?} in --help: {flag}");
        assert!(row.contains(case), "{case:?} in the README: {row}");
    }
}

/// A failing policy's error is printed once: on standard error for people, in the report for
/// pipelines.
#[tokio::test]
async fn a_failing_policy_is_reported_once() {
    let file = TempFile::new(
        "missing.yaml",
        &policy_yaml("eu-west-1_NoSuchPool9", TOTP_AND_SMS),
    );
    let endpoint = moto::endpoint();
    let text = run(&["plan"], &file, &endpoint).await;
    assert_eq!(text.code, 1, "{text:?}");
    let both = format!("{}{}", text.stdout, text.stderr);
    assert_eq!(both.matches("ResourceNotFoundException").count(), 1, "{text:?}");
    assert!(text.stderr.contains("ResourceNotFoundException"), "{text:?}");
    assert!(text.stdout.contains("identity/shop"), "{text:?}");
    let json = run(&["plan", "-o", "json"], &file, &endpoint).await;
    assert_eq!(json.code, 1, "{json:?}");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        report[0]["error"]
            .as_str()
            .unwrap()
            .contains("ResourceNotFoundException"),
        "{report}"
    );
    assert!(!json.stderr.contains("ResourceNotFoundException"), "{json:?}");
}

/// Baselines need every policy in view: `run --namespace` leaves them off, and asking for
/// them with it is refused before anything is contacted.
#[tokio::test]
async fn baselines_with_one_namespace_are_refused() {
    let out = cli(
        &[
            "run",
            "--namespace",
            "identity",
            "--baselines",
            "true",
            "--kubeconfig",
            "/nonexistent",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("--baselines true needs every namespace watched, not --namespace identity"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("nonexistent"),
        "refused before the kubeconfig is read: {}",
        out.stderr
    );
}
