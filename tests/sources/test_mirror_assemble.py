"""The compiled assembly of a received slab (analyzer.sources._recv.assemble) against the numpy path
it replaces (MirrorSource._slab_batch_numpy): the same columns, counters and header bytes for the
same received slab. Loopback only."""

from __future__ import annotations

import dataclasses
import os
import selectors
import socket
import struct
from collections.abc import Iterator

import numpy as np
import pytest
from support.cmsg_helpers import cmsg_writer

from analyzer._native import source_function
from analyzer.sources import _mmsg, _recv
from analyzer.sources.mirror import HEADROOM, MirrorSource

pytestmark = pytest.mark.skipif(not _mmsg.available(), reason="recvmmsg is not available here")


@pytest.fixture
def senders() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def _datagram(i: int, size: int) -> bytes:
    return struct.pack("!II", 0x08000000, (i % 4096) << 8) + bytes([i % 251]) * size


def _slab(src: MirrorSource):  # type: ignore[no-untyped-def]
    """One slab received in the calling thread from what is queued in the source's sockets."""
    sel = selectors.DefaultSelector()
    for s in src._socks:
        sel.register(s, selectors.EVENT_READ)
    slab = src._slab()
    src._receive(slab, sel, 0.5, draining=True)
    sel.close()
    return slab


def _both(src: MirrorSource, slab, twin: MirrorSource):  # type: ignore[no-untyped-def]
    """The batch of `slab` made by the compiled path (src) and by the numpy path (twin, a copy of the
    slab's buffer): both batches, with their packets' bytes."""
    copy = dataclasses.replace(slab, buf=slab.buf.copy(), runs=list(slab.runs), spills=list(slab.spills))
    fast = src._slab_batch(slab)
    slow = twin._slab_batch_numpy(copy)
    return fast, slow


def _same(fast, slow) -> None:  # type: ignore[no-untyped-def]
    assert len(fast) == len(slow)
    for name in ("offset", "caplen", "wirelen", "ts_ns", "linktype"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and a.tolist() == b.tolist(), name
    assert [fast.packet(i) for i in range(len(fast))] == [slow.packet(i) for i in range(len(slow))]


def _twin(src: MirrorSource) -> MirrorSource:
    """A second source with the first's settings and sockets' names, for the numpy path's counters."""
    twin = object.__new__(MirrorSource)
    twin.__dict__.update(src.__dict__)
    twin.counters = dataclasses.replace(src.counters)
    twin.targets = dict(src.targets)
    twin._rxq_drops = dict(src._rxq_drops)
    return twin


@pytest.mark.parametrize(("bind", "family", "to"), [("127.0.0.1", socket.AF_INET, "127.0.0.1"),
                                                    ("::1", socket.AF_INET6, "::1"),
                                                    ("::", socket.AF_INET, "127.0.0.1"),
                                                    ("0.0.0.0", socket.AF_INET, "127.0.0.2")])
def test_the_compiled_assembly_makes_the_numpy_paths_batch(senders: list[socket.socket], bind: str, family: int,
                                                           to: str) -> None:
    """IPv4, IPv6 and IPv4 on a dual-stack socket (::ffff:a.b.c.d: an IPv4 outer header), sizes from 1
    byte to a full slot, two senders: the same offsets, lengths, times, header bytes, counters and
    per-target counts."""
    try:
        src = MirrorSource(bind=bind, ports=(0,), geneve_ports=(), receive_thread=False)
    except Exception as exc:
        pytest.skip(f"cannot bind {bind}: {exc}")
    for _ in range(2):
        s = socket.socket(family, socket.SOCK_DGRAM)
        senders.append(s)
    sizes = [1, 9, 100, 1400, 1990, 0, 555]
    for i in range(300):
        senders[i % 2].sendto(_datagram(i, sizes[i % len(sizes)]), (to, src.bound_ports[0]))
    slab = _slab(src)
    assert slab.k == 300 and not slab.spills
    twin = _twin(src)
    fast, slow = _both(src, slab, twin)
    _same(fast, slow)
    assert src.counters == twin.counters and src.targets == twin.targets and sum(src.targets.values()) == 300
    assert src._rxq_drops == twin._rxq_drops
    src.close()


def test_allow_and_kernel_drops_in_the_compiled_assembly(senders: list[socket.socket]) -> None:
    """A sender outside --allow is filtered out of the batch (and counted), and the SO_RXQ_OVFL count
    the kernel gives after a drop is noted for the socket, as the numpy path does."""
    if os.geteuid() != 0:
        pytest.skip("a receive buffer below net.core.rmem_default needs CAP_NET_ADMIN (SO_RCVBUFFORCE)")
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), allow=["127.0.0.2/32"], rcvbuf=65536,
                       receive_thread=False)
    stray, allowed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    senders += [stray, allowed]
    allowed.bind(("127.0.0.2", 0))
    for i in range(400):  # more than the buffer holds: the kernel drops some
        (allowed if i % 3 else stray).sendto(_datagram(i, 900), ("127.0.0.1", src.bound_ports[0]))
    total = 0
    for _ in range(2):  # then those queued after the drops: they carry the drop count (SO_RXQ_OVFL)
        slab = _slab(src)
        total += slab.k
        twin = _twin(src)
        filtered = src.counters.filtered
        fast, slow = _both(src, slab, twin)
        _same(fast, slow)
        assert src.counters == twin.counters and src._rxq_drops == twin._rxq_drops
        assert src.counters.filtered > filtered and len(fast) == slab.k - (src.counters.filtered - filtered)
        for i in range(30):
            (allowed if i % 3 else stray).sendto(_datagram(i, 900), ("127.0.0.1", src.bound_ports[0]))
    assert src.kernel_drops() > 0 and max(src._rxq_drops.values(), default=0) > 0
    src.close()


def test_the_kernel_reads_every_cmsg_layout_and_checks_its_bounds() -> None:
    """The plain Python source of the kernel (numpy's bounds checks) on hand-made messages: a
    timestamp then IP_PKTINFO, then the drop count in between, then IPV6_PKTINFO, then none (the
    call's time and the bound address), an AF_INET6 sender, and a cut datagram (MSG_TRUNC)."""
    k, stride = 5, 256
    hdr = np.zeros((k, 64), np.uint8)
    names = np.zeros((k, _mmsg.NAME), np.uint8)
    ctl = np.zeros((k, _mmsg.CTL), np.uint8)
    put = cmsg_writer(ctl)

    ts = struct.pack("<qq", 1_700_000_000, 5)
    v4 = struct.pack("<i", 1) + socket.inet_aton("10.0.0.9") + socket.inet_aton("10.0.0.7")
    v6 = socket.inet_pton(socket.AF_INET6, "fd00::7") + struct.pack("<i", 1)
    used = [put(0, put(0, 0, 1, 35, ts), 0, 8, v4),
            put(1, put(1, put(1, 0, 1, 35, ts), 1, 40, struct.pack("<I", 12)), 0, 8, v4),
            put(2, put(2, 0, 1, 35, ts), 41, 50, v6), 0, put(4, 0, 1, 35, ts)]
    h = hdr.view("<u8")
    for j in range(k):
        h[j, _recv.H_CONTROLLEN // 8] = used[j]
        h[j, _recv.H_LEN // 8] = 100 + j  # len: the low word of the last 8 bytes
        names[j, 0:2] = (2, 0)
        names[j, 2:4] = (0x12, 0x34)
        names[j, 4:8] = (192, 0, 2, j)
    names[2, 0:2] = (10, 0)
    names[2, 8:24] = np.frombuffer(socket.inet_pton(socket.AF_INET6, "fd00::1"), np.uint8)
    h[4, _recv.H_FLAGS // 8] = _recv.MSG_TRUNC
    local16 = np.frombuffer(bytes(10) + b"\xff\xff" + socket.inet_aton("127.0.0.1"), np.uint8).copy()
    buf = np.zeros(k * stride, np.uint8)
    out = dict(length=np.empty(k, np.int64), start=np.empty(k, np.int64), caplen=np.empty(k, np.int32),
               wirelen=np.empty(k, np.int32), ts=np.empty(k, np.int64), drops=np.empty(k, np.int64),
               src=np.empty((k, 16), np.uint8), dst=np.empty((k, 16), np.uint8), trunc=np.empty(k, np.bool_))
    call_ns = np.arange(k, dtype=np.int64) + 77
    fn = source_function(_recv, "assemble")
    longest, cut, same = fn(hdr, names, ctl, call_ns, np.full(k, 4789, np.int64), k, stride, local16, buf,
                            *out.values())
    assert (longest, cut, same) == (104, 1, 0)
    assert out["ts"].tolist() == [1_700_000_000_000_000_005] * 3 + [80, 1_700_000_000_000_000_005]
    assert out["drops"].tolist() == [-1, 12, -1, -1, -1]
    assert [socket.inet_ntop(socket.AF_INET6, bytes(d)) for d in out["dst"]] == (
        ["::ffff:10.0.0.7"] * 2 + ["fd00::7"] + ["::ffff:127.0.0.1"] * 2)
    assert out["start"].tolist() == [HEADROOM - 28, stride + HEADROOM - 28, 2 * stride, 3 * stride + HEADROOM - 28,
                                     4 * stride + HEADROOM - 28]
    assert out["caplen"].tolist() == [128, 129, 150, 131, 132]
    assert out["wirelen"].tolist() == [128, 129, 150, 131, 28 + 65536] and out["trunc"].tolist() == [0, 0, 0, 0, 1]
    first = bytes(buf[:128][HEADROOM - 28:HEADROOM])
    assert first == (b"\x45\x00" + struct.pack("!H", 128) + bytes(4) + b"\x40\x11\x00\x00" + bytes([192, 0, 2, 0])
                     + socket.inet_aton("10.0.0.7") + struct.pack("!HHHH", 0x1234, 4789, 108, 0))
    six = bytes(buf[2 * stride:2 * stride + 48])
    assert six == (b"\x60\x00\x00\x00" + struct.pack("!H", 110) + b"\x11\x40"
                   + socket.inet_pton(socket.AF_INET6, "fd00::1") + socket.inet_pton(socket.AF_INET6, "fd00::7")
                   + struct.pack("!HHHH", 0x1234, 4789, 110, 0))
