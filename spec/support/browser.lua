-- browser.lua -- a real browser for the specs: Debian's chromium, headless,
-- driven over WebDriver (W3C, chromedriver) with LuaSocket HTTP and cjson.
-- What a spec does with it is what a customer does: open a page, fill a
-- form, press a button, download a file; and what a reviewer does: run
-- axe-core on the page, take a screenshot.
--
--   local b = browser.start{ width = 1280, height = 900 }
--   b:go(url); b:type("#email", "x@y"); b:follow("button[type=submit]")
--   b:text("h1"), b:attribute("a.download", "href"), b:cookies()
--   b:execute("return document.title"), b:execute_async(script, ...)
--   b:axe() -> serious and critical violations; b:screenshot(path)
--   b:download_dir, b:wait_download(name)
--   b:stop()          (browser.stop_all() in a file's teardown)
--
-- chromedriver runs as the leader of a process group of its own
-- (core.process.spawn), on a free loopback port; the chromium it starts,
-- and every renderer of it, stay in that group, so stopping the group
-- stops them all, and a browser the spec forgot is stopped by stop_all.
-- The group is written to $LICENSOR_SERVER_REGISTRY like a gateway's, so
-- the suite's last spec (spec/support/leftovers.lua) fails if any of it
-- outlives the suite.  Each browser has its own temporary profile and
-- download directory, removed when it stops.
--
-- Not a general WebDriver library: the commands the specs use, and errors
-- raised with the driver's own message (a spec that cannot drive its
-- browser has failed).
local process = require("licensor.core").process
local child_env = require "support.child_env"
local files = require "support.files"
local gateway = require "support.gateway"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local _M = {}

_M.CHROMIUM = "/usr/bin/chromium"
_M.CHROMEDRIVER = "/usr/bin/chromedriver"
-- axe-core as `npm ci --prefix spec/browser` installs it (make test does).
_M.AXE = "spec/browser/node_modules/axe-core/axe.min.js"

-- The W3C name of an element reference in JSON.
local ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

local ROOT = os.getenv("PWD") or "."

local function sleep(seconds) socket.sleep(seconds) end

-- available() -> true, or false and why (a spec says pending() with it).
function _M.available()
  local function exists(path)
    local f = io.open(path)
    if f then f:close() end
    return f ~= nil
  end
  for _, path in ipairs{ _M.CHROMIUM, _M.CHROMEDRIVER } do
    if not exists(path) then
      return false, path .. " is missing (make deps installs chromium and chromium-driver)"
    end
  end
  if not exists(_M.AXE) then
    return false, _M.AXE .. " is missing (make test runs npm ci --prefix spec/browser)"
  end
  return true
end

-- base64 decoding, for screenshots (WebDriver sends PNGs as base64).
local B64 = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for i = 1, 64 do B64[alphabet:byte(i)] = i - 1 end
end

local function unbase64(text)
  text = text:gsub("[^%w%+/]", "")
  local out, char, floor = {}, string.char, math.floor
  for i = 1, #text, 4 do
    local a, b, c, d = B64[text:byte(i)], B64[text:byte(i + 1) or 0], B64[text:byte(i + 2) or 0],
                       B64[text:byte(i + 3) or 0]
    local n = a * 262144 + (b or 0) * 4096 + (c or 0) * 64 + (d or 0)
    local b1, b2, b3 = floor(n / 65536), floor(n / 256) % 256, n % 256
    if c == nil then out[#out + 1] = char(b1)
    elseif d == nil then out[#out + 1] = char(b1, b2)
    else out[#out + 1] = char(b1, b2, b3) end
  end
  return table.concat(out)
end

_M.unbase64 = unbase64

-- One WebDriver command: method, path under the driver, body (a table to
-- encode, JSON text, or nil) -> the answer's `value`; raises with the
-- driver's error and message.
local function command(port, method, path, body)
  local chunks, text = {}, body
  if type(body) == "table" then text = cjson.encode(body) end
  local _, status = http.request{
    url = "http://127.0.0.1:" .. port .. path, method = method,
    headers = { ["Content-Type"] = "application/json", ["Content-Length"] = text and tostring(#text) or "0" },
    source = text and ltn12.source.string(text) or ltn12.source.empty(), sink = ltn12.sink.table(chunks),
  }
  if type(status) ~= "number" then
    error("chromedriver " .. method .. " " .. path .. ": " .. tostring(status), 3)
  end
  local ok, answer = pcall(cjson.decode, table.concat(chunks))
  if not ok or type(answer) ~= "table" then
    error(("chromedriver %s %s: %d %s"):format(method, path, status, table.concat(chunks)), 3)
  end
  local value = answer.value
  if status >= 400 or (type(value) == "table" and value.error) then
    error(("chromedriver %s %s: %s: %s"):format(method, path, tostring(value and value.error),
      tostring(value and value.message):match("^[^\n]*")), 3)
  end
  return value
end

local Browser = {}
Browser.__index = Browser

-- Browsers started and not yet stopped.
local live = {}

local stop_crash_handlers

-- The body of a command that takes none (cjson encodes {} as an object).
local EMPTY = "{}"

-- A script command's body: cjson has no empty array, and WebDriver wants
-- `args` as one.
local function script_body(script, n, ...)
  local args = { ... }
  return '{"script":' .. cjson.encode(script) .. ',"args":' .. (n == 0 and "[]" or cjson.encode(args)) .. "}"
end

-- start{width=, height=, scale=} -> a Browser with a new session: headless
-- chromium with a profile and a download directory of its own.
function _M.start(opts)
  opts = opts or {}
  local self = setmetatable({ port = gateway.free_port(), profile = files.temp_dir(),
                              download_dir = files.temp_dir() }, Browser)
  self.log = self.profile .. ".log"
  -- A shell leads the group: chromium outlives a chromedriver that is
  -- killed, so the shell, which gets SIGTERM when this process dies (the
  -- group leader's parent-death signal), or when the group is stopped,
  -- kills the whole group.  HOME is the profile: nothing of chromium's is
  -- left in the user's own.
  local argv = { "HOME=" .. self.profile, "sh", "-c", 'trap "kill -KILL 0" TERM INT HUP; "$0" "$@" & wait',
                 _M.CHROMEDRIVER, "--port=" .. self.port, "--allowed-ips=", "--log-level=WARNING" }
  self.pid = assert(process.spawn(child_env.argv(argv), self.log))
  live[self] = true
  gateway.register(self.pid, "chromedriver " .. self.profile)
  local ready
  for _ = 1, 200 do
    ready = pcall(command, self.port, "GET", "/status")
    if ready then break end
    sleep(0.05)
  end
  if not ready then
    self:stop()
    error("chromedriver did not answer on port " .. tostring(self.port))
  end
  local args = { "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                 "--disable-sync", "--disable-component-update", "--password-store=basic",
                 "--disable-crash-reporter",
                 "--user-data-dir=" .. self.profile,
                 ("--window-size=%d,%d"):format(opts.width or 1280, opts.height or 900) }
  if process.user().uid == 0 then args[#args + 1] = "--no-sandbox" end
  local ok, session = pcall(command, self.port, "POST", "/session", { capabilities = { alwaysMatch = {
    browserName = "chrome", acceptInsecureCerts = false, pageLoadStrategy = "normal",
    ["goog:loggingPrefs"] = { browser = "ALL" },
    ["goog:chromeOptions"] = { binary = _M.CHROMIUM, args = args, prefs = {
      ["download.default_directory"] = self.download_dir, ["download.prompt_for_download"] = false,
      ["download.directory_upgrade"] = true, ["safebrowsing.enabled"] = false,
      ["profile.default_content_settings.popups"] = 0 } } } } })
  if not ok then
    self:stop()
    error(session, 0)
  end
  self.session = session.sessionId
  self.base = "/session/" .. self.session
  local set, problem = pcall(function()
    self:timeouts{ pageLoad = 30000, script = 30000, implicit = 0 }
    -- Headless chromium saves downloads only where it is told to (CDP).
    self:cdp("Browser.setDownloadBehavior", { behavior = "allow", downloadPath = self.download_dir })
    if opts.width then self:viewport(opts.width, opts.height or 900, opts.scale) end
  end)
  if not set then
    self:stop()
    error(problem, 0)
  end
  return self
end

-- Chromium's crash handlers (crashpad) leave the group: they start a
-- session of their own.  (--disable-crashpad-for-testing would keep them
-- from starting, but chromium 156's network service then crashes at each
-- start.)  Theirs is the database in HOME, the profile: each handler
-- naming it is stopped with its group.
stop_crash_handlers = function(profile)
  local list = io.popen("exec ls /proc")
  for pid in list:lines() do
    local cmdline = pid:match("^%d+$") and files.read("/proc/" .. pid .. "/cmdline")
    if cmdline and cmdline:find("crashpad", 1, true)
       and cmdline:find("--database=" .. profile .. "/", 1, true) then
      local group = (files.read("/proc/" .. pid .. "/stat") or ""):match("^%d+ %b() %S+ %d+ (%d+)")
      if group then assert(process.stop(tonumber(group), 1000), "a crash handler outlived its stop") end
    end
  end
  list:close()
end

-- Stops every browser this file started that is still running.
function _M.stop_all()
  for b in pairs(live) do b:stop() end
end

-- Ends the session (chromium quits), then the whole group, and removes
-- the profile and the download directory.
function Browser:stop()
  if self.session then
    pcall(command, self.port, "DELETE", self.base)
    self.session = nil
  end
  if self.pid then
    assert(process.stop(self.pid, 2000), "chromedriver or its chromium outlived its stop")
    self.pid = nil
  end
  if self.profile then stop_crash_handlers(self.profile) end
  live[self] = nil
  if self.profile then files.remove_dir(self.profile); os.remove(self.log); self.profile = nil end
  if self.download_dir then files.remove_dir(self.download_dir); self.download_dir = nil end
end

-- Any command of the session: method, path after /session/ID, body.
function Browser:call(method, path, body)
  return command(self.port, method, self.base .. path, body)
end

function Browser:timeouts(t) return self:call("POST", "/timeouts", t) end

-- A Chrome DevTools Protocol command through chromedriver.
function Browser:cdp(cmd, params)
  -- cjson encodes {} as an object, which `params` is.
  return self:call("POST", "/goog/cdp/execute", { cmd = cmd, params = params or {} })
end

-- The layout viewport at width x height CSS pixels (scale: device pixels
-- per CSS pixel), as a phone or a desktop screen has it.
function Browser:viewport(width, height, scale)
  self:cdp("Emulation.setDeviceMetricsOverride", { width = width, height = height,
    deviceScaleFactor = scale or 1, mobile = width < 600 })
end

function Browser:go(url) return self:call("POST", "/url", { url = url }) end
function Browser:back() return self:call("POST", "/back", EMPTY) end
function Browser:refresh() return self:call("POST", "/refresh", EMPTY) end
function Browser:url() return self:call("GET", "/url") end
function Browser:title() return self:call("GET", "/title") end
function Browser:source() return self:call("GET", "/source") end

-- find(css) -> an element reference (raises when there is none);
-- find_all(css) -> a list of them (maybe empty).  An argument that is
-- already a reference is returned as it is.
function Browser:find(css)
  if type(css) == "table" then return css end
  local value = self:call("POST", "/element", { using = "css selector", value = css })
  return { [ELEMENT] = value[ELEMENT] }
end

function Browser:find_all(css)
  local list = {}
  for _, value in ipairs(self:call("POST", "/elements", { using = "css selector", value = css })) do
    list[#list + 1] = { [ELEMENT] = value[ELEMENT] }
  end
  return list
end

-- wait_for(css, seconds) -> the element once it exists.
function Browser:wait_for(css, seconds)
  local deadline = socket.gettime() + (seconds or 5)
  repeat
    local list = self:find_all(css)
    if list[1] then return list[1] end
    sleep(0.05)
  until socket.gettime() > deadline
  error("no element " .. css .. " on " .. self:url(), 2)
end

local function element_path(self, el)
  return "/element/" .. self:find(el)[ELEMENT]
end

function Browser:click(el) return self:call("POST", element_path(self, el) .. "/click", EMPTY) end
function Browser:clear(el) return self:call("POST", element_path(self, el) .. "/clear", EMPTY) end

-- navigate(fn, seconds): runs fn (a click, a submit) and returns once the
-- page it leads to has loaded: a click may return before the navigation
-- it starts has begun, and the old page's elements would still be found.
function Browser:navigate(fn, seconds)
  self:execute("window.__licensor_left = true")
  fn()
  local deadline = socket.gettime() + (seconds or 20)
  repeat
    local ok, loaded = pcall(self.execute, self,
      "return window.__licensor_left !== true && document.readyState === 'complete'")
    if ok and loaded then return end
    sleep(0.05)
  until socket.gettime() > deadline
  error("no new page loaded from " .. self:url(), 2)
end

-- follow(el): clicks a link or a form's button and waits for the page.
function Browser:follow(el, seconds)
  return self:navigate(function() self:click(el) end, seconds)
end

-- type(el, text): keys into a field (a file input takes a path).
function Browser:type(el, text)
  return self:call("POST", element_path(self, el) .. "/value", { text = text })
end

-- submit(el): submits the form the element is in, as pressing its first
-- submit button does (WebDriver has no submit command).
function Browser:submit(el)
  return self:execute("var f = arguments[0].form || arguments[0].closest('form');" ..
    " if (f.requestSubmit) f.requestSubmit(); else f.submit();", self:find(el))
end

function Browser:text(el) return self:call("GET", element_path(self, el) .. "/text") end
function Browser:attribute(el, name)
  return self:call("GET", element_path(self, el) .. "/attribute/" .. name)
end

function Browser:property(el, name)
  return self:call("GET", element_path(self, el) .. "/property/" .. name)
end

-- The page's whole visible text.
function Browser:page_text() return self:text("body") end

function Browser:cookies() return self:call("GET", "/cookie") end

function Browser:cookie(name)
  for _, c in ipairs(self:cookies()) do
    if c.name == name then return c end
  end
end

-- add_cookie{name=, value=, path=, httpOnly=, sameSite=...} for the page's domain.
function Browser:add_cookie(c) return self:call("POST", "/cookie", { cookie = c }) end
function Browser:delete_cookies() return self:call("DELETE", "/cookie") end

-- execute(script, ...) -> its return value; execute_async(script, ...)
-- -> the value passed to the callback (the last argument of the script).
function Browser:execute(script, ...)
  return self:call("POST", "/execute/sync", script_body(script, select("#", ...), ...))
end

function Browser:execute_async(script, ...)
  return self:call("POST", "/execute/async", script_body(script, select("#", ...), ...))
end

-- console() -> the browser's console entries since the last call, each
-- {level=, message=}: the page's errors, a resource that failed to load,
-- what the Content-Security-Policy blocked.
function Browser:console()
  local list = {}
  for _, e in ipairs(self:call("POST", "/se/log", { type = "browser" })) do
    list[#list + 1] = { level = e.level, message = e.message }
  end
  return list
end

-- screenshot([path]) -> the PNG of the viewport (written to path when
-- given).  full = true: the whole page, however long.
function Browser:screenshot(path, full)
  local png
  if full then
    png = unbase64(self:cdp("Page.captureScreenshot", { format = "png", captureBeyondViewport = true,
                                                      fromSurface = true }).data)
  else
    png = unbase64(self:call("GET", "/screenshot"))
  end
  if path then files.write(path, png) end
  return png
end

-- axe-core, injected into the page (the page's own CSP governs what the
-- page loads, not what WebDriver runs) and run on the whole document.
local axe_source

-- axe(levels) -> the violations whose impact is in levels (default
-- serious and critical), each {id=, impact=, help=, nodes={html...}}; and
-- the whole result's counts {violations=, passes=, incomplete=}.
function Browser:axe(levels)
  levels = levels or { serious = true, critical = true }
  if not axe_source then axe_source = assert(files.read(ROOT .. "/" .. _M.AXE), _M.AXE .. " is missing") end
  if not self:execute("return typeof window.axe === 'object'") then self:execute(axe_source) end
  local result = self:execute_async([[
    var done = arguments[arguments.length - 1];
    window.axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
      done({ violations: r.violations.map(function (v) {
               return { id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(function (n) { return n.html; }) }; }),
             passes: r.passes.length, incomplete: r.incomplete.length });
    }, function (e) { done({ error: String(e) }); });]])
  if result.error then error("axe-core: " .. result.error, 2) end
  local found = {}
  for _, v in ipairs(result.violations) do
    if levels[v.impact] then found[#found + 1] = v end
  end
  return found, { violations = #result.violations, passes = result.passes, incomplete = result.incomplete }
end

-- downloads() -> the names of the finished files in the download
-- directory (chromium's partial .crdownload files left out).
function Browser:downloads()
  local names = {}
  local p = io.popen("ls -A " .. self.download_dir)
  for name in p:lines() do
    if not name:match("%.crdownload$") and not name:match("^%.com%.google") then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

-- wait_download(name, seconds) -> the path once the file is complete.
function Browser:wait_download(name, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  repeat
    for _, n in ipairs(self:downloads()) do
      if n == name then return self.download_dir .. "/" .. name end
    end
    sleep(0.05)
  until socket.gettime() > deadline
  error("no download " .. name .. " in " .. self.download_dir .. " (has: " ..
        table.concat(self:downloads(), ", ") .. ")", 2)
end

return _M
