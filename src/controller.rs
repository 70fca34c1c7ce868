//! The controllers: the only code that speaks to Kubernetes. [`policy`] watches CognitoMfaPolicy
//! objects and runs one pass of the engine per reconcile; [`baseline`] watches CognitoMfaBaseline
//! objects and scans every pool they cover. Both carry out what [`crate::engine`] decides, and
//! write status (only when it changed) and events.

use std::{
    collections::HashMap,
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::channel::mpsc;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client, Resource,
    runtime::reflector::{self, ObjectRef},
};
use rand::RngExt as _;
use tracing::{info, warn};

use crate::{
    api::{CognitoMfaBaseline, CognitoMfaPolicy},
    cognito::Cognito,
    engine::Event,
    telemetry::Metrics,
};

pub mod baseline;
pub mod policy;

pub use crate::engine::Timing;
pub use policy::FINALIZER;

/// The field manager of everything the operator writes: the status (server-side apply on the
/// status subresource) and its finalizer (a merge patch of the object). The API server keeps
/// one managedFields entry per manager, operation and subresource, so one name serves both.
pub const FIELD_MANAGER: &str = "cognito-mfa-operator";

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch one namespace; `None`: all.
    pub namespace: Option<String>,
    /// Watch only policies matching this label selector (shards a fleet across deployments).
    pub label_selector: Option<String>,
    /// How often each pool is checked for drift (each policy at its own phase of the interval).
    pub resync_interval: Duration,
    /// How often a policy waiting on a person (bad spec, denied access, missing pool) is
    /// rechecked when nothing triggers it.
    pub stalled_recheck_interval: Duration,
    /// Reconciles running at the same time.
    pub concurrency: u16,
    /// Name of this instance in events.
    pub instance: String,
    /// Waits between retries.
    pub timing: Timing,
    /// Run the CognitoMfaBaseline controller too.
    pub baselines: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            label_selector: None,
            resync_interval: Duration::from_secs(600),
            stalled_recheck_interval: Duration::from_secs(1800),
            concurrency: 4,
            instance: "cognito-mfa-operator".into(),
            timing: Timing::default(),
            baselines: true,
        }
    }
}

/// Failures of the Kubernetes side of a reconcile (AWS failures are findings, reported in status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Time {
    // Kubernetes serializes times with second precision: a finer time would never compare equal
    // with what comes back, and every check would rewrite the status.
    Time(Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid time"))
}

/// Consecutive failures per object (by UID), for backoff.
#[derive(Debug, Default, Clone)]
struct Failures(Arc<Mutex<HashMap<String, u32>>>);

impl Failures {
    /// The next wait of a failing object: doubling from `base` up to `cap`, with jitter.
    fn backoff(&self, uid: &str, base: Duration, cap: Duration) -> Duration {
        let mut failures = lock(&self.0);
        let n = failures.entry(uid.to_owned()).or_default();
        *n = n.saturating_add(1);
        let ceiling = base.saturating_mul(1u32 << (*n - 1).min(16)).min(cap);
        // "Equal jitter": between half the ceiling and the ceiling. The waits still double (no
        // hot loop, even with bad luck), and a fleet failing together does not retry together.
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    fn succeeded(&self, uid: &str) {
        lock(&self.0).remove(uid);
    }
}

/// Who publishes events, and how.
#[derive(Clone)]
struct Events {
    client: Client,
    metrics: Arc<Metrics>,
    /// The controller's name and this instance.
    reporter: (String, String),
}

impl Events {
    /// Publishes `event` about `object`. Each event is created as it is, with no cache of past
    /// events (kube's Recorder keeps every event for several minutes to count repeats, and scans
    /// them all on each publish): the operator reports a state once, when it is entered, so
    /// there are no repeats to count. Events of cluster-scoped objects (baselines) go to the
    /// `default` namespace, where `kubectl describe` finds them.
    async fn publish<K: Resource<DynamicType = ()>>(&self, object: &K, event: Event) {
        // events.k8s.io notes are limited to 1 kB.
        let note = if event.note.len() > 1000 {
            let mut end = 1000;
            while !event.note.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &event.note[..end])
        } else {
            event.note
        };
        let regarding = object.object_ref(&());
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let at = Timestamp::now();
        let (controller, instance) = &self.reporter;
        let name = object.meta().name.clone().unwrap_or_default();
        let reason = event.reason;
        let body = k8s_openapi::api::events::v1::Event {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{name}.{:x}", at.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(at)),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(reason.clone()),
            action: Some(event.action.to_owned()),
            note: Some(note),
            regarding: Some(regarding),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(instance.clone()),
            ..Default::default()
        };
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &namespace);
        match events.create(&kube::api::PostParams::default(), &body).await {
            Ok(_) => self.metrics.kubernetes_write("event"),
            Err(e) => warn!(error = %e, reason, "could not publish an event"),
        }
    }
}

/// One controller's part of readiness: the operator is ready once every running controller's
/// cache holds its first full list.
#[derive(Clone)]
struct Listed {
    mine: Arc<AtomicBool>,
    other: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
}

impl Listed {
    /// The parts of the policy and the baseline controllers (`baselines` false: only the first
    /// counts).
    fn pair(ready: Arc<AtomicBool>, baselines: bool) -> (Self, Self) {
        let (policies, others) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(!baselines)),
        );
        let part = |mine: &Arc<AtomicBool>, other: &Arc<AtomicBool>| Self {
            mine: mine.clone(),
            other: other.clone(),
            ready: ready.clone(),
        };
        (part(&policies, &others), part(&others, &policies))
    }

    /// This controller's first full list is in its cache.
    fn done(&self) {
        self.mine.store(true, Ordering::Release);
        if self.other.load(Ordering::Acquire) {
            self.ready.store(true, Ordering::Release);
        }
    }
}

/// How long until the periodic check of the object `uid`: once per `interval`, at its own phase
/// of the cycle (a hash of its UID). However the objects were created or the operator
/// (re)started, their checks spread evenly over the interval, and a restarted or another replica
/// keeps the same phases. Never sooner than half an interval, nor later than one and a half.
fn next_check_at(uid: &str, interval: Duration, now: SystemTime) -> Duration {
    let period = interval.as_millis().max(2) as u64;
    let mut h = DefaultHasher::new();
    uid.hash(&mut h);
    let phase = h.finish() % period;
    let position =
        (now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() % u128::from(period)) as u64;
    let mut wait = (phase + period - position) % period;
    if wait < period / 2 {
        wait += period;
    }
    Duration::from_millis(wait)
}

/// Drives `controller` (one that stops gracefully on `shutdown`) to its end.
///
/// kube's runner reconciles nothing until its store holds a first full list, and a shutdown
/// that comes first cuts the watch that would fill it: the runner would then wait forever (a
/// SIGTERM during start-up, a lease lost before the first list). With nothing reconciled there
/// is nothing to finish, and the controller is left there.
async fn until_stopped<K>(
    controller: impl Future<Output = ()>,
    store: &reflector::Store<K>,
    shutdown: impl Future<Output = ()>,
) where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let unlisted_at_shutdown = async {
        shutdown.await;
        if !matches!(
            futures::FutureExt::now_or_never(store.wait_until_ready()),
            Some(Ok(()))
        ) {
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = controller => {}
        () = unlisted_at_shutdown => info!("stopped before the first list: nothing to finish"),
    }
}

/// Runs the controllers until `shutdown` completes, then lets running reconciles finish.
pub async fn run(
    client: Client,
    cognito: Cognito,
    metrics: Arc<Metrics>,
    settings: Settings,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let events = Events {
        client: client.clone(),
        metrics: metrics.clone(),
        reporter: ("cognito-mfa-operator".to_owned(), settings.instance.clone()),
    };
    // The policies' store and the baselines' are shared: a baseline leaves the pools that
    // policies own alone, and a policy says whether it is below a baseline.
    let (policies, policy_writer) = reflector::store::<CognitoMfaPolicy>();
    let (baselines, baseline_writer) = reflector::store::<CognitoMfaBaseline>();
    // Policies to look at again at once: the others naming the pool of a deleted policy, and
    // those a changed baseline covers.
    let (again_tx, again_rx) = mpsc::unbounded::<ObjectRef<CognitoMfaPolicy>>();
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    // Ready once each running controller's cache holds its first full list.
    let (policies_listed, baselines_listed) = Listed::pair(ready, settings.baselines);
    info!(
        namespace = settings.namespace.as_deref().unwrap_or("(all)"),
        selector = settings.label_selector.as_deref().unwrap_or("(none)"),
        baselines = settings.baselines,
        "controller starting"
    );
    let policy_controller = policy::run(
        policy::Shared {
            client: client.clone(),
            cognito: cognito.clone(),
            metrics: metrics.clone(),
            settings: settings.clone(),
            events: events.clone(),
            baselines: baselines.clone(),
        },
        (policies.clone(), policy_writer),
        (again_tx.clone(), again_rx),
        policies_listed,
        shutdown.clone(),
    );
    if settings.baselines {
        let baseline_controller = baseline::run(
            baseline::Shared {
                client,
                cognito,
                metrics,
                settings,
                events,
                policies,
            },
            (baselines, baseline_writer),
            again_tx,
            baselines_listed,
            shutdown,
        );
        futures::future::join(policy_controller, baseline_controller).await;
    } else {
        drop((baselines, baseline_writer, again_tx));
        policy_controller.await;
    }
    info!("controller stopped");
}

/// Runs the controller: under leader election when `lease` is given, else at once (this
/// instance then always counts as the leader). Returns when `shutdown` is cancelled.
pub async fn run_operator(
    client: Client,
    cognito: Cognito,
    metrics: Arc<Metrics>,
    settings: Settings,
    lease: Option<LeaseSettings>,
    ready: Arc<AtomicBool>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), kube_lease_manager::LeaseManagerError> {
    match lease {
        Some(lease) => run_elected(client, cognito, metrics, settings, lease, ready, shutdown).await,
        None => {
            metrics.set_leader(true);
            run(
                client,
                cognito,
                metrics,
                settings,
                ready,
                shutdown.cancelled_owned(),
            )
            .await;
            Ok(())
        }
    }
}

/// The Lease that elects the one instance that reconciles.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This instance's identity in the Lease.
    pub identity: String,
    /// How long a lease lasts without renewal: a standby takes over that long after the leader
    /// stops renewing.
    pub duration: Duration,
}

/// Runs the controller only while this instance holds the Lease (kube-lease-manager); other
/// instances stand by and take over when it lapses. Returns when `shutdown` is cancelled,
/// after releasing the Lease.
async fn run_elected(
    client: Client,
    cognito: Cognito,
    metrics: Arc<Metrics>,
    settings: Settings,
    lease: LeaseSettings,
    ready: Arc<AtomicBool>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), kube_lease_manager::LeaseManagerError> {
    let seconds = lease.duration.as_secs().max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(seconds)
        // Renew a third of the duration before it ends.
        .with_grace((seconds / 3).max(1))
        .build()
        .await?;
    let (mut leader, task) = manager.watch().await;
    // A standby is ready: it serves its endpoints and waits.
    ready.store(true, Ordering::Release);
    loop {
        tokio::select! {
            changed = leader.wait_for(|is_leader| *is_leader) => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
        info!(identity = %lease.identity, "holding the lease: reconciling");
        metrics.set_leader(true);
        let stop = {
            let (mut leader, shutdown) = (leader.clone(), shutdown.clone());
            async move {
                tokio::select! {
                    _ = leader.wait_for(|is_leader| !*is_leader) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        };
        run(
            client.clone(),
            cognito.clone(),
            metrics.clone(),
            settings.clone(),
            ready.clone(),
            stop,
        )
        .await;
        metrics.set_leader(false);
        if shutdown.is_cancelled() {
            break;
        }
        warn!(identity = %lease.identity, "lost the lease: standing by");
    }
    // Closing the channel makes the manager release the Lease, so a standby takes over at once.
    drop(leader);
    match task.await {
        Ok(result) => result.map(|_| ()),
        Err(e) => {
            warn!(error = %e, "the lease manager ended abnormally");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_checks_are_spread_evenly_over_the_interval() {
        let interval = Duration::from_secs(600);
        let start = SystemTime::now();
        // A thousand policies checked at the same moment: when do they come next?
        let due: Vec<Duration> = (0..1000)
            .map(|i| {
                let wait = next_check_at(&format!("uid-{i}"), interval, start);
                assert!(wait >= interval / 2 && wait < interval * 3 / 2, "{wait:?}");
                wait
            })
            .collect();
        // Spread over one interval: at most a few per tenth of it (100 on average).
        let mut buckets = [0usize; 10];
        for d in &due {
            let offset = (d.as_secs_f64() - 300.0).rem_euclid(600.0);
            buckets[(offset / 60.0) as usize % 10] += 1;
        }
        assert!(buckets.iter().all(|&b| (60..=140).contains(&b)), "{buckets:?}");
        // Once in its phase, a policy is checked exactly once per interval.
        for i in 0..20 {
            let uid = format!("uid-{i}");
            let first = next_check_at(&uid, interval, start);
            let second = next_check_at(&uid, interval, start + first);
            assert_eq!(second, interval);
        }
    }
}
