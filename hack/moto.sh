#!/usr/bin/env bash
# moto's server: a Cognito-compatible AWS emulator from PyPI, on loopback, for tests and demos.
#
#   hack/moto.sh install         install moto into a virtualenv in the cache (idempotent)
#   hack/moto.sh start STATE_DIR start it on a free loopback port; prints its URL
#   hack/moto.sh stop STATE_DIR  stop it
#   hack/moto.sh python ARGS...  run the virtualenv's python (it has boto3, for setting up pools)
#
# The cache lives outside the clone: ${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}.
set -euo pipefail

MOTO_VERSION=5.2.5
cache="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
venv="$cache/moto-$MOTO_VERSION"

install() {
  # The marker is written last: an interrupted install is redone from scratch.
  if [ -f "$venv/.installed" ]; then return; fi
  echo "installing moto[server]==$MOTO_VERSION into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  touch "$venv/.installed"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir=$1 port url
  install
  mkdir -p "$dir"
  port=$(free_port)
  url="http://127.0.0.1:$port"
  # The request recorder lets tests count the calls moto received (e.g. zero writes).
  MOTO_ENABLE_RECORDING=True "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$url/moto-api/" 2>/dev/null; then
      curl -fsS -X POST -o /dev/null "$url/moto-api/recorder/start-recording"
      echo "$url" >"$dir/moto.url"
      echo "$url"
      return
    fi
    sleep 0.1
  done
  echo "moto did not start; its log:" >&2
  tail -n 20 "$dir/moto.log" >&2
  stop "$dir"
  return 1
}

stop() {
  local dir=$1
  if [ -f "$dir/moto.pid" ]; then
    kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
    rm -f "$dir/moto.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?usage: $0 start STATE_DIR}" ;;
  stop) stop "${2:?usage: $0 stop STATE_DIR}" ;;
  python) install; shift; exec "$venv/bin/python" "$@" ;;
  *) echo "usage: $0 install | start STATE_DIR | stop STATE_DIR | python ARGS..." >&2; exit 2 ;;
esac
