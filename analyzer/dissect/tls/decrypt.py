"""TLS 1.3 handshake decryption with a key log's handshake traffic secrets (RFC 8446).

Given the SERVER_HANDSHAKE_TRAFFIC_SECRET of a session (`analyzer.keylog`, looked up by the
ClientHello random), the server's records after its ServerHello are decrypted (RFC 8446 5.2-5.3:
key and iv by HKDF-Expand-Label "key" / "iv" of the suite's hash, section 7.1 and 7.3; per-record
nonce = iv XOR the record sequence number; the record header is the additional data) and their
handshake messages read: EncryptedExtensions (ALPN, server_name acknowledged), Certificate (the
TLS 1.3 certificate_list, entries with their extensions), and the rest up to Finished. The client's
flight (its certificate, when asked for one) likewise with CLIENT_HANDSHAKE_TRAFFIC_SECRET.

Where it stops, and why that is all it can do: at the Finished message, or at a record that does
not authenticate. Application data is protected by the application traffic secrets, which
`analyzer.keylog` never keeps, so a record after the handshake cannot decrypt here; no plaintext
but handshake messages is kept. The keys are never part of a result, an anomaly or an exception.

QUIC uses the same secrets with its own labels and packet protection (`analyzer.dissect.quic`),
and hands its reassembled Handshake-level CRYPTO stream to `read_messages`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from analyzer.dissect.tls.handshake import _alpn_list, _decode_alpn, parse_certificate_list
from analyzer.errors import ParseError

__all__ = ["SUITES", "Flight", "Suite", "decrypt_flight", "hkdf_expand_label", "read_messages", "record_keys"]

_REC = struct.Struct(">BHH")
MAX_CERTS = 32  # as the plaintext walk keeps
MAX_FLIGHT = 1 << 21  # handshake bytes read at most per direction (= records.MAX_HANDSHAKE_MESSAGE)
MAX_EARLY_SKIPPED = 64  # 0-RTT records (not ours to decrypt) skipped before the client's flight


@dataclass(frozen=True, slots=True)
class Suite:
    """A TLS 1.3 cipher suite's record protection: AEAD, key length, hash, tag length."""

    name: str
    key_len: int
    hash: Callable[..., Any]
    aead: Callable[[bytes], Any]
    tag: int = 16
    # QUIC header protection (RFC 9001 5.4.3 / 5.4.4): "aes" or "chacha20"
    hp: str = "aes"


SUITES: dict[int, Suite] = {
    0x1301: Suite("TLS_AES_128_GCM_SHA256", 16, hashlib.sha256, AESGCM),
    0x1302: Suite("TLS_AES_256_GCM_SHA384", 32, hashlib.sha384, AESGCM),
    0x1303: Suite("TLS_CHACHA20_POLY1305_SHA256", 32, hashlib.sha256, ChaCha20Poly1305, hp="chacha20"),
    0x1304: Suite("TLS_AES_128_CCM_SHA256", 16, hashlib.sha256, AESCCM),
    0x1305: Suite("TLS_AES_128_CCM_8_SHA256", 16, hashlib.sha256, lambda key: AESCCM(key, tag_length=8), tag=8),
}


def hkdf_expand_label(secret: bytes, label: bytes, length: int, hash_fn: Callable[..., Any] = hashlib.sha256,
                      context: bytes = b"") -> bytes:
    """HKDF-Expand-Label (RFC 8446 section 7.1) with the suite's hash."""
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + bytes([len(context)]) + context
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), hash_fn).digest()
        out += block
        counter += 1
    return out[:length]


def record_keys(secret: bytes, suite: Suite, prefix: bytes = b"") -> tuple[Any, bytes]:
    """(AEAD, iv) of a traffic secret (RFC 8446 7.3; QUIC: `prefix` b"quic " or b"quicv2 ")."""
    key = hkdf_expand_label(secret, prefix + b"key", suite.key_len, suite.hash)
    iv = hkdf_expand_label(secret, prefix + b"iv", 12, suite.hash)
    return suite.aead(key), iv


@dataclass(slots=True)
class Flight:
    """What one direction's decrypted handshake said (no keys, no record plaintext kept)."""

    messages: list[int] = field(default_factory=list)  # handshake types in order
    certs: list[bytes] = field(default_factory=list)  # DER, leaf first
    alpn: str | None = None  # EncryptedExtensions' ALPN (the server's choice)
    server_name_ack: bool = False  # EncryptedExtensions carried an empty server_name
    certificate_request: bool = False
    finished: bool = False
    records: int = 0  # records decrypted
    errors: list[tuple[str, str, int | None]] = field(default_factory=list)  # (kind, detail, offset)


def decrypt_flight(data: bytes, start: int, secret: bytes, cipher_suite: int, who: str,
                   skip_undecryptable: int = 0) -> Flight:
    """Decrypt one direction's handshake records from `data[start:]` (just after its last
    plaintext hello) with its handshake traffic secret; `skip_undecryptable` records that do not
    authenticate may be skipped first (a client's 0-RTT data, under another key)."""
    flight = Flight()
    suite = SUITES.get(cipher_suite)
    if suite is None:
        flight.errors.append(("tls_decryption_unsupported",
                              f"{who} handshake: cipher suite 0x{cipher_suite:04x} is not a TLS 1.3 suite "
                              "this decrypts", None))
        return flight
    if len(secret) != suite.hash().digest_size:
        flight.errors.append(("tls_decryption_failed",
                              f"{who} handshake: the key log's secret has {len(secret)} bytes, {suite.name} needs "
                              f"{suite.hash().digest_size}", None))
        return flight
    aead, iv = record_keys(secret, suite)
    iv_int = int.from_bytes(iv, "big")
    seq = 0
    pos = start
    end = len(data)
    buf = bytearray()
    skipped_at: int | None = None
    while pos + 5 <= end and not flight.finished:
        ctype, ver, length = _REC.unpack_from(data, pos)
        rec_end = pos + 5 + length
        if ver >> 8 != 3 or rec_end > end:
            break  # not TLS, or a record the prefix does not complete (budget, trim, cut)
        if ctype == 20:  # middlebox-compatibility ChangeCipherSpec: plaintext, no sequence number
            pos = rec_end
            continue
        if ctype != 23:
            break  # a plaintext alert (or anything else): the handshake stops here
        nonce = (iv_int ^ seq).to_bytes(12, "big")
        try:
            inner = aead.decrypt(nonce, data[pos + 5 : rec_end], data[pos : pos + 5])
        except (InvalidTag, ValueError):
            if skip_undecryptable > 0 and seq == 0:
                skip_undecryptable -= 1
                skipped_at = pos if skipped_at is None else skipped_at
                pos = rec_end
                continue
            _failed(flight, who, seq, pos)
            break
        seq += 1
        flight.records += 1
        skip_undecryptable = 0
        inner = inner.rstrip(b"\x00")  # TLSInnerPlaintext: content, type, zero padding
        if not inner:
            flight.errors.append(("tls_handshake_malformed", f"{who} handshake record {seq}: all padding", pos))
            break
        if inner[-1] != 22:
            break  # an encrypted alert (or anything else): the handshake stops here, nothing kept
        buf += inner[:-1]
        if len(buf) > MAX_FLIGHT:
            flight.errors.append(("tls_handshake_too_large", f"{who} decrypted handshake over {MAX_FLIGHT} bytes",
                                  pos))
            break
        used = read_messages(bytes(buf), flight, who, pos)
        del buf[:used]
        pos = rec_end
    if not flight.records and skipped_at is not None and not flight.errors:
        _failed(flight, who, 0, skipped_at)  # every record skipped: not 0-RTT data, a wrong key
    return flight


def _failed(flight: Flight, who: str, seq: int, pos: int) -> None:
    flight.errors.append((
        "tls_decryption_failed",
        f"{who} handshake record {seq + 1} does not authenticate with the key log's "
        f"{who.upper()}_HANDSHAKE_TRAFFIC_SECRET (a wrong key, or a damaged record)", pos))


def read_messages(buf: bytes, flight: Flight, who: str, offset: int | None = None) -> int:
    """Read the complete handshake messages at the start of `buf` into `flight` (until Finished);
    returns the bytes consumed (a message cut at the end stays for the next call)."""
    pos = 0
    end = len(buf)
    while pos + 4 <= end and not flight.finished:
        mtype = buf[pos]
        mlen = int.from_bytes(buf[pos + 1 : pos + 4], "big")
        if pos + 4 + mlen > end:
            break
        body = buf[pos + 4 : pos + 4 + mlen]
        flight.messages.append(mtype)
        try:
            if mtype == 8:
                _encrypted_extensions(body, flight)
            elif mtype == 11 and not flight.certs:
                flight.certs = parse_certificate_list(body, tls13=True)[:MAX_CERTS]
            elif mtype == 25 and not flight.certs:  # RFC 8879 compressed_certificate
                flight.certs = parse_certificate_list(decompress_certificate(body), tls13=True)[:MAX_CERTS]
            elif mtype == 13:
                flight.certificate_request = True
            elif mtype == 20:
                flight.finished = True
        except ParseError as exc:
            name = {8: "encrypted_extensions", 11: "certificate", 25: "compressed_certificate"}.get(mtype, str(mtype))
            flight.errors.append(("tls_handshake_malformed", f"{who} {name} (decrypted): {exc}", offset))
        pos += 4 + mlen
    return pos


def decompress_certificate(body: bytes) -> bytes:
    """The Certificate message body of a CompressedCertificate (RFC 8879: algorithm, uncompressed
    length, compressed data), decompressed at most to its stated length (bounded by MAX_FLIGHT, so
    a small message cannot expand without bound); zlib, brotli or zstd."""
    if len(body) < 8:
        raise ParseError("compressed certificate: header cut", 0)
    algorithm = int.from_bytes(body[:2], "big")
    length = int.from_bytes(body[2:5], "big")
    clen = int.from_bytes(body[5:8], "big")
    data = body[8 : 8 + clen]
    if len(data) != clen:
        raise ParseError(f"compressed certificate: {clen} bytes announced, {len(data)} present", 5)
    if length > MAX_FLIGHT:
        raise ParseError(f"compressed certificate: uncompressed length {length} over {MAX_FLIGHT}", 2)
    try:
        if algorithm == 1:
            out = zlib.decompressobj().decompress(data, length + 1)
        elif algorithm == 2:
            import brotli

            out = brotli.Decompressor().process(data, output_buffer_limit=length + 1)
        elif algorithm == 3:
            import zstandard

            out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read(length + 1)
        else:
            raise ParseError(f"compressed certificate: unknown algorithm {algorithm}", 0)
    except (zlib.error, ValueError, OSError) as exc:
        raise ParseError(f"compressed certificate: {type(exc).__name__}", 8) from None
    except Exception as exc:  # brotli.error, zstandard.ZstdError: not importable without the package
        if type(exc).__name__ not in ("error", "ZstdError"):
            raise
        raise ParseError(f"compressed certificate: {type(exc).__name__}", 8) from None
    if len(out) != length:
        raise ParseError(f"compressed certificate: {len(out)} bytes, not the {length} announced", 2)
    return out


def _encrypted_extensions(body: bytes, flight: Flight) -> None:
    if len(body) < 2:
        raise ParseError("extensions length cut", 0)
    total = int.from_bytes(body[:2], "big")
    if 2 + total > len(body):
        raise ParseError(f"extensions length {total} exceeds the {len(body) - 2} bytes present", 0)
    pos, stop = 2, 2 + total
    while pos + 4 <= stop:
        etype, elen = struct.unpack_from(">HH", body, pos)
        ext = body[pos + 4 : pos + 4 + elen]
        if pos + 4 + elen > stop:
            raise ParseError(f"extension {etype} runs past the list", pos)
        if etype == 16:  # ALPN: the list holds the one protocol selected (decoded as the hellos' are)
            names = _decode_alpn(_alpn_list(ext))
            flight.alpn = names[0] if names else None
        elif etype == 0 and not ext:
            flight.server_name_ack = True
        pos += 4 + elen
