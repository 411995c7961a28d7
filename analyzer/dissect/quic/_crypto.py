"""QUIC Initial packet protection (RFC 9001 section 5, RFC 9369 section 3.3).

Only the Initial keys are derivable by a passive observer: they come from the Destination
Connection ID of the client's first Initial packet and a per-version public salt. Everything after
the Initial packets (Handshake, 0-RTT, 1-RTT) needs the TLS secrets: the Handshake packets are
decrypted with a key log's (`_handshake.py`, same `unprotect`), the rest stays opaque.

`InitialKeys.for_dcid(salt, label_prefix, dcid, server=False)` derives (and caches) the AES-128-GCM
key, IV and header-protection key; `unprotect(data, start, pn_offset, end, keys, largest_pn)`
removes header protection and decrypts one Initial packet, raising `ParseError` when the AEAD tag
does not verify. `protect` is the inverse (tests and synthetic traffic only).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from analyzer.errors import ParseError

__all__ = [
    "InitialKeyCache",
    "InitialKeys",
    "PacketProtection",
    "decode_packet_number",
    "hkdf_expand_label",
    "hkdf_extract",
    "initial_secrets",
    "protect",
    "unprotect",
]

_SHA256 = hashlib.sha256


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract with SHA-256 (RFC 5869 section 2.2)."""
    return hmac.new(salt, ikm, _SHA256).digest()


def hkdf_expand_label(secret: bytes, label: bytes, length: int, context: bytes = b"") -> bytes:
    """TLS 1.3 HKDF-Expand-Label (RFC 8446 section 7.1) with SHA-256, for `length` <= 255 * 32."""
    if not context and length <= 32:
        full = b"tls13 " + label
        info = struct.pack(">HB", length, len(full)) + full + b"\x00\x01"
        return hmac.new(secret, info, _SHA256).digest()[:length]
    from analyzer.dissect.tls.decrypt import hkdf_expand_label as general  # the rare long or keyed case

    return general(secret, label, length, hashlib.sha256, context)


def initial_secrets(salt: bytes, dcid: bytes) -> tuple[bytes, bytes]:
    """(client_initial_secret, server_initial_secret) for a client's original DCID."""
    initial = hkdf_extract(salt, dcid)
    return (hkdf_expand_label(initial, b"client in", 32), hkdf_expand_label(initial, b"server in", 32))


@dataclass(slots=True, frozen=True)
class InitialKeys:
    """Packet and header protection of one direction's Initial packets."""

    key: bytes
    iv: bytes
    hp: bytes
    aead: AESGCM
    hp_ecb: CipherContext

    @classmethod
    def from_secret(cls, secret: bytes, label_prefix: bytes) -> InitialKeys:
        key = hkdf_expand_label(secret, label_prefix + b" key", 16)
        iv = hkdf_expand_label(secret, label_prefix + b" iv", 12)
        hp = hkdf_expand_label(secret, label_prefix + b" hp", 16)
        ecb = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
        return cls(key, iv, hp, AESGCM(key), ecb)

    @classmethod
    def for_dcid(
        cls, salt: bytes, label_prefix: bytes, dcid: bytes, *, server: bool, cache: InitialKeyCache | None = None
    ) -> InitialKeys:
        """Keys for the client's (`server=False`) or server's Initial packets; kept in `cache`
        (the dissector's own, see InitialKeyCache) when one is given."""
        ck = (salt, label_prefix, dcid, server)
        if cache is not None:
            hit = cache.entries.get(ck)
            if hit is not None:
                cache.entries.move_to_end(ck)
                return hit
        initial = hkdf_extract(salt, dcid)
        secret = hkdf_expand_label(initial, b"server in" if server else b"client in", 32)
        keys = cls.from_secret(secret, label_prefix)
        if cache is not None:
            cache.entries[ck] = keys
            if len(cache.entries) > cache.limit:
                cache.entries.popitem(last=False)
        return keys

    def mask(self, sample: bytes) -> bytes:
        """The 5-byte header-protection mask: AES-ECB(hp, sample)[0:5]."""
        return self.hp_ecb.update(sample)[:5]


class InitialKeyCache:
    """Initial keys by (salt, label prefix, DCID, direction), least recently used dropped first.
    A client's Initials (and retransmissions) share one DCID, so the key derivation (three HKDF
    expansions and two AES key schedules) runs once per connection. Owned by one dissector
    instance (never shared by the analyses of a process); bounded by `limit` entries."""

    __slots__ = ("entries", "limit")

    def __init__(self, limit: int = 256) -> None:
        self.entries: OrderedDict[tuple[bytes, bytes, bytes, bool], InitialKeys] = OrderedDict()
        self.limit = limit


def decode_packet_number(largest_pn: int, truncated_pn: int, pn_nbits: int) -> int:
    """RFC 9000 appendix A.3: the full packet number closest to largest_pn + 1."""
    expected = largest_pn + 1
    win = 1 << pn_nbits
    hwin = win // 2
    mask = win - 1
    candidate = (expected & ~mask) | truncated_pn
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


class PacketProtection(Protocol):
    """What `unprotect` needs of a packet-number space's keys: `InitialKeys`, or the Handshake
    keys a key log gives (`analyzer.dissect.quic._handshake.HandshakeKeys`)."""

    @property
    def iv(self) -> bytes: ...
    @property
    def aead(self) -> Any: ...
    def mask(self, sample: bytes) -> bytes: ...


def unprotect(
    data: bytes, start: int, pn_offset: int, end: int, keys: PacketProtection, largest_pn: int = -1
) -> tuple[int, bytes, int]:
    """Remove header protection and decrypt one long-header packet occupying data[start:end].

    `pn_offset` is where the (protected) packet number begins. Returns (packet_number, plaintext,
    unprotected first byte). Raises ParseError when the packet is too short to sample or the
    authentication tag does not verify (wrong keys, corruption, or not an Initial at all).
    """
    sample_at = pn_offset + 4
    if sample_at + 16 > end:
        raise ParseError("quic: packet too short for the header protection sample", start)
    mask = keys.mask(data[sample_at : sample_at + 16])
    first = data[start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    if pn_offset + pn_len + 16 > end:
        raise ParseError("quic: packet too short for its packet number and tag", start)
    pn_bytes = bytes(b ^ m for b, m in zip(data[pn_offset : pn_offset + pn_len], mask[1:], strict=False))
    truncated = int.from_bytes(pn_bytes, "big")
    pn = decode_packet_number(largest_pn, truncated, pn_len * 8)
    header = bytes([first]) + data[start + 1 : pn_offset] + pn_bytes
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    try:
        plain = keys.aead.decrypt(nonce, data[pn_offset + pn_len : end], header)
    except InvalidTag:
        raise ParseError("quic: packet does not authenticate with the derived keys", start) from None
    return pn, plain, first


def protect(header: bytes, pn_len: int, pn: int, payload: bytes, keys: InitialKeys) -> bytes:
    """Build a protected long-header packet (the inverse of `unprotect`; for tests and fixtures).

    `header` is the unprotected header ending with the `pn_len`-byte packet number, whose Length
    field already counts the packet number, payload and 16-byte tag.
    """
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    sealed = keys.aead.encrypt(nonce, payload, header)
    pn_offset = len(header) - pn_len
    sample = sealed[4 - pn_len : 4 - pn_len + 16]
    mask = keys.mask(sample)
    first = header[0] ^ (mask[0] & (0x0F if header[0] & 0x80 else 0x1F))
    pn_bytes = bytes(b ^ m for b, m in zip(header[pn_offset:], mask[1:], strict=False))
    return bytes([first]) + header[1:pn_offset] + pn_bytes + sealed
