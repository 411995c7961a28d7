"""SMTP / ESMTP (RFC 5321), STARTTLS (RFC 3207) and AUTH (RFC 4954), facts only.

`app_protocol`: "smtp". Found by content on any port: a 220 greeting from the server, and the
client's first command HELO / EHLO / LHLO (or, when the client's bytes are missing, a greeting that
names SMTP). Ports 25, 587 and 2525 are hints.

The client's commands and the server's replies are walked in order (command n gets the next reply;
PIPELINING keeps that order, RFC 2920 3.1): the greeting, the EHLO reply's extensions (STARTTLS, the
AUTH mechanisms), AUTH exchanges (334 challenges and the client's base64 answers), DATA (the message
is skipped to its CR LF . CR LF) and BDAT chunks.

Facts: `smtp_banner` (the greeting's first line), `smtp_helo` (the HELO/EHLO argument),
`smtp_auth_offered` (the AUTH mechanisms the server advertised), `smtp_commands` (client commands
read), `starttls` (see `analyzer.dissect.lines`), `encrypted` False while the session stays in the
clear. When the server accepts STARTTLS (220), the stream from the byte after the client's command
line and after the server's reply goes to the TLS dissector (`Facts.hand_over`): the flow gets its
TLS row, `tls_upgraded` and TLS's `encrypted`; `app_protocol` stays "smtp". When no client byte
follows in the capture, `encrypted` stays undecided; when cleartext follows instead of a TLS record,
an anomaly and `encrypted` False (`analyzer.dissect.lines.start_tls`).

`credentials` rows (see `analyzer.dissect.credentials`) for AUTH PLAIN / LOGIN / CRAM-MD5 / XOAUTH2
and other SASL mechanisms (by name), with the server's answer (235 accepted).
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, SaslExchange, credential_row, run_key
from analyzer.dissect.lines import (
    STARTTLS_COLUMN,
    Cursor,
    Reply,
    answers,
    cut,
    greeting_names,
    reply_line,
    reply_start,
    resync_pair,
    server_only_upgrade,
    start_tls,
    starttls_state,
    upgrade_outcome,
    upgrade_unanswered,
)

__all__ = ["SMTPDissector"]

MAX_COMMANDS = 256
COLUMNS: tuple[Column, ...] = (
    Column("smtp_banner", "string", "the server's 220 greeting, first line (at most 256 characters)"),
    Column("smtp_helo", "string", "the client's HELO / EHLO / LHLO argument"),
    Column("smtp_auth_offered", "string", "AUTH mechanisms the server advertised in its EHLO reply, space-separated"),
    Column("smtp_commands", "Int32", "client commands read in the cleartext part of the session"),
    STARTTLS_COLUMN,
)
_HELLO = frozenset({b"EHLO", b"HELO", b"LHLO"})


class SMTPDissector:
    """SMTP over TCP, found by its greeting and first command on any port."""

    name = "smtp"
    app_protocols = ("smtp",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({25, 587, 2525})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> SMTPDissector:
        return SMTPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        """A 220 greeting and a HELO / EHLO / LHLO first command (or, with the client's bytes missing,
        a greeting naming SMTP or the port); or that command alone when the server's bytes are missing."""
        server, client = flow.to_client.data, flow.to_server.data
        hello = client[:4].upper() in _HELLO and client[4:5] in (b" ", b"\r", b"\n")
        if not server.startswith(b"220"):
            return hello and not server
        if client:
            return hello
        return greeting_names(server, b"SMTP") or flow.server_port in self.ports

    def resync(self, flow: FlowPayload) -> tuple[int | None, int | None]:
        """Mid-stream: the first client line that is an SMTP-only command (`MAIL FROM:`, `RCPT TO:`,
        EHLO / HELO / LHLO) and the first server reply that only SMTP sends (an enhanced status
        code `250 2.1.0`, `354`, an EHLO extension line, a 220 naming SMTP), read from the start of
        its multi-line reply. A first reply that cannot answer the first command read (a 250 to
        STARTTLS) answers a command the capture missed: it is skipped."""
        client, server = resync_pair(flow.to_server.data, flow.to_client.data, (_smtp_command, _any_smtp_command),
                                     (_smtp_reply, reply_line))
        if server is not None:
            server = reply_start(flow.to_client.data, server)
            if client is not None:
                server = _in_step(flow.to_server.data, client, flow.to_client.data, server)
        return client, server

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "smtp"}
        cli, srv = Cursor(flow.to_server.data), Cursor(flow.to_client.data)
        # mid-stream: a 220 is the greeting only when the client's first command opens a session
        greeting = srv.reply() if flow.to_client.start_known or _opens(cli.data) else None
        if greeting is not None and greeting.code not in (220, 421, 554):
            greeting, srv.pos = None, 0  # the capture missed the greeting: this answers the first command
        if greeting is not None:
            out["smtp_banner"] = cut(greeting.texts[0])
        offered = requested = accepted = False
        handed: bool | None = None
        ehlo_seen = False
        mechanisms: list[str] = []
        commands = 0
        while commands < MAX_COMMANDS:
            line = cli.line()
            if line is None:
                break
            commands += 1
            verb, _, arg = line.partition(b" ")
            verb = verb.upper()
            if verb in (b"EHLO", b"HELO", b"LHLO"):
                out.setdefault("smtp_helo", cut(arg.strip()))
                reply = srv.reply()
                if reply is not None and reply.code == 250:
                    ehlo_seen = True
                    for ext in reply.texts[1:]:
                        word, _, params = ext.upper().partition(b" ")
                        if word == b"STARTTLS":
                            offered = True
                        elif word in (b"AUTH", b"AUTH=") and not mechanisms:
                            mechanisms = [cut(m, 40) for m in params.split()[:32]]
            elif verb == b"STARTTLS":
                requested = True
                before = srv.pos
                reply = srv.reply()
                if reply is not None and reply.code == 220:
                    accepted = True
                    handed = start_tls(facts, "smtp", cli.data, cli.pos, reply.end, srv.data)
                    break
                if upgrade_unanswered(facts, cli.data, cli.pos, srv.data, before):
                    accepted = handed = True
                    break
            elif verb == b"AUTH":
                self._auth(arg, cli, srv, facts)
            elif verb == b"DATA":
                reply = srv.reply()
                if reply is not None and reply.code == 354:
                    if not cli.skip_past(b"\r\n.\r\n"):
                        break
                    srv.reply()
            elif verb == b"BDAT":
                size = arg.split(b" ", 1)[0]
                if not size.isdigit() or len(size) > 12:
                    break
                cli.pos += int(size)
                srv.reply()
            else:
                srv.reply()
        if not cli.data and server_only_upgrade(facts, srv.data):
            accepted = handed = True  # a server-only view: its cleartext replies, then TLS
        if cli.stop == "overlong":
            facts.anomaly("smtp_line_overlong", "client: a line longer than 8192 bytes; the rest is not read", cli.pos)
        out["smtp_commands"] = commands
        if mechanisms:
            out["smtp_auth_offered"] = " ".join(mechanisms)
        if ehlo_seen or requested or accepted:
            out["starttls"] = starttls_state(offered, requested, accepted)
        out.update(upgrade_outcome(accepted, handed))
        facts.flow.update(out)
        return facts

    def _auth(self, arg: bytes, cli: Cursor, srv: Cursor, facts: Facts) -> None:
        """An AUTH exchange: mechanism [initial-response], then 334 challenges answered line by line."""
        parts = arg.split()
        if not parts:
            srv.reply()
            return
        exchange = SaslExchange(parts[0], parts[1] if len(parts) > 1 else None)
        reply: Reply | None = srv.reply()
        for _ in range(8):
            if reply is None or reply.code != 334:
                break
            response = cli.line()
            if response is None:
                break
            if not exchange.add(response):
                reply = srv.reply()
                break
            reply = srv.reply()
        if self.rows:
            user, secret = exchange.identity()
            outcome = None if reply is None or reply.code == 334 else reply.code == 235
            facts.add_row("credentials", credential_row(self.key, "smtp", exchange.mechanism, user, secret, outcome))


def _opens(client: bytes) -> bool:
    """The client's first line is HELO / EHLO / LHLO: the server's first reply is its greeting."""
    return client[:4].upper() in _HELLO and client[4:5] in (b" ", b"\r", b"\n")


_ONLY_SMTP_COMMANDS = (b"MAIL FROM:", b"RCPT TO:", b"EHLO ", b"HELO ", b"LHLO ")
_EXTENSIONS = (b"PIPELINING", b"8BITMIME", b"SIZE", b"STARTTLS", b"ENHANCEDSTATUSCODES", b"AUTH", b"DSN",
               b"SMTPUTF8", b"CHUNKING")
# What a command's positive reply can be (RFC 5321 4.3.2): another 2xx/3xx answers something else.
_POSITIVE = {b"EHLO": (250,), b"HELO": (250,), b"LHLO": (250,), b"MAIL": (250,), b"RCPT": (250, 251, 252),
             b"DATA": (354,), b"BDAT": (250,), b"STARTTLS": (220,), b"AUTH": (235, 334), b"QUIT": (221,),
             b"RSET": (250,), b"NOOP": (250,), b"VRFY": (250, 251, 252)}


def _smtp_command(line: bytes) -> bool:
    return line[:10].upper().startswith(_ONLY_SMTP_COMMANDS)


_SMTP_VERBS = frozenset({b"EHLO", b"HELO", b"LHLO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"RSET", b"NOOP", b"QUIT",
                         b"VRFY", b"EXPN", b"HELP", b"STARTTLS", b"AUTH", b"ETRN"})


def _any_smtp_command(line: bytes) -> bool:
    return line.partition(b" ")[0].upper() in _SMTP_VERBS


def _smtp_reply(line: bytes) -> bool:
    if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in (b" ", b"-"):
        return False
    text = line[4:]
    enhanced = text[:1] in (b"2", b"4", b"5") and text[1:2] == b"." and text[2:3].isdigit()
    return (enhanced or line[:4] == b"354 " or (line[:3] == b"250" and text.upper().startswith(_EXTENSIONS))
            or (line[:3] == b"220" and b"SMTP" in text.upper()))


def _in_step(client: bytes, at: int, server: bytes, reply_at: int) -> int:
    """`reply_at`, or the next reply when the one there cannot answer the command at `at`."""
    reply = Cursor(server, reply_at).reply()
    return reply_at if reply is None or answers(client, at, reply, _POSITIVE, _HELLO) else reply.end


DISSECTOR = register(SMTPDissector())
