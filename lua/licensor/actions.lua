-- licensor.actions -- the one list of outbox actions (doc/rules.md section
-- 6): what the ladder (R11) and the reminders write, which of them are
-- addressed to the customer (mailed by `licensor deliver --smtp`), in
-- store:on's order.  store:on, licensor.delivery, licensor.mail and the
-- specs read them from here; the C ladder's names (csrc/l_fraud.c
-- cat_ladder) are checked against LADDER by spec/mail_spec.lua.  Not the
-- place for how an action is delivered (licensor.delivery).
local ipairs, concat = ipairs, table.concat

local _M = {}

-- Each action: its name, who writes it ("ladder": R11 in step order, the
-- LSR_STEP_ bits of csrc/fraud.h; "reminder": store/reminders.lua, of the
-- term `reminds`, before its last day or `after` it), and whether it is
-- meant for the customer.
_M.ALL = {
  { name = "email_customer", source = "ladder", customer = true },
  { name = "notify_fraud_team", source = "ladder" },
  { name = "phone_customer", source = "ladder" },
  { name = "disable_key", source = "ladder" },
  { name = "ms_expiring", source = "reminder", reminds = "ms", customer = true },
  { name = "ms_lapsed", source = "reminder", reminds = "ms", after = true, customer = true },
  { name = "trial_ending", source = "reminder", reminds = "trial", customer = true },
  { name = "lease_ending", source = "reminder", reminds = "lease", customer = true },
  { name = "addon_expiring", source = "reminder", reminds = "addon", customer = true },
}

-- Lists of names (LIST: every action; LADDER, REMINDERS, CUSTOMER), sets
-- (known[name], customer[name]) and the reminders by term
-- (reminder[term] = {before=, after=}), all from ALL.
_M.LIST, _M.LADDER, _M.REMINDERS, _M.CUSTOMER = {}, {}, {}, {}
_M.known, _M.customer, _M.reminder = {}, {}, {}
for _, a in ipairs(_M.ALL) do
  _M.LIST[#_M.LIST + 1] = a.name
  _M.known[a.name] = true
  local list = a.source == "ladder" and _M.LADDER or _M.REMINDERS
  list[#list + 1] = a.name
  if a.reminds then
    _M.reminder[a.reminds] = _M.reminder[a.reminds] or {}
    _M.reminder[a.reminds][a.after and "after" or "before"] = a.name
  end
  if a.customer then
    _M.CUSTOMER[#_M.CUSTOMER + 1] = a.name
    _M.customer[a.name] = true
  end
end

-- names([list]) -> "a, b or c": the list (every action by default) as a
-- message names it.
function _M.names(list)
  list = list or _M.LIST
  return concat(list, ", ", 1, #list - 1) .. " or " .. list[#list]
end

return _M
