//! cognito-mfa-operator: owns the MFA and passkey settings of Amazon Cognito user pools.
//!
//! Data flows one way: spec ([`api`]) -> plan ([`plan`], pure) -> Cognito call ([`cognito`], the
//! only module that knows the AWS SDK) -> observed -> status. [`sync`] is one pass of that flow;
//! [`cli`] holds the commands of the binary.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms, missing_docs)]

pub mod api;
pub mod cli;
pub mod cognito;
pub mod controller;
pub mod plan;
pub mod server;
pub mod status;
pub mod sync;
pub mod telemetry;
