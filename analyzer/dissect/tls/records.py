"""Reading one direction of a TLS flow: the record walk (5-byte TLS record headers, SSL 2.0's
2-byte headers), handshake reassembly across records, and the parse of the messages facts come
from (ClientHello, ServerHello, Certificate, ServerKeyExchange, ClientKeyExchange).

`RecordWalker.walk(side, prefix, start, server_tls13, facts)` fills a `Side` with what one direction
said: history events, hellos, certificates, alerts, ChangeCipherSpec, the lengths of the first
encrypted records and why reading stopped. Plaintext handshake fragments are reassembled across
records, so a ClientHello split over several records and TCP segments (post-quantum key shares) or
a certificate chain spanning records parses the same as a one-record message. A direction stops
being read once it is encrypted (after its ChangeCipherSpec up to TLS 1.2; after the ServerHello
for a TLS 1.3 server; SSL 2.0 after CLIENT-MASTER-KEY) plus a few record headers that show
application data flowing, so the work per flow is bounded. What the session amounts to is
`tls.session`'s business.

Also here, as they read record headers: `looks_like_tls`, `find_tls_start` (TLS after cleartext)
and `resync` (the first record boundary of a flow picked up mid-stream).

The walker holds no memo of its own: the parsers' memos (`HandshakeMemo`) and the hello columns'
(`HelloColumns`, flows mode) belong to the dissector instance, which hands them to its walker.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

from analyzer.dissect.base import Facts, StreamPrefix
from analyzer.dissect.tls.columns import HelloColumns, server_key_exchange
from analyzer.dissect.tls.constants import is_tls13
from analyzer.dissect.tls.handshake import (
    ClientHello,
    HandshakeMemo,
    KeyExchangeInfo,
    ServerHello,
    client_hello_shape,
    parse_certificate_list,
    parse_client_hello,
    parse_server_hello,
    parse_sslv2_client_hello,
)
from analyzer.errors import ParseError

__all__ = [
    "HS_NAMES",
    "MAX_CERTIFICATES",
    "MAX_HANDSHAKE_MESSAGE",
    "MAX_RECORD",
    "MAX_RECORDS",
    "RecordWalker",
    "ShapedHello",
    "Side",
    "find_tls_start",
    "hello_type",
    "looks_like_tls",
    "resync",
]

_REC = struct.Struct(">BHH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
MAX_RECORD = 16384 + 2048  # TLSCiphertext.length limit (RFC 5246 section 6.2.3)
MAX_HANDSHAKE_MESSAGE = 1 << 21  # 2 MiB: far above real chains (Zeek's test has a 340 kB one)
MAX_CERTIFICATES = 32  # kept per chain (memory); a longer chain is an anomaly with its length
MAX_RECORDS = 8192  # per direction (1-byte records are legal: an evasion trick, not an error)
ENCRYPTED_TAIL = 2  # record headers still walked after a direction turned encrypted

# Handshake type -> Zeek ssl_history letter (lowercase; uppercased for the client).
_HS_LETTERS = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k", 13: "r",
    14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p", 254: "m",
}  # fmt: skip

_HS_LETTERS_CLIENT = {k: v.upper() for k, v in _HS_LETTERS.items()}
# Why a direction's handshake was cut (RecordWalker stop reason) -> (anomaly kind, explanation)
_CUTS = {
    "budget": ("tls_handshake_cut_by_budget", "--payload-budget, and the 256 KiB a TLS handshake may run past it"),
    "gap": ("tls_handshake_cut_by_gap", "a segment was not captured, or was cut by the snap length"),
    "truncated": ("tls_handshake_cut_short", "the stream ends inside it"),
}
_PARSED = frozenset({1, 2, 11, 12, 16})
_WHO = {True: "client", False: "server"}

HS_NAMES = {
    "h": "hello_request", "c": "client_hello", "s": "server_hello", "v": "hello_verify_request",
    "t": "new_session_ticket", "j": "hello_retry_request", "x": "certificate",
    "k": "server_key_exchange", "r": "certificate_request", "n": "server_hello_done",
    "y": "certificate_verify", "g": "client_key_exchange", "u": "certificate_status",
    "i": "change_cipher_spec", "l": "alert", "b": "heartbeat", "z": "handshake message",
    "q": "unknown record", "o": "encrypted_extensions", "f": "finished", "e": "end_of_early_data",
}  # fmt: skip


def _valid_header(data: bytes, pos: int) -> bool:
    """A plausible TLS record header at `pos` (content type 20..26, major version 3)."""
    if pos + 5 > len(data):
        return False
    ctype, ver, length = _REC.unpack_from(data, pos)
    return 20 <= ctype <= 26 and ver >> 8 == 3 and (ver & 0xFF) <= 4 and 0 < length <= MAX_RECORD


def _sslv2_hello(data: bytes, pos: int = 0) -> bool:
    """An SSL 2.0 record header carrying CLIENT-HELLO (1) with version 2 or 3.x."""
    if pos + 5 > len(data):
        return False
    b0 = data[pos]
    if not b0 & 0x80:
        return False
    length = ((b0 & 0x7F) << 8) | data[pos + 1]
    return length >= 9 and data[pos + 2] == 1 and data[pos + 3] in (0, 3) and data[pos + 4] <= 4


def _sslv2_server_hello(data: bytes, pos: int = 0) -> bool:
    """An SSL 2.0 record header carrying SERVER-HELLO (4); it reads 6 bytes (version major at +5)."""
    if pos + 6 > len(data):
        return False
    b0 = data[pos]
    if not b0 & 0x80:
        return False
    length = ((b0 & 0x7F) << 8) | data[pos + 1]
    return length >= 11 and data[pos + 2] == 4 and data[pos + 5] == 0


def looks_like_tls(data: bytes) -> bool:
    """Do these first bytes of a direction start like TLS / SSL? (A record header's type and
    version are enough; its length is judged by the dissector, an absurd one is an anomaly.)"""
    if len(data) >= 3 and 20 <= data[0] <= 24 and data[1] == 3 and data[2] <= 4:
        return True
    return _sslv2_hello(data) or _sslv2_server_hello(data)


# A ClientHello record (record header, handshake type 1, 24-bit length, legacy version 3.x) and the
# server's first TLS bytes (ServerHello record or a plaintext alert), searched for when TLS starts
# after some cleartext (STARTTLS, SOCKS, MySQL / PostgreSQL SSL requests, ...).
_CH_RE = re.compile(rb"\x16\x03[\x00-\x04][\x00-\x48].\x01\x00..\x03[\x00-\x04]", re.S)
_SH_RE = re.compile(
    rb"\x16\x03[\x00-\x04][\x00-\x48].\x02\x00..\x03[\x00-\x04]|\x15\x03[\x00-\x04]\x00\x02[\x01\x02]", re.S
)
SEARCH_LIMIT = 65536


def hello_type(data: bytes) -> int | None:
    """1 / 2 when the bytes start with a ClientHello / ServerHello record (TLS or SSLv2)."""
    if len(data) >= 6 and data[0] == 0x16 and data[1] == 3:
        return data[5]
    if _sslv2_hello(data):
        return 1
    if _sslv2_server_hello(data):
        return 2
    return None


def find_tls_start(to_server: bytes, to_client: bytes) -> tuple[int, int | None] | None:
    """Offsets where TLS starts in each direction when it follows some cleartext: the first
    ClientHello record in `to_server` (None when there is none in the first 64 KiB) and the first
    ServerHello or alert record in `to_client` (None when the server never switched)."""
    client = _first_match(_CH_RE, (b"\x16\x03",), to_server)
    if client is None:
        return None
    return client, _first_match(_SH_RE, (b"\x16\x03", b"\x15\x03"), to_client)


def _first_match(pattern: re.Pattern[bytes], leads: tuple[bytes, ...], data: bytes) -> int | None:
    """Where `pattern.search(data, 0, SEARCH_LIMIT)` would match, found by trying the pattern only
    where one of its literal starts occurs: bytes.find skips cleartext at memchr speed, while re's
    search tries every position (2% of a dissection run on plaintext HTTP and SSH flows)."""
    best = None
    for lead in leads:
        pos = data.find(lead, 0, SEARCH_LIMIT)
        while pos != -1 and (best is None or pos < best):
            if pattern.match(data, pos, SEARCH_LIMIT):
                best = pos
                break
            pos = data.find(lead, pos + 1, SEARCH_LIMIT)
    return best


def resync(data: bytes, limit: int = 65536) -> int | None:
    """Offset of the first record header inside a mid-stream prefix: a plausible header whose
    record is followed by another plausible header or ends exactly at the end of the data."""
    n = min(len(data), limit)
    pos = data.find(b"\x03", 1, n)
    while pos != -1:
        start = pos - 1
        if _valid_header(data, start):
            (length,) = _U16.unpack_from(data, start + 3)
            nxt = start + 5 + length
            if nxt == len(data) or _valid_header(data, nxt):
                return start
        pos = data.find(b"\x03", pos + 1, n)
    return None


class Side:
    """What one direction said."""

    __slots__ = (
        "alerts",
        "app_lengths",
        "ccs",
        "certs",
        "cke",
        "client_hellos",
        "cut",
        "encrypted",
        "encrypted_alerts",
        "events",
        "hs_need",
        "hs_pending",
        "hs_pending_at",
        "is_client",
        "partial",
        "record_version",
        "records",
        "server_hellos",
        "ske",
        "ssl2_cipher",
        "ssl2_error",
        "ssl2_server_hello",
        "start",
        "stop",
        "tls13_server",
    )

    def __init__(self, is_client: bool) -> None:
        self.is_client = is_client
        # (history letter, stream offset of completion, (level, description) for alerts else None)
        self.events: list[tuple[str, int, tuple[int, int] | None]] = []
        self.stop = "end"
        self.records = 0
        self.encrypted = False
        self.app_lengths: list[int] = []  # lengths of encrypted records (first few)
        self.encrypted_alerts = 0
        self.record_version: int | None = None
        self.alerts: list[tuple[int, int, int]] = []  # (level, description, offset)
        # ShapedHello for a hello of a shape seen before
        self.client_hellos: list[ClientHello | ShapedHello] = []
        self.server_hellos: list[ServerHello] = []
        self.certs: list[bytes] = []
        self.ske: KeyExchangeInfo | None = None
        self.cke = False
        self.ccs = False
        self.hs_pending = bytearray()
        self.hs_pending_at = 0
        self.hs_need = 0  # body length of the pending message (0: its header is incomplete)
        self.partial = False  # a record header was read whose record the data does not complete
        self.cut = False  # a handshake message was cut (budget, gap, end of the stream): facts are missing
        self.ssl2_server_hello = False
        self.ssl2_cipher: int | None = None
        self.ssl2_error: int | None = None
        self.start = 0
        self.tls13_server = False  # a TLS 1.3 ServerHello (not a HelloRetryRequest) was read

    def add(self, letter: str, offset: int, alert: tuple[int, int] | None = None) -> None:
        """Record a history letter (Zeek's case: uppercase when the client sent it)."""
        self.events.append((letter.upper() if self.is_client else letter, offset, alert))


class ShapedHello(NamedTuple):
    """What is kept of a ClientHello whose shape was seen before (`client_hello_shape`) instead
    of parsing it again: the fields that change from hello to hello and that the `tls` row, the
    flow's columns or a key log read (host name, random, session id), and what the shape decides
    (`columns.KnownShape`). Every other field of such a hello equals that of the hello parsed
    first for the shape; no reader of a TLS-over-TCP session needs them (QUIC and DTLS parse
    their own hellos)."""

    server_name: str | None
    columns: dict[str, object]
    random: bytes = b""  # the hello's random: a key log's secrets are looked up by it
    session_id: bytes = b""
    extended_master_secret: bool = False
    session_ticket_data: bool = False


class RecordWalker:
    """Walks one direction's records into a `Side` (see the module docstring).

    A ClientHello of a shape seen before is kept as a `ShapedHello` instead of being parsed again
    (`hellos` holds what each shape decides); `memo` is given to the parsers.
    """

    __slots__ = ("hellos", "memo")

    def __init__(self, hellos: HelloColumns, memo: HandshakeMemo) -> None:
        self.hellos = hellos
        self.memo = memo

    def walk(self, side: Side, prefix: StreamPrefix, start: int, server_tls13: bool | None, facts: Facts) -> None:
        data = prefix.data
        pos = start
        if not prefix.start_known and start == 0 and not looks_like_tls(data):
            found = resync(data)
            if found is None:
                side.stop = "no_record_boundary"
                return
            pos = found
        side.start = pos
        end = len(data)
        # SSL 2.0 records (client hello of old clients; the whole SSLv2 handshake).
        if pos + 2 <= end and data[pos] & 0x80:
            pos = self._walk_sslv2(side, data, pos, facts)
            if side.stop != "end" or pos >= end:
                return
        # The hot loop keeps its state in locals and writes it back once.
        unpack = _REC.unpack_from
        is_client = side.is_client
        events = side.events
        app_lengths = side.app_lengths
        records = side.records
        encrypted = side.encrypted
        record_version = side.record_version
        unpack_u32 = _U32.unpack_from
        letters = _HS_LETTERS_CLIENT if is_client else _HS_LETTERS
        other_letter = "Z" if is_client else "z"
        parsed = _PARSED
        tail = 0
        stop = "end"
        while pos < end:
            if pos + 5 > end:
                side.partial = side.partial or looks_like_tls(data[pos:])
                stop = self._cut_reason(prefix)
                break
            ctype, ver, length = unpack(data, pos)
            if not (20 <= ctype <= 26 and ver >> 8 == 3):
                if encrypted:
                    stop = "left_tls"  # the stream carries something else after TLS
                    break
                if records == 0:
                    stop = "not_tls"
                else:
                    stop = "error"
                    facts.anomaly(
                        "tls_bad_record_header",
                        f"{_WHO[is_client]}: content type {ctype} version 0x{ver:04x} after {records} records",
                        pos,
                    )
                events.append(("Q" if is_client else "q", pos, None))
                break
            if length > MAX_RECORD:
                stop = "error"
                facts.anomaly("tls_record_overflow", f"{_WHO[is_client]}: record length {length} > {MAX_RECORD}", pos)
                break
            body_at = pos + 5
            rec_end = body_at + length
            if rec_end > end:
                side.partial = True
                stop = self._cut_reason(prefix)
                break
            records += 1
            if record_version is None:
                side.record_version = record_version = ver
            if records > MAX_RECORDS:
                stop = "record_limit"
                facts.anomaly(
                    "tls_record_limit", f"{_WHO[is_client]}: more than {MAX_RECORDS} records before encryption", pos
                )
                break
            if encrypted:
                if ctype == 23:
                    if len(app_lengths) < 8:
                        app_lengths.append(length)
                elif ctype == 21:
                    side.encrypted_alerts += 1
                elif ctype == 20:
                    events.append(("I" if is_client else "i", rec_end - 1, None))
                elif ctype == 24:
                    events.append(("B" if is_client else "b", rec_end - 1, None))
                tail += 1
                pos = rec_end
                if tail >= ENCRYPTED_TAIL:
                    stop = "encrypted"
                    break
                continue
            if ctype == 22:
                pending = side.hs_pending
                if not pending and length >= 4:
                    # The usual record: one whole handshake message, read here without the
                    # general loop of _handshake (same letters, parse and event).
                    (head,) = unpack_u32(data, body_at)
                    if (head & 0xFFFFFF) + 4 == length:
                        mtype = head >> 24
                        letter = letters.get(mtype) or other_letter
                        if mtype in parsed:
                            letter = self._message(side, mtype, data[body_at + 4 : rec_end], pos + 5, facts, letter)
                        events.append((letter, rec_end - 1, None))
                        if side.tls13_server:
                            encrypted = True  # everything after a TLS 1.3 ServerHello
                        pos = rec_end
                        continue
                if pending:
                    pending += data[body_at:rec_end]  # bytearray: amortised appends
                    if side.hs_need and len(pending) < 4 + side.hs_need:
                        pos = rec_end  # the pending message is still incomplete
                        continue
                    buf = bytes(pending)
                    ok = self._handshake(side, buf, 0, len(buf), side.hs_pending_at, rec_end - 1, facts)
                else:  # the usual case: messages read straight from the stream, no copy
                    ok = self._handshake(side, data, body_at, rec_end, 0, rec_end - 1, facts)
                if not ok:
                    stop = side.stop
                    break
                if side.tls13_server:
                    encrypted = True  # everything after a TLS 1.3 ServerHello
            elif ctype == 20:
                events.append(("I" if is_client else "i", rec_end - 1, None))
                side.ccs = True
                # TLS 1.3 middlebox-compatibility CCS (RFC 8446 D.4) changes nothing: the server's
                # after a HelloRetryRequest, the client's before its second ClientHello or Finished.
                if is_client:
                    if not server_tls13:
                        encrypted = True
                elif not (side.server_hellos and is_tls13(side.server_hellos[-1].version)):
                    encrypted = True
            elif ctype == 21:
                if length == 2:
                    level, desc = data[body_at], data[body_at + 1]
                    side.alerts.append((level, desc, pos))
                    events.append(("L" if is_client else "l", rec_end - 1, (level, desc)))
                else:
                    side.encrypted_alerts += 1
            elif ctype == 23:
                if len(app_lengths) < 8:
                    app_lengths.append(length)
                encrypted = True
            elif ctype == 24:
                events.append(("B" if is_client else "b", rec_end - 1, None))
            pos = rec_end
        else:
            if prefix.gap_at is not None or prefix.budget_hit:
                stop = self._cut_reason(prefix)
        if stop in _CUTS and not encrypted and (side.hs_pending or side.partial):
            # A handshake cut short must not pass for a short one: a client can pad its hello past
            # the budget (and its handshake extension) to hide its SNI and fingerprint from the
            # audit; a lost segment or the snap length hides them as well.
            side.cut = True
            kind, why = _CUTS[stop]
            facts.anomaly(kind, f"{_WHO[is_client]}: a handshake message continues past the {len(data)} bytes "
                          f"kept ({why}): the facts it carries (server name, fingerprint, certificates) are "
                          "missing", pos)
        side.records = records
        side.encrypted = encrypted
        side.stop = stop

    @staticmethod
    def _cut_reason(prefix: StreamPrefix) -> str:
        if prefix.gap_at is not None:
            return "gap"
        if prefix.budget_hit:
            return "budget"
        return "truncated"

    def _handshake(
        self, side: Side, buf: bytes, p: int, n: int, base: int, done_at: int, facts: Facts
    ) -> bool:
        """Consume the complete handshake messages of `buf[p:n]` (stream offset of `buf[0]`:
        `base`), keep a partial tail pending; False: stop reading this direction."""
        mlen = 0
        is_client = side.is_client
        letters = _HS_LETTERS_CLIENT if is_client else _HS_LETTERS
        append = side.events.append
        unpack = _U32.unpack_from
        while p + 4 <= n:
            (head,) = unpack(buf, p)  # type (1 byte), body length (3 bytes)
            mtype = head >> 24
            mlen = head & 0xFFFFFF
            if mlen > MAX_HANDSHAKE_MESSAGE:
                side.stop = "error"
                facts.anomaly(
                    "tls_handshake_too_large",
                    f"{_WHO[is_client]}: handshake type {mtype} length {mlen}",
                    base + p,
                )
                side.hs_pending = bytearray()
                return False
            nxt = p + 4 + mlen
            if nxt > n:
                break
            letter = letters.get(mtype) or ("Z" if is_client else "z")
            if mtype in _PARSED:
                letter = self._message(side, mtype, buf[p + 4 : nxt], base + p, facts, letter)
            append((letter, done_at, None))
            p = nxt
        if p < n:
            side.hs_pending = bytearray(buf[p:n])
            side.hs_pending_at = base + p
            side.hs_need = mlen if p + 4 <= n else 0
        elif side.hs_pending:
            side.hs_pending = bytearray()
        return True

    def _message(self, side: Side, mtype: int, body: bytes, at: int, facts: Facts, letter: str) -> str:
        """Parse the messages we read facts from; returns the history letter."""
        try:
            if mtype == 1:
                if side.is_client:
                    # Parsed once per hello shape: a shape seen before gives the columns, the
                    # hello's own bytes the few fields that change (the shape ~4 us, the parse and
                    # its columns ~13 us per hello)
                    shape = client_hello_shape(body)
                    if shape is not None:
                        known = self.hellos.by_shape(shape[0])
                        if known is not None:
                            start, end = shape[1], shape[2]
                            name = body[start:end].decode("utf-8", "backslashreplace") if end else None
                            side.client_hellos.append(ShapedHello(
                                name, known.columns, body[2:34], body[35 : 35 + body[34]],
                                known.extended_master_secret, known.session_ticket_data))
                            return letter
                    ch = parse_client_hello(body, memo=self.memo)
                    side.client_hellos.append(ch)
                    for err in ch.errors:
                        facts.anomaly("tls_extension_malformed", f"client hello {err}", at)
                    if shape is not None and not ch.errors:
                        self.hellos.remember_shape(shape[0], ch)
            elif mtype == 2:
                if not side.is_client:
                    sh = parse_server_hello(body, memo=self.memo)
                    side.server_hellos.append(sh)
                    if sh.is_hello_retry_request:
                        letter = "j"
                    elif is_tls13(sh.version):
                        side.tls13_server = True
                    for err in sh.errors:
                        facts.anomaly("tls_extension_malformed", f"server hello {err}", at)
            elif mtype == 11:
                certs = parse_certificate_list(body)
                room = MAX_CERTIFICATES - len(side.certs)
                if len(certs) > room:
                    facts.anomaly("tls_certificate_chain_capped",
                                  f"{_WHO[side.is_client]}: {len(side.certs) + len(certs)} certificates, the first "
                                  f"{MAX_CERTIFICATES} kept", at)
                side.certs.extend(certs[: max(room, 0)])
            elif mtype == 12:
                if not side.is_client:
                    code = side.server_hellos[-1].cipher_suite if side.server_hellos else None
                    side.ske = server_key_exchange(body, self.hellos.kx(code))
            elif mtype == 16 and side.is_client:
                side.cke = True
        except ParseError as exc:
            off = at + 4 + exc.offset if exc.offset is not None else at
            name = HS_NAMES.get(letter.lower(), letter)
            facts.anomaly("tls_handshake_malformed", f"{_WHO[side.is_client]} {name}: {exc}", off)
        return letter

    def _walk_sslv2(self, side: Side, data: bytes, pos: int, facts: Facts) -> int:
        """SSL 2.0 records with a 2-byte header. Returns the offset after the last one read."""
        end = len(data)
        who = "client" if side.is_client else "server"
        while pos + 2 <= end and data[pos] & 0x80:
            length = ((data[pos] & 0x7F) << 8) | data[pos + 1]
            body_at = pos + 2
            if body_at + length > end:
                side.stop = "truncated"
                return pos
            body = data[body_at : body_at + length]
            side.records += 1
            if side.record_version is None:
                side.record_version = 0x0002
            mtype = body[0] if body else -1
            try:
                if mtype == 1 and side.is_client:
                    side.client_hellos.append(parse_sslv2_client_hello(body))
                    side.add("c", body_at + length - 1)
                elif mtype == 4 and not side.is_client:
                    side.ssl2_server_hello = True
                    side.add("s", body_at + length - 1)
                    self._sslv2_server_hello(side, body)
                    side.encrypted = True  # the rest of SSL 2.0 is encrypted
                    side.stop = "encrypted"
                    return body_at + length
                elif mtype == 2 and side.is_client:
                    if len(body) >= 4:
                        side.ssl2_cipher = (body[1] << 16) | (body[2] << 8) | body[3]
                    side.cke = True
                    side.encrypted = True
                    side.stop = "encrypted"
                    return body_at + length
                elif mtype == 0:
                    if len(body) >= 3:
                        side.ssl2_error = (body[1] << 8) | body[2]
                    side.add("l", body_at + length - 1)
                else:
                    # Encrypted SSLv2 traffic, or a message we do not need: stop here.
                    side.encrypted = True
                    side.stop = "encrypted"
                    return body_at + length
            except ParseError as exc:
                facts.anomaly("tls_sslv2_malformed", f"{who}: {exc}", body_at)
            pos = body_at + length
        return pos

    @staticmethod
    def _sslv2_server_hello(side: Side, body: bytes) -> None:
        if len(body) < 11:
            raise ParseError("sslv2 server hello: header cut", 0)
        (cert_len,) = _U16.unpack_from(body, 5)
        (cs_len,) = _U16.unpack_from(body, 7)
        side.record_version = _U16.unpack_from(body, 3)[0]
        if 11 + cert_len + cs_len > len(body):
            raise ParseError("sslv2 server hello: lengths exceed the record", 5)
        if cert_len and body[2] == 1:  # SSL_CT_X509_CERTIFICATE
            side.certs.append(body[11 : 11 + cert_len])
