"""AMQP 0-9-1 connection negotiation (AMQP 0-9-1 specification, sections 2.2.4 and 4.2: protocol
header, frames, the Connection class), and the AMQP 1.0 protocol header with its TLS and SASL
layers (OASIS AMQP 1.0, part 5: security), facts only.

`app_protocol`: "amqp". Found by content on any port (5672 is a hint): the client opens with the
8-byte protocol header "AMQP" + protocol id + version: `AMQP\\x00\\x00\\x09\\x01` (0-9-1),
`AMQP\\x01\\x01\\x00\\x0a` (0-8 / 0-9 as RabbitMQ and Qpid send it), `AMQP\\x00\\x01\\x00\\x00`
(1.0), `AMQP\\x02\\x01\\x00\\x00` (1.0 TLS) or `AMQP\\x03\\x01\\x00\\x00` (1.0 SASL).

0-9-1 frames: type (1 method), channel u16, size u32, payload, 0xCE. Read: the server's
Connection.Start (10,10: server-properties `product` and `version`, the SASL `mechanisms`), the
client's Connection.Start-Ok (10,11: mechanism and response), Connection.Open (10,40: virtual host),
and the server's answer to Start-Ok: Connection.Tune (10,30: accepted) or Connection.Close (10,50,
e.g. 403 ACCESS_REFUSED: refused). 0-9-1 has no STARTTLS (TLS on 5671 is TLS from the first byte).

AMQP 1.0's TLS header, echoed by the server, is an upgrade of the session: the stream is handed to
the TLS dissector after the 8 header bytes of each direction (protection "starttls", `starttls`
completed); a server answering with another header refuses it (requested_refused).

`credentials` rows for Start-Ok: `plain` (SASL PLAIN: `\\0user\\0password`) and `amqplain`
(RabbitMQ's field table LOGIN / PASSWORD): the password crosses in the clear (length and keyed
fingerprint only); `external`, `rabbit-cr-demo` and others by name.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key, sasl_plain
from analyzer.dissect.lines import STARTTLS_COLUMN, cut, start_tls

__all__ = ["AMQPDissector", "field_table", "frames_of"]

HEADERS = {b"AMQP\x00\x00\x09\x01": "0-9-1", b"AMQP\x01\x01\x00\x09": "0-9", b"AMQP\x01\x01\x00\x0a": "0-8",
           b"AMQP\x01\x01\x08\x00": "0-8", b"AMQP\x00\x01\x00\x00": "1.0", b"AMQP\x02\x01\x00\x00": "1.0",
           b"AMQP\x03\x01\x00\x00": "1.0"}
TLS_HEADER = b"AMQP\x02\x01\x00\x00"
MAX_FRAMES = 16
MAX_FRAME = 1 << 20
MAX_ENTRIES = 128
_FRAME = struct.Struct(">BHI")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
# field-value types of fixed size (AMQP 0-9-1 errata and RabbitMQ's table grammar)
_FIXED = {b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"l": 8, b"L": 8, b"f": 4, b"d": 8,
          b"D": 5, b"T": 8, b"V": 0}

COLUMNS: tuple[Column, ...] = (
    Column("amqp_version", "string", "protocol version of the client's header: 0-9-1, 0-9, 0-8 or 1.0"),
    Column("amqp_server_product", "string", "the server-properties product and version of Connection.Start"),
    Column("amqp_mechanisms", "string", "SASL mechanisms the server offered in Connection.Start, space-separated"),
    Column("amqp_virtual_host", "string", "the virtual host of Connection.Open"),
    STARTTLS_COLUMN,
)


def frames_of(data: bytes, pos: int) -> list[tuple[int, bytes]]:
    """(type, payload) of the whole frames from `pos` (a frame without its 0xCE end ends the walk)."""
    out: list[tuple[int, bytes]] = []
    while len(out) < MAX_FRAMES and pos + 7 <= len(data):
        kind, _, size = _FRAME.unpack_from(data, pos)
        end = pos + 7 + size
        if size > MAX_FRAME or end >= len(data) or data[end] != 0xCE:
            break
        out.append((kind, data[pos + 7:end]))
        pos = end + 1
    return out


def _longstr(data: bytes, pos: int) -> tuple[bytes, int] | None:
    if pos + 4 > len(data):
        return None
    n = _U32.unpack_from(data, pos)[0]
    if pos + 4 + n > len(data):
        return None
    return data[pos + 4:pos + 4 + n], pos + 4 + n


def _shortstr(data: bytes, pos: int) -> tuple[bytes, int] | None:
    if pos >= len(data) or pos + 1 + data[pos] > len(data):
        return None
    return data[pos + 1:pos + 1 + data[pos]], pos + 1 + data[pos]


def field_table(data: bytes) -> dict[str, bytes | None]:
    """The entries of a field table's content (without its length): long and short strings as
    bytes, other values None (skipped by their size). Malformed input ends the walk."""
    out: dict[str, bytes | None] = {}
    pos = 0
    while pos < len(data) and len(out) < MAX_ENTRIES:
        name = _shortstr(data, pos)
        if name is None or name[1] >= len(data):
            break
        kind, pos = data[name[1]:name[1] + 1], name[1] + 1
        value: bytes | None = None
        if kind in (b"S", b"x", b"A", b"F"):
            got = _longstr(data, pos)
            if got is None:
                break
            value, pos = (got[0] if kind == b"S" else None), got[1]
        elif kind in _FIXED:
            pos += _FIXED[kind]
        else:
            break
        if pos > len(data):
            break
        out.setdefault(name[0].decode("latin-1"), value)
    return out


def _method(payload: bytes) -> tuple[int, int, bytes]:
    if len(payload) < 4:
        return -1, -1, b""
    return _U16.unpack_from(payload, 0)[0], _U16.unpack_from(payload, 2)[0], payload[4:]


class AMQPDissector:
    """AMQP over TCP, found by the client's protocol header on any port."""

    name = "amqp"
    app_protocols = ("amqp",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({5672})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> AMQPDissector:
        return AMQPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        return flow.to_server.data[:8] in HEADERS

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        client, server = flow.to_server.data, flow.to_client.data
        header = client[:8]
        out: dict[str, object] = {"app_protocol": "amqp", "amqp_version": HEADERS.get(header)}
        if header == TLS_HEADER:
            return self._tls(facts, out, client, server)
        if not header.startswith(b"AMQP\x00\x00\x09") and not header.startswith(b"AMQP\x01\x01"):
            out.update(encrypted=False, protection="none")  # 1.0 (plain or SASL): frames not read here
            facts.flow.update({k: v for k, v in out.items() if v is not None})
            return facts
        start_ok: bytes | None = None
        for kind, payload in frames_of(client, 8):
            cls, method, args = _method(payload)
            if kind != 1 or cls != 10:
                continue
            if method == 11 and start_ok is None:
                start_ok = args
            elif method == 40:
                vhost = _shortstr(args, 0)
                if vhost is not None:
                    out["amqp_virtual_host"] = cut(vhost[0])
        accepted: bool | None = None
        for kind, payload in frames_of(server, 0):
            cls, method, args = _method(payload)
            if kind != 1 or cls != 10:
                continue
            if method == 10:
                self._start(out, args)
            elif method == 30 and accepted is None:
                accepted = True
            elif method == 50 and accepted is None:
                accepted = False
        if start_ok is not None and self.rows:
            self._login(facts, start_ok, accepted)
        out.update(encrypted=False, protection="none")
        facts.flow.update({k: v for k, v in out.items() if v is not None})
        return facts

    @staticmethod
    def _tls(facts: Facts, out: dict[str, object], client: bytes, server: bytes) -> Facts:
        answer = server[:8]
        if answer == TLS_HEADER:
            out.update(starttls="completed", protection="starttls")
            handed = start_tls(facts, "amqp", client, 8, 8)
            if handed is None:
                out["undecided_reason"] = "upgrade_not_seen"
            elif handed is False:
                out.update(encrypted=False, protection="none")
        elif len(answer) == 8:
            out.update(starttls="requested_refused", encrypted=False, protection="none")
        else:
            out.update(protection="starttls", undecided_reason="handshake_incomplete")
        facts.flow.update({k: v for k, v in out.items() if v is not None})
        return facts

    @staticmethod
    def _start(out: dict[str, object], args: bytes) -> None:
        """Connection.Start: version-major, version-minor, server-properties, mechanisms, locales."""
        table = _longstr(args, 2)
        if table is None:
            return
        props = field_table(table[0])
        product, version = props.get("product"), props.get("version")
        if product:
            out["amqp_server_product"] = cut(product + (b" " + version if version else b""), 128)
        mechanisms = _longstr(args, table[1])
        if mechanisms is not None:
            out["amqp_mechanisms"] = cut(mechanisms[0])

    def _login(self, facts: Facts, args: bytes, accepted: bool | None) -> None:
        """Connection.Start-Ok: client-properties, mechanism, response, locale."""
        table = _longstr(args, 0)
        mechanism = _shortstr(args, table[1]) if table is not None else None
        response = _longstr(args, mechanism[1]) if mechanism is not None else None
        if mechanism is None or response is None:
            facts.anomaly("amqp_start_ok_malformed", "Connection.Start-Ok cut or malformed")
            return
        name = mechanism[0].decode("latin-1").lower()[:40]
        user: bytes | None = None
        secret: bytes | None = None
        if name == "plain":
            user, secret = sasl_plain(response[0])
        elif name == "amqplain":
            fields = field_table(response[0])
            user, secret = fields.get("LOGIN"), fields.get("PASSWORD")
        facts.add_row("credentials", credential_row(self.key, "amqp", name, user, secret, accepted))


DISSECTOR = register(AMQPDissector())
