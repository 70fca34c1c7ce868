//! The Cognito side: the only module that knows the AWS SDK.
//!
//! It reads and writes a pool's MFA configuration (GetUserPoolMfaConfig, SetUserPoolMfaConfig),
//! reads the facts that prerequisites depend on (DescribeUserPool), classifies every error, and
//! keeps all calls to one account and region inside a shared rate budget. Callers see only the
//! API's types ([`MfaSettings`]) and [`CallError`].

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_config::{BehaviorVersion, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_cognitoidentityprovider::{
    Client,
    config::{
        ConfigBag, HttpClient, Intercept, Region, RuntimeComponents, SharedHttpClient,
        interceptors::BeforeTransmitInterceptorContextMut,
    },
    error::{BoxError, ProvideErrorMetadata, SdkError},
    operation::{
        describe_user_pool::DescribeUserPoolError, get_user_pool_mfa_config::GetUserPoolMfaConfigError,
        set_user_pool_mfa_config::SetUserPoolMfaConfigError,
    },
    types as aws,
};
use aws_smithy_runtime_api::client::{
    http::{HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector},
    orchestrator::HttpRequest,
};
use aws_smithy_types::body::SdkBody;

use crate::{
    api::{
        CognitoMfaPolicySpec, EmailMfa, EumsSmsConfiguration, FactorConfiguration, MfaMode, MfaSettings,
        SmsConfiguration, SmsMfa, SoftwareTokenMfa, UserVerification, WebAuthn,
    },
    plan::PoolFacts,
};

/// Which pool to talk to, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The user pool ID.
    pub user_pool_id: String,
    /// The pool's region.
    pub region: String,
    /// A role to assume for a pool in another account.
    pub role: Option<Role>,
    /// A baseline's scan: its reads take at most half of the account and region's read budget,
    /// so that they never starve the policies' drift checks.
    pub background: bool,
}

/// A role to assume through STS.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Role {
    /// The role's ARN.
    pub arn: String,
    /// The external ID its trust policy requires.
    pub external_id: Option<String>,
}

impl fmt::Debug for Role {
    // The external ID stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Role")
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The target a (valid) spec names: its pool, its region (explicit or from the pool ID) and
    /// its credentials. `None` when no region can be found (see [`crate::api::validate`]).
    pub fn of_spec(spec: &CognitoMfaPolicySpec) -> Option<Self> {
        Some(Self {
            user_pool_id: spec.user_pool_id.clone(),
            region: spec.effective_region()?.to_owned(),
            role: spec.credentials.as_ref().map(|c| Role {
                arn: c.role_arn.clone(),
                external_id: c.external_id.clone(),
            }),
            background: false,
        })
    }

    /// The account and region whose quotas the calls count against (the account is the role's,
    /// or `default` for the operator's own credentials).
    pub fn budget_key(&self) -> (String, String) {
        let account = self
            .role
            .as_ref()
            .and_then(|r| r.arn.split(':').nth(4))
            .unwrap_or("default");
        (account.to_owned(), self.region.clone())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ListUserPools names no pool: it is about all of them.
        let pool = if self.user_pool_id.is_empty() {
            "*"
        } else {
            &self.user_pool_id
        };
        write!(f, "{pool} ({})", self.region)
    }
}

/// How the client reaches AWS.
#[derive(Debug, Clone)]
pub struct Options {
    /// Send every call here instead of AWS (an emulator such as moto).
    pub endpoint_url: Option<String>,
    /// Read calls (Get, Describe) per second and account and region.
    pub read_rps: NonZeroU32,
    /// Write calls (Set) per second and account and region.
    pub write_rps: NonZeroU32,
    /// Attempts per call for errors worth retrying at once (throttling, 5xx, network); the
    /// controller's requeue does the longer waits.
    pub max_attempts: u32,
    /// The SDK's first wait before retrying a call (doubling, with jitter).
    pub initial_backoff: Duration,
    /// The SDK's longest wait before retrying a call.
    pub max_backoff: Duration,
    /// Told about every call and HTTP attempt (metrics).
    pub observer: Option<Arc<dyn Observer>>,
}

/// Sees the calls the client makes: for metrics, kept free of any metrics library here.
pub trait Observer: Send + Sync + fmt::Debug {
    /// A call finished: `None` when it succeeded, else the class of its error.
    fn call(&self, operation: Operation, error: Option<ErrorClass>);
    /// An HTTP attempt was answered (every retry counts); `throttled` when Cognito answered
    /// `TooManyRequestsException`.
    fn attempt(&self, operation: Operation, throttled: bool);
    /// The most requests (reads, or writes when `write`) a budget has let through in any second.
    fn peak_rate(&self, write: bool, requests: usize);
}

impl Default for Options {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            // Cognito's UserPoolRead and UserPoolUpdate quotas are 15 requests per second per
            // account and region, shared with every other tool in the account: take a third of
            // reads and a seventh of writes.
            read_rps: NonZeroU32::new(5).expect("non-zero"),
            write_rps: NonZeroU32::new(2).expect("non-zero"),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            observer: None,
        }
    }
}

/// The rate budget of one account and region: one bucket for reads, one for writes.
///
/// Calls are paced evenly, one every 1/rps, and no one-second window ever holds more than the
/// configured rate, even right after an idle period. A call that takes its slot late (a busy
/// machine woke it late) does not push every later slot back: the following slots are taken at
/// up to twice the pace until the schedule is caught up, still within the per-second rate. Each
/// bucket also tracks the highest number of calls it let through in any second, for the metrics.
struct Budget {
    read: Bucket,
    write: Bucket,
    /// What a baseline's scan takes first, before its turn in `read`: half the read rate (at
    /// least one a second). Policies' reads only wait in `read`, so they keep at least the other
    /// half however large the scan.
    background: Bucket,
}

struct Bucket {
    rps: usize,
    pace: Duration,
    /// Held while a caller waits for its slot: one waiter at a time, first come first served.
    turn: tokio::sync::Mutex<Pacer>,
}

#[derive(Default)]
struct Pacer {
    /// The next slot on the schedule.
    next: Option<tokio::time::Instant>,
    /// The calls let through in the last second.
    recent: std::collections::VecDeque<tokio::time::Instant>,
    /// The most calls let through in any second so far.
    peak: usize,
}

impl Bucket {
    fn new(rps: NonZeroU32) -> Self {
        Self {
            rps: rps.get() as usize,
            pace: Duration::from_secs(1) / rps.get(),
            turn: tokio::sync::Mutex::default(),
        }
    }

    /// Waits for a slot; returns the most calls let through in any second so far.
    async fn acquire(&self) -> usize {
        const SECOND: Duration = Duration::from_secs(1);
        let asked = tokio::time::Instant::now();
        let mut p = self.turn.lock().await;
        // The next slot, if it is still to come or the budget was busy when this caller asked
        // (its last call less than a pace earlier: the slot was missed by a late wake, and is
        // made up, though never more than a second of them). Otherwise the budget was idle:
        // the schedule starts again now, and idle time is not made up.
        let busy = p.recent.back().is_some_and(|last| *last + self.pace >= asked);
        let slot = match p.next {
            Some(next) if next >= asked => next,
            Some(next) if busy => next.max(asked.checked_sub(SECOND).unwrap_or(asked)),
            _ => asked,
        };
        loop {
            let now = tokio::time::Instant::now();
            while p.recent.front().is_some_and(|t| now.duration_since(*t) >= SECOND) {
                p.recent.pop_front();
            }
            let mut at = slot;
            if p.recent.len() >= self.rps {
                at = at.max(p.recent[p.recent.len() - self.rps] + SECOND);
            }
            if let Some(last) = p.recent.back() {
                at = at.max(*last + self.pace / 2);
            }
            if at <= now {
                p.recent.push_back(now);
                p.next = Some(slot + self.pace);
                p.peak = p.peak.max(p.recent.len());
                return p.peak;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

impl Budget {
    fn new(read: NonZeroU32, write: NonZeroU32) -> Self {
        Self {
            read: Bucket::new(read),
            write: Bucket::new(write),
            background: Bucket::new(background_rps(read)),
        }
    }
}

/// The share of a read budget that baseline scans may take: half, at least one call a second.
pub fn background_rps(read: NonZeroU32) -> NonZeroU32 {
    NonZeroU32::new(read.get() / 2).unwrap_or(NonZeroU32::MIN)
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Budget")
    }
}

/// The HTTP client of one account and region: every attempt (retries included) first waits for
/// a token of the budget, so the budget holds whatever the SDK's retry does.
#[derive(Debug, Clone)]
struct BudgetedHttpClient {
    inner: SharedHttpClient,
    budget: Arc<Budget>,
    observer: Option<Arc<dyn Observer>>,
    background: bool,
}

impl HttpClient for BudgetedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BudgetedConnector {
            inner: self.inner.http_connector(settings, components),
            budget: self.budget.clone(),
            observer: self.observer.clone(),
            background: self.background,
        })
    }
}

#[derive(Debug)]
struct BudgetedConnector {
    inner: SharedHttpConnector,
    budget: Arc<Budget>,
    observer: Option<Arc<dyn Observer>>,
    background: bool,
}

impl HttpConnector for BudgetedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let budget = self.budget.clone();
        let observer = self.observer.clone();
        let background = self.background;
        HttpConnectorFuture::new(async move {
            // The JSON protocol names the operation in X-Amz-Target; only Set writes.
            let operation = request
                .headers()
                .get("x-amz-target")
                .and_then(Operation::of_target);
            let write = operation == Some(Operation::Set);
            let peak = if write {
                budget.write.acquire().await
            } else {
                if background {
                    budget.background.acquire().await;
                }
                budget.read.acquire().await
            };
            if let Some(observer) = &observer {
                observer.peak_rate(write, peak);
            }
            let response = inner.call(request).await;
            if let (Some(observer), Some(operation), Ok(r)) = (&observer, operation, &response) {
                let throttled = r
                    .headers()
                    .get("x-amzn-errortype")
                    .is_some_and(|t| t.starts_with("TooManyRequestsException"));
                observer.attempt(operation, throttled);
            }
            response
        })
    }
}

/// Takes out of a SetUserPoolMfaConfig request the empty `SnsCallerArn` that the SDK writes
/// when the request has none.
///
/// Cognito takes Amazon SNS (`SnsCallerArn`) or End User Messaging (`EumsSms`), not both, and its
/// model has made `SnsCallerArn` optional; the SDK in use (aws-sdk-cognitoidentityprovider
/// 1.144, the newest release) still types it as a required string and serialises it, empty,
/// beside `EumsSms`. This runs before signing, so the signature covers the body that is sent.
/// An SDK generated from the current model would write no empty ARN, and this would find none.
#[derive(Debug)]
pub struct OneSmsTransport;

impl Intercept for OneSmsTransport {
    fn name(&self) -> &'static str {
        "OneSmsTransport"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let is_set = request
            .headers()
            .get("x-amz-target")
            .and_then(Operation::of_target)
            == Some(Operation::Set);
        let Some(body) = request.body().bytes().filter(|_| is_set) else {
            return Ok(());
        };
        let mut json: serde_json::Value = serde_json::from_slice(body)?;
        let Some(sms) = json
            .pointer_mut("/SmsMfaConfiguration/SmsConfiguration")
            .and_then(serde_json::Value::as_object_mut)
        else {
            return Ok(());
        };
        if sms.get("SnsCallerArn").and_then(serde_json::Value::as_str) != Some("") {
            return Ok(());
        }
        sms.remove("SnsCallerArn");
        let body = serde_json::to_vec(&json)?;
        request
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *request.body_mut() = SdkBody::from(body);
        Ok(())
    }
}

/// The SDK's retry policy for the operator: standard mode (throttling, 5xx and network errors
/// retried with jittered exponential backoff) with short waits. A call gives up after
/// `max_attempts` (default 3) and a few seconds at most; longer waits are the controller's requeue, which
/// does not hold a worker.
pub fn retry_config(options: &Options) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(options.max_attempts)
        .with_initial_backoff(options.initial_backoff)
        .with_max_backoff(options.max_backoff)
}

/// The Cognito client of the operator: one SDK client per region and role, one rate budget per
/// account and region. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cognito {
    inner: Arc<Inner>,
}

/// One SDK client per region, role and budget share (a baseline's scan, or not).
type ClientKey = (String, Option<Role>, bool);

#[derive(Debug)]
struct Inner {
    source: Source,
    clients: Mutex<HashMap<ClientKey, Client>>,
}

// One per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Source {
    /// Clients built from the AWS default chain.
    Sdk {
        base: SdkConfig,
        http: SharedHttpClient,
        options: Options,
        budgets: Mutex<HashMap<(String, String), Arc<Budget>>>,
    },
    /// One given client for every target (tests with the SDK's mocks).
    Fixed(Client),
}

impl Cognito {
    /// A client with the AWS default credential chain (IRSA, EKS Pod Identity, environment,
    /// instance profile), TLS through rustls and ring.
    pub async fn from_env(options: Options) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // Every client gets its pool's region. The base region serves only the credential
            // providers (IRSA's STS call): the environment's (EKS injects AWS_REGION), else
            // us-east-1. The default region chain would ask the instance metadata service,
            // slowly and noisily, off EC2.
            .region(
                aws_config::meta::region::RegionProviderChain::first_try(
                    aws_config::environment::EnvironmentVariableRegionProvider::new(),
                )
                .or_else(Region::from_static("us-east-1")),
            )
            .http_client(http.clone())
            .retry_config(retry_config(&options))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let base = loader.load().await;
        Self::new(Source::Sdk {
            base,
            http,
            options,
            budgets: Mutex::default(),
        })
    }

    /// A client that sends every call through `client` (built by the test with the SDK's mocks),
    /// with the operator's request fix-ups ([`OneSmsTransport`]) added.
    pub fn with_client(client: Client) -> Self {
        let config = client.config().to_builder().interceptor(OneSmsTransport).build();
        Self::new(Source::Fixed(Client::from_conf(config)))
    }

    fn new(source: Source) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                clients: Mutex::default(),
            }),
        }
    }

    async fn client(&self, target: &Target) -> Client {
        let (base, http, options, budgets) = match &self.inner.source {
            Source::Fixed(client) => return client.clone(),
            Source::Sdk {
                base,
                http,
                options,
                budgets,
            } => (base, http, options, budgets),
        };
        let key = (target.region.clone(), target.role.clone(), target.background);
        if let Some(client) = lock(&self.inner.clients).get(&key) {
            return client.clone();
        }
        let budget = lock(budgets)
            .entry(target.budget_key())
            .or_insert_with(|| Arc::new(Budget::new(options.read_rps, options.write_rps)))
            .clone();
        let observer = options.observer.clone();
        let region = Region::new(target.region.clone());
        let mut config = aws_sdk_cognitoidentityprovider::config::Builder::from(base)
            .region(region.clone())
            .interceptor(OneSmsTransport)
            .http_client(BudgetedHttpClient {
                inner: http.clone(),
                budget,
                observer,
                background: target.background,
            });
        if let Some(role) = &target.role {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.arn)
                .session_name("cognito-mfa-operator")
                .region(region)
                .configure(base);
            if let Some(id) = &role.external_id {
                provider = provider.external_id(id);
            }
            config = config.credentials_provider(provider.build().await);
        }
        let client = Client::from_conf(config.build());
        lock(&self.inner.clients).entry(key).or_insert(client).clone()
    }

    fn observe(&self, operation: Operation, error: Option<&CallError>) {
        if let Source::Sdk {
            options: Options {
                observer: Some(o), ..
            },
            ..
        } = &self.inner.source
        {
            o.call(operation, error.map(|e| e.class));
        }
    }

    /// Reads the pool's MFA configuration (GetUserPoolMfaConfig), as Cognito returns it.
    pub async fn get(&self, target: &Target) -> Result<MfaSettings, CallError> {
        let out = self
            .client(target)
            .await
            .get_user_pool_mfa_config()
            .user_pool_id(&target.user_pool_id)
            .send()
            .await
            .map_err(|e| CallError::new(Operation::Get, target, &e));
        self.observe(Operation::Get, out.as_ref().err());
        Ok(settings_of!(out?))
    }

    /// Replaces the pool's MFA configuration with `request` (SetUserPoolMfaConfig) and returns
    /// the configuration Cognito answers with: what it stored. The request must be complete (see
    /// [`crate::plan::Plan::request`]): Cognito drops what it leaves out.
    pub async fn set(&self, target: &Target, request: &MfaSettings) -> Result<MfaSettings, CallError> {
        let s = request;
        let out = self
            .client(target)
            .await
            .set_user_pool_mfa_config()
            .user_pool_id(&target.user_pool_id)
            .mfa_configuration(to_aws_mode(s.mfa_configuration))
            .set_software_token_mfa_configuration(s.software_token_mfa_configuration.as_ref().map(|t| {
                aws::SoftwareTokenMfaConfigType::builder()
                    .enabled(t.enabled)
                    .build()
            }))
            .set_sms_mfa_configuration(s.sms_mfa_configuration.as_ref().map(|m| {
                aws::SmsMfaConfigType::builder()
                    .set_sms_authentication_message(m.sms_authentication_message.clone())
                    .set_sms_configuration(m.sms_configuration.as_ref().map(to_aws_sms))
                    .build()
            }))
            .set_email_mfa_configuration(s.email_mfa_configuration.as_ref().map(|e| {
                aws::EmailMfaConfigType::builder()
                    .set_message(e.message.clone())
                    .set_subject(e.subject.clone())
                    .build()
            }))
            .set_web_authn_configuration(s.web_authn_configuration.as_ref().map(|w| {
                aws::WebAuthnConfigurationType::builder()
                    .set_relying_party_id(w.relying_party_id.clone())
                    .user_verification(match w.user_verification {
                        UserVerification::Required => aws::UserVerificationType::Required,
                        UserVerification::Preferred => aws::UserVerificationType::Preferred,
                    })
                    .factor_configuration(match w.factor_configuration {
                        FactorConfiguration::SingleFactor => {
                            aws::WebAuthnFactorConfigurationType::SingleFactor
                        }
                        FactorConfiguration::MultiFactorWithUserVerification => {
                            aws::WebAuthnFactorConfigurationType::MultiFactorWithUserVerification
                        }
                    })
                    .build()
            }))
            .send()
            .await
            .map_err(|e| CallError::new(Operation::Set, target, &e).redact(&external_ids(s)));
        self.observe(Operation::Set, out.as_ref().err());
        Ok(settings_of!(out?))
    }

    /// Lists every user pool of the target's region and account (ListUserPools, 60 pools a
    /// page, every page), in the order Cognito gives them. `target.user_pool_id` is not used.
    pub async fn list_pools(&self, target: &Target) -> Result<Vec<crate::api::baseline::PoolRef>, CallError> {
        let client = self.client(target).await;
        let mut pools = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = client
                .list_user_pools()
                .max_results(LIST_PAGE)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| CallError::new(Operation::List, target, &e));
            self.observe(Operation::List, out.as_ref().err());
            let out = out?;
            pools.extend(out.user_pools.unwrap_or_default().into_iter().filter_map(|p| {
                Some(crate::api::baseline::PoolRef {
                    region: target.region.clone(),
                    user_pool_id: p.id?,
                    name: p.name.unwrap_or_default(),
                })
            }));
            match out.next_token.filter(|t| !t.is_empty()) {
                Some(token) => next = Some(token),
                None => return Ok(pools),
            }
        }
    }

    /// Reads the facts that prerequisites depend on (DescribeUserPool): tier, email sending
    /// account, allowed first factors.
    pub async fn describe(&self, target: &Target) -> Result<PoolFacts, CallError> {
        let out = self
            .client(target)
            .await
            .describe_user_pool()
            .user_pool_id(&target.user_pool_id)
            .send()
            .await
            .map_err(|e| CallError::new(Operation::Describe, target, &e));
        self.observe(Operation::Describe, out.as_ref().err());
        let out = out?;
        let pool = out
            .user_pool
            .unwrap_or_else(|| aws::UserPoolType::builder().build());
        Ok(PoolFacts {
            tier: pool.user_pool_tier.map(|t| t.as_str().to_owned()),
            email_sending_account: pool
                .email_configuration
                .and_then(|e| e.email_sending_account)
                .map(|a| a.as_str().to_owned()),
            sms_configuration: pool.sms_configuration.is_some(),
            allowed_first_auth_factors: pool
                .policies
                .and_then(|p| p.sign_in_policy)
                .and_then(|s| s.allowed_first_auth_factors)
                .unwrap_or_default()
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
        })
    }
}

#[cfg(test)]
mod pacing {
    use super::*;

    /// The most calls in any one-second window (as the budget's own peak says).
    fn max_per_second(times: &[tokio::time::Instant]) -> usize {
        times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Evenly paced, never over the rate in any second, and a waiter woken late (a busy
    /// machine) does not cost the budget its slots: the schedule is made up.
    #[tokio::test(start_paused = true)]
    async fn late_wakes_are_made_up_within_the_rate() {
        let bucket = Arc::new(Bucket::new(NonZeroU32::new(50).unwrap()));
        let start = tokio::time::Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let calls: Vec<_> = (0..200)
            .map(|_| {
                let (bucket, times) = (bucket.clone(), times.clone());
                tokio::spawn(async move {
                    bucket.acquire().await;
                    lock(&times).push(tokio::time::Instant::now());
                })
            })
            .collect();
        // Every 100 ms the clock jumps 70 ms at once: whoever sleeps for a slot wakes late.
        while lock(&times).len() < 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tokio::time::advance(Duration::from_millis(70)).await;
        }
        for call in calls {
            call.await.unwrap();
        }
        let times = lock(&times).clone();
        let took = times.iter().max().unwrap().duration_since(start);
        // 200 calls at 50/s: the 199 gaps take 3.98 s. Each of the ~23 jumps wakes a waiter 50
        // to 70 ms late: kept as lost time, as strict spacing from the last call would, that
        // is more than 1.1 s; made up, a few milliseconds each at most.
        assert!(took <= Duration::from_millis(3_980 + 250), "{took:?}");
        assert!(max_per_second(&times) <= 50, "{}", max_per_second(&times));
    }

    /// After an idle period the schedule starts again: no burst to make up idle time.
    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_made_up() {
        let bucket = Bucket::new(NonZeroU32::new(50).unwrap());
        for _ in 0..10 {
            bucket.acquire().await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut times = Vec::new();
        for _ in 0..10 {
            bucket.acquire().await;
            times.push(tokio::time::Instant::now());
        }
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= Duration::from_millis(20)),
            "{times:?}"
        );
    }

    /// Many callers at once: one at a time, at the pace, the peak never over the rate.
    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_pace() {
        let bucket = Arc::new(Bucket::new(NonZeroU32::new(20).unwrap()));
        let start = tokio::time::Instant::now();
        let calls: Vec<_> = (0..60)
            .map(|_| {
                let bucket = bucket.clone();
                tokio::spawn(async move { bucket.acquire().await })
            })
            .collect();
        let mut peak = 0;
        for call in calls {
            peak = peak.max(call.await.unwrap());
        }
        assert!(peak <= 20, "{peak}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(59 * 50) && took <= Duration::from_millis(59 * 50 + 50),
            "{took:?}"
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves a plain map behind: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The MFA settings in an answer of GetUserPoolMfaConfig or SetUserPoolMfaConfig (two types with
/// the same members).
macro_rules! settings_of {
    ($out:expr) => {{
        let out = $out;
        from_aws(
            out.mfa_configuration,
            out.software_token_mfa_configuration,
            out.sms_mfa_configuration,
            out.email_mfa_configuration,
            out.web_authn_configuration,
        )
    }};
}
use settings_of;

/// MFA settings from the members that GetUserPoolMfaConfig and SetUserPoolMfaConfig both answer
/// with.
fn from_aws(
    mode: Option<aws::UserPoolMfaType>,
    totp: Option<aws::SoftwareTokenMfaConfigType>,
    sms: Option<aws::SmsMfaConfigType>,
    email: Option<aws::EmailMfaConfigType>,
    web_authn: Option<aws::WebAuthnConfigurationType>,
) -> MfaSettings {
    MfaSettings {
        mfa_configuration: mode.as_ref().map_or(MfaMode::Off, from_aws_mode),
        software_token_mfa_configuration: totp.map(|t| SoftwareTokenMfa { enabled: t.enabled }),
        sms_mfa_configuration: sms.map(|s| SmsMfa {
            sms_authentication_message: s.sms_authentication_message,
            sms_configuration: s.sms_configuration.map(from_aws_sms),
        }),
        email_mfa_configuration: email.map(|e| EmailMfa {
            message: e.message,
            subject: e.subject,
        }),
        web_authn_configuration: web_authn.map(|w| WebAuthn {
            relying_party_id: w.relying_party_id,
            // Missing values are Cognito's defaults.
            user_verification: match w.user_verification {
                Some(aws::UserVerificationType::Required) => UserVerification::Required,
                _ => UserVerification::Preferred,
            },
            factor_configuration: match w.factor_configuration {
                Some(aws::WebAuthnFactorConfigurationType::MultiFactorWithUserVerification) => {
                    FactorConfiguration::MultiFactorWithUserVerification
                }
                _ => FactorConfiguration::SingleFactor,
            },
        }),
    }
}

/// The external IDs in a request, which no message may show.
fn external_ids(request: &MfaSettings) -> Vec<String> {
    let c = request
        .sms_mfa_configuration
        .as_ref()
        .and_then(|s| s.sms_configuration.as_ref());
    c.into_iter()
        .flat_map(|c| {
            [
                c.external_id.clone(),
                c.eums_sms.as_ref().and_then(|e| e.external_id.clone()),
            ]
        })
        .flatten()
        .filter(|id| !id.is_empty())
        .collect()
}

fn from_aws_mode(m: &aws::UserPoolMfaType) -> MfaMode {
    match m {
        aws::UserPoolMfaType::On => MfaMode::On,
        aws::UserPoolMfaType::Optional => MfaMode::Optional,
        _ => MfaMode::Off,
    }
}

fn to_aws_mode(m: MfaMode) -> aws::UserPoolMfaType {
    match m {
        MfaMode::Off => aws::UserPoolMfaType::Off,
        MfaMode::On => aws::UserPoolMfaType::On,
        MfaMode::Optional => aws::UserPoolMfaType::Optional,
    }
}

fn from_aws_sms(c: aws::SmsConfigurationType) -> SmsConfiguration {
    SmsConfiguration {
        // The SDK models the ARN as required; an empty one means Cognito sent none.
        sns_caller_arn: Some(c.sns_caller_arn).filter(|a| !a.is_empty()),
        external_id: c.external_id,
        sns_region: c.sns_region,
        eums_sms: c.eums_sms.map(|e| {
            Box::new(EumsSmsConfiguration {
                caller_arn: e.caller_arn,
                external_id: e.external_id,
                origination_identity: e.origination_identity,
                configuration_set_name: e.configuration_set_name,
                in_entity_id: e.in_entity_id,
                in_template_id: e.in_template_id,
                region: e.region,
            })
        }),
    }
}

fn to_aws_sms(c: &SmsConfiguration) -> aws::SmsConfigurationType {
    aws::SmsConfigurationType::builder()
        .set_sns_caller_arn(c.sns_caller_arn.clone())
        .set_external_id(c.external_id.clone())
        .set_sns_region(c.sns_region.clone())
        .set_eums_sms(c.eums_sms.as_ref().and_then(|e| {
            aws::EumsSmsConfigurationType::builder()
                .caller_arn(&e.caller_arn)
                .set_external_id(e.external_id.clone())
                .set_origination_identity(e.origination_identity.clone())
                .set_configuration_set_name(e.configuration_set_name.clone())
                .set_in_entity_id(e.in_entity_id.clone())
                .set_in_template_id(e.in_template_id.clone())
                .set_region(e.region.clone())
                .build()
                .ok()
        }))
        .build()
}

/// Pools per ListUserPools page: the most Cognito gives.
pub const LIST_PAGE: i32 = 60;

/// A Cognito operation the operator calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// GetUserPoolMfaConfig.
    Get,
    /// SetUserPoolMfaConfig.
    Set,
    /// DescribeUserPool.
    Describe,
    /// ListUserPools (baselines and `audit`).
    List,
}

impl Operation {
    fn of_target(target: &str) -> Option<Self> {
        match target.rsplit('.').next()? {
            "GetUserPoolMfaConfig" => Some(Self::Get),
            "SetUserPoolMfaConfig" => Some(Self::Set),
            "DescribeUserPool" => Some(Self::Describe),
            "ListUserPools" => Some(Self::List),
            _ => None,
        }
    }

    /// Every operation the operator calls.
    pub const ALL: [Operation; 4] = [Self::Get, Self::Set, Self::Describe, Self::List];

    /// The IAM action that permits the operation.
    pub fn iam_action(self) -> String {
        format!("cognito-idp:{}", self.name())
    }

    /// The AWS name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "GetUserPoolMfaConfig",
            Self::Set => "SetUserPoolMfaConfig",
            Self::Describe => "DescribeUserPool",
            Self::List => "ListUserPools",
        }
    }
}

/// What kind of failure an error is, which decides what to do about it (the README's table of
/// errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// `TooManyRequestsException`: over a quota. Back off and retry.
    Throttled,
    /// `InternalErrorException`, HTTP 5xx, network failures and timeouts. Back off and retry.
    Unavailable,
    /// `ConcurrentModificationException`: another write to the pool at the same time. Retry
    /// shortly, a few times.
    ConcurrentModification,
    /// `InvalidSmsRoleAccessPolicyException`, `InvalidSmsRoleTrustRelationshipException`: often
    /// IAM still propagating a new role. Retry for a couple of minutes, then report.
    InvalidSmsRole,
    /// `InvalidParameterException`: Cognito rejected the request. Terminal until the spec changes.
    InvalidParameter,
    /// `InvalidParameterException` "Can't turn off SMS_MFA when SMS configuration is set for the
    /// user pool": the policy turns SMS MFA off on a pool whose SMS configuration stays. Terminal
    /// until the policy or the pool changes.
    SmsConfigurationInUse,
    /// `FeatureUnavailableInTierException`: the pool's plan lacks the feature. Terminal.
    FeatureUnavailableInTier,
    /// `OperationNotEnabledException`: the feature is not enabled for the account or pool, or the
    /// pool's region is a secondary replica of a multi-region pool (where some operations are
    /// refused). Terminal.
    OperationNotEnabled,
    /// `NotAuthorizedException`, `AccessDeniedException`, or no usable credentials. Terminal until
    /// the permissions change.
    AccessDenied,
    /// `ResourceNotFoundException`: the pool does not exist (any more).
    PoolNotFound,
}

/// How a caller should treat an error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retry with exponential backoff and jitter, up to a cap.
    Backoff,
    /// Retry a few times after a short wait.
    Short,
    /// Retry for a bounded time (IAM propagation), then treat as terminal.
    ForAWhile,
    /// Do not retry until something changes (spec or account); recheck slowly.
    Terminal,
    /// The pool is gone.
    Gone,
}

impl ErrorClass {
    /// How to treat this class.
    pub fn retry(self) -> Retry {
        match self {
            Self::Throttled | Self::Unavailable => Retry::Backoff,
            Self::ConcurrentModification => Retry::Short,
            Self::InvalidSmsRole => Retry::ForAWhile,
            Self::InvalidParameter
            | Self::SmsConfigurationInUse
            | Self::FeatureUnavailableInTier
            | Self::OperationNotEnabled
            | Self::AccessDenied => Retry::Terminal,
            Self::PoolNotFound => Retry::Gone,
        }
    }

    /// The class of an AWS error code. Unknown codes count as [`ErrorClass::Unavailable`]: retried
    /// with backoff rather than given up on.
    pub fn of_code(code: &str) -> Self {
        match code {
            "TooManyRequestsException" | "ThrottlingException" | "Throttling" | "RequestLimitExceeded" => {
                Self::Throttled
            }
            "ConcurrentModificationException" => Self::ConcurrentModification,
            "InvalidSmsRoleAccessPolicyException" | "InvalidSmsRoleTrustRelationshipException" => {
                Self::InvalidSmsRole
            }
            "InvalidParameterException" => Self::InvalidParameter,
            "FeatureUnavailableInTierException" => Self::FeatureUnavailableInTier,
            "OperationNotEnabledException" => Self::OperationNotEnabled,
            "NotAuthorizedException"
            | "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "InvalidSignatureException" => Self::AccessDenied,
            "ResourceNotFoundException" => Self::PoolNotFound,
            _ => Self::Unavailable,
        }
    }

    /// The class of an AWS error, from its code and message: one `InvalidParameterException`
    /// has a class of its own.
    pub fn of(code: &str, message: &str) -> Self {
        match Self::of_code(code) {
            Self::InvalidParameter
                if message
                    .to_ascii_lowercase()
                    .contains("turn off sms_mfa when sms configuration is set") =>
            {
                Self::SmsConfigurationInUse
            }
            class => class,
        }
    }

    /// What to do about an error of this class, when Cognito's message does not say it.
    pub fn advice(self) -> Option<&'static str> {
        match self {
            Self::SmsConfigurationInUse => Some(crate::plan::SMS_CONFIGURATION_IN_USE),
            Self::OperationNotEnabled => Some(
                "Either the feature is not enabled for this account or user pool, or the region is a secondary replica of a multi-region user pool, where Cognito refuses this operation: set spec.region to the pool's primary region",
            ),
            _ => None,
        }
    }
}

/// The `reasonCode` of an `InvalidParameterException`, where the operation's error has one.
pub trait ReasonCode {
    /// The reason code, if any.
    fn reason_code(&self) -> Option<&str>;
}

impl ReasonCode for SetUserPoolMfaConfigError {
    fn reason_code(&self) -> Option<&str> {
        match self {
            Self::InvalidParameterException(e) => e.reason_code(),
            _ => None,
        }
    }
}

impl ReasonCode for GetUserPoolMfaConfigError {
    fn reason_code(&self) -> Option<&str> {
        match self {
            Self::InvalidParameterException(e) => e.reason_code(),
            _ => None,
        }
    }
}

impl ReasonCode for aws_sdk_cognitoidentityprovider::operation::list_user_pools::ListUserPoolsError {
    fn reason_code(&self) -> Option<&str> {
        match self {
            Self::InvalidParameterException(e) => e.reason_code(),
            _ => None,
        }
    }
}

impl ReasonCode for DescribeUserPoolError {
    fn reason_code(&self) -> Option<&str> {
        match self {
            Self::InvalidParameterException(e) => e.reason_code(),
            _ => None,
        }
    }
}

/// A failed call to Cognito, classified. It reads as one line: the operation, the pool, AWS's
/// code (with the `reasonCode` of an `InvalidParameterException`), AWS's message, and what to do
/// where the class says more than the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{operation} for user pool {pool} failed: {code}{reason}: {message}{advice}",
    operation = .operation.name(),
    reason = .reason_code.as_ref().map(|r| format!(" (reasonCode {r})")).unwrap_or_default(),
    advice = .class.advice().map(|a| format!(". {a}")).unwrap_or_default()
)]
pub struct CallError {
    /// The operation that failed.
    pub operation: Operation,
    /// The pool and region.
    pub pool: String,
    /// What kind of failure it is.
    pub class: ErrorClass,
    /// AWS's error code, or a short name of the failure when there is none.
    pub code: String,
    /// AWS's message, or a description of the failure.
    pub message: String,
    /// The `reasonCode` of an `InvalidParameterException`.
    pub reason_code: Option<String>,
}

impl CallError {
    fn new<E, R>(operation: Operation, target: &Target, err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + ReasonCode + std::error::Error + 'static,
        R: fmt::Debug + 'static,
    {
        let mut reason_code = None;
        let (class, code, message) = match err {
            SdkError::ServiceError(se) => {
                let e = se.err();
                reason_code = e.reason_code().map(str::to_owned);
                match e.code() {
                    Some(code) => (
                        ErrorClass::of(code, e.message().unwrap_or_default()),
                        code.to_owned(),
                        e.message().unwrap_or_default().to_owned(),
                    ),
                    None => (
                        ErrorClass::Unavailable,
                        "UnknownError".to_owned(),
                        crate::error_chain(e),
                    ),
                }
            }
            // Credentials that cannot be found or assumed fail while the request is built.
            SdkError::ConstructionFailure(_) => (
                ErrorClass::AccessDenied,
                "CredentialsUnavailable".to_owned(),
                crate::error_chain(err),
            ),
            SdkError::TimeoutError(_) => (
                ErrorClass::Unavailable,
                "Timeout".to_owned(),
                crate::error_chain(err),
            ),
            SdkError::DispatchFailure(_) => (
                ErrorClass::Unavailable,
                "DispatchFailure".to_owned(),
                crate::error_chain(err),
            ),
            SdkError::ResponseError(_) => (
                ErrorClass::Unavailable,
                "ResponseError".to_owned(),
                crate::error_chain(err),
            ),
            _ => (
                ErrorClass::Unavailable,
                "UnknownError".to_owned(),
                crate::error_chain(err),
            ),
        };
        let error = Self {
            operation,
            pool: target.to_string(),
            class,
            code,
            message,
            reason_code,
        };
        let role_id: Vec<String> = target.role.iter().filter_map(|r| r.external_id.clone()).collect();
        error.redact(&role_id)
    }

    /// This error with every occurrence of `secrets` (external IDs) in AWS's words replaced.
    fn redact(mut self, secrets: &[String]) -> Self {
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            self.message = self.message.replace(secret.as_str(), "(redacted)");
            if let Some(r) = self.reason_code.as_mut() {
                *r = r.replace(secret.as_str(), "(redacted)");
            }
        }
        self
    }
}
