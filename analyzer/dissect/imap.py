"""IMAP4 (RFC 9051 / RFC 3501), STARTTLS (RFC 2595 / RFC 9051 6.2.1) and logins, facts only.

`app_protocol`: "imap". Found by content on any port: the server's greeting `* OK`, `* PREAUTH` or
`* BYE`; or, without the server's bytes, a client's first command `tag CAPABILITY|STARTTLS|LOGIN|
AUTHENTICATE|ID`. Port 143 is a hint.

Each client command (`tag SP name [SP arguments]`, literals `{n}` / `{n+}` read by their byte count)
is followed by the server's lines up to the tagged status `tag OK|NO|BAD`: untagged `* CAPABILITY`
lines and `[CAPABILITY ...]` response codes give the capabilities (STARTTLS, LOGINDISABLED), and
continuation requests `+` are answered by the client's next line in AUTHENTICATE and IDLE.

Facts: `imap_banner` (the greeting, first 256 characters), `imap_capabilities` (the first list
seen), `imap_logindisabled`, `starttls`, `encrypted` False while in the clear. STARTTLS answered
`OK` hands the stream to TLS after the command line and after the tagged OK line when a TLS record follows
(`analyzer.dissect.lines.start_tls`).
`credentials` rows: LOGIN (`login_command`: the password is in the clear) and AUTHENTICATE (by SASL
mechanism, with or without an initial response, RFC 4959).
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, SaslExchange, credential_row, run_key
from analyzer.dissect.lines import (
    STARTTLS_COLUMN,
    Cursor,
    cut,
    first_line,
    server_only_upgrade,
    start_tls,
    starttls_state,
    upgrade_outcome,
    upgrade_unanswered,
)

__all__ = ["IMAPDissector", "astrings"]

MAX_COMMANDS = 256
MAX_LITERAL = 1 << 20  # bytes of one literal skipped; larger: stop reading this direction
MAX_LITERALS = 16
COLUMNS: tuple[Column, ...] = (
    Column("imap_banner", "string", "the server's greeting line (at most 256 characters)"),
    Column("imap_capabilities", "string", "the first capability list the server showed (at most 256 characters)"),
    Column("imap_logindisabled", "boolean", "the server advertised LOGINDISABLED (no LOGIN before TLS)"),
    STARTTLS_COLUMN,
)
_FIRST = frozenset({b"CAPABILITY", b"STARTTLS", b"LOGIN", b"AUTHENTICATE", b"ID", b"NOOP"})


def _read_command(cli: Cursor) -> tuple[bytes, list[bytes]] | None:
    """The next command line and its literals' contents (the line keeps the `{n}` markers)."""
    line = cli.line()
    if line is None:
        return None
    literals: list[bytes] = []
    whole = line
    while line.endswith(b"}") and len(literals) < MAX_LITERALS:
        start = line.rfind(b"{")
        size = line[start + 1:-1].rstrip(b"+")
        if start < 0 or not size.isdigit() or len(size) > 9 or int(size) > MAX_LITERAL:
            break
        n = int(size)
        literals.append(cli.data[cli.pos:cli.pos + n])
        cli.pos += n
        rest = cli.line()
        if rest is None:
            break
        whole += b"\x00" + rest  # a marker between parts: a literal's place
        line = rest
    return whole, literals


def astrings(args: bytes, literals: list[bytes], count: int) -> list[bytes]:
    """The first `count` astrings of command arguments: atoms, quoted strings (backslash escapes)
    and literals (taken from `literals` in order)."""
    out: list[bytes] = []
    pos, n, lit = 0, len(args), 0
    while len(out) < count and pos < n:
        c = args[pos:pos + 1]
        if c in (b" ", b"\x00"):
            pos += 1
        elif c == b'"':
            buf = bytearray()
            pos += 1
            while pos < n and args[pos:pos + 1] != b'"':
                if args[pos:pos + 1] == b"\\":
                    pos += 1
                buf += args[pos:pos + 1]
                pos += 1
            out.append(bytes(buf))
            pos += 1
        elif c == b"{":
            end = args.find(b"}", pos)
            out.append(literals[lit] if lit < len(literals) else b"")
            lit += 1
            pos = n if end < 0 else end + 1
        else:
            end = pos
            while end < n and args[end:end + 1] not in (b" ", b"\x00"):
                end += 1
            out.append(args[pos:end])
            pos = end
    return out


def _capabilities(text: bytes) -> list[bytes] | None:
    """Capabilities in an untagged CAPABILITY line's text or a `[CAPABILITY ...]` response code."""
    upper = text.upper()
    if upper.startswith(b"CAPABILITY"):
        return upper.split()[1:]
    at = upper.find(b"[CAPABILITY ")
    if at >= 0:
        end = upper.find(b"]", at)
        return upper[at + 12:end if end >= 0 else None].split()
    return None


class IMAPDissector:
    """IMAP over TCP, found by its greeting on any port."""

    name = "imap"
    app_protocols = ("imap",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({143})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> IMAPDissector:
        return IMAPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        server = flow.to_client.data
        if server:
            return server.startswith((b"* OK", b"* PREAUTH", b"* BYE", b"* ok"))
        client = flow.to_server.data
        parts = client[:client.find(b"\n", 0, 64)].rstrip(b"\r").split(b" ", 2)  # the first line only
        return len(parts) >= 2 and parts[1].upper() in _FIRST and parts[0].isalnum()

    def resync(self, flow: FlowPayload) -> tuple[int | None, int | None]:
        """Mid-stream: the first tagged client command (`a1 SELECT INBOX`, `A003 FETCH ...`) and the
        first server line that only IMAP sends (`* OK`, `* CAPABILITY`, `* 3 EXISTS`, a tagged `a1
        OK`/`NO`/`BAD`). Replies carry their command's tag, so out-of-step ones are skipped by tag."""
        return first_line(flow.to_server.data, _imap_command), first_line(flow.to_client.data, _imap_response)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "imap"}
        cli, srv = Cursor(flow.to_server.data), Cursor(flow.to_client.data)
        greeting = srv.line()
        caps: list[bytes] | None = None
        if greeting is not None and greeting.startswith(b"* ") and not flow.to_client.start_known and not (
                greeting[2:].upper().startswith((b"OK", b"PREAUTH", b"BYE")) and _opens(cli.data)):
            greeting = None  # mid-stream: an untagged response, not the greeting (read with its command)
            srv.pos, srv.reads = 0, 0
        if greeting is not None and greeting.startswith(b"* "):
            out["imap_banner"] = cut(greeting)
            caps = _capabilities(greeting[2:].split(b" ", 1)[-1])
        all_caps: set[bytes] = set(caps or ())
        requested = accepted = False
        handed: bool | None = None
        for _ in range(MAX_COMMANDS):
            command = _read_command(cli)
            if command is None:
                break
            line, literals = command
            tag, _, rest = line.partition(b" ")
            name, _, args = rest.partition(b" ")
            name = name.upper()
            exchange = None
            if name == b"AUTHENTICATE":
                parts = args.split()
                if parts:
                    exchange = SaslExchange(parts[0], parts[1] if len(parts) > 1 else None)
            status = None
            before = srv.pos
            for _ in range(4096):  # the server's lines up to this command's tagged status
                reply = srv.line()
                if reply is None:
                    break
                if reply.startswith(b"* "):
                    found = _capabilities(reply[2:])
                    _skip_literal(srv, reply)
                elif reply.startswith(b"+"):
                    if exchange is not None or name == b"IDLE":
                        answer = cli.line()
                        if answer is None:
                            break
                        if exchange is not None:
                            exchange.add(answer)
                    continue
                elif reply.startswith(tag + b" "):
                    status = reply[len(tag) + 1:].split(b" ", 1)[0].upper()
                    found = _capabilities(reply[len(tag) + 1:].split(b" ", 1)[-1])
                else:
                    continue
                if found:
                    all_caps.update(found)
                    caps = caps or found
                if status is not None:
                    break
            if name == b"STARTTLS":
                requested = True
                if status == b"OK":
                    accepted = True
                    handed = start_tls(facts, "imap", cli.data, cli.pos, srv.pos, srv.data)
                    break
                if status is None and upgrade_unanswered(facts, cli.data, cli.pos, srv.data, before):
                    accepted = handed = True
                    break
            elif name == b"LOGIN" and self.rows:
                user_pass = astrings(args, literals, 2)
                if user_pass:
                    secret = user_pass[1] if len(user_pass) > 1 else None
                    facts.add_row("credentials", credential_row(
                        self.key, "imap", "login_command", user_pass[0], secret, _outcome(status)))
            elif exchange is not None and self.rows:
                user, secret = exchange.identity()
                facts.add_row("credentials", credential_row(
                    self.key, "imap", exchange.mechanism, user, secret, _outcome(status)))
            if status is None and srv.stop is not None and srv.data:
                break  # (a client-only view reads on: its commands are facts too)
        if not cli.data and server_only_upgrade(facts, srv.data):
            accepted = handed = True  # a server-only view: its cleartext lines, then TLS
        if cli.stop == "overlong":
            facts.anomaly("imap_line_overlong", "client: a line longer than 8192 bytes; the rest is not read", cli.pos)
        if caps:
            out["imap_capabilities"] = cut(b" ".join(caps))
        if all_caps or requested or accepted:
            out["imap_logindisabled"] = b"LOGINDISABLED" in all_caps
            out["starttls"] = starttls_state(b"STARTTLS" in all_caps, requested, accepted)
        out.update(upgrade_outcome(accepted, handed))
        facts.flow.update(out)
        return facts


def _skip_literal(srv: Cursor, line: bytes) -> None:
    """Skip the literal a server line announces (`{n}` at its end: FETCH bodies)."""
    if line.endswith(b"}"):
        size = line[line.rfind(b"{") + 1:-1]
        if size.isdigit() and len(size) <= 9:
            srv.pos += int(size)


def _outcome(status: bytes | None) -> bool | None:
    return None if status is None else status == b"OK"


# Every IMAP4rev1/rev2 command and common extension (RFC 9051 6, RFC 3501 6, IDLE, ID, ENABLE, MOVE,
# NAMESPACE, QUOTA, UNSELECT); the server's untagged words (RFC 9051 7) and tagged statuses.
_COMMANDS = frozenset({b"CAPABILITY", b"NOOP", b"LOGOUT", b"STARTTLS", b"AUTHENTICATE", b"LOGIN", b"ENABLE",
                       b"SELECT", b"EXAMINE", b"CREATE", b"DELETE", b"RENAME", b"SUBSCRIBE", b"UNSUBSCRIBE",
                       b"LIST", b"LSUB", b"NAMESPACE", b"STATUS", b"APPEND", b"IDLE", b"CHECK", b"CLOSE",
                       b"UNSELECT", b"EXPUNGE", b"SEARCH", b"FETCH", b"STORE", b"COPY", b"MOVE", b"UID", b"ID",
                       b"GETQUOTAROOT", b"GETQUOTA", b"SETQUOTA", b"COMPRESS"})
_UNTAGGED = (b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH", b"CAPABILITY", b"FLAGS", b"LIST", b"LSUB", b"STATUS",
             b"SEARCH", b"ENABLED", b"ID ", b"NAMESPACE", b"ESEARCH", b"QUOTA")
_COUNTED = (b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH")


def _tag(word: bytes) -> bool:
    """An IMAP tag as clients make them: 1-32 letters, digits and dots, not `*` or `+`."""
    return 0 < len(word) <= 32 and word.replace(b".", b"").isalnum()


def _imap_command(line: bytes) -> bool:
    tag, _, rest = line.partition(b" ")
    return _tag(tag) and rest.split(b" ", 1)[0].upper() in _COMMANDS


def _imap_response(line: bytes) -> bool:
    first, _, rest = line.partition(b" ")
    if first == b"*":
        word = rest.upper()
        if word.startswith(_UNTAGGED):
            return True
        number, _, what = word.partition(b" ")
        return number.isdigit() and what.startswith(_COUNTED)
    return _tag(first) and not first.isdigit() and rest[:3].upper() in (b"OK ", b"NO ", b"BAD") and len(rest) > 3


def _opens(client: bytes) -> bool:
    """The client's first command is one a session opens with: the server's first line is its greeting."""
    parts = client[:client.find(b"\n", 0, 64)].rstrip(b"\r").split(b" ", 2)
    return len(parts) >= 2 and parts[1].upper() in _FIRST


DISSECTOR = register(IMAPDissector())
