"""Compiled record-header walkers (numba). The one inherently sequential step of reading a capture.

Each walker scans `buf[pos:end]`, writes one row per complete packet record into the output arrays
and returns (rows_written, new_pos, status). Status values:
  NEED_MORE  the next record is incomplete: refill from new_pos
  FULL       the output arrays are full: call again from new_pos
  CORRUPT    the record header at new_pos is impossible (see the reason code in `aux`)
  CONTROL    (pcapng) a section, interface or decryption secrets block starts at new_pos: the caller
           parses it
"""

from __future__ import annotations

import numpy as np

from analyzer._native import helper, kernel

NEED_MORE = 0
FULL = 1
CORRUPT = 2
CONTROL = 3

# CORRUPT reason codes
BAD_CAPLEN = 1
BAD_BLOCK_LEN = 2
BAD_TRAILER = 3


@helper(inline="always")
def _u32(buf: np.ndarray, p: int, swap: bool) -> int:
    if swap:
        return (np.uint32(buf[p]) << 24) | (np.uint32(buf[p + 1]) << 16) | (
            np.uint32(buf[p + 2]) << 8) | np.uint32(buf[p + 3])
    return (np.uint32(buf[p + 3]) << 24) | (np.uint32(buf[p + 2]) << 16) | (
        np.uint32(buf[p + 1]) << 8) | np.uint32(buf[p])


@helper(inline="always")
def _u16(buf: np.ndarray, p: int, swap: bool) -> int:
    if swap:
        return (np.uint32(buf[p]) << 8) | np.uint32(buf[p + 1])
    return (np.uint32(buf[p + 1]) << 8) | np.uint32(buf[p])


@kernel(
    "UniTuple(int64, 3)(uint8[::1], int64, int64, boolean, int64, int64[::1], int32[::1], int32[::1], uint32[::1], uint32[::1], int64[::1])"
)
def walk_pcap(buf, pos, end, swap, max_caplen, off, cap, wire, sec, frac, aux):
    n = 0
    limit = off.shape[0]
    while True:
        if n >= limit:
            return n, pos, FULL
        if pos + 16 > end:
            return n, pos, NEED_MORE
        caplen = _u32(buf, pos + 8, swap)
        if caplen > max_caplen:
            aux[0] = BAD_CAPLEN
            aux[1] = caplen
            return n, pos, CORRUPT
        if pos + 16 + caplen > end:
            return n, pos, NEED_MORE
        sec[n] = _u32(buf, pos, swap)
        frac[n] = _u32(buf, pos + 4, swap)
        cap[n] = caplen
        wire[n] = _u32(buf, pos + 12, swap)
        off[n] = pos + 16
        n += 1
        pos += 16 + caplen


@kernel(
    "UniTuple(int64, 3)(uint8[::1], int64, int64, boolean, int64, int64[::1], int32[::1], int32[::1], uint32[::1], uint32[::1], uint32[::1], int64[::1])"
)
def walk_pcapng(buf, pos, end, swap, max_block, off, cap, wire, tshi, tslo, ifid, aux):
    n = 0
    limit = off.shape[0]
    while True:
        if n >= limit:
            return n, pos, FULL
        if pos + 12 > end:
            return n, pos, NEED_MORE
        btype = _u32(buf, pos, swap)
        if btype == 0x0A0D0D0A or btype == 1 or btype == 10:  # SHB, IDB, Decryption Secrets Block
            return n, pos, CONTROL
        blen = _u32(buf, pos + 4, swap)
        if blen < 12 or blen % 4 != 0 or blen > max_block:
            aux[0] = BAD_BLOCK_LEN
            aux[1] = blen
            return n, pos, CORRUPT
        if pos + blen > end:
            return n, pos, NEED_MORE
        if _u32(buf, pos + blen - 4, swap) != blen:
            aux[0] = BAD_TRAILER
            aux[1] = blen
            return n, pos, CORRUPT
        if btype == 6 or btype == 2:  # Enhanced Packet Block, or the obsolete Packet Block (same layout
            # but a 16-bit interface id followed by a 16-bit drops count)
            if blen < 32:
                aux[0] = BAD_BLOCK_LEN
                aux[1] = blen
                return n, pos, CORRUPT
            caplen = _u32(buf, pos + 20, swap)
            if 28 + caplen > blen - 4:
                aux[0] = BAD_CAPLEN
                aux[1] = caplen
                return n, pos, CORRUPT
            ifid[n] = _u32(buf, pos + 8, swap) if btype == 6 else _u16(buf, pos + 8, swap)
            tshi[n] = _u32(buf, pos + 12, swap)
            tslo[n] = _u32(buf, pos + 16, swap)
            cap[n] = caplen
            wire[n] = _u32(buf, pos + 24, swap)
            off[n] = pos + 28
            n += 1
        elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
            if blen < 16:
                aux[0] = BAD_BLOCK_LEN
                aux[1] = blen
                return n, pos, CORRUPT
            origlen = _u32(buf, pos + 8, swap)
            caplen = min(origlen, blen - 16)
            ifid[n] = 0
            tshi[n] = 0xFFFFFFFF  # marker: no timestamp
            tslo[n] = 0xFFFFFFFF
            cap[n] = caplen
            wire[n] = origlen
            off[n] = pos + 12
            n += 1
        # every other block type (name resolution, statistics, DSB, custom, unknown) is skipped
        pos += blen
