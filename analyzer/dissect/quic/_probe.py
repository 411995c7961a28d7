"""QUIC's light prototype (`analyzer.dissect.LIGHT_PROTOTYPES`): its name, port hints and probe.

The registry holds these (with the declarations of `analyzer.dissect.tls.schema`) instead of
`QuicDissector` until a run's probe first claims a QUIC flow: the implementation (`_dissector`, with
`cryptography`'s ciphers, the frame walk and the TLS handshake parsers) costs ~45M instructions to
import, which a run without QUIC never pays. The probe needs only the long-header parser
(`_packets`), itself imported on the first flow probed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analyzer.flows.payload import FlowPayload

__all__ = ["APP_PROTOCOLS", "NAME", "PORTS", "TRANSPORTS", "probe"]

NAME = "quic"
APP_PROTOCOLS = ("quic", "gquic")  # the app_protocol values it sets (README, "Flow encryption state")
TRANSPORTS = frozenset({"udp"})
PORTS = frozenset({443, 4433, 784, 853, 8443})

_looks_like_quic: Callable[[bytes], bool] | None = None


def probe(flow: FlowPayload) -> bool:
    """A QUIC long header (or Google QUIC public header) in one of the first 8 datagrams; or, on
    port 443, only short headers in at least 2 of them (a flow picked up after the handshake)."""
    global _looks_like_quic
    looks = _looks_like_quic
    if looks is None:
        from analyzer.dissect.quic._packets import looks_like_quic

        looks = _looks_like_quic = looks_like_quic
    dgs = flow.datagrams[:8]
    if any(looks(dg.payload) for dg in dgs):
        return True
    # A flow picked up after the handshake shows only short headers (0b01xxxxxx); accept those
    # on the QUIC port only, and only when every datagram looks like one.
    if flow.server_port == 443 and len(dgs) >= 2:
        return all(len(dg.payload) >= 21 and dg.payload[0] & 0xC0 == 0x40 for dg in dgs)
    return False
