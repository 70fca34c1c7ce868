//! Logs (tracing, text or JSON) and metrics (Prometheus).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{
    cognito::{ErrorClass, Observer, Operation},
    status::{Reason, WriteCause},
};

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log collectors).
    Json,
    /// Human-readable lines.
    Text,
}

/// Sets up logging to stderr. `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BaselineLabels {
    baseline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BaselineStateLabels {
    baseline: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    baseline: String,
    region: String,
    user_pool_id: String,
}

/// The states of `cognito_mfa_baseline_pools`, as in a baseline's status.pools.
pub const BASELINE_STATES: [&str; 7] = [
    "scanned",
    "compliant",
    "non_compliant",
    "owned_by_policies",
    "enforced",
    "awaiting_approval",
    "conflicts",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

/// The operator's metrics. Names start with `cognito_mfa_`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    aws_calls: Family<CallLabels, Counter>,
    aws_requests: Family<OperationLabels, Counter>,
    aws_throttles: Family<OperationLabels, Counter>,
    drift_detected: Counter,
    drift_corrected: Counter,
    aws_writes: Family<CauseLabels, Counter>,
    policies: Family<ReasonLabels, Gauge>,
    kubernetes_writes: Family<WriteLabels, Counter>,
    leader: Gauge,
    peak_rate: Family<KindLabels, Gauge>,
    ready_reasons: Mutex<HashMap<String, Reason>>,
    baseline_pools: Family<BaselineStateLabels, Gauge>,
    pool_compliant: Family<PoolLabels, Gauge>,
    baseline_scans: Family<BaselineLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cognito_mfa");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles, by result: the Ready reason reported, FinalizerAdded, Deleted, or Error (a Kubernetes API failure)",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.005, 2.0, 14,
        ));
        registry.register_with_unit(
            "reconcile_duration",
            "How long reconciles take, AWS calls included",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let aws_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "Cognito calls (each with its retries), by operation and outcome (ok, or the class of the error that ended it)",
            aws_calls.clone(),
        );
        let aws_requests = Family::<OperationLabels, Counter>::default();
        registry.register(
            "aws_requests",
            "HTTP requests sent to Cognito (every attempt, retries included), by operation",
            aws_requests.clone(),
        );
        let aws_throttles = Family::<OperationLabels, Counter>::default();
        registry.register(
            "aws_throttles",
            "Requests that Cognito answered with TooManyRequestsException, by operation",
            aws_throttles.clone(),
        );
        let drift_detected = Counter::default();
        registry.register(
            "drift_detected",
            "Times a pool was found changed after it had matched its policy (the same generation of the spec): once per drift, not per check; a policy's first write, a spec change or a pool that never matched are not drift",
            drift_detected.clone(),
        );
        let drift_corrected = Counter::default();
        registry.register(
            "drift_corrected",
            "Drifted pools put back by a write that Cognito took (read back equal)",
            drift_corrected.clone(),
        );
        let aws_writes = Family::<CauseLabels, Counter>::default();
        registry.register(
            "aws_writes",
            "SetUserPoolMfaConfig calls that Cognito accepted, by cause: first_apply (a policy's first write), spec_change (a new spec, or its approval), drift_correction, deletion (deletionPolicy Reset or Restore), baseline (a baseline's template written to a pool below its floor)",
            aws_writes.clone(),
        );
        for cause in WriteCause::ALL {
            let _ = aws_writes.get_or_create(&CauseLabels {
                cause: cause.as_str().to_owned(),
            });
        }
        let policies = Family::<ReasonLabels, Gauge>::default();
        registry.register(
            "policies",
            "Policies this instance reconciles, by the Ready reason they report",
            policies.clone(),
        );
        let kubernetes_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "kubernetes_writes",
            "Writes to the Kubernetes API that succeeded, by kind (status, finalizer, event)",
            kubernetes_writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this instance reconciles (holds the lease, or runs without leader election)",
            leader.clone(),
        );
        let peak_rate = Family::<KindLabels, Gauge>::default();
        registry.register(
            "aws_peak_requests_per_second",
            "The most requests to Cognito that one account and region budget let through in any second since the start (the highest of all budgets), by kind (read, write)",
            peak_rate.clone(),
        );
        let baseline_pools = Family::<BaselineStateLabels, Gauge>::default();
        registry.register(
            "baseline_pools",
            "User pools a baseline covers, by state as in its status.pools: scanned, compliant, non_compliant, owned_by_policies, enforced, awaiting_approval, conflicts",
            baseline_pools.clone(),
        );
        let pool_compliant = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_compliant",
            "1 when the user pool meets the floor of the baseline, 0 when it is below it (or could not be read), as of its last read; one series per baseline and covered pool",
            pool_compliant.clone(),
        );
        let baseline_scans = Family::<BaselineLabels, Counter>::default();
        registry.register(
            "baseline_scans",
            "Complete scans of a baseline: every covered pool listed and read once",
            baseline_scans.clone(),
        );
        for reason in Reason::ALL {
            let _ = policies.get_or_create(&ReasonLabels {
                reason: reason.as_str().to_owned(),
            });
        }
        Self {
            registry,
            reconciles,
            reconcile_duration,
            aws_calls,
            aws_requests,
            aws_throttles,
            drift_detected,
            drift_corrected,
            aws_writes,
            policies,
            kubernetes_writes,
            leader,
            peak_rate,
            ready_reasons: Mutex::default(),
            baseline_pools,
            pool_compliant,
            baseline_scans,
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String works");
        out
    }

    /// A reconcile ended with `result` after `seconds`.
    pub fn reconciled(&self, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(seconds);
    }

    /// The policy `uid` now has Ready reason `reason` (`None`: the policy is gone).
    pub fn policy_reason(&self, uid: &str, reason: Option<Reason>) {
        let mut reasons = self.ready_reasons.lock().unwrap_or_else(|e| e.into_inner());
        let before = match reason {
            Some(r) => reasons.insert(uid.to_owned(), r),
            None => reasons.remove(uid),
        };
        if before == reason {
            return;
        }
        if let Some(b) = before {
            self.policies
                .get_or_create(&ReasonLabels {
                    reason: b.as_str().to_owned(),
                })
                .dec();
        }
        if let Some(r) = reason {
            self.policies
                .get_or_create(&ReasonLabels {
                    reason: r.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// A check found drift.
    pub fn drift_detected(&self) {
        self.drift_detected.inc();
    }

    /// Drift was corrected.
    pub fn drift_corrected(&self) {
        self.drift_corrected.inc();
    }

    /// Cognito accepted a SetUserPoolMfaConfig made for `cause`.
    pub fn aws_write(&self, cause: WriteCause) {
        self.aws_writes
            .get_or_create(&CauseLabels {
                cause: cause.as_str().to_owned(),
            })
            .inc();
    }

    /// A write to the Kubernetes API (`status`, `finalizer`, `event`).
    pub fn kubernetes_write(&self, kind: &str) {
        self.kubernetes_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The counts of the baseline `name` (`None`: none yet).
    pub fn baseline_counts(&self, name: &str, counts: Option<&crate::api::baseline::PoolCounts>) {
        let c = counts.cloned().unwrap_or_default();
        let values = [
            c.scanned,
            c.compliant,
            c.non_compliant,
            c.owned_by_policies,
            c.enforced,
            c.awaiting_approval,
            c.conflicts,
        ];
        for (state, value) in BASELINE_STATES.iter().zip(values) {
            self.baseline_pools
                .get_or_create(&BaselineStateLabels {
                    baseline: name.to_owned(),
                    state: (*state).to_owned(),
                })
                .set(value);
        }
    }

    /// Whether `pool` meets the floor of the baseline `name` (`None`: no longer covered).
    pub fn pool_compliant(&self, name: &str, pool: &crate::api::baseline::PoolRef, compliant: Option<bool>) {
        let labels = PoolLabels {
            baseline: name.to_owned(),
            region: pool.region.clone(),
            user_pool_id: pool.user_pool_id.clone(),
        };
        match compliant {
            Some(c) => {
                self.pool_compliant.get_or_create(&labels).set(i64::from(c));
            }
            None => {
                self.pool_compliant.remove(&labels);
            }
        }
    }

    /// A scan of the baseline `name` completed.
    pub fn baseline_scanned(&self, name: &str) {
        self.baseline_scans
            .get_or_create(&BaselineLabels {
                baseline: name.to_owned(),
            })
            .inc();
    }

    /// The baseline `name` was deleted: its series go.
    pub fn baseline_gone(&self, name: &str) {
        for state in BASELINE_STATES {
            self.baseline_pools.remove(&BaselineStateLabels {
                baseline: name.to_owned(),
                state: state.to_owned(),
            });
        }
        self.baseline_scans.remove(&BaselineLabels {
            baseline: name.to_owned(),
        });
    }

    /// Whether this instance is the one reconciling.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

impl Observer for Metrics {
    fn call(&self, operation: Operation, error: Option<ErrorClass>) {
        let outcome = error.map_or("ok".to_owned(), |c| format!("{c:?}"));
        self.aws_calls
            .get_or_create(&CallLabels {
                operation: operation.name().to_owned(),
                outcome,
            })
            .inc();
    }

    fn peak_rate(&self, write: bool, requests: usize) {
        let kind = if write { "write" } else { "read" };
        let gauge = self.peak_rate.get_or_create(&KindLabels {
            kind: kind.to_owned(),
        });
        let requests = i64::try_from(requests).unwrap_or(i64::MAX);
        if gauge.get() < requests {
            gauge.set(requests);
        }
    }

    fn attempt(&self, operation: Operation, throttled: bool) {
        let labels = OperationLabels {
            operation: operation.name().to_owned(),
        };
        self.aws_requests.get_or_create(&labels).inc();
        if throttled {
            self.aws_throttles.get_or_create(&labels).inc();
        }
    }
}

/// Shared metrics.
pub type SharedMetrics = Arc<Metrics>;
