"""Telnet (RFC 854, option negotiation RFC 855) over TCP, and the login typed into it, facts only.

`app_protocol`: "telnet". Found by content on any port: either direction starts with an IAC command
(IAC WILL/WONT/DO/DONT/SB: every Telnet implementation negotiates options first), or, on port 23
only, the server's first bytes show a `login:` / `password:` prompt (a server that negotiates
nothing). Telnet has no encryption in use here (the ENCRYPT option of RFC 2946 is obsolete and not
read): `encrypted` False, `protection` "none".

What is read: each direction with the Telnet commands taken out (`strip_iac`: IAC IAC is a data
byte 0xFF; WILL/WONT/DO/DONT take one option byte; SB ... IAC SE is skipped, except the client's
NEW-ENVIRON (RFC 1572) `USER` variable, which names the user when the client sends it, as
`telnet -l` does). The server's text gives the prompts (`login:`, `username:`, `password:`, case
insensitive, in order) and the client's text the lines it typed (CR LF, CR NUL, CR or LF ends a line;
backspace and DEL edit it), taken in order: each prompt is answered by the client's next line
(typing ahead of a prompt is rare in a login). A password prompt answered by a line makes a
`credentials` row (mechanism "login", the user name answered to the preceding login prompt, the
password's length and keyed fingerprint, never the password), `accepted` False when the server's
text after it says the login was incorrect/failed/denied, True when it shows `Last login` or a shell
prompt, unknown otherwise. The server echoes the user name (not the password): the echo is in the
server's text and is not mistaken for a line of the client.

Anchors: Zeek's Login analyzer (`src/analyzer/protocol/login/`: Telnet option handling in
`TelnetOption`/`NVT`, `login_prompts`/`login_failure_msgs`/`login_success_msgs` in
`base/protocols/login`), nDPI's `telnet.c` (user name after the login prompt, password after the
password prompt).
"""

from __future__ import annotations

import re

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import cut, lazy_pattern

__all__ = ["TelnetDissector", "client_lines", "strip_iac"]

IAC, SB, SE = 0xFF, 0xFA, 0xF0
NEW_ENVIRON = 39
MAX_OPTIONS = 1024  # IAC commands read per direction
MAX_TEXT = 16384  # bytes of each direction's stripped text looked at for prompts and lines
MAX_LINES = 64
MAX_ATTEMPTS = 8
# a prompt: the word and a colon (not "Last login: <date>", which follows a successful login)
_PROMPTS = lazy_pattern(rb"(?<!last )\b(login|user ?name|password|passcode)[ \t]*:", re.IGNORECASE)
_FAILED = lazy_pattern(rb"incorrect|fail|denied|invalid|bad password", re.IGNORECASE)
_SUCCESS = lazy_pattern(rb"last login|welcome|[$#%>] ?$", re.IGNORECASE | re.MULTILINE)
_LINE_END = lazy_pattern(rb"\r\n|\r\0|\r|\n")

COLUMNS: tuple[Column, ...] = (
    Column("telnet_username", "string", "the user name typed at the first login prompt (or sent as USER in "
                                        "NEW-ENVIRON), at most 256 characters"),
    Column("telnet_options", "Int32", "Telnet option commands (WILL/WONT/DO/DONT/SB) seen, both directions"),
)


def strip_iac(data: bytes, limit: int = MAX_TEXT) -> tuple[bytes, int, bytes | None]:
    """(the data bytes without Telnet commands, at most `limit`; the number of option commands;
    the NEW-ENVIRON USER value when the bytes carry one)."""
    out = bytearray()
    pos = 0
    options = 0
    user: bytes | None = None
    while pos < len(data) and len(out) < limit and options < MAX_OPTIONS:
        at = data.find(b"\xff", pos)
        if at < 0:
            out += data[pos:]
            break
        out += data[pos:at]
        cmd = data[at + 1] if at + 1 < len(data) else None
        if cmd is None:
            break
        if cmd == IAC:
            out.append(IAC)
            pos = at + 2
        elif cmd == SB:
            options += 1
            end = data.find(b"\xff\xf0", at + 2)
            if end < 0:
                break
            body = data[at + 2:end]
            if body[:2] in (b"\x27\x00", b"\x27\x02") and user is None:  # NEW-ENVIRON IS / INFO
                user = _environ_user(body[2:])
            pos = end + 2
        elif cmd >= 0xFB:  # WILL, WONT, DO, DONT + option
            options += 1
            pos = at + 3
        else:  # NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SE out of place
            pos = at + 2
    return bytes(out[:limit]), options, user


def _environ_user(body: bytes) -> bytes | None:
    """The USER variable of a NEW-ENVIRON IS/INFO list (VAR 0, VALUE 1, ESC 2, USERVAR 3)."""
    parts = re.split(rb"[\x00\x03]", body.replace(b"\x02\x01", b"").replace(b"\x02\x00", b""))
    for part in parts[:32]:
        name, _, value = part.partition(b"\x01")
        if name == b"USER" and value:
            return value
    return None


def client_lines(text: bytes) -> list[bytes]:
    """The lines the client typed, in order (complete lines only), with backspace/DEL applied."""
    pieces = _LINE_END().split(text, MAX_LINES)
    out = []
    for raw in pieces[:-1][:MAX_LINES]:  # the last piece has no line end: not yet entered
        line = bytearray()
        for byte in raw[:1024]:
            if byte in (0x08, 0x7F):
                if line:
                    line.pop()
            else:
                line.append(byte)
        out.append(bytes(line))
    return out


def _prompts(text: bytes) -> list[tuple[str, int]]:
    """("user" | "password", offset after the prompt) for each prompt in the server's text."""
    out = []
    for m in _PROMPTS().finditer(text):
        kind = m.group(1).lower()
        out.append(("password" if kind in (b"password", b"passcode") else "user", m.end()))
        if len(out) >= 2 * MAX_ATTEMPTS:
            break
    return out


def _outcome(after: bytes) -> bool | None:
    if _FAILED().search(after[:512]):
        return False
    if _SUCCESS().search(after[:2048]):
        return True
    return None


class TelnetDissector:
    """Telnet over TCP, found by its option negotiation (or a login prompt on port 23)."""

    name = "telnet"
    app_protocols = ("telnet",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({23})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> TelnetDissector:
        return TelnetDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        for data in (flow.to_client.data, flow.to_server.data):
            if len(data) >= 3 and data[0] == IAC and data[1] >= SB:  # IAC WILL|WONT|DO|DONT|SB option
                return True
        if flow.server_port == 23 and flow.to_client.data:
            head = flow.to_client.data[:512]
            return _PROMPTS().search(head) is not None
        return False

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        server, sopts, _ = strip_iac(flow.to_client.data)
        client, copts, env_user = strip_iac(flow.to_server.data)
        out: dict[str, object] = {"app_protocol": "telnet", "encrypted": False, "protection": "none",
                                  "telnet_options": sopts + copts}
        lines = client_lines(client)
        user: bytes | None = env_user
        first_user: bytes | None = env_user
        prompts = _prompts(server)
        used = 0
        for i, (kind, end) in enumerate(prompts):
            if used >= len(lines):
                break
            line = lines[used]
            used += 1
            if kind == "user":
                user = line
                if first_user is None:
                    first_user = line
                continue
            nxt = prompts[i + 1][1] if i + 1 < len(prompts) else len(server)
            after = server[end:nxt]
            if self.rows:
                facts.add_row("credentials", credential_row(self.key, "telnet", "login", user, line,
                                                            _outcome(after)))
        if first_user:
            out["telnet_username"] = cut(first_user)
        facts.flow.update(out)
        return facts


DISSECTOR = register(TelnetDissector())
