-- licensor.portal.view -- what the portal's pages show of one license, as
-- plain data (doc/portal.md): the FAQ's dialog (M&S status, the build the
-- license may install and why, its downloads and the older builds it may
-- also install), the renewal price and upgrade quotes, the installations
-- and the self-service budget.
--
-- view.license is pure: it reads the license, the catalogue and the
-- installations it is given and answers a table of strings, numbers and
-- booleans (no catalogue records, no functions), so the store can build
-- it on either backend and hand it across a thread (store:portal_license).
-- Dates are written as the FAQ writes them ("December 6, 2018"), money
-- with licensor.money in the catalogue's currency.  It says nothing about
-- HTML: escaping is licensor.portal.html's.
local core = require "licensor.core"
local money = require "licensor.money"

local format = string.format
local ipairs, pairs, type, tostring = ipairs, pairs, type, tostring

local _M = {}

-- The older builds a license page lists below the one it may install.
_M.OLDER_BUILDS = 5

local MONTHS = { "January", "February", "March", "April", "May", "June", "July", "August", "September",
                 "October", "November", "December" }

-- date_text("2018-12-06") -> "December 6, 2018"; nil for nil.
function _M.date_text(date)
  if date == nil then return nil end
  local y, m, d = tostring(date):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return tostring(date) end
  return format("%s %d, %d", MONTHS[tonumber(m)], tonumber(d), tonumber(y))
end
local date_text = _M.date_text

local function shift(date, days)
  return core.date(core.day(date) + days)
end

-- "enterprise" -> "Enterprise"; "message_sniffer" -> "Message sniffer".
local function title_case(id)
  local text = tostring(id):gsub("_", " ")
  return (text:gsub("^%l", string.upper))
end

-- "5 agents", "1 agent", "unlimited agents", "level 5" (no unit).
local function level_text(level, unit)
  if level == nil then return nil end
  if not unit then return "level " .. tostring(level) end
  if level == 1 and unit:sub(-1) == "s" then unit = unit:sub(1, -2) end
  return tostring(level) .. " " .. unit
end
_M.level_text = level_text

-- A copy of a build record's fields a page shows, with its downloads.
local function build_of(record)
  if not record then return nil end
  local downloads = {}
  for i, d in ipairs(record.downloads or {}) do
    downloads[i] = { platform = d.platform, name = d.name or (d.file or d.url or ""):match("([^/]*)$"),
                     size = d.size, sha256 = d.sha256 }
  end
  return { number = record.number, version = record.version, major = record.major,
           released = record.released, released_text = date_text(record.released), downloads = downloads }
end

-- The M&S words of the licenses list and the dialog.
local function ms_words(lic, status)
  if status.ms == "active" then return "active until " .. date_text(status.ms_expires) end
  if status.ms == "expired" then return "expired on " .. date_text(status.ms_expires) end
  if status.kind ~= "perpetual" then return "not applicable (" .. status.kind .. ")" end
  return lic.version_lock and format("none (tied to version %d.x)", lic.version_lock) or "none"
end

-- The last day a trial runs (rules.md R7).
local function trial_last_day(lic, policy)
  return shift(lic.start, (lic.trial_days or policy.trial_days) - 1)
end

-- Why the license gets the build it gets, in one sentence (R2-R7).
local function reason(lic, status, policy, on)
  if status.state == "disabled" then
    return "This license was disabled on " .. date_text(lic.disabled) .. ": it may install no build."
  end
  if status.state == "not_started" then
    return "This license starts on " .. date_text(lic.start) .. ": it may install no build before then."
  end
  if status.kind == "lease" then
    if status.state == "expired" then
      return "The lease ended on " .. date_text(lic.lease_ended) .. ": a lease may install builds only " ..
        "while it runs."
    end
    return "A lease may install every new build while it runs."
  end
  if status.kind == "trial" then
    local last = trial_last_day(lic, policy)
    if status.state == "expired" or core.day(last) < core.day(on) then
      return "The trial ended on " .. date_text(last) .. ": a trial may install builds only during its days."
    end
    return "A trial may install every new build during its days, until " .. date_text(last) .. "."
  end
  if lic.version_lock then
    return format("This license is tied to version %d.x: it may install the last %d.x build and any " ..
                  "earlier build.", lic.version_lock, lic.version_lock)
  end
  if status.ms == "active" then
    return "M&S is active until " .. date_text(status.ms_expires) .. ": the license may install every " ..
      "build released until then."
  end
  if status.ms == "expired" then
    return "M&S expired on " .. date_text(status.ms_expires) .. ": the license may install the newest " ..
      "build released by then, and any earlier build."
  end
  return "This license was bought without M&S: it may install the newest build released by its purchase " ..
    "day, " .. date_text(lic.start) .. ", and any earlier build."
end

-- The older builds the license may also install (R5), newest first.
local function older_builds(cat, lic, eligible, on)
  local builds, older = cat:builds(lic.product), {}
  local at
  for i = #builds, 1, -1 do
    if builds[i].number == eligible.number then at = i break end
  end
  for i = (at or 1) - 1, 1, -1 do
    if #older >= _M.OLDER_BUILDS then break end
    if cat:can_install(lic, builds[i].number, on) then older[#older + 1] = build_of(builds[i]) end
  end
  return older
end

local ADDON_WORDS = {
  active = function(paid) return "active, paid through " .. date_text(paid) end,
  expired = function(paid) return "expired on " .. date_text(paid) end,
  ms_expired = function() return "stopped: M&S has expired" end,
  license_invalid = function() return "stopped: the license is not valid" end,
  requires_upgrade = function() return "stopped: it needs the newest version" end,
}

local function addons_of(lic, status)
  local list = {}
  for id, state in pairs(status.addons or {}) do
    local paid = type(lic.addons) == "table" and lic.addons[id] or nil
    local words = ADDON_WORDS[state]
    list[#list + 1] = { id = id, name = title_case(id), state = state, paid_through = paid,
                        text = words and words(paid) or state }
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

-- A checkout link: the policy's checkout_url with the key, the item and
-- the amount (minor units) in its query; licensor takes no payment.
local function escape_component(text)
  return (tostring(text):gsub("[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

local function checkout(url, fields)
  if type(url) ~= "string" or not (url:match("^https://") or url:match("^http://")) then return nil end
  local query = {}
  for i = 1, #fields, 2 do
    query[#query + 1] = fields[i] .. "=" .. escape_component(fields[i + 1])
  end
  local base, fragment = url:match("^([^#]*)(.*)$")
  local sep = base:find("?", 1, true) and (base:match("[?&]$") and "" or "&") or "?"
  return base .. sep .. table.concat(query, "&") .. fragment
end

-- The price of one M&S term (the store's formula, store.common).
local renewal_price = require("licensor.store.common").renewal_price

-- Renewing M&S (R15): one term, or as many as bring a lapsed M&S up to
-- `on` (from_expiry pays for the lapsed time), with what they cost.
local function renewal_of(cat, lic, status, policy, on, currency)
  if status.kind ~= "perpetual" or status.state ~= "active" then return nil end
  local price = renewal_price(cat, lic, on)
  if not price then return nil end
  local terms, copy = 0, lic
  local today = core.day(on)
  repeat
    local renewed = core.renew(copy, on, { months = policy.ms_months, basis = policy.renewal_basis })
    if not renewed then return nil end
    copy, terms = renewed, terms + 1
  until core.day(copy.ms_expires) >= today or terms >= 1000
  local amount = price * terms
  local text
  -- from_expiry: a lapsed term counts from the day M&S ended, not today,
  -- which is why "until" may be near; the sentence says so.
  local from = ""
  if policy.renewal_basis ~= "from_renewal" and lic.ms_expires and core.day(lic.ms_expires) < today then
    from = " (terms count from " .. date_text(lic.ms_expires) .. ", the day M&S ended)"
  end
  if terms == 1 then
    text = format("Renewing M&S for %d months costs %s; M&S then runs until %s%s.", policy.ms_months,
                  money.format(amount, currency), date_text(copy.ms_expires), from)
  else
    text = format("Bringing M&S up to date takes %d terms of %d months, %s each: %s in all; M&S then " ..
                  "runs until %s%s.", terms, policy.ms_months, money.format(price, currency),
                  money.format(amount, currency), date_text(copy.ms_expires), from)
  end
  return { price = price, price_text = money.format(price, currency), terms = terms, amount = amount,
           amount_text = money.format(amount, currency), until_date = copy.ms_expires,
           until_text = date_text(copy.ms_expires), text = text,
           checkout = checkout(policy.checkout_url, { "key", lic.key, "item", "renewal", "terms", terms,
                                                      "amount", amount, "currency", currency }) }
end

-- Upgrade quotes by price difference (R12) to every priced edition and
-- level of the eligible build's major; a lower one is a sales matter.
local function upgrades_of(cat, lic, eligible, policy, on, currency, product)
  if not eligible or lic.edition == nil or lic.level == nil then return {}, false end
  local list, downgrade = {}, false
  for _, p in ipairs(cat:prices(lic.product)) do
    if p.major == eligible.major and not (p.edition == lic.edition and p.level == lic.level) then
      local amount, _, code = cat:quote_upgrade(lic, { edition = p.edition, level = p.level }, on)
      if amount then
        local level = level_text(p.level, product.unit)
        list[#list + 1] = {
          edition = p.edition, level = p.level, edition_text = title_case(p.edition), level_text = level,
          amount = amount, amount_text = money.format(amount, currency),
          title = title_case(p.edition) .. ", " .. level,
          checkout = checkout(policy.checkout_url, { "key", lic.key, "item", "upgrade", "edition", p.edition,
                                                     "level", p.level, "amount", amount,
                                                     "currency", currency }) }
      elseif code == "downgrade" then
        downgrade = true
      end
    end
  end
  return list, downgrade
end

-- The installations a page lists: each server's newest record that still
-- runs or holds a slot (R9, the certificate's hold), with its state.
local function installations_of(cat, installations, on)
  local newest, order = {}, {}
  for _, inst in ipairs(installations or {}) do
    if not newest[inst.server] then order[#order + 1] = inst.server end
    newest[inst.server] = inst
  end
  local list = {}
  for _, server in ipairs(order) do
    local inst = newest[server]
    local active = inst.deactivated == nil and cat:installation_active(inst, on)
    local holds = inst.held_until ~= nil and cat:installation_holds(inst, on)
    if inst.deactivated == nil or holds then
      local state = active and "active" or inst.deactivated and "deactivated" or "not checking in"
      local last = inst.last_seen or inst.first_seen
      list[#list + 1] = {
        server = inst.server, build = inst.build, state = state,
        first_seen = inst.first_seen, first_seen_text = date_text(inst.first_seen),
        last_seen = last, last_seen_text = date_text(last),
        deactivated = inst.deactivated, deactivated_text = date_text(inst.deactivated),
        held_until = holds and inst.held_until or nil,
        held_until_text = holds and date_text(inst.held_until) or nil,
        can_deactivate = true }
    end
  end
  return list
end

-- license(lic, cat, installations, on[, used[, brief]]) -> the page's
-- table.  `used`: the self-service deactivations already counted in the
-- policy's window (the store knows them from the license's events);
-- without it the budget says only what the policy allows.  brief: the
-- licenses list's fields only (no older builds, prices, installations).
function _M.license(lic, cat, installations, on, used, brief)
  local status, message, code = cat:status(lic, on)
  if not status then
    return { key = lic.key, product = { id = lic.product, name = lic.product }, broken = true,
             message = message, code = code }
  end
  local policy = cat:policy(lic)
  local currency = cat:currency()
  local product = cat:product(lic.product) or { id = lic.product, name = lic.product }
  local eligible = build_of(status.eligible)
  local edition_text = lic.edition and title_case(lic.edition) or nil
  local level = level_text(lic.level, product.unit)
  local title = product.name .. (edition_text and (" " .. edition_text) or "") ..
    (level and (", " .. level) or "")
  local install_text
  if eligible then
    install_text = format("You may install Build %d (released %s)", eligible.number, eligible.released_text)
  else
    install_text = "This license may not install any build now"
  end
  local kind = status.kind
  local v = {
    key = lic.key, owner = lic.owner, title = title,
    product = { id = product.id, name = product.name, unit = product.unit },
    edition = lic.edition, edition_text = edition_text, level = lic.level, level_text = level,
    kind = kind, kind_text = kind == "perpetual" and "perpetual" or kind,
    state = status.state, valid = status.valid, updates = status.updates,
    state_text = status.state == "active" and "valid" or status.state == "not_started" and "not started yet"
      or status.state,
    ms = status.ms, ms_expires = status.ms_expires, ms_expires_text = date_text(status.ms_expires),
    ms_text = ms_words(lic, status),
    start = lic.start, start_text = date_text(lic.start),
    lease_ended = kind == "lease" and lic.lease_ended or nil,
    trial_ends = kind == "trial" and trial_last_day(lic, policy) or nil,
    eligible = eligible, install_text = install_text,
    refusal = not eligible and status.message or nil, refusal_code = not eligible and status.code or nil,
    reason = reason(lic, status, policy, on),
    addons = addons_of(lic, status),
    currency = currency,
    on = on, on_text = date_text(on),
  }
  -- brief: the licenses list's row, without what only the license's own
  -- page shows (older builds, prices, installations), which cost most.
  if brief then return v end
  local upgrades, downgrade = upgrades_of(cat, lic, eligible, policy, on, currency, product)
  local allowed = policy.self_deactivations
  local budget = { allowed = allowed, days = policy.self_deactivation_days }
  if type(used) == "number" then
    budget.used = used
    budget.left = allowed > used and allowed - used or 0
  end
  v.older = eligible and older_builds(cat, lic, eligible, on) or {}
  v.renewal = renewal_of(cat, lic, status, policy, on, currency)
  v.upgrades = upgrades
  v.downgrade = downgrade and "A lower edition or level is a license change: contact sales." or nil
  v.installations = installations_of(cat, installations, on)
  v.self_deactivation = budget
  return v
end

return _M
