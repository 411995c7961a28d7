"""SNMP v1, v2c (RFC 1157, RFC 3416) and v3 (RFC 3412 6, USM RFC 3414 2.4) over UDP, facts only.

`app_protocol`: "snmp". Found by content on any port: a datagram that is a BER SEQUENCE starting with
the version INTEGER (0, 1 or 3) followed by a community OCTET STRING (v1/v2c) or the msgGlobalData
SEQUENCE (v3); 161 (agent) and 162 (traps) are hints.

What is read: the first 32 datagrams of the flow (the flow table keeps those), each one SNMP message.
- v1/v2c: the community string and the PDU type. The community IS the secret (anyone who reads it
  can query, or with a write community reconfigure, the agent): each distinct community is a
  `credentials` row (mechanism "community", no user name, its length and keyed fingerprint, never
  the string), `accepted` True when the agent answered a request carrying it (a wrong community gets
  no answer in v1/v2c, so otherwise it stays unknown). `encrypted` False, `protection` "none".
- v3: msgFlags (authFlag 0x01, privFlag 0x02) and the USM user name. `snmp_security_level` is the
  highest level among the flow's messages (noAuthNoPriv, authNoPriv, authPriv: the engine-ID
  discovery at the start of a session is always noAuthNoPriv). With privacy the scopedPDU travels as
  an encryptedPDU OCTET STRING: `encrypted` True, `protection` "snmpv3". Without it the PDU is
  readable: `encrypted` False and `protection` "none" (authentication protects integrity, not
  confidentiality), the user name in `snmp_user`. v3 sends no reusable secret (authentication is an
  HMAC): no credentials row.

Anchors: Zeek's SNMP analyzer (`base/protocols/snmp/main.zeek`: version, community, PDU counts; its
`snmp-protocol.pac` for the v3 header) and dpkt's `snmp.py` (the v1 message layout).
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.ber import INTEGER, OCTET_STRING, SEQUENCE, Element, children, integer, read
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import cut

__all__ = ["SNMPDissector", "parse_snmp"]

MAX_COMMUNITIES = 8  # distinct communities given a credentials row per flow
VERSIONS = {0: "1", 1: "2c", 3: "3"}
PDUS = {0xA0: "get-request", 0xA1: "get-next-request", 0xA2: "response", 0xA3: "set-request", 0xA4: "trap",
        0xA5: "get-bulk-request", 0xA6: "inform-request", 0xA7: "snmpv2-trap", 0xA8: "report"}
RESPONSE = 0xA2
LEVELS = ("noAuthNoPriv", "authNoPriv", "authPriv")

COLUMNS: tuple[Column, ...] = (
    Column("snmp_version", "string", "SNMP version of the first message: 1, 2c or 3"),
    Column("snmp_pdu", "string", "the first readable PDU's type (get-request, response, trap, ...)"),
    Column("snmp_security_level", "string", "v3: the highest msgFlags level seen (noAuthNoPriv, authNoPriv, authPriv)"),
    Column("snmp_user", "string", "v3: the first non-empty USM user name (at most 256 characters)"),
    Column("snmp_messages", "Int32", "SNMP messages read (of the flow's first 32 datagrams)"),
)


class Message:
    """One SNMP message: version; v1/v2c community; v3 flags and user; the PDU tag when readable."""

    __slots__ = ("community", "flags", "pdu", "user", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        self.community: bytes | None = None
        self.flags = 0
        self.user: bytes | None = None
        self.pdu: int | None = None


def _v3(data: bytes, parts: list[Element], msg: Message) -> Message | None:
    """msgGlobalData (msgFlags), msgSecurityParameters (USM user name) and msgData."""
    if len(parts) < 4 or parts[1].tag != SEQUENCE or parts[2].tag != OCTET_STRING:
        return None
    header = children(data, parts[1], 4)
    if len(header) < 4 or header[2].tag != OCTET_STRING or header[2].end - header[2].start != 1:
        return None
    msg.flags = data[header[2].start]
    model = integer(data, header[3])
    usm = read(data, parts[2].start, parts[2].end)
    if model == 3 and usm is not None and usm.tag == SEQUENCE:
        fields = children(data, usm, 6)
        if len(fields) >= 4 and fields[3].tag == OCTET_STRING:
            msg.user = data[fields[3].start:fields[3].end]
    body = parts[3]
    if body.tag == SEQUENCE:  # a plaintext scopedPDU: contextEngineID, contextName, PDU
        scoped = children(data, body, 3)
        if len(scoped) == 3:
            msg.pdu = scoped[2].tag
    elif body.tag != OCTET_STRING:  # the encryptedPDU is an OCTET STRING
        return None
    return msg


def parse_snmp(data: bytes) -> Message | None:
    """The SNMP message of one datagram, None when it is not one."""
    outer = read(data, 0)
    if outer is None or outer.tag != SEQUENCE:
        return None
    parts = children(data, outer, 4)
    if len(parts) < 3 or parts[0].tag != INTEGER:
        return None
    version = integer(data, parts[0])
    if version not in VERSIONS:
        return None
    msg = Message(version)
    if version == 3:
        return _v3(data, parts, msg)
    if parts[1].tag != OCTET_STRING or parts[2].tag not in PDUS:
        return None
    msg.community = data[parts[1].start:parts[1].end]
    msg.pdu = parts[2].tag
    return msg


def _looks_like_snmp(data: bytes) -> bool:
    """SEQUENCE, a length, INTEGER 0/1/3, then an OCTET STRING (v1/v2c) or a SEQUENCE (v3)."""
    if len(data) < 8 or data[0] != SEQUENCE:
        return False
    n = data[1]
    pos = 2 + (n & 0x7F if n & 0x80 else 0)
    if n == 0x80 or n > 0x84 or pos + 4 > len(data):
        return False
    if data[pos:pos + 2] != b"\x02\x01" or data[pos + 2] not in (0, 1, 3):
        return False
    return data[pos + 3] == (SEQUENCE if data[pos + 2] == 3 else OCTET_STRING)


class SNMPDissector:
    """SNMP over UDP, found by content on any port."""

    name = "snmp"
    app_protocols = ("snmp",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"udp"})
    ports = frozenset({161, 162})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> SNMPDissector:
        return SNMPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        first = next((d.payload for d in flow.datagrams if d.payload), None)
        return first is not None and _looks_like_snmp(first)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "snmp"}
        level = -1
        communities: dict[bytes, None] = {}  # distinct communities of requests and traps, in order
        answered: set[bytes] = set()  # communities of responses
        bad = count = 0
        for dg in flow.datagrams:
            msg = parse_snmp(dg.payload)
            if msg is None:
                bad += 1
                continue
            count += 1
            out.setdefault("snmp_version", VERSIONS[msg.version])
            if msg.pdu is not None:
                out.setdefault("snmp_pdu", PDUS.get(msg.pdu, f"tag_{msg.pdu:#04x}"))
            if msg.version == 3:
                level = max(level, 2 if msg.flags & 0x02 else (1 if msg.flags & 0x01 else 0))
                if msg.user:
                    out.setdefault("snmp_user", cut(msg.user))
            elif msg.community is not None:
                if msg.pdu == RESPONSE:
                    answered.add(msg.community)
                elif len(communities) < MAX_COMMUNITIES:
                    communities.setdefault(msg.community)
        if bad:
            facts.anomaly("snmp_message_malformed", f"{bad} datagram(s) of the flow are not SNMP messages")
        out["snmp_messages"] = count
        if level >= 0:
            out["snmp_security_level"] = LEVELS[level]
        if level == 2:
            out.update(encrypted=True, protection="snmpv3")
        else:
            out.update(encrypted=False, protection="none")
        if self.rows:
            for community in communities:
                facts.add_row("credentials", credential_row(self.key, "snmp", "community", None, community,
                                                            True if community in answered else None))
            for community in sorted(answered - communities.keys())[:MAX_COMMUNITIES]:  # only answers captured
                facts.add_row("credentials", credential_row(self.key, "snmp", "community", None, community, True))
        facts.flow.update(out)
        return facts


DISSECTOR = register(SNMPDissector())
