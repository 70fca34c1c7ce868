//! The Cognito client against moto through the fault proxy: the shared rate budget, and
//! credentials assumed through STS for a pool in another account.

use std::time::Duration;

use cognito_mfa_operator::cognito::{Cognito, Options, Role, Target};

use crate::support::{
    TempFile, cli,
    fault_proxy::{FaultProxy, max_in_window},
    moto,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_stay_within_the_read_budget() {
    let pool = moto::create_pool("eu-west-1").await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let cognito = Cognito::from_env(Options {
        endpoint_url: Some(proxy.url.clone()),
        read_rps: 4.try_into().unwrap(),
        ..Options::default()
    })
    .await;
    let target = Target {
        user_pool_id: pool,
        region: "eu-west-1".into(),
        role: None,
        background: false,
    };
    let reads = (0..12).map(|_| {
        let (cognito, target) = (cognito.clone(), target.clone());
        tokio::spawn(async move { cognito.get(&target).await })
    });
    for read in reads {
        read.await.unwrap().expect("every read succeeds");
    }
    let arrivals = proxy.arrivals("GetUserPoolMfaConfig");
    assert_eq!(arrivals.len(), 12);
    // 4 per second, evenly spaced: never more than 4 within 0.9 s (a slow machine only spreads
    // them further; unlimited, all 12 would arrive within a few milliseconds).
    assert!(
        max_in_window(&arrivals, Duration::from_millis(900)) <= 4,
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn calls_to_each_account_and_region_share_a_budget() {
    let t = |region: &str, role: Option<&str>| Target {
        user_pool_id: format!("{region}_AbC"),
        region: region.into(),
        role: role.map(|arn| Role {
            arn: arn.into(),
            external_id: None,
        }),
        background: false,
    };
    let a = "arn:aws:iam::111111111111:role/a";
    let a2 = "arn:aws:iam::111111111111:role/other";
    let b = "arn:aws:iam::222222222222:role/b";
    assert_eq!(
        t("eu-west-1", Some(a)).budget_key(),
        t("eu-west-1", Some(a2)).budget_key(),
        "same account"
    );
    assert_ne!(
        t("eu-west-1", Some(a)).budget_key(),
        t("eu-west-1", Some(b)).budget_key(),
        "other account"
    );
    assert_ne!(
        t("eu-west-1", Some(a)).budget_key(),
        t("us-east-1", Some(a)).budget_key(),
        "other region"
    );
    assert_ne!(
        t("eu-west-1", None).budget_key(),
        t("eu-west-1", Some(a)).budget_key(),
        "own vs assumed"
    );
}

#[tokio::test]
async fn cross_account_role_is_assumed_through_sts() {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let role = format!("arn:aws:iam::210987654321:role/mfa-operator-{suffix}");
    // The pool lives in the other account: reachable only with that account's credentials.
    let other_account = moto::client_as("eu-west-1", &role).await;
    let pool = moto::create_pool_with(&other_account).await;
    let yaml = format!(
        "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaPolicy\nmetadata: {{name: x}}\nspec:\n  userPoolId: {pool}\n  mfaConfiguration: OPTIONAL\n  softwareTokenMfaConfiguration: {{enabled: true}}\n  credentials: {{roleArn: \"{role}\", externalId: ext-4711}}\n"
    );
    let file = TempFile::new("x.yaml", &yaml);
    let out = cli(
        &["apply", "-f", &file.path, "--endpoint-url", &moto::endpoint()],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let operator: Vec<String> = moto::assume_role_requests(&role)
        .await
        .into_iter()
        .filter(|r| r.contains("RoleSessionName=cognito-mfa-operator"))
        .collect();
    assert_eq!(
        operator.len(),
        1,
        "one AssumeRole, cached for the run: {operator:?}"
    );
    assert!(operator[0].contains("ExternalId=ext-4711"), "{}", operator[0]);
    // The write went to the other account's pool.
    let live = other_account
        .get_user_pool_mfa_config()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(
        live.mfa_configuration,
        Some(aws_sdk_cognitoidentityprovider::types::UserPoolMfaType::Optional)
    );
    // The operator's own account has no such pool: without the role the same policy fails.
    let own = moto::client("eu-west-1")
        .await
        .get_user_pool_mfa_config()
        .user_pool_id(&pool)
        .send()
        .await;
    assert!(own.is_err());
}

/// A baseline's scan (background reads) takes at most half of the read budget over time, and the
/// policies' reads keep the rest: queued behind a large scan, they are not served after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scans_take_half_the_read_budget_and_never_starve_policies() {
    let (scanned, checked) = (
        moto::create_pool("eu-west-1").await,
        moto::create_pool("eu-west-1").await,
    );
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let cognito = Cognito::from_env(Options {
        endpoint_url: Some(proxy.url.clone()),
        read_rps: 8.try_into().unwrap(),
        ..Options::default()
    })
    .await;
    let target = |pool: &str, background: bool| Target {
        user_pool_id: pool.to_owned(),
        region: "eu-west-1".into(),
        role: None,
        background,
    };
    // The scan queues 24 reads first; 8 policy reads come right after.
    let scan: Vec<_> = (0..24)
        .map(|_| {
            let (cognito, t) = (cognito.clone(), target(&scanned, true));
            tokio::spawn(async move { cognito.get(&t).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let checks: Vec<_> = (0..8)
        .map(|_| {
            let (cognito, t) = (cognito.clone(), target(&checked, false));
            tokio::spawn(async move { cognito.get(&t).await })
        })
        .collect();
    for call in scan.into_iter().chain(checks) {
        call.await.unwrap().expect("every read succeeds");
    }
    let background = proxy.arrivals_for("GetUserPoolMfaConfig", &scanned);
    let foreground = proxy.arrivals_for("GetUserPoolMfaConfig", &checked);
    assert_eq!((background.len(), foreground.len()), (24, 8));
    // The scan enters the shared queue at no more than half of the 8 per second, so its 24
    // reads span at least 5 s (at the full rate they would take 3 s). Within the shared queue
    // its reads may go closer together, behind policy reads that came first: the share holds
    // over time, not in each second.
    let span = *background.iter().max().unwrap() - *background.iter().min().unwrap();
    assert!(span >= Duration::from_millis(4900), "{span:?}: {background:?}");
    // The policies' reads are all served while the scan still has most of its reads to go
    // (without the share they would queue behind all 24).
    let last_check = *foreground.iter().max().unwrap();
    let scanned_before = background.iter().filter(|t| **t < last_check).count();
    assert!(
        scanned_before <= 12,
        "{scanned_before} scan reads went before the last policy read"
    );
}
