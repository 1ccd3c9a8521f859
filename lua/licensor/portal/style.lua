-- licensor.portal.style -- the portal's one stylesheet, served at
-- /portal/style.css (a Lua module so that it installs with the others).
-- Readable on a phone: one column, fluid widths, tables that turn into
-- labelled stacks below 40em; colours with a contrast of at least 4.5:1.
return [[
:root { --ink: #1b1f24; --muted: #4a5360; --line: #c9ced6; --paper: #ffffff; --tint: #f3f5f8;
  --accent: #0b4f8a; --accent-ink: #ffffff; --good: #145a32; --bad: #8a1c1c; }
* { box-sizing: border-box; }
html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 100%; line-height: 1.5; color: var(--ink); background: var(--paper); }
body { margin: 0; }
a { color: var(--accent); }
a:focus, button:focus, input:focus { outline: 3px solid #f0a500; outline-offset: 2px; }
.top { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: .5rem 1rem;
  padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--tint); }
.brand { margin: 0; font-weight: 700; }
.brand a { color: var(--ink); text-decoration: none; }
nav { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; }
nav p { margin: 0; color: var(--muted); overflow-wrap: anywhere; }
nav form { margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
footer { max-width: 60rem; margin: 2rem auto 0; padding: 1rem; color: var(--muted); font-size: .875rem;
  border-top: 1px solid var(--line); }
h1 { font-size: 1.6rem; line-height: 1.25; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 2rem 0 .75rem; }
h3 { font-size: 1.05rem; margin: 1.25rem 0 .5rem; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .95em;
  overflow-wrap: anywhere; }
section { border-top: 1px solid var(--line); }
.dialog { border: 1px solid var(--line); border-radius: .5rem; padding: 0 1rem 1rem; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0 0 1rem; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.install { font-size: 1.15rem; }
.notice { padding: .75rem 1rem; border-left: 4px solid var(--good); background: #eef7f0; }
.problem { padding: .75rem 1rem; border-left: 4px solid var(--bad); background: #fbeeee; }
.muted { color: var(--muted); }
.downloads, .plain { list-style: none; padding: 0; margin: 0 0 1rem; }
.plain li { margin: 0 0 .5rem; }
.downloads li { margin: 0 0 .75rem; }
.meta { display: block; color: var(--muted); font-size: .875rem; overflow-wrap: anywhere; }
.button, button { display: inline-block; padding: .5rem 1rem; border: 1px solid var(--accent);
  border-radius: .375rem; background: var(--accent); color: var(--accent-ink); font: inherit;
  font-weight: 600; text-decoration: none; cursor: pointer; }
.button.secondary, button.secondary { background: var(--paper); color: var(--accent); }
form.stack { display: grid; gap: .5rem; max-width: 28rem; }
label { font-weight: 600; }
input[type=email], input[type=file] { width: 100%; padding: .5rem; font: inherit;
  border: 1px solid var(--muted); border-radius: .375rem; background: var(--paper); color: var(--ink); }
table { width: 100%; border-collapse: collapse; margin: 0 0 1rem; }
caption { text-align: left; font-weight: 600; padding: 0 0 .5rem; }
th, td { text-align: left; vertical-align: top; padding: .5rem; border-bottom: 1px solid var(--line);
  overflow-wrap: break-word; }
th { background: var(--tint); }
td form { margin: 0; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; }
@media (max-width: 40em) {
  table.stack thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.stack, table.stack caption, table.stack tbody, table.stack tr, table.stack td { display: block;
    width: 100%; }
  table.stack tr { border: 1px solid var(--line); border-radius: .5rem; margin: 0 0 1rem; padding: .25rem 0; }
  table.stack td { border: 0; padding: .25rem .75rem; }
  table.stack td::before { content: attr(data-label); display: block; font-weight: 600; color: var(--muted);
    font-size: .875rem; }
  .facts { grid-template-columns: 1fr; }
  .facts dd { margin-bottom: .5rem; }
}
]]
