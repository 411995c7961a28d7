"""The TLS dissector: stream prefixes of one TCP flow -> TLS facts (flow columns, `tls`, `certs`,
`cert_links` and `anomalies` rows).

How it reads a flow
-------------------
Each direction is walked record by record (5-byte TLS record headers, or the 2-byte SSL 2.0 header
of an SSLv2-compatible hello). Plaintext handshake fragments are reassembled across records, so a
ClientHello split over several records and TCP segments (post-quantum key shares) or a certificate
chain spanning records parses the same as a one-record message. A direction stops being read once
it is encrypted (after its ChangeCipherSpec up to TLS 1.2; after the ServerHello for a TLS 1.3
server; SSL 2.0 after CLIENT-MASTER-KEY) plus a few record headers that show application data
flowing, so the work per flow is bounded. The server direction is read first: the client direction
of TLS 1.3 needs the negotiated version (its ChangeCipherSpec does not start encryption there).

`history` follows Zeek's `ssl_history` letters and case: **client-sent letters are uppercase,
server-sent lowercase** (C client_hello, s server_hello, j hello_retry_request, x certificate,
k server_key_exchange, r certificate_request, n server_hello_done, y certificate_verify,
g client_key_exchange, t new_session_ticket, u certificate_status, i change_cipher_spec, l alert,
b heartbeat, v hello_verify_request, h hello_request, z other handshake types, q unknown record
type). Encrypted records add no letters. The two directions are merged by capture time when the
flow layer supplied segment timestamps, else by handshake flights.

Facts, never judgements: weak versions, ciphers or certificates are left to `policy/`.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from operator import itemgetter
from typing import Any, NamedTuple, cast

from analyzer.dissect.base import DissectContext, Facts, FlowPayload, StreamPrefix
from analyzer.dissect.tls import _compat
from analyzer.dissect.tls import schema as tls_schema
from analyzer.dissect.tls.constants import (
    alert_description_name,
    alert_level_name,
    group_name,
    is_tls13,
    version_name,
)
from analyzer.dissect.tls.fingerprints import _hexlist, dec, ja3, ja3s, ja4, ja4s, ja4x
from analyzer.dissect.tls.handshake import (
    ClientHello,
    KeyExchangeInfo,
    ServerHello,
    client_hello_shape,
    parse_certificate_list,
    parse_client_hello,
    parse_server_hello,
    parse_server_key_exchange,
    parse_sslv2_client_hello,
)
from analyzer.errors import ParseError

__all__ = ["TLS_PORTS", "TLSDissector", "find_tls_start", "looks_like_tls"]

TLS_PORTS: frozenset[int] = frozenset(
    {443, 465, 563, 585, 614, 636, 853, 989, 990, 992, 993, 994, 995, 1443, 2083, 2087, 2096,
     3269, 4433, 4443, 5061, 5223, 5986, 6443, 6514, 6679, 6697, 8443, 8883, 9443, 10443}
)  # fmt: skip

_REC = struct.Struct(">BHH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
MAX_RECORD = 16384 + 2048  # TLSCiphertext.length limit (RFC 5246 section 6.2.3)
MAX_HANDSHAKE_MESSAGE = 1 << 21  # 2 MiB: far above real chains (Zeek's test has a 340 kB one)
MAX_RECORDS = 8192  # per direction (1-byte records are legal: an evasion trick, not an error)
ENCRYPTED_TAIL = 2  # record headers still walked after a direction turned encrypted

# Handshake type -> Zeek ssl_history letter (lowercase; uppercased for the client).
_HS_LETTERS = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k", 13: "r",
    14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p", 254: "m",
}  # fmt: skip

_HS_LETTERS_CLIENT = {k: v.upper() for k, v in _HS_LETTERS.items()}
_PARSED = frozenset({1, 2, 11, 12, 16})
_WHO = {True: "client", False: "server"}

_HS_NAMES = {
    "h": "hello_request", "c": "client_hello", "s": "server_hello", "v": "hello_verify_request",
    "t": "new_session_ticket", "j": "hello_retry_request", "x": "certificate",
    "k": "server_key_exchange", "r": "certificate_request", "n": "server_hello_done",
    "y": "certificate_verify", "g": "client_key_exchange", "u": "certificate_status",
    "i": "change_cipher_spec", "l": "alert", "b": "heartbeat", "z": "handshake message",
    "q": "unknown record", "o": "encrypted_extensions", "f": "finished", "e": "end_of_early_data",
}  # fmt: skip

_NO_LEAF: dict[str, Any] = {}

# Every `tls` row starts as a copy of this (all columns of analyzer.schema.TLS, unset).
_TLS_ROW: dict[str, object] = dict.fromkeys(
    [
        "uid",
        "protocol",
        "ts",
        "client_ip",
        "client_port",
        "server_ip",
        "server_port",
        "version",
        "client_max_version",
        "record_version",
        "client_legacy_version",
        "client_supported_versions",
        "cipher",
        "cipher_code",
        "client_ciphers",
        "client_cipher_count",
        "compression_methods",
        "client_extensions",
        "server_extensions",
        "server_name",
        "alpn_offered",
        "alpn",
        "supported_groups",
        "ec_point_formats",
        "signature_algorithms",
        "key_share_groups",
        "selected_group",
        "psk_offered",
        "session_ticket_offered",
        "early_data_offered",
        "ech_offered",
        "renegotiation_info",
        "extended_master_secret",
        "grease",
        "sslv2_client_hello",
        "hello_retry_request",
        "resumed",
        "session_id_len",
        "dh_bits",
        "established",
        "history",
        "alert_level",
        "alert_description",
        "alert_by",
        "failure_reason",
        "cert_visible",
        "cert_chain",
        "cert_sha256",
        "sni_matches_cert",
        "client_cert_chain",
        "ja3",
        "ja3_full",
        "ja3s",
        "ja3s_full",
        "ja4",
        "ja4_r",
        "ja4s",
        "ja4s_r",
        "ja4x",
        "quic_version",
        "quic_transport_params",
        "client_hello_count",
        "server_hello_count",
        "client_stop",
        "server_stop",
        "sslv2",
    ]
)
_TLS_ROW["protocol"] = "tls"

_SSL2_ERRORS = {
    1: "NO-CIPHER-ERROR",
    2: "NO-CERTIFICATE-ERROR",
    4: "BAD-CERTIFICATE-ERROR",
    6: "UNSUPPORTED-CERTIFICATE-TYPE-ERROR",
}


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
    if pos + 5 > len(data):
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


def _hello_type(data: bytes) -> int | None:
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


def _resync(data: bytes, limit: int = 65536) -> int | None:
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


class _Side:
    """What one direction said."""

    __slots__ = (
        "alerts",
        "app_lengths",
        "ccs",
        "certs",
        "cke",
        "client_hellos",
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
        # ShapedHello only in flows mode (rows=False), for a hello of a shape seen before
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
        self.ssl2_server_hello = False
        self.ssl2_cipher: int | None = None
        self.ssl2_error: int | None = None
        self.start = 0
        self.tls13_server = False  # a TLS 1.3 ServerHello (not a HelloRetryRequest) was read

    def add(self, letter: str, offset: int, alert: tuple[int, int] | None = None) -> None:
        """Record a history letter (Zeek's case: uppercase when the client sent it)."""
        self.events.append((letter.upper() if self.is_client else letter, offset, alert))


class ShapedHello(NamedTuple):
    """What flows mode (`TLSDissector(rows=False)`) keeps of a ClientHello whose shape was seen
    before (`client_hello_shape`): the host name and the columns derived from the shape."""

    server_name: str | None
    columns: dict[str, object]


class _Outcome(NamedTuple):
    """What _session read and decided about a session, handed to the tls row
    (`TLSDissector._tls_row`): the streams as read, the hellos, and the negotiated facts."""

    cs: StreamPrefix  # client to server, as read (after a flip)
    sc: StreamPrefix
    flipped: bool
    ch: ClientHello | None
    sh: ServerHello | None
    hrr: ServerHello | None
    tls13: bool
    version: int | None
    version_s: str | None
    cipher_code: int | None
    cipher_name: str | None
    alpn: str | None
    selected_group: str | None
    established: bool
    history: str
    failure: str | None
    alert: tuple[int, int, str] | None
    ccols: dict[str, object] | None  # the client hello's derived columns
    scols: dict[str, object] | None  # the server hello's derived columns


class TLSDissector:
    """TLS / SSL over TCP, found by content on any port.

    Options: `ja4x` (default False) also computes FoxIO JA4X per certificate (FoxIO License 1.1,
    see `analyzer.dissect.tls.fingerprints`); `ja4s` (default True) computes JA4S; `certificates`
    (default True) hands certificate DER to `analyzer.dissect.x509`. `rows` (default True) makes the
    `tls`, `certs` and `cert_links` rows; without, only the flow's columns (`Facts.flow`) and the
    anomalies are made, for analyses that keep no such frame. `strict` re-raises internal errors
    instead of recording them as `tls_internal_error` anomalies (for tests).
    """

    name = "tls"
    transports: frozenset[str] = frozenset({"tcp"})
    ports: frozenset[int] = TLS_PORTS
    columns = tls_schema.FLOW_COLUMNS
    frames = tls_schema.FRAMES

    def __init__(
        self,
        *,
        ja4x: bool = False,
        ja4s: bool = True,
        certificates: bool = True,
        rows: bool = True,
        strict: bool = False,
    ) -> None:
        self.ja4x = ja4x
        self.rows = rows
        self.ja4s = ja4s
        self.certificates = certificates
        self.strict = strict
        self._cache: _compat.CertCache | None = None
        self._sni_memo: dict[tuple[str, str], bool | None] = {}

    def __repr__(self) -> str:
        return (f"TLSDissector(ja4x={self.ja4x}, ja4s={self.ja4s}, certificates={self.certificates}, "
                f"rows={self.rows})")

    @property
    def cert_cache(self) -> _compat.CertCache:
        if self._cache is None:
            self._cache = _compat.new_certificate_cache()
        return self._cache

    # --- the Dissector protocol -------------------------------------------------------------

    def for_run(self, context: DissectContext) -> TLSDissector:
        """This run's instance (its own certificate cache and memos), making the tls/certs/cert_links
        rows only when the run keeps one of those frames."""
        return TLSDissector(ja4x=context.options.ja4x, ja4s=self.ja4s, certificates=self.certificates,
                            rows=context.wants("tls", "certs", "cert_links"), strict=self.strict)

    def find_start(self, flow: FlowPayload) -> tuple[int, int] | None:
        """Where TLS begins after a cleartext exchange in a flow no dissector claimed (STARTTLS of a
        protocol without a dissector, SOCKS, PostgreSQL/MySQL SSL requests): a ClientHello record in
        the client's bytes answered by a ServerHello (or alert) record from the server."""
        start = find_tls_start(flow.to_server.data, flow.to_client.data)
        if start is None or start[1] is None:  # the server never switched: not an upgrade
            return None
        return start[0], start[1]

    def probe(self, flow: FlowPayload) -> bool:
        """A TLS record header or SSLv2 hello at the start of either direction."""
        for prefix in (flow.to_server, flow.to_client):
            data = prefix.data
            if data and (looks_like_tls(data) or (not prefix.start_known and _resync(data, 8192) is not None)):
                return True
        return False

    def dissect(self, flow: FlowPayload) -> Facts:
        return self._dissect_at(flow, 0, 0)

    def dissect_from(self, flow: FlowPayload, to_server_offset: int = 0, to_client_offset: int = 0) -> Facts:
        """The hand-over: TLS that starts at the given stream offsets, after a cleartext exchange
        (a STARTTLS parent passes the offset of the first TLS byte of each direction). The flow is
        marked `tls_upgraded`. Never raises for wire data."""
        facts = self._dissect_at(flow, to_server_offset, to_client_offset)
        facts.flow["tls_upgraded"] = True
        return facts

    def _dissect_at(self, flow: FlowPayload, to_server_offset: int, to_client_offset: int) -> Facts:
        facts = Facts()
        try:
            self._dissect(flow, to_server_offset, to_client_offset, facts)
        except Exception as exc:  # a bug, not wire data: keep the run going, say so
            if self.strict:
                raise
            facts.anomaly("tls_internal_error", f"{type(exc).__name__}: {exc}")
        return facts

    # --- reading one direction ----------------------------------------------------------------

    def _walk(self, side: _Side, prefix: StreamPrefix, start: int, server_tls13: bool | None, facts: Facts) -> None:
        data = prefix.data
        pos = start
        if not prefix.start_known and start == 0 and not looks_like_tls(data):
            found = _resync(data)
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
        self, side: _Side, buf: bytes, p: int, n: int, base: int, done_at: int, facts: Facts
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

    def _message(self, side: _Side, mtype: int, body: bytes, at: int, facts: Facts, letter: str) -> str:
        """Parse the messages we read facts from; returns the history letter."""
        try:
            if mtype == 1:
                if side.is_client:
                    shape = None
                    if not self.rows:  # only the flow's columns: once per hello shape
                        shape = client_hello_shape(body)
                        if shape is not None:
                            columns = _SHAPE_MEMO.get(shape[0])
                            if columns is not None:
                                start, end = shape[1], shape[2]
                                name = body[start:end].decode("utf-8", "backslashreplace") if end else None
                                side.client_hellos.append(ShapedHello(name, columns))
                                return letter
                    ch = parse_client_hello(body)
                    side.client_hellos.append(ch)
                    for err in ch.errors:
                        facts.anomaly("tls_extension_malformed", f"client hello {err}", at)
                    if shape is not None and not ch.errors:
                        _remember_shape(shape[0], _client_columns(ch))
            elif mtype == 2:
                if not side.is_client:
                    sh = parse_server_hello(body)
                    side.server_hellos.append(sh)
                    if sh.is_hello_retry_request:
                        letter = "j"
                    elif is_tls13(sh.version):
                        side.tls13_server = True
                    for err in sh.errors:
                        facts.anomaly("tls_extension_malformed", f"server hello {err}", at)
            elif mtype == 11:
                if len(side.certs) < 32:
                    side.certs.extend(parse_certificate_list(body)[: 32 - len(side.certs)])
            elif mtype == 12:
                if not side.is_client:
                    kx = None
                    if side.server_hellos:
                        kx = _compat.cipher_lookup(side.server_hellos[-1].cipher_suite).kx
                    side.ske = parse_server_key_exchange(body, kx or _sniff_kx(body))
            elif mtype == 16 and side.is_client:
                side.cke = True
        except ParseError as exc:
            off = at + 4 + exc.offset if exc.offset is not None else at
            name = _HS_NAMES.get(letter.lower(), letter)
            facts.anomaly("tls_handshake_malformed", f"{_WHO[side.is_client]} {name}: {exc}", off)
        return letter

    def _walk_sslv2(self, side: _Side, data: bytes, pos: int, facts: Facts) -> int:
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
    def _sslv2_server_hello(side: _Side, body: bytes) -> None:
        if len(body) < 11:
            raise ParseError("sslv2 server hello: header cut", 0)
        (cert_len,) = _U16.unpack_from(body, 5)
        (cs_len,) = _U16.unpack_from(body, 7)
        side.record_version = _U16.unpack_from(body, 3)[0]
        if 11 + cert_len + cs_len > len(body):
            raise ParseError("sslv2 server hello: lengths exceed the record", 5)
        if cert_len and body[2] == 1:  # SSL_CT_X509_CERTIFICATE
            side.certs.append(body[11 : 11 + cert_len])

    # --- the session ------------------------------------------------------------------------

    def _dissect(self, flow: FlowPayload, cs_off: int, sc_off: int, facts: Facts) -> None:
        cs, sc = flow.to_server, flow.to_client
        flipped = False
        if cs_off == 0 and sc_off == 0:
            ht_cs, ht_sc = _hello_type(cs.data), _hello_type(sc.data)
            if (ht_sc == 1 and ht_cs != 1) or (ht_cs == 2 and ht_sc != 2):
                cs, sc = sc, cs  # the flow layer guessed the client wrong (mid-stream pickup)
                flipped = True
            elif cs.data and cs.start_known and not looks_like_tls(cs.data):
                found = find_tls_start(cs.data, sc.data)
                if found is None:
                    return
                cs_off = found[0]
                sc_off = found[1] if found[1] is not None else len(sc.data)
        server = _Side(False)
        client = _Side(True)
        if sc.data:
            self._walk(server, sc, sc_off, None, facts)
        final_sh: ServerHello | None = None
        hrr: ServerHello | None = None
        for sh in server.server_hellos:
            if sh.is_hello_retry_request:
                hrr = hrr or sh
            else:
                final_sh = final_sh or sh
        tls13 = final_sh is not None and is_tls13(final_sh.version)
        if cs.data:
            self._walk(client, cs, cs_off, tls13 if final_sh is not None else None, facts)
        if not (client.records or server.records or client.partial or server.partial):
            return
        if client.stop == "not_tls" and server.stop in ("not_tls", "end") and not server.records:
            return
        self._session(flow, cs, sc, flipped, client, server, final_sh, hrr, tls13, facts)

    def _session(
        self,
        flow: FlowPayload,
        cs: StreamPrefix,
        sc: StreamPrefix,
        flipped: bool,
        client: _Side,
        server: _Side,
        sh: ServerHello | None,
        hrr: ServerHello | None,
        tls13: bool,
        facts: Facts,
    ) -> None:
        ch = client.client_hellos[0] if client.client_hellos else None

        # --- negotiated parameters (memoised with the server hello's derived columns)
        version: int | None = None
        cipher_code: int | None = None
        cipher_name: str | None = None
        alpn: str | None = None
        selected_group: str | None = None
        scols: dict[str, object] | None = None
        if sh is not None:
            scols, version, cipher_name, selected_group = _server_columns(sh, self.ja4s)
            cipher_code = sh.cipher_suite
            alpn = sh.alpn
        elif server.ssl2_server_hello:
            version = 0x0002
            cipher_code = client.ssl2_cipher
            cipher_name = _compat.cipher_name(cipher_code) if cipher_code is not None else None
        version_s = version_name(version)

        # --- established / failure
        established = False
        probable_alert = False
        if server.ssl2_server_hello:
            established = client.cke and server.ssl2_error is None and client.ssl2_error is None
        elif sh is not None:
            if tls13:
                apps = client.app_lengths
                # A lone 19-byte record is an encrypted 2-byte alert (1 type + 16 tag bytes).
                probable_alert = len(apps) == 1 and apps[0] == 19 and client.stop not in ("budget", "gap")
                established = bool(apps) and not probable_alert
            else:
                established = client.ccs and server.ccs
        elif ch is None and client.app_lengths and server.app_lengths:
            established = True  # picked up mid-stream: application data flows both ways
        if self.rows or client.alerts or server.alerts or flow.reset:
            merged, history = _merged(client, server, cs, sc)
        else:  # flows mode without an alert or a reset reads neither
            merged, history = [], ""
        # Only an alert record carries an alert event: without one, none needs looking for.
        alert = _first_alert(merged) if client.alerts or server.alerts else None
        failure: str | None = None
        if alert is not None and alert[0] == 2 and not established:
            failure = f"{alert[2]} alert: {alert_description_name(alert[1])}"
        elif client.ssl2_error is not None or server.ssl2_error is not None:
            code = server.ssl2_error if server.ssl2_error is not None else client.ssl2_error
            failure = f"sslv2 error: {_SSL2_ERRORS.get(code or 0, f'0x{code or 0:04x}')}"
            established = False
        elif not established:
            if probable_alert:
                failure = "client encrypted alert (probable) after the server flight"
            elif ch is not None and server.stop == "not_tls":
                failure = "server answered with non-TLS data"
            elif flow.reset and (ch is not None or sh is not None):
                failure = f"reset before handshake completed (last: {_last_message(merged)})"
            elif alert is not None:
                failure = f"{alert[2]} alert: {alert_description_name(alert[1])}"
        encrypted = established or (failure is None and (sh is not None or server.ssl2_server_hello))

        # --- the hellos' derived columns (memoised by the hellos' shapes)
        server_name = client_max = ja3_h = ja4_v = ja3s_h = ja4s_v = None
        ccols: dict[str, object] | None = None
        if ch is not None:
            ccols = ch.columns if type(ch) is ShapedHello else _client_columns(cast(ClientHello, ch))
            server_name = ch.server_name
            client_max = ccols["client_max_version"]
            ja3_h = ccols["ja3"]
            ja4_v = ccols["ja4"]
        if scols is not None:
            ja3s_h = scols["ja3s"]
            ja4s_v = scols["ja4s"]
        chain: list[str] = []
        leaf: dict[str, Any] = _NO_LEAF
        if not self.rows:  # only the flow's columns are wanted: the leaf certificate, no tls row
            if self.certificates and server.certs:
                leaf = self.cert_cache.parse(server.certs[0])
                chain.append(str(leaf["sha256"]))
        else:
            hello = cast("ClientHello | None", ch)  # ShapedHello only in flows mode
            outcome = _Outcome(cs, sc, flipped, hello, sh, hrr, tls13, version, version_s, cipher_code, cipher_name,
                               alpn, selected_group, established, history, failure, alert, ccols, scols)
            leaf = self._tls_row(flow, client, server, outcome, chain, facts)
        facts.flow.update(
            {
                "app_protocol": "tls",
                "encrypted": encrypted,
                "tls_version": version_s,
                "tls_client_max_version": client_max,
                "tls_cipher": cipher_name,
                "tls_server_name": server_name,
                "tls_alpn": alpn,
                "ja3": ja3_h,
                "ja3s": ja3s_h,
                "ja4": ja4_v,
                "ja4s": ja4s_v,
                "tls_established": established,
                "cert_sha256": chain[0] if chain else None,
                "cert_not_after": leaf.get("not_after"),
                "cert_key_bits": leaf.get("key_bits"),
                "cert_self_signed": leaf.get("self_signed"),
            }
        )

    def _tls_row(
        self, flow: FlowPayload, client: _Side, server: _Side, outcome: _Outcome, chain: list[str], facts: Facts
    ) -> dict[str, Any]:
        """The session's `tls` row, and its certificates' rows and links (fills `chain` with the
        server's, leaf first). Returns the leaf's certificate row."""
        (cs, sc, flipped, ch, sh, hrr, tls13, version, version_s, cipher_code, cipher_name, alpn, selected_group,
         established, history, failure, alert, ccols, scols) = outcome
        uid = flow.uid
        row = dict(_TLS_ROW)
        if ccols is not None:
            row.update(ccols)
        resumed = False
        if scols is not None:
            row.update(scols)
            if ch is not None and sh is not None:
                if tls13:
                    resumed = sh.psk_selected
                elif sh.session_id and sh.session_id == ch.session_id:
                    resumed = True
                elif ch.session_ticket_data and not client.cke and client.ccs:
                    resumed = True  # ticket resumption with an empty / new session id (Zeek's rule)
        ske = server.ske
        if ske is not None and ske.named_group is not None and selected_group is None:
            selected_group = group_name(ske.named_group)
        if hrr is not None and selected_group is None and hrr.key_share_group is not None:
            selected_group = group_name(hrr.key_share_group)

        # --- certificates
        server_name = ch.server_name if ch is not None else None
        leaf: dict[str, Any] = _NO_LEAF
        if self.certificates and (server.certs or client.certs):
            leaf = self._certificates(uid, server.certs, client.certs, chain, row, facts)
        if chain and server_name:
            row["sni_matches_cert"] = self._sni_matches(chain[0], server_name)

        client_ip, client_port = flow.client_ip, flow.client_port
        server_ip, server_port = flow.server_ip, flow.server_port
        if flipped:
            client_ip, client_port, server_ip, server_port = server_ip, server_port, client_ip, client_port
        rv = client.record_version if client.record_version is not None else server.record_version
        row.update(
            {
                "uid": uid,
                "ts": (_time_at(cs, _first_event(client, "C")) if ch is not None and cs.times else None)
                or flow.ts_start,
                "client_ip": client_ip,
                "client_port": client_port,
                "server_ip": server_ip,
                "server_port": server_port,
                "version": version_s,
                "client_max_version": ccols["client_max_version"] if ccols is not None else None,
                "record_version": version_name(rv),
                "cipher": cipher_name,
                "cipher_code": cipher_code,
                "server_name": server_name,
                "alpn": alpn,
                "selected_group": selected_group,
                "hello_retry_request": hrr is not None,
                "resumed": resumed,
                "dh_bits": ske.dh_bits if ske is not None else None,
                "established": established,
                "history": ("^" if flipped else "") + history,
                "failure_reason": failure,
                "cert_visible": bool(server.certs),
                "ja3": ccols["ja3"] if ccols is not None else None,
                "ja3s": scols["ja3s"] if scols is not None else None,
                "ja4": ccols["ja4"] if ccols is not None else None,
                "ja4s": scols["ja4s"] if scols is not None else None,
                "client_hello_count": len(client.client_hellos),
                "server_hello_count": len(server.server_hellos) + (1 if server.ssl2_server_hello else 0),
                "client_stop": client.stop if client.records or cs.data else None,
                "server_stop": server.stop if server.records or sc.data else None,
                "sslv2": version == 0x0002,
            }
        )
        if ch is not None:
            row["extended_master_secret"] = ch.extended_master_secret and (sh is None or sh.extended_master_secret)
            row["session_id_len"] = len(ch.session_id)
        if alert is not None:
            row["alert_level"] = alert_level_name(alert[0])
            row["alert_description"] = alert_description_name(alert[1])
            row["alert_by"] = alert[2]
        facts.add_row("tls", row)
        return leaf

    def _certificates(
        self,
        uid: str,
        server_certs: list[bytes],
        client_certs: list[bytes],
        chain: list[str],
        row: dict[str, object],
        facts: Facts,
    ) -> dict[str, Any]:
        """Certificate rows and links; fills `chain` (server, leaf first). Returns the leaf row."""
        parse = self.cert_cache.parse
        # The frames' row lists, made in the order add_row would make them (links, then certs).
        rows = facts.rows
        links = rows.setdefault("cert_links", [])
        cert_rows = rows.setdefault("certs", [])
        seen: set[str] = set()
        client_chain: list[str] = []
        leaf: dict[str, Any] = _NO_LEAF
        ja4x_list: list[str] = []
        for sent_by, certs, out in (("server", server_certs, chain), ("client", client_certs, client_chain)):
            for position, der in enumerate(certs):
                crow = parse(der)
                sha = str(crow["sha256"])
                out.append(sha)
                if position == 0 and sent_by == "server":
                    leaf = crow
                links.append({"uid": uid, "sha256": sha, "position": position, "sent_by": sent_by})
                if sha not in seen:
                    seen.add(sha)
                    crow = dict(crow)  # the leaf row is also read below: keep it unchanged
                    if crow.get("first_seen_uid") is None:
                        crow["first_seen_uid"] = uid
                    if crow.get("sessions") is None:
                        crow["sessions"] = 1
                    cert_rows.append(crow)
                if self.ja4x and sent_by == "server":
                    try:
                        ja4x_list.append(ja4x(der))
                    except ParseError as exc:
                        ja4x_list.append("")
                        facts.anomaly("tls_certificate_der", f"ja4x of certificate {position}: {exc}", None)
        if chain:
            row["cert_chain"] = ",".join(chain)
            row["cert_sha256"] = chain[0]
        if client_chain:
            row["client_cert_chain"] = ",".join(client_chain)
        if ja4x_list:
            row["ja4x"] = ",".join(ja4x_list)
        return leaf

    def _sni_matches(self, sha256: str, server_name: str) -> bool | None:
        key = (sha256, server_name)
        memo = self._sni_memo
        if key in memo:
            return memo[key]
        value = self.cert_cache.sni_matches(sha256, server_name)
        if len(memo) >= 65536:
            memo.clear()
        memo[key] = value
        return value


# --- memoised columns derived from the shape of a hello ---------------------------------------
# A client library sends the same hello shape on every connection (only random, session id, SNI,
# key shares, tickets and padding change), so the strings derived from the shape are computed once
# per shape. The memo is bounded: it is emptied when full.

_MEMO_LIMIT = 8192
_CLIENT_MEMO: dict[tuple[object, ...], dict[str, object]] = {}
_FIRST = itemgetter(0)  # (type, body) -> type
_SERVER_MEMO: dict[tuple[object, ...], tuple[dict[str, object], int, str, str | None]] = {}


def _client_columns(ch: ClientHello) -> dict[str, object]:
    # One flat tuple (cheaper to build than a tuple of tuples): the lists of non-negative codes
    # are told apart by -1 separators.
    key = (
        ch.legacy_version,
        ch.sslv2,
        ch.renegotiation_info,
        ch.session_ticket,
        *ch.cipher_suites,
        -1,
        *map(_FIRST, ch.extensions),
        -1,
        *ch.supported_groups,
        -1,
        *ch.ec_point_formats,
        -1,
        *ch.signature_algorithms,
        -1,
        *ch.key_share_groups,
        -1,
        *ch.supported_versions,
        -1,
        *ch.compression_methods,
        -1,
        *ch.alpn_raw,
    )
    cols = _CLIENT_MEMO.get(key)
    if cols is not None:
        return cols
    types = [t for t, _ in ch.extensions]
    cols = {
        "client_max_version": version_name(ch.max_version),
        "client_legacy_version": version_name(ch.legacy_version),
        "client_supported_versions": (
            ",".join([version_name(v) or "" for v in ch.supported_versions]) if ch.supported_versions else None
        ),
        "client_ciphers": (
            (",".join([f"{c:06x}" for c in ch.cipher_suites]) if ch.sslv2 else _hexlist(ch.cipher_suites))
            if ch.cipher_suites
            else None
        ),
        "client_cipher_count": len(ch.cipher_suites),
        "compression_methods": ",".join(map(dec, ch.compression_methods)),
        "client_extensions": ",".join(map(dec, types)),
        "alpn_offered": ",".join(ch.alpn) if ch.alpn else None,
        "supported_groups": ",".join(map(group_name, ch.supported_groups)) if ch.supported_groups else None,
        "ec_point_formats": ",".join(map(dec, ch.ec_point_formats)) if ch.ec_point_formats else None,
        "signature_algorithms": _hexlist(ch.signature_algorithms) if ch.signature_algorithms else None,
        "key_share_groups": ",".join(map(group_name, ch.key_share_groups)) if ch.key_share_groups else None,
        "psk_offered": ch.psk,
        "session_ticket_offered": ch.session_ticket,
        "early_data_offered": ch.early_data,
        "ech_offered": ch.ech,
        "renegotiation_info": ch.renegotiation_info,
        "grease": ch.grease,
        "sslv2_client_hello": ch.sslv2,
        "ja3": None,
        "ja3_full": None,
        "ja4": None,
        "ja4_r": None,
    }
    if not ch.sslv2:
        cols["ja3"], cols["ja3_full"] = ja3(ch)
        cols["ja4"], cols["ja4_r"] = ja4(ch, "t")
    if len(_CLIENT_MEMO) >= _MEMO_LIMIT:
        _CLIENT_MEMO.clear()
    _CLIENT_MEMO[key] = cols
    return cols


# Flows mode: the client columns by hello shape (`client_hello_shape`), for hellos that parsed
# without a problem. Bounded: long shapes are not kept and a full memo is emptied (at most
# 2048 x 2 KiB).
_SHAPE_MEMO: dict[bytes, dict[str, object]] = {}


def _remember_shape(shape: bytes, columns: dict[str, object]) -> None:
    if len(shape) <= 2048:
        if len(_SHAPE_MEMO) >= 2048:
            _SHAPE_MEMO.clear()
        _SHAPE_MEMO[shape] = columns


def _server_columns(sh: ServerHello, with_ja4s: bool) -> tuple[dict[str, object], int, str, str | None]:
    """(derived columns, negotiated version, cipher name, key_share group name) of a ServerHello."""
    key = (
        sh.legacy_version,
        sh.selected_version,
        sh.cipher_suite,
        sh.alpn_raw,
        sh.key_share_group,
        with_ja4s,
        *map(_FIRST, sh.extensions),
    )
    found = _SERVER_MEMO.get(key)
    if found is not None:
        return found
    types = [t for t, _ in sh.extensions]
    cols: dict[str, object] = {"server_extensions": ",".join(map(dec, types)), "ja4s": None, "ja4s_r": None}
    cols["ja3s"], cols["ja3s_full"] = ja3s(sh)
    if with_ja4s:
        cols["ja4s"], cols["ja4s_r"] = ja4s(sh, "t")
    group = group_name(sh.key_share_group) if sh.key_share_group is not None else None
    found = (cols, sh.version, _compat.cipher_name(sh.cipher_suite), group)
    if len(_SERVER_MEMO) >= _MEMO_LIMIT:
        _SERVER_MEMO.clear()
    _SERVER_MEMO[key] = found
    return found


def _sniff_kx(body: bytes) -> str:
    """Guess the ServerKeyExchange layout when the cipher table cannot say: ECDHE named_curve
    parameters start 0x03, group, point length; DHE starts with the 2-byte prime length."""
    if len(body) >= 4 and body[0] == 3 and 4 + body[3] <= len(body):
        (plen,) = _U16.unpack_from(body, 0)
        if not (2 + plen <= len(body) and plen >= 768):
            return "ECDHE"
    return "DHE"


Event = tuple[str, int, "tuple[int, int] | None"]


def _merged(
    client: _Side, server: _Side, cs: StreamPrefix | None, sc: StreamPrefix | None
) -> tuple[list[Event], str]:
    """Both directions' events in one order, and the history (the first 100 letters in that
    order): capture time decides when both directions carry segment timestamps; handshake
    flights decide otherwise and break ties."""
    ce, se = client.events, server.events
    if not se:
        return ce, _history_of(ce)
    if not ce:
        return se, _history_of(se)
    chunks, history = _flight_plan("".join(map(_FIRST, ce)), "".join(map(_FIRST, se)))
    out: list[Event] = []
    for c0, c1, s0, s1 in chunks:
        out += ce[c0:c1]
        out += se[s0:s1]
    if cs is not None and sc is not None and cs.times and sc.times:
        keyed = []
        for rank, ev in enumerate(out):
            ts = _time_at(cs if ev[0].isupper() else sc, ev[1])
            keyed.append((ts if ts is not None else 0.0, rank))
        keyed.sort()
        out = [out[rank] for _ts, rank in keyed]
        history = _history_of(out)
    return out, history


# Flight plans depend only on the two directions' letters, which repeat from session to session:
# memoised (bounded: long letter strings are not kept, a full memo is emptied).
_PLAN_MEMO: dict[tuple[str, str], tuple[tuple[tuple[int, int, int, int], ...], str]] = {}


def _flight_plan(client_letters: str, server_letters: str) -> tuple[tuple[tuple[int, int, int, int], ...], str]:
    """The flight-by-flight interleaving of the two directions, as (client start, client end,
    server start, server end) index ranges, and the history letters it gives."""
    key = (client_letters, server_letters)
    found = _PLAN_MEMO.get(key)
    if found is not None:
        return found
    cf = _flights(client_letters, True)
    sf = _flights(server_letters, False)
    chunks = []
    cpos = spos = 0
    for i in range(max(len(cf), len(sf))):
        cn = cf[i] if i < len(cf) else 0
        sn = sf[i] if i < len(sf) else 0
        chunks.append((cpos, cpos + cn, spos, spos + sn))
        cpos += cn
        spos += sn
    history = "".join([client_letters[c0:c1] + server_letters[s0:s1] for c0, c1, s0, s1 in chunks])[:100]
    found = (tuple(chunks), history)
    if len(client_letters) + len(server_letters) <= 256:
        if len(_PLAN_MEMO) >= 4096:
            _PLAN_MEMO.clear()
        _PLAN_MEMO[key] = found
    return found


def _flights(letters: str, is_client: bool) -> list[int]:
    """Sizes of one direction's flights (`letters`: its events' history letters): runs of
    messages ending where that side waits for its peer (client: after a ClientHello, an alert,
    or its ChangeCipherSpec unless a second ClientHello follows; server: after ServerHelloDone,
    ChangeCipherSpec, an alert, or a HelloRetryRequest / ServerHello that nothing of the same
    flight follows)."""
    sizes: list[int] = []
    cur = 0
    n = len(letters)
    for i in range(n):
        letter = letters[i]
        cur += 1
        nxt = letters[i + 1] if i + 1 < n else ""
        if is_client:
            end = letter in _CLIENT_FLIGHT_END or (letter == "I" and nxt != "C")
        else:
            end = letter in _SERVER_FLIGHT_END or (letter in "js" and nxt not in _SERVER_FLIGHT_GOES_ON)
        if end:
            sizes.append(cur)
            cur = 0
    if cur:
        sizes.append(cur)
    return sizes


_CLIENT_FLIGHT_END = frozenset("CL")
_SERVER_FLIGHT_END = frozenset("nil")
_SERVER_FLIGHT_GOES_ON = frozenset("ixkrnut")


def _history_of(merged: list[Event]) -> str:
    return "".join([ev[0] for ev in merged[:100]])


def _first_alert(merged: list[Event]) -> tuple[int, int, str] | None:
    """(level, description, who) of the first fatal plaintext alert in history order, else of the
    first alert."""
    first: tuple[int, int, str] | None = None
    for letter, _off, alert in merged:
        if alert is None:
            continue
        found = (alert[0], alert[1], "client" if letter == "L" else "server")
        if alert[0] == 2:
            return found
        if first is None:
            first = found
    return first


def _first_event(side: _Side, letter: str) -> int | None:
    for ev in side.events:
        if ev[0] == letter:
            return ev[1]
    return None


def _time_at(prefix: StreamPrefix, offset: int | None) -> float | None:
    if offset is None or not prefix.times:
        return None
    times = prefix.times
    i = bisect_right(times, (offset, float("inf"))) - 1
    return times[i][1] if i >= 0 else times[0][1]


def _last_message(merged: list[Event]) -> str:
    if not merged:
        return "nothing"
    last = merged[-1][0]
    who = "client" if last.isupper() else "server"
    return f"{who} {_HS_NAMES.get(last.lower(), last)}"
