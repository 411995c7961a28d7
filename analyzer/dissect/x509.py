"""Certificate facts from DER bytes, through `cryptography`, parsed once per distinct certificate.

`CertificateCache.parse(der)` returns one row of the `certs` frame (keys of
`analyzer.dissect.tls.schema.CERTS`). It never raises: bytes that `cryptography` cannot load give a row with
only `sha256` and `parse_error`; a field that fails on its own (a malformed extension, an
unsupported key type, ...) is left out of the row and named in `field_errors`, the rest is kept.

Facts, not judgements; the decisions taken here:
- `sha256` / `sha1`: lowercase hex fingerprints of the DER bytes (the certificate key is sha256).
- `serial`: the serial number in uppercase hex, padded to an even number of digits as OpenSSL
  and Zeek print it; negative serials (forbidden by RFC 5280, still seen) get a leading "-".
- `not_before` / `not_after`: epoch seconds (float), exact, also for dates outside the
  datetime64[ns] range of the frame (RFC 5280's "no expiry" 9999-12-31, fuzzed years): the
  frame's timestamp columns show those as NaT (`analyzer.schema.conform`), and the same exact
  values are kept in the float columns `not_before_epoch` / `not_after_epoch`.
- `key_type`: rsa, dsa, ec, ed25519, ed448, x25519, x448, dh, or unknown (a key `cryptography`
  cannot load, e.g. GOST or post-quantum; `key_algorithm` then names the SPKI algorithm).
- `key_bits`: RSA / DSA / DH: modulus (prime) bits; EC: the curve's size (secp256r1 256,
  secp521r1 521); Edwards and Montgomery keys: the size in the curve's conventional name, as for
  EC: ed25519 / x25519 256 and ed448 / x448 448. (OpenSSL's EVP_PKEY_get_bits reports 456 for
  Ed448, the encoded key length; that is not comparable with EC curve sizes, so it is not used.)
- `signature_algorithm`: the OID's name as `cryptography` spells it (sha256WithRSAEncryption,
  ecdsa-with-SHA256, ed25519, rsassaPss, ...) or the dotted OID when it has none;
  `signature_hash`: sha1, sha256, md5, ... (none for Ed25519/Ed448).
- `self_issued`: issuer == subject. `self_signed`: self-issued and the signature verifies with
  the certificate's own key. It is False when the names differ or the signature does not verify,
  and missing (NA) when verification cannot be attempted (a key or algorithm `cryptography` does
  not support). SHA-1 and MD5 signatures, which `verify_directly_issued_by` refuses, are verified
  with the public key directly (and, for RSA PKCS#1 v1.5 if OpenSSL refuses even that, in Python).
- `is_ca`: the basicConstraints CA flag; False when the extension is absent.
- `version`: 1 or 3 (X.509 v1 / v3).

`hostname_matches` / `CertificateCache.sni_matches` implement RFC 6125 / RFC 9525 matching:
SAN dNSName entries, falling back to the subject CN (the most specific, i.e. last, CN) only when
the certificate has no dNSName; case-insensitive; a trailing dot ignored; a wildcard only as the
whole left-most label ("*.example.com"), matching exactly one non-empty label, and only with at
least two labels after it; partial-label wildcards ("w*.example.com") never match (RFC 9525);
IDNA A-labels compared as given (no U-label conversion); an IP-literal name matches SAN iPAddress
entries only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, ed25519, padding, rsa, x448, x25519
from cryptography.x509.oid import NameOID

__all__ = ["CertificateCache", "fingerprint", "hostname_matches", "parse_certificate"]

Row = dict[str, Any]

# Signature OIDs whose hash `cryptography` does not name (it raises UnsupportedAlgorithm).
_SIG_HASH_BY_OID = {
    "1.2.840.113549.1.1.2": "md2",  # md2WithRSAEncryption
    "1.2.840.113549.1.1.3": "md4",  # md4WithRSAEncryption
    "1.2.840.113549.1.1.4": "md5",
    "1.3.14.3.2.3": "md5",  # md5WithRSA (OIW)
    "1.3.14.3.2.29": "sha1",  # sha1WithRSASignature (OIW)
    "1.3.14.3.2.27": "sha1",  # dsaWithSHA1 (OIW)
    "1.2.840.10040.4.3": "sha1",  # dsa-with-sha1
    "1.2.643.2.2.3": "gostr3411-94",  # GOST R 34.10-2001 with GOST R 34.11-94
    "1.2.643.7.1.1.3.2": "streebog256",  # GOST R 34.10-2012 256
    "1.2.643.7.1.1.3.3": "streebog512",
    "1.2.156.10197.1.501": "sm3",  # SM2 with SM3
}

# RSASSA-PKCS1-v1_5 signature OIDs: md2, md4, md5, sha1, sha256, sha384, sha512, sha224 WithRSAEncryption
_RSA_PKCS1 = frozenset(f"1.2.840.113549.1.1.{n}" for n in (2, 3, 4, 5, 11, 12, 13, 14)) | {"1.3.14.3.2.29"}

# PKCS#1 v1.5 DigestInfo prefixes, for the pure-Python RSA fallback (RFC 8017 section 9.2 note 1)
_DIGEST_INFO = {
    "md5": bytes.fromhex("3020300c06082a864886f70d020505000410"),
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def fingerprint(der: bytes) -> str:
    """SHA-256 of the DER bytes, lowercase hex: the key of a certificate everywhere."""
    return hashlib.sha256(der).hexdigest()


# --- parsing ---------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _name_str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _last_cn(name: x509.Name) -> str | None:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return _name_str(cns[-1].value) if cns else None


def _epoch(when: _dt.datetime) -> float:
    return when.timestamp()


def _serial_hex(serial: int) -> str:
    digits = f"{abs(serial):X}"
    if len(digits) % 2:
        digits = "0" + digits
    return ("-" if serial < 0 else "") + digits


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    if not name or name == "Unknown OID":
        return oid.dotted_string
    return str(name)


def _key_facts(key: object) -> tuple[str, int | None, str | None]:
    """(key_type, key_bits, key_curve) of a loaded public key."""
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size, key.curve.name
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size, None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256, "ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 448, "ed448"
    if isinstance(key, x25519.X25519PublicKey):
        return "x25519", 256, "x25519"
    if isinstance(key, x448.X448PublicKey):
        return "x448", 448, "x448"
    if isinstance(key, dh.DHPublicKey):
        return "dh", key.key_size, None
    return "unknown", None, None


# --- a tolerant DER reader, for what cryptography refuses ----------------------------------------
# Old and odd certificates break DER rules that do not matter to the facts we want (an explicitly
# encoded DEFAULT in basicConstraints, explicit EC curve parameters as in CVE-2020-0601). When
# cryptography refuses a part, these few lines read the SAN, basicConstraints and EC key size.

_OID_BASIC_CONSTRAINTS = bytes.fromhex("551d13")
_OID_SAN = bytes.fromhex("551d11")
_OID_PRIME_FIELD = bytes.fromhex("2a8648ce3d0101")


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, content start, content end) of each TLV in buf[start:end]; ValueError if malformed."""
    out = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise ValueError("truncated TLV")
        tag, n = buf[pos], buf[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            if not 0 < k <= 4 or pos + k > end:
                raise ValueError("bad length")
            n = int.from_bytes(buf[pos : pos + k], "big")
            pos += k
        if pos + n > end:
            raise ValueError("length past the end")
        out.append((tag, pos, pos + n))
        pos += n
    return out


def _tbs_fields(tbs: bytes) -> list[tuple[int, int, int]]:
    (tag, start, end), *_ = _children(tbs, 0, len(tbs))
    if tag != 0x30:
        raise ValueError("TBSCertificate is not a SEQUENCE")
    return _children(tbs, start, end)


def _sequence(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The children of the single SEQUENCE in buf[start:end]."""
    (tag, s, e), *_ = _children(buf, start, end)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    return _children(buf, s, e)


def _tolerant_extensions(tbs: bytes) -> tuple[bool | None, tuple[str, ...], tuple[str, ...]]:
    """(is_ca, SAN dNSNames, SAN iPAddresses) read without DER strictness, extension by extension;
    is_ca is None when a basicConstraints extension is present but unreadable."""
    is_ca: bool | None = False
    dns: list[str] = []
    ips: list[str] = []
    for tag, start, end in _tbs_fields(tbs):
        if tag != 0xA3:  # [3] extensions
            continue
        for _, es, ee in _sequence(tbs, start, end):
            parts = _children(tbs, es, ee)
            oid = tbs[parts[0][1] : parts[0][2]]
            _, vs, ve = parts[-1]  # extnValue OCTET STRING
            try:
                if oid == _OID_BASIC_CONSTRAINTS:
                    inner = _sequence(tbs, vs, ve)
                    is_ca = bool(inner) and inner[0][0] == 0x01 and any(tbs[inner[0][1] : inner[0][2]])
                elif oid == _OID_SAN:
                    for gtag, gs, ge in _sequence(tbs, vs, ve):
                        if gtag == 0x82:
                            dns.append(tbs[gs:ge].decode("latin-1"))
                        elif gtag == 0x87 and ge - gs in (4, 16):
                            ips.append(str(ipaddress.ip_address(tbs[gs:ge])))
            except ValueError:
                if oid == _OID_BASIC_CONSTRAINTS:
                    is_ca = None
    return is_ca, tuple(dns), tuple(ips)


def _tolerant_ec_key(tbs: bytes) -> tuple[int | None, str]:
    """(bits, curve) of an EC key cryptography refuses: "explicit" parameters give the prime's
    size; an unknown named curve gives its dotted OID."""
    fields = [f for f in _tbs_fields(tbs) if f[0] == 0x30]
    # SEQUENCE fields of the TBS in order: signature, issuer, validity, subject, subjectPublicKeyInfo
    _, s, e = fields[4]
    (_, algs, alge), *_ = _children(tbs, s, e)
    alg = _children(tbs, algs, alge)
    if len(alg) < 2:
        return None, "unknown"
    ptag, ps, pe = alg[1]
    if ptag == 0x06:
        return None, _decode_oid(tbs[ps:pe])
    if ptag != 0x30:
        return None, "unknown"
    _, field_id = _children(tbs, ps, pe)[:2]
    ftype, fvalue = _children(tbs, field_id[1], field_id[2])[:2]
    if tbs[ftype[1] : ftype[2]] != _OID_PRIME_FIELD:
        return None, "explicit"
    prime = int.from_bytes(tbs[fvalue[1] : fvalue[2]], "big")
    return prime.bit_length(), "explicit"


def _decode_oid(body: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def _rsa_pkcs1_verify_py(key: rsa.RSAPublicKey, signature: bytes, data: bytes, hash_name: str) -> bool:
    """RSASSA-PKCS1-v1_5 verification in Python, for digests OpenSSL's policy refuses (MD5)."""
    prefix = _DIGEST_INFO.get(hash_name)
    if prefix is None:
        raise UnsupportedAlgorithm(f"no DigestInfo for {hash_name}")
    numbers = key.public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    m = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n)
    digest = hashlib.new(hash_name, data).digest()
    t = prefix + digest
    if k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return m.to_bytes(k, "big") == expected


def _verify_self(cert: x509.Certificate, key: object) -> bool | None:
    """Does the certificate's signature verify with its own key? None when it cannot be tried."""
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass  # an algorithm verify_directly_issued_by refuses (SHA-1, MD5, ...): verify by hand
    signature = cert.signature
    data = cert.tbs_certificate_bytes
    try:
        params = cert.signature_algorithm_parameters
        hash_alg = cert.signature_hash_algorithm
    except Exception:
        return None
    if (
        isinstance(key, rsa.RSAPublicKey)
        and params is None
        and cert.signature_algorithm_oid.dotted_string in _RSA_PKCS1
    ):
        params = padding.PKCS1v15()  # cryptography gives no parameters for md5WithRSAEncryption
    try:
        if isinstance(key, rsa.RSAPublicKey) and isinstance(params, padding.AsymmetricPadding):
            if hash_alg is None:
                return None
            try:
                key.verify(signature, data, params, hash_alg)
                return True
            except UnsupportedAlgorithm:
                if isinstance(params, padding.PKCS1v15):
                    return _rsa_pkcs1_verify_py(key, signature, data, hash_alg.name)
                return None
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(params, ec.ECDSA):
            key.verify(signature, data, params)
            return True
        if isinstance(key, dsa.DSAPublicKey) and isinstance(hash_alg, hashes.HashAlgorithm):
            key.verify(signature, data, hash_alg)
            return True
        if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
            return True
    except InvalidSignature:
        return False
    except Exception:
        return None
    return None


@dataclass(slots=True)
class _Entry:
    row: Row
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    cn: str | None = None
    parsed: bool = True


def _parse(der: bytes, sha256: str) -> _Entry:
    # cryptography warns about some encodings (a serial number that is not positive, ...) on load
    # and again on access: record those as notes instead of letting them reach the caller.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            entry = _parse_fields(der, sha256)
        except Exception as exc:  # a bug here must not stop a run: say so in the row
            return _Entry(row={"sha256": sha256, "parse_error": f"internal: {_short(exc)}"}, parsed=False)
    if caught and entry.parsed:
        notes = dict.fromkeys(f"warning: {str(w.message)[:120]}" for w in caught
                              if not _library_notice(str(w.message)))
        errors = entry.row["field_errors"]
        if notes:
            entry.row["field_errors"] = "; ".join([*notes, *([errors] if errors else [])])
    return entry


# Warnings cryptography gives about its own future, not about the certificate: "DSA is deprecated" and
# "Diffie-Hellman over finite fields (FFDH) is deprecated" (cryptography 51) on every DSA or DH key it
# touches. They must not become field errors, or a fact of the row would change with the library's version.
_LIBRARY_NOTICES = ("DSA is deprecated", "Diffie-Hellman over finite fields (FFDH) is deprecated")


def _library_notice(message: str) -> bool:
    return message.startswith(_LIBRARY_NOTICES)


def _parse_fields(der: bytes, sha256: str) -> _Entry:
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as exc:
        return _Entry(row={"sha256": sha256, "parse_error": _short(exc)}, parsed=False)

    row: Row = dict.fromkeys(_ROW_KEYS)
    row["sha256"] = sha256
    row["sha1"] = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    errors: list[str] = []
    entry = _Entry(row=row)

    def attempt(field: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            errors.append(f"{field}: {_short(exc)}")
            return None

    subject = attempt("subject", lambda: cert.subject)
    issuer = attempt("issuer", lambda: cert.issuer)
    if subject is not None:
        row["subject"] = attempt("subject", subject.rfc4514_string)
        entry.cn = row["subject_cn"] = attempt("subject_cn", lambda: _last_cn(subject))
    if issuer is not None:
        row["issuer"] = attempt("issuer", issuer.rfc4514_string)
        row["issuer_cn"] = attempt("issuer_cn", lambda: _last_cn(issuer))
    if subject is not None and issuer is not None:
        row["self_issued"] = attempt("self_issued", lambda: subject == issuer)

    row["version"] = attempt("version", lambda: cert.version.value + 1)
    serial = attempt("serial", lambda: cert.serial_number)
    if serial is not None:
        row["serial"] = _serial_hex(serial)

    nb = attempt("not_before", lambda: _epoch(cert.not_valid_before_utc))
    na = attempt("not_after", lambda: _epoch(cert.not_valid_after_utc))
    if nb is not None:
        row["not_before_epoch"] = row["not_before"] = nb
    if na is not None:
        row["not_after_epoch"] = row["not_after"] = na

    sig_oid = attempt("signature_algorithm", lambda: cert.signature_algorithm_oid)
    if sig_oid is not None:
        row["signature_algorithm"] = _oid_name(sig_oid)
        try:
            h = cert.signature_hash_algorithm
            row["signature_hash"] = h.name if h is not None else None
        except Exception:
            row["signature_hash"] = _SIG_HASH_BY_OID.get(sig_oid.dotted_string)

    row["key_algorithm"] = attempt("key_algorithm", lambda: _oid_name(cert.public_key_algorithm_oid))
    key = None
    try:
        key = cert.public_key()
        row["key_type"], row["key_bits"], row["key_curve"] = _key_facts(key)
    except Exception as exc:
        row["key_type"] = "unknown"
        errors.append(f"public_key: {_short(exc)}")
        if row["key_algorithm"] == "id-ecPublicKey":
            try:
                row["key_bits"], row["key_curve"] = _tolerant_ec_key(cert.tbs_certificate_bytes)
                row["key_type"] = "ec"
            except Exception:
                pass

    extensions = attempt("extensions", lambda: cert.extensions)
    if extensions is None:
        try:
            row["is_ca"], entry.dns, entry.ips = _tolerant_extensions(cert.tbs_certificate_bytes)
            errors[-1] += " (basicConstraints and subjectAltName read leniently)"
        except Exception:
            pass
    else:
        row["is_ca"] = False
        for ext in extensions:
            value = ext.value
            if isinstance(value, x509.BasicConstraints):
                row["is_ca"] = bool(value.ca)
            elif isinstance(value, x509.SubjectAlternativeName):
                entry.dns = tuple(value.get_values_for_type(x509.DNSName))
                entry.ips = tuple(str(ip) for ip in value.get_values_for_type(x509.IPAddress))
    row["san_dns"] = ",".join(entry.dns) if entry.dns else None
    row["san_ip"] = ",".join(entry.ips) if entry.ips else None

    if row["self_issued"] is False:
        row["self_signed"] = False
    elif row["self_issued"] is True and key is not None:
        row["self_signed"] = _verify_self(cert, key)

    row["field_errors"] = "; ".join(errors) if errors else None
    return entry


_ROW_KEYS = (
    "sha256", "sha1", "subject", "issuer", "subject_cn", "issuer_cn", "san_dns", "san_ip", "serial",
    "not_before", "not_after", "not_before_epoch", "not_after_epoch", "key_type", "key_bits",
    "key_curve", "key_algorithm", "signature_algorithm", "signature_hash", "self_issued",
    "self_signed", "is_ca", "version", "parse_error", "field_errors",
)  # fmt: skip


def parse_certificate(der: bytes | bytearray | memoryview) -> Row:
    """The `certs` row of one DER certificate, uncached. Never raises."""
    data = bytes(der)
    return dict(_parse(data, fingerprint(data)).row)


# --- hostname matching ------------------------------------------------------------------------


_IPV4_CHARS = frozenset("0123456789.")


def _as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" not in text and not _IPV4_CHARS.issuperset(text):
        return None  # a DNS name: skip ipaddress's slow failure path
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def hostname_matches(patterns: Iterable[str], hostname: str) -> bool:
    """Does `hostname` match one of the presented identifiers `patterns` (RFC 6125 / RFC 9525)?

    DNS names: case-insensitive, trailing dot ignored, "*" only as the whole left-most label,
    matching exactly one non-empty label, with at least two labels after it. An IP-literal
    hostname (IPv6 may be bracketed) matches patterns that are the same IP address.
    """
    host = hostname.strip().lower()
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    if not host:
        return False
    ip = _as_ip(host)
    if ip is not None:
        return any(_as_ip(p.strip()) == ip for p in patterns)
    host_labels = host.split(".")
    if "" in host_labels or "*" in host:
        return False
    for pattern in patterns:
        pat = pattern.lower()
        if pat.endswith("."):
            pat = pat[:-1]
        if not pat:
            continue
        if "*" not in pat:
            if pat == host:
                return True
            continue
        labels = pat.split(".")
        if labels[0] != "*" or len(labels) < 3 or "" in labels:
            continue
        if any("*" in label for label in labels[1:]):
            continue
        if len(labels) == len(host_labels) and labels[1:] == host_labels[1:]:
            return True
    return False


# --- the cache -------------------------------------------------------------------------------


# Measured with tracemalloc (tests/support/memory_helpers certificates: 340-byte DER, one name):
# about 1.76 KB per parsed entry besides the DER; each further name adds its string and tuple slot.
ENTRY_BYTES, NAME_BYTES = 1536, 96


class CertificateCache:
    """Certificates seen in a run, parsed once each, keyed by SHA-256 of the DER.

    Bounded: when `max_entries` is reached, or the entries' estimated size passes `max_bytes` (the
    run's memory budget gives it a share), the oldest entry is dropped (FIFO) and counted in
    `evictions`; a dropped certificate seen again is simply parsed again. Not thread-safe (it
    also silences cryptography's warnings with `warnings.catch_warnings` while parsing): use one
    cache per thread or process.
    """

    __slots__ = ("_entries", "_sizes", "bytes", "evictions", "hits", "max_bytes", "max_entries", "misses")

    def __init__(self, max_entries: int = 100_000, max_bytes: int | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}
        self._sizes: dict[str, int] = {}
        self.bytes = 0  # estimated size of the entries (ENTRY_BYTES each, plus the DER and the names)
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def parse(self, der: bytes | bytearray | memoryview, sha256: str | None = None) -> Row:
        """The `certs` row for these DER bytes (a fresh dict each call). Never raises. `sha256`: the
        DER's SHA-256 (lowercase hex) when the caller has it already (it is the cache's key)."""
        data = der if type(der) is bytes else bytes(der)
        key = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            return dict(entry.row)
        self.misses += 1
        entry = _parse(data, key)
        size = ENTRY_BYTES + len(data) + NAME_BYTES * (len(entry.dns) + len(entry.ips))
        while self._entries and (len(self._entries) >= self.max_entries
                                 or (self.max_bytes is not None and self.bytes + size > self.max_bytes)):
            oldest = next(iter(self._entries))
            del self._entries[oldest]
            self.bytes -= self._sizes.pop(oldest)
            self.evictions += 1
        self._entries[key] = entry
        self._sizes[key] = size
        self.bytes += size
        return dict(entry.row)

    def get(self, sha256: str) -> Row | None:
        """The row of a certificate already parsed, by fingerprint, or None."""
        entry = self._entries.get(sha256.lower())
        return dict(entry.row) if entry is not None else None

    def sni_matches(self, sha256: str, server_name: str) -> bool | None:
        """Does the certificate cover `server_name`? None when the certificate is unknown/unparsed."""
        entry = self._entries.get(sha256.lower())
        if entry is None or not entry.parsed:
            return None
        if _as_ip(server_name.strip().rstrip(".")) is not None:
            return hostname_matches(entry.ips, server_name)
        if entry.dns:
            return hostname_matches(entry.dns, server_name)
        return hostname_matches([entry.cn] if entry.cn else [], server_name)

    def rows(self) -> Iterator[Row]:
        """Every cached row (copies), oldest first."""
        return (dict(e.row) for e in list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, sha256: object) -> bool:
        return isinstance(sha256, str) and sha256.lower() in self._entries
