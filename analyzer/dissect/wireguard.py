"""WireGuard over UDP (the WireGuard whitepaper, section 5.4: messages), facts only.

Every WireGuard message starts with a one-byte type and three reserved zero bytes, and each type
has a fixed size: 1 handshake initiation, 148 bytes (sender index, ephemeral key, encrypted static
key and timestamp, mac1, mac2); 2 handshake response, 92 bytes (sender and receiver index,
ephemeral, encrypted nothing, macs); 3 cookie reply, 64 bytes (receiver index, nonce, encrypted
cookie); 4 transport data, 16 bytes of header (receiver index, 64-bit counter) then the
ChaCha20-Poly1305 ciphertext of the packet padded to 16 bytes, plus its 16-byte tag: at least 32
bytes and a multiple of 16. A flow is WireGuard when its first datagrams (up to four) all have this
shape; the port (51820 by default) is only a hint.

`encrypted` True once a handshake response or transport data is seen (protection "wireguard": the
tunnel's packets travel inside ChaCha20-Poly1305); only initiations (nobody answered) leave it
undecided (`handshake_incomplete`). Columns count each message type and keep the initiator's and
responder's sender indexes (the session identifiers, hex), as Zeek's WireGuard analyzers report
(zeek/spicy-wireguard: wireguard.log handshake counts) and Wireshark's packet-wireguard.c reads.
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, Facts, FlowPayload

__all__ = ["WireGuardDissector", "message_type"]

INITIATION, RESPONSE, COOKIE, DATA = 1, 2, 3, 4
_SIZES = {INITIATION: 148, RESPONSE: 92, COOKIE: 64}
PROBE_DATAGRAMS = 4

COLUMNS: tuple[Column, ...] = (
    Column("wireguard_initiations", "Int32", "handshake initiation messages (type 1) seen"),
    Column("wireguard_responses", "Int32", "handshake response messages (type 2) seen"),
    Column("wireguard_cookie_replies", "Int32", "cookie reply messages (type 3: the responder is under load) seen"),
    Column("wireguard_data_messages", "Int32",
           "transport data messages (type 4) among the datagrams kept for dissection (the first 32)"),
    Column("wireguard_initiator_index", "string", "sender index of the first handshake initiation (hex)"),
    Column("wireguard_responder_index", "string", "sender index of the first handshake response (hex)"),
)


def message_type(payload: bytes) -> int | None:
    """The WireGuard message type of one UDP payload, or None when it does not have the shape."""
    if len(payload) < 32 or payload[1:4] != b"\x00\x00\x00":
        return None
    kind = payload[0]
    size = _SIZES.get(kind)
    if size is not None:
        return kind if len(payload) == size else None
    if kind == DATA and len(payload) % 16 == 0:
        return kind
    return None


class WireGuardDissector:
    """WireGuard on UDP, found by its message shapes on any port."""

    name = "wireguard"
    app_protocols = ("wireguard",)
    transports = frozenset({"udp"})
    ports = frozenset({51820})
    columns = COLUMNS
    frames = ()

    def probe(self, flow: FlowPayload) -> bool:
        seen = 0
        for dg in flow.datagrams[:PROBE_DATAGRAMS]:
            if not dg.payload:
                continue
            if message_type(dg.payload) is None:
                return False
            seen += 1
        return seen > 0

    def dissect(self, flow: FlowPayload) -> Facts:
        counts = {INITIATION: 0, RESPONSE: 0, COOKIE: 0, DATA: 0}
        out: dict[str, object] = {"app_protocol": "wireguard", "protection": "wireguard"}
        facts = Facts()
        other = 0
        for dg in flow.datagrams:
            kind = message_type(dg.payload)
            if kind is None:
                other += 1
                continue
            counts[kind] += 1
            if kind == INITIATION and counts[kind] == 1:
                out["wireguard_initiator_index"] = dg.payload[4:8][::-1].hex()  # little-endian u32
            elif kind == RESPONSE and counts[kind] == 1:
                out["wireguard_responder_index"] = dg.payload[4:8][::-1].hex()
        if other:
            facts.anomaly("wireguard_unexpected_message", f"{other} datagram(s) without a WireGuard message shape")
        out.update(wireguard_initiations=counts[INITIATION], wireguard_responses=counts[RESPONSE],
                   wireguard_cookie_replies=counts[COOKIE], wireguard_data_messages=counts[DATA])
        if counts[RESPONSE] or counts[DATA]:
            out["encrypted"] = True
        else:
            out["undecided_reason"] = "handshake_incomplete"
        facts.flow.update(out)
        return facts


DISSECTOR = register(WireGuardDissector())
