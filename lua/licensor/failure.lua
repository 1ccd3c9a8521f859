-- licensor.failure -- the one way licensor's own code reports a failure.
--
-- Public calls answer data problems io.open style: `nil, message, code`
-- (`false, message, code` for yes/no questions), and raise only for
-- programming errors.  Inside, code several calls deep raises a failure
-- object instead and exactly one boundary per public call catches it:
--
--   failure.raise(code, message [, fields])  raise {code=, message=, ...}
--   failure.try(value, message, code, ...)    value..., or raise the failure
--                                             an io.open-style answer names
--   failure.call(fn, ...)                     fn's results, or nil, message,
--                                             code for a failure
--   failure.answer(pcall(fn, ...))            the same, for a pcall made already
--   failure.is(value)                         is it a failure object?
--
-- Failure objects share one metatable with the C core (core.Failure), so
-- the store connection's raised failures are caught the same way.  Any
-- other error (a string, a traceback) is a bug and passes through every
-- boundary untouched.  The command line maps codes to exit statuses
-- ("usage" is 2), the gateway maps them to HTTP statuses (`status` field).
local core = require "licensor.core"

local error, pcall, pairs, getmetatable, setmetatable = error, pcall, pairs, getmetatable, setmetatable

local _M = {}

local Failure = core.Failure

-- failure.raise(code, message [, fields]): fields (status, headers...) are
-- copied onto the failure object.
function _M.raise(code, message, fields)
  local f = { code = code, message = message }
  if fields then
    for k, v in pairs(fields) do f[k] = v end
  end
  error(setmetatable(f, Failure), 0)
end
local raise = _M.raise

function _M.is(value)
  return getmetatable(value) == Failure
end
local is = _M.is

-- failure.try(value, message, code, ...) -> value, message, code, ...
-- when value is neither nil nor false; else raises {code=, message=}.
function _M.try(value, message, code, ...)
  if value == nil or value == false then raise(code or "failed", message) end
  return value, message, code, ...
end

-- The results of pcall: values on success, nil, message, code for a
-- failure; any other error is raised again.
-- failure.answer(pcall(...)) is the same as failure.call.
local function answer(ok, ...)
  if ok then return ... end
  local err = ...
  if is(err) then return nil, err.message, err.code end
  error(err, 0)
end
_M.answer = answer

-- failure.call(fn, ...) -> fn(...)'s results, or nil, message, code.
function _M.call(fn, ...)
  return answer(pcall(fn, ...))
end

return _M
