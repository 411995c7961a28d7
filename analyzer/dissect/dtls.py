"""The DTLS dissector (DTLS 1.0 RFC 4347, 1.2 RFC 6347, 1.3 RFC 9147; CIDs RFC 9146).

UDP datagrams of one flow -> DTLS facts: the flow columns, one `tls` row (protocol "dtls"),
`certs` / `cert_links` rows for certificates sent in the clear (DTLS <= 1.2), `anomalies`.

How a flow is read
------------------
- Only datagrams whose first byte is 20..63 are DTLS (RFC 7983 demultiplexing: STUN, ZRTP,
  TURN channels and RTP/RTCP share the 5-tuple in WebRTC); the others are skipped.
- Each datagram holds one or more records: the 13-byte DTLSPlaintext header (type, version,
  epoch, 48-bit sequence, length), the RFC 9146 `tls12_cid` header (type 25, with the connection
  ID whose length the hellos negotiated), or the DTLS 1.3 unified header (first bits 001, RFC 9147
  section 4: optional CID, 8/16-bit sequence, optional length, low epoch bits; always encrypted).
- Epoch-0 handshake records carry 12-byte handshake headers (type, length, message_seq,
  fragment_offset, fragment_length). Fragments are reassembled per (direction, message_seq),
  across records and datagrams, out of order, with duplicates and retransmissions; each message
  is parsed once. Messages are bounded (64 KiB each, 32 per direction, 256 KiB per direction).
- ClientHello, ServerHello (HelloRetryRequest), HelloVerifyRequest, Certificate (both sides),
  ServerKeyExchange, plaintext alerts and ChangeCipherSpec are read with the shared TLS parsers.

Facts (see QUIC_DTLS_NOTES.md):
- The ClientHello described is the one after a HelloVerifyRequest when there is one (the first is
  a cookie probe); else the first (a HelloRetryRequest's second hello is not used, as in TLS).
- `established`: DTLS <= 1.2: both sides sent ChangeCipherSpec, or application data flowed in an
  epoch >= 1. DTLS 1.3: after the ServerHello, the client sent a record in an epoch other than 2
  (application traffic), or the server sent epoch-3 traffic after the client's epoch-2 flight
  (the ACK or NewSessionTicket that follows the client's Finished).
- `protection` "srtp" when the ServerHello accepted `use_srtp` (RFC 5764 DTLS-SRTP: the handshake
  keys the SRTP media on the same 5-tuple, which is encrypted); else "dtls". `app_protocol` stays
  "dtls" (the application, WebRTC or SIP, is not visible). `dtls_multiplexed` names what the
  skipped datagrams were (RFC 7983 ranges: stun, zrtp, turn_channel, rtp, rtcp), only when some were.
- `history` uses the TLS dissector's Zeek ssl_history letters (client uppercase). Like Zeek, a
  retransmitted copy of a whole message repeats its letter (three unanswered ClientHellos: "CCC").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzer.dissect import _dtls_probe as _light
from analyzer.dissect import register
from analyzer.dissect._dtls_probe import DTLS_PORTS, DTLS_VERSIONS, looks_like_dtls
from analyzer.dissect.base import DissectContext, Facts, FlowPayload
from analyzer.dissect.quic._frames import CryptoStream
from analyzer.dissect.tls import schema as tls_schema
from analyzer.dissect.tls.columns import (
    TLS_ROW,
    HelloColumns,
    alert_columns,
    flow_columns,
    hello_row,
    resumed,
    server_key_exchange,
    session_columns,
)
from analyzer.dissect.tls.constants import alert_description_name, version_name
from analyzer.dissect.tls.handshake import (
    ClientHello,
    HandshakeMemo,
    KeyExchangeInfo,
    ServerHello,
    parse_certificate_list,
    parse_client_hello,
    parse_server_hello,
)
from analyzer.dissect.tls.rows import Certificates
from analyzer.errors import NeedMoreData, ParseError

__all__ = [
    "DTLS_PORTS",
    "DTLSDissector",
    "HandshakeFragment",
    "Record",
    "dissect_dtls",
    "looks_like_dtls",
    "parse_handshake_fragment",
    "parse_records",
]


MAX_DATAGRAMS = 256
MAX_RECORDS = 1024
MAX_MESSAGE = 64 * 1024
MAX_MESSAGES = 32  # distinct message_seq values per direction
MAX_REASSEMBLY = 256 * 1024  # bytes admitted to reassembly per direction
MAX_HISTORY = 100

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APP, CT_HEARTBEAT, CT_CID, CT_ACK = 20, 21, 22, 23, 24, 25, 26
EXT_CONNECTION_ID = 54
EXT_CONNECTION_ID_OLD = 53
EXT_USE_SRTP = 14  # RFC 5764: DTLS-SRTP, the handshake keys the SRTP media of the same 5-tuple
_MUX = ((1, "stun"), (2, "zrtp"), (4, "turn_channel"), (8, "rtp"), (16, "rtcp"))

# Handshake type -> Zeek ssl_history letter (lowercase; uppercased for the client), as in TLS.
_LETTERS = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k", 13: "r",
    14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p", 254: "m",
}  # fmt: skip


@dataclass(slots=True)
class Record:
    """One DTLS record in a datagram."""

    content_type: int  # 20..26; 0 for a DTLS 1.3 unified-header (encrypted) record
    version: int | None  # None for unified-header records
    epoch: int  # full epoch, or the low 2 bits for unified-header records
    sequence: int | None
    fragment: bytes
    offset: int  # of the record header in the datagram
    unified: bool = False


def parse_records(
    data: bytes, cid_len: int | None = None, limit: int = 64
) -> tuple[list[Record], str | None]:
    """All records of one datagram: (records, error or None). Never raises.

    `cid_len` is the length of the connection ID the *receiver* of this datagram asked for (from
    the hellos' connection_id extensions); records that need it are skipped while it is unknown.
    """
    out: list[Record] = []
    pos = 0
    end = len(data)
    while pos < end and len(out) < limit:
        first = data[pos]
        if first & 0xE0 == 0x20:  # DTLS 1.3 unified header 001CSLEE
            p = pos + 1
            if first & 0x10:
                if cid_len is None:
                    return out, "unified header with a connection id of unknown length"
                p += cid_len
            p += 2 if first & 0x08 else 1
            if first & 0x04:
                if p + 2 > end:
                    return out, "unified header cut"
                length = int.from_bytes(data[p : p + 2], "big")
                p += 2
            else:
                length = end - p
            if p > end or p + length > end:
                return out, "unified-header record runs past the datagram"
            out.append(Record(0, None, first & 0x03, None, data[p : p + length], pos, True))
            pos = p + length
            continue
        if first < 20 or first > 26:
            return out, f"content type {first} is not DTLS"
        if pos + 13 > end:
            return out, "record header cut"
        version = int.from_bytes(data[pos + 1 : pos + 3], "big")
        if version not in DTLS_VERSIONS and version >> 8 != 0xFE:
            return out, f"record version 0x{version:04x} is not DTLS"
        epoch = int.from_bytes(data[pos + 3 : pos + 5], "big")
        seq = int.from_bytes(data[pos + 5 : pos + 11], "big")
        p = pos + 11
        if first == CT_CID:
            if cid_len is None:
                return out, "tls12_cid record with a connection id of unknown length"
            p += cid_len
            if p + 2 > end:
                return out, "record header cut"
        length = int.from_bytes(data[p : p + 2], "big")
        p += 2
        if p + length > end:
            return out, f"record length {length} runs past the datagram"
        out.append(Record(first, version, epoch, seq, data[p : p + length], pos))
        pos = p + length
    return out, None


@dataclass(slots=True)
class HandshakeFragment:
    msg_type: int
    length: int  # of the whole message
    message_seq: int
    fragment_offset: int
    body: bytes  # this fragment's bytes


def parse_handshake_fragment(data: bytes, pos: int = 0) -> tuple[HandshakeFragment, int]:
    """One 12-byte-header handshake fragment at `pos`: (fragment, position after it)."""
    if pos + 12 > len(data):
        raise NeedMoreData(pos + 12 - len(data))
    mtype = data[pos]
    length = int.from_bytes(data[pos + 1 : pos + 4], "big")
    mseq = int.from_bytes(data[pos + 4 : pos + 6], "big")
    foff = int.from_bytes(data[pos + 6 : pos + 9], "big")
    flen = int.from_bytes(data[pos + 9 : pos + 12], "big")
    if foff + flen > length:
        raise ParseError(f"handshake fragment {foff}+{flen} exceeds the message length {length}", pos)
    if pos + 12 + flen > len(data):
        raise ParseError(f"handshake fragment of {flen} bytes runs past its record", pos)
    return HandshakeFragment(mtype, length, mseq, foff, data[pos + 12 : pos + 12 + flen]), pos + 12 + flen


@dataclass(slots=True)
class _Message:
    msg_type: int
    length: int
    stream: CryptoStream
    done: bool = False
    letter: str = "z"  # its history letter, once parsed


@dataclass(slots=True)
class _Side:
    is_client: bool
    messages: dict[int, _Message] = field(default_factory=dict)
    admitted: int = 0
    hellos: list[ClientHello] = field(default_factory=list)
    server_hellos: list[ServerHello] = field(default_factory=list)
    hvr: bool = False
    certs: list[bytes] = field(default_factory=list)
    ske: bytes | None = None
    ccs: bool = False
    cke: bool = False  # a ClientKeyExchange was sent (the ticket-resumption rule)
    hello_count: int = 0  # ClientHello / ServerHello messages (retransmitted copies not counted)
    app_epochs: set[int] = field(default_factory=set)  # epochs with application data
    unified_epochs: set[int] = field(default_factory=set)  # low epoch bits of 1.3 records
    encrypted_alerts: int = 0
    record_version: int | None = None
    records: int = 0
    hello_after_hvr: int | None = None  # index in `hellos` of the first hello after the HVR
    first_ts: float | None = None


class _State:
    """What a DTLS dissector instance keeps between flows: its memos and certificate cache."""

    __slots__ = ("certs", "hellos", "memo", "session")

    def __init__(self, session: bool = False) -> None:
        self.hellos = HelloColumns("d")
        self.memo = HandshakeMemo()
        self.certs = Certificates()
        self.session = session  # fill the flow's session facts (tls_schema.SESSION_FACTS)


class _Session:
    def __init__(self, flow: FlowPayload, state: _State) -> None:
        self.flow = flow
        self.facts = Facts()
        self.state = state
        self.alerts: list[tuple[int, int, str]] = []  # plaintext alerts in arrival order (level, description, who)
        self.client = _Side(True)
        self.server = _Side(False)
        self.letters: list[str] = []
        self.skipped = 0  # datagrams that are not DTLS (RFC 7983)
        self.muxed = 0  # bit set of _MUX: what the skipped datagrams were
        self.ch_ts: float | None = None
        self._anomaly_kinds: dict[str, int] = {}
        self.records = 0
        self.server_after_client_finished = False

    def anomaly(self, kind: str, detail: str, offset: int | None = None) -> None:
        n = self._anomaly_kinds.get(kind, 0)
        self._anomaly_kinds[kind] = n + 1
        if n < 3:
            self.facts.anomaly(kind, detail, offset)

    def _cut_messages(self) -> bool:
        """Was a plaintext handshake message left with fragments missing (a datagram not captured
        or past the payload budget)? Said by an anomaly (issue 16 item 5: a hello or a certificate
        chain must not go missing silently); True also marks the flow truncated."""
        cut = False
        for side in (self.client, self.server):
            missing = [m for m in side.messages.values() if not m.done]
            if missing:
                cut = True
                who = "client" if side.is_client else "server"
                self.anomaly("dtls_handshake_cut", f"{who}: {len(missing)} handshake message(s) with fragments missing "
                             f"(first: type {missing[0].msg_type}, {missing[0].stream.received} of {missing[0].length} "
                             "bytes): the facts they carry are missing")
        return cut

    def letter(self, letter: str, side: _Side) -> None:
        if len(self.letters) < MAX_HISTORY:
            self.letters.append(letter.upper() if side.is_client else letter)

    # -- connection ids --------------------------------------------------------------------------
    @staticmethod
    def _cid(hellos: list[Any]) -> int | None:
        for h in hellos:
            for etype, body in h.extensions:
                if etype in (EXT_CONNECTION_ID, EXT_CONNECTION_ID_OLD) and body:
                    return body[0] if body[0] <= len(body) - 1 else None
        return None

    def cid_len_for(self, receiver: _Side) -> int | None:
        """Length of the CID carried in records sent *to* `receiver` (the one it asked for)."""
        if receiver.is_client:
            return self._cid(self.client.hellos)
        return self._cid(self.server.server_hellos)

    # -- walking ---------------------------------------------------------------------------------
    def run(self) -> Facts:
        for n, dg in enumerate(self.flow.datagrams):
            if n >= MAX_DATAGRAMS or self.records >= MAX_RECORDS:
                break
            data = bytes(dg.payload)
            if not data or not 20 <= data[0] <= 63:
                self.skipped += 1
                if data:
                    self.muxed |= mux_kind(data)
                continue
            side = self.client if dg.to_server else self.server
            peer = self.server if dg.to_server else self.client
            records, error = parse_records(data, self.cid_len_for(peer))
            if error and not records and n == 0 and not looks_like_dtls(data):
                self.skipped += 1
                continue
            if error:
                self.anomaly("dtls_record", error)
            for rec in records:
                self.records += 1
                self.record(side, rec, dg.ts)
        return self.result()

    def record(self, side: _Side, rec: Record, ts: float) -> None:
        side.records += 1
        if side.first_ts is None:
            side.first_ts = ts
        if rec.unified:
            side.unified_epochs.add(rec.epoch)
            if not side.is_client and rec.epoch != 2 and 2 in self.client.unified_epochs:
                # epoch-3 traffic from the server after the client's encrypted handshake flight
                # (its Finished): the ACK / NewSessionTicket of a completed DTLS 1.3 handshake
                self.server_after_client_finished = True
            return
        if side.record_version is None:
            side.record_version = rec.version
        ctype = rec.content_type
        if rec.epoch > 0:
            if ctype == CT_APP:
                side.app_epochs.add(rec.epoch)
            elif ctype == CT_ALERT:
                side.encrypted_alerts += 1
            elif ctype == CT_CCS:  # a CCS is never encrypted, but tolerate odd stacks
                self._ccs(side)
            return
        if ctype == CT_HANDSHAKE:
            self.handshake(side, rec.fragment, ts)
        elif ctype == CT_CCS:
            self._ccs(side)
        elif ctype == CT_ALERT:
            if len(rec.fragment) >= 2:
                self.alerts.append((rec.fragment[0], rec.fragment[1], "client" if side.is_client else "server"))
                self.letter("l", side)
            else:
                self.anomaly("dtls_alert", f"alert record of {len(rec.fragment)} bytes")
        elif ctype == CT_APP:
            self.anomaly("dtls_cleartext_data", "application data in epoch 0")

    def _ccs(self, side: _Side) -> None:
        if not side.ccs:
            side.ccs = True
            self.letter("i", side)

    def handshake(self, side: _Side, data: bytes, ts: float) -> None:
        pos = 0
        while pos < len(data):
            try:
                frag, pos = parse_handshake_fragment(data, pos)
            except (ParseError, NeedMoreData) as exc:
                self.anomaly("dtls_handshake_fragment", str(exc), getattr(exc, "offset", None))
                return
            msg = side.messages.get(frag.message_seq)
            if msg is None:
                if frag.length > MAX_MESSAGE:
                    self.anomaly("dtls_message_too_long", f"handshake message of {frag.length} bytes ignored")
                    continue
                if len(side.messages) >= MAX_MESSAGES or side.admitted + frag.length > MAX_REASSEMBLY:
                    self.anomaly("dtls_reassembly_budget", "too many handshake messages; the rest ignored")
                    continue
                side.admitted += frag.length
                msg = _Message(frag.msg_type, frag.length, CryptoStream(cap=max(frag.length, 1)))
                side.messages[frag.message_seq] = msg
            elif msg.msg_type != frag.msg_type or msg.length != frag.length:
                self.anomaly(
                    "dtls_fragment_mismatch",
                    f"message_seq {frag.message_seq}: fragment of type {frag.msg_type} length {frag.length}"
                    f" does not match type {msg.msg_type} length {msg.length}",
                )
                continue
            if msg.done:
                # a retransmission; a whole-message copy repeats its history letter, as Zeek does
                if frag.fragment_offset == 0 and len(frag.body) == msg.length:
                    self.letter(msg.letter, side)
                continue
            msg.stream.add(frag.fragment_offset, frag.body)
            if msg.stream.contiguous_len >= msg.length:
                msg.done = True
                msg.letter = self.message(side, msg.msg_type, msg.stream.contiguous[: msg.length], ts)
                msg.stream = CryptoStream(cap=1)  # free the buffer

    def message(self, side: _Side, mtype: int, body: bytes, ts: float) -> str:
        """Parse one complete handshake message; returns its history letter."""
        letter = _LETTERS.get(mtype, "z")
        try:
            if mtype == 1 and side.is_client:
                side.hello_count += 1
                if len(side.hellos) < 4:
                    side.hellos.append(parse_client_hello(body, dtls=True, memo=self.state.memo))
                    if self.ch_ts is None:
                        self.ch_ts = ts
                    if self.server.hvr and side.hello_after_hvr is None:
                        side.hello_after_hvr = len(side.hellos) - 1
            elif mtype == 2 and not side.is_client:
                side.hello_count += 1
                if len(side.server_hellos) < 4:
                    sh = parse_server_hello(body, dtls=True, memo=self.state.memo)
                    side.server_hellos.append(sh)
                    if sh.is_hello_retry_request:
                        letter = "j"
            elif mtype == 3 and not side.is_client:
                side.hvr = True
            elif mtype == 11:
                if not side.certs:
                    side.certs = parse_certificate_list(body)[:16]
            elif mtype == 12 and not side.is_client:
                side.ske = body
            elif mtype == 16 and side.is_client:
                side.cke = True
        except ParseError as exc:
            who = "client" if side.is_client else "server"
            self.anomaly("dtls_bad_message", f"{who} handshake type {mtype}: {exc}", exc.offset)
        self.letter(letter, side)
        return letter

    # -- result ----------------------------------------------------------------------------------
    def final_server_hello(self) -> tuple[ServerHello | None, ServerHello | None]:
        """The first ServerHello that is not a HelloRetryRequest, and the first HelloRetryRequest."""
        sh = next((s for s in self.server.server_hellos if not s.is_hello_retry_request), None)
        hrr = next((s for s in self.server.server_hellos if s.is_hello_retry_request), None)
        return sh, hrr

    def result(self) -> Facts:
        facts = self.facts
        client, server = self.client, self.server
        if not (client.records or server.records):
            return facts
        flow = self.flow
        sh, hrr = self.final_server_hello()
        ch: ClientHello | None = None
        if client.hellos:
            i = client.hello_after_hvr if client.hello_after_hvr is not None else 0
            ch = client.hellos[i]
        version = sh.version if sh is not None else None
        dtls13 = version == 0xFEFC
        established = False
        if sh is not None:
            if dtls13:
                established = (
                    bool(client.unified_epochs - {2})
                    or self.server_after_client_finished
                    or any(e >= 3 for e in client.app_epochs | server.app_epochs)
                )
            else:
                # a server-only view: the server's CCS and Finished come after the client's Finished
                # in a full handshake (a one-sided mirror, as TLS decides it)
                established = ((client.ccs and server.ccs) or bool(client.app_epochs or server.app_epochs)
                               or (server.ccs and not client.records))
        elif ch is None and ((client.app_epochs and server.app_epochs) or (client.ccs and server.ccs)):
            established = True  # picked up after the hellos: both sides switched to encrypted epochs
        # the first fatal alert in arrival order, else the first alert (as TLS does in history order)
        alert = next((a for a in self.alerts if a[0] == 2), None) or next(iter(self.alerts), None)
        failure: str | None = None
        if not established:
            if alert is not None and alert[0] == 2:
                failure = f"{alert[2]} alert: {alert_description_name(alert[1])}"
            elif (client.encrypted_alerts or server.encrypted_alerts) and client.records and server.records:
                # (from one side, an encrypted alert after its CCS may as well follow a handshake
                # that completed: close_notify)
                failure = "encrypted alert before the handshake completed"
            elif ch is not None and sh is None:
                failure = (
                    "no server hello" if not server.hvr else "no server hello after hello_verify_request"
                )
        ske: KeyExchangeInfo | None = None
        if server.ske is not None and sh is not None:
            try:
                ske = server_key_exchange(server.ske, self.state.hellos.kx(sh.cipher_suite))
            except ParseError as exc:
                self.anomaly("dtls_bad_message", f"server key exchange: {exc}")

        hellos = self.state.hellos
        ccols = hellos.client(ch) if ch is not None else None
        scols = hellos.server(sh) if sh is not None else None
        row = dict(TLS_ROW)
        hello_row(row, ch, ccols, sh, scols, hrr, ske)
        row.update(
            {
                "uid": flow.uid,
                "protocol": "dtls",
                "ts": self.ch_ts
                if self.ch_ts is not None
                else (client.first_ts or server.first_ts or flow.ts_start),
                "client_ip": flow.client_ip,
                "client_port": flow.client_port,
                "server_ip": flow.server_ip,
                "server_port": flow.server_port,
                "record_version": version_name(client.record_version or server.record_version),
                "resumed": resumed(ch, sh, dtls13, client.cke, client.ccs),
                "established": established,
                "history": "".join(self.letters),
                "failure_reason": failure,
                "cert_visible": bool(server.certs),
                "client_hello_count": client.hello_count,
                "server_hello_count": server.hello_count,
                "sslv2": False,
            }
        )
        alert_columns(row, alert)
        chain: list[str] = []
        leaf: Mapping[str, Any] | None = None
        certs = self.state.certs
        if server.certs or client.certs:
            chain, leaf = certs.rows(flow.uid, server.certs, client.certs, row, facts)
        if chain and ch is not None and ch.server_name:
            row["sni_matches_cert"] = certs.sni_matches(chain[0], ch.server_name)
        facts.add_row("tls", row)
        encrypted: bool | None = established or (failure is None and sh is not None)
        if not encrypted and not server.records and ch is not None:
            # Nothing from the server (a one-sided mirror, or no answer): the client's CCS and
            # encrypted records after its hello prove an encrypted session; a hello alone does not
            # prove one, nor cleartext (as TLS decides it)
            encrypted = True if client.ccs or client.app_epochs else None
        cols = flow_columns(
            "dtls",
            encrypted=encrypted,
            established=established,
            version=version_name(version),
            cipher=scols.cipher if scols is not None else None,
            server_name=ch.server_name if ch is not None else None,
            alpn=sh.alpn if sh is not None else None,
            ccols=ccols,
            scols=scols,
            cert_sha256=chain[0] if chain else None,
            leaf=leaf,
            incomplete=self._cut_messages(),
        )
        if self.state.session:
            cols.update(session_columns(chain=chain, sni_matches=row["sni_matches_cert"],  # type: ignore[arg-type]
                                        alert=alert, ccols=ccols, scols=scols, sslv2=False))
        if sh is not None and any(t == EXT_USE_SRTP for t, _ in sh.extensions):
            cols["protection"] = "srtp"  # DTLS-SRTP (RFC 5764): the media's keys come from this handshake
        if self.muxed:
            cols["dtls_multiplexed"] = ",".join(name for bit, name in _MUX if self.muxed & bit)
        facts.flow.update(cols)
        return facts


def mux_kind(data: bytes) -> int:
    """What a datagram that is not DTLS is, by RFC 7983's first-byte ranges (a bit of `_MUX`; 0 for
    bytes no range names): STUN 0-3, ZRTP 16-19, TURN ChannelData 64-79, RTP/RTCP 128-191 (RTCP
    when the second byte is an RTCP packet type, 192-223, RFC 5761 section 4)."""
    first = data[0]
    if first <= 3:
        return 1
    if 16 <= first <= 19:
        return 2
    if 64 <= first <= 79:
        return 4
    if 128 <= first <= 191:
        return 16 if len(data) > 1 and 192 <= data[1] <= 223 else 8
    return 0


def dissect_dtls(flow: FlowPayload, state: _State | None = None) -> Facts:
    """Facts of one UDP flow's DTLS (never raises on wire bytes). `state`: the dissector
    instance's memos and certificate cache (a fresh one when not given)."""
    return _Session(flow, state if state is not None else _State()).run()


class DTLSDissector:
    """The registered DTLS dissector (see the module docstring). Its memos and certificate cache
    belong to the instance."""

    # its name, port hints and probe are its light prototype's (analyzer.dissect.LIGHT_PROTOTYPES)
    name = _light.NAME
    app_protocols = _light.APP_PROTOCOLS  # the app_protocol values it sets (README, "Flow encryption state")
    transports = _light.TRANSPORTS
    ports = _light.PORTS
    columns = tls_schema.FLOW_COLUMNS
    frames = tls_schema.FRAMES

    def __init__(self, session: bool = False) -> None:
        self.state = _State(session)

    def for_run(self, context: DissectContext) -> DTLSDissector:
        """This run's instance, with its own memos and certificate cache (and the session facts when
        the run's flows have them)."""
        return DTLSDissector(context.makes(tls_schema.SESSION_FACTS))

    @property
    def cert_cache(self) -> Any:
        return self.state.certs.cache

    def probe(self, flow: FlowPayload) -> bool:
        return _light.probe(flow)

    def dissect(self, flow: FlowPayload) -> Facts:
        return dissect_dtls(flow, self.state)


DISSECTOR = register(DTLSDissector())
