//! Fleet benchmarks: the operator (the release binary, as a process of its own) against a real
//! Kubernetes API server and moto's server, both on loopback (hack/bench.sh starts them).
//!
//!   cargo bench --bench fleet -- [--policies N] [--large N] [--write-rps R] [--latency-samples K]
//!                                [--steady-interval SECONDS] [--scan-pools N] [--scan-interval SECONDS]
//!                                [--only fleet|latency|scan|footprint|large] [--out FILE]
//!
//! It measures what BENCHMARKS.md reports: the cost of a steady-state drift check, convergence
//! time against the write budget's bound, the budget itself, the latency from a spec change to
//! Cognito's write, and the operator's footprint. Figures are counts and ratios; wall-clock
//! times are reported next to the bound they are compared with.

#[path = "../../tests/it/support/mod.rs"]
mod support;

#[path = "../../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, Instant},
};

use aws_sdk_cognitoidentityprovider::types as aws;
use futures::{StreamExt, stream};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    harness::{TestNamespace, policy},
    support::{
        fault_proxy::{FaultProxy, max_in_window},
        moto,
    },
};

const REGION: &str = "eu-west-1";
const GET: &str = "GetUserPoolMfaConfig";
const SET: &str = "SetUserPoolMfaConfig";

struct Args {
    policies: usize,
    large: usize,
    write_rps: u32,
    latency_samples: usize,
    only: Option<String>,
    steady_interval: u64,
    scan_pools: usize,
    scan_interval: u64,
    out: Option<String>,
}

/// The operator binary measured: `CMO_OPERATOR_BIN` (hack/test.sh and hack/bench.sh name the
/// release build, so that this harness itself can be built with the tests' dependencies, in
/// the dev profile, rather than compiling the dependency tree once more), else the one cargo
/// built for this target.
fn operator_binary() -> String {
    std::env::var("CMO_OPERATOR_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cognito-mfa-operator").to_owned())
}

fn args() -> Args {
    let mut a = Args {
        policies: 1000,
        large: 10_000,
        write_rps: 20,
        latency_samples: 100,
        only: None,
        steady_interval: 60,
        scan_pools: 1000,
        scan_interval: 60,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--policies" => a.policies = value().parse().unwrap(),
            "--large" => a.large = value().parse().unwrap(),
            "--write-rps" => a.write_rps = value().parse().unwrap(),
            "--latency-samples" => a.latency_samples = value().parse().unwrap(),
            "--out" => a.out = Some(value()),
            "--steady-interval" => a.steady_interval = value().parse().unwrap(),
            "--scan-pools" => a.scan_pools = value().parse().unwrap(),
            "--scan-interval" => a.scan_interval = value().parse().unwrap(),
            // One scenario only: fleet, latency, scan, footprint or large.
            "--only" => a.only = Some(value()),
            // cargo bench passes --bench.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// The operator's binary running as a process, with its metrics endpoint.
struct Operator {
    child: tokio::process::Child,
    metrics: String,
    started: Instant,
}

impl Operator {
    fn spawn(namespace: &str, endpoint: &str, extra: &[&str]) -> Self {
        Self::spawn_scoped(&["--namespace", namespace], endpoint, extra)
    }

    /// The operator watching what `scope` names (`--namespace N`, or a label selector over
    /// every namespace, which baselines need).
    fn spawn_scoped(scope: &[&str], endpoint: &str, extra: &[&str]) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(operator_binary())
            .arg("run")
            .args(scope)
            .args(["--endpoint-url", endpoint])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            // The cluster under test, even when the benchmark runs in a pod.
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("the operator starts");
        Self {
            child,
            metrics: format!("http://127.0.0.1:{port}"),
            started: Instant::now(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn metrics(&self) -> BTreeMap<String, f64> {
        let url = format!("{}/metrics", self.metrics);
        let Ok(Some((_, body))) =
            tokio::time::timeout(Duration::from_secs(5), support::try_http_get(&url)).await
        else {
            return BTreeMap::new();
        };
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    async fn metric_sum(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    async fn ready(&self) -> bool {
        let url = format!("{}/readyz", self.metrics);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), support::try_http_get(&url)).await,
            Ok(Some((200, _)))
        )
    }

    async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of a process, in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The PID in a pid file of the local API server's or moto's state directory.
fn pid_file(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// CPU seconds of the servers the operator talks to, when this machine runs them.
fn server_cpu() -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    if let Ok(state) = std::env::var("CMO_APISERVER_STATE") {
        for (name, file) in [("kube-apiserver", "kube-apiserver.pid"), ("etcd", "etcd.pid")] {
            if let Some(pid) = pid_file(&format!("{state}/{file}")) {
                out.insert(name, cpu_seconds(pid));
            }
        }
    }
    if let Some(pid) = std::env::var("CMO_MOTO_STATE")
        .ok()
        .and_then(|s| pid_file(&format!("{s}/moto.pid")))
    {
        out.insert("moto", cpu_seconds(pid));
    }
    out
}

fn cpu_delta(before: &BTreeMap<&'static str, f64>, after: &BTreeMap<&'static str, f64>) -> String {
    after
        .iter()
        .map(|(k, v)| format!("{k} {:.1} s", v - before.get(k).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates `n` pools (configured like the policies when `in_sync`) and `n` policies for them.
async fn fleet(ns: &TestNamespace, n: usize, in_sync: bool) -> Vec<(String, String)> {
    let started = Instant::now();
    let pools: Vec<String> = stream::iter(0..n)
        .map(|_| async move {
            let pool = moto::create_pool(REGION).await;
            if in_sync {
                moto::set_totp_out_of_band(REGION, &pool, aws::UserPoolMfaType::Optional).await;
            }
            pool
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let api = ns.policies();
    let names: Vec<(String, String)> = pools
        .into_iter()
        .enumerate()
        .map(|(i, pool)| (format!("p{i:05}"), pool))
        .collect();
    stream::iter(names.clone())
        .map(|(name, pool)| {
            let api = api.clone();
            async move {
                let mut p = policy(
                    &name,
                    "bench",
                    json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL",
                    "softwareTokenMfaConfiguration": {"enabled": true}}),
                );
                p.metadata.labels = None;
                api.create(&PostParams::default(), &p).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!("fleet of {n} created in {:.0?}", started.elapsed());
    names
}

/// Waits until the operator reports `n` policies with Ready reason `reason`; the time it took.
async fn until_reason(op: &Operator, reason: &str, n: usize, limit: Duration) -> Duration {
    let key = format!("cognito_mfa_policies{{reason=\"{reason}\"}}");
    loop {
        let have = op.metrics().await.get(&key).copied().unwrap_or(0.0) as usize;
        if have >= n {
            return op.started.elapsed();
        }
        assert!(
            op.started.elapsed() < limit,
            "only {have} of {n} policies reached {reason} in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Report(String);

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        let _ = writeln!(self.0, "{}", s.as_ref());
    }
}

/// Convergence: `n` policies all needing a change, the write budget `r`.
async fn convergence(
    report: &mut Report,
    client: &kube::Client,
    n: usize,
    r: u32,
) -> (TestNamespace, FaultProxy, Vec<(String, String)>) {
    let ns = TestNamespace::new(client).await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let names = fleet(&ns, n, false).await;
    let reads = 2 * r + 10;
    let servers_before = server_cpu();
    let op = Operator::spawn(
        &ns.name,
        &proxy.url,
        &[
            "--aws-write-rps",
            &r.to_string(),
            "--aws-read-rps",
            &reads.to_string(),
            "--concurrency",
            "64",
            "--resync-interval",
            "2h",
        ],
    );
    let took = until_reason(&op, "Applied", n, Duration::from_secs(3600)).await;
    let bound = Duration::from_secs_f64(n as f64 / f64::from(r));
    let (sets, gets) = (proxy.seen(SET), proxy.seen(GET));
    // Where the time went: before the first write (start-up: the list, the first reads), the
    // writes themselves (their bound is (N-1)/R), and after the last one (its status).
    let set_times = proxy.arrivals(SET);
    let (first_set, last_set) = (
        set_times.first().map(|t| t.duration_since(op.started)),
        set_times.last().map(|t| t.duration_since(op.started)),
    );
    let (cpu, rss) = (cpu_seconds(op.pid()), peak_rss_mib(op.pid()));
    let writes = op.metric_sum("cognito_mfa_kubernetes_writes_total").await;
    let metrics = op.metrics().await;
    let peak = |kind: &str| {
        metrics
            .get(&format!(
                "cognito_mfa_aws_peak_requests_per_second{{kind=\"{kind}\"}}"
            ))
            .copied()
            .unwrap_or(0.0)
    };
    let (peak_reads, peak_writes) = (peak("read"), peak("write"));
    let servers = cpu_delta(&servers_before, &server_cpu());
    report.line(format!(
        "### Convergence: {n} policies, all needing a change, write budget {r}/s"
    ));
    report.line(format!(
        "- time to all Ready: {took:.1?}; bound N/R = {bound:.1?}; **ratio {:.3}**",
        took.as_secs_f64() / bound.as_secs_f64()
    ));
    if let (Some(first), Some(last)) = (first_set, last_set) {
        report.line(format!(
            "- where the time went: {first:.1?} to the first Set (start-up); {:.1?} of Sets, first to last, for a bound (N-1)/R of {:.1?} ({:.3}); {:.1?} from the last Set to all Ready",
            last - first,
            Duration::from_secs_f64((n - 1) as f64 / f64::from(r)),
            (last - first).as_secs_f64() / ((n - 1) as f64 / f64::from(r)),
            took.saturating_sub(last)
        ));
    }
    report.line(format!(
        "- per converged policy: **{:.2} GetUserPoolMfaConfig, {:.2} SetUserPoolMfaConfig, {:.2} Kubernetes writes** (targets 1, 1, at most 2: status with adoptedFrom, event); {gets} Gets, {sets} Sets, {writes} writes in all",
        gets as f64 / n as f64,
        sets as f64 / n as f64,
        writes / n as f64
    ));
    report.line(format!(
                "- budget: the operator let through at most **{peak_writes} writes and {peak_reads} reads in any second** (budgets {r} and {reads}); \
         at moto, after the loopback hop, at most {} writes and {} reads arrived within a second",
        max_in_window(&proxy.arrivals(SET), Duration::from_secs(1)),
        max_in_window(&proxy.arrivals(GET), Duration::from_secs(1))
    ));
    report.line(format!(
        "- CPU: operator {cpu:.1} s (**{:.1} ms per converged policy**); {servers}",
        cpu * 1000.0 / n as f64
    ));
    report.line(format!(
        "- operator peak RSS during the convergence: **{rss:.1} MiB** (VmHWM, from start to the last policy Ready)"
    ));
    report.line("");
    op.stop().await;
    (ns, proxy, names)
}

/// Steady state: a fleet in sync, checked every `interval`, over two full intervals.
async fn steady_state(
    report: &mut Report,
    ns: &TestNamespace,
    proxy: &FaultProxy,
    n: usize,
    interval: Duration,
) {
    let reads = (n as f64 / interval.as_secs_f64() * 2.0).ceil() as u32 + 5;
    let op = Operator::spawn(
        &ns.name,
        &proxy.url,
        &[
            "--aws-read-rps",
            &reads.to_string(),
            "--resync-interval",
            &format!("{}s", interval.as_secs()),
        ],
    );
    // The first pass after a start checks every policy once.
    loop {
        if op.metric_sum("cognito_mfa_reconciles_total").await >= n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Every policy is in its phase of the interval one interval after the first pass.
    tokio::time::sleep(interval).await;
    let api: Api<cognito_mfa_operator::api::CognitoMfaPolicy> = ns.policies();
    let versions = |list: Vec<cognito_mfa_operator::api::CognitoMfaPolicy>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|p| (p.name_any(), p.resource_version().unwrap_or_default()))
            .collect()
    };
    let rv_before = versions(api.list(&ListParams::default()).await.unwrap().items);
    let m0 = op.metrics().await;
    let (gets0, sets0) = (proxy.seen(GET), proxy.seen(SET));
    let window_start = Instant::now();
    tokio::time::sleep(interval * 2).await;
    let m1 = op.metrics().await;
    let (gets, sets) = (proxy.seen(GET) - gets0, proxy.seen(SET) - sets0);
    let sum = |m: &BTreeMap<String, f64>, prefix: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    let checks = sum(&m1, "cognito_mfa_reconciles_total") - sum(&m0, "cognito_mfa_reconciles_total");
    let kube_writes =
        sum(&m1, "cognito_mfa_kubernetes_writes_total") - sum(&m0, "cognito_mfa_kubernetes_writes_total");
    let rv_after = versions(api.list(&ListParams::default()).await.unwrap().items);
    let changed = rv_before
        .iter()
        .filter(|(k, v)| rv_after.get(*k) != Some(*v))
        .count();
    // The drift checks' spread: requests per second within the window.
    let in_window: Vec<Instant> = proxy
        .arrivals(GET)
        .into_iter()
        .filter(|t| *t >= window_start)
        .collect();
    let mut per_second = BTreeMap::<u64, usize>::new();
    for t in &in_window {
        *per_second
            .entry(t.duration_since(window_start).as_secs())
            .or_default() += 1;
    }
    let seconds = (interval * 2).as_secs();
    let counts: Vec<usize> = (0..seconds)
        .map(|s| per_second.get(&s).copied().unwrap_or(0))
        .collect();
    let mean = in_window.len() as f64 / seconds as f64;
    report.line(format!(
        "### Steady state: {n} policies in sync, drift check every {interval:?}, measured over {:?}",
        interval * 2
    ));
    report.line(format!("- drift checks: {checks}; GetUserPoolMfaConfig: {gets} (**{:.3} per check**); SetUserPoolMfaConfig: **{sets}**", gets as f64 / checks.max(1.0)));
    report.line(format!("- Kubernetes writes: **{kube_writes}** (metric); objects whose resourceVersion changed: **{changed}** of {n}"));
    report.line(format!(
        "- spread: {mean:.1} checks per second on average (N/interval = {:.1}); busiest second {}, quietest {}; budget {reads}/s",
        n as f64 / interval.as_secs_f64(),
        counts.iter().max().unwrap_or(&0),
        counts.iter().min().unwrap_or(&0)
    ));
    report.line(format!(
        "- operator CPU over the window and the start: {:.1} s; peak RSS {:.1} MiB",
        cpu_seconds(op.pid()),
        peak_rss_mib(op.pid())
    ));
    report.line("");
    op.stop().await;
}

/// A region of its own for the scan: the baseline covers every pool of it.
const SCAN_REGION: &str = "eu-north-1";
const LIST: &str = "ListUserPools";

/// Creates `n` pools in SCAN_REGION with TOTP on (`mode`); their IDs.
async fn scan_pools(n: usize, mode: aws::UserPoolMfaType) -> Vec<String> {
    stream::iter(0..n)
        .map(|_| {
            let mode = mode.clone();
            async move {
                let client = moto::client(SCAN_REGION).await;
                let pool = moto::create_pool_with(&client).await;
                moto::set_totp_with(&client, &pool, mode).await;
                pool
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// A baseline's scan beside policies, in one account and region (one read budget): `pools`
/// pools nobody wrote a policy for, `policies` policies in sync, drift checks and scans every
/// `interval`. The policies' drift checks are measured over two intervals without the baseline,
/// then over two intervals with it (after its first scan and one more interval, every pool in
/// its phase).
async fn scan(report: &mut Report, client: &kube::Client, pools: usize, policies: usize, interval: Duration) {
    let ns = TestNamespace::new(client).await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let started = Instant::now();
    // The region's pools are this scenario's alone.
    moto::clear_region(&moto::client(SCAN_REGION).await).await;
    scan_pools(pools, aws::UserPoolMfaType::On).await;
    let owned = scan_pools(policies, aws::UserPoolMfaType::Optional).await;
    let run = harness::unique("scan");
    let api = ns.policies();
    stream::iter(owned.iter().enumerate())
        .map(|(i, pool)| {
            let (api, run) = (api.clone(), run.clone());
            async move {
                let p = policy(
                    &format!("s{i:05}"),
                    &run,
                    json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL",
                    "softwareTokenMfaConfiguration": {"enabled": true}}),
                );
                api.create(&PostParams::default(), &p).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "{pools} pools and {policies} policies created in {:.0?}",
        started.elapsed()
    );
    let covered = pools + policies;
    let secs = interval.as_secs_f64();
    // The scan may take half the budget: room for every covered pool once an interval, twice
    // over, and the policies' checks beside it.
    let reads = (2.0 * covered as f64 / secs).ceil() as u32 + (policies as f64 / secs).ceil() as u32 + 5;
    let selector = format!("cognitomfa.io/e2e-run={run}");
    let op = Operator::spawn_scoped(
        &["--label-selector", &selector],
        &proxy.url,
        &[
            "--baselines",
            "true",
            "--aws-read-rps",
            &reads.to_string(),
            "--resync-interval",
            &format!("{}s", interval.as_secs()),
        ],
    );
    while op.metric_sum("cognito_mfa_reconciles_total").await < policies as f64 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(interval).await;
    // (drift checks, Gets, Lists) over two intervals.
    let window = || async {
        let (c0, g0, l0) = (
            op.metric_sum("cognito_mfa_reconciles_total").await,
            proxy.seen(GET),
            proxy.seen(LIST),
        );
        tokio::time::sleep(interval * 2).await;
        (
            op.metric_sum("cognito_mfa_reconciles_total").await - c0,
            proxy.seen(GET) - g0,
            proxy.seen(LIST) - l0,
        )
    };
    let (checks_alone, gets_alone, _) = window().await;

    let name = harness::unique("scan");
    let baselines: Api<cognito_mfa_operator::api::CognitoMfaBaseline> = Api::all(client.clone());
    let baseline = serde_json::from_value(json!({
        "apiVersion": "cognitomfa.io/v1alpha1", "kind": "CognitoMfaBaseline",
        "metadata": {"name": name},
        "spec": {"regions": [SCAN_REGION], "floor": {"mfaConfiguration": ["ON", "OPTIONAL"], "factors": ["TOTP"]},
                 "scanInterval": format!("{}s", interval.as_secs())}
    }))
    .unwrap();
    baselines.create(&PostParams::default(), &baseline).await.unwrap();
    let scan_started = Instant::now();
    // The first scan: every covered pool read once.
    loop {
        let b = baselines.get(&name).await.unwrap();
        let scanned = b.status.and_then(|s| s.pools).map_or(0, |p| p.scanned);
        if scanned as usize >= covered {
            break;
        }
        assert!(
            scan_started.elapsed() < interval * 4 + Duration::from_secs(60),
            "the first scan did not finish"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first_scan = scan_started.elapsed();
    tokio::time::sleep(interval).await;
    let (checks, gets, lists) = window().await;
    let status = baselines.get(&name).await.unwrap().status.unwrap_or_default();
    let counts = status.pools.unwrap_or_default();
    let scan_gets = gets as f64 - checks;
    report.line(format!(
        "### Baseline scan: {pools} pools without a policy and {policies} policies in sync, one region, scan and drift check every {interval:?}, read budget {reads}/s"
    ));
    // One listing an interval, of 60 pools a page.
    let pages = covered.div_ceil(60);
    report.line(format!(
        "- per covered pool and interval: **{:.3} GetUserPoolMfaConfig** by the scan (target 1) and **{:.4} ListUserPools** (target 1/60 = 0.0167, in whole pages: {pages}/{covered} = {:.4}); {lists} Lists over two intervals",
        scan_gets / (covered as f64 * 2.0),
        lists as f64 / (covered as f64 * 2.0),
        pages as f64 / covered as f64
    ));
    report.line(format!(
        "- the policies' drift checks during the scan: **{:.3} of their rate without it** (target within 0.95-1.05): {checks} checks over two intervals, {checks_alone} without the baseline ({gets_alone} Gets)",
        checks / checks_alone.max(1.0)
    ));
    report.line(format!(
        "- first scan of {covered} pools in {first_scan:.1?} (the interval: {interval:?}); status: {} scanned, {} compliant, {} owned by policies, {} non-compliant",
        counts.scanned, counts.compliant, counts.owned_by_policies, counts.non_compliant
    ));
    report.line("");
    let _ = baselines.delete(&name, &Default::default()).await;
    op.stop().await;
    drop(ns);
}

/// Latency from a spec change to the SetUserPoolMfaConfig call, with an idle operator.
async fn latency(report: &mut Report, client: &kube::Client, samples: usize) {
    let ns = TestNamespace::new(client).await;
    let proxy = FaultProxy::start(&moto::endpoint()).await;
    let names = fleet(&ns, samples.min(100), true).await;
    let op = Operator::spawn(
        &ns.name,
        &proxy.url,
        &["--resync-interval", "2h", "--aws-write-rps", "10"],
    );
    // Idle: every policy checked once, nothing left to do.
    loop {
        if op.metric_sum("cognito_mfa_reconciles_total").await >= names.len() as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let api = ns.policies();
    let mut latencies = Vec::new();
    for i in 0..samples {
        let (name, pool) = &names[i % names.len()];
        let round = i / names.len();
        // OPTIONAL <-> OFF: neither direction needs approval.
        let patch = if round % 2 == 0 {
            json!({"spec": {"mfaConfiguration": "OFF", "softwareTokenMfaConfiguration": null}})
        } else {
            json!({"spec": {"mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}}})
        };
        let before = proxy.arrivals_for(SET, pool).len();
        let sent = Instant::now();
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let set = loop {
            let arrivals = proxy.arrivals_for(SET, pool);
            if arrivals.len() > before {
                break arrivals[before];
            }
            assert!(sent.elapsed() < Duration::from_secs(30), "no write for {name}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        latencies.push(set.duration_since(sent));
        // Idle again before the next change: the read-back done, the budget's buckets refilled.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    latencies.sort();
    let pct =
        |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    report.line(format!(
        "### Latency: spec change to SetUserPoolMfaConfig, idle operator, {samples} changes"
    ));
    report.line(format!(
        "- **p50 {:.0?}, p99 {:.0?}**, max {:.0?} (target p99 under 1 s)",
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap()
    ));
    report.line("");
    op.stop().await;
}

/// Footprint with a large fleet already in sync: start-up and memory.
async fn footprint(report: &mut Report, ns: &TestNamespace, proxy: &FaultProxy, n: usize) {
    let op = Operator::spawn(
        &ns.name,
        &proxy.url,
        &["--resync-interval", "2h", "--aws-read-rps", "15"],
    );
    while !op.ready().await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let to_ready = op.started.elapsed();
    let rss_at_ready = peak_rss_mib(op.pid());
    // The first pass checks every policy once, at the read budget (15/s): sample a minute of it.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let checked = op.metric_sum("cognito_mfa_reconciles_total").await;
    report.line(format!("### Footprint: {n} policies in the cache"));
    report.line(format!(
        "- start-up to /readyz (every policy listed and cached): **{to_ready:.1?}**"
    ));
    report.line(format!(
        "- peak RSS: {rss_at_ready:.1} MiB at ready; **{:.1} MiB** after a minute of checks ({checked} policies checked at 15 reads/s)",
        peak_rss_mib(op.pid())
    ));
    report.line(format!("- CPU: {:.1} s", cpu_seconds(op.pid())));
    report.line("");
    op.stop().await;
}

#[tokio::main]
async fn main() {
    let args = args();
    let client = harness::client().await;
    harness::ensure_crd(&client).await;
    let mut report = Report(String::new());
    let binary = std::fs::metadata(operator_binary()).map(|m| m.len()).unwrap_or(0);
    report.line("## Results");
    report.line(format!(
        "Machine: {} cores; the operator's release binary: **{:.1} MiB** stripped.",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        binary as f64 / (1024.0 * 1024.0)
    ));
    report.line("");
    let run = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    if run("fleet") {
        let (ns, proxy, _) = convergence(&mut report, &client, args.policies, args.write_rps).await;
        // The fleet checked every minute (by default): N/60 checks a second.
        steady_state(
            &mut report,
            &ns,
            &proxy,
            args.policies,
            Duration::from_secs(args.steady_interval),
        )
        .await;
        drop(ns);
    }
    if run("latency") {
        latency(&mut report, &client, args.latency_samples).await;
    }
    if args.scan_pools > 0 && run("scan") {
        // The policies beside the scan: a fifth as many.
        let policies = (args.scan_pools / 5).max(1);
        scan(
            &mut report,
            &client,
            args.scan_pools,
            policies,
            Duration::from_secs(args.scan_interval),
        )
        .await;
    }
    if args.large > 0 && run("footprint") {
        // The footprint alone: a large fleet already in sync.
        let ns = TestNamespace::new(&client).await;
        let proxy = FaultProxy::start(&moto::endpoint()).await;
        fleet(&ns, args.large, true).await;
        // A first operator reports on every policy, so that the cache holds full objects.
        let first = Operator::spawn(
            &ns.name,
            &proxy.url,
            &["--aws-read-rps", "100", "--concurrency", "32"],
        );
        while first.metric_sum("cognito_mfa_reconciles_total").await < args.large as f64 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        first.stop().await;
        footprint(&mut report, &ns, &proxy, args.large).await;
        if std::env::var("CMO_BENCH_KEEP").is_ok() {
            eprintln!("kept namespace {}", ns.name);
            std::mem::forget(ns);
        } else {
            drop(ns);
        }
    }
    if args.large > 0 && run("large") {
        let large_rps = args.write_rps * 5 / 2;
        let (ns, proxy, _) = convergence(&mut report, &client, args.large, large_rps).await;
        footprint(&mut report, &ns, &proxy, args.large).await;
        drop(ns);
    }
    if let Some(path) = args.out {
        std::fs::write(&path, &report.0).unwrap();
        eprintln!("report written to {path}");
    }
}
