-- licensor.store.outbox -- delivering the actions the sweep wrote:
-- store:on(action, fn) names a handler, store:deliver() calls the handlers
-- of pending rows after commit and marks a row delivered only when its
-- handler returned true: at least once, never lost.
local common = require "licensor.store.common"

local type, ipairs, pcall, tostring = type, ipairs, pcall, tostring
local os_date = os.date

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
  self.db:run(self.sql.outbox_done, os_date("!%Y-%m-%dT%H:%M:%SZ"), id)
  return true
end

local function pending_after(self, last_id)
  return self.db:all(self.sql.pending_outbox, last_id)
end

local function count_pending(self)
  return self.db:value(self.sql.count_pending)
end

-- Runs one row's handler; nil on success, else {id=, action=, step=,
-- error=} where step says what failed: "handler" (it raised or did not
-- return true) or "record" (it succeeded but marking the row delivered
-- failed, so the row stays pending and will be offered again).
local function deliver_row(self, row, handler)
  local action = { key = row.key, case = row.case_id, action = row.action, on = row.on_day }
  local ok, result = pcall(handler, action)
  if not ok or result ~= true then
    return { id = row.id, action = row.action, step = "handler",
             error = ok and ("the handler returned " .. tostring(result)) or tostring(result) }
  end
  local recorded, message, code = transaction(self, mark_delivered, row.id)
  if not recorded then
    return { id = row.id, action = row.action, step = "record",
             error = "recording the delivery failed: " .. tostring(code) .. ": " .. tostring(message) }
  end
end

-- store:deliver() -> delivered, pending, failures.  Calls the handler of
-- every pending row, oldest first, outside any transaction.  A handler that
-- returns true marks its row delivered; anything else (false, an error, no
-- handler) leaves the row pending, untouched, for the next call.
-- failures lists {id=, action=, step=, error=} of this call.
function Store:deliver()
  local delivered, last_id, failures = 0, 0, {}
  while true do
    local rows = guarded(self, pending_after, last_id)
    if not rows or #rows == 0 then break end
    for _, row in ipairs(rows) do
      last_id = row.id
      local handler = self.handlers[row.action]
      if handler then
        local failed = deliver_row(self, row, handler)
        if failed then failures[#failures + 1] = failed else delivered = delivered + 1 end
      end
    end
  end
  local pending = guarded(self, count_pending)
  return delivered, pending, failures
end

return Store
