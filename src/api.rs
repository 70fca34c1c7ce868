//! The `CognitoMfaPolicy` API: what users write (spec) and what the operator reports (status).
//!
//! The spec mirrors `SetUserPoolMfaConfig` in lowerCamelCase so that AWS's documentation reads
//! straight onto it. Every limit of the AWS model is in the schema (so `kubectl apply` rejects what
//! Cognito would reject) and again in [`validate`] (for objects that never passed admission: old
//! objects, API servers without CEL, files given to the offline commands). Both read the same
//! constants in [`limits`], so they cannot disagree.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub mod baseline;
pub use baseline::{CognitoMfaBaseline, CognitoMfaBaselineSpec, CognitoMfaBaselineStatus};

/// The annotation that approves a disruptive change (see [`crate::plan::Disruption`]).
pub const ALLOW_DISRUPTIVE_ANNOTATION: &str = "cognitomfa.io/allow-disruptive-changes";

/// The annotation that approves one disruptive change: its value is the token that the
/// AwaitingApproval message and `plan` give for that change (see [`crate::plan::approval_token`]).
pub const APPROVE_CHANGE_ANNOTATION: &str = "cognitomfa.io/approve-change";

/// What admission and [`validate`] say of a spec that names both SMS transports.
pub const SNS_OR_EUMS_MESSAGE: &str = "smsConfiguration takes snsCallerArn (Amazon SNS) or eumsSms (AWS End User Messaging SMS), not both: remove one of them";

/// What admission and [`validate`] say of an End User Messaging region that is not the pool's.
pub const EUMS_REGION_MESSAGE: &str = "smsConfiguration.eumsSms.region must be the user pool's region (spec.region, or the prefix of userPoolId)";

/// Limits of the AWS model (`SetUserPoolMfaConfig`, service model 2016-04-18), shared by the CRD
/// schema and the Rust validation.
///
/// Patterns are anchored: AWS matches them against the whole value. `\w` is spelled out as
/// `[A-Za-z0-9_]` because the engines that evaluate these patterns (Go's in the API server, Rust's
/// here, Java's at AWS) disagree on whether `\w` includes non-ASCII letters.
pub mod limits {
    /// `UserPoolIdType`: 1-55 characters, `[\w-]+_[0-9a-zA-Z]+`.
    pub const USER_POOL_ID_PATTERN: &str = r"^[A-Za-z0-9_-]+_[0-9a-zA-Z]+$";
    /// Longest user pool ID.
    pub const USER_POOL_ID_MAX: u32 = 55;
    /// An AWS region code such as `eu-west-1` (`RegionCodeType` allows 5-32 characters).
    pub const REGION_PATTERN: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$";
    /// Shortest region code.
    pub const REGION_MIN: u32 = 5;
    /// Longest region code.
    pub const REGION_MAX: u32 = 32;
    /// `SmsVerificationMessageType`: 6-140 characters, `.*\{####\}.*`. AWS matches the whole
    /// value with Java's `.`, which is any character but a line terminator (`\n`, `\r`, U+0085,
    /// U+2028, U+2029): spelled out, so that Go, Rust and Java give the same verdict.
    pub const SMS_MESSAGE_PATTERN: &str = r"^[^\n\r\x85\p{Zl}\p{Zp}]*\{####\}[^\n\r\x85\p{Zl}\p{Zp}]*$";
    /// Shortest SMS message.
    pub const SMS_MESSAGE_MIN: u32 = 6;
    /// Longest SMS message.
    pub const SMS_MESSAGE_MAX: u32 = 140;
    /// `ArnType`: an ARN, 20-2048 characters.
    pub const ARN_PATTERN: &str = r"^arn:[A-Za-z0-9_+=/,.@-]+:[A-Za-z0-9_+=/,.@-]+:([A-Za-z0-9_+=/,.@-]*)?:[0-9]+:[A-Za-z0-9_+=/,.@-]+(:[A-Za-z0-9_+=/,.@-]+)?(:[A-Za-z0-9_+=/,.@-]+)?$";
    /// Shortest ARN.
    pub const ARN_MIN: u32 = 20;
    /// Longest ARN.
    pub const ARN_MAX: u32 = 2048;
    /// `StringType` (external IDs and the other free-text SMS settings): at most 131072 characters.
    pub const STRING_MAX: u32 = 131_072;
    /// `EmailMfaMessageType`: 6-20000 letters, marks, symbols, numbers, punctuation and ASCII
    /// white space, containing `{####}` (AWS's `[\p{L}\p{M}\p{S}\p{N}\p{P}\s*]*\{####\}...`).
    /// Java's `\s`, as AWS evaluates it, is ASCII: `[ \t\n\x0B\f\r]`. It is spelled out because
    /// Rust's `\s` is Unicode (it would let a non-breaking space through) and Go's leaves out
    /// `\x0B`.
    pub const EMAIL_MESSAGE_PATTERN: &str =
        r"^[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\x0B\f\r *]*\{####\}[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\x0B\f\r *]*$";
    /// Shortest email message.
    pub const EMAIL_MESSAGE_MIN: u32 = 6;
    /// Longest email message.
    pub const EMAIL_MESSAGE_MAX: u32 = 20_000;
    /// `EmailMfaSubjectType`: letters, marks, symbols, numbers, punctuation and ASCII white space
    /// (AWS's `[\p{L}\p{M}\p{S}\p{N}\p{P}\s]+`, with Java's ASCII `\s` spelled out).
    pub const EMAIL_SUBJECT_PATTERN: &str = r"^[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\x0B\f\r ]+$";
    /// Shortest email subject.
    pub const EMAIL_SUBJECT_MIN: u32 = 1;
    /// Longest email subject. The API model gives `EmailMfaSubjectType` no maximum; 140
    /// characters is the limit of Cognito's quotas page ("Quotas in Amazon Cognito", resource
    /// quotas for user pool message customization:
    /// <https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html>).
    pub const EMAIL_SUBJECT_MAX: u32 = 140;
    /// `RelyingPartyIdType`: 1-127 characters.
    pub const RELYING_PARTY_ID_MIN: u32 = 1;
    /// Longest relying party ID.
    pub const RELYING_PARTY_ID_MAX: u32 = 127;
    /// An IAM role ARN for `credentials.roleArn` (STS `AssumeRole`'s `RoleArn`).
    pub const ROLE_ARN_PATTERN: &str = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$";
    /// STS `ExternalId`: 2-1224 characters of `[\w+=,.@:/-]`.
    pub const STS_EXTERNAL_ID_PATTERN: &str = r"^[A-Za-z0-9_+=,.@:/-]+$";
    /// Shortest STS external ID.
    pub const STS_EXTERNAL_ID_MIN: u32 = 2;
    /// Longest STS external ID.
    pub const STS_EXTERNAL_ID_MAX: u32 = 1224;
}
use limits::*;

/// The desired MFA and passkey configuration of one user pool. Its fields mirror
/// SetUserPoolMfaConfig in lowerCamelCase, plus the pool, its region, and how the operator manages
/// it.
// kube's `printcolumn(...)` repeats `type_ = ...` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cognitomfa.io",
    version = "v1alpha1",
    kind = "CognitoMfaPolicy",
    plural = "cognitomfapolicies",
    shortname = "cmp",
    category = "cognito",
    namespaced,
    status = "CognitoMfaPolicyStatus",
    derive = "PartialEq",
    doc = "CognitoMfaPolicy owns the multi-factor authentication (MFA) and passkey (WebAuthn) configuration of one existing Amazon Cognito user pool: the operator makes the pool match the spec through SetUserPoolMfaConfig, corrects drift, and reports what it did in status conditions and events. It never touches anything else of the pool.",
    printcolumn(
        name = "Pool",
        type_ = "string",
        description = "The Cognito user pool ID",
        json_path = ".spec.userPoolId"
    ),
    printcolumn(
        name = "MFA",
        type_ = "string",
        description = "Desired MFA mode",
        json_path = ".spec.mfaConfiguration"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether the pool matches the policy",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Why the policy is (not) ready",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("self.mfaConfiguration != 'OFF' || (!has(self.smsMfaConfiguration) && !has(self.emailMfaConfiguration) && !has(self.softwareTokenMfaConfiguration))")
        .message("mfaConfiguration OFF allows no smsMfaConfiguration, emailMfaConfiguration or softwareTokenMfaConfiguration (Cognito rejects turning MFA off while configuring a factor)")
        .field_path(".mfaConfiguration"),
    validation = Rule::new("self.mfaConfiguration == 'OFF' || has(self.smsMfaConfiguration) || has(self.emailMfaConfiguration) || (has(self.softwareTokenMfaConfiguration) && self.softwareTokenMfaConfiguration.enabled)")
        .message("mfaConfiguration ON or OPTIONAL needs an enabled factor: smsMfaConfiguration, emailMfaConfiguration or softwareTokenMfaConfiguration with enabled: true (a passkey alone does not count)")
        .field_path(".mfaConfiguration"),
    validation = Rule::new("!has(self.smsMfaConfiguration) || !has(self.smsMfaConfiguration.smsConfiguration) || !has(self.smsMfaConfiguration.smsConfiguration.eumsSms) || !has(self.smsMfaConfiguration.smsConfiguration.eumsSms.region) || (has(self.region) ? self.smsMfaConfiguration.smsConfiguration.eumsSms.region == self.region : self.userPoolId.startsWith(self.smsMfaConfiguration.smsConfiguration.eumsSms.region + '_'))")
        .message(EUMS_REGION_MESSAGE)
        .field_path(".smsMfaConfiguration.smsConfiguration.eumsSms.region"),
    validation = Rule::new("has(self.region) == has(oldSelf.region) && (!has(self.region) || self.region == oldSelf.region)")
        .message("region is immutable: it cannot be added, removed or changed after creation")
        .field_path(".region")
)]
#[serde(rename_all = "camelCase")]
pub struct CognitoMfaPolicySpec {
    /// ID of the existing user pool whose MFA configuration this policy owns, for example
    /// eu-west-1_AbCdEf123. Immutable. One pool (per region) is owned by at most one policy: the
    /// oldest policy naming it.
    #[x_kube(validation = Rule::new("self == oldSelf").message("userPoolId is immutable"))]
    #[schemars(length(min = 1, max = USER_POOL_ID_MAX), pattern(USER_POOL_ID_PATTERN))]
    pub user_pool_id: String,

    /// AWS region of the user pool. Default: the prefix of userPoolId (eu-west-1 for
    /// eu-west-1_AbCdEf123). Set it for a replica pool, which keeps the ID of its primary region.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = REGION_MIN, max = REGION_MAX), pattern(REGION_PATTERN))]
    pub region: Option<String>,

    /// The MFA configuration: what AWS calls SetUserPoolMfaConfig's settings.
    #[serde(flatten)]
    pub settings: MfaSettings,

    /// Enforce (default): make the pool match the policy and correct drift. Observe: never write
    /// to AWS; report differences as drift (Ready=False, reason Drifted).
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// What deleting the policy does to the pool. Retain (default): nothing. Reset: set MFA OFF
    /// (passkey settings stay). Restore: put back the configuration seen before the operator's
    /// first write (status.adoptedFrom). Reset and Restore hold a finalizer until AWS confirms; a
    /// pool that no longer exists never blocks deletion.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Credentials for a pool in another AWS account. Default: the operator's own credentials
    /// (IRSA, EKS Pod Identity, environment or instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
}

/// The MFA and passkey settings of a user pool, in the shape of SetUserPoolMfaConfig.
///
/// In a spec, the SMS, email and TOTP blocks that are present are the factors that are on; a block
/// left out means that factor is off. Optional values left unset (messages, subject, SMS role,
/// the whole webAuthnConfiguration) are not managed: the operator keeps whatever the pool has.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MfaSettings {
    /// MFA mode of the pool. OFF: no MFA. OPTIONAL: each user may set up a factor. ON: every user
    /// must complete MFA at sign-in (OPTIONAL or OFF to ON needs approval: the
    /// cognitomfa.io/approve-change annotation with the token of that change, or the standing
    /// cognitomfa.io/allow-disruptive-changes: "true"). ON and OPTIONAL need at least one
    /// enabled SMS, email or TOTP factor.
    pub mfa_configuration: MfaMode,

    /// Time-based one-time passwords from an authenticator app (TOTP). Present with enabled: true
    /// turns TOTP MFA on; absent or enabled: false turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_token_mfa_configuration: Option<SoftwareTokenMfa>,

    /// SMS text message MFA. Present: on. Absent: off. SMS MFA needs the pool's SMS configuration
    /// (an IAM role that Cognito assumes to send through Amazon SNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_mfa_configuration: Option<SmsMfa>,

    /// Email one-time-password MFA. Present: on. Absent: off. Needs the Essentials tier or higher
    /// and email sent through Amazon SES (EmailSendingAccount DEVELOPER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_mfa_configuration: Option<EmailMfa>,

    /// Passkey (WebAuthn) settings. Absent: not managed, the pool keeps its current settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_authn_configuration: Option<WebAuthn>,
}

/// MFA mode of a user pool: OFF, ON or OPTIONAL.
// Doc comments on the variants would turn the schema's `enum` into a `oneOf`: the type's doc
// lists the values instead.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MfaMode {
    // No MFA.
    #[default]
    Off,
    // Every user must complete MFA.
    On,
    // Users choose whether to set up MFA.
    Optional,
}

/// TOTP (authenticator app) MFA.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareTokenMfa {
    /// true turns TOTP MFA on, false turns it off.
    pub enabled: bool,
}

/// SMS MFA settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SmsMfa {
    /// Text of the SMS that carries the code: 6-140 characters, must contain {####} where the
    /// code goes. Unset: the pool keeps its current message (Cognito's default on a new pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = SMS_MESSAGE_MIN, max = SMS_MESSAGE_MAX), pattern(SMS_MESSAGE_PATTERN))]
    pub sms_authentication_message: Option<String>,

    /// How Cognito sends SMS: the IAM role it assumes to publish through Amazon SNS (or AWS End
    /// User Messaging SMS). Unset: the pool keeps its current SMS configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_configuration: Option<SmsConfiguration>,
}

/// The SMS sending configuration of the user pool: Amazon SNS (snsCallerArn) or AWS End User
/// Messaging SMS (eumsSms), not both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[x_kube(
    validation = Rule::new("!has(self.snsCallerArn) || !has(self.eumsSms)")
        .message(SNS_OR_EUMS_MESSAGE)
        .field_path(".eumsSms")
)]
#[serde(rename_all = "camelCase")]
pub struct SmsConfiguration {
    /// ARN of the IAM role in your account that Cognito assumes to send SMS through Amazon SNS,
    /// for example arn:aws:iam::123456789012:role/cognito-sms. Not together with eumsSms: when
    /// the policy names one, the other is removed from the pool. Unset (and no eumsSms): kept as
    /// the pool has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = ARN_MIN, max = ARN_MAX), pattern(ARN_PATTERN))]
    pub sns_caller_arn: Option<String>,

    /// External ID that Cognito passes when it assumes snsCallerArn; the role's trust policy
    /// should require it. Never shown in events, logs or status. Unset: kept as the pool has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = STRING_MAX))]
    pub external_id: Option<String>,

    /// AWS region of the Amazon SNS endpoint that sends the messages (5-32 characters). Unset:
    /// kept as the pool has it (Cognito's default is the pool's region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = REGION_MIN, max = REGION_MAX))]
    pub sns_region: Option<String>,

    /// Send SMS through AWS End User Messaging SMS instead of Amazon SNS. Not together with
    /// snsCallerArn: a policy that names eumsSms moves the pool off SNS (its snsCallerArn,
    /// externalId and snsRegion are not carried over). Unset (and no snsCallerArn): kept as the
    /// pool has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eums_sms: Option<Box<EumsSmsConfiguration>>,
}

/// AWS End User Messaging SMS settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EumsSmsConfiguration {
    /// ARN of the IAM role that Cognito assumes to send SMS through End User Messaging SMS.
    #[schemars(length(min = ARN_MIN, max = ARN_MAX), pattern(ARN_PATTERN))]
    pub caller_arn: String,
    /// External ID that Cognito passes when it assumes callerArn. Never shown in events, logs
    /// or status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = STRING_MAX))]
    pub external_id: Option<String>,
    /// Origination identity (phone number, sender ID or pool) that messages are sent from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = STRING_MAX))]
    pub origination_identity: Option<String>,
    /// End User Messaging SMS configuration set to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = STRING_MAX))]
    pub configuration_set_name: Option<String>,
    /// Entity ID registered for sending to India (DLT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = STRING_MAX))]
    pub in_entity_id: Option<String>,
    /// Template ID registered for sending to India (DLT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = STRING_MAX))]
    pub in_template_id: Option<String>,
    /// AWS region of the End User Messaging SMS endpoint: it must be the pool's region
    /// (spec.region, or the prefix of userPoolId). Unset: Cognito uses the pool's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = REGION_MIN, max = REGION_MAX))]
    pub region: Option<String>,
}

/// Email OTP MFA settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EmailMfa {
    /// Body of the email that carries the code: 6-20000 characters, must contain {####} where
    /// the code goes. Unset: the pool keeps its current message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = EMAIL_MESSAGE_MIN, max = EMAIL_MESSAGE_MAX), pattern(EMAIL_MESSAGE_PATTERN))]
    pub message: Option<String>,

    /// Subject of the email that carries the code (1-140 printable characters). Unset: the pool
    /// keeps its current subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = EMAIL_SUBJECT_MIN, max = EMAIL_SUBJECT_MAX), pattern(EMAIL_SUBJECT_PATTERN))]
    pub subject: Option<String>,
}

/// Passkey (WebAuthn) settings of the user pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebAuthn {
    /// Relying party ID of the passkeys: the domain users register them for, for example
    /// auth.example.com (1-127 characters). Changing it invalidates every passkey users have
    /// registered, so a change needs approval (cognitomfa.io/approve-change). Unset:
    /// the pool keeps its current one (Cognito's default is the pool's domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = RELYING_PARTY_ID_MIN, max = RELYING_PARTY_ID_MAX))]
    pub relying_party_id: Option<String>,

    /// Whether the authenticator must verify the user (PIN, biometrics): required or preferred
    /// (default, as Cognito's).
    #[serde(default)]
    pub user_verification: UserVerification,

    /// What a passkey counts as. SINGLE_FACTOR (default, as Cognito's): a passkey is a
    /// passwordless first factor. MULTI_FACTOR_WITH_USER_VERIFICATION: a passkey with user
    /// verification also satisfies MFA (needs the Essentials tier or higher, and is required when
    /// mfaConfiguration is ON and WEB_AUTHN is an allowed first factor).
    #[serde(default)]
    pub factor_configuration: FactorConfiguration,
}

/// Passkey user verification: required or preferred.
// Doc comments on the variants would turn the schema's `enum` into a `oneOf`: the type's doc
// lists the values instead.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    // The authenticator must verify the user.
    Required,
    // Verify the user when the authenticator can.
    #[default]
    Preferred,
}

/// What a passkey counts as: SINGLE_FACTOR or MULTI_FACTOR_WITH_USER_VERIFICATION.
// Doc comments on the variants would turn the schema's `enum` into a `oneOf`: the type's doc
// lists the values instead.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FactorConfiguration {
    // A passkey is one factor.
    #[default]
    SingleFactor,
    // A user-verified passkey also counts as MFA.
    MultiFactorWithUserVerification,
}

/// Whether the operator writes to AWS: Enforce (default) or Observe.
// Doc comments on the variants would turn the schema's `enum` into a `oneOf`: the type's doc
// lists the values instead.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum ManagementPolicy {
    // Make the pool match the policy.
    #[default]
    Enforce,
    // Never write; report drift.
    Observe,
}

/// What deleting the policy does to the pool: Retain (default), Reset or Restore.
// Doc comments on the variants would turn the schema's `enum` into a `oneOf`: the type's doc
// lists the values instead.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum DeletionPolicy {
    // Leave the pool as it is.
    #[default]
    Retain,
    // Set MFA OFF.
    Reset,
    // Put back status.adoptedFrom.
    Restore,
}

/// Credentials for a pool in another AWS account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// ARN of an IAM role (in the pool's account) that the operator assumes through STS, for
    /// example arn:aws:iam::210987654321:role/mfa-operator. Its trust policy must allow the
    /// operator's own role. Calls to each account and region share one rate budget.
    #[schemars(length(min = ARN_MIN, max = ARN_MAX), pattern(ROLE_ARN_PATTERN))]
    pub role_arn: String,

    /// External ID that the role's trust policy requires (2-1224 characters). Never shown in
    /// events, logs or status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = STS_EXTERNAL_ID_MIN, max = STS_EXTERNAL_ID_MAX), pattern(STS_EXTERNAL_ID_PATTERN))]
    pub external_id: Option<String>,
}

/// What the operator last saw and did.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CognitoMfaPolicyStatus {
    /// The metadata.generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: the pool matches the policy. Synced: the last exchange with AWS worked. Stalled:
    /// waiting on a human (bad spec, missing permission, approval, conflict). Reasons: InSync,
    /// Applied, DriftCorrected, Drifted, InvalidSpec, UserPoolNotFound, AccessDenied,
    /// FeatureUnavailableInTier, InvalidSmsRole, Throttled, AwsUnavailable, Conflict,
    /// AwaitingApproval, PrerequisiteMissing, SmsConfigurationInUse, OperationNotEnabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The pool's live MFA configuration, normalised (absent factors are off, Cognito's defaults
    /// filled in); external IDs are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Box<MfaSettings>>,

    /// The pool's configuration before the operator first wrote to it, used by deletionPolicy
    /// Restore; external IDs are left out (Restore keeps the pool's current ones). Written with
    /// the status that reports the first write; with deletionPolicy Restore, before that write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<Box<MfaSettings>>,

    /// When the operator last read the pool's configuration successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// Differences between the policy and the pool found by the last check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// Drift between the policy and the pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// Whether the last check found the pool different from the policy.
    pub detected: bool,
    /// Spec fields that differed, for example mfaConfiguration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// When drift was last found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
}

impl fmt::Display for MfaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "OFF",
            Self::On => "ON",
            Self::Optional => "OPTIONAL",
        })
    }
}

impl fmt::Display for UserVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Required => "required",
            Self::Preferred => "preferred",
        })
    }
}

impl fmt::Display for FactorConfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SingleFactor => "SINGLE_FACTOR",
            Self::MultiFactorWithUserVerification => "MULTI_FACTOR_WITH_USER_VERIFICATION",
        })
    }
}

impl MfaSettings {
    /// These settings without external IDs, for status, events, logs and printed output.
    pub fn redacted(&self) -> Self {
        let mut out = self.clone();
        if let Some(c) = out
            .sms_mfa_configuration
            .as_mut()
            .and_then(|s| s.sms_configuration.as_mut())
        {
            c.external_id = None;
            if let Some(e) = c.eums_sms.as_mut() {
                e.external_id = None;
            }
        }
        out
    }
}

impl CognitoMfaPolicySpec {
    /// What approval tokens for this policy are bound to: its pool and region.
    pub fn approval_scope(&self) -> String {
        format!(
            "{} ({})",
            self.user_pool_id,
            self.effective_region().unwrap_or_default()
        )
    }

    /// The AWS region of the pool: `region`, else the pool ID's prefix.
    pub fn effective_region(&self) -> Option<&str> {
        self.region
            .as_deref()
            .or_else(|| region_of_pool_id(&self.user_pool_id))
    }
}

/// The region prefix of a user pool ID (`eu-west-1` for `eu-west-1_AbC123`).
pub fn region_of_pool_id(user_pool_id: &str) -> Option<&str> {
    let (prefix, _) = user_pool_id.split_once('_')?;
    regex_matches(REGION_PATTERN, prefix).then_some(prefix)
}

impl CognitoMfaPolicy {
    /// What the object's annotations approve: the standing approval
    /// (`cognitomfa.io/allow-disruptive-changes: "true"`) and the token of one change
    /// (`cognitomfa.io/approve-change`), bound to the policy's pool.
    pub fn approval(&self) -> crate::plan::Approval {
        crate::plan::Approval {
            scope: self.spec.approval_scope(),
            standing: self.allows_disruptive_changes(),
            tokens: crate::plan::tokens_of(
                self.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(APPROVE_CHANGE_ANNOTATION))
                    .map(String::as_str),
            ),
        }
    }

    /// Whether the object carries `cognitomfa.io/allow-disruptive-changes: "true"`.
    pub fn allows_disruptive_changes(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ALLOW_DISRUPTIVE_ANNOTATION))
            .is_some_and(|v| v == "true")
    }
}

/// One violated rule: the field (a path under `spec`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Path of the offending field, such as `spec.smsMfaConfiguration.smsAuthenticationMessage`.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Checks a spec against every rule the CRD enforces at admission (limits, patterns and the
/// cross-field rules), for objects that did not pass through admission. Returns one violation per
/// broken rule, in field order; an empty list means valid.
///
/// Immutability (a transition rule) needs the old object and is not checked here.
pub fn validate(spec: &CognitoMfaPolicySpec) -> Vec<Violation> {
    let mut v = Checker::default();
    v.string(
        "spec.userPoolId",
        Some(&spec.user_pool_id),
        1,
        USER_POOL_ID_MAX,
        Some(USER_POOL_ID_PATTERN),
    );
    v.string(
        "spec.region",
        spec.region.as_deref(),
        REGION_MIN,
        REGION_MAX,
        Some(REGION_PATTERN),
    );
    if spec.effective_region().is_none() {
        v.fail("spec.region", "the region cannot be derived from userPoolId (no region prefix such as eu-west-1_); set spec.region");
    }
    check_settings(&mut v, "spec", &spec.settings, spec.effective_region());
    if let Some(c) = &spec.credentials {
        check_credentials(&mut v, c);
    }
    v.0
}

/// The rules of MFA settings (a policy's spec, a baseline's template), their fields under
/// `prefix`; `region`: the pool's region, which an End User Messaging region must equal.
pub(crate) fn check_settings(v: &mut Checker, prefix: &str, s: &MfaSettings, pool_region: Option<&str>) {
    let has_factor_block = s.sms_mfa_configuration.is_some()
        || s.email_mfa_configuration.is_some()
        || s.software_token_mfa_configuration.is_some();
    match s.mfa_configuration {
        MfaMode::Off if has_factor_block => v.fail(
            &format!("{prefix}.mfaConfiguration"),
            "mfaConfiguration OFF allows no smsMfaConfiguration, emailMfaConfiguration or softwareTokenMfaConfiguration (Cognito rejects turning MFA off while configuring a factor)",
        ),
        MfaMode::On | MfaMode::Optional if enabled_factors(s).is_empty() => v.fail(
            &format!("{prefix}.mfaConfiguration"),
            "mfaConfiguration ON or OPTIONAL needs an enabled factor: smsMfaConfiguration, emailMfaConfiguration or softwareTokenMfaConfiguration with enabled: true (a passkey alone does not count)",
        ),
        _ => {}
    }
    if let Some(sms) = &s.sms_mfa_configuration {
        v.string(
            &format!("{prefix}.smsMfaConfiguration.smsAuthenticationMessage"),
            sms.sms_authentication_message.as_deref(),
            SMS_MESSAGE_MIN,
            SMS_MESSAGE_MAX,
            Some(SMS_MESSAGE_PATTERN),
        );
        if let Some(c) = &sms.sms_configuration {
            let p = format!("{prefix}.smsMfaConfiguration.smsConfiguration");
            v.string(
                &format!("{p}.snsCallerArn"),
                c.sns_caller_arn.as_deref(),
                ARN_MIN,
                ARN_MAX,
                Some(ARN_PATTERN),
            );
            v.string(
                &format!("{p}.externalId"),
                c.external_id.as_deref(),
                0,
                STRING_MAX,
                None,
            );
            v.string(
                &format!("{p}.snsRegion"),
                c.sns_region.as_deref(),
                REGION_MIN,
                REGION_MAX,
                None,
            );
            if c.sns_caller_arn.is_some() && c.eums_sms.is_some() {
                v.fail(&format!("{p}.eumsSms"), SNS_OR_EUMS_MESSAGE);
            }
            if let Some(e) = &c.eums_sms {
                let p = format!("{p}.eumsSms");
                v.string(
                    &format!("{p}.callerArn"),
                    Some(&e.caller_arn),
                    ARN_MIN,
                    ARN_MAX,
                    Some(ARN_PATTERN),
                );
                for (name, value) in [
                    ("externalId", &e.external_id),
                    ("originationIdentity", &e.origination_identity),
                    ("configurationSetName", &e.configuration_set_name),
                    ("inEntityId", &e.in_entity_id),
                    ("inTemplateId", &e.in_template_id),
                ] {
                    v.string(&format!("{p}.{name}"), value.as_deref(), 0, STRING_MAX, None);
                }
                let before = v.0.len();
                v.string(
                    &format!("{p}.region"),
                    e.region.as_deref(),
                    REGION_MIN,
                    REGION_MAX,
                    None,
                );
                if v.0.len() == before
                    && let Some(region) = &e.region
                    && pool_region.is_some_and(|r| r != region)
                {
                    v.fail(&format!("{p}.region"), EUMS_REGION_MESSAGE);
                }
            }
        }
    }
    if let Some(email) = &s.email_mfa_configuration {
        let p = format!("{prefix}.emailMfaConfiguration");
        v.string(
            &format!("{p}.message"),
            email.message.as_deref(),
            EMAIL_MESSAGE_MIN,
            EMAIL_MESSAGE_MAX,
            Some(EMAIL_MESSAGE_PATTERN),
        );
        v.string(
            &format!("{p}.subject"),
            email.subject.as_deref(),
            EMAIL_SUBJECT_MIN,
            EMAIL_SUBJECT_MAX,
            Some(EMAIL_SUBJECT_PATTERN),
        );
    }
    if let Some(w) = &s.web_authn_configuration {
        v.string(
            &format!("{prefix}.webAuthnConfiguration.relyingPartyId"),
            w.relying_party_id.as_deref(),
            RELYING_PARTY_ID_MIN,
            RELYING_PARTY_ID_MAX,
            None,
        );
    }
}

/// The rules of credentials.
pub(crate) fn check_credentials(v: &mut Checker, c: &Credentials) {
    v.string(
        "spec.credentials.roleArn",
        Some(&c.role_arn),
        ARN_MIN,
        ARN_MAX,
        Some(ROLE_ARN_PATTERN),
    );
    v.string(
        "spec.credentials.externalId",
        c.external_id.as_deref(),
        STS_EXTERNAL_ID_MIN,
        STS_EXTERNAL_ID_MAX,
        Some(STS_EXTERNAL_ID_PATTERN),
    );
}

/// The MFA factors (SMS, email, TOTP) that settings turn on. A passkey is not among them: it does
/// not satisfy Cognito's "at least one factor" rule.
pub fn enabled_factors(s: &MfaSettings) -> Vec<Factor> {
    let mut out = Vec::new();
    if s.sms_mfa_configuration.is_some() {
        out.push(Factor::Sms);
    }
    if s.email_mfa_configuration.is_some() {
        out.push(Factor::Email);
    }
    if s.software_token_mfa_configuration
        .as_ref()
        .is_some_and(|t| t.enabled)
    {
        out.push(Factor::Totp);
    }
    out
}

/// An MFA factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Factor {
    /// SMS text message.
    Sms,
    /// Email one-time password.
    Email,
    /// Authenticator app (TOTP).
    Totp,
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sms => "SMS",
            Self::Email => "email",
            Self::Totp => "TOTP",
        })
    }
}

#[derive(Default)]
pub(crate) struct Checker(pub(crate) Vec<Violation>);

impl Checker {
    pub(crate) fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(Violation {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Length in characters (as the API server counts) and pattern of an optional string.
    pub(crate) fn string(
        &mut self,
        field: &str,
        value: Option<&str>,
        min: u32,
        max: u32,
        pattern: Option<&str>,
    ) {
        let Some(value) = value else { return };
        let len = value.chars().count();
        if len < min as usize || len > max as usize {
            self.fail(field, format!("must be {min}-{max} characters long, is {len}"));
        } else if let Some(p) = pattern
            && !regex_matches(p, value)
        {
            self.fail(field, pattern_message(p));
        }
    }
}

fn pattern_message(pattern: &str) -> String {
    match pattern {
        SMS_MESSAGE_PATTERN => "must contain {####}, where Cognito puts the code".into(),
        EMAIL_MESSAGE_PATTERN => {
            "must contain {####}, where Cognito puts the code, and only printable characters".into()
        }
        EMAIL_SUBJECT_PATTERN => "must contain only printable characters".into(),
        USER_POOL_ID_PATTERN => "must look like <region>_<id>, for example eu-west-1_AbCdEf123".into(),
        REGION_PATTERN => "must be an AWS region code such as eu-west-1".into(),
        ROLE_ARN_PATTERN => "must be an IAM role ARN such as arn:aws:iam::123456789012:role/name".into(),
        ARN_PATTERN => "must be an ARN such as arn:aws:iam::123456789012:role/name".into(),
        other => format!("must match {other}"),
    }
}

/// Whether `value` matches one of the patterns above. The patterns are compiled once each.
fn regex_matches(pattern: &str, value: &str) -> bool {
    use std::{collections::HashMap, sync::LazyLock, sync::Mutex};
    static CACHE: LazyLock<Mutex<HashMap<String, regex::Regex>>> = LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(re) = cache.get(pattern) {
        return re.is_match(value);
    }
    let re = regex::Regex::new(pattern).expect("the patterns in `limits` compile");
    let matched = re.is_match(value);
    cache.insert(pattern.to_owned(), re);
    matched
}

/// The CustomResourceDefinition as it is installed: generated from the types above, with the
/// status schema kept free of input limits. Status holds what Cognito returned, which the
/// operator must always be able to write, even where Cognito's own values are outside the limits
/// it enforces on input.
pub fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;
    finish_crd(CognitoMfaPolicy::crd())
}

/// A generated CRD as installed: the status schema without input limits, descriptions unwrapped.
pub(crate) fn finish_crd(
    mut crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let status = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("status"));
        if let Some(status) = status {
            strip_input_limits(status);
        }
    }
    unwrap_descriptions(crd)
}

/// Joins the lines of every description into paragraphs: the doc comments are wrapped at 100
/// columns for the source, and `kubectl explain` wraps again, so the source's line breaks
/// would show as ragged lines. Blank lines (paragraphs) stay.
fn unwrap_descriptions(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    match v {
                        serde_json::Value::String(text) if k == "description" => {
                            *text = text
                                .split("\n\n")
                                .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                                .collect::<Vec<_>>()
                                .join("\n\n");
                        }
                        other => walk(other),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(crd).expect("the CRD serializes");
    walk(&mut value);
    serde_json::from_value(value).expect("the CRD deserializes")
}

fn strip_input_limits(
    s: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray;
    s.pattern = None;
    s.min_length = None;
    s.max_length = None;
    s.x_kubernetes_validations = None;
    for p in s.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_input_limits(p);
    }
    match s.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => strip_input_limits(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(strip_input_limits),
        None => {}
    }
}

/// The CognitoMfaPolicy CRD as YAML, as `crds/cognitomfapolicies.cognitomfa.io.yaml` holds it.
pub fn crd_yaml() -> String {
    yaml_of(&crd(), "policy")
}

/// The CognitoMfaBaseline CRD as YAML, as `crds/cognitomfabaselines.cognitomfa.io.yaml` holds it.
pub fn baseline_crd_yaml() -> String {
    yaml_of(&baseline::crd(), "baseline")
}

fn yaml_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    kind: &str,
) -> String {
    let body = serde_saphyr::to_string(crd).expect("the CRD serializes to YAML");
    format!(
        "# Generated by `cognito-mfa-operator crd --kind {kind}` from the Rust types; do not edit.\n---\n{body}"
    )
}

/// The paths of fields in a CognitoMfaPolicy document that the CRD does not know (what an API
/// server with strict field validation rejects, and an older one silently drops).
pub fn unknown_fields(object: &serde_json::Value) -> Vec<String> {
    unknown_fields_in(&crd(), object)
}

/// The paths of fields in a document of `crd`'s kind that its schema does not know.
pub fn unknown_fields_in(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    object: &serde_json::Value,
) -> Vec<String> {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    let mut out = Vec::new();
    if let (Some(schema), serde_json::Value::Object(fields)) = (schema, object) {
        for (key, value) in fields {
            match key.as_str() {
                "apiVersion" | "kind" | "metadata" => {}
                _ => match schema.properties.as_ref().and_then(|p| p.get(key)) {
                    Some(sub) => unknown_in(key, value, sub, &mut out),
                    None => out.push(key.clone()),
                },
            }
        }
    }
    out
}

fn unknown_in(
    path: &str,
    value: &serde_json::Value,
    schema: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    out: &mut Vec<String>,
) {
    let (serde_json::Value::Object(fields), Some(properties)) = (value, schema.properties.as_ref()) else {
        return;
    };
    for (key, value) in fields {
        let path = format!("{path}.{key}");
        match properties.get(key) {
            Some(sub) => unknown_in(&path, value, sub, out),
            None => out.push(path),
        }
    }
}
