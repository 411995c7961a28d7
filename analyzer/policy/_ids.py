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

SipHash runs in a compiled kernel (`analyzer._siphash`) over the Arrow buffers themselves: one pass
per string, no temporaries.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from analyzer._siphash import siphash_strings
from analyzer.policy._cols import notnull

__all__ = ["finding_ids", "hash64"]

_KEY = b"0123456789123456"
_K0, _K1 = (np.uint64(int.from_bytes(_KEY[i:i + 8], "little")) for i in (0, 8))
_MISSING = np.uint64(2**64 - 1)


def _buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(the UTF-8 bytes, the int64 offsets of each string in them) of a string or large_string array,
    read from its buffers (the offsets index the whole data buffer, a slice's too)."""
    wide = pa.types.is_large_string(strings.type) or pa.types.is_large_binary(strings.type)
    kind = np.int64 if wide else np.int32
    offsets = np.frombuffer(strings.buffers()[1], dtype=kind, count=len(strings) + 1,
                            offset=strings.offset * np.dtype(kind).itemsize).astype(np.int64)
    data = strings.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, offsets


def hash64(strings: pa.Array) -> np.ndarray:
    """pandas' `hash_pandas_object(Series(strings, dtype=object), index=False)` (see the module docstring)."""
    n = len(strings)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    raw, offsets = _buffers(strings)
    siphash_strings(raw, offsets, _K0, _K1, out)
    if strings.null_count:
        out[~notnull(strings)] = _MISSING
    return out


def finding_ids(keys: pa.Array) -> pa.Array:
    """16 lowercase hex digits of `hash64` of each key (large_string)."""
    hashed = hash64(keys)
    # in one pass over the big-endian bytes (an f-string per id was 5x slower)
    hexed = hashed.astype(">u8").tobytes().hex().encode("ascii")
    offsets = np.arange(0, 16 * len(hashed) + 1, 16, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(hashed), [None, pa.py_buffer(offsets), pa.py_buffer(hexed)])
