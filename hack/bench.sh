#!/usr/bin/env bash
# The fleet benchmarks (benches/fleet): the operator's release binary against a local Kubernetes
# API server and moto's server, both on loopback, started here and stopped on exit.
#
#   hack/bench.sh [--policies N] [--large N] [--write-rps R] [--latency-samples K] [--out FILE]
#
# Defaults: 1,000 policies, then 10,000 (--large 0 skips them), write budget 20/s (50/s for the
# large fleet), 100 latency samples. BENCHMARKS.md says what each figure means.
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d)
cleanup() {
  hack/pytools.sh moto-stop "$state/moto"
  hack/local-apiserver.sh stop "$state/kube" || true
  rm -rf "$state"
}
trap cleanup EXIT

MOTO_ENDPOINT=$(hack/pytools.sh moto-start "$state/moto")
hack/local-apiserver.sh install
KUBECONFIG=$(hack/local-apiserver.sh start "$state/kube" | tail -n 1)
KUBECTL="$(hack/local-apiserver.sh bin-dir)/kubectl"
[ -x "$KUBECTL" ] || KUBECTL=kubectl
# The states let the benchmark report the servers' CPU time next to the operator's.
export MOTO_ENDPOINT KUBECONFIG KUBECTL CMO_APISERVER_STATE="$state/kube" CMO_MOTO_STATE="$state/moto"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true

# The full run builds the harness (and its fault proxy) optimised, as the figures in
# BENCHMARKS.md assume; CI's reduced run builds it like the tests instead (hack/test.sh).
cargo bench --locked --bench fleet -- "$@"
