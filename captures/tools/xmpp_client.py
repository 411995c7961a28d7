#!/usr/bin/env python3
"""A minimal XMPP client for make_data_captures.sh: opens a c2s stream, reads the features, then
either upgrades with STARTTLS (and opens the stream again inside TLS) or logs in with SASL PLAIN in
the clear. Standard library only; the server (prosody) is real.

    xmpp_client.py HOST DOMAIN starttls
    xmpp_client.py HOST DOMAIN plain USER PASSWORD
"""

import base64
import socket
import ssl
import sys

OPEN = ("<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams'>")


def read_until(sock: socket.socket, *ends: bytes) -> bytes:
    data = b""
    while not any(end in data for end in ends):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def main() -> int:
    host, domain, mode = sys.argv[1:4]
    sock = socket.create_connection((host, 5222), timeout=10)
    sock.sendall(OPEN.format(domain).encode())
    print(read_until(sock, b"</stream:features>").decode("utf-8", "replace"))
    if mode == "starttls":
        sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        answer = read_until(sock, b"/>")
        print(answer.decode())
        if b"<proceed" not in answer:
            return 1
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        tls = context.wrap_socket(sock, server_hostname=domain)
        tls.sendall(OPEN.format(domain).encode())
        print(read_until(tls, b"</stream:features>").decode("utf-8", "replace"))
        tls.sendall(b"</stream:stream>")
        tls.close()
        return 0
    user, password = sys.argv[4:6]
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    sock.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
    print(read_until(sock, b"/>", b"</failure>").decode())
    sock.sendall(b"</stream:stream>")
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
