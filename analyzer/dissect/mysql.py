"""MySQL / MariaDB client/server protocol: the connection phase (MySQL's "Client/Server Protocol"
documentation: Connection Phase, Protocol::HandshakeV10, Protocol::SSLRequest,
Protocol::HandshakeResponse41 and HandshakeResponse320, Protocol::AuthSwitchRequest), facts only.

`app_protocol`: "mysql" (MariaDB speaks the same protocol; its server version says which). Found by
content on any port (3306 is a hint): the server's first packet (3-byte little-endian length,
sequence 0) is a HandshakeV10 (protocol byte 10, then a NUL-terminated version string that begins
with a digit).

Every packet: int<3> payload length, int<1> sequence id, payload. What is read:
- the server's HandshakeV10: version, capability flags (low and high halves), the default auth
  plugin; `starttls` offered when the flags carry CLIENT_SSL (0x800);
- the client's answer (sequence 1): a 32-byte HandshakeResponse with CLIENT_SSL set is an
  SSLRequest: TLS follows, and the stream is handed to the TLS dissector after that packet and
  after the server's handshake packet (protection "starttls", `starttls` completed). Otherwise a
  HandshakeResponse41 (or the old 320) in the clear: user name, database, auth plugin; `starttls`
  offered_not_used when the server offered CLIENT_SSL and not_offered when it did not;
- the server's answers to it: OK (0x00), ERR (0xff), AuthSwitchRequest (0xfe: another plugin,
  which the client answers in the next packet), AuthMoreData (0x01).

`credentials` rows (protocol "mysql", mechanism = the auth plugin that answered last):
`mysql_native_password` and `caching_sha2_password` send a scramble of the password with the
server's nonce (SHA1/SHA256 challenge-response: no reusable secret; `secret_in_clear` False; note
that caching_sha2's full authentication sends the password RSA-encrypted or only over TLS);
`mysql_clear_password` sends the password itself (`secret_in_clear` True, length and keyed
fingerprint). `accepted` from the OK / ERR that ends the exchange.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import STARTTLS_COLUMN, cut, start_tls, starttls_state

__all__ = ["MySQLDissector", "packets", "parse_greeting", "parse_response"]

CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_PLUGIN_AUTH_LENENC = 0x200000
MAX_PACKETS = 16  # packets read per direction: the connection phase is a few
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

COLUMNS: tuple[Column, ...] = (
    Column("mysql_server_version", "string", "the server's handshake version (MariaDB: 5.5.5-10.x-MariaDB...)"),
    Column("mysql_user", "string", "the user name of the client's HandshakeResponse (in the clear only)"),
    Column("mysql_database", "string", "the database the client named in its HandshakeResponse"),
    Column("mysql_auth_plugin", "string", "the auth plugin that ended the exchange (mysql_native_password, ...)"),
    STARTTLS_COLUMN,
)


def packets(data: bytes, limit: int = MAX_PACKETS) -> list[tuple[int, int, bytes, int]]:
    """(offset, sequence id, payload, offset after it) of the whole packets at the start of `data`."""
    out: list[tuple[int, int, bytes, int]] = []
    pos = 0
    while len(out) < limit and pos + 4 <= len(data):
        length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
        if pos + 4 + length > len(data):
            break
        out.append((pos, data[pos + 3], data[pos + 4:pos + 4 + length], pos + 4 + length))
        pos += 4 + length
    return out


def _cstring(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(b"\0", pos)
    if end < 0:
        return data[pos:], len(data)
    return data[pos:end], end + 1


def parse_greeting(payload: bytes) -> tuple[str, int, str | None] | None:
    """(server version, capability flags, default auth plugin) of a HandshakeV10 payload."""
    if not payload or payload[0] != 10:
        return None
    version, pos = _cstring(payload, 1)
    pos += 4 + 8 + 1  # connection id, auth-plugin-data part 1, filler
    if pos + 2 > len(payload):
        return cut(version, 64), 0, None
    caps = _U16.unpack_from(payload, pos)[0]
    pos += 2
    plugin = None
    if pos + 5 <= len(payload):
        caps |= _U16.unpack_from(payload, pos + 3)[0] << 16
        data_len = payload[pos + 5] if pos + 5 < len(payload) else 0
        pos += 6 + 10  # charset, status, caps high, auth data length, reserved
        pos += max(13, data_len - 8)
        if caps & CLIENT_PLUGIN_AUTH and pos < len(payload):
            plugin = cut(_cstring(payload, pos)[0], 64)
    return cut(version, 64), caps, plugin


def _lenenc(data: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer: (value, offset after it); (-1, pos) when malformed or cut."""
    if pos >= len(data):
        return -1, pos
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None or pos + 1 + size > len(data):
        return -1, pos
    return int.from_bytes(data[pos + 1:pos + 1 + size], "little"), pos + 1 + size


def parse_response(payload: bytes) -> dict[str, object]:
    """The fields of a HandshakeResponse41 or HandshakeResponse320: caps, user, auth (the auth
    response bytes), database, plugin; `ssl_request` when it is the 32-byte SSLRequest."""
    if len(payload) < 4:
        return {}
    caps = _U16.unpack_from(payload, 0)[0]
    if not caps & CLIENT_PROTOCOL_41:  # HandshakeResponse320: caps<2>, max packet<3>, user, auth
        user, pos = _cstring(payload, 5)
        return {"caps": caps, "user": user, "auth": _cstring(payload, pos)[0], "ssl_request": False}
    caps = _U32.unpack_from(payload, 0)[0]
    if len(payload) <= 32:
        return {"caps": caps, "ssl_request": bool(caps & CLIENT_SSL)}
    user, pos = _cstring(payload, 32)
    if caps & CLIENT_PLUGIN_AUTH_LENENC:
        n, pos = _lenenc(payload, pos)
    elif caps & CLIENT_SECURE_CONNECTION:
        n, pos = (payload[pos], pos + 1) if pos < len(payload) else (-1, pos)
    else:
        end = payload.find(b"\0", pos)
        n = (end if end >= 0 else len(payload)) - pos
    out: dict[str, object] = {"caps": caps, "user": user, "ssl_request": False}
    if n < 0:
        return out
    out["auth"] = payload[pos:pos + n]
    pos += n
    if not caps & CLIENT_SECURE_CONNECTION and not caps & CLIENT_PLUGIN_AUTH_LENENC:
        pos += 1  # the NUL after a NUL-terminated auth response
    if caps & CLIENT_CONNECT_WITH_DB and pos < len(payload):
        out["database"], pos = _cstring(payload, pos)
    if caps & CLIENT_PLUGIN_AUTH and pos < len(payload):
        out["plugin"] = _cstring(payload, pos)[0]
    return out


class MySQLDissector:
    """MySQL / MariaDB over TCP, found by the server's HandshakeV10 on any port."""

    name = "mysql"
    app_protocols = ("mysql",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({3306})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> MySQLDissector:
        return MySQLDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        head = flow.to_client.data[:6]
        if len(head) < 6 or head[3] != 0 or head[4] != 10 or not 0x30 <= head[5] <= 0x39:
            return False
        return head[2] == 0 and 20 <= head[0] | head[1] << 8 <= 1024

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "mysql"}
        server = packets(flow.to_client.data)
        greeting = parse_greeting(server[0][2]) if server and server[0][1] == 0 else None
        if greeting is None:
            facts.anomaly("mysql_no_handshake", "the server's first packet is not a HandshakeV10", 0)
            out.update(encrypted=False, protection="none")
            facts.flow.update(out)
            return facts
        version, caps, plugin = greeting
        out["mysql_server_version"] = version
        offered = bool(caps & CLIENT_SSL)
        client = packets(flow.to_server.data)
        if not client or client[0][1] != 1:  # the client's answer is not in the capture: no state to say
            out.update(protection="none", undecided_reason="handshake_incomplete")
            facts.flow.update(out)
            return facts
        response = parse_response(client[0][2])
        if response.get("ssl_request"):
            out.update(starttls=starttls_state(offered, True, True), protection="starttls")
            handed = start_tls(facts, "mysql", flow.to_server.data, client[0][3], server[0][3])
            if handed is None:
                out["undecided_reason"] = "upgrade_not_seen"
            elif handed is False:
                out.update(encrypted=False, protection="none")
            facts.flow.update(out)
            return facts
        out["starttls"] = starttls_state(offered, False, False)
        user = response.get("user")
        if isinstance(user, bytes):
            out["mysql_user"] = cut(user)
        database = response.get("database")
        if isinstance(database, bytes) and database:
            out["mysql_database"] = cut(database)
        chosen = response.get("plugin")
        plugin = cut(chosen, 64) if isinstance(chosen, bytes) and chosen else plugin
        secret = response.get("auth")
        plugin, secret, accepted = self._exchange(server[1:], client[1:], plugin, secret)
        if plugin:
            out["mysql_auth_plugin"] = plugin
        out.update(encrypted=False, protection="none")
        facts.flow.update(out)
        if self.rows and (user or secret):
            clear = secret.rstrip(b"\0") if plugin == "mysql_clear_password" and isinstance(secret, bytes) else None
            facts.add_row("credentials", credential_row(
                self.key, "mysql", plugin or "unknown", user if isinstance(user, bytes) else None, clear, accepted))
        return facts

    @staticmethod
    def _exchange(server: list[tuple[int, int, bytes, int]], client: list[tuple[int, int, bytes, int]],
                  plugin: str | None, secret: object) -> tuple[str | None, bytes | None, bool | None]:
        """Follow the server's answers (AuthSwitchRequest, AuthMoreData) to OK or ERR: the plugin that
        answered last, the last auth response the client sent with it, and the outcome."""
        answers = iter(client)
        auth = secret if isinstance(secret, bytes) else None
        for _, _, payload, _ in server:
            if not payload:
                break
            kind = payload[0]
            if kind == 0x00:
                return plugin, auth, True
            if kind == 0xFF:
                return plugin, auth, False
            if kind == 0xFE and len(payload) > 1:  # AuthSwitchRequest: a new plugin, answered next
                plugin = cut(_cstring(payload, 1)[0], 64) or plugin
                answer = next(answers, None)
                if answer is None:
                    break
                auth = answer[2]
            elif kind == 0x01:  # AuthMoreData (caching_sha2: 3 fast auth ok, 4 full auth follows)
                if payload[1:2] == b"\x04":
                    answer = next(answers, None)
                    if answer is None:
                        break
            else:
                break
        return plugin, auth, None


DISSECTOR = register(MySQLDissector())
