"""Compiled flow table (numba): one sequential pass over decoded packets.

Why sequential and compiled rather than numpy group-bys: idle/active timeouts, TCP connection
reuse, client/server orientation, retransmission accounting and in-place stream reassembly all
depend on packet order within a flow. A numba loop does them exactly at ~20-50 ns per packet;
the group-by formulation needs sorting, several passes and still a sequential fix-up.

State lives in preallocated arrays owned by `FlowTable` (analyzer.flows.table); when a resource
runs out the kernel returns a NEED_* status with the packet index to resume from, before it has
changed anything for that packet, so the Python side can grow the arrays and call again.
"""

from __future__ import annotations

import numpy as np

from analyzer._native import copy_bytes, helper, kernel
from analyzer.decode._kernel import (
    C_DPORT,
    C_FLAGS,
    C_FRAG,
    C_GWCK_SET,
    C_IPID,
    C_IPLEN,
    C_IPVER,
    C_OIPVER,
    C_PLCAP,
    C_PLLEN,
    C_PLOFF,
    C_PROTO,
    C_SEQ,
    C_SPI,
    C_SPORT,
    C_STATUS,
    C_TRUNC,
    C_TUN,
    C_VLAN,
    C_VNI,
    ST_NOT_IP,
    U_DHI,
    U_DLO,
    U_GWATT,
    U_GWCK,
    U_GWEP,
    U_ODHI,
    U_ODLO,
    U_OSHI,
    U_OSLO,
    U_SHI,
    U_SLO,
)

# statuses
DONE = 0
NEED_RECORDS = 1
NEED_PAGES = 2
NEED_EXPORT = 3
NEED_REHASH = 4

# TCP flag bits
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20

# record int64 fields (R)
R_USED = 0  # 0 free, 1 live, 2 ended (waiting for export)
R_PORTA = 1
R_PORTB = 2
R_PROTO = 3
R_IPVER = 4
R_CLIENT_IS_A = 5
R_CLIENT_BY = 6  # 0 first packet, 1 syn, 2 synack, 3 service port, 4 icmp type, 5 continued (active timeout)
R_TS_FIRST = 7
R_TS_LAST = 8
R_SEQNO = 9
R_VNI = 10
R_TUNBITS = 11
R_OIPVER = 12
R_VLAN = 13
R_TRUNC = 14
R_GWCK_SET = 15
R_NDG = 16
R_CLOSED = 17  # bit0 FIN from client, bit1 FIN from server, bit2 RST seen
R_RST_FIRST = 18  # -1 none, 0 client, 1 server
R_HIST = 19  # bit0 SYN from client, bit1 SYN+ACK from server, bit2 SYN+ACK from client, bit3 SYN from server
R_ORPHAN_FRAGS = 20
R_END_REASON = 21  # 1 idle, 2 active, 3 closed, 4 reuse, 5 end of input, 6 evicted (table full), 7 memory
R_FIRST_PKT = 22  # global packet number of the first packet
R_SPI = 23
R_ICMP = 24  # first ICMP type << 8 | code, -1 when not ICMP
R_SOURCE = 25  # index of the capture the flow was first seen in
R_ZHIST = 26  # Zeek's RSTOS0 history test /^?S[^HAFGIQ]*R.*/: 0 no letter yet, 1 S first, 2 matched, 3 no
D0 = 27  # per-direction block, direction 0 = client -> server, 1 = server -> client
D_PKTS = 0
D_IPB = 1
D_PLB = 2
D_FLAGS = 3
D_START = 4
D_HAVE_START = 5  # 0 none, 1 from SYN, 2 from first data (mid-stream)
D_CONTIG = 6
D_MAXEND = 7
D_RETX = 8
D_NOOO = 9
D_SEGS = 10
D_OOO_LOST = 11
D_BUDGET_HIT = 12
D_ZST = 13  # Zeek's TCP endpoint state (Z_* below): conn_state is derived from both, as Zeek does
D_ZPREV = 14  # the previous endpoint state (Zeek turns "FIN then RST" back into CLOSED)
D_SEEN = 15  # stream bytes [0, D_SEEN) seen (captured or not, budget or not): retransmission accounting
D_NSEEN = 16  # disjoint seen intervals beyond D_SEEN, stored at D_SEENIV
D_SEENIV = 17
NSEENIV = 4
# TLS framing of the prefix (`_tls_frame`): the stream offset of the next record header to read
# (-1: not walked, the stream does not start with TLS records), records read since the first
# application-data record, and the prefix limit decided from them (0: the flow's budget applies)
D_RECNEXT = D_SEENIV + 2 * NSEENIV
D_RECAFTER = D_RECNEXT + 1
D_LIMIT = D_RECNEXT + 2
# The handshake extension (see HANDSHAKE_EXTENSION below): D_HSDONE is 1 once the framing walked a
# record other than a plaintext handshake record (type 22); D_XPT is 1 + the pool page that lists
# the direction's extension pages (0: none held).
D_HSDONE = D_LIMIT + 1
D_XPT = D_LIMIT + 2
# 1: the prefix was cut short to a lowered payload budget (memory budget, `shrink`): nothing more is
# added to it, so a UDP flow's datagrams stay a gapless run from its first (and no handshake
# extension starts on it)
D_CUT = D_LIMIT + 3
DW = D_LIMIT + 4
NR = D0 + 2 * DW

# record uint64 fields (RU)
RU_TUN = 0
RU_AHI = 1
RU_ALO = 2
RU_BHI = 3
RU_BLO = 4
RU_OSHI = 5
RU_OSLO = 6
RU_ODHI = 7
RU_ODLO = 8
RU_GWEP = 9
RU_GWATT = 10
RU_GWCK = 11
NRU = 12

# globals (G)
G_RFREE_TOP = 0
G_SEQNO = 1
G_HT_LIVE = 2
G_HT_TOMB = 3
G_PFREE_TOP = 4
G_NENDED = 5
G_PKT_BASE = 6
G_NOT_IP = 7
G_NOW = 8
G_SOURCE = 9
G_XLIVE = 10  # directions holding a handshake extension now
G_RHWM = 11  # records ever in use: ids >= this never were (the scans of the table stop there)
G_EXPIRE_AT = 12  # where an `expire` scan stopped with ENDED full: the next call goes on from there
G_EVICT_AT = 13  # evict_largest: the next entry of its plan (PLAN[:G_EVICT_N]) to end
G_EVICT_N = 14  # evict_largest: entries in its plan; 0: make one (a new relief)
NG = 16

NOOO = 8  # pending out-of-order intervals kept per direction
# Datagrams kept per UDP flow. A DTLS 1.2 handshake with a cookie exchange and a certificate chain
# fragmented to a small path MTU takes 20 (captures/dtls12_openssl.pcap: the server's
# ChangeCipherSpec is datagram 18); 16 cut it short. Each is two int64 (DG_TS, DG_LEN_DIR).
MAXDG = 32
DG_TS = 0  # capture time, ns
DG_LEN_DIR = 1  # captured payload length << 1 | direction; its offset in the direction's prefix is
#                 the sum of the earlier ones of that direction (they are written back to back)
NDG = 2

# options (O)
O_IDLE_TCP = 0
O_IDLE_UDP = 1
O_IDLE_OTHER = 2
O_ACTIVE = 3
O_CLOSE_DELAY = 4
O_BUDGET = 5
O_PAGE = 6
O_NPG = 7
O_TLS_TRIM = 8  # 1: end a TLS stream's prefix after the records the TLS dissector reads
O_XPG = 9  # pages of a handshake extension (0: none)
O_XSLOTS = 10  # directions that may hold a handshake extension at once
NO = 11

# TLS records as the TLS dissector accepts them (analyzer/dissect/tls/dissector.py)
TLS_MAX_RECORD = 16384 + 2048
# Records kept from the first application-data record on, that one included: the dissector reads
# at most ENCRYPTED_TAIL (2) records once a direction is encrypted, and a direction is encrypted at
# the latest from its first application-data record, so it never reads past the third.
TLS_RECORDS_AFTER_APPDATA = 3
# Handshake extension (issue 16 item 5): a TLS stream still in its plaintext handshake (every record
# so far of type 22: ClientHello, ServerHello, Certificate, ...) is read past the payload budget, by
# up to HANDSHAKE_EXTENSION bytes, so that a hello padded past the budget or a long certificate chain
# is read whole instead of hiding its server name, fingerprint or certificates. Its extra pages are
# listed in one pool page (D_XPT); at most O_XSLOTS directions hold one at a time (memory stays
# bounded: slots x (HANDSHAKE_EXTENSION + a page)); one that finds none free is cut at the budget, as
# before, and the TLS dissector says so. Once the handshake records end past the budget, the records
# the TLS dissector still reads (TLS_RECORDS_AFTER_APPDATA) end the prefix as usual. Applies with or
# without O_TLS_TRIM (the budget must not cut a handshake either way).
HANDSHAKE_EXTENSION = 256 * 1024
HANDSHAKE_EXTENSION_SLOTS = 64

EMPTY = -1
TOMB = -2

# Zeek TCP endpoint states (analyzer::tcp::EndpointState)
Z_INACTIVE = 0
Z_SYN_SENT = 1
Z_SYN_ACK_SENT = 2
Z_PARTIAL = 3
Z_ESTABLISHED = 4
Z_CLOSED = 5
Z_RESET = 6


@helper(inline="always")
def _mix(h, v):
    h ^= v + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2))
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return h


@helper()
def _hash(tun, ahi, alo, bhi, blo, pa, pb, proto):
    h = np.uint64(0x243F6A8885A308D3)
    h = _mix(h, tun)
    h = _mix(h, ahi)
    h = _mix(h, alo)
    h = _mix(h, bhi)
    h = _mix(h, blo)
    h = _mix(h, np.uint64((pa << 24) | (pb << 8) | proto))
    return h


@helper()
def _lookup(HT, R, RU, tun, ahi, alo, bhi, blo, pa, pb, proto):
    """-> (record index or -1, slot where it is or where it would be inserted)."""
    mask = HT.shape[0] - 1
    slot = np.int64(_hash(tun, ahi, alo, bhi, blo, pa, pb, proto) & np.uint64(mask))
    first_free = -1
    while True:
        r = HT[slot]
        if r == EMPTY:
            return -1, (slot if first_free < 0 else first_free)
        if r == TOMB:
            if first_free < 0:
                first_free = slot
        elif (R[r, R_PORTA] == pa and R[r, R_PORTB] == pb and R[r, R_PROTO] == proto
              and RU[r, RU_ALO] == alo and RU[r, RU_BLO] == blo and RU[r, RU_AHI] == ahi
              and RU[r, RU_BHI] == bhi and RU[r, RU_TUN] == tun):
            return r, slot
        slot = (slot + 1) & mask


@kernel("void(int64[::1], int64[:, ::1], uint64[:, ::1], int64[::1])")
def rehash(HT, R, RU, G):
    """Rebuild the index from the live records (after growth or many deletions)."""
    HT[:] = EMPTY
    live = 0
    for r in range(min(G[G_RHWM], R.shape[0])):
        if R[r, R_USED] == 1:
            _, slot = _lookup(HT, R, RU, RU[r, RU_TUN], RU[r, RU_AHI], RU[r, RU_ALO], RU[r, RU_BHI],
                              RU[r, RU_BLO], R[r, R_PORTA], R[r, R_PORTB], R[r, R_PROTO])
            HT[slot] = r
            live += 1
    G[G_HT_LIVE] = live
    G[G_HT_TOMB] = 0


@helper()
def _end(r, reason, HT, R, RU, G, ENDED):
    _, slot = _lookup(HT, R, RU, RU[r, RU_TUN], RU[r, RU_AHI], RU[r, RU_ALO], RU[r, RU_BHI],
                      RU[r, RU_BLO], R[r, R_PORTA], R[r, R_PORTB], R[r, R_PROTO])
    if HT[slot] == r:
        HT[slot] = TOMB
        G[G_HT_LIVE] -= 1
        G[G_HT_TOMB] += 1
    R[r, R_USED] = 2
    R[r, R_END_REASON] = reason
    ENDED[G[G_NENDED]] = r
    G[G_NENDED] += 1


@kernel(
    "int64(int64, boolean, int64[::1], int64[:, ::1], uint64[:, ::1], int64[::1], int64[::1], int64[::1])"
)
def expire(now, force, HT, R, RU, G, O, ENDED):
    """End flows idle past their timeout at time `now` (ns), or all of them when `force`.

    Returns the number ended; stops early (returns -1) when ENDED is full, and the next call
    goes on from the record it stopped at (G_EXPIRE_AT: a scan that ends thousands of flows, 256 per
    export, reads the table once, not once per export; the caller zeroes it to begin a scan).
    """
    n = 0
    for r in range(G[G_EXPIRE_AT], min(G[G_RHWM], R.shape[0])):
        if R[r, R_USED] != 1:
            continue
        if G[G_NENDED] >= ENDED.shape[0]:
            G[G_EXPIRE_AT] = r
            return -1
        idle = now - R[r, R_TS_LAST]
        proto = R[r, R_PROTO]
        limit = O[O_IDLE_TCP] if proto == 6 else (O[O_IDLE_UDP] if proto == 17 else O[O_IDLE_OTHER])
        closed = proto == 6 and ((R[r, R_CLOSED] & 3) == 3 or (R[r, R_CLOSED] & 4) != 0)
        if force:
            _end(r, 5, HT, R, RU, G, ENDED)
            n += 1
        elif idle > limit:
            _end(r, 1, HT, R, RU, G, ENDED)
            n += 1
        elif closed and idle > O[O_CLOSE_DELAY]:
            _end(r, 3, HT, R, RU, G, ENDED)
            n += 1
    G[G_EXPIRE_AT] = 0
    return n


@helper()
def _alloc_page(G, PFREE):
    top = G[G_PFREE_TOP]
    G[G_PFREE_TOP] = top - 1
    return PFREE[top - 1]


@helper(inline="always")
def _xget(POOL, xp, k):
    """Entry k of extension page list `xp` (a pool page of little-endian uint32: 1 + page, 0 none)."""
    at = 4 * k
    row = POOL[xp]
    return (np.int64(row[at]) | (np.int64(row[at + 1]) << 8) | (np.int64(row[at + 2]) << 16)
            | (np.int64(row[at + 3]) << 24)) - 1


@helper(inline="always")
def _xset(POOL, xp, k, pg):
    at = 4 * k
    v = pg + 1
    row = POOL[xp]
    row[at] = v & 0xFF
    row[at + 1] = (v >> 8) & 0xFF
    row[at + 2] = (v >> 16) & 0xFF
    row[at + 3] = (v >> 24) & 0xFF


@helper()
def _write(r, d, lo, hi, src_off, buf, R, PT, POOL, G, PFREE, page):
    """Copy stream bytes [lo, hi) of record r direction d from buf[src_off:]. Pages past the
    direction's page table are handshake-extension pages (listed in the D_XPT page, made here)."""
    npg = PT.shape[2]
    xslot = D0 + d * DW + D_XPT
    pos = lo
    s = src_off
    while pos < hi:
        pi = pos // page
        within = pos - pi * page
        if pi < npg:
            pg = PT[r, d, pi]
            if pg < 0:
                pg = _alloc_page(G, PFREE)
                PT[r, d, pi] = pg
        else:
            xp = R[r, xslot] - 1
            if xp < 0:
                xp = _alloc_page(G, PFREE)
                POOL[xp, :] = 0
                R[r, xslot] = xp + 1
                G[G_XLIVE] += 1
            pg = _xget(POOL, xp, pi - npg)
            if pg < 0:
                pg = _alloc_page(G, PFREE)
                _xset(POOL, xp, pi - npg, pg)
        k = min(hi - pos, page - within)
        copy_bytes(POOL[pg], within, buf, s, k)
        pos += k
        s += k


@helper()
def _absorb(r, d, R, OO):
    """Extend the contiguous prefix with pending out-of-order intervals it now reaches."""
    base = D0 + d * DW
    changed = True
    while changed:
        changed = False
        k = 0
        while k < R[r, base + D_NOOO]:
            if OO[r, d, k, 0] <= R[r, base + D_CONTIG]:
                if OO[r, d, k, 1] > R[r, base + D_CONTIG]:
                    R[r, base + D_CONTIG] = OO[r, d, k, 1]
                last = R[r, base + D_NOOO] - 1
                OO[r, d, k, 0] = OO[r, d, last, 0]
                OO[r, d, k, 1] = OO[r, d, last, 1]
                R[r, base + D_NOOO] = last
                changed = True
            else:
                k += 1


@helper(inline="always")
def _zset(R, r, d, state):
    base = D0 + d * DW
    R[r, base + D_ZPREV] = R[r, base + D_ZST]
    R[r, base + D_ZST] = state


@helper()
def _zeek_tcp(R, r, d, flags, pl_len):
    """Zeek's TCP endpoint state machine (TCPSessionAdapter::UpdateStateMachine), client = originator.

    conn_state used to be guessed from the OR of the flags seen, which disagrees with Zeek for
    mid-stream connections (Zeek: SF/SH/SHR/RSTRH, not OTH), a missed SYN followed by the ACK (S1),
    both sides resetting (REJ/RSTR) and a FIN or RST after an unanswered SYN.
    """
    e = D0 + d * DW + D_ZST
    pe = D0 + (1 - d) * DW + D_ZST
    syn = (flags & SYN) != 0
    ack = (flags & ACK) != 0
    fin = (flags & FIN) != 0
    rst = (flags & RST) != 0
    # history letter test for RSTOS0 (uppercase = originator): the history must start with S and
    # the originator's first R must come before any of its H, A, F, I, Q (G, gaps, is not tracked)
    nbits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
    letter = 0  # 1 'S', 2 'R', 3 excluding letter (H A F I Q), 4 other letter
    if nbits > 1:
        letter = 3
    elif nbits == 1:
        if syn:
            letter = 3 if ack else 1
        elif fin:
            letter = 3
        else:
            letter = 2
    elif pl_len > 0:
        letter = 4  # D
    elif ack:
        letter = 3  # A
    if letter:
        z = R[r, R_ZHIST]
        if d == 1:
            if z == 0:
                R[r, R_ZHIST] = 3
        elif z == 0:
            R[r, R_ZHIST] = 1 if letter == 1 else 3
        elif z == 1:
            if letter == 2:
                R[r, R_ZHIST] = 2
            elif letter == 3:
                R[r, R_ZHIST] = 3
    es = R[r, e]
    if es == Z_INACTIVE:
        if syn:
            if d == 0:
                _zset(R, r, d, Z_SYN_ACK_SENT if ack else Z_SYN_SENT)
            else:
                if R[r, pe] == Z_SYN_SENT or (not ack and R[r, pe] == Z_SYN_ACK_SENT):
                    _zset(R, r, 1 - d, Z_ESTABLISHED)
                _zset(R, r, d, Z_ESTABLISHED)
        if fin:
            _zset(R, r, d, Z_CLOSED)
        if rst:
            _zset(R, r, d, Z_RESET)
        if R[r, e] == Z_INACTIVE:
            if d == 1 and pl_len == 0 and R[r, D0 + D_ZST] == Z_SYN_SENT:
                pass  # an ACK of the SYN before the SYN-ACK: not a partial connection
            elif ack and R[r, pe] == Z_ESTABLISHED:
                _zset(R, r, d, Z_ESTABLISHED)  # missed the SYN, saw the SYN-ACK and now the ACK
            else:
                _zset(R, r, d, Z_PARTIAL)
    elif es == Z_SYN_SENT or es == Z_SYN_ACK_SENT:
        if fin:
            _zset(R, r, d, Z_CLOSED)
        if rst:
            _zset(R, r, d, Z_RESET)
    elif es == Z_ESTABLISHED or es == Z_PARTIAL:
        if syn and es == Z_PARTIAL and R[r, pe] == Z_INACTIVE and not ack:
            _zset(R, r, d, Z_SYN_SENT)
        if fin and not rst:
            _zset(R, r, d, Z_CLOSED)
            if R[r, pe] == Z_RESET and R[r, D0 + (1 - d) * DW + D_ZPREV] == Z_CLOSED:
                _zset(R, r, 1 - d, Z_CLOSED)  # the peer's FIN then RST was a normal close
        if rst:
            _zset(R, r, d, Z_RESET)
    elif es == Z_CLOSED and rst and R[r, pe] != Z_CLOSED:
        _zset(R, r, d, Z_RESET)


@helper()
def _seen(R, r, d, rel, end):
    """Mark stream bytes [rel, end) seen; return how many of them had been seen before.

    Retransmitted bytes used to be every byte below the highest sequence seen, so a reordered
    segment filling a hole counted as a retransmission; only bytes seen twice count now.
    """
    base = D0 + d * DW
    iv = base + D_SEENIV
    seen = R[r, base + D_SEEN]
    nseen = R[r, base + D_NSEEN]
    lo = max(rel, 0)  # bytes before the stream start (mid-stream pickup) were never seen
    dup = max(0, min(end, seen) - lo)
    for k in range(nseen):
        dup += max(0, min(end, R[r, iv + 2 * k + 1]) - max(lo, R[r, iv + 2 * k]))
    if end <= seen:
        return dup
    if lo <= seen:
        seen = end
    else:
        # merge with the intervals it touches, then keep the union as one interval
        a = lo
        b = end
        k = 0
        while k < nseen:
            s0 = R[r, iv + 2 * k]
            s1 = R[r, iv + 2 * k + 1]
            if s0 <= b and s1 >= a:
                a = min(a, s0)
                b = max(b, s1)
                nseen -= 1
                R[r, iv + 2 * k] = R[r, iv + 2 * nseen]
                R[r, iv + 2 * k + 1] = R[r, iv + 2 * nseen + 1]
            else:
                k += 1
        if nseen < NSEENIV:
            R[r, iv + 2 * nseen] = a
            R[r, iv + 2 * nseen + 1] = b
            nseen += 1
        # else: too many holes; forget this interval (its retransmissions will not be counted)
    # absorb intervals the contiguous part now reaches
    changed = True
    while changed:
        changed = False
        k = 0
        while k < nseen:
            if R[r, iv + 2 * k] <= seen:
                seen = max(seen, R[r, iv + 2 * k + 1])
                nseen -= 1
                R[r, iv + 2 * k] = R[r, iv + 2 * nseen]
                R[r, iv + 2 * k + 1] = R[r, iv + 2 * nseen + 1]
                changed = True
            else:
                k += 1
    R[r, base + D_SEEN] = seen
    R[r, base + D_NSEEN] = nseen
    return dup


@helper(inline="always")
def _stream_byte(r, d, off, R, PT, POOL, page):
    pi = off // page
    npg = PT.shape[2]
    if pi < npg:
        pg = PT[r, d, pi]
    else:
        pg = _xget(POOL, R[r, D0 + d * DW + D_XPT] - 1, pi - npg)
    return np.int64(POOL[pg, off - pi * page])


@helper()
def _tls_frame(r, d, R, PT, POOL, page, trim):
    """Walk the TLS record headers of the contiguous prefix; once the records the TLS dissector
    reads are complete, limit the prefix to them (most of a TLS flow is encrypted records no
    dissector reads: keeping them cost a copy per byte and memory per live flow), when `trim` or
    when the prefix runs past the budget in a handshake extension. Also notes the end of the
    plaintext handshake records (D_HSDONE) for the handshake extension, `trim` or not."""
    base = D0 + d * DW
    nxt = R[r, base + D_RECNEXT]
    contig = R[r, base + D_CONTIG]
    after = R[r, base + D_RECAFTER]
    extended = R[r, base + D_XPT] > 0
    while nxt >= 0 and nxt + 5 <= contig:
        ctype = _stream_byte(r, d, nxt, R, PT, POOL, page)
        major = _stream_byte(r, d, nxt + 1, R, PT, POOL, page)
        length = ((_stream_byte(r, d, nxt + 3, R, PT, POOL, page) << 8)
                  | _stream_byte(r, d, nxt + 4, R, PT, POOL, page))
        if ctype < 20 or ctype > 26 or major != 3 or length > TLS_MAX_RECORD:
            if extended and R[r, base + D_LIMIT] <= 0:
                R[r, base + D_LIMIT] = nxt  # no more TLS records: the extension ends here
            nxt = -1  # not (or no longer) TLS records: keep the whole budget
            break
        if ctype != 22:
            R[r, base + D_HSDONE] = 1
        # past the budget (extended), the records after the handshake count like those after
        # the first application data: the dissector reads only a few of them
        if after > 0 or ctype == 23 or (extended and ctype != 22):
            after += 1
        nxt += 5 + length
        if after >= TLS_RECORDS_AFTER_APPDATA:
            if trim or extended:
                R[r, base + D_LIMIT] = nxt
                if contig > nxt:
                    R[r, base + D_CONTIG] = nxt
            nxt = -1
            break
    R[r, base + D_RECNEXT] = nxt
    R[r, base + D_RECAFTER] = after


@helper(inline="always")
def _limit(R, r, base, budget, extension, slot_free):
    """Where the prefix of a TCP direction ends: the budget; or the limit the TLS framing set, never
    past the pages the direction may hold (a limit at the end of a long record once overran the page
    table into the other direction's pages); or, for a TLS stream still in its plaintext handshake
    (started with the SYN), the budget plus the handshake extension, while one is held or free."""
    held = R[r, base + D_XPT] > 0
    room = budget + extension if held else budget
    lim = R[r, base + D_LIMIT]
    if lim > 0:
        return min(lim, room)
    if held:
        return room
    if (extension > 0 and slot_free and R[r, base + D_HSDONE] == 0 and R[r, base + D_RECNEXT] > 0
            and R[r, base + D_HAVE_START] == 1 and R[r, base + D_CUT] == 0):
        return budget + extension
    return budget


@helper()
def _new_record(RFREE, G, R, RU, PT, tun, ahi, alo, bhi, blo, pa, pb, proto):
    top = G[G_RFREE_TOP]
    r = RFREE[top - 1]
    G[G_RFREE_TOP] = top - 1
    if r >= G[G_RHWM]:
        G[G_RHWM] = r + 1
    R[r, :] = 0
    RU[r, :] = 0
    PT[r, :, :] = -1
    R[r, R_USED] = 1
    R[r, R_PORTA] = pa
    R[r, R_PORTB] = pb
    R[r, R_PROTO] = proto
    R[r, R_RST_FIRST] = -1
    R[r, R_VLAN] = -1
    R[r, R_VNI] = -1
    RU[r, RU_TUN] = tun
    RU[r, RU_AHI] = ahi
    RU[r, RU_ALO] = alo
    RU[r, RU_BHI] = bhi
    RU[r, RU_BLO] = blo
    R[r, R_SEQNO] = G[G_SEQNO]
    G[G_SEQNO] += 1
    return r


@helper()
def _fragment_slot(cols, ucols, i, FRAG):
    """(slot, key) of packet i's datagram (IP id, addresses, protocol) in the fragment table."""
    proto = cols[i, C_PROTO]
    ipid = np.uint64(cols[i, C_IPID])
    fh = np.int64(_hash(ipid, ucols[i, U_SHI], ucols[i, U_SLO], ucols[i, U_DHI], ucols[i, U_DLO], 0, 0, proto)
                  & np.uint64(FRAG.shape[0] - 1))
    key = np.int64(_hash(ipid, ucols[i, U_SHI], ucols[i, U_SLO], ucols[i, U_DHI], ucols[i, U_DLO], 1, 1, proto)
                   >> np.uint64(1))
    return fh, key


@helper()
def _register_first_fragment(cols, ucols, i, FRAG):
    """Remember the ports of a first fragment (the one carrying the L4 header) for the others."""
    fh, key = _fragment_slot(cols, ucols, i, FRAG)
    FRAG[fh, 0] = key
    FRAG[fh, 1] = cols[i, C_SPORT]
    FRAG[fh, 2] = cols[i, C_DPORT]


@kernel(
    "UniTuple(int64, 2)(int64, int64[:, ::1], uint64[:, ::1], int64[::1], uint8[::1], boolean[::1], int64[::1], int64[:, ::1], uint64[:, ::1], int32[:, :, ::1], uint8[:, ::1], int64[::1], int64[::1], int64[:, :, :, ::1], int64[:, :, ::1], int64[:, ::1], int64[::1], int64[::1], int64[::1])"
)
def process(start, cols, ucols, ts, buf, svc, HT, R, RU, PT, POOL, PFREE, RFREE, OO, DG, FRAG, G, O,
            ENDED):
    """Fold packets start.. into the flow table. -> (next packet index, status)."""
    n = cols.shape[0]
    page = O[O_PAGE]
    budget = O[O_BUDGET]
    trim = O[O_TLS_TRIM] != 0
    npg = O[O_NPG]
    xpg = O[O_XPG]
    xslots = O[O_XSLOTS]
    if start == 0:
        # First fragments are registered before the batch is folded in, so that a later fragment
        # sent or captured before its first one (some stacks send fragments in reverse order) still
        # finds its ports when both are in the batch. Registering again in order below keeps what
        # an in-order later fragment finds unchanged.
        for i in range(n):
            if cols[i, C_FRAG] == 1 and cols[i, C_STATUS] != ST_NOT_IP and cols[i, C_IPVER] != 0:
                _register_first_fragment(cols, ucols, i, FRAG)
    for i in range(start, n):
        if cols[i, C_STATUS] == ST_NOT_IP or cols[i, C_IPVER] == 0:
            G[G_NOT_IP] += 1
            continue
        # resources for the worst case of this packet, checked before any change
        if G[G_RFREE_TOP] < 2:
            return i, NEED_RECORDS
        if G[G_PFREE_TOP] < npg + xpg + 3:  # (+ the extension's page list)
            return i, NEED_PAGES
        if G[G_NENDED] + 2 > ENDED.shape[0]:
            return i, NEED_EXPORT
        if (G[G_HT_LIVE] + G[G_HT_TOMB] + 2) * 2 > HT.shape[0]:
            return i, NEED_REHASH
        t = ts[i]
        if t > G[G_NOW]:
            G[G_NOW] = t
        proto = cols[i, C_PROTO]
        sport = cols[i, C_SPORT]
        dport = cols[i, C_DPORT]
        flags = cols[i, C_FLAGS] if proto == 6 else 0
        frag = cols[i, C_FRAG]
        # fragments: later fragments take the ports of their first fragment
        if frag == 1:
            _register_first_fragment(cols, ucols, i, FRAG)
        elif frag != 0:
            fh, key = _fragment_slot(cols, ucols, i, FRAG)
            if FRAG[fh, 0] == key:
                sport = FRAG[fh, 1]
                dport = FRAG[fh, 2]
        # ICMP echo: identifier would be better, but type/code keep the pair together
        if proto == 1 or proto == 58:
            icmp_t = sport
            sport = 0
            dport = 0
        else:
            icmp_t = -1
        if proto == 50:  # ESP: the SPI differs per direction, so a flow is the address pair
            sport = 0
            dport = 0
        # tunnel identity: VNI and tunnel kind, mixed with the whole GWLB endpoint id
        tun = np.uint64(cols[i, C_VNI] + 1) | (np.uint64(cols[i, C_TUN] & 3) << np.uint64(32))
        if ucols[i, U_GWEP] != 0:
            tun = _mix(tun, ucols[i, U_GWEP])
        # canonical orientation: A = the lower (address, port)
        s_first = (ucols[i, U_SHI] < ucols[i, U_DHI]) or (ucols[i, U_SHI] == ucols[i, U_DHI] and (
            ucols[i, U_SLO] < ucols[i, U_DLO] or (ucols[i, U_SLO] == ucols[i, U_DLO] and sport <= dport)))
        if s_first:
            ahi, alo, bhi, blo, pa, pb = ucols[i, U_SHI], ucols[i, U_SLO], ucols[i, U_DHI], ucols[i, U_DLO], sport, dport
        else:
            ahi, alo, bhi, blo, pa, pb = ucols[i, U_DHI], ucols[i, U_DLO], ucols[i, U_SHI], ucols[i, U_SLO], dport, sport
        r, slot = _lookup(HT, R, RU, tun, ahi, alo, bhi, blo, pa, pb, proto)
        continued_cia = -1
        if r >= 0:
            # A closed flow's late-packet delay is judged here as `expire` judges it, so with time
            # going forwards whether an expiry scan ran between two packets (scans run at batch
            # ends, once a second of capture time) never changes a flow: the flows do not depend
            # on how the input was cut into batches, files or partitions (the Dask engine relies
            # on it; it falls back to one sequential table when time goes backwards).
            idle = t - R[r, R_TS_LAST]
            limit = O[O_IDLE_TCP] if proto == 6 else (O[O_IDLE_UDP] if proto == 17 else O[O_IDLE_OTHER])
            reason = 0
            if idle > limit:
                reason = 1
            elif proto == 6 and idle > O[O_CLOSE_DELAY] and (
                    (R[r, R_CLOSED] & 3) == 3 or (R[r, R_CLOSED] & 4) != 0):
                reason = 3  # closed, and the late-packet delay is over: a new flow
            elif t - R[r, R_TS_FIRST] > O[O_ACTIVE]:
                reason = 2
            elif proto == 6 and (flags & (SYN | ACK)) == SYN and (
                    (R[r, R_CLOSED] & 3) == 3 or (R[r, R_CLOSED] & 4) != 0):
                # a new connection reusing the ports of a closed one (not a retransmitted SYN)
                dt = 0 if (s_first == (R[r, R_CLIENT_IS_A] == 1)) else 1
                if ((cols[i, C_SEQ] + 1) & 0xFFFFFFFF) != R[r, D0 + dt * DW + D_START] or (
                        R[r, D0 + dt * DW + D_HAVE_START] != 1):
                    reason = 4
            if reason:
                if reason == 2:  # the same conversation goes on: its next part keeps its client
                    continued_cia = R[r, R_CLIENT_IS_A]
                _end(r, reason, HT, R, RU, G, ENDED)
                r, slot = _lookup(HT, R, RU, tun, ahi, alo, bhi, blo, pa, pb, proto)
        if r < 0:
            r = _new_record(RFREE, G, R, RU, PT, tun, ahi, alo, bhi, blo, pa, pb, proto)
            if HT[slot] == TOMB:
                G[G_HT_TOMB] -= 1
            HT[slot] = r
            G[G_HT_LIVE] += 1
            R[r, R_IPVER] = cols[i, C_IPVER]
            R[r, R_TS_FIRST] = t
            R[r, R_FIRST_PKT] = G[G_PKT_BASE] + i
            R[r, R_SOURCE] = G[G_SOURCE]
            # who is the client?
            client_src = True
            by = 0
            if proto == 6 and (flags & (SYN | ACK)) == SYN:
                by = 1
            elif proto == 6 and (flags & (SYN | ACK)) == (SYN | ACK):
                client_src = False
                by = 2
            elif icmp_t >= 0:
                by = 4
                if icmp_t == 0 or icmp_t == 129 or icmp_t == 14 or icmp_t == 16 or icmp_t == 18:
                    client_src = False
            else:
                s_svc = svc[sport]
                d_svc = svc[dport]
                if s_svc and not d_svc:
                    client_src = False
                    by = 3
                elif d_svc and not s_svc:
                    by = 3
                elif s_svc and d_svc and sport != dport:
                    client_src = dport < sport
                    by = 3
            R[r, R_CLIENT_BY] = by
            R[r, R_CLIENT_IS_A] = 1 if client_src == s_first else 0
            if continued_cia >= 0:
                R[r, R_CLIENT_BY] = 5
                R[r, R_CLIENT_IS_A] = continued_cia
            R[r, R_VNI] = cols[i, C_VNI]
            R[r, R_TUNBITS] = cols[i, C_TUN]
            R[r, R_OIPVER] = cols[i, C_OIPVER]
            R[r, R_VLAN] = cols[i, C_VLAN]
            R[r, R_SPI] = cols[i, C_SPI]
            R[r, R_ICMP] = (icmp_t << 8) | (cols[i, C_DPORT] & 0xFF) if icmp_t >= 0 else -1
            RU[r, RU_OSHI] = ucols[i, U_OSHI]
            RU[r, RU_OSLO] = ucols[i, U_OSLO]
            RU[r, RU_ODHI] = ucols[i, U_ODHI]
            RU[r, RU_ODLO] = ucols[i, U_ODLO]
            RU[r, RU_GWEP] = ucols[i, U_GWEP]
            RU[r, RU_GWATT] = ucols[i, U_GWATT]
            RU[r, RU_GWCK] = ucols[i, U_GWCK]
            R[r, R_GWCK_SET] = cols[i, C_GWCK_SET]
        # direction relative to the client
        d = 0 if (s_first == (R[r, R_CLIENT_IS_A] == 1)) else 1
        base = D0 + d * DW
        if t > R[r, R_TS_LAST]:  # timestamps can go backwards in a capture: keep the latest
            R[r, R_TS_LAST] = t
        R[r, base + D_PKTS] += 1
        R[r, base + D_IPB] += cols[i, C_IPLEN]
        pl_len = cols[i, C_PLLEN]
        R[r, base + D_PLB] += pl_len
        R[r, R_TRUNC] |= cols[i, C_TRUNC]
        if frag == 2 and sport == 0 and dport == 0 and proto != 1 and proto != 58:
            R[r, R_ORPHAN_FRAGS] += 1
        if proto == 6:
            R[r, base + D_FLAGS] |= flags
            _zeek_tcp(R, r, d, flags, pl_len)
            if flags & SYN:
                if flags & ACK:
                    R[r, R_HIST] |= 2 if d == 1 else 4
                else:
                    R[r, R_HIST] |= 1 if d == 0 else 8
            if flags & FIN:
                R[r, R_CLOSED] |= 1 if d == 0 else 2
            if flags & RST:
                R[r, R_CLOSED] |= 4
                if R[r, R_RST_FIRST] < 0:
                    R[r, R_RST_FIRST] = d
            if frag == 2:
                continue
            seq = cols[i, C_SEQ]
            if flags & SYN:
                # a SYN with a new sequence number before any payload (several SYN-ACKs with
                # different ISNs, as stacks under SYN-cookie load send) restarts the stream: the
                # data will follow the last one
                if R[r, base + D_HAVE_START] != 1 or (R[r, base + D_MAXEND] == 0 and R[r, base + D_START] != (
                        (seq + 1) & 0xFFFFFFFF)):
                    R[r, base + D_START] = (seq + 1) & 0xFFFFFFFF
                    R[r, base + D_HAVE_START] = 1
                seq = (seq + 1) & 0xFFFFFFFF
            if pl_len <= 0 or (flags & RST):  # data on a RST is not part of the stream (as in Zeek)
                continue
            if R[r, base + D_HAVE_START] == 0:
                R[r, base + D_START] = seq
                R[r, base + D_HAVE_START] = 2
            maxend = R[r, base + D_MAXEND]
            # stream offset, unwrapped around the highest offset seen so far: relative to the start
            # it wrapped after 2 GiB and every later segment counted as retransmitted
            rel = maxend + ((seq - R[r, base + D_START] - maxend + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            end = rel + pl_len
            R[r, base + D_RETX] += _seen(R, r, d, rel, end)
            if end > maxend:
                R[r, base + D_MAXEND] = end
            cap = cols[i, C_PLCAP]
            if budget <= 0 or cap <= 0 or rel < 0:
                continue
            contig = R[r, base + D_CONTIG]
            lim = _limit(R, r, base, budget, xpg * page, G[G_XLIVE] < xslots)
            hi = min(rel + cap, lim)
            if rel + cap > lim and rel < lim:
                R[r, base + D_BUDGET_HIT] = 1
            if hi <= contig or rel >= lim:
                if rel >= lim:
                    R[r, base + D_BUDGET_HIT] = 1
                continue
            R[r, base + D_SEGS] += 1
            if rel <= contig:  # first copy wins for bytes already in the prefix
                _write(r, d, contig, hi, cols[i, C_PLOFF] + (contig - rel), buf, R, PT, POOL, G, PFREE, page)
                R[r, base + D_CONTIG] = hi
                if R[r, base + D_NOOO]:
                    _absorb(r, d, R, OO)
                if (trim or xpg > 0) and R[r, base + D_HAVE_START] == 1 and R[r, base + D_RECNEXT] >= 0:
                    _tls_frame(r, d, R, PT, POOL, page, trim)
            else:
                _write(r, d, rel, hi, cols[i, C_PLOFF], buf, R, PT, POOL, G, PFREE, page)
                k = R[r, base + D_NOOO]
                if k < NOOO:
                    OO[r, d, k, 0] = rel
                    OO[r, d, k, 1] = hi
                    R[r, base + D_NOOO] = k + 1
                else:
                    R[r, base + D_OOO_LOST] += 1
        elif proto == 17 or proto == 136:
            cap = cols[i, C_PLCAP]
            k = R[r, R_NDG]
            if budget > 0 and cap > 0 and k < MAXDG and frag != 2:
                contig = R[r, base + D_CONTIG]
                if contig + cap <= budget and R[r, base + D_CUT] == 0:
                    _write(r, d, contig, contig + cap, cols[i, C_PLOFF], buf, R, PT, POOL, G, PFREE, page)
                    R[r, base + D_CONTIG] = contig + cap
                    DG[r, k, DG_TS] = t
                    DG[r, k, DG_LEN_DIR] = cap << 1 | d
                    R[r, R_NDG] = k + 1
                else:
                    R[r, base + D_BUDGET_HIT] = 1
    return n, DONE


@helper()
def _free_pages(r, d, first, PT, PFREE, G):
    """Return a direction's payload pages from page-table slot `first` on to the free list."""
    for p in range(first, PT.shape[2]):
        pg = PT[r, d, p]
        if pg >= 0:
            PFREE[G[G_PFREE_TOP]] = pg
            G[G_PFREE_TOP] += 1
            PT[r, d, p] = -1


@helper()
def _free_extension(r, d, R, POOL, PFREE, G):
    """Return a direction's handshake-extension pages and their list page to the free list."""
    xslot = D0 + d * DW + D_XPT
    xp = R[r, xslot] - 1
    if xp < 0:
        return
    for k in range(POOL.shape[1] // 4):
        pg = _xget(POOL, xp, k)
        if pg >= 0:
            PFREE[G[G_PFREE_TOP]] = pg
            G[G_PFREE_TOP] += 1
    PFREE[G[G_PFREE_TOP]] = xp
    G[G_PFREE_TOP] += 1
    R[r, xslot] = 0
    G[G_XLIVE] -= 1


@helper()
def _extension_pages(r, d, R, POOL):
    """Pool pages a direction's handshake extension holds (its list page included)."""
    xp = R[r, D0 + d * DW + D_XPT] - 1
    if xp < 0:
        return 0
    n = 1
    for k in range(POOL.shape[1] // 4):
        if _xget(POOL, xp, k) >= 0:
            n += 1
    return n


@kernel("void(int64[::1], int64[:, ::1], int32[:, :, ::1], uint8[:, ::1], int64[::1], int64[::1], int64[::1])")
def free_records(idx, R, PT, POOL, PFREE, RFREE, G):
    """Return exported records and their pages (handshake extensions included) to the free lists."""
    for j in range(idx.shape[0]):
        r = idx[j]
        for d in range(2):
            _free_pages(r, d, 0, PT, PFREE, G)
            _free_extension(r, d, R, POOL, PFREE, G)
        R[r, R_USED] = 0
        RFREE[G[G_RFREE_TOP]] = r
        G[G_RFREE_TOP] += 1


@kernel("void(int64[::1], int64[::1], int64[::1], int64[:, ::1], int32[:, :, ::1], uint8[:, ::1], int64, uint8[::1])")
def gather(rows, dirs, lens, R, PT, POOL, page, out):
    """Copy the first lens[k] stream bytes of (rows[k], dirs[k]) back to back into `out`."""
    pos = 0
    npg = PT.shape[2]
    for k in range(rows.shape[0]):
        r = rows[k]
        d = dirs[k]
        length = lens[k]
        done = 0
        pi = 0
        while done < length:
            n = min(page, length - done)
            if pi < npg:
                pg = PT[r, d, pi]
            else:
                pg = _xget(POOL, R[r, D0 + d * DW + D_XPT] - 1, pi - npg)
            copy_bytes(out, pos + done, POOL[pg], 0, n)
            done += n
            pi += 1
        pos += length


@kernel("int64(int64, int64[::1], int64[:, ::1], uint64[:, ::1], int64[::1], int64[::1])")
def evict(count, HT, R, RU, G, ENDED):
    """End the `count` least recently active live flows (reason 6): the table is at its cap."""
    live = np.flatnonzero(R[: G[G_RHWM], R_USED] == 1)
    last = R[live, R_TS_LAST]
    order = np.argsort(last, kind="mergesort")
    n = 0
    for k in range(min(count, order.shape[0])):
        if G[G_NENDED] >= ENDED.shape[0]:
            break
        _end(live[order[k]], 6, HT, R, RU, G, ENDED)
        n += 1
    return n


@kernel("int64(int64, int64[:, ::1], int32[:, :, ::1], uint8[:, ::1], int64[::1], int64[::1], "
        "int64[:, :, :, ::1], int64[:, :, ::1], int64)")
def shrink(budget, R, PT, POOL, PFREE, G, OO, DG, page):
    """Cut every live flow's payload prefixes to `budget` bytes per direction and free the pages
    beyond (the run's memory budget is reached). A TCP prefix keeps its first `budget` bytes; a UDP
    flow keeps the datagrams that end within it (a direction's datagrams lie back to back). A cut
    prefix is marked budget-hit and cut (nothing more is added to it). Returns the prefixes cut."""
    keep_pages = (budget + page - 1) // page
    cut = 0
    for r in range(min(G[G_RHWM], R.shape[0])):
        if R[r, R_USED] != 1:
            continue
        udp = R[r, R_PROTO] == 17 or R[r, R_PROTO] == 136
        for d in range(2):
            base = D0 + d * DW
            over = R[r, base + D_CONTIG] > budget
            k = 0
            while not over and k < R[r, base + D_NOOO]:  # bytes kept beyond a hole count too
                if OO[r, d, k, 1] > budget:
                    over = True
                k += 1
            if not over:
                continue
            cut += 1
            R[r, base + D_BUDGET_HIT] = 1
            R[r, base + D_CUT] = 1
            if udp:
                # keep the datagrams of this direction that end within the budget, in order
                end = 0
                kept = 0
                full = False
                for j in range(R[r, R_NDG]):
                    ln = DG[r, j, DG_LEN_DIR] >> 1
                    if (DG[r, j, DG_LEN_DIR] & 1) == d:
                        if full or end + ln > budget:
                            full = True  # and every later one of this direction: offsets are sums
                            continue
                        end += ln
                    DG[r, kept, DG_TS] = DG[r, j, DG_TS]
                    DG[r, kept, DG_LEN_DIR] = DG[r, j, DG_LEN_DIR]
                    kept += 1
                R[r, R_NDG] = kept
                R[r, base + D_CONTIG] = end
            else:
                if R[r, base + D_CONTIG] > budget:
                    R[r, base + D_CONTIG] = budget
                k = 0
                while k < R[r, base + D_NOOO]:
                    if OO[r, d, k, 0] >= budget:
                        last = R[r, base + D_NOOO] - 1
                        OO[r, d, k, 0] = OO[r, d, last, 0]
                        OO[r, d, k, 1] = OO[r, d, last, 1]
                        R[r, base + D_NOOO] = last
                    else:
                        if OO[r, d, k, 1] > budget:
                            OO[r, d, k, 1] = budget
                        k += 1
            _free_pages(r, d, keep_pages, PT, PFREE, G)
            # a handshake extension lies past the page table, so past any lowered budget: all of it goes
            _free_extension(r, d, R, POOL, PFREE, G)
    return cut


@kernel("int64(int64, int64[::1], int64[:, ::1], uint64[:, ::1], int32[:, :, ::1], uint8[:, ::1], int64[::1], "
        "int64[::1], int64[:, ::1])")
def evict_largest(pages, HT, R, RU, PT, POOL, G, ENDED, PLAN):
    """End live flows (reason 7, the memory budget) until those ended hold at least `pages` payload
    pages: those holding the most first, the least recently active first among equals. Returns the
    number ended (fewer when ENDED fills up: the caller exports and calls again).

    The order is made once per relief, when G_EVICT_N is 0 (the caller zeroes it to begin one), and
    kept in PLAN (record, pages held); each call goes on from where the last stopped (G_EVICT_AT).
    Made at every call, it cost a pass over every live flow's page table and two sorts per 256 flows
    ended: 0.4 s for a relief of ~4,800 flows among ~100k live ones."""
    if G[G_EVICT_N] == 0:
        live = np.flatnonzero(R[: G[G_RHWM], R_USED] == 1)
        held = np.zeros(live.shape[0], np.int64)
        for k in range(live.shape[0]):
            n = 0
            for d in range(2):
                for p in range(PT.shape[2]):
                    if PT[live[k], d, p] >= 0:
                        n += 1
                n += _extension_pages(live[k], d, R, POOL)
            held[k] = n
        # most pages first; among equals the least recently active (a stable sort of the times first)
        order = np.argsort(R[live, R_TS_LAST], kind="mergesort")
        order = order[np.argsort(-held[order], kind="mergesort")]
        for k in range(order.shape[0]):
            PLAN[k, 0] = live[order[k]]
            PLAN[k, 1] = held[order[k]]
        G[G_EVICT_N] = order.shape[0]
        G[G_EVICT_AT] = 0
    freed = 0
    n = 0
    k = G[G_EVICT_AT]
    while k < G[G_EVICT_N]:
        if freed >= pages or G[G_NENDED] >= ENDED.shape[0]:
            break
        r = PLAN[k, 0]
        if PLAN[k, 1] == 0:  # the rest hold no page
            k = G[G_EVICT_N]
            break
        if R[r, R_USED] == 1:
            _end(r, 7, HT, R, RU, G, ENDED)
            freed += PLAN[k, 1]
            n += 1
        k += 1
    G[G_EVICT_AT] = k
    return n
