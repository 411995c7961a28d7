"""Stable finding ids without pandas: the 64-bit hash pandas' `hash_pandas_object` gave them.

A finding's id is 16 hex digits of the hash of ``rule|uid`` (``suppression-expired|<id>``). It
was `pd.util.hash_pandas_object(keys.astype(object), index=False)`, and ids are kept by users
(baselines, suppressions by id): this module gives the same numbers, byte for byte, over Arrow
strings, so the streamed audit never imports pandas for them.

What pandas computes for an object array of strings (pandas/core/util/hashing.py `_hash_ndarray`
and pandas/_libs/hashing.pyx `hash_object_array`): SipHash-2-4 of each string's UTF-8 bytes with
the key ``"0123456789123456"`` (its UTF-8 bytes, two little-endian 64-bit words), then the
"splitmix" finaliser (``x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB;
x ^= x >> 31``). A missing value (categorised first, as pandas does) hashes to 2**64 - 1 without
the finaliser. tests/policy/test_policy_ids.py compares this with pandas on many strings.

SipHash here runs vectorised in numpy over every string at once: one row per string, its bytes
laid out in little-endian 64-bit blocks (zero-padded), the last block holding the length's low
byte at the top; a row's state stops changing after its own last block.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analyzer.policy._cols import numpy_of

__all__ = ["finding_ids", "hash64"]

_KEY = b"0123456789123456"
_K0, _K1 = (int.from_bytes(_KEY[i:i + 8], "little") for i in (0, 8))
_U = np.uint64
_MISSING = np.uint64(2**64 - 1)


def _rotl(x: np.ndarray, b: int) -> np.ndarray:
    return (x << _U(b)) | (x >> _U(64 - b))


def _rounds(v0: np.ndarray, v1: np.ndarray, v2: np.ndarray, v3: np.ndarray,
            n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    for _ in range(n):
        v0 = v0 + v1
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = v2 + v3
        v3 = _rotl(v3, 16) ^ v2
        v0 = v0 + v3
        v3 = _rotl(v3, 21) ^ v0
        v2 = v2 + v1
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _blocks(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(the strings' bytes as little-endian uint64 blocks, one row per string, SipHash's length
    byte in each row's last block; the index of each row's last block)."""
    a = strings.cast(pa.large_string())
    offsets = np.frombuffer(a.buffers()[1], dtype=np.int64, count=len(a) + 1, offset=a.offset * 8)
    data = a.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    last = lengths // 8
    width = int(last.max()) + 1 if len(a) else 1
    padded = np.zeros((len(a), width * 8), dtype=np.uint8)
    total = int(lengths.sum())
    if total:
        # an Arrow string array's bytes are contiguous, from its first offset to its last
        starts = offsets[:-1] - offsets[0]
        row = np.repeat(np.arange(len(a)), lengths)
        col = np.arange(total) - np.repeat(starts, lengths)
        padded[row, col] = raw[offsets[0]:offsets[0] + total]
    blocks = padded.view("<u8").astype(np.uint64)
    blocks[np.arange(len(a)), last] |= (lengths.astype(np.uint64) & _U(0xFF)) << _U(56)
    return blocks, last


def hash64(strings: pa.Array) -> np.ndarray:
    """pandas' `hash_pandas_object(Series(strings, dtype=object), index=False)` (see the module docstring)."""
    n = len(strings)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    blocks, last = _blocks(pc.fill_null(strings, pa.scalar("", strings.type)) if strings.null_count else strings)
    with np.errstate(over="ignore"):
        v0 = np.full(n, _K0 ^ 0x736F6D6570736575, dtype=np.uint64)
        v1 = np.full(n, _K1 ^ 0x646F72616E646F6D, dtype=np.uint64)
        v2 = np.full(n, _K0 ^ 0x6C7967656E657261, dtype=np.uint64)
        v3 = np.full(n, _K1 ^ 0x7465646279746573, dtype=np.uint64)
        for i in range(blocks.shape[1]):
            live = i <= last
            if not live.all():
                rows = np.flatnonzero(live)
                m = blocks[rows, i]
                w0, w1, w2, w3 = _rounds(v0[rows], v1[rows], v2[rows], v3[rows] ^ m, 2)
                v0[rows], v1[rows], v2[rows], v3[rows] = w0 ^ m, w1, w2, w3
            else:
                m = blocks[:, i]
                v0, v1, v2, v3 = _rounds(v0, v1, v2, v3 ^ m, 2)
                v0 = v0 ^ m
        v2 = v2 ^ _U(0xFF)
        v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 4)
        x = v0 ^ v1 ^ v2 ^ v3
        x ^= x >> _U(30)
        x *= _U(0xBF58476D1CE4E5B9)
        x ^= x >> _U(27)
        x *= _U(0x94D049BB133111EB)
        x ^= x >> _U(31)
    if strings.null_count:
        x[numpy_of(strings.is_null())] = _MISSING
    return x


def finding_ids(keys: pa.Array) -> pa.Array:
    """16 lowercase hex digits of `hash64` of each key (large_string)."""
    hashed = hash64(keys)
    # in one pass over the big-endian bytes (an f-string per id was 5x slower)
    hexed = np.frombuffer(hashed.astype(">u8").tobytes().hex().encode("ascii"), dtype="S16")
    return pa.array(hexed, type=pa.binary(16)).cast(pa.large_string())
