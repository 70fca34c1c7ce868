#!/usr/bin/env bash
# Python tools from PyPI that the tests and the demo use (pinned in hack/requirements.txt):
# moto's server, a Cognito-compatible AWS emulator, and kubernetes-validate.
#
#   hack/pytools.sh install              install them into a virtualenv in the cache (idempotent)
#   hack/pytools.sh moto-start STATE_DIR start moto on a free loopback port; prints its URL
#   hack/pytools.sh moto-stop STATE_DIR  stop it
#   hack/pytools.sh run TOOL ARGS...     run a tool of the virtualenv (python, kubernetes-validate)
#
# The cache lives outside the clone: ${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
venv="$cache/py-$(sha256sum "$here/requirements.txt" | cut -c1-12)"

install() {
  # The marker is written last: an interrupted install is redone from scratch.
  if [ -f "$venv/.installed" ]; then return; fi
  echo "installing $(grep -v '^#' "$here/requirements.txt" | xargs) into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  touch "$venv/.installed"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

moto_start() {
  local dir=$1 port url
  install
  mkdir -p "$dir"
  port=$(free_port)
  url="http://127.0.0.1:$port"
  # The request recorder lets tests count the calls moto received (e.g. zero writes).
  # hack/moto-server.py is moto's server with user pool creation made fast (see there).
  MOTO_ENABLE_RECORDING=True MOTO_RECORDER_FILEPATH="$dir/moto_recording" \
    "$venv/bin/python" "$here/moto-server.py" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$url/moto-api/" 2>/dev/null; then
      curl -fsS -X POST -o /dev/null "$url/moto-api/recorder/start-recording"
      echo "$url"
      return
    fi
    sleep 0.1
  done
  echo "moto did not start; its log:" >&2
  tail -n 20 "$dir/moto.log" >&2
  moto_stop "$dir"
  return 1
}

moto_stop() {
  local dir=$1
  if [ -f "$dir/moto.pid" ]; then
    kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
    rm -f "$dir/moto.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  moto-start) moto_start "${2:?usage: $0 moto-start STATE_DIR}" ;;
  moto-stop) moto_stop "${2:?usage: $0 moto-stop STATE_DIR}" ;;
  run) install; shift; tool=${1:?usage: $0 run TOOL ARGS...}; shift; exec "$venv/bin/$tool" "$@" ;;
  *) echo "usage: $0 install | moto-start STATE_DIR | moto-stop STATE_DIR | run TOOL ARGS..." >&2; exit 2 ;;
esac
