#!/usr/bin/env bash
# Every check and test of the project, as CI runs them: formatting, lints, the Go checks (the
# Argo CD health check in Argo CD's Lua runtime), the CRD and the chart against Kubernetes'
# schema, the chart's alerts with promtool, unit tests, integration tests against moto's server,
# and end-to-end tests of the operator against a real Kubernetes API server and moto, on the
# newest Kubernetes and again (admission, chart, lifecycle) on the oldest supported one.
# Everything runs on loopback and is stopped on exit. The last line sums it up: each stage with
# its time, the tests passed and failed, and the stage that failed if one did; the exit code
# agrees with it (0 only when everything passed).
#
# The API servers are built from Kubernetes' own Go modules (hack/local-apiserver.sh; the first
# build takes 6 to 15 minutes per version on 2 cores and is cached). Instead:
#   KUBEBUILDER_ASSETS=DIR   use the kube-apiserver and etcd (envtest layout) in DIR
#   E2E_KUBECONFIG=FILE      run the end-to-end tests against that cluster (nothing is started;
#                            the API server restart test and the second version are skipped)
#   CMO_KUBE_VERSIONS="1.37" only the newest version (default "1.37 1.33")
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d)
t0=$SECONDS
# Stages: each "name seconds", in order; the one running now.
done_stages=() stage= stage_start=$SECONDS
end_stage() {
  [ -n "$stage" ] && done_stages+=("$stage $((SECONDS - stage_start)) s")
  stage=
}
# phase NAME DESCRIPTION: a new stage (NAME is how the summary calls it).
phase() {
  end_stage
  stage=$1 stage_start=$SECONDS
  echo "--- [$((SECONDS - t0)) s] $2" >&2
}
# Runs a test command, keeping what it prints for the summary's counts.
tests() { "$@" 2>&1 | tee -a "$state/tests.log"; }
# The tests passed and failed: cargo test's "test result:" lines, nextest's "Summary" lines.
count() {
  local what=$1
  { grep -h -e '^test result: ' -e '^ *Summary \[' "$state/tests.log" 2>/dev/null || true; } |
    { grep -o "[0-9]* $what" || true; } | awk '{ n += $1 } END { print n + 0 }'
}
summary() {
  local status=$1 failed_stage=$stage result
  local passed failed
  passed=$(count passed) failed=$(count failed)
  end_stage
  local IFS=,
  local list="${done_stages[*]}"
  list=${list//,/, }
  if [ "$status" -eq 0 ]; then
    result="passed: ${#done_stages[@]} stages"
  else
    result="FAILED (exit code $status) in stage ${failed_stage:-setup}: $((${#done_stages[@]} - 1)) stages passed before it"
  fi
  echo "hack/test.sh $result; tests: $passed passed, $failed failed; $((SECONDS - t0)) s in all ($list)" >&2
}
cleanup() {
  local status=$?
  hack/pytools.sh moto-stop "$state/moto"
  for kube in "$state"/kube-*; do
    [ -d "$kube" ] && hack/local-apiserver.sh stop "$kube"
  done
  # The counts come from a file in $state: summed before it goes.
  summary "$status"
  rm -rf "$state"
  exit "$status"
}
trap cleanup EXIT

phase fmt "cargo fmt --check"
cargo fmt --check
phase clippy "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

phase go "Go: gofmt, go vet, and the Argo CD health check in gopher-lua against tests/argocd/"
# The flags of the test bed's builds (hack/local-apiserver.sh): packages that the gitops-engine
# comparison shares with Kubernetes are compiled once, into Go's build cache.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false -trimpath" CGO_ENABLED=0
unformatted=$(gofmt -l hack/testbed tests/argocd tests/gitops)
[ -z "$unformatted" ] || { echo "gofmt: not formatted: $unformatted" >&2; exit 1; }
(cd tests/argocd && go vet ./... && go test -count=1 ./...)
# The gitops-engine comparison runs inside the end-to-end tests (tests/e2e/gitops.rs), against
# the live objects; here its offline tests run, and its test binary is built for those.
(cd tests/gitops && go vet ./... && go test -count=1 ./... && go test -c -o "$state/gitops.test" .)
export CMO_GITOPS_TEST="$state/gitops.test"

phase dockerfile "the Dockerfile: hadolint and the project's rules"
hack/dockerfile-lint.sh

phase release-binary "the release binary, built as the Dockerfile builds it"
# The same build context as the image's (.dockerignore allows Cargo.toml, Cargo.lock and src/
# only) and the same command. The context lives under target/ so that a second run is
# incremental. The benchmark below runs this very binary.
context=target/docker-context
rm -rf "$context/src" && mkdir -p "$context" && cp -r Cargo.toml Cargo.lock src "$context/"
(cd "$context" && CARGO_TARGET_DIR=../../target cargo build --release --locked)
binary=target/release/cognito-mfa-operator
"$binary" --help >/dev/null
"$binary" crd --kind policy | cmp - crds/cognitomfapolicies.cognitomfa.io.yaml
"$binary" crd --kind baseline | cmp - crds/cognitomfabaselines.cognitomfa.io.yaml
echo "release binary: $(du -h "$binary" | cut -f1) (stripped)" >&2

phase crd-schema "the CRD against Kubernetes' own schema (1.33 and the newest known)"
for version in 1.33.0 1.37.0; do
  hack/pytools.sh run kubernetes-validate --strict --quiet -k "$version" crds/cognitomfapolicies.cognitomfa.io.yaml crds/cognitomfabaselines.cognitomfa.io.yaml
done

phase chart-lint "the chart: helm lint, and what it renders against Kubernetes' schema (1.33, newest)"
HELM=$(hack/helm.sh path)
export HELM
chart=charts/cognito-mfa-operator
for values in "$chart/values.yaml" "$chart/ci/maximal-values.yaml"; do
  "$HELM" lint --strict "$chart" -f "$values"
  "$HELM" template release "$chart" --namespace operators -f "$values" >"$state/rendered.yaml"
  for version in 1.33.0 1.37.0; do
    # --quiet keeps failures and warnings: the ServiceMonitor and the PrometheusRule are not
    # Kubernetes kinds.
    hack/pytools.sh run kubernetes-validate --strict --quiet -k "$version" "$state/rendered.yaml"
  done
done

phase prometheus-rule "the chart's PrometheusRule: promtool check rules and test rules (tests/promrule/)"
# promtool is built from Prometheus' Go module (hack/promtool.sh; about 2 minutes the first time).
hack/promtool.sh check

phase test-build "the test binaries"
cargo test --locked --no-run

phase moto "moto"
MOTO_ENDPOINT=$(hack/pytools.sh moto-start "$state/moto")
# Dummy credentials for the SDK clients (moto does not check them); no instance metadata lookups.
export MOTO_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

# Runs every test of cargo but the two that run alone (below): with nextest where it is
# installed, else with cargo test.
run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    tests cargo nextest run --locked --no-fail-fast \
      -E "not test(survives_an_api_server_restart) & not test(=$HELM_INSTALL)"
    # nextest does not run doctests.
    tests cargo test --locked --doc
  else
    tests cargo test --locked --no-fail-fast -- --skip survives_an_api_server_restart --skip "$HELM_INSTALL"
  fi
}

# The helm install test installs the CRD with the chart, on a cluster that has none yet: it runs
# first, alone. The API server restart test disturbs every other test that talks to the server:
# it runs alone, last.
readonly HELM_INSTALL=helm::the_chart_installs_upgrades_and_uninstalls_with_helm

# Starts the local API server of Kubernetes $1 in $state/kube-$1; sets KUBECONFIG, KUBECTL and
# CMO_APISERVER_STATE.
start_kube() {
  CMO_KUBE_VERSION=$1 hack/local-apiserver.sh install
  KUBECONFIG=$(CMO_KUBE_VERSION=$1 hack/local-apiserver.sh start "$state/kube-$1" | tail -n 1)
  KUBECTL="$(CMO_KUBE_VERSION=$1 hack/local-apiserver.sh bin-dir)/kubectl"
  [ -x "$KUBECTL" ] || KUBECTL=kubectl
  # Lets the restart test restart this server (and only this one).
  export KUBECONFIG KUBECTL CMO_APISERVER_STATE="$state/kube-$1"
  echo "Kubernetes $("$KUBECTL" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')" >&2
}

# A control plane whose kube-apiserver refuses to start (envtest layout: the real etcd, a
# kube-apiserver that exits at once): start must fail, name the kept log, which must hold the
# server's last words, and leave the etcd it started stopped.
check_failed_start() {
  local assets="$state/failing-assets" out="$state/failing.err" kept pid
  mkdir -p "$assets"
  ln -sf "$(CMO_KUBE_VERSION=$1 hack/local-apiserver.sh bin-dir etcd)/etcd" "$assets/etcd"
  printf '#!/bin/sh\necho "kube-apiserver: refusing to start, on purpose" >&2\nexit 1\n' >"$assets/kube-apiserver"
  chmod +x "$assets/kube-apiserver"
  if KUBEBUILDER_ASSETS="$assets" hack/local-apiserver.sh start "$state/failing" >/dev/null 2>"$out"; then
    echo "start succeeded with a kube-apiserver that exits" >&2
    return 1
  fi
  grep -q "kube-apiserver exited during start-up" "$out" || { cat "$out" >&2; return 1; }
  kept=$(sed -n 's/.*all of it is kept in \(.*\)):$/\1/p' "$out" | head -n 1)
  grep -q "refusing to start, on purpose" "$kept" || { echo "the kept log $kept lacks the server's output" >&2; return 1; }
  pid=$(sed -n 's/.*stopping etcd (pid \([0-9]*\)).*/\1/p' "$out")
  # Gone, or a zombie (exited, not yet reaped by whoever inherited it).
  run_state=$(awk '{ print $3 }' "/proc/${pid:-0}/stat" 2>/dev/null || echo gone)
  if [ -z "$pid" ] || { [ "$run_state" != gone ] && [ "$run_state" != Z ]; }; then
    cat "$out" >&2
    echo "etcd (pid ${pid:-unknown}) was not stopped after a failed start" >&2
    return 1
  fi
  rm -f "$kept"
  echo "failed start: reported, log kept, etcd (pid $pid) stopped" >&2
}

read -r -a versions <<<"${CMO_KUBE_VERSIONS:-1.37 1.33}"
if [ -n "${E2E_KUBECONFIG:-}" ]; then
  versions=("${versions[0]}")
fi
for version in "${versions[@]}"; do
  if [ -n "${E2E_KUBECONFIG:-}" ]; then
    phase e2e-cluster "tests, against the cluster of E2E_KUBECONFIG"
    export KUBECONFIG="$E2E_KUBECONFIG" KUBECTL="${KUBECTL:-kubectl}"
  else
    phase "kube-$version" "Kubernetes $version: the local API server"
    start_kube "$version"
  fi
  if [ "$version" = "${versions[0]}" ]; then
    phase "tests-$version" "tests (Kubernetes $version): the helm install first, then every test, the API server restart last"
    tests cargo test --locked --test e2e -- --exact "$HELM_INSTALL"
    run_tests
    tests cargo test --locked --test e2e -- --exact operations::survives_an_api_server_restart
    if [ -z "${E2E_KUBECONFIG:-}" ]; then
      phase "cycles-$version" "start-up under load: 3 start/stop cycles with both cores busy (30: hack/local-apiserver.sh cycle 30)"
      CMO_KUBE_VERSION=$version hack/local-apiserver.sh cycle 3
      phase "failed-start-$version" "a failed start: the message says where the log is kept, and nothing is left running"
      check_failed_start "$version"
    fi
    phase bench "benchmarks, reduced (hack/bench.sh runs them at full size; see BENCHMARKS.md)"
    # The harness is built with the tests' dependencies (no third compile of the tree); it
    # measures the release binary built above.
    CMO_OPERATOR_BIN="$PWD/$binary" CMO_MOTO_STATE="$state/moto" cargo test --locked --bench fleet -- \
      --policies 200 --large 0 --latency-samples 20 --steady-interval 10 --scan-pools 120 --scan-interval 10
  else
    phase "tests-$version" "tests (Kubernetes $version): admission, the chart, the baseline floor at admission, the lifecycle"
    tests cargo test --locked --test e2e -- --exact "$HELM_INSTALL"
    tests cargo test --locked --no-fail-fast --test e2e -- admission:: chart:: floor:: helm:: lifecycle:: gitops:: --skip "$HELM_INSTALL"
  fi
  if [ -z "${E2E_KUBECONFIG:-}" ]; then
    hack/local-apiserver.sh stop "$state/kube-$version" >/dev/null
  fi
done
