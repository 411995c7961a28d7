"""memcached: the text protocol (memcached's doc/protocol.txt) and the binary protocol's header and
SASL authentication (memcached wiki "BinaryProtocolRevamped", "SASLAuthProtocol"), facts only.

`app_protocol`: "memcached". Found by content on any port (11211 is a hint):
- text: the client's first line starts with a memcached command (lower case, as the server
  requires: get, gets, gat, gats, set, add, replace, append, prepend, cas, delete, incr, decr, touch,
  stats, version, verbosity, flush_all, quit, and the meta commands mg, ms, md, ma, mn, me) followed
  by a space or the line end, and the server's first line, when there is one, is a memcached reply;
- binary: the client's first byte is the request magic 0x80 with a known opcode and a header whose
  lengths agree (24-byte header), answered (when seen) with the response magic 0x81.

memcached has no encryption in either protocol (TLS, when built in, is TLS from the first byte):
`encrypted` False, protection "none".

Facts: `memcached_protocol` (text or binary), `memcached_commands` (client commands read; storage
commands' data blocks are skipped by their byte count), `memcached_version` (the VERSION reply).
`credentials` rows for binary SASL authentication (opcode 0x21 SASL Auth, its key the mechanism, its
value the initial response): PLAIN sends the password in the clear (length and keyed fingerprint
only); the response status says `accepted` (0 success, 0x20 authentication error).
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key, sasl_plain
from analyzer.dissect.lines import cut, resync_pair

__all__ = ["MemcachedDissector"]

MAX_COMMANDS = 256
MAX_LINE = 2048  # the server's own key + command line limit is 2048 bytes
MAX_VALUE = 1 << 20  # the default item size limit; a larger declared size ends the walk
_COMMANDS = frozenset({b"get", b"gets", b"gat", b"gats", b"set", b"add", b"replace", b"append", b"prepend",
                       b"cas", b"delete", b"incr", b"decr", b"touch", b"stats", b"version", b"verbosity",
                       b"flush_all", b"quit", b"mg", b"ms", b"md", b"ma", b"mn", b"me", b"cache_memlimit",
                       b"shutdown", b"lru_crawler", b"watch", b"misbehave"})
_FIRST = frozenset({0x80, *(c[0] for c in _COMMANDS)})  # a quick no for most flows
_STORAGE = frozenset({b"set", b"add", b"replace", b"append", b"prepend", b"cas"})
_REPLIES = (b"VALUE ", b"END", b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND", b"DELETED", b"TOUCHED",
            b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR", b"STAT ", b"VERSION ", b"OK", b"HD", b"VA ", b"EN",
            b"NF", b"NS", b"EX", b"MN", b"ME ", b"RESET")
# binary opcodes a client opens with (get, set, ..., version, stat, SASL list / auth / step, ...)
_OPCODES = frozenset({*range(0x00, 0x1F), 0x20, 0x21, 0x22, *range(0x30, 0x3D)})
_BIN = struct.Struct(">BBHBBHIIQ")
SASL_AUTH = 0x21

COLUMNS: tuple[Column, ...] = (
    Column("memcached_protocol", "string", "text or binary"),
    Column("memcached_commands", "Int32", "client commands (text) or requests (binary) read"),
    Column("memcached_version", "string", "the server's VERSION reply"),
)


def _line(data: bytes, pos: int) -> tuple[bytes, int] | None:
    end = data.find(b"\n", pos, pos + MAX_LINE)
    if end < 0:
        return None
    return data[pos:end].rstrip(b"\r"), end + 1


class MemcachedDissector:
    """memcached over TCP (text or binary protocol), found by the client's first command on any port."""

    name = "memcached"
    app_protocols = ("memcached",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({11211})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> MemcachedDissector:
        return MemcachedDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        data, reply = flow.to_server.data, flow.to_client.data
        if not data or data[0] not in _FIRST:
            return False
        if data[:1] == b"\x80":
            if len(data) < 24 or data[1] not in _OPCODES or data[5] != 0:
                return False
            _, _, key_len, extras, _, _, body, _, _ = _BIN.unpack_from(data, 0)
            return key_len + extras <= body <= MAX_VALUE and reply[:1] in (b"", b"\x81")
        end = data.find(b"\n", 0, 64)
        first = data[:end] if end >= 0 else data[:64]
        word = first.split(b" ", 1)[0].rstrip(b"\r")
        if word not in _COMMANDS or (end < 0 and b" " not in first):
            return False
        return not reply or reply.startswith(_REPLIES) or reply[:1].isdigit()

    def resync(self, flow: FlowPayload) -> tuple[int | None, int | None]:
        """Mid-stream, text protocol: the first storage command with its numeric fields (`set k 0
        60 5`) or `gets`/`gat`/`gats` line of the client, and the first `VALUE key flags bytes`
        or `VERSION` reply of the server; each direction from the command or reply line before it."""
        return resync_pair(flow.to_server.data, flow.to_client.data, (_storage_line, _command_line),
                           (_value_line, _reply_line))

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "memcached", "encrypted": False, "protection": "none"}
        if flow.to_server.data[:1] == b"\x80":
            out["memcached_protocol"] = "binary"
            out["memcached_commands"] = self._binary(facts, flow.to_server.data, flow.to_client.data)
        else:
            out["memcached_protocol"] = "text"
            out["memcached_commands"] = self._text(facts, flow.to_server.data)
            version = self._version(flow.to_client.data)
            if version:
                out["memcached_version"] = version
        facts.flow.update(out)
        return facts

    @staticmethod
    def _text(facts: Facts, data: bytes) -> int:
        pos = count = 0
        while count < MAX_COMMANDS:
            got = _line(data, pos)
            if got is None:
                break
            line, pos = got
            parts = line.split()
            if not parts:
                continue
            count += 1
            if parts[0] in _STORAGE or parts[0] == b"ms":
                at = 2 if parts[0] == b"ms" else 4  # ms <key> <datalen> ...; set <key> <flags> <exptime> <bytes>
                raw = parts[at] if len(parts) > at else b""
                if not raw.isdigit() or int(raw) > MAX_VALUE:
                    facts.anomaly("memcached_storage_line_malformed", cut(line, 80), pos)
                    break
                pos += int(raw) + 2  # the data block and its CR LF
        return count

    @staticmethod
    def _version(data: bytes) -> str | None:
        at = data.find(b"VERSION ")
        if at < 0 or (at > 0 and data[at - 1:at] != b"\n"):
            return None
        got = _line(data, at + 8)
        return cut(got[0], 64) if got else None

    def _binary(self, facts: Facts, client: bytes, server: bytes) -> int:
        """Walk the requests; a SASL Auth request gives a credentials row, its response the outcome."""
        statuses: dict[int, int] = {}
        pos = 0
        for _ in range(MAX_COMMANDS):
            if pos + 24 > len(server) or server[pos] != 0x81:
                break
            _, opcode, _, _, _, status, body, opaque, _ = _BIN.unpack_from(server, pos)
            if opcode == SASL_AUTH:
                statuses.setdefault(opaque, status)
            pos += 24 + body
        pos = count = 0
        while count < MAX_COMMANDS and pos + 24 <= len(client) and client[pos] == 0x80:
            _, opcode, key_len, extras, _, _, body, opaque, _ = _BIN.unpack_from(client, pos)
            if key_len + extras > body or body > MAX_VALUE:
                facts.anomaly("memcached_binary_header_malformed", f"opcode {opcode:#x} body {body}", pos)
                break
            count += 1
            if opcode == SASL_AUTH and self.rows and pos + 24 + body <= len(client):
                start = pos + 24 + extras
                mechanism = client[start:start + key_len].decode("latin-1").lower()[:40] or "unknown"
                value = client[start + key_len:pos + 24 + body]
                user, secret = sasl_plain(value) if mechanism == "plain" else (None, None)
                status = statuses.get(opaque)
                facts.add_row("credentials", credential_row(self.key, "memcached", mechanism, user, secret,
                                                            None if status is None else status == 0))
            pos += 24 + body
        return count


def _storage_line(line: bytes) -> bool:
    parts = line.split()
    if not parts:
        return False
    if parts[0] in (b"gets", b"gat", b"gats"):
        return len(parts) >= 2
    return parts[0] in _STORAGE and 5 <= len(parts) <= 7 and all(p.isdigit() for p in parts[2:5])


def _command_line(line: bytes) -> bool:
    return line.split(b" ", 1)[0] in _COMMANDS


def _value_line(line: bytes) -> bool:
    parts = line.split()
    if parts[:1] == [b"VERSION"]:
        return len(parts) == 2 and parts[1][:1].isdigit()
    return parts[:1] == [b"VALUE"] and len(parts) in (4, 5) and all(p.isdigit() for p in parts[2:])


def _reply_line(line: bytes) -> bool:
    return line.startswith(_REPLIES)


DISSECTOR = register(MemcachedDissector())
