"""Rows of the TLS family beyond the flow columns: certificates (`certs`, `cert_links`, and the
certificate columns of a `tls` row; shared by TLS and DTLS) and the TLS-over-TCP `tls` row.

`Certificates` holds a dissector instance's `analyzer.dissect.x509.CertificateCache` (made on first
use) and its memo of SNI-to-certificate matches: both belong to the instance, never to the module.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from analyzer.dissect.base import Facts, FlowPayload, StreamPrefix
from analyzer.dissect.tls.columns import TLS_ROW, ServerColumns, alert_columns, cipher_name, hello_row, resumed
from analyzer.dissect.tls.constants import version_name
from analyzer.dissect.tls.fingerprints import ja4x
from analyzer.dissect.tls.handshake import ClientHello, ServerHello
from analyzer.dissect.tls.records import ShapedHello, Side
from analyzer.dissect.tls.session import Outcome, first_event, time_at
from analyzer.errors import ParseError

if TYPE_CHECKING:
    from analyzer.dissect.x509 import CertificateCache

__all__ = ["Certificates", "tls_row"]


class Certificates:
    """Certificate rows and facts for one dissector instance (`ja4x`: also FoxIO JA4X per server
    certificate, FoxIO License 1.1)."""

    __slots__ = ("_cache", "_fingerprints", "_sni", "cache_bytes", "cert_rows", "ja4x", "link_rows")

    def __init__(self, *, ja4x: bool = False, cache_bytes: int | None = None, cert_rows: bool = True,
                 link_rows: bool = True) -> None:
        self.ja4x = ja4x
        self.cache_bytes = cache_bytes  # the certificate cache's bound (the run's memory budget's share)
        # which of the `certs` / `cert_links` rows `rows` makes: a run that keeps neither frame nor
        # feeds it to a stage would drop them (a streamed audit reads the certs, never the links)
        self.cert_rows = cert_rows
        self.link_rows = link_rows
        self._cache: CertificateCache | None = None
        self._sni: dict[tuple[str, str], bool | None] = {}
        self._fingerprints: dict[bytes, str] = {}

    @property
    def cache(self) -> CertificateCache:
        if self._cache is None:
            # imported on first use: cryptography's X.509 modules take a noticeable part of the
            # start of a run, and most flows carry no certificate in the clear
            from analyzer.dissect.x509 import CertificateCache

            self._cache = CertificateCache(max_bytes=self.cache_bytes)
        return self._cache

    def leaf(self, der: bytes) -> dict[str, Any]:
        """The certificate row of a server's leaf (flows mode: no certs rows)."""
        return self.cache.parse(der, self.fingerprint(der))

    def fingerprint(self, der: bytes) -> str:
        """SHA-256 (lowercase hex) of a certificate's DER, as its certs row's `sha256` and the
        certificate cache's key. Memoised by the DER bytes (a server's certificates repeat from
        session to session; a dict lookup costs far less than the hash): at most 1024
        certificates, a full memo is emptied."""
        memo = self._fingerprints
        found = memo.get(der)
        if found is None:
            found = sha256(der).hexdigest()
            if len(memo) >= 1024:
                memo.clear()
            memo[der] = found
        return found

    def rows(
        self, uid: str, server_certs: list[bytes], client_certs: list[bytes], row: dict[str, object], facts: Facts
    ) -> tuple[list[str], Mapping[str, Any] | None]:
        """`cert_links` and (once per flow and certificate) `certs` rows, those of the two frames this
        instance makes (`cert_rows`, `link_rows`); the chain columns of the `tls` row. Returns the
        server chain's fingerprints (leaf first) and the leaf's row (None without a server
        certificate). Call it only when a certificate was seen."""
        parse = self.cache.parse
        fingerprint = self.fingerprint
        # The frames' row lists, made in the order add_row would make them (links, then certs).
        rows = facts.rows
        links = rows.setdefault("cert_links", []) if self.link_rows else None
        cert_rows = rows.setdefault("certs", []) if self.cert_rows else None
        seen: set[str] = set()
        chain: list[str] = []
        client_chain: list[str] = []
        leaf: Mapping[str, Any] | None = None
        ja4x_list: list[str] = []
        for sent_by, certs, out in (("server", server_certs, chain), ("client", client_certs, client_chain)):
            for position, der in enumerate(certs):
                crow = parse(der, fingerprint(der))  # a fresh dict
                sha = str(crow["sha256"])
                out.append(sha)
                if position == 0 and sent_by == "server":
                    leaf = crow
                    crow = dict(crow)  # the leaf row is also read by the caller: keep it unchanged
                if links is not None:
                    links.append({"uid": uid, "sha256": sha, "position": position, "sent_by": sent_by})
                if cert_rows is not None and sha not in seen:
                    seen.add(sha)
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
        return chain, leaf

    def sni_matches(self, sha256: str, server_name: str) -> bool | None:
        """Does the certificate cover the host name? (memoised per certificate and name)"""
        key = (sha256, server_name)
        memo = self._sni
        if key in memo:
            return memo[key]
        value = self.cache.sni_matches(sha256, server_name)
        if len(memo) >= 65536:
            memo.clear()
        memo[key] = value
        return value


def tls_row(
    flow: FlowPayload,
    cs: StreamPrefix,
    sc: StreamPrefix,
    flipped: bool,
    client: Side,
    server: Side,
    ch: ClientHello | ShapedHello | None,
    ccols: dict[str, object] | None,
    sh: ServerHello | None,
    scols: ServerColumns | None,
    hrr: ServerHello | None,
    tls13: bool,
    outcome: Outcome,
) -> dict[str, object]:
    """The `tls` row of a TLS-over-TCP session, without its certificate columns."""
    row = dict(TLS_ROW)
    row["protocol"] = "tls"
    hello_row(row, ch, ccols, sh, scols, hrr, server.ske)
    if sh is None and server.ssl2_server_hello:
        code = client.ssl2_cipher
        row["version"] = version_name(0x0002)
        row["cipher_code"] = code
        if code is not None:
            row["cipher"] = cipher_name(code)
    # (item by item: a dict literal merged in would be built, then copied)
    row["uid"] = flow.uid
    row["ts"] = (time_at(cs, first_event(client, "C")) if ch is not None and cs.times else None) or flow.ts_start
    if flipped:
        row["client_ip"], row["client_port"] = flow.server_ip, flow.server_port
        row["server_ip"], row["server_port"] = flow.client_ip, flow.client_port
    else:
        row["client_ip"], row["client_port"] = flow.client_ip, flow.client_port
        row["server_ip"], row["server_port"] = flow.server_ip, flow.server_port
    rv = client.record_version if client.record_version is not None else server.record_version
    row["record_version"] = version_name(rv)
    row["resumed"] = resumed(ch, sh, tls13, client.cke, client.ccs)
    row["established"] = outcome.established
    row["history"] = "^" + outcome.history if flipped else outcome.history
    row["failure_reason"] = outcome.failure
    row["cert_visible"] = bool(server.certs)
    row["client_hello_count"] = len(client.client_hellos)
    row["server_hello_count"] = len(server.server_hellos) + (1 if server.ssl2_server_hello else 0)
    row["client_stop"] = client.stop if client.records or cs.data else None
    row["server_stop"] = server.stop if server.records or sc.data else None
    row["sslv2"] = sh.version == 0x0002 if sh is not None else server.ssl2_server_hello
    if outcome.alert is not None:
        alert_columns(row, outcome.alert)
    return row
