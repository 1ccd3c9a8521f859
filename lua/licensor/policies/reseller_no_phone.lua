-- reseller_no_phone.lua -- a policy file (doc/policies.md): keys tagged
-- "reseller" are managed by the reseller who sold them, so the fraud
-- ladder (R11) never phones their customer; it notifies the reseller
-- instead, on the day the phone call would have been due.  The email to
-- the customer, the fraud team's notice and disabling the key stay as
-- they are.
--
-- notify_reseller is an action like the others: it goes to the outbox, and
-- `licensor deliver --webhook notify_reseller=URL` (or a handler set with
-- store:on) delivers it.
return {
  name = "reseller-no-phone",

  -- ctx.steps are the built-in steps due on ctx.day, by name.
  ladder = function(ctx)
    if not ctx.license.tags.reseller then return nil end
    local steps, changed = {}, false
    for i, name in ipairs(ctx.steps) do
      if name == "phone_customer" then
        name, changed = "notify_reseller", true
      end
      steps[i] = name
    end
    if not changed then return nil end
    return { steps = steps, because = "reseller-managed key: the reseller is told, the customer not phoned" }
  end,
}
