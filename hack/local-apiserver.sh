#!/usr/bin/env bash
# A real Kubernetes API server (v1.20.2) plus etcd and a trimmed
# kube-controller-manager, on loopback only, for the end-to-end tests.
#
# No registry reachable here ships a kube-apiserver binary, so `install` builds
# one from Debian's own `kubernetes` source package (1.20.x, dependencies
# vendored) with Debian's Go 1.19, and takes etcd from Debian's etcd-server.
# Everything is cached outside the clone; a second `install` is a no-op.
#
# Usage:
#   hack/local-apiserver.sh install
#   hack/local-apiserver.sh start STATE_DIR      # prints STATE_DIR/kubeconfig last
#   hack/local-apiserver.sh restart-apiserver STATE_DIR [DOWN_SECONDS]
#   hack/local-apiserver.sh stop STATE_DIR
#
# Environment:
#   CMO_CACHE_DIR         cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator);
#                         this script uses its kube/ subfolder
#   CMO_KEEP_BUILD=1      keep the ~3 GB build tree after a successful install
#   CMO_START_TIMEOUT     seconds to wait for each server to become ready (default 120)
#
# It is an old, unsupported Kubernetes release: every listener is bound to
# 127.0.0.1 and the credentials it makes are for tests only.

set -euo pipefail

# shellcheck source=hack/private-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"

readonly PROG="${0##*/}"
CACHE_ROOT="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
# Absolute, because the build changes directories (and Go wants GOCACHE absolute).
[[ "$CACHE_ROOT" == /* ]] || CACHE_ROOT="$PWD/$CACHE_ROOT"
readonly CACHE_ROOT
readonly KUBE_CACHE="$CACHE_ROOT/kube"
readonly BIN_DIR="$KUBE_CACHE/bin"
readonly GO_VERSION=1.19
# What `install` produces; `start` needs all of them.
readonly BINARIES=(etcd kube-apiserver kube-controller-manager)
readonly START_TIMEOUT="${CMO_START_TIMEOUT:-120}"

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $PROG install
       $PROG start STATE_DIR
       $PROG restart-apiserver STATE_DIR [DOWN_SECONDS]
       $PROG stop STATE_DIR

install            build kube-apiserver and kube-controller-manager (v1.20.2) from
                   Debian's source package and fetch etcd; cached under
                   $KUBE_CACHE
start              start etcd, kube-apiserver and kube-controller-manager on free
                   127.0.0.1 ports, state and logs in STATE_DIR; prints the admin
                   kubeconfig path as the last line of stdout
restart-apiserver  stop and start only kube-apiserver, same flags and port (after
                   DOWN_SECONDS, default 0)
stop               stop whatever start started in STATE_DIR (idempotent)
EOF
}

need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is required but not on PATH"
  done
}

installed() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "$BIN_DIR/$b" ]] || return 1
  done
}

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

INSTALL_LOG="$KUBE_CACHE/install.log"

# Runs a command with its (long) output going to the install log; on failure
# shows the end of that log, since that is where the reason is.
run_logged() {
  printf '\n$ %s\n' "$*" >>"$INSTALL_LOG"
  if ! "$@" >>"$INSTALL_LOG" 2>&1; then
    log "failed: $*"
    tail -n 40 "$INSTALL_LOG" >&2
    die "install failed; full log: $INSTALL_LOG"
  fi
}

# The private apt configuration (hack/private-apt.sh), with source indexes for the Kubernetes
# source package.
setup_private_apt() {
  private_apt "$KUBE_CACHE/apt" deb-src || die "cannot set up a private apt configuration"
}

download_sources() {
  local dl="$KUBE_CACHE/downloads"
  if [[ -f "$dl/.complete" ]]; then
    log "downloads already cached in $dl"
    return
  fi
  need apt-get apt-config
  setup_private_apt
  log "apt-get update (private lists in $KUBE_CACHE/apt)"
  # A source that fails to update (an unreachable third-party repository, say)
  # need not matter: the downloads below fail clearly if what we need is missing.
  if ! apt-get -q update >>"$INSTALL_LOG" 2>&1; then
    log "warning: apt-get update reported errors (see $INSTALL_LOG); trying the downloads anyway"
  fi
  rm -rf "$dl"
  mkdir -p "$dl"
  log "downloading Debian's kubernetes source package and Go $GO_VERSION, reflect2, etcd (~125 MB)"
  (
    cd "$dl"
    run_logged apt-get -q source --download-only kubernetes
    run_logged apt-get -q download "golang-$GO_VERSION-go" "golang-$GO_VERSION-src" \
      golang-github-modern-go-reflect2-dev etcd-server
  )
  touch "$dl/.complete"
  # The package lists are only needed for these downloads.
  rm -rf "$KUBE_CACHE/apt/lists"
}

build_binaries() {
  local dl="$KUBE_CACHE/downloads"
  local build="$KUBE_CACHE/build"
  local root="$build/root"
  local goroot="$root/usr/lib/go-$GO_VERSION"
  local src tarball deb

  need dpkg-deb tar make
  rm -rf "$build"
  mkdir -p "$root" "$build/shim"

  log "unpacking into $build"
  for deb in "$dl"/*.deb; do
    run_logged dpkg-deb -x "$deb" "$root"
  done
  # Debian's own patches touch only kubectl, so the upstream tarball is enough.
  tarball="$(compgen -G "$dl/kubernetes_*.orig.tar.gz" | head -n1)" || true
  [[ -f "$tarball" ]] || die "no kubernetes_*.orig.tar.gz in $dl (delete $dl to download again)"
  run_logged tar -xzf "$tarball" -C "$build"
  src="$(compgen -G "$build/kubernetes-*" | head -n1)" || true
  [[ -d "$src" ]] || die "no kubernetes-* directory in $tarball"

  # The vendored reflect2 (v1.0.1) panics under Go >= 1.18 at the first
  # custom-resource request; Debian's 1.0.2 is the fixed release.
  local vendored="$src/vendor/github.com/modern-go/reflect2"
  local fixed="$root/usr/share/gocode/src/github.com/modern-go/reflect2"
  [[ -d "$vendored" && -d "$fixed" ]] || die "reflect2 sources not where expected"
  rm -f "$vendored"/*.go "$vendored"/*.s
  cp "$fixed"/*.go "$fixed"/*.s "$vendored/"

  # The build uses rsync only to copy the finished binaries (`rsync -pc FILE DIR`).
  cat >"$build/shim/rsync" <<'EOF'
#!/bin/sh
# Stand-in for `rsync -pc FILE... DIR` as used by Kubernetes' build scripts.
while [ $# -gt 0 ]; do
  case "$1" in -*) shift ;; *) break ;; esac
done
exec cp -p -- "$@"
EOF
  chmod +x "$build/shim/rsync"

  log "building kube-apiserver and kube-controller-manager with Go $GO_VERSION" \
    "(about 5-10 minutes on 2 cores; log: $INSTALL_LOG)"
  # A clean Go environment: the caller's GOFLAGS/GOPATH/go env file must not
  # leak into the build; the Go build cache lives in the build tree.
  run_logged env -u GOFLAGS -u GOPATH -u GOBIN -u GOOS -u GOARCH -u GO111MODULE \
    GOROOT="$goroot" GOENV=off GOCACHE="$build/gocache" CGO_ENABLED=0 \
    PATH="$goroot/bin:$build/shim:$PATH" \
    make -C "$src" WHAT="cmd/kube-apiserver cmd/kube-controller-manager"

  # Put the binaries in place atomically: their presence means "installed".
  mkdir -p "$BIN_DIR"
  local b from
  for b in "${BINARIES[@]}"; do
    case "$b" in
      etcd) from="$root/usr/bin/etcd" ;;
      *) from="$src/_output/bin/$b" ;;
    esac
    [[ -x "$from" ]] || die "expected $from after the build"
    cp "$from" "$BIN_DIR/.$b.tmp"
    mv -f "$BIN_DIR/.$b.tmp" "$BIN_DIR/$b"
  done
  {
    printf 'kubernetes source: %s\n' "$(basename "$(compgen -G "$dl/kubernetes_*.dsc" | head -n1)" .dsc)"
    for deb in "$dl"/*.deb; do
      printf '%s %s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)"
    done
  } >"$BIN_DIR/VERSIONS"

  if [[ "${CMO_KEEP_BUILD:-0}" != 1 ]]; then
    log "removing the build tree (set CMO_KEEP_BUILD=1 to keep it)"
    rm -rf "$build"
  fi
}

cmd_install() {
  if installed; then
    log "already installed in $BIN_DIR"
    return
  fi
  mkdir -p "$KUBE_CACHE"
  need flock
  # Two test processes may call install at once: let one build, the other wait.
  exec 9>"$KUBE_CACHE/install.lock"
  if ! flock -n 9; then
    log "another install is running; waiting for it"
    flock 9
  fi
  if installed; then
    log "already installed in $BIN_DIR (by a concurrent run)"
    return
  fi
  : >"$INSTALL_LOG"
  local t0=$SECONDS
  download_sources
  build_binaries
  log "installed in $BIN_DIR in $((SECONDS - t0)) s: $(tr '\n' ' ' <"$BIN_DIR/VERSIONS")"
}

# ---------------------------------------------------------------------------
# start / stop / restart-apiserver
# ---------------------------------------------------------------------------

# Prints N distinct free TCP ports on 127.0.0.1. The kernel picks them while
# all N sockets are open; someone else may still grab one before we bind it,
# which start reports as a server that did not come up.
free_ports() {
  local n=$1
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$n" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
    return
  fi
  # Without python3: random ports that nothing answers on.
  local ports=() p
  while ((${#ports[@]} < n)); do
    p=$((20000 + RANDOM % 12000))
    [[ " ${ports[*]} " == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      ports+=("$p")
    fi
  done
  echo "${ports[*]}"
}

# True if PID runs the binary NAME (guards against a recycled PID). A zombie
# has an empty cmdline, so it counts as gone, as it should.
is_ours() {
  local pid=$1 name=$2 argv0=
  # The process may exit while we look: that too means "not running".
  { IFS= read -r -d '' argv0 <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  [[ "${argv0##*/}" == "$name" ]]
}

# Stops the process recorded in STATE/NAME.pid, if any: TERM, then KILL after
# GRACE seconds (default 10).
stop_one() {
  local state=$1 name=$2 grace=${3:-10}
  local pidfile="$state/$name.pid" pid i
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && is_ours "$pid" "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      is_ours "$pid" "$name" || break
      sleep 0.1
    done
    if is_ours "$pid" "$name"; then
      log "$name did not exit within $grace s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        is_ours "$pid" "$name" || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$pidfile"
}

# kube-apiserver's graceful shutdown waits up to 60 s for open watches (its
# clients' informers) to end; it has stopped listening by then and etcd holds
# all state, so a few seconds of grace is plenty.
readonly APISERVER_GRACE=5

stop_all() {
  local state=$1
  stop_one "$state" kube-controller-manager
  stop_one "$state" kube-apiserver "$APISERVER_GRACE"
  stop_one "$state" etcd
}

# Starts NAME in the background with its output in STATE/NAME.log and records
# its PID. setsid detaches it from the caller's session and process group so
# it outlives the calling shell (and its Ctrl-C) until `stop`. Without job
# control the background child is no process-group leader, so setsid execs in
# place and $! is the server's own PID.
spawn() {
  local state=$1 name=$2
  shift 2
  setsid "$BIN_DIR/$name" "$@" >>"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
}

# Waits until `curl ARGS...` succeeds while NAME is still alive; on timeout or
# death shows the end of its log.
wait_for() {
  local state=$1 name=$2
  shift 2
  local pid deadline=$((SECONDS + START_TIMEOUT))
  pid="$(cat "$state/$name.pid")"
  while ((SECONDS < deadline)); do
    if curl -fsS --max-time 2 -o /dev/null "$@" 2>/dev/null; then
      return 0
    fi
    if ! is_ours "$pid" "$name"; then
      log "$name exited during start-up; end of $state/$name.log:"
      tail -n 30 "$state/$name.log" >&2
      return 1
    fi
    sleep 0.25
  done
  log "$name not ready after $START_TIMEOUT s; end of $state/$name.log:"
  tail -n 30 "$state/$name.log" >&2
  return 1
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

    # Admin client certificate (O=system:masters), for clients that prefer
    # mTLS to the bearer token in the kubeconfig.
    openssl req -new -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=cmo-admin" \
      -keyout admin.key -out admin.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAserial ca.srl \
      -days 3650 -sha256 -extfile admin.ext -out admin.crt 2>/dev/null

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

# Loads STATE/cluster.env (ports, written by start) and derived paths.
load_state() {
  STATE="$1"
  PKI="$STATE/pki"
  [[ -f "$STATE/cluster.env" ]] || die "$STATE/cluster.env missing: was '$PROG start $STATE' run?"
  # shellcheck source=/dev/null
  source "$STATE/cluster.env"
  ADMIN_TOKEN="$(awk -F, '$2 == "cmo-admin" { print $1 }' "$PKI/tokens.csv")"
}

start_etcd() {
  spawn "$STATE" etcd \
    --name=default \
    --data-dir="$STATE/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --logger=zap --log-outputs=stderr
  wait_for "$STATE" etcd "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  # --advertise-address: otherwise it would advertise the host's own address.
  # --endpoint-reconciler-type=none: the `kubernetes` Service's endpoints may
  #   not be a loopback address, and nothing here routes to it anyway.
  # --cert-dir: the default, /var/run/kubernetes, is neither ours nor needed.
  spawn "$STATE" kube-apiserver \
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
# serviceaccount, serviceaccount-token: a `default` ServiceAccount per
#   namespace and, as on 1.20 clusters, a token Secret for each ServiceAccount.
# clusterrole-aggregation: fills ClusterRoles that aggregate others by label
#   (e.g. rules added to admin/edit/view through aggregate-to-* labels).
readonly KCM_CONTROLLERS=namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation

start_controller_manager() {
  # --leader-elect=false: with leader election it exits when it cannot renew
  #   its lease, e.g. while the API server is being restarted.
  # --port=0: no insecure (plain HTTP, all interfaces) health port.
  spawn "$STATE" kube-controller-manager \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --controllers="$KCM_CONTROLLERS" \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --leader-elect=false \
    --port=0 \
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
  installed || die "not installed: run '$0 install' first (builds for ~5-10 minutes)"
  need openssl curl setsid base64
  local name
  for name in "${BINARIES[@]}"; do
    if [[ -f "$state/$name.pid" ]] && is_ours "$(cat "$state/$name.pid")" "$name"; then
      die "$name is already running for $state; run '$0 stop $state' first"
    fi
  done

  # A fresh cluster every start: drop what a previous one left.
  rm -rf "$state/etcd-data" "$state/pki" "$state/kcm-certs" \
    "$state/kubeconfig" "$state/controller-manager.kubeconfig" "$state"/*.pid
  for name in "${BINARIES[@]}"; do : >"$state/$name.log"; done

  local ports
  read -r -a ports <<<"$(free_ports 4)"
  cat >"$state/cluster.env" <<EOF
ETCD_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
API_PORT=${ports[2]}
KCM_PORT=${ports[3]}
EOF
  make_pki "$state/pki"
  load_state "$state"
  write_kubeconfig "$STATE/controller-manager.kubeconfig" system:kube-controller-manager \
    "$(awk -F, '$2 == "system:kube-controller-manager" { print $1 }' "$PKI/tokens.csv")"

  # However start ends before it is done (an error anywhere, set -e inside a
  # function, Ctrl-C), leave nothing running behind.
  trap 'log "start failed; stopping what was started"; stop_all "$STATE"' EXIT
  local t0=$SECONDS
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  start_etcd
  log "starting kube-apiserver on 127.0.0.1:$API_PORT"
  start_apiserver
  log "starting kube-controller-manager ($KCM_CONTROLLERS)"
  start_controller_manager
  trap - EXIT

  write_kubeconfig "$STATE/kubeconfig" cmo-admin "$ADMIN_TOKEN"
  log "ready in $((SECONDS - t0)) s; logs in $STATE/*.log"
  echo "$STATE/kubeconfig"
}

cmd_restart_apiserver() {
  local state down="${2:-0}"
  [[ "$down" =~ ^[0-9]+$ ]] || { usage; exit 2; }
  state="$(state_dir_arg "$1")"
  load_state "$state"
  if [[ ! -f "$STATE/etcd.pid" ]] || ! is_ours "$(cat "$STATE/etcd.pid")" etcd; then
    die "etcd is not running for $STATE: use '$PROG start $STATE'"
  fi
  stop_one "$STATE" kube-apiserver "$APISERVER_GRACE"
  if (( down > 0 )); then
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

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) [[ $# -eq 0 ]] || { usage; exit 2; }; cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart-apiserver) cmd_restart_apiserver "$@" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
