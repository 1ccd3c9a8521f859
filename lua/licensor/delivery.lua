-- licensor.delivery -- which channel each outbox action leaves by, for
-- `licensor deliver`: webhooks (licensor.webhook) and customer mail
-- (licensor.mail).
--
-- Each action has one channel, because the outbox records one delivery per
-- row: a row sent by mail and by webhook would have to succeed on both or
-- be sent again on both.  The order of precedence:
--   1. --webhook ACTION=URL names the action: that URL;
--   2. --smtp is given and the action is for the customer (licensor.mail
--      ACTIONS): mail to the license's email address;
--   3. --webhook URL: that URL;
--   4. otherwise the action has no handler and stays pending.
-- A private action (portal_signin: a sign-in link, for the owner's mailbox
-- alone) goes by mail or not at all: --webhook URL does not take it, and
-- --webhook portal_signin=URL is refused.
-- The actions, and which are the customer's, are licensor.actions'.  TLS
-- (https webhooks, STARTTLS) is licensor.tls', with one `tls` option for
-- every handler: {cafile=, insecure=}.
local actions = require "licensor.actions"

local ipairs, pairs, setmetatable = ipairs, pairs, setmetatable

local _M = {}

-- Splits --webhook values into {action = url} and the catch-all url; nil,
-- why for an action the outbox does not have.
local function split_webhooks(urls)
  local known = actions.known
  local by_action, all = {}, nil
  for _, u in ipairs(urls or {}) do
    local action, url = u:match("^([%w_]+)=(%a+://.+)$")
    if action and not known[action] then
      return nil, "--webhook " .. action .. "=...: no outbox action '" .. action .. "' (" ..
        table.concat(actions.LIST, ", ") .. ")"
    end
    if action and actions.private[action] then
      return nil, "--webhook " .. action .. "=...: " .. action .. " is never sent to a webhook " ..
        "(it carries a sign-in link: --smtp mails it)"
    end
    if action then by_action[action] = url else all = u end
  end
  return by_action, all
end

-- routes{webhooks=, smtp=(bool), portal=(bool)} -> {action = "mail" |
-- url}: the plan; or nil, why.  The portal's sign-in mail needs the
-- portal's address and link secret (portal): without them its rows are
-- not routed and stay pending, untried, as an action without a webhook
-- does, rather than spending attempts on a deliverer that cannot write
-- the link.
function _M.routes(opts)
  local by_action, all = split_webhooks(opts.webhooks)
  if not by_action then return nil, all end
  local customer, private = actions.customer, actions.private
  local portal_action = {}
  for _, action in ipairs(actions.PORTAL) do portal_action[action] = true end
  local plan = {}
  for _, action in ipairs(actions.LIST) do
    local mail = opts.smtp and customer[action] and (opts.portal or not portal_action[action])
    plan[action] = by_action[action] or (mail and "mail") or (not private[action] and all) or nil
  end
  return plan
end

-- install(store, opts) -> the plan (or nil, why): store:on for every
-- routed action.
-- opts: webhooks (list of --webhook values), secret, timeout (s), mail
-- (licensor.mail.handler's options) when mail is configured, portal
-- ({url=, secret=}: --portal-url and the --link-secret file's text, which
-- sign-in mail needs), and tls
-- (licensor.tls's {cafile=, insecure=}: the authorities webhooks and SMTP
-- trust, or no checks at all, logged once) for both channels.
function _M.install(store, opts)
  local plan, why = _M.routes{ webhooks = opts.webhooks, smtp = opts.mail ~= nil,
                               portal = (opts.mail and opts.mail.portal or opts.portal) ~= nil }
  if not plan then return nil, why end
  local tls = opts.tls or {}
  local mail_handler
  for action, route in pairs(plan) do
    if route == "mail" then
      if not mail_handler then
        local mail_opts = setmetatable({ tls = opts.mail.tls or opts.tls,
                                         portal = opts.mail.portal or opts.portal }, { __index = opts.mail })
        mail_handler = require("licensor.mail").handler(store, mail_opts)
      end
      store:on(action, mail_handler)
    else
      store:on(action, require("licensor.webhook").handler{ url = route, secret = opts.secret,
                                                            timeout = opts.timeout, tls = tls })
    end
  end
  return plan
end

return _M
