"""The TLS dissector: stream prefixes of one TCP flow -> TLS facts (flow columns, `tls`, `certs`,
`cert_links` and `anomalies` rows).

The work is split by concern (see NOTES.md, "Modules"):

- `records`: the record walk of one direction (TLS and SSL 2.0 records, handshake reassembly,
  message parsing) into a `Side`; `looks_like_tls`, `find_tls_start`.
- `session`: what the two sides amount to (established, failure, alert, history and flights).
- `columns`: the hello-derived columns and the flow columns, shared with DTLS and QUIC.
- `rows`: the `tls` row and the certificates' rows.

This module wires them: which direction is the client, the server direction first (the client
direction of TLS 1.3 needs the negotiated version: its ChangeCipherSpec does not start encryption
there), then the session, the rows and the flow columns. Every memo and cache (parsers, hello
columns, flight plans, certificates, SNI matches) belongs to the `TLSDissector` instance.

Facts, never judgements: weak versions, ciphers or certificates are left to `policy/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from analyzer.dissect import register
from analyzer.dissect.base import DissectContext, Facts, FlowPayload
from analyzer.dissect.tls import schema as tls_schema
from analyzer.dissect.tls.columns import HelloColumns, ServerColumns, cipher_name, flow_columns, session_columns
from analyzer.dissect.tls.constants import is_tls13, version_name
from analyzer.dissect.tls.handshake import ClientHello, HandshakeMemo, ServerHello
from analyzer.dissect.tls.records import (
    RecordWalker,
    ShapedHello,
    Side,
    find_tls_start,
    hello_type,
    looks_like_tls,
    resync,
)
from analyzer.dissect.tls.rows import Certificates, tls_row
from analyzer.dissect.tls.session import FlightPlans, decide

if TYPE_CHECKING:
    from analyzer.keylog import KeyStore

__all__ = ["TLS_PORTS", "TLSDissector", "find_tls_start", "looks_like_tls"]

MAX_EARLY_SKIPPED = 64  # a client's 0-RTT records (under its early secret) skipped before its handshake flight

TLS_PORTS: frozenset[int] = frozenset(
    {443, 465, 563, 585, 614, 636, 853, 989, 990, 992, 993, 994, 995, 1443, 2083, 2087, 2096,
     3269, 4433, 4443, 5061, 5223, 5986, 6443, 6514, 6679, 6697, 8443, 8883, 9443, 10443}
)  # fmt: skip


class TLSDissector:
    """TLS / SSL over TCP, found by content on any port.

    Options: `ja4x` (default False) also computes FoxIO JA4X per certificate (FoxIO License 1.1,
    see `analyzer.dissect.tls.fingerprints`); `ja4s` (default True) computes JA4S; `certificates`
    (default True) hands certificate DER to `analyzer.dissect.x509`. `rows` (default True) makes the
    `tls` rows; without, only the flow's columns (`Facts.flow`) and the anomalies are made, for
    analyses that keep no such frame (flows mode: a ClientHello of a shape seen before is not
    parsed again). `cert_rows` (default: as `rows`; always with `rows`: the tls row's chain columns
    come with them) makes the `certs` and `cert_links` rows, also without the `tls` rows (a streamed
    audit reads the certificates, and the sessions from the flow columns); of those two frames,
    only the rows of `cert_frames` (default both: a run's instance, those the run keeps or feeds
    to a stage; the others the collector would drop). `session` (default
    False) also fills the flow's session facts (`columns.session_columns`: the optional column group
    `schema.SESSION_FACTS`, made in runs that read it). `strict` re-raises internal errors instead
    of recording them as `tls_internal_error` anomalies (for tests).
    """

    name = "tls"
    app_protocols = ("tls",)  # the app_protocol values it sets (README, "Flow encryption state")
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
        cert_rows: bool | None = None,
        cert_frames: tuple[str, ...] = ("certs", "cert_links"),
        session: bool = False,
        strict: bool = False,
        keys: KeyStore | None = None,
        cert_cache_bytes: int | None = None,
    ) -> None:
        self.ja4x = ja4x
        self.rows = rows
        self.cert_rows = rows or bool(cert_rows)
        self.cert_frames = cert_frames
        self.session = session
        self.ja4s = ja4s
        self.certificates = certificates
        self.strict = strict
        # This instance's memos and caches (nothing is shared with another instance).
        self.hellos = HelloColumns("t", ja4s=ja4s)
        self.memo = HandshakeMemo()
        self.plans = FlightPlans()
        self.certs = Certificates(ja4x=ja4x, cache_bytes=cert_cache_bytes, cert_rows="certs" in cert_frames,
                                  link_rows="cert_links" in cert_frames)
        self.walker = RecordWalker(self.hellos, self.memo)
        self.keys: KeyStore | None = keys  # the run's TLS secrets (none: nothing is decrypted)

    def __repr__(self) -> str:
        return (f"TLSDissector(ja4x={self.ja4x}, ja4s={self.ja4s}, certificates={self.certificates}, "
                f"rows={self.rows}, cert_rows={self.cert_rows}, cert_frames={self.cert_frames}, "
                f"session={self.session})")

    @property
    def cert_cache(self) -> Any:
        """This instance's `analyzer.dissect.x509.CertificateCache`."""
        return self.certs.cache

    # --- TLS 1.3 handshakes, with a key log -------------------------------------------------

    def _decrypt(self, client: Side, server: Side, cs: bytes, sc: bytes, suite: int, facts: Facts) -> str | None:
        """Decrypt both directions' TLS 1.3 handshake flights when the run's key log has this
        session's handshake secrets (by the last ClientHello's random): their certificates go to
        `server.certs` / `client.certs` as plaintext ones would (rows, chain facts, policy), and the
        server's encrypted ALPN is returned. Never application data (`tls.decrypt`)."""
        from analyzer.dissect.tls.decrypt import decrypt_flight  # cryptography's AEADs: only with keys

        hello = client.client_hellos[-1]  # after a HelloRetryRequest the secrets follow the second
        found = self.keys.get(hello.random) if self.keys is not None else None
        if found is None:
            return None
        client_secret, server_secret = found
        alpn = None
        for secret, side, data, who, letter in ((server_secret, server, sc, "server", "s"),
                                                (client_secret, client, cs, "client", "C")):
            if secret is None or not data:
                continue
            start = _after_last(side, letter)
            if start is None:
                continue
            flight = decrypt_flight(data, start, secret, suite, who, 0 if who == "server" else MAX_EARLY_SKIPPED)
            for kind, detail, offset in flight.errors:
                facts.anomaly(kind, detail, offset)
            if flight.certs and not side.certs:
                side.certs = flight.certs
            if who == "server":
                alpn = flight.alpn
        return alpn

    # --- the Dissector protocol -------------------------------------------------------------

    def for_run(self, context: DissectContext) -> TLSDissector:
        """This run's instance (its own certificate cache and memos), making the tls rows only when the
        run keeps the tls frame, the certs/cert_links rows of each of those two frames only when the
        run keeps it or feeds it to a stage, and the session facts only when the run's flows have them."""
        return TLSDissector(ja4x=context.options.ja4x, ja4s=self.ja4s, certificates=self.certificates,
                            rows=context.wants("tls"), cert_rows=context.wants("tls", "certs", "cert_links"),
                            cert_frames=tuple(f for f in ("certs", "cert_links") if context.wants(f)),
                            session=context.makes(tls_schema.SESSION_FACTS), strict=self.strict,
                            keys=context.keys, cert_cache_bytes=context.cert_cache_bytes)

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
            if data and (looks_like_tls(data) or (not prefix.start_known and resync(data, 8192) is not None)):
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

    # --- the session ------------------------------------------------------------------------

    def _dissect(self, flow: FlowPayload, cs_off: int, sc_off: int, facts: Facts) -> None:
        cs, sc = flow.to_server, flow.to_client
        flipped = False
        if cs_off == 0 and sc_off == 0:
            ht_cs, ht_sc = hello_type(cs.data), hello_type(sc.data)
            if (ht_sc == 1 and ht_cs != 1) or (ht_cs == 2 and ht_sc != 2):
                cs, sc = sc, cs  # the flow layer guessed the client wrong (mid-stream pickup)
                flipped = True
            elif cs.data and cs.start_known and not looks_like_tls(cs.data):
                found = find_tls_start(cs.data, sc.data)
                if found is None:
                    return
                cs_off = found[0]
                sc_off = found[1] if found[1] is not None else len(sc.data)
        server = Side(False)
        client = Side(True)
        walk = self.walker.walk
        if sc.data:
            walk(server, sc, sc_off, None, facts)
        sh: ServerHello | None = None
        hrr: ServerHello | None = None
        for server_hello in server.server_hellos:
            if server_hello.is_hello_retry_request:
                hrr = hrr or server_hello
            else:
                sh = sh or server_hello
        tls13 = sh is not None and is_tls13(sh.version)
        if cs.data:
            walk(client, cs, cs_off, tls13 if sh is not None else None, facts)
        if not (client.records or server.records or client.partial or server.partial):
            return
        if client.stop == "not_tls" and server.stop in ("not_tls", "end") and not server.records:
            return

        ch = client.client_hellos[0] if client.client_hellos else None
        alpn = sh.alpn if sh is not None else None
        if tls13 and self.keys and client.client_hellos:
            alpn = self._decrypt(client, server, cs.data, sc.data, sh.cipher_suite if sh else 0, facts) or alpn
        outcome = decide(flow, cs, sc, client, server, ch, sh, tls13, self.plans, self.rows)
        # The hellos' derived columns (memoised by the hellos' shapes).
        ccols: dict[str, object] | None = None
        if ch is not None:
            ccols = ch.columns if type(ch) is ShapedHello else self.hellos.client(cast(ClientHello, ch))
        scols: ServerColumns | None = None
        version: str | None = None
        cipher: str | None = None
        if sh is not None:
            scols = self.hellos.server(sh)
            version = scols.version
            cipher = scols.cipher
        elif server.ssl2_server_hello:
            version = version_name(0x0002)
            cipher = cipher_name(client.ssl2_cipher) if client.ssl2_cipher is not None else None
        chain: list[str] = []
        leaf: Mapping[str, Any] | None = None
        server_name = ch.server_name if ch is not None else None
        row: dict[str, object] | None = None
        if self.rows:
            row = tls_row(flow, cs, sc, flipped, client, server, ch, ccols, sh, scols, hrr, tls13, outcome)
        if not self.certificates:
            pass
        elif self.cert_rows:
            if server.certs or client.certs:
                chain, leaf = self.certs.rows(flow.uid, server.certs, client.certs, row if row is not None else {},
                                              facts)
        elif server.certs:  # no certificate rows: the leaf's facts (and the chain's fingerprints, for the session)
            leaf = self.certs.leaf(server.certs[0])
            chain.append(str(leaf["sha256"]))
            if self.session:
                chain += [self.certs.fingerprint(der) for der in server.certs[1:]]
        sni_matches = None
        if chain and server_name and (row is not None or self.session):
            sni_matches = self.certs.sni_matches(chain[0], server_name)
        if row is not None:
            row["sni_matches_cert"] = sni_matches
            if row["alpn"] is None and alpn is not None:  # TLS 1.3 sends it encrypted: read with a key log
                row["alpn"] = alpn
            facts.add_row("tls", row)
        cols = flow_columns(
            "tls",
            encrypted=outcome.encrypted,
            established=outcome.established,
            version=version,
            cipher=cipher,
            server_name=server_name,
            alpn=alpn,
            ccols=ccols,
            scols=scols,
            cert_sha256=chain[0] if chain else None,
            leaf=leaf,
            incomplete=client.cut or server.cut,
        )
        if self.session:
            cols.update(session_columns(chain=chain, sni_matches=sni_matches, alert=outcome.alert, ccols=ccols,
                                        scols=scols,
                                        sslv2=sh.version == 0x0002 if sh is not None else server.ssl2_server_hello))
        facts.flow.update(cols)


def _after_last(side: Side, letter: str) -> int | None:
    """The stream offset just after the record that ended the side's last `letter` message (its
    hello: TLS 1.3 encrypts everything after it)."""
    for ev in reversed(side.events):
        if ev[0] == letter:
            return ev[1] + 1
    return None


DISSECTOR = register(TLSDissector())
