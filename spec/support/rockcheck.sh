#!/bin/sh
# rockcheck.sh -- the rock as a user gets it (`make rockcheck`, part of make
# test): the rockspec's module table is the Makefile's lists (make
# rockspec-check); `luarocks make` installs it offline into a scratch tree,
# run from a copy of the checkout's files, since LuaRocks' builtin backend
# builds in its current directory (csrc/*.o, licensor/core.so) and this
# checkout must be left as it was (checked: no new file, ignored ones
# included); the installed rock loads every module of the list and answers
# a query.  Not a test of `make install`: spec/install_spec.lua is.
set -eu
cd "$(dirname "$0")/../.."
make -s --no-print-directory rockspec-check
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tree=$scratch/tree copy=$scratch/src
before=$scratch/before after=$scratch/after
git status --porcelain --ignored --untracked-files=all | sort > "$before"
# The files a clone would have, as they are in this working tree, and any
# not yet added (a new module is in the list as soon as it exists).
mkdir "$copy"
git ls-files -z --cached --others --exclude-standard | tar -cf - --null -T - | tar -xf - -C "$copy"
modules=$(make -s --no-print-directory modules | sed 's|\.lua$||; s|/init$||; s|/|.|g' | tr '\n' ' ')
(cd "$copy" && luarocks --lua-version=5.4 make --tree "$tree" rockspec/licensor-scm-1.rockspec) \
  > "$scratch/log" 2>&1 || { cat "$scratch/log"; echo "rockcheck: luarocks make failed"; exit 1; }
git status --porcelain --ignored --untracked-files=all | sort > "$after"
new=$(comm -13 "$before" "$after")
if [ -n "$new" ]; then
  echo "rockcheck: luarocks make left new files in the checkout:"
  echo "$new" | sed "s/^/  /"
  exit 1
fi
cd /
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
lua5.4 - $modules <<'EOF'
  for _, name in ipairs(arg) do
    local path = package.searchpath(name, package.path)
    assert(path and path:find(os.getenv("LUA_PATH"):match("^(.-)/%?"), 1, true),
           "rockcheck: " .. name .. " is not in the installed rock")
  end
  local licensor = require "licensor"
  local cat = assert(licensor.load_catalogue(licensor.catalogue_path("smartertools")))
  local build = assert(cat:eligible({ product = "smartertrack", start = "2017-12-07",
                                      ms_expires = "2018-12-06" }, "2020-01-01"))
  assert(build.number == 6911, "installed rock answers wrong")
  local store = assert(licensor.open(":memory:"))
  assert(store:import(licensor.catalogue_path("smartertools")) == 1)
  require "licensor.cli"
  print("rockcheck: installed rock ok (" .. #arg .. " modules, " .. tostring(cat) .. ")")
EOF
