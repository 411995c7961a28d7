"""TLS / SSL dissection over TCP: handshake facts, certificates and JA3 / JA4 fingerprints.

Public pieces:
- `TLSDissector(ja4x=False, ja4s=True, certificates=True)`: the dissector (one instance is
  registered with `analyzer.dissect` at import; build your own to change options). JA4X is
  FoxIO License 1.1 and computed only with `ja4x=True` (see `fingerprints`).
- `parse_client_hello`, `parse_server_hello` (+ `ClientHello`, `ServerHello`) for QUIC / DTLS.
- `ja3`, `ja3s`, `ja4`, `ja4s`, `ja4x` fingerprint functions.
- `find_tls_start(to_server, to_client)`: where TLS begins after cleartext (STARTTLS and friends);
  `TLSDissector.dissect_from(flow, to_server_offset, to_client_offset)` dissects from there.
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.tls.constants import version_name
from analyzer.dissect.tls.dissector import TLS_PORTS, TLSDissector, find_tls_start, looks_like_tls
from analyzer.dissect.tls.fingerprints import ja3, ja3s, ja4, ja4s, ja4x
from analyzer.dissect.tls.handshake import (
    ClientHello,
    ServerHello,
    parse_client_hello,
    parse_server_hello,
    parse_sslv2_client_hello,
)

__all__ = [
    "TLS_PORTS",
    "ClientHello",
    "ServerHello",
    "TLSDissector",
    "find_tls_start",
    "ja3",
    "ja3s",
    "ja4",
    "ja4s",
    "ja4x",
    "looks_like_tls",
    "parse_client_hello",
    "parse_server_hello",
    "parse_sslv2_client_hello",
    "version_name",
]

DISSECTOR = TLSDissector()
register(DISSECTOR)
