#!/usr/bin/env bash
# helm for the chart's checks, built from its own Go module (helm.sh/helm/v3, the major release
# the chart's `apiVersion: v2` and its tests target), at the version hack/testbed/helm/go.mod
# pins, with the version set at link time as helm's own release build does.
#
#   hack/helm.sh path       build it into the cache (idempotent) and print its path
#   hack/helm.sh ARGS...    run it
#
# The cache lives outside the clone: ${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator},
# keyed by the module's go.mod and go.sum and the Go toolchain.
set -euo pipefail

module="$(cd "$(dirname "$0")" && pwd)/testbed/helm"
cache="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
version=$(awk '$1 == "helm.sh/helm/v3" { print $2 }' "$module/go.mod")
key=$({ cat "$module/go.mod" "$module/go.sum"; go env GOVERSION; } | sha256sum | cut -c1-12)
dir="$cache/helm/$version-$key"
helm="$dir/helm"

install() {
  if [ -x "$helm" ]; then return; fi
  echo "building helm $version from its Go module into $dir" >&2
  local tmp="$dir.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  (cd "$module" && env GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
    -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
  "$tmp/helm" version --short | grep -q "^$version" || { echo "unexpected helm version: $("$tmp/helm" version --short)" >&2; return 1; }
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

case "${1:-}" in
  path) install; echo "$helm" ;;
  *) install; exec "$helm" "$@" ;;
esac
