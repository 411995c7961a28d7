"""RDP's connection sequence over TCP ([MS-RDPBCGR] 1.3.1.1, 2.2.1.1-2.2.1.4): which security the
client asked for and the server chose, facts only.

`app_protocol`: "rdp". Found by content on any port: the client's first bytes are a TPKT header
(RFC 1006: version 3, reserved 0, length) around an X.224 Connection Request (RFC 905 13.3: code
0xE0, class 0), or, without client bytes, the server's are one around a Connection Confirm (0xD0);
3389 is a hint.

What is read:
- the Connection Request: the routing token or `Cookie: mstshash=<user>` line (2.2.1.1: the user
  name the client sends in the clear; kept as `rdp_cookie`, cut) and the RDP_NEG_REQ
  (2.2.1.1.1: requestedProtocols, a bit set: SSL 1, HYBRID 2 (CredSSP), RDSTLS 4, HYBRID_EX 8,
  RDSAAD 16; none set is standard RDP security);
- the Connection Confirm: RDP_NEG_RSP (2.2.1.2.1: selectedProtocol) or RDP_NEG_FAILURE
  (2.2.1.2.2: failureCode); a confirm without either (an old server) selects standard RDP security.

Encryption state:
- a TLS-based protocol selected (SSL, HYBRID, RDSTLS, HYBRID_EX, RDSAAD): TLS starts at the byte
  after each direction's TPKT (CredSSP runs inside it), so the stream is handed to the TLS dissector
  there (`protection` "tls", from TLS's own facts); nothing after the confirm: undecided
  (upgrade_not_seen);
- standard RDP security (PROTOCOL_RDP): the server's MCS Connect Response carries the Server
  Security Data (TS_UD_SC_SEC1, 2.2.1.4.3, type 0x0C02): encryptionMethod and encryptionLevel.
  Method and level 0 (ENCRYPTION_LEVEL_NONE) is RDP in the clear: `encrypted` False, `protection`
  "none". Otherwise (or when that block is not in the capture) the session is RC4-encrypted
  with keys from the server's own key exchange: `encrypted` True, `protection` "rdp" (the policy
  layer judges that mechanism; `rdp_encryption_method` says 40/56/128-bit or FIPS when seen);
- a negotiation failure: the connection ends there: undecided (handshake_incomplete), `protection`
  "none", `rdp_failure_code` says why (e.g. 5 HYBRID_REQUIRED_BY_SERVER).

Anchors: Zeek's RDP analyzer (`base/protocols/rdp/main.zeek`: cookie, result, security_protocol,
encryption_level/method, and its hand-over to SSL when TLS is selected in `rdp-analyzer.pac`),
nDPI's `rdp.c` (the TPKT/X.224 probe).
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.lines import cut, start_tls

__all__ = ["RDPDissector", "parse_tpdu"]

CR, CC = 0xE0, 0xD0
NEG_REQ, NEG_RSP, NEG_FAILURE = 1, 2, 3
PROTOCOLS = {1: "ssl", 2: "hybrid", 4: "rdstls", 8: "hybrid_ex", 16: "rdsaad"}
METHODS = {0: "none", 1: "40bit", 2: "128bit", 8: "56bit", 0x10: "fips"}
SC_SECURITY = b"\x02\x0c"
MAX_SEARCH = 8192  # bytes of the server's stream after the confirm searched for the security data

COLUMNS: tuple[Column, ...] = (
    Column("rdp_cookie", "string", "the Connection Request's cookie (mstshash=<user name>) or routing token"),
    Column("rdp_requested_protocols", "string", "the client's requestedProtocols: rdp, or ssl/hybrid/rdstls/"
                                                "hybrid_ex/rdsaad joined by +"),
    Column("rdp_selected_protocol", "string", "the server's selectedProtocol: rdp, ssl, hybrid, rdstls, hybrid_ex "
                                              "or rdsaad"),
    Column("rdp_failure_code", "Int32", "RDP_NEG_FAILURE failureCode when the server refused the negotiation"),
    Column("rdp_encryption_method", "string", "standard RDP security: the server's encryptionMethod (none, 40bit, "
                                              "56bit, 128bit, fips)"),
    Column("rdp_encryption_level", "Int32", "standard RDP security: the server's encryptionLevel (0 none ... 4 fips)"),
)


def parse_tpdu(data: bytes, code: int) -> tuple[bytes, int] | None:
    """(the X.224 TPDU's variable part, the offset after the TPKT) of a TPKT-framed connection
    request/confirm with this code at the start of `data`; None when it is not one."""
    if len(data) < 11 or data[0] != 3 or data[1] != 0:
        return None
    (length,) = struct.unpack_from(">H", data, 2)
    li = data[4]
    if length < 11 or length > len(data) or li + 5 != length or data[5] & 0xF0 != code or data[10] & 0xF0:
        return None
    return data[11:length], length


def _protocols(bits: int) -> str:
    names = [name for bit, name in PROTOCOLS.items() if bits & bit]
    return "+".join(names) if names else "rdp"


def _neg(body: bytes, kind: int) -> int | None:
    """The u32 of the 8-byte RDP_NEG_* structure of this type that ends the TPDU."""
    if len(body) >= 8 and body[-8] == kind and body[-6:-4] == b"\x08\x00":
        return int(struct.unpack_from("<I", body, len(body) - 4)[0])
    return None


def _security(server: bytes, start: int) -> tuple[int, int] | None:
    """(encryptionMethod, encryptionLevel) of the Server Security Data in the MCS Connect Response."""
    window = server[start:start + MAX_SEARCH]
    at = window.find(SC_SECURITY)
    for _ in range(16):
        if at < 0:
            return None
        if at + 12 <= len(window):
            (length,) = struct.unpack_from("<H", window, at + 2)
            if 12 <= length <= 4096:
                method, level = struct.unpack_from("<II", window, at + 4)
                if method in METHODS and level <= 4:
                    return method, level
        at = window.find(SC_SECURITY, at + 1)
    return None


def _looks_like(data: bytes, code: int) -> bool:
    return len(data) >= 11 and data[0] == 3 and data[1] == 0 and data[5] & 0xF0 == code and data[4] + 5 == (
        data[2] << 8 | data[3])


class RDPDissector:
    """RDP over TCP, found by its TPKT/X.224 connection request on any port."""

    name = "rdp"
    app_protocols = ("rdp",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({3389})
    columns = COLUMNS
    frames = ()

    def for_run(self, context: DissectContext) -> RDPDissector:
        return self

    def probe(self, flow: FlowPayload) -> bool:
        client = flow.to_server.data
        if client:
            return _looks_like(client, CR)
        return _looks_like(flow.to_client.data, CC)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        client, server = flow.to_server.data, flow.to_client.data
        out: dict[str, object] = {"app_protocol": "rdp"}
        request = parse_tpdu(client, CR)
        confirm = parse_tpdu(server, CC)
        if request is not None:
            body = request[0]
            requested = _neg(body, NEG_REQ)
            out["rdp_requested_protocols"] = _protocols(requested or 0)
            end = body.find(b"\r\n", 0, 512)
            if end > 0:
                out["rdp_cookie"] = cut(body[:end].removeprefix(b"Cookie: "))
        elif client and flow.to_server.start_known:
            facts.anomaly("rdp_request_malformed", "the client's first bytes are not a complete X.224 request", 0)
        if confirm is None:
            out.update(protection="none" if not server else "rdp", undecided_reason="handshake_incomplete")
            facts.flow.update(out)
            return facts
        body, cc_end = confirm
        failure = _neg(body, NEG_FAILURE)
        selected = _neg(body, NEG_RSP)
        if failure is not None:
            out.update(rdp_failure_code=failure, protection="none", undecided_reason="handshake_incomplete")
        elif selected:  # a TLS-based protocol: TLS from the byte after each direction's TPKT
            out["rdp_selected_protocol"] = PROTOCOLS.get(selected, f"{selected:#x}")
            handed = start_tls(facts, "rdp", client, request[1], cc_end) if request is not None else None
            if handed is None:
                out.update(protection="tls", undecided_reason="upgrade_not_seen")
            elif handed is False:
                out.update(protection="tls", undecided_reason="handshake_incomplete")
        else:  # PROTOCOL_RDP: standard RDP security
            out["rdp_selected_protocol"] = "rdp"
            security = _security(server, cc_end)
            if security is not None:
                out["rdp_encryption_method"] = METHODS[security[0]]
                out["rdp_encryption_level"] = security[1]
            if security is not None and security == (0, 0):
                out.update(encrypted=False, protection="none")
            else:
                out.update(encrypted=True, protection="rdp")
        facts.flow.update(out)
        return facts


DISSECTOR = register(RDPDissector())
