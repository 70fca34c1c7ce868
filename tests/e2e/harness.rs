//! The end-to-end harness: a real Kubernetes API server (KUBECONFIG), moto's server on loopback,
//! and the operator's controller running in-process against both.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use cognito_mfa_operator::{
    api::CognitoMfaPolicy,
    cognito::{Cognito, Options},
    controller::{self, LeaseSettings, Settings, Timing},
    telemetry::Metrics,
};
use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// A client for the cluster KUBECONFIG names. Also sets up logs (RUST_LOG, default
/// `info` for the operator), shown for failing tests.
pub async fn client() -> Client {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("cognito_mfa_operator=info,kube_lease_manager=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    Client::try_default()
        .await
        .expect("a Kubernetes API server: set KUBECONFIG (hack/test.sh starts a local one on loopback)")
}

static CRD: OnceCell<()> = OnceCell::const_new();

/// The kubectl the tests run: `KUBECTL` (hack/test.sh sets the one of the local API server's
/// version), else `kubectl` on PATH.
pub fn kubectl() -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()));
    cmd.env("KUBECONFIG", std::env::var("KUBECONFIG").unwrap_or_default());
    cmd
}

/// Runs kubectl with `args` (and `stdin`); panics with its output unless it succeeds. Returns
/// what it printed on stdout.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = kubectl_run(args, stdin);
    assert!(ok, "kubectl {} failed:\n{err}{out}", args.join(" "));
    out
}

/// Runs kubectl with `args` (and `stdin`): whether it succeeded, stdout, stderr.
pub fn kubectl_run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = kubectl()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs (set KUBECTL, or put kubectl on PATH)");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The operator's binary with `run` and what finds the cluster: `--kubeconfig` with the file
/// KUBECONFIG names (so that a test run inside a pod still talks to the cluster under test,
/// not to the pod's own), and dummy AWS credentials.
pub fn operator_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cognito-mfa-operator"));
    // Baselines are cluster-scoped: only the tests of baselines run their controller.
    cmd.args(["run", "--baselines", "false"]);
    match std::env::var("KUBECONFIG") {
        // One file: named on the command line. A list: the binary reads KUBECONFIG itself.
        Ok(path) if !path.is_empty() && !path.contains(':') => {
            cmd.args(["--kubeconfig", &path]);
        }
        _ => {
            cmd.env_remove("KUBERNETES_SERVICE_HOST");
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_ENDPOINT_URL")
        .kill_on_drop(true);
    cmd
}

/// The policy examples' manifests, moved into `namespace` (as a kustomize namespace transformer
/// would). The baseline examples are cluster-scoped: see [`baseline_examples`].
pub fn examples_in(namespace: &str) -> Vec<String> {
    example_files()
        .into_iter()
        .filter(|text| !text.contains("\nkind: CognitoMfaBaseline\n"))
        .map(|text| {
            text.replace(
                "\n  namespace: identity\n",
                &format!("\n  namespace: {namespace}\n"),
            )
        })
        .collect()
}

/// The baseline examples' manifests, as written.
pub fn baseline_examples() -> Vec<String> {
    example_files()
        .into_iter()
        .filter(|text| text.contains("\nkind: CognitoMfaBaseline\n"))
        .collect()
}

/// Every file of examples/ (not its folders), in name order.
fn example_files() -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The folder of the generated CRD, as users apply it.
pub const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");

/// Installs the operator's CRD once per test process the way the README tells users to
/// (`kubectl apply --server-side -f crds/`, nothing left out), and waits until it is served.
pub async fn ensure_crd(client: &Client) {
    CRD.get_or_init(|| async {
        // Run off the runtime's threads: kubectl takes a moment.
        tokio::task::spawn_blocking(|| kubectl_ok(&["apply", "--server-side", "-f", CRDS], None))
            .await
            .unwrap();
        wait_established(client, &cognito_mfa_operator::api::crd().name_any()).await;
        wait_established(client, &cognito_mfa_operator::api::baseline::crd().name_any()).await;
        // The API server needs a moment to serve a new resource after it is established.
        let policies: Api<CognitoMfaPolicy> = Api::all(client.clone());
        wait(Duration::from_secs(60), "the CRD to be served", || async {
            policies
                .list(&ListParams::default().limit(1))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    })
    .await;
}

/// Waits until the CRD `name` is established.
pub async fn wait_established(client: &Client, name: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait(
        Duration::from_secs(60),
        &format!("the CRD {name} to be established"),
        || async {
            let established = api
                .get(name)
                .await
                .ok()?
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        },
    )
    .await;
}

/// A token of the ServiceAccount `account` in `namespace`, from the TokenRequest API.
pub async fn service_account_token(admin: &Client, namespace: &str, account: &str) -> String {
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit` (a bound against
/// hanging, not a timing assertion).
pub async fn wait<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A unique name for a test's resources.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}", nanos % 0xff_ffff_ffff)
}

/// A namespace for one test, deleted when dropped.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client) -> Self {
        Self::with_labels(client, json!({})).await
    }

    /// A namespace with `labels` (a JSON object).
    pub async fn with_labels(client: &Client, labels: Value) -> Self {
        let name = unique("cmo-e2e");
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        Self {
            name,
            client: client.clone(),
        }
    }

    pub fn policies(&self) -> Api<CognitoMfaPolicy> {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: delete from a thread with its own runtime, and its own client (the
        // test's client pools connections driven by the test's runtime, which waits here).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(client) = Client::try_default().await else {
                    return;
                };
                // Finalizers the operator would have removed must not keep the namespace alive.
                let policies: Api<CognitoMfaPolicy> = Api::namespaced(client.clone(), &name);
                if let Ok(list) = policies.list(&ListParams::default()).await {
                    for p in list {
                        let patch = json!({"metadata": {"finalizers": null}});
                        let _ = policies
                            .patch(
                                &p.name_any(),
                                &kube::api::PatchParams::default(),
                                &kube::api::Patch::Merge(&patch),
                            )
                            .await;
                    }
                }
                let _ = Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::default())
                    .await;
            });
        })
        .join();
    }
}

/// Cluster-scoped objects of one test (`kind/name`, as kubectl names them), deleted when
/// dropped, also when the test fails: namespace cleanup does not reach them.
pub struct ClusterObjects(pub Vec<String>);

impl Drop for ClusterObjects {
    fn drop(&mut self) {
        for object in &self.0 {
            let _ = kubectl_run(&["delete", object, "--ignore-not-found", "--wait=false"], None);
        }
    }
}

/// A CognitoMfaPolicy manifest with `spec`, labelled for `run` (so only that test's operator
/// sees it).
pub fn policy(name: &str, run: &str, spec: Value) -> CognitoMfaPolicy {
    serde_json::from_value(json!({
        "apiVersion": "cognitomfa.io/v1alpha1",
        "kind": "CognitoMfaPolicy",
        "metadata": {"name": name, "labels": {"cognitomfa.io/e2e-run": run}},
        "spec": spec
    }))
    .unwrap()
}

/// What most tests start with: a client, the CRD, a namespace of their own, and a run label
/// that only their operator watches.
pub struct Setup {
    pub client: Client,
    pub ns: TestNamespace,
    pub run: String,
}

impl Setup {
    pub async fn new() -> Self {
        let client = client().await;
        ensure_crd(&client).await;
        let ns = TestNamespace::new(&client).await;
        Self {
            client,
            ns,
            run: unique("run"),
        }
    }

    /// An operator's settings for this test: talking to `endpoint`, watching this run.
    pub fn config(&self, endpoint: &str) -> OperatorConfig {
        OperatorConfig::new(&self.run, endpoint)
    }

    /// Starts an operator with `config`.
    pub async fn operator(&self, config: OperatorConfig) -> Operator {
        Operator::start(&self.client, config).await
    }

    /// The policies of the test's namespace.
    pub fn api(&self) -> Api<CognitoMfaPolicy> {
        self.ns.policies()
    }

    /// Creates policy `name` with `spec` in the test's namespace, labelled for its operator.
    pub async fn create(&self, name: &str, spec: Value) {
        self.api()
            .create(&PostParams::default(), &policy(name, &self.run, spec))
            .await
            .expect("the policy is created");
    }

    /// The events about policy `name`.
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        events(&self.client, &self.ns.name, name).await
    }

    /// The events of policy `name` once one has `reason` (events follow the status write that
    /// reports the same finding, so a test that has seen the status waits for its event).
    pub async fn wait_for_event(&self, name: &str, reason: &str) -> Vec<(String, String)> {
        wait(
            Duration::from_secs(30),
            &format!("a {reason} event for {name}"),
            || async {
                let events = self.events(name).await;
                events.iter().any(|(r, _)| r == reason).then_some(events)
            },
        )
        .await
    }
}

/// How an in-process operator is set up.
pub struct OperatorConfig {
    pub run: String,
    /// Watch this namespace only (default: all).
    pub namespace: Option<String>,
    pub endpoint: String,
    pub resync: Duration,
    pub stalled_recheck: Duration,
    pub timing: Timing,
    /// The SDK's first and longest wait between attempts.
    pub sdk_backoff: (Duration, Duration),
    /// Reads and writes per second.
    pub budget: (u32, u32),
    pub lease: Option<LeaseSettings>,
    /// Watch every policy in scope, not only those labelled for this run (with `namespace`).
    pub unlabelled: bool,
    /// Run the baseline controller too (baselines are cluster-scoped: only the tests of
    /// baselines run it, so that no other test's operator acts on their pools).
    pub baselines: bool,
}

impl OperatorConfig {
    pub fn new(run: &str, endpoint: &str) -> Self {
        Self {
            run: run.to_owned(),
            namespace: None,
            endpoint: endpoint.to_owned(),
            resync: Duration::from_secs(600),
            stalled_recheck: Duration::from_secs(1800),
            timing: Timing::default(),
            sdk_backoff: (Duration::from_millis(200), Duration::from_secs(5)),
            // Tests are small: a generous budget keeps them quick.
            budget: (50, 50),
            lease: None,
            unlabelled: false,
            baselines: false,
        }
    }
}

/// The operator's controller running in this process, watching the policies labelled for one
/// test run, talking to moto (or a fault proxy in front of it).
pub struct Operator {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub async fn start(client: &Client, config: OperatorConfig) -> Self {
        let metrics = Arc::new(Metrics::default());
        let cognito = Cognito::from_env(Options {
            endpoint_url: Some(config.endpoint.clone()),
            read_rps: config.budget.0.try_into().unwrap(),
            write_rps: config.budget.1.try_into().unwrap(),
            initial_backoff: config.sdk_backoff.0,
            max_backoff: config.sdk_backoff.1,
            observer: Some(metrics.clone()),
            ..Options::default()
        })
        .await;
        let settings = Settings {
            namespace: config.namespace.clone(),
            label_selector: (!config.unlabelled).then(|| format!("cognitomfa.io/e2e-run={}", config.run)),
            resync_interval: config.resync,
            stalled_recheck_interval: config.stalled_recheck,
            timing: config.timing.clone(),
            instance: config
                .lease
                .as_ref()
                .map_or_else(|| config.run.clone(), |l| l.identity.clone()),
            baselines: config.baselines,
            ..Settings::default()
        };
        let shutdown = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(false));
        let task = {
            let (client, metrics, ready, shutdown) =
                (client.clone(), metrics.clone(), ready.clone(), shutdown.clone());
            tokio::spawn(async move {
                controller::run_operator(client, cognito, metrics, settings, config.lease, ready, shutdown)
                    .await
                    .expect("the operator runs");
            })
        };
        Self {
            metrics,
            ready,
            shutdown,
            task,
        }
    }

    /// Stops gracefully (running reconciles finish; a held Lease is released).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Stops abruptly, as a crash would: nothing is released.
    pub fn kill(self) {
        self.task.abort();
    }

    /// The value of a metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, line_prefix: &str) -> f64 {
        self.metrics
            .encode()
            .lines()
            .find(|l| l.starts_with(line_prefix) && l[line_prefix.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }
}

/// The condition `type_` of a policy: (status, reason, message).
pub fn condition(p: &CognitoMfaPolicy, type_: &str) -> Option<(String, String, String)> {
    let c = p.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the policy's Ready condition has `reason` for its current generation, and
/// returns the policy.
pub async fn wait_for_reason(api: &Api<CognitoMfaPolicy>, name: &str, reason: &str) -> CognitoMfaPolicy {
    wait(
        Duration::from_secs(60),
        &format!("{name} to report {reason}"),
        || async {
            let p = api.get(name).await.ok()?;
            let current = p.status.as_ref()?.observed_generation == p.metadata.generation;
            (current && condition(&p, "Ready").is_some_and(|(_, r, _)| r == reason)).then_some(p)
        },
    )
    .await
}

/// The events recorded about a policy: (reason, note).
pub async fn events(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut out: Vec<(String, String)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect();
    out.sort();
    out
}
