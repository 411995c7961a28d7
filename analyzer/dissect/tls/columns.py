"""The TLS family's columns: what TLS (over TCP), DTLS and QUIC say alike about a session.

One implementation for the three dissectors (`tls.dissector`, `dissect.dtls`, `dissect.quic`):

- `HelloColumns`: the columns derived from a ClientHello's / ServerHello's *shape* (versions, cipher
  and extension lists, JA3 / JA4 / JA3S / JA4S, ...), memoised per shape. A client library sends
  the same shape on every connection, so the strings are made once. The memos belong to the
  `HelloColumns` instance, and each dissector instance owns one: two analyses in one process (or
  one Dask worker) share nothing. The JA4 transport letter ("t", "d", "q") and whether JA4S is
  computed are fixed per instance.
- `hello_row`: the hello-derived part of a `tls` row (the memoised columns plus the per-connection
  ones: host name, session id length, extended master secret, negotiated version / cipher / ALPN,
  selected group, DH size, HelloRetryRequest).
- `flow_columns`: the TLS-family columns of the `flows` frame, always the same keys in the same
  order (the collector groups flows by their key tuple).
- `TLS_ROW`: the template every `tls` row starts from (all columns of `analyzer.dissect.tls.schema.TLS`).

Formats: version names ("TLS 1.3", "DTLS 1.2", "GREASE"), cipher codes as 4-digit hex (6 digits
for SSL 2.0 cipher kinds) and extension types as decimal in offered order, groups by name,
signature schemes as 4-digit hex, all comma-separated. A list the hello must carry (cipher suites,
compression methods, extensions) is "" when it is empty; a list that comes from an optional
extension (ALPN, groups, point formats, signature algorithms, key shares, supported versions) is
NA when the extension is absent or empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from analyzer.dissect.tls.constants import alert_description_name, alert_level_name, group_name, version_name
from analyzer.dissect.tls.fingerprints import _hexlist, ja3, ja3s, ja4, ja4s
from analyzer.dissect.tls.handshake import ClientHello, KeyExchangeInfo, ServerHello, parse_server_key_exchange
from analyzer.dissect.vocabulary import protection_of_tls_family

if TYPE_CHECKING:
    from analyzer.dissect.tls.records import ShapedHello

__all__ = [
    "FLOW_COLUMNS",
    "SESSION_COLUMNS",
    "TLS_ROW",
    "HelloColumns",
    "ServerColumns",
    "alert_columns",
    "cipher_kx",
    "cipher_name",
    "flow_columns",
    "hello_row",
    "resumed",
    "selected_group",
    "server_key_exchange",
    "session_columns",
]

# The flow columns the TLS family fills (analyzer.dissect.tls.schema.FLOW_COLUMNS), in the order they are set.
FLOW_COLUMNS: tuple[str, ...] = (
    "app_protocol", "encrypted", "protection", "undecided_reason", "tls_version", "tls_client_max_version",
    "tls_cipher", "tls_server_name", "tls_alpn", "ja3", "ja3s", "ja4", "ja4s", "tls_established",
    "cert_sha256", "cert_not_after", "cert_key_bits", "cert_self_signed", "tls_incomplete", "truncated",
)  # fmt: skip
# The optional group of session facts (schema.SESSION_FACTS), in the order `session_columns` sets them.
SESSION_COLUMNS: tuple[str, ...] = (
    "cert_chain", "tls_sni_matches_cert", "tls_alert_level", "tls_alert_description", "tls_alert_by",
    "tls_client_supported_versions", "tls_server_extensions", "tls_sslv2",
)  # fmt: skip


# Every `tls` row starts as a copy of this (all columns of analyzer.dissect.tls.schema.TLS, unset).
TLS_ROW: dict[str, object] = dict.fromkeys(
    (
        "uid", "protocol", "ts", "client_ip", "client_port", "server_ip", "server_port", "version",
        "client_max_version", "record_version", "client_legacy_version", "client_supported_versions",
        "cipher", "cipher_code", "client_ciphers", "client_cipher_count", "compression_methods",
        "client_extensions", "server_extensions", "server_name", "alpn_offered", "alpn",
        "supported_groups", "ec_point_formats", "signature_algorithms", "key_share_groups",
        "selected_group", "psk_offered", "session_ticket_offered", "early_data_offered", "ech_offered",
        "renegotiation_info", "extended_master_secret", "grease", "sslv2_client_hello",
        "hello_retry_request", "resumed", "session_id_len", "dh_bits", "established", "history",
        "alert_level", "alert_description", "alert_by", "failure_reason", "cert_visible", "cert_chain",
        "cert_sha256", "sni_matches_cert", "client_cert_chain", "ja3", "ja3_full", "ja3s", "ja3s_full",
        "ja4", "ja4_r", "ja4s", "ja4s_r", "ja4x", "quic_version", "quic_transport_params",
        "client_hello_count", "server_hello_count", "client_stop", "server_stop", "sslv2",
    )
)  # fmt: skip

_FIRST = itemgetter(0)  # (type, body) -> type
_MEMO_LIMIT = 8192  # entries per memo; a full memo is emptied (hostile input only resets it)
_SHAPE_LIMIT = 2048  # hello shapes kept (each at most _SHAPE_BYTES)
_SHAPE_BYTES = 2048


# `ciphersuites` builds its table when imported: it is imported where first needed (a plain import
# in the function, no fallback), so an analysis without TLS, and the start of every run, do not
# pay for it. The same holds for `x509` in `rows.Certificates`.


def cipher_name(code: int) -> str:
    """IANA name of a cipher suite (`ciphersuites.lookup`), or of an SSL 2.0 cipher kind (3-byte
    code, `lookup_sslv2`); placeholders for GREASE and unassigned codes."""
    from analyzer.dissect.tls.ciphersuites import lookup, lookup_sslv2

    return (lookup_sslv2(code) if code > 0xFFFF else lookup(code)).name


def cipher_kx(code: int) -> str | None:
    """Key exchange of a 2-byte suite ("ECDHE", "DHE", ...), None when the table does not say."""
    from analyzer.dissect.tls.ciphersuites import lookup

    return lookup(code).kx or None


def server_key_exchange(body: bytes, kx: str | None) -> KeyExchangeInfo:
    """A ServerKeyExchange read with the layout of the negotiated suite's key exchange `kx`
    (`HelloColumns.kx`; the message is not self-describing); sniffed when the suite's is not
    known. Raises ParseError."""
    return parse_server_key_exchange(body, kx or _sniff_kx(body))


def _sniff_kx(body: bytes) -> str:
    """Guess the ServerKeyExchange layout when the cipher table cannot say: ECDHE named_curve
    parameters start 0x03, group, point length; DHE starts with the 2-byte prime length."""
    if len(body) >= 4 and body[0] == 3 and 4 + body[3] <= len(body):
        plen = (body[0] << 8) | body[1]
        if not (2 + plen <= len(body) and plen >= 768):
            return "ECDHE"
    return "DHE"


class ServerColumns(NamedTuple):
    """A ServerHello's memoised columns and the negotiated facts read with them."""

    columns: dict[str, object]  # server_extensions, ja3s, ja3s_full, ja4s, ja4s_r
    version: str | None  # the negotiated version's name
    cipher: str
    group: str | None  # the key_share group's name


class HelloColumns:
    """Hello-derived columns, memoised by the hello's shape (one instance per dissector instance).

    `transport`: the JA4 / JA4S transport letter ("t" TLS over TCP, "d" DTLS, "q" QUIC); `ja4s`:
    compute JA4S (FoxIO License 1.1; see `fingerprints`).
    """

    __slots__ = ("_client", "_kx", "_server", "_shapes", "by_shape", "transport", "with_ja4s")

    def __init__(self, transport: str, *, ja4s: bool = True) -> None:
        self.transport = transport
        self.with_ja4s = ja4s
        self._client: dict[tuple[object, ...], dict[str, object]] = {}
        self._server: dict[tuple[object, ...], ServerColumns] = {}
        self._kx: dict[int, str | None] = {}  # cipher suite -> key exchange
        # Flows mode: the client columns by hello shape (`client_hello_shape`), for hellos that
        # parsed without a problem. `by_shape(shape)`: the columns of a shape seen before, else
        # None (the dict's own `get`: one C call per hello in the hot loop; a full memo is
        # emptied in place, so the bound method stays valid).
        self._shapes: dict[bytes, KnownShape] = {}
        self.by_shape = self._shapes.get

    def client(self, ch: ClientHello) -> dict[str, object]:
        """The columns a ClientHello's shape decides (shared, read-only dict)."""
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
        memo = self._client
        cols = memo.get(key)
        if cols is None:
            cols = _client_columns(ch, self.transport)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = cols
        return cols

    def server(self, sh: ServerHello) -> ServerColumns:
        """The columns a ServerHello's shape decides, with its version, cipher name and group."""
        key = (
            sh.legacy_version,
            sh.selected_version,
            sh.cipher_suite,
            sh.alpn_raw,
            sh.key_share_group,
            *map(_FIRST, sh.extensions),
        )
        memo = self._server
        found = memo.get(key)
        if found is None:
            cols: dict[str, object] = {
                "server_extensions": ",".join(map(str, map(_FIRST, sh.extensions))),
                "ja4s": None,
                "ja4s_r": None,
            }
            cols["ja3s"], cols["ja3s_full"] = ja3s(sh)
            if self.with_ja4s:
                cols["ja4s"], cols["ja4s_r"] = ja4s(sh, self.transport)
            group = group_name(sh.key_share_group) if sh.key_share_group is not None else None
            found = ServerColumns(cols, version_name(sh.version), cipher_name(sh.cipher_suite), group)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = found
        return found

    def kx(self, cipher_code: int | None) -> str | None:
        """Key exchange of the suite (`cipher_kx`), memoised: read once per ServerKeyExchange."""
        if cipher_code is None:
            return None
        memo = self._kx
        if cipher_code in memo:
            return memo[cipher_code]
        kx = cipher_kx(cipher_code)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[cipher_code] = kx
        return kx

    def remember_shape(self, shape: bytes, ch: ClientHello) -> KnownShape:
        """Keep what a well-formed hello's shape decides: its columns and the two flags a `tls` row
        reads (bounded: long shapes are not kept, a full memo is emptied; at most 2048 x 2 KiB)."""
        known = KnownShape(self.client(ch), ch.extended_master_secret, ch.session_ticket_data)
        if len(shape) <= _SHAPE_BYTES:
            shapes = self._shapes
            if len(shapes) >= _SHAPE_LIMIT:
                shapes.clear()
            shapes[shape] = known
        return known


class KnownShape(NamedTuple):
    """What a ClientHello's shape (`handshake.client_hello_shape`) decides, kept per shape: the
    hello's columns (`HelloColumns.client`), and whether it offers extended_master_secret and
    carries a session ticket (the shape keeps those extensions' types and whether the ticket is
    empty)."""

    columns: dict[str, object]
    extended_master_secret: bool
    session_ticket_data: bool


def _client_columns(ch: ClientHello, transport: str) -> dict[str, object]:
    cols: dict[str, object] = {
        "client_max_version": version_name(ch.max_version),
        "client_legacy_version": version_name(ch.legacy_version),
        "client_supported_versions": (
            ",".join([version_name(v) or "" for v in ch.supported_versions]) if ch.supported_versions else None
        ),
        # mandatory lists: "" when empty (the hello was read and offered none)
        "client_ciphers": ",".join([f"{c:06x}" for c in ch.cipher_suites]) if ch.sslv2 else _hexlist(ch.cipher_suites),
        "client_cipher_count": len(ch.cipher_suites),
        "compression_methods": ",".join(map(str, ch.compression_methods)),
        "client_extensions": ",".join(map(str, map(_FIRST, ch.extensions))),
        # optional extensions: NA when absent or empty
        "alpn_offered": ",".join(ch.alpn) if ch.alpn else None,
        "supported_groups": ",".join(map(group_name, ch.supported_groups)) if ch.supported_groups else None,
        "ec_point_formats": ",".join(map(str, ch.ec_point_formats)) if ch.ec_point_formats else None,
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
    if not ch.sslv2:  # JA3 and JA4 are not defined for an SSL 2.0 hello
        cols["ja3"], cols["ja3_full"] = ja3(ch)
        cols["ja4"], cols["ja4_r"] = ja4(ch, transport)
    return cols


def selected_group(sh: ServerHello | None, ske: KeyExchangeInfo | None, hrr: ServerHello | None) -> str | None:
    """The key exchange group: the ServerHello's key_share, else the ServerKeyExchange's named
    curve, else the group a HelloRetryRequest asked for."""
    if sh is not None and sh.key_share_group is not None:
        return group_name(sh.key_share_group)
    if ske is not None and ske.named_group is not None:
        return group_name(ske.named_group)
    if hrr is not None and hrr.key_share_group is not None:
        return group_name(hrr.key_share_group)
    return None


def hello_row(
    row: dict[str, object],
    ch: ClientHello | ShapedHello | None,
    ccols: dict[str, object] | None,
    sh: ServerHello | None,
    scols: ServerColumns | None,
    hrr: ServerHello | None,
    ske: KeyExchangeInfo | None,
) -> None:
    """Fill the hello-derived columns of a `tls` row: `ccols` / `scols` are `HelloColumns`' columns
    of `ch` / `sh` (the final ServerHello, not a HelloRetryRequest)."""
    if ccols is not None:
        row.update(ccols)
    if ch is not None:
        row["server_name"] = ch.server_name
        row["session_id_len"] = len(ch.session_id)
        row["extended_master_secret"] = ch.extended_master_secret and (sh is None or sh.extended_master_secret)
    if scols is not None and sh is not None:
        row.update(scols.columns)
        row["version"] = scols.version
        row["cipher"] = scols.cipher
        row["cipher_code"] = sh.cipher_suite
        row["alpn"] = sh.alpn
    row["selected_group"] = selected_group(sh, ske, hrr)
    row["dh_bits"] = ske.dh_bits if ske is not None else None
    row["hello_retry_request"] = hrr is not None


def resumed(ch: ClientHello | ShapedHello | None, sh: ServerHello | None, tls13: bool, client_cke: bool,
            client_ccs: bool) -> bool:
    """Was the session resumed? TLS 1.3: the ServerHello selected a PSK; before: the server echoed
    the client's non-empty session id, or the client offered a ticket and changed cipher spec
    without a ClientKeyExchange (Zeek's rule: ticket resumption with an empty or new session id)."""
    if ch is None or sh is None:
        return False
    if tls13:
        return sh.psk_selected
    if sh.session_id and sh.session_id == ch.session_id:
        return True
    return bool(ch.session_ticket_data) and not client_cke and client_ccs


def alert_columns(row: dict[str, object], alert: tuple[int, int, str] | None) -> None:
    """alert_level / alert_description / alert_by of the session's alert (level, description, who)."""
    if alert is not None:
        row["alert_level"] = alert_level_name(alert[0])
        row["alert_description"] = alert_description_name(alert[1])
        row["alert_by"] = alert[2]


def flow_columns(
    app_protocol: str,
    *,
    encrypted: bool | None,
    established: bool | None,
    version: str | None,
    cipher: str | None,
    server_name: str | None,
    alpn: str | None,
    ccols: dict[str, object] | None,
    scols: ServerColumns | None,
    cert_sha256: str | None = None,
    leaf: Mapping[str, Any] | None = None,
    incomplete: bool | None = None,
) -> dict[str, object]:
    """The TLS-family columns of a flow (`FLOW_COLUMNS`, every key, in that order); `leaf`: the
    server's leaf certificate row (`x509.CertificateCache.parse`), None when none was seen;
    `incomplete`: a handshake message was cut (True also sets the flow's `truncated`), None when
    the dissector cannot tell."""
    if leaf is None:
        not_after = key_bits = self_signed = None
    else:
        not_after, key_bits, self_signed = leaf.get("not_after"), leaf.get("key_bits"), leaf.get("self_signed")
    return {
        "app_protocol": app_protocol,
        "encrypted": encrypted,
        "protection": protection_of_tls_family(app_protocol),
        "undecided_reason": None if encrypted is not None else "handshake_incomplete",
        "tls_version": version,
        "tls_client_max_version": ccols["client_max_version"] if ccols is not None else None,
        "tls_cipher": cipher,
        "tls_server_name": server_name,
        "tls_alpn": alpn,
        "ja3": ccols["ja3"] if ccols is not None else None,
        "ja3s": scols.columns["ja3s"] if scols is not None else None,
        "ja4": ccols["ja4"] if ccols is not None else None,
        "ja4s": scols.columns["ja4s"] if scols is not None else None,
        "tls_established": established,
        "cert_sha256": cert_sha256,
        "cert_not_after": not_after,
        "cert_key_bits": key_bits,
        "cert_self_signed": self_signed,
        "tls_incomplete": incomplete,
        "truncated": True if incomplete else None,
    }


def session_columns(
    *,
    chain: list[str],
    sni_matches: bool | None,
    alert: tuple[int, int, str] | None,
    ccols: dict[str, object] | None,
    scols: ServerColumns | None,
    sslv2: bool,
) -> dict[str, object]:
    """The session facts of a flow (`SESSION_COLUMNS`, every key, in that order: the optional column
    group `schema.SESSION_FACTS`, made only in runs that read it), as the session's `tls` row has
    them: `chain` (the server's certificate fingerprints, leaf first), `sni_matches`, `alert`
    (level, description, who: `alert_columns`), the hellos' supported versions and extensions, and
    whether the session was SSL 2.0."""
    if alert is None:
        alert_level = alert_description = alert_by = None
    else:
        alert_level, alert_description, alert_by = (alert_level_name(alert[0]), alert_description_name(alert[1]),
                                                    alert[2])
    return {
        "cert_chain": ",".join(chain) if chain else None,
        "tls_sni_matches_cert": sni_matches,
        "tls_alert_level": alert_level,
        "tls_alert_description": alert_description,
        "tls_alert_by": alert_by,
        "tls_client_supported_versions": ccols["client_supported_versions"] if ccols is not None else None,
        "tls_server_extensions": scols.columns["server_extensions"] if scols is not None else None,
        "tls_sslv2": sslv2,
    }
