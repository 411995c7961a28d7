"""NTP over UDP (RFC 5905 7.3), its symmetric-key MAC and NTS extension fields (RFC 8915), facts only.

`app_protocol`: "ntp". Found by content: a datagram of at least 48 bytes whose first byte has a
version 1-4 and a mode 1-5 (symmetric active/passive, client, server, broadcast), plus a plausible
stratum (0-16) and poll exponent; mode 6 (control, `ntpq`) and 7 (private, `ntpdc`/monlist) have
their own short headers and are recognised by version and mode with the control header's layout.
Port 123 is a hint (both ends usually use it, or the client an ephemeral port).

Facts: `ntp_version`, `ntp_mode` (the first message's, by name), `ntp_stratum` (the first server
reply's, else the first message's), `ntp_auth`: "nts" when NTS extension fields are present (Unique
Identifier 0x0104, NTS Cookie 0x0204, Cookie Placeholder 0x0304, NTS Authenticator and Encrypted
Extension Fields 0x0404), "symmetric_key" when a MAC follows the header (key id + 16/20-byte
digest, RFC 5905 7.3 / RFC 8573), else "none".

What `encrypted` means for NTP: the time fields of an NTP packet are never encrypted, not even
with NTS. NTS (RFC 8915) authenticates the header (AEAD over it, keys from an NTS-KE TLS session on
TCP 4460) and encrypts only the cookies carried in extension fields; a passive observer still reads
every timestamp. So `encrypted` is False for every NTP flow, and `protection` names what protects
it: "nts" with NTS (authenticated, not confidential), "none" otherwise (a symmetric-key MAC
authenticates too, and is named in `ntp_auth`, but is not a mechanism of the vocabulary: the key is
pre-shared, nothing is negotiated). The policy layer decides whether authenticated time is enough.

Anchors: Zeek's NTP analyzer (`base/protocols/ntp/main.zeek`: version, mode, stratum, poll,
precision, the reference id) and dpkt's `ntp.py` (the 48-byte header layout).
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload

__all__ = ["NTPDissector", "parse_ntp"]

HEADER = 48
MODES = {1: "symmetric_active", 2: "symmetric_passive", 3: "client", 4: "server", 5: "broadcast", 6: "control",
         7: "private"}
NTS_FIELDS = frozenset({0x0104, 0x0204, 0x0304, 0x0404})
MAX_FIELDS = 16

COLUMNS: tuple[Column, ...] = (
    Column("ntp_version", "Int32", "NTP version of the first message (1-4)"),
    Column("ntp_mode", "string", "the first message's mode: client, server, symmetric_active, broadcast, control, ..."),
    Column("ntp_stratum", "Int32", "stratum of the first server reply (of the first message when none)"),
    Column("ntp_auth", "string", "authentication on the messages: nts, symmetric_key or none"),
)


def parse_ntp(data: bytes) -> tuple[int, int, int | None, str] | None:
    """(version, mode, stratum or None for control/private messages, auth) of one datagram; None when
    it is not an NTP message."""
    if len(data) < 8:
        return None
    version, mode = (data[0] >> 3) & 7, data[0] & 7
    if not 1 <= version <= 4 or mode == 0:
        return None
    if mode in (6, 7):
        # control (RFC 9327: 12-byte header, count at 10) / private (mode 7: implementation-specific)
        opcode = data[1] & 0x1F  # RFC 9327: 1-7; ntpd adds up to 12 (mrulist, ordlist, reqnonce)
        if mode == 6 and 1 <= opcode <= 12 and len(data) >= 12 \
                and 12 + int.from_bytes(data[10:12], "big") <= len(data):
            return version, mode, None, "none"
        if mode == 7 and len(data) >= 8:
            return version, mode, None, "none"
        return None
    if len(data) < HEADER:
        return None
    stratum, poll = data[1], data[2]
    if stratum > 16 or (poll > 17 and poll < 0xF0):  # poll is a signed log2 in seconds
        return None
    return version, mode, stratum, _auth(data)


def _auth(data: bytes) -> str:
    """What follows the 48-byte header: extension fields (NTS among them) and/or a MAC."""
    pos = HEADER
    rest = len(data) - pos
    if rest in (20, 24):  # key id + MD5 / SHA-1 digest, no extension fields
        return "symmetric_key"
    for _ in range(MAX_FIELDS):
        if len(data) - pos < 4:
            break
        kind = int.from_bytes(data[pos:pos + 2], "big")
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if kind in NTS_FIELDS:
            return "nts"
        if length < 4 or length % 4 or pos + length > len(data):
            break
        pos += length
    if len(data) - pos in (20, 24) and pos > HEADER:
        return "symmetric_key"
    return "none"


class NTPDissector:
    """NTP over UDP, found by content (version and mode, a full header) on any port."""

    name = "ntp"
    app_protocols = ("ntp",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"udp"})
    ports = frozenset({123})
    columns = COLUMNS
    frames = ()

    def for_run(self, context: DissectContext) -> NTPDissector:
        return self

    def probe(self, flow: FlowPayload) -> bool:
        first = next((d.payload for d in flow.datagrams if d.payload), None)
        if first is None:
            return False
        parsed = parse_ntp(first)
        # off port 123 only the full header of NTPv3/v4 modes 1-5: control and private messages (6,
        # 7) and old versions have too few fixed bits to be told from other binary payloads
        return parsed is not None and (123 in (flow.server_port, flow.client_port)
                                       or (parsed[0] >= 3 and parsed[1] < 6))

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "ntp", "encrypted": False}
        auth = "none"
        bad = 0
        first: int | None = None
        reply: int | None = None
        for dg in flow.datagrams:
            msg = parse_ntp(dg.payload)
            if msg is None:
                bad += 1
                continue
            version, mode, stratum, how = msg
            out.setdefault("ntp_version", version)
            out.setdefault("ntp_mode", MODES[mode])
            if stratum is not None:
                first = stratum if first is None else first
                if reply is None and mode in (2, 4, 5):
                    reply = stratum
            if how == "nts" or (how == "symmetric_key" and auth == "none"):
                auth = how
        stratum_ = reply if reply is not None else first
        if stratum_ is not None:
            out["ntp_stratum"] = stratum_
        if bad:
            facts.anomaly("ntp_message_malformed", f"{bad} datagram(s) of the flow are not NTP messages")
        out["ntp_auth"] = auth
        out["protection"] = "nts" if auth == "nts" else "none"
        facts.flow.update(out)
        return facts


DISSECTOR = register(NTPDissector())
