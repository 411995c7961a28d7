"""QUIC Handshake packets decrypted with a key log's handshake traffic secrets (RFC 9001 section 5).

The Initial packets' keys are public; the Handshake packets' (long header type Handshake) come from
the TLS handshake traffic secrets, which only a key log gives (`analyzer.keylog`: looked up by the
ClientHello random). Per direction: key, iv and header-protection key by HKDF-Expand-Label with the
labels "quic key", "quic iv", "quic hp" (QUIC v2: "quicv2 ..." RFC 9369 3.3.2) and the negotiated
suite's hash; header protection by AES-ECB or ChaCha20 (RFC 9001 5.4.3-5.4.4); the packets'
CRYPTO frames reassembled by offset and read by the same TLS 1.3 message reader as TLS over TCP
(`analyzer.dissect.tls.decrypt.read_messages`): EncryptedExtensions, Certificate, up to Finished.

1-RTT packets (short headers) use the application secrets, which the key log reader never keeps:
they are never decrypted. Nothing derived here leaves this module but handshake facts.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from analyzer.dissect.quic._crypto import unprotect
from analyzer.dissect.quic._frames import CryptoStream, parse_frames
from analyzer.dissect.quic._packets import LongHeader
from analyzer.dissect.tls.decrypt import SUITES, Flight, Suite, hkdf_expand_label, read_messages, record_keys
from analyzer.errors import ParseError

__all__ = ["HandshakeKeys", "decrypt_handshake"]

CRYPTO_CAP = 64 * 1024  # as the Initial level's


class HandshakeKeys:
    """Packet and header protection of one direction's Handshake packets (`unprotect`'s keys)."""

    __slots__ = ("_mask", "aead", "iv")

    def __init__(self, secret: bytes, suite: Suite, label_prefix: bytes) -> None:
        prefix = label_prefix + b" "
        self.aead, self.iv = record_keys(secret, suite, prefix)
        hp = hkdf_expand_label(secret, prefix + b"hp", suite.key_len, suite.hash)
        self._mask: Callable[[bytes], bytes]
        if suite.hp == "chacha20":
            # RFC 9001 5.4.4: counter = sample[0:4] (little-endian), nonce = sample[4:16]: exactly
            # the 16-byte nonce `cryptography`'s ChaCha20 takes
            self._mask = lambda sample: Cipher(algorithms.ChaCha20(hp, sample), None).encryptor().update(bytes(5))
        else:
            ecb = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
            self._mask = lambda sample: ecb.update(sample)[:5]

    def __repr__(self) -> str:  # never the keys
        return "HandshakeKeys(...)"

    def mask(self, sample: bytes) -> bytes:
        return self._mask(sample)


def decrypt_handshake(packets: list[tuple[bytes, LongHeader]], secret: bytes, cipher_suite: int,
                      label_prefix: bytes, who: str) -> Flight:
    """One direction's Handshake packets (in arrival order) -> its decrypted handshake messages."""
    flight = Flight()
    suite = SUITES.get(cipher_suite)
    if suite is None or suite.tag != 16:
        flight.errors.append(("quic_decryption_unsupported",
                              f"{who} handshake: cipher suite 0x{cipher_suite:04x} is not a QUIC suite this "
                              "decrypts", None))
        return flight
    if len(secret) != suite.hash().digest_size:
        flight.errors.append(("quic_decryption_failed",
                              f"{who} handshake: the key log's secret has {len(secret)} bytes, {suite.name} needs "
                              f"{suite.hash().digest_size}", None))
        return flight
    keys = HandshakeKeys(secret, suite, label_prefix)
    stream = CryptoStream(CRYPTO_CAP)
    largest = -1
    parsed = 0
    failed = 0
    for data, hdr in packets:
        try:
            pn, plain, _first = unprotect(data, hdr.start, hdr.pn_offset, hdr.end, keys, largest)
        except ParseError:
            failed += 1
            if failed == 1 and not flight.records:
                flight.errors.append((
                    "quic_decryption_failed",
                    f"{who} Handshake packet does not authenticate with the key log's "
                    f"{who.upper()}_HANDSHAKE_TRAFFIC_SECRET (a wrong key, or a damaged packet)", hdr.start))
            continue
        largest = max(largest, pn)
        flight.records += 1
        frames = parse_frames(plain)
        for off, chunk in frames.crypto:
            stream.add(off, chunk)
        if stream.contiguous_len > parsed:
            parsed += read_messages(bytes(stream.contiguous[parsed:]), flight, who, hdr.start)
        if flight.finished:
            break
    return flight
