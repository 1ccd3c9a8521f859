#!/bin/sh
# run-suites.sh -- the busted suite on Lua 5.4, on LuaJIT 2.1 (OpenResty's)
# and on Lua 5.4 with the module built with ASan + UBSan; the store specs
# and spec/postgresql_spec.lua against a throwaway PostgreSQL cluster; each
# fuzz target for a few seconds from its corpus (a crash found once stays
# found); the specs that read the clock once more on Lua 5.4 under faketime
# for each of CLOCK_ROUNDS; the valgrind round (the fuzz corpora replayed
# by targets built without sanitizers, and a few core specs on Lua 5.4,
# under valgrind: reads of uninitialised memory, which ASan cannot see);
# then one line:
#   licensor: N passed, N failed[, N skipped]
# A suite that crashes before reporting counts as one failure.
# SUITES picks some of them: "lua54 luajit asan postgresql fuzz clock
# valgrind" (the default).  The whole run may itself run under faketime.
set -u
SUITES=${SUITES:-"lua54 luajit asan postgresql fuzz clock valgrind"}
PG_SPECS="spec/mail_spec.lua spec/store_spec.lua spec/store_sweep_spec.lua spec/store_reminders_spec.lua spec/store_faults_spec.lua spec/rollback_spec.lua
          spec/bulk_spec.lua spec/slots_spec.lua spec/refusals_spec.lua spec/postgresql_spec.lua
          spec/pg_connection_spec.lua spec/connections_spec.lua spec/pgbouncer_spec.lua
          spec/gateway_lifecycle_spec.lua spec/failover_spec.lua spec/portal_store_spec.lua
          spec/download_spec.lua spec/portal_spec.lua
          spec/store_policy_spec.lua spec/policies_spec.lua spec/replay_spec.lua spec/explain_spec.lua
          spec/gateway_explain_spec.lua"
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-3}
# The browser specs (chromium over WebDriver, spec/support/browser.lua) run
# once, in the Lua 5.4 suite: what they prove is the pages a browser gets,
# which no VM or sanitizer changes, and each browser costs seconds.  The
# other suites leave them out (the clock, valgrind and PostgreSQL rounds
# list their specs).
ONCE_ONLY="--exclude-pattern=^browser_harness_spec --exclude-pattern=^portal_browser_spec"
# The specs that read the clock (found by wrapping os.time, os.date,
# core.today and core.epoch_ms over the suite): certificates and
# verification, reminders, the CLI's, the store's and the gateway's
# "today", the demo, mail and webhook times.  (store_faults_spec reads it
# too, for claims and seeds only: its 25 s of crash rounds stay out.)
CLOCK_SPECS="spec/verify_spec.lua spec/verifier_spec.lua spec/store_reminders_spec.lua spec/cli_spec.lua
             spec/gateway_spec.lua spec/date_spec.lua spec/eligible_spec.lua spec/demo_spec.lua spec/mail_spec.lua
             spec/webhook_spec.lua spec/store_spec.lua spec/store_sweep_spec.lua spec/slots_spec.lua spec/bulk_spec.lua"
# Each round: ZONE@START, START a UTC time of day on the real day (the
# run's, UTC) or a whole UTC date and time.  Kiritimati is UTC+14: at 12:00
# UTC its day is already the next one.
# (The minutes before midnight UTC are 2027-12-31T23:59's, with a year's
# end; a round at 23:55 of the run's own day added nothing to it.)
CLOCK_ROUNDS=${CLOCK_ROUNDS:-"UTC@00:05 UTC@2028-02-29T13:30 UTC@2027-12-31T23:59 Pacific/Kiritimati@12:00"}
# The valgrind round: memcheck, an error or a definite leak fails; forked
# children (the catalogue sandbox, which _exits without lua_close) are
# not watched.  The specs: the C core's bindings that start no server and
# import no catalogue file (the sandbox's memory limit stops it under
# valgrind), about a minute in all.
VALGRIND="valgrind -q --child-silent-after-fork=yes --error-exitcode=99 --leak-check=full
          --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect"
VALGRIND_SPECS="spec/catalogue_spec.lua spec/eligible_spec.lua spec/data_spec.lua spec/files_spec.lua
                spec/keys_spec.lua spec/money_spec.lua spec/addons_spec.lua spec/renew_spec.lua
                spec/hostile_input_spec.lua spec/modes_spec.lua spec/migration_spec.lua"
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

# The command under faketime from CLOCK_START (a UTC date and time), or as
# it is without one.  faketime's own form, FAKETIME=+SECONDS from the real
# clock, and not -f '@START': with '@' every process starts again at START
# when it starts (nginx and the verifier example would lag the spec by
# seconds), and FAKETIME_DONT_RESET's shared start cannot reach PostgreSQL,
# which runs as another user.  The faketime of a run that is itself under
# faketime is not preloaded into this one's wrapper, which reads the real
# clock to set its offset.
clocked() {
  if [ -n "${CLOCK_START:-}" ]; then
    forget_dead_faketimes
    env -u LD_PRELOAD faketime "$CLOCK_START" "$@"
  else
    "$@"
  fi
}

# The faketime wrapper names its shared memory and semaphore after its own
# pid and leaves them behind when it is killed; once that pid is reused, a
# new wrapper fails ("sem_open: File exists") and its round with it.  Those
# of processes that are gone are removed first (others' are not ours to
# remove: /dev/shm is sticky).
forget_dead_faketimes() {
  for f in /dev/shm/sem.faketime_sem_* /dev/shm/faketime_shm_*; do
    [ -e "$f" ] || continue
    [ -d "/proc/${f##*_}" ] || rm -f "$f" 2>/dev/null
  done
}

run_suite() {  # label vm cpath [env...]; BUSTED_WRAPPER, BUSTED_FILES, BUSTED_EXCLUDE, CLOCK_START: a wrapper
              # command, spec files, busted's --exclude-pattern options, a fake start
  label=$1 vm=$2 cpath=$3
  shift 3
  echo "== $label"
  before=$(wc -l < "$tally")
  : > "$registry"
  # shellcheck disable=SC2086
  clocked env "$@" LICENSOR_TALLY="$tally" LICENSOR_SERVER_REGISTRY="$registry" LUA_CPATH="$cpath;;" \
    ${BUSTED_WRAPPER:-} "$vm" /usr/bin/busted ${BUSTED_EXCLUDE:-} ${BUSTED_FILES:-} || status=1
  # The last spec: nothing the suite started may outlive it.
  clocked env "$@" LICENSOR_TALLY="$tally" LICENSOR_SERVER_REGISTRY="$registry" LUA_CPATH="$cpath;;" \
    "$vm" /usr/bin/busted --pattern=leftovers spec/support/leftovers.lua || status=1
  if [ "$(wc -l < "$tally")" -lt $((before + 2)) ]; then
    echo "$label: the suite stopped before reporting"
    echo "0 1 0" >> "$tally"
    status=1
  fi
}

run_clock() {  # the clock specs on Lua 5.4 for each of CLOCK_ROUNDS
  if ! command -v faketime > /dev/null; then
    echo "clock rounds: faketime is not installed (make deps installs it)"
    echo "0 1 0" >> "$tally"
    status=1
    return
  fi
  day=$(date -u +%F)
  for round in $CLOCK_ROUNDS; do
    zone=${round%%@*} start=$(echo "${round#*@}" | tr T ' ')
    case $start in *-*) ;; *) start="$day $start" ;; esac
    CLOCK_START="$start:00 UTC" BUSTED_FILES=$CLOCK_SPECS \
      run_suite "Lua 5.4 from $start UTC, TZ=$zone (faketime)" lua5.4 "$PWD/build/lua5.4/?.so" TZ="$zone"
  done
}

run_fuzz() {  # every target in build/fuzz, a pass or a failure each
  echo "== fuzz, $FUZZ_SMOKE_SECONDS s a target"
  for target in build/fuzz/fuzz_*; do
    name=${target#build/fuzz/fuzz_}
    scratch=$(mktemp -d)
    # No preload: libFuzzer's ASan start-up hangs in libfaketime's (a run
    # under faketime), and the targets read no clock.
    if env -u LD_PRELOAD "$target" -max_total_time="$FUZZ_SMOKE_SECONDS" -artifact_prefix="$scratch/" \
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

run_valgrind() {  # build/valgrind's replays, then VALGRIND_SPECS, each error a failure
  if ! command -v valgrind > /dev/null; then
    echo "valgrind round: valgrind is not installed (make deps installs it)"
    echo "0 1 0" >> "$tally"
    status=1
    return
  fi
  echo "== valgrind: the fuzz corpora"
  for target in build/valgrind/replay_*; do
    name=${target#build/valgrind/replay_}
    log=$(mktemp)
    # shellcheck disable=SC2086
    if env -u LD_PRELOAD $VALGRIND "$target" spec/fuzz/corpus/"$name"/* > "$log" 2>&1; then
      echo "valgrind replay_$name: $(tail -1 "$log")"
      echo "1 0 0" >> "$tally"
    else
      tail -40 "$log"
      echo "valgrind replay_$name: FAILED"
      echo "0 1 0" >> "$tally"
      status=1
    fi
    rm -f "$log"
  done
  # The specs start no server, so no leftovers check.  Each valgrind
  # process logs its errors to a file of its own: any non-empty one is a
  # failure of the round, whatever busted says.
  echo "== Lua 5.4 under valgrind"
  logs=$(mktemp -d)
  before=$(wc -l < "$tally")
  # shellcheck disable=SC2086
  clocked env LICENSOR_TALLY="$tally" LUA_CPATH="$PWD/build/lua5.4/?.so;;" \
    env -u LD_PRELOAD $VALGRIND --log-file="$logs/vg.%p" lua5.4 /usr/bin/busted $VALGRIND_SPECS || status=1
  if [ "$(wc -l < "$tally")" -lt $((before + 1)) ]; then
    echo "valgrind: the suite stopped before reporting"
    echo "0 1 0" >> "$tally"
    status=1
  fi
  for log in "$logs"/vg.*; do
    if [ -s "$log" ]; then
      head -60 "$log"
      echo "valgrind: errors in the specs' run ($log above)"
      echo "0 1 0" >> "$tally"
      status=1
    fi
  done
  rm -rf "$logs"
}

for suite in $SUITES; do
  case $suite in
    lua54) run_suite "Lua 5.4" lua5.4 "$PWD/build/lua5.4/?.so" ;;
    luajit) BUSTED_EXCLUDE=$ONCE_ONLY run_suite "LuaJIT 2.1" luajit "$PWD/build/luajit/?.so" ;;
    asan)
      # Under faketime its preload stays, in front of ASan's: libasan
      # first hangs in libfaketime's start-up, and libasan second needs
      # ASan's link-order check off.
      asan_preload=$(gcc -print-file-name=libasan.so) asan_order=""
      case ${LD_PRELOAD:-} in
        *faketime*) asan_preload="$LD_PRELOAD $asan_preload" asan_order="verify_asan_link_order=0:" ;;
      esac
      BUSTED_EXCLUDE=$ONCE_ONLY run_suite "Lua 5.4 + ASan/UBSan" lua5.4 "$PWD/build/asan-lua5.4/?.so" \
        LD_PRELOAD="$asan_preload" ASAN_OPTIONS="${asan_order}detect_leaks=1:abort_on_error=1" \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LICENSOR_SANITIZED=1 ;;
    postgresql)
      BUSTED_WRAPPER="lua5.4 spec/support/with-postgres.lua" BUSTED_FILES=$PG_SPECS \
        run_suite "Lua 5.4 + PostgreSQL" lua5.4 "$PWD/build/lua5.4/?.so" \
        LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/spec/?.lua;;" ;;
    fuzz) run_fuzz ;;
    clock) run_clock ;;
    valgrind) run_valgrind ;;
    *) echo "unknown suite $suite"; status=1 ;;
  esac
done

awk '{ p += $1; f += $2; s += $3 }
     END { line = "licensor: " p " passed, " f " failed"; if (s > 0) line = line ", " s " skipped"; print line }' "$tally"
exit $status
