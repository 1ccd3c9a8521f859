-- The verifier library as a vendor uses it: `make install` into a scratch
-- tree, the example product (spec/verifier/example.c) compiled against the
-- installed header, shared and static library and pkg-config file, and run
-- on a certificate the store issued for this machine, and against the
-- build directory; a program built for version 2.0 (its header kept in
-- spec/verifier/abi-2.0) on today's library; the whole C API
-- (spec/verifier/verdicts.c) built with ASan and UBSan: every verdict,
-- format 2's build cap, revocation notices, returns and the state file,
-- saves that interleave; and the mac component's sources on a fake
-- /sys/class/net (spec/verifier/machine.c).
local licensor = require "licensor"
local core = require "licensor.core"
local certificate = require "licensor.certificate"
local stores = require "support.stores"
local files = require "support.files"

-- Runs a shell command without the suite's sanitizer preload (with the
-- clock's, under faketime); its output.  The ASan-built spec programs may
-- then find libfaketime ahead of their runtime, which ASan allows when told.
local function run(command)
  local pipe = io.popen(require("support.child_env").shell .. "ASAN_OPTIONS=verify_asan_link_order=0 sh -c '" ..
    command:gsub("'", "'\\''") .. "' 2>&1; echo \"exit=$?\"")
  local out = pipe:read("*a")
  pipe:close()
  return out
end

local read = require("support.files").read

describe("the installed verifier library", function()
  local dest = os.tmpname()
  os.remove(dest)

  teardown(function() run("rm -rf " .. dest) end)

  it("builds the example product with pkg-config, shared and static, and verifies offline", function()
    assert.matches("exit=0", run("make -s install DESTDIR=" .. dest .. " PREFIX=/usr/local LUA=lua5.4 >/dev/null"))
    local lib = dest .. "/usr/local/lib"
    for _, f in ipairs({ "/usr/local/include/licensor_verify.h", "/usr/local/lib/liblicensor-verify.so",
                         "/usr/local/lib/liblicensor-verify.so.2", "/usr/local/lib/liblicensor-verify.a",
                         "/usr/local/lib/pkgconfig/licensor-verify.pc" }) do
      assert.is_not_nil(io.open(dest .. f), f)
    end
    assert.matches("SONAME.*%[liblicensor%-verify%.so%.2%]", run("readelf -d " .. lib .. "/liblicensor-verify.so"))
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
    local lic = stores.issue(store, { start = today, addons = { "eas" } })
    local fp = assert(core.fingerprint())
    assert.is_true(store:activate(lic.key, "this-host", 6911, today, fp).ok)
    local cert = dest .. "/license.cert"
    local text, msg = store:certificate(lic.key, "this-host", today)
    assert.is_string(text, msg)
    files.write(cert, text)
    -- The same license as a SmarterStats certificate: not this product's.
    local fields = core.read_certificate(text)
    fields.product, fields.edition = "smarterstats", "professional"
    fields.version_lock, fields.failover = nil, false
    local stats = dest .. "/stats.cert"
    files.write(stats, certificate.text(fields, assert(certificate.read_signing_key(key))))
    local state = dest .. "/licensor.state"
    for _, program in ipairs({ "/example", "/example-static" }) do
      assert.matches("^valid 0\nbuild 6911 may run\neas works\nexit=0",
        run(dest .. program .. " " .. cert .. " " .. key .. ".pub"), program)
      assert.matches("^wrong_machine 0\nexit=1",
        run(dest .. program .. " " .. cert .. " " .. key .. ".pub v1:mid=0000000000000000"), program)
      assert.matches("^wrong_product 0\nexit=1", run(dest .. program .. " " .. stats .. " " .. key .. ".pub"),
        program)
      assert.matches("^valid 0\n", run(dest .. program .. " " .. cert .. " " .. key .. ".pub " .. fp .. " " .. state))
      assert.matches("^licensor%-state 2 %d+ %- %- %x+\n$", read(state))
    end
  end)
end)

describe("the verifier library in the build directory", function()
  it("runs a program linked against build/verify: the SONAME link is next to the library", function()
    local dir = files.temp_dir()
    assert.matches("exit=0", run("make -s verify-lib >/dev/null"))
    assert.are.equal("liblicensor-verify.so\nexit=0\n", run("readlink build/verify/liblicensor-verify.so.2"))
    assert.matches("exit=0", run("cc -std=c99 -Wall -Wextra -Werror -I csrc spec/verifier/example.c " ..
      "-Lbuild/verify -llicensor-verify -Wl,-rpath," .. os.getenv("PWD") .. "/build/verify -o " .. dir .. "/example"))
    files.write(dir .. "/garbage.cert", "garbage")
    assert(certificate.new_key_files(dir .. "/vendor.key"))
    -- It ran (the loader found liblicensor-verify.so.2): malformed, exit 1.
    assert.are.equal("malformed 0\nexit=1\n", run(dir .. "/example " .. dir .. "/garbage.cert " .. dir ..
      "/vendor.key.pub"))
    files.remove_dir(dir)
  end)

  it("runs a program built for 2.0 unchanged: the same layout, and a capped certificate answered safely", function()
    local dir = files.temp_dir()
    assert.matches("exit=0", run("make -s verify-lib >/dev/null"))
    local layouts = {}
    for i, include in ipairs({ "spec/verifier/abi-2.0", "csrc" }) do
      assert.matches("exit=0", run("cc -std=c99 -Wall -Wextra -Werror -I " .. include ..
        " spec/verifier/layout.c -o " .. dir .. "/layout" .. i))
      layouts[i] = run(dir .. "/layout" .. i)
    end
    assert.matches("^sizeof lsrv_public_key %d+\n.*lsrv_certificate%.kind %d+\n.*exit=0\n$", layouts[1])
    assert.are.equal(layouts[1], layouts[2])
    -- 2.0's example.c built against the 2.0 header, run on build/verify's
    -- 2.1; and today's, which knows its build's number.
    for name, source in pairs({ ["example-2.0"] = "spec/verifier/abi-2.0/example.c",
                                example = "spec/verifier/example.c" }) do
      local include = name == "example" and "csrc" or "spec/verifier/abi-2.0"
      assert.matches("exit=0", run("cc -std=c99 -Wall -Wextra -Werror -I " .. include .. " " .. source ..
        " -Lbuild/verify -llicensor-verify -Wl,-rpath," .. os.getenv("PWD") .. "/build/verify -o " .. dir ..
        "/" .. name))
    end
    assert(certificate.new_key_files(dir .. "/vendor.key"))
    local key = assert(certificate.read_signing_key(dir .. "/vendor.key"))
    local today = licensor.today()
    local fp = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
    local function example(over)
      local f = { license = "K1", server = "mail1", product = "smartertrack", edition = "enterprise", level = 5,
                  kind = "perpetual", start = "2018-06-01", ms_expires = core.date(core.day(today) + 100),
                  addons = { eas = core.date(core.day(today) + 100) }, newest_major = 100, fingerprint = fp,
                  match = "most", issued = today .. "T00:00:00Z", refresh_by = core.date(core.day(today) + 30),
                  grace_days = 14 }
      for k, v in pairs(over or {}) do f[k] = v end
      files.write(dir .. "/license.cert", certificate.text(f, key))
      local args = " " .. dir .. "/license.cert " .. dir .. "/vendor.key.pub " .. fp
      return run(dir .. "/example-2.0" .. args) .. run(dir .. "/example" .. args)
    end
    local runs, refused = "valid 0\nbuild 6911 may run\neas works\nexit=0\n",
      "valid 0\nbuild 6911 may not run\neas works\nexit=0\n"
    -- Build 6911 (2018-12-03): format 1 runs it; a cap released after it
    -- too; a cap released that same day is refused by 2.0's lsrv_may_run,
    -- which cannot tell the cap's build from a later one of that day, and
    -- allowed by lsrv_may_run_build; a cap below it refuses it in both.
    assert.are.equal(runs .. runs, example())
    assert.are.equal(runs .. runs, example{ build_cap = 6912, build_cap_released = "2018-12-04" })
    assert.are.equal(refused .. runs, example{ build_cap = 6911, build_cap_released = "2018-12-03" })
    assert.are.equal(refused .. refused, example{ build_cap = 6910, build_cap_released = "2018-12-03" })
    files.remove_dir(dir)
  end)
end)

describe("the verifier's C API under ASan and UBSan", function()
  local dir, program, pub, key
  local DAY = 86400
  local FP = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"

  local function at(date) return core.day(date) * DAY + 12 * 3600 end

  local function cert(name, over, signer)
    local f = { license = "K1", server = "mail1", product = "smartertrack", edition = "enterprise", level = 5,
                kind = "perpetual", start = "2018-06-01", ms_expires = "2019-05-31", addons = {},
                newest_major = 13, fingerprint = FP, match = "most", issued = "2018-12-05T00:00:00Z",
                refresh_by = "2019-01-04", grace_days = 14 }
    for k, v in pairs(over or {}) do f[k] = v end
    local path = dir .. "/" .. name
    files.write(path, certificate.text(f, signer or key))
    return path
  end

  -- verdicts PUB PRODUCT FP NOW CERT [STATE [NOTICE]] -> its output lines, joined by " "
  local function verdict(product, fp, now, path, state, notice)
    local out = run(table.concat({ program, pub, product, fp, tostring(now), path, state or "", notice or "" }, " "))
    return (out:gsub("\nexit=0\n$", ""):gsub("\n", " "))
  end

  setup(function()
    dir = files.temp_dir()
    program = dir .. "/verdicts"
    local out = run("cc -std=c99 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer " ..
      "-fsanitize=address,undefined -fno-sanitize-recover=all -I csrc spec/verifier/verdicts.c csrc/lsrv.c " ..
      "csrc/lsrv_machine.c csrc/date.c -lsodium -o " .. program)
    assert.matches("^exit=0", out)
    out = run("cc -std=c99 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer " ..
      "-fsanitize=address,undefined -fno-sanitize-recover=all -I csrc spec/verifier/machine.c csrc/lsrv.c " ..
      "csrc/date.c -lsodium -o " .. dir .. "/machine")
    assert.matches("^exit=0", out)
    assert(certificate.new_key_files(dir .. "/vendor.key"))
    key = assert(certificate.read_signing_key(dir .. "/vendor.key"))
    pub = dir .. "/vendor.key.pub"
  end)

  teardown(function() files.remove_dir(dir) end)

  it("answers every verdict", function()
    local good = cert("good.cert")
    files.write(dir .. "/garbage.cert", "garbage")
    local tampered = dir .. "/tampered.cert"
    files.write(tampered, (read(good):gsub("level: 5", "level: 6")))
    local other = files.temp_dir()
    assert(certificate.new_key_files(other .. "/other.key"))
    local stranger = cert("stranger.cert", nil, assert(certificate.read_signing_key(other .. "/other.key")))
    files.remove_dir(other)
    local later = cert("later.cert", { start = "2018-12-08", issued = "2018-12-07T00:00:00Z" })
    local cases = {
      { "malformed", "smartertrack", FP, at("2018-12-10"), dir .. "/garbage.cert" },
      { "unknown_signer", "smartertrack", FP, at("2018-12-10"), stranger },
      { "bad_signature", "smartertrack", FP, at("2018-12-10"), tampered },
      { "wrong_product", "smarterstats", FP, at("2018-12-10"), good },
      { "wrong_product", "-", FP, at("2018-12-10"), good },
      { "wrong_machine", "smartertrack", "v1:mac=3333333333333333,host=4444444444444444", at("2018-12-10"), good },
      { "clock_rollback", "smartertrack", FP, at("2018-11-28"), good },
      { "not_started", "smartertrack", FP, core.day("2018-12-08") * DAY - 3600, later },
      { "expired", "smartertrack", FP, at("2019-01-19"), good },
      { "grace", "smartertrack", FP, at("2019-01-05"), good },
      { "valid", "smartertrack", FP, at("2018-12-10"), good },
      { "valid", "smartertrack", "-", at("2018-12-10"), good },
    }
    for _, case in ipairs(cases) do
      assert.are.equal(case[1], verdict(case[2], case[3], case[4], case[5]), case[1])
    end
  end)

  -- verdicts --may-run on DAY for builds {number, release date, major}:
  -- the verdict and format, then "NUMBER OLD NEW" (lsrv_may_run,
  -- lsrv_may_run_build) for each.
  local function may_run(path, now, day, builds)
    local args = { program, "--may-run", pub, "smartertrack", tostring(now), path, tostring(core.day(day)) }
    for _, b in ipairs(builds) do args[#args + 1] = b[1] .. ":" .. core.day(b[2]) .. ":" .. b[3] end
    return (run(table.concat(args, " ")):gsub("\nexit=0\n$", ""):gsub("\n", " "))
  end

  it("honours format 2's build cap: up to the cap with lsrv_may_run_build, below its day with lsrv_may_run", function()
    -- M&S to 2018-11-30; the cap: 6911 (2018-12-03), a fix after the expiry.
    local over = { start = "2017-12-01", ms_expires = "2018-11-30", issued = "2018-12-10T00:00:00Z",
                   refresh_by = "2019-01-09" }
    local plain = cert("plain.cert", over)
    over.build_cap, over.build_cap_released = 6911, "2018-12-03"
    local capped = cert("capped.cert", over)
    local builds = { { 6855, "2018-10-08", 13 }, { 6911, "2018-12-03", 13 }, { 6912, "2018-12-03", 13 },
                     { 6947, "2019-01-11", 13 }, { 7010, "2019-03-15", 14 } }
    assert.are.equal("valid 1 6855 yes yes 6911 no no 6912 no no 6947 no no 7010 no no",
      may_run(plain, at("2018-12-10"), "2018-12-10", builds))
    assert.are.equal("valid 2 6855 yes yes 6911 no yes 6912 no no 6947 no no 7010 no no",
      may_run(capped, at("2018-12-10"), "2018-12-10", builds))
    -- Before the capped build was released (a clock within the tolerance).
    assert.are.equal("valid 2 6911 no no", may_run(capped, at("2018-12-10"), "2018-12-02", { builds[2] }))
    -- A lowered cap on a license with M&S: below the cap's day only, for
    -- the old entry point.
    local lowered = cert("lowered.cert", { start = "2018-06-01", ms_expires = "2019-05-31",
      issued = "2019-04-01T00:00:00Z", refresh_by = "2019-05-01", build_cap = 6947,
      build_cap_released = "2019-01-11" })
    assert.are.equal("valid 2 6855 yes yes 6911 yes yes 6947 no yes 7010 no no",
      may_run(lowered, at("2019-04-02"), "2019-04-02", { builds[1], builds[2], builds[4], builds[5] }))
    -- The cap edited: bad_signature; format 3: malformed.
    local edited = dir .. "/edited.cert"
    files.write(edited, (read(capped):gsub("build_cap: 6911", "build_cap: 7010")))
    assert.are.equal("bad_signature 2", may_run(edited, at("2018-12-10"), "2018-12-10", builds))
    files.write(edited, (read(capped):gsub("format: 2", "format: 3")))
    assert.are.equal("malformed 0", may_run(edited, at("2018-12-10"), "2018-12-10", builds))
    -- A state binds to it, and it returns, as format 1 does.
    local signature = certificate.signature_of(read(capped))
    assert.are.equal("valid", verdict("smartertrack", FP, at("2018-12-10"), capped, dir .. "/capped.state"))
    assert.matches("^returned\n.*\ncertificate: " .. signature:gsub("%p", "%%%0") .. "\n",
      run(table.concat({ program, "--return", pub, "smartertrack", capped, dir .. "/capped.state" }, " ")))
    assert.is_nil(read(capped))
  end)

  it("applies revocation notices to the state: revoked, a newer certificate valid, strangers refused", function()
    local good, newer = cert("good.cert"), cert("newer.cert", { issued = "2018-12-06T00:00:00Z" })
    local state = dir .. "/revoked.state"
    local function notice(name, over, signer)
      local r = { license = "K1", server = "mail1", fingerprint = FP, revoked = "2018-12-05T00:00:00Z",
                  reason = "disabled" }
      for k, v in pairs(over or {}) do r[k] = v end
      local path = dir .. "/" .. name
      files.write(path, certificate.revocation_text(r, signer or key))
      return path
    end
    local other = files.temp_dir()
    assert(certificate.new_key_files(other .. "/other.key"))
    local forged = notice("forged.notice", nil, assert(certificate.read_signing_key(other .. "/other.key")))
    files.remove_dir(other)
    assert.are.equal("valid", verdict("smartertrack", FP, at("2018-12-10"), good, state))
    assert.are.equal("notice unknown_signer valid", verdict("smartertrack", FP, at("2018-12-10"), good, state, forged))
    assert.are.equal("notice other_license valid", verdict("smartertrack", FP, at("2018-12-10"), good, state,
      notice("other.notice", { server = "mail2" })))
    assert.are.equal("notice applied revoked", verdict("smartertrack", FP, at("2018-12-10"), good, state,
      notice("disabled.notice")))
    assert.are.equal("revoked", verdict("smartertrack", FP, at("2018-12-10"), good, state))
    assert.are.equal("valid", verdict("smartertrack", FP, at("2018-12-10"), newer, state))
    assert.matches("^licensor%-state 2 %d+ " .. core.day("2018-12-05") * DAY .. " disabled %x+\n$", read(state))
  end)

  it("returns a certificate: the exact receipt, the file gone, revoked after", function()
    local path = cert("returned.cert")
    local text = read(path)
    local state = dir .. "/returned.state"
    assert.are.equal("valid", verdict("smartertrack", FP, at("2018-12-10"), path, state))
    assert.are.equal("certificate_refused\nexit=0\n", run(table.concat({ program, "--return", pub, "smarterstats",
                                                                        path, state }, " ")))
    local out = run(table.concat({ program, "--return", pub, "smartertrack", path, state }, " "))
    assert.are.equal("returned\n-----BEGIN LICENSOR RETURN RECEIPT-----\nformat: 1\nlicense: K1\nserver: mail1\n" ..
      "fingerprint: " .. FP .. "\ncertificate: " .. certificate.signature_of(text) ..
      "\n-----END LICENSOR RETURN RECEIPT-----\nexit=0\n", out)
    assert.is_nil(read(path))
    files.write(path, text)
    assert.are.equal("revoked", verdict("smartertrack", FP, at("2018-12-10"), path, state))
  end)

  it("keeps a revocation another process saved after this one loaded the state (no lost update)", function()
    local state_line = "^licensor%-state 2 " .. (at("2018-12-10") + 3600) .. " " .. core.day("2018-12-05") * DAY
    -- A notice applied and saved by B between A's load and A's save.
    local good, state = cert("race.cert"), dir .. "/race.state"
    local notice = dir .. "/race.notice"
    files.write(notice, certificate.revocation_text({ license = "K1", server = "mail1", fingerprint = FP,
      revoked = "2018-12-05T00:00:00Z", reason = "disabled" }, key))
    assert.are.equal("valid", verdict("smartertrack", FP, at("2018-12-05"), good, state))
    assert.are.equal("valid revoked disabled", (run(table.concat({ program, "--race", pub, "smartertrack",
      at("2018-12-10"), good, state, notice }, " ")):gsub("\nexit=0\n$", ""):gsub("\n", " ")))
    -- The later mark (B's) and the revocation both kept.
    assert.matches(state_line .. " disabled %x+\n$", read(state))
    -- The same with a return: the kept copy of the certificate is revoked.
    local returned, returned_state = cert("race-returned.cert"), dir .. "/race-returned.state"
    local text = read(returned)
    assert.are.equal("valid", verdict("smartertrack", FP, at("2018-12-05"), returned, returned_state))
    assert.are.equal("valid revoked returned", (run(table.concat({ program, "--race", pub, "smartertrack",
      at("2018-12-10"), returned, returned_state, "--return" }, " ")):gsub("\nexit=0\n$", ""):gsub("\n", " ")))
    assert.is_nil(read(returned))
    files.write(returned, text)
    assert.are.equal("revoked", verdict("smartertrack", FP, at("2018-12-10"), returned, returned_state))
    assert.matches(state_line .. " returned %x+\n$", read(returned_state))
  end)

  it("saves under a lock file made 0600 next to the state, never through a symlink", function()
    local path, state = cert("locked.cert"), dir .. "/locked.state"
    assert.are.equal("ok\nexit=0\n", run(program .. " --save " .. path .. " " .. state))
    assert.are.equal("600\nexit=0\n", run("stat -c %a " .. state .. ".lock"))
    local victim, link = dir .. "/lock-victim", dir .. "/linked.state"
    files.write(victim, "precious\n")
    assert(os.execute("ln -s " .. victim .. " " .. link .. ".lock"))
    assert.are.equal("state_unwritable\nexit=0\n", run(program .. " --save " .. path .. " " .. link))
    assert.are.equal("precious\n", read(victim))
    assert.is_nil(read(link))
  end)

  it("counts only physical network cards for mac: a virtual interface coming or going changes nothing", function()
    local net = dir .. "/net"
    local function interface(name, address, device)
      assert(os.execute("mkdir -p " .. net .. "/" .. name))
      files.write(net .. "/" .. name .. "/address", address .. "\n")
      if device == "dir" then assert(os.execute("mkdir " .. net .. "/" .. name .. "/device"))
      elseif device then assert(os.execute("ln -s " .. device .. " " .. net .. "/" .. name .. "/device")) end
    end
    local function mac()
      local out = run(dir .. "/machine --mac " .. net)
      local value, hash = out:match("^([^\n]*)\n([^\n]*)\nexit=0\n$")
      return value, hash
    end
    assert.are.same({ "none", "-" }, { mac() })                        -- no such directory
    assert(os.execute("mkdir -p " .. net))
    interface("lo", "00:00:00:00:00:00")
    interface("docker0", "02:42:ac:11:00:01")
    interface("ifb0", "aa:bb:cc:00:00:01")
    assert.are.same({ "none", "-" }, { mac() })                        -- virtual only: absent
    interface("eth0", "52:54:00:12:34:56", "dir")
    interface("wlan0", "00:1b:44:11:3a:b7", net .. "/eth0/device")    -- a link, as in /sys
    interface("eth1", "52:54:00:00:00:99", dir .. "/no-such-device")  -- a dangling one: not counted
    interface("eth2", "00:00:00:00:00:00", "dir")                      -- all-zero: left out
    local value, hash = mac()
    assert.are.equal("00:1b:44:11:3a:b7,52:54:00:12:34:56,", value)
    assert.matches("^%x+$", hash)
    assert.are.equal(16, #hash)
    for _, name in ipairs({ "veth3f2a1b", "tap0", "br-5e0f", "virbr0" }) do
      interface(name, "0a:58:0a:f4:00:" .. string.format("%02x", #name))
    end
    assert.are.same({ value, hash }, { mac() })
    -- This machine's fingerprint reads /sys/class/net the same way.
    local sys_value, sys_hash = run(dir .. "/machine --mac /sys/class/net"):match("^([^\n]*)\n([^\n]*)\n")
    local physical = run("for i in /sys/class/net/*; do [ -e \"$i/device\" ] && cat \"$i/address\"; done | " ..
      "grep -v '^00:00:00:00:00:00$' | sort | tr '\\n' ','"):gsub("exit=%d+\n$", "")
    assert.are.equal(physical == "" and "none" or physical, sys_value)
    local explained = core.fingerprint_explain()[3]
    assert.are.same({ "mac", sys_hash ~= "-", sys_hash ~= "-" and sys_hash or nil },
                    { explained.name, explained.found, explained.hash })
  end)

  it("never writes a state through a symlink", function()
    local path = cert("link.cert")
    local victim, link = dir .. "/victim", dir .. "/link.state"
    files.write(victim, "precious\n")
    assert(os.execute("ln -s " .. victim .. " " .. link))
    assert.are.equal("state_unwritable\nexit=0\n", run(program .. " --save " .. path .. " " .. link))
    assert.are.equal("state_corrupt", verdict("smartertrack", FP, at("2018-12-10"), path, link))
    assert.are.equal("precious\n", read(victim))
    assert.are.equal("ok\nexit=0\n", run(program .. " --save " .. path .. " " .. dir .. "/plain.state"))
  end)
end)
