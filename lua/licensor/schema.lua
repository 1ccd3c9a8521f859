-- licensor.schema -- the store's schema as forward migrations, SQLite's
-- and PostgreSQL's, numbered alike: version N means the same tables on
-- both.  SQLite keeps the number in PRAGMA user_version, PostgreSQL in
-- the table licensor_schema; opening a store applies the missing ones in
-- one transaction.  Never edit a published migration: append a new one,
-- to both lists.
local _M = {}

-- Tables read by key are WITHOUT ROWID and clustered on the key, so a
-- workflow touches one B-tree page per row it writes (activations are
-- bound by the pages a commit appends to the WAL).
_M.migrations = {
  -- 1: the first schema.
  [[
CREATE TABLE catalogues (
  version  INTEGER PRIMARY KEY,
  imported TEXT NOT NULL,            -- day of the import
  source   TEXT NOT NULL,            -- the catalogue table as "return {...}"
  policy   TEXT NOT NULL             -- the policy in force, JSON
);

CREATE TABLE licenses (
  key              TEXT PRIMARY KEY,
  product          TEXT NOT NULL,
  edition          TEXT,
  level,                             -- a whole number or 'unlimited'
  kind             TEXT NOT NULL CHECK (kind IN ('perpetual', 'lease', 'trial')),
  start            TEXT NOT NULL,
  ms_expires       TEXT,
  ms_start         TEXT,
  lease_ended      TEXT,
  trial_days       INTEGER,
  version_lock     INTEGER,
  failover         INTEGER NOT NULL DEFAULT 0,
  disabled         TEXT,
  disabled_reason  TEXT,
  owner            TEXT,
  transfer_consent TEXT,
  catalogue        INTEGER REFERENCES catalogues (version)
) WITHOUT ROWID;

-- Add-ons owned, with the last day paid.
CREATE TABLE addons (
  key          TEXT NOT NULL REFERENCES licenses (key),
  addon        TEXT NOT NULL,
  paid_through TEXT NOT NULL,
  PRIMARY KEY (key, addon)
) WITHOUT ROWID;

-- Every M&S and add-on term bought: issue, renewals, add-on purchases.
CREATE TABLE terms (
  id     INTEGER PRIMARY KEY,
  key    TEXT NOT NULL REFERENCES licenses (key),
  item   TEXT NOT NULL,              -- 'ms' or an add-on id
  starts TEXT NOT NULL,
  ends   TEXT NOT NULL,
  bought TEXT NOT NULL
);
CREATE INDEX terms_by_key ON terms (key);

CREATE TABLE installations (
  key         TEXT NOT NULL REFERENCES licenses (key),
  seq         INTEGER NOT NULL,      -- 1, 2, ... per key, in activation order
  server      TEXT NOT NULL,
  build       INTEGER NOT NULL,
  first_seen  TEXT NOT NULL,
  last_seen   TEXT NOT NULL,
  deactivated TEXT,
  PRIMARY KEY (key, seq)
) WITHOUT ROWID;

CREATE TABLE fraud_cases (
  id         INTEGER PRIMARY KEY,
  key        TEXT NOT NULL REFERENCES licenses (key),
  since      TEXT NOT NULL,          -- first day of the excess run (R10's T)
  opened     TEXT NOT NULL,
  first_step TEXT,                   -- R11 steps, the day each was taken
  phoned     TEXT,
  disabled   TEXT,
  closed     TEXT
);
CREATE INDEX fraud_cases_open ON fraud_cases (key) WHERE closed IS NULL;

CREATE TABLE outbox (
  id         INTEGER PRIMARY KEY,
  key        TEXT NOT NULL,
  case_id    INTEGER REFERENCES fraud_cases (id),
  action     TEXT NOT NULL,
  on_day     TEXT NOT NULL,
  delivered  TEXT                    -- UTC time the handler confirmed it
);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered IS NULL;

CREATE TABLE events (
  key    TEXT NOT NULL,
  seq    INTEGER NOT NULL,           -- 1, 2, ... per key, oldest first
  at     TEXT NOT NULL,
  kind   TEXT NOT NULL,
  detail TEXT NOT NULL,              -- JSON
  PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TRIGGER events_are_not_updated BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_are_not_deleted BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
]],

  -- 2: why a fraud case closed ("excess_ended" cases resume when excess
  -- returns within the policy's case_cooldown_days; "enabled" ones do not).
  [[
ALTER TABLE fraud_cases ADD COLUMN closed_reason TEXT;
UPDATE fraud_cases SET closed_reason = 'excess_ended' WHERE closed IS NOT NULL;
CREATE INDEX fraud_cases_closed ON fraud_cases (key, closed) WHERE closed IS NOT NULL;
]],

  -- 3: answers of admin requests sent with an Idempotency-Key.
  [[
CREATE TABLE idempotency (
  id          TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,         -- what was asked (route and body hash)
  answer      TEXT NOT NULL,         -- what was answered the first time
  at          TEXT NOT NULL
) WITHOUT ROWID;
]],

  -- 4: the machine fingerprint each installation activated with.
  [[
ALTER TABLE installations ADD COLUMN fingerprint TEXT;
]],

  -- 5: when each event was recorded (UTC time), next to the day it is for.
  [[
ALTER TABLE events ADD COLUMN recorded TEXT;
]],

  -- 6: the indexes `licensor list` filters by.
  [[
CREATE INDEX licenses_owner ON licenses (owner);
CREATE INDEX licenses_product ON licenses (product, edition);
CREATE INDEX licenses_ms_expires ON licenses (ms_expires) WHERE kind = 'perpetual';
CREATE INDEX licenses_disabled ON licenses (disabled) WHERE disabled IS NOT NULL;
]],

  -- 7: outbox rows claimed by a deliverer until a time (ms since the
  -- epoch), so that deliverers on several hosts never send one row twice.
  [[
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
]],

  -- 8: reminders, each taken once per term (the event day is the term's
  -- end); outbox rows say the day they refer to and carry details (JSON),
  -- and count failed deliveries: when to try again (ms since the epoch),
  -- the last error, and when the row was dead-lettered.
  [[
CREATE TABLE reminders (
  key       TEXT NOT NULL,
  item      TEXT NOT NULL,             -- 'ms', 'trial', 'lease' or an add-on id
  event_day TEXT NOT NULL,             -- the last day of the term
  days      INTEGER NOT NULL,          -- before the event (negative: after)
  taken     TEXT NOT NULL,             -- the sweep's day
  PRIMARY KEY (key, item, event_day, days)
) WITHOUT ROWID;
ALTER TABLE outbox ADD COLUMN refers_to TEXT;
ALTER TABLE outbox ADD COLUMN detail TEXT;
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt INTEGER;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN dead TEXT;
CREATE INDEX addons_paid_through ON addons (paid_through);
CREATE INDEX licenses_lease_ended ON licenses (lease_ended) WHERE kind = 'lease';
CREATE INDEX licenses_trials ON licenses (start) WHERE kind = 'trial';
]],
  -- 9: the owner's email address (customer actions go there by mail).
  "ALTER TABLE licenses ADD COLUMN email TEXT;",
  -- 10: a certificate keeps its slot: the last day the installation's
  -- newest certificate verifies (held_until), that certificate's
  -- signature and issue time (unix seconds; a revocation covers it), why
  -- the slot was freed early ('returned', 'forced'), and the days the
  -- recorded fingerprint drifted (comma-separated, newest last).
  [[
ALTER TABLE installations ADD COLUMN held_until TEXT;
ALTER TABLE installations ADD COLUMN signature TEXT;
ALTER TABLE installations ADD COLUMN issued INTEGER;
ALTER TABLE installations ADD COLUMN freed TEXT;
ALTER TABLE installations ADD COLUMN drifts TEXT;
]],
  -- 11: the customer portal (store/portal.lua).  Sign-in links (the id; the
  -- link itself is an HMAC over it that only the deliverer's --link-secret
  -- makes) and sessions (only the token's sha256 is kept), times in unix
  -- seconds, addresses trimmed and lowercased; licenses found by
  -- lower(email), as the portal asks.
  [[
CREATE TABLE portal_signins (
  id         TEXT PRIMARY KEY,
  email      TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX portal_signins_by_email ON portal_signins (email, created_at);
CREATE INDEX portal_signins_by_expiry ON portal_signins (expires_at);
CREATE TABLE portal_sessions (
  id_hash    TEXT PRIMARY KEY,
  email      TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  seen_at    INTEGER NOT NULL,
  ended_at   INTEGER
) WITHOUT ROWID;
CREATE INDEX portal_sessions_by_age ON portal_sessions (created_at);
CREATE INDEX licenses_email ON licenses (lower(email));
]],
  -- 12: layered policies.  A license's own override of policy values
  -- (JSON of the keys it sets; NULL: none) and its tags (space-separated
  -- words; NULL: none), found by the sweep through the partial index; a
  -- case's outbox rows by action (a ladder hook's step is taken once);
  -- policy files (Lua text, never run by the store before it imported
  -- and compiled them: store/policies.lua), the newest the active one.
  [[
ALTER TABLE licenses ADD COLUMN policy TEXT;
ALTER TABLE licenses ADD COLUMN tags TEXT;
CREATE INDEX licenses_with_policy ON licenses (key) WHERE policy IS NOT NULL;
CREATE INDEX outbox_by_case ON outbox (case_id, action) WHERE case_id IS NOT NULL;
CREATE TABLE policies (
  version  INTEGER PRIMARY KEY,
  imported TEXT NOT NULL,            -- day of the import
  source   TEXT NOT NULL,            -- the policy file's text, as imported
  name     TEXT                      -- its name = "...", shown in the history
);
]],
}

-- PostgreSQL stores start at version 6, in one script (the first five
-- migrations are folded into it), and follow SQLite's numbering after.
-- Dates stay ISO text, as in SQLite, so that both compare them alike;
-- `level` is text ('5' or 'unlimited': the store reads it back as SQLite
-- gives it).
local PG_VERSION_6 = [[
CREATE TABLE catalogues (
  version  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  imported TEXT NOT NULL,
  source   TEXT NOT NULL,
  policy   TEXT NOT NULL
);

CREATE TABLE licenses (
  key              TEXT PRIMARY KEY,
  product          TEXT NOT NULL,
  edition          TEXT,
  level            TEXT,
  kind             TEXT NOT NULL CHECK (kind IN ('perpetual', 'lease', 'trial')),
  start            TEXT NOT NULL,
  ms_expires       TEXT,
  ms_start         TEXT,
  lease_ended      TEXT,
  trial_days       INTEGER,
  version_lock     INTEGER,
  failover         INTEGER NOT NULL DEFAULT 0,
  disabled         TEXT,
  disabled_reason  TEXT,
  owner            TEXT,
  transfer_consent TEXT,
  catalogue        BIGINT REFERENCES catalogues (version)
);

CREATE TABLE addons (
  key          TEXT NOT NULL REFERENCES licenses (key),
  addon        TEXT NOT NULL,
  paid_through TEXT NOT NULL,
  PRIMARY KEY (key, addon)
);

CREATE TABLE terms (
  id     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  key    TEXT NOT NULL REFERENCES licenses (key),
  item   TEXT NOT NULL,
  starts TEXT NOT NULL,
  ends   TEXT NOT NULL,
  bought TEXT NOT NULL
);
CREATE INDEX terms_by_key ON terms (key);

CREATE TABLE installations (
  key         TEXT NOT NULL REFERENCES licenses (key),
  seq         INTEGER NOT NULL,
  server      TEXT NOT NULL,
  build       INTEGER NOT NULL,
  first_seen  TEXT NOT NULL,
  last_seen   TEXT NOT NULL,
  deactivated TEXT,
  fingerprint TEXT,
  PRIMARY KEY (key, seq)
);

CREATE TABLE fraud_cases (
  id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  key           TEXT NOT NULL REFERENCES licenses (key),
  since         TEXT NOT NULL,
  opened        TEXT NOT NULL,
  first_step    TEXT,
  phoned        TEXT,
  disabled      TEXT,
  closed        TEXT,
  closed_reason TEXT
);
CREATE INDEX fraud_cases_open ON fraud_cases (key) WHERE closed IS NULL;
CREATE INDEX fraud_cases_closed ON fraud_cases (key, closed) WHERE closed IS NOT NULL;

CREATE TABLE outbox (
  id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  key        TEXT NOT NULL,
  case_id    BIGINT REFERENCES fraud_cases (id),
  action     TEXT NOT NULL,
  on_day     TEXT NOT NULL,
  delivered  TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered IS NULL;

CREATE TABLE events (
  key      TEXT NOT NULL,
  seq      INTEGER NOT NULL,
  at       TEXT NOT NULL,
  kind     TEXT NOT NULL,
  detail   TEXT NOT NULL,
  recorded TEXT,
  PRIMARY KEY (key, seq)
);
CREATE FUNCTION licensor_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event log is append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER events_are_not_changed BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION licensor_events_append_only();

CREATE TABLE idempotency (
  id          TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  answer      TEXT NOT NULL,
  at          TEXT NOT NULL
);

CREATE INDEX licenses_owner ON licenses (owner);
CREATE INDEX licenses_product ON licenses (product, edition);
CREATE INDEX licenses_ms_expires ON licenses (ms_expires) WHERE kind = 'perpetual';
CREATE INDEX licenses_disabled ON licenses (disabled) WHERE disabled IS NOT NULL;
]]

_M.postgresql = {
  "", "", "", "", "",   -- 1 to 5: in 6
  PG_VERSION_6,
  [[
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
]],
  [[
CREATE TABLE reminders (
  key       TEXT NOT NULL,
  item      TEXT NOT NULL,
  event_day TEXT NOT NULL,
  days      INTEGER NOT NULL,
  taken     TEXT NOT NULL,
  PRIMARY KEY (key, item, event_day, days)
);
ALTER TABLE outbox ADD COLUMN refers_to TEXT;
ALTER TABLE outbox ADD COLUMN detail TEXT;
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt BIGINT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN dead TEXT;
CREATE INDEX addons_paid_through ON addons (paid_through);
CREATE INDEX licenses_lease_ended ON licenses (lease_ended) WHERE kind = 'lease';
CREATE INDEX licenses_trials ON licenses (start) WHERE kind = 'trial';
]],
  -- 9: the owner's email address (customer actions go there by mail).
  "ALTER TABLE licenses ADD COLUMN email TEXT;",
  -- 10: as SQLite's.
  [[
ALTER TABLE installations ADD COLUMN held_until TEXT;
ALTER TABLE installations ADD COLUMN signature TEXT;
ALTER TABLE installations ADD COLUMN issued BIGINT;
ALTER TABLE installations ADD COLUMN freed TEXT;
ALTER TABLE installations ADD COLUMN drifts TEXT;
]],
  -- 11: as SQLite's.
  [[
CREATE TABLE portal_signins (
  id         TEXT PRIMARY KEY,
  email      TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at    BIGINT
);
CREATE INDEX portal_signins_by_email ON portal_signins (email, created_at);
CREATE INDEX portal_signins_by_expiry ON portal_signins (expires_at);
CREATE TABLE portal_sessions (
  id_hash    TEXT PRIMARY KEY,
  email      TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  seen_at    BIGINT NOT NULL,
  ended_at   BIGINT
);
CREATE INDEX portal_sessions_by_age ON portal_sessions (created_at);
CREATE INDEX licenses_email ON licenses (lower(email));
]],
  -- 12: as SQLite's.
  [[
ALTER TABLE licenses ADD COLUMN policy TEXT;
ALTER TABLE licenses ADD COLUMN tags TEXT;
CREATE INDEX licenses_with_policy ON licenses (key) WHERE policy IS NOT NULL;
CREATE INDEX outbox_by_case ON outbox (case_id, action) WHERE case_id IS NOT NULL;
CREATE TABLE policies (
  version  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  imported TEXT NOT NULL,
  source   TEXT NOT NULL,
  name     TEXT
);
]],
}

-- The tables in an order that keeps references satisfied (copy, dump).
_M.tables = { "catalogues", "licenses", "addons", "terms", "installations", "fraud_cases", "outbox",
              "events", "idempotency", "reminders", "portal_signins", "portal_sessions", "policies" }

-- Each table's columns as of the newest version, and the order of its rows
-- (its primary key): what copies and dumps walk.
_M.columns = {
  catalogues = { "version", "imported", "source", "policy" },
  licenses = { "key", "product", "edition", "level", "kind", "start", "ms_expires", "ms_start", "lease_ended",
               "trial_days", "version_lock", "failover", "disabled", "disabled_reason", "owner",
               "transfer_consent", "catalogue", "email", "policy", "tags" },
  addons = { "key", "addon", "paid_through" },
  terms = { "id", "key", "item", "starts", "ends", "bought" },
  installations = { "key", "seq", "server", "build", "first_seen", "last_seen", "deactivated",
                    "fingerprint", "held_until", "signature", "issued", "freed", "drifts" },
  fraud_cases = { "id", "key", "since", "opened", "first_step", "phoned", "disabled", "closed",
                  "closed_reason" },
  outbox = { "id", "key", "case_id", "action", "on_day", "delivered", "claimed_by", "claimed_until",
             "refers_to", "detail", "attempts", "next_attempt", "last_error", "dead" },
  events = { "key", "seq", "at", "kind", "detail", "recorded" },
  idempotency = { "id", "fingerprint", "answer", "at" },
  reminders = { "key", "item", "event_day", "days", "taken" },
  portal_signins = { "id", "email", "created_at", "expires_at", "used_at" },
  portal_sessions = { "id_hash", "email", "created_at", "seen_at", "ended_at" },
  policies = { "version", "imported", "source", "name" },
}
_M.order = { catalogues = "version", licenses = "key", addons = "key, addon", terms = "id",
             installations = "key, seq", fraud_cases = "id", outbox = "id", events = "key, seq",
             idempotency = "id", reminders = "key, item, event_day, days", portal_signins = "id",
             portal_sessions = "id_hash", policies = "version" }

return _M
