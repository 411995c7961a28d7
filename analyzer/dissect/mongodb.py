"""MongoDB wire protocol: the opening of a session (MongoDB "Wire Protocol" reference: the standard
message header, OP_MSG, legacy OP_QUERY / OP_REPLY; BSON spec 1.1; the "Authentication" and
"Handshake" driver specifications), facts only.

`app_protocol`: "mongodb". Found by content on any port (27017 is a hint): the client's first message
has a plausible standard header (int32 messageLength, requestID, responseTo 0, opCode) with opCode
OP_MSG (2013), OP_QUERY (2004) or OP_COMPRESSED (2012). MongoDB's TLS is TLS from the first byte (the
TLS dissector's flows); a flow here is `encrypted` False, protection "none".

Read per direction, at most 32 messages: OP_MSG's body section (kind 0) and OP_QUERY's query document
(BSON, top-level elements only; nested documents read one level for the handshake's `client`
document). Facts: `mongodb_first_command` (the first command's name: hello, isMaster, ...),
`mongodb_driver` (client.driver name and version from the handshake), `mongodb_application`
(client.application.name), `mongodb_auth_mechanism` (the SASL mechanism of saslStart or of the
handshake's speculativeAuthenticate).

`credentials` rows for saslStart (and speculative authentication): SCRAM-SHA-1 / SCRAM-SHA-256 (the
username from the client-first message `n,,n=<user>,r=...`; no reusable secret); PLAIN (LDAP proxy
authentication, RFC 4616 in the payload: the password crosses in the clear, `secret_in_clear`
True, length and keyed fingerprint only); MONGODB-X509, GSSAPI, MONGODB-AWS by name.
`accepted` from the replies: an `ok: 0` reply to the exchange is False, a `done: true` with `ok: 1`
is True.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key, sasl_plain
from analyzer.dissect.lines import cut

__all__ = ["MongoDBDissector", "bson_fields", "messages"]

OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
MAX_MESSAGE = 48_000_000  # maxMessageSizeBytes
MAX_MESSAGES = 32
MAX_FIELDS = 128
_HEAD = struct.Struct("<iiii")
_I32 = struct.Struct("<i")
# BSON element types of fixed size (bytes after the name)
_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16,
          0xFF: 0, 0x7F: 0}
_STRINGS = frozenset({0x02, 0x0D, 0x0E})

COLUMNS: tuple[Column, ...] = (
    Column("mongodb_first_command", "string", "the name of the client's first command (hello, isMaster, ...)"),
    Column("mongodb_driver", "string", "the handshake's client.driver name and version"),
    Column("mongodb_application", "string", "the handshake's client.application.name"),
    Column("mongodb_auth_mechanism", "string", "the SASL mechanism of saslStart or speculativeAuthenticate"),
)

Value = str | int | float | bool | bytes | dict | None


def bson_fields(doc: bytes, depth: int = 1) -> dict[str, Value]:
    """The top-level elements of a BSON document: strings, numbers, booleans, binary (its bytes),
    and sub-documents read `depth` more levels (others: None). Malformed input ends the walk."""
    out: dict[str, Value] = {}
    if len(doc) < 5:
        return out
    end = min(_I32.unpack_from(doc, 0)[0], len(doc))
    pos = 4
    while pos < end - 1 and len(out) < MAX_FIELDS:
        kind = doc[pos]
        name_end = doc.find(b"\0", pos + 1, end)
        if name_end < 0:
            break
        name = doc[pos + 1:name_end].decode("latin-1")
        pos = name_end + 1
        value: Value = None
        if kind in _FIXED:
            size = _FIXED[kind]
            if kind == 0x10 and pos + 4 <= end:
                value = _I32.unpack_from(doc, pos)[0]
            elif kind == 0x01 and pos + 8 <= end:
                value = struct.unpack_from("<d", doc, pos)[0]
            elif kind == 0x08 and pos < end:
                value = doc[pos] == 1
            elif kind == 0x12 and pos + 8 <= end:
                value = struct.unpack_from("<q", doc, pos)[0]
        elif kind in _STRINGS or kind == 0x05:
            if pos + 4 > end:
                break
            n = _I32.unpack_from(doc, pos)[0]
            if n < 0 or pos + 4 + n + (kind == 0x05) > end:
                break
            if kind == 0x05:
                value, size = doc[pos + 5:pos + 5 + n], 5 + n
            else:
                value, size = doc[pos + 4:pos + 4 + max(n - 1, 0)].decode("utf-8", "replace"), 4 + n
        elif kind in (0x03, 0x04, 0x0F):
            if pos + 4 > end:
                break
            size = _I32.unpack_from(doc, pos)[0]
            if size < 5 or pos + size > end:
                break
            if kind == 0x03 and depth > 0:
                value = bson_fields(doc[pos:pos + size], depth - 1)
        elif kind == 0x0B:  # regex: two cstrings
            first = doc.find(b"\0", pos, end)
            second = doc.find(b"\0", first + 1, end) if first >= 0 else -1
            if second < 0:
                break
            size = second + 1 - pos
        elif kind == 0x0C:  # DBPointer: string, 12-byte id
            if pos + 4 > end:
                break
            size = 4 + _I32.unpack_from(doc, pos)[0] + 12
        else:
            break
        if size < 0 or pos + size > end:
            break
        out.setdefault(name, value)
        pos += size
    return out


def messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(requestID, responseTo, opCode, the command document) of the whole messages at the start of
    `data`: OP_MSG's kind-0 section, OP_QUERY's query, OP_REPLY's first document (b"" otherwise)."""
    out: list[tuple[int, int, int, bytes]] = []
    pos = 0
    while len(out) < MAX_MESSAGES and pos + 16 <= len(data):
        length, request, response, op = _HEAD.unpack_from(data, pos)
        if length < 16 or length > MAX_MESSAGE or pos + length > len(data):
            break
        body = data[pos + 16:pos + length]
        doc = b""
        if op == OP_MSG and len(body) > 5:
            at = 4
            while at < len(body) and body[at] != 0:  # skip kind-1 sections to the body section
                if at + 5 > len(body):
                    break
                at += 1 + max(_I32.unpack_from(body, at + 1)[0], 4)
            if at + 5 <= len(body) and body[at] == 0:
                doc = body[at + 1:]
        elif op == OP_QUERY:
            name_end = body.find(b"\0", 4)
            if name_end >= 0:
                doc = body[name_end + 9:]
        elif op == OP_REPLY and len(body) > 20:
            doc = body[20:]
        out.append((request, response, op, doc))
        pos += length
    return out


def _text(value: Value, limit: int = 128) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _scram_user(payload: bytes) -> bytes | None:
    """The username of a SCRAM client-first message (RFC 5802: gs2-header, n=<user>,r=<nonce>)."""
    for part in payload.split(b",")[2:4]:
        if part.startswith(b"n="):
            return part[2:].replace(b"=2C", b",").replace(b"=3D", b"=")
    return None


class MongoDBDissector:
    """MongoDB over TCP, found by the client's first message header on any port."""

    name = "mongodb"
    app_protocols = ("mongodb",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({27017})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> MongoDBDissector:
        return MongoDBDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        head = flow.to_server.data[:16]
        if len(head) < 16 or head[8:12] != b"\0\0\0\0" or head[12:16] not in (
                b"\xdd\x07\0\0", b"\xd4\x07\0\0", b"\xdc\x07\0\0"):
            return False
        return 21 <= _I32.unpack_from(head, 0)[0] <= MAX_MESSAGE

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "mongodb", "encrypted": False, "protection": "none"}
        client = messages(flow.to_server.data)
        replies = {response: bson_fields(doc, 0) for _, response, _, doc in messages(flow.to_client.data)}
        mechanism: str | None = None
        user: bytes | None = None
        secret: bytes | None = None
        exchange: list[int] = []  # requestIDs of the authentication messages
        for i, (request, _, op, doc) in enumerate(client):
            if op == OP_COMPRESSED:
                if i == 0:
                    out["mongodb_first_command"] = "(compressed)"
                continue
            fields = bson_fields(doc, 2 if i == 0 else 1)  # the handshake's client.driver is two levels down
            if not fields:
                continue
            command = next(iter(fields))
            if i == 0:
                out["mongodb_first_command"] = cut(command.encode("latin-1", "replace"), 64)
                handshake = fields.get("client")
                if isinstance(handshake, dict):
                    self._handshake(out, handshake)
            sasl = fields if command == "saslStart" else fields.get("speculativeAuthenticate")
            if isinstance(sasl, dict) and mechanism is None:
                sasl = sasl if "mechanism" in sasl else {}
                mechanism = _text(sasl.get("mechanism"), 40)
                payload = sasl.get("payload")
                if mechanism and isinstance(payload, bytes):
                    if mechanism.upper() == "PLAIN":
                        user, secret = sasl_plain(payload)
                    elif mechanism.upper().startswith("SCRAM"):
                        user = _scram_user(payload)
                exchange.append(request)
            elif command in ("saslContinue", "authenticate") and (mechanism or command == "authenticate"):
                mechanism = mechanism or _text(fields.get("mechanism"), 40) or "mongodb-cr"
                exchange.append(request)
        if mechanism:
            out["mongodb_auth_mechanism"] = mechanism
            if self.rows:
                facts.add_row("credentials", credential_row(
                    self.key, "mongodb", mechanism.lower(), user,
                    secret if mechanism.upper() == "PLAIN" else None, self._outcome(exchange, replies)))
        facts.flow.update(out)
        return facts

    @staticmethod
    def _handshake(out: dict[str, object], client: dict[str, Value]) -> None:
        driver, app = client.get("driver"), client.get("application")
        if isinstance(driver, dict):
            name, version = _text(driver.get("name")), _text(driver.get("version"))
            if name:
                out["mongodb_driver"] = f"{name} {version}" if version else name
        if isinstance(app, dict) and _text(app.get("name")):
            out["mongodb_application"] = _text(app.get("name"))

    @staticmethod
    def _outcome(exchange: list[int], replies: dict[int, dict[str, Value]]) -> bool | None:
        for request in exchange:
            reply = replies.get(request)
            if reply is None:
                continue
            ok = reply.get("ok")
            if ok in (0, 0.0, False):
                return False
            if reply.get("done") is True:
                return True
        return None


DISSECTOR = register(MongoDBDissector())
