#!/usr/bin/env bash
# Every check and test of the project, as CI runs them: formatting, lints, the CRD, unit tests,
# and integration tests against moto's server on loopback (started here, stopped on exit).
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d)
cleanup() { hack/moto.sh stop "$state"; rm -rf "$state"; }
trap cleanup EXIT

echo "--- cargo fmt --check" >&2
cargo fmt --check
echo "--- cargo clippy" >&2
cargo clippy --locked --all-targets -- -D warnings

echo "--- moto" >&2
MOTO_ENDPOINT=$(hack/moto.sh start "$state")
export MOTO_ENDPOINT

echo "--- tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast "$@"
  # nextest does not run doctests.
  cargo test --locked --doc
else
  cargo test --locked --no-fail-fast "$@"
fi
