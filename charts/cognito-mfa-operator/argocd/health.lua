-- Argo CD health check for CognitoMfaPolicy (cognitomfa.io/v1alpha1).
--
-- This file is the source: docs/argocd.md shows how to install it, and
-- the Go test in tests/argocd/ runs it in gopher-lua, set up as Argo CD sets
-- up a health check, against the fixtures there, and checks that the copy in
-- the docs is identical.
--
-- The operator's status (src/status.rs) has observedGeneration and three
-- conditions: Ready (the pool matches the policy, or the reason why not),
-- Synced (the last exchange with AWS worked) and Stalled (the policy waits on
-- a person: a spec fix, a permission, an approval). Synced is not used: a
-- failed or throttled AWS call leaves a Ready policy Ready, and health is
-- about the pool matching the policy.
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

local status = field(obj, "status")
-- tonumber: Argo CD hands numbers over as numbers, but a string would do too.
-- Without metadata.generation (not from an API server) there is nothing to
-- compare with, and the status counts as current.
local generation = tonumber(field(field(obj, "metadata"), "generation"))
local observed = tonumber(field(status, "observedGeneration"))

-- Right after a sync the object still carries the status of the previous
-- spec (or none): its Ready says nothing about the new spec yet. Without
-- this check Argo CD would call a policy Healthy before the operator has
-- even looked at the change.
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
local stalled = condition(conditions, "Stalled")

-- The pool matches the policy (InSync, Applied, DriftCorrected). It stays
-- Ready through a passing AWS failure (Synced False), so it stays Healthy.
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = text(field(ready, "message")) or describe(ready) or "The user pool matches the policy"
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

-- Not ready but not stuck either: throttled or unavailable AWS (retried with
-- backoff), an SMS role still propagating, drift that is reported but not
-- corrected, or no Ready condition yet.
hs.status = "Progressing"
hs.message = describe(ready) or "Waiting for the operator to report readiness"
return hs
