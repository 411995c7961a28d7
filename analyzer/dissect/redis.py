"""Redis serialization protocol (RESP2 and RESP3, redis.io "Redis serialization protocol
specification"), facts only.

`app_protocol`: "redis". Found by content on any port (6379 is a hint): the client's first bytes
are a RESP array of bulk strings (`*<n>\\r\\n$<len>\\r\\n`), or an inline command of the handful a
client opens with (AUTH, HELLO, PING, INFO, SELECT, CLIENT) answered by a RESP reply.

Commands are arrays of bulk strings (or inline lines split on spaces); the server answers each in
order (pipelining keeps the order), with a simple string (`+`), error (`-`), integer (`:`), bulk
string (`$`), array (`*`) or one of RESP3's types (`%` map, `~` set, `_` null, `,` double, `#`
boolean, `!` bulk error, `=` verbatim, `(` big number, `>` push, `|` attribute, which precedes the
value it annotates). Values are skipped with bounded depth and count.

Redis has no STARTTLS: TLS, when used, is from the first byte (the TLS dissector's flows), so a
Redis flow here is `encrypted` False, protection "none".

Facts: `redis_commands` (commands read), `redis_resp_version` (2 or 3 when the client sent HELLO
with a protocol version). `credentials` rows: `AUTH [username] password` (`auth_command`) and
`HELLO <ver> AUTH username password` (`hello_auth`): the password crosses in the clear (length and
keyed fingerprint only); `accepted` from the reply (`+OK` / the HELLO map, or an error).
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, credential_row, run_key
from analyzer.dissect.lines import cut, first_line

__all__ = ["RedisDissector", "read_command", "skip_value"]

MAX_COMMANDS = 256
MAX_ARGS = 64  # arguments of a command kept (the rest skipped)
MAX_ELEMENTS = 4096  # values walked inside one reply
MAX_DEPTH = 16
MAX_LINE = 4096
_INLINE = frozenset({b"AUTH", b"HELLO", b"PING", b"INFO", b"SELECT", b"CLIENT"})
# the first reply to an inline command, as Redis words it (a POP3 greeting "+OK text" is not one)
_SIMPLE_REPLIES = (b"+OK\r\n", b"+PONG\r\n", b"-ERR ", b"-NOAUTH ", b"-WRONGPASS ", b"-NOPERM ", b"-WRONGTYPE ")
_FIRST = frozenset(b"*AHPISCQahpiscq")  # the first byte of a RESP array or of an inline command above
_AGGREGATES = frozenset(b"*~>%|")
_SIMPLE = frozenset(b"+-:_,#(")
_BULK = frozenset(b"$!=")

COLUMNS: tuple[Column, ...] = (
    Column("redis_commands", "Int32", "client commands read"),
    Column("redis_resp_version", "Int32", "the protocol version the client asked for with HELLO (2 or 3)"),
)


def _line(data: bytes, pos: int) -> tuple[bytes, int] | None:
    end = data.find(b"\r\n", pos, pos + MAX_LINE)
    if end < 0:
        return None
    return data[pos:end], end + 2


def _int(raw: bytes) -> int | None:
    try:
        return int(raw) if raw and len(raw) <= 20 else None
    except ValueError:
        return None


def _resp_reply(head: bytes) -> bool:
    """The server's first bytes are a Redis reply: one of its simple replies or errors, or a bulk
    string / array / integer / map header."""
    if head.startswith(_SIMPLE_REPLIES):
        return True
    return head[:1] in (b"$", b"*", b":", b"%") and (head[1:2].isdigit() or head[1:3] == b"-1")


def read_command(data: bytes, pos: int) -> tuple[list[bytes], int] | None:
    """A client command from `pos`: (arguments, offset after it); None when it is cut or malformed.
    A RESP array of bulk strings, or an inline command line."""
    if pos >= len(data):
        return None
    if data[pos] != 0x2A:  # '*': else an inline command
        got = _line(data, pos)
        if got is None:
            return None
        return got[0].split()[:MAX_ARGS], got[1]
    got = _line(data, pos + 1)
    count = _int(got[0]) if got else None
    if got is None or count is None or count < 0 or count > 1 << 20:
        return None
    pos = got[1]
    args: list[bytes] = []
    for _ in range(count):
        head = _line(data, pos)
        if head is None or not head[0].startswith(b"$"):
            return None
        size = _int(head[0][1:])
        if size is None or size < 0 or head[1] + size + 2 > len(data):
            return None
        if len(args) < MAX_ARGS:
            args.append(data[head[1]:head[1] + size])
        pos = head[1] + size + 2
    return args, pos


def skip_value(data: bytes, pos: int, budget: int = MAX_ELEMENTS) -> tuple[int, int] | None:
    """Skip one reply value from `pos`: (its type byte, offset after it); None when cut, malformed,
    or longer than `budget` elements. Aggregates are walked iteratively (bounded depth)."""
    got = _skip(data, pos, budget)
    return None if got is None else got[:2]


def _skip(data: bytes, pos: int, budget: int) -> tuple[int, int, int] | None:
    """skip_value, also saying how many elements it walked."""
    if pos >= len(data):
        return None
    first = data[pos]
    pending = [1]  # values still to read at each open aggregate level
    walked = 0
    while pending:
        if walked >= budget or pos >= len(data):
            return None
        walked += 1
        kind = data[pos]
        got = _line(data, pos + 1)
        if got is None:
            return None
        head, pos = got
        pending[-1] -= 1
        if kind in _BULK:
            size = _int(head)
            if size is None or size > len(data):
                return None
            if size >= 0:
                if pos + size + 2 > len(data):
                    return None
                pos += size + 2
        elif kind in _AGGREGATES:
            count = _int(head)
            if count is None:
                return None
            count = count * 2 if kind in b"%|" else count
            if kind == 0x7C:  # '|' attribute: the annotated value follows it
                count += 1
            if count > 0:
                if len(pending) >= MAX_DEPTH:
                    return None
                pending.append(count)
        elif kind not in _SIMPLE:
            return None
        while pending and pending[-1] == 0:
            pending.pop()
    return first, pos, walked


class RedisDissector:
    """Redis over TCP, found by a RESP command from the client on any port."""

    name = "redis"
    app_protocols = ("redis",)  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({6379})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> RedisDissector:
        return RedisDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        data = flow.to_server.data
        if not data or data[0] not in _FIRST:
            return False
        if data[:1] == b"*" and data[1:2].isdigit():
            at = data.find(b"\r\n", 1, 12)
            return at > 1 and data[at + 2:at + 3] == b"$" and data[at + 3:at + 4].isdigit()
        word = data[:7].split(b" ", 1)[0].split(b"\r", 1)[0].upper()
        return word in _INLINE and _resp_reply(flow.to_client.data[:16])

    def resync(self, flow: FlowPayload) -> tuple[int | None, int | None] | None:
        """Mid-stream: the first client command that is a whole RESP array of bulk strings whose
        name is a word (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), at a line start in the first
        RESYNC_WINDOW bytes; the server's bytes from its first RESP reply line. Replies alone (a
        `+OK` is POP3's too) do not recognise Redis."""
        client = flow.to_server.data
        at = first_line(client, lambda line: line[:1] == b"*" and line[1:].isdigit() and line[1:] != b"0")
        for _ in range(16):
            if at is None:
                return None
            command = read_command(client, at)
            if command is not None and command[0] and command[0][0].isalpha() and len(command[0][0]) <= 32:
                server = first_line(flow.to_client.data, lambda line: line[:1] in b"+-:$*_#,(%~>|!=")
                return at, server
            nxt = first_line(client[at + 1:], lambda line: line[:1] == b"*" and line[1:].isdigit())
            at = None if nxt is None else at + 1 + nxt
        return None

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "redis", "encrypted": False, "protection": "none"}
        client, server = flow.to_server.data, flow.to_client.data
        commands: list[list[bytes]] = []
        cpos = 0
        for _ in range(MAX_COMMANDS):
            command = read_command(client, cpos)
            if command is None:
                if cpos < len(client) and not flow.to_server.budget_hit:
                    facts.anomaly("redis_command_malformed", "a client command that is not RESP", cpos)
                break
            args, cpos = command
            if args:
                commands.append(args)
        logins = [i for i, args in enumerate(commands) if args[0].upper() in (b"AUTH", b"HELLO")]
        # replies pair with commands in order; they are walked only as far as the last login (a
        # session without one costs no reply parsing), within one element budget for the flow
        kinds: list[int] = []
        spos, budget = 0, MAX_ELEMENTS
        for _ in range(logins[-1] + 1 if logins and self.rows else 0):
            got = _skip(server, spos, budget)
            if got is None:
                break
            kind, spos, walked = got
            kinds.append(kind)
            budget -= walked
        for i, args in enumerate(commands):
            verb = args[0].upper()
            if verb == b"HELLO" and len(args) > 1 and args[1].isdigit() and len(args[1]) == 1:
                out["redis_resp_version"] = int(args[1])
            if i in logins and self.rows:
                self._login(facts, verb, args, kinds[i] if i < len(kinds) else None)
        out["redis_commands"] = len(commands)
        facts.flow.update(out)
        return facts

    def _login(self, facts: Facts, verb: bytes, args: list[bytes], reply_kind: int | None) -> None:
        user: bytes | None = None
        secret: bytes | None = None
        if verb == b"AUTH" and len(args) in (2, 3):
            user, secret = (args[1], args[2]) if len(args) == 3 else (None, args[1])
            mechanism = "auth_command"
        else:
            upper = [a.upper() for a in args]
            if b"AUTH" not in upper[2:]:
                return
            at = upper.index(b"AUTH", 2)
            if at + 2 >= len(args):
                return
            user, secret, mechanism = args[at + 1], args[at + 2], "hello_auth"
        accepted = None if reply_kind is None else reply_kind not in b"-!"
        facts.add_row("credentials", credential_row(self.key, "redis", mechanism,
                                                    cut(user) if user is not None else None, secret, accepted))


DISSECTOR = register(RedisDissector())
