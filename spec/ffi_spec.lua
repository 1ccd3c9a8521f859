-- The LuaJIT FFI path (lua/licensor/ffi.lua): its cdef of lsr_ffi_query
-- must describe the struct the C compiler laid out (csrc/ffi.h), or the
-- fast path would read garbage.  The field order is checked on every VM;
-- sizes and offsets where the FFI can measure them (LuaJIT).
local core = require "licensor.core"
local fast = require "licensor.ffi"

-- Field names of lsr_ffi_query in the cdef, in declaration order.
local function cdef_fields()
  local body = assert(fast.CDEF:match("typedef struct {(.-)} lsr_ffi_query;"))
  local names = {}
  for name in body:gmatch("[%w_%*%s]-([%w_]+);") do names[#names + 1] = name end
  return names
end

-- Field names as C laid them out, by offset.
local function c_fields(layout)
  local names = {}
  for name in pairs(layout.offsets) do names[#names + 1] = name end
  table.sort(names, function(a, b) return layout.offsets[a] < layout.offsets[b] end)
  return names
end

describe("the FFI declaration of lsr_ffi_query", function()
  local layout = core._ffi_layout()

  it("names the C struct's fields in the C struct's order", function()
    assert.are.equal(18, #cdef_fields())
    assert.are.same(c_fields(layout), cdef_fields())
  end)

  it("has the C struct's size and every field's offset (LuaJIT)", function()
    if not jit then
      pending("needs LuaJIT's FFI to measure the cdef")
      return
    end
    local ffi = require "ffi"
    assert.are.equal(layout.size, ffi.sizeof("lsr_ffi_query"))
    for name, offset in pairs(layout.offsets) do
      assert.are.equal(offset, ffi.offsetof("lsr_ffi_query", name), name)
    end
  end)
end)
