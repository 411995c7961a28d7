"""DNS over UDP and TCP (RFC 1035 4.1, RFC 7766 for TCP), and its link-local siblings mDNS (RFC 6762)
and LLMNR (RFC 4795), facts only.

`app_protocol`: "dns"; "mdns" when a side uses port 5353 and "llmnr" when a side uses port 5355
(the three share the message format, so the port only names which one it is; content decides that
the flow is a DNS-format message exchange at all). Port 137 (NetBIOS name service) also uses the
format, with its own name encoding: it is not claimed here.

What is read: the 12-byte header of each message (the first 32 datagrams of a UDP flow, or the
length-prefixed messages of a TCP stream, RFC 1035 4.2.2, at most `MAX_MESSAGES` per direction),
and the first question of the first message that has one (name, QTYPE). Facts:
`dns_query` (the first question's name, dotted, cut to 256 characters), `dns_qtype` and
`dns_qtype_name`, `dns_rcode` and `dns_rcode_name` (of the first response), `dns_queries` and
`dns_responses` (messages with QR 0 / 1 seen), `dns_answers` (ANCOUNT of the first response).
DNS is cleartext: `encrypted` False, `protection` "none" (DNS over TLS, DoH and DoQ are TLS/QUIC
flows and never reach this dissector's content check).

Modelled on Zeek's DNS analyzer (`base/protocols/dns/main.zeek` logs query, qtype/qtype_name,
rcode/rcode_name, the answer count) and dpkt's `dns.py` (header layout, label and pointer
decoding). Wire data is hostile: label walks are bounded (at most 128 labels, 255 bytes of name,
16 compression pointers followed, each pointing strictly backwards).
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.lines import cut

__all__ = ["DNSDissector", "parse_header", "parse_question"]

MAX_MESSAGES = 64  # messages read per direction of a TCP stream
MAX_LABELS = 128
MAX_NAME = 255  # RFC 1035 2.3.4: a name in wire form is at most 255 bytes
MAX_POINTERS = 16
_HEADER = struct.Struct(">HHHHHH")
_OPCODES = frozenset({0, 1, 2, 4, 5, 6})  # QUERY, IQUERY, STATUS, NOTIFY, UPDATE, DSO
_CLASSES = frozenset({1, 3, 4, 254, 255})  # IN, CH, HS, NONE, ANY (mDNS: the top bit is QU / cache-flush)
MDNS_PORT, LLMNR_PORT, NBNS_PORTS = 5353, 5355, frozenset({137, 138})

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
          50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG", 251: "IXFR",
          252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
          7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}

COLUMNS: tuple[Column, ...] = (
    Column("dns_query", "string", "the first question's name, dotted (at most 256 characters)"),
    Column("dns_qtype", "Int32", "the first question's QTYPE (1 A, 28 AAAA, ...)"),
    Column("dns_qtype_name", "string", "the first question's QTYPE by name (TYPEn when unnamed)"),
    Column("dns_rcode", "Int32", "the RCODE of the first response"),
    Column("dns_rcode_name", "string", "the first response's RCODE by name (NOERROR, NXDOMAIN, ...)"),
    Column("dns_queries", "Int32", "DNS messages with QR=0 (queries) seen in the flow's first datagrams/bytes"),
    Column("dns_responses", "Int32", "DNS messages with QR=1 (responses) seen"),
    Column("dns_answers", "Int32", "ANCOUNT of the first response"),
)


def parse_header(msg: bytes) -> tuple[int, int, int, int, int, int] | None:
    """(id, flags, qdcount, ancount, nscount, arcount), None when shorter than a header or the
    opcode is not one of DNS's."""
    if len(msg) < 12:
        return None
    header = _HEADER.unpack_from(msg)
    if (header[1] >> 11) & 0xF not in _OPCODES:
        return None
    return header


def read_name(msg: bytes, pos: int) -> tuple[bytes, int] | None:
    """(dotted name, offset after the name in place) of the name at `pos`, following compression
    pointers backwards only; None when malformed."""
    labels: list[bytes] = []
    end = -1
    size = 0
    jumps = 0
    for _ in range(MAX_LABELS):
        if pos >= len(msg):
            return None
        n = msg[pos]
        if n == 0:
            return b".".join(labels), (pos + 1 if end < 0 else end)
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg) or jumps >= MAX_POINTERS:
                return None
            target = ((n & 0x3F) << 8) | msg[pos + 1]
            if target >= pos:  # a pointer must point to an earlier name (no loops)
                return None
            if end < 0:
                end = pos + 2
            pos, jumps = target, jumps + 1
            continue
        if n & 0xC0:  # 0x40/0x80: extended label types (RFC 6891 retired them)
            return None
        size += n + 1
        if size > MAX_NAME or pos + 1 + n > len(msg):
            return None
        labels.append(msg[pos + 1:pos + 1 + n])
        pos += 1 + n
    return None


def parse_question(msg: bytes) -> tuple[bytes, int, int] | None:
    """(name, qtype, qclass) of the first question (right after the header), None when malformed."""
    got = read_name(msg, 12)
    if got is None:
        return None
    name, pos = got
    if pos + 4 > len(msg):
        return None
    qtype, qclass = struct.unpack_from(">HH", msg, pos)
    if qtype == 0 or (qclass & 0x7FFF) not in _CLASSES:
        return None
    return name, qtype, qclass


def looks_like_dns(msg: bytes) -> bool:
    """A DNS message: a header with a DNS opcode and sane counts, and, when it has questions, a
    well-formed first question (name labels, a known class). A response without questions (an mDNS
    announcement, a bare FORMERR) is either exactly a header or its first record's name, type and
    class parse the same way."""
    return _looks(msg)[0]


def _looks(msg: bytes) -> tuple[bool, tuple[bytes, int, int] | None]:
    """looks_like_dns(msg), and the first question it parsed for it (None when it parsed none)."""
    header = parse_header(msg)
    if header is None:
        return False, None
    _, flags, qd, an, ns, ar = header
    if qd > 64 or an > 512 or ns > 512 or ar > 512:
        return False, None
    if qd == 0:  # only a response: an empty one, or records (an mDNS announcement) whose first parses
        if not flags & 0x8000:
            return False, None
        if an + ns + ar == 0:
            return len(msg) == 12, None
    question = parse_question(msg)
    return question is not None, question


def _tcp_messages(data: bytes) -> list[bytes]:
    """The length-prefixed messages of one direction of a TCP stream (RFC 1035 4.2.2), complete ones
    only, at most MAX_MESSAGES."""
    out: list[bytes] = []
    pos = 0
    while len(out) < MAX_MESSAGES and pos + 2 <= len(data):
        (n,) = struct.unpack_from(">H", data, pos)
        if n < 12 or pos + 2 + n > len(data):
            break
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


def _variant(flow: FlowPayload) -> str:
    ports = (flow.server_port, flow.client_port)
    if MDNS_PORT in ports:
        return "mdns"
    if LLMNR_PORT in ports:
        return "llmnr"
    return "dns"


class DNSDissector:
    """DNS (and mDNS, LLMNR) over UDP and TCP, found by content on any port."""

    name = "dns"
    app_protocols = ("dns", "mdns", "llmnr")  # the app_protocol values it sets (README)
    transports = frozenset({"udp", "tcp"})
    ports = frozenset({53, MDNS_PORT, LLMNR_PORT})
    columns = COLUMNS
    frames = ()

    def __init__(self) -> None:
        # the message the last probe parsed a question of, and that question: the dissect that
        # follows a probe reads the same first question (one parse per flow, not two)
        self._probed: tuple[bytes, tuple[bytes, int, int]] | None = None

    def for_run(self, context: DissectContext) -> DNSDissector:
        return DNSDissector()  # the probe's memo belongs to one run

    def probe(self, flow: FlowPayload) -> bool:
        self._probed = None
        if flow.server_port in NBNS_PORTS or flow.client_port in NBNS_PORTS:
            return False
        if flow.transport == "udp":
            # the first datagram decides: a flow whose first payload is not DNS is something else
            first = next((d.payload for d in flow.datagrams if d.payload), None)
            if first is None:
                return False
        else:
            data = flow.to_server.data
            if len(data) < 14 or not flow.to_server.start_known:
                return False
            (n,) = struct.unpack_from(">H", data)
            if n < 12:
                return False
            first = data[2:2 + n]
        ok, question = _looks(first)
        if question is not None:
            self._probed = (first, question)
        return ok

    def _question(self, msg: bytes) -> tuple[bytes, int, int] | None:
        """parse_question(msg), from the probe's memo when the probe parsed this message."""
        probed = self._probed
        if probed is not None and (probed[0] is msg or probed[0] == msg):
            return probed[1]
        return parse_question(msg)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        if flow.transport == "udp":
            messages = [(d.to_server, d.payload) for d in flow.datagrams if d.payload]
        else:
            # both directions in order of direction only: the counts and the first question and
            # response do not need the interleaving
            messages = [(True, m) for m in _tcp_messages(flow.to_server.data)]
            messages += [(False, m) for m in _tcp_messages(flow.to_client.data)]
        out: dict[str, object] = {"app_protocol": _variant(flow), "encrypted": False, "protection": "none"}
        queries = responses = 0
        bad = 0
        for _, msg in messages:
            header = parse_header(msg)
            if header is None:
                bad += 1
                continue
            flags, qd = header[1], header[2]
            if flags & 0x8000:
                responses += 1
                if "dns_rcode" not in out:
                    rcode = flags & 0xF
                    out["dns_rcode"] = rcode
                    out["dns_rcode_name"] = RCODES.get(rcode, f"RCODE{rcode}")
                    out["dns_answers"] = header[3]
            else:
                queries += 1
            if qd and "dns_query" not in out:
                question = self._question(msg)
                if question is None:
                    facts.anomaly("dns_question_malformed", "the first question's name or type does not parse")
                    continue
                name, qtype, _ = question
                out["dns_query"] = cut(name)
                out["dns_qtype"] = qtype
                out["dns_qtype_name"] = QTYPES.get(qtype, f"TYPE{qtype}")
        if bad:
            facts.anomaly("dns_message_malformed", f"{bad} message(s) too short or of an unknown opcode")
        out["dns_queries"], out["dns_responses"] = queries, responses
        facts.flow.update(out)
        return facts


DISSECTOR = register(DNSDissector())
