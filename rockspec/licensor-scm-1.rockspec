rockspec_format = "3.0"
package = "licensor"
version = "scm-1"

source = {
  url = "git+https://example.invalid/licensor.git",
}

description = {
  summary = "License policy engine for on-premises software vendors",
  detailed = [[
A C core for Lua 5.4 and LuaJIT 2.1 (OpenResty) that answers which build a
license may install, what its add-ons do when M&S lapses, what an upgrade
costs, whether a rollback is allowed and whether a key on several servers is
migrating or fraud.  Catalogues and policies are plain Lua.
]],
  license = "MIT",
  labels = { "licensing", "openresty" },
}

-- The store and the gateway also need lua-cjson at run time.  It is not
-- listed here so that `luarocks make` installs offline on systems where the
-- distribution provides it (Debian: lua-cjson, OpenResty: bundled); elsewhere
-- run `luarocks install lua-cjson`.  licensor.store says so if it is missing.
dependencies = {
  "lua >= 5.1, < 5.5",
}

-- The store links the system SQLite; declared here so that the module's
-- build line stays the same when it lands.
external_dependencies = {
  SQLITE = { header = "sqlite3.h", library = "sqlite3" },
  SODIUM = { header = "sodium.h", library = "sodium" },
  PQ = { header = "postgresql/libpq-fe.h", library = "pq" },
}

build = {
  type = "builtin",
  install = {
    bin = { licensor = "lua/bin/licensor" },
  },
  -- BEGIN modules: written by `make rockspec` from the Makefile's LUA_MODULES
  -- and SOURCES; edit those (or add the file), not these lines.
  modules = {
    ["licensor"] = "lua/licensor/init.lua",
    ["licensor.actions"] = "lua/licensor/actions.lua",
    ["licensor.catalogues.smartertools"] = "lua/licensor/catalogues/smartertools.lua",
    ["licensor.certificate"] = "lua/licensor/certificate.lua",
    ["licensor.cli"] = "lua/licensor/cli.lua",
    ["licensor.cli.args"] = "lua/licensor/cli/args.lua",
    ["licensor.constants"] = "lua/licensor/constants.lua",
    ["licensor.csv"] = "lua/licensor/csv.lua",
    ["licensor.delivery"] = "lua/licensor/delivery.lua",
    ["licensor.demo"] = "lua/licensor/demo.lua",
    ["licensor.failure"] = "lua/licensor/failure.lua",
    ["licensor.ffi"] = "lua/licensor/ffi.lua",
    ["licensor.files"] = "lua/licensor/files.lua",
    ["licensor.gateway"] = "lua/licensor/gateway/init.lua",
    ["licensor.gateway.limit"] = "lua/licensor/gateway/limit.lua",
    ["licensor.gateway.metrics"] = "lua/licensor/gateway/metrics.lua",
    ["licensor.gateway.remote"] = "lua/licensor/gateway/remote.lua",
    ["licensor.gateway.request"] = "lua/licensor/gateway/request.lua",
    ["licensor.gateway.runner"] = "lua/licensor/gateway/runner.lua",
    ["licensor.gateway.thread"] = "lua/licensor/gateway/thread.lua",
    ["licensor.gateway.work"] = "lua/licensor/gateway/work.lua",
    ["licensor.loader"] = "lua/licensor/loader.lua",
    ["licensor.mail"] = "lua/licensor/mail/init.lua",
    ["licensor.mail.address"] = "lua/licensor/mail/address.lua",
    ["licensor.mail.bundled"] = "lua/licensor/mail/bundled.lua",
    ["licensor.mail.smtp"] = "lua/licensor/mail/smtp.lua",
    ["licensor.mail.template"] = "lua/licensor/mail/template.lua",
    ["licensor.money"] = "lua/licensor/money.lua",
    ["licensor.pretty"] = "lua/licensor/pretty.lua",
    ["licensor.receiver"] = "lua/licensor/receiver.lua",
    ["licensor.repl"] = "lua/licensor/repl.lua",
    ["licensor.schema"] = "lua/licensor/schema.lua",
    ["licensor.store"] = "lua/licensor/store/init.lua",
    ["licensor.store.bulk"] = "lua/licensor/store/bulk.lua",
    ["licensor.store.certificates"] = "lua/licensor/store/certificates.lua",
    ["licensor.store.common"] = "lua/licensor/store/common.lua",
    ["licensor.store.copy"] = "lua/licensor/store/copy.lua",
    ["licensor.store.installations"] = "lua/licensor/store/installations.lua",
    ["licensor.store.licenses"] = "lua/licensor/store/licenses.lua",
    ["licensor.store.lists"] = "lua/licensor/store/lists.lua",
    ["licensor.store.outbox"] = "lua/licensor/store/outbox.lua",
    ["licensor.store.reminders"] = "lua/licensor/store/reminders.lua",
    ["licensor.store.sql"] = "lua/licensor/store/sql.lua",
    ["licensor.store.sweep"] = "lua/licensor/store/sweep.lua",
    ["licensor.tabulate"] = "lua/licensor/tabulate.lua",
    ["licensor.tls"] = "lua/licensor/tls.lua",
    ["licensor.webhook"] = "lua/licensor/webhook.lua",
    ["licensor.core"] = {
      sources = {
        "csrc/date.c",
        "csrc/catalogue.c",
        "csrc/rules.c",
        "csrc/pricing.c",
        "csrc/renewal.c",
        "csrc/fraud.c",
        "csrc/keys.c",
        "csrc/names.c",
        "csrc/data.c",
        "csrc/store.c",
        "csrc/pg.c",
        "csrc/process.c",
        "csrc/ffi.c",
        "csrc/lsrv.c",
        "csrc/lsrv_machine.c",
        "csrc/l_catalogue.c",
        "csrc/l_certificate.c",
        "csrc/l_common.c",
        "csrc/l_compile.c",
        "csrc/l_crypto.c",
        "csrc/l_data.c",
        "csrc/l_ffi.c",
        "csrc/l_files.c",
        "csrc/l_fraud.c",
        "csrc/l_keys.c",
        "csrc/l_license.c",
        "csrc/l_pg.c",
        "csrc/l_process.c",
        "csrc/l_sandbox.c",
        "csrc/l_store.c",
        "csrc/l_time.c",
        "csrc/licensor.c",
      },
      incdirs = { "csrc", "$(SQLITE_INCDIR)", "$(SODIUM_INCDIR)", "$(PQ_INCDIR)/postgresql" },
      libdirs = { "$(SQLITE_LIBDIR)", "$(SODIUM_LIBDIR)", "$(PQ_LIBDIR)" },
      libraries = { "sqlite3", "sodium", "pq" },
      defines = { "LSRV_INTERNAL" },
    },
  },
  -- END modules
}
