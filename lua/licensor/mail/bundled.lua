-- licensor.mail.bundled -- the templates customer mail uses when the
-- deliverer's --templates directory has no ACTION.txt of its own
-- (`licensor templates --out DIR` writes these there to start from).
-- The format is licensor.mail.template's.
return {
  email_customer = [[
Subject: {product} license {key} is in use on more servers than it allows

Dear {owner},

Our records show license {key} for {product} running on more servers
than its terms allow.  If you moved to a new server, please deactivate
the old one from its administration page; if you need more servers,
reply to this message and we will help you choose an edition.

If nothing changes, the license will be reviewed by our team.
]],
  ms_expiring = [[
Subject: Maintenance & Support for {product} ends on {date}

Dear {owner},

Maintenance & Support for your {product} license {key} ends on {date},
in {days} days.  Renewing it keeps you on the newest builds and with our
support team; the builds you have keep working either way.

Renewal price: {price}
]],
  ms_lapsed = [[
Subject: Maintenance & Support for {product} ended on {date}

Dear {owner},

Maintenance & Support for your {product} license {key} ended on {date}.
Builds released from now on are not covered until it is renewed; the
builds you have keep working.

Renewal price: {price}
]],
  trial_ending = [[
Subject: Your {product} trial ends on {date}

Dear {owner},

Your trial of {product} (license {key}) ends on {date}, in {days} days.
Buy a license before then to keep your settings and data in place.
]],
  lease_ending = [[
Subject: Your {product} lease ends on {date}

Dear {owner},

The lease of {product} under license {key} ends on {date}, in {days}
days.  Contact us before then to extend it or to move to a perpetual
license.
]],
  addon_expiring = [[
Subject: The {item} add-on for {product} ends on {date}

Dear {owner},

The {item} add-on of your {product} license {key} is paid through
{date}, {days} days from now.  Renew it to keep it working after that
day.
]],
  portal_signin = [[
Subject: Your sign-in link to the license portal

Dear {owner},

Someone (we hope you) asked to sign in to the license portal as {email}.
This link signs you in; it works once, within {minutes} minutes:

{link}

If you did not ask for it, ignore this message: nothing happens without
the link, and it expires on its own.
]],
}
