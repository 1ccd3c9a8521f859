#!/bin/sh
# run-suites.sh -- the busted suite on Lua 5.4, on LuaJIT 2.1 (OpenResty's)
# and on Lua 5.4 with the module built with ASan + UBSan; the store specs
# and spec/postgresql_spec.lua against a throwaway PostgreSQL cluster; each
# fuzz target for a few seconds from its corpus (a crash found once stays
# found), then one line:
#   licensor: N passed, N failed[, N skipped]
# A suite that crashes before reporting counts as one failure.
# SUITES picks some of them: "lua54 luajit asan postgresql fuzz" (the default).
set -u
SUITES=${SUITES:-"lua54 luajit asan postgresql fuzz"}
PG_SPECS="spec/mail_spec.lua spec/store_spec.lua spec/store_sweep_spec.lua spec/store_reminders_spec.lua spec/store_faults_spec.lua spec/rollback_spec.lua
          spec/bulk_spec.lua spec/slots_spec.lua spec/postgresql_spec.lua"
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-3}
cd "$(dirname "$0")/../.." || exit 2
tally=$(mktemp)
registry=$(mktemp)
# Every os.tmpname() of the specs lands here (spec/support/scratch.lua).
# Traversable by others (not listable): PostgreSQL clusters made in it run
# as the postgres user when the suite runs as root.
LICENSOR_TEST_TMP=$(mktemp -d)
chmod 711 "$LICENSOR_TEST_TMP"
export LICENSOR_TEST_TMP
trap 'rm -f "$tally" "$registry"; rm -rf "$LICENSOR_TEST_TMP"' EXIT
status=0

run_suite() {  # label vm cpath [env...]; BUSTED_WRAPPER, BUSTED_FILES: a wrapper command, spec files
  label=$1 vm=$2 cpath=$3
  shift 3
  echo "== $label"
  before=$(wc -l < "$tally")
  : > "$registry"
  # shellcheck disable=SC2086
  env "$@" LICENSOR_TALLY="$tally" LICENSOR_SERVER_REGISTRY="$registry" LUA_CPATH="$cpath;;" \
    ${BUSTED_WRAPPER:-} "$vm" /usr/bin/busted ${BUSTED_FILES:-} || status=1
  # The last spec: nothing the suite started may outlive it.
  env "$@" LICENSOR_TALLY="$tally" LICENSOR_SERVER_REGISTRY="$registry" LUA_CPATH="$cpath;;" \
    "$vm" /usr/bin/busted --pattern=leftovers spec/support/leftovers.lua || status=1
  if [ "$(wc -l < "$tally")" -lt $((before + 2)) ]; then
    echo "$label: the suite stopped before reporting"
    echo "0 1 0" >> "$tally"
    status=1
  fi
}

run_fuzz() {  # every target in build/fuzz, a pass or a failure each
  echo "== fuzz, $FUZZ_SMOKE_SECONDS s a target"
  for target in build/fuzz/fuzz_*; do
    name=${target#build/fuzz/fuzz_}
    scratch=$(mktemp -d)
    if "$target" -max_total_time="$FUZZ_SMOKE_SECONDS" -artifact_prefix="$scratch/" \
         "$scratch" "spec/fuzz/corpus/$name" > "$scratch.log" 2>&1; then
      echo "fuzz_$name: $(grep -o 'DONE.*exec/s: [0-9]*' "$scratch.log" | sed 's/.*exec/exec/')"
      echo "1 0 0" >> "$tally"
    else
      tail -30 "$scratch.log"
      echo "fuzz_$name: FAILED (input kept in $scratch)"
      echo "0 1 0" >> "$tally"
      status=1
      continue
    fi
    rm -rf "$scratch" "$scratch.log"
  done
}

for suite in $SUITES; do
  case $suite in
    lua54) run_suite "Lua 5.4" lua5.4 "$PWD/build/lua5.4/?.so" ;;
    luajit) run_suite "LuaJIT 2.1" luajit "$PWD/build/luajit/?.so" ;;
    asan)
      run_suite "Lua 5.4 + ASan/UBSan" lua5.4 "$PWD/build/asan-lua5.4/?.so" \
        LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LICENSOR_SANITIZED=1 ;;
    postgresql)
      BUSTED_WRAPPER="lua5.4 spec/support/with-postgres.lua" BUSTED_FILES=$PG_SPECS \
        run_suite "Lua 5.4 + PostgreSQL" lua5.4 "$PWD/build/lua5.4/?.so" \
        LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/spec/?.lua;;" ;;
    fuzz) run_fuzz ;;
    *) echo "unknown suite $suite"; status=1 ;;
  esac
done

awk '{ p += $1; f += $2; s += $3 }
     END { line = "licensor: " p " passed, " f " failed"; if (s > 0) line = line ", " s " skipped"; print line }' "$tally"
exit $status
