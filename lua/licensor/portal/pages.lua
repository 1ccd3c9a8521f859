-- licensor.portal.pages -- the portal's pages (doc/portal.md): the
-- sign-in forms, the licenses list, the license dialog of the FAQ and the
-- error pages, as markup of licensor.portal.html (every value escaped).
--
-- A page function takes `ctx` {csrf=, email= (signed in), notice=,
-- problem=} and the view(s) of licensor.portal.view, and answers the
-- whole document.  No script, no inline style: the Content-Security-Policy
-- the portal sends allows neither.
local html = require "licensor.portal.html"
local view_module = require "licensor.portal.view"
local constants = require "licensor.constants"

local render, each, url, component = html.render, html.each, html.url, html.component
local format, floor = string.format, math.floor
local nothing = html.nothing

local _M = {}

-- The stylesheet's and the icon's paths, the only resources a page loads
-- (a page naming no icon makes the browser ask for /favicon.ico, outside
-- the portal).
_M.STYLE = "/portal/style.css"
_M.ICON = "/portal/icon.svg"
_M.ICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">' ..
  '<rect width="16" height="16" rx="3" fill="#1d4e89"/><path d="M4 8.5l2.5 2.5L12 5" stroke="#fff" ' ..
  'stroke-width="2" fill="none"/></svg>'

local LAYOUT = [[<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} - Customer portal</title>
<link rel="stylesheet" href="{{style}}">
<link rel="icon" href="{{icon}}" type="image/svg+xml">
</head>
<body>
<header class="top">
<p class="brand"><a href="/portal/">Customer portal</a></p>
{{nav}}
</header>
<main id="main">
{{content}}
</main>
<footer>
<p>Licenses, downloads and installations. Questions about a license change or a payment: contact sales.</p>
</footer>
</body>
</html>
]]

local NAV = [[<nav aria-label="Account">
<p>Signed in as {{email}}</p>
<a href="/portal/licenses">Licenses</a>
<form method="post" action="/portal/signout">
<input type="hidden" name="csrf" value="{{csrf}}">
<button type="submit" class="secondary">Sign out</button>
</form>
</nav>]]

local function messages(ctx)
  local parts = {}
  if ctx.notice then parts[#parts + 1] = render([[<p class="notice" role="status">{{text}}</p>]],
                                                { text = ctx.notice }) end
  if ctx.problem then parts[#parts + 1] = render([[<p class="problem" role="alert">{{text}}</p>]],
                                                 { text = ctx.problem }) end
  return html.join(parts, "\n")
end

-- document(ctx, title, content) -> the whole page as a string.
local function document(ctx, title, content)
  local nav = ctx.email and render(NAV, { email = ctx.email, csrf = ctx.csrf }) or nothing
  return html.text(render(LAYOUT, { title = title, style = _M.STYLE, icon = _M.ICON, nav = nav,
                                    content = html.join({ messages(ctx), content }, "\n") }))
end
_M.document = document

------------------------------------------------------------------------
-- Signing in
------------------------------------------------------------------------

local MINUTES = floor(constants.PORTAL.signin_seconds / 60)

local SIGNIN = [[<h1>Sign in</h1>
<p>Enter the email address your licenses were issued to. We mail you a link that signs you in: it works
once, within {{minutes}} minutes. There is no password.</p>
<form method="post" action="/portal/signin" class="stack">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="email">Email address</label>
<input id="email" name="email" type="email" autocomplete="email" required maxlength="{{max}}"
 value="{{email}}">
<button type="submit">Mail me a sign-in link</button>
</form>]]

-- The longest address the form takes (RFC 5321's path limit).
_M.MAX_EMAIL = 254

function _M.signin(ctx, email)
  return document(ctx, "Sign in", render(SIGNIN, { csrf = ctx.csrf, minutes = MINUTES, max = _M.MAX_EMAIL,
                                                   email = email or "" }))
end

local SENT = [[<h1>Check your mail</h1>
<p>If licenses were issued to <strong>{{email}}</strong>, a sign-in link is on its way there. It works once,
within {{minutes}} minutes. At most {{cap}} links are mailed to one address in {{minutes}} minutes: if you
asked before, use the newest link you got.</p>
<p><a href="/portal/">Use another address</a></p>]]

function _M.sent(ctx, email)
  return document(ctx, "Check your mail", render(SENT, { email = email, minutes = MINUTES,
                                                         cap = constants.PORTAL.signins_per_email }))
end

local CONFIRM = [[<h1>Sign in</h1>
<p>Press the button to sign in with this link. It works once.</p>
<form method="post" action="/portal/signin" class="stack">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="token" value="{{token}}">
<button type="submit">Sign in</button>
</form>]]

-- The page a sign-in link opens: a button, so that a mail scanner that
-- fetches links cannot spend it.
function _M.confirm(ctx, token)
  return document(ctx, "Sign in", render(CONFIRM, { csrf = ctx.csrf, token = token }))
end

------------------------------------------------------------------------
-- Licenses
------------------------------------------------------------------------

local function license_path(key, rest)
  return "/portal/licenses/" .. component(key) .. (rest or "")
end
_M.license_path = license_path

-- "windows-x64" -> "Windows x64"; the platform names are the catalogue's.
local function platform_text(platform)
  local text = platform:gsub("[-_]", " ")
  return (text:gsub("^%l", string.upper))
end

local function addons_text(v)
  if #(v.addons or {}) == 0 then return "none" end
  local parts = {}
  for i, a in ipairs(v.addons) do parts[i] = a.name .. ": " .. a.text end
  return table.concat(parts, "; ")
end

local function eligible_text(v)
  local b = v.eligible
  if not b then return v.refusal or "none" end
  return format("Build %d (%s), released %s", b.number, b.version, b.released_text)
end

local LIST = [[<h1>Your licenses</h1>
{{body}}]]

local TABLE = [[<table class="stack">
<caption>Licenses issued to {{email}}</caption>
<thead><tr><th scope="col">License</th><th scope="col">Kind</th><th scope="col">M&amp;S</th>
<th scope="col">Add-ons</th><th scope="col">May install</th></tr></thead>
<tbody>
{{rows}}
</tbody>
</table>]]

local ROW = [[<tr>
<td data-label="License"><a href="{{href}}">{{title}}</a>
<span class="meta">Key <code>{{key}}</code></span></td>
<td data-label="Kind">{{kind}}</td>
<td data-label="M&amp;S">{{ms}}</td>
<td data-label="Add-ons">{{addons}}</td>
<td data-label="May install">{{eligible}}</td>
</tr>]]

local BROKEN_ROW = [[<tr>
<td data-label="License"><a href="{{href}}">{{title}}</a>
<span class="meta">Key <code>{{key}}</code></span></td>
<td data-label="Kind" colspan="4">This license cannot be read now: {{message}}</td>
</tr>]]

function _M.licenses(ctx, views)
  local body
  if #views == 0 then
    body = render([[<p>No licenses were issued to {{email}}.</p>]], { email = ctx.email })
  else
    body = render(TABLE, { email = ctx.email, rows = each(views, function(v)
      if v.broken then
        return render(BROKEN_ROW, { href = license_path(v.key), title = v.product.name, key = v.key,
                                    message = v.message or "unknown problem" })
      end
      return render(ROW, { href = license_path(v.key), title = v.title, key = v.key, kind = v.kind_text,
                           ms = v.ms_text, addons = addons_text(v), eligible = eligible_text(v) })
    end) })
  end
  return document(ctx, "Your licenses", render(LIST, { body = body }))
end

------------------------------------------------------------------------
-- One license: the FAQ's dialog
------------------------------------------------------------------------

-- 1234567 -> "1.2 MB" (integer arithmetic).
local function size_text(bytes)
  if type(bytes) ~= "number" then return "" end
  if bytes < 1024 then return format("%d bytes", bytes) end
  if bytes < 1024 * 1024 then return format("%d KB", floor((bytes + 1023) / 1024)) end
  local tenths = floor(bytes * 10 / (1024 * 1024) + 0.5)
  return format("%d.%d MB", floor(tenths / 10), tenths % 10)
end
_M.size_text = size_text

local function download_href(v, build, platform)
  return url(license_path(v.key, "/download"), { "build", build.number, "platform", platform })
end

local DOWNLOAD = [[<li><a class="button download" href="{{href}}">Download Build {{number}} for
{{platform}}</a>
<span class="meta">{{name}}, {{size}}, SHA-256 <code>{{sha256}}</code></span></li>]]

local function downloads_of(v, build)
  if #build.downloads == 0 then
    return render([[<p class="muted">Build {{number}} has no downloads here: ask support for its files.</p>]],
                  { number = build.number })
  end
  return render([[<ul class="downloads">{{items}}</ul>]], { items = each(build.downloads, function(d)
    return render(DOWNLOAD, { href = download_href(v, build, d.platform), number = build.number,
                              platform = platform_text(d.platform), name = d.name or "",
                              size = size_text(d.size), sha256 = d.sha256 or "" })
  end) })
end

local OLDER = [[<h3>Older builds it may also install</h3>
<p>Every license runs on its build or any earlier one. The last {{count}}:</p>
<ul class="plain">{{items}}</ul>]]

local OLDER_ITEM = [[<li>Build {{number}} ({{version}}, released {{released}}){{links}}</li>]]

local function older_of(v)
  if #v.older == 0 then return nothing end
  return render(OLDER, { count = #v.older, items = each(v.older, function(b)
    local links = each(b.downloads, function(d)
      return render([[ <a href="{{href}}">{{platform}}<span class="visually-hidden"> download of build
{{number}}</span></a>]], { href = download_href(v, b, d.platform), platform = platform_text(d.platform),
                      number = b.number })
    end)
    return render(OLDER_ITEM, { number = b.number, version = b.version, released = b.released_text,
                                links = #b.downloads > 0 and html.join({ " -", links }) or nothing })
  end) })
end

local FACTS = [[<dl class="facts">
<dt>Product</dt><dd>{{product}}</dd>
<dt>Edition and level</dt><dd>{{edition}}</dd>
<dt>Kind</dt><dd>{{kind}}</dd>
<dt>Status</dt><dd>{{state}}</dd>
<dt>M&amp;S</dt><dd>{{ms}}</dd>
{{extra}}
</dl>]]

local function facts_of(v)
  local extra = {}
  if v.ms_expires then
    extra[#extra + 1] = render([[<dt>M&amp;S expiry day</dt><dd>{{day}}</dd>]], { day = v.ms_expires_text })
  end
  if v.kind == "lease" then
    extra[#extra + 1] = render([[<dt>Lease</dt><dd>{{text}}</dd>]], { text = v.lease_ended and
      ("ended on " .. view_module.date_text(v.lease_ended)) or ("running since " .. v.start_text) })
  elseif v.kind == "trial" then
    extra[#extra + 1] = render([[<dt>Trial</dt><dd>{{text}}</dd>]], { text = "from " .. v.start_text ..
      " to " .. view_module.date_text(v.trial_ends) })
  else
    extra[#extra + 1] = render([[<dt>Bought</dt><dd>{{day}}</dd>]], { day = v.start_text })
  end
  if v.owner then extra[#extra + 1] = render([[<dt>Owner</dt><dd>{{owner}}</dd>]], { owner = v.owner }) end
  return render(FACTS, { product = v.product.name, edition = (v.edition_text or "-") ..
                           (v.level_text and (", " .. v.level_text) or ""),
                         kind = v.kind_text, state = v.state_text, ms = v.ms_text,
                         extra = html.join(extra, "\n") })
end

local BUILD = [[<section aria-labelledby="build">
<h2 id="build">Which build you may install</h2>
<p class="install"><strong>{{install}}</strong></p>
<p>{{reason}}</p>
{{downloads}}
{{older}}
</section>]]

local function build_section(v)
  local install = v.eligible and v.install_text or (v.install_text .. ": " .. (v.refusal or ""))
  return render(BUILD, { install = install, reason = v.reason,
                         downloads = v.eligible and downloads_of(v, v.eligible) or nothing,
                         older = older_of(v) })
end

local function addons_section(v)
  if #v.addons == 0 then return nothing end
  return render([[<section aria-labelledby="addons">
<h2 id="addons">Add-ons</h2>
<ul class="plain">{{items}}</ul>
</section>]], { items = each(v.addons, function(a)
    return render([[<li><strong>{{name}}</strong>: {{text}}</li>]], { name = a.name, text = a.text })
  end) })
end

local CHECKOUT = [[<p><a class="button" href="{{href}}">{{label}}</a></p>]]

local UPGRADES = [[<table class="stack">
<caption>Upgrades within version {{major}}, by price difference</caption>
<thead><tr><th scope="col">To</th><th scope="col">Costs</th>{{buy_head}}</tr></thead>
<tbody>{{rows}}</tbody>
</table>]]

local function money_section(v)
  local parts = {}
  if v.renewal then
    parts[#parts + 1] = render([[<h3>Renew M&amp;S</h3>
<p>{{text}}</p>]], { text = v.renewal.text })
    if v.renewal.checkout then
      parts[#parts + 1] = render(CHECKOUT, { href = v.renewal.checkout, label = "Renew M&S for " ..
                                             v.renewal.amount_text })
    end
  end
  if #v.upgrades > 0 then
    local buy = v.upgrades[1].checkout ~= nil
    parts[#parts + 1] = render([[<h3>Upgrade the edition or level</h3>
<p>An upgrade costs the difference between the price of the license you have and the one you need.</p>]], {})
    parts[#parts + 1] = render(UPGRADES, {
      major = v.eligible.major,
      buy_head = buy and render([[<th scope="col"><span class="visually-hidden">Buy</span></th>]], {})
        or nothing,
      rows = each(v.upgrades, function(u)
        local cell = u.checkout and render([[<td data-label="Buy"><a class="button" href="{{href}}">Upgrade
<span class="visually-hidden">to {{title}}</span></a></td>]], { href = u.checkout, title = u.title })
          or nothing
        return render([[<tr><td data-label="To">{{title}}</td><td data-label="Costs">{{amount}}</td>
{{cell}}</tr>]], { title = u.title, amount = u.amount_text, cell = cell })
      end) })
  end
  if v.downgrade then
    parts[#parts + 1] = render([[<h3>Downgrade</h3>
<p>{{text}}</p>]], { text = v.downgrade })
  end
  if #parts == 0 then return nothing end
  return render([[<section aria-labelledby="money">
<h2 id="money">Renewal and upgrades</h2>
{{parts}}
</section>]], { parts = html.join(parts, "\n") })
end

local INSTALLS = [[<table class="stack">
<caption>Servers this license runs on</caption>
<thead><tr><th scope="col">Server</th><th scope="col">Build</th><th scope="col">Last check-in</th>
<th scope="col">Slot held until</th><th scope="col">State</th>
<th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody>{{rows}}</tbody>
</table>]]

local INSTALL_ROW = [[<tr>
<td data-label="Server"><code>{{server}}</code></td>
<td data-label="Build">{{build}}</td>
<td data-label="Last check-in">{{last}}</td>
<td data-label="Slot held until">{{held}}</td>
<td data-label="State">{{state}}</td>
<td data-label="Action"><form method="post" action="{{action}}">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="server" value="{{server}}">
<button type="submit" class="secondary">Deactivate<span class="visually-hidden"> {{server}}</span></button>
</form></td>
</tr>]]

local function budget_text(v)
  local b = v.self_deactivation
  local text = format("You may deactivate a lost server yourself %d time%s in %d days", b.allowed,
                      b.allowed == 1 and "" or "s", b.days)
  if b.left then text = text .. format("; %d left", b.left) end
  return text .. ". Beyond that, contact support. Deactivating frees the server's slot at once, even " ..
    "while its certificate is still valid."
end

local function installations_section(ctx, v)
  local body
  if #v.installations == 0 then
    body = render([[<p>No server runs this license now.</p>]], {})
  else
    body = render(INSTALLS, { rows = each(v.installations, function(i)
      return render(INSTALL_ROW, {
        server = i.server, build = i.build or "-", last = i.last_seen_text or "-",
        held = i.held_until_text or "-", state = i.state, action = license_path(v.key, "/deactivate"),
        csrf = ctx.csrf })
    end) })
  end
  return render([[<section aria-labelledby="installations">
<h2 id="installations">Installations</h2>
{{body}}
<p>{{budget}}</p>
</section>]], { body = body, budget = budget_text(v) })
end

local OFFLINE = [[<section aria-labelledby="offline">
<h2 id="offline">Offline activation</h2>
<p>A server without internet access writes an activation request file. Upload it here to get its
certificate, exactly as support would issue it.</p>
<form method="post" action="{{action}}" enctype="multipart/form-data" class="stack">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="request">Activation request file</label>
<input id="request" name="request" type="file" required>
<button type="submit">Get the certificate</button>
</form>
</section>]]

local LICENSE = [[<p><a href="/portal/licenses">All licenses</a></p>
<article class="dialog" aria-labelledby="title">
<h1 id="title">{{title}}</h1>
<p>License key <code>{{key}}</code></p>
{{facts}}
{{build}}
{{addons}}
{{money}}
{{installations}}
{{offline}}
</article>]]

function _M.license(ctx, v)
  if v.broken then
    return _M.problem(ctx, "License " .. v.key, "This license cannot be read now: " .. (v.message or ""))
  end
  return document(ctx, v.title, render(LICENSE, {
    title = v.title, key = v.key, facts = facts_of(v), build = build_section(v), addons = addons_section(v),
    money = money_section(v), installations = installations_section(ctx, v),
    offline = ctx.offline and render(OFFLINE, { action = license_path(v.key, "/activate"), csrf = ctx.csrf })
      or "" }))
end

------------------------------------------------------------------------
-- Problems
------------------------------------------------------------------------

local PROBLEM = [[<h1>{{title}}</h1>
<p>{{message}}</p>
<p><a href="{{back}}">{{back_text}}</a></p>]]

-- problem(ctx, title, message[, back, back_text]) -> an error page.
function _M.problem(ctx, title, message, back, back_text)
  return document(ctx, title, render(PROBLEM, {
    title = title, message = message, back = back or (ctx.email and "/portal/licenses" or "/portal/"),
    back_text = back_text or (ctx.email and "Your licenses" or "Sign in") }))
end

return _M
