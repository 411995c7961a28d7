"""VNC: the RFB handshake over TCP (RFC 6143 7.1-7.2; VeNCrypt and TLS security types as in the
RFB community specification), facts only.

`app_protocol`: "vnc". Found by content on any port: the server's first 12 bytes are a
ProtocolVersion `RFB xxx.yyy\\n` (or, with no server bytes, the client's); 5900-5903 are hints.

What is read: both ProtocolVersion messages; the security types the server offers (3.7 and later:
a count and a list; 3.3: the one type it decides) and the one the client selects; then, by type:
- None (1) and VNC Authentication (2, a DES challenge-response: no reusable secret crosses the
  wire; a `credentials` row with `secret_in_clear` False, like APOP, `accepted` from the
  SecurityResult), and Tight (16, which only wraps those): the session is cleartext, `encrypted`
  False, `protection` "none";
- TLS (18, anonymous TLS as vino and gtk-vnc use it): TLS starts at the byte after the client's
  selection and after the server's type list: handed to the TLS dissector (`protection` "tls");
- VeNCrypt (19): version exchange, the subtype list and the client's choice (u32), then the
  server's acceptance byte; a TLS or X509 subtype (257-264) hands the stream to TLS after it;
  Plain (256) sends a user name and password in the clear (a `credentials` row, mechanism
  "plain": length and keyed fingerprint only); the rest of a Plain session is cleartext;
- any other type (RealVNC RA2, Apple's, UltraVNC's): recognised, not read: `encrypted` undecided,
  `undecided_reason` "undecided", the type in `vnc_security_type`.

Anchors: Zeek's RFB analyzer (`base/protocols/rfb/main.zeek`: client/server versions,
authentication method, auth result, share flag), nDPI's `vnc.c` (the `RFB 00` probe).
"""

from __future__ import annotations

import re
import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import start_tls

__all__ = ["VNCDissector"]

_VERSION = re.compile(rb"RFB (\d{3})\.(\d{3})\n")
NONE, VNC_AUTH, TIGHT, TLS, VENCRYPT = 1, 2, 16, 18, 19
VENCRYPT_PLAIN = 256
VENCRYPT_TLS = frozenset(range(257, 265))  # TLSNone .. X509SASL
CLEAR = frozenset({NONE, VNC_AUTH, TIGHT})
MAX_CREDENTIAL = 4096

COLUMNS: tuple[Column, ...] = (
    Column("vnc_server_version", "string", "the server's RFB ProtocolVersion (3.3, 3.7, 3.8, ...)"),
    Column("vnc_client_version", "string", "the client's RFB ProtocolVersion"),
    Column("vnc_security_types", "string", "security types the server offered, comma-separated numbers"),
    Column("vnc_security_type", "Int32", "the security type in use (1 None, 2 VNC auth, 16 Tight, 18 TLS, "
                                         "19 VeNCrypt, ...)"),
    Column("vnc_vencrypt_subtype", "Int32", "VeNCrypt: the subtype the client chose (256 Plain, 257-264 TLS/X509)"),
    Column("vnc_security_result", "Int32", "SecurityResult: 0 ok, 1 failed"),
)


def _version(data: bytes) -> tuple[int, int] | None:
    m = _VERSION.match(data[:12])
    return (int(m.group(1)), int(m.group(2))) if m else None


class VNCDissector:
    """VNC (RFB) over TCP, found by its ProtocolVersion message on any port."""

    name = "vnc"
    app_protocols = ("vnc",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({5900, 5901, 5902, 5903})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> VNCDissector:
        return VNCDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        server = flow.to_client.data
        if server:
            return server.startswith(b"RFB ") and _version(server) is not None
        return flow.to_server.data.startswith(b"RFB ") and _version(flow.to_server.data) is not None

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        client, server = flow.to_server.data, flow.to_client.data
        out: dict[str, object] = {"app_protocol": "vnc"}
        sv, cv = _version(server), _version(client)
        if sv is not None:
            out["vnc_server_version"] = f"{sv[0]}.{sv[1]}"
        if cv is not None:
            out["vnc_client_version"] = f"{cv[0]}.{cv[1]}"
        chosen, spos, cpos = self._security_type(out, server, client, sv, cv)
        if chosen is not None:
            out["vnc_security_type"] = chosen
        if chosen is None:
            out.update(protection="none", undecided_reason="handshake_incomplete")
        elif chosen in CLEAR:
            out.update(encrypted=False, protection="none")
            self._clear_auth(facts, out, chosen, server, client, spos, cpos, cv)
        elif chosen == TLS:
            self._tls(facts, out, client, cpos, spos)
        elif chosen == VENCRYPT:
            self._vencrypt(facts, out, server, client, spos, cpos)
        else:
            out.update(protection="none", undecided_reason="undecided")
        facts.flow.update(out)
        return facts

    @staticmethod
    def _security_type(out: dict[str, object], server: bytes, client: bytes, sv: tuple[int, int] | None,
                       cv: tuple[int, int] | None) -> tuple[int | None, int, int]:
        """(the security type in use, offset after the server's security message, offset after the
        client's selection)."""
        if sv is None or cv is None:
            return None, 12, 12
        if min(sv, cv) < (3, 7):  # 3.3: the server decides, a u32
            if len(server) < 16:
                return None, 12, 12
            (kind,) = struct.unpack_from(">I", server, 12)
            out["vnc_security_types"] = str(kind)
            return (kind or None), 16, 12
        if len(server) < 13:
            return None, 12, 12
        count = server[12]
        types = server[13:13 + count]
        if count == 0 or len(types) < count:  # 0: failure, a reason string follows
            if count == 0:
                out["vnc_security_types"] = ""
            return None, 13 + count, 12
        out["vnc_security_types"] = ",".join(str(t) for t in types)
        if len(client) < 13:
            return None, 13 + count, 12
        return client[12], 13 + count, 13

    def _clear_auth(self, facts: Facts, out: dict[str, object], kind: int, server: bytes, client: bytes,
                    spos: int, cpos: int, cv: tuple[int, int] | None) -> None:
        if kind == VNC_AUTH:  # 16-byte challenge, 16-byte response, SecurityResult
            result = server[spos + 16:spos + 20]
            accepted = None
            if len(result) == 4:
                code = int.from_bytes(result, "big")
                out["vnc_security_result"] = code
                accepted = code == 0
            if self.rows and len(client) >= cpos + 16:
                facts.add_row("credentials", credential_row(self.key, "vnc", "vnc_auth", None, None, accepted))
        elif kind == NONE and cv is not None and cv >= (3, 8) and len(server) >= spos + 4:
            out["vnc_security_result"] = int.from_bytes(server[spos:spos + 4], "big")

    @staticmethod
    def _tls(facts: Facts, out: dict[str, object], client: bytes, cpos: int, spos: int) -> None:
        handed = start_tls(facts, "vnc", client, cpos, spos)
        if handed is None:
            out.update(protection="tls", undecided_reason="upgrade_not_seen")
        elif handed is False:
            out.update(protection="tls", undecided_reason="handshake_incomplete")

    def _vencrypt(self, facts: Facts, out: dict[str, object], server: bytes, client: bytes, spos: int,
                  cpos: int) -> None:
        """VeNCrypt: server version (2), client version (2), server ack (1), subtype count (1) and list
        (4 each), client's subtype (4), server's acceptance (1); then TLS or Plain credentials."""
        s = spos + 2 + 1
        if len(server) < s + 1 or server[s - 1] != 0:  # the server refused the client's version
            out.update(protection="none", undecided_reason="handshake_incomplete")
            return
        count = server[s]
        s += 1 + 4 * count
        c = cpos + 2
        if len(client) < c + 4:
            out.update(protection="tls", undecided_reason="handshake_incomplete")
            return
        (subtype,) = struct.unpack_from(">I", client, c)
        out["vnc_vencrypt_subtype"] = subtype
        c += 4
        s += 1  # the server's acceptance byte (VeNCrypt 0.2)
        if subtype in VENCRYPT_TLS:
            self._tls(facts, out, client, c, s)
        elif subtype == VENCRYPT_PLAIN:
            out.update(encrypted=False, protection="none")
            if len(client) >= c + 8 and self.rows:
                ulen, plen = struct.unpack_from(">II", client, c)
                if ulen <= MAX_CREDENTIAL and plen <= MAX_CREDENTIAL and len(client) >= c + 8 + ulen + plen:
                    user = client[c + 8:c + 8 + ulen]
                    password = client[c + 8 + ulen:c + 8 + ulen + plen]
                    facts.add_row("credentials", credential_row(self.key, "vnc", "plain", user, password, None))
        else:
            out.update(protection="none", undecided_reason="undecided")


DISSECTOR = register(VNCDissector())
