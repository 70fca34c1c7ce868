-- Argo CD health check for CognitoMfaPolicy and CognitoMfaBaseline
-- (cognitomfa.io/v1alpha1): one script for both kinds, installed under the
-- key of each.
--
-- This file is the source: docs/argocd.md shows how to install it, and
-- the Go test in tests/argocd/ runs it in gopher-lua, set up as Argo CD sets
-- up a health check, against the fixtures there, and checks that the copies in
-- the docs are identical.
--
-- The status of both kinds has observedGeneration and three conditions:
-- Ready, Synced (the last exchange with AWS worked) and Stalled (waiting on a
-- person: a spec fix, a permission, an approval). A policy's Ready
-- (src/status.rs) says whether its pool matches the policy, or why not. A
-- baseline's Ready (src/status/baseline.rs) says whether every pool it covers
-- meets its floor (Compliant), or why not. Synced is not used, but for a
-- message: a failed or throttled AWS call leaves a Ready policy or baseline
-- Ready, and health is about the pools.
--
-- Argo CD runs this in gopher-lua with only the package, base and table
-- libraries (a reduced os only through require): no string or math library,
-- and no string methods (s:find). So
-- the script sticks to comparisons, concatenation, tonumber, type and ipairs,
-- and to Lua 5.1 (no goto, no //, no utf8).

local hs = {}

-- t[key], or nil when t is not a table: any level of the object may be
-- absent, or null (nil here).
local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

-- A non-empty string, or nil: messages are concatenated, and concatenating
-- nil (or a table) is an error, which Argo CD would show as Unknown.
local function text(v)
  if type(v) == "string" and v ~= "" then
    return v
  end
  return nil
end

-- The condition of that type, or nil.
local function condition(conditions, conditionType)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if field(c, "type") == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return field(c, "status") == "True"
end

-- "Reason: message" of a condition, or whichever of the two it has, or nil.
local function describe(c)
  local reason = text(field(c, "reason"))
  local message = text(field(c, "message"))
  if reason ~= nil and message ~= nil then
    return reason .. ": " .. message
  end
  return reason or message
end

local baseline = field(obj, "kind") == "CognitoMfaBaseline"
local status = field(obj, "status")
-- tonumber: Argo CD hands numbers over as numbers, but a string would do too.
-- Without metadata.generation (not from an API server) there is nothing to
-- compare with, and the status counts as current.
local generation = tonumber(field(field(obj, "metadata"), "generation"))
local observed = tonumber(field(status, "observedGeneration"))

-- Right after a sync the object still carries the status of the previous
-- spec (or none): its Ready says nothing about the new spec yet. Without
-- this check Argo CD would call a policy or baseline Healthy before the
-- operator has even looked at the change.
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  if generation == nil then
    hs.message = "Waiting for the operator to report status"
  elseif observed == nil then
    hs.message = "Waiting for the operator to observe generation " .. generation
  else
    hs.message = "Waiting for the operator to observe generation " .. generation
      .. " (status is for generation " .. observed .. ")"
  end
  return hs
end

local conditions = field(status, "conditions")
local ready = condition(conditions, "Ready")
local synced = condition(conditions, "Synced")
local stalled = condition(conditions, "Stalled")
local reason = field(ready, "reason")

-- A baseline stalls for a reason of its Ready (InvalidSpec, AccessDenied,
-- AwaitingApproval), or, after a complete scan, because listing the pools is
-- denied: Ready then keeps the verdict of the pools read (Compliant,
-- NonCompliant), Stalled repeats it, and Synced says what failed. The
-- operator retries, but the permission will not come back by itself:
-- Degraded, even when the verdict is Compliant.
if baseline and isTrue(stalled) and reason ~= "InvalidSpec" and reason ~= "AccessDenied"
    and reason ~= "AwaitingApproval" then
  local failed = nil
  if field(synced, "status") == "False" then
    failed = describe(synced)
  end
  local verdict = describe(ready)
  hs.status = "Degraded"
  if failed ~= nil and verdict ~= nil then
    hs.message = failed .. " (last verdict: " .. verdict .. ")"
  else
    hs.message = failed or verdict or describe(stalled) or "Waiting on a person"
  end
  return hs
end

-- The pool matches the policy (InSync, Applied, DriftCorrected), or every
-- pool the baseline covers meets its floor (Compliant). It stays Ready
-- through a passing AWS failure (Synced False), so it stays Healthy.
if isTrue(ready) then
  local fallback = "The user pool matches the policy"
  if baseline then
    fallback = "Every covered pool meets the floor"
  end
  hs.status = "Healthy"
  hs.message = text(field(ready, "message")) or describe(ready) or fallback
  return hs
end

-- Nothing changes until a person acts (invalid spec, missing pool, denied
-- permission, feature tier, prerequisite, conflict, approval, an SMS role
-- still invalid after the retries): Degraded, which also fails a sync that
-- waits on this resource. Ready's reason and message say what to do;
-- Stalled carries the same ones.
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = describe(ready) or describe(stalled) or "Waiting on a person"
  return hs
end

-- Pools below a baseline's floor that the baseline does not correct: action
-- Report, pools that policies or an older baseline own, writes that failed.
-- Not stalled (the next scan may find them fixed), but the floor is not met
-- and nothing here will meet it: Degraded. Ready's message counts them;
-- status.nonCompliant says why, pool by pool.
if baseline and reason == "NonCompliant" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

-- Not ready but not stuck either: throttled or unavailable AWS (retried with
-- backoff), an SMS role still propagating, drift that is reported but not
-- corrected, a baseline's first scan under way, or no Ready condition yet.
hs.status = "Progressing"
hs.message = describe(ready) or "Waiting for the operator to report readiness"
return hs
