"""The QUIC dissector: UDP datagrams of one flow -> facts about its QUIC/TLS 1.3 handshake.

What a passive observer can read of QUIC is the Initial packets (their keys come from public
values) and the cleartext parts of every long header. Per flow this dissector:

1. walks each datagram's coalesced packets (long headers; a short-header packet ends a datagram);
2. decrypts Initial packets with keys derived from the client's original Destination Connection
   ID (RFC 9001 5.2; after a Retry, from the DCID the client then uses), for either direction;
3. reassembles each direction's Initial-level CRYPTO stream (out of order, across packets,
   bounded at 64 KiB) and parses the ClientHello(s) and ServerHello(s) in it with the shared TLS
   parsers (`analyzer.dissect.tls.handshake`);
4. notes Version Negotiation (offered versions), Retry (integrity tag checked for v1/v2),
   0-RTT, Handshake and 1-RTT packets, and CONNECTION_CLOSE frames;
5. with the run's key log holding the session's handshake secrets (`--keylog`, a pcapng's
   Decryption Secrets Block), decrypts the Handshake packets (`_handshake.py`) for the
   certificate chain and the selected ALPN (EncryptedExtensions); never 0-RTT or 1-RTT.

Work is bounded: at most `MAX_DATAGRAMS` datagrams and `MAX_PACKETS` packets are examined, at most
`MAX_DECRYPT_FAILURES` failed decryptions are attempted, and decryption stops once the ClientHello
and ServerHello are both known.

Facts (see QUIC_DTLS_NOTES.md for the reasoning):
- `tls_version` is "TLS 1.3" for any IETF QUIC version (RFC 9001 4.2 forbids anything older);
  the ServerHello's selected version when one was seen.
- `tls_established` is True when the server's ServerHello (not a HelloRetryRequest) was seen, or
  when the server sent Handshake packets after a ClientHello (it can only do so after sending a
  ServerHello); False when a ClientHello was seen without either; NA without a ClientHello.
- `tls_alpn` (negotiated) is the sole offered ALPN value when the handshake is established: QUIC
  requires ALPN (RFC 9001 8.1) and the server's choice travels encrypted, so it is only knowable
  when the client offered exactly one value. The offered list is `tls.alpn_offered`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from analyzer.dissect import register
from analyzer.dissect.base import DissectContext, Facts, FlowPayload
from analyzer.dissect.quic import _probe as _light
from analyzer.dissect.quic._crypto import InitialKeyCache, InitialKeys, unprotect
from analyzer.dissect.quic._frames import ConnectionClose, CryptoStream, parse_frames
from analyzer.dissect.quic._packets import (
    GQUIC,
    QUIC_V1,
    QUIC_V2,
    LongHeader,
    VersionInfo,
    gquic_public_header,
    looks_like_quic,
    parse_long_header,
    version_name,
)
from analyzer.dissect.quic._tparams import format_transport_params
from analyzer.dissect.tls import schema as tls_schema
from analyzer.dissect.tls.columns import (
    TLS_ROW,
    HelloColumns,
    alert_columns,
    flow_columns,
    hello_row,
    resumed,
    session_columns,
)
from analyzer.dissect.tls.constants import alert_description_name
from analyzer.dissect.tls.constants import version_name as tls_version_name
from analyzer.dissect.tls.handshake import (
    ClientHello,
    HandshakeMemo,
    ServerHello,
    parse_client_hello,
    parse_server_hello,
)
from analyzer.errors import NeedMoreData, ParseError

if TYPE_CHECKING:
    from analyzer.dissect.tls.rows import Certificates
    from analyzer.keylog import KeyStore

__all__ = ["MAX_DATAGRAMS", "QuicDissector", "dissect_quic", "looks_like_quic"]

MAX_DATAGRAMS = 256
MAX_PACKETS = 512
MAX_DECRYPT_FAILURES = 16
CRYPTO_CAP = 64 * 1024
MAX_HISTORY = 40
MAX_HANDSHAKE_PACKETS = 64  # per direction, kept for decryption only when a key log is given

# Retry integrity (RFC 9001 5.8, RFC 9369 3.3.3): fixed AES-128-GCM key and nonce per version.
_RETRY_KEYS: dict[int, tuple[bytes, bytes]] = {
    QUIC_V1: (bytes.fromhex("be0c690b9f66575a1d766b54e368c84e"), bytes.fromhex("461599d35d632bf2239825bb")),
    QUIC_V2: (bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92"), bytes.fromhex("d86969bc2d7c6d9990efb04a")),
    # draft-ietf-quic-tls-29 5.8 (checked against the Retry in ndpi quic-29.pcap)
    0xFF00001D: (bytes.fromhex("ccce187ed09a09d05728155a6cb96be1"), bytes.fromhex("e54930f97f2136f0530a8c1c")),
}  # fmt: skip


def retry_integrity_ok(data: bytes, hdr: LongHeader, odcid: bytes) -> bool | None:
    """Check a Retry packet's integrity tag against the client's original DCID.

    None when the version's Retry key is not known here (drafts).
    """
    keys = _RETRY_KEYS.get(hdr.version)
    if keys is None:
        return None
    key, nonce = keys
    packet = data[hdr.start : hdr.end]
    pseudo = bytes([len(odcid)]) + odcid + packet[:-16]
    try:
        AESGCM(key).decrypt(nonce, packet[-16:], pseudo)
    except InvalidTag:
        return False
    return True


@dataclass(slots=True)
class _Side:
    stream: CryptoStream = field(default_factory=lambda: CryptoStream(CRYPTO_CAP))
    parsed_to: int = 0  # stream offset up to which handshake messages were consumed
    dead: bool = False  # the stream cannot be parsed further (bad message, message over the cap)
    overflow_noted: bool = False
    largest_pn: int = -1
    short: int = 0
    handshake: int = 0
    zero_rtt: int = 0


class _State:
    """What a QUIC dissector instance keeps between flows: its memos and Initial keys, and the
    run's TLS secrets (`secrets`: a key log's, to decrypt Handshake packets) with the certificate
    cache they need."""

    __slots__ = ("certs", "hellos", "keys", "memo", "secrets", "session")

    def __init__(self, secrets: KeyStore | None = None, session: bool = False) -> None:
        self.hellos = HelloColumns("q")
        self.memo = HandshakeMemo()
        self.keys = InitialKeyCache()
        self.secrets = secrets
        self.certs: Certificates | None = None
        self.session = session  # fill the flow's session facts (tls_schema.SESSION_FACTS)


class _Session:
    def __init__(self, flow: FlowPayload, state: _State) -> None:
        self.flow = flow
        self.state = state
        self.facts = Facts()
        self.sides = {False: _Side(), True: _Side()}  # keyed by "sent by the server"
        self.key_dcids: list[bytes] = []  # candidate client original DCIDs, most likely first
        self.versions: list[int] = []  # long-header versions seen, in order
        self.client_info: VersionInfo | None = None
        self.server_info: VersionInfo | None = None
        self.vn_offered: tuple[int, ...] | None = None
        self.close: tuple[ConnectionClose, bool] | None = None
        self.letters: list[str] = []  # ssl_history letters of the visible TLS messages
        self.hellos: list[ClientHello] = []
        self.ch_ts: float | None = None
        self.sh: ServerHello | None = None
        self.hrr: ServerHello | None = None  # the first HelloRetryRequest
        self.hello_counts = [0, 0]  # ClientHello, ServerHello (HelloRetryRequest included) messages
        self.failures = 0
        self.swapped = False
        self.gquic: str | None = None
        self.packets = 0
        self.ietf = False  # saw an IETF QUIC long header of a known version
        # Handshake packets kept for decryption, by "sent by the server" (only with a key log)
        self.hs_packets: dict[bool, list[tuple[bytes, LongHeader]]] | None = (
            {False: [], True: []} if state.secrets else None)
        self._anomaly_kinds: dict[str, int] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def anomaly(self, kind: str, detail: str, offset: int | None = None) -> None:
        n = self._anomaly_kinds.get(kind, 0)
        self._anomaly_kinds[kind] = n + 1
        if n < 3:  # a flood of the same problem says nothing more after a few rows
            self.facts.anomaly(kind, detail, offset)

    def letter(self, letter: str, by_server: bool) -> None:
        """ssl_history letter (client uppercase, server lowercase), like the TLS dissector."""
        if len(self.letters) < MAX_HISTORY:
            self.letters.append(letter.lower() if by_server else letter.upper())

    def note_version(self, version: int) -> None:
        if version not in self.versions and len(self.versions) < 8:
            self.versions.append(version)

    @property
    def done(self) -> bool:
        return bool(self.hellos) and (self.sh is not None or self.close is not None)

    # -- walking ---------------------------------------------------------------------------------
    def run(self) -> Facts:
        for n, dg in enumerate(self.flow.datagrams):
            if n >= MAX_DATAGRAMS or self.packets >= MAX_PACKETS:
                break
            self.datagram(bytes(dg.payload), not dg.to_server, dg.ts)
        return self.result()

    def datagram(self, data: bytes, by_server: bool, ts: float) -> None:
        pos = 0
        end = len(data)
        dcid: bytes | None = None  # of the datagram's first packet
        while pos < end and self.packets < MAX_PACKETS:
            first = data[pos]
            if not first & 0x80:
                if pos == 0:
                    gq = gquic_public_header(data) if not by_server else None
                    if gq is not None:
                        self.gquic = self.gquic or gq
                        return
                elif dcid is None or data[pos + 1 : pos + 1 + len(dcid)] != dcid:
                    return  # padding or junk after coalesced packets (RFC 9000 12.2)
                if first & 0x40:
                    self.sides[by_server].short += 1
                    self.packets += 1
                return
            try:
                hdr = parse_long_header(data, pos)
            except NeedMoreData:
                if pos == 0:
                    self.anomaly(
                        "quic_truncated", "long-header packet runs past the end of its datagram", pos
                    )
                return
            except ParseError as exc:
                if pos == 0:
                    self.anomaly("quic_malformed", str(exc), exc.offset)
                return
            if dcid is None:
                dcid = hdr.dcid
            elif hdr.dcid != dcid or hdr.kind == "vn":
                return  # RFC 9000 12.2: coalesced packets share the DCID; the rest is junk
            self.packets += 1
            self.packet(data, hdr, by_server, ts)
            pos = hdr.end

    def packet(self, data: bytes, hdr: LongHeader, by_server: bool, ts: float) -> None:
        kind = hdr.kind
        if kind == "vn":
            self.vn_offered = hdr.versions[:16]
            tried = ",".join(version_name(v) for v in self.versions) or "?"
            offered = ",".join(version_name(v) for v in self.vn_offered)
            who = "server" if by_server else "client (unexpected)"
            self.anomaly(
                "quic_version_negotiation", f"{who} Version Negotiation after {tried}: offers {offered}"
            )
            return
        self.note_version(hdr.version)
        if kind == GQUIC:
            self.gquic = self.gquic or version_name(hdr.version)
            return
        if kind == "unknown":
            return
        self.ietf = True
        if kind == "initial":
            self.initial(data, hdr, by_server, ts)
        elif kind == "handshake":
            self.sides[by_server].handshake += 1
            kept = self.hs_packets[by_server] if self.hs_packets is not None else None
            if kept is not None and len(kept) < MAX_HANDSHAKE_PACKETS:
                kept.append((data, hdr))
        elif kind == "0rtt":
            self.sides[by_server].zero_rtt += 1
        elif kind == "retry":
            self.retry(data, hdr, by_server)

    def retry(self, data: bytes, hdr: LongHeader, by_server: bool) -> None:
        if not by_server:
            self.anomaly("quic_retry_from_client", "a Retry packet sent by the client")
            return
        valid = "not checked"
        if self.key_dcids:
            ok = retry_integrity_ok(data, hdr, self.key_dcids[0])
            valid = "unknown for this version" if ok is None else ("valid" if ok else "INVALID")
        self.anomaly("quic_retry", f"server Retry (integrity tag {valid}); new DCID {hdr.scid.hex()}")
        # the client's next Initial uses the Retry's SCID as DCID, and keys derive from it
        self._push_dcid(hdr.scid)

    def _push_dcid(self, dcid: bytes) -> None:
        if dcid in self.key_dcids:
            self.key_dcids.remove(dcid)
        self.key_dcids.insert(0, dcid)
        del self.key_dcids[4:]

    def initial(self, data: bytes, hdr: LongHeader, by_server: bool, ts: float) -> None:
        info = hdr.info
        if info is None:  # pragma: no cover - parse_long_header sets it for known versions
            return
        if self.done or self.failures >= MAX_DECRYPT_FAILURES:
            return
        attempts: list[tuple[bool, bytes]] = []
        for role in (by_server, not by_server):
            cands = list(self.key_dcids)
            if not role and hdr.dcid not in cands:
                cands.append(hdr.dcid)
            attempts.extend((role, d) for d in cands)
        for role, dcid in attempts:
            for salt in info.salts:
                keys = InitialKeys.for_dcid(salt, info.label_prefix, dcid, server=role, cache=self.state.keys)
                try:
                    pn, plain, _first = unprotect(
                        data, hdr.start, hdr.pn_offset, hdr.end, keys, self.sides[role].largest_pn
                    )
                except ParseError:
                    self.failures += 1
                    if self.failures >= MAX_DECRYPT_FAILURES:
                        self.anomaly(
                            "quic_decrypt_failed", "too many Initial packets do not decrypt; gave up"
                        )
                        return
                    continue
                if role != by_server and not self.swapped:
                    self.swapped = True
                    self.anomaly(
                        "quic_direction",
                        "an Initial decrypted with the other side's keys: client and server may be swapped",
                    )
                if not role:
                    self._push_dcid(dcid)
                    if self.client_info is None:
                        self.client_info = info
                else:
                    self.server_info = info
                self.decrypted(role, pn, plain, ts, hdr)
                return
        self.anomaly(
            "quic_decrypt_failed",
            f"an Initial (version {info.name}, DCID {hdr.dcid.hex()}) does not decrypt with any known DCID",
            hdr.start,
        )

    def decrypted(self, by_server: bool, pn: int, plain: bytes, ts: float, hdr: LongHeader) -> None:
        side = self.sides[by_server]
        side.largest_pn = max(side.largest_pn, pn)
        frames = parse_frames(plain)
        if frames.error:
            self.anomaly("quic_frame_error", frames.error, frames.error_offset)
        for off, chunk in frames.crypto:
            side.stream.add(off, chunk)
        if side.stream.overflow and not side.overflow_noted:
            side.overflow_noted = True  # the prefix below the cap is still read
            self.anomaly("quic_crypto_overflow", f"CRYPTO data beyond {CRYPTO_CAP} bytes ignored")
        if frames.close is not None:
            self.close = (frames.close, by_server)
            if frames.close.tls_alert is not None:
                self.letter("l", by_server)
        self.messages(by_server, ts)

    def messages(self, by_server: bool, ts: float) -> None:
        side = self.sides[by_server]
        if side.stream.contiguous_len <= side.parsed_to + 3:
            return
        buf = side.stream.contiguous
        pos = side.parsed_to
        while pos + 4 <= len(buf) and not side.dead:
            mtype = buf[pos]
            mlen = int.from_bytes(buf[pos + 1 : pos + 4], "big")
            if pos + 4 + mlen > CRYPTO_CAP:
                side.dead = True
                self.anomaly(
                    "quic_crypto_overflow", f"handshake message of {mlen} bytes exceeds the cap", pos
                )
                return
            if pos + 4 + mlen > len(buf):
                return  # wait for more CRYPTO data
            body = buf[pos + 4 : pos + 4 + mlen]
            pos += 4 + mlen
            side.parsed_to = pos
            try:
                if not by_server and mtype == 1:
                    self.hello_counts[0] += 1
                    if len(self.hellos) < 2:
                        self.hellos.append(parse_client_hello(body, memo=self.state.memo))
                        if self.ch_ts is None:
                            self.ch_ts = ts
                    self.letter("C", False)
                elif by_server and mtype == 2:
                    self.hello_counts[1] += 1
                    sh = parse_server_hello(body, memo=self.state.memo)
                    if sh.is_hello_retry_request:
                        self.hrr = self.hrr or sh
                        self.letter("j", True)
                    else:
                        if self.sh is None:
                            self.sh = sh
                        self.letter("s", True)
                else:
                    side.dead = True
                    who = "server" if by_server else "client"
                    self.anomaly("quic_unexpected_message", f"{who} Initial carries handshake type {mtype}")
            except ParseError as exc:
                side.dead = True
                self.anomaly("quic_bad_hello", str(exc), exc.offset)

    # -- result ----------------------------------------------------------------------------------
    def result(self) -> Facts:
        facts = self.facts
        if self.gquic is not None and not self.ietf:
            facts.flow.update({"app_protocol": GQUIC, "encrypted": True, "protection": "quic"})
            facts.add_row("tls", self._base_row() | {"quic_version": self.gquic, "cert_visible": False})
            return facts
        if not (
            self.ietf
            or self.versions
            or self.vn_offered is not None
            or self.sides[False].short
            or self.sides[True].short
        ):
            return facts  # nothing QUIC-like was seen
        facts.flow["app_protocol"] = "quic"
        facts.flow["encrypted"] = True
        facts.flow["protection"] = "quic"
        if not self.ietf:
            return facts  # only short headers, VN or unknown versions: no session facts
        ch = self.hellos[0] if self.hellos else None
        sh = self.sh
        established: bool | None = None
        if ch is not None:
            established = sh is not None or self.sides[True].handshake > 0
        version = tls_version_name(sh.version) if sh is not None else "TLS 1.3"
        info = self.server_info or self.client_info
        hellos = self.state.hellos
        ccols = hellos.client(ch) if ch is not None else None
        scols = hellos.server(sh) if sh is not None else None
        row = self._base_row()
        hello_row(row, ch, ccols, sh, scols, self.hrr, None)
        alpn = sh.alpn if sh is not None else None
        certs: tuple[list[bytes], list[bytes]] = ([], [])
        if self.hs_packets is not None and sh is not None and self.hellos and info is not None:
            certs, alpn = self._decrypt(sh, info.label_prefix, alpn)
        if alpn is None and established and ch is not None and len(ch.alpn) == 1:
            alpn = ch.alpn[0]  # QUIC requires ALPN and the client left the server one choice
        row.update(
            {
                "version": version,
                "alpn": alpn,
                "resumed": resumed(ch, sh, True, False, False),
                "established": established,
                "history": "".join(self.letters),
                "failure_reason": self._failure(established),
                "cert_visible": bool(certs[0]),
                "quic_version": info.name if info is not None else version_name(self.versions[0]),
                "client_hello_count": self.hello_counts[0],
                "server_hello_count": self.hello_counts[1],
                "sslv2": False,
            }
        )
        if ch is not None:
            if ch.quic_transport_parameters is not None:
                row["quic_transport_params"] = format_transport_params(ch.quic_transport_parameters)
            if ch.errors:
                self.anomaly("quic_hello_extension", "; ".join(ch.errors))
        alert: tuple[int, int, str] | None = None
        if self.close is not None and self.close[0].tls_alert is not None:
            # a CONNECTION_CLOSE carrying a TLS alert (RFC 9001 4.8): always fatal
            alert = (2, self.close[0].tls_alert, "server" if self.close[1] else "client")
            alert_columns(row, alert)
        chain: list[str] = []
        leaf = None
        if certs[0] or certs[1]:
            if self.state.certs is None:
                from analyzer.dissect.tls.rows import Certificates  # only with decrypted certificates

                self.state.certs = Certificates()
            chain, leaf = self.state.certs.rows(self.flow.uid, certs[0], certs[1], row, facts)
            if chain and ch is not None and ch.server_name:
                row["sni_matches_cert"] = self.state.certs.sni_matches(chain[0], ch.server_name)
        facts.add_row("tls", row)
        incomplete = self._cut_messages()
        cols = flow_columns(
            "quic",
            encrypted=True,
            established=established,
            version=version,
            cipher=scols.cipher if scols is not None else None,
            server_name=ch.server_name if ch is not None else None,
            alpn=alpn,
            ccols=ccols,
            scols=scols,
            incomplete=incomplete,
            cert_sha256=chain[0] if chain else None,
            leaf=leaf,
        )
        if self.state.session:
            cols.update(session_columns(chain=chain, sni_matches=row["sni_matches_cert"],  # type: ignore[arg-type]
                                        alert=alert, ccols=ccols, scols=scols, sslv2=False))
        facts.flow.update(cols)
        return facts

    def _cut_messages(self) -> bool:
        """Was a handshake message of the Initial CRYPTO streams cut (a datagram not captured or
        past the payload budget, or the flow ended inside it)? Said by an anomaly (issue 16 item 5:
        a hello must not go missing silently); True also marks the flow truncated."""
        cut = False
        for by_server, side in self.sides.items():
            stream = side.stream
            if side.dead or not (stream.holes or stream.contiguous_len > side.parsed_to):
                continue
            cut = True
            who = "server" if by_server else "client"
            self.anomaly("quic_handshake_cut", f"{who}: Initial CRYPTO data ends inside a handshake message at byte "
                         f"{stream.contiguous_len} ({stream.received} bytes received): the facts it carries "
                         "(server name, fingerprint) are missing", side.parsed_to)
        return cut
    def _decrypt(self, sh: ServerHello, label_prefix: bytes, alpn: str | None
                 ) -> tuple[tuple[list[bytes], list[bytes]], str | None]:
        """Decrypt the Handshake packets with the key log's secrets of this session (by the last
        ClientHello's random): ((server certificates, client certificates), the server's ALPN)."""
        from analyzer.dissect.quic._handshake import decrypt_handshake  # only with a key log

        secrets = self.state.secrets
        found = secrets.get(self.hellos[-1].random) if secrets is not None else None
        if found is None or self.hs_packets is None:
            return ([], []), alpn
        out: tuple[list[bytes], list[bytes]] = ([], [])
        for by_server, secret in ((True, found[1]), (False, found[0])):
            packets = self.hs_packets[by_server]
            if secret is None or not packets:
                continue
            who = "server" if by_server else "client"
            flight = decrypt_handshake(packets, secret, sh.cipher_suite, label_prefix, who)
            for kind, detail, offset in flight.errors:
                self.anomaly(kind, detail, offset)
            out[0 if by_server else 1].extend(flight.certs)
            if by_server and flight.alpn is not None:
                alpn = flight.alpn
        return out, alpn

    def _failure(self, established: bool | None) -> str | None:
        parts = []
        if self.close is not None:
            close, by_server = self.close
            who = "server" if by_server else "client"
            kind = "application" if close.application else "transport"
            text = f"{who} connection_close ({kind} error 0x{close.error_code:x})"
            if close.tls_alert is not None:
                text += f": TLS alert {alert_description_name(close.tls_alert)}"
            if close.reason:
                text += f": {close.reason}"
            parts.append(text)
        if self.vn_offered is not None and not established:
            offered = ",".join(version_name(v) for v in self.vn_offered)
            parts.append(f"version negotiation: server offers {offered}")
        return "; ".join(parts) if parts else None

    def _base_row(self) -> dict[str, object]:
        flow = self.flow
        row = dict(TLS_ROW)
        row.update(
            {
                "uid": flow.uid,
                "protocol": "quic",
                "ts": self.ch_ts if self.ch_ts is not None else flow.ts_start,
                "client_ip": flow.client_ip,
                "client_port": flow.client_port,
                "server_ip": flow.server_ip,
                "server_port": flow.server_port,
            }
        )
        return row


def dissect_quic(flow: FlowPayload, state: _State | None = None) -> Facts:
    """Facts of one UDP flow's QUIC handshake (never raises on wire bytes). `state`: the
    dissector instance's memos and Initial keys (a fresh one when not given)."""
    return _Session(flow, state if state is not None else _State()).run()


class QuicDissector:
    """The registered QUIC dissector (see the module docstring). Its memos and Initial keys
    belong to the instance."""

    # its name, port hints and probe are its light prototype's (analyzer.dissect.LIGHT_PROTOTYPES)
    name = _light.NAME
    app_protocols = _light.APP_PROTOCOLS  # the app_protocol values it sets (README, "Flow encryption state")
    transports = _light.TRANSPORTS
    ports = _light.PORTS
    columns = tls_schema.FLOW_COLUMNS
    frames = tls_schema.FRAMES

    def __init__(self, secrets: KeyStore | None = None, session: bool = False) -> None:
        self.state = _State(secrets, session)

    def for_run(self, context: DissectContext) -> QuicDissector:
        """This run's instance, with its own memos and Initial keys, the run's TLS secrets (and the
        session facts when the run's flows have them)."""
        return QuicDissector(context.keys, context.makes(tls_schema.SESSION_FACTS))

    def probe(self, flow: FlowPayload) -> bool:
        return _light.probe(flow)

    def dissect(self, flow: FlowPayload) -> Facts:
        return dissect_quic(flow, self.state)


DISSECTOR = register(QuicDissector())
