//! Argo CD's view of the examples: applied as Argo CD applies them (client-side apply, and
//! server-side apply as with the ServerSideApply=true sync option), reconciled by the operator,
//! then compared with the live objects by gitops-engine, the library Argo CD diffs with
//! (tests/gitops). Every example must be in sync: no perpetual OutOfSync from the values the
//! CRD defaults on the server, or from the status and finalizer the operator writes.

use std::{process::Command, time::Duration};

use crate::{
    harness::{Setup, examples_in, kubectl_ok, wait},
    support::moto,
};

const GITOPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gitops");

/// The gitops-engine comparison: the prebuilt test binary (`CMO_GITOPS_TEST`, which
/// hack/test.sh builds), else `go test` in tests/gitops.
fn compare(namespace: &str, apply: &str) -> (bool, String) {
    let mut cmd = match std::env::var("CMO_GITOPS_TEST") {
        Ok(binary) => {
            let mut c = Command::new(binary);
            c.current_dir(GITOPS)
                .args(["-test.run", "TestExamplesAreInSync", "-test.v", "-test.count=1"]);
            c
        }
        Err(_) => {
            let mut c = Command::new("go");
            c.current_dir(GITOPS)
                .args(["test", "-count=1", "-v", "-run", "TestExamplesAreInSync", "."])
                .env("GOTOOLCHAIN", "local")
                .env("GOFLAGS", "-mod=readonly");
            c
        }
    };
    let out = cmd
        .env("CMO_GITOPS_NAMESPACE", namespace)
        .env("CMO_GITOPS_APPLY", apply)
        .env("KUBECONFIG", std::env::var("KUBECONFIG").unwrap_or_default())
        .output()
        .expect("the gitops-engine comparison runs (go, or CMO_GITOPS_TEST)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn argo_cd_reports_every_example_in_sync() {
    let t = Setup::new().await;
    let second = crate::harness::TestNamespace::new(&t.client).await;
    let modes = [
        (
            "client-side",
            t.ns.name.clone(),
            vec!["apply", "--field-manager=argocd-controller", "-f", "-"],
        ),
        (
            "server-side",
            second.name.clone(),
            vec![
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=argocd-controller",
                "-f",
                "-",
            ],
        ),
    ];
    let mut operators = Vec::new();
    for (_, namespace, args) in &modes {
        for manifest in examples_in(namespace) {
            kubectl_ok(args, Some(&manifest));
        }
        let mut config = t.config(&moto::endpoint());
        config.namespace = Some(namespace.clone());
        config.unlabelled = true;
        operators.push(t.operator(config).await);
    }
    // The operator has reported on every example (their pools do not exist here: the status
    // says so, which is as much status as any).
    for (_, namespace, _) in &modes {
        let api: kube::Api<cognito_mfa_operator::api::CognitoMfaPolicy> =
            kube::Api::namespaced(t.client.clone(), namespace);
        wait(Duration::from_secs(60), "a status on every example", || async {
            let list = api.list(&Default::default()).await.ok()?;
            let all = !list.items.is_empty()
                && list.items.iter().all(|p| {
                    p.status
                        .as_ref()
                        .is_some_and(|s| s.observed_generation == p.metadata.generation)
                });
            all.then_some(())
        })
        .await;
    }
    for (mode, namespace, _) in &modes {
        let namespace = namespace.clone();
        let mode = mode.to_string();
        let (ok, output) = tokio::task::spawn_blocking(move || compare(&namespace, &mode))
            .await
            .unwrap();
        assert!(ok, "{output}");
        assert!(output.contains("--- PASS: TestExamplesAreInSync"), "{output}");
    }
    for operator in operators {
        operator.stop().await;
    }
}
