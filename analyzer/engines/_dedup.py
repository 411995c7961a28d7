"""The live engine's de-duplication kernels (see `analyzer.engines.live.Deduplicator`).

One pass per packet over the decoded columns, in arrival order, against an open-addressing table of
the identities seen within the window: what took ~0.65 us per datagram as whole-batch numpy
(two [n, 17] hash matrices, a lexsort of the batch, a searchsorted and a re-sort of every identity
of the window per batch) costs a few tens of nanoseconds here, and the table is touched only at
one slot per packet.

A packet's identity hash is sum(field_j * w_j) mod 2**64 over its inner addresses, protocol, ports,
IP length and id, TCP seq/ack/flags, payload length, fragment state and first 16 payload bytes (not
the TTL, not the checksums); its vantage hash the same over the outer source address, the GWLB
endpoint and the VNI. The weights are odd (`live._weights`), so two identities that differ in one
field never collide; in several, with probability ~2**-64.
"""

from __future__ import annotations

import numpy as np

from analyzer._native import helper, kernel
from analyzer.decode._kernel import (
    C_ACK,
    C_FLAGS,
    C_FRAG,
    C_IPID,
    C_IPLEN,
    C_IPVER,
    C_PLCAP,
    C_PLLEN,
    C_PLOFF,
    C_PROTO,
    C_SEQ,
    C_SPORT,
    C_VNI,
    U_DHI,
    U_DLO,
    U_GWEP,
    U_OSHI,
    U_OSLO,
    U_SHI,
    U_SLO,
)
from analyzer.decode._kernel import C_DPORT as _C_DPORT

EMPTY = np.iinfo(np.int64).min  # the time of an empty slot
N_ID_WEIGHTS = 17  # 11 decoded columns, 4 address words, 2 payload words
N_VANTAGE_WEIGHTS = 4
_FIB = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: a slot from all the bits of a hash


@helper(inline="always")
def _slot(h, shift):
    return np.int64((h * _FIB) >> np.uint64(shift))


@helper(inline="always")
def _identity(cols, ucols, buf, i, w):
    c = cols[i]
    h = np.uint64(c[C_IPVER]) * w[0] + np.uint64(c[C_PROTO]) * w[1] + np.uint64(c[C_SPORT]) * w[2]
    h += np.uint64(c[_C_DPORT]) * w[3] + np.uint64(c[C_IPLEN]) * w[4] + np.uint64(c[C_IPID]) * w[5]
    h += np.uint64(c[C_SEQ]) * w[6] + np.uint64(c[C_ACK]) * w[7] + np.uint64(c[C_FLAGS]) * w[8]
    h += np.uint64(c[C_PLLEN]) * w[9] + np.uint64(c[C_FRAG]) * w[10]
    u = ucols[i]
    h += u[U_SHI] * w[11] + u[U_SLO] * w[12] + u[U_DHI] * w[13] + u[U_DLO] * w[14]
    # the first 16 payload bytes as two little-endian words, zero beyond what was captured
    at = c[C_PLOFF]
    have = min(c[C_PLCAP], 16, buf.shape[0] - at) if at >= 0 else 0
    lo = np.uint64(0)
    hi = np.uint64(0)
    for b in range(have):
        if b < 8:
            lo |= np.uint64(buf[at + b]) << np.uint64(8 * b)
        else:
            hi |= np.uint64(buf[at + b]) << np.uint64(8 * (b - 8))
    return h + lo * w[15] + hi * w[16]


# The table's columns: one row per slot, so that a probe reads one cache line, not one in each of
# three arrays (the table is a few MB, in L3: three misses per packet were most of its ~150 ns)
T_TIME, T_ID, T_VANTAGE = 0, 1, 2  # time of the first copy (EMPTY: free), identity and vantage hashes


@kernel("int64(int64[:, ::1], uint64[:, ::1], uint8[::1], int64[::1], int64, uint64[::1], uint64[::1], "
        "int64[:, ::1], int64, int64[::1], boolean[::1])")
def dedup(cols, ucols, buf, ts, window_ns, wid, wvan, table, shift, used, keep):
    """Mark in `keep` (all True on entry) the packets whose identity was first seen, within
    `window_ns`, from another vantage; returns how many. The table (2**(64 - shift) rows of
    T_TIME, T_ID, T_VANTAGE; the hashes stored as the int64 of their bits) holds the first copy
    of each identity; one seen again after the window is a new first copy. `used[0]`: slots
    taken (the caller keeps the table at most half full: it always has a free slot to end a probe)."""
    n = cols.shape[0]
    mask = table.shape[0] - 1
    dups = 0
    taken = used[0]
    for i in range(n):
        if cols[i, C_IPVER] <= 0:
            continue
        hu = _identity(cols, ucols, buf, i, wid)
        h = np.int64(hu)
        v = np.int64(ucols[i, U_OSHI] * wvan[0] + ucols[i, U_OSLO] * wvan[1] + ucols[i, U_GWEP] * wvan[2]
                     + np.uint64(cols[i, C_VNI]) * wvan[3])
        t = ts[i]
        j = _slot(hu, shift)
        while table[j, T_TIME] != EMPTY:
            if table[j, T_ID] == h:
                break
            j = (j + 1) & mask
        if table[j, T_TIME] == EMPTY:
            table[j, T_ID] = h
            table[j, T_VANTAGE] = v
            table[j, T_TIME] = t
            taken += 1
        elif t - table[j, T_TIME] > window_ns:  # seen before, but longer ago than the window: a new packet
            table[j, T_VANTAGE] = v
            table[j, T_TIME] = t
        elif table[j, T_VANTAGE] != v:  # the first copy came from another vantage: this is its mirror twin
            keep[i] = False
            dups += 1
    used[0] = taken
    return dups


@kernel("int64(int64[:, ::1], int64[:, ::1], int64, int64)")
def rebuild(table, new, shift, cutoff):
    """Copy the entries of a table first seen at `cutoff` or later into an empty one (`new`,
    2**(64 - shift) rows); returns how many. Older ones can no longer make a duplicate."""
    mask = new.shape[0] - 1
    kept = 0
    for j in range(table.shape[0]):
        t = table[j, T_TIME]
        if t == EMPTY or t < cutoff:
            continue
        k = _slot(np.uint64(table[j, T_ID]), shift)
        while new[k, T_TIME] != EMPTY:
            k = (k + 1) & mask
        new[k, T_TIME] = t
        new[k, T_ID] = table[j, T_ID]
        new[k, T_VANTAGE] = table[j, T_VANTAGE]
        kept += 1
    return kept
