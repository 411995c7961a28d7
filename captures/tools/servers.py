#!/usr/bin/env python3
"""Small real servers used by make_captures.sh (each binds one address/port and runs until killed).

    servers.py http-basic HOST PORT                 HTTP/1.1 server requiring Basic user:secret
    servers.py smtp HOST PORT --cert C --key K      aiosmtpd, STARTTLS offered and required
    servers.py smtp HOST PORT --auth                aiosmtpd, no TLS, AUTH PLAIN/LOGIN in the clear
    servers.py ftp HOST PORT --root DIR [--cert C --key K]
                                                    pyftpdlib (user alice/secret); FTPS (AUTH TLS) with a cert

The credentials are the fixed throw-away values documented in captures/README.md.
"""

import argparse
import asyncio
import base64
import http.server
import os
import ssl
import sys
from typing import Any

USER, PASSWORD = "alice", "secret"


def http_basic(host: str, port: int) -> None:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "intransit-capture/1"

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                body = b"authentication required\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="intranet"')
            else:
                body = b"welcome, " + USER.encode() + b"\n"
                self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()


def smtp(host: str, port: int, cert: str | None, key: str | None, auth: bool) -> None:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok: queued as 1A2B3C4D5E"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        return AuthResult(success=ok)

    ctx = None
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

    def factory() -> SMTP:
        kw: dict[str, Any] = {"hostname": "mail.example.com", "ident": "ESMTP intransit-capture"}
        if ctx is not None:
            kw.update(tls_context=ctx, require_starttls=True)
        if auth:
            kw.update(authenticator=authenticator, auth_require_tls=False)
        return SMTP(Sink(), **kw)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(factory, host, port, reuse_address=True)
        await asyncio.Event().wait()

    asyncio.run(run())


def ftp(host: str, port: int, cert: str | None, key: str | None, root: str) -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    home = root
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "readme.txt"), "w") as f:
        f.write("quarterly report: nothing to see here\n" * 4)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, home, perm="elr")
    handler: type[FTPHandler]
    if cert:
        handler = TLS_FTPHandler
        handler.certfile = cert
        handler.keyfile = key
        handler.tls_control_required = True
        handler.tls_data_required = True
    else:
        handler = FTPHandler
    handler.authorizer = authorizer
    handler.banner = "intransit-capture FTP server ready."
    handler.passive_ports = range(30000, 30010)
    server = FTPServer((host, port), handler)
    server.serve_forever()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["http-basic", "smtp", "ftp"])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth", action="store_true")
    ap.add_argument("--root", default="/tmp/itc-ftp-root", help="FTP home directory (ftp only)")
    a = ap.parse_args()
    if a.kind == "http-basic":
        http_basic(a.host, a.port)
    elif a.kind == "smtp":
        smtp(a.host, a.port, a.cert, a.key, a.auth)
    else:
        ftp(a.host, a.port, a.cert, a.key, a.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
