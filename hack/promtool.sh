#!/usr/bin/env bash
# promtool, Prometheus' rule checker and rule unit-test runner, for the chart's PrometheusRule.
# Built from its Go module (github.com/prometheus/prometheus, whose v0.3MM.P is Prometheus
# 3.MM.P) at the version hack/testbed/promtool/go.mod pins, with the version set at link time
# as Prometheus' release build does. The build tag remove_all_sd leaves out the service
# discovery plugins (AWS, Azure, GCE, ...: only `promtool check config` of a configuration that
# uses them needs them, rules never do) and their SDKs; the rest is the released promtool.
#
#   hack/promtool.sh path     build it into the cache (idempotent) and print its path
#   hack/promtool.sh check    render the chart's PrometheusRule (hack/helm.sh), then run
#                             `promtool check rules` on its groups and `promtool test rules`
#                             with tests/promrule/alerts_test.yaml
#   hack/promtool.sh ARGS...  run it
#
# The first build takes about 2 minutes on 2 cores (measured with `time`, Go 1.26.8, an empty
# module cache and Go build cache: 1 min 54 s wall, 165 s user; 1 min 14 s with the modules
# already downloaded); later runs use the cached binary.
#
# The cache lives outside the clone: ${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator},
# keyed by the module's go.mod and go.sum and the Go toolchain.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
module="$here/testbed/promtool"
cache="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
module_version=$(awk '$1 == "github.com/prometheus/prometheus" { print $2 }' "$module/go.mod")
# v0.316.0 -> 3.16.0
minor=${module_version#v0.}
patch=${minor#*.}
minor=${minor%%.*}
version="$((10#$minor / 100)).$((10#$minor % 100)).$patch"
key=$({ cat "$module/go.mod" "$module/go.sum"; go env GOVERSION; } | sha256sum | cut -c1-12)
dir="$cache/promtool/$version-$key"
promtool="$dir/promtool"

install() {
  if [ -x "$promtool" ]; then return; fi
  echo "building promtool $version ($module_version) from its Go module into $dir" >&2
  local tmp="$dir.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  (cd "$module" && env GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    go build -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" \
    -o "$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool)
  "$tmp/promtool" --version 2>&1 | grep -q "^promtool, version $version " ||
    { echo "unexpected promtool version: $("$tmp/promtool" --version 2>&1 | head -n 1)" >&2; return 1; }
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

# The rule groups of the chart's PrometheusRule (its .spec), as a Prometheus rule file, on stdout.
# PyYAML: the system's python3 when it has it, else the one of hack/pytools.sh's virtualenv
# (kubernetes-validate depends on it).
rule_file() {
  local helm python=(python3)
  helm=$("$here/helm.sh" path | tail -n 1)
  python3 -c 'import yaml' 2>/dev/null || python=("$here/pytools.sh" run python)
  "$helm" template release "$root/charts/cognito-mfa-operator" --set prometheusRule.enabled=true \
    --show-only templates/prometheusrule.yaml |
    "${python[@]}" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
if len(docs) != 1 or docs[0].get("kind") != "PrometheusRule":
    sys.exit("expected one PrometheusRule, got: %s" % [d.get("kind") for d in docs])
yaml.safe_dump(docs[0]["spec"], sys.stdout, sort_keys=False, width=1000)
'
}

check() {
  install
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  rule_file >"$work/rules.yaml"
  # The test file names its rule file relative to itself: rules.yaml, next to it.
  cp "$root/tests/promrule/alerts_test.yaml" "$work/"
  echo "promtool $version: check rules" >&2
  "$promtool" check rules --lint=all --lint-fatal "$work/rules.yaml"
  echo "promtool $version: test rules (tests/promrule/alerts_test.yaml)" >&2
  "$promtool" test rules "$work/alerts_test.yaml"
}

case "${1:-}" in
  path) install; echo "$promtool" ;;
  check) check ;;
  *) install; exec "$promtool" "$@" ;;
esac
