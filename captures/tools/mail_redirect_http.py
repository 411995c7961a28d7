"""A plain-HTTP listener that sends every request to HTTPS on the same host, as a load balancer's or web
server's port-80 listener configured for "redirect to HTTPS" does (SEC09-BP02): `301 Moved Permanently`
with `Location: https://<Host header>/<path>` and no HSTS header. Used by captures/make_mail_captures.sh
(http_redirect_https.pcap).

    python3 mail_redirect_http.py ADDRESS PORT
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class RedirectToHTTPS(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "itc-redirect/1"

    def do_GET(self) -> None:  # the name http.server dispatches GET to
        host = (self.headers.get("Host") or self.server.server_address[0]).split(":", 1)[0]
        body = b"moved to https\n"
        self.send_response(301)
        self.send_header("Location", f"https://{host}{self.path}")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


if __name__ == "__main__":
    HTTPServer((sys.argv[1], int(sys.argv[2])), RedirectToHTTPS).serve_forever()
