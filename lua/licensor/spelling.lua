-- licensor.spelling -- the edit distance behind every "did you mean": a
-- misspelt flag or command (licensor.cli.args), CSV column
-- (store/bulk.lua), policy file key or hook (licensor.policy).  Which
-- candidate is near enough is each caller's rule.
local byte = string.byte

local _M = {}

-- distance(a, b) -> the Levenshtein distance between two short words:
-- the fewest insertions, deletions and substitutions from a to b.
function _M.distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = byte(a, i) == byte(b, j) and 0 or 1
      local best = previous[j] + 1
      if current[j - 1] + 1 < best then best = current[j - 1] + 1 end
      if previous[j - 1] + cost < best then best = previous[j - 1] + cost end
      current[j] = best
    end
    previous = current
  end
  return previous[#b]
end

return _M
