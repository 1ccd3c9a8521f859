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

-- The C core links the system SQLite, libsodium and libpq.
external_dependencies = {
  SQLITE = { header = "sqlite3.h", library = "sqlite3" },
  SODIUM = { header = "sodium.h", library = "sodium" },
  PQ = { header = "postgresql/libpq-fe.h", library = "pq" },
}

-- The Makefile builds and installs the rock (`make rock`, `make
-- rock-install`): its list of modules (LUA_MODULES, every .lua under
-- lua/licensor) and of C sources are the only ones, so nothing here names
-- a module; licensor.core is built in build/rock-VM/, never in the
-- source directories.  GNU make and a C99 compiler are needed.
build = {
  type = "make",
  build_target = "rock",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    ROCK_LUA_INC = "$(LUA_INCDIR)",
    ROCK_CPPFLAGS = "-I$(SQLITE_INCDIR) -I$(SODIUM_INCDIR) -I$(PQ_INCDIR)/postgresql",
    ROCK_LDFLAGS = "-L$(SQLITE_LIBDIR) -L$(SODIUM_LIBDIR) -L$(PQ_LIBDIR)",
  },
  install_target = "rock-install",
  install_variables = {
    ROCK_LUA_INC = "$(LUA_INCDIR)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
  },
  install = {
    bin = { licensor = "lua/bin/licensor" },
  },
}
