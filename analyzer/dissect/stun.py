"""STUN (RFC 8489) and TURN (RFC 8656) over UDP and TCP, and what a TURN relay carries, facts only.

`app_protocol`: "stun". Found by content on any port (3478 is a hint): a STUN header at the start of
the first datagram (UDP) or of either direction's bytes (TCP) — the two top bits zero, a length that
is a multiple of 4 and fits, the magic cookie 0x2112A442 (RFC 3489's cookie-less messages are not
claimed: too little to tell them from other binary protocols). A flow that carries DTLS as well
(WebRTC's ICE checks then DTLS-SRTP on one 5-tuple) belongs to the DTLS dissector, tried first,
which says `dtls_multiplexed` "stun"; this one claims the flows with STUN and no DTLS of their own.

Messages are walked in order (UDP: each datagram, which may also be RTP/RTCP, ZRTP or TURN
ChannelData, told apart by the first byte as RFC 7983 says; TCP: messages and ChannelData frames
back to back, ChannelData padded to 4 bytes, RFC 8656 section 12.5), at most 256 messages, attributes
at most 64 per message.

Facts: `stun_methods` (the methods seen, first-seen order: binding, allocate, refresh, send, data,
create_permission, channel_bind, connect, connection_bind, connection_attempt, or the number),
`stun_software` (the first SOFTWARE attribute, at most 256 characters), `stun_realm` (the first
REALM: a TURN server's long-term credential realm), `stun_username` (the first USERNAME: an ICE
`ufrag:ufrag` pair or a TURN user name; a TURN password never crosses the wire, MESSAGE-INTEGRITY is
an HMAC), `stun_relayed` (what the relayed data is — TURN DATA attributes of Send/Data indications,
and ChannelData — by RFC 7983's first-byte ranges: dtls, stun, zrtp, rtp, rtcp, other),
`stun_media` (RTP/RTCP datagrams on the 5-tuple itself, outside STUN). The relayed DTLS session's
`tls` row has the TURN flow's endpoints (the peer's address is in XOR-PEER-ADDRESS, not decoded).

The encryption state: the STUN messages themselves are cleartext. When the relay carries DTLS, the
relayed datagrams are given to the DTLS dissector (each Send indication or client ChannelData as
client -> peer, each Data indication or server ChannelData as peer -> client), whose facts become the
flow's (`tls_version`, `tls_cipher`, ..., a `tls` row with protocol "dtls"; `app_protocol` stays
"stun"): `encrypted` as the relayed DTLS says, `protection` "dtls" (or "srtp" for DTLS-SRTP). Relayed
or direct RTP without DTLS leaves `encrypted` null: SRTP and RTP share their header (`tunnel` for a
relay, `undecided` for direct media; SDES keys travel in the signalling, which is elsewhere). STUN
alone (ICE connectivity checks, a TURN allocation with nothing relayed): `encrypted` False,
`protection` "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyzer.dissect import register
from analyzer.dissect.base import Column, Datagram, DissectContext, Facts, FlowPayload
from analyzer.dissect.lines import cut
from analyzer.dissect.tls import schema as tls_schema

__all__ = ["Message", "STUNDissector", "is_stun", "parse_message"]

COOKIE = b"\x21\x12\xa4\x42"
MAX_MESSAGES = 256
MAX_ATTRIBUTES = 64
MAX_RELAYED = 256  # relayed datagrams handed to the DTLS dissector

METHODS = {1: "binding", 3: "allocate", 4: "refresh", 6: "send", 7: "data", 8: "create_permission",
           9: "channel_bind", 10: "connect", 11: "connection_bind", 12: "connection_attempt"}
ATTR_USERNAME, ATTR_DATA, ATTR_REALM, ATTR_SOFTWARE = 0x0006, 0x0013, 0x0014, 0x8022
_KIND_ORDER = ("dtls", "stun", "zrtp", "turn_channel", "rtp", "rtcp", "other")

COLUMNS: tuple[Column, ...] = (
    Column("stun_methods", "string", "STUN/TURN methods seen, first-seen order (binding, allocate, send, data, ...)"),
    Column("stun_software", "string", "the first SOFTWARE attribute (at most 256 characters)"),
    Column("stun_realm", "string", "the first REALM attribute (a TURN server's realm)"),
    Column("stun_username", "string", "the first USERNAME attribute (ICE ufrag pair or TURN user name)"),
    Column("stun_relayed", "string", "what a TURN relay carried, by first byte (RFC 7983): dtls, stun, rtp, rtcp, ..."),
    Column("stun_media", "string", "RTP/RTCP datagrams on the 5-tuple outside STUN (rtp, rtcp)"),
)


@dataclass(slots=True)
class Message:
    """One STUN message: method, class (0 request, 1 indication, 2 success, 3 error), the attributes
    the facts need, and its size on the wire."""

    method: int
    klass: int
    size: int
    username: bytes | None = None
    realm: bytes | None = None
    software: bytes | None = None
    data: bytes | None = None


def is_stun(data: bytes, pos: int = 0) -> bool:
    """A STUN header at `pos`: top two bits zero, length a multiple of 4 that fits, the magic cookie."""
    if len(data) < pos + 20 or data[pos] & 0xC0 or data[pos + 4:pos + 8] != COOKIE:
        return False
    length = int.from_bytes(data[pos + 2:pos + 4], "big")
    return length % 4 == 0 and pos + 20 + length <= len(data)


def parse_message(data: bytes, pos: int = 0) -> Message | None:
    """The message at `pos` (None when it is not a whole STUN message). Never raises."""
    if not is_stun(data, pos):
        return None
    mtype = int.from_bytes(data[pos:pos + 2], "big")
    length = int.from_bytes(data[pos + 2:pos + 4], "big")
    method = (mtype & 0x000F) | ((mtype & 0x00E0) >> 1) | ((mtype & 0x3E00) >> 2)
    klass = ((mtype & 0x0010) >> 4) | ((mtype & 0x0100) >> 7)
    out = Message(method, klass, 20 + length)
    at, end = pos + 20, pos + 20 + length
    for _ in range(MAX_ATTRIBUTES):
        if at + 4 > end:
            break
        atype = int.from_bytes(data[at:at + 2], "big")
        alen = int.from_bytes(data[at + 2:at + 4], "big")
        value = data[at + 4:min(end, at + 4 + alen)]
        if atype == ATTR_USERNAME and out.username is None:
            out.username = value
        elif atype == ATTR_REALM and out.realm is None:
            out.realm = value
        elif atype == ATTR_SOFTWARE and out.software is None:
            out.software = value
        elif atype == ATTR_DATA and out.data is None:
            out.data = value
        at += 4 + alen + (-alen % 4)
    return out


def _kind(data: bytes) -> str:
    """RFC 7983's first-byte ranges."""
    first = data[0]
    if first <= 3:
        return "stun"
    if 16 <= first <= 19:
        return "zrtp"
    if 20 <= first <= 63:
        return "dtls"
    if 64 <= first <= 79:
        return "turn_channel"
    if 128 <= first <= 191:
        return "rtcp" if len(data) > 1 and 192 <= data[1] <= 223 else "rtp"
    return "other"


@dataclass(slots=True)
class _Walk:
    """What the flow's messages said, in order."""

    methods: list[str] = field(default_factory=list)
    software: bytes | None = None
    realm: bytes | None = None
    username: bytes | None = None
    relayed: set[str] = field(default_factory=set)
    media: set[str] = field(default_factory=set)
    relayed_dgs: list[tuple[bool, bytes]] = field(default_factory=list)  # (client -> peer, datagram)
    count: int = 0

    def message(self, m: Message, from_client: bool) -> None:
        self.count += 1
        name = METHODS.get(m.method, str(m.method))
        if name not in self.methods:
            self.methods.append(name)
        self.software = self.software or m.software
        self.realm = self.realm or m.realm
        self.username = self.username or m.username
        if m.data and m.method in (6, 7):  # Send / Data indications carry the peer's datagrams
            self.relay(m.data, m.method == 6)

    def relay(self, data: bytes, to_peer: bool) -> None:
        kind = _kind(data)
        self.relayed.add(kind)
        if kind == "dtls" and len(self.relayed_dgs) < MAX_RELAYED:
            self.relayed_dgs.append((to_peer, data))


def _walk_stream(data: bytes, from_client: bool, walk: _Walk) -> None:
    """STUN messages and ChannelData frames back to back in one TCP direction."""
    pos = 0
    while pos + 4 <= len(data) and walk.count < MAX_MESSAGES:
        first = data[pos]
        if 0x40 <= first <= 0x7F:  # ChannelData: channel, length, data, padded to 4 over TCP
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            payload = data[pos + 4:pos + 4 + length]
            if len(payload) < length:
                return
            if payload:
                walk.relay(payload, from_client)
            walk.count += 1
            pos += 4 + length + (-length % 4)
            continue
        m = parse_message(data, pos)
        if m is None:
            return
        walk.message(m, from_client)
        pos += m.size


def _walk_datagrams(datagrams: list[Datagram], walk: _Walk) -> None:
    for dg in datagrams[:MAX_MESSAGES * 2]:
        data = bytes(dg.payload)
        if not data:
            continue
        kind = _kind(data)
        if kind == "stun":
            m = parse_message(data)
            if m is not None:
                walk.message(m, dg.to_server)
        elif kind == "turn_channel" and len(data) >= 4:
            payload = data[4:4 + int.from_bytes(data[2:4], "big")]
            if payload:
                walk.relay(payload, dg.to_server)
        elif kind in ("rtp", "rtcp"):
            walk.media.add(kind)


def _joined(kinds: set[str]) -> str | None:
    return ",".join(k for k in _KIND_ORDER if k in kinds) or None


class STUNDissector:
    """STUN / TURN over UDP and TCP, found by content on any port."""

    name = "stun"
    app_protocols = ("stun",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"udp", "tcp"})
    ports = frozenset({3478})
    # its own columns, and the TLS family's (the relayed DTLS session's facts; equal declarations)
    columns = COLUMNS + tls_schema.FLOW_COLUMNS
    frames = tls_schema.FRAMES

    def __init__(self, dtls: Any = None, context: DissectContext | None = None) -> None:
        self.dtls = dtls
        self.context = context  # a run instance's: its relayed DTLS sessions share one DTLS run instance

    def for_run(self, context: DissectContext) -> STUNDissector:
        # the run's DTLS instance is made with the first relayed DTLS session (the DTLS implementation
        # is imported then, not when every run starts: analyzer.dissect.LIGHT_PROTOTYPES)
        return STUNDissector(context=context)

    def probe(self, flow: FlowPayload) -> bool:
        """A whole STUN message first: the first datagram with payload (UDP), the client's bytes, or
        the server's when the client's are missing (TCP). The cookie is compared before anything else."""
        if flow.transport == "udp":
            for dg in flow.datagrams[:4]:
                payload = dg.payload
                if payload:
                    return payload[4:8] == COOKIE and is_stun(bytes(payload))
            return False
        data = flow.to_server.data or flow.to_client.data
        return data[4:8] == COOKIE and is_stun(data)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        walk = _Walk()
        if flow.transport == "udp":
            _walk_datagrams(flow.datagrams, walk)
        else:
            _walk_stream(flow.to_server.data, True, walk)
            _walk_stream(flow.to_client.data, False, walk)
        out: dict[str, object] = {
            "app_protocol": "stun",
            "stun_methods": ",".join(walk.methods) or None,
            "stun_software": cut(walk.software, 256) if walk.software else None,
            "stun_realm": cut(walk.realm, 256) if walk.realm else None,
            "stun_username": cut(walk.username, 256) if walk.username else None,
            "stun_relayed": _joined(walk.relayed),
            "stun_media": _joined(walk.media),
        }
        if walk.relayed_dgs:
            self._relayed_dtls(flow, walk, facts, out)
        elif walk.relayed - {"stun"} or walk.media:
            out.update(encrypted=None, undecided_reason="tunnel" if walk.relayed else "undecided")
        else:
            out.update(encrypted=False, protection="none")
        facts.flow.update({k: v for k, v in out.items() if v is not None or k in ("encrypted",)})
        return facts

    def _relayed_dtls(self, flow: FlowPayload, walk: _Walk, facts: Facts, out: dict[str, object]) -> None:
        """The DTLS session inside the relay, read by the DTLS dissector from the relayed datagrams."""
        from analyzer.dissect.dtls import DTLSDissector

        inner = FlowPayload(flow.uid, "udp", flow.client_ip, flow.server_ip, flow.client_port, flow.server_port,
                            flow.ts_start)
        ts = float(flow.ts_start or 0.0)
        for i, (to_peer, data) in enumerate(walk.relayed_dgs):
            inner.datagrams.append(Datagram(ts + i * 1e-6, to_peer, data))
        dtls = self.dtls
        if dtls is None:
            dtls = DTLSDissector()
            if self.context is not None:
                dtls = self.dtls = dtls.for_run(self.context)
        relayed = dtls.dissect(inner)
        state = {k: relayed.flow.get(k) for k in ("encrypted", "protection", "undecided_reason")}
        facts.merge(relayed)
        facts.flow.pop("dtls_multiplexed", None)
        out.update(state)
        out["app_protocol"] = "stun"
        if out.get("encrypted") is None and out.get("protection") is None:
            out.update(protection="dtls", undecided_reason=out.get("undecided_reason") or "handshake_incomplete")


DISSECTOR = register(STUNDissector())
