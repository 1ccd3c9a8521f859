-- License-gated downloads (doc/downloads.md): GET /v1/licenses/{key}/download
-- decides with R3-R7 and answers 302 to a short-lived signed link that
-- nginx serves from the artifact directory (secure_link, Range, ETag), or
-- to a signed external url; each grant is an event and a metric.  Real
-- gateways on loopback, on SQLite or (with-postgres.lua) PostgreSQL.
local licensor = require "licensor"
local core = require "licensor.core"
local links = require "licensor.links"
local download = require "licensor.gateway.download"
local gateway = require "support.gateway"
local stores = require "support.stores"
local fixtures = require "support.fixtures"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson.safe"

local TODAY = "2019-06-01"
local TOKEN = "download-spec-admin-token"

-- Deterministic bytes of a file: `n` bytes that differ for each seed.
local function content(seed, n)
  local parts = {}
  for i = 1, n do parts[i] = string.char((i * 31 + seed * 7 + math.floor(i / 251)) % 256) end
  return table.concat(parts)
end

local write = require("support.files").write_bytes

local function sh(command)
  assert(gateway.run(command), command)
end

-- secure_link's md5 computed apart from the gateway's code (openssl),
-- so a mistake in the scheme shows.
local function md5_link(key, file, name, expires)
  local uri = "/artifacts/" .. file
  local text = expires .. uri .. " " .. name .. " " .. key
  local tmp = os.tmpname()
  write(tmp, text)
  local pipe = io.popen("openssl md5 -binary < " .. tmp .. " | openssl base64")
  local b64 = pipe:read("*a"):gsub("%s", "")
  pipe:close()
  os.remove(tmp)
  local md5 = b64:gsub("=", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })
  return uri .. "?md5=" .. md5 .. "&expires=" .. expires .. "&name=" .. name
end

-- GET without following redirects: status, body (JSON decoded when it
-- is JSON), headers, raw body.
local function get(server, path, headers, method)
  local chunks = {}
  local _, status, h = http.request{ url = server.url .. path, method = method or "GET", redirect = false,
                                     headers = headers or {}, sink = ltn12.sink.table(chunks) }
  assert(type(status) == "number", "no answer for " .. path .. ": " .. tostring(status))
  local text = table.concat(chunks)
  return status, cjson.decode(text) or text, h, text
end

describe("downloads (" .. stores.backend .. ")", function()
  local dir, artifacts, secret, keys, server, db
  local files = {}          -- file -> bytes
  -- Licenses of the FAQ's terms, one per group of its (each key has its
  -- downloads per minute); fresh, another customer's; crowd, for the
  -- per-address limit.
  local faq, faq_platforms, faq_links, faq_events, fresh, disabled, limited_key, stranger
  local crowd = {}
  local statuses = {}

  local function gated(key, query, server_)
    local status, body, h = get(server_ or server, "/v1/licenses/" .. key .. "/download" .. (query or ""))
    statuses[#statuses + 1] = status
    return status, body, h
  end

  local function file_entry(platform, file, seed, n)
    local bytes = content(seed, n)
    files[file] = bytes
    return { platform = platform, file = file, sha256 = core.sha256(bytes, true), size = #bytes }
  end

  local function catalogue()
    local t = fixtures.catalogue_table()
    local by_number = {}   -- luacheck: ignore 241 (its build tables are what change)
    for _, b in ipairs(t.products[1].builds) do by_number[b.number] = b end
    by_number[6911].downloads = {
      file_entry("linux-x64", "smartertrack/ST_6911_linux-x64.tar.gz", 1, 70000),
      file_entry("windows-x64", "smartertrack/ST_6911_windows-x64.zip", 2, 50000),
    }
    by_number[6855].downloads = { file_entry("linux-x64", "smartertrack/ST_6855.tar.gz", 3, 40000) }
    by_number[6947].downloads = { file_entry("linux-x64", "smartertrack/ST_6947.tar.gz", 4, 30000) }
    -- 6700: a symbolic link in the artifact directory, and a file that is missing.
    by_number[6700].downloads = {
      { platform = "linux-x64", file = "smartertrack/link.bin", sha256 = string.rep("0", 64), size = 10 },
      { platform = "windows-x64", file = "smartertrack/gone.zip", sha256 = string.rep("1", 64), size = 10 },
    }
    by_number[7010].downloads = {
      { platform = "linux-x64", url = "https://cdn.example.com/st/7010/ST_7010.tar.gz?region=eu",
        sha256 = string.rep("a", 64), size = 123456 } }
    -- 6790 has no downloads.
    return t
  end

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    sh("mkdir -p " .. dir .. "/art/smartertrack")
    artifacts = dir .. "/art"
    local t = catalogue()
    for file, bytes in pairs(files) do write(artifacts .. "/" .. file, bytes) end
    write(dir .. "/outside.txt", "a secret outside the artifact directory\n")
    sh("ln -s " .. dir .. "/outside.txt " .. artifacts .. "/smartertrack/link.bin")
    secret = dir .. "/secret"
    write(secret, string.rep("5e", 32) .. "\n")
    keys = links.keys(assert(links.read(secret)))
    db = stores.path()
    local store = assert(licensor.open(db, { synchronous = "normal" }))
    assert(store:import(t))
    -- The FAQ's license: M&S expired 2018-12-06 -> build 6911.
    local function faq_terms(owner)
      return assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                 start = "2017-12-07", owner = owner }).key
    end
    faq, faq_platforms, faq_links, faq_events = faq_terms("acme"), faq_terms("acme"), faq_terms("acme"),
      faq_terms("acme")
    for i = 1, 3 do crowd[i] = faq_terms("crowd") end
    -- Another customer's, with M&S through 2020-01-09 -> 7010 (7100 is not out yet).
    fresh = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                start = "2019-01-10", owner = "globex" }).key
    disabled = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                   start = "2017-12-07", owner = "initech" }).key
    assert(store:disable(disabled, "2019-02-01", "chargeback"))
    limited_key = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                      start = "2017-12-07", owner = "umbrella" }).key
    store:close()
    -- A key with a good check symbol that this store never issued.
    local other = assert(licensor.open(":memory:"))
    assert(other:import(t))
    stranger = assert(other:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                   start = "2017-12-07" }).key
    other:close()
    -- Per-address limits off (rate_per_ip 0): this spec sends many
    -- downloads from one address; the per-key limit stays on.
    server = gateway.start{ db = db, today = TODAY, token = TOKEN, artifacts = artifacts,
                            link_secret_file = secret, rate_per_ip = 0 }
  end)

  teardown(function()
    if server then server:stop() end
    gateway.stop_all()
    if db then stores.remove(db) end
    if dir then gateway.run("rm -rf " .. dir) end
  end)

  describe("the decision (R3-R7)", function()
    it("defaults to the eligible build, and the file nginx serves has the catalogue's sha256", function()
      local status, body, h = gated(faq, "?platform=linux-x64")
      assert.are.equal(302, status)
      assert.are.equal(6911, body.build.number)
      assert.are.equal("13.5.6911", body.build.version)
      assert.are.equal("2018-12-03", body.build.released)
      assert.are.equal("linux-x64", body.platform)
      assert.are.equal("ST_6911_linux-x64.tar.gz", body.name)
      local bytes = files["smartertrack/ST_6911_linux-x64.tar.gz"]
      assert.are.equal(core.sha256(bytes, true), body.sha256)
      assert.are.equal(#bytes, body.size)
      assert.are.equal(h.location, body.location)
      assert.matches("^/artifacts/smartertrack/ST_6911_linux%-x64%.tar%.gz%?md5=[%w_-]+&expires=%d+&name=", h.location)
      local expires = tonumber(h.location:match("expires=(%d+)"))
      assert.is_true(math.abs(expires - (os.time() + 300)) <= 5)
      local fstatus, _, fh, raw = get(server, h.location)
      assert.are.equal(200, fstatus)
      assert.are.equal(core.sha256(bytes, true), core.sha256(raw, true))
      assert.are.equal('attachment; filename="ST_6911_linux-x64.tar.gz"; ' ..
                       "filename*=UTF-8''ST_6911_linux-x64.tar.gz", fh["content-disposition"])
      assert.are.equal("application/octet-stream", fh["content-type"])
      assert.are.equal("bytes", fh["accept-ranges"])
      assert.is_string(fh.etag)
      -- The answer with the link is never cached.
      assert.are.equal("no-store", h["cache-control"])
    end)

    it("allows an earlier build (R4), the only download chosen without ?platform", function()
      local status, body, h = gated(faq, "?build=6855")
      assert.are.equal(302, status)
      assert.are.equal(6855, body.build.number)
      local _, _, _, raw = get(server, h.location)
      assert.are.equal(files["smartertrack/ST_6855.tar.gz"], raw)
    end)

    it("refuses a newer build with 403 and the build that is allowed", function()
      local status, body = gated(faq, "?build=6947")
      assert.are.equal(403, status)
      assert.are.equal("newer_than_eligible", body.code)
      assert.are.same({ number = 6911, version = "13.5.6911", released = "2018-12-03" }, body.eligible)
      assert.is_nil(body.location)
    end)

    it("refuses an unknown build with the allowed one, and a malformed build number with 400", function()
      local status, body = gated(faq, "?build=1234")
      assert.are.equal(403, status)
      assert.are.equal("unknown_build", body.code)
      assert.are.equal(6911, body.eligible.number)
      for _, bad in ipairs({ "?build=abc", "?build=-1", "?build=6911.0", "?build=1e4", "?build=" ..
                             string.rep("9", 40), "?build=6911&build=6855", "?build" }) do
        status, body = gated(faq, bad)
        assert.are.equal(400, status, bad)
        assert.are.equal("invalid_request", body.code, bad)
      end
    end)

    it("a disabled license is refused with its code and no allowed build", function()
      local status, body = gated(disabled, "?platform=linux-x64")
      assert.are.equal(403, status)
      assert.are.equal("disabled", body.code)
      assert.is_nil(body.eligible)
    end)

    it("a build without downloads is 404 no_download", function()
      local status, body = gated(faq, "?build=6790")
      assert.are.equal(404, status)
      assert.are.equal("no_download", body.code)
      assert.matches("6790", body.message)
    end)

    it("answers an unknown key 404 and a malformed one 400, before any decision", function()
      local status, body = gated(stranger)
      assert.are.equal(404, status)
      assert.are.equal("unknown_key", body.code)
      status, body = gated("NOT-A-KEY")
      assert.are.equal(400, status)
      assert.are.equal("invalid_key", body.code)
      status, body = gated("%2e%2e%2f%2e%2e")
      assert.is_true(status == 400 or status == 404, tostring(status))
      assert.is_false(body.ok)
    end)

    it("gives another customer's key exactly what its own rules give", function()
      -- fresh may have 7010 (an external url); faq may not, and learns
      -- nothing of fresh from asking.
      local status, body = gated(faq, "?build=7010")
      assert.are.equal(403, status)
      assert.are.equal("newer_than_eligible", body.code)
      assert.are.equal(6911, body.eligible.number)
      assert.is_nil(body.message:find(fresh, 1, true))
      status, body = gated(fresh)
      assert.are.equal(302, status)
      assert.are.equal(7010, body.build.number)
      status, body = gated(fresh, "?build=6911&platform=windows-x64")
      assert.are.equal(302, status)
      assert.are.equal(6911, body.build.number)
      status = gated(fresh, "?build=7100")
      assert.are.equal(403, status)
      -- The events are each key's own.
      local _, events = server:request("GET", "/v1/admin/licenses/" .. faq .. "/events", nil,
                                       { Authorization = "Bearer " .. TOKEN })
      for _, e in ipairs(events.events) do
        if e.kind == "download" then assert.are_not.equal(7010, e.detail.build) end
      end
    end)
  end)

  describe("platforms", function()
    it("several downloads and none named: 400 naming them", function()
      local status, body = gated(faq)
      assert.are.equal(400, status)
      assert.are.equal("invalid_request", body.code)
      assert.are.same({ "linux-x64", "windows-x64" }, body.platforms)
      assert.matches("linux%-x64, windows%-x64", body.message)
    end)

    it("an unknown platform: 404 naming the ones there are", function()
      local status, body = gated(faq_platforms, "?platform=solaris-sparc")
      assert.are.equal(404, status)
      assert.are.equal("not_found", body.code)
      assert.are.same({ "linux-x64", "windows-x64" }, body.platforms)
    end)

    it("traversal and odd platforms are 400 and never reach a file", function()
      for _, bad in ipairs({ "../../etc/passwd", "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2f",
                             "LINUX-X64", "linux-x64%00", "linux-x64/../windows-x64", string.rep("a", 33),
                             "" }) do
        local status, body = gated(faq_platforms, "?platform=" .. bad)
        assert.are.equal(400, status, bad)
        assert.are.equal("invalid_request", body.code, bad)
        assert.is_nil(body.location)
      end
    end)
  end)

  describe("the signed link", function()
    -- A link as the route hands it out (the next spec proves they are the same).
    local function fresh_link()
      return md5_link(keys.secure_link, "smartertrack/ST_6911_linux-x64.tar.gz", "ST_6911_linux-x64.tar.gz",
                      os.time() + 300)
    end

    it("is computed as documented: md5 of expires, uri, name and the secure_link key", function()
      local _, _, h = gated(faq_links, "?platform=linux-x64")
      local location = h.location
      local expires = location:match("expires=(%d+)")
      assert.are.equal(md5_link(keys.secure_link, "smartertrack/ST_6911_linux-x64.tar.gz",
                                "ST_6911_linux-x64.tar.gz", expires), location)
    end)

    it("a tampered md5, a changed expires or a changed name is 403 invalid_link", function()
      local location = fresh_link()
      local md5 = location:match("md5=([%w_-]+)")
      local other = (md5:sub(1, 1) == "A" and "B" or "A") .. md5:sub(2)
      local expires = location:match("expires=(%d+)")
      for _, bad in ipairs({ location:gsub("md5=[%w_-]+", "md5=" .. other),
                             location:gsub("expires=%d+", "expires=" .. (tonumber(expires) + 3600)),
                             location:gsub("name=[^&]+", "name=setup.exe"),
                             location:gsub("&md5=[^&]+", ""):gsub("%?md5=[^&]+&", "?"),
                             location:match("^[^?]+") }) do
        local status, body = get(server, bad)
        assert.are.equal(403, status, bad)
        assert.are.equal("invalid_link", body.code, bad)
      end
    end)

    it("an expired link is 410 expired_link", function()
      local old = md5_link(keys.secure_link, "smartertrack/ST_6911_linux-x64.tar.gz", "ST_6911_linux-x64.tar.gz",
                           os.time() - 10)
      local status, body = get(server, old)
      assert.are.equal(410, status)
      assert.are.equal("expired_link", body.code)
    end)

    it("a link for one file is no link for another", function()
      local location = fresh_link()
      local other = location:gsub("ST_6911_linux%-x64%.tar%.gz%?", "ST_6911_windows-x64.zip?")
      local status, body = get(server, other)
      assert.are.equal(403, status)
      assert.are.equal("invalid_link", body.code)
      other = location:gsub("ST_6911_linux%-x64%.tar%.gz%?", "../../../etc/passwd?")
      status = get(server, other)
      assert.is_true(status == 403 or status == 400, tostring(status))
    end)

    it("a link signed with another secret is refused", function()
      local other = links.keys(string.rep("7a", 32))
      local forged = md5_link(other.secure_link, "smartertrack/ST_6911_linux-x64.tar.gz",
                              "ST_6911_linux-x64.tar.gz", os.time() + 300)
      assert.are.equal(403, (get(server, forged)))
    end)

    it("resumes with Range (206, the right bytes); past the end is 416; an ETag gives 304", function()
      local location = fresh_link()
      local bytes = files["smartertrack/ST_6911_linux-x64.tar.gz"]
      local status, _, h, raw = get(server, location, { Range = "bytes=1000-1999" })
      assert.are.equal(206, status)
      assert.are.equal(bytes:sub(1001, 2000), raw)
      assert.are.equal("bytes 1000-1999/" .. #bytes, h["content-range"])
      status, _, _, raw = get(server, location, { Range = "bytes=69000-" })
      assert.are.equal(206, status)
      assert.are.equal(bytes:sub(69001), raw)
      status, _, h = get(server, location, { Range = "bytes=" .. (#bytes + 10) .. "-" })
      assert.are.equal(416, status)
      assert.are.equal("bytes */" .. #bytes, h["content-range"])
      assert.are.equal("private, no-transform", h["cache-control"])   -- one Cache-Control, the file's
      -- Several ranges are answered with the whole file (max_ranges 1).
      status, _, _, raw = get(server, location, { Range = "bytes=0-1,5-6" })
      assert.are.equal(200, status)
      assert.are.equal(#bytes, #raw)
      local _, _, first = get(server, location)
      status, _, _, raw = get(server, location, { ["If-None-Match"] = first.etag })
      assert.are.equal(304, status)
      assert.are.equal("", raw)
      -- If-Range with the ETag resumes; with another one the whole file comes.
      status = get(server, location, { Range = "bytes=10-19", ["If-Range"] = first.etag })
      assert.are.equal(206, status)
      status, _, _, raw = get(server, location, { Range = "bytes=10-19", ["If-Range"] = '"other"' })
      assert.are.equal(200, status)
      assert.are.equal(#bytes, #raw)
    end)

    it("a symbolic link in the artifact directory is not followed; a missing file is 404", function()
      local status, _, h = gated(faq_links, "?build=6700&platform=linux-x64")
      assert.are.equal(302, status)
      local fstatus, body, _, raw = get(server, h.location)
      assert.are.equal(403, fstatus)
      assert.are.equal("forbidden", body.code)
      assert.is_nil(raw:find("secret outside", 1, true))
      status, _, h = gated(faq_links, "?build=6700&platform=windows-x64")
      assert.are.equal(302, status)
      fstatus, body = get(server, h.location)
      assert.are.equal(404, fstatus)
      assert.are.equal("not_found", body.code)
    end)

    it("only GET and HEAD are served", function()
      local location = fresh_link()
      local status, body, h = get(server, location, { ["Content-Length"] = "0" }, "POST")
      assert.are.equal(405, status)
      assert.are.equal("method_not_allowed", body.code)
      assert.are.equal("GET, HEAD", h.allow)
      local _
      status, _, h = get(server, location, nil, "HEAD")
      assert.are.equal(200, status)
      assert.are.equal(tostring(#files["smartertrack/ST_6911_linux-x64.tar.gz"]), h["content-length"])
    end)

    it("the refusal pages cannot be asked for directly", function()
      local status = get(server, "/.licensor-download/invalid_link")
      assert.are.equal(404, status)
    end)
  end)

  describe("external urls", function()
    it("get expires and signature appended; verify_url accepts them until they expire", function()
      local status, body, h = gated(fresh)
      assert.are.equal(302, status)
      local url = "https://cdn.example.com/st/7010/ST_7010.tar.gz?region=eu"
      local expires = tonumber(h.location:match("expires=(%d+)"))
      assert.are.equal(url .. "&expires=" .. expires .. "&signature=" ..
                       links.sign(keys.download, expires .. "\n" .. url), h.location)
      assert.are.equal("ST_7010.tar.gz", body.name)
      assert.is_true(download.verify_url(keys, h.location, expires))
      assert.is_true(download.verify_url(keys.download, h.location, expires - 100))
      local ok, msg, code = download.verify_url(keys, h.location, expires + 1)
      assert.is_nil(ok)
      assert.are.equal("expired_link", code)
      assert.matches("expired", msg)
      for _, bad in ipairs({ h.location:gsub("region=eu", "region=us"),
                             h.location:gsub("expires=%d+", "expires=" .. (expires + 86400)),
                             h.location:gsub("signature=(%x)", function(d) return "signature=" ..
                               (d == "0" and "1" or "0") end),
                             url, url .. "&signature=00&expires=" .. expires,
                             -- the query the signature covered, then another '?': not the url signed
                             (h.location:gsub("&expires=", "?expires=")) }) do
        ok, _, code = download.verify_url(keys, bad, expires - 1)
        assert.is_nil(ok, bad)
        assert.are.equal("invalid_link", code, bad)
      end
      local _
      ok, _, code = download.verify_url(links.keys(string.rep("7a", 32)), h.location, expires)
      assert.is_nil(ok)
      assert.are.equal("invalid_link", code)
    end)

    it("a url without a query gets '?'", function()
      local k = links.keys(string.rep("11", 32))
      local signed = download.signed_url(k, "https://dl.example.com/a.zip", 2000000000)
      assert.matches("^https://dl%.example%.com/a%.zip%?expires=2000000000&signature=%x+$", signed)
      assert.is_true(download.verify_url(k, signed, 1999999999))
    end)
  end)

  describe("events, metrics and limits", function()
    it("each granted download is an event on the license, and a refusal is none", function()
      local function downloads_of(key)
        local status, body = server:request("GET", "/v1/admin/licenses/" .. key .. "/events", nil,
                                            { Authorization = "Bearer " .. TOKEN })
        assert.are.equal(200, status)
        local list = {}
        for _, e in ipairs(body.events) do
          if e.kind == "download" then list[#list + 1] = e end
        end
        return list
      end
      local before = #downloads_of(faq_events)
      assert.are.equal(302, (gated(faq_events, "?build=6911&platform=windows-x64")))
      assert.are.equal(403, (gated(faq_events, "?build=6947")))
      local after = downloads_of(faq_events)
      assert.are.equal(before + 1, #after)
      local last = after[#after]
      assert.are.same({ build = 6911, platform = "windows-x64", via = "api" }, last.detail)
      assert.are.equal(TODAY, last.at)
      assert.are.equal(0, #downloads_of(disabled))
    end)

    it("are counted in licensor_downloads_total", function()
      local _, text = server:request("GET", "/metrics", nil, { Authorization = "Bearer " .. TOKEN })
      assert.is_string(text)
      local n = tonumber(text:match('licensor_downloads_total{product="smartertrack",platform="windows%-x64",' ..
                                    'via="api"} (%d+)'))
      assert.is_true(n ~= nil and n >= 2)
      assert.matches('licensor_requests_total{route="download",status="302"}', text)
    end)

    it("a key past its downloads per minute gets 429 with Retry-After", function()
      local granted, limited, retry = 0, nil, nil
      for _ = 1, 2 * require("licensor.constants").PORTAL.downloads_per_key + 1 do
        local status, body, h = gated(limited_key, "?platform=linux-x64")
        if status == 429 then
          limited, retry = body, tonumber(h["retry-after"])
          break
        end
        assert.are.equal(302, status)
        granted = granted + 1
      end
      assert.is_table(limited)
      assert.are.equal("rate_limited", limited.code)
      assert.matches("key", limited.message)
      assert.is_true(granted >= 30)
      assert.is_true(retry >= 1 and retry <= 60)
      -- Another key is not held back by it.
      assert.are.equal(302, (gated(faq, "?platform=linux-x64")))
    end)
  end)

  describe("gateways without artifacts or link keys", function()
    it("limit downloads per client address, and answer file builds 503 downloads_unavailable", function()
      -- A link secret but no --artifacts; per-address limits on.
      local g = gateway.start{ db = db, today = TODAY, link_secret_file = secret }
      local ok, err = pcall(function()
        local status, body = gated(faq, "?platform=linux-x64", g)
        assert.are.equal(503, status)
        assert.are.equal("downloads_unavailable", body.code)
        assert.matches("%-%-artifacts", body.message)
        -- An external url needs no artifact directory.
        status = gated(fresh, nil, g)
        assert.are.equal(302, status)
        -- No artifact location either.
        status = get(g, md5_link(keys.secure_link, "smartertrack/ST_6855.tar.gz", "ST_6855.tar.gz",
                                 os.time() + 300))
        assert.are.equal(404, status)
        local limited
        for i = 1, 2 * require("licensor.constants").PORTAL.downloads_per_client + 1 do
          local s, b, h = gated(crowd[i % #crowd + 1], nil, g)
          if s == 429 then
            limited = b
            assert.is_string(h["retry-after"])
            break
          end
        end
        assert.is_table(limited)
        assert.matches("address", limited.message)
      end)
      g:stop()
      assert(ok, err)
    end)

    it("without --link-secret nothing is handed out", function()
      local g = gateway.start{ db = db, today = TODAY }
      local ok, err = pcall(function()
        local status, body = gated(fresh, nil, g)
        assert.are.equal(503, status)
        assert.are.equal("downloads_unavailable", body.code)
        assert.matches("%-%-link%-secret", body.message)
      end)
      g:stop()
      assert(ok, err)
    end)
  end)

  it("answered no 500 anywhere, and logged no Lua error", function()
    for _, status in ipairs(statuses) do assert.is_true(status < 500 or status == 503) end
    assert.is_nil(server:error_log():find("stack traceback", 1, true))
    assert.is_nil(server:error_log():find("internal", 1, true))
  end)
end)
