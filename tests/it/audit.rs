//! `audit` against moto: every pool of the regions (ListUserPools paginated, 60 a page), one
//! read per pool, the verdicts and the exit code; Prowler's floor without --baseline; a
//! baseline's floor, filters and credentials (another account, through STS).

use aws_sdk_cognitoidentityprovider::types::UserPoolMfaType;
use serde_json::Value;

use crate::support::{TempFile, cli, fault_proxy::FaultProxy, moto};

/// Regions that only these tests use (each test clears its own first).
const PAGED: &str = "me-south-1";
const PROWLER: &str = "af-south-1";
const CROSS: &str = "ap-east-1";

fn rows(stdout: &str) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_pages_through_every_pool_and_fails_on_any_below_the_floor() {
    let client = moto::client(PAGED).await;
    moto::clear_region(&client).await;
    // 65 pools: two pages. Every fifth is below the floor (MFA off); the others ON with TOTP.
    let mut below = Vec::new();
    for i in 0..65 {
        let pool = moto::create_named_pool_with(&client, &format!("paged-{i:02}")).await;
        if i % 5 == 0 {
            below.push(pool);
        } else {
            moto::set_totp_with(&client, &pool, UserPoolMfaType::On).await;
        }
    }
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let out = cli(
        &[
            "audit",
            "--region",
            PAGED,
            "-o",
            "json",
            "--endpoint-url",
            &proxy.url,
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let rows = rows(&out.stdout);
    assert_eq!(rows.len(), 65, "every pool of both pages");
    // One List a page, one Get a pool.
    assert_eq!(proxy.seen("ListUserPools"), 2);
    assert_eq!(proxy.seen("GetUserPoolMfaConfig"), 65);
    let failing: Vec<&str> = rows
        .iter()
        .filter(|r| r["verdict"] == "non-compliant")
        .map(|r| r["userPoolId"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = below.iter().map(String::as_str).collect();
    expected.sort_unstable();
    let mut failing_sorted = failing.clone();
    failing_sorted.sort_unstable();
    assert_eq!(failing_sorted, expected);
    let off = rows
        .iter()
        .find(|r| r["userPoolId"] == below[0].as_str())
        .unwrap();
    assert_eq!(off["mfaConfiguration"], "OFF");
    assert_eq!(off["reasons"][0], "mfaConfiguration is OFF, the floor allows ON");
    let on = rows.iter().find(|r| r["verdict"] == "compliant").unwrap();
    assert_eq!(
        (on["mfaConfiguration"].as_str(), on["factors"][0].as_str()),
        (Some("ON"), Some("TOTP"))
    );

    // A baseline that excludes the pools below the floor: every pool it covers complies.
    let excluded: Vec<String> = below.iter().map(|p| format!("\"{p}\"")).collect();
    let file = TempFile::new(
        "baseline.yaml",
        &format!(
            "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaBaseline\nmetadata: {{name: paged}}\nspec:\n  regions: [{PAGED}]\n  poolNameRegex: '^paged-'\n  excludePoolIds: [{}]\n  floor: {{mfaConfiguration: [\"ON\"], factors: [TOTP]}}\n",
            excluded.join(", ")
        ),
    );
    let out = cli(
        &[
            "audit",
            "--baseline",
            &file.path,
            "-o",
            "yaml",
            "--endpoint-url",
            &moto::endpoint(),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let rows: Vec<Value> = serde_saphyr::from_str(&out.stdout).unwrap();
    assert_eq!(rows.len(), 65 - below.len());
    assert!(rows.iter().all(|r| r["verdict"] == "compliant"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_baseline_the_floor_is_prowlers() {
    let client = moto::client(PROWLER).await;
    moto::clear_region(&client).await;
    let (a, b) = (
        moto::create_named_pool_with(&client, "prowler-a").await,
        moto::create_named_pool_with(&client, "prowler-b").await,
    );
    moto::set_totp_with(&client, &a, UserPoolMfaType::On).await;
    moto::set_totp_with(&client, &b, UserPoolMfaType::On).await;
    let endpoint = moto::endpoint();
    let args = ["audit", "--region", PROWLER, "--endpoint-url", endpoint.as_str()];
    let out = cli(&args, None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("2 pool(s): 2 compliant, 0 below the floor or not readable."),
        "{}",
        out.stdout
    );
    // OPTIONAL is not enough for Prowler's cognito_user_pool_mfa_enabled.
    moto::set_totp_with(&client, &b, UserPoolMfaType::Optional).await;
    let out = cli(&args, None).await;
    assert_eq!(out.code, 1, "{out:?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(&b) && l.contains("OPTIONAL"))
        .expect(&out.stdout);
    assert!(line.contains("TOTP") && line.ends_with("non-compliant"), "{line}");
    assert!(
        out.stdout.contains(&format!(
            "! {b} ({PROWLER}): mfaConfiguration is OPTIONAL, the floor allows ON"
        )),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_baselines_credentials_audit_another_account() {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let role = format!("arn:aws:iam::210987654321:role/audit-{suffix}");
    let other = moto::client_as(CROSS, &role).await;
    moto::clear_region(&other).await;
    moto::clear_region(&moto::client(CROSS).await).await;
    let theirs = moto::create_named_pool_with(&other, "theirs").await;
    let ours = moto::create_named_pool(CROSS, "ours").await;
    let file = TempFile::new(
        "baseline.yaml",
        &format!(
            "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaBaseline\nmetadata: {{name: cross}}\nspec:\n  regions: [{CROSS}]\n  credentials: {{roleArn: \"{role}\", externalId: audit-ext}}\n  floor: {{}}\n"
        ),
    );
    let out = cli(
        &[
            "audit",
            "--baseline",
            &file.path,
            "-o",
            "json",
            "--endpoint-url",
            &moto::endpoint(),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let ids: Vec<String> = rows(&out.stdout)
        .iter()
        .map(|r| r["userPoolId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec![theirs.clone()],
        "only the other account's pools: {ours} is ours"
    );
    let assumed = moto::assume_role_requests(&role).await;
    assert!(
        assumed.iter().any(|r| r.contains("ExternalId=audit-ext")),
        "{assumed:?}"
    );
}
