//! moto's server (a Cognito-compatible server on loopback), started by the project's test
//! command and named by `MOTO_ENDPOINT`.

use aws_sdk_cognitoidentityprovider::{
    Client, config::Credentials, operation::get_user_pool_mfa_config::GetUserPoolMfaConfigOutput,
    types::UserPoolMfaType,
};
use base64::Engine as _;

/// The moto server's URL.
pub fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect(
        "MOTO_ENDPOINT is not set: run the tests with hack/test.sh, which starts moto's server on loopback",
    )
}

/// A real SDK client talking to moto (for setting up pools and changing them out of band).
pub async fn client(region: &str) -> Client {
    Client::new(&sdk_config(region).await)
}

/// A real SDK client talking to moto as `role_arn` (assumed through moto's STS): moto keeps
/// each account's pools apart, like AWS.
pub async fn client_as(region: &str, role_arn: &str) -> Client {
    let own = client(region).await;
    let creds = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("test-setup")
        .configure(&sdk_config(region).await)
        .build()
        .await;
    Client::from_conf(own.config().to_builder().credentials_provider(creds).build())
}

async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint())
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

/// Creates a user pool in `region` and returns its ID.
pub async fn create_pool(region: &str) -> String {
    create_pool_with(&client(region).await).await
}

/// Creates a user pool with `client` and returns its ID.
pub async fn create_pool_with(client: &Client) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let out = client
        .create_user_pool()
        .pool_name(format!("test-{nanos}"))
        .send()
        .await
        .expect("moto creates a pool");
    out.user_pool.and_then(|p| p.id).expect("a new pool has an ID")
}

/// Every request moto received since it started, from its request recorder: the operation
/// (X-Amz-Target, empty for query-protocol services such as STS) and the decoded body.
async fn recorded() -> Vec<(String, String)> {
    let url = format!("{}/moto-api/recorder/download-recording", endpoint());
    super::http_get(&url)
        .await
        .1
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|r| {
            let target = r
                .pointer("/headers/X-Amz-Target")
                .and_then(|t| t.as_str())
                .unwrap_or_default();
            let body = r.get("body").and_then(|b| b.as_str()).unwrap_or_default();
            let body = if r.get("body_encoded").and_then(|e| e.as_bool()).unwrap_or(false) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap_or_default();
                String::from_utf8(bytes).unwrap_or_default()
            } else {
                body.to_owned()
            };
            (target.to_owned(), body)
        })
        .collect()
}

/// How many requests of `operation` (e.g. `SetUserPoolMfaConfig`) moto received for `pool_id`.
pub async fn calls(pool_id: &str, operation: &str) -> usize {
    let suffix = format!(".{operation}");
    recorded()
        .await
        .iter()
        .filter(|(target, body)| target.ends_with(&suffix) && body.contains(pool_id))
        .count()
}

/// The STS AssumeRole requests moto received for `role_arn`, decoded (form-encoded bodies).
pub async fn assume_role_requests(role_arn: &str) -> Vec<String> {
    let encoded_arn: String = form_urlencoded(role_arn);
    recorded()
        .await
        .into_iter()
        .map(|(_, body)| body)
        .filter(|body| body.contains("Action=AssumeRole") && body.contains(&encoded_arn))
        .collect()
}

/// The pool's MFA configuration, read with the SDK.
pub async fn mfa_config(region: &str, pool: &str) -> GetUserPoolMfaConfigOutput {
    client(region)
        .await
        .get_user_pool_mfa_config()
        .user_pool_id(pool)
        .send()
        .await
        .unwrap()
}

/// Sets the pool's MFA mode (and nothing else), as someone in the console would: out of band.
pub async fn set_mode_out_of_band(region: &str, pool: &str, mode: UserPoolMfaType) {
    client(region)
        .await
        .set_user_pool_mfa_config()
        .user_pool_id(pool)
        .mfa_configuration(mode)
        .send()
        .await
        .unwrap();
}

fn form_urlencoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Creates a user pool named `name` in `region` and returns its ID.
pub async fn create_named_pool(region: &str, name: &str) -> String {
    create_named_pool_with(&client(region).await, name).await
}

/// Creates a user pool named `name` with `client` (its account and region); returns its ID.
pub async fn create_named_pool_with(client: &Client, name: &str) -> String {
    let out = client
        .create_user_pool()
        .pool_name(name)
        .send()
        .await
        .expect("moto creates a pool");
    out.user_pool.and_then(|p| p.id).expect("a new pool has an ID")
}

/// Deletes a user pool.
pub async fn delete_pool(region: &str, pool: &str) {
    client(region)
        .await
        .delete_user_pool()
        .user_pool_id(pool)
        .send()
        .await
        .expect("moto deletes the pool");
}

/// Turns TOTP on with `mode` (ON or OPTIONAL), out of band.
pub async fn set_totp_out_of_band(region: &str, pool: &str, mode: UserPoolMfaType) {
    set_totp_with(&client(region).await, pool, mode).await;
}

/// Turns TOTP on with `mode` (ON or OPTIONAL) with `client` (its account and region).
pub async fn set_totp_with(client: &Client, pool: &str, mode: UserPoolMfaType) {
    client
        .set_user_pool_mfa_config()
        .user_pool_id(pool)
        .software_token_mfa_configuration(
            aws_sdk_cognitoidentityprovider::types::SoftwareTokenMfaConfigType::builder()
                .enabled(true)
                .build(),
        )
        .mfa_configuration(mode)
        .send()
        .await
        .unwrap();
}

/// Deletes every pool of `region` (paginated), for a test that owns the region: its verdicts
/// must not depend on pools an earlier run left behind.
pub async fn clear_region(client: &Client) {
    let mut pages = client.list_user_pools().max_results(60).into_paginator().send();
    let mut ids = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("moto lists the pools");
        ids.extend(
            page.user_pools
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.id),
        );
    }
    for id in ids {
        client
            .delete_user_pool()
            .user_pool_id(id)
            .send()
            .await
            .expect("moto deletes the pool");
    }
}
