-- licensor.store.lists -- finding licenses: store:list with filters that
-- combine (owner, product, kind, edition, tags, M&S expiring soon,
-- lapsed, disabled, open fraud cases), a page at a time, by indexes
-- (schema 6; tags, a word within the column, are matched row by row); and
-- which tags some license already has (store:tags_in_use).
local common = require "licensor.store.common"
local failure = require "licensor.failure"

local type, ipairs, concat = type, ipairs, table.concat
local unpack = table.unpack or unpack   -- luacheck: ignore unpack

local Store = common.Store
local refuse, bad_argument, guarded = common.refuse, common.bad_argument, common.guarded

local COLUMNS = [[SELECT l.key, l.owner, l.product, l.edition, l.level, l.kind, l.start, l.ms_expires,
  l.disabled, c.since AS fraud_since, c.first_step, c.phoned, c.disabled AS case_disabled
  FROM licenses l LEFT JOIN fraud_cases c ON c.key = l.key AND c.closed IS NULL]]

local TEXT_FILTERS = { "owner", "product", "kind", "edition" }

-- The LIKE pattern of a whole word of the tags column (space-separated
-- words): " WORD " within " TAGS ", "_" (a tag's one LIKE wildcard)
-- escaped.  The same text on SQLite and PostgreSQL; tags are lowercase,
-- so SQLite's case-blind LIKE finds the same rows.
local TAG_CLAUSE = "(' ' || l.tags || ' ') LIKE ? ESCAPE '\\'"
local function tag_pattern(word)
  return "% " .. word:gsub("_", "\\_") .. " %"
end

-- The WHERE clause and its values for a filter table.
local function where(filter, on)
  local clauses, values = {}, {}
  for _, field in ipairs(TEXT_FILTERS) do
    local v = filter[field]
    if v ~= nil then
      if type(v) ~= "string" then bad_argument(1, "list", field .. " must be a string", 3) end
      clauses[#clauses + 1] = "l." .. field .. " = ?"
      values[#values + 1] = v
    end
  end
  if filter.ms_expiring ~= nil then
    local days = filter.ms_expiring
    if type(days) ~= "number" or days < 0 or days % 1 ~= 0 then
      bad_argument(1, "list", "ms_expiring must be a whole number of days", 3)
    end
    clauses[#clauses + 1] = "l.kind = 'perpetual' AND l.ms_expires >= ? AND l.ms_expires <= ?"
    values[#values + 1] = on
    values[#values + 1] = common.add_days(on, days)
  end
  if filter.lapsed then
    clauses[#clauses + 1] = "l.kind = 'perpetual' AND l.ms_expires < ?"
    values[#values + 1] = on
  end
  if filter.tags ~= nil then
    if type(filter.tags) ~= "table" then bad_argument(1, "list", "tags must be a list of words", 3) end
    for _, word in ipairs(filter.tags) do
      failure.try(common.check_tag(word))
      clauses[#clauses + 1] = TAG_CLAUSE
      values[#values + 1] = tag_pattern(word)
    end
  end
  if filter.disabled then clauses[#clauses + 1] = "l.disabled IS NOT NULL" end
  if filter.fraud then clauses[#clauses + 1] = "c.id IS NOT NULL" end
  return #clauses > 0 and (" WHERE " .. concat(clauses, " AND ")) or "", values
end

local function list(self, filter)
  local on = common.check_on(filter.on)
  local limit, offset = filter.limit or 100, filter.offset or 0
  if type(limit) ~= "number" or limit < 1 or limit > 100000 or limit % 1 ~= 0 or
     type(offset) ~= "number" or offset < 0 or offset % 1 ~= 0 then
    refuse("invalid_request", "limit is 1 to 100000 and offset a whole number")
  end
  local clause, values = where(filter, on)
  values[#values + 1] = limit
  values[#values + 1] = offset
  local rows = self.db:query(self.query_ms, COLUMNS .. clause .. " ORDER BY l.key LIMIT ? OFFSET ?",
                             unpack(values))
  for _, row in ipairs(rows) do row.level = common.level_value(row.level) end
  return rows
end

-- store:list{owner=, product=, kind=, edition=, tags={WORD, ...},
-- ms_expiring=DAYS, lapsed=, disabled=, fraud=, on=, limit=100, offset=0}
-- -> list of {key=, owner=, product=, edition=, level=, kind=, start=,
-- ms_expires=, disabled=, fraud_since=, first_step=, phoned=,
-- case_disabled=}, by key.  tags: licenses with every one of the words
-- (a malformed one is invalid_request).
function Store:list(filter)
  if filter ~= nil and type(filter) ~= "table" then bad_argument(1, "list", "filter table expected") end
  return guarded(self, list, filter or {})
end

local function tags_in_use(self, words, except)
  local used = {}
  for _, word in ipairs(words) do
    failure.try(common.check_tag(word))
    if self.db:first(self.sql.tag_in_use, tag_pattern(word), except) then used[word] = true end
  end
  return used
end

-- store:tags_in_use({WORD, ...}[, except_key]) -> the set of those words
-- that some license (other than except_key) has: a tag about to be given
-- that no license has yet may be a typo.  One query a word, stopping at
-- the first license found; a word nobody has reads the whole table
-- (no index on tags), which a command run by hand can afford.
function Store:tags_in_use(words, except)
  if type(words) ~= "table" then bad_argument(1, "tags_in_use", "list of words expected") end
  if except ~= nil and type(except) ~= "string" then bad_argument(2, "tags_in_use", "key expected") end
  return guarded(self, tags_in_use, words, except or "")
end

return Store
