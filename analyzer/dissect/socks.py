"""SOCKS 4 / 4a and SOCKS 5 (RFC 1928, username/password RFC 1929), facts only.

`app_protocol`: "socks". Found by content on any port (1080 is a hint), as Zeek's DPD signatures
find it (`scripts/base/protocols/socks/dpd.sig`: a client `\\x04[\\x01\\x02]` request whose user id
ends in a NUL answered `\\x00[\\x5a-\\x5d]`; a SOCKS 5 greeting answered `\\x05` + method), plus the
views a one-sided mirror gives: the client's requests alone, or the server's replies alone when
what follows them is TLS, HTTP or SSH (the replies by themselves are too short to tell).

The exchange, per direction (each read on its own, so a client that pipelines its greeting and
request is read the same):
- SOCKS 4: client `VN=4 CD DSTPORT DSTIP USERID\\0` (4a: DSTIP 0.0.0.x, x != 0, then `HOSTNAME\\0`);
  server `VN=0 CD=90..93 DSTPORT DSTIP` (8 bytes).
- SOCKS 5: client greeting `05 NMETHODS METHODS`, server `05 METHOD`; METHOD 2: client `01 ULEN
  UNAME PLEN PASSWD`, server `01 STATUS`; then client `05 CMD 00 ATYP DST.ADDR DST.PORT` (ATYP 1
  IPv4, 3 a host name, 4 IPv6), server `05 REP 00 ATYP BND.ADDR BND.PORT`. GSSAPI (METHOD 1)
  encapsulates the rest: read no further.

Facts: `socks_version` (4 or 5; "4a" is 4 with a host name), `socks_command`, `socks_target_host`
(the host name, or the address), `socks_target_port`, `socks_reply` (RFC names, e.g. `granted`,
`succeeded`, `connection_refused`), `socks_auth_method` (SOCKS 5's chosen method), `socks_user`
(SOCKS 4's USERID or SOCKS 5's user name; never the password).

After a successful CONNECT (or, on a one-sided view, after the side that is there), the rest of
both directions goes to what the tunnel carries: a TLS record -> handed to the TLS dissector
(`Facts.hand_over`; `protection` "tls", not "starttls": the tunnel is not an upgrade of the SOCKS
session), and the target host name becomes the flow's `tls_server_name` when the ClientHello sent no
SNI (or was not captured). HTTP (a request line / a status line) is cleartext: `encrypted` False.
SSH (`SSH-` banner) is `encrypted` True, `protection` "ssh". Anything else leaves `encrypted` null
(`tunnel`); nothing after the reply, `upgrade_not_seen`. A refused request is `encrypted` False:
only the cleartext SOCKS exchange crossed; so is a granted UDP ASSOCIATE (its TCP flow only controls
the association: the datagrams go elsewhere).

`credentials` rows: SOCKS 5 username/password (`user_pass`: the user name, the password's length
and keyed fingerprint, `accepted` from the server's STATUS), never the password.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import cut

__all__ = ["Exchange", "SOCKSDissector", "read_client", "read_server"]

MAX_USERID = 256  # SOCKS 4 USERID / 4a HOSTNAME: read this far for the NUL (Zeek's DPD allows 32)
MAX_METHODS = 255

COLUMNS: tuple[Column, ...] = (
    Column("socks_version", "string", "SOCKS version: 4, 4a (SOCKS 4 with a host name) or 5"),
    Column("socks_command", "string", "the request: connect, bind or udp_associate"),
    Column("socks_target_host", "string", "the requested host name, or address (at most 256 characters)"),
    Column("socks_target_port", "Int32", "the requested port"),
    Column("socks_reply", "string",
           "the server's answer: SOCKS 4 granted / rejected / rejected_no_identd / rejected_identd_mismatch; "
           "SOCKS 5 succeeded, general_failure, not_allowed, network_unreachable, host_unreachable, "
           "connection_refused, ttl_expired, command_not_supported, address_type_not_supported"),
    Column("socks_auth_method", "string",
           "SOCKS 5 method the server chose: none, gssapi, username_password, no_acceptable, or its number"),
    Column("socks_user", "string", "SOCKS 4 USERID or SOCKS 5 user name (never the password)"),
    Column("tls_server_name", "string", "SNI host name the client sent"),  # shared with the TLS family
)

_COMMANDS = {1: "connect", 2: "bind", 3: "udp_associate"}
_REPLY4 = {90: "granted", 91: "rejected", 92: "rejected_no_identd", 93: "rejected_identd_mismatch"}
_REPLY5 = ("succeeded", "general_failure", "not_allowed", "network_unreachable", "host_unreachable",
           "connection_refused", "ttl_expired", "command_not_supported", "address_type_not_supported")
_METHODS = {0: "none", 1: "gssapi", 2: "username_password", 0xFF: "no_acceptable"}
_ADDR_LEN = {1: 4, 4: 16}
_HTTP_REQUEST = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ")


@dataclass(slots=True)
class Exchange:
    """What one direction of the SOCKS exchange said; `end` is the offset of the first tunnelled
    byte (-1: the exchange is not complete in the captured bytes)."""

    version: int | None = None
    command: int | None = None
    host: str | None = None
    host_is_name: bool = False
    port: int | None = None
    user: bytes | None = None
    password: bytes | None = None
    methods: bytes = b""
    method: int | None = None
    auth_status: int | None = None
    reply: int | None = None
    end: int = -1


def _tls_record(data: bytes, pos: int) -> bool:
    """A TLS record header at `pos`: content type 20..23, major version 3, minor 0..4."""
    return len(data) >= pos + 3 and 20 <= data[pos] <= 23 and data[pos + 1] == 3 and data[pos + 2] <= 4


def _address(data: bytes, pos: int, atyp: int) -> tuple[str, bool, int] | None:
    """(host, is a name, offset after it) of a SOCKS 5 address at `pos`; None when cut or unknown."""
    if atyp == 3:
        if pos >= len(data):
            return None
        n = data[pos]
        if pos + 1 + n > len(data):
            return None
        return cut(data[pos + 1:pos + 1 + n]), True, pos + 1 + n
    size = _ADDR_LEN.get(atyp)
    if size is None or pos + size > len(data):
        return None
    return str(ipaddress.ip_address(data[pos:pos + size])), False, pos + size


def read_client(data: bytes) -> Exchange | None:
    """The client's side of the exchange (None: not SOCKS). Never raises."""
    if len(data) < 2:
        return None
    if data[0] == 4:
        return _client4(data)
    if data[0] == 5:
        return _client5(data)
    return None


def _client4(data: bytes) -> Exchange | None:
    if data[1] not in (1, 2) or len(data) < 9:
        return None
    nul = data.find(b"\x00", 8, 8 + MAX_USERID)
    if nul < 0:
        return None
    out = Exchange(version=4, command=data[1], port=int.from_bytes(data[2:4], "big"), user=data[8:nul] or None)
    ip = data[4:8]
    end = nul + 1
    if ip[:3] == b"\x00\x00\x00" and ip[3] != 0:  # SOCKS 4a: the host name follows
        name_end = data.find(b"\x00", end, end + MAX_USERID)
        if name_end < 0:
            out.host = cut(data[end:end + MAX_USERID]) or None
            out.host_is_name = True
            return out
        out.host, out.host_is_name = cut(data[end:name_end]), True
        end = name_end + 1
    else:
        out.host = str(ipaddress.ip_address(ip))
    out.end = end
    return out


def _client5(data: bytes) -> Exchange | None:
    n = data[1]
    if n == 0 or len(data) < 2 + n:
        return None
    out = Exchange(version=5, methods=data[2:2 + n])
    pos = 2 + n
    if data[pos:pos + 1] == b"\x01" and 2 in out.methods:  # RFC 1929 username/password
        if pos + 2 > len(data):
            return out
        ulen = data[pos + 1]
        user_end = pos + 2 + ulen
        if user_end + 1 > len(data):
            return out
        plen = data[user_end]
        if user_end + 1 + plen > len(data):
            return out
        out.user = data[pos + 2:user_end]
        out.password = data[user_end + 1:user_end + 1 + plen]
        pos = user_end + 1 + plen
    if len(data) < pos + 4 or data[pos] != 5 or data[pos + 2] != 0:
        return out  # no request (yet), or GSSAPI-encapsulated
    out.command = data[pos + 1]
    found = _address(data, pos + 4, data[pos + 3])
    if found is None or found[2] + 2 > len(data):
        return out
    out.host, out.host_is_name, at = found
    out.port = int.from_bytes(data[at:at + 2], "big")
    out.end = at + 2
    return out


def _login_only(data: bytes, ask: Exchange) -> bool:
    """The client's bytes are exactly a SOCKS 5 greeting offering username/password and a whole
    RFC 1929 login (version 1, user, password), nothing after it."""
    if ask.user is None or ask.password is None:
        return False
    return len(data) == 2 + data[1] + 3 + len(ask.user) + len(ask.password)


def read_server(data: bytes, version: int | None) -> Exchange | None:
    """The server's side (None: not a SOCKS reply of that version; `version` None: either)."""
    if len(data) < 2:
        return None
    if version in (None, 4) and data[0] in (0, 4) and 90 <= data[1] <= 93 and len(data) >= 8:
        return Exchange(version=4, reply=data[1], end=8)
    if version in (None, 5) and data[0] == 5:
        out = Exchange(version=5, method=data[1])
        pos = 2
        if out.method == 2:
            if len(data) < 4 or data[2] != 1:
                return out
            out.auth_status = data[3]
            pos = 4
        if out.method not in (0, 2) or (out.auth_status or 0) != 0:
            return out  # no acceptable method, GSSAPI, or the login failed: no request follows
        if len(data) < pos + 4 or data[pos] != 5:
            return out
        out.reply = data[pos + 1]
        if out.reply != 0:
            out.end = min(len(data), pos + 2)
            return out
        found = _address(data, pos + 4, data[pos + 3])
        if found is None or found[2] + 2 > len(data):
            return out
        out.end = found[2] + 2
        return out
    return None


def _follows(data: bytes, pos: int, to_server: bool) -> str | None:
    """What the tunnel carries from `pos` of one direction: tls, http, ssh, other; None: nothing."""
    if pos < 0 or pos >= len(data):
        return None
    if _tls_record(data, pos):
        return "tls"
    if data.startswith(b"SSH-", pos):
        return "ssh"
    if data.startswith(_HTTP_REQUEST if to_server else (b"HTTP/1.",), pos):
        return "http"
    return "other"


def _reply_name(version: int, code: int | None) -> str | None:
    if code is None:
        return None
    if version == 4:
        return _REPLY4.get(code, str(code))
    return _REPLY5[code] if code < len(_REPLY5) else str(code)


class SOCKSDissector:
    """SOCKS 4/4a/5 over TCP, found by content on any port."""

    name = "socks"
    app_protocols = ("socks",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({1080})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> SOCKSDissector:
        return SOCKSDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        """A SOCKS request at the start of the client's bytes, answered (when the server's bytes are
        there) by a reply of that version; or, without the client's bytes, the server's replies
        followed by TLS, HTTP or SSH."""
        client, server = flow.to_server.data, flow.to_client.data
        if client:
            first = client[:1]
            if first == b"\x04":  # Zeek: ^\x04[\x01\x02].{0,32}\x00 answered ^\x00[\x5a-\x5d]
                if len(client) < 9 or client[1] not in (1, 2) or client.find(b"\x00", 8, 8 + MAX_USERID) < 0:
                    return False
                return not server or (len(server) >= 2 and server[0] in (0, 4) and 90 <= server[1] <= 93)
            if first == b"\x05":
                n = client[1] if len(client) > 1 else 0
                if n == 0 or len(client) < 2 + n:
                    return False
                if server:  # the method chosen is one offered, or none acceptable
                    return len(server) >= 2 and server[0] == 5 and (server[1] in client[2:2 + n] or server[1] == 0xFF)
                ask = read_client(client)  # the client's side alone: a whole request must follow,
                # or a whole RFC 1929 login that is all the client sent (a refused login ends there)
                return ask is not None and (ask.end > 0 or _login_only(client, ask))
            return False
        if not server or server[0] not in (0, 4, 5):
            return False
        reply = read_server(server, None)
        return reply is not None and reply.end > 0 and _follows(server, reply.end, False) in ("tls", "http", "ssh")

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        client_data, server_data = flow.to_server.data, flow.to_client.data
        ask = read_client(client_data) if client_data else None
        answer = read_server(server_data, ask.version if ask is not None else None) if server_data else None
        version = ask.version if ask is not None else answer.version if answer is not None else None
        out: dict[str, object] = {"app_protocol": "socks"}
        if version is None:  # the probe said SOCKS, yet neither side reads as a whole message
            out.update(encrypted=None, undecided_reason="handshake_incomplete")
            facts.flow.update(out)
            return facts
        named = ask is not None and ask.host_is_name
        if version == 4 and ask is None:
            pass  # the replies of SOCKS 4 and 4a are the same: without the request, which one is not known
        else:
            out["socks_version"] = "4a" if version == 4 and named else str(version)
        if ask is not None:
            if ask.command is not None:
                out["socks_command"] = _COMMANDS.get(ask.command, str(ask.command))
            if ask.host is not None:
                out["socks_target_host"] = ask.host[:256]
            if ask.port is not None:
                out["socks_target_port"] = ask.port
            if ask.user:
                out["socks_user"] = cut(ask.user, 256)
        if answer is not None:
            if version == 5 and answer.method is not None:
                out["socks_auth_method"] = _METHODS.get(answer.method, str(answer.method))
            reply = _reply_name(version, answer.reply)
            if reply is not None:
                out["socks_reply"] = reply
        if ask is not None and ask.password is not None and self.rows:
            accepted = None if answer is None or answer.auth_status is None else answer.auth_status == 0
            row = credential_row(self.key, "socks", "user_pass", ask.user, ask.password, accepted)
            row["uid"] = flow.uid
            facts.add_row("credentials", row)
        self._state(flow, ask, answer, out, facts)
        facts.flow.update(out)
        return facts

    @staticmethod
    def _state(flow: FlowPayload, ask: Exchange | None, answer: Exchange | None, out: dict[str, object],
               facts: Facts) -> None:
        """The encryption state: what the tunnel carries decides it (see the module docstring)."""
        client_data, server_data = flow.to_server.data, flow.to_client.data
        granted = answer is not None and answer.reply in (0, 90) and answer.end > 0
        refused = answer is not None and answer.reply is not None and not granted
        if refused or (answer is not None and (answer.method == 0xFF or (answer.auth_status or 0) != 0)):
            out.update(encrypted=False, protection="none")
            return
        cs_end = ask.end if ask is not None else (-1 if client_data else 0)
        sc_end = answer.end if granted and answer is not None else (-1 if server_data else 0)
        carried = _follows(client_data, cs_end, True) or _follows(server_data, sc_end, False)
        if carried == "tls":
            if ask is not None and ask.host_is_name and ask.host:
                out["tls_server_name"] = ask.host[:256]  # the TLS hello's SNI, when it has one, wins
            facts.hand_over("tls", cs_end if cs_end >= 0 else len(client_data),
                            sc_end if sc_end >= 0 else len(server_data))
        elif carried == "http":
            out.update(encrypted=False, protection="none")
        elif carried == "ssh":
            out.update(encrypted=True, protection="ssh")
        elif carried == "other":  # what the tunnel carries decides; unknown here (as HTTP CONNECT)
            out.update(encrypted=None, undecided_reason="tunnel")
        elif granted and ask is not None and ask.command == 3:
            out.update(encrypted=False, protection="none")  # UDP ASSOCIATE: this flow only ever controls
        elif granted:
            out.update(encrypted=None, undecided_reason="upgrade_not_seen")  # nothing after the reply
        elif ask is None or answer is None:
            out.update(encrypted=None, undecided_reason="one_sided")
        else:
            out.update(encrypted=None, undecided_reason="handshake_incomplete")


DISSECTOR = register(SOCKSDissector())
