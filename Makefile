# licensor -- build, test, demo and benchmark.
#
#   make                 build the C module for Lua 5.4 (build/lua5.4/)
#   make LUA=luajit      build it for OpenResty's LuaJIT 2.1 (build/luajit/)
#   make path            print LUA_PATH / LUA_CPATH exports for this checkout
#   make test            install what is missing, lint, run the suite on both
#                        VMs, under ASan+UBSan and the store specs on a throwaway
#                        PostgreSQL, and the specs that read the clock under
#                        faketime at five hours, days and zones; ends with
#                        "licensor: N passed, N failed"
#   make asan            the suite under ASan+UBSan only
#   make demo            the FAQ questions answered on the bundled catalogue
#   make screenshots     doc/portal-licenses.png and doc/portal-license.png, from the
#                        browser spec's walk through the portal
#   make bench           speed against a plain-Lua implementation
#   make fuzz            libFuzzer on every parser of outside input, FUZZ_SECONDS (60) each
#   make install         install for LUA under DESTDIR/PREFIX (/usr/local): every module
#                        of the one list (make -s modules) in share/lua/ABI/ (the
#                        licensor/ there replaced whole, so a moved module leaves no
#                        stale copy), core.so in lib/lua/ABI/licensor/, the verifier
#                        library, header and pkg-config file in lib/ and include/, and
#                        the command: bin/licensor runs Lua 5.4 (make install), and
#                        another VM gets a command of its own (make install LUA=luajit:
#                        bin/licensor-luajit), so installing for a second VM never
#                        replaces the first one's command
#   make modules         the one list of Lua modules, a path under lua/ a line
#   make rock, make rock-install
#                        what `luarocks make rockspec/licensor-scm-1.rockspec` runs
#                        (build.type "make"): core.so built in build/rock-VM/, the
#                        same modules installed into LuaRocks' directories
#   make rockcheck       `luarocks make` into a scratch tree: it leaves nothing in
#                        the checkout outside build/, and the rock holds the one
#                        list, loads it and answers a query

LUA ?= lua5.4
CC ?= cc

ifeq ($(LUA),luajit)
LUA_INC ?= /usr/include/luajit-2.1
else
LUA_INC ?= /usr/include/$(LUA)
endif

BUILD := build/$(LUA)
CORE := $(BUILD)/licensor/core.so
BIN := $(BUILD)/bin/licensor
ASAN_BUILD := build/asan-lua5.4
ASAN_CORE := $(ASAN_BUILD)/licensor/core.so

# The offline verifier: its own library for vendors' products, built into
# licensor.core too.
VERIFY_SOURCES := csrc/lsrv.c csrc/lsrv_machine.c
CORE_SOURCES := csrc/date.c csrc/catalogue.c csrc/rules.c csrc/pricing.c csrc/renewal.c \
                csrc/fraud.c csrc/keys.c csrc/names.c csrc/data.c csrc/store.c csrc/pg.c csrc/process.c csrc/ffi.c \
                $(VERIFY_SOURCES)
BINDING_SOURCES := $(wildcard csrc/l_*.c) csrc/licensor.c
SOURCES := $(CORE_SOURCES) $(BINDING_SOURCES)
HEADERS := $(wildcard csrc/*.h)

WARNINGS := -Wall -Wextra -Werror -Wpedantic -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wcast-qual -Wpointer-arith -Wwrite-strings \
            -Wundef -Wformat=2 -Wvla -Wconversion -Wnull-dereference \
            -Wdouble-promotion -Wold-style-definition
CFLAGS ?= -O2 -g
PQ_INC := -isystem /usr/include/postgresql
ALL_CFLAGS := -std=c99 -fPIC -fvisibility=hidden -DLSRV_INTERNAL $(WARNINGS) $(CFLAGS) -isystem $(LUA_INC) $(PQ_INC)
LDFLAGS_SO := -shared
LIBS := -lsqlite3 -lsodium -lpq

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=all

LUA_PATH_HERE := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua
# OpenResty's LuaJIT (luajit2) goes in first, so that nginx's Lua module
# links against it; Debian's `luajit` package would conflict with it.
APT_FIRST := libluajit2-5.1-2 libluajit2-5.1-dev luajit2
APT_PACKAGES := lua5.4 liblua5.4-dev lua-busted lua-cjson lua-check luarocks \
                libsqlite3-dev sqlite3 libpq-dev postgresql libsodium-dev pkg-config lua-socket lua-sql-sqlite3 cppcheck gcc make coreutils \
                procps curl nginx libnginx-mod-http-lua wrk clang libclang-rt-14-dev \
                lua-sec python3-aiosmtpd openssl faketime tzdata valgrind pgbouncer \
                chromium chromium-driver
# The browser specs' axe-core comes from npm (spec/browser/package-lock.json):
# Debian's nodejs and npm are installed only when there is no npm at all, so
# a Node installed some other way is left as it is.
APT_NODE := nodejs npm

PREFIX ?= /usr/local
ifeq ($(LUA),luajit)
LUA_ABI := 5.1
else
LUA_ABI := $(subst lua,,$(LUA))
endif
LUADIR := $(PREFIX)/share/lua/$(LUA_ABI)
CMODDIR := $(PREFIX)/lib/lua/$(LUA_ABI)
# The installed command: `licensor` is Lua 5.4's; any other VM's is named
# after it (licensor-luajit), so that one VM's install never replaces
# another's #! line.
ifeq ($(LUA),lua5.4)
COMMAND := licensor
else
COMMAND := licensor-$(LUA)
endif

# The one list of Lua modules: every .lua file under lua/licensor, as its
# path under lua/ (licensor/mail/address.lua).  `make install` and the
# rock (`make rock-install`, which the rockspec runs) install exactly
# these, and spec/install_spec.lua and rockcheck fail when an installed
# tree holds another set.  Nothing else lists modules: a new file is
# installed once it exists.
LUA_MODULES := $(sort $(patsubst lua/%,%,$(shell find lua/licensor -name '*.lua')))

.PHONY: all path test check deps lint cppcheck busted asan rockcheck demo bench clean install gateway \
        modules rock rock-install fuzz fuzz-build valgrind-build verify-lib browser-deps screenshots

all: $(CORE) $(BIN)

# The command, with this VM in its #! line.
$(BIN): lua/bin/licensor
	@mkdir -p $(dir $@)
	sed '1s|.*|#!/usr/bin/env $(LUA)|' $< > $@
	chmod +x $@

$(CORE): $(SOURCES) $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_SO) -o $@ $(SOURCES) $(LIBS)

# A test-only helper module (fork/wait/_exit) next to each core build.
$(BUILD)/forkhelper.so: spec/support/forkhelper.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -fPIC -Wall -Wextra -Werror $(CFLAGS) -isystem $(LUA_INC) $(LDFLAGS_SO) -o $@ $<

$(ASAN_BUILD)/forkhelper.so: spec/support/forkhelper.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -fPIC -Wall -Wextra -Werror $(SAN_FLAGS) -isystem /usr/include/lua5.4 \
	  $(LDFLAGS_SO) -o $@ $<

$(ASAN_CORE): $(SOURCES) $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -fPIC -fvisibility=hidden -DLSRV_INTERNAL $(WARNINGS) $(SAN_FLAGS) \
	  -isystem /usr/include/lua5.4 $(PQ_INC) $(LDFLAGS_SO) -o $@ $(SOURCES) $(LIBS)

path:
	@echo "export LUA_PATH='$(LUA_PATH_HERE);;'"
	@echo "export LUA_CPATH='$(CURDIR)/$(BUILD)/?.so;;'"
	@echo "export PATH='$(CURDIR)/$(BUILD)/bin':\"\$$PATH\""

# Installs only what is missing, so a provisioned machine never calls apt.
deps:
	@SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; updated=""; \
	for group in "$(APT_FIRST)" "$(APT_PACKAGES)"; do \
	  missing=""; for p in $$group; do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    [ -n "$$updated" ] || { $$SUDO apt-get update -qq && updated=1; } || exit 1; \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing \
	      >/dev/null || exit 1; \
	  fi; \
	done; \
	if ! command -v npm > /dev/null; then \
	  echo "installing: $(APT_NODE)"; \
	  [ -n "$$updated" ] || $$SUDO apt-get update -qq || exit 1; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_NODE) \
	    >/dev/null || exit 1; \
	fi

lint:
	luacheck -q lua spec

cppcheck:
	cppcheck --quiet --error-exitcode=1 --std=c99 --enable=warning,style,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -I csrc $(SOURCES)

# libFuzzer targets (spec/fuzz/), one per parser that takes outside input,
# each with the core files it needs; corpora in spec/fuzz/corpus/TARGET.
FUZZ_TARGETS := date key name data request certificate
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build/fuzz
FUZZ_FLAGS := -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -I csrc -isystem /usr/include/lua5.4 $(PQ_INC)
FUZZ_DEPS_date := csrc/date.c
FUZZ_DEPS_key := csrc/keys.c
FUZZ_DEPS_name := csrc/names.c
FUZZ_DEPS_data := csrc/data.c
FUZZ_DEPS_request := $(SOURCES)
FUZZ_DEPS_certificate := $(VERIFY_SOURCES) csrc/date.c

.SECONDEXPANSION:
$(FUZZ_BUILD)/fuzz_%: spec/fuzz/fuzz_%.c $$(FUZZ_DEPS_$$*) $(HEADERS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -DLSRV_INTERNAL -o $@ $< $(FUZZ_DEPS_$*) -llua5.4 -lsqlite3 -lsodium -lpq -lm

fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(FUZZ_BUILD)/fuzz_$(t))

# The valgrind round of make test (run-suites.sh "valgrind"): each fuzz
# target built without libFuzzer or sanitizers, replaying its corpus
# (spec/support/fuzz_replay.c), so valgrind sees what ASan cannot.
VALGRIND_BUILD := build/valgrind
$(VALGRIND_BUILD)/replay_%: spec/fuzz/fuzz_%.c spec/support/fuzz_replay.c $$(FUZZ_DEPS_$$*) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -g -O1 -DLSRV_INTERNAL -I csrc -isystem /usr/include/lua5.4 $(PQ_INC) -o $@ $< \
	  spec/support/fuzz_replay.c $(FUZZ_DEPS_$*) -llua5.4 -lsqlite3 -lsodium -lpq -lm

valgrind-build: $(foreach t,$(FUZZ_TARGETS),$(VALGRIND_BUILD)/replay_$(t))

# Each target from the corpus kept in the repo; what it learns goes to
# build/fuzz/corpus-TARGET, crashes to build/fuzz/ (copy a crash into the
# repo corpus once fixed, so it stays found).
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus-$$t; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus-$$t spec/fuzz/corpus/$$t 2>&1 | \
	    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY|Test unit written' \
	    || true; \
	  [ -z "$$(ls $(FUZZ_BUILD)/crash-* $(FUZZ_BUILD)/leak-* $(FUZZ_BUILD)/timeout-* 2>/dev/null)" ] || exit 1; \
	done
	@$(MAKE) --no-print-directory LUA=lua5.4 all && echo "== licensor's arguments, 100,000 vectors per command" && LICENSOR_FUZZ_ARGV=100000 LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH='$(CURDIR)/build/lua5.4/?.so;;' lua5.4 /usr/bin/busted -o utfTerminal spec/cli_fuzz_spec.lua

# axe-core for the browser specs, as spec/browser/package-lock.json pins
# it: `npm ci` when node_modules is missing or older than the lockfile.
BROWSER_MODULES := spec/browser/node_modules/.package-lock.json
$(BROWSER_MODULES): spec/browser/package-lock.json spec/browser/package.json
	npm ci --prefix spec/browser --no-audit --no-fund --loglevel=error
	@touch $@

browser-deps: $(BROWSER_MODULES)

test: deps
	@$(MAKE) --no-print-directory browser-deps
	@$(MAKE) --no-print-directory fuzz-build valgrind-build
	@$(MAKE) --no-print-directory LUA=lua5.4 all build/lua5.4/forkhelper.so
	@$(MAKE) --no-print-directory LUA=luajit all build/luajit/forkhelper.so
	@$(MAKE) --no-print-directory $(ASAN_CORE) $(ASAN_BUILD)/forkhelper.so
	@$(MAKE) --no-print-directory lint cppcheck rockcheck
	@sh spec/support/run-suites.sh

# The portal's pictures in doc/ (the README shows them): the browser spec's
# walk through the FAQ's example, the licenses page and the license
# dialog each at a desktop and a phone width.
screenshots: deps browser-deps
	@$(MAKE) --no-print-directory LUA=lua5.4 all
	@$(MAKE) --no-print-directory LUA=luajit all
	@LICENSOR_SCREENSHOTS='$(CURDIR)/doc' LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' \
	  LUA_CPATH='$(CURDIR)/build/lua5.4/?.so;;' lua5.4 /usr/bin/busted -o utfTerminal spec/portal_browser_spec.lua

demo: deps all
	@LUA_PATH='$(LUA_PATH_HERE);;' LUA_CPATH='$(CURDIR)/$(BUILD)/?.so;;' \
	  $(LUA) -e 'require("licensor.demo").run(nil, nil, "$(CURDIR)/build/demo.db")'

bench: deps
	@$(MAKE) --no-print-directory LUA=lua5.4 all
	@$(MAKE) --no-print-directory LUA=luajit all
	@for bench in eligible store; do for vm in lua5.4 luajit; do \
	  LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/$$vm/?.so;;" \
	    $$vm spec/bench/$$bench.lua || exit 1; \
	done; done
	@for vm in lua5.4 luajit; do LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' \
	  LUA_CPATH="$(CURDIR)/build/$$vm/?.so;;" $$vm spec/bench/policy.lua || exit 1; done
	@LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" \
	  lua5.4 spec/bench/gateway.lua
	@LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" \
	  lua5.4 spec/bench/download.lua
	@LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" \
	  lua5.4 spec/bench/portal.lua
	@for vm in lua5.4 luajit; do \
	  LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/$$vm/?.so;;" \
	    $$vm spec/bench/certificates.lua build/bench.cert build/bench.pub || exit 1; done
	@LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" \
	  lua5.4 spec/bench/postgresql.lua
	@LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" \
	  lua5.4 spec/bench/ha.lua
	@for bench in list bulk delivery; do LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' \
	  LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" lua5.4 spec/bench/$$bench.lua || exit 1; done
	@for vm in lua5.4 luajit; do LUA_PATH='$(LUA_PATH_HERE);$(CURDIR)/spec/?.lua;;' LUA_CPATH="$(CURDIR)/build/$$vm/?.so;;" $$vm spec/bench/replay.lua || exit 1; done
	@$(CC) -std=c99 -O2 -I csrc -o build/bench-verify spec/bench/verify.c $(VERIFY_SOURCES) csrc/date.c -lsodium
	@build/bench-verify build/bench.cert build/bench.pub

rockcheck:
	@sh spec/support/rockcheck.sh

modules:
	@printf '%s\n' $(LUA_MODULES)

# Every module of the list into $(DESTDIR)$(LUADIR), the licensor/ there
# replaced whole (a moved module leaves no stale copy to shadow it), and
# the core.so named by $(1) into $(DESTDIR)$(CMODDIR)/licensor.
define install_modules
	rm -rf $(DESTDIR)$(LUADIR)/licensor
	@for m in $(LUA_MODULES); do install -D -m 644 lua/$$m $(DESTDIR)$(LUADIR)/$$m || exit 1; done
	@echo "installed $(words $(LUA_MODULES)) modules in $(DESTDIR)$(LUADIR)"
	install -D -m 755 $(1) $(DESTDIR)$(CMODDIR)/licensor/core.so
endef

# The rock: LuaRocks (build.type "make") runs `make rock` with its
# CFLAGS, the VM's headers (ROCK_LUA_INC) and the libraries' directories
# (ROCK_CPPFLAGS, ROCK_LDFLAGS), then `make rock-install` with its LUADIR
# and LIBDIR; the command is LuaRocks' own wrapper (build.install.bin).
# Built in build/rock-VM, so LuaRocks leaves nothing in the source
# directories; no -Werror, whatever compiler the user has.
ROCK_LUA_INC ?= /usr/include/lua5.4
ROCK_CPPFLAGS ?= $(PQ_INC)
ROCK_BUILD := build/rock-$(notdir $(ROCK_LUA_INC))
ROCK_CORE := $(ROCK_BUILD)/licensor/core.so
$(ROCK_CORE): $(SOURCES) $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -fPIC -fvisibility=hidden -DLSRV_INTERNAL $(CFLAGS) -isystem $(ROCK_LUA_INC) \
	  $(ROCK_CPPFLAGS) $(LDFLAGS_SO) -o $@ $(SOURCES) $(ROCK_LDFLAGS) $(LIBS)

rock: $(ROCK_CORE)

rock-install: CMODDIR = $(LIBDIR)
rock-install: $(ROCK_CORE)
	$(call install_modules,$(ROCK_CORE))

# The suite on Lua 5.4 with the module built with ASan + UBSan only
# (`make test` runs it too, after the plain suites).
asan: deps
	@$(MAKE) --no-print-directory LUA=lua5.4 all
	@$(MAKE) --no-print-directory LUA=luajit all
	@$(MAKE) --no-print-directory $(ASAN_CORE) $(ASAN_BUILD)/forkhelper.so
	@SUITES=asan sh spec/support/run-suites.sh

# The gateway on the demo database (built by `make demo` if missing), with
# an admin token in build/gateway-token.  Ctrl-C stops it.
GATEWAY_LISTEN ?= 127.0.0.1:8080
gateway: deps
	@$(MAKE) --no-print-directory LUA=lua5.4 all
	@$(MAKE) --no-print-directory LUA=luajit all
	@[ -f build/demo.db ] || $(MAKE) --no-print-directory demo >/dev/null
	@[ -s build/gateway-token ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > build/gateway-token
	@echo "admin token: $$(cat build/gateway-token)  (Authorization: Bearer ...)"
	@LUA_PATH='$(LUA_PATH_HERE);;' LUA_CPATH='$(CURDIR)/build/lua5.4/?.so;;' \
	  lua5.4 lua/bin/licensor --db build/demo.db gateway --listen $(GATEWAY_LISTEN) \
	  --admin-token-file build/gateway-token

# The verifier library: shared and static, with its header and pkg-config
# file (installed by `make install`), and the SONAME link next to the
# shared one, so that a program linked against build/verify runs.
VERIFY_BUILD := build/verify
VERIFY_VERSION := 2.1.0
VERIFY_SONAME := liblicensor-verify.so.$(firstword $(subst ., ,$(VERIFY_VERSION)))
$(VERIFY_BUILD)/liblicensor-verify.so: $(VERIFY_SOURCES) csrc/date.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -fPIC -fvisibility=hidden $(WARNINGS) $(CFLAGS) -shared \
	  -Wl,-soname,$(VERIFY_SONAME) -o $@ $(VERIFY_SOURCES) csrc/date.c -lsodium

$(VERIFY_BUILD)/$(VERIFY_SONAME): $(VERIFY_BUILD)/liblicensor-verify.so
	ln -sf liblicensor-verify.so $@

$(VERIFY_BUILD)/liblicensor-verify.a: $(VERIFY_SOURCES) csrc/date.c $(HEADERS) Makefile
	@mkdir -p $(VERIFY_BUILD)/obj
	for f in $(VERIFY_SOURCES) csrc/date.c; do \
	  $(CC) -std=c99 -fPIC -fvisibility=hidden $(WARNINGS) $(CFLAGS) -c $$f \
	    -o $(VERIFY_BUILD)/obj/$$(basename $$f .c).o || exit 1; done
	rm -f $@ && ar rcs $@ $(VERIFY_BUILD)/obj/*.o

$(VERIFY_BUILD)/licensor-verify.pc: Makefile
	@mkdir -p $(dir $@)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: licensor-verify\nDescription: offline verifier of licensor certificates\nVersion: %s\nRequires.private: libsodium\nCflags: -I$${includedir}\nLibs: -L$${libdir} -llicensor-verify\nLibs.private: -lsodium\n' \
	  '$(PREFIX)' '$(VERIFY_VERSION)' > $@

verify-lib: $(VERIFY_BUILD)/liblicensor-verify.so $(VERIFY_BUILD)/$(VERIFY_SONAME) $(VERIFY_BUILD)/liblicensor-verify.a \
            $(VERIFY_BUILD)/licensor-verify.pc

install: all verify-lib
	$(call install_modules,$(CORE))
	install -D -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/$(COMMAND)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 csrc/licensor_verify.h $(DESTDIR)$(PREFIX)/include/licensor_verify.h
	install -m 755 $(VERIFY_BUILD)/liblicensor-verify.so \
	  $(DESTDIR)$(PREFIX)/lib/liblicensor-verify.so.$(VERIFY_VERSION)
	ln -sf liblicensor-verify.so.$(VERIFY_VERSION) $(DESTDIR)$(PREFIX)/lib/$(VERIFY_SONAME)
	ln -sf $(VERIFY_SONAME) $(DESTDIR)$(PREFIX)/lib/liblicensor-verify.so
	install -m 644 $(VERIFY_BUILD)/liblicensor-verify.a $(DESTDIR)$(PREFIX)/lib/liblicensor-verify.a
	install -m 644 $(VERIFY_BUILD)/licensor-verify.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/licensor-verify.pc

clean:
	rm -rf build
