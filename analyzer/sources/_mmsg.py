"""recvmmsg(2) / sendmmsg(2) through ctypes, with every per-message structure in numpy arrays.

The standard library has recvmsg and sendmsg only: one system call (and ~1 us of Python around it)
per datagram. These move a whole burst per call: `RecvRing` holds preallocated `struct mmsghdr`,
`struct iovec`, socket-address and control-message arrays for up to `slots` datagrams, laid out as
numpy structured arrays so that what the kernel wrote (lengths, flags, sender addresses, ancillary
data) is read back as columns, never one message at a time. `SendRing` does the same for pre-built
datagrams.

Linux on a little-endian LP64 machine (x86-64, aarch64) only: `available()` says whether this
process can use them; the callers fall back to recvfrom_into / send otherwise.

recvmmsg is called through `ctypes.PyDLL`, i.e. *holding* the GIL: it never blocks (MSG_DONTWAIT;
waiting is a select(), which releases the GIL), so a call lasts what copying <= 256 datagrams takes.
Through CDLL each call released the GIL, and a receive thread then waited up to the interpreter's
switch interval (5 ms) to get it back after every call while the analysis thread ran: one call per
interval, 51k datagrams/s at most. Holding it, the receive thread empties the socket in one turn.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import numpy as np

__all__ = ["CTL", "SPILL", "RecvRing", "SendRing", "available", "parse_cmsgs"]

# struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; } on LP64
MMSGHDR = np.dtype([("name", "<u8"), ("namelen", "<u4"), ("_p0", "<u4"), ("iov", "<u8"), ("iovlen", "<u8"),
                    ("control", "<u8"), ("controllen", "<u8"), ("flags", "<i4"), ("_p1", "<u4"),
                    ("len", "<u4"), ("_p2", "<u4")])
NAME = 32  # bytes per socket address (sockaddr_in6 is 28)
CTL = 128  # bytes of ancillary data per message: SCM_TIMESTAMPNS 32 + SO_RXQ_OVFL 24 + IPV6_PKTINFO 40
SPILL = 65536  # the part of a datagram beyond its slot lands here (one region per message of a call)
MAX_CALL = 256  # messages per recvmmsg call (the kernel caps vlen at 1024)
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
EAGAIN = (11, 4)  # EAGAIN/EWOULDBLOCK, EINTR

# ancillary data (Linux values; the socket module names only some of them)
SOL_SOCKET = 1
SCM_TIMESTAMPNS = 35  # also SO_TIMESTAMPNS (the 64-bit "old" value)
SO_RXQ_OVFL = 40
IPPROTO_IP, IP_PKTINFO = 0, 8
IPPROTO_IPV6, IPV6_RECVPKTINFO, IPV6_PKTINFO = 41, 49, 50

_libc: ctypes.CDLL | None = None


def _load() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux") and sys.byteorder == "little" and \
            ctypes.sizeof(ctypes.c_void_p) == 8 and os.environ.get("INTRANSIT_NO_MMSG") != "1":
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            # int recvmmsg(int fd, struct mmsghdr *, unsigned vlen, int flags, struct timespec *)
            held = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            lib.recvmmsg = held.recvmmsg  # type: ignore[attr-defined]  # the GIL stays held (module docstring)
            lib.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
            lib.recvmmsg.restype = ctypes.c_int
            # int sendmmsg(int fd, struct mmsghdr *, unsigned vlen, int flags)
            lib.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
            lib.sendmmsg.restype = ctypes.c_int
            _libc = lib
        except (OSError, AttributeError):
            return None
    return _libc


def available() -> bool:
    """Whether recvmmsg/sendmmsg can be used here (Linux, LP64 little-endian, libc has them;
    INTRANSIT_NO_MMSG=1 turns them off, for tests of the fallback)."""
    return _load() is not None


def _addr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


class RecvRing:
    """Preallocated recvmmsg structures for `slots` datagrams (one batch).

    `arm(base, stride, cap)` points message k's first iovec at base + k*stride (cap bytes) and its
    second at a spill region (the rest of a datagram longer than cap); `recv(fd, k, v)` receives up
    to v datagrams into messages k..k+v-1 and returns how many (0 when the socket is empty). What
    spilled must be copied out (`spilled`) before the next call reuses the spill regions; rings used
    one after the other (the batches a receive thread fills) may share one `spill` array."""

    def __init__(self, slots: int, spill: np.ndarray | None = None) -> None:
        lib = _load()
        if lib is None:
            raise OSError("recvmmsg is not available here")
        self._recvmmsg = lib.recvmmsg
        self.slots = slots
        self.hdr = np.zeros(slots, MMSGHDR)
        self.iov = np.zeros((slots, 4), np.uint64)  # two struct iovec per message
        self.names = np.zeros((slots, NAME), np.uint8)
        self.ctl = np.zeros((slots, CTL), np.uint8)
        # touched only by datagrams beyond a slot
        self.spill = np.empty(MAX_CALL * SPILL, np.uint8) if spill is None else spill
        k = np.arange(slots, dtype=np.uint64)
        self.hdr["name"] = _addr(self.names) + k * np.uint64(NAME)
        self.hdr["iov"] = _addr(self.iov) + k * np.uint64(32)
        self.hdr["iovlen"] = 2
        self.hdr["control"] = _addr(self.ctl) + k * np.uint64(CTL)
        self.iov[:, 2] = _addr(self.spill) + (k % np.uint64(MAX_CALL)) * np.uint64(SPILL)
        self.iov[:, 3] = SPILL
        self._base = _addr(self.hdr)

    def arm(self, base: int, stride: int, cap: int, first: int) -> None:
        """Message k receives at base + k*stride + first (cap bytes, then the spill region)."""
        k = np.arange(self.slots, dtype=np.uint64)
        self.iov[:, 0] = np.uint64(base + first) + k * np.uint64(stride)
        self.iov[:, 1] = cap
        self.hdr["namelen"] = NAME
        self.hdr["controllen"] = CTL
        self.hdr["flags"] = 0
        self.hdr["len"] = 0

    def recv(self, fd: int, k: int, v: int) -> int:
        """Up to v (at most MAX_CALL) datagrams into messages k..; 0 when none is queued."""
        v = min(v, MAX_CALL)
        n = self._recvmmsg(fd, self._base + k * MMSGHDR.itemsize, v, MSG_DONTWAIT, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in EAGAIN:
                return 0
            raise OSError(err, os.strerror(err))
        return int(n)

    def spilled(self, k: int, n: int, cap: int) -> list[tuple[int, bytes]]:
        """(message index, the part beyond its slot) of messages k..k+n-1 longer than cap."""
        lens = self.hdr["len"][k:k + n]
        big = np.flatnonzero(lens > cap)
        out = []
        for j in big.tolist():
            at = ((k + j) % MAX_CALL) * SPILL
            out.append((k + j, self.spill[at:at + int(lens[j]) - cap].tobytes()))
        return out


def parse_cmsgs(ctl: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ancillary data of n messages (ctl: uint8 [n, CTL], used: the controllen the kernel wrote),
    walked for all messages at once: (kernel receive time in ns or -1, SO_RXQ_OVFL drop count or -1,
    destination address as 16 bytes (IPv4 as ::ffff:a.b.c.d) , whether one was given)."""
    n = len(ctl)
    w = ctl.view("<u4")  # [n, CTL/4]; every cmsg starts 8-byte aligned
    rows = np.arange(n)
    pos = np.zeros(n, np.int64)  # in 4-byte words
    ts = np.full(n, -1, np.int64)
    drops = np.full(n, -1, np.int64)
    dst = np.zeros((n, 4), np.uint32)  # raw words: network byte order kept by the view back to bytes
    have = np.zeros(n, np.bool_)
    used = used.astype(np.int64)
    last = CTL // 4 - 1
    for _ in range(4):  # at most three cmsgs are asked for
        live = pos * 4 + 16 <= used
        if not live.any():
            break
        p = np.minimum(pos, last - 7)  # in range for the reads below (masked by `live`)
        p0 = int(p[0]) if p.min() == p.max() else -1  # the usual case: one layout for all (slices)

        def at(off: int, p: np.ndarray = p, p0: int = p0) -> np.ndarray:
            return w[:, p0 + off] if p0 >= 0 else w[rows, p + off]
        ln = at(0).astype(np.int64)
        lvl, typ = at(2), at(3)
        live &= ln >= 16
        is_ts = live & (lvl == SOL_SOCKET) & (typ == SCM_TIMESTAMPNS) & (ln >= 32)
        if is_ts.any():
            sec = at(4).astype(np.int64) | (at(5).astype(np.int64) << 32)
            ts = np.where(is_ts, sec * 1_000_000_000 + at(6).astype(np.int64), ts)
        is_drop = live & (lvl == SOL_SOCKET) & (typ == SO_RXQ_OVFL) & (ln >= 20)
        if is_drop.any():
            drops = np.where(is_drop, at(4).astype(np.int64), drops)
        is6 = live & (lvl == IPPROTO_IPV6) & (typ == IPV6_PKTINFO) & (ln >= 36)
        if is6.any():
            dst[is6] = w[rows[is6, None], p[is6, None] + 4 + np.arange(4)]
            have |= is6
        is4 = live & (lvl == IPPROTO_IP) & (typ == IP_PKTINFO) & (ln >= 28)
        if is4.any():  # in_pktinfo: ifindex, spec_dst, addr (the header's destination)
            dst[is4, 0:2] = 0
            dst[is4, 2] = np.frombuffer(b"\x00\x00\xff\xff", "<u4")[0]
            dst[is4, 3] = at(6)[is4]
            have |= is4
        pos = np.where(live, pos + ((ln + 7) // 8) * 2, CTL)
    return ts, drops, dst.view(np.uint8).reshape(n, 16), have


class SendRing:
    """sendmmsg of pre-built datagrams: one contiguous buffer and their offsets/lengths; `send(k, v)`
    sends datagrams k..k+v-1 of the ring on a connected socket and returns how many went."""

    def __init__(self, datagrams: list[bytes]) -> None:
        lib = _load()
        if lib is None:
            raise OSError("sendmmsg is not available here")
        self._sendmmsg = lib.sendmmsg
        lens = np.fromiter(map(len, datagrams), np.int64, len(datagrams))
        self.buf = np.frombuffer(b"".join(datagrams), np.uint8).copy() if len(datagrams) else np.zeros(1, np.uint8)
        offs = np.concatenate([[0], np.cumsum(lens)[:-1]]) if len(lens) else lens
        n = len(datagrams)
        self.count = n
        self.lens = lens
        self.iov = np.zeros((max(n, 1), 2), np.uint64)
        self.iov[:n, 0] = _addr(self.buf) + offs.astype(np.uint64)
        self.iov[:n, 1] = lens.astype(np.uint64)
        self.hdr = np.zeros(max(n, 1), MMSGHDR)
        self.hdr["iov"] = _addr(self.iov) + np.arange(max(n, 1), dtype=np.uint64) * np.uint64(16)
        self.hdr["iovlen"] = 1
        self._base = _addr(self.hdr)

    def send(self, fd: int, k: int, v: int, flags: int = 0) -> int:
        """Send datagrams k..k+v-1 (at most 1024); returns how many were sent, or -errno."""
        n = self._sendmmsg(fd, self._base + k * MMSGHDR.itemsize, min(v, 1024), flags)
        if n < 0:
            return -ctypes.get_errno()
        return int(n)
