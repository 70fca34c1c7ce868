//! The Helm chart, rendered by a real helm (v3, named by `HELM`; hack/test.sh installs it): the
//! CRD it ships, least-privilege RBAC, a locked-down Deployment, every flag of `run` reachable
//! from values, and values checked by the schema.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use clap::CommandFactory;
use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/cognito-mfa-operator");

fn helm() -> String {
    std::env::var("HELM").expect("HELM is not set: run the tests with hack/test.sh, which installs helm v3")
}

/// `helm template` with `args`: the rendered objects, or helm's error.
fn render(args: &[&str]) -> Result<Vec<Value>, String> {
    let out = Command::new(helm())
        .args(["template", "release", CHART, "--namespace", "ops"])
        .args(args)
        .output()
        .expect("helm runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("helm renders YAML");
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn maximal() -> Vec<Value> {
    render(&["-f", &format!("{CHART}/ci/maximal-values.yaml")]).unwrap()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn the_chart_ships_the_generated_crd() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/cognitomfapolicies.cognitomfa.io.yaml"
    ))
    .unwrap();
    let shipped =
        std::fs::read_to_string(format!("{CHART}/files/cognitomfapolicies.cognitomfa.io.yaml")).unwrap();
    assert!(
        shipped == committed,
        "the chart's CRD differs from crds/: cp crds/cognitomfapolicies.cognitomfa.io.yaml charts/cognito-mfa-operator/files/"
    );
    let objects = render(&[]).unwrap();
    let crds = of_kind(&objects, "CustomResourceDefinition");
    assert_eq!(crds.len(), 2);
    let baseline = serde_json::to_value(cognito_mfa_operator::api::baseline::crd()).unwrap();
    assert_eq!(
        crds[1]["spec"], baseline["spec"],
        "the rendered baseline CRD is the generated one"
    );
    let generated = serde_json::to_value(cognito_mfa_operator::api::crd()).unwrap();
    assert_eq!(
        crds[0]["spec"], generated["spec"],
        "the rendered CRD is the generated one"
    );
    assert_eq!(
        crds[0]["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(
        crds[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );

    let not_kept = render(&["--set", "crds.keep=false"]).unwrap();
    assert!(
        of_kind(&not_kept, "CustomResourceDefinition")[0]["metadata"]["annotations"]
            .get("helm.sh/resource-policy")
            .is_none()
    );
    assert!(
        of_kind(
            &render(&["--set", "crds.install=false"]).unwrap(),
            "CustomResourceDefinition"
        )
        .is_empty()
    );
}

/// What the operator calls, and so all its RBAC may grant: (API group, resource) -> verbs.
fn allowed() -> BTreeMap<(&'static str, &'static str), BTreeSet<&'static str>> {
    BTreeMap::from([
        (
            ("cognitomfa.io", "cognitomfapolicies"),
            BTreeSet::from(["list", "watch", "patch"]),
        ),
        (
            ("cognitomfa.io", "cognitomfapolicies/status"),
            BTreeSet::from(["patch"]),
        ),
        // Finalizer changes need it where OwnerReferencesPermissionEnforcement is on (OpenShift).
        (
            ("cognitomfa.io", "cognitomfapolicies/finalizers"),
            BTreeSet::from(["update"]),
        ),
        (("events.k8s.io", "events"), BTreeSet::from(["create"])),
        // Baselines (cluster-wide releases): their cache, and their status.
        (
            ("cognitomfa.io", "cognitomfabaselines"),
            BTreeSet::from(["list", "watch"]),
        ),
        (
            ("cognitomfa.io", "cognitomfabaselines/status"),
            BTreeSet::from(["patch"]),
        ),
        (
            ("coordination.k8s.io", "leases"),
            BTreeSet::from(["get", "create", "patch"]),
        ),
    ])
}

/// Every (group, resource) -> verbs the rendered roles grant; panics on a wildcard.
fn granted(objects: &[Value]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for role in objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
    {
        for rule in role["rules"].as_array().unwrap() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            for key in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !list(key).iter().any(|v| v.contains('*')),
                    "wildcard in {}: {rule}",
                    role["metadata"]["name"]
                );
            }
            assert!(rule.get("nonResourceURLs").is_none(), "non-resource URLs: {rule}");
            for group in list("apiGroups") {
                for resource in list("resources") {
                    out.entry((group.clone(), resource))
                        .or_default()
                        .extend(list("verbs"));
                }
            }
        }
    }
    out
}

#[rstest::rstest]
#[case::all_namespaces(&[], "ClusterRole", false, true)]
#[case::one_namespace(&["--set", "watch.namespace=identity"], "Role", false, false)]
#[case::some_policies(&["--set", "watch.labelSelector=shard=a"], "ClusterRole", false, false)]
#[case::leader_election(&["--set", "replicaCount=2"], "ClusterRole", true, true)]
#[case::maximal(&["-f", concat!(env!("CARGO_MANIFEST_DIR"), "/charts/cognito-mfa-operator/ci/maximal-values.yaml")], "Role", true, false)]
fn rbac_grants_exactly_what_the_operator_uses(
    #[case] args: &[&str],
    #[case] kind: &str,
    #[case] lease: bool,
    #[case] baselines: bool,
) {
    let objects = render(args).unwrap();
    let granted = granted(&objects);
    let allowed = allowed();
    for ((group, resource), verbs) in &granted {
        let may = allowed
            .get(&(group.as_str(), resource.as_str()))
            .unwrap_or_else(|| panic!("{group}/{resource} is granted but never used"));
        let extra: Vec<&String> = verbs.iter().filter(|v| !may.contains(v.as_str())).collect();
        assert!(
            extra.is_empty(),
            "{group}/{resource}: verbs {extra:?} are never used"
        );
    }
    for ((group, resource), verbs) in &allowed {
        if *resource == "leases" && !lease {
            assert!(
                !granted.contains_key(&(group.to_string(), resource.to_string())),
                "a Lease role without leader election"
            );
            continue;
        }
        // Baselines are off on a release that watches part of the policies (one namespace, or
        // a label selector).
        if resource.starts_with("cognitomfabaselines") && !baselines {
            assert!(
                !granted.contains_key(&(group.to_string(), resource.to_string())),
                "baselines granted on a release that sees only some policies"
            );
            continue;
        }
        let have = granted
            .get(&(group.to_string(), resource.to_string()))
            .cloned()
            .unwrap_or_default();
        let missing: Vec<&&str> = verbs.iter().filter(|v| !have.contains(**v)).collect();
        assert!(
            missing.is_empty(),
            "{group}/{resource}: {missing:?} needed but not granted"
        );
    }
    let main = objects
        .iter()
        .find(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !n.ends_with("-leader-election"))
                && (o["kind"] == "Role" || o["kind"] == "ClusterRole")
        })
        .unwrap();
    assert_eq!(main["kind"], kind);
    // The Lease rules are limited to the operator's own Lease where Kubernetes allows it.
    for role in of_kind(&objects, "Role").iter().filter(|r| {
        r["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-leader-election")
    }) {
        for rule in role["rules"].as_array().unwrap() {
            let verbs = rule["verbs"].as_array().unwrap();
            if verbs.iter().any(|v| v == "get" || v == "patch") {
                assert!(
                    rule["resourceNames"].as_array().is_some_and(|n| n.len() == 1),
                    "{rule}"
                );
            }
        }
    }
}

#[test]
fn the_deployment_is_locked_down() {
    for objects in [render(&[]).unwrap(), maximal()] {
        let deployment = of_kind(&objects, "Deployment")[0];
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        assert!(
            pod["securityContext"]["runAsUser"]
                .as_u64()
                .is_some_and(|u| u > 0)
        );
        let container = &pod["containers"][0];
        let sc = &container["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert!(container["resources"]["requests"]["memory"].is_string());
        assert!(container["resources"]["limits"]["memory"].is_string());
        assert_eq!(container["args"], serde_json::json!(["run"]));
    }
}

/// The environment variables the Deployment sets.
fn env_names(objects: &[Value]) -> BTreeSet<String> {
    of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_flag_of_run_is_reachable_from_values() {
    let cli = cognito_mfa_operator::cli::Cli::command();
    let run = cli.find_subcommand("run").expect("a run command");
    let flags: BTreeSet<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    assert!(flags.len() >= 15, "{flags:?}");
    let set = env_names(&maximal());
    let missing: Vec<&String> = flags.iter().filter(|f| !set.contains(*f)).collect();
    assert!(missing.is_empty(), "flags not reachable from values: {missing:?}");
    // And nothing the chart sets is a flag that does not exist.
    let unknown: Vec<&String> = set
        .iter()
        .filter(|e| e.starts_with("COGNITO_MFA_") && !flags.contains(*e))
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    // Leader election follows the replicas.
    let deployment_env = |objects: &[Value], name: &str| -> Option<String> {
        of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    };
    assert_eq!(
        deployment_env(&render(&[]).unwrap(), "COGNITO_MFA_LEADER_ELECTION").as_deref(),
        Some("false")
    );
    assert_eq!(
        deployment_env(
            &render(&["--set", "replicaCount=3"]).unwrap(),
            "COGNITO_MFA_LEADER_ELECTION"
        )
        .as_deref(),
        Some("true")
    );
}

#[test]
fn optional_parts_follow_values() {
    let default = render(&[]).unwrap();
    let max = maximal();
    for kind in [
        "ServiceMonitor",
        "PodDisruptionBudget",
        "PrometheusRule",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(of_kind(&default, kind).is_empty(), "{kind} off by default");
        assert_eq!(of_kind(&max, kind).len(), 1, "{kind} when enabled");
    }
    assert_eq!(of_kind(&default, "Service").len(), 1);
    let sa = of_kind(&max, "ServiceAccount")[0];
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/cognito-mfa-operator"
    );
    assert_eq!(sa["metadata"]["name"], "mfa-operator");
    for object in default.iter().chain(max.iter()) {
        let labels = &object["metadata"]["labels"];
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
        ] {
            assert!(
                labels[key].is_string(),
                "{key} missing on {} {}",
                object["kind"],
                object["metadata"]["name"]
            );
        }
    }
}

#[rstest::rstest]
#[case::wrong_type(&["--set", "replicaCount=two"], "replicaCount")]
#[case::unknown_key(&["--set", "replicas=2"], "additional properties 'replicas' not allowed")]
#[case::unknown_nested_key(&["--set", "aws.accessKey=x"], "additional properties 'accessKey' not allowed")]
#[case::bad_duration(&["--set", "resyncInterval=often"], "resyncInterval")]
#[case::bad_log_format(&["--set", "logFormat=xml"], "logFormat")]
#[case::budget_over_quota(&["--set", "aws.writeRps=20"], "writeRps")]
#[case::bad_role(&["--set", "aws.roleArn=my-role"], "roleArn")]
#[case::deny_and_warn(&["--set", "baselineAdmission.validationActions={Deny,Warn}"], "validationActions")]
fn the_values_schema_rejects_bad_values(#[case] args: &[&str], #[case] message: &str) {
    let err = render(args).expect_err("helm refuses the values");
    assert!(err.contains(message), "{err}");
}
