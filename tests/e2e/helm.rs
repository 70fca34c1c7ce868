//! The chart with the real helm on the real API server: install with default and maximal
//! values, upgrade (after which the operator, run with the upgraded Deployment's settings and
//! ServiceAccount, still reconciles), uninstall (the CRD and the policies stay), a server-side
//! dry run of what it renders, and Pod Security admission of its pod template.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use k8s_openapi::{
    api::apps::v1::Deployment,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    harness::{self, TestNamespace, kubectl_ok, kubectl_run, policy, unique, wait_for_reason},
    support::{TempFile, moto},
};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/cognito-mfa-operator");
const MAXIMAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/cognito-mfa-operator/ci/maximal-values.yaml"
);
const CRD_NAME: &str = "cognitomfapolicies.cognitomfa.io";

fn helm() -> Command {
    let mut cmd = Command::new(
        std::env::var("HELM").expect("HELM is not set: run the tests with hack/test.sh, which builds helm"),
    );
    cmd.env("KUBECONFIG", std::env::var("KUBECONFIG").unwrap_or_default());
    cmd
}

/// Runs helm with `args`; panics with its output unless it succeeds. Returns stdout.
fn helm_ok(args: &[&str]) -> String {
    let out = helm().args(args).output().expect("helm runs");
    assert!(
        out.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What `helm template` renders for `release` in `namespace` with `args` (values).
pub(crate) fn render(release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["template", release, CHART, "--namespace", namespace];
    all.extend_from_slice(args);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&helm_ok(&all)).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Stand-ins for the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (which clusters
/// that enable the chart's ServiceMonitor and PrometheusRule have), so that the maximal values
/// install.
async fn ensure_monitoring_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (plural, kind) in [
        ("servicemonitors", "ServiceMonitor"),
        ("prometheusrules", "PrometheusRule"),
    ] {
        let name = format!("{plural}.monitoring.coreos.com");
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        });
        api.patch(
            &name,
            &PatchParams::apply("cognito-mfa-operator-e2e"),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        harness::wait_established(client, &name).await;
    }
}

/// The release that claims the CRD (`meta.helm.sh/release-name`, empty when none does), or
/// `None` when there is no CRD.
async fn crd_release(client: &Client) -> Option<String> {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(CRD_NAME)
        .await
        .unwrap()?;
    Some(
        crd.annotations()
            .get("meta.helm.sh/release-name")
            .cloned()
            .unwrap_or_default(),
    )
}

/// A kubeconfig that authenticates as the ServiceAccount (a TokenRequest token), against the
/// server the tests use.
async fn kubeconfig_as(admin: &Client, namespace: &str, account: &str) -> TempFile {
    let token = harness::service_account_token(admin, namespace, account).await;
    // The admin kubeconfig, with the user's credentials swapped for the token.
    let view = kubectl_ok(&["config", "view", "--minify", "--flatten", "-o", "json"], None);
    let mut config: Value = serde_json::from_str(&view).unwrap();
    config["users"][0]["user"] = json!({"token": token});
    TempFile::new("kubeconfig", &serde_json::to_string(&config).unwrap())
}

/// Runs the operator's binary as the live Deployment `name` would run it: its container's
/// arguments and environment (field references resolved as the kubelet would), with the
/// ServiceAccount's identity. Only the addresses change, to loopback: metrics on a free port,
/// AWS at moto.
async fn run_as_deployment(admin: &Client, namespace: &str, name: &str) -> (tokio::process::Child, TempFile) {
    let deployment = Api::<Deployment>::namespaced(admin.clone(), namespace)
        .get(name)
        .await
        .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let account = pod.service_account_name.clone().unwrap();
    let container = &pod.containers[0];
    let kubeconfig = kubeconfig_as(admin, namespace, &account).await;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cognito-mfa-operator"));
    cmd.args(container.args.clone().unwrap_or_default())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", &kubeconfig.path);
    for var in container.env.clone().unwrap_or_default() {
        let value = match (
            &var.value,
            var.value_from.as_ref().and_then(|f| f.field_ref.as_ref()),
        ) {
            (Some(v), _) => v.clone(),
            (None, Some(field)) if field.field_path == "metadata.name" => format!("{name}-0"),
            (None, Some(field)) if field.field_path == "metadata.namespace" => namespace.to_owned(),
            _ => panic!("{}: a value this test cannot resolve", var.name),
        };
        cmd.env(&var.name, value);
    }
    cmd.env("COGNITO_MFA_METRICS_ADDR", "127.0.0.1:0")
        .env("AWS_ENDPOINT_URL", moto::endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    (cmd.spawn().expect("the operator starts"), kubeconfig)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_upgrades_and_uninstalls_with_helm() {
    let client = harness::client().await;
    let ns = TestNamespace::new(&client).await;
    let release = unique("cmo");
    // On a cluster where the CRD was installed by kubectl (as the tests do), the release takes it
    // over, as the README says to do when moving a CRD under a release.
    let mut install = vec!["install", &release, CHART, "--namespace", &ns.name];
    let owner = crd_release(&client).await;
    if owner.as_deref() == Some("") {
        install.push("--take-ownership");
    }

    // Install with default values: the CRD (kept on uninstall) and a cluster-wide operator.
    helm_ok(&install);
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(CRD_NAME)
        .await
        .unwrap();
    assert_eq!(
        crd.annotations()
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep")
    );
    assert_eq!(crd.annotations().get("meta.helm.sh/release-name"), Some(&release));
    let status: Value =
        serde_json::from_str(&helm_ok(&["status", &release, "-n", &ns.name, "-o", "json"])).unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    harness::ensure_crd(&client).await;

    // Upgrade with changed values: one namespace watched (a Role instead of the ClusterRole),
    // leader election on, another resync interval. The operator, run as the upgraded Deployment
    // says, reconciles a policy.
    let watch = format!("watch.namespace={}", ns.name);
    helm_ok(&[
        "upgrade",
        &release,
        CHART,
        "--namespace",
        &ns.name,
        "--reuse-values",
        "--set",
        &watch,
        "--set",
        "leaderElection.enabled=true",
        "--set",
        "resyncInterval=2m",
    ]);
    let deployment_name = format!("{release}-cognito-mfa-operator");
    let live = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get(&deployment_name)
        .await
        .unwrap();
    let env = serde_json::to_string(
        &live
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env,
    )
    .unwrap();
    assert!(
        env.contains("\"2m\""),
        "the upgrade reached the Deployment: {env}"
    );
    let (mut operator, _kubeconfig) = run_as_deployment(&client, &ns.name, &deployment_name).await;
    let pool = moto::create_pool("eu-west-1").await;
    let policies = ns.policies();
    let mut p = policy(
        "after-upgrade",
        "helm",
        json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL",
        "softwareTokenMfaConfiguration": {"enabled": true}}),
    );
    p.metadata.labels = None;
    policies.create(&PostParams::default(), &p).await.unwrap();
    wait_for_reason(&policies, "after-upgrade", "Applied").await;
    operator.start_kill().unwrap();
    let _ = operator.wait().await;

    // Uninstall: the CRD and the policies stay.
    helm_ok(&["uninstall", &release, "--namespace", &ns.name, "--wait"]);
    assert!(crd_release(&client).await.is_some(), "the CRD stays");
    assert!(
        policies.get_opt("after-upgrade").await.unwrap().is_some(),
        "the policies stay"
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &ns.name)
            .get_opt(&deployment_name)
            .await
            .unwrap()
            .is_none(),
        "the rest goes"
    );

    // Install again with every value set, under the same release name: it takes the kept CRD back.
    ensure_monitoring_crds(&client).await;
    helm_ok(&[
        "install",
        &release,
        CHART,
        "--namespace",
        &ns.name,
        "-f",
        MAXIMAL,
        "--set",
        &watch,
    ]);
    let status: Value =
        serde_json::from_str(&helm_ok(&["status", &release, "-n", &ns.name, "-o", "json"])).unwrap();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    helm_ok(&["uninstall", &release, "--namespace", &ns.name, "--wait"]);
    assert!(crd_release(&client).await.is_some(), "the CRD stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_chart_renders_passes_a_server_side_dry_run() {
    let client = harness::client().await;
    harness::ensure_crd(&client).await;
    ensure_monitoring_crds(&client).await;
    let ns = TestNamespace::new(&client).await;
    let watch = format!("watch.namespace={}", ns.name);
    // The CRD is left out: on this cluster it is already installed by another field manager.
    for values in [
        vec!["--set", "crds.install=false"],
        vec!["-f", MAXIMAL, "--set", &watch, "--set", "crds.install=false"],
    ] {
        let mut args = vec!["template", "release", CHART, "--namespace", ns.name.as_str()];
        args.extend(values.iter().copied());
        let rendered = helm_ok(&args);
        let out = kubectl_ok(
            &["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            Some(&rendered),
        );
        assert!(out.contains("deployment.apps/"), "{out}");
    }
    // The CRD as the chart renders it passes a server-side dry run too.
    let rendered = helm_ok(&[
        "template",
        "release",
        CHART,
        "--namespace",
        &ns.name,
        "--show-only",
        "templates/crd.yaml",
    ]);
    let (ok, out, err) = kubectl_run(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&rendered),
    );
    assert!(ok, "{err}{out}");
}

/// The pod the Deployment would make, as a Pod object named `name`.
fn pod_of(deployment: &Value, name: &str) -> Value {
    let template = &deployment["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(name);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// Creates `object` with kubectl: whether it was admitted, and what kubectl said on stderr
/// (warnings included).
fn create(namespace: &str, object: &Value) -> (bool, String) {
    let mut child = harness::kubectl()
        .args(["create", "-n", namespace, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pod_passes_the_restricted_pod_security_standard() {
    let client = harness::client().await;
    let ns = TestNamespace::with_labels(
        &client,
        json!({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
               "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted"}),
    )
    .await;
    let mut last = Value::Null;
    for (label, values) in [("default", vec![]), ("maximal", vec!["-f", MAXIMAL])] {
        let watch = format!("watch.namespace={}", ns.name);
        let mut args = values.clone();
        args.extend(["--set", &watch]);
        let objects = render(&unique("cmo"), &ns.name, &args);
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("a Deployment")
            .clone();
        // The pod's ServiceAccount must exist for the pod to be admitted at all.
        for account in objects.iter().filter(|o| o["kind"] == "ServiceAccount") {
            let (ok, err) = create(&ns.name, account);
            assert!(ok || err.contains("AlreadyExists"), "{err}");
        }
        let (ok, stderr) = create(&ns.name, &pod_of(&deployment, &format!("{label}-values")));
        assert!(ok, "{label} values: the pod is refused: {stderr}");
        assert_eq!(stderr.trim(), "", "{label} values: admitted with warnings");
        last = deployment;
    }

    // Proof that the check can fail: the same pod without runAsNonRoot is refused.
    let mut weakened = pod_of(&last, "weakened");
    weakened["spec"]["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("runAsNonRoot");
    for c in weakened["spec"]["containers"].as_array_mut().unwrap() {
        if let Some(sc) = c["securityContext"].as_object_mut() {
            sc.remove("runAsNonRoot");
        }
    }
    let (ok, stderr) = create(&ns.name, &weakened);
    assert!(!ok, "a pod without runAsNonRoot is admitted");
    assert!(
        stderr.contains("violates PodSecurity") && stderr.contains("runAsNonRoot"),
        "{stderr}"
    );
}
