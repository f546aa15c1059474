#!/usr/bin/env python3
"""A real SMTP server for lifeboat's delivery tests (aiosmtpd).

It speaks STARTTLS (`--mode starttls`, TLS required before MAIL and AUTH),
implicit TLS (`--mode tls`, port 465 style) or plain SMTP (`--mode plain`),
requires AUTH PLAIN/LOGIN with the given user and password, and writes every
accepted message to `<maildir>/<n>.eml` (the bytes as received) with the
envelope recipients in `<n>.rcpt` (one per line). A recipient named with
`--refuse` is rejected with 550 at RCPT, as a real server does.

It listens on 127.0.0.1, on `--port` (0: any free port), and prints
`PORT <n>` on stdout once it accepts connections. It exits when its stdin
closes, so it never outlives the test that started it.
"""

import argparse
import asyncio
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Saver:
    def __init__(self, maildir, refuse):
        self.maildir = maildir
        self.refuse = {r.lower() for r in refuse}
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.maildir, f"{self.count:03d}")
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".rcpt", "w") as f:
            f.write("\n".join(envelope.rcpt_tos) + "\n")
        # The .eml appears complete or not at all.
        os.rename(base + ".tmp", base + ".eml")
        return f"250 2.0.0 Ok: queued as lb{self.count:03d}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["starttls", "tls", "plain"], required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--refuse", action="append", default=[])
    a = p.parse_args()

    ctx = None
    if a.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == a.user.encode()
            and auth_data.password == a.password.encode()
        )
        # handled=False: the server itself answers 535 on failure.
        return AuthResult(success=ok, handled=False)

    handler = Saver(a.maildir, a.refuse)

    def factory():
        return SMTP(
            handler,
            hostname="lifeboat-test-smtp",
            tls_context=ctx if a.mode == "starttls" else None,
            require_starttls=a.mode == "starttls",
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=a.mode == "starttls",
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, host="127.0.0.1", port=a.port, ssl=ctx if a.mode == "tls" else None)
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)

    def watch_stdin():
        sys.stdin.read()
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.run_forever()
    server.close()


if __name__ == "__main__":
    main()
