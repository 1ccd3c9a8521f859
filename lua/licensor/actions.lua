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
-- term `reminds`, before its last day or `after` it; "portal":
-- store/portal.lua; "policy": the sweep, when a policy file's ladder hook
-- answers the step, once per case), whether it is meant for the customer,
-- and whether it is never sent to a webhook (`private`: a sign-in link is
-- for the owner's mailbox alone).
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
  { name = "portal_signin", source = "portal", customer = true, private = true },
  { name = "notify_reseller", source = "policy" },
}

-- Lists of names (LIST: every action; LADDER, REMINDERS, PORTAL, POLICY
-- (the steps a ladder hook may add to LADDER's), CUSTOMER, WEBHOOK: those
-- a webhook may carry), sets (known[name], customer[name], private[name])
-- and the reminders by term (reminder[term] = {before=, after=}), all
-- from ALL.
_M.LIST, _M.LADDER, _M.REMINDERS, _M.PORTAL, _M.POLICY, _M.CUSTOMER, _M.WEBHOOK = {}, {}, {}, {}, {}, {}, {}
_M.known, _M.customer, _M.private, _M.reminder = {}, {}, {}, {}
local BY_SOURCE = { ladder = _M.LADDER, reminder = _M.REMINDERS, portal = _M.PORTAL, policy = _M.POLICY }
for _, a in ipairs(_M.ALL) do
  _M.LIST[#_M.LIST + 1] = a.name
  _M.known[a.name] = true
  local list = BY_SOURCE[a.source]
  list[#list + 1] = a.name
  if a.private then
    _M.private[a.name] = true
  else
    _M.WEBHOOK[#_M.WEBHOOK + 1] = a.name
  end
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
