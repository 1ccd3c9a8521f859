-- education_upgrades.lua -- a policy file (doc/policies.md): half price on
-- upgrades (R12) for licenses tagged "education", for upgrades quoted on
-- or before 2027-06-30.  Renewals and every other license pay the
-- built-in price.
--
-- Prices are whole minor units (cents).  Half of an odd price is rounded
-- down, in the customer's favour: 33,001 cents -> 16,500.  The store takes
-- an upgrade only when the amount paid equals the quote, so the customer
-- pays exactly what the quote said.
local UNTIL = "2027-06-30"   -- the last day of the offer
local floor = math.floor

return {
  name = "education-upgrades",

  price = function(ctx)
    if ctx.item ~= "upgrade" or not ctx.license.tags.education then return nil end
    if ctx.day > UNTIL then return nil end   -- "YYYY-MM-DD" compares as the days do
    return { price = floor(ctx.price / 2),
             because = "education: 50% off upgrades until " .. UNTIL }
  end,
}
