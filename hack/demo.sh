#!/usr/bin/env bash
# The main job, on one machine: a Kubernetes API server and a Cognito-compatible server (moto),
# both on loopback; the operator running against them; policies going Ready, a drift being
# corrected, and a disruptive change waiting for approval. Nothing leaves the machine.
#
# The first run builds the operator (3 to 7 minutes on 2 cores) and the local API server, etcd
# and kubectl from their own Go modules (6 to 15 minutes on 2 cores); both are cached, and later
# runs start in seconds.
#
# Every command it prints (after "$ ") can be pasted into a shell while it runs. On failure, the
# operator's and the servers' logs are kept, and the last lines say where.
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d)
operator_pid=
cleanup() {
  local status=$?
  if [ -n "$operator_pid" ]; then kill -TERM "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null || true; fi
  hack/pytools.sh moto-stop "$state/moto"
  hack/local-apiserver.sh stop "$state/kube" >/dev/null || true
  if [ "$status" -eq 0 ]; then
    rm -rf "$state"
  else
    echo "the demo failed (exit code $status); its logs are kept in $state:" >&2
    find "$state" -name '*.log' | sort | sed 's/^/  /' >&2
  fi
}
trap cleanup EXIT

# Bold headings on a terminal only: no escape codes in a file or a pipe.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# Prints a command as it can be pasted into a shell (words quoted where the shell needs it),
# then runs it.
quoted() {
  local out= word
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+=" $word"
    else
      out+=" '${word//\'/\'\\\'\'}'"
    fi
  done
  printf '%s' "${out# }"
}
show() { printf '$ %s\n' "$(quoted "$@")"; "$@"; }

# Waits until policy $1 reports Ready reason $2.
wait_reason() {
  local reason
  for _ in $(seq 1 150); do
    reason=$(kubectl -n identity get cmp "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}' 2>/dev/null || true)
    if [ "$reason" = "$2" ]; then return 0; fi
    sleep 0.2
  done
  echo "policy $1 did not reach $2 (it says: ${reason:-nothing})" >&2
  return 1
}

step "Building the operator (the first build takes 3 to 7 minutes on 2 cores)"
cargo build --locked
bin=target/debug/cognito-mfa-operator

step "Starting a Kubernetes API server on loopback"
hack/local-apiserver.sh install
KUBECONFIG=$(hack/local-apiserver.sh start "$state/kube" | tail -n 1)
export KUBECONFIG

# kubectl of the server's version (the one on PATH when the binaries came from KUBEBUILDER_ASSETS).
kubectl_bin="$(hack/local-apiserver.sh bin-dir)/kubectl"
[ -x "$kubectl_bin" ] || kubectl_bin=$(command -v kubectl)
kubectl() { "$kubectl_bin" "$@"; }
echo "To run the commands below in another shell while the demo runs:"
printf '$ export KUBECONFIG=%s PATH=%s:"$PATH"\n' "$(quoted "$KUBECONFIG")" "$(quoted "$(dirname "$kubectl_bin")")"
kubectl version | sed 's/^/  /'

step "Starting moto's server (Cognito) on loopback"
url=$(hack/pytools.sh moto-start "$state/moto")
echo "$url"
# Dummy credentials: moto does not check them. The endpoint URL keeps every call on loopback.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true

aws_py() {
  hack/pytools.sh run python -c "
import boto3
c = boto3.client('cognito-idp', endpoint_url='$url', region_name='eu-west-1')
$1"
}

step "Installing the CRD"
show kubectl apply --server-side -f crds/
kubectl wait --for condition=established --timeout=60s crd/cognitomfapolicies.cognitomfa.io >/dev/null
show kubectl create namespace identity

step "Two user pools, made elsewhere (Terraform, the console), MFA off"
shop=$(aws_py "print(c.create_user_pool(PoolName='shop-customers')['UserPool']['Id'])")
partners=$(aws_py "print(c.create_user_pool(PoolName='partners')['UserPool']['Id'])")
echo "shop-customers: $shop"
echo "partners:       $partners"

step "Running the operator"
"$bin" run --kubeconfig "$KUBECONFIG" --endpoint-url "$url" --metrics-addr 127.0.0.1:0 --resync-interval 5s >"$state/operator.log" 2>&1 &
operator_pid=$!
echo "pid $operator_pid, logs in $state/operator.log; drift checks every 5 seconds for the demo (default 10m)"

step "Applying the policies"
cat >"$state/policies.yaml" <<YAML
apiVersion: cognitomfa.io/v1alpha1
kind: CognitoMfaPolicy
metadata: {name: shop-customers, namespace: identity}
spec:
  userPoolId: $shop
  mfaConfiguration: OPTIONAL
  softwareTokenMfaConfiguration: {enabled: true}
  smsMfaConfiguration:
    smsAuthenticationMessage: "Your shop code is {####}"
    smsConfiguration: {snsCallerArn: "arn:aws:iam::123456789012:role/cognito-sms", externalId: shop-sms-7f3a}
  deletionPolicy: Reset
---
apiVersion: cognitomfa.io/v1alpha1
kind: CognitoMfaPolicy
metadata: {name: partners, namespace: identity}
spec:
  userPoolId: $partners
  mfaConfiguration: OPTIONAL
  softwareTokenMfaConfiguration: {enabled: true}
YAML
cat "$state/policies.yaml"
show kubectl apply -f "$state/policies.yaml"
wait_reason shop-customers Applied
wait_reason partners Applied
show kubectl get cmp -n identity
aws_py "print('shop-customers MFA in Cognito:', c.get_user_pool_mfa_config(UserPoolId='$shop')['MfaConfiguration'])"

step "Someone turns MFA off in the console"
aws_py "c.set_user_pool_mfa_config(UserPoolId='$shop', MfaConfiguration='OFF'); print('shop-customers MFA in Cognito:', c.get_user_pool_mfa_config(UserPoolId='$shop')['MfaConfiguration'])"
echo "The next drift check (within 5 seconds) corrects it:"
wait_reason shop-customers DriftCorrected
show kubectl get cmp -n identity
aws_py "print('shop-customers MFA in Cognito:', c.get_user_pool_mfa_config(UserPoolId='$shop')['MfaConfiguration'])"
show kubectl get events -n identity --field-selector involvedObject.name=shop-customers

step "A disruptive change (OPTIONAL -> ON) waits for approval"
show kubectl -n identity patch cmp partners --type merge -p '{"spec":{"mfaConfiguration":"ON"}}'
wait_reason partners AwaitingApproval
show kubectl get cmp -n identity
show kubectl -n identity get cmp partners -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}{"\n"}'

step "Approving that change, and only that one, with the token the message gives"
token=$(kubectl -n identity get cmp partners -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' | grep -o 'cmp-[0-9a-f]\{12\}' | head -n 1)
show kubectl -n identity annotate cmp partners "cognitomfa.io/approve-change=$token"
wait_reason partners Applied
show kubectl get cmp -n identity

step "Deleting shop-customers (deletionPolicy Reset: MFA goes OFF first)"
show kubectl -n identity delete cmp shop-customers --wait=true
aws_py "print('shop-customers MFA in Cognito:', c.get_user_pool_mfa_config(UserPoolId='$shop')['MfaConfiguration'])"

step "Stopping the operator (SIGTERM: running reconciles finish)"
kill -TERM "$operator_pid"
wait "$operator_pid"
operator_pid=
echo "stopped cleanly"

step "What the operator logged (one line per write, drift, approval wait and deletion)"
cat "$state/operator.log"
