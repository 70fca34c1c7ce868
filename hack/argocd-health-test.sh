#!/usr/bin/env bash
# Tests the Argo CD health check of CognitoMfaPolicy with a real Lua interpreter:
# runs charts/cognito-mfa-operator/argocd/health.lua against every fixture listed
# in tests/argocd/health_test.yaml, prints one line per fixture and exits non-zero
# if any expectation fails. It also checks that every Ready reason of the operator
# (src/status.rs) has a fixture, and that each copy of the script in
# docs/argocd.md is identical to the file.
#
# Usage: hack/argocd-health-test.sh
#
# Argo CD runs health checks in gopher-lua, a Lua 5.1 implementation, with only
# the base and table libraries. The closest real interpreter is Debian's lua5.1;
# the script runs in an environment cut down the same way, so a script that
# calls string.find or s:sub fails here as it would in Argo CD.
#
# What it needs comes from Debian, downloaded with a private apt configuration
# (the system's apt state is never touched, root is not needed) and unpacked
# with dpkg-deb -x, never installed:
#   lua5.1, liblua5.1-0, libreadline8  the interpreter and its libraries
#   lua-dkjson                         reads the fixtures (converted to JSON) in Lua
#   python3-yaml                       PyYAML, to read the YAML fixtures with python3
# cached under ${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}/lua.
# The first run downloads about 0.5 MB (plus apt's package lists, deleted
# afterwards); later runs only run the tests.
#
# Needs: bash, apt-get, dpkg-deb, python3, flock, sha256sum (any Debian or Ubuntu).

set -euo pipefail

# shellcheck source=hack/private-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"

readonly PROG="${0##*/}"
CACHE_ROOT="${CMO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cognito-mfa-operator}"
# Absolute, resolved before the cd below (a relative CMO_CACHE_DIR means the caller's).
[[ "$CACHE_ROOT" == /* ]] || CACHE_ROOT="$PWD/$CACHE_ROOT"
readonly CACHE_ROOT
readonly LUA_CACHE="$CACHE_ROOT/lua"
readonly PACKAGES=(lua5.1 liblua5.1-0 libreadline8 lua-dkjson python3-yaml)
# Keyed by the package list: changing it installs into a fresh root.
ROOT="$LUA_CACHE/root-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-12)"
readonly ROOT

cd "$(dirname "$0")/.."
readonly SCRIPT=charts/cognito-mfa-operator/argocd/health.lua
readonly TESTS=tests/argocd/health_test.yaml
readonly DOC=docs/argocd.md
readonly REASONS_FROM=src/status.rs

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is required but not on PATH"
  done
}

# ---------------------------------------------------------------------------
# install: Debian packages unpacked into $ROOT
# ---------------------------------------------------------------------------

# The private apt configuration (hack/private-apt.sh), binary packages only.
setup_private_apt() {
  rm -rf "$1"
  private_apt "$1" || die "cannot set up a private apt configuration"
}

install() {
  [[ -f "$ROOT/.installed" ]] && return
  need apt-get apt-config dpkg-deb flock sha256sum
  mkdir -p "$LUA_CACHE"
  # Two runs at once (CI and a developer): one installs, the other waits.
  exec 9>"$LUA_CACHE/install.lock"
  flock 9
  if [[ -f "$ROOT/.installed" ]]; then
    exec 9>&-
    return
  fi

  local apt_dir="$LUA_CACHE/apt" work="$ROOT.partial" log_file="$LUA_CACHE/install.log" deb
  : >"$log_file"
  log "installing ${PACKAGES[*]} from Debian into $ROOT"
  setup_private_apt "$apt_dir"
  # A source that fails to update (a third-party repository, say) need not
  # matter: the download below fails clearly if a package is missing.
  if ! apt-get -q update >>"$log_file" 2>&1; then
    log "warning: apt-get update reported errors (see $log_file); trying the download anyway"
  fi
  rm -rf "$work"
  mkdir -p "$work/debs" "$work/tree"
  if ! (cd "$work/debs" && apt-get -q download "${PACKAGES[@]}") >>"$log_file" 2>&1; then
    tail -n 20 "$log_file" >&2
    die "apt-get download failed; full log: $log_file"
  fi
  for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/tree"
    printf '%s %s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" >>"$work/tree/VERSIONS"
  done
  # The package lists (~25 MB) are only needed for the download.
  rm -rf "$apt_dir" "$ROOT"
  # Renamed into place last, with the marker: an interrupted install is redone.
  touch "$work/tree/.installed"
  mv "$work/tree" "$ROOT"
  rm -rf "$work"
  log "installed: $(tr '\n' ' ' <"$ROOT/VERSIONS")"
  exec 9>&-
}

# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

need python3
install

for f in "$SCRIPT" "$TESTS" "$REASONS_FROM"; do
  [[ -f "$f" ]] || die "$f not found"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# YAML -> JSON, and the checks that need no Lua. python3 -I: no PYTHONPATH, no
# user site-packages; the PyYAML unpacked above comes first on the path. Its
# pure-Python loader runs on any python3 (the compiled part is for Debian's).
python3 -I - "$ROOT" "$TESTS" "$REASONS_FROM" "$DOC" >"$work/input.json" <<'PY'
import glob, json, os, re, sys

root, tests_path, reasons_path, doc_path = sys.argv[1:5]
sys.path[:0] = glob.glob(os.path.join(root, "usr/lib/python3/dist-packages"))
import yaml


class Loader(yaml.SafeLoader):
    """YAML as Argo CD reads it: timestamps stay strings, duplicate keys are errors."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Kubernetes sends timestamps as strings; PyYAML would make datetimes of unquoted ones.
Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


def fail(message):
    sys.exit(f"{tests_path}: {message}")


checks = []  # {name, ok, detail}: printed by the Lua side with the fixtures


# Every reason of the operator's Ready condition (Reason::as_str in src/status.rs).
with open(reasons_path, encoding="utf-8") as f:
    source = f.read()
as_str = re.search(r"fn as_str\(self\).*?\n    \}\n", source, re.S)
reasons = set(re.findall(r'Self::\w+ => "(\w+)"', as_str.group(0) if as_str else ""))
if not reasons:
    fail(f"no reasons found in {reasons_path} (Reason::as_str moved?)")

CONDITION_KEYS = {"type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"}
tests = load(tests_path)
if not isinstance(tests, dict) or not isinstance(tests.get("tests"), list) or set(tests) != {"tests"}:
    fail("expected a mapping with one key, tests: a list")
cases, covered = [], set()
for i, test in enumerate(tests["tests"], 1):
    where = f"test {i}"
    if not isinstance(test, dict) or set(test) != {"inputPath", "healthStatus"}:
        fail(f"{where}: expected exactly inputPath and healthStatus")
    where = f"test {i} ({test['inputPath']})"
    want = test["healthStatus"]
    # Unknown keys are errors: a misspelt expectation would otherwise check nothing.
    if not isinstance(want, dict) or "status" not in want or not set(want) <= {"status", "message", "messageContains"}:
        fail(f"{where}: healthStatus needs status, and may have message (exact) or messageContains")
    path = os.path.join(os.path.dirname(tests_path), test["inputPath"])
    if not os.path.isfile(path):
        fail(f"{where}: {path} not found")
    obj = load(path)
    if not isinstance(obj, dict) or obj.get("apiVersion") != "cognitomfa.io/v1alpha1" or obj.get("kind") != "CognitoMfaPolicy":
        fail(f"{where}: not a cognitomfa.io/v1alpha1 CognitoMfaPolicy")
    # The conditions must look like what src/status.rs writes.
    for c in ((obj.get("status") or {}).get("conditions") or []):
        if set(c) != CONDITION_KEYS or c["status"] not in ("True", "False", "Unknown"):
            fail(f"{where}: condition {c.get('type')!r} is not shaped like the operator's "
                 f"({', '.join(sorted(CONDITION_KEYS))}; status a quoted \"True\"/\"False\")")
        if c["type"] in ("Ready", "Stalled") and c["reason"] not in reasons:
            fail(f"{where}: {c['type']} reason {c['reason']!r} is not one of the operator's")
        if c["type"] == "Ready":
            covered.add(c["reason"])
    cases.append({"name": test["inputPath"], "want": want, "obj": obj})

missing = sorted(reasons - covered)
checks.append({
    "name": f"every Ready reason of {reasons_path} has a fixture ({len(reasons)})",
    "ok": not missing,
    "detail": "missing: " + ", ".join(missing),
})

# Copies of the script in the docs: the block under each argocd-cm key.
KEY = re.compile(r"^(\s*)resource\.customizations\.health\.cognitomfa\.io_CognitoMfaPolicy: \|\s*$")
copies = []
if os.path.isfile(doc_path):
    with open(doc_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines):
        m = KEY.match(line)
        if not m:
            continue
        block = []
        for body in lines[n + 1:]:
            if body.strip() and len(body) - len(body.lstrip()) <= len(m.group(1)):
                break
            block.append(body)
        while block and not block[-1].strip():
            block.pop()
        indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
        # A YAML literal block keeps one final newline (clip chomping).
        copies.append({"line": n + 1, "text": "\n".join(b[indent:] for b in block) + "\n"})

json.dump({"cases": cases, "checks": checks, "docPath": doc_path, "docCopies": copies}, sys.stdout)
PY

# The fixtures, in a Lua 5.1 whose environment is cut down to what Argo CD
# gives a health script. LUA_INIT is unset and the module paths point only into
# $ROOT, so nothing from the machine's own Lua setup leaks in.
lib_path=$(find "$ROOT" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd: -)
env -u LUA_INIT \
  LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  LUA_PATH="$ROOT/usr/share/lua/5.1/?.lua" LUA_CPATH="$ROOT/usr/lib/nothing/?.so" \
  "$ROOT/usr/bin/lua5.1" - "$SCRIPT" "$work/input.json" <<'LUA'
local json = require("dkjson")
local scriptPath, inputPath = arg[1], arg[2]

local function readAll(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local source = readAll(scriptPath)
-- No metatables on the decoded tables (the trailing nils): gopher-lua's
-- objects have none either.
local input, _, err = json.decode(readAll(inputPath), 1, nil, nil, nil)
assert(input, err)

-- What Argo CD's Lua VM offers a custom health check (util/lua/lua.go): the
-- base library and the table library; no string, math, io, os or debug.
local BASE = {
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
  "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring",
  "type", "unpack", "xpcall", "_VERSION",
}
local VALID = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }

-- Health as Argo CD would report it: a script error or an invalid return
-- becomes Unknown, as in ExecuteHealthLua.
local function health(obj)
  local chunk, loadErr = loadstring(source, "=health.lua")
  if not chunk then
    return { status = "Unknown", message = loadErr }
  end
  local env = { obj = obj, table = {} }
  for _, name in ipairs(BASE) do
    env[name] = _G[name]
  end
  for k, v in pairs(table) do
    env.table[k] = v
  end
  env._G = env
  setfenv(chunk, env)
  -- Without gopher-lua's string library, strings have no methods either.
  local stringMeta = debug.getmetatable("")
  local stringIndex = stringMeta.__index
  stringMeta.__index = nil
  -- Argo CD stops a script after one second; a loop that never ends fails here too.
  debug.sethook(function() error("health.lua ran too long", 2) end, "", 1e7)
  local ok, hs = pcall(chunk)
  debug.sethook()
  stringMeta.__index = stringIndex
  if not ok then
    return { status = "Unknown", message = tostring(hs) }
  end
  if type(hs) ~= "table" then
    return { status = "Unknown", message = "expect table output from Lua script, not " .. type(hs) }
  end
  if hs.message ~= nil and type(hs.message) ~= "string" then
    return { status = "Unknown", message = "hs.message is a " .. type(hs.message) .. ", not a string" }
  end
  if not VALID[hs.status] then
    return { status = "Unknown", message = "Lua returned an invalid health status" }
  end
  return hs
end

local function short(s, n)
  s = s or ""
  if #s > n then
    return s:sub(1, n - 3) .. "..."
  end
  return s
end

local passed, failed = 0, 0
local function report(ok, label, detail)
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
  end
  print(string.format("%-4s  %s%s", ok and "ok" or "FAIL", label, detail ~= "" and ("  " .. detail) or ""))
end

for _, case in ipairs(input.cases) do
  local want, got = case.want, health(case.obj)
  local message = got.message or ""
  local problems = {}
  if got.status ~= want.status then
    problems[#problems + 1] = "status " .. tostring(got.status) .. ", want " .. want.status
  end
  if want.message ~= nil and message ~= want.message then
    problems[#problems + 1] = string.format("message %q, want %q", message, want.message)
  end
  if want.messageContains ~= nil and not message:find(want.messageContains, 1, true) then
    problems[#problems + 1] = string.format("message %q does not contain %q", message, want.messageContains)
  end
  local label = string.format("%-11s  %-46s", want.status, case.name)
  if #problems == 0 then
    report(true, label, short(message, 70))
  else
    report(false, label, table.concat(problems, "; "))
  end
end

for _, check in ipairs(input.checks) do
  report(check.ok, check.name, check.ok and "" or check.detail)
end

if #input.docCopies == 0 then
  report(false, input.docPath .. " has the script for argocd-cm", "no copy found under the argocd-cm key")
end
for _, copy in ipairs(input.docCopies) do
  local label = string.format("%s:%d is a copy of %s", input.docPath, copy.line, scriptPath)
  if copy.text == source then
    report(true, label, "")
  else
    -- Point at the first line that differs.
    local docLines, fileLines = {}, {}
    for l in (copy.text .. "\n"):gmatch("(.-)\n") do
      docLines[#docLines + 1] = l
    end
    for l in (source .. "\n"):gmatch("(.-)\n") do
      fileLines[#fileLines + 1] = l
    end
    local n = 1
    while docLines[n] == fileLines[n] and n <= #docLines do
      n = n + 1
    end
    report(false, label, string.format("line %d of the script: doc has %q, file has %q",
      n, docLines[n] or "(end)", fileLines[n] or "(end)"))
  end
end

print(string.format("argocd: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
LUA
