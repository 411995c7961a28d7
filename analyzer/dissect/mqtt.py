"""MQTT 3.1, 3.1.1 and 5.0: the CONNECT / CONNACK exchange (OASIS MQTT 3.1.1 sections 2.2 and
3.1-3.2; MQTT 5.0 sections 2.2, 3.1-3.2), facts only.

`app_protocol`: "mqtt". Found by content on any port (1883 is a hint; MQTT over TLS on 8883 is
TLS from the first byte, the TLS dissector's flow): the client's first packet is a CONNECT (fixed
header 0x10, a variable-byte remaining length) whose protocol name is "MQTT" (3.1.1, 5.0) or
"MQIsdp" (3.1).

Read from CONNECT: the protocol level (3: 3.1, 4: 3.1.1, 5: 5.0), the connect flags, the client
identifier, and, when their flags are set, the user name and the password (after the will
properties, topic and payload, and for 5.0 the CONNECT properties). From the server's CONNACK: the
return code (3.x) or reason code (5.0): 0 accepted.

MQTT has no STARTTLS: a flow here is `encrypted` False, protection "none".
`credentials` row when the user name or password flag is set: `connect_password` (the password
crosses in the clear: length and keyed fingerprint only), or `connect_username` (a user name with
no password); `accepted` from the CONNACK.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import cut

__all__ = ["MQTTDissector", "parse_connect", "remaining_length"]

_U16 = struct.Struct(">H")
_VERSIONS = {3: "3.1", 4: "3.1.1", 5: "5.0"}
_NAMES = (b"\x00\x04MQTT", b"\x00\x06MQIsdp")

COLUMNS: tuple[Column, ...] = (
    Column("mqtt_version", "string", "protocol version of the CONNECT: 3.1, 3.1.1 or 5.0"),
    Column("mqtt_client_id", "string", "the client identifier of the CONNECT (at most 256 characters)"),
    Column("mqtt_connack_code", "Int32", "the CONNACK's return code (3.x) or reason code (5.0): 0 accepted"),
)


def remaining_length(data: bytes, pos: int) -> tuple[int, int] | None:
    """The variable byte integer at `pos` (at most 4 bytes): (value, offset after it)."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            return None
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    return None


def _string(body: bytes, pos: int) -> tuple[bytes, int] | None:
    if pos + 2 > len(body):
        return None
    (n,) = _U16.unpack_from(body, pos)
    if pos + 2 + n > len(body):
        return None
    return body[pos + 2:pos + 2 + n], pos + 2 + n


def parse_connect(body: bytes) -> dict[str, object] | None:
    """The fields of a CONNECT packet's body (after the fixed header): level, flags, client_id,
    user, password (the last two only when flagged and present). None when it is not a CONNECT."""
    if body[:6] == _NAMES[0]:
        pos = 6
    elif body[:8] == _NAMES[1]:
        pos = 8
    else:
        return None
    if pos + 4 > len(body):
        return None
    level, flags = body[pos], body[pos + 1]
    pos += 4  # level, flags, keep alive
    out: dict[str, object] = {"level": level, "flags": flags}
    if level == 5:
        props = remaining_length(body, pos)
        if props is None:
            return out
        pos = props[1] + props[0]
    got = _string(body, pos)
    if got is None:
        return out
    out["client_id"], pos = got
    if flags & 0x04:  # will flag: (5.0 will properties), will topic, will payload
        if level == 5:
            props = remaining_length(body, pos)
            if props is None:
                return out
            pos = props[1] + props[0]
        for _ in range(2):
            got = _string(body, pos)
            if got is None:
                return out
            pos = got[1]
    if flags & 0x80:
        got = _string(body, pos)
        if got is None:
            return out
        out["user"], pos = got
    if flags & 0x40:
        got = _string(body, pos)
        if got is not None:
            out["password"] = got[0]
    return out


class MQTTDissector:
    """MQTT over TCP, found by the client's CONNECT on any port."""

    name = "mqtt"
    app_protocols = ("mqtt",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({1883})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> MQTTDissector:
        return MQTTDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        data = flow.to_server.data
        if data[:1] != b"\x10":
            return False
        got = remaining_length(data, 1)
        return got is not None and data[got[1]:got[1] + 8].startswith(_NAMES)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "mqtt", "encrypted": False, "protection": "none"}
        data = flow.to_server.data
        head = remaining_length(data, 1)
        connect = parse_connect(data[head[1]:head[1] + head[0]]) if head is not None else None
        if connect is None:
            facts.anomaly("mqtt_connect_malformed", "the client's first packet is not a readable CONNECT", 0)
            facts.flow.update(out)
            return facts
        level = connect["level"]
        out["mqtt_version"] = _VERSIONS.get(level, str(level)) if isinstance(level, int) else None
        client_id = connect.get("client_id")
        if isinstance(client_id, bytes):
            out["mqtt_client_id"] = cut(client_id)
        code = self._connack(flow.to_client.data)
        if code is not None:
            out["mqtt_connack_code"] = code
        user, password = connect.get("user"), connect.get("password")
        if self.rows and (user is not None or password is not None):
            facts.add_row("credentials", credential_row(
                self.key, "mqtt", "connect_password" if password is not None else "connect_username",
                user if isinstance(user, bytes) else None, password if isinstance(password, bytes) else None,
                None if code is None else code == 0))
        facts.flow.update({k: v for k, v in out.items() if v is not None})
        return facts

    @staticmethod
    def _connack(data: bytes) -> int | None:
        """The return / reason code of the server's first packet when it is a CONNACK."""
        if data[:1] != b"\x20":
            return None
        got = remaining_length(data, 1)
        if got is None or got[0] < 2 or got[1] + 2 > len(data):
            return None
        return data[got[1] + 1]


DISSECTOR = register(MQTTDissector())
