-- licensor.policy -- policy files (doc/policies.md, doc/rules.md section
-- 11): compiling one, the layers of policy values it adds per product,
-- edition and license, and its hooks' decisions, each answer checked
-- against its hook's contract.  Not the catalogue wrapper that applies the
-- decisions to the rules (licensor.policy.bind) nor where a policy is kept
-- (the store).
--
--   policy.compile(source, name [, cat]) -> P | nil, "NAME:LINE: msg", "invalid_policy"
--   P:has(hook), P:overrides(lic, on [, cat]), P:layers(lic, on [, cat])
--   policy.values(P_or_nil, cat, lic, on) -> a policy value (cat:resolve_policy) or nil
--   P:decide(hook, input [, cat]) -> the checked answer | nil [, reason, why]
--
-- A hook's failure (it raised, spent a budget, or answered what its
-- contract does not allow) never reaches the caller: the built-in
-- decision stands, P.log gets one line and P.failures["HOOK REASON"]
-- counts it (P.on_failure(hook, reason) is told too, for metrics).
local core = require "licensor.core"
local sandbox = require "licensor.policy.sandbox"
local dialect = require "licensor.policy.dialect"
local constants = require "licensor.constants"

local type, error, next, pairs, ipairs, tostring, setmetatable, load, assert, require, rawget = type,
  error, next, pairs, ipairs, tostring, setmetatable, load, assert, require, rawget
local floor, huge = math.floor, math.huge
local sort, concat = table.sort, table.concat
local format, find, gsub, sub, byte = string.format, string.find, string.gsub, string.sub, string.byte
local today, check_name = core.today, core.check_name
local debug_getinfo, debug_getupvalue = debug.getinfo, debug.getupvalue
local jit = rawget(_G, "jit")

local _M = {}

-- Each call's budgets (core.run_hook): instructions executed and bytes
-- allocated (frees give nothing back).  The file's top level runs under the same ones,
-- at import and (see purity below) before each call of a hook that uses
-- its file's locals.
_M.INSTRUCTIONS = 1000000
_M.MEMORY = 8 * 1024 * 1024
-- Each call's time backstop, in milliseconds (core.run_hook's
-- limits.time_ms, reason "time"): the instruction budget is the limit,
-- this catches what it cannot see (loops of slow library calls).  A
-- second: the collector's work on a large host heap counts in it too.
_M.TIME_MS = 1000
-- The instructions the file's top level may take at import: a tenth of
-- a call's (100,000 by default).  A hook that uses the file's locals
-- runs the top level again before each call, inside that call's budget,
-- so a file whose top level took most of the budget would import and
-- then fail every call; this leaves such a hook nine tenths.
_M.TOP_LEVEL_SHARE = 10
-- The largest policy file, in bytes.
_M.MAX_SOURCE_BYTES = 1024 * 1024
-- The longest `because`, in bytes (one line).
_M.MAX_BECAUSE = 200

-- The hooks a file may define, and the rule each adjusts (for traces).
_M.HOOKS = { "settings", "eligible", "admission", "price", "ladder", "reminders" }
_M.RULES = { settings = "layers", eligible = "R3", admission = "R10", price = "R12", ladder = "R11",
             reminders = "reminders" }
local IS_HOOK = {}
for _, h in ipairs(_M.HOOKS) do IS_HOOK[h] = true end
-- Every top-level key of a policy file.
local TOP_KEYS = { name = true, products = true }
for h in pairs(IS_HOOK) do TOP_KEYS[h] = true end

-- The steps a ladder answer may name: the built-in R11 steps and the
-- policy-only notify_reseller action.
_M.LADDER_STEPS = { "email_customer", "notify_fraud_team", "phone_customer", "disable_key",
                    "notify_reseller" }
local IS_STEP = {}
for _, s in ipairs(_M.LADDER_STEPS) do IS_STEP[s] = true end

local MAX_INTEGER = constants.MAX_INTEGER

local run_hook = core.run_hook
-- core.hook_runner(limits) -> run(fn, arg), run_hook with the limits read
-- once, where the core has it (each call then skips reading them).
local hook_runner = core.hook_runner

local Policy = {}
Policy.__index = Policy

-- Messages -----------------------------------------------------------

local distance = require("licensor.spelling").distance

local function nearest(name, names)
  local best, best_d
  for candidate in pairs(names) do
    local d = distance(name, candidate)
    if d <= 2 and (not best_d or d < best_d or (d == best_d and candidate < best)) then
      best, best_d = candidate, d
    end
  end
  return best
end

-- A value as a log line or message shows it, alike on both VMs.
local function show(v)
  local tv = type(v)
  if tv == "number" then
    if v ~= v then return "NaN" end
    if v == huge then return "infinity" end
    if v == -huge then return "-infinity" end
    if v == floor(v) then return format("%.0f", v) end
    return format("%.14g", v)
  elseif tv == "string" then
    local s = gsub(sub(v, 1, 40), "%c", "?")
    return "'" .. s .. (#v > 40 and "...'" or "'")
  end
  return "a " .. tv
end
_M.show = show

-- The line of the source where the keys `names` are found one after the
-- other (each `NAME =` or `["NAME"] =`), or the last line found.
local function locate(source, names)
  local pos, line_pos = 1, nil
  for i = 1, #names do
    local name = gsub(names[i], "%p", "%%%0")
    local s = find(source, "%f[%w_]" .. name .. "%f[^%w_]%s*=", pos)
    local q = find(source, "%[%s*[\"']" .. name .. "[\"']%s*%]%s*=", pos)
    if q and (not s or q < s) then s = q end
    if not s then break end
    pos, line_pos = s + 1, s
  end
  if not line_pos then return 1 end
  local line = 1
  for _ in source:sub(1, line_pos):gmatch("\n") do line = line + 1 end
  return line
end

-- 100000 -> "100,000", as the docs write a budget.
local function thousands(n)
  local text, k = format("%d", n), 1
  while k > 0 do text, k = gsub(text, "^(%d+)(%d%d%d)", "%1,%2") end
  return text
end

local function refuse(name, line, message)
  return nil, format("%s:%d: %s", name, line, message), "invalid_policy"
end

-- Plain data -----------------------------------------------------------

-- A canonical text of plain data (sorted keys), the cache's key.
local function canon(v, out)
  local tv = type(v)
  if tv == "table" then
    local keys = {}
    for k in next, v do keys[#keys + 1] = k end
    sort(keys, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      return a < b
    end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      canon(k, out)
      out[#out + 1] = "="
      canon(v[k], out)
      out[#out + 1] = ";"
    end
    out[#out + 1] = "}"
  elseif tv == "string" then
    out[#out + 1] = format("%q", v)
  elseif tv == "number" then
    out[#out + 1] = show(v)
  else
    out[#out + 1] = tostring(v)
  end
  return out
end

local function canon_text(v)
  return concat(canon(v, {}))
end

-- Merges policy settings `over` onto `into` (a fresh table): reminders
-- kind by kind, so a layer that sets only trial reminders keeps the
-- lower layers' M&S ones.
local function merge(into, over)
  if not over then return into end
  for k, v in next, over do
    if k == "reminders" and type(v) == "table" and type(into.reminders) == "table" then
      local r = {}
      for kind, list in next, into.reminders do r[kind] = list end
      for kind, list in next, v do r[kind] = list end
      into.reminders = r
    else
      into[k] = v
    end
  end
  return into
end

local function is_empty(t)
  return t == nil or next(t) == nil
end

-- The catalogue a file without one is checked against: the bounds and
-- cross-checks of a catalogue whose policy is all defaults.
local default_cat
local function checker(cat)
  if cat then return cat end
  if not default_cat then
    default_cat = assert(core.catalogue({ products = { { id = "policy-check", name = "policy check",
                                                          editions = { "any" }, builds = {} } } }))
  end
  return default_cat
end

-- Failures -------------------------------------------------------------

local REASONS = {
  instructions = function(P) return format("ran past its instruction budget (%d)", P.limits.instructions) end,
  memory = function(P) return format("ran past its memory budget (%d bytes)", P.limits.memory) end,
  time = function(P) return format("ran past its time limit (%d ms)", P.limits.time_ms) end,
}

-- The policy as a log line names it.
local function label(P)
  if P.version then return "policy v" .. tostring(P.version) end
  if P.name then return "policy '" .. P.name .. "'" end
  return "policy (not imported)"
end
_M.label = label
Policy.__tostring = function(P) return "licensor " .. label(P) end

local function default_log(line)
  io.stderr:write(line, "\n")
end

-- Where failures go when a policy has no P.log / P.on_failure of its own:
-- policy.log(line) (default: stderr) and policy.on_failure(hook, reason,
-- P) (default: none; the gateway counts them for /metrics).
_M.log = default_log
_M.on_failure = nil

local function fail(P, hook, input, reason, why)
  if P.quiet then return nil, reason, why end   -- explain's second asking (licensor.explain)
  local key = type(input) == "table" and type(input.license) == "table" and input.license.key
  local line = format("%s %s hook%s: %s; the built-in decision stands", label(P), hook,
                      type(key) == "string" and (" (license " .. key .. ")") or "", why)
  local name = hook .. " " .. reason
  P.failures[name] = (P.failures[name] or 0) + 1
  local log = P.log or _M.log
  if log then log(line) end
  local on_failure = P.on_failure or _M.on_failure
  if on_failure then on_failure(hook, reason, P) end
  return nil, reason, why
end

-- Answers --------------------------------------------------------------

-- Why a whole number from 0 to 2^53-1 is not one, or nil.
local function not_whole(what, v)
  if type(v) ~= "number" then return format("answered %s %s, which is not a number", what, show(v)) end
  if v ~= v then return format("answered %s NaN, which is not a number", what) end
  if v < 0 then return format("answered %s %s, which is negative", what, show(v)) end
  if v == huge or v > MAX_INTEGER then
    return format("answered %s %s, which is above 2^53-1", what, show(v))
  end
  if floor(v) ~= v then return format("answered %s %s, which is not a whole number", what, show(v)) end
end

-- Why `because` is not one line of at most MAX_BECAUSE bytes of UTF-8
-- text, or nil.  Traces, explain and the log show it as it is, so it may
-- not hold bidirectional controls (U+202A-U+202E, U+2066-U+2069) that
-- would reorder what is printed after it: core.check_name's test.
local function bad_because(v)
  if type(v) ~= "string" then return format("answered because %s, which is not a string", show(v)) end
  if #v > _M.MAX_BECAUSE then
    return format("answered a because of %d bytes (at most %d)", #v, _M.MAX_BECAUSE)
  end
  if find(v, "%c") then return "answered a because that is not one line of text" end
  if find(v, "[\128-\255]") then
    local ok, msg = check_name(v, "because")
    if not ok then return "answered a because that " .. gsub(msg, "^because ", "") end
  end
end

-- Why an answer's keys are not `name` and `because` (checked), or nil.
local function check_keys(answer, name)
  local k = next(answer)
  while k ~= nil do
    if k ~= name then
      if k ~= "because" then
        if type(k) ~= "string" then return format("answered a key %s, which is not a name", show(k)) end
        return format("answered an unknown key %s", show(k))
      end
      local why = bad_because(answer.because)
      if why then return why end
    end
    k = next(answer, k)
  end
end

-- A list (keys 1..n) of at most max entries, or nil and why.
local function list_of(v, what, max)
  if type(v) ~= "table" then return nil, format("answered %s %s, which is not a list", what, show(v)) end
  local n = 0
  for k in next, v do
    n = n + 1
    if n > max then return nil, format("answered more than %d %s", max, what) end
    if type(k) ~= "number" then return nil, format("answered %s that are not a list", what) end
  end
  for i = 1, n do
    if v[i] == nil then return nil, format("answered %s that are not a list", what) end
  end
  return n
end

-- Each hook's check: (answer, input, cat) -> the checked answer (a table
-- of the host's) or nil, why.
local CHECK = {}

function CHECK.eligible(a, input, cat)
  local n, because = a.build, a.because
  -- The common answer, { build = N }, is one key: checked without a loop.
  if because ~= nil or next(a, next(a)) ~= nil then
    local why = check_keys(a, "build")
    if why then return nil, why end
  end
  if n == nil then return nil, "answered no build" end
  if type(n) ~= "number" or n ~= n or n < 0 or n > MAX_INTEGER or n % 1 ~= 0 then
    return nil, not_whole("build", n)
  end
  local built_in = input.build
  if built_in and built_in.number == n then return { build = n, record = built_in, because = because } end
  local product = input.license.product
  local rec = cat:build(product, n)
  if not rec then
    return nil, format("answered build %s, which product %s does not have", show(n), tostring(product))
  end
  if rec.released > input.day then
    return nil, format("answered build %s, released on %s, after the day of the decision (%s)",
                       show(n), rec.released, input.day)
  end
  return { build = rec.number, record = rec, because = a.because }
end

function CHECK.admission(a)
  local why = check_keys(a, "admit")
  if why then return nil, why end
  if type(a.admit) ~= "boolean" then
    return nil, format("answered admit %s, which is not a boolean", show(a.admit))
  end
  return { admit = a.admit, because = a.because }
end

function CHECK.price(a)
  local why = check_keys(a, "price")
  if why then return nil, why end
  if a.price == nil then return nil, "answered no price" end
  why = not_whole("price", a.price)
  if why then return nil, why end
  -- + 0 makes -0 (which LuaJIT's floor keeps, and Lua 5.4's makes 0) 0.
  return { price = floor(a.price) + 0, because = a.because }
end

function CHECK.ladder(a)
  local why = check_keys(a, "steps")
  if why then return nil, why end
  if a.steps == nil then return nil, "answered no steps" end
  local n, err = list_of(a.steps, "steps", #_M.LADDER_STEPS)
  if not n then return nil, err end
  local steps, seen = {}, {}
  for i = 1, n do
    local s = a.steps[i]
    if type(s) ~= "string" or not IS_STEP[s] then
      return nil, format("answered step %s, which is not a step (%s)", show(s), concat(_M.LADDER_STEPS, ", "))
    end
    if seen[s] then return nil, format("answered step '%s' twice", s) end
    seen[s] = true
    steps[i] = s
  end
  return { steps = steps, because = a.because }
end

function CHECK.reminders(a, input, cat)
  local why = check_keys(a, "offsets")
  if why then return nil, why end
  if a.offsets == nil then return nil, "answered no offsets" end
  local n, err = list_of(a.offsets, "offsets", 64)
  if not n then return nil, err end
  local offsets = {}
  for i = 1, n do
    local v = a.offsets[i]
    if type(v) ~= "number" or v ~= v or v ~= floor(v) then
      return nil, format("answered offset %s, which is not a whole number", show(v))
    end
    offsets[i] = floor(v)
  end
  local kind = input.kind
  local ok, msg = cat:resolve_policy({ reminders = { [kind] = offsets } })
  if not ok then return nil, "answered offsets that the catalogue refuses: " .. tostring(msg) end
  return { offsets = offsets, because = a.because }
end

function CHECK.settings(a, _, cat)
  local given = {}
  local n = 0
  for k, v in next, a do
    n = n + 1
    if n > 64 then return nil, "answered a table of more than 64 keys" end
    if type(k) ~= "string" then return nil, format("answered a key %s, which is not a name", show(k)) end
    if k ~= "because" then given[k] = v end
  end
  if a.because ~= nil then
    local why = bad_because(a.because)
    if why then return nil, why end
  end
  -- The values as answered are checked (a function or a table where a
  -- number belongs is refused, not dropped), and a plain copy kept.
  local ok, msg = cat:resolve_policy(given)
  if not ok then return nil, "answered " .. tostring(msg) end
  return { values = sandbox.copy(given, 3), because = a.because }
end

-- Decisions ------------------------------------------------------------

-- P:has(hook) -> does the file define it?
function Policy:has(hook)
  return self.hooks[hook] == true
end

-- The failure of a call that did not answer: its reason and why.
local function failed(P, hook, input, reason, message)
  if reason == "error" then
    return fail(P, hook, input, "error", "raised " .. gsub(tostring(message), "%c", " "))
  end
  local why = REASONS[reason]
  return fail(P, hook, input, reason, why and why(P) or tostring(message))
end

-- P:decider(hook, cat) -> decide(input [, filled]), data: P:decide for
-- one hook and catalogue, for a caller that asks often
-- (licensor.policy.bind): its ctx and lookups are made once.  A caller
-- may put the ctx's scalars (and build, as sandbox.build_view) into data
-- itself and pass filled = true; the table fields stay in input, copied
-- when the hook reads them.  nil when the file has no such hook.
function Policy:decider(hook, cat)
  local site = self:hook_site(hook, cat)
  if not site then return nil end
  local fn, ctx, data = site.fn, site.ctx, site.data
  local finish, runner = site.finish, site.run
  local state, fill, prefetch = sandbox.state, sandbox.fill, sandbox.prefetch
  local fields, field_set, eager = sandbox.FIELDS[hook], sandbox.FIELD_SET[hook], site.eager
  local n_fields, n_eager = #fields, #site.eager
  return function(input, filled)
    state.input, state.cat, state.fields = input, cat, field_set
    if not filled then fill(data, fields, input) end
    for i = 1, n_eager do prefetch(data, eager[i]) end
    local ok, result, message
    ok, result, message = runner(fn, ctx)
    state.input = false
    for i = 1, n_fields do data[fields[i]] = nil end
    if ok and result == nil then return nil end
    return finish(input, ok, result, message)
  end, data
end

-- P:hook_site(hook, cat) -> the parts of a decider, for a caller that
-- runs the call itself (licensor.policy.bind's eligible, the hottest
-- path): { fn =, limits =, ctx =, data =, eager = {field names to
-- prefetch}, finish = function(input, ok, result, message) -> P:decide's
-- answer for what run_hook answered, run = core.hook_runner(P.limits) }.
-- The caller sets sandbox.state around run(fn, ctx) and empties data
-- after it, as P:decider does.  P.limits are read when the site is made.
function Policy:hook_site(hook, cat)
  local fn = self.calls[hook]
  if not fn then return nil end
  local P, check = self, CHECK[hook]
  local ctx, data = sandbox.new_ctx()
  -- The table fields the file names (a text search: a field it reaches
  -- by a computed name is still made when read), copied before the call.
  local eager = {}
  for _, f in ipairs(sandbox.FIELDS[hook]) do
    if sandbox.EAGER[f] and find(self.source, "%f[%w_]" .. f .. "%f[^%w_]") then eager[#eager + 1] = f end
  end
  local function finish(input, ok, result, message)
    if not ok then return failed(P, hook, input, result, message) end
    if result == nil then return nil end
    if type(result) ~= "table" then
      return fail(P, hook, input, "answer", format("answered %s, not a table or nil", show(result)))
    end
    local answer, why = check(result, input, cat)
    if not answer then return fail(P, hook, input, "answer", why) end
    return answer
  end
  return { fn = fn, limits = self.limits, ctx = ctx, data = data, eager = eager, finish = finish,
           run = hook_runner(self.limits) }
end

-- P:decide(hook, input [, cat]) -> the checked answer, or nil (the hook
-- answered nil, or failed: then also the reason, "error",
-- "instructions", "memory", "time" or "answer", and why).  `input` holds the
-- ctx fields as the host has them (a function value is made on first
-- read); the hook sees a read-only ctx of copies.  cat (default P.cat)
-- is the raw catalogue the answer is checked against.
--
-- Answers are checked: eligible {build=N, record=}, admission
-- {admit=}, price {price=}, ladder {steps=}, reminders {offsets=},
-- settings {values=}; each with because when the hook gave one.
local NO_CAT = {}
function Policy:decide(hook, input, cat)
  cat = cat or self.cat
  -- Without a catalogue, hooks whose answers need none to be checked
  -- (admission, price, ladder) still decide; the others raise.
  local by_cat = self.deciders[cat or NO_CAT]
  if not by_cat then
    by_cat = {}
    self.deciders[cat or NO_CAT] = by_cat
  end
  local d = by_cat[hook]
  if d == nil then
    d = self:decider(hook, cat) or false
    by_cat[hook] = d
  end
  if not d then return nil end
  return d(input)
end

-- Layers ---------------------------------------------------------------

-- The product and edition layers of a license: two tables or nils.
local function file_layers(P, lic)
  local product = P.products[lic.product]
  if not product then return nil, nil end
  local edition = product.editions and product.editions[lic.edition]
  return product.values, edition
end

-- The settings hook's answer for lic on `on`, checked, or nil.  Its ctx
-- carries the values of the layers below it (catalogue, product,
-- edition) as ctx.policy.
local function settings_answer(P, lic, on, cat, below)
  if not P.calls.settings then return nil end
  local input = {
    day = on or today(),
    license = lic,
    policy = function()
      local pv = is_empty(below) and nil or cat:resolve_policy(below)
      return pv and pv:table() or cat:policy()
    end,
  }
  return P:decide("settings", input, cat)
end

-- P:overrides(lic, on [, cat]) -> the merged product, edition and
-- settings-hook settings for lic, or nil when none (the license's stored
-- override is not included: policy.values adds it).
function Policy:overrides(lic, on, cat)
  cat = cat or self.cat
  local product, edition = file_layers(self, lic)
  local merged = merge(merge({}, product), edition)
  local answer = settings_answer(self, lic, on, cat, merged)
  if answer then merge(merged, answer.values) end
  if next(merged) == nil then return nil end
  return merged
end

-- P:layers(lic, on [, cat]) -> { { layer = NAME, values = {...} }, ... },
-- lowest first: "catalogue" (every value), "product ID", "edition ID
-- EDITION", "settings hook" (with because), "license" (the stored
-- override, lic.policy_override).  Only the layers that set something,
-- the catalogue's always.
function Policy:layers(lic, on, cat)
  cat = cat or self.cat
  local out = { { layer = "catalogue", values = cat:policy() } }
  local product, edition = file_layers(self, lic)
  if not is_empty(product) then
    out[#out + 1] = { layer = "product " .. lic.product, values = sandbox.copy(product, 3) }
  end
  if not is_empty(edition) then
    out[#out + 1] = { layer = "edition " .. lic.product .. " " .. lic.edition,
                      values = sandbox.copy(edition, 3) }
  end
  local answer = settings_answer(self, lic, on, cat, merge(merge({}, product), edition))
  if answer and not is_empty(answer.values) then
    out[#out + 1] = { layer = "settings hook", values = answer.values, because = answer.because }
  end
  if not is_empty(lic.policy_override) then
    out[#out + 1] = { layer = "license", values = sandbox.copy(lic.policy_override, 3) }
  end
  return out
end

-- The resolved values already made, by catalogue, policy and the text of
-- the merged settings: a license whose layers say what another's do
-- shares its policy value.  Weak on the catalogue and the policy; each
-- catalogue's table starts again past CACHE_MAX entries.
local CACHE_MAX = 4096
local cache = setmetatable({}, { __mode = "k" })
local NO_POLICY = {}

local function cached(cat, P, merged)
  local by_policy = cache[cat]
  if not by_policy then
    by_policy = setmetatable({}, { __mode = "k" })
    cache[cat] = by_policy
  end
  local key = P or NO_POLICY
  local by_text = by_policy[key]
  if not by_text then
    by_text = { n = 0 }
    by_policy[key] = by_text
  end
  local text = canon_text(merged)
  local pv = by_text[text]
  if pv then return pv end
  local msg, code
  pv, msg, code = cat:resolve_policy(merged)
  if not pv then return nil, msg, code end
  if by_text.n >= CACHE_MAX then
    by_text = { n = 0 }
    by_policy[key] = by_text
  end
  by_text[text] = pv
  by_text.n = by_text.n + 1
  return pv
end

-- policy.values(P_or_nil, cat, lic, on) -> the license's policy value
-- (cat:resolve_policy of P's overrides with lic.policy_override on top),
-- or nil when nothing overrides the catalogue (the rules then read the
-- catalogue's own values: the fast path).  A stored override the
-- catalogue refuses is nil, message, "invalid_policy".  A settings answer
-- the merged layers refuse is the hook's failure: it is left out.
-- The values of a product and edition layer alone (no settings hook, no
-- stored override: most licenses of a policy with layers), by catalogue,
-- policy, product and edition: found without building any text.
local by_layer = setmetatable({}, { __mode = "k" })

local function layer_values(P, cat, lic)
  local for_cat = by_layer[cat]
  if not for_cat then
    for_cat = setmetatable({}, { __mode = "k" })
    by_layer[cat] = for_cat
  end
  local for_policy = for_cat[P]
  if not for_policy then
    for_policy = {}
    for_cat[P] = for_policy
  end
  local product, edition = lic.product, lic.edition or ""
  local for_product = for_policy[product]
  if not for_product then
    for_product = {}
    for_policy[product] = for_product
  end
  local pv = for_product[edition]
  if pv == nil then
    local values, on_edition = file_layers(P, lic)
    local merged = merge(merge({}, values), on_edition)
    local msg, code
    if next(merged) == nil then
      pv = false
    else
      pv, msg, code = cached(cat, P, merged)
      if not pv then return nil, msg, code end
    end
    for_product[edition] = pv
  end
  return pv or nil
end

function _M.values(P, cat, lic, on)
  local stored = lic.policy_override
  if P == nil or (P.products[lic.product] == nil and not P.calls.settings) then
    if is_empty(stored) then return nil end
    return cached(cat, nil, stored)
  end
  if not P.calls.settings and is_empty(stored) then return layer_values(P, cat, lic) end
  local product, edition = file_layers(P, lic)
  local merged = merge(merge({}, product), edition)
  local answer = settings_answer(P, lic, on, cat, merged)
  if answer then
    -- Checked with the stored override on top, as it will apply: an
    -- answer that only some days give must not make the license's
    -- values unreadable on those days.
    local with = merge(merge({}, merged), answer.values)
    local ok, why = cat:resolve_policy(merge(merge({}, with), stored))
    if ok then
      merged = with
    else
      fail(P, "settings", { license = lic }, "answer", "answered settings the other layers refuse: "
           .. tostring(why))
    end
  end
  merge(merged, stored)
  if next(merged) == nil then return nil end
  local pv, msg, code = cached(cat, P, merged)
  if pv or is_empty(stored) then return pv, msg, code end
  -- The file's layers and the stored override disagree (store:set and
  -- import refuse that, but a settings hook answers per day): the
  -- override, the license's own and most specific layer, applies over
  -- the catalogue alone.
  local log = P.log or _M.log
  if log then
    log(format("%s: license %s: its own override and the file's layers disagree (%s); its override " ..
               "applies over the catalogue's values", label(P), tostring(lic.key), tostring(msg)))
  end
  return cached(cat, nil, stored)
end

-- policy.fits(P_or_nil, cat, lic, override, on) -> true, or nil and why:
-- whether a license's own override resolves over P's layers for it on
-- `on` (the cross-checks span layers: a product's phone_after_days
-- against the license's disable_after_days).  store:set and a policy
-- import ask it before they write.
function _M.fits(P, cat, lic, override, on)
  local merged = merge(merge({}, P and P:overrides(lic, on, cat) or nil), override)
  if next(merged) == nil then return true end
  local ok, msg = cat:resolve_policy(merged)
  if ok then return true end
  return nil, msg
end

-- policy.decides(P) -> whether a bound catalogue applies P's hooks: a
-- policy whose only hook is settings changes values, not decisions.
function _M.decides(P)
  for hook in pairs(P.hooks) do
    if hook ~= "settings" then return true end
  end
  return false
end

-- policy.changes_anything(P) -> whether a compiled file changes anything:
-- one with no hook and no product layer is no policy at all (the fast
-- path: the store then never resolves per-license values).
function _M.changes_anything(P)
  return next(P.hooks) ~= nil or (P.products ~= nil and next(P.products) ~= nil)
end

-- policy.in_force(source, version, name, cat) -> P, live, bound: a
-- stored version as a store or a gateway worker runs it -- its compiled
-- file (nil when it does not compile here: policy.stored), the same when
-- it changes anything (else nil), and the catalogue decisions go through
-- (cat bound to its hooks, or cat itself).  source nil: no policy.
function _M.in_force(source, version, name, cat)
  local P = source and _M.stored(source, version, name, cat) or nil
  local live = P and _M.changes_anything(P) and P or nil
  return P, live, live and _M.decides(live) and live:bind(cat) or cat
end

-- policy.stored(source, version, name, cat) -> the compiled file of a
-- stored (imported) version, or nil when it does not compile here (a
-- host of an older licensor, a catalogue it no longer fits).  That is
-- logged and counted (on_failure("file", "compile")), and the built-in
-- decisions stand: the same as for a hook that fails, never a refusal
-- of every license.
function _M.stored(source, version, name, cat)
  local P, msg = _M.compile(source, name or ("policy version " .. tostring(version)), cat)
  if P then
    P.version = version
    return P
  end
  local log = _M.log
  if log then
    log(format("policy v%s does not compile on this host (%s): its layers and hooks are not applied " ..
               "here; the built-in decisions stand", tostring(version), tostring(msg)))
  end
  if _M.on_failure then _M.on_failure("file", "compile", nil) end
  return nil, msg
end

-- Compiling ------------------------------------------------------------

-- Loads source as a chunk in the sandbox, text only.
local function load_chunk(source, name)
  local fn, err = load(source, "=" .. name, "t", sandbox.env)
  if not fn then return nil, err end
  local setfenv = rawget(_G, "setfenv")
  if setfenv then setfenv(fn, sandbox.env) end
  -- LuaJIT: compiled code runs no count hook, so none of the file's code
  -- (its functions included) is ever compiled.
  if jit then jit.off(fn, true) end
  return fn
end

-- Does fn keep state of its file: any upvalue but _ENV?
local function has_upvalues(fn)
  for i = 1, 255 do
    local name = debug_getupvalue(fn, i)
    if name == nil then return false end
    if name ~= "_ENV" then return true end
  end
  return false
end

-- Purity.  A hook must not carry anything from one call to the next.
-- Globals and libraries are read-only and ctx is copies, so what is left
-- is the file's own locals, which a hook reaches as upvalues (`local n =
-- 0` counted up, a table of the file filled in).  Freezing upvalues is
-- not possible in Lua (an upvalue is assigned, not indexed) and undoing
-- a call's changes would mean walking every table the file made.  So:
--  - a hook with no upvalue (but _ENV) is called as it is: it can reach
--    only its own locals, which each call makes anew (the cheap path,
--    and what a trivial hook costs);
--  - a hook with upvalues is found again for each call by running the
--    file's top level first (inside the same budget), so its locals,
--    helpers and tables are the fresh ones of that run.
-- A file may not name _ENV: on Lua 5.4 it is the upvalue every function
-- of the file shares (assigning it would swap the globals for a table of
-- the hook's, kept from call to call), on LuaJIT an ordinary global.
local function hook_call(main, name, fn)
  if not has_upvalues(fn) then return fn, false end
  local function call(ctx)
    local t = main()
    if type(t) ~= "table" then error("the file's top level did not return a table", 0) end
    local hook = t[name]
    if type(hook) ~= "function" then error("the file's top level has no function " .. name, 0) end
    return hook(ctx)
  end
  if jit then jit.off(call, true) end
  return call, true
end

-- Checks a products table: { ID = { KEY = VALUE, ..., editions = { E =
-- {...} } } }; fills P.products[ID] = { values =, editions = { E = ...} }.
local function check_products(P, products, source, name, cat)
  local check = checker(cat)
  -- A misspelt setting's message names the nearest of the catalogue's
  -- settings (within two edits).
  local function suggest(msg)
    local key = msg:match("^policy%.([%w_]+) is not a policy setting")
    local guess = key and nearest(key, (check.raw or check):policy())
    return guess and (msg .. " (did you mean '" .. guess .. "'?)") or msg
  end
  if type(products) ~= "table" then
    return refuse(name, locate(source, { "products" }), "products must be a table of products by id")
  end
  local ids = {}
  for id in next, products do
    if type(id) ~= "string" then
      return refuse(name, locate(source, { "products" }),
                    format("products: the key %s is not a product id", show(id)))
    end
    ids[#ids + 1] = id
  end
  sort(ids)
  for _, id in ipairs(ids) do
    local entry = products[id]
    local pid = (gsub(id, "%c", "?"))   -- as messages show it: one line
    local where = { "products", id }
    if type(entry) ~= "table" then
      return refuse(name, locate(source, where),
                    format("products.%s must be a table of policy settings", pid))
    end
    local product = cat and cat:product(id)
    if cat and not product then
      return refuse(name, locate(source, where),
                    format("products.%s: the catalogue has no product '%s'", pid, pid))
    end
    local values, editions = {}, nil
    for k, v in next, entry do
      if k == "editions" then
        editions = v
      else
        values[k] = v
      end
    end
    -- The values as written are checked (a function where a number
    -- belongs is refused, not dropped), then kept as a plain copy.
    local ok, msg = check:resolve_policy(values)
    if not ok then
      local key = msg:match("^policy%.([%w_]+)")
      return refuse(name, locate(source, { "products", id, key or id }),
                    format("products.%s: %s", pid, suggest(msg)))
    end
    values = sandbox.copy(values, 3)
    local out = { values = values }
    if editions ~= nil then
      if type(editions) ~= "table" then
        return refuse(name, locate(source, { "products", id, "editions" }),
                      format("products.%s.editions must be a table of editions", pid))
      end
      local known
      if product then
        known = {}
        for _, e in ipairs(product.editions) do known[e] = true end
      end
      out.editions = {}
      local names = {}
      for e in next, editions do
        if type(e) ~= "string" then
          return refuse(name, locate(source, { "products", id, "editions" }),
                        format("products.%s.editions: the key %s is not an edition", pid, show(e)))
        end
        names[#names + 1] = e
      end
      sort(names)
      for _, e in ipairs(names) do
        local ed = (gsub(e, "%c", "?"))
        local ewhere = { "products", id, "editions", e }
        local ev = editions[e]
        if known and not known[e] then
          return refuse(name, locate(source, ewhere),
                        format("products.%s.editions: product '%s' has no edition '%s'", pid, pid, ed))
        end
        if type(ev) ~= "table" then
          return refuse(name, locate(source, ewhere),
                        format("products.%s.editions.%s must be a table of policy settings", pid, ed))
        end
        ok, msg = check:resolve_policy(merge(merge({}, values), ev))
        if not ok then
          local key = msg:match("^policy%.([%w_]+)")
          ewhere[#ewhere + 1] = key
          return refuse(name, locate(source, ewhere),
                        format("products.%s.editions.%s: %s", pid, ed, suggest(msg)))
        end
        ev = sandbox.copy(ev, 3)
        out.editions[e] = ev
      end
    end
    P.products[id] = out
  end
end

-- policy.compile(source, name [, cat]) -> P, or nil, "NAME:LINE:
-- message", "invalid_policy".  The file runs in the sandbox under the
-- hooks' budgets and must return a table of the known keys; its products
-- and editions must be policy settings within the catalogue's bounds
-- and, when cat is given, the catalogue's products and editions.
function _M.compile(source, name, cat)
  if type(source) ~= "string" then error("bad argument #1 to 'compile' (policy text expected)", 2) end
  if type(name) ~= "string" then error("bad argument #2 to 'compile' (name expected)", 2) end
  if #source > _M.MAX_SOURCE_BYTES then
    return refuse(name, 1, format("a policy file is at most %d bytes", _M.MAX_SOURCE_BYTES))
  end
  if byte(source, 1) == 27 then return refuse(name, 1, "a policy file is Lua text, not bytecode") end
  local dialect_line, dialect_msg = dialect.check(source)
  if dialect_line then return refuse(name, dialect_line, dialect_msg) end
  local env_at = find(source, "%f[%w_]_ENV%f[^%w_]")
  if env_at then
    local line = 1
    for _ in source:sub(1, env_at):gmatch("\n") do line = line + 1 end
    return refuse(name, line, "a policy file may not name _ENV (the globals are the sandbox's)")
  end
  local main, err = load_chunk(source, name)
  if not main then return nil, err, "invalid_policy" end
  local limits = { instructions = _M.INSTRUCTIONS, memory = _M.MEMORY, time_ms = _M.TIME_MS,
                   string_index = sandbox.string_index }
  local top = floor(_M.INSTRUCTIONS / _M.TOP_LEVEL_SHARE)
  local ok, t, message = run_hook(main, nil, { instructions = top, memory = limits.memory,
                                               time_ms = limits.time_ms, string_index = limits.string_index })
  if not ok then
    if t == "error" then
      local where, rest = tostring(message):match("^([^:]+:%d+): (.*)$")
      if where then return nil, where .. ": " .. rest, "invalid_policy" end
      return refuse(name, 1, "the file raised " .. tostring(message))
    end
    if t == "instructions" then
      return refuse(name, 1, format("the file's top level runs before each hook call and must fit in %s "
                                    .. "instructions", thousands(top)))
    end
    return refuse(name, 1, format("the file's top level ran past its %s", t == "memory" and "memory budget"
                                  or t == "time" and "time limit" or tostring(t)))
  end
  if type(t) ~= "table" then
    return refuse(name, 1, format("a policy file must return a table (it returned %s)", show(t)))
  end
  local P = setmetatable({ source = source, hooks = {}, products = {}, calls = {}, failures = {},
                           limits = limits, main = main, cat = cat,
                           deciders = setmetatable({}, { __mode = "k" }) }, Policy)
  -- Problems are reported in the order of the file, first one wins.
  local problems = {}
  for k, v in next, t do
    if type(k) ~= "string" then
      problems[#problems + 1] = { 1, format("the key %s is not a name", show(k)) }
    elseif not TOP_KEYS[k] then
      local line = type(v) == "function" and debug_getinfo(v, "S").linedefined or locate(source, { k })
      local guess = nearest(k, TOP_KEYS)
      problems[#problems + 1] = { line, format("'%s' is not a hook or key of a policy file%s", k,
                                               guess and (" (did you mean '" .. guess .. "'?)") or "") }
    elseif IS_HOOK[k] then
      if type(v) ~= "function" then
        problems[#problems + 1] = { locate(source, { k }),
                                    format("%s must be a function (it is a %s)", k, type(v)) }
      end
    elseif k == "name" then
      if type(v) ~= "string" or not core.check_name(v) then
        problems[#problems + 1] = { locate(source, { k }), "name must be a name (1 to 255 bytes of text)" }
      end
    end
  end
  if #problems > 0 then
    sort(problems, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    return refuse(name, problems[1][1], problems[1][2])
  end
  P.name = t.name
  if t.products ~= nil then
    local bad, msg, code = check_products(P, t.products, source, name, cat)
    if bad == nil and msg then return nil, msg, code end
  end
  for _, h in ipairs(_M.HOOKS) do
    local fn = t[h]
    if fn then
      P.hooks[h] = true
      P.calls[h] = hook_call(main, h, fn)
    end
  end
  return P
end

-- P:bind(cat) -> the catalogue with this policy's hooks applied
-- (licensor.policy.bind).
function Policy:bind(cat)
  return require("licensor.policy.bind").bind(self, cat)
end

_M.Policy = Policy

return _M
