//! Integration tests: the engine against a real Cognito-compatible server (moto) and the SDK's
//! own mocks, and the CRD against the rules admission applies.

mod support;

mod audit;
mod budget;
mod chart;
mod cli;
mod crd;
mod examples;
mod metrics;
mod mocked;
mod validation;
