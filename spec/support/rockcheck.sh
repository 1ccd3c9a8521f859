#!/bin/sh
# rockcheck.sh -- the rock as a user gets it (`make rockcheck`, part of make
# test): `luarocks make` installs it offline into a scratch tree, through the
# Makefile (the rockspec's build.type "make": make rock, make rock-install);
# the checkout gains no file outside build/ (ignored ones included: the
# builtin backend used to leave csrc/*.o and licensor/core.so); the rock
# holds exactly the modules of the one list (make -s modules), loads each
# and answers a query.  Not a test of `make install`: spec/install_spec.lua
# is.
set -eu
cd "$(dirname "$0")/../.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tree=$scratch/tree
files() { git status --porcelain --ignored --untracked-files=all | sed 's/^.. //' | grep -v '^build/' | sort; }
files > "$scratch/before"
luarocks --lua-version=5.4 make --tree "$tree" rockspec/licensor-scm-1.rockspec > "$scratch/log" 2>&1 || {
  cat "$scratch/log"; echo "rockcheck: luarocks make failed"; exit 1; }
files > "$scratch/after"
new=$(comm -13 "$scratch/before" "$scratch/after")
if [ -n "$new" ]; then
  echo "rockcheck: luarocks make left files in the checkout:"
  echo "$new" | sed 's/^/  /'
  exit 1
fi
make -s --no-print-directory modules > "$scratch/modules"
(cd "$tree/share/lua/5.4" && find . -type f | sed 's|^\./||' | sort) > "$scratch/installed"
if ! cmp -s "$scratch/modules" "$scratch/installed"; then
  echo "rockcheck: the rock's modules differ from make -s modules (< list, > rock):"
  diff "$scratch/modules" "$scratch/installed" | grep '^[<>]' | sed 's/^/  /'
  exit 1
fi
cd /
LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
LUA_CPATH="$tree/lib/lua/5.4/?.so;;" \
lua5.4 - $(cat "$scratch/modules") <<'EOF'
  local root = os.getenv("LUA_PATH"):match("^(.-)/%?")
  for _, path in ipairs(arg) do
    local name = path:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    local found = package.searchpath(name, package.path)
    assert(found and found:find(root, 1, true), "rockcheck: " .. name .. " is not the rock's")
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
"$tree/bin/licensor" help > /dev/null || { echo "rockcheck: the rock's licensor command fails"; exit 1; }
