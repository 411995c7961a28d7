"""Shared reading of line-based cleartext protocols (SMTP, IMAP, POP3, FTP), and the `starttls` column.

Not a dissector: the helpers the line-based dissectors share, so that each bounds its work the same
way. Wire bytes are hostile: a line is at most `MAX_LINE` bytes (RFC 5321 4.5.3.1 allows 512 for a
command and 1000 for a text line; IMAP and FTP have no limit, servers cap them near 8 KiB), at most
`MAX_LINES` lines are read per direction, and text is decoded as Latin-1 (every byte survives) and
cut before it becomes a fact.

`starttls` (one `Column` object shared by the dissectors that set it) says what happened to the
upgrade to TLS on the flow: `not_offered` (the server did not advertise it, and the client did not
ask), `offered_not_used` (advertised, never requested), `requested_refused` (requested, the server
said no), `completed` (the server accepted; the rest of the stream is handed to the TLS dissector,
which decides `encrypted`). Unset when the prefix shows too little to say (no server reply read).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from analyzer.dissect.base import Column, Facts

__all__ = [
    "MAX_LINE",
    "MAX_LINES",
    "RESYNC_WINDOW",
    "STARTTLS_COLUMN",
    "Cursor",
    "Reply",
    "cut",
    "dot_list_has",
    "first_line",
    "greeting_names",
    "lazy_pattern",
    "start_tls",
    "starttls_state",
    "upgrade_outcome",
]

MAX_LINE = 8192
MAX_LINES = 512
MAX_TEXT = 256  # characters of a wire string kept in a fact
# The second look at a flow picked up mid-stream (analyzer.dissect.midstream): the bytes of each
# direction scanned for a line that starts a message, the lines tried, and the longest one tried.
RESYNC_WINDOW = 4096
RESYNC_LINES = 128
RESYNC_LINE = 1024
_TEXT = bytes(range(0x20, 0x7F)) + b"\t"

STARTTLS_COLUMN = Column(
    "starttls", "string",
    "upgrade to TLS on this cleartext flow: not_offered, offered_not_used, requested_refused or completed")


@dataclass(slots=True)
class Reply:
    """A numeric reply (SMTP RFC 5321 4.2, FTP RFC 959 4.2): its code, its lines' texts (without the
    code), and the offset after its last line."""

    code: int
    texts: list[bytes]
    end: int


def _code(text: bytes) -> int | None:
    if len(text) >= 3 and text[:3].isdigit() and (len(text) == 3 or text[3] in b" -"):
        return int(text[:3])
    return None


def cut(raw: bytes, limit: int = MAX_TEXT) -> str:
    """A wire string as a fact: Latin-1 (every byte kept), at most `limit` characters."""
    return raw[:limit].decode("latin-1")


def greeting_names(data: bytes, word: bytes) -> bool:
    """The server's first line (within 512 bytes) names the protocol: `220 mx ESMTP ready` for SMTP,
    `220 ProFTPD Server` for FTP; case-insensitive."""
    end = data.find(b"\n", 0, 512)
    return word in (data[:end] if end >= 0 else data[:512]).upper()


def starttls_state(offered: bool, requested: bool, accepted: bool) -> str:
    if accepted:
        return "completed"
    if requested:
        return "requested_refused"
    return "offered_not_used" if offered else "not_offered"


class Cursor:
    """Reads one direction line by line, lazily (a dissector stops at the hand-over point and
    never splits the encrypted rest into lines). `stop` says why a read returned None."""

    __slots__ = ("data", "pos", "reads", "stop")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.reads = 0
        self.stop: str | None = None

    def line(self) -> bytes | None:
        """The next complete line without CR LF (None: end of data, overlong, or the line limit)."""
        if self.stop is not None or self.pos >= len(self.data):
            return None
        if self.reads >= MAX_LINES:
            self.stop = "limit"
            return None
        end = self.data.find(b"\n", self.pos, self.pos + MAX_LINE)
        if end < 0:
            self.stop = "overlong" if len(self.data) - self.pos >= MAX_LINE else "end"
            return None
        text = self.data[self.pos:end]
        self.pos = end + 1
        self.reads += 1
        return text[:-1] if text.endswith(b"\r") else text

    def reply(self) -> Reply | None:
        """The next numeric reply (SMTP, FTP), None when there is no complete one or the line is
        not a reply (then `stop` is "not_reply")."""
        start = self.pos
        first = self.line()
        if first is None:
            return None
        code = _code(first)
        if code is None:
            self.stop, self.pos = "not_reply", start
            return None
        texts = [first[4:]]
        if first[3:4] != b"-":
            return Reply(code, texts, self.pos)
        while True:
            line = self.line()
            if line is None:
                return None
            if _code(line) == code and line[3:4] != b"-":
                texts.append(line[4:])
                return Reply(code, texts, self.pos)
            if len(texts) < 64:
                texts.append(line[4:] if _code(line) == code else line)

    def skip_past(self, terminator: bytes) -> bool:
        """Move past the next `terminator` (searched from the CR LF that ended the last line, so a
        terminator right after it is found); False when it is not in the data."""
        at = self.data.find(terminator, max(self.pos - 2, 0))
        if at < 0:
            self.stop = "end"
            return False
        self.pos = at + len(terminator)
        return True


def start_tls(facts: Facts, protocol: str, client: bytes, to_server: int, to_client: int,
              server: bytes | None = None) -> bool | None:
    """The server accepted the upgrade: hand the rest of the stream to the TLS dissector when the
    client's next bytes start a TLS record (or an SSLv2 hello). True: handed over (TLS decides
    `encrypted`); None: nothing follows in the capture (undecided); False: the client went on in the
    clear (an anomaly; the session stays cleartext). With the `server`'s bytes, a server offset
    that is not at a TLS record moves to the first one after its cleartext lines: a capture picked
    up mid-stream can pair the upgrade with a reply that answered an earlier command."""
    rest = client[to_server:to_server + 3]
    if not rest:
        return None
    if tls_follows(client, to_server):
        if server is not None and to_client < len(server) and server[to_client:to_client + 2] not in (
                b"\x16\x03", b"\x15\x03"):
            start = tls_after_lines(server, to_client)
            to_client = to_client if start is None else start
        facts.hand_over("tls", to_server, to_client)
        return True
    facts.anomaly(f"{protocol}_starttls_not_followed_by_tls",
                  "the server accepted the upgrade, the client's next bytes are not TLS", to_server)
    return False


def upgrade_outcome(accepted: bool, handed: bool | None) -> dict[str, object]:
    """The encryption state of a line-based session that may have upgraded (`start_tls`'s result in
    `handed`): in the clear (never accepted, or the client went on in the clear), handed to TLS (TLS
    decides `encrypted`), or accepted with nothing after it in the capture (undecided)."""
    if not accepted or handed is False:
        return {"encrypted": False, "protection": "none"}
    if handed:
        return {"protection": "starttls"}
    return {"protection": "starttls", "undecided_reason": "upgrade_not_seen"}


def dot_list_has(srv: Cursor, word: bytes) -> bool:
    """Read a multi-line capability answer to its `.` line (POP3 CAPA, NNTP CAPABILITIES; at most
    128 lines): is `word` (upper case) one of the capabilities?"""
    found = False
    for _ in range(128):
        line = srv.line()
        if line is None or line == b".":
            break
        found = found or line.strip().upper() == word
    return found


def first_line(data: bytes, match: Callable[[bytes], bool], window: int = RESYNC_WINDOW) -> int | None:
    """The offset of the first line within the first `window` bytes that `match` accepts: a line
    that starts at offset 0 or after a LF, ends with LF (CR LF) within the window, is at most
    RESYNC_LINE bytes and printable (ASCII text and tabs); `match` gets it without its CR LF. None
    when no line of the first RESYNC_LINES does. The mid-stream second look of the line-based
    dissectors: encrypted or binary payload does not form such a line of a protocol's grammar."""
    end = min(len(data), window)
    pos = 0
    for _ in range(RESYNC_LINES):
        if pos >= end:
            return None
        eol = data.find(b"\n", pos, end)
        if eol < 0:
            return None
        line = data[pos:eol - 1 if eol > pos and data[eol - 1] == 0x0D else eol]
        if line and len(line) <= RESYNC_LINE and not line.translate(None, _TEXT) and match(line):
            return pos
        pos = eol + 1
    return None


def reply_start(data: bytes, at: int) -> int:
    """The start of the numeric reply whose line is at `at`: back over the continuation lines
    (`250-...`) of the same code before it (at most 64), so a multi-line reply found in its middle
    is read whole."""
    code = data[at:at + 3]
    for _ in range(64):
        if at < 2:
            break
        prev = data.rfind(b"\n", 0, at - 1) + 1
        if data[prev:prev + 4] != code + b"-":
            break
        at = prev
    return at


def tls_follows(data: bytes, at: int) -> bool:
    """A TLS record (or an SSLv2 hello) starts at `at`."""
    rest = data[at:at + 3]
    return rest[:2] == b"\x16\x03" or (len(rest) == 3 and bool(rest[0] & 0x80) and rest[2] == 1)


def tls_after_lines(data: bytes, pos: int = 0) -> int | None:
    """Where the server's TLS begins after its cleartext lines: the first line start at or after
    `pos` (within MAX_LINES lines) where a TLS handshake or alert record starts; None when the
    lines run out first."""
    for _ in range(MAX_LINES):
        if pos >= len(data):
            return None
        if data[pos:pos + 2] in (b"\x16\x03", b"\x15\x03"):
            return pos
        if data[pos:pos + 1] in (b"\x16", b"\x15"):
            return None  # a record of another version: not an upgrade this module reads
        eol = data.find(b"\n", pos, pos + MAX_LINE)
        if eol < 0:
            return None
        pos = eol + 1
    return None


def upgrade_unanswered(facts: Facts, client: bytes, to_server: int, server: bytes, server_pos: int) -> bool:
    """The client asked to upgrade and its next bytes are TLS, but this view shows no accepting
    reply in step (a one-sided capture, or one picked up mid-stream whose replies are read out of
    step): the client starts TLS only once the server said yes (RFC 3207 5, RFC 2595 3.1, RFC 4217
    3), so the upgrade happened. Hand the rest to TLS: the client's from `to_server`, the server's
    from its first TLS record after `server_pos` (none in the capture: from its end). False, and
    nothing done, when the client's next bytes are not TLS."""
    if not tls_follows(client, to_server):
        return False
    start = tls_after_lines(server, server_pos)
    facts.hand_over("tls", to_server, len(server) if start is None else start)
    return True


def server_only_upgrade(facts: Facts, server: bytes) -> bool:
    """Only the server's direction was captured, and after cleartext lines it starts TLS: it
    accepted an upgrade whose request this view does not show. Hand its rest to TLS (which decides
    `encrypted` from the server's records); False when no TLS follows its lines."""
    start = tls_after_lines(server)
    if not start:
        return False
    facts.hand_over("tls", 0, start)
    return True


def resync_at(data: bytes, strong: Callable[[bytes], bool], weak: Callable[[bytes], bool]) -> int | None:
    """Mid-stream: where to read one direction from. A line only this protocol sends (`strong`)
    recognises it; reading starts at the first line before it that is one of the protocol's
    messages at all (`weak`: USER before an FTP-only PASV), so the messages before the one that
    told the protocol apart are read too. None when no strong line is in the window."""
    at = first_line(data, strong)
    if at is None:
        return None
    before = first_line(data, weak, at + RESYNC_LINE + 2)
    return at if before is None or before > at else before


def reply_line(line: bytes) -> bool:
    """A numeric reply line (SMTP, FTP): three digits, then a space, a dash or the end."""
    return len(line) >= 3 and line[:3].isdigit() and line[3:4] in (b" ", b"-", b"")


Match = Callable[[bytes], bool]


def resync_pair(client: bytes, server: bytes, client_lines: tuple[Match, Match],
                server_lines: tuple[Match, Match]) -> tuple[int | None, int | None]:
    """Mid-stream offsets of both directions, each given as (strong, weak) line matchers (see
    `resync_at`). A direction with no strong line of its own is read from its first weak line when
    the other direction's strong line recognised the protocol (`STARTTLS` alone is SMTP once the
    server's `250-STARTTLS` said so)."""
    c = resync_at(client, *client_lines)
    s = resync_at(server, *server_lines)
    if c is None and s is not None:
        c = first_line(client, client_lines[1])
    elif s is None and c is not None:
        s = first_line(server, server_lines[1])
    return c, s


def answers(client: bytes, at: int, reply: Reply | None, positive: Mapping[bytes, Collection[int]],
            openers: Collection[bytes]) -> bool:
    """Whether `reply`, the first one read mid-stream, can answer the command at `client[at:]`.

    A failure (4xx/5xx), a verb without a known answer or one of the verb's positive codes can; so
    can a 220 greeting when the command opens a session (the capture began right after the TCP
    handshake). Another positive reply answers a command sent before the capture began. FTP and
    SMTP share this; they differ in their codes and in what a reply is (FTP skips 1xx first).
    """
    verb = client[at:client.find(b"\n", at, at + 512)].split(b" ", 1)[0].strip().upper()
    expected = positive.get(verb)
    return (reply is None or expected is None or reply.code >= 400 or reply.code in expected
            or (reply.code == 220 and verb in openers))


def lazy_pattern(pattern: bytes, flags: int = 0) -> Callable[[], re.Pattern[bytes]]:
    """A regular expression compiled on first use: `_X = lazy_pattern(rb"...")`, then
    `_X().search(data)`. Compiling costs ~0.3-0.8M instructions a pattern; compiled at import, every
    run paid for the patterns of protocols it never met (and of dissects it never ran)."""
    return functools.cache(lambda: re.compile(pattern, flags))
