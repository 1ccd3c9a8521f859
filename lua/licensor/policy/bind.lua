-- licensor.policy.bind -- a catalogue with a policy's hooks applied:
-- P:bind(cat) -> W, which answers every catalogue method, the hooked ones
-- through their hooks (doc/rules.md section 11):
--
--   W:eligible(lic, on)                            eligible hook (R3-R7)
--   W:can_install(lic, number, on)                 up to the hooked eligible build
--   W:status(lic, on)                              its eligible part
--   W:admission(lic, installations, on [, server]) admission hook (R10)
--   W:ladder(case, on [, lic])                     ladder hook (R11)
--   W:quote_upgrade(lic, target, on)               price hook, item "upgrade" (R12)
--   W:renewal_price(lic, on, price, currency)      price hook, item "renewal" (R15)
--   W:reminder_offsets(lic, kind, on [, offsets])  reminders hook
--
-- W.raw is the catalogue, W.policy_file the policy (not W.policy: that
-- is the catalogue's own cat:policy([lic]), forwarded like the rest).
-- When W.trace is a table, each decision a hook was asked for appends
-- { rule =, hook =, version =, before =, after =, because = [, failure =]
-- [, answered = true] } to it (answered: the hook's answer was taken).
-- Only the hooks the file defines cost anything: a method whose hook is
-- absent is the raw method behind one forwarding call (renewal_price and
-- reminder_offsets then answer what they were given).  Not the place for the answers'
-- checks (licensor.policy) nor for where a decision is recorded (the
-- store).
local core = require "licensor.core"
local sandbox = require "licensor.policy.sandbox"

local type, tostring, tonumber, setmetatable, rawset, require, pairs, assert = type, tostring,
  tonumber, setmetatable, rawset, require, pairs, assert
local format = string.format
local today = core.today
local build_view = sandbox.build_view

local _M = {}

-- The built-in refusals a hook may turn into a build: the rules' own
-- answers.  A disabled key stays disabled (R11's last step), and a
-- license the catalogue cannot read is not a decision.
local HOOKABLE = { not_started = true, expired = true, no_build = true }
_M.HOOKABLE = HOOKABLE

local function trace(W, rule, hook, before, after, answer, failure)
  local t = W.trace
  if type(t) ~= "table" then return end
  t[#t + 1] = { rule = rule, hook = hook, version = W.policy_file.version, before = before, after = after,
                because = answer and answer.because or nil, failure = failure,
                answered = answer ~= nil or nil }
end

-- The forwarder of one of the catalogue's methods.
local function forwarder(cat, name)
  local method = cat[name]
  if type(method) ~= "function" then return method end
  return function(_, ...) return method(cat, ...) end
end

local W_MT = {
  -- The catalogue's other methods, forwarded; each forwarder is made on
  -- first use and kept.
  __index = function(W, name)
    local f = forwarder(W.raw, name)
    if type(f) == "function" then rawset(W, name, f) end
    return f
  end,
  __tostring = function(W)
    return format("licensor.catalogue with %s (%s)", require("licensor.policy").label(W.policy_file),
                  tostring(W.raw))
  end,
}

-- Each decision site keeps one input table, filled for a call and emptied
-- after it (no hook reaches another decision, so calls never overlap):
-- the hot path allocates nothing of its own.
local function clear(t)
  for k in pairs(t) do t[k] = nil end
end

-- bind(P, cat) -> W (P:bind(cat) calls it)
function _M.bind(P, cat)
  -- trace is false until a caller sets a table: reading it never reaches
  -- the forwarding __index.
  local W = setmetatable({ raw = cat, policy_file = P, trace = false }, W_MT)

  -- explain reads W itself, its trace and its policy, so it is never
  -- forwarded to the raw catalogue (loaded on first use).
  W.explain = function(w, lic, opts) return require("licensor.explain").explain(w, lic, opts) end

  local raw_eligible = cat.eligible
  local site = P:hook_site("eligible", cat)
  local decide_eligible = site ~= nil

  -- The eligible hook on a built-in answer (b, or msg and code): the
  -- record, or the built-in answer.  The hottest path, so P:decider's
  -- steps are written out here: the ctx's data filled field by field,
  -- the site's runner called directly, the data emptied without a loop.
  local hook_fn, ctx, data, finish, runner = nil, nil, nil, nil, nil
  local eager, n_eager, state, eligible_set, prefetch, views
  if site then
    hook_fn, ctx, data = site.fn, site.ctx, site.data
    finish, runner = site.finish, site.run
    eager, n_eager, state = site.eager, #site.eager, sandbox.state
    eligible_set, prefetch, views = sandbox.FIELD_SET.eligible, sandbox.prefetch, sandbox.BUILD_VIEWS
    -- The fields emptied below must be every field of the eligible ctx.
    assert(table.concat(sandbox.FIELDS.eligible, " ") == "day license policy build refused builds")
  end
  local e_input = {}
  local function hooked_eligible(w, lic, on, b, msg, code)
    local input = e_input
    local day = on or today()
    -- day and build stay in data between calls (no one can read this ctx
    -- then; the next call overwrites them), so that both are assigned on
    -- the VM's fast path; the fields made on a read are emptied.
    input.day, input.license, input.build, data.day = day, lic, b, day
    if b then
      data.build = views[b] or build_view(b)
    else
      data.build, input.refused = nil, { code = code, message = msg }
    end
    state.input, state.cat, state.fields = input, cat, eligible_set
    for i = 1, n_eager do prefetch(data, eager[i]) end
    local ok, result, message
    ok, result, message = runner(hook_fn, ctx)
    state.input = false
    if state.dirty then
      data.license, data.policy, data.refused, data.builds, state.dirty = nil, nil, nil, nil, false
    end
    local answer, failure
    if not ok or result ~= nil then answer, failure = finish(input, ok, result, message) end
    if not b then input.refused = nil end
    if w.trace then
      local before = b and b.number or code
      trace(w, "R3", "eligible", before, answer and answer.build or before, answer, failure)
    end
    if answer then return answer.record end
    return b, msg, code
  end

  if decide_eligible then
    W.eligible = function(w, lic, on)
      local b, msg, code = raw_eligible(cat, lic, on)
      if not b and not HOOKABLE[code] then return b, msg, code end
      return hooked_eligible(w, lic, on, b, msg, code)
    end

    local raw_can_install = cat.can_install
    W.can_install = function(w, lic, number, on)
      local ok, msg, code = raw_can_install(cat, lic, number, on)
      if not ok and code ~= "newer_than_eligible" and not HOOKABLE[code] then return ok, msg, code end
      local b, emsg, ecode = raw_eligible(cat, lic, on)
      if not b and not HOOKABLE[ecode] then return ok, msg, code end
      local rec, rmsg, rcode = hooked_eligible(w, lic, on, b, emsg, ecode)
      if not rec then return false, rmsg, rcode end
      if tonumber(number) <= rec.number then return true end
      return false, format("build %s is newer than build %d, the newest this license may install",
                           tostring(number), rec.number), "newer_than_eligible"
    end

    local raw_status = cat.status
    W.status = function(w, lic, on)
      local st, msg, code = raw_status(cat, lic, on)
      if not st then return st, msg, code end
      if st.code and not HOOKABLE[st.code] then return st end
      local b = st.eligible
      local rec = hooked_eligible(w, lic, on, b, st.message, st.code)
      if rec and rec ~= b then
        st.eligible, st.downloads, st.code, st.message = rec, rec.downloads, nil, nil
      end
      return st
    end
  end

  local decide_admission = P:decider("admission", cat)
  if decide_admission then
    local raw_admission, raw_migration = cat.admission, cat.migration
    local input = {}
    W.admission = function(w, lic, installations, on, server)
      local ok, a, b, c = raw_admission(cat, lic, installations, on)
      if ok == nil then return ok, a, b, c end
      -- The counts without and with the new server: the built-in answer
      -- has one window, the other differs by the new server alone.
      local window = ok and a or c
      local active = window.active
      if ok then active = active - 1 end
      local day = on or today()
      input.day, input.license, input.server, input.admit = day, lic, server, ok
      input.code = not ok and b or nil
      input.before = { active = active, allowed = window.allowed }
      input.after = { active = active + 1, allowed = window.allowed }
      local answer, failure = decide_admission(input)
      clear(input)
      if w.trace then
        trace(w, "R10", "admission", ok, answer and answer.admit or (answer == nil and ok), answer, failure)
      end
      if not answer or answer.admit == ok then return ok, a, b, c end
      if answer.admit then
        -- The window with the new server in, as the built-in answer has it.
        local with = {}
        for i = 1, #installations do with[i] = installations[i] end
        with[#with + 1] = { first_seen = day, last_seen = day }
        return true, raw_migration(cat, lic, with, day)
      end
      return false, answer.because or "the license's policy admits no more servers", "policy_refused",
             raw_migration(cat, lic, installations, day)
    end
  end

  local decide_ladder = P:decider("ladder", cat)
  if decide_ladder then
    local raw_ladder = cat.ladder
    local input = {}
    W.ladder = function(w, case, on, lic)
      local steps, msg, code = raw_ladder(cat, case, on, lic)
      if not steps or type(lic) ~= "table" then return steps, msg, code end
      input.day, input.license, input.case, input.steps = on or today(), lic, case, steps
      local answer, failure = decide_ladder(input)
      clear(input)
      trace(w, "R11", "ladder", steps, answer and answer.steps or steps, answer, failure)
      if answer then return answer.steps end
      return steps
    end
  end

  local decide_price = P:decider("price", cat)
  local currency = cat:currency()
  if decide_price then
    local raw_quote = cat.quote_upgrade
    local input = {}
    W.quote_upgrade = function(w, lic, target, on)
      local price, msg, code = raw_quote(cat, lic, target, on)
      if not price then return price, msg, code end
      input.day, input.license, input.item, input.price, input.currency = on or today(), lic, "upgrade",
        price, currency
      input.target = { edition = target.edition or lic.edition, level = target.level or lic.level }
      local answer, failure = decide_price(input)
      clear(input)
      trace(w, "R12", "price", price, answer and answer.price or price, answer, failure)
      if answer then return answer.price end
      return price
    end

    W.renewal_price = function(w, lic, on, price, cur)
      if price == nil then return nil end
      input.day, input.license, input.item, input.price, input.currency = on or today(), lic, "renewal",
        price, cur or currency
      local answer, failure = decide_price(input)
      clear(input)
      trace(w, "R15", "price", price, answer and answer.price or price, answer, failure)
      if answer then return answer.price, cur end
      return price, cur
    end
  else
    W.renewal_price = function(_, _, _, price, cur) return price, cur end
  end

  local function offsets_of(lic, kind, offsets)
    if offsets then return offsets end
    local r = cat:policy(lic).reminders
    return r and r[kind]
  end
  local decide_reminders = P:decider("reminders", cat)
  if decide_reminders then
    local input = {}
    W.reminder_offsets = function(w, lic, kind, on, offsets)
      offsets = offsets_of(lic, kind, offsets)
      input.day, input.license, input.kind, input.offsets = on or today(), lic, kind, offsets
      local answer, failure = decide_reminders(input)
      clear(input)
      trace(w, "reminders", "reminders", offsets, answer and answer.offsets or offsets, answer, failure)
      if answer then return answer.offsets end
      return offsets
    end
  else
    W.reminder_offsets = function(_, lic, kind, _, offsets) return offsets_of(lic, kind, offsets) end
  end

  return W
end

return _M
