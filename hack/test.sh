#!/usr/bin/env bash
# Every check and test of the project, as CI runs them: formatting, lints, the CRD, unit tests,
# and integration tests against moto's server on loopback (started here, stopped on exit).
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d)
cleanup() { hack/pytools.sh moto-stop "$state"; rm -rf "$state"; }
trap cleanup EXIT

echo "--- cargo fmt --check" >&2
cargo fmt --check
echo "--- cargo clippy" >&2
cargo clippy --locked --all-targets -- -D warnings

echo "--- the CRD against Kubernetes' own schema (1.33 and the newest known)" >&2
for version in 1.33.0 1.37.0; do
  hack/pytools.sh run kubernetes-validate --strict --quiet -k "$version" crds/cognitomfapolicies.cognitomfa.io.yaml
done

echo "--- moto" >&2
MOTO_ENDPOINT=$(hack/pytools.sh moto-start "$state")
# Dummy credentials for the SDK clients the tests build (moto does not check them); no instance
# metadata lookups.
export MOTO_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

echo "--- tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast "$@"
  # nextest does not run doctests.
  cargo test --locked --doc
else
  cargo test --locked --no-fail-fast "$@"
fi
