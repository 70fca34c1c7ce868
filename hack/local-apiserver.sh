#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the end-to-end tests, the demo and the
# benchmark: etcd, kube-apiserver and a trimmed kube-controller-manager, plus a kubectl of the
# server's version.
#
# `install` builds them from their own Go modules, from the Go module proxy: Kubernetes from
# k8s.io/kubernetes (hack/testbed/kube-1.XX/go.mod pins the version and replaces each staging
# module by its published v0.XX.Y), etcd from go.etcd.io/etcd/server/v3 (hack/testbed/etcd).
# The version is set at link time, so /version reports it. Binaries are cached outside the clone,
# keyed by the module files, so a second `install` is a no-op.
#
# When KUBEBUILDER_ASSETS names a folder with kube-apiserver and etcd (the envtest convention),
# those binaries are used and nothing is built. kube-controller-manager and kubectl are taken
# from there too when present; without a controller manager, deleted namespaces stay
# Terminating, which no test depends on.
#
# Usage:
#   hack/local-apiserver.sh install
#   hack/local-apiserver.sh start STATE_DIR      # prints STATE_DIR/kubeconfig last
#   hack/local-apiserver.sh restart-apiserver STATE_DIR [DOWN_SECONDS]
#   hack/local-apiserver.sh stop STATE_DIR
#   hack/local-apiserver.sh bin-dir [etcd]       # where the binaries are (install first)
#   hack/local-apiserver.sh cycle N              # N start/stop cycles with both cores busy
#
# Environment:
#   CMO_KUBE_VERSION      the Kubernetes minor to build and run: 1.37 (default, the newest that
#                         builds) or 1.33 (the oldest the project supports)
#   KUBEBUILDER_ASSETS    use the binaries of this folder; build nothing
#   CMO_CACHE_DIR         cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator)
#   CMO_START_TIMEOUT     seconds to wait for each server to become ready (default 120)
#
# Every listener is bound to 127.0.0.1; the credentials it makes are for tests only. The log of
# a server that dies (during start-up or later) is copied to $CACHE/logs/, so it outlives the
# state folder; the message says where.

set -euo pipefail

readonly PROG="${0##*/}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
CACHE_ROOT="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
# Absolute, because the build changes directories.
[[ "$CACHE_ROOT" == /* ]] || CACHE_ROOT="$PWD/$CACHE_ROOT"
readonly CACHE_ROOT
readonly LOG_KEEP="$CACHE_ROOT/logs"
readonly KUBE_VERSION="${CMO_KUBE_VERSION:-1.37}"
readonly START_TIMEOUT="${CMO_START_TIMEOUT:-120}"

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $PROG install
       $PROG start STATE_DIR
       $PROG restart-apiserver STATE_DIR [DOWN_SECONDS]
       $PROG stop STATE_DIR
       $PROG bin-dir [etcd]
       $PROG cycle N

install            build kube-apiserver, kubectl and (1.37) kube-controller-manager of
                   Kubernetes \$CMO_KUBE_VERSION (now $KUBE_VERSION), and etcd, from their Go
                   modules; cached under $CACHE_ROOT
start              start etcd, kube-apiserver and kube-controller-manager on free
                   127.0.0.1 ports, state and logs in STATE_DIR; prints the admin
                   kubeconfig path as the last line of stdout
restart-apiserver  stop and start only kube-apiserver, same flags and port (after
                   DOWN_SECONDS, default 0)
stop               stop whatever start started in STATE_DIR (idempotent)
bin-dir            print the folder holding the Kubernetes binaries (etcd: etcd's)
cycle N            start and stop N times while two busy loops keep both cores loaded;
                   fails at the first start that fails or process left behind
EOF
}

need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is required but not on PATH"
  done
}

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

readonly KUBE_MODULE="$HERE/testbed/kube-$KUBE_VERSION"
readonly ETCD_MODULE="$HERE/testbed/etcd"

# The version a module directory requires of MODULE_PATH (from its go.mod).
module_version() {
  awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == m) ? $2 : $3 } END { print v }' "$1/go.mod"
}

# A short key of a module's go.mod and go.sum, and of the Go toolchain: a change of either builds anew.
module_key() {
  { cat "$1/go.mod" "$1/go.sum"; go env GOVERSION; } | sha256sum | cut -c1-12
}

# Where the binaries are: KUBEBUILDER_ASSETS, or the cache folders of the pinned versions.
kube_bin_dir() {
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    echo "$KUBEBUILDER_ASSETS"
    return
  fi
  [[ -f "$KUBE_MODULE/go.mod" ]] || die "no module for Kubernetes $KUBE_VERSION ($KUBE_MODULE); CMO_KUBE_VERSION is 1.37 or 1.33"
  need go
  echo "$CACHE_ROOT/kube/$(module_version "$KUBE_MODULE" k8s.io/kubernetes)-$(module_key "$KUBE_MODULE")"
}

etcd_bin_dir() {
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    echo "$KUBEBUILDER_ASSETS"
    return
  fi
  echo "$CACHE_ROOT/etcd/$(module_version "$ETCD_MODULE" go.etcd.io/etcd/server/v3)-$(module_key "$ETCD_MODULE")"
}

# The Go environment of every build: the machine's Go (no toolchain download), the committed
# go.mod and go.sum as they are, no cgo (static binaries), no VCS stamping.
go_build() {
  env GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    go build -trimpath "$@"
}

# Builds into a temporary folder and renames it into place: a folder that exists is complete.
build_kube() {
  local out=$1 version minor ld="" pkg tmp
  version="$(module_version "$KUBE_MODULE" k8s.io/kubernetes)"
  minor="${version#v1.}"
  minor="${minor%%.*}"
  # The names Kubernetes' own hack/lib/version.sh sets; a module build has no vendor prefix.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitVersion=$version"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  tmp="$out.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # What to build is the module's `tool` list: for 1.37 kube-apiserver, kube-controller-manager
  # and kubectl; for 1.33, whose suites need no namespace deletion, no controller manager (a
  # few minutes less of a cold build).
  log "building $(awk '/^tool \(/ { on = 1; next } on && /^\)/ { on = 0 } on { sub(".*/", ""); printf "%s ", $1 }' "$KUBE_MODULE/go.mod")$version (cold: about 15 minutes on 2 cores)"
  (cd "$KUBE_MODULE" && go_build -ldflags "-s -w$ld" -o "$tmp/" tool)
  "$tmp/kube-apiserver" --version | grep -qx "Kubernetes $version" || die "kube-apiserver does not say it is $version"
  mv "$tmp" "$out"
}

build_etcd() {
  local out=$1 tmp="$1.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building etcd $(module_version "$ETCD_MODULE" go.etcd.io/etcd/server/v3)"
  (cd "$ETCD_MODULE" && go_build -ldflags "-s -w" -o "$tmp/etcd" .)
  mv "$tmp" "$out"
}

cmd_install() {
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    local b
    for b in kube-apiserver etcd; do
      [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no $b"
    done
    log "using the binaries of KUBEBUILDER_ASSETS ($KUBEBUILDER_ASSETS); nothing to build"
    return
  fi
  need go flock sha256sum
  local kube etcd
  kube="$(kube_bin_dir)"
  etcd="$(etcd_bin_dir)"
  [[ -d "$kube" && -d "$etcd" ]] && return
  mkdir -p "$CACHE_ROOT"
  # Two test processes may call install at once: let one build, the other wait.
  exec 9>"$CACHE_ROOT/kube-install.lock"
  flock 9
  local t0=$SECONDS
  [[ -d "$etcd" ]] || build_etcd "$etcd"
  [[ -d "$kube" ]] || build_kube "$kube"
  log "installed in $((SECONDS - t0)) s: $kube, $etcd"
  exec 9>&-
}

# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------

# A process is named by its PID and its start time (field 22 of /proc/PID/stat, in clock ticks
# since boot): the pair never names another process, even once the PID is reused, and it holds
# from fork to exit, before and after the exec. (A check of /proc/PID/cmdline right after
# `setsid BIN &` can still read the shell's or setsid's own name before the exec.)
start_time() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The command name (field 2) may hold spaces; the fields after its closing parenthesis don't.
  stat="${stat##*) }"
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $stat
  # $1 is now field 3 (the state); a zombie has exited.
  [[ "$1" != Z ]] || return 1
  echo "${20}"
}

# True while the process recorded in STATE/NAME.pid and STATE/NAME.start runs.
alive() {
  local state=$1 name=$2 pid started now
  pid="$(cat "$state/$name.pid" 2>/dev/null)" || return 1
  started="$(cat "$state/$name.start" 2>/dev/null)" || return 1
  now="$(start_time "$pid")" || return 1
  [[ "$now" == "$started" ]]
}

# Copies a server's log where it survives the state folder, and says where.
keep_log() {
  local state=$1 name=$2 kept
  [[ -s "$state/$name.log" ]] || return 0
  mkdir -p "$LOG_KEEP"
  kept="$LOG_KEEP/$name-$(date -u +%Y%m%dT%H%M%SZ)-$$.log"
  cp "$state/$name.log" "$kept"
  log "end of the log of $name (all of it is kept in $kept):"
  tail -n 30 "$kept" >&2
}

# Starts NAME in the background as the leader of a session of its own (setsid), so that it
# outlives the calling shell (and its Ctrl-C) until `stop`, and so that its whole process group
# can be signalled. Without job control the background child is no process-group leader, so
# setsid execs in place and $! is the server's own PID.
spawn() {
  local state=$1 name=$2 bin=$3 pid started
  shift 3
  setsid "$bin" "$@" >>"$state/$name.log" 2>&1 </dev/null &
  pid=$!
  # Read at once: the fork has happened, so the start time is already the server's.
  if started="$(start_time "$pid")"; then
    echo "$started" >"$state/$name.start"
  else
    # It exited already (a bad flag, a missing library): nothing to stop.
    echo 0 >"$state/$name.start"
  fi
  echo "$pid" >"$state/$name.pid"
}

# Stops NAME: TERM to its process group, then KILL after GRACE seconds (default 10). A server
# found dead is reported, with its log kept.
stop_one() {
  local state=$1 name=$2 grace=${3:-10} pid i
  [[ -f "$state/$name.pid" ]] || return 0
  pid="$(cat "$state/$name.pid")"
  if alive "$state" "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      alive "$state" "$name" || break
      sleep 0.1
    done
    if alive "$state" "$name"; then
      log "$name did not exit within $grace s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        alive "$state" "$name" || break
        sleep 0.1
      done
    fi
    alive "$state" "$name" && die "$name (pid $pid) is still running"
  elif [[ "$(cat "$state/$name.start" 2>/dev/null)" != stopped ]]; then
    log "$name (pid $pid) had exited before stop"
    keep_log "$state" "$name"
  fi
  rm -f "$state/$name.pid" "$state/$name.start"
}

# kube-apiserver's graceful shutdown waits up to 60 s for open watches (its clients' informers)
# to end; it has stopped listening by then and etcd holds all state, so a few seconds of grace
# is plenty.
readonly APISERVER_GRACE=5

stop_all() {
  local state=$1
  stop_one "$state" kube-controller-manager
  stop_one "$state" kube-apiserver "$APISERVER_GRACE"
  stop_one "$state" etcd
}

# Waits until `curl ARGS...` succeeds while NAME is still alive; on timeout or death shows the
# end of its log and keeps it.
wait_for() {
  local state=$1 name=$2
  shift 2
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if curl -fsS --max-time 2 -o /dev/null "$@" 2>/dev/null; then
      return 0
    fi
    if ! alive "$state" "$name"; then
      log "$name exited during start-up"
      keep_log "$state" "$name"
      # Reported: stop need not report it again.
      echo stopped >"$state/$name.start"
      return 1
    fi
    sleep 0.25
  done
  log "$name not ready after $START_TIMEOUT s"
  keep_log "$state" "$name"
  return 1
}

# ---------------------------------------------------------------------------
# start / stop / restart-apiserver
# ---------------------------------------------------------------------------

# Prints N distinct free TCP ports on 127.0.0.1. The kernel picks them while all N sockets are
# open; someone else may still grab one before we bind it, which start reports as a server that
# did not come up.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Certificates and keys, all under STATE/pki.
make_pki() {
  local pki=$1
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
      -subj "/CN=cognito-mfa-operator-local-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.crt 2>/dev/null

    # Serving certificate: Go only looks at the SANs.
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost" >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -CAserial ca.srl -days 3650 -sha256 -extfile apiserver.ext -out apiserver.crt 2>/dev/null

    # Service-account token signing pair.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

    # Static bearer tokens: token,user,uid,"groups".
    printf '%s,cmo-admin,cmo-admin,"system:masters"\n' "$(openssl rand -hex 32)" >tokens.csv
    printf '%s,system:kube-controller-manager,kcm,"system:masters"\n' \
      "$(openssl rand -hex 32)" >>tokens.csv
    rm -f ./*.csr ./*.ext
  )
}

# kubeconfig FILE USER TOKEN: a self-contained kubeconfig (CA embedded).
write_kubeconfig() {
  local file=$1 user=$2 token=$3
  local tmp="$file.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cmo-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    token: $token
contexts:
- name: cmo-local
  context:
    cluster: cmo-local
    user: $user
current-context: cmo-local
EOF
  chmod 600 "$tmp"
  mv -f "$tmp" "$file"
}

# Loads STATE/cluster.env (ports and binaries, written by start) and derived paths.
load_state() {
  STATE="$1"
  PKI="$STATE/pki"
  [[ -f "$STATE/cluster.env" ]] || die "$STATE/cluster.env missing: was '$PROG start $STATE' run?"
  # shellcheck source=/dev/null
  source "$STATE/cluster.env"
  ADMIN_TOKEN="$(awk -F, '$2 == "cmo-admin" { print $1 }' "$PKI/tokens.csv")"
}

start_etcd() {
  spawn "$STATE" etcd "$ETCD_BIN/etcd" \
    --name=default \
    --data-dir="$STATE/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls="http://127.0.0.1:$ETCD_METRICS_PORT" \
    --logger=zap --log-outputs=stderr
  wait_for "$STATE" etcd "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  # --advertise-address: otherwise it would advertise the host's own address.
  # --endpoint-reconciler-type=none: the `kubernetes` Service's endpoints may not be a loopback
  #   address, and nothing here routes to it anyway.
  # --cert-dir: the default, /var/run/kubernetes, is neither ours nor needed.
  spawn "$STATE" kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 \
    --secure-port="$API_PORT" \
    --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --cert-dir="$PKI" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --token-auth-file="$PKI/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --profiling=false
  wait_for "$STATE" kube-apiserver --cacert "$PKI/ca.crt" \
    -H "Authorization: Bearer $ADMIN_TOKEN" "https://127.0.0.1:$API_PORT/readyz"
}

# namespace: deleting a namespace deletes its content, then the namespace.
# garbagecollector: ownerReferences and foreground/background deletion.
# serviceaccount: a `default` ServiceAccount in every namespace.
# clusterrole-aggregation: fills ClusterRoles that aggregate others by label (rules added to
#   admin/edit/view through aggregate-to-* labels).
readonly KCM_CONTROLLERS=namespace,garbagecollector,serviceaccount,clusterrole-aggregation

start_controller_manager() {
  if [[ ! -x "$KUBE_BIN/kube-controller-manager" ]]; then
    log "no kube-controller-manager in $KUBE_BIN: deleted namespaces will stay Terminating"
    return
  fi
  # --leader-elect=false: with leader election it exits when it cannot renew its lease, e.g.
  #   while the API server is being restarted.
  spawn "$STATE" kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --controllers="$KCM_CONTROLLERS" \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --cert-dir="$STATE/kcm-certs" \
    --profiling=false
  # Its self-signed serving certificate is not worth checking here.
  wait_for "$STATE" kube-controller-manager -k "https://127.0.0.1:$KCM_PORT/healthz"
}

# Resolves STATE_DIR to an absolute path (the servers get absolute file flags).
state_dir_arg() {
  [[ $# -eq 1 && -n "$1" ]] || { usage; exit 2; }
  mkdir -p "$1"
  (cd "$1" && pwd)
}

cmd_start() {
  local state
  state="$(state_dir_arg "$@")"
  need openssl curl setsid base64 python3
  local kube etcd name
  kube="$(kube_bin_dir)"
  etcd="$(etcd_bin_dir)"
  [[ -x "$kube/kube-apiserver" && -x "$etcd/etcd" ]] || die "not installed: run '$0 install' first"
  for name in etcd kube-apiserver kube-controller-manager; do
    if alive "$state" "$name"; then
      die "$name is already running for $state; run '$0 stop $state' first"
    fi
  done

  # A fresh cluster every start: drop what a previous one left.
  rm -rf "$state/etcd-data" "$state/pki" "$state/kcm-certs" "$state/kubeconfig" \
    "$state/controller-manager.kubeconfig" "$state"/*.pid "$state"/*.start
  for name in etcd kube-apiserver kube-controller-manager; do : >"$state/$name.log"; done

  local ports
  read -r -a ports <<<"$(free_ports 5)"
  cat >"$state/cluster.env" <<EOF
ETCD_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
ETCD_METRICS_PORT=${ports[2]}
API_PORT=${ports[3]}
KCM_PORT=${ports[4]}
KUBE_BIN=$kube
ETCD_BIN=$etcd
EOF
  make_pki "$state/pki"
  load_state "$state"
  write_kubeconfig "$STATE/controller-manager.kubeconfig" system:kube-controller-manager \
    "$(awk -F, '$2 == "system:kube-controller-manager" { print $1 }' "$PKI/tokens.csv")"

  # However start ends before it is done (an error anywhere, set -e inside a function, Ctrl-C),
  # leave nothing running behind.
  trap 'log "start failed; stopping what was started"; stop_all "$STATE"' EXIT
  trap 'exit 130' INT TERM
  local t0=$SECONDS
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  start_etcd
  log "starting kube-apiserver $("$KUBE_BIN/kube-apiserver" --version | cut -d' ' -f2) on 127.0.0.1:$API_PORT"
  start_apiserver
  log "starting kube-controller-manager ($KCM_CONTROLLERS)"
  start_controller_manager
  trap - EXIT INT TERM

  write_kubeconfig "$STATE/kubeconfig" cmo-admin "$ADMIN_TOKEN"
  log "ready in $((SECONDS - t0)) s; logs in $STATE/*.log"
  echo "$STATE/kubeconfig"
}

cmd_restart_apiserver() {
  local state down="${2:-0}"
  [[ "$down" =~ ^[0-9]+$ ]] || { usage; exit 2; }
  state="$(state_dir_arg "$1")"
  load_state "$state"
  alive "$STATE" etcd || die "etcd is not running for $STATE: use '$PROG start $STATE'"
  stop_one "$STATE" kube-apiserver "$APISERVER_GRACE"
  if ((down > 0)); then
    log "kube-apiserver stays down for ${down}s"
    sleep "$down"
  fi
  log "starting kube-apiserver on 127.0.0.1:$API_PORT"
  start_apiserver
  log "kube-apiserver ready again"
}

cmd_stop() {
  [[ $# -eq 1 && -n "$1" ]] || { usage; exit 2; }
  [[ -d "$1" ]] || return 0
  stop_all "$1"
}

# Start-up under load: N cycles of start and stop while two busy loops hold both cores. After
# each stop, no process of the cycle may be left.
cmd_cycle() {
  local n=${1:-}
  [[ "$n" =~ ^[0-9]+$ && $# -eq 1 ]] || { usage; exit 2; }
  cmd_install
  local work busy=() i name pid
  work="$(mktemp -d)"
  for i in 1 2; do
    # Bounded: they end with the cycle, or after an hour at most.
    timeout 3600 sh -c 'while :; do :; done' &
    busy+=($!)
  done
  # shellcheck disable=SC2064 # expand now
  trap "kill ${busy[*]} 2>/dev/null; '$0' stop '$work/state' >/dev/null 2>&1; rm -rf '$work'" EXIT
  for ((i = 1; i <= n; i++)); do
    if ! "$0" start "$work/state" >/dev/null 2>"$work/start.err"; then
      cat "$work/start.err" >&2
      die "cycle $i of $n: start failed"
    fi
    local pids=()
    for name in etcd kube-apiserver kube-controller-manager; do
      [[ -f "$work/state/$name.pid" ]] && pids+=("$(cat "$work/state/$name.pid")")
    done
    "$0" stop "$work/state" 2>"$work/stop.err" || { cat "$work/stop.err" >&2; die "cycle $i of $n: stop failed"; }
    for pid in "${pids[@]}"; do
      if start_time "$pid" >/dev/null; then
        die "cycle $i of $n: pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)) still runs after stop"
      fi
    done
    log "cycle $i of $n: started and stopped, nothing left running"
  done
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) [[ $# -eq 0 ]] || { usage; exit 2; }; cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart-apiserver) cmd_restart_apiserver "$@" ;;
    bin-dir)
      case "${1:-}" in
        "") kube_bin_dir ;;
        etcd) etcd_bin_dir ;;
        *) usage; exit 2 ;;
      esac
      ;;
    cycle) cmd_cycle "$@" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
