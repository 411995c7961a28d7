"""POP3 (RFC 1939), CAPA and STLS (RFC 2449, RFC 2595), AUTH (RFC 5034), facts only.

`app_protocol`: "pop3". Found by content on any port: the server's greeting `+OK` followed by a
client command of POP3 (or nothing from the client); port 110 is a hint.

Command n gets the next status line (`+OK` / `-ERR`); the multi-line answers (CAPA, LIST and UIDL
without argument, RETR, TOP, AUTH without argument) are skipped to their terminating `.` line; AUTH
challenges (`+ ...`) are answered by the client's next line.

Facts: `pop3_banner` (the greeting, first 256 characters), `starttls` (offered: `STLS` in the CAPA
answer), `encrypted` False while in the clear. STLS answered `+OK` hands the stream to TLS after the
command line and after the `+OK` line when a TLS record follows
(`analyzer.dissect.lines.start_tls`).
`credentials` rows: USER/PASS (`user_pass`), APOP (`apop`, no reusable secret) and AUTH (by SASL
mechanism).
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, SaslExchange, credential_row, run_key
from analyzer.dissect.lines import (
    STARTTLS_COLUMN,
    Cursor,
    cut,
    dot_list_has,
    lazy_pattern,
    resync_pair,
    server_only_upgrade,
    start_tls,
    starttls_state,
    upgrade_outcome,
    upgrade_unanswered,
)

__all__ = ["POP3Dissector"]

MAX_COMMANDS = 256
COLUMNS: tuple[Column, ...] = (
    Column("pop3_banner", "string", "the server's +OK greeting line (at most 256 characters)"),
    STARTTLS_COLUMN,
)
_COMMANDS = frozenset({b"USER", b"PASS", b"APOP", b"CAPA", b"STLS", b"AUTH", b"STAT", b"LIST", b"RETR", b"DELE",
                       b"NOOP", b"RSET", b"QUIT", b"TOP", b"UIDL", b"UTF8", b"LANG"})
_SASL_NAME = lazy_pattern(rb"[A-Z0-9_-]{1,20}")
_MULTI_ALWAYS = frozenset({b"CAPA", b"RETR", b"TOP"})
_MULTI_NO_ARG = frozenset({b"LIST", b"UIDL", b"AUTH"})


def _redis_inline_auth(client: bytes, server: bytes) -> bool:
    """Redis's inline `AUTH password` answered by a bare `+OK` looks like POP3's `AUTH mechanism`
    after a greeting. A POP3 greeting carries text after `+OK` (RFC 1939 §4: "+OK POP3 server
    ready") and AUTH names a SASL mechanism (RFC 4422 §3.1: upper-case letters, digits, `-`, `_`,
    at most 20), so a bare `+OK` line before anything else and an argument that is no mechanism name
    is Redis's exchange, not POP3's."""
    if not server.startswith(b"+OK\r\n") or client[:5].upper() != b"AUTH ":
        return False
    argument = client[5:client.find(b"\n") if b"\n" in client else len(client)].strip().split(b" ", 1)[0]
    return not _SASL_NAME().fullmatch(argument)


class POP3Dissector:
    """POP3 over TCP, found by its greeting on any port."""

    name = "pop3"
    app_protocols = ("pop3",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({110})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> POP3Dissector:
        return POP3Dissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        """The greeting `+OK` and a POP3 command (or no client bytes: then a greeting with text,
        which a Redis `+OK` reply never has); without the server's bytes, a first command that
        only POP3 sends."""
        server, client = flow.to_client.data, flow.to_server.data
        if not server:
            return _pop3_command(client[:client.find(b"\n", 0, 64)].rstrip(b"\r"))
        if not server.startswith(b"+OK"):
            return False
        if client:
            return client[:4].upper() in _COMMANDS and not _redis_inline_auth(client, server)
        return server[3:4] == b" " and server[4:5] not in (b"\r", b"")

    def resync(self, flow: FlowPayload) -> tuple[int | None, int | None]:
        """Mid-stream: the first client line that only POP3 sends (STAT, UIDL, TOP, CAPA, STLS,
        APOP, RETR / DELE / LIST of a message number) and the first server status line with text
        (`+OK 2 messages`, `-ERR ...`; a bare `+OK` is also Redis's reply)."""
        return resync_pair(flow.to_server.data, flow.to_client.data, (_pop3_command, _any_pop3_command),
                           (_pop3_status, _any_pop3_status))

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "pop3"}
        cli, srv = Cursor(flow.to_server.data), Cursor(flow.to_client.data)
        greeting = self._greeting(srv) if flow.to_client.start_known else None  # mid-stream: no greeting
        if greeting is not None:
            out["pop3_banner"] = cut(greeting)
        offered = requested = accepted = capa_seen = False
        handed: bool | None = None
        user: bytes | None = None
        for _ in range(MAX_COMMANDS):
            line = cli.line()
            if line is None:
                break
            verb, _, arg = line.partition(b" ")
            verb = verb.upper()
            exchange = None
            if verb == b"AUTH" and arg.strip():
                parts = arg.split()
                exchange = SaslExchange(parts[0], parts[1] if len(parts) > 1 else None)
            before = srv.pos
            status = srv.line()
            while exchange is not None and status is not None and status.startswith(b"+ "):
                answer = cli.line()
                if answer is None or not exchange.add(answer):
                    status = srv.line() if answer is not None else None
                    break
                status = srv.line()
            ok = None if status is None else status.startswith(b"+OK")
            if ok and (verb in _MULTI_ALWAYS or (verb in _MULTI_NO_ARG and not arg.strip())):
                if verb == b"CAPA":
                    capa_seen = True
                    offered = dot_list_has(srv, b"STLS")
                elif not srv.skip_past(b"\r\n.\r\n"):
                    break
            if verb == b"STLS":
                requested = True
                if ok:
                    accepted = True
                    handed = start_tls(facts, "pop3", cli.data, cli.pos, srv.pos, srv.data)
                    break
                if upgrade_unanswered(facts, cli.data, cli.pos, srv.data, before):
                    accepted = handed = True
                    break
            elif verb == b"USER":
                user = arg
            elif verb == b"PASS" and self.rows:
                facts.add_row("credentials", credential_row(self.key, "pop3", "user_pass", user, arg, ok))
            elif verb == b"APOP" and self.rows:
                facts.add_row("credentials", credential_row(
                    self.key, "pop3", "apop", arg.rsplit(b" ", 1)[0], None, ok))
            elif exchange is not None and self.rows:
                name, secret = exchange.identity()
                facts.add_row("credentials", credential_row(self.key, "pop3", exchange.mechanism, name, secret, ok))
            if status is None and srv.data:
                break  # (a client-only view reads on: its commands are facts too)
        if not cli.data and server_only_upgrade(facts, srv.data):
            accepted = handed = True  # a server-only view: its cleartext lines, then TLS
        if cli.stop == "overlong":
            facts.anomaly("pop3_line_overlong", "client: a line longer than 8192 bytes; the rest is not read", cli.pos)
        if capa_seen or requested or accepted:
            out["starttls"] = starttls_state(offered, requested, accepted)
        out.update(upgrade_outcome(accepted, handed))
        facts.flow.update(out)
        return facts

    @staticmethod
    def _greeting(srv: Cursor) -> bytes | None:
        """The greeting line; None (and nothing read) when the first line is not one: a status line
        followed by a line that is not a status line starts a multi-line answer (the capture missed
        the greeting, and this answers the client's first command)."""
        first = srv.line()
        after = srv.pos
        second = srv.line()
        srv.pos, srv.stop = after, None
        srv.reads = 1
        if first is not None and second is not None and second[:1] not in (b"+", b"-"):
            srv.pos, srv.reads = 0, 0
            return None
        return first


# Commands that only POP3 sends (USER, PASS, QUIT, NOOP, RSET and LIST are FTP's too; RETR / DELE /
# LIST name a message number in POP3 and a path in FTP).
_ONLY_POP3 = frozenset({b"STAT", b"UIDL", b"TOP", b"CAPA", b"STLS", b"APOP"})
_NUMBERED = frozenset({b"RETR", b"DELE", b"LIST"})


def _pop3_command(line: bytes) -> bool:
    verb, _, arg = line.partition(b" ")
    verb = verb.upper()
    return verb in _ONLY_POP3 or (verb in _NUMBERED and arg.strip().isdigit())


def _any_pop3_command(line: bytes) -> bool:
    return line.partition(b" ")[0].upper() in _COMMANDS


def _any_pop3_status(line: bytes) -> bool:
    return line.startswith((b"+OK", b"-ERR"))


def _pop3_status(line: bytes) -> bool:
    return (line.startswith(b"+OK ") or line.startswith(b"-ERR ")) and len(line.strip()) > 5


DISSECTOR = register(POP3Dissector())
