"""FTP control connections (RFC 959), FTP security extensions (RFC 2228, RFC 4217) and data channel
announcements (RFC 959 PORT/PASV, RFC 2428 EPRT/EPSV), facts only.

`app_protocol`: "ftp". Found by content on any port: a 220 (or 120) greeting and a client's first
command of FTP (USER, AUTH, FEAT, SYST, OPTS, ...), or, without the client's bytes, a greeting
naming FTP; port 21 is a hint.

Command n gets the replies up to its first final one (1xx preliminary replies are followed by
another). Facts: `ftp_banner`, `ftp_auth` (the AUTH argument the client asked for: TLS, SSL, ...),
`ftp_prot` (the data channel protection level last accepted by PROT: C clear, P private, S, E),
`ftp_data_channels` (data channel addresses announced), `starttls` (offered: AUTH TLS/SSL in the FEAT
reply), `encrypted` False while in the clear. AUTH TLS / SSL answered 234 hands the stream to TLS after
the command line and after the 234 reply when a TLS record follows
(`analyzer.dissect.lines.start_tls`). AUTH GSSAPI accepted (RFC 2228 security exchange: GridFTP,
Kerberos) is not TLS and may protect the session invisibly: `encrypted` stays undecided.

The `ftp_data` frame: one row per announced data channel (`PORT`/`EPRT` from the client, the server's
227 answer to `PASV` or 229 answer to `EPSV`): the address and port the data connection will use, and
whether PROT P was in force (the data channel is then TLS). Linking the data flow to its control
flow needs state across flows, which a dissector does not have (it sees one flow): the collector
joins `ftp_data` (host, port) with the flows' (server_ip, server_port) (analyzer.dissect.ftp_link):
in passive mode (PASV, EPSV) the data flow's server is the announced address, in active mode (PORT,
EPRT) the client listens and the data flow's server side is the announced address too (the FTP
server connects to it). The data flow gets `ftp_control_uid` and app_protocol "ftp-data"; the
`ftp_data` row gets `data_uid`.
`credentials` rows: USER/PASS (`user_pass`; anonymous logins too: the username says so).
"""

from __future__ import annotations

import re

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload, FrameSpec
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import (
    STARTTLS_COLUMN,
    Cursor,
    Reply,
    answers,
    cut,
    greeting_names,
    reply_line,
    resync_pair,
    server_only_upgrade,
    start_tls,
    starttls_state,
    upgrade_outcome,
    upgrade_unanswered,
)

__all__ = ["FTP_DATA", "FTPDissector", "parse_epsv", "parse_hostport"]

MAX_COMMANDS = 512
MAX_DATA_ROWS = 64
COLUMNS: tuple[Column, ...] = (
    Column("ftp_banner", "string", "the server's greeting, first line (at most 256 characters)"),
    Column("ftp_auth", "string", "the AUTH mechanism the client asked for (TLS, SSL, ...)"),
    Column("ftp_prot", "string", "data channel protection level last accepted (PROT): C clear, P private, S, E"),
    Column("ftp_data_channels", "Int32", "data channel addresses announced (PORT, PASV, EPRT, EPSV)"),
    STARTTLS_COLUMN,
    Column("ftp_control_uid", "string",
           "on an FTP data flow (app_protocol ftp-data): the uid of the control flow that announced it"),
)
FTP_DATA = FrameSpec(
    "ftp_data",
    {"uid": "string", "command": "string", "host": "string", "port": "Int32", "protected": "boolean",
     "data_uid": "string"},
    "One row per FTP data channel announced on a control flow (PORT, PASV, EPRT, EPSV): its address "
    "and port, whether PROT P was in force (the data channel is TLS), and the uid of the data flow "
    "when it ended before its control flow (analyzer.dissect.ftp_link)",
)
_FIRST = frozenset({b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS", b"HOST", b"CLNT", b"PBSZ", b"ACCT", b"QUIT", b"PASS",
                    b"HELP", b"NOOP", b"STAT", b"PWD"})
_HOSTPORT = re.compile(rb"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")


def parse_hostport(text: bytes) -> tuple[str, int] | None:
    """h1,h2,h3,h4,p1,p2 (PORT argument, 227 reply) -> (address, port)."""
    m = _HOSTPORT.search(text[:512])
    if m is None:
        return None
    n = [int(x) for x in m.groups()]
    if any(x > 255 for x in n):
        return None
    return ".".join(map(str, n[:4])), n[4] * 256 + n[5]


def parse_epsv(text: bytes) -> tuple[str | None, int] | None:
    """EPRT argument `|af|addr|port|` or 229 reply `(|||port|)` -> (address or None, port)."""
    start = text.find(b"(")
    body = text[start + 1:] if start >= 0 else text.strip()
    if len(body) < 5:
        return None
    delim = body[:1]
    parts = body[1:].split(delim)
    if len(parts) < 4 or not parts[2].isdigit() or len(parts[2]) > 5 or int(parts[2]) > 65535:
        return None
    addr = parts[1].decode("latin-1")[:64] or None
    return addr, int(parts[2])


class FTPDissector:
    """FTP control over TCP, found by its greeting and first command on any port."""

    name = "ftp"
    # the app_protocol values it sets (README, "Flow encryption state"); "ftp-data" is set on the data
    # flows by the cross-flow join of analyzer.dissect.ftp_link, not by dissect()
    app_protocols = ("ftp", "ftp-data")
    transports = frozenset({"tcp"})
    ports = frozenset({21})
    columns = COLUMNS
    frames = (CREDENTIALS, FTP_DATA)

    def __init__(self, key: bytes | None = None, rows: bool = True, data_rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows
        self.data_rows = data_rows

    def for_run(self, context: DissectContext) -> FTPDissector:
        return FTPDissector(run_key(context), context.wants("credentials"), context.wants("ftp_data"))

    def probe(self, flow: FlowPayload) -> bool:
        server, client = flow.to_client.data, flow.to_server.data
        if not server:  # a client-only view: a first command only FTP sends
            return _ftp_command(client[:client.find(b"\n", 0, 128)].rstrip(b"\r"))
        if not server.startswith((b"220", b"120")):
            return False
        if client:
            return client[:4].upper() in _FIRST
        return greeting_names(server, b"FTP") or flow.server_port in self.ports

    def resync(self, flow: FlowPayload) -> tuple[int | None, int | None]:
        """Mid-stream: the first command only FTP sends (PASV, EPSV, PORT, EPRT, STOR, CWD, PWD,
        TYPE, SYST, FEAT, AUTH TLS, RETR of a path, ...) and the first reply with a code only FTP
        uses (150, 226, 227, 229, 230, 257, 331, ...), or a 220 naming FTP; read from the commands
        and replies just before them. A first positive reply that cannot answer the first command
        read answers one the capture missed: it is skipped."""
        client, server = resync_pair(flow.to_server.data, flow.to_client.data, (_ftp_command, _any_ftp_command),
                                     (_ftp_reply, reply_line))
        if client is not None and server is not None:
            server = _in_step(flow.to_server.data, client, flow.to_client.data, server)
        return client, server

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "ftp"}
        cli, srv = Cursor(flow.to_server.data), Cursor(flow.to_client.data)
        # mid-stream: a 220 is the greeting only when the client's first command opens a session
        opens = cli.data[:4].upper() in _FIRST and cli.data[:5].upper() != b"QUIT"
        greeting = _final(srv) if flow.to_client.start_known or opens else None
        if greeting is not None and greeting.code not in (220, 421):
            greeting, srv.pos = None, 0  # the capture missed the greeting: this answers the first command
        if greeting is not None:
            out["ftp_banner"] = cut(greeting.texts[0])
        offered = requested = accepted = feat_seen = gss = False
        handed: bool | None = None
        user: bytes | None = None
        prot: str | None = None
        channels = 0
        for _ in range(MAX_COMMANDS):
            line = cli.line()
            if line is None:
                break
            verb, _, arg = line.partition(b" ")
            verb = verb.upper()
            before = srv.pos
            reply = _final(srv)
            code = None if reply is None else reply.code
            if verb == b"AUTH":
                mechanism = arg.strip().upper()
                out.setdefault("ftp_auth", cut(mechanism, 16))
                if not mechanism.startswith((b"TLS", b"SSL")):
                    # RFC 2228 GSSAPI / KERBEROS_V4: a security exchange (ADAT) that may protect the
                    # session; not TLS, and whether it encrypts is not visible here
                    gss = gss or (code is not None and code in (234, 334))
                    continue
                requested = True
                if code == 234:
                    accepted = True
                    handed = start_tls(facts, "ftp", cli.data, cli.pos, srv.pos, srv.data)
                    break
                if upgrade_unanswered(facts, cli.data, cli.pos, srv.data, before):
                    accepted = handed = True
                    break
            elif verb == b"FEAT" and reply is not None:
                feat_seen = True
                offered = offered or any(t.strip().upper().startswith(b"AUTH") for t in reply.texts)
            elif verb == b"PROT" and code == 200:
                prot = cut(arg.strip().upper(), 1)
            elif verb == b"USER":
                user = arg
                if code == 230 and self.rows:  # logged in without a password
                    facts.add_row("credentials", credential_row(self.key, "ftp", "user_pass", user, None, True))
            elif verb == b"PASS" and self.rows:
                facts.add_row("credentials", credential_row(
                    self.key, "ftp", "user_pass", user, arg, None if code is None else code in (202, 230)))
            channel = self._channel(verb, arg, reply, flow.server_ip)
            if channel is not None:
                channels += 1
                if self.data_rows and channels <= MAX_DATA_ROWS:
                    facts.add_row("ftp_data", {"command": verb.decode("latin-1"), "host": channel[0],
                                               "port": channel[1], "protected": prot == "P"})
            if reply is None and srv.data:
                break  # (a client-only view reads on: its commands are facts too)
        if not cli.data and server_only_upgrade(facts, srv.data):
            accepted = handed = True  # a server-only view: its cleartext replies, then TLS
        if cli.stop == "overlong":
            facts.anomaly("ftp_line_overlong", "client: a line longer than 8192 bytes; the rest is not read", cli.pos)
        if prot is not None:
            out["ftp_prot"] = prot
        out["ftp_data_channels"] = channels
        if feat_seen or requested or accepted:
            out["starttls"] = starttls_state(offered, requested, accepted)
        if gss and not accepted:
            # RFC 2228: commands after ADAT travel in ENC/MIC/CONF wrappers; which one is not read here
            out.update({"protection": "gssapi", "undecided_reason": "undecided"})
        else:
            out.update(upgrade_outcome(accepted, handed))
        facts.flow.update(out)
        return facts

    @staticmethod
    def _channel(verb: bytes, arg: bytes, reply: Reply | None, server_ip: str) -> tuple[str | None, int] | None:
        ok = reply is not None and reply.code < 400
        if verb == b"PORT" and ok:
            return parse_hostport(arg)
        if verb == b"EPRT" and ok:
            return parse_epsv(arg)
        if verb == b"PASV" and reply is not None and reply.code == 227:
            return parse_hostport(b" ".join(reply.texts))
        if verb == b"EPSV" and reply is not None and reply.code == 229:
            found = parse_epsv(b" ".join(reply.texts))
            return None if found is None else (found[0] or server_ip, found[1])
        return None


def _final(srv: Cursor) -> Reply | None:
    """The next final reply, past 1xx preliminary ones (RFC 959 4.2)."""
    for _ in range(8):
        reply = srv.reply()
        if reply is None or reply.code >= 200:
            return reply
    return None



# Commands only FTP sends (USER, PASS, QUIT, NOOP, RSET, LIST, RETR and DELE are POP3's too, or
# name a message number there), every command (RFC 959 5.3.1, RFC 2228, RFC 2389, RFC 2428, RFC 3659),
# reply codes only FTP uses (SMTP shares 2xx/5xx codes), and what a command's positive final reply
# can be (another 2xx/3xx answers a command the capture missed).
_ONLY_FTP = frozenset({b"PASV", b"EPSV", b"PORT", b"EPRT", b"STOR", b"STOU", b"APPE", b"CWD", b"CDUP", b"PWD", b"XPWD",
                       b"TYPE", b"SYST", b"FEAT", b"MLSD", b"MLST", b"NLST", b"MKD", b"RMD", b"SIZE", b"MDTM",
                       b"PBSZ", b"PROT", b"REST", b"RNFR", b"RNTO", b"ABOR", b"MODE", b"STRU", b"SITE"})
_FTP_COMMANDS = _ONLY_FTP | _FIRST | {b"RETR", b"LIST", b"DELE", b"RSET", b"ADAT", b"CCC", b"ENC", b"MIC",
                                      b"CONF", b"ALLO", b"REIN", b"SMNT", b"LANG", b"EPSV"}
_FTP_CODES = frozenset({b"110", b"125", b"150", b"226", b"227", b"229", b"230", b"234", b"257", b"331", b"332",
                        b"350", b"425", b"426", b"532"})
_POSITIVE = {b"USER": (230, 331, 332), b"PASS": (202, 230, 332), b"PASV": (227,), b"EPSV": (229,), b"PORT": (200,),
             b"EPRT": (200,), b"RETR": (226, 250), b"STOR": (226, 250), b"LIST": (226, 250), b"NLST": (226, 250),
             b"MLSD": (226, 250), b"CWD": (200, 250), b"PWD": (257,), b"MKD": (257,), b"TYPE": (200,),
             b"SYST": (215,), b"FEAT": (211,), b"SIZE": (213,), b"MDTM": (213,), b"AUTH": (234, 334),
             b"PBSZ": (200,), b"PROT": (200,), b"QUIT": (221,), b"NOOP": (200,)}


def _ftp_command(line: bytes) -> bool:
    verb, _, arg = line.partition(b" ")
    verb = verb.upper()
    if verb in _ONLY_FTP:
        return True
    if verb == b"AUTH":
        return arg.strip().upper() in (b"TLS", b"SSL", b"TLS-C", b"TLS-P")
    return verb in (b"RETR", b"DELE") and bool(arg.strip()) and not arg.strip().isdigit()


def _any_ftp_command(line: bytes) -> bool:
    return line.partition(b" ")[0].upper() in _FTP_COMMANDS


def _ftp_reply(line: bytes) -> bool:
    return reply_line(line) and (line[:3] in _FTP_CODES or (line[:3] == b"220" and b"FTP" in line.upper()))


def _in_step(client: bytes, at: int, server: bytes, reply_at: int) -> int:
    """`reply_at`, or the next final reply when the one there cannot answer the command at `at`."""
    srv = Cursor(server, reply_at)
    return reply_at if answers(client, at, _final(srv), _POSITIVE, _FIRST) else srv.pos


DISSECTOR = register(FTPDissector())
