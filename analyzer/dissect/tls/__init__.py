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

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_attributes

if TYPE_CHECKING:
    from analyzer.dissect.tls.constants import version_name
    from analyzer.dissect.tls.dissector import DISSECTOR, TLS_PORTS, TLSDissector, find_tls_start, looks_like_tls
    from analyzer.dissect.tls.fingerprints import ja3, ja3s, ja4, ja4s, ja4x
    from analyzer.dissect.tls.handshake import (
        ClientHello,
        ServerHello,
        parse_client_hello,
        parse_server_hello,
        parse_sslv2_client_hello,
    )

# Loaded on first use, so that `analyzer.dissect.tls.schema` (the declarations: the registry reads them
# without importing the parsers when a run does no dissection) is cheap to import. The dissector
# registers itself in `dissector.py`.
_LAZY = {
    "version_name": "analyzer.dissect.tls.constants",
    **dict.fromkeys(("DISSECTOR", "TLS_PORTS", "TLSDissector", "find_tls_start", "looks_like_tls"),
                    "analyzer.dissect.tls.dissector"),
    **dict.fromkeys(("ja3", "ja3s", "ja4", "ja4s", "ja4x"), "analyzer.dissect.tls.fingerprints"),
    **dict.fromkeys(("ClientHello", "ServerHello", "parse_client_hello", "parse_server_hello",
                     "parse_sslv2_client_hello"), "analyzer.dissect.tls.handshake"),
}

__all__ = [
    "DISSECTOR",
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

__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
