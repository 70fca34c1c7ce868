//! What moto cannot produce, through the SDK's own mocks (aws-smithy-mocks): every error class
//! Cognito returns, and the email and passkey settings that moto ignores.

use std::sync::{Arc, Mutex};

use aws_sdk_cognitoidentityprovider::{
    Client,
    config::{
        ConfigBag, Intercept, RuntimeComponents, http::HttpResponse,
        interceptors::BeforeTransmitInterceptorContextRef,
    },
    error::BoxError,
    operation::{
        describe_user_pool::DescribeUserPoolOutput,
        get_user_pool_mfa_config::GetUserPoolMfaConfigOutput,
        set_user_pool_mfa_config::{SetUserPoolMfaConfigInput, SetUserPoolMfaConfigOutput},
    },
    types as aws,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use cognito_mfa_operator::{
    api::{FactorConfiguration, MfaMode, MfaSettings, UserVerification},
    cognito::{self, Cognito, ErrorClass, Retry, Target},
    plan::{Action, Approval},
    sync::{self, Mode},
};
use rstest::rstest;
use serde_json::json;

const ATTEMPTS: u32 = 3;

fn target() -> Target {
    Target {
        user_pool_id: "eu-west-1_AbC123".into(),
        region: "eu-west-1".into(),
        role: None,
        background: false,
    }
}

fn no_approval() -> Approval {
    Approval::none("eu-west-1_AbC123 (eu-west-1)")
}

fn settings(v: serde_json::Value) -> MfaSettings {
    serde_json::from_value(v).unwrap()
}

/// A client with the operator's retry policy (its waits shortened) over `rules`.
macro_rules! client {
    ($rules:expr) => {
        mock_client!(aws_sdk_cognitoidentityprovider, RuleMode::MatchAny, $rules, |b| b
            .region(aws_sdk_cognitoidentityprovider::config::Region::new("eu-west-1"))
            .retry_config(cognito::retry_config(&cognito::Options {
                max_attempts: ATTEMPTS,
                initial_backoff: std::time::Duration::from_millis(1),
                max_backoff: std::time::Duration::from_millis(2),
                ..cognito::Options::default()
            })))
    };
}

/// An error answer as Cognito sends it on the wire (JSON protocol).
fn aws_error(status: u16, code: &'static str) -> HttpResponse {
    let body = json!({"__type": code, "message": format!("{code} from the mock")}).to_string();
    let mut resp = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
    resp.headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    resp.headers_mut().insert("x-amzn-errortype", code);
    resp
}

/// Every error SetUserPoolMfaConfig is modelled with, plus IAM's AccessDeniedException (not in the
/// model), and what the operator makes of each: class, how to retry, status reason, and how
/// many attempts one call makes.
#[rstest]
#[case::throttled(
    400,
    "TooManyRequestsException",
    ErrorClass::Throttled,
    Retry::Backoff,
    "Throttled",
    ATTEMPTS
)]
#[case::internal_error(
    500,
    "InternalErrorException",
    ErrorClass::Unavailable,
    Retry::Backoff,
    "AwsUnavailable",
    ATTEMPTS
)]
#[case::concurrent_modification(
    400,
    "ConcurrentModificationException",
    ErrorClass::ConcurrentModification,
    Retry::Short,
    "AwsUnavailable",
    1
)]
#[case::sms_role_access_policy(
    400,
    "InvalidSmsRoleAccessPolicyException",
    ErrorClass::InvalidSmsRole,
    Retry::ForAWhile,
    "InvalidSmsRole",
    1
)]
#[case::sms_role_trust(
    400,
    "InvalidSmsRoleTrustRelationshipException",
    ErrorClass::InvalidSmsRole,
    Retry::ForAWhile,
    "InvalidSmsRole",
    1
)]
#[case::invalid_parameter(
    400,
    "InvalidParameterException",
    ErrorClass::InvalidParameter,
    Retry::Terminal,
    "InvalidSpec",
    1
)]
#[case::feature_unavailable(
    400,
    "FeatureUnavailableInTierException",
    ErrorClass::FeatureUnavailableInTier,
    Retry::Terminal,
    "FeatureUnavailableInTier",
    1
)]
#[case::operation_not_enabled(
    400,
    "OperationNotEnabledException",
    ErrorClass::OperationNotEnabled,
    Retry::Terminal,
    "OperationNotEnabled",
    1
)]
#[case::not_authorized(
    400,
    "NotAuthorizedException",
    ErrorClass::AccessDenied,
    Retry::Terminal,
    "AccessDenied",
    1
)]
#[case::access_denied(
    400,
    "AccessDeniedException",
    ErrorClass::AccessDenied,
    Retry::Terminal,
    "AccessDenied",
    1
)]
#[case::pool_gone(
    400,
    "ResourceNotFoundException",
    ErrorClass::PoolNotFound,
    Retry::Gone,
    "UserPoolNotFound",
    1
)]
#[tokio::test]
async fn set_errors_are_classified(
    #[case] status: u16,
    #[case] code: &'static str,
    #[case] class: ErrorClass,
    #[case] retry: Retry,
    #[case] reason: &str,
    #[case] attempts: u32,
) {
    let rule = mock!(Client::set_user_pool_mfa_config).then_http_response(move || aws_error(status, code));
    let cognito = Cognito::with_client(client!([&rule]));
    let request =
        settings(json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}));
    let err = cognito
        .set(&target(), &request)
        .await
        .expect_err("the mock fails every call");
    assert_eq!(err.class, class);
    assert_eq!(err.code, code);
    assert_eq!(class.retry(), retry);
    assert_eq!(
        cognito_mfa_operator::status::Reason::of_error(class).as_str(),
        reason
    );
    assert_eq!(rule.num_calls(), attempts as usize, "attempts for {code}");
    assert!(
        err.to_string().contains(code) && err.to_string().contains("eu-west-1_AbC123"),
        "{err}"
    );
}

#[tokio::test]
async fn get_errors_are_classified_too() {
    let rule = mock!(Client::get_user_pool_mfa_config)
        .then_http_response(|| aws_error(400, "ResourceNotFoundException"));
    let cognito = Cognito::with_client(client!([&rule]));
    let err = cognito.get(&target()).await.expect_err("no such pool");
    assert_eq!(err.class, ErrorClass::PoolNotFound);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_throttled_call_that_recovers_succeeds() {
    let rule = mock!(Client::get_user_pool_mfa_config)
        .sequence()
        .http_response(|| aws_error(400, "TooManyRequestsException"))
        .output(|| {
            GetUserPoolMfaConfigOutput::builder()
                .mfa_configuration(aws::UserPoolMfaType::Off)
                .build()
        })
        .build();
    let cognito = Cognito::with_client(client!([&rule]));
    let live = cognito.get(&target()).await.expect("the retry succeeds");
    assert_eq!(live.mfa_configuration, MfaMode::Off);
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn email_and_passkey_settings_are_read_from_the_wire() {
    // What Cognito sends for a pool with TOTP, email and passkeys (moto never returns these).
    let body = json!({
        "MfaConfiguration": "ON",
        "SoftwareTokenMfaConfiguration": {"Enabled": true},
        "EmailMfaConfiguration": {"Message": "Your code is {####}", "Subject": "Sign-in code"},
        "WebAuthnConfiguration": {"RelyingPartyId": "auth.example.com", "UserVerification": "required",
                                  "FactorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}
    })
    .to_string();
    let rule = mock!(Client::get_user_pool_mfa_config).then_http_response(move || {
        let mut r = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body.clone()));
        r.headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        r
    });
    let live = Cognito::with_client(client!([&rule]))
        .get(&target())
        .await
        .unwrap();
    assert_eq!(
        live,
        settings(json!({
            "mfaConfiguration": "ON",
            "softwareTokenMfaConfiguration": {"enabled": true},
            "emailMfaConfiguration": {"message": "Your code is {####}", "subject": "Sign-in code"},
            "webAuthnConfiguration": {"relyingPartyId": "auth.example.com", "userVerification": "required",
                                      "factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}
        }))
    );
}

/// A Cognito stand-in with memory: Set stores the configuration, Get returns it the way Cognito
/// does (factors that are off left out).
struct Pool {
    state: Arc<Mutex<GetUserPoolMfaConfigOutput>>,
    set_requests: Arc<Mutex<Vec<SetUserPoolMfaConfigInput>>>,
    get: aws_smithy_mocks::Rule,
    set: aws_smithy_mocks::Rule,
}

impl Pool {
    fn new(initial: GetUserPoolMfaConfigOutput) -> Self {
        let state = Arc::new(Mutex::new(initial));
        let set_requests = Arc::new(Mutex::new(Vec::new()));
        let get = {
            let state = state.clone();
            mock!(Client::get_user_pool_mfa_config)
                .then_compute_output(move |_| state.lock().unwrap().clone())
        };
        let set = {
            let (state, requests) = (state.clone(), set_requests.clone());
            mock!(Client::set_user_pool_mfa_config).then_compute_output(
                move |req: &SetUserPoolMfaConfigInput| {
                    requests.lock().unwrap().push(req.clone());
                    let totp = req.software_token_mfa_configuration.clone().filter(|t| t.enabled);
                    *state.lock().unwrap() = GetUserPoolMfaConfigOutput::builder()
                        .set_mfa_configuration(req.mfa_configuration.clone())
                        .set_sms_mfa_configuration(req.sms_mfa_configuration.clone())
                        .set_software_token_mfa_configuration(totp.clone())
                        .set_email_mfa_configuration(req.email_mfa_configuration.clone())
                        .set_web_authn_configuration(req.web_authn_configuration.clone())
                        .build();
                    // Cognito answers with what it stored.
                    SetUserPoolMfaConfigOutput::builder()
                        .set_mfa_configuration(req.mfa_configuration.clone())
                        .set_sms_mfa_configuration(req.sms_mfa_configuration.clone())
                        .set_software_token_mfa_configuration(totp)
                        .set_email_mfa_configuration(req.email_mfa_configuration.clone())
                        .set_web_authn_configuration(req.web_authn_configuration.clone())
                        .build()
                },
            )
        };
        Self {
            state,
            set_requests,
            get,
            set,
        }
    }
}

#[tokio::test]
async fn email_and_passkeys_round_trip_and_then_stay_in_sync() {
    let pool = Pool::new(
        GetUserPoolMfaConfigOutput::builder()
            .mfa_configuration(aws::UserPoolMfaType::Off)
            .build(),
    );
    let describe = mock!(Client::describe_user_pool).then_output(|| {
        DescribeUserPoolOutput::builder()
            .user_pool(
                aws::UserPoolType::builder()
                    .user_pool_tier(aws::UserPoolTierType::Essentials)
                    .email_configuration(
                        aws::EmailConfigurationType::builder()
                            .email_sending_account(aws::EmailSendingAccountType::Developer)
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let cognito = Cognito::with_client(client!([&pool.get, &pool.set, &describe]));
    let desired = settings(json!({
        "mfaConfiguration": "OPTIONAL",
        "emailMfaConfiguration": {"message": "Your code is {####}", "subject": "Sign-in code"},
        "webAuthnConfiguration": {"relyingPartyId": "auth.example.com", "userVerification": "required",
                                  "factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}
    }));
    let first = sync::run(&cognito, &target(), &desired, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert!(first.wrote && first.in_sync(), "{first:?}");
    let w = first.after.web_authn_configuration.as_ref().unwrap();
    assert_eq!(
        w.factor_configuration,
        FactorConfiguration::MultiFactorWithUserVerification
    );
    assert_eq!(w.user_verification, UserVerification::Required);
    // The exact request: complete, TOTP explicitly off, no SMS.
    let req = pool.set_requests.lock().unwrap()[0].clone();
    assert_eq!(req.mfa_configuration, Some(aws::UserPoolMfaType::Optional));
    assert_eq!(
        req.software_token_mfa_configuration.map(|t| t.enabled),
        Some(false)
    );
    assert!(req.sms_mfa_configuration.is_none());
    let email = req.email_mfa_configuration.unwrap();
    assert_eq!(
        (email.message.as_deref(), email.subject.as_deref()),
        (Some("Your code is {####}"), Some("Sign-in code"))
    );
    let w = req.web_authn_configuration.unwrap();
    assert_eq!(w.relying_party_id.as_deref(), Some("auth.example.com"));
    assert_eq!(
        w.factor_configuration,
        Some(aws::WebAuthnFactorConfigurationType::MultiFactorWithUserVerification)
    );
    // Steady state: one Get, no Set.
    let (gets, sets) = (pool.get.num_calls(), pool.set.num_calls());
    let second = sync::run(&cognito, &target(), &desired, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert_eq!(second.plan.action, Action::InSync);
    assert_eq!((pool.get.num_calls() - gets, pool.set.num_calls() - sets), (1, 0));
}

#[tokio::test]
async fn unmentioned_email_message_and_passkeys_are_carried_over() {
    let pool = Pool::new(
        GetUserPoolMfaConfigOutput::builder()
            .mfa_configuration(aws::UserPoolMfaType::Optional)
            .email_mfa_configuration(
                aws::EmailMfaConfigType::builder()
                    .message("Custom {####} text")
                    .subject("Old")
                    .build(),
            )
            .web_authn_configuration(
                aws::WebAuthnConfigurationType::builder()
                    .relying_party_id("auth.example.com")
                    .user_verification(aws::UserVerificationType::Required)
                    .build(),
            )
            .build(),
    );
    let describe =
        mock!(Client::describe_user_pool).then_http_response(|| aws_error(400, "AccessDeniedException"));
    let cognito = Cognito::with_client(client!([&pool.get, &pool.set, &describe]));
    let desired = settings(
        json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
                                  "emailMfaConfiguration": {"subject": "New"}}),
    );
    let out = sync::run(&cognito, &target(), &desired, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    // DescribeUserPool is optional: denied, the check is skipped and the write goes ahead.
    assert_eq!(describe.num_calls(), 1);
    assert!(out.wrote && out.in_sync(), "{out:?}");
    let state = pool.state.lock().unwrap().clone();
    let email = state.email_mfa_configuration.unwrap();
    assert_eq!(
        (email.message.as_deref(), email.subject.as_deref()),
        (Some("Custom {####} text"), Some("New"))
    );
    let w = state.web_authn_configuration.unwrap();
    assert_eq!(w.relying_party_id.as_deref(), Some("auth.example.com"));
    assert_eq!(w.user_verification, Some(aws::UserVerificationType::Required));
}

#[tokio::test]
async fn missing_prerequisites_stop_the_write() {
    let pool = Pool::new(
        GetUserPoolMfaConfigOutput::builder()
            .mfa_configuration(aws::UserPoolMfaType::Off)
            .build(),
    );
    let describe = mock!(Client::describe_user_pool).then_output(|| {
        DescribeUserPoolOutput::builder()
            .user_pool(
                aws::UserPoolType::builder()
                    .user_pool_tier(aws::UserPoolTierType::Lite)
                    .build(),
            )
            .build()
    });
    let cognito = Cognito::with_client(client!([&pool.get, &pool.set, &describe]));
    let desired = settings(json!({"mfaConfiguration": "OPTIONAL", "emailMfaConfiguration": {}}));
    let out = sync::run(&cognito, &target(), &desired, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert!(!out.wrote);
    assert_eq!(pool.set.num_calls(), 0);
    assert!(
        out.missing_prerequisites.iter().any(|m| m.contains("Essentials")),
        "{:?}",
        out.missing_prerequisites
    );
}

#[tokio::test]
async fn disruptive_change_is_not_written_without_approval() {
    let pool = Pool::new(
        GetUserPoolMfaConfigOutput::builder()
            .mfa_configuration(aws::UserPoolMfaType::Optional)
            .software_token_mfa_configuration(
                aws::SoftwareTokenMfaConfigType::builder().enabled(true).build(),
            )
            .build(),
    );
    let describe =
        mock!(Client::describe_user_pool).then_output(|| DescribeUserPoolOutput::builder().build());
    let cognito = Cognito::with_client(client!([&pool.get, &pool.set, &describe]));
    let desired =
        settings(json!({"mfaConfiguration": "ON", "softwareTokenMfaConfiguration": {"enabled": true}}));
    let waiting = sync::run(&cognito, &target(), &desired, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert_eq!(waiting.plan.action, Action::AwaitApproval);
    assert_eq!(pool.set.num_calls(), 0);
    let approved = sync::run(
        &cognito,
        &target(),
        &desired,
        &Approval::standing(),
        Mode::Enforce,
    )
    .await
    .unwrap();
    assert!(approved.wrote && approved.in_sync());
    assert_eq!(pool.set.num_calls(), 1);
}

/// The bodies of the SetUserPoolMfaConfig requests as they go on the wire (after every fix-up
/// and signing), for the assertions that the typed input cannot make.
#[derive(Debug, Clone, Default)]
struct Wire(Arc<Mutex<Vec<serde_json::Value>>>);

impl Intercept for Wire {
    fn name(&self) -> &'static str {
        "Wire"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let is_set = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".SetUserPoolMfaConfig"));
        if is_set {
            let body = request.body().bytes().expect("JSON bodies are in memory");
            self.0.lock().unwrap().push(serde_json::from_slice(body)?);
        }
        Ok(())
    }
}

impl Wire {
    fn sms_configuration(&self, n: usize) -> serde_json::Value {
        self.0.lock().unwrap()[n]["SmsMfaConfiguration"]["SmsConfiguration"].clone()
    }
}

/// A client over `rules` whose Set bodies `wire` records.
macro_rules! wired_client {
    ($rules:expr, $wire:expr) => {
        mock_client!(aws_sdk_cognitoidentityprovider, RuleMode::MatchAny, $rules, |b| b
            .region(aws_sdk_cognitoidentityprovider::config::Region::new("eu-west-1"))
            .interceptor($wire.clone()))
    };
}

const SNS_ROLE: &str = "arn:aws:iam::123456789012:role/cognito-sms";
const EUMS_ROLE: &str = "arn:aws:iam::123456789012:role/cognito-eums";

/// The SDK in use types `SnsCallerArn` as a required string: on its own, it writes an empty one
/// beside `EumsSms`. (When this fails, the SDK has caught up with the model and the operator's
/// fix-up, `OneSmsTransport`, finds nothing to take out.)
#[tokio::test]
async fn the_sdk_on_its_own_writes_an_empty_sns_role_beside_eums() {
    let wire = Wire::default();
    let set =
        mock!(Client::set_user_pool_mfa_config).then_output(|| SetUserPoolMfaConfigOutput::builder().build());
    let client = wired_client!([&set], wire);
    let eums = aws::EumsSmsConfigurationType::builder()
        .caller_arn(EUMS_ROLE)
        .build()
        .unwrap();
    client
        .set_user_pool_mfa_config()
        .user_pool_id("eu-west-1_AbC123")
        .mfa_configuration(aws::UserPoolMfaType::Optional)
        .sms_mfa_configuration(
            aws::SmsMfaConfigType::builder()
                .sms_configuration(aws::SmsConfigurationType::builder().eums_sms(eums).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        wire.sms_configuration(0),
        json!({"SnsCallerArn": "", "EumsSms": {"CallerArn": EUMS_ROLE}})
    );
}

/// Moving a pool from SNS to End User Messaging and back: each request carries only the
/// transport the policy names, on the wire, whatever the pool had.
#[tokio::test]
async fn sns_to_end_user_messaging_and_back_sends_one_transport() {
    let sns = aws::SmsConfigurationType::builder()
        .sns_caller_arn(SNS_ROLE)
        .external_id("sns-secret")
        .sns_region("eu-west-1")
        .build();
    let pool = Pool::new(
        GetUserPoolMfaConfigOutput::builder()
            .mfa_configuration(aws::UserPoolMfaType::Optional)
            .sms_mfa_configuration(
                aws::SmsMfaConfigType::builder()
                    .sms_authentication_message("Code {####}")
                    .sms_configuration(sns)
                    .build(),
            )
            .build(),
    );
    let wire = Wire::default();
    let cognito = Cognito::with_client(wired_client!([&pool.get, &pool.set], wire));
    let to_eums = settings(json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {
        "smsConfiguration": {"eumsSms": {"callerArn": EUMS_ROLE, "externalId": "eums-secret", "region": "eu-west-1"}}}}));
    let out = sync::run(&cognito, &target(), &to_eums, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert!(out.wrote && out.in_sync(), "{out:?}");
    assert!(
        out.plan
            .changed_fields()
            .contains(&"smsMfaConfiguration.smsConfiguration.snsCallerArn".to_owned()),
        "{:?}",
        out.plan.changes
    );
    assert_eq!(
        wire.sms_configuration(0),
        json!({"EumsSms": {"CallerArn": EUMS_ROLE, "ExternalId": "eums-secret", "Region": "eu-west-1"}})
    );
    let to_sns = settings(json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {
        "smsConfiguration": {"snsCallerArn": SNS_ROLE}}}));
    let out = sync::run(&cognito, &target(), &to_sns, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert!(out.wrote && out.in_sync(), "{out:?}");
    assert_eq!(wire.sms_configuration(1), json!({"SnsCallerArn": SNS_ROLE}));
    // The message the policy leaves unset is carried over both times.
    for n in 0..2 {
        assert_eq!(
            wire.0.lock().unwrap()[n]["SmsMfaConfiguration"]["SmsAuthenticationMessage"],
            "Code {####}"
        );
    }
    // One Get and one Set per change: the answer to Set is the read-back.
    assert_eq!((pool.get.num_calls(), pool.set.num_calls()), (2, 2));
}

/// Set's answer is taken as what Cognito stored. An answer that differs from the request (a
/// passkey block nobody asked for, at Cognito's defaults) is no change; one that did not take
/// what was asked is reported, once, with no second read and no second write.
#[tokio::test]
async fn an_unsolicited_single_factor_answer_is_reported_not_looped_on() {
    let single_factor = || {
        aws::WebAuthnConfigurationType::builder()
            .factor_configuration(aws::WebAuthnFactorConfigurationType::SingleFactor)
            .build()
    };
    let get = mock!(Client::get_user_pool_mfa_config).then_output(|| {
        GetUserPoolMfaConfigOutput::builder()
            .mfa_configuration(aws::UserPoolMfaType::Off)
            .build()
    });
    let set = mock!(Client::set_user_pool_mfa_config).then_compute_output(
        move |req: &SetUserPoolMfaConfigInput| {
            SetUserPoolMfaConfigOutput::builder()
                .set_mfa_configuration(req.mfa_configuration.clone())
                .set_software_token_mfa_configuration(req.software_token_mfa_configuration.clone())
                .web_authn_configuration(single_factor())
                .build()
        },
    );
    let describe = mock!(Client::describe_user_pool).then_output(|| {
        DescribeUserPoolOutput::builder()
            .user_pool(
                aws::UserPoolType::builder()
                    .user_pool_tier(aws::UserPoolTierType::Essentials)
                    .build(),
            )
            .build()
    });
    let cognito = Cognito::with_client(client!([&get, &set, &describe]));

    // The policy does not manage passkeys: Cognito's default block is no difference.
    let totp =
        settings(json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}));
    let out = sync::run(&cognito, &target(), &totp, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert!(out.wrote && out.in_sync(), "{out:?}");
    assert_eq!((get.num_calls(), set.num_calls()), (1, 1));

    // The policy asks for passkeys as MFA; the answer says SINGLE_FACTOR: reported.
    let multi = settings(
        json!({"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true},
        "webAuthnConfiguration": {"factorConfiguration": "MULTI_FACTOR_WITH_USER_VERIFICATION"}}),
    );
    let out = sync::run(&cognito, &target(), &multi, &no_approval(), Mode::Enforce)
        .await
        .unwrap();
    assert!(out.wrote && !out.in_sync(), "{out:?}");
    let left: Vec<&str> = out.remaining.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(left, ["webAuthnConfiguration.factorConfiguration"]);
    assert_eq!((get.num_calls(), set.num_calls()), (2, 2));
}

/// An error answer with a body of `fields` beside the code.
fn aws_error_with(code: &'static str, fields: serde_json::Value) -> HttpResponse {
    let mut body = json!({"__type": code});
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let mut resp = HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(body.to_string()),
    );
    resp.headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    resp.headers_mut().insert("x-amzn-errortype", code);
    resp
}

/// Errors say what to do: the reasonCode of InvalidParameterException, a reason of its own for
/// the SMS configuration that keeps SMS MFA on, both causes of OperationNotEnabled, and never an
/// external ID, even where AWS's message echoes it.
#[rstest]
#[case::reason_code(
    "InvalidParameterException",
    json!({"message": "Role arn:aws:iam::123456789012:role/cognito-sms cannot be assumed with external ID ext-secret-42", "reasonCode": "INVALID_SMS_ROLE_EXTERNAL_ID"}),
    ErrorClass::InvalidParameter,
    &["reasonCode INVALID_SMS_ROLE_EXTERNAL_ID", "cannot be assumed with external ID (redacted)"]
)]
#[case::sms_configuration_in_use(
    "InvalidParameterException",
    json!({"message": "Can't turn off SMS_MFA when SMS configuration is set for the user pool"}),
    ErrorClass::SmsConfigurationInUse,
    &["Can't turn off SMS_MFA", "add smsMfaConfiguration to the policy", "remove the pool's SMS configuration"]
)]
#[case::operation_not_enabled(
    "OperationNotEnabledException",
    json!({"message": "This operation is not supported in secondary replica regions"}),
    ErrorClass::OperationNotEnabled,
    &["the feature is not enabled", "secondary replica", "set spec.region to the pool's primary region"]
)]
#[tokio::test]
async fn errors_say_what_to_do(
    #[case] code: &'static str,
    #[case] body: serde_json::Value,
    #[case] class: ErrorClass,
    #[case] says: &[&str],
) {
    let rule = mock!(Client::set_user_pool_mfa_config)
        .then_http_response(move || aws_error_with(code, body.clone()));
    let cognito = Cognito::with_client(client!([&rule]));
    let request = settings(json!({"mfaConfiguration": "OPTIONAL", "smsMfaConfiguration": {
        "smsConfiguration": {"snsCallerArn": SNS_ROLE, "externalId": "ext-secret-42"}}}));
    let err = cognito
        .set(&target(), &request)
        .await
        .expect_err("the mock refuses");
    assert_eq!(err.class, class);
    let text = err.to_string();
    for part in says {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(!text.contains("ext-secret-42"), "{text}");
}
