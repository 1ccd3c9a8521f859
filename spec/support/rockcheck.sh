#!/bin/sh
# rockcheck.sh -- installs the rock offline into a scratch tree with
# `luarocks make` and checks that the installed module answers a query.
set -eu
cd "$(dirname "$0")/../.."
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
luarocks --lua-version=5.4 make --tree "$tree" rockspec/licensor-scm-1.rockspec > "$tree.log" 2>&1 || {
  cat "$tree.log"; rm -f "$tree.log"; echo "rockcheck: luarocks make failed"; exit 1; }
rm -f "$tree.log"
cd /
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
lua5.4 -e '
  local licensor = require "licensor"
  local cat = assert(licensor.load_catalogue(licensor.catalogue_path("smartertools")))
  local build = assert(cat:eligible({ product = "smartertrack", start = "2017-12-07",
                                      ms_expires = "2018-12-06" }, "2020-01-01"))
  assert(build.number == 6911, "installed rock answers wrong")
  local store = assert(licensor.open(":memory:"))
  assert(store:import(licensor.catalogue_path("smartertools")) == 1)
  print("rockcheck: installed rock ok (" .. tostring(cat) .. ")")'
