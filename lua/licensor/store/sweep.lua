-- licensor.store.sweep -- the fraud window at work (R10, R11): store:sweep
-- finds keys with more active installations than allowed, keeps one fraud
-- case per run of excess, takes the ladder's due steps once each, writes
-- them to the outbox and disables the key at the last step.
--
-- Cases: opened when the excess turns fraud; closed ("excess_ended") when
-- the excess ends; resumed, same case and same steps, when excess returns
-- within the policy's case_cooldown_days of that closing; closed for good
-- ("enabled") when an admin re-enables the key.
--
-- Each key's values are its own (its policy layers and override): the
-- candidates' SQL prefilter takes the widest check-in grace of any layer,
-- and each key is then judged with its own.  Steps a policy's ladder hook
-- adds (notify_reseller) go to the outbox like the built-in ones, once
-- per case.
--
-- A key the sweep cannot work (data no catalogue answers, or a bug) is
-- rolled back alone to a savepoint, logged and reported, and every other
-- key is still worked: one bad key never stops the ladder for everyone.
local common = require "licensor.store.common"
local failure = require "licensor.failure"
local reminders = require "licensor.store.reminders"

local ipairs, pcall, tostring, type = ipairs, pcall, tostring, type
local sort = table.sort

local Store = common.Store
local transaction, check_on, log = common.transaction, common.check_on, common.log
local add_days, policy_of, provenance = common.add_days, common.policy_of, common.provenance

local CASE_COLUMN = { email_customer = "case_first_step", notify_fraud_team = "case_first_step",
                      phone_customer = "case_phoned", disable_key = "case_disabled" }

-- A step a ladder hook adds: taken once per case (the outbox says
-- whether it was); the first warning of a case when none came before it,
-- so the later steps count from it as from the built-in first step.
local function hooked_step(self, case, action, on)
  local db, sql = self.db, self.sql
  if db:value(sql.case_action_taken, case.id, action) then return false end
  if not case.first_step then
    db:defer(sql.case_first_step, on, case.id)
    case.first_step = on
  end
  return true
end

local function take_step(self, key, case, action, on, taken)
  local db, sql = self.db, self.sql
  local column = CASE_COLUMN[action]
  if column then
    db:defer(sql[column], on, case.id)
  elseif not hooked_step(self, case, action, on) then
    return
  end
  db:defer(sql.insert_outbox, key, case.id, action, on)
  if action == "disable_key" then
    db:defer(sql.set_disabled, on, "fraud", key)
  end
  log(self, key, on, action, provenance(self, { case = case.id }))
  taken[#taken + 1] = { key = key, case = case.id, action = action, on = on }
end

-- The case to work for a key whose excess runs since window.since: the
-- open one, a resumed one, or a new one once the excess is fraud.
local function case_for(self, key, lic, window, on)
  local db, sql = self.db, self.sql
  local case = db:first(sql.open_case, key)
  if case then
    if case.since ~= window.since then
      db:defer(sql.case_since, window.since, case.id)
      case.since = window.since
    end
    return case
  end
  case = db:first(sql.resumable_case, key, add_days(on, -policy_of(self, lic).case_cooldown_days))
  if case then
    db:defer(sql.resume_case, window.since, case.id)
    log(self, key, on, "case_resumed", provenance(self, { case = case.id, closed = case.closed,
                                                        since = window.since }))
    case.since = window.since
    return case
  end
  -- A key disabled for another reason gets no new case.
  if window.state ~= "fraud" or (lic.disabled and lic.disabled <= on) then return nil end
  local _, id = db:run(sql.insert_case, key, window.since, on)
  log(self, key, on, "case_opened", provenance(self, { case = id, since = window.since }))
  return { id = id, since = window.since }
end

local function sweep_key(self, cat, key, on, taken)
  local db, sql = self.db, self.sql
  local lic = common.load_license(self, key, on)
  local window = failure.try(cat:migration(lic, db:all(sql.installations, key), on))
  if window.state == "ok" then
    local open = db:first(sql.open_case, key)
    if open then common.close_case(self, key, open.id, on, "excess_ended", "the excess ended") end
    return
  end
  local case = case_for(self, key, lic, window, on)
  -- No step while the excess is only certificates of deactivated servers,
  -- which end by themselves (an honest move); the case stays open.
  if not case or (window.parked and window.active - window.parked <= window.allowed) then return end
  for _, action in ipairs(failure.try(cat:ladder(case, on, lic))) do
    take_step(self, key, case, action, on, taken)
  end
end

local function why_of(err)
  if type(err) == "table" and err.message then return err.code .. ": " .. err.message end
  return tostring(err)
end

-- How many keys a sweep on PostgreSQL works per commit.  Each key's lock
-- (an advisory lock, common.lock_key) holds a slot of the server's lock
-- table until its transaction ends, and the table has some thousands
-- (max_locks_per_transaction x max_connections, 6,400 by default): one
-- transaction for a sweep of 40,000 keys ran out of shared memory.  Each
-- key's work is whole (its savepoint) and a sweep run again takes no step
-- twice, so committing between keys changes no answer; a sweep that fails
-- later keeps the keys it worked before.  Inside another transaction
-- (store:idempotent's work) it cannot commit, and works all in one.
local SWEEP_BATCH = 256

-- progress: the sweep's answer so far, {taken=, skipped=, kept=, kept_skipped=},
-- the counts committed.  A workflow that lost a deadlock is run again
-- whole (common.transaction): the run again starts from what was
-- committed, so the answer still names the steps of earlier batches.
local function next_key(self, progress, taken, skipped)
  progress.n = progress.n + 1
  if self.kind == "postgresql" and self.may_discard and progress.n % SWEEP_BATCH == 0 then
    self.db:commit()
    self.db:begin()
    progress.kept, progress.kept_skipped = #taken, #skipped
  end
end

-- Runs fn(...) for one key inside a savepoint; on an error its writes and
-- steps are undone, the key is logged and added to `skipped`.
local function each_key(self, progress, key, on, taken, skipped, fn, ...)
  local db, n = self.db, #taken
  db:exec("SAVEPOINT sweep_key")
  local ok, err = pcall(fn, ...)
  if ok then
    db:exec("RELEASE SAVEPOINT sweep_key")
    return next_key(self, progress, taken, skipped)
  end
  db:exec("ROLLBACK TO SAVEPOINT sweep_key")
  db:exec("RELEASE SAVEPOINT sweep_key")
  for i = #taken, n + 1, -1 do taken[i] = nil end
  local why = why_of(err)
  common.lock_key(self, key)   -- the rollback let the key's lock go
  log(self, key, on, "sweep_skipped", { why = why })
  skipped[#skipped + 1] = { key = key, why = why }
  next_key(self, progress, taken, skipped)
end

-- The first day a check-in keeps an installation active on `on` under
-- the widest grace of any license (any day at all when a settings hook
-- decides some license's grace).
local function widest_grace_from(self, on)
  local tables, open = common.value_tables(self, on)
  if open then return "0000-01-01" end
  local grace = 0
  for _, t in ipairs(tables) do
    local days = t.checkin_grace_days
    if type(days) == "number" and days > grace then grace = days end
  end
  return add_days(on, -grace)
end

-- Keys with excess on `on`, and keys with an open case, each once, sorted.
local function candidates(self, on)
  local db, sql = self.db, self.sql
  local list, seen = {}, {}
  local grace_from = widest_grace_from(self, on)
  for _, rows in ipairs({ db:all(sql.excess_keys, on, grace_from), db:all(sql.open_case_keys) }) do
    for _, row in ipairs(rows) do
      if not seen[row.key] then seen[row.key] = true; list[#list + 1] = row.key end
    end
  end
  sort(list)
  return list
end

local function sweep(self, on, progress)
  on = check_on(on)
  local cat = common.active_catalogue(self)
  local taken, skipped = progress.taken, progress.skipped
  for i = #taken, progress.kept + 1, -1 do taken[i] = nil end
  for i = #skipped, progress.kept_skipped + 1, -1 do skipped[i] = nil end
  for _, key in ipairs(candidates(self, on)) do
    each_key(self, progress, key, on, taken, skipped, sweep_key, self, cat, key, on, taken)
  end
  reminders.take_due(self, on, taken, function(key, fn, ...)
    each_key(self, progress, key, on, taken, skipped, fn, ...)
  end)
  return taken, skipped
end

-- store:sweep(on) -> list of the steps taken in this sweep (the ladder's
-- {key=, case=, action=, on=}, then the reminders' {key=, action=, on=,
-- item=, refers_to=, days=}), and the list of keys it could not work,
-- {key=, why=} (each also a "sweep_skipped" event)
function Store:sweep(on)
  return transaction(self, sweep, on, { taken = {}, skipped = {}, kept = 0, kept_skipped = 0, n = 0 })
end

return Store
