#!/usr/bin/env bash
# Every check and test of the project, as CI runs them: formatting, lints, the CRD against
# Kubernetes' schema, unit tests, integration tests against moto's server, and end-to-end tests
# of the operator against a real Kubernetes API server and moto. Everything runs on loopback and
# is stopped on exit.
#
# The end-to-end tests use a local kube-apiserver built from Debian's Kubernetes source package
# (hack/local-apiserver.sh; the first build takes about five minutes and is cached). To run them
# against another cluster instead, set E2E_KUBECONFIG to its kubeconfig.
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d)
cleanup() {
  hack/pytools.sh moto-stop "$state/moto"
  if [ -z "${E2E_KUBECONFIG:-}" ]; then hack/local-apiserver.sh stop "$state/kube" >/dev/null 2>&1 || true; fi
  rm -rf "$state"
}
trap cleanup EXIT

echo "--- cargo fmt --check" >&2
cargo fmt --check
echo "--- cargo clippy" >&2
cargo clippy --locked --all-targets -- -D warnings

echo "--- the Argo CD health check, in Lua 5.1 against tests/argocd/" >&2
hack/argocd-health-test.sh

echo "--- the Dockerfile: hadolint and the project's rules" >&2
hack/dockerfile-lint.sh

echo "--- the release binary, built as the Dockerfile builds it" >&2
# The same build context as the image's (.dockerignore allows Cargo.toml, Cargo.lock and src/
# only) and the same command. The context lives under target/ so that a second run is incremental.
# Its target directory is the clone's, so that the benchmark below reuses the compiled
# dependencies.
context=target/docker-context
rm -rf "$context/src" && mkdir -p "$context" && cp -r Cargo.toml Cargo.lock src "$context/"
(cd "$context" && CARGO_TARGET_DIR=../../target cargo build --release --locked --quiet)
binary=target/release/cognito-mfa-operator
"$binary" --help >/dev/null
"$binary" crd | cmp - crds/cognitomfapolicies.cognitomfa.io.yaml
echo "release binary: $(du -h "$binary" | cut -f1) (stripped)" >&2

echo "--- the CRD against Kubernetes' own schema (1.33 and the newest known)" >&2
for version in 1.33.0 1.37.0; do
  hack/pytools.sh run kubernetes-validate --strict --quiet -k "$version" crds/cognitomfapolicies.cognitomfa.io.yaml
done

echo "--- the chart: helm lint, and what it renders against Kubernetes' schema (1.30, newest)" >&2
HELM=$(hack/helm.sh path)
export HELM
chart=charts/cognito-mfa-operator
for values in "$chart/values.yaml" "$chart/ci/maximal-values.yaml"; do
  "$HELM" lint --strict "$chart" -f "$values"
  "$HELM" template release "$chart" --namespace operators -f "$values" >"$state/rendered.yaml"
  for version in 1.30.0 1.37.0; do
    # --quiet keeps failures and warnings: the ServiceMonitor is not a Kubernetes kind.
    hack/pytools.sh run kubernetes-validate --strict --quiet -k "$version" "$state/rendered.yaml"
  done
done

echo "--- moto" >&2
MOTO_ENDPOINT=$(hack/pytools.sh moto-start "$state/moto")
# Dummy credentials for the SDK clients (moto does not check them); no instance metadata lookups.
export MOTO_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

echo "--- Kubernetes API server" >&2
if [ -n "${E2E_KUBECONFIG:-}" ]; then
  export KUBECONFIG="$E2E_KUBECONFIG"
else
  hack/local-apiserver.sh install
  KUBECONFIG=$(hack/local-apiserver.sh start "$state/kube" | tail -n 1)
  # Lets the restart test restart this server (and only this one).
  export KUBECONFIG CMO_APISERVER_STATE="$state/kube"
fi

echo "--- tests" >&2
# The API server restart test disturbs every other test that talks to the server: it runs alone,
# after the others.
restart='test(survives_an_api_server_restart)'
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast -E "not $restart" "$@"
  cargo nextest run --locked --no-fail-fast -E "$restart"
  # nextest does not run doctests.
  cargo test --locked --doc
else
  cargo test --locked --no-fail-fast "$@" -- --skip survives_an_api_server_restart
  cargo test --locked --test e2e -- --exact operations::survives_an_api_server_restart
fi

echo "--- benchmarks, reduced (hack/bench.sh runs them at full size; see BENCHMARKS.md)" >&2
CMO_MOTO_STATE="$state/moto" cargo bench --locked --bench fleet -- \
  --policies 200 --large 0 --latency-samples 20 --steady-interval 10
