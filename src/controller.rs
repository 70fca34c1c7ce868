//! The controller: the only code that speaks to Kubernetes. It watches CognitoMfaPolicy objects,
//! runs one pass of the engine per reconcile ([`crate::sync`]), and writes what it found as
//! status (only when it changed), finalizers (only for deletion policies that act) and events.

use std::{
    collections::HashMap,
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::{StreamExt, channel::mpsc};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        events::EventType,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use rand::RngExt as _;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::{
    api::{self, CognitoMfaPolicy, CognitoMfaPolicySpec, DeletionPolicy, ManagementPolicy, MfaSettings},
    cognito::{CallError, Cognito, ErrorClass, Retry, Target},
    plan::{self, Action as PlanAction},
    status::{self, Found, Reason, WriteCause},
    sync::{self, Mode},
    telemetry::Metrics,
};

/// The finalizer that holds a policy whose deletion acts on the pool (Reset, Restore).
pub const FINALIZER: &str = "cognitomfa.io/deletion-policy";
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
}

/// Waits between retries of a failing policy. Each doubles from its base up to its cap, with
/// jitter: no failure makes the operator loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Throttling, 5xx and Kubernetes API errors: the first wait.
    pub backoff_base: Duration,
    /// Throttling, 5xx and Kubernetes API errors: the longest wait.
    pub backoff_cap: Duration,
    /// ConcurrentModificationException: the first wait.
    pub short_retry_base: Duration,
    /// ConcurrentModificationException: the longest wait.
    pub short_retry_cap: Duration,
    /// InvalidSmsRole*: the first wait while IAM may still be propagating.
    pub sms_role_retry_base: Duration,
    /// InvalidSmsRole*: the longest wait while IAM may still be propagating.
    pub sms_role_retry_cap: Duration,
    /// How long InvalidSmsRole* is taken for IAM propagation before it counts as real (IAM
    /// changes usually propagate within a minute or two).
    pub sms_role_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            short_retry_base: Duration::from_secs(2),
            short_retry_cap: Duration::from_secs(30),
            sms_role_retry_base: Duration::from_secs(10),
            sms_role_retry_cap: Duration::from_secs(30),
            sms_role_grace: Duration::from_secs(120),
        }
    }
}

impl Timing {
    /// Every wait divided by `factor`: tests and benchmarks run an hour of retries in seconds.
    pub fn scaled_down(factor: u32) -> Self {
        let d = Self::default();
        Self {
            backoff_base: d.backoff_base / factor,
            backoff_cap: d.backoff_cap / factor,
            short_retry_base: d.short_retry_base / factor,
            short_retry_cap: d.short_retry_cap / factor,
            sms_role_retry_base: d.sms_role_retry_base / factor,
            sms_role_retry_cap: d.sms_role_retry_cap / factor,
            sms_role_grace: d.sms_role_grace / factor,
        }
    }
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

/// What reconciles share.
pub struct Context {
    client: Client,
    cognito: Cognito,
    /// Who the events say reported them: the controller's name and this instance.
    reporter: (String, String),
    metrics: Arc<Metrics>,
    settings: Settings,
    store: Store<CognitoMfaPolicy>,
    /// Consecutive failures per policy (by UID), for backoff. Shared with the watch, which
    /// forgets deleted policies.
    failures: Arc<Mutex<HashMap<String, u32>>>,
    /// Writes to AWS whose status could not be written yet, by policy UID.
    unreported: Arc<Mutex<HashMap<String, Unreported>>>,
    /// When a policy first got InvalidSmsRole in a row, to stop waiting for IAM after a while.
    sms_role_since: Arc<Mutex<HashMap<String, Instant>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A log line about policy `$p`, with the fields every such line carries (`policy`,
/// `namespace`, `pool`, `region`, `reason`), then the line's own fields and message. Pool IDs
/// and regions are not secret; external IDs are never logged.
///
/// Values are passed as strings: JSON lines get plain strings, text lines quote them
/// (`policy="shop"`), so that a value with spaces reads as one.
macro_rules! story {
    ($level:ident, $p:expr, $reason:expr, $($rest:tt)+) => {
        tracing::$level!(
            policy = $p.name_any().as_str(),
            namespace = $p.namespace().unwrap_or_default().as_str(),
            pool = $p.spec.user_pool_id.as_str(),
            region = $p.spec.effective_region().unwrap_or_default(),
            reason = $reason.to_string().as_str(),
            $($rest)+
        )
    };
}

/// What makes a policy worth reconciling when it changes: its spec (generation), finalizers,
/// approval annotation and deletion. Status writes (the operator's own) change none of these,
/// so they trigger nothing; periodic drift checks come from requeues.
fn trigger_hash(p: &CognitoMfaPolicy) -> Option<u64> {
    let mut h = DefaultHasher::new();
    p.meta().generation.hash(&mut h);
    p.finalizers().hash(&mut h);
    p.annotations().get(api::ALLOW_DISRUPTIVE_ANNOTATION).hash(&mut h);
    p.annotations().get(api::APPROVE_CHANGE_ANNOTATION).hash(&mut h);
    p.meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    Some(h.finish())
}

/// Whether two specs name the same pool (ID and region).
fn same_pool(a: &CognitoMfaPolicySpec, b: &CognitoMfaPolicySpec) -> bool {
    a.user_pool_id == b.user_pool_id && a.effective_region() == b.effective_region()
}

/// The policy that owns the pool `p` names: the oldest of those naming it (by creation time,
/// then namespace and name), among the policies this instance watches.
fn owner_of(p: &CognitoMfaPolicy, store: &Store<CognitoMfaPolicy>) -> Option<Arc<CognitoMfaPolicy>> {
    // Only the policies naming the same pool are taken out of the cache (it may hold thousands),
    // and nothing is allocated to compare them.
    store
        .state_filter(|o| same_pool(&o.spec, &p.spec))
        .into_iter()
        .min_by(|a, b| {
            let order = |o: &CognitoMfaPolicy| {
                (
                    o.meta().creation_timestamp.as_ref().map(|t| t.0),
                    o.namespace(),
                    o.name_any(),
                )
            };
            order(a).cmp(&order(b))
        })
}

/// Runs the controller until `shutdown` completes, then lets running reconciles finish.
pub async fn run(
    client: Client,
    cognito: Cognito,
    metrics: Arc<Metrics>,
    settings: Settings,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<CognitoMfaPolicy> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut watch = watcher::Config::default();
    if let Some(selector) = &settings.label_selector {
        watch = watch.labels(selector);
    }
    let (reader, writer) = reflector::store();
    // When a policy goes away, the others naming its pool re-evaluate ownership at once.
    let (siblings_tx, siblings_rx) = mpsc::unbounded::<ObjectRef<CognitoMfaPolicy>>();
    let failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let sms_role_since: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (store, gone_metrics) = (reader.clone(), metrics.clone());
    let unreported: Arc<Mutex<HashMap<String, Unreported>>> = Arc::default();
    let (gone_failures, gone_since, gone_unreported) =
        (failures.clone(), sms_role_since.clone(), unreported.clone());
    let stream = watcher(api, watch)
        .default_backoff()
        // The cache keeps what reconciles read: not the managed fields (the larger part of an
        // object), nor kubectl's copy of the last applied manifest.
        .modify(|p| {
            p.managed_fields_mut().clear();
            p.annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .inspect(move |event| {
            // Ready once the first full list is in the cache. (Waiting on the store instead
            // would compete with the controller's own wait for it: only one waiter is woken.)
            if let Ok(watcher::Event::InitDone) = event {
                ready.store(true, Ordering::Release);
            }
            if let Ok(watcher::Event::Delete(gone)) = event {
                let uid = gone.uid().unwrap_or_default();
                gone_metrics.policy_reason(&uid, None);
                lock(&gone_failures).remove(&uid);
                lock(&gone_since).remove(&uid);
                lock(&gone_unreported).remove(&uid);
                for sibling in store.state_filter(|o| same_pool(&o.spec, &gone.spec)) {
                    let _ = siblings_tx.unbounded_send(ObjectRef::from_obj(sibling.as_ref()));
                }
            }
        })
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    let ctx = Arc::new(Context {
        reporter: ("cognito-mfa-operator".to_owned(), settings.instance.clone()),
        client,
        cognito,
        metrics,
        store: reader.clone(),
        failures,
        sms_role_since,
        unreported,
        settings: settings.clone(),
    });
    info!(
        namespace = settings.namespace.as_deref().unwrap_or("(all)"),
        selector = settings.label_selector.as_deref().unwrap_or("(none)"),
        "controller starting"
    );
    Controller::for_stream(stream, reader)
        .reconcile_on(siblings_rx)
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "reconcile failed");
            }
        })
        .await;
    info!("controller stopped");
}

/// One reconcile: deletion, finalizer, validation, ownership, then one pass against the pool.
async fn reconcile(p: Arc<CognitoMfaPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = if p.meta().deletion_timestamp.is_some() {
        delete(&p, &ctx).await
    } else {
        apply(&p, &ctx).await
    };
    let label = match &result {
        Ok((_, Some(reason))) => reason.as_str(),
        // A finalizer added (the reconcile it triggers does the work), or a deletion finished.
        Ok((_, None)) if p.meta().deletion_timestamp.is_some() => "Deleted",
        Ok((_, None)) => "FinalizerAdded",
        Err(_) => "Error",
    };
    ctx.metrics.reconciled(label, started.elapsed().as_secs_f64());
    result.map(|(action, _)| action)
}

fn error_policy(p: Arc<CognitoMfaPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        policy = %p.name_any(),
        namespace = %p.namespace().unwrap_or_default(),
        %error,
        "reconcile failed; retrying with backoff"
    );
    let t = &ctx.settings.timing;
    Action::requeue(ctx.backoff(&p, t.backoff_base, t.backoff_cap))
}

fn api_for(p: &CognitoMfaPolicy, client: &Client) -> Api<CognitoMfaPolicy> {
    Api::namespaced(client.clone(), &p.namespace().unwrap_or_default())
}

/// Whether deleting the policy acts on the pool (and so needs a finalizer).
fn deletion_acts(spec: &CognitoMfaPolicySpec) -> bool {
    spec.deletion_policy != DeletionPolicy::Retain && spec.management_policy == ManagementPolicy::Enforce
}

impl Context {
    /// Exponential backoff with jitter, counting consecutive failures of `p`.
    fn backoff(&self, p: &CognitoMfaPolicy, base: Duration, cap: Duration) -> Duration {
        let mut failures = lock(&self.failures);
        let n = failures.entry(p.uid().unwrap_or_default()).or_default();
        *n = n.saturating_add(1);
        let ceiling = base.saturating_mul(1u32 << (*n - 1).min(16)).min(cap);
        // "Equal jitter": between half the ceiling and the ceiling. The waits still double (no
        // hot loop, even with bad luck), and a fleet failing together does not retry together.
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    fn succeeded(&self, p: &CognitoMfaPolicy) {
        lock(&self.failures).remove(&p.uid().unwrap_or_default());
    }

    async fn publish(
        &self,
        p: &CognitoMfaPolicy,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        // events.k8s.io notes are limited to 1 kB.
        let note = if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &note[..end])
        } else {
            note
        };
        // Each event is created as it is, with no cache of past events (kube's Recorder keeps
        // every event for several minutes to count repeats, and scans them all on each publish).
        // The operator reports a state once, when it is entered, so there are no repeats to count.
        let regarding = p.object_ref(&());
        let now = Timestamp::now();
        let (controller, instance) = &self.reporter;
        let event = k8s_openapi::api::events::v1::Event {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{}.{:x}", p.name_any(), now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now)),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            reason: Some(reason.to_owned()),
            action: Some(action.to_owned()),
            note: Some(note),
            regarding: Some(regarding),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(instance.clone()),
            ..Default::default()
        };
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &p.namespace().unwrap_or_default());
        match events.create(&kube::api::PostParams::default(), &event).await {
            Ok(_) => self.metrics.kubernetes_write("event"),
            Err(e) => warn!(error = %e, reason, "could not publish an event"),
        }
    }

    /// Adds or removes the finalizer; the resource version makes it safe against a concurrent
    /// change (the API server answers 409 and the reconcile is retried).
    async fn set_finalizer(&self, p: &CognitoMfaPolicy, present: bool) -> Result<(), Error> {
        let mut finalizers: Vec<String> = p
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        if present {
            finalizers.push(FINALIZER.to_owned());
        }
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": p.resource_version()}});
        api_for(p, &self.client)
            .patch(
                &p.name_any(),
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await?;
        self.metrics.kubernetes_write("finalizer");
        Ok(())
    }

    /// Writes `status` unless it equals what the object has.
    async fn write_status(
        &self,
        p: &CognitoMfaPolicy,
        status: &api::CognitoMfaPolicyStatus,
    ) -> Result<(), Error> {
        if p.status.as_ref() == Some(status) {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": "cognitomfa.io/v1alpha1",
            "kind": "CognitoMfaPolicy",
            "status": status,
        });
        api_for(p, &self.client)
            .patch_status(
                &p.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.metrics.kubernetes_write("status");
        Ok(())
    }
}

fn now() -> Time {
    // Kubernetes serializes times with second precision: a finer time would never compare equal
    // with what comes back, and every check would rewrite the status.
    Time(Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid time"))
}

/// Reconciles a live policy. Returns the requeue and the Ready reason reported.
async fn apply(p: &CognitoMfaPolicy, ctx: &Context) -> Result<(Action, Option<Reason>), Error> {
    let spec = &p.spec;
    let has_finalizer = p.finalizers().iter().any(|f| f == FINALIZER);
    if deletion_acts(spec) != has_finalizer {
        ctx.set_finalizer(p, !has_finalizer).await?;
        if !has_finalizer {
            // The finalizer change triggers the next reconcile, which does the work.
            return Ok((Action::await_change(), None));
        }
    }
    let generation = p.meta().generation.unwrap_or_default();
    let uid = p.uid().unwrap_or_default();
    let mut side = Side::default();
    let found = find(p, ctx, &mut side).await?;
    // What this pass did to the pool, told once, when it happens (a write reported late, below,
    // was told when it was made).
    account(p, ctx, &found, generation);
    // A write whose report never reached the API server (it was away, or refused the status)
    // is reported now, once the pool is seen in sync: the status (with the adoptedFrom it was
    // to record) and the events are not lost.
    let unreported = lock(&ctx.unreported).remove(&uid);
    let found = match (found, unreported) {
        (Found::InSync { observed }, Some(u)) => {
            side.adopted = side.adopted.or(u.side.adopted);
            side.standing_approval = side.standing_approval.or(u.side.standing_approval);
            Found::Written {
                observed,
                fields: u.fields,
            }
        }
        (found, _) => found,
    };
    let mut prev = p.status.clone();
    if let Some(adopted) = &side.adopted
        && prev.as_ref().is_none_or(|s| s.adopted_from.is_none())
    {
        prev.get_or_insert_default().adopted_from = Some(Box::new(adopted.clone()));
    }
    let (status, reason) = status::next(prev.as_ref(), generation, &found, &now());
    let reason_before = status::ready_reason(p.status.as_ref());
    if let Err(e) = ctx.write_status(p, &status).await {
        if let Found::Written { fields, .. } = found {
            lock(&ctx.unreported).insert(uid, Unreported { fields, side });
        }
        return Err(e);
    }
    ctx.metrics.policy_reason(&uid, Some(reason));
    report(p, ctx, &found, reason, reason_before).await;
    if let Some(note) = side.standing_approval {
        ctx.publish(
            p,
            EventType::Warning,
            "StandingApprovalUsed",
            "SetUserPoolMfaConfig",
            note,
        )
        .await;
    }
    Ok((requeue(p, ctx, &found), Some(reason)))
}

/// Logs and counts what a pass found in the pool: drift (a pool that changed after it matched
/// this generation) and writes, by cause. A check that finds the pool in sync logs nothing.
fn account(p: &CognitoMfaPolicy, ctx: &Context, found: &Found, generation: i64) {
    let prev = p.status.as_ref();
    let fields = |f: &[String]| f.join(",");
    if status::drift_found(prev, generation, found) {
        ctx.metrics.drift_detected();
        let differs = fields(found.fields());
        story!(
            info,
            p,
            "DriftDetected",
            fields = differs.as_str(),
            "drift found: the user pool changed after it matched the policy"
        );
    }
    let cause = status::write_cause(prev, generation);
    match found {
        Found::Written { fields: f, .. } => {
            ctx.metrics.aws_write(cause);
            let (reason, what) = if cause == WriteCause::DriftCorrection {
                ctx.metrics.drift_corrected();
                (Reason::DriftCorrected, "drift corrected")
            } else {
                (Reason::Applied, "applied the policy")
            };
            story!(
                info,
                p,
                reason,
                cause = cause.as_str(),
                fields = fields(f).as_str(),
                "{what}: SetUserPoolMfaConfig, read back equal"
            );
        }
        Found::NotTaken { fields: f, .. } => {
            ctx.metrics.aws_write(cause);
            story!(
                warn,
                p,
                Reason::Drifted,
                cause = cause.as_str(),
                fields = fields(f).as_str(),
                "SetUserPoolMfaConfig was not fully taken: the read-back still differs"
            );
        }
        _ => {}
    }
}

/// A write to AWS whose status could not be written yet: the fields it changed, and what else
/// its pass did.
struct Unreported {
    fields: Vec<String>,
    side: Side,
}

/// What a pass tells the reconcile beside what it found.
#[derive(Default)]
struct Side {
    /// The configuration to record as `adoptedFrom` (this pass made the operator's first write).
    adopted: Option<MfaSettings>,
    /// A disruptive write went through on the standing approval: the Warning event's note.
    standing_approval: Option<String>,
}

/// The AwaitingApproval message: what would change, why it waits, and the two ways to approve.
fn approval_message(plan: &plan::Plan) -> String {
    let changes: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    let why: Vec<String> = plan.disruptions.iter().map(ToString::to_string).collect();
    format!(
        "Waiting for approval to change {}. Why: {}. To apply this change only, annotate the policy with {}: {} (a different disruptive change needs its own token); {}: \"true\" approves every disruptive change, now and later.",
        changes.join("; "),
        why.join("; "),
        api::APPROVE_CHANGE_ANNOTATION,
        plan.approval_token.as_deref().unwrap_or_default(),
        api::ALLOW_DISRUPTIVE_ANNOTATION
    )
}

/// Finds out where the policy stands: validation, ownership, then one pass against the pool
/// (which writes to it when the plan says so), telling `side` what else the pass did.
async fn find(p: &CognitoMfaPolicy, ctx: &Context, side: &mut Side) -> Result<Found, Error> {
    let spec = &p.spec;
    let violations = api::validate(spec);
    if !violations.is_empty() {
        let message = violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Ok(Found::InvalidSpec { message });
    }
    if let Some(owner) = owner_of(p, &ctx.store).filter(|o| o.uid() != p.uid()) {
        let (pool, region) = (&spec.user_pool_id, spec.effective_region().unwrap_or_default());
        let message = format!(
            "User pool {pool} in {region} is owned by policy {}/{}, which is older; this policy does not write to it until that one is deleted.",
            owner.namespace().unwrap_or_default(),
            owner.name_any()
        );
        return Ok(Found::Conflict { message });
    }
    let target = Target::of_spec(spec).expect("a valid spec has a region");
    let observe = spec.management_policy == ManagementPolicy::Observe;
    let outcome = match sync::read(&ctx.cognito, &target, &spec.settings, &p.approval()).await {
        Ok(o) => o,
        Err(e) => return Ok(aws_error(p, ctx, e)),
    };
    let observed = plan::normalise(&outcome.before);
    let fields = outcome.plan.changed_fields();
    if outcome.plan.is_in_sync() {
        lock(&ctx.sms_role_since).remove(&p.uid().unwrap_or_default());
        return Ok(Found::InSync { observed });
    }
    if observe {
        return Ok(Found::Drifted { observed, fields });
    }
    if outcome.plan.action == PlanAction::AwaitApproval {
        let message = approval_message(&outcome.plan);
        return Ok(Found::AwaitingApproval {
            observed,
            fields,
            token: outcome.plan.approval_token.clone().unwrap_or_default(),
            message,
        });
    }
    if !outcome.missing_prerequisites.is_empty() {
        let message = format!("Not applied: {}.", outcome.missing_prerequisites.join("; "));
        return Ok(Found::PrerequisiteMissing {
            observed,
            fields,
            message,
        });
    }
    // The configuration before the operator's first write is kept as adoptedFrom, and goes in
    // the status patch that reports the write. deletionPolicy Restore depends on it: for such a
    // policy it is recorded before the write, since a crash between the write and its report
    // would lose it.
    if p.status.as_ref().and_then(|s| s.adopted_from.as_ref()).is_none() {
        let adopted_from = observed.redacted();
        if spec.deletion_policy == DeletionPolicy::Restore {
            let mut with_adoption = p.status.clone().unwrap_or_default();
            with_adoption.adopted_from = Some(Box::new(adopted_from.clone()));
            ctx.write_status(p, &with_adoption).await?;
        }
        side.adopted = Some(adopted_from);
    }
    let mut outcome = outcome;
    if let Err(e) = sync::write(&ctx.cognito, &target, &spec.settings, &mut outcome).await {
        return Ok(aws_error(p, ctx, e));
    }
    if outcome.plan.approved_by == Some(plan::ApprovedBy::Standing) {
        let why: Vec<String> = outcome.plan.disruptions.iter().map(ToString::to_string).collect();
        side.standing_approval = Some(format!(
            "A disruptive change went through on the standing approval {}: \"true\": {}. To approve one change at a time, use {} with the token of that change instead (this one: {}).",
            api::ALLOW_DISRUPTIVE_ANNOTATION,
            why.join("; "),
            api::APPROVE_CHANGE_ANNOTATION,
            outcome.plan.approval_token.as_deref().unwrap_or_default()
        ));
    }
    let observed = plan::normalise(&outcome.after);
    if outcome.remaining.is_empty() {
        Ok(Found::Written { observed, fields })
    } else {
        let fields = plan::field_names(&outcome.remaining);
        Ok(Found::NotTaken { observed, fields })
    }
}

fn aws_error(p: &CognitoMfaPolicy, ctx: &Context, e: CallError) -> Found {
    let uid = p.uid().unwrap_or_default();
    let mut since = lock(&ctx.sms_role_since);
    let given_up = if e.class == ErrorClass::InvalidSmsRole {
        since.entry(uid).or_insert_with(Instant::now).elapsed() >= ctx.settings.timing.sms_role_grace
    } else {
        since.remove(&uid);
        false
    };
    Found::AwsError {
        class: e.class,
        message: e.to_string(),
        given_up,
    }
}

/// How long until the periodic check of `p`: once per `interval`, at the policy's own phase of
/// the cycle (a hash of its UID). However the policies of a fleet were created or the operator
/// (re)started, their checks spread evenly over the interval, and a restarted or another replica
/// keeps the same phases. Never sooner than half an interval, nor later than one and a half.
fn next_check(p: &CognitoMfaPolicy, interval: Duration, now: SystemTime) -> Duration {
    next_check_at(&p.uid().unwrap_or_default(), interval, now)
}

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

/// When to look at the policy again.
fn requeue(p: &CognitoMfaPolicy, ctx: &Context, found: &Found) -> Action {
    let s = &ctx.settings;
    let after = match found {
        Found::AwsError { class, given_up, .. } => match class.retry() {
            Retry::Backoff => ctx.backoff(p, s.timing.backoff_base, s.timing.backoff_cap),
            Retry::Short => ctx.backoff(p, s.timing.short_retry_base, s.timing.short_retry_cap),
            Retry::ForAWhile if !given_up => {
                ctx.backoff(p, s.timing.sms_role_retry_base, s.timing.sms_role_retry_cap)
            }
            Retry::ForAWhile | Retry::Terminal | Retry::Gone => {
                next_check(p, s.stalled_recheck_interval, SystemTime::now())
            }
        },
        // Stalled: waiting on a person, who changes the policy (which triggers a reconcile at
        // once) or something outside it.
        _ if found.is_terminal() => {
            ctx.succeeded(p);
            next_check(p, s.stalled_recheck_interval, SystemTime::now())
        }
        _ => {
            ctx.succeeded(p);
            next_check(p, s.resync_interval, SystemTime::now())
        }
    };
    Action::requeue(after)
}

/// Events: every write to AWS, drift found or corrected, and each move into a state that needs
/// attention (conflict, approval, terminal errors). A state that persists is not repeated.
async fn report(p: &CognitoMfaPolicy, ctx: &Context, found: &Found, reason: Reason, before: Option<Reason>) {
    match found {
        Found::Written { fields, .. } => {
            let note = format!(
                "SetUserPoolMfaConfig on {}: {}",
                p.spec.user_pool_id,
                fields.join(", ")
            );
            ctx.publish(
                p,
                EventType::Normal,
                reason.as_str(),
                "SetUserPoolMfaConfig",
                note,
            )
            .await;
        }
        Found::NotTaken { fields, .. } => {
            let note = format!(
                "SetUserPoolMfaConfig on {} was not fully taken: {}",
                p.spec.user_pool_id,
                fields.join(", ")
            );
            ctx.publish(
                p,
                EventType::Warning,
                reason.as_str(),
                "SetUserPoolMfaConfig",
                note,
            )
            .await;
        }
        Found::AwsError { message, .. } if !found.is_terminal() => {
            // The SDK's retries gave up; the reconcile backs off and tries again.
            story!(
                warn,
                p,
                reason,
                error = message.as_str(),
                "Cognito call failed after retries; retrying with backoff"
            );
        }
        _ if before == Some(reason) || reason.is_ready() => {}
        other => {
            let note = match other {
                Found::Drifted { fields, .. } => format!("The user pool differs in {}.", fields.join(", ")),
                Found::AwaitingApproval { message, .. }
                | Found::PrerequisiteMissing { message, .. }
                | Found::Conflict { message }
                | Found::InvalidSpec { message }
                | Found::AwsError { message, .. } => message.clone(),
                Found::InSync { .. } | Found::Written { .. } | Found::NotTaken { .. } => String::new(),
            };
            match other {
                Found::AwaitingApproval { token, .. } => {
                    story!(
                        info,
                        p,
                        reason,
                        token = token.as_str(),
                        "a disruptive change waits for approval"
                    )
                }
                Found::Drifted { .. } => {
                    story!(
                        info,
                        p,
                        reason,
                        "the user pool differs from the policy (managementPolicy Observe: not corrected)"
                    )
                }
                Found::Conflict { .. } => story!(
                    info,
                    p,
                    reason,
                    detail = note.as_str(),
                    "conflict: another policy owns the pool"
                ),
                // An SMS role still refused after the grace period: retries that gave up.
                Found::AwsError { given_up: true, .. } => story!(
                    warn,
                    p,
                    reason,
                    error = note.as_str(),
                    "retries gave up; the policy waits on a person, rechecked at --stalled-recheck-interval"
                ),
                _ => story!(
                    info,
                    p,
                    reason,
                    error = note.as_str(),
                    "the policy waits on a person; rechecked at --stalled-recheck-interval"
                ),
            }
            ctx.publish(p, EventType::Warning, reason.as_str(), "Reconcile", note)
                .await;
        }
    }
}

/// Deletes a policy: with the finalizer, acts on the pool as the deletion policy says, then
/// lets the object go. A pool that no longer exists never blocks deletion.
async fn delete(p: &CognitoMfaPolicy, ctx: &Context) -> Result<(Action, Option<Reason>), Error> {
    if !p.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok((Action::await_change(), None));
    }
    let spec = &p.spec;
    let owns = owner_of(p, &ctx.store).is_none_or(|o| o.uid() == p.uid());
    let restore = p.status.as_ref().and_then(|s| s.adopted_from.clone());
    let desired: Option<MfaSettings> = match spec.deletion_policy {
        _ if !owns || !deletion_acts(spec) || !api::validate(spec).is_empty() => None,
        DeletionPolicy::Retain => None,
        // MFA off; passkey settings, which the policy may not own, stay as they are.
        DeletionPolicy::Reset => Some(MfaSettings::default()),
        // Nothing to restore when the operator never wrote.
        DeletionPolicy::Restore => restore.map(|r| *r),
    };
    if let (Some(desired), Some(target)) = (desired, Target::of_spec(spec)) {
        // Deletion puts back what the owner chose; the guardrail does not hold it.
        match sync::run(
            &ctx.cognito,
            &target,
            &desired,
            &plan::Approval::standing(),
            Mode::Enforce,
        )
        .await
        {
            Ok(o) if o.wrote => {
                let what = if spec.deletion_policy == DeletionPolicy::Reset {
                    "Reset"
                } else {
                    "Restored"
                };
                ctx.metrics.aws_write(WriteCause::Deletion);
                let fields = o.plan.changed_fields();
                story!(
                    info,
                    p,
                    what,
                    cause = WriteCause::Deletion.as_str(),
                    fields = fields.join(",").as_str(),
                    "deletion policy applied to the user pool: SetUserPoolMfaConfig, read back equal"
                );
                let note = format!(
                    "{what} user pool {} on deletion: {}",
                    spec.user_pool_id,
                    fields.join(", ")
                );
                ctx.publish(p, EventType::Normal, what, "SetUserPoolMfaConfig", note)
                    .await;
            }
            Ok(_) => {}
            Err(e) if e.class == ErrorClass::PoolNotFound => {
                story!(
                    info,
                    p,
                    Reason::UserPoolNotFound,
                    "the user pool is gone; nothing to do on deletion"
                );
            }
            Err(e) => {
                // The finalizer stays: deletion waits until AWS confirms.
                let found = aws_error(p, ctx, e);
                let generation = p.meta().generation.unwrap_or_default();
                let (status, reason) = status::next(p.status.as_ref(), generation, &found, &now());
                ctx.write_status(p, &status).await?;
                if let Found::AwsError { message, .. } = &found {
                    story!(
                        warn,
                        p,
                        reason,
                        error = message.as_str(),
                        "deletion waits: the deletion policy could not be applied"
                    );
                    ctx.publish(
                        p,
                        EventType::Warning,
                        reason.as_str(),
                        "Delete",
                        format!("Deletion waits: {message}"),
                    )
                    .await;
                }
                return Ok((requeue(p, ctx, &found), Some(reason)));
            }
        }
    }
    ctx.set_finalizer(p, false).await?;
    story!(
        info,
        p,
        "Deleted",
        finalizer = FINALIZER,
        "finalizer released: the policy is deleted"
    );
    ctx.succeeded(p);
    Ok((Action::await_change(), None))
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
