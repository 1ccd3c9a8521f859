"""smtpd.py -- a real SMTP server (Debian's python3-aiosmtpd) on the loopback
address for the mail specs, which start and stop it.

    python3 smtpd.py PORT LOG [--tls CERT KEY] [--require-tls] [--auth USER:PASSWORD]

Each accepted message is one JSON line in LOG: the envelope, whether the
session was under TLS, who authenticated, the headers and the decoded body,
as a test reads them back.  Recipients refuse@... get 550 (for good) and
later@... 451 (for now), so the specs can exercise both.
"""
import asyncio
import email
import email.policy
import json
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Recorder:
    def __init__(self, log):
        self.log = log

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refuse@"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "auth": session.authenticated and session.auth_data.login.decode(),
            "headers": {k: str(v) for k, v in message.items()},
            "body": message.get_content(),
            "raw": envelope.content.decode("utf-8", "replace"),
        }
        with open(self.log, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted"


def authenticator(expected):
    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() + ":" + auth_data.password.decode() == expected
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return check


def main(argv):
    port, log, rest = int(argv[1]), argv[2], argv[3:]
    kwargs = {}
    if "--tls" in rest:
        i = rest.index("--tls")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(rest[i + 1], rest[i + 2])
        kwargs["tls_context"] = context
    kwargs["require_starttls"] = "--require-tls" in rest
    if "--auth" in rest:
        kwargs["authenticator"] = authenticator(rest[rest.index("--auth") + 1])
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = True
    else:
        kwargs["auth_require_tls"] = False
    controller = Controller(Recorder(log), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print("ready", flush=True)
    loop.run_forever()
    controller.stop()


if __name__ == "__main__":
    main(sys.argv)
