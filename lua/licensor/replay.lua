-- licensor.replay -- what-if: every license's stored history decided
-- again under a proposed policy file (and, optionally, a proposed
-- catalogue) next to the policy and catalogue in force, and each decision
-- that would come out differently reported.  Nothing is written: the
-- store is read in one snapshot (store/history.lua), and both sides are
-- decided by the same code the store and the gateway run -- the C
-- catalogue, bound to a policy's hooks by P:bind, each license carrying
-- its resolved values (licensor.policy.values).  `licensor policy test`
-- prints it.
--
-- History, per license, is the days it has stored decisions on, from
-- `since` (default: all) to `on` (default: today), both included, and
-- each decision there is made again on both sides:
--
-- * eligible: the build the license may install (R2-R7, and the eligible
--   hook), on every distinct day of its activations, check-ins that moved
--   the build, certificates, downloads, renewals, upgrades, add-on
--   purchases, lease ends, deactivations (the event log), on each of its
--   installations' first_seen and last_seen, and on `on`.
-- * admission: R10 for each installation, on its first_seen, counting the
--   installations activated before it (as they are stored now: a later
--   deactivation or check-in is known, as R10 sees it on that day).
--   Refused activations are not stored, so a proposal that admits more
--   shows where stored installations were admitted without it (imports,
--   other systems) and where it would refuse what was admitted.
-- * active: R9 for each installation not deactivated, on `on`: is it
--   active (checked in within the license's check-in grace), as its next
--   check-in, certificate or download finds it -- a grace taken away turns
--   a server that was let in away.
-- * ladder: the migration window (state, since, deadline) of every
--   license with more than one installation on `on` and on the first_seen
--   of each installation after its first (with the installations activated
--   by then), and the R11 steps due
--   of each of its fraud cases, open or closed, on the days its steps were
--   taken, on the day its excess turns fraud on either side, and, for an
--   open case, on `on` (steps taken on an earlier day count as taken).
-- * reminders: for each term -- M&S end (perpetual), trial end, a lease's
--   set end, each add-on of a perpetual license -- the days its reminders
--   fall on (the policy's offsets, and the reminders hook) from `since`
--   on, past and coming ones alike; none for a disabled key.
-- * price: on `on`, the renewal price of a perpetual license (M&S priced)
--   and its upgrade quote to every other edition and level priced in the
--   major of its eligible build (R12, R15, and the price hook).
--
-- Left out: the license as it stood on a past day (the store keeps only
-- its current row: a renewal since then counts on earlier days too);
-- check-ins that kept the build (only last_seen is kept); activations
-- that were refused (never stored); certificates' contents; outbox rows
-- and reminders already taken, which stay as they were.
local core = require "licensor.core"
local failure = require "licensor.failure"
local loader = require "licensor.loader"
local common = require "licensor.store.common"
local history = require "licensor.store.history"

local type, ipairs, pairs, tostring, setmetatable = type, ipairs, pairs, tostring, setmetatable
local pcall, next = pcall, next
local sort, concat = table.sort, table.concat
local day_number, date_text = core.day, core.date

local _M = {}

-- The kinds of decision, in the order a report lists them.
_M.KINDS = { "eligible", "admission", "active", "ladder", "reminders", "price" }

-- Examples kept per kind (the first by key, day and subject).
_M.EXAMPLES = 5

-- Licenses between two progress calls.
_M.PROGRESS_EVERY = 1000

local refuse = failure.raise

-- licensor.policy, loaded only when a policy file is met.
local function policy_lib()
  return require "licensor.policy"
end

------------------------------------------------------------------------
-- Sides: a catalogue, a policy file, and how a license's values resolve
------------------------------------------------------------------------

-- A side of the comparison: the C catalogue `raw`, the policy file P (nil:
-- none), the catalogue its decisions go through (bound to P's hooks, or
-- raw itself), and caches of what does not change between licenses.
-- Both sides take the path the store's workflows take
-- (licensor.policy.changes_anything and decides): a file that changes
-- nothing is no file, and only one that decides is bound.
local function side(raw, P)
  local live = P and policy_lib().changes_anything(P) and P or nil
  return {
    raw = raw, P = live,
    cat = live and policy_lib().decides(live) and live:bind(raw) or raw,
    policy = raw:policy(),
    per_day = live ~= nil and live:has("settings"),
    tables = setmetatable({}, { __mode = "k" }),   -- pv -> its values as a table
    prices = {},                                   -- product -> cat:prices
  }
end

-- The license's resolved values on `day` on side s (nil: the catalogue's).
local function values(s, lic, day, problems)
  if s.P == nil and lic.policy_override == nil then return nil end
  local pv, msg = policy_lib().values(s.P, s.raw, lic, day)
  if pv == nil and msg and #problems < 10 then
    problems[#problems + 1] = { key = lic.key, day = day, message = msg }
  end
  return pv
end

-- The policy values of a license on side s as a plain table.
local function settings_of(s, pv)
  if pv == nil then return s.policy end
  local t = s.tables[pv]
  if t == nil then
    t = pv:table()
    s.tables[pv] = t
  end
  return t
end

local function prices_of(s, product)
  local list = s.prices[product]
  if list == nil then
    list = s.raw:prices(product) or {}
    s.prices[product] = list
  end
  return list
end

------------------------------------------------------------------------
-- The report
------------------------------------------------------------------------

local function new_report(on, since)
  local report = { on = on, since = since, licenses = 0, installations = 0, changed = 0,
                   changes = {}, decisions = {}, examples = {}, problems = {} }
  for _, kind in ipairs(_M.KINDS) do
    report.changes[kind], report.decisions[kind], report.examples[kind] = 0, 0, {}
  end
  return report
end

local function earlier(a, b)
  if a.key ~= b.key then return a.key < b.key end
  if a.day ~= b.day then return a.day < b.day end
  return tostring(a.what or "") < tostring(b.what or "")
end

-- Counts a changed decision and keeps it as an example when it is among
-- the first by (key, day, subject): the same examples whatever order the
-- backend walked the keys in.
local function changed(report, kind, key, day, what, before, after)
  report.changes[kind] = report.changes[kind] + 1
  report.changed = report.changed + 1
  local list, limit = report.examples[kind], report.limit
  if limit == 0 then return end
  local e = { key = key, day = day, what = what, before = before, after = after }
  if #list >= limit then
    if not earlier(e, list[#list]) then return end
    list[#list] = nil
  end
  list[#list + 1] = e
  sort(list, earlier)
end

------------------------------------------------------------------------
-- One license
------------------------------------------------------------------------

local function between(d, since, on)
  return d ~= nil and d >= since and d <= on
end

-- The eligible days of an entry: its event days, its installations' first
-- and last days within the bounds, and `on`; distinct, ascending.
local function eligible_days(entry, since, on)
  local seen, list = { [on] = true }, { on }
  for _, d in ipairs(entry.days) do
    if not seen[d] then seen[d], list[#list + 1] = true, d end
  end
  for _, inst in ipairs(entry.installations) do
    local a, b = inst.first_seen, inst.last_seen
    if between(a, since, on) and not seen[a] then seen[a], list[#list + 1] = true, a end
    if between(b, since, on) and not seen[b] then seen[b], list[#list + 1] = true, b end
  end
  sort(list)
  return list
end

-- The license's values on `day` on side s: fixed per license unless a
-- settings hook may answer by the day.
local function values_on(w, s, fixed, lic, day)
  if s.per_day then return values(s, lic, day, w.report.problems) end
  return fixed
end

local function eligible_of(s, lic, day)
  local build, _, code = s.cat:eligible(lic, day)
  if build then return build.number, build end
  return code
end

local function replay_eligible(w, lic, days)
  local cur, new, report = w.cur, w.new, w.report
  for _, d in ipairs(days) do
    lic.policy = values_on(w, cur, w.cur_pv, lic, d)
    local before = eligible_of(cur, lic, d)
    lic.policy = values_on(w, new, w.new_pv, lic, d)
    local after = eligible_of(new, lic, d)
    report.decisions.eligible = report.decisions.eligible + 1
    if before ~= after then changed(report, "eligible", lic.key, d, nil, before, after) end
  end
end

local function admission_of(s, lic, prior, day, server)
  local ok, _, code = s.cat:admission(lic, prior, day, server)
  if ok then return "admitted" end
  return code
end

local function replay_admissions(w, lic, installs)
  local cur, new, report, since, on = w.cur, w.new, w.report, w.since, w.on
  local prior = {}
  for i, inst in ipairs(installs) do
    local d = inst.first_seen
    if between(d, since, on) then
      lic.policy = values_on(w, cur, w.cur_pv, lic, d)
      local before = admission_of(cur, lic, prior, d, inst.server)
      lic.policy = values_on(w, new, w.new_pv, lic, d)
      local after = admission_of(new, lic, prior, d, inst.server)
      report.decisions.admission = report.decisions.admission + 1
      if before ~= after then changed(report, "admission", lic.key, d, inst.server, before, after) end
    end
    prior[i] = inst
  end
end

-- R9 on side s: is the installation active on `day` with the license's
-- values there (its check-in grace)?
local function active_of(s, lic, inst, day)
  return s.raw:installation_active(inst, day, lic) and "active" or "inactive"
end

-- Whether each installation not deactivated is active on `on`: what the
-- next check-in, certificate or download of it finds (a check-in grace
-- shortened turns one that was let in away).
local function replay_active(w, lic, installs)
  local cur, new, report, on = w.cur, w.new, w.report, w.on
  for _, inst in ipairs(installs) do
    if inst.deactivated == nil and inst.first_seen ~= nil and inst.first_seen <= on then
      lic.policy = values_on(w, cur, w.cur_pv, lic, on)
      local before = active_of(cur, lic, inst, on)
      lic.policy = values_on(w, new, w.new_pv, lic, on)
      local after = active_of(new, lic, inst, on)
      report.decisions.active = report.decisions.active + 1
      if before ~= after then changed(report, "active", lic.key, on, inst.server, before, after) end
    end
  end
end

local function window_of(s, lic, installs, day)
  local m, msg, code = s.cat:migration(lic, installs, day)
  if not m then return code or msg end
  if m.state == "ok" then return "ok" end
  return m.state .. " since " .. m.since .. " (deadline " .. m.deadline .. ")"
end

-- The case as it stood on `day`: steps taken on an earlier day.
local function case_on(c, day)
  local function before(d) return d ~= nil and d < day and d or nil end
  return { since = c.since, first_step = before(c.first_step), phoned = before(c.phoned),
           disabled = before(c.disabled) }
end

local function steps_of(s, lic, case, day)
  local steps, msg, code = s.cat:ladder(case, day, lic)
  if not steps then return code or msg end
  if #steps == 0 then return "none" end
  return concat(steps, ",")
end

-- The day a case's excess turns fraud on side s: its since plus the
-- license's migration_days there (as its values stood on since).
local function fraud_day(w, s, fixed, lic, c)
  local pv = values_on(w, s, fixed, lic, c.since)
  return date_text(day_number(c.since) + settings_of(s, pv).migration_days)
end

-- The window days of a license with more than one installation: the
-- first_seen of each installation after the first (within the bounds: the
-- days a second server came in), and `on`; distinct, ascending.
local function window_days(installs, since, on)
  local seen, list = { [on] = true }, { on }
  for i = 2, #installs do
    local d = installs[i].first_seen
    if between(d, since, on) and not seen[d] then seen[d], list[#list + 1] = true, d end
  end
  sort(list)
  return list
end

-- The installations activated by `day` (all of them on `on`).
local function installed_by(installs, day, on)
  if day == on then return installs end
  local list = {}
  for _, inst in ipairs(installs) do
    if inst.first_seen == nil or inst.first_seen <= day then list[#list + 1] = inst end
  end
  return list
end

local function replay_ladder(w, lic, entry)
  local cur, new, report, since, on = w.cur, w.new, w.report, w.since, w.on
  local installs = entry.installations
  if #installs > 1 then
    for _, d in ipairs(window_days(installs, since, on)) do
      local by = installed_by(installs, d, on)
      if #by > 1 then
        lic.policy = values_on(w, cur, w.cur_pv, lic, d)
        local before = window_of(cur, lic, by, d)
        lic.policy = values_on(w, new, w.new_pv, lic, d)
        local after = window_of(new, lic, by, d)
        report.decisions.ladder = report.decisions.ladder + 1
        if before ~= after then changed(report, "ladder", lic.key, d, "window", before, after) end
      end
    end
  end
  for _, c in ipairs(entry.cases) do
    local last = c.closed and c.closed < on and c.closed or on
    local seen, days = {}, {}
    local function add(d)
      if between(d, since, last) and not seen[d] then seen[d], days[#days + 1] = true, d end
    end
    add(c.first_step)
    add(c.phoned)
    add(c.disabled)
    if not c.closed then add(on) end
    add(fraud_day(w, cur, w.cur_pv, lic, c))
    add(fraud_day(w, new, w.new_pv, lic, c))
    sort(days)
    local what = "case " .. tostring(c.id)
    for _, d in ipairs(days) do
      local at = case_on(c, d)
      lic.policy = values_on(w, cur, w.cur_pv, lic, d)
      local before = steps_of(cur, lic, at, d)
      lic.policy = values_on(w, new, w.new_pv, lic, d)
      local after = steps_of(new, lic, at, d)
      report.decisions.ladder = report.decisions.ladder + 1
      if before ~= after then changed(report, "ladder", lic.key, d, what, before, after) end
    end
  end
end

-- The terms of a license that have reminders: {kind, item, last day number}.
local function terms_of(lic, trial_days)
  local terms = {}
  if lic.disabled then return terms end
  if lic.kind == "perpetual" or lic.kind == nil then
    if lic.ms_expires then terms[#terms + 1] = { "ms", "ms", day_number(lic.ms_expires) } end
    if lic.addons then
      local names = {}
      for name in pairs(lic.addons) do names[#names + 1] = name end
      sort(names)
      for _, name in ipairs(names) do terms[#terms + 1] = { "addon", name, day_number(lic.addons[name]) } end
    end
  elseif lic.kind == "trial" then
    terms[1] = { "trial", "trial", day_number(lic.start) + (lic.trial_days or trial_days) - 1 }
  elseif lic.kind == "lease" and lic.lease_ended then
    terms[1] = { "lease", "lease", day_number(lic.lease_ended) - 1 }
  end
  return terms
end

-- The offsets of a term's reminders on side s: the license's values', or
-- the reminders hook's answer (W:reminder_offsets of a bound catalogue).
local function offsets_of(s, lic, kind, settings, on)
  local offsets = settings.reminders[kind] or {}
  local cat = s.cat
  if cat ~= s.raw and cat.reminder_offsets then
    return cat:reminder_offsets(lic, kind, on, offsets) or offsets
  end
  return offsets
end

-- The days (text, ascending) a term's reminders fall on, from since.
local function schedule(offsets, last, since_n)
  local days = {}
  for i = 1, #offsets do
    local d = last - offsets[i]
    if d >= since_n then days[#days + 1] = d end
  end
  sort(days)
  for i = 1, #days do days[i] = date_text(days[i]) end
  return days
end

local function first_difference(a, b)
  for i = 1, math.max(#a, #b) do
    if a[i] ~= b[i] then
      if a[i] == nil or (b[i] ~= nil and b[i] < a[i]) then return b[i] end
      return a[i]
    end
  end
end

local function replay_reminders(w, lic)
  local cur, new, report, on = w.cur, w.new, w.report, w.on
  lic.policy = values_on(w, cur, w.cur_pv, lic, on)
  local cur_settings = settings_of(cur, lic.policy)
  local before_terms = terms_of(lic, cur_settings.trial_days)
  lic.policy = values_on(w, new, w.new_pv, lic, on)
  local new_settings = settings_of(new, lic.policy)
  local after_terms = terms_of(lic, new_settings.trial_days)
  for i, term in ipairs(before_terms) do
    local kind, item = term[1], term[2]
    lic.policy = values_on(w, cur, w.cur_pv, lic, on)
    local before = schedule(offsets_of(cur, lic, kind, cur_settings, on), term[3], w.since_n)
    lic.policy = values_on(w, new, w.new_pv, lic, on)
    local after = schedule(offsets_of(new, lic, kind, new_settings, on), after_terms[i][3], w.since_n)
    report.decisions.reminders = report.decisions.reminders + 1
    local d = first_difference(before, after)
    if d then
      changed(report, "reminders", lic.key, d, item,
              #before > 0 and concat(before, ", ") or "none", #after > 0 and concat(after, ", ") or "none")
    end
  end
end

-- The renewal price on side s: the store's one formula, through the
-- side's catalogue (a bound one applies its price hook).
local function renewal_of(s, lic, on)
  return common.renewal_price(s.cat, lic, on) or "none"
end

local function quote_of(s, lic, target, on)
  local price, _, code = s.cat:quote_upgrade(lic, target, on)
  return price or code
end

local function replay_prices(w, lic)
  local cur, new, report, on = w.cur, w.new, w.report, w.on
  if lic.kind ~= "perpetual" then return end
  lic.policy = values_on(w, cur, w.cur_pv, lic, on)
  local before = renewal_of(cur, lic, on)
  local _, build = eligible_of(cur, lic, on)
  lic.policy = values_on(w, new, w.new_pv, lic, on)
  local after = renewal_of(new, lic, on)
  report.decisions.price = report.decisions.price + 1
  if before ~= after then changed(report, "price", lic.key, on, "renewal", before, after) end
  if not build or lic.edition == nil then return end
  for _, p in ipairs(prices_of(cur, lic.product)) do
    if p.major == build.major and (p.edition ~= lic.edition or p.level ~= lic.level) then
      local target = { edition = p.edition, level = p.level }
      lic.policy = values_on(w, cur, w.cur_pv, lic, on)
      local was = quote_of(cur, lic, target, on)
      lic.policy = values_on(w, new, w.new_pv, lic, on)
      local now = quote_of(new, lic, target, on)
      report.decisions.price = report.decisions.price + 1
      if was ~= now then
        local what = "upgrade to " .. p.edition .. " " .. tostring(p.level)
        changed(report, "price", lic.key, on, what, was, now)
      end
    end
  end
end

local function replay_license(w, entry)
  local lic, report = entry.license, w.report
  report.licenses = report.licenses + 1
  report.installations = report.installations + #entry.installations
  -- Values fixed for the whole license unless a settings hook answers by day.
  w.cur_pv = not w.cur.per_day and values(w.cur, lic, w.on, report.problems) or nil
  w.new_pv = not w.new.per_day and values(w.new, lic, w.on, report.problems) or nil
  replay_eligible(w, lic, eligible_days(entry, w.since, w.on))
  replay_admissions(w, lic, entry.installations)
  replay_active(w, lic, entry.installations)
  replay_ladder(w, lic, entry)
  replay_reminders(w, lic)
  replay_prices(w, lic)
  lic.policy = nil
end

------------------------------------------------------------------------
-- The run
------------------------------------------------------------------------

-- The proposed catalogue: a compiled catalogue, a catalogue table, or a
-- catalogue file's text (run behind the same wall as `licensor import`).
local function proposed_catalogue(source, name)
  if source == nil then return nil end
  if type(source) == "userdata" then return source end
  local t = source
  if type(source) == "string" then
    local read, msg, code = loader.read_source(source, name)
    if not read then refuse(code or "invalid_catalogue", msg) end
    t = read
  elseif type(source) ~= "table" then
    error("bad argument #2 to 'run' (catalogue: text, table or catalogue expected)", 4)
  end
  local cat, msg, code = core.catalogue(t)
  if not cat then refuse(code or "invalid_catalogue", name .. ": " .. msg) end
  return cat
end

-- The policy file in force, compiled afresh against its catalogue: its
-- failure log is the replay's, not the store's.
local function current_policy(self, raw)
  local P = self.active_policy
  if P == nil then return nil end
  if P.version then return common.compile_policy(self, P.version, raw) end
  return P
end

-- A policy's log lines into the report: the first ten distinct ones (a
-- hook that fails on every call says the same for each day replayed).
local function quiet(P, report, side_name)
  if P == nil then return end
  local seen = report.hook_log_seen
  P.log = function(line)
    local lines = report.hook_log
    if #lines >= 10 then return end
    line = side_name .. ": " .. line
    if seen[line] then return end
    seen[line], lines[#lines + 1] = true, line
  end
end

local function run(self, opts, proposed_raw)
  local on, since = opts.on, opts.since
  local report = new_report(on, since)
  report.limit, report.hook_log, report.hook_log_seen = opts.examples or _M.EXAMPLES, {}, {}
  common.active_catalogue(self)
  local cur_raw = self.cat       -- the C catalogue in force (the store keeps it)
  local new_raw = proposed_raw or cur_raw
  local cur_P = current_policy(self, cur_raw)
  local new_P
  if opts.policy ~= nil and opts.policy ~= false then
    local P, msg, code = policy_lib().compile(opts.policy, opts.policy_name or "policy", new_raw)
    if not P then refuse(code or "invalid_policy", msg) end
    new_P = P
  end
  quiet(cur_P, report, "current")
  quiet(new_P, report, "proposed")
  local w = { cur = side(cur_raw, cur_P), new = side(new_raw, new_P), report = report,
              on = on, since = since or "0001-01-01" }
  w.since_n = day_number(w.since)
  report.current = { catalogue = self.cat_version, policy = cur_P and cur_P.version or nil }
  if new_P then
    local hooks = {}
    for hook in pairs(new_P.hooks) do hooks[#hooks + 1] = hook end
    sort(hooks)
    report.policy = { name = new_P.name, hooks = hooks }
  end
  local progress, total = opts.progress, nil
  if progress then
    total = history.count(self)
    progress(0, total)
  end
  local every, n = _M.PROGRESS_EVERY, 0
  history.walk(self, { since = since, on = on }, function(entry)
    replay_license(w, entry)
    n = n + 1
    if progress and n % every == 0 then progress(n, total) end
  end)
  if progress then progress(n, total) end
  report.limit, report.hook_log_seen = nil, nil
  if new_P and new_P.failures and next(new_P.failures) then report.failures = new_P.failures end
  if #report.hook_log == 0 then report.hook_log = nil end
  if #report.problems == 0 then report.problems = nil end
  return report
end

local function check_opts(opts)
  if type(opts) ~= "table" then error("bad argument #2 to 'run' (options table expected)", 3) end
  if opts.policy ~= nil and opts.policy ~= false and type(opts.policy) ~= "string" then
    error("bad argument #2 to 'run' (policy: the policy file's text expected)", 3)
  end
  if opts.progress ~= nil and type(opts.progress) ~= "function" then
    error("bad argument #2 to 'run' (progress: function expected)", 3)
  end
  local n = opts.examples
  if n ~= nil and (type(n) ~= "number" or n < 0 or n % 1 ~= 0) then
    error("bad argument #2 to 'run' (examples: a whole number expected)", 3)
  end
end

-- replay.run(store, {policy=TEXT, policy_name=, catalogue=TEXT|table|cat,
-- catalogue_name=, since=DAY, on=DAY, examples=N, progress=fn}) -> report,
-- or nil, message, code ("invalid_policy" for a policy file that does not
-- compile: "NAME:LINE: message"; "invalid_catalogue"; "invalid_date").
-- progress(done, total) is called with 0 first, every PROGRESS_EVERY
-- licenses, and at the end.  The report (doc/policies.md, "Replay"):
--   { on=, since=, licenses=, installations=, changed=N (all kinds),
--     changes = {eligible=, admission=, active=, ladder=, reminders=, price=},
--     decisions = {same kinds: how many were decided on both sides},
--     examples = {KIND = {{key=, day=, what=, before=, after=}, ...}},
--     current = {catalogue=VERSION, policy=VERSION|nil},
--     policy = {name=, hooks={...}} (the proposed one, when given),
--     failures = {["HOOK REASON"]=n} (the proposed policy's hook failures),
--     hook_log = {the first ten distinct lines, "current: "/"proposed: "},
--     problems = {{key=, day=, message=}} }
-- before/after: eligible a build number or the refusal code; admission
-- "admitted" or the code; active "active" or "inactive"; ladder the steps due ("email_customer,..." or
-- "none") or the window ("ok", "migrating since D (deadline D)"); reminders
-- the days, "D1, D2" or "none"; price minor units, "none" or the code.
function _M.run(self, opts)
  check_opts(opts)
  local ok, on = pcall(history.check_day, opts.on, "on")
  if not ok then return failure.answer(false, on) end
  local since
  ok, since = pcall(history.check_day, opts.since, "since")
  if not ok then return failure.answer(false, since) end
  on = on or core.today()
  if since and since > on then return nil, "since: after on (" .. on .. ")", "invalid_date" end
  local proposed, msg, code = failure.call(proposed_catalogue, opts.catalogue,
                                           opts.catalogue_name or "catalogue")
  if msg then return nil, msg, code end
  local checked = { policy = opts.policy, policy_name = opts.policy_name, on = on, since = since,
                    examples = opts.examples, progress = opts.progress }
  return history.snapshot(self, run, checked, proposed)
end

return _M
