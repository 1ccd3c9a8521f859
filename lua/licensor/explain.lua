-- licensor.explain -- why licensor decides what it decides for one license:
-- the chain of rules (R1-R15, doc/rules.md section 4) behind a decision,
-- each with its inputs, the policy layer that set each policy value it
-- read, the policy hook (and version) that changed it, and its outcome.
--
--   explain.explain(cat, lic, opts) -> report | nil, message, code
--   cat:explain(lic, opts)           the same (the C catalogue and a policy's W)
--   store:explain(key, opts)         with the license's installations and case
--   explain.text(report)             for support staff (and tostring(report))
--   explain.json(report)             for scripts
--   explain.because(report, code)    the one line a gateway refusal carries
--
-- opts = { on = DAY, build = N, server = NAME, from = N, installations = {...},
-- case = {...}, target = {edition=, level=}, policy = P, brief = true }
-- (brief: only the chain behind the answer, as a gateway refusal needs it:
-- no R13 barrier listing, no window, ladder or prices).  The question asked:
--   server: may SERVER come in on DAY (R1-R7 and R5 for `build` when given,
--           R9 its installation, R10 admission and the window; fail-over);
--   build:  may the license install build N on DAY (R1-R7, R5, R13's
--           rollback barriers below the eligible build, or from `from`);
--   license (neither): the build it may install, the migration window and
--           fraud ladder (R10, R11) when installations are given, the M&S
--           renewal price (R15) and, with `target`, the upgrade quote (R12).
--
-- The report is plain data: { key, day, question, ok, code, outcome,
-- because, policy, steps = { { rule, name, inputs, layers, layer, hook,
-- version, because, code, outcome }, ... } }.  Nothing here decides
-- anything: every outcome is the answer of the catalogue's own call (the
-- C core's, through the policy's wrapper when one is active), and
-- explain only says which call, on what, answered what.  It writes nothing.
local core = require "licensor.core"
local money = require "licensor.money"

local type, tostring, ipairs, pairs = type, tostring, ipairs, pairs
local pcall, error, select = pcall, error, select
local setmetatable, next, floor = setmetatable, next, math.floor
local concat, sort = table.concat, table.sort
local unpack = table.unpack or unpack   -- luacheck: ignore 143 unpack

local _M = {}

-- The rules' names, as doc/rules.md section 4 gives them.
local RULES = {
  R1 = "Perpetual licenses", R2 = "M&S", R3 = "Lapsed M&S", R4 = "Version lock",
  R5 = "Backwards compatible", R6 = "Lease", R7 = "Trial", R8 = "Add-ons", R9 = "Installations",
  R10 = "Migration window", R11 = "Escalation", R12 = "Upgrades", R13 = "Rollback", R14 = "Transfer",
  R15 = "Renewal",
}
_M.RULES = RULES

-- The longest `because` a report carries (the gateway answers it on every
-- refusal: one line, never a page).
local MAX_BECAUSE = 400

local function pack(...)
  return { n = select("#", ...), ... }
end

local function build_text(b)
  return "build " .. b.number .. " (" .. b.version .. ", released " .. b.released .. ")"
end

local function add_days(date, n)
  return core.date(core.day(date) + n)
end

------------------------------------------------------------------------
-- Layers and hooks
------------------------------------------------------------------------

-- The catalogue object that answers, the C catalogue under it, and the
-- policy (P) of a policy's wrapper W (licensor.policy.bind): W.raw is the
-- C catalogue, W.policy_file the policy.  A plain C catalogue has no policy.
-- opts.policy names the policy when the catalogue is not wrapped (a
-- policy of settings and layers only changes values, not decisions).
local function unwrap(cat, P)
  if type(cat) == "table" and cat.raw ~= nil then
    P = cat.policy_file
    return cat, cat.raw, P, cat
  end
  return cat, cat, P, nil
end

-- The layers a license's policy values come from, least specific first:
-- the policy's own account (P:layers), or without a policy the catalogue
-- and the override stored on the license.
local function layers_of(raw, P, lic, on)
  if P then return P:layers(lic, on, raw) end
  local list = { { layer = "catalogue", values = raw:policy() } }
  if type(lic.policy_override) == "table" and next(lic.policy_override) ~= nil then
    list[#list + 1] = { layer = "license",
                        values = lic.policy_override }
  end
  return list
end

-- The layer that set a policy key (the most specific one holding it) and
-- its place in the list.
local function layer_of(c, key)
  local layers = c.layers
  for i = #layers, 1, -1 do
    local values = layers[i].values
    if type(values) == "table" and values[key] ~= nil then return layers[i].layer, i end
  end
  return "catalogue", 1
end

-- Runs W[method](W, ...) with W.trace set, and answers the decisions it
-- traced and the method's results.  A plain catalogue traces nothing.
local function traced(c, method, ...)
  local cat = c.cat
  if not c.W then return {}, cat[method](cat, ...) end
  local W = c.W
  local saved, trace = W.trace, {}
  W.trace = trace
  local results = pack(pcall(cat[method], cat, ...))
  W.trace = saved
  if not results[1] then error(results[2], 0) end
  return trace, unpack(results, 2, results.n)
end

-- A hooked value, said in a few words: a build number as a build, an
-- admission as admitted or refused, a list of steps or offsets as a list.
local function describe(v, hook)
  if v == nil then return "none" end
  if hook == "eligible" and type(v) == "number" then return "build " .. v end
  if hook == "admission" and type(v) == "boolean" then return v and "admitted" or "refused" end
  if type(v) ~= "table" then return tostring(v) end
  if #v == 0 and next(v) == nil then return "none" end
  if v.number and v.version then return "build " .. v.number .. " (" .. v.version .. ")" end
  if v.admit ~= nil then return v.admit and "admit" or "refuse" end
  if v.price ~= nil then return tostring(v.price) end
  if v.steps then return #v.steps == 0 and "no steps" or concat(v.steps, ", ") end
  if v.offsets then return concat(v.offsets, ", ") end
  if #v > 0 then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return concat(parts, ", ")
  end
  local keys, parts = {}, {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(v[k]) end
  return concat(parts, " ")
end

------------------------------------------------------------------------
-- Steps
------------------------------------------------------------------------

-- Adds a step: rule, its outcome (a short sentence), its inputs and the
-- policy keys it read (each shown with the layer that set it; `layer` is
-- the most specific of them).
local function step(c, rule, outcome, inputs, keys, code)
  local s = { rule = rule, name = RULES[rule], inputs = inputs or {}, outcome = outcome, code = code }
  if keys and #keys > 0 then
    local layers, best, best_at = {}, nil, 0
    for _, k in ipairs(keys) do
      s.inputs[k] = c.values[k]
      local layer, at = layer_of(c, k)
      layers[k] = layer
      if at > best_at then best, best_at = layer, at end
    end
    s.layers, s.layer = layers, best
  end
  c.steps[#c.steps + 1] = s
  return s
end

-- The steps of the hooks a call traced, each hook once per report (a hook
-- that several calls run, eligible inside can_install, is shown where it
-- first decided).
local function hook_steps(c, trace)
  local added = {}
  for _, e in ipairs(trace) do
    local id = tostring(e.hook) .. " " .. tostring(e.rule)
    if not c.hooks_shown[id] then
      c.hooks_shown[id] = true
      local failed = e.failure
      local before, after = describe(e.before, e.hook), describe(e.after, e.hook)
      local outcome
      if failed then
        outcome = "the hook failed (" .. tostring(failed) .. "): the built-in decision stands, " .. before
      elseif before == after then
        outcome = after .. " (the built-in decision stands)"
      else
        outcome = after .. " instead of " .. before
      end
      local s = { rule = e.rule, name = RULES[e.rule], hook = e.hook, version = e.version or c.version,
                  because = e.because, failure = failed, inputs = { before = before, after = after },
                  outcome = outcome }
      c.steps[#c.steps + 1] = s
      added[#added + 1] = s
    end
  end
  return added
end

-- The one-line account of a step: "R3: outcome", a hook's "R3 eligible
-- hook (policy v3): after (because)".
local function line_of(s)
  if s.hook then
    local version = s.version and (" (policy v" .. tostring(s.version) .. ")") or ""
    return s.rule .. " " .. s.hook .. " hook" .. version ..
      ": " .. s.outcome .. (s.because and (" -- " .. s.because) or "")
  end
  return s.rule .. ": " .. s.outcome
end

local function because_of(list)
  local parts = {}
  for _, s in ipairs(list) do parts[#parts + 1] = line_of(s) end
  local text = concat(parts, "; "):gsub("[%c]", " ")
  if #text > MAX_BECAUSE then
    text = text:sub(1, MAX_BECAUSE - 3)
    -- never end inside a UTF-8 sequence
    text = text:gsub("[\192-\255][\128-\191]*$", "") .. "..."
  end
  return text
end

------------------------------------------------------------------------
-- R1-R7: the build a license may install
------------------------------------------------------------------------

-- Adds the eligibility steps; answers the deciding steps.  c.eligible is
-- the build record (hooked when a policy is active), or nil with
-- c.refusal = {code=, message=}.
local function eligibility(c)
  local lic, on = c.lic, c.on
  local trace, build, msg, code = traced(c, "eligible", lic, on)
  c.eligible = build
  if not build then c.refusal = { code = code, message = msg } end
  local kind = lic.kind or "perpetual"
  local r1 = { kind = kind, start = lic.start, disabled = lic.disabled }
  if code == "unknown_product" or code == "invalid_license" or code == "invalid_date" then
    return { step(c, "R1", "refused (" .. code .. "): " .. tostring(msg), r1, nil, code) }
  end
  if code == "disabled" then
    return { step(c, "R1", "the key is disabled since " .. tostring(lic.disabled), r1, nil, code) }
  end
  if code == "not_started" then
    return { step(c, "R1", "not started: the license starts on " .. tostring(lic.start), r1, nil, code) }
  end
  step(c, "R1", kind == "perpetual" and
                ("valid: started " .. tostring(lic.start) .. ", never expires, not disabled")
                or ("started " .. tostring(lic.start) .. ", not disabled"), r1)
  local rule, basis, keys
  local inputs = {}
  if lic.version_lock then
    rule, inputs.version_lock = "R4", lic.version_lock
    basis = "tied to major " .. tostring(lic.version_lock) ..
      ": the last build of that major released by " .. on
  elseif kind == "lease" then
    rule, inputs.start, inputs.lease_ended = "R6", lic.start, lic.lease_ended
    basis = lic.lease_ended and ("the lease ends on " .. lic.lease_ended) or "the lease runs"
    if code ~= "expired" then basis = basis .. ": the newest build released by " .. on end
  elseif kind == "trial" then
    rule, inputs.start = "R7", lic.start
    if lic.trial_days then inputs.trial_days = lic.trial_days else keys = { "trial_days" } end
    local days = lic.trial_days or c.values.trial_days
    local last = add_days(lic.start, days - 1)
    inputs.last_day = last
    basis = "the trial's last day is " .. tostring(last)
    if code ~= "expired" then basis = basis .. ": the newest build released by " .. on end
  elseif not lic.ms_expires then
    rule, inputs.start = "R3", lic.start
    basis = "bought without M&S: the newest build released by its start " .. tostring(lic.start)
  elseif lic.ms_expires >= on then
    rule, inputs.ms_expires = "R2", lic.ms_expires
    basis = "M&S is active through " .. lic.ms_expires .. ": the newest build released by " .. on
  else
    rule, inputs.ms_expires = "R3", lic.ms_expires
    basis = "M&S ended " .. lic.ms_expires .. ": the newest build released by then"
  end
  -- The built-in answer, before any hook (the C core, with the license's
  -- layered values).
  local built, bmsg, bcode = c.raw:eligible(lic, on)
  local outcome
  if built then outcome = basis .. " is " .. build_text(built)
  else outcome = basis .. "; refused (" .. tostring(bcode) .. "): " .. tostring(bmsg) end
  local decisive = { step(c, rule, outcome, inputs, keys, not built and bcode or nil) }
  for _, s in ipairs(hook_steps(c, trace)) do decisive[#decisive + 1] = s end
  return decisive
end

-- The lowest build above `number`, up to `eligible`, from which rolling
-- back to `number` is refused (nil: none).  Refused from X means refused
-- from every later build too (the barrier stays between them), so a
-- binary search over the product's builds asks R13 a few times only.
local function first_barrier(c, number, eligible)
  local builds = c.raw:builds(c.lic.product)
  local lo, hi = 1, #builds
  while lo <= hi and builds[lo].number <= number do lo = lo + 1 end
  while hi >= lo and builds[hi].number > eligible do hi = hi - 1 end
  if lo > hi or c.cat:can_rollback(c.lic, builds[hi].number, number) then return nil end
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if c.cat:can_rollback(c.lic, builds[mid].number, number) then lo = mid + 1 else hi = mid end
  end
  return builds[lo].number
end

-- R5 (and R13 below the eligible build) for build N.
local function may_install(c, number, from)
  local lic, on = c.lic, c.on
  local trace, ok, msg, code = traced(c, "can_install", lic, number, on)
  local eligible = c.eligible and c.eligible.number
  local s
  if ok then
    s = step(c, "R5", "build " .. number .. " may be installed: it is not newer than build " ..
                      tostring(eligible),
             { build = number, eligible = eligible })
  else
    s = step(c, "R5", "refused (" .. tostring(code) .. "): " .. tostring(msg),
             { build = number, eligible = eligible }, nil, code)
  end
  local decisive = { s }
  for _, h in ipairs(hook_steps(c, trace)) do decisive[#decisive + 1] = h end
  if not ok then return false, code, msg, decisive end
  -- R13: going back from `from`, or where the barriers are below the
  -- eligible build.
  if from and number < from then
    local back, bmsg, bcode = c.cat:can_rollback(lic, from, number)
    local r = step(c, "R13", back and
                     ("rolling back from build " .. from .. " to " .. number .. " is allowed")
                     or ("refused (" .. tostring(bcode) .. "): " .. tostring(bmsg)),
                   { from = from, to = number }, nil, not back and bcode or nil)
    if not back then return false, bcode, bmsg, { r, s } end
  elseif eligible and number < eligible and not c.brief then
    local barrier = first_barrier(c, number, eligible)
    step(c, "R13", barrier and
                   ("a server on build " .. barrier .. " or newer may not roll back to " .. number ..
                    " (rollback_barrier); an older one may")
                   or ("no build from " .. number .. " to " .. eligible .. " forbids rolling back to " ..
                       number),
         { to = number, barrier = barrier, eligible = eligible })
  end
  return true, nil, nil, decisive
end

------------------------------------------------------------------------
-- R9-R11: servers, the window and the ladder
------------------------------------------------------------------------

-- The newest installation of server never deactivated (it may have lapsed).
local function current_of(installs, server)
  for i = #installs, 1, -1 do
    local inst = installs[i]
    if inst.server == server and inst.deactivated == nil then return inst end
  end
end

local function window_text(w)
  local text = w.state .. ": " .. w.active .. " of " .. w.allowed .. " allowed installations active"
  if w.since then text = text .. ", excess since " .. w.since .. ", window until " .. tostring(w.deadline) end
  if w.parked and w.parked > 0 then text = text .. " (" .. w.parked .. " only held by a certificate)" end
  return text
end

local WINDOW_KEYS = { "migration_days", "migration_gap_days", "migration_extra", "extra_servers",
                      "checkin_grace_days" }

-- May `server` come in on the day?  Answers ok, code, message, decisive.
local function admission(c, server)
  local lic, on = c.lic, c.on
  local installs = c.installations
  local allowed = (lic.failover and 2 or 1) + c.raw:policy(lic).extra_servers
  local current = current_of(installs, server)
  local active = current and c.raw:installation_active(current, on, lic)
  local inputs = { server = server, failover = lic.failover == true, allowed = allowed,
                   last_seen = current and (current.last_seen or current.first_seen) or nil }
  if active then
    local s = step(c, "R9", "server '" .. server .. "' is active (last seen " .. tostring(inputs.last_seen) ..
                   "): activating it again is a check-in, never refused for the window", inputs,
                   { "checkin_grace_days" })
    return true, nil, nil, { s }
  end
  local why = current and "silent past the check-in grace" or "no installation"
  local latest
  for i = #installs, 1, -1 do
    if installs[i].server == server then latest = installs[i] break end
  end
  if not current and latest then why = "deactivated on " .. tostring(latest.deactivated) end
  local r9 = step(c, "R9", "server '" .. server .. "' has no installation active on " .. on .. " (" .. why ..
                  "): it comes in as a new server, through R10's admission (" .. allowed ..
                  (lic.failover and " allowed with fail-over)" or " allowed without fail-over)"),
                  inputs, { "checkin_grace_days", "extra_servers" }, "not_activated")
  c.not_activated = r9
  local trace, admitted, a, b, d = traced(c, "admission", lic, installs, on, server)
  local window, code, msg
  if admitted then window = a else msg, code, window = a, b, d end
  local w = type(window) == "table" and window or {}
  local ins = { active = w.active, allowed = w.allowed or allowed, state = w.state, since = w.since,
                deadline = w.deadline }
  local s
  if admitted then
    s = step(c, "R10", "admitted: " .. (w.active and w.active <= allowed and
                        ("within the allowance, " .. w.active .. " of " .. allowed) or
                        ("as a migration, " .. tostring(w.active) .. " active of " .. allowed ..
                         " allowed until " .. tostring(w.deadline))), ins, WINDOW_KEYS)
  else
    s = step(c, "R10", "refused (" .. tostring(code) .. "): " .. tostring(msg), ins, WINDOW_KEYS, code)
  end
  local decisive = { s }
  for _, h in ipairs(hook_steps(c, trace)) do decisive[#decisive + 1] = h end
  return admitted and true or false, code, msg, decisive
end

local LADDER_KEYS = { "migration_days", "phone_after_days", "disable_after_days", "case_cooldown_days" }

-- The window (R10) and, when the excess is fraud or a case is open, the
-- ladder (R11), as a sweep on the day would work them.
local function window_and_ladder(c)
  local lic, on = c.lic, c.on
  local w = c.raw:migration(lic, c.installations, on)
  if type(w) ~= "table" then return end
  step(c, "R10", window_text(w), { active = w.active, allowed = w.allowed, state = w.state, since = w.since,
                                   deadline = w.deadline, parked = w.parked }, WINDOW_KEYS)
  local case = c.case
  if w.state == "ok" then
    if case and not case.closed then
      step(c, "R11", "the excess ended: the next sweep closes case " .. tostring(case.id), { case = case.id })
    end
    return
  end
  if not case then
    if w.state ~= "fraud" then return end
    if lic.disabled and lic.disabled <= on then
      step(c, "R11", "the key is disabled for another reason: no new case", { disabled = lic.disabled })
      return
    end
    case = { since = w.since }
  elseif w.since then
    case = { id = case.id, since = w.since, first_step = case.first_step, phoned = case.phoned,
             disabled = case.disabled, closed = case.closed }
  end
  local inputs = { case = case.id, since = case.since, fraud_day = case.since and
                   add_days(case.since, c.values.migration_days) or nil, first_step = case.first_step,
                   phoned = case.phoned, disabled = case.disabled, resumed_from = case.closed }
  if w.parked and w.active - w.parked <= w.allowed then
    step(c, "R11", "no step: the excess is only certificates of deactivated servers (an honest move)", inputs,
         LADDER_KEYS)
    return
  end
  local trace, due = traced(c, "ladder", case, on, lic)
  local outcome
  if type(due) == "table" and #due > 0 then
    outcome = "due on " .. on .. ": " .. concat(due, ", ")
  elseif case.disabled then
    outcome = "every step is taken: the key was disabled on " .. case.disabled
  elseif not case.first_step then
    outcome = "nothing due yet: the first step falls due on " .. tostring(inputs.fraud_day)
  else
    local phone = add_days(case.first_step, c.values.phone_after_days)
    local disable = add_days(case.first_step, c.values.disable_after_days)
    outcome = "nothing due on " .. on .. (case.phoned and "" or ("; phone on " .. phone)) ..
      "; disable on " .. disable
  end
  step(c, "R11", outcome, inputs, LADDER_KEYS)
  hook_steps(c, trace)
end

------------------------------------------------------------------------
-- R12, R15: prices
------------------------------------------------------------------------

-- The license's price in the eligible build's major (nil: none).
local function license_price(c)
  local b = c.eligible
  if not b then return nil end
  for _, p in ipairs(c.raw:prices(c.lic.product)) do
    if p.major == b.major and p.edition == c.lic.edition and p.level == c.lic.level then
      return p.price, b.major
    end
  end
end

-- R15: what renewing on the day does and what a term of M&S costs
-- (store.common.renewal_price's formula: ms_percent of the license's price
-- in its eligible major, then the price hook).
local function renewal(c)
  local lic, on = c.lic, c.on
  if (lic.kind or "perpetual") ~= "perpetual" then return end
  local values, currency = c.values, c.raw:currency()
  local renewed = core.renew(lic, on, { months = values.ms_months, basis = values.renewal_basis })
  local inputs = { ms_expires = lic.ms_expires, renews_to = renewed and renewed.ms_expires or nil }
  local price, major = license_price(c)
  local keys = { "ms_months", "renewal_basis", "ms_percent" }
  if values.ms_percent == 0 or not price then
    step(c, "R15", "renewing on " .. on .. " moves ms_expires to " .. tostring(inputs.renews_to) ..
         (values.ms_percent == 0 and "; M&S is not priced (ms_percent 0)" or "; no price for this license"),
         inputs, keys)
    return
  end
  local cost = floor(price * values.ms_percent / 100)
  inputs.license_price, inputs.major = price, major
  local trace, hooked = {}, cost
  if c.W and c.cat.renewal_price then trace, hooked = traced(c, "renewal_price", lic, on, cost, currency) end
  if type(hooked) ~= "number" then hooked = cost end
  step(c, "R15", "renewing on " .. on .. " moves ms_expires to " .. tostring(inputs.renews_to) ..
       "; a term costs " .. money.format(cost, currency) .. " (" .. values.ms_percent .. "% of " ..
       money.format(price, currency) .. ")", inputs, keys)
  c.renewal_price = hooked
  hook_steps(c, trace)
end

-- R12: the upgrade to target's quote.
local function upgrade(c, target)
  local trace, quote, msg, code = traced(c, "quote_upgrade", c.lic, target, c.on)
  local inputs = { edition = target.edition or c.lic.edition, level = target.level or c.lic.level,
                   major = target.major }
  local s
  if quote then
    s = step(c, "R12", "the upgrade costs " .. money.format(quote, c.raw:currency()), inputs)
  else
    s = step(c, "R12", "refused (" .. tostring(code) .. "): " .. tostring(msg), inputs, nil, code)
  end
  local decisive = { s }
  for _, h in ipairs(hook_steps(c, trace)) do decisive[#decisive + 1] = h end
  return quote, code, msg, decisive
end

------------------------------------------------------------------------
-- The report
------------------------------------------------------------------------

-- The layers above the catalogue, each with the keys it sets (and a
-- settings hook's because), or nil when only the catalogue speaks.
local function layer_summary(layers)
  local list = {}
  for i = 2, #layers do
    local l, keys = layers[i], {}
    local values = type(l.values) == "table" and l.values or {}
    for k in pairs(values) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    if #keys > 0 then list[#list + 1] = { layer = l.layer, keys = keys, because = l.because } end
  end
  return #list > 0 and list or nil
end

local Report = {}
Report.__index = Report

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("bad argument #2 to 'explain' (options table expected)", 3) end
  local b = opts.build
  if b ~= nil and (type(b) ~= "number" or b ~= b or b % 1 ~= 0) then
    error("bad argument #2 to 'explain' (build must be a build number)", 3)
  end
  if opts.server ~= nil and type(opts.server) ~= "string" then
    error("bad argument #2 to 'explain' (server must be a string)", 3)
  end
  if opts.installations ~= nil and type(opts.installations) ~= "table" then
    error("bad argument #2 to 'explain' (installations must be a list)", 3)
  end
  return opts
end

-- explain.explain(cat, lic, opts) -> report, or nil, message, code (a day
-- that is not one: invalid_date).  cat is a catalogue (C) or a policy's
-- wrapper; lic a license table (section 3), with lic.policy when the
-- store resolved layered values for it.
local function explain(cat, lic, opts)
  if type(lic) ~= "table" then error("bad argument #1 to 'explain' (license table expected)", 3) end
  opts = check_opts(opts)
  local on = opts.on
  if on == nil then on = core.today() end
  if type(on) ~= "string" or not core.day(on) then
    return nil, "on: date YYYY-MM-DD expected", "invalid_date"
  end
  local W, raw, P
  cat, raw, P, W = unwrap(cat, opts.policy)
  local c = { cat = cat, raw = raw, W = W, P = P, lic = lic, on = on, steps = {}, hooks_shown = {},
              brief = opts.brief,
              installations = opts.installations or {}, case = opts.case,
              version = P and P.version or nil }
  c.values = raw:policy(lic)
  c.layers = layers_of(raw, P, lic, on)
  local report = { key = lic.key, day = on, policy = c.version, policy_name = P and P.name or nil }
  local ok, code, decisive, _
  local decided = eligibility(c)
  if opts.server then
    report.question = "server"
    if opts.build then
      if c.eligible then
        local good, why, _, d = may_install(c, opts.build, opts.from)
        if not good then
          ok, code, decisive = false, why, d
          for _, s in ipairs(decided) do decisive[#decisive + 1] = s end
        end
      else
        ok, code, decisive = false, c.refusal.code, decided
      end
    end
    if ok == nil then
      ok, code, _, decisive = admission(c, opts.server)
    end
    report.outcome = (ok and "server '" .. opts.server .. "' may come in" or
                      "server '" .. opts.server .. "' may not come in") ..
                     (opts.build and (" on build " .. opts.build) or "")
  elseif opts.build then
    report.question = "build"
    if c.eligible then
      ok, code, _, decisive = may_install(c, opts.build, opts.from)
      -- what the eligible build rests on follows what was asked of it
      for _, s in ipairs(decided) do decisive[#decisive + 1] = s end
    else
      ok, code, decisive = false, c.refusal.code, decided
    end
    report.outcome = (ok and "may install build " or "may not install build ") .. opts.build
  else
    report.question = "license"
    ok, decisive = c.eligible ~= nil, decided
    code = c.refusal and c.refusal.code
    report.outcome = c.eligible and ("may install " .. build_text(c.eligible) .. " and any earlier build") or
                     ("may install nothing (" .. tostring(code) .. ")")
    if not c.brief then
      if opts.installations or opts.case then window_and_ladder(c) end
      -- a license the catalogue cannot read has no renewal to speak of
      if code ~= "unknown_product" and code ~= "invalid_license" then renewal(c) end
      if opts.target then upgrade(c, opts.target) end
    end
  end
  report.ok, report.code = ok, code
  report.eligible = c.eligible and c.eligible.number or nil
  report.renewal_price = c.renewal_price
  report.because = because_of(decisive)
  report.steps = c.steps
  report.layers = layer_summary(c.layers)
  return setmetatable(report, Report)
end

-- Explaining asks the hooks again: a failure was logged and counted when
-- the decision was made, so here it is only shown (a step's failure), not
-- logged and counted once more for each refusal's `because`.
function _M.explain(cat, lic, opts)
  local P = type(cat) == "table" and cat.policy_file or type(opts) == "table" and opts.policy or nil
  if type(P) ~= "table" then return explain(cat, lic, opts) end
  local was = P.quiet
  P.quiet = true
  local results = pack(pcall(explain, cat, lic, opts))
  P.quiet = was
  if not results[1] then error(results[2], 0) end
  return unpack(results, 2, results.n)
end

-- The rule behind each refusal code, for a refusal no step of a report
-- names (a check-in's wrong_machine, an admin workflow's downgrade).
local CODE_RULE = {
  disabled = "R1", not_started = "R1", no_build = "R3", newer_than_eligible = "R5", unknown_build = "R5",
  ms_expired = "R8", unknown_addon = "R8", already_owned = "R8",
  not_activated = "R9", wrong_machine = "R9", too_many_installations = "R10", migration_window_over = "R10",
  policy_refused = "R10",
  downgrade = "R12", same_license = "R12", different_major = "R12", no_price = "R12", wrong_amount = "R12",
  rollback_barrier = "R13", not_older = "R13", transfer_requires_consent = "R14",
}

-- explain.because(report, code[, message]) -> the one line for a refusal
-- with `code`: the report's own when it refused with that code, else the
-- line of the step that did (a check-in's not_activated is R9's, though
-- the same server would be admitted as a new one), else -- no report, or
-- none of its steps refused so -- the code's rule and the message.
function _M.because(report, code, message)
  if report then
    if code == nil or report.code == code then return report.because end
    for _, s in ipairs(report.steps) do
      if s.code == code then return because_of({ s }) end
    end
  end
  local rule = CODE_RULE[code]
  return because_of({ { rule = rule or tostring(code), outcome = tostring(message or code) } })
end

------------------------------------------------------------------------
-- Text and JSON
------------------------------------------------------------------------

local WIDTH = 78

-- Words of text wrapped at WIDTH, the first line after `first`, the rest
-- after `indent`.
local function wrap(out, first, indent, text)
  local line = first
  local fresh = true
  for word in tostring(text):gmatch("%S+") do
    if not fresh and #line + 1 + #word > WIDTH then
      out[#out + 1] = line
      line, fresh = indent .. word, false
    else
      line = line .. (fresh and "" or " ") .. word
      fresh = false
    end
  end
  out[#out + 1] = line
end

local function value_text(v)
  if type(v) == "table" then
    local parts = {}
    if #v > 0 then
      for i, x in ipairs(v) do parts[i] = tostring(x) end
      return "{" .. concat(parts, ", ") .. "}"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. value_text(v[k]) end
    return "{" .. concat(parts, ", ") .. "}"
  end
  return tostring(v)
end

-- explain.text(report) -> lines for people: the outcome first, the one
-- line why, then the numbered steps with their inputs (a policy value
-- followed by the layer that set it) and hooks.
function _M.text(report)
  local out = {}
  local who = report.key and ("License " .. report.key) or "The license"
  wrap(out, who .. " on " .. report.day .. ": ", "  ", report.outcome)
  wrap(out, "Because ", "  ", report.because)
  if report.policy then
    out[#out + 1] = "Policy version " .. tostring(report.policy) ..
      (report.policy_name and (" (" .. report.policy_name .. ")") or "")
  end
  for _, l in ipairs(report.layers or {}) do
    wrap(out, "Layer " .. l.layer .. " sets ", "  ", concat(l.keys, ", ") ..
         (l.because and (" -- " .. l.because) or ""))
  end
  for i, s in ipairs(report.steps) do
    local head = (" %d. %s %s"):format(i, s.rule, s.hook and (s.hook .. " hook" ..
      (s.version and (", policy version " .. tostring(s.version)) or "")) or tostring(s.name))
    wrap(out, head .. ": ", "      ", s.outcome)
    if s.because then wrap(out, "      because: ", "      ", s.because) end
    -- the inputs, then the policy values with the layer that set each
    local keys = {}
    for k in pairs(s.inputs) do keys[#keys + 1] = k end
    sort(keys)
    local plain, policy = {}, {}
    for _, k in ipairs(keys) do
      local layer = s.layers and s.layers[k]
      if layer then
        policy[#policy + 1] = k .. " " .. value_text(s.inputs[k]) .. " (" .. layer .. ")"
      else
        plain[#plain + 1] = k .. " " .. value_text(s.inputs[k])
      end
    end
    if #plain > 0 then wrap(out, "      ", "      ", concat(plain, ", ")) end
    if #policy > 0 then wrap(out, "      policy: ", "        ", concat(policy, ", ")) end
  end
  return concat(out, "\n")
end

Report.__tostring = _M.text

-- explain.json(report) -> JSON text (lists as arrays, empty inputs as {}).
function _M.json(report)
  local cjson = require("cjson").new()
  cjson.encode_sparse_array(true)
  local plain = {}
  for k, v in pairs(report) do plain[k] = v end
  return cjson.encode(plain)
end

return _M
