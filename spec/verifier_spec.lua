-- The verifier library as a vendor uses it: `make install` into a scratch
-- tree, the example product (spec/verifier/example.c) compiled against the
-- installed header, shared and static library and pkg-config file, and run
-- on a certificate the store issued for this machine.
local licensor = require "licensor"
local core = require "licensor.core"
local certificate = require "licensor.certificate"
local stores = require "support.stores"

-- Runs a shell command without the suite's sanitizer preload; its output.
local function run(command)
  local pipe = io.popen("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS sh -c '" ..
    command:gsub("'", "'\\''") .. "' 2>&1; echo \"exit=$?\"")
  local out = pipe:read("*a")
  pipe:close()
  return out
end

describe("the installed verifier library", function()
  local dest = os.tmpname()
  os.remove(dest)

  teardown(function() run("rm -rf " .. dest) end)

  it("builds the example product with pkg-config, shared and static, and verifies offline", function()
    assert.matches("exit=0", run("make -s install DESTDIR=" .. dest .. " PREFIX=/usr/local LUA=lua5.4 >/dev/null"))
    local lib = dest .. "/usr/local/lib"
    for _, f in ipairs({ "/usr/local/include/licensor_verify.h", "/usr/local/lib/liblicensor-verify.so",
                         "/usr/local/lib/liblicensor-verify.a", "/usr/local/lib/pkgconfig/licensor-verify.pc" }) do
      assert.is_not_nil(io.open(dest .. f), f)
    end
    local flags = run("PKG_CONFIG_PATH=" .. lib .. "/pkgconfig PKG_CONFIG_SYSROOT_DIR=" .. dest ..
      " pkg-config --cflags --libs licensor-verify"):match("^([^\n]*)")
    assert.matches("%-llicensor%-verify", flags)
    assert.matches("exit=0", run("cc -std=c99 -Wall -Wextra -Werror spec/verifier/example.c " .. flags ..
      " -Wl,-rpath," .. lib .. " -o " .. dest .. "/example"))
    assert.matches("exit=0", run("cc -std=c99 -Wall -Wextra -Werror -I" .. dest .. "/usr/local/include " ..
      "spec/verifier/example.c " .. lib .. "/liblicensor-verify.a -lsodium -o " .. dest .. "/example-static"))
    -- A certificate for this machine, issued today.
    local store = stores.new(":memory:")
    local key = dest .. "/signing.key"
    assert(certificate.new_key_files(key))
    assert(store:use_signing_key(key))
    local today = licensor.today()
    local lic = stores.issue(store, { start = today })
    local fp = assert(core.fingerprint())
    assert.is_true(store:activate(lic.key, "this-host", 6911, today, fp).ok)
    local cert = dest .. "/license.cert"
    local f = assert(io.open(cert, "w"))
    local text, msg = store:certificate(lic.key, "this-host", today)
    assert.is_string(text, msg)
    f:write(text)
    f:close()
    for _, program in ipairs({ "/example", "/example-static" }) do
      assert.matches("^valid 0\nbuild 6911 may run\nexit=0",
        run(dest .. program .. " " .. cert .. " " .. key .. ".pub"), program)
      assert.matches("^wrong_machine 0\nexit=1",
        run(dest .. program .. " " .. cert .. " " .. key .. ".pub v1:mid=0000000000000000"), program)
    end
  end)
end)
