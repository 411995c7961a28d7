"""PostgreSQL frontend/backend protocol 3.0 (PostgreSQL docs, "Frontend/Backend Protocol", chapter 55
of v16: 55.2 message flow, 55.7 message formats), facts only.

`app_protocol`: "postgresql". Found by content on any port (5432 is a hint), as Zeek's DPD
signatures do (`scripts/base/protocols/postgresql/dpd.sig`): the client's first message is an
SSLRequest (length 8, code 80877103), a GSSENCRequest (80877104), a CancelRequest (80877102), or a
StartupMessage of protocol 3.x (or 2.0) naming a `user` within its first 256 bytes.

The client opens with untyped messages (int32 length, int32 code):
- SSLRequest: the server answers one byte, `S` (TLS follows: the stream is handed to the TLS
  dissector after the 8 request bytes and the `S` byte; protection "starttls", `starttls`
  completed) or `N` (`starttls` requested_refused; the client goes on in the clear on the same
  connection, or gives up). A server too old for SSL answers with an ErrorResponse (`E`): refused.
- GSSENCRequest: `G` (the rest is GSS-API wrapped: protection "gssapi"; `encrypted` True once the
  client sent bytes after it) or `N` (the client may go on with an SSLRequest or a startup).
- StartupMessage: `user`, `database`, `application_name` are kept (cut to 256 characters).
Then typed messages (byte type, int32 length counting itself, body): the backend's Authentication
requests (`R`: 0 ok, 3 cleartext, 5 MD5 with salt, 7/8 GSS, 9 SSPI, 10/11/12 SASL) and the
frontend's answers (`p`: PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse),
ErrorResponse (`E`), ParameterStatus (`S`: `server_version`).

PostgreSQL has no server-side offer of TLS: the client asks or not. So `starttls` is set only when
the client sent an SSLRequest (completed or requested_refused); a startup in the clear without one
leaves it unset, and `encrypted` False says the rest.

`credentials` rows (protocol "postgresql"; username from the StartupMessage):
- `cleartext` (AuthenticationCleartextPassword answered by a PasswordMessage): the password itself
  crosses the wire: `secret_in_clear` True, its length and keyed fingerprint.
- `md5` (AuthenticationMD5Password): the client sends "md5" + hex(md5(md5(password + user) + salt))
  with a 4-byte salt the server picked for this session. Decision: like APOP and CRAM-MD5 this is a
  challenge-response that cannot be replayed into another session (a new salt each time), so
  `secret_in_clear` False and no fingerprint. It still allows an offline guessing attack on the
  password (md5(password + user) is what pg_authid stores): the mechanism name is the fact a
  policy rule judges.
- `scram-sha-256` / `scram-sha-256-plus` (SASL): mechanism noted, nothing reusable crosses the wire.
- `gss` / `sspi`: the mechanism only (Kerberos tickets are not read).
`accepted` is True when AuthenticationOk follows, False when an ErrorResponse does.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import STARTTLS_COLUMN, cut, start_tls

__all__ = ["PostgreSQLDissector", "parse_startup", "read_messages"]

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
PROTOCOL_3, PROTOCOL_2 = 0x00030000, 0x00020000
MAX_MESSAGE = 1 << 20  # a message longer than this is not read (PostgreSQL itself caps startup at 10000)
MAX_STARTUP = 10000  # MAX_STARTUP_PACKET_LENGTH in the server's sources
MAX_MESSAGES = 256  # typed messages read per direction
MAX_PARAMS = 64
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_SSL_HEAD = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
_GSS_HEAD = b"\x00\x00\x00\x08\x04\xd2\x16\x30"
_CANCEL_HEAD = b"\x00\x00\x00\x10\x04\xd2\x16\x2e"

COLUMNS: tuple[Column, ...] = (
    Column("postgresql_user", "string", "the user named in the StartupMessage (at most 256 characters)"),
    Column("postgresql_database", "string", "the database named in the StartupMessage"),
    Column("postgresql_application_name", "string", "the application_name of the StartupMessage"),
    Column("postgresql_protocol", "string", "protocol version of the StartupMessage (3.0, 2.0), or cancel"),
    Column("postgresql_auth", "string",
           "authentication the server asked for: none (AuthenticationOk at once), cleartext, md5, "
           "scram-sha-256 (the SASL mechanism the client chose, lower case), gss, sspi, kerberos5"),
    Column("postgresql_server_version", "string", "the server_version ParameterStatus (in the clear only)"),
    STARTTLS_COLUMN,
)
_NOT_ANSWERS = bytes(b for b in range(256) if b != 0x70)  # every message type but 'p'
_AUTH_NAMES = {2: "kerberos5", 3: "cleartext", 5: "md5", 7: "gss", 9: "sspi", 10: "sasl"}


def read_messages(data: bytes, pos: int, last: bytes = b"") -> tuple[list[tuple[int, bytes]], int, str | None]:
    """Typed messages (type byte, body) from `pos`: (messages, offset after the last whole one,
    problem). The walk stops after a message whose type is in `last` (the end of the phase the
    caller reads: ReadyForQuery ends the startup). A message cut by the end of the prefix ends the
    walk quietly; an impossible length is the problem returned."""
    out: list[tuple[int, bytes]] = []
    while len(out) < MAX_MESSAGES and pos + 5 <= len(data):
        (length,) = _U32.unpack_from(data, pos + 1)
        if length < 4 or length > MAX_MESSAGE:
            return out, pos, f"message {chr(data[pos])!r} with length {length}"
        if pos + 1 + length > len(data):
            break
        out.append((data[pos], data[pos + 5:pos + 1 + length]))
        pos += 1 + length
        if out[-1][0] in last:
            break
    return out, pos, None


def parse_startup(body: bytes) -> dict[str, str]:
    """The name/value pairs of a StartupMessage body (after length and version): NUL-terminated
    strings, a final NUL; names are kept lower case, values cut."""
    params: dict[str, str] = {}
    parts = body.split(b"\0", 2 * MAX_PARAMS)
    for i in range(0, len(parts) - 1, 2):
        name = parts[i]
        if not name:
            break
        params.setdefault(cut(name, 64).lower(), cut(parts[i + 1]))
    return params


def _cstring(body: bytes) -> bytes:
    end = body.find(b"\0")
    return body if end < 0 else body[:end]


class PostgreSQLDissector:
    """PostgreSQL over TCP, found by its first client message on any port."""

    name = "postgresql"
    app_protocols = ("postgresql",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({5432})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> PostgreSQLDissector:
        return PostgreSQLDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        head = flow.to_server.data[:8]
        if head[:1] != b"\0":  # every opening message's length is below 16 MiB: a quick no
            return False
        if head in (_SSL_HEAD, _GSS_HEAD, _CANCEL_HEAD):
            return True
        if len(head) < 8 or head[4:6] not in (b"\x00\x03", b"\x00\x02") or head[:2] != b"\0\0":
            return False  # protocol 3.x (3.0; 3.2 from PostgreSQL 18) or 2.0
        return b"user\0" in flow.to_server.data[8:264]

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "postgresql"}
        client, server = flow.to_server.data, flow.to_client.data
        cpos = spos = 0
        ssl_requested = False
        startup: dict[str, str] | None = None
        # the untyped opening: at most an SSLRequest and a GSSENCRequest before the startup
        for _ in range(4):
            if cpos + 8 > len(client):
                break
            length, code = _U32.unpack_from(client, cpos)[0], _U32.unpack_from(client, cpos + 4)[0]
            if code in (SSL_REQUEST, GSSENC_REQUEST) and length == 8:
                answer = server[spos:spos + 1]
                ssl = code == SSL_REQUEST
                ssl_requested = ssl_requested or ssl
                if not answer:  # no reply in the capture: the request is all there is
                    out["protection"] = "starttls" if ssl else "gssapi"
                    out["undecided_reason"] = "handshake_incomplete"
                    facts.flow.update(out)
                    return facts
                if answer == (b"S" if ssl else b"G"):
                    return self._upgraded(facts, out, ssl, client, cpos + 8, spos + 1)
                if answer == b"E":  # a server that does not know the request: an error, then it closes
                    if ssl:
                        out["starttls"] = "requested_refused"
                    break
                if answer != b"N":
                    facts.anomaly("postgresql_unexpected_reply", f"reply {answer!r} to an encryption request", spos)
                    break
                if ssl:
                    out["starttls"] = "requested_refused"
                cpos, spos = cpos + 8, spos + 1
                continue
            if code == CANCEL_REQUEST and length == 16:
                out["postgresql_protocol"] = "cancel"
                break
            if code in (PROTOCOL_3, PROTOCOL_2) or code >> 16 == 3:
                if length < 8 or length > MAX_STARTUP:
                    facts.anomaly("postgresql_startup_invalid", f"startup message length {length}", cpos)
                    break
                out["postgresql_protocol"] = f"{code >> 16}.{code & 0xFFFF}"
                if code >> 16 == 3:
                    startup = parse_startup(client[cpos + 8:cpos + length])
                cpos += length
                break
            facts.anomaly("postgresql_first_message_unknown", f"untyped message code {code} length {length}", cpos)
            break
        if startup is not None:
            for key in ("user", "database", "application_name"):
                if key in startup:
                    out[f"postgresql_{key}"] = startup[key]
            self._authentication(facts, out, client[cpos:], server[spos:], startup.get("user"))
        out.update(encrypted=False, protection="none")
        facts.flow.update(out)
        return facts

    @staticmethod
    def _upgraded(facts: Facts, out: dict[str, object], ssl: bool, client: bytes, cpos: int, spos: int) -> Facts:
        """The server accepted SSL (hand the rest to TLS) or GSS encryption (not readable here)."""
        if ssl:
            out["starttls"] = "completed"
            out["protection"] = "starttls"
            handed = start_tls(facts, "postgresql", client, cpos, spos)
            if handed is None:
                out["undecided_reason"] = "upgrade_not_seen"
            elif handed is False:
                out.update(encrypted=False, protection="none")
        else:
            out["protection"] = "gssapi"
            if len(client) > cpos:
                out["encrypted"] = True
            else:
                out["undecided_reason"] = "upgrade_not_seen"
        facts.flow.update(out)
        return facts

    def _authentication(self, facts: Facts, out: dict[str, object], client: bytes, server: bytes,
                        user: str | None) -> None:
        """Walk the backend's messages and the frontend's answers after the StartupMessage: the
        authentication method, the secret sent (when the method sends one), the outcome."""
        # the startup phase only: the backend's messages to its first ReadyForQuery or ErrorResponse,
        # the frontend's to its first message that is not an authentication answer ('p')
        backend, _, problem = read_messages(server, 0, b"ZE")
        if problem is not None:
            facts.anomaly("postgresql_message_invalid", f"server: {problem}")
        frontend, _, problem = read_messages(client, 0, _NOT_ANSWERS)
        if problem is not None:
            facts.anomaly("postgresql_message_invalid", f"client: {problem}")
        answers = [body for kind, body in frontend if kind == 0x70]  # 'p'
        method: str | None = None
        accepted: bool | None = None
        for kind, body in backend:
            if kind == 0x52 and len(body) >= 4:  # 'R'
                (code,) = _I32.unpack_from(body, 0)
                if code == 0:
                    accepted = True
                    method = method or "none"
                elif method is None and code in _AUTH_NAMES:
                    method = _AUTH_NAMES[code]
            elif kind == 0x45 and accepted is None and method is not None:  # 'E' during authentication
                accepted = False
            elif kind == 0x53:  # 'S' ParameterStatus
                name, _, value = body.partition(b"\0")
                if name == b"server_version":
                    out["postgresql_server_version"] = cut(_cstring(value), 64)
        if method == "sasl":
            first = answers[0] if answers else b""
            method = cut(_cstring(first), 40).lower() if first else "sasl"
        if method is not None:
            out["postgresql_auth"] = method
        if method is None or method == "none" or not answers or not self.rows:
            return  # no login exchange, or the client never answered
        secret = _cstring(answers[0]) if method == "cleartext" else None
        facts.add_row("credentials", credential_row(self.key, "postgresql", method, user, secret, accepted))


DISSECTOR = register(PostgreSQLDissector())
