-- licensor.store.outbox -- delivering the actions the sweep wrote:
-- store:on(action, fn) names a handler, store:deliver() claims pending
-- rows, calls their handlers after commit and marks a row delivered only
-- when its handler returned true: at least once, never lost, and one
-- deliverer per row at a time.
local common = require "licensor.store.common"
local actions = require "licensor.actions"
local epoch_ms = require("licensor.core").epoch_ms

local type, ipairs, pcall, tostring = type, ipairs, pcall, tostring
local os_date, sort = os.date, table.sort
local floor, random = math.floor, math.random

local Store = common.Store
local bad_argument, transaction, guarded = common.bad_argument, common.transaction, common.guarded

-- The actions the ladder, the reminders and the portal write
-- (licensor.actions), the only ones store:on accepts.  common.ACTIONS is
-- the list of those a webhook may carry, for older readers (licensor.demo,
-- which sends them all to one); new code reads licensor.actions.
local KNOWN = actions.known
common.ACTIONS = actions.WEBHOOK

-- store:on(action, fn): the handler for an outbox action.
function Store:on(action, fn)
  if not KNOWN[action] then bad_argument(1, "on", actions.names() .. " expected") end
  if type(fn) ~= "function" then bad_argument(2, "on", "function expected") end
  self.handlers[action] = fn
end

local function mark_delivered(self, id)
  self.db:defer(self.sql.outbox_done, os_date("!%Y-%m-%dT%H:%M:%SZ"), id)
  return true
end

-- Renews this deliverer's claim on row `id` just before its handler runs;
-- false if the claim ran out and another deliverer holds the row now.
local function hold(self, id)
  return self.db:run(self.sql.hold_outbox, id, self.claim_token, epoch_ms() + self.claim_ms) == 1
end

local function release(self, id)
  self.db:defer(self.sql.release_outbox, id, self.claim_token)
  return true
end

-- Capped exponential backoff with jitter: base, 2 base, 4 base ... (at most
-- an hour), each between half and one and a half of that.
local MAX_BACKOFF_MS = 3600000

local function backoff_ms(base, attempts)
  local delay = base * 2 ^ (attempts - 1)
  if delay > MAX_BACKOFF_MS then delay = MAX_BACKOFF_MS end
  return floor(delay * (0.5 + random()))
end

-- A failed delivery of row: counted, tried again after the backoff, or
-- dead-lettered once it has had max_tries.  Answers whether it is dead.
local function record_failure(self, row, err, opts, undeliverable)
  local attempts = (row.attempts or 0) + 1
  local next_attempt, dead
  if undeliverable or (opts.max_tries and attempts >= opts.max_tries) then
    dead = os_date("!%Y-%m-%dT%H:%M:%SZ")
  elseif opts.backoff_ms > 0 then
    next_attempt = epoch_ms() + backoff_ms(opts.backoff_ms, attempts)
  end
  self.db:defer(self.sql.outbox_failed, row.id, attempts, next_attempt, err, dead, self.claim_token)
  return dead ~= nil
end

-- Claims up to BATCH pending rows after last_id that no deliverer holds,
-- for the store's claim_ms: another deliverer (another process, another
-- host) skips them until then, or until they are released.
local BATCH = 100

local function claim(self, last_id)
  local now = epoch_ms()
  local rows = self.db:all(self.sql.claim_outbox, self.claim_token, now + self.claim_ms, last_id, now, BATCH)
  sort(rows, function(a, b) return a.id < b.id end)
  return rows
end

local function count_pending(self)
  return self.db:value(self.sql.count_pending)
end

-- What a handler's answer says: nil when it delivered (true); else the
-- reason and whether the row is undeliverable.  A handler answers true, or
-- nil, why, "retry" (a failed attempt), or nil, why, "undeliverable"
-- (another try cannot succeed); a raised error (a user's handler) is a
-- failed attempt, and so is any other answer.
local function failure_of(ok, result, why, kind)
  if not ok then return tostring(result), false end
  if result == true then return nil end
  if result == nil and why ~= nil then return tostring(why), kind == "undeliverable" end
  return "the handler returned " .. tostring(result), false
end

-- Runs one row's handler; nil on success, else {id=, action=, step=,
-- error=} where step says what failed: "handler" (it raised or did not
-- return true) or "record" (it succeeded but marking the row delivered
-- failed, so the row stays pending and will be offered again).
local function deliver_row(self, row, handler, opts)
  local action = { key = row.key, case = row.case_id, action = row.action, on = row.on_day, id = row.id,
                   refers_to = row.refers_to, detail = row.detail and common.decode_detail(row.detail),
                   attempts = row.attempts }
  local err, undeliverable = failure_of(pcall(handler, action))
  if err then
    local _, dead = transaction(self, function(s)
      return true, record_failure(s, row, err, opts, undeliverable)
    end)
    return { id = row.id, action = row.action, step = "handler", error = err, dead = dead or nil }
  end
  local recorded, message, code = transaction(self, mark_delivered, row.id)
  if not recorded then
    return { id = row.id, action = row.action, step = "record",
             error = "recording the delivery failed: " .. tostring(code) .. ": " .. tostring(message) }
  end
end

-- store:deliver{max_tries=, backoff_ms=} -> delivered, pending, failures.
-- Claims the pending rows a batch at a time and calls each one's handler,
-- oldest first, outside any transaction.  A handler that returns true
-- marks its row delivered.  A handler that fails (nil, why, "retry";
-- false; an error raised) counts an attempt: the row waits backoff_ms, doubling with each attempt (with
-- jitter; 0, the default: the next call tries again), and is dead-lettered
-- after max_tries (default: never), or at once when the handler answers
-- nil, why, "undeliverable" (it knows another try cannot succeed: the
-- license has no email address, the mail server refused the recipient for
-- good).  A row with no handler is released
-- untouched.  Dead rows wait for store:retry(id).  Deliverers running at once on one
-- database never hold the same row: each row goes to one of them, and a
-- deliverer that dies holding rows leaves them to the others once its
-- claim ends (claim_ms, default 60 s; each row's claim is renewed just
-- before its handler runs, so claim_ms must outlast one handler, not a
-- batch).  failures lists {id=, action=,
-- step=, error=} of this call.
function Store:deliver(opts)
  if opts ~= nil and type(opts) ~= "table" then bad_argument(1, "deliver", "options table expected") end
  opts = { max_tries = opts and opts.max_tries, backoff_ms = opts and opts.backoff_ms or 0 }
  if opts.max_tries ~= nil and (type(opts.max_tries) ~= "number" or opts.max_tries < 1) then
    bad_argument(1, "deliver", "max_tries must be a number of tries")
  end
  local delivered, last_id, failures = 0, 0, {}
  while true do
    local rows = transaction(self, claim, last_id)
    if not rows or #rows == 0 then break end
    for _, row in ipairs(rows) do
      last_id = row.id
      local handler = self.handlers[row.action]
      if handler then
        -- A batch can outlast its claim (slow handlers): each row's claim is
        -- renewed before it is sent, and skipped if another deliverer took it.
        if transaction(self, hold, row.id) then
          local failed = deliver_row(self, row, handler, opts)
          if failed then failures[#failures + 1] = failed else delivered = delivered + 1 end
        end
      else
        transaction(self, release, row.id)
      end
    end
  end
  local pending = guarded(self, count_pending)
  return delivered, pending, failures
end

local STATES = { all = true, dead = true, pending = true }

local function outbox_rows(self, state, limit)
  local rows = self.db:all(self.sql.outbox_rows, state, limit)
  for _, row in ipairs(rows) do row.detail = row.detail and common.decode_detail(row.detail) end
  return rows
end

-- store:outbox{state="dead"|"pending"|"all", limit=100} -> rows {id=, key=,
-- case_id=, action=, on_day=, refers_to=, detail=, delivered=, attempts=,
-- last_error=, dead=}
function Store:outbox(opts)
  if opts ~= nil and type(opts) ~= "table" then bad_argument(1, "outbox", "options table expected") end
  local state, limit = opts and opts.state or "pending", opts and opts.limit or 100
  if not STATES[state] then bad_argument(1, "outbox", "state: dead, pending or all") end
  if type(limit) ~= "number" or limit < 1 or limit % 1 ~= 0 then
    bad_argument(1, "outbox", "limit: a count")
  end
  return guarded(self, outbox_rows, state, limit)
end

local function retry(self, id)
  local changed = self.db:run(self.sql.outbox_retry, id)
  if changed ~= 1 then common.refuse("not_found", "no undelivered outbox row " .. tostring(id)) end
  return true
end

-- store:retry(id) -> true: a dead-lettered (or waiting) row is pending
-- again, its attempts forgotten.
function Store:retry(id)
  if type(id) ~= "number" then bad_argument(1, "retry", "outbox row id expected") end
  return transaction(self, retry, id)
end

return Store
