//! End-to-end tests: the operator against a real Kubernetes API server (whatever KUBECONFIG
//! names; hack/test.sh starts a local one on loopback) and moto's server.

#[path = "../it/support/mod.rs"]
mod support;

mod harness;

mod admission;
mod baseline;
mod chart;
mod deletion;
mod faults;
mod floor;
mod gitops;
mod helm;
mod lifecycle;
mod operations;
mod story;
