//! The CognitoMfaBaseline controller: scans every pool a baseline covers, evaluates it against
//! the floor, and (action Enforce) writes the template to the pools below it that nobody else
//! owns, through the same engine as a policy ([`crate::engine`]).
//!
//! A scan lists the pools of each region (ListUserPools, 60 a page) once per scan interval, and
//! reads each covered pool (GetUserPoolMfaConfig) once per interval at its own phase of it, so
//! that the reads spread evenly. A pool found by a list is read at once; a pool gone from the
//! list (or answering ResourceNotFoundException) drops out. Every read and list takes the
//! baseline share of the account and region's read budget (half of it), so that policies keep
//! the rest. Reconciles read at most [`BATCH`] pools each, so that a spec change is never
//! behind a whole scan. What the scan found lives in memory; a restart scans again at once.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use futures::{StreamExt, channel::mpsc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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
use tracing::{debug, info, warn};

use super::{Error, Events, FIELD_MANAGER, Failures, Settings, lock, next_check_at, now};
use crate::{
    api::{
        self, CognitoMfaBaseline, CognitoMfaPolicy, MfaSettings,
        baseline::{BaselineAction, CognitoMfaBaselineStatus, PoolRef, account_of},
    },
    cognito::{Cognito, ErrorClass, Role, Target},
    engine::{self, Decision, Event, Intent},
    plan::{self, Approval},
    status::{
        Found, WriteCause,
        baseline::{self as verdict, BaselineReason, Owner, PoolFinding, Scan},
    },
    sync,
    telemetry::Metrics,
};

/// The most pools one reconcile reads; more due pools are read by the reconcile that follows at
/// once.
pub const BATCH: usize = 60;

/// What the baseline controller shares with the rest of the operator.
pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) cognito: Cognito,
    pub(super) metrics: Arc<Metrics>,
    pub(super) settings: Settings,
    pub(super) events: Events,
    /// The policies: the pools they own are evaluated, never written.
    pub(super) policies: Store<CognitoMfaPolicy>,
}

struct Context {
    shared: Shared,
    store: Store<CognitoMfaBaseline>,
    /// What each baseline's scan found, by UID.
    scans: Arc<Mutex<HashMap<String, ScanState>>>,
    failures: Failures,
}

/// One baseline's scan.
struct ScanState {
    generation: i64,
    /// When the pools are listed next.
    next_list: Instant,
    pools: BTreeMap<(String, String), PoolState>,
    last_scan_time: Option<Time>,
    list_error: Option<(ErrorClass, String)>,
    /// A list happened whose pools are not all read yet.
    round_open: bool,
    /// The approval annotations last seen: when they change, the pools waiting for approval
    /// are read (and written) at once, not at their next turn.
    approvals: Approvals,
}

/// The values of the standing and the change-bound approval annotations.
type Approvals = (Option<String>, Option<String>);

fn approvals_of(b: &CognitoMfaBaseline) -> Approvals {
    (
        b.annotations().get(api::ALLOW_DISRUPTIVE_ANNOTATION).cloned(),
        b.annotations().get(api::APPROVE_CHANGE_ANNOTATION).cloned(),
    )
}

impl ScanState {
    fn new(generation: i64) -> Self {
        Self {
            generation,
            next_list: Instant::now(),
            pools: BTreeMap::new(),
            last_scan_time: None,
            list_error: None,
            round_open: false,
            approvals: Approvals::default(),
        }
    }
}

/// A scan's state is dropped (a new generation, an invalid spec, the baseline gone): its pools'
/// compliance series go with it, so that no alert fires for a pool the baseline no longer covers.
fn forget(metrics: &Metrics, name: &str, state: &ScanState) {
    for p in state.pools.values() {
        metrics.pool_compliant(name, &p.pool, None);
    }
}

struct PoolState {
    pool: PoolRef,
    due: Instant,
    /// Read since the last list.
    read: bool,
    finding: Option<PoolFinding>,
    /// What the last event about this pool was about, so that a state is told once.
    told: Option<String>,
}

/// Runs the baseline controller until `shutdown` completes.
pub(super) async fn run(
    shared: Shared,
    (reader, writer): (
        Store<CognitoMfaBaseline>,
        reflector::store::Writer<CognitoMfaBaseline>,
    ),
    policies_again: mpsc::UnboundedSender<ObjectRef<CognitoMfaPolicy>>,
    listed: super::Listed,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let api: Api<CognitoMfaBaseline> = Api::all(shared.client.clone());
    let scans: Arc<Mutex<HashMap<String, ScanState>>> = Arc::default();
    let failures = Failures::default();
    let (gone_scans, gone_failures, metrics) = (scans.clone(), failures.clone(), shared.metrics.clone());
    let policies = shared.policies.clone();
    // The generation of each baseline last seen, to tell spec changes from status writes.
    let mut seen: HashMap<String, i64> = HashMap::new();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|b| {
            b.managed_fields_mut().clear();
            b.annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .inspect(move |event| {
            let changed: Vec<&CognitoMfaBaseline> = match event {
                Ok(watcher::Event::InitDone) => {
                    listed.done();
                    Vec::new()
                }
                Ok(watcher::Event::Delete(gone)) => {
                    let uid = gone.uid().unwrap_or_default();
                    seen.remove(&uid);
                    gone_failures.succeeded(&uid);
                    if let Some(scan) = lock(&gone_scans).remove(&uid) {
                        forget(&metrics, &gone.name_any(), &scan);
                    }
                    metrics.baseline_gone(&gone.name_any());
                    vec![gone]
                }
                Ok(watcher::Event::Apply(b) | watcher::Event::InitApply(b)) => {
                    let generation = b.meta().generation.unwrap_or_default();
                    if seen.insert(b.uid().unwrap_or_default(), generation) == Some(generation) {
                        Vec::new()
                    } else {
                        vec![b]
                    }
                }
                _ => Vec::new(),
            };
            // Policies a changed or deleted baseline covers (or covered) say again whether they
            // are below a baseline.
            for b in changed {
                for p in policies.state_filter(|p| {
                    b.spec.covers_policy(&p.spec)
                        || p.status.as_ref().is_some_and(|s| {
                            s.conditions
                                .iter()
                                .any(|c| c.type_ == crate::status::BELOW_BASELINE)
                        })
                }) {
                    let _ = policies_again.unbounded_send(ObjectRef::from_obj(p.as_ref()));
                }
            }
        })
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    let concurrency = shared.settings.concurrency;
    let ctx = Arc::new(Context {
        shared,
        store: reader.clone(),
        scans,
        failures,
    });
    let controller = Controller::for_stream(stream, reader.clone())
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "baseline reconcile failed");
            }
        });
    super::until_stopped(controller, &reader, shutdown).await;
}

/// A baseline is reconciled again when its spec or its approval annotations change (its own
/// status writes change neither); scans come from requeues.
fn trigger_hash(b: &CognitoMfaBaseline) -> Option<u64> {
    let mut h = DefaultHasher::new();
    b.meta().generation.hash(&mut h);
    approvals_of(b).hash(&mut h);
    Some(h.finish())
}

fn error_policy(b: Arc<CognitoMfaBaseline>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(baseline = %b.name_any(), %error, "baseline reconcile failed; retrying with backoff");
    let t = &ctx.shared.settings.timing;
    Action::requeue(
        ctx.failures
            .backoff(&b.uid().unwrap_or_default(), t.backoff_base, t.backoff_cap),
    )
}

/// The approval a baseline's annotations give for writing the template to `pool`.
fn approval(b: &CognitoMfaBaseline, pool: &PoolRef) -> Approval {
    let annotations = b.annotations();
    Approval {
        scope: format!("{} ({})", pool.user_pool_id, pool.region),
        standing: annotations
            .get(api::ALLOW_DISRUPTIVE_ANNOTATION)
            .is_some_and(|v| v == "true"),
        tokens: plan::tokens_of(
            annotations
                .get(api::APPROVE_CHANGE_ANNOTATION)
                .map(String::as_str),
        ),
    }
}

fn target(b: &CognitoMfaBaseline, region: &str, user_pool_id: &str) -> Target {
    Target {
        user_pool_id: user_pool_id.to_owned(),
        region: region.to_owned(),
        role: b.spec.credentials.as_ref().map(|c| Role {
            arn: c.role_arn.clone(),
            external_id: c.external_id.clone(),
        }),
        background: true,
    }
}

/// Who writes `pool`: a policy naming it; else, for an Enforce baseline, the oldest Enforce
/// baseline covering it (by creation time, then name).
fn owner(b: &CognitoMfaBaseline, pool: &PoolRef, ctx: &Context) -> Owner {
    let policy = ctx.shared.policies.find(|p| {
        p.spec.user_pool_id == pool.user_pool_id && p.spec.effective_region() == Some(pool.region.as_str())
    });
    if let Some(p) = policy {
        return Owner::Policy(format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()));
    }
    if b.spec.action != BaselineAction::Enforce {
        return Owner::Reported;
    }
    let order = |o: &CognitoMfaBaseline| (o.meta().creation_timestamp.as_ref().map(|t| t.0), o.name_any());
    let account = account_of(b.spec.credentials.as_ref());
    let older = ctx
        .store
        .state_filter(|o| {
            o.uid() != b.uid()
                && o.spec.action == BaselineAction::Enforce
                && account_of(o.spec.credentials.as_ref()) == account
                && order(o) < order(b)
                && o.spec.name_regex().is_ok_and(|r| o.spec.covers(pool, r.as_ref()))
                // An invalid baseline never writes, so it owns nothing.
                && api::baseline::validate(&o.spec).is_empty()
        })
        .into_iter()
        .min_by(|x, y| order(x).cmp(&order(y)));
    match older {
        Some(o) => Owner::Baseline(o.name_any()),
        None => Owner::This,
    }
}

async fn reconcile(b: Arc<CognitoMfaBaseline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = b.uid().unwrap_or_default();
    let generation = b.meta().generation.unwrap_or_default();
    let violations = api::baseline::validate(&b.spec);
    if !violations.is_empty() {
        let why: Vec<String> = violations.iter().map(ToString::to_string).collect();
        let scan = Scan {
            invalid: Some(why.join("; ")),
            ..Scan::default()
        };
        if let Some(old) = lock(&ctx.scans).remove(&uid) {
            forget(&ctx.shared.metrics, &b.name_any(), &old);
        }
        report(&b, &ctx, generation, &scan).await?;
        return Ok(Action::requeue(ctx.shared.settings.stalled_recheck_interval));
    }
    let interval = b.spec.interval().expect("a valid spec has an interval");
    let regex = b.spec.name_regex().expect("a valid spec has a valid regex");
    // One reconcile per baseline at a time: the state is taken out, and put back at the end.
    let name = b.name_any();
    let previous = lock(&ctx.scans).remove(&uid);
    let mut state = match previous {
        Some(s) if s.generation == generation => s,
        other => {
            if let Some(old) = other {
                forget(&ctx.shared.metrics, &name, &old);
            }
            ScanState::new(generation)
        }
    };
    let approvals = approvals_of(&b);
    if state.approvals != approvals {
        state.approvals = approvals;
        let now_i = Instant::now();
        for p in state.pools.values_mut() {
            if p.finding.as_ref().is_some_and(|f| f.approval_token.is_some()) {
                p.due = now_i;
            }
        }
    }
    if Instant::now() >= state.next_list {
        list(&b, &ctx, &mut state, regex.as_ref(), interval).await;
    }
    // The pools due, oldest first, at most a batch.
    let now_i = Instant::now();
    let mut due: Vec<(Instant, (String, String))> = state
        .pools
        .iter()
        .filter(|(_, p)| p.due <= now_i)
        .map(|(k, p)| (p.due, k.clone()))
        .collect();
    due.sort();
    let more = due.len() > BATCH;
    for (_, key) in due.into_iter().take(BATCH) {
        let Some(mut pool) = state.pools.remove(&key) else {
            continue;
        };
        let previous = pool.finding.clone();
        match read(&b, &ctx, &pool.pool, previous.as_ref()).await {
            None => {
                // Gone: it drops out.
                ctx.shared.metrics.pool_compliant(&name, &pool.pool, None);
                continue;
            }
            Some((finding, events)) => {
                for (key, event) in events {
                    let write = key.starts_with("wrote:") || key == "standing";
                    if write || pool.told.as_deref() != Some(key.as_str()) {
                        ctx.shared.events.publish(b.as_ref(), event).await;
                    }
                    pool.told = Some(key);
                }
                if finding.compliant() {
                    pool.told = None;
                }
                ctx.shared
                    .metrics
                    .pool_compliant(&name, &pool.pool, Some(finding.compliant()));
                pool.finding = Some(finding);
            }
        }
        pool.read = true;
        let phase = format!("{uid}/{}/{}", pool.pool.region, pool.pool.user_pool_id);
        pool.due = Instant::now() + next_check_at(&phase, interval, SystemTime::now());
        state.pools.insert(key, pool);
    }
    if state.round_open && state.pools.values().all(|p| p.read) {
        state.round_open = false;
        state.last_scan_time = Some(now());
        ctx.shared.metrics.baseline_scanned(&name);
        info!(
            baseline = name.as_str(),
            pools = state.pools.len(),
            "scan complete: every covered pool read"
        );
    }
    let scan = Scan {
        findings: state.pools.values().filter_map(|p| p.finding.clone()).collect(),
        pending: state.pools.values().filter(|p| !p.read).count(),
        last_scan_time: state.last_scan_time.clone(),
        list_error: state.list_error.clone(),
        invalid: None,
    };
    let listed = state.list_error.is_none();
    let next_due = state
        .pools
        .values()
        .map(|p| p.due)
        .chain([state.next_list])
        .min()
        .unwrap_or(state.next_list);
    lock(&ctx.scans).insert(uid.clone(), state);
    report(&b, &ctx, generation, &scan).await?;
    let after = if more {
        Duration::ZERO
    } else {
        next_due.saturating_duration_since(Instant::now())
    };
    // A failing list keeps its count of failures in a row: its backoff doubles.
    if listed {
        ctx.failures.succeeded(&uid);
    }
    Ok(Action::requeue(
        after.max(Duration::from_millis(100)).min(interval),
    ))
}

/// Lists the pools of every region and takes the covered ones into the scan: new ones are read
/// at once, gone ones drop out.
async fn list(
    b: &CognitoMfaBaseline,
    ctx: &Context,
    state: &mut ScanState,
    regex: Option<&regex::Regex>,
    interval: Duration,
) {
    let mut listed = Vec::new();
    for region in &b.spec.regions {
        match ctx.shared.cognito.list_pools(&target(b, region, "")).await {
            Ok(pools) => listed.extend(pools),
            Err(e) => {
                let t = &ctx.shared.settings.timing;
                let wait = ctx
                    .failures
                    .backoff(&b.uid().unwrap_or_default(), t.backoff_base, t.backoff_cap);
                warn!(baseline = %b.name_any(), error = %e, "ListUserPools failed; retrying with backoff");
                state.list_error = Some((e.class, e.to_string()));
                state.next_list = Instant::now() + wait.min(interval);
                return;
            }
        }
    }
    state.list_error = None;
    state.next_list = Instant::now() + interval;
    let covered: BTreeMap<(String, String), PoolRef> = listed
        .into_iter()
        .filter(|p| b.spec.covers(p, regex))
        .map(|p| ((p.region.clone(), p.user_pool_id.clone()), p))
        .collect();
    let name = b.name_any();
    state.pools.retain(|key, p| {
        let keep = covered.contains_key(key);
        if !keep {
            ctx.shared.metrics.pool_compliant(&name, &p.pool, None);
        }
        keep
    });
    let now_i = Instant::now();
    for (key, pool) in covered {
        let entry = state.pools.entry(key).or_insert_with(|| PoolState {
            pool: pool.clone(),
            due: now_i,
            read: false,
            finding: None,
            told: None,
        });
        entry.pool = pool;
        entry.read = false;
    }
    state.round_open = true;
}

/// Reads one pool, evaluates it, and enforces the template where the baseline owns it and it is
/// below the floor. `None`: the pool is gone. The events come keyed by the state they tell.
async fn read(
    b: &CognitoMfaBaseline,
    ctx: &Context,
    pool: &PoolRef,
    previous: Option<&PoolFinding>,
) -> Option<(PoolFinding, Vec<(String, Event)>)> {
    let spec = &b.spec;
    let target = target(b, &pool.region, &pool.user_pool_id);
    let cognito = &ctx.shared.cognito;
    let owner = owner(b, pool, ctx);
    let mut finding = PoolFinding {
        pool: pool.clone(),
        observed: None,
        reasons: Vec::new(),
        owner: owner.clone(),
        approval_token: None,
        error: None,
    };
    let mut events = Vec::new();
    let label = format!(
        "{} ({}, {})",
        pool.user_pool_id,
        pool.region,
        if pool.name.is_empty() {
            "unnamed"
        } else {
            &pool.name
        }
    );
    let live = match cognito.get(&target).await {
        Ok(live) => live,
        Err(e) if e.class == ErrorClass::PoolNotFound => return None,
        Err(e) => {
            finding.reasons = vec![format!("could not be read: {e}")];
            finding.error = Some(e.class);
            return Some((finding, events));
        }
    };
    let observed = plan::normalise(&live);
    let failures = spec.floor.failures(&observed);
    finding.reasons = failures.iter().map(ToString::to_string).collect();
    finding.observed = Some(observed.redacted());
    let template = spec.template.as_ref().map(|t| &t.settings);
    match (&owner, template) {
        (Owner::This, Some(template)) if !failures.is_empty() => {
            enforce(b, ctx, &target, template, live, previous, &mut finding, &mut events, &label).await;
        }
        (Owner::Baseline(other), _) if !failures.is_empty() => events.push((
            format!("conflict:{other}"),
            Event {
                warning: true,
                reason: "Conflict".into(),
                action: "Scan",
                note: format!(
                    "User pool {label} is below the floor and owned by CognitoMfaBaseline {other}, which is older: this baseline only reports it."
                ),
            },
        )),
        _ => {}
    }
    if !finding.compliant() && events.is_empty() {
        let why = finding.reasons.join("; ");
        events.push((
            format!("below:{why}"),
            Event {
                warning: true,
                reason: "NonCompliant".into(),
                action: "Scan",
                note: format!("User pool {label} is below the floor: {why}."),
            },
        ));
    }
    Some((finding, events))
}

/// Writes the template to a pool below the floor, as a policy would: the same plan, the same
/// guardrail (a disruptive change waits for approval on the baseline).
#[allow(clippy::too_many_arguments)]
async fn enforce(
    b: &CognitoMfaBaseline,
    ctx: &Context,
    target: &Target,
    template: &MfaSettings,
    live: MfaSettings,
    previous: Option<&PoolFinding>,
    finding: &mut PoolFinding,
    events: &mut Vec<(String, Event)>,
    label: &str,
) {
    let cognito = &ctx.shared.cognito;
    let mut outcome =
        match sync::plan_against(cognito, target, template, &approval(b, &finding.pool), live).await {
            Ok(o) => o,
            Err(e) => {
                finding
                    .reasons
                    .push(format!("the template could not be planned: {e}"));
                finding.error = Some(e.class);
                return;
            }
        };
    let intent = Intent {
        observe_only: false,
        adopted: true,
        restore: false,
        object: "baseline",
    };
    match engine::decide(intent, &outcome) {
        Decision::Found(Found::AwaitingApproval { token, message, .. }) => {
            events.push((
                format!("approval:{token}"),
                Event {
                    warning: true,
                    reason: "AwaitingApproval".into(),
                    action: "SetUserPoolMfaConfig",
                    note: format!("User pool {label}: {message}"),
                },
            ));
            finding.approval_token = Some(token);
        }
        Decision::Found(Found::PrerequisiteMissing { message, .. }) => finding.reasons.push(message),
        Decision::Found(_) => {}
        Decision::Write { .. } => {
            if let Err(e) = sync::write(cognito, target, template, &mut outcome).await {
                finding
                    .reasons
                    .push(format!("the template could not be written: {e}"));
                finding.error = Some(e.class);
                return;
            }
            // A pool this baseline had brought to the floor, found below it again: drift.
            let cause = if previous.is_some_and(|p| p.compliant() && p.owner == Owner::This) {
                WriteCause::DriftCorrection
            } else {
                WriteCause::Baseline
            };
            ctx.shared.metrics.aws_write(cause);
            let (found, standing) = engine::after_write(&outcome);
            let observed = plan::normalise(&outcome.after);
            finding.reasons = b
                .spec
                .floor
                .failures(&observed)
                .iter()
                .map(ToString::to_string)
                .collect();
            finding.observed = Some(observed.redacted());
            let fields = found.fields().join(", ");
            let taken = matches!(found, Found::Written { .. });
            info!(
                baseline = b.name_any().as_str(),
                pool = finding.pool.user_pool_id.as_str(),
                region = finding.pool.region.as_str(),
                cause = cause.as_str(),
                fields = fields.as_str(),
                taken,
                "baseline template written: SetUserPoolMfaConfig"
            );
            let reason = if cause == WriteCause::DriftCorrection {
                "DriftCorrected"
            } else {
                "Enforced"
            };
            events.push((
                format!("wrote:{fields}"),
                Event {
                    warning: !taken,
                    reason: reason.into(),
                    action: "SetUserPoolMfaConfig",
                    note: if taken {
                        format!("SetUserPoolMfaConfig on {label}: {fields} (the baseline's template)")
                    } else {
                        format!("SetUserPoolMfaConfig on {label} was not fully taken: {fields}")
                    },
                },
            ));
            if let Some(note) = standing {
                events.push((
                    "standing".into(),
                    Event {
                        warning: true,
                        reason: "StandingApprovalUsed".into(),
                        action: "SetUserPoolMfaConfig",
                        note: format!("User pool {label}: {note}"),
                    },
                ));
            }
        }
    }
}

/// Writes the status the scan gives (when it changed) and the metrics of the baseline.
async fn report(
    b: &CognitoMfaBaseline,
    ctx: &Context,
    generation: i64,
    scan: &Scan,
) -> Result<BaselineReason, Error> {
    let (status, reason) = verdict::next(b.status.as_ref(), generation, scan, &now());
    ctx.shared
        .metrics
        .baseline_counts(&b.name_any(), status.pools.as_ref());
    write_status(b, ctx, &status).await?;
    Ok(reason)
}

async fn write_status(
    b: &CognitoMfaBaseline,
    ctx: &Context,
    status: &CognitoMfaBaselineStatus,
) -> Result<(), Error> {
    if b.status.as_ref() == Some(status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "cognitomfa.io/v1alpha1",
        "kind": "CognitoMfaBaseline",
        "status": status,
    });
    let written = Api::<CognitoMfaBaseline>::all(ctx.shared.client.clone())
        .patch_status(
            &b.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    match written {
        // Deleted while its scan ran: nothing to report on, nothing to retry.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => {
            ctx.shared.metrics.kubernetes_write("status");
            Ok(())
        }
    }
}
