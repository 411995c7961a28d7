"""The finding-id hash as a compiled kernel: pandas' `hash_pandas_object` of strings, one pass per string.

`analyzer.policy._ids` documents the function (SipHash-2-4 with pandas' key over each string's UTF-8
bytes, then pandas' "splitmix" finaliser). It was computed in numpy over every string at once: a
zero-padded [strings x blocks] byte matrix, built by a per-byte scatter, and one masked numpy pass
per block. That cost more than the rest of the policy stage on the benchmark capture (0.15-0.2 s of
CPU per 16k-flow chunk, most of it page faults for the temporaries); here it is a loop over the
Arrow buffers that allocates nothing but the result.

A kernel module (`analyzer._native`): it never imports numba, and it lives outside
`analyzer.policy` because binding the kernels imports every kernel module, and a `flows` run must
not import the policy package.
"""

from __future__ import annotations

import numpy as np

from analyzer._native import helper, kernel

_S13, _S51 = np.uint64(13), np.uint64(51)
_S16, _S48 = np.uint64(16), np.uint64(48)
_S17, _S47 = np.uint64(17), np.uint64(47)
_S21, _S43 = np.uint64(21), np.uint64(43)
_S32 = np.uint64(32)


@helper()
def _round(v0, v1, v2, v3):
    """One SipRound. Not `inline="always"`: numba's IR inlining, in the kernel numba.pycc compiles
    first (its exports are sorted by name, and this one sorts first), broke the type inference of
    `decode_batch` compiled after it; LLVM inlines this small function anyway."""
    v0 = v0 + v1
    v1 = ((v1 << _S13) | (v1 >> _S51)) ^ v0
    v0 = (v0 << _S32) | (v0 >> _S32)
    v2 = v2 + v3
    v3 = ((v3 << _S16) | (v3 >> _S48)) ^ v2
    v0 = v0 + v3
    v3 = ((v3 << _S21) | (v3 >> _S43)) ^ v0
    v2 = v2 + v1
    v1 = ((v1 << _S17) | (v1 >> _S47)) ^ v2
    v2 = (v2 << _S32) | (v2 >> _S32)
    return v0, v1, v2, v3


@kernel("void(uint8[::1], int64[::1], uint64, uint64, uint64[::1])")
def siphash_strings(data, offsets, k0, k1, out):
    """out[i] = pandas' hash of the bytes data[offsets[i]:offsets[i + 1]] (SipHash-2-4 keyed by
    k0, k1, then the splitmix finaliser). `offsets` has len(out) + 1 entries."""
    c0 = np.uint64(0x736F6D6570736575)
    c1 = np.uint64(0x646F72616E646F6D)
    c2 = np.uint64(0x6C7967656E657261)
    c3 = np.uint64(0x7465646279746573)
    for i in range(out.shape[0]):
        start = offsets[i]
        n = offsets[i + 1] - start
        v0 = k0 ^ c0
        v1 = k1 ^ c1
        v2 = k0 ^ c2
        v3 = k1 ^ c3
        full = n // 8
        for blk in range(full):
            at = start + 8 * blk
            m = np.uint64(0)
            for b in range(8):
                m |= np.uint64(data[at + b]) << np.uint64(8 * b)
            v3 ^= m
            v0, v1, v2, v3 = _round(v0, v1, v2, v3)
            v0, v1, v2, v3 = _round(v0, v1, v2, v3)
            v0 ^= m
        # the last block: the remaining bytes, the length's low byte at the top
        m = (np.uint64(n) & np.uint64(0xFF)) << np.uint64(56)
        at = start + 8 * full
        for b in range(n - 8 * full):
            m |= np.uint64(data[at + b]) << np.uint64(8 * b)
        v3 ^= m
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
        v2 ^= np.uint64(0xFF)
        for _ in range(4):
            v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        x = v0 ^ v1 ^ v2 ^ v3
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        out[i] = x
