-- The browser harness (spec/support/browser.lua) against a plain nginx
-- serving static pages: each thing the portal's browser spec relies on is
-- proven here on pages whose answer is known -- navigation, forms, cookies
-- (HttpOnly ones too), scripts, the console, axe-core (it finds what is
-- there, and the serious/critical filter keeps only those), screenshots,
-- downloads into the browser's own directory, and that stopping leaves
-- nothing behind.
local browser = require "support.browser"
local gateway = require "support.gateway"
local files = require "support.files"
local child_env = require "support.child_env"
local core = require "licensor.core"
local process = core.process
local socket = require "socket"

local NGINX = "/usr/sbin/nginx"

-- The page a portal page is in spirit: a strict CSP, a form, a download.
local INDEX = [[<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harness page</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Licenses</h1>
<p id="note" data-day="2018-12-06">M&amp;S expired on December 6, 2018</p>
<form action="/echo.html" method="get"><label for="q">Search</label>
<input id="q" name="q" type="text"><button type="submit">Find</button></form>
<p><a id="get" class="download" href="/files/demo.bin">Download for linux-x64</a></p>
</main></body></html>
]]

-- A page with what axe-core must call serious or critical: an image
-- without alternative text, a field without a label, text that cannot be
-- read on its background.
local BAD = [[<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bad page</title><link rel="stylesheet" href="/bad.css"></head>
<body><main><h1>Bad</h1><img src="/x.png"><input type="text" name="nameless">
<p class="faint">hard to read</p></main></body></html>
]]

local DOWNLOAD = ("licensor demo bytes\n"):rep(4096)

local function start_nginx()
  local s = { port = gateway.free_port(), dir = files.temp_dir() }
  local root = s.dir .. "/root"
  -- nginx's workers (nobody, when the suite runs as root) read the pages.
  assert(os.execute("chmod 711 " .. s.dir .. " && mkdir -m 755 -p " .. root .. "/files " .. s.dir .. "/tmp " ..
                    s.dir .. "/logs"))
  files.write(root .. "/index.html", INDEX)
  files.write(root .. "/echo.html", "<!doctype html><html lang=en><title>Echo</title><h1>Echo</h1></html>")
  files.write(root .. "/bad.html", BAD)
  files.write(root .. "/script.html", "<!doctype html><html lang=en><title>Script</title><h1>Script</h1>" ..
              "<script>document.title = 'ran';</script></html>")
  files.write(root .. "/bad.css", ".faint { color: #eee; background: #fff; }\n")
  files.write(root .. "/files/demo.bin", DOWNLOAD)
  files.write(root .. "/favicon.ico", "")   -- the icon chromium asks for: no 404 in the console
  local tmp = s.dir .. "/tmp"
  files.write(s.dir .. "/nginx.conf", table.concat({
    "daemon off; master_process on; worker_processes 1;",
    "pid " .. s.dir .. "/nginx.pid; error_log " .. s.dir .. "/logs/error.log warn;",
    "events { worker_connections 64; }",
    "http { access_log off; default_type application/octet-stream;",
    "  types { text/html html; text/css css; }",
    "  client_body_temp_path " .. tmp .. "; proxy_temp_path " .. tmp .. "; fastcgi_temp_path " .. tmp .. ";",
    "  uwsgi_temp_path " .. tmp .. "; scgi_temp_path " .. tmp .. ";",
    "  server { listen 127.0.0.1:" .. s.port .. "; root " .. root .. ";",
    "    add_header Content-Security-Policy \"default-src 'none'; style-src 'self'; form-action 'self'\" always;",
    "    location = /index.html { add_header Set-Cookie \"harness=1; Path=/; HttpOnly; SameSite=Strict\";",
    "      add_header Content-Security-Policy \"default-src 'none'; form-action 'self'\" always; }",
    "    location /files/ { add_header Content-Disposition 'attachment; filename=\"demo-linux-x64.bin\"'; }",
    "  }", "}", "" }, "\n"))
  s.pid = assert(process.spawn(child_env.argv{ NGINX, "-p", s.dir, "-c", s.dir .. "/nginx.conf",
                                                "-e", s.dir .. "/logs/error.log" }, s.dir .. "/logs/start.log"))
  gateway.register(s.pid, "nginx " .. s.dir)
  s.url = "http://127.0.0.1:" .. s.port
  for _ = 1, 100 do
    local probe = socket.tcp()
    local up = probe:connect("127.0.0.1", s.port)
    probe:close()
    if up then return s end
    socket.sleep(0.05)
  end
  error("nginx did not start: " .. tostring(files.read(s.dir .. "/logs/error.log")))
end

describe("the browser harness", function()
  local web, b

  setup(function()
    local ok, why = browser.available()
    assert(ok, why)
    web = start_nginx()
    b = browser.start{ width = 1024, height = 700 }
  end)

  teardown(function()
    browser.stop_all()
    if web then
      process.stop(web.pid, 0)
      files.remove_dir(web.dir)
    end
  end)

  it("opens a page and reads its title, text and attributes", function()
    b:go(web.url .. "/index.html")
    assert.are.equal("Harness page", b:title())
    assert.are.equal("Licenses", b:text("h1"))
    assert.are.equal("M&S expired on December 6, 2018", b:text("#note"))
    assert.are.equal("2018-12-06", b:attribute("#note", "data-day"))
    assert.are.equal(web.url .. "/files/demo.bin", b:property("#get", "href"))
    assert.are.equal(1, #b:find_all("a.download"))
    assert.are.same({}, b:find_all("a.nowhere"))
    assert.has_error(function() b:find("#nowhere") end)
  end)

  it("types into a form and submits it as a customer would", function()
    b:go(web.url .. "/index.html")
    b:type("#q", "SmarterTrack & <b>6911</b>")
    b:follow("button[type=submit]")
    assert.are.equal("Echo", b:text("h1"))
    assert.are.equal(web.url .. "/echo.html?q=SmarterTrack+%26+%3Cb%3E6911%3C%2Fb%3E", b:url())
    b:back()   -- from the back/forward cache: the same window, so no navigate()
    assert.are.equal(web.url .. "/index.html", b:url())
    b:clear("#q")
    b:type("#q", "again")
    b:navigate(function() b:submit("#q") end)
    assert.are.equal(web.url .. "/echo.html?q=again", b:url())
  end)

  it("sees an HttpOnly cookie that the page's scripts cannot, and can set one back by hand", function()
    b:go(web.url .. "/index.html")
    local c = assert(b:cookie("harness"))
    assert.are.equal("1", c.value)
    assert.is_true(c.httpOnly)
    assert.are.equal("Strict", c.sameSite)
    assert.are.equal("", b:execute("return document.cookie"))
    b:delete_cookies()
    assert.is_nil(b:cookie("harness"))
    b:add_cookie{ name = "by_hand", value = "abc", path = "/", httpOnly = true }
    assert.are.equal("abc", b:cookie("by_hand").value)
    b:delete_cookies()
  end)

  it("runs scripts, sync and async, with arguments and elements", function()
    b:go(web.url .. "/index.html")
    assert.are.equal(42, b:execute("return arguments[0] + 1", 41))
    assert.are.equal("Harness page", b:execute("return document.title"))
    assert.are.equal("H1", b:execute("return arguments[0].tagName", b:find("h1")))
    assert.are.equal("later", b:execute_async("var done = arguments[0]; setTimeout(function () { done('later'); }, 10)"))
  end)

  it("runs axe-core past the page's CSP: a clean page has no serious or critical violation", function()
    b:go(web.url .. "/index.html")
    local serious, counts = b:axe()
    assert.are.same({}, serious)
    assert.is_true(counts.passes > 5, "axe-core ran its rules")
    -- The page's own scripts were not allowed to run it: the CSP held.
    assert.are.equal("none", (b:execute("return document.querySelector('script') ? 'some' : 'none'")))
  end)

  it("and reports what a bad page gets wrong, serious and critical only", function()
    b:go(web.url .. "/bad.html")
    local serious = b:axe()
    local ids = {}
    for _, v in ipairs(serious) do
      ids[v.id] = v.impact
      assert.is_true(v.impact == "serious" or v.impact == "critical")
      assert.is_true(#v.nodes > 0)
    end
    assert.are.equal("critical", ids["image-alt"])
    assert.are.equal("critical", ids["label"])
    assert.are.equal("serious", ids["color-contrast"])
    local all = b:axe{ minor = true, moderate = true, serious = true, critical = true }
    assert.is_true(#all >= #serious)
  end)

  it("reads the browser's console: what the page's CSP blocked", function()
    b:go(web.url .. "/index.html")
    b:console()
    b:go(web.url .. "/script.html")
    assert.are.equal("Script", b:title())
    local console = b:console()
    assert.are.equal(1, #console)
    assert.are.equal("SEVERE", console[1].level)
    assert.truthy(console[1].message:find("violates the following Content Security Policy directive", 1, true))
    assert.are.same({}, b:console())
  end)

  it("takes screenshots as PNG, of the viewport and of the whole page", function()
    b:go(web.url .. "/index.html")
    local path = os.tmpname()
    local png = b:screenshot(path)
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.are.equal(png, files.read(path))
    os.remove(path)
    local function size(p)
      local function int(at) local a, c, d, e = p:byte(at, at + 3); return ((a * 256 + c) * 256 + d) * 256 + e end
      return int(17), int(21)
    end
    local width, height = size(png)
    assert.are.equal(1024, width)
    assert.are.equal(700, height)
    b:viewport(390, 844, 2)
    local phone = b:screenshot(nil, true)
    assert.are.equal(780, (size(phone)))
    b:viewport(1024, 700)
  end)

  it("downloads a file through a link into its own directory", function()
    b:go(web.url .. "/index.html")
    b:click("#get")
    local path = b:wait_download("demo-linux-x64.bin")
    assert.are.equal(core.sha256(DOWNLOAD), core.sha256(files.read(path)))
    assert.are.same({ "demo-linux-x64.bin" }, b:downloads())
  end)

  it("stops chromedriver and every chromium it started, and removes its directories", function()
    local other = browser.start()
    local pid, profile, downloads = other.pid, other.profile, other.download_dir
    other:go(web.url .. "/index.html")
    assert.is_true(process.alive(pid))
    other:stop()
    assert.is_false(process.alive(pid))
    assert.is_nil(io.open(profile .. "/Default"))
    assert.is_nil(io.open(downloads))
    -- No process anywhere names the profile (chromium's crash handlers
    -- leave the group; they are stopped too).
    local list = io.popen("exec ls /proc")
    for p in list:lines() do
      local cmdline = p:match("^%d+$") and files.read("/proc/" .. p .. "/cmdline")
      assert.is_falsy(cmdline and cmdline:find(profile, 1, true), "process " .. p .. " outlived the browser")
    end
    list:close()
  end)
end)
