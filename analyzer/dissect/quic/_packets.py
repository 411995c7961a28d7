"""QUIC wire image: variable-length integers, versions, long headers (RFC 8999, 9000, 9369).

Pure functions over bytes. `parse_long_header(data, pos)` reads one long-header packet starting at
`pos` of a UDP datagram and returns a `LongHeader` whose `end` is where the next coalesced packet
starts. Nothing here needs keys. Errors are `ParseError` (the bytes contradict the format) and
`NeedMoreData` (the datagram ends inside the header, or a length runs past it).
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.errors import NeedMoreData, ParseError

__all__ = [
    "GQUIC",
    "LongHeader",
    "VersionInfo",
    "gquic_public_header",
    "is_grease_version",
    "looks_like_quic",
    "parse_long_header",
    "read_varint",
    "version_info",
    "version_name",
]

SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
SALT_DRAFT_29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # drafts 29..32
SALT_DRAFT_23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")  # drafts 23..28
SALT_DRAFT_22 = bytes.fromhex("7fbcbd0e7c66bbe9193a96cd21519ebd7a02644a")

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF

# Long-header packet types by the two type bits, for v1-style and v2 versions.
_TYPES_V1 = ("initial", "0rtt", "handshake", "retry")
_TYPES_V2 = ("retry", "initial", "0rtt", "handshake")


@dataclass(slots=True, frozen=True)
class VersionInfo:
    """What a passive observer needs to know about one QUIC version."""

    version: int
    name: str  # "1", "2", "draft-29", ...
    salts: tuple[bytes, ...]  # candidate Initial salts (one for standard versions)
    label_prefix: bytes  # b"quic" or b"quicv2"
    types: tuple[str, str, str, str]


def _draft(n: int) -> VersionInfo:
    if n >= 33:
        salt = SALT_V1
    elif n >= 29:
        salt = SALT_DRAFT_29
    elif n >= 23:
        salt = SALT_DRAFT_23
    else:
        salt = SALT_DRAFT_22
    return VersionInfo(0xFF000000 | n, f"draft-{n}", (salt,), b"quic", _TYPES_V1)


_KNOWN: dict[int, VersionInfo] = {
    QUIC_V1: VersionInfo(QUIC_V1, "1", (SALT_V1,), b"quic", _TYPES_V1),
    QUIC_V2: VersionInfo(QUIC_V2, "2", (SALT_V2,), b"quicv2", _TYPES_V2),
}
for _n in range(22, 35):
    _KNOWN[0xFF000000 | _n] = _draft(_n)
# Facebook mvfst versions follow IETF drafts; which salt is not documented, so every draft salt is
# tried and the AEAD tag decides (a wrong salt never authenticates).
_MVFST_SALTS = (SALT_DRAFT_29, SALT_DRAFT_23, SALT_DRAFT_22, SALT_V1)
for _v in (0xFACEB001, 0xFACEB002, 0xFACEB00E, 0xFACEB010, 0xFACEB011, 0xFACEB012, 0xFACEB013):
    _KNOWN[_v] = VersionInfo(_v, f"mvfst-{_v & 0xFF:02x}", _MVFST_SALTS, b"quic", _TYPES_V1)

# Google QUIC versions whose wire image starts like a long header ('Q046', 'Q050', 'T050', 'T051',
# ...). Recorded by name only; their crypto is not IETF QUIC's.
GQUIC = "gquic"


def is_gquic_version(version: int) -> bool:
    tag = version.to_bytes(4, "big")
    return tag[:1] in (b"Q", b"T") and tag[1:].isdigit()


def is_grease_version(version: int) -> bool:
    """Versions of the form 0x?a?a?a?a are reserved to exercise version negotiation (RFC 9000 15)."""
    return version & 0x0F0F0F0F == 0x0A0A0A0A


def version_info(version: int) -> VersionInfo | None:
    return _KNOWN.get(version)


def version_name(version: int) -> str:
    """ "1", "2", "draft-29", "Q046" for Google QUIC, else "0x" + 8 hex digits."""
    info = _KNOWN.get(version)
    if info is not None:
        return info.name
    if is_gquic_version(version):
        return version.to_bytes(4, "big").decode("ascii")
    return f"0x{version:08x}"


def read_varint(data: bytes | memoryview, pos: int, end: int | None = None) -> tuple[int, int]:
    """RFC 9000 section 16 variable-length integer at `pos`: (value, new position)."""
    if end is None:
        end = len(data)
    if pos >= end:
        raise NeedMoreData(1)
    first = data[pos]
    n = 1 << (first >> 6)
    if pos + n > end:
        raise NeedMoreData(pos + n - end)
    value = first & 0x3F
    for i in range(1, n):
        value = (value << 8) | data[pos + i]
    return value, pos + n


@dataclass(slots=True)
class LongHeader:
    """One long-header packet inside a datagram (offsets are into the datagram)."""

    start: int
    first: int  # first byte as sent (type-specific bits still protected)
    version: int
    dcid: bytes
    scid: bytes
    kind: str  # "initial", "0rtt", "handshake", "retry", "vn", "unknown", "gquic"
    end: int  # offset just past this packet
    pn_offset: int = 0  # where the protected packet number starts (initial, 0rtt, handshake)
    token: bytes = b""  # Initial token or Retry token
    versions: tuple[int, ...] = ()  # Version Negotiation: the versions the server offers
    info: VersionInfo | None = None


def parse_long_header(data: bytes, pos: int = 0) -> LongHeader:
    """Parse the long-header packet at data[pos:]; the datagram ends at len(data).

    Unknown versions are described as far as the version-independent invariants go (RFC 8999:
    first byte, version, connection IDs) with `kind="unknown"` and `end=len(data)`.
    """
    end = len(data)
    if pos + 7 > end:
        raise NeedMoreData(pos + 7 - end)
    first = data[pos]
    if not first & 0x80:
        raise ParseError("quic: not a long header", pos)
    version = int.from_bytes(data[pos + 1 : pos + 5], "big")
    p = pos + 5
    dlen = data[p]
    p += 1
    if p + dlen + 1 > end:
        raise NeedMoreData(p + dlen + 1 - end)
    dcid = data[p : p + dlen]
    p += dlen
    slen = data[p]
    p += 1
    if p + slen > end:
        raise NeedMoreData(p + slen - end)
    scid = data[p : p + slen]
    p += slen
    if version == 0:
        body = end - p
        if body % 4:
            raise ParseError(f"quic: version negotiation list of {body} bytes is not a multiple of 4", p)
        versions = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(p, end, 4))
        return LongHeader(pos, first, 0, dcid, scid, "vn", end, versions=versions)
    if is_gquic_version(version):
        return LongHeader(pos, first, version, dcid, scid, GQUIC, end)
    info = _KNOWN.get(version)
    if info is None:
        return LongHeader(pos, first, version, dcid, scid, "unknown", end)
    if dlen > 20 or slen > 20:
        raise ParseError(f"quic: connection id longer than 20 bytes in version {info.name}", pos + 5)
    # The fixed bit may be 0 when the peer advertised grease_quic_bit (RFC 9287): not checked.
    kind = info.types[(first >> 4) & 0x03]
    if kind == "retry":
        if end - p < 16:
            raise ParseError("quic: retry packet shorter than its integrity tag", p)
        return LongHeader(pos, first, version, dcid, scid, kind, end, token=data[p : end - 16], info=info)
    token = b""
    if kind == "initial":
        tlen, p = read_varint(data, p, end)
        if p + tlen > end:
            raise NeedMoreData(p + tlen - end)
        token = data[p : p + tlen]
        p += tlen
    length, p = read_varint(data, p, end)
    if p + length > end:
        raise NeedMoreData(p + length - end)
    return LongHeader(pos, first, version, dcid, scid, kind, p + length, pn_offset=p, token=token, info=info)


def looks_like_quic(payload: bytes) -> bool:
    """A well-formed long header of a known version, a Version Negotiation, or Google QUIC.

    The fixed bit is not required (RFC 9287 lets a peer grease it); the header has to parse
    instead: connection ids within 20 bytes and lengths consistent with the datagram.
    """
    if len(payload) < 7:
        return False
    first = payload[0]
    if first & 0x80:
        version = int.from_bytes(payload[1:5], "big")
        if version != 0 and not is_gquic_version(version) and version_info(version) is None:
            return False
        try:
            hdr = parse_long_header(payload, 0)
        except (ParseError, NeedMoreData):
            return False
        if hdr.kind == "vn":
            return len(hdr.dcid) <= 20 and len(hdr.scid) <= 20 and bool(hdr.versions)
        return True
    return gquic_public_header(payload) is not None


def gquic_public_header(payload: bytes) -> str | None:
    """Version of a Google QUIC (<= Q043) public header with the version flag, else None."""
    first = payload[0]
    if first & 0x80 or not first & 0x01 or len(payload) < 13:
        return None
    pos = 9 if first & 0x08 else 1
    tag = payload[pos : pos + 4]
    if len(tag) == 4 and tag[:1] == b"Q" and tag[1:].isdigit():
        return tag.decode("ascii")
    return None
