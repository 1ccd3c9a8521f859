-- licensor.store.outbox -- delivering the actions the sweep wrote:
-- store:on(action, fn) names a handler, store:deliver() claims pending
-- rows, calls their handlers after commit and marks a row delivered only
-- when its handler returned true: at least once, never lost, and one
-- deliverer per row at a time.
local common = require "licensor.store.common"

local type, ipairs, pcall, tostring = type, ipairs, pcall, tostring
local os_date, os_time, sort = os.date, os.time, table.sort

local Store = common.Store
local bad_argument, transaction, guarded = common.bad_argument, common.transaction, common.guarded

-- The actions the ladder writes, the only ones store:on accepts.
local ACTIONS = { email_customer = true, notify_fraud_team = true, phone_customer = true,
                  disable_key = true }

-- store:on(action, fn): the handler for an outbox action.
function Store:on(action, fn)
  if not ACTIONS[action] then
    bad_argument(1, "on", "email_customer, notify_fraud_team, phone_customer or disable_key expected")
  end
  if type(fn) ~= "function" then bad_argument(2, "on", "function expected") end
  self.handlers[action] = fn
end

local function mark_delivered(self, id)
  self.db:defer(self.sql.outbox_done, os_date("!%Y-%m-%dT%H:%M:%SZ"), id)
  return true
end

local function release(self, id)
  self.db:defer(self.sql.release_outbox, id, self.claim_token)
  return true
end

-- Claims up to BATCH pending rows after last_id that no deliverer holds,
-- for the store's claim_ms: another deliverer (another process, another
-- host) skips them until then, or until they are released.
local BATCH = 100

local function claim(self, last_id)
  local now = os_time() * 1000
  local rows = self.db:all(self.sql.claim_outbox, self.claim_token, now + self.claim_ms, last_id, now, BATCH)
  sort(rows, function(a, b) return a.id < b.id end)
  return rows
end

local function count_pending(self)
  return self.db:value(self.sql.count_pending)
end

-- Runs one row's handler; nil on success, else {id=, action=, step=,
-- error=} where step says what failed: "handler" (it raised or did not
-- return true) or "record" (it succeeded but marking the row delivered
-- failed, so the row stays pending and will be offered again).
local function deliver_row(self, row, handler)
  local action = { key = row.key, case = row.case_id, action = row.action, on = row.on_day, id = row.id }
  local ok, result = pcall(handler, action)
  if not ok or result ~= true then
    transaction(self, release, row.id)
    return { id = row.id, action = row.action, step = "handler",
             error = ok and ("the handler returned " .. tostring(result)) or tostring(result) }
  end
  local recorded, message, code = transaction(self, mark_delivered, row.id)
  if not recorded then
    return { id = row.id, action = row.action, step = "record",
             error = "recording the delivery failed: " .. tostring(code) .. ": " .. tostring(message) }
  end
end

-- store:deliver() -> delivered, pending, failures.  Claims the pending
-- rows a batch at a time and calls each one's handler, oldest first,
-- outside any transaction.  A handler that returns true marks its row
-- delivered; anything else (false, an error, no handler) releases the
-- row, untouched, for the next call.  Deliverers running at once on one
-- database never hold the same row: each row goes to one of them, and a
-- deliverer that dies holding rows leaves them to the others once its
-- claim ends (claim_ms, default 60 s).  failures lists {id=, action=,
-- step=, error=} of this call.
function Store:deliver()
  local delivered, last_id, failures = 0, 0, {}
  while true do
    local rows = transaction(self, claim, last_id)
    if not rows or #rows == 0 then break end
    for _, row in ipairs(rows) do
      last_id = row.id
      local handler = self.handlers[row.action]
      if handler then
        local failed = deliver_row(self, row, handler)
        if failed then failures[#failures + 1] = failed else delivered = delivered + 1 end
      else
        transaction(self, release, row.id)
      end
    end
  end
  local pending = guarded(self, count_pending)
  return delivered, pending, failures
end

return Store
