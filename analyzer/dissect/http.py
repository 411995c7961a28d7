"""HTTP/1.x (RFC 9112) and cleartext HTTP/2 (RFC 9113 3.3 prior knowledge, RFC 7540 3.2 `Upgrade: h2c`),
facts only.

`app_protocol`: "http", or "http2" (the prior-knowledge preface `PRI * HTTP/2.0`, or a `101` answer
to `Upgrade: h2c`). Found by content on any port: a request line (a method, a target, `HTTP/1.x`) at
the start of the client's bytes, or, when those are missing, a status line `HTTP/1.x` at the start of
the server's. Ports 80, 8000, 8008, 8080, 8888 and 3128 are hints.

Messages are walked in order in each direction (at most 64; a header block at most 64 KiB): bodies
are skipped by Content-Length or chunked coding; a response without either ends the walk (its body
runs to the close), as do 101 (another protocol follows) and a 2xx answer to CONNECT (a tunnel).
Request n is paired with response n (1xx interim responses other than 101 are skipped).

Facts (of the first request / response, except where said): `http_method`, `http_host`, `http_path`
(the request target, at most 256 characters), `http_user_agent`, `http_status`, `http_server`,
`http_location`, `http_upgrade` (the first Upgrade header asked for), `http_auth_scheme` (the first
Authorization or Proxy-Authorization scheme, lower case), `http_requests` (requests read),
`http_redirect_to_https` (a response redirected to an `https://` URL of the request's host, port
ignored; False when requests and responses were read and none did; unset when no request was seen:
its Host is what the redirect is compared with), `encrypted` False.

A CONNECT tunnel that carries TLS (a 2xx answer, then a TLS record from the client) is handed to the
TLS dissector after the response's header block: the flow gets the tunnelled TLS session's facts,
`app_protocol` stays "http". A tunnel that carries anything else leaves `encrypted` undecided. A
one-sided view is handed over too: the client's CONNECT followed by a TLS record (no response
captured), or the server's 2xx head followed at once by a TLS record (no request captured), so the
TLS dissector reads whichever half of the handshake is there.

`credentials` rows for Authorization / Proxy-Authorization: `basic` (username and the password's
length and keyed fingerprint), `bearer` (the token is the secret), `digest` (username, no reusable
secret), `ntlm` (the user of an NTLMSSP AUTHENTICATE message), `negotiate` and other schemes by name.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, DissectContext, Facts, FlowPayload
from analyzer.dissect.credentials import CREDENTIALS, b64decode, credential_row, run_key
from analyzer.dissect.lines import cut, first_line

__all__ = ["HTTPDissector", "Message", "parse_head"]

MAX_MESSAGES = 64
MAX_HEAD = 65536
MAX_HEADERS = 128
MAX_CHUNKS = 4096
MAX_PATH = 256
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ", b"TRACE ",
           b"PROPFIND ", b"PROPPATCH ", b"MKCOL ", b"COPY ", b"MOVE ", b"LOCK ", b"UNLOCK ", b"REPORT ",
           b"SEARCH ", b"MKCALENDAR ", b"PURGE ", b"PRI ")
_KEEP = frozenset({b"host", b"authorization", b"proxy-authorization", b"upgrade", b"user-agent", b"server",
                   b"location", b"content-length", b"transfer-encoding"})

COLUMNS: tuple[Column, ...] = (
    Column("http_method", "string", "method of the first request"),
    Column("http_host", "string", "Host header of the first request (at most 256 characters)"),
    Column("http_path", "string", "target of the first request (at most 256 characters)"),
    Column("http_user_agent", "string", "User-Agent of the first request (at most 256 characters)"),
    Column("http_status", "Int32", "status code of the first response"),
    Column("http_server", "string", "Server header of the first response (at most 256 characters)"),
    Column("http_location", "string", "Location header of the first response (at most 256 characters)"),
    Column("http_upgrade", "string", "the first Upgrade header a request asked for (websocket, h2c, ...)"),
    Column("http_auth_scheme", "string", "scheme of the first Authorization / Proxy-Authorization header, lower case"),
    Column("http_requests", "Int32", "HTTP requests read in the flow's payload prefix"),
    Column("http_redirect_to_https", "boolean",
           "a cleartext response redirected to an https:// URL of the same host (the request went in clear)"),
)


class Message:
    """One HTTP/1.x message head: the start line's three parts, the kept headers, where it ends."""

    __slots__ = ("end", "headers", "start")

    def __init__(self, start: list[bytes], headers: dict[bytes, bytes], end: int) -> None:
        self.start = start
        self.headers = headers
        self.end = end  # offset of the first body byte; -1: the head is not complete in the prefix


def parse_head(data: bytes, pos: int) -> Message | None:
    """The message head at `pos` (None when the start line is incomplete). Only the headers the
    facts need are kept (the first of each name)."""
    stop = data.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
    end = stop + 4
    if stop < 0:
        stop = data.find(b"\n\n", pos, pos + MAX_HEAD)
        end = stop + 2 if stop >= 0 else -1
    head = data[pos:stop if stop >= 0 else min(len(data), pos + MAX_HEAD)]
    lines = head.split(b"\n", MAX_HEADERS + 1)
    if stop < 0 and len(lines) < 2 and len(head) < MAX_HEAD:
        return None  # the start line is not complete (an overlong one is read as far as it goes)
    first = lines[0].rstrip(b"\r").split(b" ", 2)
    headers: dict[bytes, bytes] = {}
    for raw in lines[1:MAX_HEADERS + 1]:
        name, sep, value = raw.partition(b":")
        if sep:
            name = name.strip().lower()
            if name in _KEEP and name not in headers:
                headers[name] = value.strip()
    return Message(first, headers, end)


def _skip_chunked(data: bytes, pos: int) -> int:
    """Offset after a chunked body starting at `pos`; -1 when it does not end in the data."""
    for _ in range(MAX_CHUNKS):
        eol = data.find(b"\n", pos, pos + 1024)
        if eol < 0:
            return -1
        size = data[pos:eol].split(b";", 1)[0].strip()
        try:
            n = int(size, 16)
        except ValueError:
            return -1
        pos = eol + 1
        if n == 0:
            trailer = data.find(b"\r\n\r\n", pos - 2, pos + MAX_HEAD)
            return -1 if trailer < 0 else trailer + 4
        pos += n + 2
        if pos > len(data):
            return -1
    return -1


def _body_end(message: Message, data: bytes, bodyless: bool) -> int:
    """Offset after the message's body; -1 when the body is not delimited or not in the data."""
    if message.end < 0:
        return -1
    if bodyless:
        return message.end
    if b"chunked" in message.headers.get(b"transfer-encoding", b"").lower():
        return _skip_chunked(data, message.end)
    length = message.headers.get(b"content-length")
    if length is not None:
        length = length.strip()
        if not length.isdigit() or len(length) > 15:
            return -1
        return message.end + int(length)
    return -2  # no length: a request has no body; a response's runs to the close


def _requests(data: bytes) -> list[Message]:
    out: list[Message] = []
    pos = 0
    while len(out) < MAX_MESSAGES and pos < len(data):
        if not data.startswith(METHODS, pos):
            break
        message = parse_head(data, pos)
        if message is None:
            break
        complete = len(message.start) >= 3 and message.start[2].rstrip(b"\r").startswith(b"HTTP/")
        if not complete and (out or message.end >= 0 or len(message.start) < 2):
            break  # only the first request may be cut inside its start line (an overlong target)
        out.append(message)
        end = _body_end(message, data, False)
        if end == -2:
            end = message.end
        if end < 0 or message.start[0] == b"CONNECT":
            break
        pos = end
    return out


def _responses(data: bytes, requests: list[Message]) -> list[Message]:
    out: list[Message] = []
    pos = 0
    for _ in range(MAX_MESSAGES * 2):
        if len(out) >= MAX_MESSAGES or not data.startswith(b"HTTP/", pos):
            break
        message = parse_head(data, pos)
        if message is None or len(message.start) < 2 or not message.start[1].isdigit():
            break
        status = int(message.start[1][:3])
        if 100 <= status < 200 and status != 101:
            if message.end < 0:
                break
            pos = message.end  # interim: the final response follows
            continue
        request = requests[len(out)] if len(out) < len(requests) else None
        method = request.start[0] if request is not None else b""
        out.append(message)
        if status == 101 or (method == b"CONNECT" and 200 <= status < 300):
            break
        end = _body_end(message, data, method == b"HEAD" or status in (204, 304))
        if end < 0:
            break
        pos = end
    return out


def _tls_record(data: bytes, pos: int) -> bool:
    """A TLS handshake or alert record header at `pos` (content type 21/22, version 3.0-3.4)."""
    return len(data) >= pos + 3 and data[pos] in (21, 22) and data[pos + 1] == 3 and data[pos + 2] <= 4


def _host(value: bytes) -> bytes:
    """A Host header or URL authority without userinfo and port, lower case."""
    value = value.rsplit(b"@", 1)[-1].strip().lower()
    if value.startswith(b"["):
        return value[:value.find(b"]") + 1]
    return value.split(b":", 1)[0]


def _redirects_to_https(response: Message, request: Message | None) -> bool:
    location = response.headers.get(b"location", b"")
    if not (300 <= int(response.start[1][:3]) < 400 and location[:8].lower() == b"https://"):
        return False
    target = _host(location[8:].split(b"/", 1)[0].split(b"?", 1)[0])
    host = request.headers.get(b"host") if request is not None else None
    return host is not None and _host(host) == target


def ntlm_user(token: bytes | None) -> bytes | None:
    """DOMAIN\\user of an NTLMSSP AUTHENTICATE (type 3) message, None for other messages."""
    if token is None or len(token) < 52 or not token.startswith(b"NTLMSSP\x00"):
        return None
    if struct.unpack_from("<I", token, 8)[0] != 3:
        return None

    def field(at: int) -> bytes:
        length, _, offset = struct.unpack_from("<HHI", token, at)
        return token[offset:offset + length] if offset + length <= len(token) else b""

    flags = struct.unpack_from("<I", token, 60)[0] if len(token) >= 64 else 0
    domain, user = field(28), field(36)
    if flags & 1:  # NTLMSSP_NEGOTIATE_UNICODE
        domain = domain.decode("utf-16-le", "replace").encode()
        user = user.decode("utf-16-le", "replace").encode()
    return domain + b"\\" + user if domain else user


class HTTPDissector:
    """HTTP/1.x and cleartext HTTP/2 over TCP, found by content on any port."""

    name = "http"
    app_protocols = ("http", "http2")  # the app_protocol values it sets (README, "Flow encryption state")
    transports = frozenset({"tcp"})
    ports = frozenset({80, 8000, 8008, 8080, 8888, 3128})
    columns = COLUMNS
    frames = (CREDENTIALS,)

    def __init__(self, key: bytes | None = None, rows: bool = True) -> None:
        self.key = key if key is not None else run_key(None)
        self.rows = rows

    def for_run(self, context: DissectContext) -> HTTPDissector:
        return HTTPDissector(run_key(context), context.wants("credentials"))

    def probe(self, flow: FlowPayload) -> bool:
        client = flow.to_server.data
        if client:
            if not client.startswith(METHODS):
                return False
            end = client.find(b"\n", 0, 4096)
            line = client[:end] if end >= 0 else client[:4096]
            return line.rstrip(b"\r")[-9:-3] == b" HTTP/" or (end < 0 and b" HTTP/" in line)
        return flow.to_client.data.startswith((b"HTTP/1.", b"HTTP/2"))

    def resync(self, flow: FlowPayload) -> tuple[int | None, int | None]:
        """Mid-stream: the first request line (`GET /x HTTP/1.1`) of the client's bytes and the
        first status line (`HTTP/1.1 200 OK`) of the server's, at line starts (after the end of a
        body the capture caught in its middle). When the server then shows one response more than
        the client shows requests, its first answers a request sent before the capture began: it
        is skipped, so that request n is paired with response n (`dissect` does that for any flow
        picked up mid-stream)."""
        return first_line(flow.to_server.data, _request_line), first_line(flow.to_client.data, _status_line)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        client, server = flow.to_server.data, flow.to_client.data
        out: dict[str, object] = {"app_protocol": "http", "encrypted": False, "protection": "none"}
        if client.startswith(PREFACE[:16]):
            out["app_protocol"] = "http2"
            facts.flow.update(out)
            return facts
        requests = _requests(client)
        responses = _responses(server, requests)
        if requests and len(responses) == len(requests) + 1 and not flow.to_client.start_known:
            responses = responses[1:]  # mid-stream: the first answers a request the capture missed
        out["http_requests"] = len(requests)
        if requests:
            first = requests[0]
            out["http_method"] = cut(first.start[0], 16)
            out["http_path"] = cut(first.start[1], MAX_PATH)
            for name, column in ((b"host", "http_host"), (b"user-agent", "http_user_agent")):
                if name in first.headers:
                    out[column] = cut(first.headers[name])
        upgrade = next((m.headers[b"upgrade"] for m in requests if b"upgrade" in m.headers), None)
        if upgrade is not None:
            out["http_upgrade"] = cut(upgrade, 64)
        if responses:
            first = responses[0]
            out["http_status"] = int(first.start[1][:3])
            for name, column in ((b"server", "http_server"), (b"location", "http_location")):
                if name in first.headers:
                    out[column] = cut(first.headers[name])
            if requests:  # (whose host a redirect names is known only from the request)
                out["http_redirect_to_https"] = any(
                    _redirects_to_https(r, requests[i] if i < len(requests) else None)
                    for i, r in enumerate(responses))
            last = responses[-1]
            status = int(last.start[1][:3])
            if status == 101 and b"h2c" in last.headers.get(b"upgrade", b"").lower():
                out["app_protocol"] = "http2"
            elif status // 100 == 2 and len(requests) == len(responses) and requests[-1].start[0] == b"CONNECT":
                # a tunnel: what it carries decides `encrypted` (TLS: handed over; else undecided)
                del out["encrypted"], out["protection"]
                start = requests[-1].end
                if start >= 0 and last.end >= 0 and client[start:start + 2] == b"\x16\x03":
                    facts.hand_over("tls", start, last.end)
                else:
                    out["undecided_reason"] = "tunnel"
            elif status // 100 == 2 and not client and last.end >= 0 and _tls_record(server, last.end):
                # the server's side alone (a one-sided mirror): a 2xx head followed at once by a TLS
                # record is a CONNECT tunnel's answer (no HTTP body starts with a TLS record header)
                del out["encrypted"], out["protection"]
                facts.hand_over("tls", 0, last.end)
        elif requests and requests[-1].start[0] == b"CONNECT" and not server:
            # the client's side alone: a CONNECT followed by a TLS record is a tunnel's client half
            start = requests[-1].end
            if start >= 0 and _tls_record(client, start):
                del out["encrypted"], out["protection"]
                facts.hand_over("tls", start, 0)
        self._credentials(requests, responses, facts, out)
        facts.flow.update(out)
        return facts

    def _credentials(self, requests: list[Message], responses: list[Message], facts: Facts,
                     out: dict[str, object]) -> None:
        seen: set[tuple[object, ...]] = set()
        for i, request in enumerate(requests):
            for header in (b"authorization", b"proxy-authorization"):
                value = request.headers.get(header)
                if value is None:
                    continue
                scheme, _, param = value.strip().partition(b" ")
                mechanism = scheme.decode("latin-1").lower()[:32]
                out.setdefault("http_auth_scheme", mechanism)
                if not self.rows:
                    continue
                user, secret = _identity(mechanism, param.strip())
                accepted = None
                if i < len(responses):
                    code = int(responses[i].start[1][:3])
                    accepted = code not in (401, 407)
                row = credential_row(self.key, "http", mechanism, user, secret, accepted)
                key = tuple(row.values())
                if key not in seen and len(seen) < 16:
                    seen.add(key)
                    facts.add_row("credentials", row)


def _identity(mechanism: str, param: bytes) -> tuple[bytes | None, bytes | None]:
    """(username, reusable secret) an Authorization header shows."""
    if mechanism == "basic":
        decoded = b64decode(param)
        if decoded is None:
            return None, None
        user, sep, password = decoded.partition(b":")
        return user, password if sep else None
    if mechanism == "bearer":
        return None, param
    if mechanism == "digest":
        for part in param.split(b","):
            name, _, value = part.strip().partition(b"=")
            if name.strip().lower() == b"username":
                return value.strip().strip(b'"'), None
        return None, None
    if mechanism in ("ntlm", "negotiate"):
        return ntlm_user(b64decode(param)), None
    return None, None


def _request_line(line: bytes) -> bool:
    """`METHOD target HTTP/1.x` (RFC 9112 3)."""
    return line.startswith(METHODS) and line[-9:-3] == b" HTTP/" and line[-3:-2].isdigit() and line[-1:].isdigit()


def _status_line(line: bytes) -> bool:
    """`HTTP/1.x 200 reason` (RFC 9112 4)."""
    return (line.startswith(b"HTTP/1.") and line[8:9] == b" " and line[9:12].isdigit()
            and line[12:13] in (b"", b" "))


DISSECTOR = register(HTTPDissector())
