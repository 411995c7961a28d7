"""TLS / DTLS handshake message parsers: pure functions over one message body.

`parse_client_hello(body)` and `parse_server_hello(body)` take the handshake message *body*: the bytes
after the 4-byte TLS handshake header (type, 24-bit length) or after the 12-byte DTLS handshake header.
With `dtls=True` the DTLS `cookie` field (after `session_id`) is read too. QUIC carries the TLS 1.3
ClientHello unchanged inside CRYPTO frames, so QUIC callers use `dtls=False`.

The parsers raise only `analyzer.errors.ParseError` (a body that contradicts its own length fields)
and never allocate by a length field before checking it against the bytes present. Unknown codes
(GREASE included) are kept as numbers; nothing here raises KeyError.

Also here: `parse_sslv2_client_hello` (the SSL 2.0-compatible hello that old clients send inside an
SSLv2 record), `parse_certificate_list` (Certificate message -> DER list), `parse_server_key_exchange`
(named curve / DH prime size) and `parse_alert`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TypeVar

from analyzer.dissect.tls.constants import GREASE, HRR_RANDOM, is_grease
from analyzer.errors import ParseError

__all__ = [
    "ClientHello",
    "HandshakeMemo",
    "KeyExchangeInfo",
    "ServerHello",
    "client_hello_shape",
    "parse_alert",
    "parse_certificate_list",
    "parse_client_hello",
    "parse_server_hello",
    "parse_server_key_exchange",
    "parse_sslv2_client_hello",
    "u16_list",
]

_U16 = struct.Struct(">H")
_HH = struct.Struct(">HH")
_U8U16 = struct.Struct(">BH")
_U16U8 = struct.Struct(">HB")
# Unpackers of n big-endian uint16 values, made once at import for the usual list lengths (a pure
# constant table: nothing is added while dissecting); longer lists get a Struct made on the spot.
_U16_FORMATS: tuple[struct.Struct, ...] = tuple(struct.Struct(f">{n}H") for n in range(257))
_T = TypeVar("_T")

# Extension type codes used below (IANA "TLS ExtensionType Values").
EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_EXTENDED_MASTER_SECRET = 23
EXT_SESSION_TICKET = 35
EXT_PRE_SHARED_KEY = 41
EXT_EARLY_DATA = 42
EXT_SUPPORTED_VERSIONS = 43
EXT_PSK_KEY_EXCHANGE_MODES = 45
EXT_KEY_SHARE = 51
EXT_KEY_SHARE_DRAFT = 40  # key_share in TLS 1.3 drafts before -23
EXT_QUIC_TRANSPORT_PARAMETERS = 57
EXT_QUIC_TRANSPORT_PARAMETERS_DRAFT = 0xFFA5
EXT_ECH = 0xFE0D
EXT_ESNI = 0xFFCE  # the pre-ECH encrypted_server_name draft
EXT_RENEGOTIATION_INFO = 0xFF01
SCSV_RENEGOTIATION = 0x00FF


def u16_list(data: bytes | memoryview, offset: int, nbytes: int) -> list[int]:
    """`nbytes // 2` big-endian uint16 values at `offset` (caller has checked the bounds)."""
    n = nbytes >> 1
    st = _U16_FORMATS[n] if n <= 256 else struct.Struct(f">{n}H")
    return list(st.unpack_from(data, offset))


def _vec16_u16(ext: bytes, what: str) -> list[int]:
    """A `uint16 list<2..2^16-2>` extension body: 2-byte byte length, then uint16 values."""
    if len(ext) < 2:
        raise ParseError(f"{what}: body shorter than its length field")
    (n,) = _U16.unpack_from(ext, 0)
    if n > len(ext) - 2:
        raise ParseError(f"{what}: list length {n} exceeds the {len(ext) - 2} bytes present")
    if n & 1:
        raise ParseError(f"{what}: odd list length {n}")
    return u16_list(ext, 2, n)


def _alpn_list(ext: bytes) -> list[bytes]:
    if len(ext) < 2:
        raise ParseError("alpn: body shorter than its length field")
    (n,) = _U16.unpack_from(ext, 0)
    end = 2 + n
    if end > len(ext):
        raise ParseError(f"alpn: list length {n} exceeds the {len(ext) - 2} bytes present")
    out = []
    pos = 2
    while pos < end:
        ln = ext[pos]
        pos += 1
        if pos + ln > end:
            raise ParseError("alpn: protocol name runs past the list")
        out.append(ext[pos : pos + ln])
        pos += ln
    return out


def _server_name(ext: bytes) -> str | None:
    """First host_name (type 0) of a server_name extension body; None for an empty body."""
    if not ext:
        return None  # a server's empty acknowledgement
    if len(ext) < 2:
        raise ParseError("server_name: body shorter than its length field")
    (n,) = _U16.unpack_from(ext, 0)
    end = 2 + n
    if end > len(ext):
        raise ParseError(f"server_name: list length {n} exceeds the {len(ext) - 2} bytes present")
    pos = 2
    while pos + 3 <= end:
        kind, ln = _U8U16.unpack_from(ext, pos)
        pos += 3
        if pos + ln > end:
            raise ParseError("server_name: name runs past the list")
        if kind == 0:
            return ext[pos : pos + ln].decode("utf-8", "backslashreplace")
        pos += ln
    return None


def _decode_alpn(raw: list[bytes]) -> list[str]:
    return [p.decode("utf-8", "backslashreplace") for p in raw]


@dataclass(slots=True)
class ClientHello:
    """A parsed ClientHello (TLS, DTLS, QUIC-carried or SSLv2-compatible)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    compression_methods: list[int]
    extensions: list[tuple[int, bytes]] = field(default_factory=list)  # (type, raw body), in order
    cookie: bytes = b""  # DTLS only
    # Conveniences parsed from the extensions (empty / None when absent).
    server_name: str | None = None
    alpn: list[str] = field(default_factory=list)
    alpn_raw: list[bytes] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    supported_groups: list[int] = field(default_factory=list)
    ec_point_formats: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)
    key_share_groups: list[int] = field(default_factory=list)
    psk_key_exchange_modes: list[int] = field(default_factory=list)
    psk: bool = False  # pre_shared_key extension offered (TLS 1.3 resumption / external PSK)
    early_data: bool = False
    ech: bool = False  # encrypted_client_hello (0xfe0d) or the older ESNI draft (0xffce)
    session_ticket: bool = False  # session_ticket extension present (support)
    session_ticket_data: bool = False  # ... carrying a ticket (a resumption attempt)
    renegotiation_info: bool = False  # extension present or the SCSV cipher offered (RFC 5746)
    extended_master_secret: bool = False
    quic_transport_parameters: bytes | None = None
    sslv2: bool = False  # sent as an SSL 2.0-compatible hello (cipher_suites then hold 3-byte kinds)
    # Problems inside single extensions (the hello itself parsed); "ext <type>: reason".
    errors: list[str] = field(default_factory=list)

    @property
    def extension_types(self) -> list[int]:
        return [t for t, _ in self.extensions]

    @property
    def grease(self) -> bool:
        """Any GREASE value in ciphers, extensions, groups, versions or key shares."""
        return bool(
            GREASE.intersection(self.cipher_suites)
            or GREASE.intersection(self.extension_types)
            or GREASE.intersection(self.supported_groups)
            or GREASE.intersection(self.supported_versions)
            or GREASE.intersection(self.key_share_groups)
        )

    @property
    def max_version(self) -> int:
        """Highest version offered: supported_versions (GREASE ignored) or else legacy_version."""
        best = 0
        for v in self.supported_versions:
            if not is_grease(v) and _version_rank(v) > _version_rank(best):
                best = v
        return best if best else self.legacy_version


def _version_rank(v: int) -> int:
    """Order versions so DTLS (0xfeff, 0xfefd, 0xfefc: smaller is newer) compares with TLS."""
    if v >> 8 == 0xFE:
        return 0x0300 + (0xFF - (v & 0xFF))  # 0xfeff->0x300, 0xfefd->0x302, 0xfefc->0x303
    if v == 0x0100:  # DTLS 1.0 as OpenSSL pre-standard
        return 0x0300
    return v


def _extensions_block(data: bytes, pos: int, end: int, who: str, errors: list[str]) -> tuple[bytes, int]:
    """(the extensions block, its offset) for the block from `pos` to `end`. Lenient like
    Wireshark: a cut or overrunning block is clipped to the bytes present, the problem goes to
    `errors`; no block gives b""."""
    if pos == end:
        return b"", pos
    if pos + 2 > end:
        errors.append(f"{who}: extensions length field cut (at byte {pos})")
        return b"", pos
    (n,) = _U16.unpack_from(data, pos)
    base = pos + 2
    stop = base + n
    if stop > end:
        errors.append(f"{who}: extensions length {n} exceeds the {end - base} bytes present (at byte {pos})")
        stop = end
    elif stop < end:
        errors.append(f"{who}: {end - stop} bytes after the extensions block (at byte {stop})")
    # A copy of the block: unpack_from cannot read past it, so a cut extension header raises.
    return data[base:stop], base


def _parse_extensions(data: bytes, pos: int, end: int, who: str, errors: list[str]) -> list[tuple[int, bytes]]:
    """The extensions block from `pos` to `end`. Lenient like Wireshark: a block that is cut or
    overruns keeps the extensions read before the problem, and the problem goes to `errors`."""
    exts: list[tuple[int, bytes]] = []
    block, base = _extensions_block(data, pos, end, who, errors)
    unpack = _HH.unpack_from
    append = exts.append
    p = 0
    size = len(block)
    try:
        while p < size:
            etype, elen = unpack(block, p)
            nxt = p + 4 + elen
            if nxt > size:
                errors.append(f"{who}: extension {etype} length {elen} runs past the block (at byte {base + p})")
                break
            append((etype, block[p + 4 : nxt]))
            p = nxt
    except struct.error:
        errors.append(f"{who}: extension header cut (at byte {base + p})")
    return exts


# Memos of pure extension-body parses, keyed by the body bytes: a client library sends the same
# supported_groups / signature_algorithms / ALPN / supported_versions bodies on every connection,
# so one dict lookup replaces the parse. Only successful parses are kept (a malformed body takes
# the slow path and reports its error every time). Bounded: long bodies are not kept and a full
# memo is emptied, so hostile input only makes it reset. Values are tuples; callers copy them
# into fresh lists so hellos never share a mutable list.
#
# ServerHellos are memoised by everything but their random and session id: a server answers a
# given client library with the same ServerHello bytes after the session id on every connection.
# TLS 1.3 ServerHellos carry a fresh key_share value each time, so they are memoised apart, by
# their bytes with that value cut out (group and length kept); the value is put back on a hit.
# Measured on the benchmark capture: 2.7 us per ServerHello with the memo, 3.4 us without; 79% of
# the corpus's TLS 1.3 ServerHellos hit. (A ClientHello memo was measured too and dropped:
# clients' hellos repeat less, its misses cost more than its hits saved, 11-15 us against 9.3 us
# per hello.) Only hellos without errors are kept. Bounded: long hellos are not kept, a full memo
# is emptied.
_MEMO_BODY = 512
_MEMO_ENTRIES = 4096
_HELLO_MEMO_BODY = 2048
_HELLO_MEMO_ENTRIES = 1024
_HelloKey = tuple[bytes, int, bytes]  # legacy version bytes, session id length, bytes after it
_MaskedKey = tuple[_HelloKey, int, int, int]  # key, key_share index, its body's start and end


class HandshakeMemo:
    """The parsers' memos (see above). Each dissector instance owns one and passes it to
    `parse_client_hello` / `parse_server_hello`; nothing is memoised at module level, so the
    analyses of one process (or one Dask worker) share no state. Without a memo the parsers
    parse every body."""

    __slots__ = ("alpn", "sh", "sh_ks", "vec16", "versions")

    def __init__(self) -> None:
        self.vec16: dict[bytes, tuple[int, ...]] = {}  # supported_groups and signature_algorithms
        self.versions: dict[bytes, tuple[int, ...]] = {}
        self.alpn: dict[bytes, tuple[tuple[bytes, ...], tuple[str, ...]]] = {}
        self.sh: dict[_HelloKey, ServerHello] = {}
        self.sh_ks: dict[_HelloKey, tuple[ServerHello, int]] = {}  # (hello, index of its key_share)


def _remember(memo: dict[bytes, _T], key: bytes, value: _T) -> _T:
    if len(key) <= _MEMO_BODY:
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        memo[key] = value
    return value


def _vec16_memo(ext: bytes, what: str, memo: dict[bytes, tuple[int, ...]] | None) -> tuple[int, ...]:
    if memo is None:
        return tuple(_vec16_u16(ext, what))
    found = memo.get(ext)
    if found is None:
        found = _remember(memo, ext, tuple(_vec16_u16(ext, what)))
    return found


def _versions(ext: bytes, memo: dict[bytes, tuple[int, ...]] | None) -> tuple[int, ...]:
    """A ClientHello supported_versions body: 1-byte byte length, then uint16 versions."""
    found = memo.get(ext) if memo is not None else None
    if found is None:
        if not ext or ext[0] > len(ext) - 1 or ext[0] & 1:
            raise ParseError("supported_versions: bad list length")
        found = tuple(u16_list(ext, 1, ext[0]))
        if memo is not None:
            _remember(memo, ext, found)
    return found


def _alpn_memo(
    ext: bytes, memo: dict[bytes, tuple[tuple[bytes, ...], tuple[str, ...]]] | None
) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """(raw names, decoded names) of an ALPN body."""
    found = memo.get(ext) if memo is not None else None
    if found is None:
        raw = _alpn_list(ext)
        found = (tuple(raw), tuple(_decode_alpn(raw)))
        if memo is not None:
            _remember(memo, ext, found)
    return found


def _hello_key(data: bytes) -> _HelloKey | None:
    """(legacy version bytes, session id length, the bytes after the session id), or None when
    the body is too short or long for it or its session id length is invalid."""
    end = len(data)
    if end < 38 or end > _HELLO_MEMO_BODY:
        return None
    sid_len = data[34]
    if sid_len > 32 or 35 + sid_len > end:
        return None
    return (data[:2], sid_len, data[35 + sid_len :])


def _masked_key(key: _HelloKey) -> _MaskedKey | None:
    """The memo key of a ServerHello whose `_hello_key` is `key`, with the key_exchange value of
    its (first) key_share extension cut out; the key_share's index among the extensions and where
    its body is in `key[2]` (the bytes after the session id: cipher suite, compression method,
    extensions block). None when there is no key_share value to cut, or the block or the
    key_share does not tile exactly (so only well-formed hellos share a key)."""
    rest = key[2]
    end = len(rest)
    if end < 5 or _U16.unpack_from(rest, 3)[0] != end - 5:
        return None
    unpack = _HH.unpack_from
    p = 5
    index = 0
    while p + 4 <= end:
        etype, elen = unpack(rest, p)
        body = p + 4
        nxt = body + elen
        if nxt > end:
            return None
        if etype == EXT_KEY_SHARE:
            # (group, key length, key); a HelloRetryRequest's body is a lone group: not memoised
            if elen < 4 or 4 + _U16.unpack_from(rest, body + 2)[0] != elen:
                return None
            return (key[0], key[1], rest[: body + 4] + rest[nxt:]), index, body, nxt
        p = nxt
        index += 1
    return None


def _remember_hello(memo: dict[_HelloKey, _T], key: _HelloKey, hello: _T) -> None:
    if len(memo) >= _HELLO_MEMO_ENTRIES:
        memo.clear()
    memo[key] = hello


_SNI_HEAD = struct.Struct(">HBH")  # server_name list length, name type, name length


def parse_client_hello(
    body: bytes | bytearray | memoryview, *, dtls: bool = False, memo: HandshakeMemo | None = None
) -> ClientHello:
    """Parse a ClientHello message body. Raises ParseError when the body contradicts itself.

    A malformed extensions block or *individual* extension (say a supported_groups with an odd
    length) does not fail the hello: the extensions read before the problem are kept (as Wireshark
    does), the convenience field stays empty and the reason is appended to `ClientHello.errors`.
    """
    return _parse_client_hello(bytes(body), dtls, memo)


def _parse_client_hello(data: bytes, dtls: bool, memo: HandshakeMemo | None) -> ClientHello:
    vec16, alpn_memo, versions_memo = (memo.vec16, memo.alpn, memo.versions) if memo is not None else (None, None, None)
    end = len(data)
    if end < 38:
        raise ParseError(f"client hello: {end} bytes, shorter than version+random+session id", 0)
    (legacy_version,) = _U16.unpack_from(data, 0)
    random = data[2:34]
    sid_len = data[34]
    pos = 35
    if sid_len > 32 or pos + sid_len > end:
        raise ParseError(f"client hello: session id length {sid_len} invalid", 34)
    session_id = data[pos : pos + sid_len]
    pos += sid_len
    cookie = b""
    if dtls:
        if pos >= end:
            raise ParseError("client hello: DTLS cookie length missing", pos)
        clen = data[pos]
        pos += 1
        if pos + clen > end:
            raise ParseError(f"client hello: cookie length {clen} exceeds the bytes present", pos - 1)
        cookie = data[pos : pos + clen]
        pos += clen
    if pos + 2 > end:
        raise ParseError("client hello: cipher suites length missing", pos)
    (cs_len,) = _U16.unpack_from(data, pos)
    pos += 2
    if cs_len & 1 or pos + cs_len > end:
        raise ParseError(f"client hello: cipher suites length {cs_len} invalid", pos - 2)
    ciphers = u16_list(data, pos, cs_len)
    pos += cs_len
    if pos >= end:
        raise ParseError("client hello: compression methods length missing", pos)
    cm_len = data[pos]
    pos += 1
    if pos + cm_len > end:
        raise ParseError(f"client hello: compression length {cm_len} exceeds the bytes present", pos - 1)
    compression = list(data[pos : pos + cm_len])
    pos += cm_len
    errors: list[str] = []
    block, base = _extensions_block(data, pos, end, "client hello", errors)

    # One pass over the extensions: split the block and read the conveniences (into locals; the
    # object is built once). Problems inside single extensions are reported after those of the
    # block itself, as when the block was split first.
    exts: list[tuple[int, bytes]] = []
    ext_errors: list[str] = []
    server_name: str | None = None
    alpn_raw: tuple[bytes, ...] = ()
    alpn: tuple[str, ...] = ()
    versions: list[int] = []
    groups: list[int] = []
    formats: list[int] = []
    sigalgs: list[int] = []
    shares: list[int] = []
    psk_modes: list[int] = []
    psk = early = ech = ticket = ticket_data = ems = False
    reneg = SCSV_RENEGOTIATION in ciphers
    quic_tp: bytes | None = None
    codes = _CH_CODES
    unpack = _HH.unpack_from
    append = exts.append
    size = len(block)
    p = 0
    while p < size:
        try:
            etype, elen = unpack(block, p)
        except struct.error:
            errors.append(f"client hello: extension header cut (at byte {base + p})")
            break
        nxt = p + 4 + elen
        if nxt > size:
            errors.append(f"client hello: extension {etype} length {elen} runs past the block (at byte {base + p})")
            break
        ext = block[p + 4 : nxt]
        append((etype, ext))
        p = nxt
        code = codes.get(etype)
        if code is None:
            continue
        try:
            # Codes 1..9 carry a body to read, 10.. are flags; split so the usual extension takes
            # a few comparisons.
            if code < 5:
                if code == 1:  # server_name
                    if server_name is None:
                        server_name = _sni(ext)
                elif code == 2:  # supported_groups
                    groups = list(_vec16_memo(ext, "supported_groups", vec16))
                elif code == 3:  # ec_point_formats
                    if not ext or ext[0] > len(ext) - 1:
                        raise ParseError("ec_point_formats: length exceeds the bytes present")
                    formats = list(ext[1 : 1 + ext[0]])
                else:  # signature_algorithms
                    sigalgs = list(_vec16_memo(ext, "signature_algorithms", vec16))
            elif code < 10:
                if code == 5:  # application_layer_protocol_negotiation
                    alpn_raw, alpn = _alpn_memo(ext, alpn_memo)
                elif code == 6:  # supported_versions
                    versions = list(_versions(ext, versions_memo))
                elif code == 7:  # key_share
                    shares = _key_share_groups(ext)
                elif code == 9:  # psk_key_exchange_modes
                    if ext and ext[0] <= len(ext) - 1:
                        psk_modes = list(ext[1 : 1 + ext[0]])
                elif not shares:  # key_share of TLS 1.3 drafts before -23
                    shares = _key_share_groups(ext)
            elif code == 15:
                ems = True
            elif code == 14:
                reneg = True
            elif code == 13:
                ticket = True
                ticket_data = len(ext) > 0
            elif code == 10:
                psk = True
            elif code == 11:
                early = True
            elif code == 12:
                ech = True
            elif code == 16 or quic_tp is None:  # 16 or 17: the final RFC 9001 code wins
                quic_tp = ext
        except ParseError as exc:
            ext_errors.append(f"ext {etype}: {exc}")
    if ext_errors:
        errors += ext_errors
    return ClientHello(
        legacy_version,
        random,
        session_id,
        ciphers,
        compression,
        exts,
        cookie,
        server_name,
        list(alpn),
        list(alpn_raw),
        versions,
        groups,
        formats,
        sigalgs,
        shares,
        psk_modes,
        psk,
        early,
        ech,
        ticket,
        ticket_data,
        reneg,
        ems,
        quic_tp,
        False,
        errors,
    )


def _sni(ext: bytes) -> str | None:
    """`_server_name`, with a fast path for the usual body: one host_name filling the list."""
    size = len(ext)
    if size >= 5:
        n, kind, ln = _SNI_HEAD.unpack_from(ext, 0)
        if kind == 0 and n == size - 2 and ln == size - 5:
            return ext[5:].decode("utf-8", "backslashreplace")
    return _server_name(ext)


_CH_CODES = {
    EXT_SERVER_NAME: 1,
    EXT_SUPPORTED_GROUPS: 2,
    EXT_EC_POINT_FORMATS: 3,
    EXT_SIGNATURE_ALGORITHMS: 4,
    EXT_ALPN: 5,
    EXT_SUPPORTED_VERSIONS: 6,
    EXT_KEY_SHARE: 7,
    EXT_KEY_SHARE_DRAFT: 8,
    EXT_PSK_KEY_EXCHANGE_MODES: 9,
    EXT_PRE_SHARED_KEY: 10,
    EXT_EARLY_DATA: 11,
    EXT_ECH: 12,
    EXT_ESNI: 12,
    EXT_SESSION_TICKET: 13,
    EXT_RENEGOTIATION_INFO: 14,
    EXT_EXTENDED_MASTER_SECRET: 15,
    EXT_QUIC_TRANSPORT_PARAMETERS: 16,
    EXT_QUIC_TRANSPORT_PARAMETERS_DRAFT: 17,
}


def _key_share_groups(ext: bytes) -> list[int]:
    """Groups of a ClientHello key_share body: uint16 length, then (group, uint16 len, key) entries."""
    if len(ext) < 2:
        raise ParseError("key_share: body shorter than its length field")
    (n,) = _U16.unpack_from(ext, 0)
    end = 2 + n
    if end > len(ext):
        raise ParseError(f"key_share: list length {n} exceeds the {len(ext) - 2} bytes present")
    groups = []
    unpack = _HH.unpack_from
    pos = 2
    while pos < end:
        if pos + 4 > end:
            raise ParseError("key_share: entry header cut")
        g, kl = unpack(ext, pos)
        pos += 4 + kl
        if pos > end:
            raise ParseError("key_share: key runs past the list")
        groups.append(g)
    return groups


# --- the shape of a ClientHello ------------------------------------------------------------------
# What a client library sends changes from connection to connection only in its random, session id,
# host name, key_share values, padding, and PSK / ticket / ECH / QUIC transport parameter bodies.
# The shape is the hello's bytes with those cut out: two hellos of one shape parse to the same
# ClientHello but for those fields, so everything derived from the rest (versions, cipher and
# extension lists, JA3, JA4) can be computed once per shape. This must stay in step with
# `_parse_client_hello`: a part is cut only when the parser reads nothing from it but what the
# shape keeps (a flag, the key_share groups, where the host name is).

_SHAPE_MAX_BODY = 16384  # no extension of a shorter hello has length 0xffff: the cut marks below stay unambiguous
_CUT = b"\xff\xff"  # in place of a cut extension's length: type, 0xffff, what is kept
_SHAPE_SNI, _SHAPE_KEY_SHARE, _SHAPE_TICKET, _SHAPE_FLAG = 1, 2, 3, 4
_SHAPE_CUTS = {
    EXT_SERVER_NAME: _SHAPE_SNI,
    EXT_KEY_SHARE: _SHAPE_KEY_SHARE,
    EXT_SESSION_TICKET: _SHAPE_TICKET,
    21: _SHAPE_FLAG,  # padding: never read
    EXT_PRE_SHARED_KEY: _SHAPE_FLAG,
    EXT_ECH: _SHAPE_FLAG,
    EXT_ESNI: _SHAPE_FLAG,
    EXT_QUIC_TRANSPORT_PARAMETERS: _SHAPE_FLAG,
    EXT_QUIC_TRANSPORT_PARAMETERS_DRAFT: _SHAPE_FLAG,
}


def client_hello_shape(data: bytes) -> tuple[bytes, int, int] | None:
    """(shape, host name start, host name end) of a TLS ClientHello body (the name is
    `data[start:end]`; 0, 0 when there is no server_name extension).

    The shape keeps the legacy version, the cipher suite and compression lists, and every
    extension in order: verbatim, or for a cut one its type, 0xffff and what the parser reads of
    it (the key_share groups, whether the session ticket is empty). None when the hello is not
    well-formed wherever the shape frames or cuts it (lengths that do not tile exactly, a second
    or unusual server_name, a key_share with trailing bytes), when it has no extensions block,
    or when it is longer than 16 KiB: such hellos take the full parse, which reports their
    problems. Never raises.
    """
    end = len(data)
    if end < 38 or end > _SHAPE_MAX_BODY:
        return None
    sid_len = data[34]
    head = 35 + sid_len
    if sid_len > 32 or head + 2 > end:
        return None
    (cs_len,) = _U16.unpack_from(data, head)
    p = head + 2 + cs_len
    if cs_len & 1 or p >= end:
        return None
    p += 1 + data[p]  # compression methods
    if p + 2 > end or _U16.unpack_from(data, p)[0] != end - p - 2:
        return None
    parts = [data[:2], data[head:p]]
    append = parts.append
    cuts = _SHAPE_CUTS
    unpack = _HH.unpack_from
    sni_start = sni_end = 0
    q = run = p + 2  # run: where the verbatim extensions not yet in `parts` start
    while q < end:
        if q + 4 > end:
            return None
        etype, elen = unpack(data, q)
        body = q + 4
        nxt = body + elen
        if nxt > end:
            return None
        cut = cuts.get(etype)
        if cut is not None:
            append(data[run : q + 2] + _CUT)  # the verbatim run, then this extension's type
            if cut == _SHAPE_SNI:
                # only the form the parser reads straight (one host_name filling the list), once
                if sni_end or elen < 5:
                    return None
                n, kind, ln = _SNI_HEAD.unpack_from(data, body)
                if kind or n != elen - 2 or ln != elen - 5:
                    return None
                sni_start, sni_end = body + 5, nxt
            elif cut == _SHAPE_KEY_SHARE:
                if elen < 2 or _U16.unpack_from(data, body)[0] != elen - 2:
                    return None
                groups = []
                e = body + 2
                while e < nxt:
                    if e + 4 > nxt:
                        return None
                    e2 = e + 4 + _U16.unpack_from(data, e + 2)[0]
                    if e2 > nxt:
                        return None
                    groups.append(data[e : e + 2])
                    e = e2
                if len(groups) > 255:
                    return None
                append(bytes((len(groups),)))
                parts += groups
            elif cut == _SHAPE_TICKET:
                append(b"\x01" if elen else b"\x00")
            run = nxt
        q = nxt
    append(data[run:end])
    return b"".join(parts), sni_start, sni_end


def parse_sslv2_client_hello(record_body: bytes | bytearray | memoryview) -> ClientHello:
    """Parse an SSL 2.0 CLIENT-HELLO (RFC 6101 appendix E / draft-hickman): the bytes after the
    2- or 3-byte SSLv2 record header, starting at the message type byte (1).

    `cipher_suites` hold the 3-byte SSLv2 cipher kinds as integers (0x010080 ...; a TLS suite
    0x00c02f appears as 0xc02f); `random` is the challenge; no extensions exist.
    """
    data = bytes(record_body)
    if len(data) < 9:
        raise ParseError("sslv2 client hello: header cut", 0)
    if data[0] != 1:
        raise ParseError(f"sslv2: message type {data[0]} is not CLIENT-HELLO", 0)
    (version,) = _U16.unpack_from(data, 1)
    (cs_len,) = _U16.unpack_from(data, 3)
    (sid_len,) = _U16.unpack_from(data, 5)
    (ch_len,) = _U16.unpack_from(data, 7)
    pos = 9
    if cs_len % 3 or sid_len > 32 or ch_len > 32 or pos + cs_len + sid_len + ch_len > len(data):
        raise ParseError("sslv2 client hello: lengths invalid or exceed the record", 3)
    cs = data[pos : pos + cs_len]
    ciphers = [(cs[i] << 16) | (cs[i + 1] << 8) | cs[i + 2] for i in range(0, cs_len, 3)]
    pos += cs_len
    session_id = data[pos : pos + sid_len]
    pos += sid_len
    challenge = data[pos : pos + ch_len]
    ch = ClientHello(version, challenge, session_id, ciphers, [0], [], sslv2=True)
    if SCSV_RENEGOTIATION in ciphers:
        ch.renegotiation_info = True
    return ch


@dataclass(slots=True)
class ServerHello:
    """A parsed ServerHello or HelloRetryRequest (same wire format, special random)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression: int
    extensions: list[tuple[int, bytes]] = field(default_factory=list)
    selected_version: int | None = None  # from supported_versions (TLS 1.3+)
    is_hello_retry_request: bool = False
    alpn: str | None = None
    alpn_raw: bytes | None = None
    key_share_group: int | None = None  # key_share group (HRR: the group the server asks for)
    psk_selected: bool = False  # pre_shared_key present: the server accepted a PSK (1.3 resumption)
    session_ticket: bool = False  # empty session_ticket ext: a NewSessionTicket will follow
    renegotiation_info: bool = False
    extended_master_secret: bool = False
    ec_point_formats: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def version(self) -> int:
        """The negotiated version: supported_versions when present, else legacy_version."""
        return self.selected_version if self.selected_version is not None else self.legacy_version

    @property
    def extension_types(self) -> list[int]:
        return [t for t, _ in self.extensions]


def parse_server_hello(
    body: bytes | bytearray | memoryview, *, dtls: bool = False, memo: HandshakeMemo | None = None
) -> ServerHello:
    """Parse a ServerHello / HelloRetryRequest body (`dtls` is accepted for symmetry: the DTLS
    ServerHello has no cookie, so the layout is the same)."""
    data = bytes(body)
    # Not for TLS 1.3 drafts before -22: their ServerHello has no session id.
    key = None
    if memo is not None and not (data[:1] == b"\x7f" and data[1:2] < b"\x16"):
        key = _hello_key(data)
    masked: _MaskedKey | None = None
    if memo is not None and key is not None:
        seen = memo.sh.get(key)
        share_index = -1
        if seen is None:
            masked = _masked_key(key)
            if masked is not None:
                found = memo.sh_ks.get(masked[0])
                if found is not None:
                    seen, share_index = found
        if seen is not None:
            random = data[2:34]
            extensions = list(seen.extensions)
            if share_index >= 0 and masked is not None:
                extensions[share_index] = (EXT_KEY_SHARE, key[2][masked[2] : masked[3]])
            return ServerHello(
                seen.legacy_version,
                random,
                data[35 : 35 + data[34]],
                seen.cipher_suite,
                seen.compression,
                extensions,
                seen.selected_version,
                random == HRR_RANDOM,
                seen.alpn,
                seen.alpn_raw,
                seen.key_share_group,
                seen.psk_selected,
                seen.session_ticket,
                seen.renegotiation_info,
                seen.extended_master_secret,
                list(seen.ec_point_formats),
                [],
            )
    sh = _parse_server_hello(data, memo)
    if memo is not None and key is not None and not sh.errors:
        if sh.key_share_group is None:
            _remember_hello(memo.sh, key, sh)
        elif masked is not None:
            _remember_hello(memo.sh_ks, masked[0], (sh, masked[1]))
    return sh


def _parse_server_hello(data: bytes, memo: HandshakeMemo | None) -> ServerHello:
    end = len(data)
    if end < 36:
        raise ParseError(f"server hello: {end} bytes, shorter than version+random+cipher", 0)
    (legacy_version,) = _U16.unpack_from(data, 0)
    random = data[2:34]
    draft = legacy_version >> 8 == 0x7F
    if draft and (legacy_version & 0xFF) < 22:
        # TLS 1.3 drafts before -22: version, random, cipher_suite, extensions (no session id,
        # no compression).
        session_id = b""
        (cipher,) = _U16.unpack_from(data, 34)
        compression = 0
        pos = 36
    else:
        if end < 38:
            raise ParseError(f"server hello: {end} bytes, shorter than version+random+session id", 0)
        sid_len = data[34]
        pos = 35
        if sid_len > 32 or pos + sid_len + 3 > end:
            raise ParseError(f"server hello: session id length {sid_len} invalid", 34)
        session_id = data[pos : pos + sid_len]
        pos += sid_len
        cipher, compression = _U16U8.unpack_from(data, pos)
        pos += 3
    errors: list[str] = []
    exts = _parse_extensions(data, pos, end, "server hello", errors)
    # The conveniences in locals; the object is built once.
    selected = legacy_version if draft else None  # drafts before -22 negotiate in the legacy field
    alpn: str | None = None
    alpn_raw: bytes | None = None
    key_group: int | None = None
    formats: list[int] = []
    psk = ticket = reneg = ems = False
    for etype, ext in exts:
        try:
            if etype == EXT_SUPPORTED_VERSIONS:
                if len(ext) != 2:
                    raise ParseError(f"supported_versions: {len(ext)} bytes, expected 2")
                (selected,) = _U16.unpack_from(ext, 0)
            elif etype == EXT_ALPN:
                raw, names = _alpn_memo(ext, memo.alpn if memo is not None else None)
                if raw:
                    alpn_raw = raw[0]
                    alpn = names[0]
            elif etype == EXT_KEY_SHARE or (etype == EXT_KEY_SHARE_DRAFT and draft):
                if len(ext) < 2:
                    raise ParseError("key_share: body shorter than a group")
                (key_group,) = _U16.unpack_from(ext, 0)
            elif etype == EXT_PRE_SHARED_KEY:
                psk = True
            elif etype == EXT_SESSION_TICKET:
                ticket = True
            elif etype == EXT_RENEGOTIATION_INFO:
                reneg = True
            elif etype == EXT_EXTENDED_MASTER_SECRET:
                ems = True
            elif etype == EXT_EC_POINT_FORMATS:
                if not ext or ext[0] > len(ext) - 1:
                    raise ParseError("ec_point_formats: length exceeds the bytes present")
                formats = list(ext[1 : 1 + ext[0]])
        except ParseError as exc:
            errors.append(f"ext {etype}: {exc}")
    return ServerHello(
        legacy_version,
        random,
        session_id,
        cipher,
        compression,
        exts,
        selected,
        random == HRR_RANDOM,
        alpn,
        alpn_raw,
        key_group,
        psk,
        ticket,
        reneg,
        ems,
        formats,
        errors,
    )


def parse_certificate_list(body: bytes | bytearray | memoryview, *, tls13: bool = False) -> list[bytes]:
    """DER certificates of a Certificate message body, in order (leaf first).

    TLS <= 1.2: uint24 list length, then (uint24 length, DER) entries. TLS 1.3 (`tls13`) adds a
    request context before the list and an extensions block after each certificate.
    """
    data = bytes(body)
    end = len(data)
    pos = 0
    if tls13:
        if end < 1 or 1 + data[0] > end:
            raise ParseError("certificate: request context cut", 0)
        pos = 1 + data[0]
    if pos + 3 > end:
        raise ParseError("certificate: list length cut", pos)
    total = int.from_bytes(data[pos : pos + 3], "big")
    pos += 3
    if pos + total > end:
        raise ParseError(f"certificate: list length {total} exceeds the {end - pos} bytes present", pos - 3)
    stop = pos + total
    certs = []
    while pos < stop:
        if pos + 3 > stop:
            raise ParseError("certificate: entry length cut", pos)
        ln = int.from_bytes(data[pos : pos + 3], "big")
        pos += 3
        if pos + ln > stop:
            raise ParseError(f"certificate: entry length {ln} runs past the list", pos - 3)
        certs.append(data[pos : pos + ln])
        pos += ln
        if tls13:
            if pos + 2 > stop:
                raise ParseError("certificate: entry extensions length cut", pos)
            (el,) = _U16.unpack_from(data, pos)
            pos += 2 + el
            if pos > stop:
                raise ParseError("certificate: entry extensions run past the list", pos)
    return certs


@dataclass(slots=True)
class KeyExchangeInfo:
    """What a ServerKeyExchange reveals without keys."""

    kind: str  # "ecdhe", "dhe", "unknown"
    named_group: int | None = None  # ECDHE named curve
    dh_bits: int | None = None  # DHE prime length in bits (leading zero bytes not counted)


def parse_server_key_exchange(body: bytes | bytearray | memoryview, kx: str) -> KeyExchangeInfo:
    """Read the group of a ServerKeyExchange. `kx` is the negotiated suite's key exchange from the
    cipher table ("ECDHE", "DHE", "ECDH_anon", "DH_anon", ...); the message is not self-describing.
    """
    data = bytes(body)
    k = kx.upper()
    if k.startswith("ECDH"):
        if len(data) < 4:
            raise ParseError("server key exchange: ECDHE parameters cut", 0)
        curve_type = data[0]
        if curve_type != 3:  # named_curve; explicit curves (1, 2) carry no group code
            return KeyExchangeInfo("ecdhe", None)
        (g,) = _U16.unpack_from(data, 1)
        return KeyExchangeInfo("ecdhe", g)
    if k.startswith("DH"):
        if len(data) < 2:
            raise ParseError("server key exchange: DH prime length cut", 0)
        (plen,) = _U16.unpack_from(data, 0)
        if 2 + plen > len(data):
            raise ParseError(f"server key exchange: DH prime length {plen} exceeds the bytes present", 0)
        p = int.from_bytes(data[2 : 2 + plen], "big")
        return KeyExchangeInfo("dhe", None, p.bit_length())
    return KeyExchangeInfo("unknown")


def parse_alert(body: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(level, description) of a plaintext 2-byte alert."""
    if len(body) < 2:
        raise ParseError("alert: shorter than 2 bytes", 0)
    return body[0], body[1]
