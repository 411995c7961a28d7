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

import struct
from bisect import bisect_right
from typing import Any

from analyzer.dissect.base import Facts, FlowPayload, StreamPrefix
from analyzer.dissect.tls import _compat
from analyzer.dissect.tls.constants import (
    alert_description_name,
    alert_level_name,
    group_name,
    is_tls13,
    version_name,
)
from analyzer.dissect.tls.fingerprints import ja3, ja3s, ja4, ja4s, ja4x
from analyzer.dissect.tls.handshake import (
    ClientHello,
    KeyExchangeInfo,
    ServerHello,
    parse_certificate_list,
    parse_client_hello,
    parse_server_hello,
    parse_server_key_exchange,
    parse_sslv2_client_hello,
)
from analyzer.errors import ParseError

__all__ = ["TLS_PORTS", "TLSDissector", "looks_like_tls"]

TLS_PORTS: frozenset[int] = frozenset(
    {443, 465, 563, 585, 614, 636, 853, 989, 990, 992, 993, 994, 995, 1443, 2083, 2087, 2096,
     3269, 4433, 4443, 5061, 5223, 5986, 6443, 6514, 6679, 6697, 8443, 8883, 9443, 10443}
)  # fmt: skip

_REC = struct.Struct(">BHH")
_U16 = struct.Struct(">H")
MAX_RECORD = 16384 + 2048  # TLSCiphertext.length limit (RFC 5246 section 6.2.3)
MAX_HANDSHAKE_MESSAGE = 1 << 18  # larger than any real certificate chain or PQ ClientHello
MAX_RECORDS = 1024  # per direction
ENCRYPTED_TAIL = 6  # record headers still walked after a direction turned encrypted

# Handshake type -> Zeek ssl_history letter (lowercase; uppercased for the client).
_HS_LETTERS = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k", 13: "r",
    14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p", 254: "m",
}  # fmt: skip

_HS_NAMES = {
    "h": "hello_request", "c": "client_hello", "s": "server_hello", "v": "hello_verify_request",
    "t": "new_session_ticket", "j": "hello_retry_request", "x": "certificate",
    "k": "server_key_exchange", "r": "certificate_request", "n": "server_hello_done",
    "y": "certificate_verify", "g": "client_key_exchange", "u": "certificate_status",
    "i": "change_cipher_spec", "l": "alert", "b": "heartbeat", "z": "handshake message",
    "q": "unknown record", "o": "encrypted_extensions", "f": "finished", "e": "end_of_early_data",
}  # fmt: skip

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
    """Do these first bytes of a direction start like TLS / SSL?"""
    if len(data) < 5:
        # A partial header: the first three bytes are enough to be suggestive.
        return len(data) >= 3 and 20 <= data[0] <= 24 and data[1] == 3 and data[2] <= 4
    if _valid_header(data, 0):
        return True
    return _sslv2_hello(data) or _sslv2_server_hello(data)


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
        "hs_pending",
        "hs_pending_at",
        "is_client",
        "record_version",
        "records",
        "server_hellos",
        "ske",
        "ssl2_cipher",
        "ssl2_error",
        "ssl2_server_hello",
        "start",
        "stop",
    )

    def __init__(self, is_client: bool) -> None:
        self.is_client = is_client
        self.events: list[tuple[str, int]] = []  # (history letter, stream offset of completion)
        self.stop = "end"
        self.records = 0
        self.encrypted = False
        self.app_lengths: list[int] = []  # lengths of encrypted records (first few)
        self.encrypted_alerts = 0
        self.record_version: int | None = None
        self.alerts: list[tuple[int, int, int]] = []  # (level, description, offset)
        self.client_hellos: list[ClientHello] = []
        self.server_hellos: list[ServerHello] = []
        self.certs: list[bytes] = []
        self.ske: KeyExchangeInfo | None = None
        self.cke = False
        self.ccs = False
        self.hs_pending = b""
        self.hs_pending_at = 0
        self.ssl2_server_hello = False
        self.ssl2_cipher: int | None = None
        self.ssl2_error: int | None = None
        self.start = 0


class TLSDissector:
    """TLS / SSL over TCP, found by content on any port.

    Options: `ja4x` (default False) also computes FoxIO JA4X per certificate (FoxIO License 1.1,
    see `analyzer.dissect.tls.fingerprints`); `ja4s` (default True) computes JA4S; `certificates`
    (default True) hands certificate DER to `analyzer.dissect.x509`. `strict` re-raises internal
    errors instead of recording them as `tls_internal_error` anomalies (for tests).
    """

    name = "tls"
    transports: frozenset[str] = frozenset({"tcp"})
    ports: frozenset[int] = TLS_PORTS

    def __init__(
        self,
        *,
        ja4x: bool = False,
        ja4s: bool = True,
        certificates: bool = True,
        strict: bool = False,
    ) -> None:
        self.ja4x = ja4x
        self.ja4s = ja4s
        self.certificates = certificates
        self.strict = strict
        self._cache: _compat.CertCache | None = None

    def __repr__(self) -> str:
        return f"TLSDissector(ja4x={self.ja4x}, ja4s={self.ja4s}, certificates={self.certificates})"

    @property
    def cert_cache(self) -> _compat.CertCache:
        if self._cache is None:
            self._cache = _compat.new_certificate_cache()
        return self._cache

    # --- the Dissector protocol -------------------------------------------------------------

    def probe(self, flow: FlowPayload) -> bool:
        """A TLS record header or SSLv2 hello at the start of either direction."""
        for prefix in (flow.to_server, flow.to_client):
            data = prefix.data
            if data and (
                looks_like_tls(data) or (not prefix.start_known and _resync(data, 8192) is not None)
            ):
                return True
        return False

    def dissect(self, flow: FlowPayload) -> Facts:
        return self.dissect_from(flow, 0, 0)

    def dissect_from(self, flow: FlowPayload, to_server_offset: int = 0, to_client_offset: int = 0) -> Facts:
        """Dissect TLS that starts at the given stream offsets (STARTTLS callers pass the offset
        of the first TLS byte of each direction). Never raises for wire data."""
        facts = Facts()
        try:
            self._dissect(flow, to_server_offset, to_client_offset, facts)
        except Exception as exc:  # a bug, not wire data: keep the run going, say so
            if self.strict:
                raise
            facts.anomaly("tls_internal_error", f"{type(exc).__name__}: {exc}")
        return facts

    # --- reading one direction ----------------------------------------------------------------

    def _walk(self, side: _Side, prefix: StreamPrefix, start: int, server_tls13: bool | None,
              cipher_kx: str | None, facts: Facts) -> None:
        data = prefix.data
        who = "client" if side.is_client else "server"
        pos = start
        if not prefix.start_known and start == 0 and not looks_like_tls(data):
            found = _resync(data)
            if found is None:
                side.stop = "no_record_boundary"
                return
            pos = found
        side.start = pos
        end = len(data)
        tail = 0
        unpack = _REC.unpack_from
        # SSL 2.0 records (client hello of old clients; the whole SSLv2 handshake).
        if pos + 2 <= end and data[pos] & 0x80:
            pos = self._walk_sslv2(side, data, pos, facts)
            if side.stop != "end" or pos >= end:
                return
        while pos < end:
            if pos + 5 > end:
                side.stop = self._cut_reason(prefix)
                return
            ctype, ver, length = unpack(data, pos)
            if not (20 <= ctype <= 26 and ver >> 8 == 3):
                if side.records == 0:
                    side.stop = "not_tls"
                else:
                    side.stop = "error"
                    facts.anomaly(
                        "tls_bad_record_header",
                        f"{who}: content type {ctype} version 0x{ver:04x} after {side.records} records",
                        pos,
                    )
                side.events.append(("q", pos))
                return
            if length > MAX_RECORD:
                side.stop = "error"
                facts.anomaly("tls_record_overflow", f"{who}: record length {length} > {MAX_RECORD}", pos)
                return
            body_at = pos + 5
            rec_end = body_at + length
            if rec_end > end:
                side.stop = self._cut_reason(prefix)
                return
            side.records += 1
            if side.record_version is None:
                side.record_version = ver
            if side.records > MAX_RECORDS:
                side.stop = "record_limit"
                return
            if side.encrypted:
                if ctype == 23:
                    if len(side.app_lengths) < 8:
                        side.app_lengths.append(length)
                elif ctype == 21:
                    side.encrypted_alerts += 1
                elif ctype == 20:
                    side.events.append(("i", rec_end - 1))
                elif ctype == 24:
                    side.events.append(("b", rec_end - 1))
                tail += 1
                pos = rec_end
                if tail >= ENCRYPTED_TAIL:
                    side.stop = "encrypted"
                    return
                continue
            if ctype == 22:
                if side.hs_pending:
                    buf = side.hs_pending + data[body_at:rec_end]
                    buf_at = side.hs_pending_at
                else:
                    buf = data[body_at:rec_end]
                    buf_at = body_at
                if not self._handshake(side, buf, buf_at, rec_end - 1, cipher_kx, facts, who):
                    return
                if side.hs_pending and len(side.hs_pending) > MAX_HANDSHAKE_MESSAGE:
                    side.stop = "error"
                    facts.anomaly("tls_handshake_too_large", f"{who}: handshake message over limit", pos)
                    return
                if (not side.is_client) and side.server_hellos:
                    sh = side.server_hellos[-1]
                    if not sh.is_hello_retry_request and is_tls13(sh.version):
                        side.encrypted = True  # everything after a TLS 1.3 ServerHello
            elif ctype == 20:
                side.events.append(("i", rec_end - 1))
                side.ccs = True
                if not (side.is_client and server_tls13):
                    side.encrypted = True
            elif ctype == 21:
                if length == 2:
                    level, desc = data[body_at], data[body_at + 1]
                    side.alerts.append((level, desc, pos))
                    side.events.append(("l", rec_end - 1))
                else:
                    side.encrypted_alerts += 1
            elif ctype == 23:
                if len(side.app_lengths) < 8:
                    side.app_lengths.append(length)
                side.encrypted = True
            elif ctype == 24:
                side.events.append(("b", rec_end - 1))
            pos = rec_end
        side.stop = self._cut_reason(prefix) if prefix.gap_at is not None or prefix.budget_hit else "end"

    @staticmethod
    def _cut_reason(prefix: StreamPrefix) -> str:
        if prefix.gap_at is not None:
            return "gap"
        if prefix.budget_hit:
            return "budget"
        return "truncated"

    def _handshake(self, side: _Side, buf: bytes, buf_at: int, done_at: int, cipher_kx: str | None,
                   facts: Facts, who: str) -> bool:
        """Consume complete handshake messages of `buf`; keep a partial tail. False: stop walking."""
        n = len(buf)
        p = 0
        while p + 4 <= n:
            mtype = buf[p]
            mlen = (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]
            if mlen > MAX_HANDSHAKE_MESSAGE:
                side.stop = "error"
                facts.anomaly("tls_handshake_too_large", f"{who}: handshake type {mtype} length {mlen}",
                              buf_at + p)
                side.hs_pending = b""
                return False
            if p + 4 + mlen > n:
                break
            body = buf[p + 4 : p + 4 + mlen]
            self._message(side, mtype, body, buf_at + p, done_at, cipher_kx, facts, who)
            p += 4 + mlen
        if p < n:
            side.hs_pending = buf[p:]
            side.hs_pending_at = buf_at + p
        else:
            side.hs_pending = b""
        return True

    def _message(self, side: _Side, mtype: int, body: bytes, at: int, done_at: int, cipher_kx: str | None,
                 facts: Facts, who: str) -> None:
        letter = _HS_LETTERS.get(mtype, "z")
        try:
            if mtype == 1 and side.is_client:
                ch = parse_client_hello(body)
                side.client_hellos.append(ch)
                for err in ch.errors:
                    facts.anomaly("tls_extension_malformed", f"client hello {err}", at)
            elif mtype == 2 and not side.is_client:
                sh = parse_server_hello(body)
                side.server_hellos.append(sh)
                if sh.is_hello_retry_request:
                    letter = "j"
                for err in sh.errors:
                    facts.anomaly("tls_extension_malformed", f"server hello {err}", at)
            elif mtype == 11:
                if len(side.certs) < 32:
                    side.certs.extend(parse_certificate_list(body)[: 32 - len(side.certs)])
            elif mtype == 12 and not side.is_client:
                kx = cipher_kx
                if kx is None and side.server_hellos:
                    kx = _compat.cipher_lookup(side.server_hellos[-1].cipher_suite).kx
                side.ske = parse_server_key_exchange(body, kx or _sniff_kx(body))
            elif mtype == 16 and side.is_client:
                side.cke = True
        except ParseError as exc:
            off = at + 4 + exc.offset if exc.offset is not None else at
            facts.anomaly("tls_handshake_malformed", f"{who} {_HS_NAMES.get(letter, letter)}: {exc}", off)
        side.events.append((letter, done_at))

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
                    side.events.append(("c", body_at + length - 1))
                elif mtype == 4 and not side.is_client:
                    side.ssl2_server_hello = True
                    side.events.append(("s", body_at + length - 1))
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
                    side.events.append(("l", body_at + length - 1))
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
        server = _Side(False)
        client = _Side(True)
        if flow.to_client.data:
            self._walk(server, flow.to_client, sc_off, None, None, facts)
        final_sh: ServerHello | None = None
        hrr: ServerHello | None = None
        for sh in server.server_hellos:
            if sh.is_hello_retry_request:
                hrr = hrr or sh
            else:
                final_sh = final_sh or sh
        tls13 = final_sh is not None and is_tls13(final_sh.version)
        if flow.to_server.data:
            self._walk(client, flow.to_server, cs_off, tls13 if final_sh is not None else None, None, facts)
        if not (client.records or server.records):
            return
        if client.stop == "not_tls" and server.stop in ("not_tls", "end") and not server.records:
            return
        self._session(flow, client, server, final_sh, hrr, tls13, facts)

    def _session(self, flow: FlowPayload, client: _Side, server: _Side, sh: ServerHello | None,
                 hrr: ServerHello | None, tls13: bool, facts: Facts) -> None:
        ch = client.client_hellos[0] if client.client_hellos else None
        sslv2 = server.ssl2_server_hello or (ch is not None and ch.sslv2 and sh is None)
        uid = flow.uid

        # Negotiated parameters.
        version: int | None = None
        cipher_code: int | None = None
        if sh is not None:
            version = sh.version
            cipher_code = sh.cipher_suite
        elif server.ssl2_server_hello:
            version = 0x0002
            cipher_code = client.ssl2_cipher
        cipher = _compat.cipher_lookup(cipher_code) if cipher_code is not None else None

        # Established, failure.
        fatal = next(((lvl, d, "server") for lvl, d, _o in server.alerts if lvl == 2), None)
        cfatal = next(((lvl, d, "client") for lvl, d, _o in client.alerts if lvl == 2), None)
        first_alert = _first_alert(client, server)
        established = False
        probable_alert = False
        if server.ssl2_server_hello:
            established = client.cke and server.ssl2_error is None and client.ssl2_error is None
        elif sh is not None:
            if tls13:
                n_app = len(client.app_lengths)
                if n_app == 1 and client.app_lengths[0] == 19 and client.stop != "budget":
                    probable_alert = True  # a lone 19-byte record: an encrypted 2-byte alert
                established = n_app > 0 and not probable_alert
            else:
                established = client.ccs and server.ccs
        elif ch is None and client.app_lengths and server.app_lengths:
            established = True  # picked up mid-stream: application data flows both ways
        failure: str | None = None
        alert_fatal = fatal or cfatal
        if alert_fatal is not None and not established:
            established = False
            failure = f"{alert_fatal[2]} alert: {alert_description_name(alert_fatal[1])}"
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
                last = _last_message(client, server)
                failure = f"reset before handshake completed (last: {last})"
            elif first_alert is not None:
                failure = f"{first_alert[2]} alert: {alert_description_name(first_alert[1])}"
        encrypted = established or (
            failure is None and (sh is not None or server.ssl2_server_hello)
        )

        # Resumption.
        resumed = False
        if sh is not None and ch is not None:
            if tls13:
                resumed = sh.psk_selected
            elif sh.session_id and sh.session_id == ch.session_id and any(ch.session_id):
                resumed = True
            elif ch.session_ticket_data and not client.cke and client.ccs:
                resumed = True
        elif server.ssl2_server_hello and ch is not None:
            resumed = False

        # Fingerprints.
        ja3_h = ja3_f = ja4_v = ja4_r = ""
        if ch is not None and not ch.sslv2:
            ja3_h, ja3_f = ja3(ch)
            ja4_v, ja4_r = ja4(ch, "t")
        ja3s_h = ja3s_f = ja4s_v = ja4s_r = ""
        if sh is not None:
            ja3s_h, ja3s_f = ja3s(sh)
            if self.ja4s:
                ja4s_v, ja4s_r = ja4s(sh, "t")

        # Certificates.
        chain: list[str] = []
        client_chain: list[str] = []
        leaf_row: dict[str, Any] | None = None
        ja4x_list: list[str] = []
        if self.certificates and (server.certs or client.certs):
            cache = self.cert_cache
            seen: set[str] = set()
            for sent_by, certs, out in (("server", server.certs, chain), ("client", client.certs, client_chain)):
                for position, der in enumerate(certs):
                    row = cache.parse(der)
                    sha = str(row["sha256"])
                    out.append(sha)
                    if sent_by == "server" and position == 0:
                        leaf_row = row
                    facts.add_row("cert_links", {"uid": uid, "sha256": sha, "position": position,
                                                 "sent_by": sent_by})
                    if sha not in seen:
                        seen.add(sha)
                        crow = dict(row)
                        crow.setdefault("first_seen_uid", uid)
                        crow.setdefault("sessions", 1)
                        facts.add_row("certs", crow)
                    if self.ja4x and sent_by == "server":
                        try:
                            ja4x_list.append(ja4x(der))
                        except ParseError as exc:
                            ja4x_list.append("")
                            facts.anomaly("tls_certificate_der", f"ja4x: {exc}", None)
        server_name = ch.server_name if ch is not None else None
        sni_match: bool | None = None
        if chain and server_name:
            sni_match = self.cert_cache.sni_matches(chain[0], server_name)

        history = _history(client, server, flow)
        ch_ts = _time_at(flow.to_server, _first_event(client, "C")) if ch is not None else None
        alert = first_alert
        selected_group: str | None = None
        dh_bits: int | None = None
        if sh is not None and sh.key_share_group is not None:
            selected_group = group_name(sh.key_share_group)
        elif server.ske is not None:
            if server.ske.named_group is not None:
                selected_group = group_name(server.ske.named_group)
            dh_bits = server.ske.dh_bits
        if hrr is not None and selected_group is None and hrr.key_share_group is not None:
            selected_group = group_name(hrr.key_share_group)

        version_s = version_name(version)
        client_max = version_name(ch.max_version) if ch is not None else None
        alpn = sh.alpn if sh is not None else None
        cert_visible = bool(server.certs)
        tls_row: dict[str, object] = {
            "uid": uid,
            "protocol": "tls",
            "ts": ch_ts if ch_ts is not None else flow.ts_start,
            "client_ip": flow.client_ip,
            "client_port": flow.client_port,
            "server_ip": flow.server_ip,
            "server_port": flow.server_port,
            "version": version_s,
            "client_max_version": client_max,
            "record_version": version_name(client.record_version if client.record_version is not None
                                           else server.record_version),
            "client_legacy_version": version_name(ch.legacy_version) if ch is not None else None,
            "client_supported_versions": (",".join([version_name(v) or "" for v in ch.supported_versions])
                                          if ch is not None and ch.supported_versions else None),
            "cipher": cipher.name if cipher is not None else None,
            "cipher_code": cipher_code,
            "client_ciphers": (",".join([("%06x" if c > 0xFFFF else "%04x") % c for c in ch.cipher_suites])
                               if ch is not None else None),
            "client_cipher_count": len(ch.cipher_suites) if ch is not None else None,
            "compression_methods": (",".join(map(str, ch.compression_methods)) if ch is not None else None),
            "client_extensions": (",".join([str(t) for t, _ in ch.extensions]) if ch is not None else None),
            "server_extensions": (",".join([str(t) for t, _ in sh.extensions]) if sh is not None else None),
            "server_name": server_name,
            "alpn_offered": ",".join(ch.alpn) if ch is not None and ch.alpn else None,
            "alpn": alpn,
            "supported_groups": (",".join([group_name(g) for g in ch.supported_groups])
                                 if ch is not None and ch.supported_groups else None),
            "ec_point_formats": (",".join(map(str, ch.ec_point_formats))
                                 if ch is not None and ch.ec_point_formats else None),
            "signature_algorithms": (",".join(["%04x" % s for s in ch.signature_algorithms])
                                     if ch is not None and ch.signature_algorithms else None),
            "key_share_groups": (",".join([group_name(g) for g in ch.key_share_groups])
                                 if ch is not None and ch.key_share_groups else None),
            "selected_group": selected_group,
            "psk_offered": ch.psk if ch is not None else None,
            "session_ticket_offered": ch.session_ticket if ch is not None else None,
            "early_data_offered": ch.early_data if ch is not None else None,
            "ech_offered": ch.ech if ch is not None else None,
            "renegotiation_info": ch.renegotiation_info if ch is not None else None,
            "extended_master_secret": (ch.extended_master_secret and (sh is None or sh.extended_master_secret)
                                       if ch is not None else None),
            "grease": ch.grease if ch is not None else None,
            "sslv2_client_hello": ch.sslv2 if ch is not None else None,
            "hello_retry_request": hrr is not None,
            "resumed": resumed,
            "session_id_len": len(ch.session_id) if ch is not None else None,
            "dh_bits": dh_bits,
            "established": established,
            "history": history,
            "alert_level": alert_level_name(alert[0]) if alert is not None else None,
            "alert_description": alert_description_name(alert[1]) if alert is not None else None,
            "alert_by": alert[2] if alert is not None else None,
            "failure_reason": failure,
            "cert_visible": cert_visible,
            "cert_chain": ",".join(chain) if chain else None,
            "cert_sha256": chain[0] if chain else None,
            "sni_matches_cert": sni_match,
            "client_cert_chain": ",".join(client_chain) if client_chain else None,
            "ja3": ja3_h or None,
            "ja3_full": ja3_f or None,
            "ja3s": ja3s_h or None,
            "ja3s_full": ja3s_f or None,
            "ja4": ja4_v or None,
            "ja4_r": ja4_r or None,
            "ja4s": ja4s_v or None,
            "ja4s_r": ja4s_r or None,
            "ja4x": ",".join(ja4x_list) if ja4x_list else None,
            "client_hello_count": len(client.client_hellos),
            "server_hello_count": len(server.server_hellos) + (1 if server.ssl2_server_hello else 0),
            "client_stop": client.stop if client.records or flow.to_server.data else None,
            "server_stop": server.stop if server.records or flow.to_client.data else None,
            "sslv2": sslv2,
        }
        facts.add_row("tls", tls_row)
        leaf = leaf_row or {}
        facts.flow.update(
            {
                "app_protocol": "tls",
                "encrypted": encrypted,
                "tls_version": version_s,
                "tls_client_max_version": client_max,
                "tls_cipher": cipher.name if cipher is not None else None,
                "tls_server_name": server_name,
                "tls_alpn": alpn,
                "ja3": ja3_h or None,
                "ja3s": ja3s_h or None,
                "ja4": ja4_v or None,
                "ja4s": ja4s_v or None,
                "tls_established": established,
                "cert_sha256": chain[0] if chain else None,
                "cert_not_after": leaf.get("not_after"),
                "cert_key_bits": leaf.get("key_bits"),
                "cert_self_signed": leaf.get("self_signed"),
            }
        )


def _sniff_kx(body: bytes) -> str:
    """Guess the ServerKeyExchange layout when the cipher table cannot say: ECDHE named_curve
    parameters start 0x03, group, point length; DHE starts with the 2-byte prime length."""
    if len(body) >= 4 and body[0] == 3 and 4 + body[3] <= len(body):
        (plen,) = _U16.unpack_from(body, 0)
        if not (2 + plen <= len(body) and plen >= 768):
            return "ECDHE"
    return "DHE"


def _first_alert(client: _Side, server: _Side) -> tuple[int, int, str] | None:
    """The first plaintext alert in history order (server first on a tie)."""
    best: tuple[int, int, str] | None = None
    best_at = None
    for side, who in ((server, "server"), (client, "client")):
        if side.alerts:
            lvl, desc, _off = side.alerts[0]
            at = next((o for letter, o in side.events if letter == "l"), 0)
            if best is None or (lvl == 2 and best[0] != 2) or (lvl == best[0] and best_at is not None
                                                                and at < best_at and who == "server"):
                best = (lvl, desc, who)
                best_at = at
    return best


def _first_event(side: _Side, letter: str) -> int | None:
    for ev, off in side.events:
        if ev.upper() == letter:
            return off
    return None


def _time_at(prefix: StreamPrefix, offset: int | None) -> float | None:
    if offset is None or not prefix.times:
        return None
    times = prefix.times
    i = bisect_right(times, (offset, float("inf"))) - 1
    return times[i][1] if i >= 0 else times[0][1]


def _flights(letters: list[str], is_client: bool) -> list[list[str]]:
    """Split one direction's letters where that side would wait for its peer."""
    flights: list[list[str]] = []
    cur: list[str] = []
    n = len(letters)
    for i, letter in enumerate(letters):
        cur.append(letter)
        nxt = letters[i + 1] if i + 1 < n else ""
        if is_client:
            end = letter in "CL" or (letter == "I" and nxt != "C")
        else:
            end = letter in "nil" or (letter in "js" and nxt != "i" and nxt not in "xkrnut")
        if end:
            flights.append(cur)
            cur = []
    if cur:
        flights.append(cur)
    return flights


def _history(client: _Side, server: _Side, flow: FlowPayload) -> str:
    c_letters = [ev.upper() for ev, _ in client.events]
    s_letters = [ev for ev, _ in server.events]
    cf = _flights(c_letters, True)
    sf = _flights(s_letters, False)
    rank = 0
    ci = si = 0
    c_ev = iter(client.events)
    s_ev = iter(server.events)
    ranked: list[tuple[float, int, str]] = []
    use_times = bool(flow.to_server.times) and bool(flow.to_client.times)
    turn_client = bool(cf)
    while ci < len(cf) or si < len(sf):
        if turn_client and ci < len(cf):
            for letter in cf[ci]:
                _l, off = next(c_ev)
                ts = _time_at(flow.to_server, off) if use_times else None
                ranked.append((ts if ts is not None else 0.0, rank, letter))
                rank += 1
            ci += 1
        elif not turn_client and si < len(sf):
            for letter in sf[si]:
                _l, off = next(s_ev)
                ts = _time_at(flow.to_client, off) if use_times else None
                ranked.append((ts if ts is not None else 0.0, rank, letter))
                rank += 1
            si += 1
        turn_client = not turn_client
    if use_times:
        ranked.sort()
    return "".join([letter for _ts, _r, letter in ranked])[:100]


def _last_message(client: _Side, server: _Side) -> str:
    hist = _history(client, server, FlowPayload(uid="", transport="tcp", client_ip="", server_ip="",
                                                client_port=0, server_port=0, ts_start=0.0))
    if not hist:
        return "nothing"
    last = hist[-1]
    who = "client" if last.isupper() else "server"
    return f"{who} {_HS_NAMES.get(last.lower(), last)}"

