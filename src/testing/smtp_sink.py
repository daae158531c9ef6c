#!/ usr / bin / python3
"""A local SMTP sink for tests (aiosmtpd): listens on 127.0.0.1 on a free port, prints
"ready <port>", writes every message it accepts to <out>/<n>.json, and appends every
command it receives (AUTH without its argument), with whether TLS was up, to
<out>/commands.log.

  --cert/--key   offer STARTTLS with this certificate and require it before MAIL
  --auth U:P     offer AUTH (only over TLS when --cert is given) and require it
  --auth-in-clear  offer AUTH before TLS too (to check the client never uses it there)
  --no-8bitmime  do not advertise 8BITMIME
"""
import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    parser.add_argument("--auth-in-clear", action="store_true")
    parser.add_argument("--no-8bitmime", action="store_true")
    args = parser.parse_args()
    counter = {"n": 0}

    def record(line):
        with open(os.path.join(args.out, "commands.log"), "a") as f:
            f.write(line + "\n")

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            counter["n"] += 1
            with open(os.path.join(args.out, "%d.json" % counter["n"]), "w") as f:
                json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                           "mail_options": envelope.mail_options,
                           "tls": session.ssl is not None,
                           "authenticated": bool(session.authenticated),
                           "data": envelope.original_content.decode("utf-8", "surrogateescape")}, f)
            return "250 OK"

    class Without8BitMime(Handler):
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            return [r for r in responses if "8BITMIME" not in r]

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and args.auth is not None and
              auth_data.login.decode() + ":" + auth_data.password.decode() == args.auth)
        return AuthResult(success=ok, handled=False)

    class Recording(SMTP):
        def _tls(self):
            return "tls" if self._tls_protocol is not None else "plain"

        async def smtp_EHLO(self, arg):
            record("EHLO " + self._tls())
            return await super().smtp_EHLO(arg)

        async def smtp_STARTTLS(self, arg):
            record("STARTTLS " + self._tls())
            return await super().smtp_STARTTLS(arg)

        async def smtp_AUTH(self, arg):
            record("AUTH " + self._tls())
            return await super().smtp_AUTH(arg)

        async def smtp_MAIL(self, arg):
            record("MAIL " + self._tls())
            return await super().smtp_MAIL(arg)

    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    def factory():
        handler = Without8BitMime() if args.no_8bitmime else Handler()
        smtp = Recording(handler, tls_context=context, require_starttls=context is not None,
                         auth_required=args.auth is not None,
                         auth_require_tls=not args.auth_in_clear,
                         authenticator=authenticator if args.auth else None,
                         hostname="sink.test")
        return smtp

    async def serve():
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        print("ready %d" % server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
