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
pub mod engine;
pub mod plan;
pub mod server;
pub mod status;
pub mod sync;
pub mod telemetry;

/// An error and its causes on one line, each cause once: `a: b: c`. A cause whose text is
/// already in what came before is left out, because many errors' `Display` already includes
/// their source (printing the chain source by source would repeat it).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}
