"""Late binding to sibling modules written by other people (the cipher-suite table and the X.509
parser), with small fallbacks so the TLS dissector works (with fewer facts) while they are absent.

Each binding is resolved once per process on first use; a missing module is not retried.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from analyzer.dissect.tls.constants import GREASE, SSL2_CIPHER_KINDS

__all__ = ["CertCache", "CipherInfo", "cipher_lookup", "cipher_name", "new_certificate_cache"]


class CipherInfo(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def kx(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _FallbackCipher:
    name: str
    kx: str | None = None


class CertCache(Protocol):
    def parse(self, der: bytes) -> dict[str, Any]: ...

    def sni_matches(self, sha256: str, server_name: str) -> bool | None: ...


class _HashOnlyCache:
    """Stand-in for `analyzer.dissect.x509.CertificateCache`: fingerprints only."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    def parse(self, der: bytes) -> dict[str, Any]:
        sha = hashlib.sha256(der).hexdigest()
        row = self._rows.get(sha)
        if row is None:
            row = {"sha256": sha, "not_after": None, "key_bits": None, "self_signed": None}
            if len(self._rows) < 100_000:
                self._rows[sha] = row
        return row

    def sni_matches(self, sha256: str, server_name: str) -> bool | None:
        return None


_lookup_fn: Any = None
_lookup_v2_fn: Any = None
_lookup_resolved = False


def _fallback_lookup(code: int) -> CipherInfo:
    if code in GREASE:
        return _FallbackCipher("GREASE")
    return _FallbackCipher(f"unknown_0x{code:04x}")


def cipher_lookup(code: int) -> CipherInfo:
    """`analyzer.dissect.tls.ciphersuites.lookup(code)` (`lookup_sslv2` for 3-byte SSL 2.0
    cipher kinds), or a name-only fallback while that module is absent."""
    global _lookup_fn, _lookup_v2_fn, _lookup_resolved
    if not _lookup_resolved:
        _lookup_resolved = True
        try:
            mod = importlib.import_module("analyzer.dissect.tls.ciphersuites")
            _lookup_fn = mod.lookup
            _lookup_v2_fn = getattr(mod, "lookup_sslv2", None)
        except (ImportError, AttributeError):
            _lookup_fn = None
    if code > 0xFFFF:  # an SSL 2.0 cipher kind
        if _lookup_v2_fn is not None:
            suite: CipherInfo = _lookup_v2_fn(code)
            return suite
        return _FallbackCipher(SSL2_CIPHER_KINDS.get(code, f"SSL2_unknown_0x{code:06x}"), "RSA")
    if _lookup_fn is None:
        return _fallback_lookup(code)
    found: CipherInfo = _lookup_fn(code)
    return found


def new_certificate_cache() -> CertCache:
    """A fresh `analyzer.dissect.x509.CertificateCache`, or a fingerprint-only stand-in."""
    try:
        mod = importlib.import_module("analyzer.dissect.x509")
        cache: CertCache = mod.CertificateCache()
        return cache
    except (ImportError, AttributeError):
        return _HashOnlyCache()


_NAMES: dict[int, str] = {}


def cipher_name(code: int) -> str:
    """`cipher_lookup(code).name`, memoised: the lookup is bound once per process, so the name
    of a code never changes (bounded: a full memo is emptied)."""
    name = _NAMES.get(code)
    if name is None:
        name = cipher_lookup(code).name
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        _NAMES[code] = name
    return name
