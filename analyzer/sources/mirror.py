"""A live source: AWS VPC Traffic Mirroring (VXLAN, UDP 4789) or Gateway Load Balancer (GENEVE,
UDP 6081) datagrams read from UDP sockets, without root, a tunnel interface or a pcap library.

Each datagram becomes one packet of a `PacketBatch` whose bytes are a synthesised outer IPv4 (or
IPv6) + UDP header followed by the datagram as received (link type RAW): the decode layer then
decapsulates it exactly as it does a capture of the mirror target's interface (tunnel header check,
VNI, GENEVE/GWLB options, outer addresses as the vantage columns), so nothing below knows the
packets came from a socket. The header costs 28 (48) bytes per datagram, written for the whole batch
at once with numpy.

With recvmmsg, receiving runs on a thread of its own, so that a burst of analysis work (flows ending
and dissected, a window written) does not leave the socket unread. It fills "slabs" (a batch buffer
and its recvmmsg structures: up to `batch_packets` datagrams over several calls, or `max_delay`
after the first) and queues them; the analysis thread assembles and yields them. A receiver thread
that released the GIL on every recv would wait up to the switch interval to get it back each time
(a convoy: one call per 5 ms); recvmmsg is called holding it, never blocking (MSG_DONTWAIT), and only
select() waits, so the thread empties the socket in one turn each time it runs. Within a slab, once
datagrams flow, it does not wake at each arrival: it sleeps `coalesce` (2 ms) and reads what came
meanwhile (~300 datagrams at 150k/s, in one or two calls), so a steady stream costs ~500 wake-ups and
GIL hand-overs a second, not one per burst of the sender (the socket buffer holds those 2 ms many
times over); the first datagram of a slab, and a stream that pauses, are waited for in select().
The thread runs RECEIVE_PRIORITY nice steps above the analysis where permitted (root or
CAP_SYS_NICE; `receive_priority` says what it got), so that the analysis's native code that lets
the interpreter go does not take the core from it. The queue holds at
most `queue_bytes` of slabs, allocated as the analysis falls behind and reused once nothing refers
to their buffer; all in use, the thread waits and the kernel's socket buffer is the queue:
`rcvbuf` asks for its size (SO_RCVBUFFORCE when permitted, else SO_RCVBUF up to
net.core.rmem_max) and `granted_rcvbuf` says what the kernel gave. Without recvmmsg (and with
`receive_thread=False`) batches are received in the calling thread, as the analysis asks for them.

Datagrams are received with recvmmsg(2) through ctypes (`analyzer.sources._mmsg`): up to 256 per
system call, each straight into its own fixed slot of the batch buffer (a slot of `cap` bytes
after the header room; what is longer lands in a spill region and is copied to the end of the
batch; `cap` grows to fit the largest datagram seen, up to 16 KiB). Lengths, sender addresses and
the ancillary data of every message (SCM_TIMESTAMPNS: the kernel's receive time; SO_RXQ_OVFL: the
socket's drop count; IP_PKTINFO/IPV6_PKTINFO: the destination address the sender used, i.e. which
mirror target address, so a listener bound to 0.0.0.0 still knows it) are read as numpy columns
for the whole batch, never per datagram. Where recvmmsg is not available (not Linux, or
INTRANSIT_NO_MMSG=1) recvfrom_into reads one datagram per call (destination: the bound address).

Counters (`MirrorCounters`): received (datagrams read from the socket), filtered (a source outside
`allow`), kernel drops (SO_RXQ_OVFL, read on the first datagram of each burst, and the `drops`
column of /proc/net/udp[6] for the socket's inode, whichever is higher: both are the socket's
sk_drops), queue drops (read but not analysed: what is still queued, in the socket or the receive
queue, when the shutdown drain runs out of time; new datagrams are refused from the stop on),
oversize (cut by our buffer; cannot happen with a 65535-byte slot, kept as a guard).
Every datagram read is yielded or counted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import queue
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from analyzer.errors import UsageError
from analyzer.sources import _mmsg, _recv
from analyzer.sources.batch import LINKTYPE_RAW, PacketBatch

__all__ = ["MirrorCounters", "MirrorSource", "parse_allow"]

SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux; Python names it only on some builds
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
HEADROOM = 48  # bytes kept before each datagram for the synthesised IPv6 (40) + UDP (8) header
MAX_DATAGRAM = 65535
FIRST_CAP = 2048 - HEADROOM  # a slot's first size: an Ethernet-MTU mirrored frame with its VXLAN/GENEVE header
MAX_CAP = 16384 - HEADROOM  # slots grow to fit up to here (a jumbo-MTU mirror target's 9001); beyond: spill
_CMSG_DROPS = struct.Struct("=I")
# The receive thread runs this many nice steps above the rest of the process where it may (root, or
# CAP_SYS_NICE). Receiving holds the interpreter, so the analysis thread mostly waits meanwhile; but
# when it runs native code that lets the interpreter go (pyarrow and numpy kernels of a chunk's judging
# and writing) both threads want the one core, and at equal priority the scheduler split it: recvmmsg
# calls of 256 datagrams took 3-8 ms instead of 0.3-0.4, the receive rate fell below the stream's,
# and the socket overflowed with the receive queue half empty (3,489 of 6M lost in a 40 s run at
# 150k/s; 0 with the priority, calls over 2 ms 80 -> 19). The thread needs ~20% of the core at that
# rate and sleeps otherwise, so the analysis loses nothing it could have used.
RECEIVE_PRIORITY = 10
_RING_SLOTS = 8192  # messages a slab's recvmmsg structures hold at most (batch_packets caps it lower)


@dataclass(slots=True, eq=False)
class _Slab:
    """One batch being received with recvmmsg: its buffer (datagram j in slot j, `stride` bytes
    apart, `cap` bytes each after the header room) and its recvmmsg structures, which the analysis
    reads after the receive thread has filled them; `runs`: (first message, socket index) per call."""

    buf: np.ndarray
    ring: _mmsg.RecvRing
    stride: int
    cap: int
    slots: int
    call_ns: np.ndarray  # the receive time of each message's call (used where the kernel gave none)
    k: int = 0
    calls: int = 0
    runs: list[tuple[int, int]] = field(default_factory=list)
    spills: list[tuple[int, bytes]] = field(default_factory=list)
    queued: bool = False  # filled or being filled, its batch not made yet


@dataclass(slots=True)
class MirrorCounters:
    """What the socket gave and what became of it (cumulative since the source opened)."""

    received: int = 0  # datagrams read from the socket(s)
    received_bytes: int = 0
    filtered: int = 0  # from a source outside --allow: dropped
    yielded: int = 0  # handed to the analysis in batches
    dropped_queue: int = 0  # read but not analysed (the shutdown drain ran out of time)
    dropped_kernel: int = 0  # the kernel dropped them: the socket buffer was full (sk_drops)
    oversize: int = 0  # cut by our receive buffer (MSG_TRUNC): kept, marked truncated
    syscalls: int = 0  # receive system calls that returned datagrams (received / syscalls: the burst size)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def parse_allow(cidrs: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`--allow` values as networks; a bad one is a UsageError naming it."""
    nets = []
    for c in cidrs:
        try:
            nets.append(ipaddress.ip_network(c.strip(), strict=False))
        except ValueError:
            raise UsageError(f"--allow {c!r} is not an address or CIDR") from None
    return tuple(nets)


class MirrorSource:
    """UDP sockets receiving a Traffic Mirroring / GWLB stream; a `Source` (name + batches()).

    `ports` and `geneve_ports` are opened on `bind`; a port of 0 asks the kernel for a free one
    (tests), `bound_ports` says which. `stop()` (from a signal handler or another thread) ends
    `batches()` after a drain of what the kernel has queued, bounded by `drain_timeout` seconds; an
    idle source yields an empty batch every `tick` seconds so the caller can expire flows and close
    windows on time.
    """

    def __init__(self, bind: str = "0.0.0.0", ports: Sequence[int] = (4789,), geneve_ports: Sequence[int] = (6081,),
                 allow: Sequence[str] = (), rcvbuf: int | None = 32 << 20, batch_packets: int = 4096,
                 batch_bytes: int = 8 << 20, max_delay: float = 0.02, tick: float = 0.2,
                 drain_timeout: float = 5.0, mmsg: bool | None = None, receive_thread: bool | None = None,
                 queue_bytes: int = 256 << 20, coalesce: float = 0.002, priority: int = RECEIVE_PRIORITY) -> None:
        """`mmsg`: receive with recvmmsg (None: where available; False: one recvfrom_into per datagram).
        `receive_thread` (None: with recvmmsg): receive on a thread of its own into at most
        `queue_bytes` of batch buffers (allocated as the analysis falls behind, reused once it is done
        with them; all in use: the socket buffer holds the rest); a batch's buffer is then reused
        once nothing refers to it any more."""
        self.bind = bind
        self.allow = parse_allow(allow)
        self.batch_packets = max(1, batch_packets)
        self.batch_bytes = max(batch_bytes, MAX_DATAGRAM + HEADROOM)
        self.max_delay, self.tick, self.drain_timeout = max_delay, tick, drain_timeout
        self.coalesce = max(0.0, coalesce)
        self.priority = max(0, priority)  # nice steps the receive thread takes above the process's
        self.receive_priority = ""  # what it got: "nice N", or why not (set when the thread starts)
        self.counters = MirrorCounters()
        self.requested_rcvbuf = rcvbuf
        self.granted_rcvbuf = 0
        self.drop_counter = "none"  # how kernel drops are read: so_rxq_ovfl and/or /proc
        self._stop = threading.Event()
        self._allowed: dict[str, bool] = {}
        self._packed: dict[str, tuple[int, bytes]] = {}
        self._socks: list[socket.socket] = []
        self._rxq_drops: dict[int, int] = {}
        self._inode: dict[int, int] = {}
        self.targets: dict[str, int] = {}  # datagrams yielded per destination (mirror target) address
        self._mmsg = _mmsg.available() if mmsg is None else bool(mmsg)
        self.threaded = self._mmsg if receive_thread is None else bool(receive_thread) and self._mmsg
        self._cap = FIRST_CAP
        self._spill = np.empty(_mmsg.MAX_CALL * _mmsg.SPILL, np.uint8) if self._mmsg else np.empty(0, np.uint8)
        self._sync_slab: _Slab | None = None
        # the receive thread's queue: filled slabs in order; every slab that exists is in _lent
        self.queue_slabs = max(2, queue_bytes // self.batch_bytes)
        self._full: queue.SimpleQueue[_Slab | None] = queue.SimpleQueue()
        self._lent: list[_Slab] = []
        self._abort = False
        self._drain_end = 0.0
        self._count_lock = threading.Lock()
        self.queue_peak = 0  # most filled slabs waiting for the analysis at once
        self.in_queue = 0  # datagrams received by the thread, waiting for the analysis (not yet `received`)
        self.queue_full_events = 0  # times the receiver found every slab in use and waited for one
        self.receiver = "recvmmsg" if self._mmsg else "recvfrom"  # the system call; `threaded`: on its own thread
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(bind).version == 6 else socket.AF_INET
        except ValueError:
            raise UsageError(f"--bind {bind!r} is not an IP address") from None
        self.family = family
        self._local = ipaddress.ip_address(bind).packed
        kinds = [*((p, "vxlan") for p in ports), *((p, "geneve") for p in geneve_ports)]
        if not kinds:
            raise UsageError("no port to listen on")
        for port, _ in kinds:
            self._socks.append(self._open(family, bind, port))
        self.bound_ports = tuple(s.getsockname()[1] for s in self._socks)
        self._sock_index = {s.fileno(): i for i, s in enumerate(self._socks)}
        # the ports as bound (0 asks for a free one): the decoder must know which carry which tunnel
        self.vxlan_ports = tuple(b for b, (_, k) in zip(self.bound_ports, kinds, strict=True) if k == "vxlan")
        self.geneve_ports = tuple(b for b, (_, k) in zip(self.bound_ports, kinds, strict=True) if k == "geneve")
        self.name = f"udp:{bind}:" + ",".join(map(str, self.bound_ports))
        self._local16_arr = np.frombuffer(self._local16(), np.uint8).copy()
        self._target_keys: dict[bytes, str] = {}  # a destination's 16 bytes -> its name in `targets`

    # ---------------------------------------------------------------- sockets
    def _open(self, family: int, bind: str, port: int) -> socket.socket:
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 senders too, as ::ffff:a.b.c.d
            if self.requested_rcvbuf:
                try:  # beyond net.core.rmem_max needs CAP_NET_ADMIN; without it the plain option is capped
                    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.requested_rcvbuf)
                except OSError:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.requested_rcvbuf)
            self.granted_rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # Linux reports double
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                self.drop_counter = "so_rxq_ovfl+proc"
            except OSError:
                self.drop_counter = "proc"
            if self._mmsg:  # read by _mmsg.parse_cmsgs; the fallback reads SO_RXQ_OVFL only
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, _mmsg.SCM_TIMESTAMPNS, 1)
                with contextlib.suppress(OSError):
                    if family == socket.AF_INET6:  # IPv4 senders too (as ::ffff:a.b.c.d)
                        s.setsockopt(_mmsg.IPPROTO_IPV6, _mmsg.IPV6_RECVPKTINFO, 1)
                    else:
                        s.setsockopt(_mmsg.IPPROTO_IP, _mmsg.IP_PKTINFO, 1)
            s.bind((bind, port))
        except OSError as exc:
            s.close()
            self.close()
            raise UsageError(f"cannot listen on {bind} port {port}: {exc.strerror or exc}") from None
        s.setblocking(False)
        self._inode[s.fileno()] = os.fstat(s.fileno()).st_ino
        return s

    def close(self) -> None:
        for s in self._socks:
            s.close()
        self._socks = []

    def stop(self) -> None:
        """Stop receiving (safe from a signal handler): batches() drains the socket and returns."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def backlog(self) -> float:
        """The share of the receive queue in use: filled batches waiting for the analysis over the
        most that may wait (0 without a receive thread: the socket buffer is then the only queue)."""
        return self._full.qsize() / self.queue_slabs if self.threaded else 0.0

    def kernel_drops(self) -> int:
        """sk_drops of the sockets: the higher of SO_RXQ_OVFL's last value and /proc/net/udp[6]."""
        proc = _proc_drops(set(self._inode.values()))
        total = max(sum(self._rxq_drops.values()), proc)
        self.counters.dropped_kernel = max(self.counters.dropped_kernel, total)
        return self.counters.dropped_kernel

    # ---------------------------------------------------------------- addresses
    def _source_ok(self, host: str) -> bool:
        ok = self._allowed.get(host)
        if ok is None:
            addr = _plain(host)
            ok = any(addr in net for net in self.allow if net.version == addr.version)
            if len(self._allowed) > 65536:
                self._allowed.clear()
            self._allowed[host] = ok
        return ok

    def _pack(self, host: str) -> tuple[int, bytes]:
        p = self._packed.get(host)
        if p is None:
            addr = _plain(host)
            p = (addr.version, addr.packed)
            if len(self._packed) > 65536:
                self._packed.clear()
            self._packed[host] = p
        return p

    # ---------------------------------------------------------------- batches
    def batches(self) -> Iterator[PacketBatch]:
        sel = selectors.DefaultSelector()
        for s in self._socks:
            sel.register(s, selectors.EVENT_READ)
        index = 0
        try:
            if self.threaded:
                yield from self._batches_threaded(sel)
                self.kernel_drops()
                return
            while not self._stop.is_set():
                batch = self._fill(sel, deadline=None)
                if batch is not None:
                    batch.first_index = index
                    index += len(batch)
                    yield batch
            # stop: no new datagram is accepted (see _shut), what the kernel has queued is drained
            # and analysed; what is still queued after drain_timeout is counted as queue drops
            self._shut()
            end = time.monotonic() + self.drain_timeout
            while time.monotonic() < end:
                batch = self._fill(sel, deadline=end)
                if batch is None:  # the sockets are empty (an empty batch: all it read was filtered)
                    break
                batch.first_index = index
                index += len(batch)
                yield batch
            self.counters.dropped_queue += self._discard()
            self.kernel_drops()
        finally:
            sel.close()

    def _shut(self) -> None:
        """Stop receiving without losing the queue: a UDP socket connected to a peer takes datagrams
        only from it (the kernel refuses the others, the sender sees ICMP port unreachable), while what
        is queued already stays readable. The peer is a discard port no mirror source sends from."""
        for s in self._socks:
            local = s.getsockname()[0]
            if local in ("0.0.0.0", "::"):
                local = "::1" if s.family == socket.AF_INET6 else "127.0.0.1"
            with contextlib.suppress(OSError):  # else the drain runs to its deadline; the rest: queue drops
                s.connect((local, 9))

    def _discard(self) -> int:
        scratch = bytearray(MAX_DATAGRAM)
        n = 0
        for s in self._socks:
            while True:
                try:
                    s.recv_into(scratch)
                except (BlockingIOError, InterruptedError):
                    break
                n += 1
        self.counters.received += n
        return n

    def _fill(self, sel: selectors.BaseSelector, deadline: float | None) -> PacketBatch | None:
        """One batch: wait up to `tick` for the first datagram, then drain bursts until the batch is
        full, `max_delay` has passed since its first datagram, or the sockets are empty. None when
        nothing came and nothing needs saying (draining: the sockets are empty); an empty batch
        after an idle tick, or when all that came was filtered."""
        if not self._mmsg:
            return self._fill_each(sel, deadline)
        return self._fill_mmsg(sel, deadline)

    # ---------------------------------------------------------------- recvmmsg: slabs
    def _fill_mmsg(self, sel: selectors.BaseSelector, deadline: float | None) -> PacketBatch | None:
        """`_fill` with recvmmsg, in the calling thread: one slab received, then assembled."""
        slab = self._slab(fresh=True)
        self.counters.received += self._receive(slab, sel, self.tick if deadline is None else 0.0,
                                                draining=deadline is not None)
        if not slab.k:
            return PacketBatch.empty(self.name) if deadline is None else None
        return self._slab_batch(slab)

    def _slab(self, fresh: bool = False) -> _Slab:
        """A new slab sized for the current slot size. `fresh`: the calling thread's one slab,
        its recvmmsg structures reused, its buffer new (the caller may keep the batch made of it)."""
        cap = self._cap
        stride = (HEADROOM + cap + 63) & ~63
        slots = max(1, min(self.batch_packets, self.batch_bytes // stride, _RING_SLOTS))
        slab = self._sync_slab if fresh else None
        if slab is None or slab.stride != stride:
            slab = _Slab(np.empty(slots * stride, np.uint8), _mmsg.RecvRing(slots, self._spill), stride, cap, slots,
                         np.empty(slots, np.int64))
            if fresh:
                self._sync_slab = slab
        elif fresh:
            slab.buf = np.empty(slots * stride, np.uint8)
        return self._rearm(slab)

    def _receive(self, slab: _Slab, sel: selectors.BaseSelector, wait: float, draining: bool = False) -> int:
        """Fill `slab`: wait up to `wait` for the first datagram, then take bursts until the slab is
        full, `max_delay` has passed since its first datagram, or the sockets are empty (draining)
        or `stop()` was called (nothing read yet). The loop runs once per system call (up to 256
        datagrams), not per datagram; returns how many datagrams it holds. They are counted as
        received by whoever takes them (the analysis, or the receive thread when it drops them), so
        that at any moment `received` = what has been analysed, filtered or dropped.)"""
        ring, slots, cap = slab.ring, slab.slots, slab.cap
        lens_col = ring.hdr["len"]
        call_ns = slab.call_ns
        k = calls = 0
        time_ns = time.time_ns
        first_at = 0.0
        began = time.monotonic()
        timeout = wait
        gap = self.coalesce if self.threaded and not draining else 0.0
        every = [(key, selectors.EVENT_READ) for key in sel.get_map().values()]
        events: list[tuple[selectors.SelectorKey, int]] = []
        while k < slots:
            if k and gap > 0 and events and timeout > 0:
                # a steady stream: wait `coalesce` (or what is left of max_delay), then read what came
                # meanwhile, instead of waking at each datagram; see the class docstring
                time.sleep(min(gap, timeout))
                events = every
            else:
                events = sel.select(timeout)
            if not events:
                break
            k_before = k
            for key, _ in events:
                fd = key.fd
                si = self._sock_index[fd]
                while k < slots:
                    want = min(slots - k, _mmsg.MAX_CALL)
                    try:
                        got = ring.recv(fd, k, want)
                    except OSError:  # (a connected socket after stop() may report a refused peer)
                        break
                    if not got:
                        break
                    calls += 1
                    slab.runs.append((k, si))
                    call_ns[k:k + got] = time_ns()
                    if int(lens_col[k:k + got].max()) > cap:
                        slab.spills += ring.spilled(k, got, cap)
                    k += got
                    if got < want:  # the socket is empty
                        break
            if events is every and k == k_before:  # nothing came during the gap: wait in select()
                events = []
            if k and not first_at:
                first_at = time.monotonic()
            if k >= slots:
                break
            now = time.monotonic()
            if k:
                timeout = 0.0 if draining else self.max_delay - (now - first_at)
                if timeout < 0 or (draining and not events):
                    break
            else:
                timeout = wait - (now - began)
                if timeout <= 0 or (not draining and self._stop.is_set()):
                    break
        slab.k, slab.calls = k, calls
        self.counters.syscalls += calls
        return k

    def _slab_batch(self, slab: _Slab) -> PacketBatch:
        """The received slab as a batch: its columns read from the recvmmsg structures in one compiled
        pass (`analyzer.sources._recv.assemble`: senders, kernel timestamps, drop counts, target
        addresses, the outer headers written), then --allow applied. A slab with a datagram longer
        than its slot takes the numpy path (`_slab_batch_numpy`), which moves those first."""
        if slab.spills or not slab.k:
            return self._slab_batch_numpy(slab)
        ring, k, cap, stride, buf = slab.ring, slab.k, slab.cap, slab.stride, slab.buf
        c = self.counters
        runs = slab.runs
        if len(runs) == 1 or len({si for _, si in runs}) == 1:
            sock_of = None
            dport = np.full(k, self.bound_ports[runs[0][1]], np.int64)
        else:
            firsts = [f for f, _ in runs] + [k]
            sock_of = np.repeat(np.array([si for _, si in runs], np.int64), np.diff(firsts))
            dport = np.asarray(self.bound_ports, np.int64)[sock_of]
        length, start, ts, drops = (np.empty(k, np.int64) for _ in range(4))
        caplen, wirelen = np.empty(k, np.int32), np.empty(k, np.int32)
        src, dst = np.empty((k, 16), np.uint8), np.empty((k, 16), np.uint8)
        trunc = np.empty(k, np.bool_)
        longest, cut, same = _recv.assemble(ring.hdr.view(np.uint8).reshape(-1, _mmsg.MMSGHDR.itemsize), ring.names,
                                            ring.ctl, slab.call_ns, dport, k, stride, self._local16_arr, buf,
                                            length, start, caplen, wirelen, ts, drops, src, dst, trunc)
        if longest > cap:  # the next batches' slots fit the largest seen
            self._cap = max(cap, min(MAX_CAP, (int(longest) + 1023) & ~1023))
        if int(drops.max()) >= 0:
            if sock_of is None:
                sock_of = np.full(k, runs[0][1], np.int64)
            self._note_drops(drops, sock_of)
        if self.allow:
            keep = self._allowed_mask(src)
            filtered = k - int(keep.sum())
            c.filtered += filtered
            if filtered:
                length, start, caplen, wirelen, ts, src, dst, trunc = (
                    a[keep] for a in (length, start, caplen, wirelen, ts, src, dst, trunc))
                same = 0
                cut = int(trunc.sum())
        c.oversize += int(cut)
        n = len(start)
        if not n:  # all filtered
            return PacketBatch.empty(self.name)
        c.received_bytes += int(length.sum())
        c.yielded += n
        if same:
            key = self._target_keys.get(dst[0].tobytes())
            if key is None:
                if len(self._target_keys) > 4096:  # (a few mirror target addresses; bounded whatever comes)
                    self._target_keys.clear()
                key = self._target_keys[dst[0].tobytes()] = _target_key(dst[0])
            self.targets[key] = self.targets.get(key, 0) + n
        else:
            self._count_targets(dst, dst.view("<u8"))
        return PacketBatch(source=self.name, buf=buf, offset=start, caplen=caplen, wirelen=wirelen, ts_ns=ts,
                           linktype=np.full(n, LINKTYPE_RAW, np.int16))

    def _note_drops(self, drops: np.ndarray, sock_of: np.ndarray) -> None:
        """The sockets' SO_RXQ_OVFL counts (-1: not given with that message): the highest seen of each."""
        for si in np.unique(sock_of[drops >= 0]).tolist():
            fd = self._socks[si].fileno()
            self._rxq_drops[fd] = max(self._rxq_drops.get(fd, 0), int(drops[(sock_of == si)].max()))

    def _slab_batch_numpy(self, slab: _Slab) -> PacketBatch:
        """`_slab_batch` in numpy, for a slab holding datagrams longer than their slot (moved to the end
        of a new buffer first): the columns read from the recvmmsg structures (senders, kernel
        timestamps, drop counts, target addresses), --allow applied, headers written."""
        ring, k, cap, stride, buf, spills = slab.ring, slab.k, slab.cap, slab.stride, slab.buf, slab.spills
        c = self.counters
        lens = ring.hdr["len"][:k].astype(np.int64)
        if len(spills) or int(lens.max()) > cap:  # the next batches' slots fit the largest seen
            self._cap = max(cap, min(MAX_CAP, (int(lens.max()) + 1023) & ~1023))
        names = ring.names[:k]
        fam = names[:, 0].astype(np.int64) | (names[:, 1].astype(np.int64) << 8)
        sport = (names[:, 2].astype(np.int64) << 8) | names[:, 3]
        src = np.zeros((k, 16), np.uint8)
        is4 = fam == socket.AF_INET
        src[is4, 10:12] = 0xFF
        src[is4, 12:16] = names[is4, 4:8]
        src[~is4] = names[~is4, 8:24]
        ts, drops, dst, have = _mmsg.parse_cmsgs(ring.ctl[:k], ring.hdr["controllen"][:k])
        ts = np.where(ts >= 0, ts, slab.call_ns[:k])
        dst[~have] = np.frombuffer(self._local16(), np.uint8)
        runs = slab.runs
        firsts = [f for f, _ in runs] + [k]
        sock_of = np.repeat(np.array([si for _, si in runs], np.int64), np.diff(firsts))
        if (drops >= 0).any():
            self._note_drops(drops, sock_of)
        dport = np.asarray(self.bound_ports, np.int64)[sock_of]
        trunc = (ring.hdr["flags"][:k] & _mmsg.MSG_TRUNC) != 0
        keep = self._allowed_mask(src) if self.allow else np.ones(k, np.bool_)
        base = np.arange(k, dtype=np.int64) * stride
        if spills:  # datagrams longer than their slot: whole, at the end of a new buffer
            keep_set = set(np.flatnonzero(keep).tolist())
            spills = [(j, rest) for j, rest in spills if j in keep_set]
            extra = sum((HEADROOM + cap + len(rest) + 7) & ~7 for _, rest in spills)
            grown = np.empty(len(buf) + extra, np.uint8)
            grown[:len(buf)] = buf
            at = len(buf)
            for j, rest in spills:
                o = j * stride + HEADROOM
                grown[at + HEADROOM:at + HEADROOM + cap] = buf[o:o + cap]
                grown[at + HEADROOM + cap:at + HEADROOM + cap + len(rest)] = np.frombuffer(rest, np.uint8)
                base[j] = at
                at += (HEADROOM + cap + len(rest) + 7) & ~7
            buf = grown
        filtered = k - int(keep.sum())
        c.filtered += filtered
        if filtered:
            base, lens, src, dst, sport, dport, ts, trunc = (a[keep] for a in (base, lens, src, dst, sport, dport,
                                                                             ts, trunc))
        c.oversize += int(trunc.sum())
        if not len(base):  # all filtered
            return PacketBatch.empty(self.name)
        real = np.where(trunc, MAX_DATAGRAM + 1, lens)  # cut by our buffer (cannot happen): its length unknown
        lens = np.minimum(lens, MAX_DATAGRAM)
        return self._assemble(buf, base, lens, real, src, dst, sport, dport, ts)

    # ---------------------------------------------------------------- recvmmsg: the receive thread
    def _batches_threaded(self, sel: selectors.BaseSelector) -> Iterator[PacketBatch]:
        """`batches()` with a receive thread: it fills slabs and queues them; this generator (the
        analysis thread) assembles and yields them. An idle tick yields an empty batch."""
        receiver = threading.Thread(target=self._receiver, args=(sel,), name="intransit-receive", daemon=True)
        receiver.start()
        index = 0
        try:
            while True:
                try:
                    slab = self._full.get(timeout=self.tick)
                except queue.Empty:
                    yield PacketBatch.empty(self.name)
                    continue
                if slab is None:  # the receiver has drained the sockets and ended
                    break
                late = self._drain_end and time.monotonic() > self._drain_end  # the drain ran out of time
                self._take(slab.k, dropped=bool(late), queued=True)
                if late:
                    continue
                batch = self._slab_batch(slab)
                slab.queued = False  # from now on its batch's references say whether it is in use
                batch.first_index = index
                index += len(batch)
                yield batch
                del batch  # the slab is reused once nothing holds its buffer (see _lendable)
        finally:
            self._abort = True
            self._stop.set()
            receiver.join()
            while True:  # left in the queue by a consumer that stopped early: read, not analysed
                try:
                    slab = self._full.get_nowait()
                except queue.Empty:
                    break
                if slab is not None:
                    self._take(slab.k, dropped=True, queued=True)

    def _lendable(self) -> _Slab | None:
        """A slab to fill: one whose buffer nothing outside it refers to any more (its batch and
        what was decoded from it are gone), else a new one while fewer than `queue_slabs` exist,
        else None (the queue is full). Reference counts, not a hand-back protocol: a consumer that
        keeps a batch keeps its buffer, safely, and the bound still holds."""
        lent = self._lent
        for j, slab in enumerate(lent):
            if not slab.queued and sys.getrefcount(slab.buf) <= 2:  # the slab's own + the argument's
                del lent[j]
                slab = self._rearm(slab)
                break
        else:
            if len(lent) >= self.queue_slabs:
                return None
            slab = self._slab()
        lent.append(slab)
        slab.queued = True  # until the analysis has made its batch
        return slab

    def _receiver(self, sel: selectors.BaseSelector) -> None:
        """The receive thread: fill slabs and queue them until stop(); then shut the sockets, drain
        what the kernel holds (until empty or `drain_timeout`), discard the rest as queue drops.
        With every slab in use (the analysis is behind by `queue_slabs` batches) it stops reading
        until one is free: the socket buffer holds what arrives meanwhile, and what it cannot hold
        the kernel drops and counts (`dropped_kernel`). Reading and discarding instead would spend
        the CPU the analysis lacks at that very moment (~1 us per datagram on one core) and throw
        away the socket buffer's room."""
        full = False
        draining = False
        if self.priority:
            self.receive_priority = _raise_priority(self.priority)
        try:
            while not self._abort:
                if not draining and self._stop.is_set():
                    self._shut()
                    self._drain_end = time.monotonic() + self.drain_timeout
                    draining = True
                if draining and time.monotonic() > self._drain_end:
                    break
                slab = self._lendable()
                if slab is None:  # the queue is full: wait for the analysis to free a slab
                    if not full:
                        self.queue_full_events += 1
                    full = True
                    time.sleep(0.001)
                    continue
                full = False
                n = self._receive(slab, sel, 0.0 if draining else self.tick, draining)
                if n:
                    with self._count_lock:
                        self.in_queue += n
                    self._full.put(slab)
                    self.queue_peak = max(self.queue_peak, self._full.qsize())
                else:
                    slab.queued = False
                    if draining:
                        break
            if draining:
                with self._count_lock:  # _discard counts them as received
                    self.counters.dropped_queue += self._discard()
        finally:
            self._full.put(None)

    def _take(self, n: int, dropped: bool, queued: bool = False) -> None:
        """Count n datagrams as received (and as queue drops; `queued`: taken from the queue):
        both threads count, under a lock."""
        c = self.counters
        with self._count_lock:
            if queued:
                self.in_queue -= n
            c.received += n
            if dropped:
                c.dropped_queue += n

    def _rearm(self, slab: _Slab) -> _Slab:
        """A slab emptied for the next batch (re-made when the slot size grew meanwhile)."""
        if slab.cap != self._cap:
            return self._slab()
        slab.ring.arm(int(slab.buf.ctypes.data), slab.stride, slab.cap, HEADROOM)
        slab.k = slab.calls = 0
        slab.runs, slab.spills = [], []
        slab.queued = False
        return slab

    def _allowed_mask(self, src: np.ndarray) -> np.ndarray:
        """Which senders (16-byte addresses, IPv4 as ::ffff:a.b.c.d) are inside --allow."""
        hl = src.view(">u8").astype(np.uint64)  # [n, 2]: the address as two 64-bit halves
        v4 = (hl[:, 0] == 0) & ((hl[:, 1] >> np.uint64(32)) == np.uint64(0xFFFF))
        ok = np.zeros(len(src), np.bool_)
        for net in self.allow:
            packed = (_V4MAPPED + net.network_address.packed) if net.version == 4 else net.network_address.packed
            bits = net.prefixlen + (96 if net.version == 4 else 0)
            mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
            n = int.from_bytes(packed, "big")
            mh, ml = np.uint64(mask >> 64), np.uint64(mask & ((1 << 64) - 1))
            nh, nl = np.uint64(n >> 64), np.uint64(n & ((1 << 64) - 1))
            inside = ((hl[:, 0] & mh) == nh) & ((hl[:, 1] & ml) == nl)
            ok |= inside & (v4 if net.version == 4 else ~v4)  # as before: a network matches its own version
        return ok

    def _fill_each(self, sel: selectors.BaseSelector, deadline: float | None) -> PacketBatch | None:
        """`_fill` without recvmmsg: one recvfrom_into per datagram (a recvmsg_into first in each
        burst, for its SO_RXQ_OVFL note). The per-datagram loop is the budget (~1 us of Python
        around a ~1 us syscall): four list appends, no attribute writes; the rest is done per batch
        with numpy in `_assemble`."""
        buf = np.empty(self.batch_bytes, np.uint8)
        mv = memoryview(buf)  # type: ignore[arg-type]
        limit = self.batch_bytes - MAX_DATAGRAM - HEADROOM
        most = self.batch_packets
        offs: list[int] = []
        lens: list[int] = []
        addrs: list[tuple] = []
        stamps: list[int] = []
        cuts: list[tuple[int, int]] = []  # (index, real length) of datagrams cut by the buffer
        port_runs: list[tuple[int, int]] = []  # (first index, local port): one per socket drained
        append_off, append_len, append_addr, append_ts = offs.append, lens.append, addrs.append, stamps.append
        pos = k = got = filtered = c_calls = 0
        allow = bool(self.allow)
        source_ok = self._source_ok
        time_ns = time.time_ns
        trunc_flag = socket.MSG_TRUNC
        first_at = 0.0
        began = time.monotonic()
        wait = self.tick if deadline is None else 0.0  # draining: only what is queued already
        timeout = wait
        while True:
            events = sel.select(timeout)
            if not events:
                break
            for key, _ in events:
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                port_runs.append((k, s.getsockname()[1]))
                recv = s.recvfrom_into
                # one recvmsg per burst: its SO_RXQ_OVFL note is the socket's drop count so far
                try:
                    n, anc, flags, addr = s.recvmsg_into([mv[pos + HEADROOM:pos + HEADROOM + MAX_DATAGRAM]], 64,
                                                         trunc_flag)
                except (BlockingIOError, InterruptedError):
                    continue
                c_calls += 1
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
                        self._rxq_drops[s.fileno()] = _CMSG_DROPS.unpack_from(data)[0]
                if flags & trunc_flag:
                    n += MAX_DATAGRAM + 1  # the real length is unknown: only that it did not fit
                while True:
                    got += 1
                    if allow and not source_ok(addr[0]):
                        filtered += 1
                    else:
                        if n > MAX_DATAGRAM:
                            cuts.append((k, n))
                            n = MAX_DATAGRAM
                        append_off(pos)
                        append_len(n)
                        append_addr(addr)
                        append_ts(time_ns())
                        k += 1
                        pos += (HEADROOM + n + 7) & ~7
                    if pos > limit or k >= most:
                        break
                    try:  # MSG_TRUNC: the datagram's real length, even if the buffer were smaller
                        n, addr = recv(mv[pos + HEADROOM:], MAX_DATAGRAM, trunc_flag)
                    except (BlockingIOError, InterruptedError):
                        break
                    c_calls += 1
                if k and not first_at:
                    first_at = time.monotonic()
            now = time.monotonic()
            if pos > limit or k >= most:
                break
            if k:
                timeout = self.max_delay - (now - first_at)
                if timeout <= 0:
                    break
            else:  # only filtered datagrams so far: keep waiting until the tick is over
                timeout = wait - (now - began)
                if timeout <= 0 or (deadline is None and self._stop.is_set()):
                    break
        c = self.counters
        c.received += got
        c.filtered += filtered
        c.oversize += len(cuts)
        c.syscalls += c_calls
        if not k:  # nothing read, or all of it filtered
            return PacketBatch.empty(self.name) if deadline is None or got else None
        return self._from_lists(buf, offs, lens, addrs, stamps, cuts, port_runs)

    def _from_lists(self, buf: np.ndarray, offs: list[int], lens: list[int], addrs: list[tuple],
                    stamps: list[int], cuts: list[tuple[int, int]], port_runs: list[tuple[int, int]]) -> PacketBatch:
        """`_assemble` for what the fallback loop gathered in lists."""
        n = len(offs)
        hosts = [a[0] for a in addrs]
        packed_of = {h: self._pack(h) for h in set(hosts)}  # a few mirror sources
        src = np.frombuffer(b"".join(p[1] if p[0] == 6 else _V4MAPPED + p[1] for p in (packed_of[h] for h in hosts)),
                            np.uint8).reshape(n, 16)
        dst = np.tile(np.frombuffer(self._local16(), np.uint8), (n, 1))
        length = np.asarray(lens, np.int64)
        real = length.copy()
        for j, r in cuts:  # beyond the buffer: the length on the wire is unknown, at least this
            real[j] = r
        sp = np.fromiter((a[1] for a in addrs), np.int64, n)
        firsts = [f for f, _ in port_runs] + [n]
        dp = np.repeat(np.array([p for _, p in port_runs], np.int64), np.diff(firsts))
        return self._assemble(buf, np.asarray(offs, np.int64), length, real, src, dst, sp, dp,
                              np.asarray(stamps, np.int64))

    def _assemble(self, buf: np.ndarray, base: np.ndarray, length: np.ndarray, real: np.ndarray, src: np.ndarray,
                  dst: np.ndarray, sport: np.ndarray, dport: np.ndarray, ts: np.ndarray) -> PacketBatch:
        """The batch: datagram j is at buf[base[j] + HEADROOM:][:length[j]]; its synthesised outer
        IPv4 (or IPv6) + UDP header (sender src:sport -> target dst:dport; IPv4 unless an address is
        a real IPv6 one) is written in the header room before it, for all datagrams at once."""
        n = len(base)
        c = self.counters
        c.received_bytes += int(length.sum())
        c.yielded += n
        s64, d64 = src.view("<u8"), dst.view("<u8")  # [n, 2] each: two native words per address
        self._count_targets(dst, d64)
        v4 = _is_v4(s64) & _is_v4(d64)
        hlen = np.where(v4, 28, 48)
        start = base + HEADROOM - hlen  # 4-byte aligned: base is a multiple of 8, HEADROOM - hlen of 4
        caplen = (hlen + length).astype(np.int32)
        wirelen = np.minimum(hlen + real, np.iinfo(np.int32).max).astype(np.int32)
        udp_len = length + 8
        words = buf[:len(buf) & ~3].view("<u4")
        if v4.any():
            k = np.flatnonzero(v4)
            hdr = np.empty((len(k), 28), np.uint8)
            hdr[:] = _V4_TEMPLATE
            h16, h32 = hdr.view(">u2"), hdr.view("<u4")
            h16[:, 1] = 28 + length[k]
            h32[:, 3] = s64[k, 1] >> np.uint64(32)  # the address bytes, as they are in memory
            h32[:, 4] = d64[k, 1] >> np.uint64(32)
            h16[:, 10], h16[:, 11], h16[:, 12] = sport[k], dport[k], udp_len[k]
            words[(start[k] >> 2)[:, None] + np.arange(7)] = h32
        if not v4.all():
            k = np.flatnonzero(~v4)
            hdr = np.empty((len(k), 48), np.uint8)
            hdr[:] = _V6_TEMPLATE
            h16 = hdr.view(">u2")
            h16[:, 2] = udp_len[k]
            hdr[:, 8:24] = src[k]
            hdr[:, 24:40] = dst[k]
            h16[:, 20], h16[:, 21], h16[:, 22] = sport[k], dport[k], udp_len[k]
            words[(start[k] >> 2)[:, None] + np.arange(12)] = hdr.view("<u4")
        return PacketBatch(source=self.name, buf=buf, offset=start, caplen=caplen, wirelen=wirelen,
                           ts_ns=np.asarray(ts, np.int64), linktype=np.full(n, LINKTYPE_RAW, np.int16))

    def _count_targets(self, dst: np.ndarray, d64: np.ndarray) -> None:
        """`targets`: datagrams per destination address (a few mirror target addresses at most)."""
        while len(d64):  # one pass per distinct address (np.unique(axis=0) sorts: 30x slower here)
            same = (d64[:, 0] == d64[0, 0]) & (d64[:, 1] == d64[0, 1])
            key = _target_key(dst[0])
            self.targets[key] = self.targets.get(key, 0) + int(same.sum())
            if same.all():
                break
            dst, d64 = dst[~same], d64[~same]

    def _local16(self) -> bytes:
        """The bound address as 16 bytes (IPv4 as ::ffff:a.b.c.d; :: and 0.0.0.0 as they are)."""
        return self._local if len(self._local) == 16 else _V4MAPPED + self._local


_V4MAPPED = bytes(10) + b"\xff\xff"
# the synthesised outer headers' constant bytes (IPv4: version/IHL, TTL 64, UDP; IPv6: version, UDP,
# hop limit 64); lengths, addresses and ports are written per datagram, checksums are left 0
_V4_TEMPLATE = np.frombuffer(b"\x45" + bytes(7) + b"\x40\x11" + bytes(18), np.uint8)
_V6_TEMPLATE = np.frombuffer(b"\x60" + bytes(5) + b"\x11\x40" + bytes(40), np.uint8)
_LOW32 = np.uint64(0xFFFFFFFF)
_MAPPED_WORD = np.uint64(0xFFFF0000)  # bytes 8-11 of ::ffff:a.b.c.d (00 00 ff ff) read as a native word


def _is_v4(a64: np.ndarray) -> np.ndarray:
    """Which 16-byte addresses ([n, 2] native uint64 words) are IPv4 (::ffff:a.b.c.d)."""
    return (a64[:, 0] == 0) & ((a64[:, 1] & _LOW32) == _MAPPED_WORD)


def _target_key(addr16: np.ndarray) -> str:
    """A destination address (16 bytes, IPv4 as ::ffff:a.b.c.d) as `targets` names it."""
    return str(_plain(str(ipaddress.IPv6Address(addr16.tobytes()))))


def _plain(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A sender's address; an IPv4 sender on a dual-stack socket (::ffff:a.b.c.d) as IPv4."""
    addr = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _raise_priority(steps: int) -> str:
    """Lower the calling thread's nice value by `steps` (at most to -20): "nice N" when done, else why not."""
    try:
        tid = threading.get_native_id()
        nice = max(-20, os.getpriority(os.PRIO_PROCESS, tid) - steps)
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except PermissionError:
        return "not permitted (root or CAP_SYS_NICE)"
    except (OSError, AttributeError) as exc:  # (no per-thread priorities here)
        return f"not available ({exc.__class__.__name__})"
    return f"nice {nice}"


def _proc_drops(inodes: set[int]) -> int:
    """The `drops` column of /proc/net/udp and udp6 for these socket inodes (0 where unreadable)."""
    total = 0
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as fh:
                next(fh, None)
                for line in fh:
                    f = line.split()
                    if len(f) >= 13 and int(f[9]) in inodes:
                        total += int(f[12])
        except (OSError, ValueError):
            continue
    return total
