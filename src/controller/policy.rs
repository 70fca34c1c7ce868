//! The CognitoMfaPolicy controller: one pass of the engine per reconcile, against the one pool a
//! policy names. What to do is decided in [`crate::engine`]; this carries it out (AWS calls
//! through [`crate::sync`], status, finalizer, events) and logs and counts it.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use futures::{StreamExt, channel::mpsc};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;
use tracing::{debug, warn};

use super::{Error, Events, FIELD_MANAGER, Failures, Settings, lock, next_check_at, now};
use crate::{
    api::{
        self, CognitoMfaBaseline, CognitoMfaPolicy, CognitoMfaPolicySpec, DeletionPolicy, ManagementPolicy,
        MfaSettings,
    },
    cognito::{CallError, Cognito, ErrorClass, Target},
    engine::{self, Decision, Intent, Wait},
    plan,
    status::{self, Found, Reason, WriteCause},
    sync::{self, Mode},
    telemetry::Metrics,
};

/// The finalizer that holds a policy whose deletion acts on the pool (Reset, Restore).
pub const FINALIZER: &str = "cognitomfa.io/deletion-policy";

/// What the policy controller shares with the rest of the operator.
pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) cognito: Cognito,
    pub(super) metrics: Arc<Metrics>,
    pub(super) settings: Settings,
    pub(super) events: Events,
    /// The baselines, for the BelowBaseline condition.
    pub(super) baselines: Store<CognitoMfaBaseline>,
}

/// What reconciles share.
struct Context {
    shared: Shared,
    store: Store<CognitoMfaPolicy>,
    failures: Failures,
    /// Writes to AWS whose status could not be written yet, by policy UID.
    unreported: Arc<Mutex<HashMap<String, Unreported>>>,
    /// When a policy first got InvalidSmsRole in a row, to stop waiting for IAM after a while.
    sms_role_since: Arc<Mutex<HashMap<String, Instant>>>,
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
pub(super) fn same_pool(a: &CognitoMfaPolicySpec, b: &CognitoMfaPolicySpec) -> bool {
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

/// Runs the policy controller until `shutdown` completes, then lets running reconciles finish.
pub(super) async fn run(
    shared: Shared,
    (reader, writer): (
        Store<CognitoMfaPolicy>,
        reflector::store::Writer<CognitoMfaPolicy>,
    ),
    (again_tx, again_rx): (
        mpsc::UnboundedSender<ObjectRef<CognitoMfaPolicy>>,
        mpsc::UnboundedReceiver<ObjectRef<CognitoMfaPolicy>>,
    ),
    listed: super::Listed,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let settings = shared.settings.clone();
    let client = shared.client.clone();
    let api: Api<CognitoMfaPolicy> = match &settings.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut watch = watcher::Config::default();
    if let Some(selector) = &settings.label_selector {
        watch = watch.labels(selector);
    }
    let failures = Failures::default();
    let sms_role_since: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (store, gone_metrics) = (reader.clone(), shared.metrics.clone());
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
                listed.done();
            }
            if let Ok(watcher::Event::Delete(gone)) = event {
                let uid = gone.uid().unwrap_or_default();
                gone_metrics.policy_reason(&uid, None);
                gone_failures.succeeded(&uid);
                lock(&gone_since).remove(&uid);
                lock(&gone_unreported).remove(&uid);
                // The others naming its pool re-evaluate ownership at once.
                for sibling in store.state_filter(|o| same_pool(&o.spec, &gone.spec)) {
                    let _ = again_tx.unbounded_send(ObjectRef::from_obj(sibling.as_ref()));
                }
            }
        })
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    let ctx = Arc::new(Context {
        shared,
        store: reader.clone(),
        failures,
        sms_role_since,
        unreported,
    });
    let controller = Controller::for_stream(stream, reader.clone())
        .reconcile_on(again_rx)
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "reconcile failed");
            }
        });
    super::until_stopped(controller, &reader, shutdown).await;
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
    ctx.shared
        .metrics
        .reconciled(label, started.elapsed().as_secs_f64());
    result.map(|(action, _)| action)
}

fn error_policy(p: Arc<CognitoMfaPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        policy = %p.name_any(),
        namespace = %p.namespace().unwrap_or_default(),
        %error,
        "reconcile failed; retrying with backoff"
    );
    let t = &ctx.shared.settings.timing;
    Action::requeue(ctx.failures.backoff(&uid(&p), t.backoff_base, t.backoff_cap))
}

fn uid(p: &CognitoMfaPolicy) -> String {
    p.uid().unwrap_or_default()
}

fn api_for(p: &CognitoMfaPolicy, client: &Client) -> Api<CognitoMfaPolicy> {
    Api::namespaced(client.clone(), &p.namespace().unwrap_or_default())
}

/// Whether deleting the policy acts on the pool (and so needs a finalizer).
fn deletion_acts(spec: &CognitoMfaPolicySpec) -> bool {
    spec.deletion_policy != DeletionPolicy::Retain && spec.management_policy == ManagementPolicy::Enforce
}

impl Context {
    fn client(&self) -> &Client {
        &self.shared.client
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
        api_for(p, self.client())
            .patch(
                &p.name_any(),
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await?;
        self.shared.metrics.kubernetes_write("finalizer");
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
        api_for(p, self.client())
            .patch_status(
                &p.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.shared.metrics.kubernetes_write("status");
        Ok(())
    }

    /// The requeue of a wait the engine decided, counting consecutive failures for backoff.
    fn requeue(&self, p: &CognitoMfaPolicy, wait: Wait) -> Action {
        let s = &self.shared.settings;
        let after = match wait {
            Wait::Backoff { base, cap } => self.failures.backoff(&uid(p), base, cap),
            Wait::Resync => {
                self.failures.succeeded(&uid(p));
                next_check_at(&uid(p), s.resync_interval, SystemTime::now())
            }
            Wait::Stalled => {
                self.failures.succeeded(&uid(p));
                next_check_at(&uid(p), s.stalled_recheck_interval, SystemTime::now())
            }
        };
        Action::requeue(after)
    }
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
    let uid = uid(p);
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
    let now = now();
    let mut report = engine::report(
        &spec.user_pool_id,
        prev.as_ref(),
        generation,
        &found,
        &ctx.shared.settings.timing,
        &now,
    );
    // Whether the spec is below a baseline that covers its pool (the condition is there only
    // when one does).
    let baselines = ctx.shared.baselines.state();
    let below = status::baseline_verdict(spec, baselines.iter().map(|b| (b.name_any(), &b.spec)));
    status::set_below_baseline(&mut report.status, below.as_ref(), generation, &now);
    if let Err(e) = ctx.write_status(p, &report.status).await {
        if let Found::Written { fields, .. } = found {
            lock(&ctx.unreported).insert(uid, Unreported { fields, side });
        }
        return Err(e);
    }
    let reason = report.reason;
    ctx.shared.metrics.policy_reason(&uid, Some(reason));
    tell(p, ctx, &found, reason, report.events).await;
    if let Some(note) = side.standing_approval {
        let event = engine::Event {
            warning: true,
            reason: "StandingApprovalUsed".into(),
            action: "SetUserPoolMfaConfig",
            note,
        };
        ctx.shared.events.publish(p, event).await;
    }
    Ok((ctx.requeue(p, report.wait), Some(reason)))
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

/// Finds out where the policy stands: validation, ownership, then one pass against the pool,
/// carrying out what [`engine::decide`] says (the write, and adoptedFrom first for Restore),
/// telling `side` what else the pass did.
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
    let cognito = &ctx.shared.cognito;
    let mut outcome = match sync::read(cognito, &target, &spec.settings, &p.approval()).await {
        Ok(o) => o,
        Err(e) => return Ok(aws_error(p, ctx, e)),
    };
    if outcome.plan.is_in_sync() {
        lock(&ctx.sms_role_since).remove(&uid(p));
    }
    let intent = Intent {
        observe_only: spec.management_policy == ManagementPolicy::Observe,
        adopted: p.status.as_ref().and_then(|s| s.adopted_from.as_ref()).is_some(),
        restore: spec.deletion_policy == DeletionPolicy::Restore,
        object: "policy",
    };
    match engine::decide(intent, &outcome) {
        Decision::Found(found) => return Ok(found),
        Decision::Write { adopt, adopt_first } => {
            if let (Some(adopted), true) = (&adopt, adopt_first) {
                let mut with_adoption = p.status.clone().unwrap_or_default();
                with_adoption.adopted_from = Some(Box::new(adopted.clone()));
                ctx.write_status(p, &with_adoption).await?;
            }
            side.adopted = adopt;
        }
    }
    if let Err(e) = sync::write(cognito, &target, &spec.settings, &mut outcome).await {
        return Ok(aws_error(p, ctx, e));
    }
    let (found, standing) = engine::after_write(&outcome);
    side.standing_approval = standing;
    Ok(found)
}

/// The finding of a failed call, keeping how long an SMS role has been refused.
fn aws_error(p: &CognitoMfaPolicy, ctx: &Context, e: CallError) -> Found {
    let uid = uid(p);
    let mut since = lock(&ctx.sms_role_since);
    let given_up = if e.class == ErrorClass::InvalidSmsRole {
        since.entry(uid).or_insert_with(Instant::now).elapsed() >= ctx.shared.settings.timing.sms_role_grace
    } else {
        since.remove(&uid);
        false
    };
    engine::failed(&e, given_up)
}

/// Logs what a reconcile found, where it needs a line, and publishes the events the engine
/// decided.
async fn tell(
    p: &CognitoMfaPolicy,
    ctx: &Context,
    found: &Found,
    reason: Reason,
    events: Vec<engine::Event>,
) {
    match found {
        Found::Written { .. } | Found::NotTaken { .. } | Found::InSync { .. } => {}
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
        // The lines below go with the events: once, when the state is entered.
        _ if events.is_empty() => {}
        Found::AwaitingApproval { token, .. } => story!(
            info,
            p,
            reason,
            token = token.as_str(),
            "a disruptive change waits for approval"
        ),
        Found::Drifted { .. } => story!(
            info,
            p,
            reason,
            "the user pool differs from the policy (managementPolicy Observe: not corrected)"
        ),
        Found::Conflict { message } => story!(
            info,
            p,
            reason,
            detail = message.as_str(),
            "conflict: another policy owns the pool"
        ),
        // An SMS role still refused after the grace period: retries that gave up.
        Found::AwsError {
            given_up: true,
            message,
            ..
        } => story!(
            warn,
            p,
            reason,
            error = message.as_str(),
            "retries gave up; the policy waits on a person, rechecked at --stalled-recheck-interval"
        ),
        Found::PrerequisiteMissing { message, .. }
        | Found::InvalidSpec { message }
        | Found::AwsError { message, .. } => story!(
            info,
            p,
            reason,
            error = message.as_str(),
            "the policy waits on a person; rechecked at --stalled-recheck-interval"
        ),
    }
    for event in events {
        ctx.shared.events.publish(p, event).await;
    }
}

/// Logs and counts what a pass found in the pool: drift (a pool that changed after it matched
/// this generation) and writes, by cause. A check that finds the pool in sync logs nothing.
fn account(p: &CognitoMfaPolicy, ctx: &Context, found: &Found, generation: i64) {
    let prev = p.status.as_ref();
    let fields = |f: &[String]| f.join(",");
    if status::drift_found(prev, generation, found) {
        ctx.shared.metrics.drift_detected();
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
            ctx.shared.metrics.aws_write(cause);
            let (reason, what) = if cause == WriteCause::DriftCorrection {
                ctx.shared.metrics.drift_corrected();
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
            ctx.shared.metrics.aws_write(cause);
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
            &ctx.shared.cognito,
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
                ctx.shared.metrics.aws_write(WriteCause::Deletion);
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
                let event = engine::Event {
                    warning: false,
                    reason: what.to_owned(),
                    action: "SetUserPoolMfaConfig",
                    note,
                };
                ctx.shared.events.publish(p, event).await;
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
                let report = engine::report(
                    &spec.user_pool_id,
                    p.status.as_ref(),
                    generation,
                    &found,
                    &ctx.shared.settings.timing,
                    &now(),
                );
                let reason = report.reason;
                ctx.write_status(p, &report.status).await?;
                if let Found::AwsError { message, .. } = &found {
                    story!(
                        warn,
                        p,
                        reason,
                        error = message.as_str(),
                        "deletion waits: the deletion policy could not be applied"
                    );
                    let event = engine::Event {
                        warning: true,
                        reason: reason.as_str().to_owned(),
                        action: "Delete",
                        note: format!("Deletion waits: {message}"),
                    };
                    ctx.shared.events.publish(p, event).await;
                }
                return Ok((ctx.requeue(p, report.wait), Some(reason)));
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
    ctx.failures.succeeded(&uid(p));
    Ok((Action::await_change(), None))
}
