-- licensor.store.sql -- every statement the store runs, by name.  The
-- store prepares them all once per connection (store/init.lua) and runs
-- them by id; nothing else in the store writes SQL.
--
-- The statements are SQLite's and, with `?` turned into `$N` by the C
-- layer, PostgreSQL's too; `postgresql` below replaces the few that differ
-- (SQLite's functions, row locks).
local _M = {}

-- A deliverer claims pending rows for a while (?2, ms since the epoch)
-- under its token (?1): rows after ?3 nobody holds at ?4, ?5 at most.
-- Dead-lettered rows, and rows whose next attempt has not come, wait.
local CLAIM_OUTBOX = [[UPDATE outbox SET claimed_by = ?1, claimed_until = ?2 WHERE id IN
  (SELECT id FROM outbox WHERE delivered IS NULL AND dead IS NULL AND id > ?3
     AND (claimed_until IS NULL OR claimed_until < ?4) AND (next_attempt IS NULL OR next_attempt <= ?4)
     ORDER BY id LIMIT ?5%s)
  RETURNING id, key, case_id, action, on_day, refers_to, detail, attempts]]

_M.sqlite = {
  catalogue_version = "SELECT max(version) FROM catalogues",
  catalogue_source = "SELECT source FROM catalogues WHERE version = ?",
  insert_catalogue = "INSERT INTO catalogues (imported, source, policy) VALUES (?, ?, ?) RETURNING version",
  -- The active catalogue and policy file: the newest of each.
  active_versions = [[SELECT (SELECT max(version) FROM catalogues) AS catalogue,
    (SELECT max(version) FROM policies) AS policy]],
  policy_version = "SELECT max(version) FROM policies",
  policy_source = "SELECT source, name FROM policies WHERE version = ?",
  insert_policy = "INSERT INTO policies (imported, source, name) VALUES (?, ?, ?) RETURNING version",
  policy_history = "SELECT version, imported, name, source FROM policies ORDER BY version",
  -- Licenses with an override of their own (the partial index).
  licenses_with_policy = "SELECT key, policy FROM licenses WHERE policy IS NOT NULL ORDER BY key",
  -- One statement per license read: the add-ons come folded into one
  -- column, "eas<US>2019-12-06<RS>ews<US>..." (names never hold control
  -- characters: the catalogue refuses them).
  license = [[SELECT l.*, (SELECT group_concat(addon || char(31) || paid_through, char(30))
    FROM addons a WHERE a.key = l.key) AS addon_list,
    (SELECT max(version) FROM catalogues) AS active_catalogue,
    (SELECT max(version) FROM policies) AS active_policy FROM licenses l WHERE l.key = ?]],
  insert_license = [[INSERT INTO licenses (key, product, edition, level, kind, start, ms_expires,
    ms_start, lease_ended, trial_days, version_lock, failover, owner, catalogue, email, policy, tags)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
  set_addon = [[INSERT INTO addons (key, addon, paid_through) VALUES (?, ?, ?)
    ON CONFLICT (key, addon) DO UPDATE SET paid_through = excluded.paid_through]],
  insert_term = "INSERT INTO terms (key, item, starts, ends, bought) VALUES (?, ?, ?, ?, ?)",
  set_ms = "UPDATE licenses SET ms_expires = ?, ms_start = ? WHERE key = ?",
  set_edition_level = "UPDATE licenses SET edition = ?, level = ? WHERE key = ?",
  set_lease_ended = "UPDATE licenses SET lease_ended = ? WHERE key = ?",
  set_disabled = "UPDATE licenses SET disabled = ?, disabled_reason = ? WHERE key = ?",
  set_owner = "UPDATE licenses SET owner = ?, transfer_consent = ? WHERE key = ?",
  set_email = "UPDATE licenses SET email = ? WHERE key = ?",
  set_policy = "UPDATE licenses SET policy = ? WHERE key = ?",
  set_tags = "UPDATE licenses SET tags = ? WHERE key = ?",
  -- A license other than ?2 whose tags hold the word of LIKE pattern ?1
  -- (store/lists.lua's tag_pattern).
  tag_in_use = [[SELECT key FROM licenses WHERE (' ' || tags || ' ') LIKE ? ESCAPE '\' AND key <> ?
    LIMIT 1]],
  installations = [[SELECT seq, server, build, first_seen, last_seen, deactivated, fingerprint,
    held_until, signature, issued, freed, drifts FROM installations WHERE key = ? ORDER BY seq]],
  insert_installation = [[INSERT INTO installations
    (key, seq, server, build, first_seen, last_seen, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?)]],
  set_fingerprint = "UPDATE installations SET fingerprint = ?3, drifts = ?4 WHERE key = ?1 AND seq = ?2",
  -- A certificate issued for installation ?2: its slot is held through ?3.
  hold_installation = [[UPDATE installations SET held_until = ?3, signature = ?4, issued = ?5
    WHERE key = ?1 AND seq = ?2]],
  -- The same machine activated again (today ?4): its old installation
  -- held its slot through ?3, the day before.
  move_installation = [[UPDATE installations SET held_until = ?3, freed = 'moved',
    deactivated = coalesce(deactivated, ?4) WHERE key = ?1 AND seq = ?2]],
  -- The slot freed at once (?3 'returned' or 'forced'), deactivated on ?4
  -- unless it already was.
  free_installation = [[UPDATE installations SET held_until = NULL, freed = ?3,
    deactivated = coalesce(deactivated, ?4) WHERE key = ?1 AND seq = ?2]],
  touch_installation = [[UPDATE installations
    SET last_seen = CASE WHEN last_seen < ?3 THEN ?3 ELSE last_seen END, build = ?4
    WHERE key = ?1 AND seq = ?2]],
  deactivate_installation = [[UPDATE installations SET deactivated = coalesce(deactivated, ?3)
    WHERE key = ?1 AND seq = ?2]],
  insert_event = [[INSERT INTO events (key, seq, at, kind, detail, recorded)
    VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM events WHERE key = ?1), ?2, ?3, ?4,
            strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))]],
  events = "SELECT at, kind, detail, recorded FROM events WHERE key = ? ORDER BY seq",
  -- R9/R10 candidates: keys with more installations holding a slot on ?1
  -- than their allowance: active (last seen on or after ?2 = ?1 - grace,
  -- not deactivated) or held by a certificate that still lives.
  excess_keys = [[SELECT i.key FROM installations i JOIN licenses l ON l.key = i.key
    WHERE i.first_seen <= ?1 AND ((i.last_seen >= ?2 AND (i.deactivated IS NULL OR i.deactivated > ?1))
                                  OR i.held_until >= ?1)
    GROUP BY i.key HAVING count(*) > CASE WHEN max(l.failover) = 1 THEN 2 ELSE 1 END]],
  open_case_keys = "SELECT key FROM fraud_cases WHERE closed IS NULL",
  open_case = "SELECT * FROM fraud_cases WHERE key = ? AND closed IS NULL",
  -- The newest case of a key closed because its excess ended on or after ?2.
  resumable_case = [[SELECT * FROM fraud_cases WHERE key = ?1 AND closed >= ?2
    AND closed_reason = 'excess_ended' ORDER BY id DESC LIMIT 1]],
  insert_case = "INSERT INTO fraud_cases (key, since, opened) VALUES (?, ?, ?) RETURNING id",
  close_case = "UPDATE fraud_cases SET closed = ?, closed_reason = ? WHERE id = ?",
  -- An admin re-enabled the key: its cases closed on excess_ended never resume.
  cases_ended_by_enable = [[UPDATE fraud_cases SET closed_reason = 'enabled'
    WHERE key = ? AND closed_reason = 'excess_ended']],
  -- Licenses per product (an import must keep every product that has some).
  licenses_per_product = "SELECT product, count(*) AS n FROM licenses GROUP BY product ORDER BY product",
  resume_case = "UPDATE fraud_cases SET closed = NULL, closed_reason = NULL, since = ? WHERE id = ?",
  case_since = "UPDATE fraud_cases SET since = ? WHERE id = ?",
  case_first_step = "UPDATE fraud_cases SET first_step = ? WHERE id = ?",
  case_phoned = "UPDATE fraud_cases SET phoned = ? WHERE id = ?",
  case_disabled = "UPDATE fraud_cases SET disabled = ? WHERE id = ?",
  -- Whether a case's outbox already has the action (a step a ladder hook adds).
  case_action_taken = "SELECT 1 FROM outbox WHERE case_id = ? AND action = ? LIMIT 1",
  insert_outbox = "INSERT INTO outbox (key, case_id, action, on_day) VALUES (?, ?, ?, ?)",
  claim_outbox = CLAIM_OUTBOX:format(""),
  release_outbox = [[UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
    WHERE id = ? AND claimed_by = ?]],
  -- A deliverer about to send row ?1 renews its claim (?2 its token) to ?3;
  -- no row changed: the claim ran out and another deliverer took the row.
  hold_outbox = [[UPDATE outbox SET claimed_until = ?3
    WHERE id = ?1 AND claimed_by = ?2 AND delivered IS NULL AND dead IS NULL]],
  count_pending = "SELECT count(*) FROM outbox WHERE delivered IS NULL AND dead IS NULL",
  -- A failed delivery: ?2 attempts so far, the next not before ?3, dead-lettered at ?5 (or not).
  outbox_failed = [[UPDATE outbox SET attempts = ?2, next_attempt = ?3, last_error = ?4, dead = ?5,
    claimed_by = NULL, claimed_until = NULL WHERE id = ?1 AND claimed_by = ?6]],
  outbox_rows = [[SELECT id, key, case_id, action, on_day, refers_to, detail, delivered, attempts, last_error,
    dead
    FROM outbox WHERE (?1 = 'all' OR (?1 = 'dead' AND dead IS NOT NULL)
      OR (?1 = 'pending' AND delivered IS NULL AND dead IS NULL)) ORDER BY id LIMIT ?2]],
  outbox_retry = [[UPDATE outbox SET dead = NULL, attempts = 0, next_attempt = NULL, last_error = NULL
    WHERE id = ? AND delivered IS NULL]],
  outbox_done = "UPDATE outbox SET delivered = ?, claimed_until = NULL WHERE id = ? AND delivered IS NULL",
  -- Reminders (store/reminders.lua): terms ending between ?1 and ?2.
  ms_reminder_candidates = [[SELECT key, ms_expires FROM licenses WHERE kind = 'perpetual'
    AND disabled IS NULL AND ms_expires >= ? AND ms_expires <= ? ORDER BY key]],
  lease_reminder_candidates = [[SELECT key, lease_ended FROM licenses WHERE kind = 'lease'
    AND disabled IS NULL AND lease_ended >= ? AND lease_ended <= ? ORDER BY key]],
  longest_trial = "SELECT max(trial_days) FROM licenses WHERE kind = 'trial'",
  trial_reminder_candidates = [[SELECT key, start, trial_days FROM licenses WHERE kind = 'trial'
    AND disabled IS NULL AND start >= ? ORDER BY key]],
  addon_reminder_candidates = [[SELECT a.key, a.addon, a.paid_through FROM addons a
    JOIN licenses l ON l.key = a.key WHERE l.kind = 'perpetual' AND l.disabled IS NULL
    AND a.paid_through >= ? AND a.paid_through <= ? ORDER BY a.key, a.addon]],
  take_reminder = [[INSERT INTO reminders (key, item, event_day, days, taken) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING]],
  insert_reminder = "INSERT INTO outbox (key, action, on_day, refers_to, detail) VALUES (?, ?, ?, ?, ?)",
  idempotency_get = "SELECT fingerprint, answer FROM idempotency WHERE id = ?",
  idempotency_put = "INSERT INTO idempotency (id, fingerprint, answer, at) VALUES (?, ?, ?, ?)",
  -- The customer portal (store/portal.lua); times are unix seconds, ?1 an
  -- address trimmed and lowercased.
  portal_keys = "SELECT key FROM licenses WHERE lower(email) = ? ORDER BY product, key",
  portal_first_key = "SELECT key FROM licenses WHERE lower(email) = ? ORDER BY key LIMIT 1",
  portal_recent_signins = "SELECT count(*) FROM portal_signins WHERE email = ? AND created_at > ?",
  portal_insert_signin = [[INSERT INTO portal_signins (id, email, created_at, expires_at)
    VALUES (?, ?, ?, ?)]],
  -- A sign-in link is spent once: the row that is still unused and alive
  -- at ?2 is marked used, in the same statement that reads it.
  portal_use_signin = [[UPDATE portal_signins SET used_at = ?2
    WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING email]],
  portal_insert_session = [[INSERT INTO portal_sessions (id_hash, email, created_at, seen_at)
    VALUES (?, ?, ?, ?)]],
  portal_session = [[SELECT id_hash, email, created_at, seen_at, ended_at FROM portal_sessions
    WHERE id_hash = ?]],
  portal_touch_session = "UPDATE portal_sessions SET seen_at = ?2 WHERE id_hash = ?1 AND seen_at < ?2",
  portal_end_session = "UPDATE portal_sessions SET ended_at = ?2 WHERE id_hash = ?1 AND ended_at IS NULL",
  -- Old rows go a few at a time, as new ones are made.
  portal_prune_signins = [[DELETE FROM portal_signins WHERE id IN
    (SELECT id FROM portal_signins WHERE expires_at < ? LIMIT 100)]],
  portal_prune_sessions = [[DELETE FROM portal_sessions WHERE id_hash IN
    (SELECT id_hash FROM portal_sessions WHERE created_at < ? LIMIT 100)]],
  portal_outbox = "INSERT INTO outbox (key, action, on_day, detail) VALUES (?, ?, ?, ?)",
  -- Self-service deactivations of key on or after day ?2.
  self_deactivations = "SELECT count(*) FROM events WHERE key = ? AND kind = 'self_deactivated' AND at >= ?",
}

-- The class of licensor's advisory locks on license keys: the first int4
-- of pg_advisory_xact_lock's two-key form ("LICN" in ASCII), so another
-- application's advisory locks on the same database (which use their own
-- class, or the one-bigint form: a key space of its own) never meet ours.
_M.KEY_LOCK_CLASS = 1279869774

-- PostgreSQL's versions of the statements that differ.
_M.postgresql = {
  license = [[SELECT l.*, (SELECT string_agg(addon || chr(31) || paid_through, chr(30))
    FROM addons a WHERE a.key = l.key) AS addon_list,
    (SELECT max(version) FROM catalogues) AS active_catalogue,
    (SELECT max(version) FROM policies) AS active_policy FROM licenses l WHERE l.key = ?]],
  insert_event = [[INSERT INTO events (key, seq, at, kind, detail, recorded)
    VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM events WHERE key = ?1), ?2, ?3, ?4,
            to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))]],
  -- Rows another deliverer is claiming right now are skipped, not waited for.
  claim_outbox = CLAIM_OUTBOX:format(" FOR UPDATE SKIP LOCKED"),
  -- Every workflow on a key takes the key's lock before it reads or writes
  -- the key's rows: workflows on one key run one after the other on any
  -- number of hosts (doc/rules.md 6).  An advisory lock held to the end of
  -- the transaction, not a row lock: it takes no transaction id and writes
  -- no WAL, so a refusal (rolled back) writes nothing at all.  Two keys
  -- whose hashtext() is equal share a lock: their workflows only wait for
  -- each other, neither answer changes.
  lock_key = "SELECT pg_advisory_xact_lock(" .. _M.KEY_LOCK_CLASS .. ", hashtext(?))",
  -- Two requests with one Idempotency-Key wait for each other.
  lock_idempotency = "SELECT pg_advisory_xact_lock(hashtext(?))",
}

-- The statements for a backend ("sqlite" or "postgresql").
function _M.statements(kind)
  local out = {}
  for name, sql in pairs(_M.sqlite) do out[name] = sql end
  if kind == "postgresql" then
    for name, sql in pairs(_M.postgresql) do out[name] = sql end
  end
  return out
end

return _M
