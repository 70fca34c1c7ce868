//! The cognito-mfa-operator binary: see `cognito-mfa-operator --help`.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cognito_mfa_operator::cli::main().await
}
