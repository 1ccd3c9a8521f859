-- License keys: 27 random base32 symbols (over 120 bits), grouped, with a
-- check symbol that catches a mistyped key before any lookup.
local core = require "licensor.core"

describe("license keys", function()
  it("look like XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX in Crockford base32", function()
    local group = string.rep("[0-9A-HJKMNP-TV-Z]", 7)
    for _ = 1, 100 do
      local key = core.new_key()
      assert.matches("^" .. group .. "%-" .. group .. "%-" .. group .. "%-" .. group .. "$", key)
      assert.are.equal(31, #key)
      assert.are.equal(key, core.normalise_key(key))
    end
  end)

  it("do not repeat over 100,000 draws", function()
    local seen, repeats = {}, 0
    for _ = 1, 100000 do
      local key = core.new_key()
      if seen[key] then repeats = repeats + 1 end
      seen[key] = true
    end
    assert.are.equal(0, repeats)
  end)

  it("are read in any case, with or without dashes, with O for 0 and I or L for 1", function()
    local key = core.new_key()
    assert.are.equal(key, core.normalise_key(key:lower()))
    assert.are.equal(key, core.normalise_key(key:gsub("%-", "")))
    assert.are.equal(key, core.normalise_key(key:gsub("%-", " ")))
    local zero = key:gsub("0", "O"):gsub("1", "I")
    assert.are.equal(key, core.normalise_key(zero))
  end)

  it("catch every single mistyped symbol and every swap of neighbours", function()
    local alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    local missed = 0
    for _ = 1, 50 do
      local key = core.new_key():gsub("%-", "")
      for i = 1, #key do
        for j = 1, #alphabet do
          local c = alphabet:sub(j, j)
          if c ~= key:sub(i, i) then
            if core.normalise_key(key:sub(1, i - 1) .. c .. key:sub(i + 1)) then missed = missed + 1 end
          end
        end
        if i < #key and key:sub(i, i) ~= key:sub(i + 1, i + 1) then
          local swapped = key:sub(1, i - 1) .. key:sub(i + 1, i + 1) .. key:sub(i, i) .. key:sub(i + 2)
          if core.normalise_key(swapped) then missed = missed + 1 end
        end
      end
    end
    assert.are.equal(0, missed)
  end)

  it("refuse wrong lengths, foreign symbols and non-strings with invalid_key", function()
    local key = core.new_key()
    for _, bad in ipairs({ key:sub(1, -2), key .. "0", key:gsub("^.", "U"), "", string.rep("0", 5000), 42, {} }) do
      local ok, msg, code = core.normalise_key(bad)
      assert.is_nil(ok)
      assert.are.equal("invalid_key", code)
      assert.is_string(msg)
    end
  end)
end)

describe("names from outside (servers, owners)", function()
  it("are 1 to core.MAX_NAME (255) bytes", function()
    assert.are.equal(255, core.MAX_NAME)
    assert.are.equal(string.rep("a", 255), core.check_name(string.rep("a", 255)))
    assert.are.same({ nil, "server is longer than 255 bytes", "invalid_request" },
      { core.check_name(string.rep("a", 256), "server") })
    assert.are.equal("invalid_request", select(3, core.check_name("", "server")))
    assert.are.equal("invalid_request", select(3, core.check_name(42, "server")))
  end)

  it("are valid UTF-8: no broken, overlong or surrogate sequences", function()
    assert.are.equal("mail-ü.例え.example", core.check_name("mail-ü.例え.example"))
    assert.are.equal("🚀", core.check_name("🚀"))
    for _, bad in ipairs({ "\255", "a\192\128", "\224\128\175", "\237\160\128", "\244\144\128\128", "\195" }) do
      assert.are.same({ nil, "name is not valid UTF-8", "invalid_request" }, { core.check_name(bad) })
    end
  end)

  it("hold no control or bidirectional-override characters", function()
    for _, bad in ipairs({ "a\0b", "a\nb", "a\127", "a\194\133", "evil\226\128\174gnp.exe",
                           "\226\129\166x" }) do
      assert.are.equal("name holds a control or bidirectional-override character",
        select(2, core.check_name(bad)))
    end
  end)
end)

describe("random tokens (outbox claims, webhook secrets)", function()
  it("are n random bytes as 2n hex digits, never the same twice in 10,000 draws", function()
    local seen = {}
    for _ = 1, 10000 do
      local token = core.random_hex(12)
      assert.matches("^%x+$", token)
      assert.are.equal(24, #token)
      assert.is_nil(seen[token])
      seen[token] = true
    end
    assert.are.equal(128, #core.random_hex(64))
    assert.has_error(function() core.random_hex(0) end)
    assert.has_error(function() core.random_hex(65) end)
  end)
end)
