#!/usr/bin/env bash
# The main job, on a laptop: a Cognito-compatible server (moto) on loopback, a user pool in it,
# and the operator's engine adopting the pool (export), planning and applying a policy, and
# undoing a change made behind its back. Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d)
cleanup() { hack/pytools.sh moto-stop "$state"; rm -rf "$state"; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Building the operator"
cargo build --locked --quiet
bin=target/debug/cognito-mfa-operator

step "Starting moto's server on loopback"
url=$(hack/pytools.sh moto-start "$state")
echo "$url"
# Dummy credentials: moto does not check them. The endpoint URL keeps every call on loopback.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_ENDPOINT_URL="$url"

aws_py() {
  hack/pytools.sh run python -c "
import boto3, sys
c = boto3.client('cognito-idp', endpoint_url='$url', region_name='eu-west-1')
$1"
}

step "Creating a user pool (as Terraform or the console would)"
pool=$(aws_py "print(c.create_user_pool(PoolName='shop-customers')['UserPool']['Id'])")
echo "$pool"

step "export: the pool as a CognitoMfaPolicy (MFA is OFF)"
show "$bin" export --user-pool-id "$pool" --name shop-customers --namespace identity

cat >"$state/policy.yaml" <<YAML
apiVersion: cognitomfa.io/v1alpha1
kind: CognitoMfaPolicy
metadata:
  name: shop-customers
  namespace: identity
spec:
  userPoolId: $pool
  mfaConfiguration: OPTIONAL
  softwareTokenMfaConfiguration: {enabled: true}
  smsMfaConfiguration:
    smsAuthenticationMessage: "Your shop code is {####}"
    smsConfiguration:
      snsCallerArn: arn:aws:iam::123456789012:role/cognito-sms
      externalId: shop-sms-7f3a
YAML
step "The policy we want"
cat "$state/policy.yaml"

step "plan: what would change (exit code 2: changes pending)"
show "$bin" plan -f "$state/policy.yaml" || echo "(exit code $?)"

step "apply: make the pool match, read it back"
show "$bin" apply -f "$state/policy.yaml"

step "plan again: in sync (exit code 0)"
show "$bin" plan -f "$state/policy.yaml"

step "Someone turns MFA off in the console"
aws_py "c.set_user_pool_mfa_config(UserPoolId='$pool', MfaConfiguration='OFF'); print('MFA is now', c.get_user_pool_mfa_config(UserPoolId='$pool')['MfaConfiguration'])"

step "plan: the drift shows"
show "$bin" plan -f "$state/policy.yaml" || echo "(exit code $?)"

step "apply: the drift is corrected"
show "$bin" apply -f "$state/policy.yaml"
aws_py "print('MFA is now', c.get_user_pool_mfa_config(UserPoolId='$pool')['MfaConfiguration'])"

step "A disruptive change (OPTIONAL -> ON) waits for approval"
sed 's/mfaConfiguration: OPTIONAL/mfaConfiguration: "ON"/' "$state/policy.yaml" >"$state/on.yaml"
show "$bin" apply -f "$state/on.yaml" || echo "(exit code $?: not applied)"
