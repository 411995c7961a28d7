"""SIP over UDP and TCP (RFC 3261 7, 20, 22), facts only.

`app_protocol`: "sip". Found by content on any port: the first message (after keep-alive CR LFs,
RFC 5626 4.4.1) starts with a request line `METHOD sip:...|sips:...|tel:... SIP/2.0` or a status
line `SIP/2.0 NNN`; 5060 is a hint (5061 is SIP over TLS: the TLS dissector's).

What is read: the messages of each datagram of a UDP flow (its first 32), or of a TCP stream's first
bytes (framed by Content-Length, at most `MAX_MESSAGES` per direction), start line and headers
(compact forms f/t/i/m understood). Facts: `sip_method` (the first request's), `sip_status` (the
first response's code), the domain parts of the first From and To URIs and of the Call-ID (the
user parts are personal data and are not kept), `sip_user_agent` (User-Agent or Server), all cut.
Authorization / Proxy-Authorization `Digest` (RFC 3261 22.4) is a `credentials` row (mechanism
"digest", the `username` parameter; a challenge-response: no secret, and the `response` hash is
never read into a fact); `accepted` False when the request is answered 401/407/403 again, True when
answered 2xx. SIP signalling is cleartext: `encrypted` False, `protection` "none" (the media, RTP or
SRTP, are other flows).

Anchors: Zeek's SIP analyzer (`base/protocols/sip/main.zeek`: method, uri, status_code, request_from,
request_to, call_id, user_agent), dpkt's `sip.py` (start-line and header parsing on top of http).
"""

from __future__ import annotations

import re

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import cut, lazy_pattern

__all__ = ["SIPDissector", "parse_messages"]

MAX_MESSAGES = 32
MAX_HEADERS = 64
MAX_HEAD = 8192
_METHODS = (b"INVITE", b"ACK", b"BYE", b"CANCEL", b"REGISTER", b"OPTIONS", b"PRACK", b"SUBSCRIBE", b"NOTIFY",
            b"PUBLISH", b"INFO", b"REFER", b"MESSAGE", b"UPDATE")
_REQUEST = lazy_pattern(rb"(%s) (sips?:|tel:)[^ \r\n]{1,1024} SIP/2\.0\r?\n" % b"|".join(_METHODS))
_STATUS = lazy_pattern(rb"SIP/2\.0 ([1-6][0-9][0-9])[ \r\n]")
_COMPACT = {b"f": b"from", b"t": b"to", b"i": b"call-id", b"m": b"contact", b"l": b"content-length"}
_HOST = lazy_pattern(rb"(?:sips?|tel):(?:[^@;>\s]*@)?([^;>:\s?]+)", re.IGNORECASE)
_USERNAME = lazy_pattern(rb'username\s*=\s*"([^"]{0,256})"', re.IGNORECASE)

COLUMNS: tuple[Column, ...] = (
    Column("sip_method", "string", "the first request's method (INVITE, REGISTER, OPTIONS, ...)"),
    Column("sip_status", "Int32", "the first response's status code"),
    Column("sip_from_domain", "string", "the host part of the first From URI"),
    Column("sip_to_domain", "string", "the host part of the first To URI"),
    Column("sip_call_id_domain", "string", "the part of the first Call-ID after '@' (when it has one)"),
    Column("sip_user_agent", "string", "the first User-Agent (or Server) header"),
)


class Message:
    """One SIP message: method (requests) or status (responses), and its headers by lower-case name."""

    __slots__ = ("headers", "method", "status")

    def __init__(self, method: bytes | None, status: int | None, headers: dict[bytes, bytes]) -> None:
        self.method = method
        self.status = status
        self.headers = headers


def _parse(head: bytes) -> Message | None:
    req = _REQUEST().match(head)
    status = None if req else _STATUS().match(head)
    if req is None and status is None:
        return None
    headers: dict[bytes, bytes] = {}
    for line in head.split(b"\n", MAX_HEADERS + 1)[1:MAX_HEADERS + 1]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        headers.setdefault(key, value.strip())
    return Message(req.group(1) if req else None, int(status.group(1)) if status else None, headers)


def parse_messages(data: bytes, most: int = MAX_MESSAGES) -> list[Message]:
    """The SIP messages at the start of `data` (a datagram or a stream), skipping keep-alive CR LFs;
    stops at the first thing that is not one."""
    out: list[Message] = []
    pos = 0
    while len(out) < most:
        while data[pos:pos + 2] == b"\r\n":
            pos += 2
        if pos >= len(data):
            break
        end = data.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
        head = data[pos:end if end >= 0 else pos + MAX_HEAD]
        msg = _parse(head)
        if msg is None:
            break
        out.append(msg)
        if end < 0:
            break
        length = msg.headers.get(b"content-length", b"0")
        body = int(length) if length.isdigit() and len(length) < 9 else 0
        pos = end + 4 + body
    return out


def _host(value: bytes | None) -> str | None:
    if not value:
        return None
    m = _HOST().search(value[:1024])
    return cut(m.group(1).lower()) if m else None


class SIPDissector:
    """SIP over UDP and TCP, found by its start line on any port."""

    name = "sip"
    app_protocols = ("sip",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"udp", "tcp"})
    ports = frozenset({5060})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> SIPDissector:
        return SIPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        if flow.transport == "udp":
            first = next((d.payload for d in flow.datagrams[:4] if d.payload.strip(b"\r\n\0")), None)
        else:
            first = flow.to_server.data or flow.to_client.data
        if not first:
            return False
        head = first.lstrip(b"\r\n")[:1100]
        return _REQUEST().match(head) is not None or _STATUS().match(head) is not None

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        if flow.transport == "udp":
            messages = [m for d in flow.datagrams for m in parse_messages(d.payload, 1)]
        else:
            messages = parse_messages(flow.to_server.data) + parse_messages(flow.to_client.data)
        out: dict[str, object] = {"app_protocol": "sip", "encrypted": False, "protection": "none"}
        pending: list[tuple[bytes, bytes]] = []  # (Call-ID + CSeq, username) of requests with Digest
        answers: dict[bytes, int] = {}
        for msg in messages:
            h = msg.headers
            if msg.method is not None:
                out.setdefault("sip_method", msg.method.decode("ascii"))
            elif msg.status is not None:
                out.setdefault("sip_status", msg.status)
            for name, column in ((b"from", "sip_from_domain"), (b"to", "sip_to_domain")):
                if column not in out and (host := _host(h.get(name))):
                    out[column] = host
            call_id = h.get(b"call-id", b"")
            if "sip_call_id_domain" not in out and b"@" in call_id:
                out["sip_call_id_domain"] = cut(call_id.rsplit(b"@", 1)[1].lower())
            agent = h.get(b"user-agent") or h.get(b"server")
            if agent and "sip_user_agent" not in out:
                out["sip_user_agent"] = cut(agent)
            key = call_id + b"|" + h.get(b"cseq", b"")
            if msg.status is not None:
                answers.setdefault(key, msg.status)
            auth = h.get(b"authorization") or h.get(b"proxy-authorization")
            if msg.method is not None and auth and auth[:7].lower() == b"digest " and len(pending) < 16:
                m = _USERNAME().search(auth[:4096])
                pending.append((key, m.group(1) if m else b""))
        if self.rows:
            for key, user in pending:
                code = answers.get(key)
                accepted = None if code is None or code < 200 else (True if code < 300 else
                                                                     False if code in (401, 403, 407) else None)
                facts.add_row("credentials", credential_row(self.key, "sip", "digest", user or None, None, accepted))
        if not messages:
            facts.anomaly("sip_message_malformed", "no complete SIP start line in the flow's first bytes")
        facts.flow.update(out)
        return facts


DISSECTOR = register(SIPDissector())
