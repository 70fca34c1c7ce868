//! The chart's RBAC on a real API server with RBAC authorization: the operator, running with
//! nothing but the chart's ServiceAccount token, reconciles a policy through its whole life
//! (sufficient), and is refused everything else (minimal).

use std::process::Command;

use k8s_openapi::api::{
    authorization::v1::SelfSubjectAccessReview,
    core::v1::ServiceAccount,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    harness::{ClusterObjects, Operator, Setup, unique, wait, wait_for_reason},
    support::moto,
};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/cognito-mfa-operator");

/// The chart rendered for `release` in `namespace`, watching that namespace, with leader election.
fn render(release: &str, namespace: &str) -> Vec<Value> {
    let helm = std::env::var("HELM")
        .expect("HELM is not set: run the tests with hack/test.sh, which installs helm v3");
    let out = Command::new(helm)
        .args(["template", release, CHART, "--namespace", namespace])
        .args([
            "--set",
            &format!("watch.namespace={namespace}"),
            "--set",
            "leaderElection.enabled=true",
        ])
        .args([
            "--set",
            "crds.install=false",
            "--set",
            &format!("fullnameOverride={release}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Installs the rendered ServiceAccount, Roles and RoleBindings (the pods themselves need a
/// kubelet, which this test does not have: the operator runs in the test with their identity).
async fn install(admin: &Client, namespace: &str, objects: &[Value]) {
    let pp = PostParams::default();
    for o in objects {
        match o["kind"].as_str().unwrap() {
            "ServiceAccount" => {
                Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
                    .create(&pp, &serde_json::from_value(o.clone()).unwrap())
                    .await
                    .unwrap();
            }
            "Role" => {
                Api::<Role>::namespaced(admin.clone(), namespace)
                    .create(&pp, &serde_json::from_value(o.clone()).unwrap())
                    .await
                    .unwrap();
            }
            "RoleBinding" => {
                Api::<RoleBinding>::namespaced(admin.clone(), namespace)
                    .create(&pp, &serde_json::from_value(o.clone()).unwrap())
                    .await
                    .unwrap();
            }
            "Deployment" | "Service" => {}
            other => panic!("a namespaced install should render no {other}"),
        }
    }
}

/// A client that authenticates as the ServiceAccount, with a token from the TokenRequest API.
async fn client_as(admin: &Client, namespace: &str, account: &str) -> Client {
    let token = crate::harness::service_account_token(admin, namespace, account).await;
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info = serde_json::from_value(json!({"token": token})).unwrap();
    Client::try_from(config).unwrap()
}

/// Whether the client may do `verb` on `resource` (group/resource[/subresource]) in `namespace`.
async fn can(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: Option<&str>,
) -> bool {
    let (resource, subresource) = resource
        .split_once('/')
        .map_or((resource, None), |(r, s)| (r, Some(s)));
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({"spec": {"resourceAttributes": {
        "verb": verb, "group": group, "resource": resource, "subresource": subresource, "namespace": namespace, "name": name
    }}}))
    .unwrap();
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.unwrap().allowed
}

#[tokio::test(flavor = "multi_thread")]
async fn the_charts_rbac_is_sufficient_and_minimal() {
    let t = Setup::new().await;
    let ns = t.ns.name.clone();
    let release = unique("cmo");
    install(&t.client, &ns, &render(&release, &ns)).await;
    let operator_client = client_as(&t.client, &ns, &release).await;

    // Sufficient: the whole life of a policy that holds a finalizer, under leader election.
    let mut config = t.config(&moto::endpoint());
    config.namespace = Some(ns.clone());
    config.lease = Some(cognito_mfa_operator::controller::LeaseSettings {
        namespace: ns.clone(),
        name: release.clone(),
        identity: format!("{release}-0"),
        duration: std::time::Duration::from_secs(15),
    });
    let operator = Operator::start(&operator_client, config).await;
    let pool = moto::create_pool("eu-west-1").await;
    t.create(
        "rbac",
        json!({"userPoolId": pool, "mfaConfiguration": "OPTIONAL", "softwareTokenMfaConfiguration": {"enabled": true}, "deletionPolicy": "Reset"}),
    )
    .await;
    wait_for_reason(&t.api(), "rbac", "Applied").await;
    // Events are allowed.
    t.wait_for_event("rbac", "Applied").await;
    t.api().delete("rbac", &DeleteParams::default()).await.unwrap();
    wait(std::time::Duration::from_secs(60), "the policy to go", || async {
        t.api().get_opt("rbac").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(
        moto::mfa_config("eu-west-1", &pool)
            .await
            .mfa_configuration
            .map(|m| m.as_str().to_owned())
            .as_deref(),
        Some("OFF")
    );
    assert_eq!(
        operator.metric("cognito_mfa_reconciles_total{result=\"Error\"}"),
        0.0,
        "no call was refused"
    );
    operator.stop().await;

    // Minimal: everything else is refused.
    let c = &operator_client;
    let group = "cognitomfa.io";
    assert!(can(c, "patch", group, "cognitomfapolicies/status", &ns, None).await);
    for (verb, group, resource, namespace, name) in [
        ("delete", group, "cognitomfapolicies", ns.as_str(), None),
        ("create", group, "cognitomfapolicies", ns.as_str(), None),
        ("update", group, "cognitomfapolicies", ns.as_str(), None),
        ("list", group, "cognitomfapolicies", "default", None),
        ("get", "", "secrets", ns.as_str(), None),
        ("list", "", "configmaps", ns.as_str(), None),
        (
            "patch",
            "coordination.k8s.io",
            "leases",
            ns.as_str(),
            Some("someone-elses-lease"),
        ),
        (
            "delete",
            "coordination.k8s.io",
            "leases",
            ns.as_str(),
            Some(release.as_str()),
        ),
        ("delete", "events.k8s.io", "events", ns.as_str(), None),
        (
            "create",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            None,
        ),
    ] {
        assert!(
            !can(c, verb, group, resource, namespace, name).await,
            "the operator may {verb} {group}/{resource} in {namespace:?}"
        );
    }
}

/// A release that watches every namespace: its ClusterRole gives baselines what their
/// controller calls (list and watch them, patch their status, events for them in `default`,
/// every policy read) and nothing more: no baseline is created, changed or deleted by the
/// operator, and a policy's spec is never written.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_wide_rbac_covers_baselines_and_no_more() {
    let t = Setup::new().await;
    let ns = t.ns.name.clone();
    let release = unique("cmo");
    let helm = std::env::var("HELM").expect("HELM is not set: run the tests with hack/test.sh");
    let out = Command::new(helm)
        .args(["template", &release, CHART, "--namespace", &ns])
        .args([
            "--set",
            "crds.install=false",
            "--set",
            &format!("fullnameOverride={release}"),
        ])
        .args([
            "--show-only",
            "templates/rbac.yaml",
            "--show-only",
            "templates/serviceaccount.yaml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout).unwrap();
    assert!(rendered.contains("kind: ClusterRole\n"), "{rendered}");
    // The cluster-scoped objects go when the test does, failed or not.
    let _cleanup = ClusterObjects(vec![
        format!("clusterrolebinding/{release}"),
        format!("clusterrole/{release}"),
    ]);
    crate::harness::kubectl_ok(&["apply", "-n", &ns, "-f", "-"], Some(&rendered));
    let c = &client_as(&t.client, &ns, &release).await;
    let group = "cognitomfa.io";
    // Wait for the binding to take effect (the authorizer's cache follows the API).
    wait(
        std::time::Duration::from_secs(30),
        "the ClusterRoleBinding to apply",
        || async {
            can(c, "list", group, "cognitomfabaselines", "", None)
                .await
                .then_some(())
        },
    )
    .await;
    for (verb, resource, namespace) in [
        ("watch", "cognitomfabaselines", ""),
        ("patch", "cognitomfabaselines/status", ""),
        ("list", "cognitomfapolicies", "default"),
        ("watch", "cognitomfapolicies", "some-namespace"),
    ] {
        assert!(
            can(c, verb, group, resource, namespace, None).await,
            "{verb} {resource}"
        );
    }
    assert!(
        can(c, "create", "events.k8s.io", "events", "default", None).await,
        "events of baselines go to the default namespace"
    );
    for (verb, resource) in [
        ("create", "cognitomfabaselines"),
        ("update", "cognitomfabaselines"),
        ("patch", "cognitomfabaselines"),
        ("delete", "cognitomfabaselines"),
        ("update", "cognitomfabaselines/status"),
        ("create", "cognitomfapolicies"),
        ("delete", "cognitomfapolicies"),
    ] {
        assert!(
            !can(c, verb, group, resource, "", None).await,
            "the operator may {verb} {resource}"
        );
    }
    assert!(!can(c, "list", "", "secrets", "default", None).await);
}
