"""NNTP (RFC 3977), STARTTLS (RFC 4642) and AUTHINFO (RFC 4643), facts only.

`app_protocol`: "nntp". Found by content on any port (119 is a hint; NNTPS on 563 is TLS from the
first byte): the server's greeting is `200` (posting allowed) or `201` (no posting), and the
client's first line, when there is one, is an NNTP command.

Command n gets the next status line; the multi-line answers (RFC 3977 3.1.1: 100 HELP, 101
CAPABILITIES, 215 LIST, 220-222 ARTICLE/HEAD/BODY, 224 OVER, 225 HDR, 230 NEWNEWS, 231 NEWGROUPS,
211 of LISTGROUP) are skipped to their terminating `.` line (CAPABILITIES is read for STARTTLS), and
POST/IHAVE articles (after 340/335) to theirs.

Facts: `nntp_banner` (the greeting, at most 256 characters), `nntp_posting` (200: posting allowed),
`starttls` (offered: STARTTLS in the CAPABILITIES list; STARTTLS answered 382 hands the stream to
the TLS dissector after the command line and after the 382 line, `analyzer.dissect.lines.start_tls`),
`encrypted` False while in the clear.
`credentials` rows: AUTHINFO USER / PASS (`user_pass`: the password in the clear, its length and
keyed fingerprint only; 281 accepted, 481 / 482 / 502 refused) and AUTHINFO SASL (by mechanism).
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
    start_tls,
    starttls_state,
    upgrade_outcome,
)

__all__ = ["NNTPDissector"]

MAX_COMMANDS = 256
COLUMNS: tuple[Column, ...] = (
    Column("nntp_banner", "string", "the server's 200/201 greeting line (at most 256 characters)"),
    Column("nntp_posting", "boolean", "the greeting allows posting (200) or not (201)"),
    STARTTLS_COLUMN,
)
_COMMANDS = frozenset({b"CAPABILITIES", b"MODE", b"STARTTLS", b"AUTHINFO", b"LIST", b"GROUP", b"LISTGROUP",
                       b"ARTICLE", b"HEAD", b"BODY", b"STAT", b"NEXT", b"LAST", b"POST", b"IHAVE", b"QUIT", b"HELP",
                       b"NEWGROUPS", b"NEWNEWS", b"OVER", b"XOVER", b"HDR", b"XHDR", b"DATE", b"COMPRESS", b"XPAT"})
_MULTI = frozenset({100, 101, 215, 220, 221, 222, 224, 225, 230, 231})


def _code(line: bytes | None) -> int | None:
    if line is None or len(line) < 3 or not line[:3].isdigit():
        return None
    return int(line[:3])


class NNTPDissector:
    """NNTP over TCP, found by its 200/201 greeting on any port."""

    name = "nntp"
    app_protocols = ("nntp",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({119})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> NNTPDissector:
        return NNTPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        greeting = flow.to_client.data[:4]
        if greeting not in (b"200 ", b"201 "):
            return False
        client = flow.to_server.data
        end = client.find(b"\r\n", 0, 32)
        word = (client[:end] if end >= 0 else client[:16]).split(b" ", 1)[0].upper()
        return not client or word in _COMMANDS

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "nntp"}
        cli, srv = Cursor(flow.to_server.data), Cursor(flow.to_client.data)
        greeting = srv.line()
        code = _code(greeting)
        if greeting is not None and code in (200, 201):
            out["nntp_banner"] = cut(greeting)
            out["nntp_posting"] = code == 200
        offered = requested = accepted = capabilities_seen = False
        handed: bool | None = None
        user: bytes | None = None
        for _ in range(MAX_COMMANDS):
            line = cli.line()
            if line is None:
                break
            words = line.split(b" ", 2)
            verb = words[0].upper()
            sub = words[1].upper() if len(words) > 1 else b""
            exchange = None
            if verb == b"AUTHINFO" and sub == b"SASL" and len(words) > 2:
                parts = words[2].split()
                if parts:  # "AUTHINFO SASL " without a mechanism is no exchange (found by the fuzz test)
                    exchange = SaslExchange(parts[0], parts[1] if len(parts) > 1 else None)
            status = srv.line()
            while exchange is not None and _code(status) == 383:  # SASL challenge
                answer = cli.line()
                if answer is None or not exchange.add(answer):
                    status = srv.line() if answer is not None else None
                    break
                status = srv.line()
            code = _code(status)
            if code in _MULTI or (code == 211 and verb == b"LISTGROUP"):
                if verb == b"CAPABILITIES":
                    capabilities_seen = True
                    offered = dot_list_has(srv, b"STARTTLS")
                elif not srv.skip_past(b"\r\n.\r\n"):
                    break
            elif code in (340, 335) and verb in (b"POST", b"IHAVE"):  # the article follows
                if not cli.skip_past(b"\r\n.\r\n"):
                    break
                status = srv.line()
            if verb == b"STARTTLS":
                requested = True
                if code is None:  # no answer in the capture
                    out.update(protection="starttls", undecided_reason="handshake_incomplete")
                    facts.flow.update(out)
                    return facts
                if code == 382:
                    accepted = True
                    handed = start_tls(facts, "nntp", cli.data, cli.pos, srv.pos)
                    break
            elif verb == b"AUTHINFO" and sub == b"USER":
                user = words[2] if len(words) > 2 else b""
                if code == 281 and self.rows:  # accepted without a password
                    facts.add_row("credentials", credential_row(self.key, "nntp", "user_pass", user, None, True))
            elif verb == b"AUTHINFO" and sub == b"PASS" and self.rows:
                password = words[2] if len(words) > 2 else b""  # the rest of the line: it may hold spaces
                outcome = None if code is None else code == 281
                facts.add_row("credentials", credential_row(self.key, "nntp", "user_pass", user, password, outcome))
            elif exchange is not None and self.rows:
                name, secret = exchange.identity()
                outcome = None if code is None else code in (281, 283)
                facts.add_row("credentials", credential_row(self.key, "nntp", exchange.mechanism, name, secret,
                                                            outcome))
            if status is None:
                break
        if cli.stop == "overlong":
            facts.anomaly("nntp_line_overlong", "client: a line longer than 8192 bytes; the rest is not read", cli.pos)
        if capabilities_seen or requested:
            out["starttls"] = starttls_state(offered, requested, accepted)
        out.update(upgrade_outcome(accepted, handed))
        facts.flow.update(out)
        return facts



DISSECTOR = register(NNTPDissector())
