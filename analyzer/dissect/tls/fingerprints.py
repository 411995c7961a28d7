"""TLS fingerprints: JA3 / JA3S (Salesforce) and JA4 / JA4S / JA4X (FoxIO).

Licences: JA3/JA3S are BSD-3-Clause (Salesforce). JA4 (the client fingerprint) is BSD-3-Clause.
JA4S and JA4X belong to FoxIO's "JA4+" family under the FoxIO License 1.1, which restricts some
commercial use: `ja4x` is computed by the TLS dissector only when it is constructed with
`TLSDissector(ja4x=True)` (off by default). JA4S is computed by default like the other FoxIO
reference tools do; deployments that must avoid FoxIO-licensed methods can construct the dissector
with `ja4s=False`.

Conventions (checked against FoxIO's expected outputs, see NOTES.md):
- JA3 (`ja3`): "SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats", decimal,
  `-` separated, GREASE removed, MD5 hex. JA3S: "SSLVersion,Cipher,Extensions".
- JA4 (`ja4`): see https://github.com/FoxIO-LLC/ja4 technical_details/JA4.md. Transport "t" (TCP),
  "q" (QUIC) or "d" (DTLS); the highest non-GREASE supported_versions entry else the legacy
  version; "d"/"i" for SNI; 2-digit counts (capped at 99) of non-GREASE ciphers and extensions;
  first/last character of the first ALPN value ("00" when none; "99" when its first byte is
  non-ASCII, like both FoxIO implementations); then truncated SHA-256 of the sorted cipher list and
  of the sorted extension list (SNI and ALPN removed) + "_" + signature algorithms in wire order.
  An empty list hashes to "000000000000". JA4 is not defined for SSLv2 hellos (returns "", "").
"""

from __future__ import annotations

import hashlib
import struct

from analyzer.dissect.tls.constants import GREASE
from analyzer.dissect.tls.handshake import ClientHello, ServerHello
from analyzer.errors import ParseError

__all__ = ["ja3", "ja3s", "ja4", "ja4_version_code", "ja4s", "ja4x", "ja4x_parts"]

_ZERO12 = "000000000000"


def _hash12(text: str) -> str:
    """First 12 hex digits of SHA-256; "000000000000" for an empty list (FoxIO)."""
    if not text:
        return _ZERO12
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# Packers of n big-endian uint16 values for the usual list lengths, made once at import (a pure
# constant table); longer lists get a Struct made on the spot. The fingerprints are computed once
# per hello shape by the dissectors' column memos (`analyzer.dissect.tls.columns`), so nothing
# here memoises.
_PACKERS: tuple[struct.Struct, ...] = tuple(struct.Struct(f">{n}H") for n in range(129))


def _hexlist(values: list[int]) -> str:
    """Comma-separated 4-digit lowercase hex, e.g. "002f,1301" (bytes.hex with a separator)."""
    n = len(values)
    if not n:
        return ""
    st = _PACKERS[n] if n <= 128 else struct.Struct(f">{n}H")
    return st.pack(*values).hex(",", 2)


def _degrease(values: list[int]) -> list[int]:
    if GREASE.isdisjoint(values):
        return values
    return [v for v in values if v not in GREASE]


def ja3(ch: ClientHello) -> tuple[str, str]:
    """(MD5 hex, full string) of the Salesforce JA3 definition. Empty strings for an SSLv2 hello."""
    if ch.sslv2:
        return "", ""
    ciphers = "-".join(map(str, _degrease(ch.cipher_suites)))
    exts = "-".join(map(str, _degrease([t for t, _ in ch.extensions])))
    groups = "-".join(map(str, _degrease(ch.supported_groups)))
    formats = "-".join(map(str, ch.ec_point_formats))
    full = f"{ch.legacy_version},{ciphers},{exts},{groups},{formats}"
    return _md5(full), full


def ja3s(sh: ServerHello) -> tuple[str, str]:
    """(MD5 hex, full string) of JA3S: "SSLVersion,Cipher,Extensions" (GREASE removed)."""
    exts = "-".join(map(str, _degrease([t for t, _ in sh.extensions])))
    full = f"{sh.legacy_version},{sh.cipher_suite},{exts}"
    return _md5(full), full


_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_NOT_IN_JA4_C = GREASE | {0x0000, 0x0010}  # SNI and ALPN are in part a


def ja4_version_code(version: int) -> str:
    """The 2-character JA4 version ("13", "12", ..., "s3", "d2"); "00" when unknown."""
    return _JA4_VERSIONS.get(version, "00")


def _ja4_alpn(raw: bytes | None) -> str:
    """First and last character of the first ALPN value, as the FoxIO implementations render it."""
    if not raw:
        return "00"
    first, last = raw[0], raw[-1]
    if first >= 0x80:
        return "99"  # FoxIO's ja4.py / Rust ja4: tshark shows non-ASCII bytes as U+FFFD -> "99"
    if first < 0x21 or first == 0x7F or last < 0x21 or last == 0x7F:
        # Spec rule for non-printable values: first and last hex character of the value.
        text = raw.hex()
        return text[0] + text[-1]
    if len(raw) == 1:
        return chr(first) + "0"  # Rust ja4 behaviour (Python prints one character)
    return chr(first) + ("9" if last >= 0x80 else chr(last))


def ja4(ch: ClientHello, transport: str = "t") -> tuple[str, str]:
    """(JA4, JA4_r) of a ClientHello. `transport` is "t" (TLS over TCP), "q" (QUIC) or "d" (DTLS).

    Returns ("", "") for an SSLv2 hello (JA4 is not defined for it).
    """
    if ch.sslv2:
        return "", ""
    version = ch.legacy_version
    if ch.supported_versions:
        real = _degrease(ch.supported_versions)
        if real:
            # The highest version. FoxIO sorts the hex strings and takes the last, which is the
            # numeric maximum; DTLS codes count down (0xfeff 1.0, 0xfefd 1.2, 0xfefc 1.3), so
            # there the newest is the smallest code.
            dtls = [v for v in real if v >> 8 == 0xFE]
            version = min(dtls) if dtls and len(dtls) == len(real) else max(real)
    ciphers = _degrease(ch.cipher_suites)
    types = [t for t, _ in ch.extensions]
    n_ext = len(types) if GREASE.isdisjoint(types) else len(_degrease(types))
    # "d" when the server_name extension exists (the spec, FoxIO's Rust ja4 and the tshark oracle;
    # FoxIO's ja4.py says "i" for an extension without a host name: see NOTES.md).
    a = (
        f"{transport}{_JA4_VERSIONS.get(version, '00')}{'d' if 0 in types else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(n_ext, 99):02d}{_ja4_alpn(ch.alpn_raw[0] if ch.alpn_raw else None)}"
    )
    c_text = _hexlist(sorted(ciphers))
    e_text = _hexlist(sorted([t for t in types if t not in _NOT_IN_JA4_C]))
    if ch.signature_algorithms:
        sigs = _hexlist(_degrease(ch.signature_algorithms))
        if sigs:
            e_text = e_text + "_" + sigs
    return f"{a}_{_hash12(c_text)}_{_hash12(e_text)}", f"{a}_{c_text}_{e_text}"


def ja4s(sh: ServerHello, transport: str = "t") -> tuple[str, str]:
    """(JA4S, JA4S_r) of a ServerHello (FoxIO License 1.1; see the module docstring)."""
    version = sh.selected_version if sh.selected_version is not None else sh.legacy_version
    types = [t for t, _ in sh.extensions]  # wire order, GREASE kept (FoxIO)
    a = f"{transport}{_JA4_VERSIONS.get(version, '00')}{min(len(types), 99):02d}{_ja4_alpn(sh.alpn_raw)}"
    e_text = _hexlist(types)
    cipher = f"{sh.cipher_suite:04x}"
    return f"{a}_{cipher}_{_hash12(e_text)}", f"{a}_{cipher}_{e_text}"


# --- JA4X: a minimal DER walk over TBSCertificate ----------------------------------------------


def _der_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `pos`. ParseError when malformed."""
    if pos + 2 > end:
        raise ParseError("der: header cut", pos)
    tag = data[pos]
    ln = data[pos + 1]
    pos += 2
    if ln & 0x80:
        n = ln & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise ParseError("der: bad length", pos)
        ln = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + ln > end:
        raise ParseError("der: element runs past its parent", pos)
    return tag, pos, pos + ln


def _name_oids(data: bytes, start: int, end: int) -> list[str]:
    """Hex of each AttributeType OID of a Name (RDNSequence), in order."""
    out = []
    pos = start
    while pos < end:
        _tag, s, e = _der_header(data, pos, end)  # SET (RelativeDistinguishedName)
        pos = e
        p2 = s
        while p2 < e:
            _t, s2, e2 = _der_header(data, p2, e)  # SEQUENCE AttributeTypeAndValue
            p2 = e2
            t3, s3, e3 = _der_header(data, s2, e2)  # OID
            if t3 != 0x06:
                raise ParseError("der: attribute type is not an OID", s2)
            out.append(data[s3:e3].hex())
    return out


def ja4x_parts(cert_der: bytes) -> tuple[list[str], list[str], list[str]]:
    """(issuer OIDs, subject OIDs, extension OIDs) as lowercase hex of the OID contents."""
    data = bytes(cert_der)
    _t, s, e = _der_header(data, 0, len(data))  # Certificate
    t, s, e = _der_header(data, s, e)  # TBSCertificate
    if t != 0x30:
        raise ParseError("der: TBSCertificate is not a SEQUENCE", s)
    pos = s
    t, s1, e1 = _der_header(data, pos, e)
    if t == 0xA0:  # [0] version
        pos = e1
        t, s1, e1 = _der_header(data, pos, e)
    pos = e1  # serial
    _t, _s, pos = _der_header(data, pos, e)  # signature AlgorithmIdentifier
    t, s1, e1 = _der_header(data, pos, e)  # issuer
    issuer = _name_oids(data, s1, e1)
    pos = e1
    _t, _s, pos = _der_header(data, pos, e)  # validity
    t, s1, e1 = _der_header(data, pos, e)  # subject
    subject = _name_oids(data, s1, e1)
    pos = e1
    _t, _s, pos = _der_header(data, pos, e)  # subjectPublicKeyInfo
    exts: list[str] = []
    while pos < e:
        t, s1, e1 = _der_header(data, pos, e)
        pos = e1
        if t == 0xA3:  # [3] extensions
            _t, s2, e2 = _der_header(data, s1, e1)  # SEQUENCE OF Extension
            p = s2
            while p < e2:
                _t, s3, e3 = _der_header(data, p, e2)
                p = e3
                t4, s4, e4 = _der_header(data, s3, e3)
                if t4 != 0x06:
                    raise ParseError("der: extension id is not an OID", s3)
                exts.append(data[s4:e4].hex())
    return issuer, subject, exts


def ja4x(cert_der: bytes) -> str:
    """JA4X of one DER certificate (FoxIO License 1.1: only computed on request, see above).

    Raises ParseError when the DER structure is malformed.
    """
    issuer, subject, exts = ja4x_parts(cert_der)
    return f"{_hash12(','.join(issuer))}_{_hash12(','.join(subject))}_{_hash12(','.join(exts))}"
