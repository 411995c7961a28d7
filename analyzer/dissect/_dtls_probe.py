"""DTLS's light prototype (`analyzer.dissect.LIGHT_PROTOTYPES`): its name, port hints and probe.

The registry holds these (with the declarations of `analyzer.dissect.tls.schema`) instead of
`DTLSDissector` until a run's probe first claims a DTLS flow: the implementation
(`analyzer.dissect.dtls`: record walk, reassembly, its dataclasses) costs ~15M instructions to
import, which a run without DTLS never pays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analyzer.flows.payload import FlowPayload

__all__ = ["APP_PROTOCOLS", "DTLS_PORTS", "DTLS_VERSIONS", "NAME", "PORTS", "TRANSPORTS", "looks_like_dtls",
           "probe", "valid_plaintext_header"]

NAME = "dtls"
APP_PROTOCOLS = ("dtls",)  # the app_protocol values it sets (README, "Flow encryption state")
TRANSPORTS = frozenset({"udp"})
DTLS_PORTS = PORTS = frozenset({443, 4433, 4740, 5061, 5349, 5684, 3478, 8443, 19302, 19305})
DTLS_VERSIONS = frozenset({0xFEFF, 0xFEFD, 0xFEFC, 0x0100})
_CT_CID = 25


def valid_plaintext_header(data: bytes, pos: int = 0) -> bool:
    """A DTLSPlaintext record header at `pos` (content type 20..24, a DTLS version) whose record
    fits `data`."""
    if pos + 13 > len(data):
        return False
    ctype = data[pos]
    if ctype < 20 or ctype > 25 or ctype == _CT_CID:
        return False
    version = int.from_bytes(data[pos + 1 : pos + 3], "big")
    if version not in DTLS_VERSIONS:
        return False
    length = int.from_bytes(data[pos + 11 : pos + 13], "big")
    return pos + 13 + length <= len(data) and length <= 16384 + 2048


def looks_like_dtls(payload: bytes) -> bool:
    """A DTLSPlaintext header (content type 20..25, version 0xfeXX or 0x0100) that fits the datagram."""
    return valid_plaintext_header(payload, 0)


def probe(flow: FlowPayload) -> bool:
    """A DTLSPlaintext record header at the start of one of the first datagrams (after any STUN /
    RTP multiplexed on the same 5-tuple)."""
    return any(looks_like_dtls(dg.payload) for dg in flow.datagrams[:32])
