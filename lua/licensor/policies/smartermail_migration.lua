-- smartermail_migration.lua -- a policy file (doc/policies.md): a 45-day
-- migration window (R10) for SmarterMail, where every other product keeps
-- the catalogue's 30 days.  Moving a mail server means moving every
-- mailbox, and customers asked for more time than a help desk needs.
--
-- The product layer, no code: one value for every SmarterMail license, of
-- every edition, unless an edition of the file or the license's own
-- override (licensor set KEY --policy migration_days=N) says otherwise.
--
--   licensor policy import smartermail_migration      (a bundled file, by name)
return {
  name = "smartermail-migration",
  products = {
    smartermail = { migration_days = 45 },
  },
}
