"""Replay a capture as an AWS VPC Traffic Mirroring stream: each packet becomes one VXLAN datagram
(UDP to HOST:PORT, an 8-byte VXLAN header with the VNI, then the packet as an Ethernet frame), sent
packet for packet in capture order, paced by a fixed rate or by the capture's own timestamps.

Packets of other link types get an Ethernet header made for them (raw IPv4/IPv6, Linux cooked
SLL/SLL2, BSD loopback); link types with no Ethernet equivalent (802.11, NFLOG, PPP) are skipped
and counted. For tests, demos and load tests of `intransit listen` (and of any mirror target).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from analyzer.errors import UsageError
from analyzer.sources import _mmsg
from analyzer.sources.batch import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_12,
    LINKTYPE_RAW_14,
    PacketBatch,
)
from analyzer.sources.readers import read_capture

__all__ = ["Pacer", "ReplayStats", "ethernet_frames", "parse_target", "replay", "send_all"]

_MACS = bytes.fromhex("020000000002" "020000000001")  # dst, src: locally administered
_ETH_V4 = _MACS + b"\x08\x00"
_ETH_V6 = _MACS + b"\x86\xdd"
_RAW = (LINKTYPE_RAW, LINKTYPE_RAW_12, LINKTYPE_RAW_14)


@dataclass(slots=True)
class ReplayStats:
    packets: int = 0  # read from the capture
    sent: int = 0
    sent_bytes: int = 0  # UDP payload bytes (VXLAN header + frame)
    refused: int = 0  # the kernel said the target refused (ICMP port unreachable): not delivered
    skipped: dict[str, int] = field(default_factory=dict)  # link types with no Ethernet form
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.sent / self.seconds if self.seconds > 0 else 0.0
        skipped = "".join(f"; {n} skipped ({why})" for why, n in self.skipped.items())
        refused = f"; {self.refused} refused by the target" if self.refused else ""
        return (f"sent {self.sent} of {self.packets} packets ({self.sent_bytes} bytes) in {self.seconds:.2f} s "
                f"({rate:,.0f} packets/s){refused}{skipped}")


def parse_target(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' -> (host, port); UsageError when not."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--to {text!r}: expected HOST:PORT (e.g. 10.0.0.5:4789 or [fd00::5]:4789)")
    return host.strip("[]"), int(port)


def ethernet_frames(batch: PacketBatch) -> Iterator[bytes | str]:
    """Each packet of `batch` as an Ethernet frame, or a string saying why it has none."""
    buf = batch.buf
    for i in range(len(batch)):
        o, n, lt = int(batch.offset[i]), int(batch.caplen[i]), int(batch.linktype[i])
        pkt = buf[o:o + n].tobytes()
        if lt == LINKTYPE_ETHERNET:
            yield pkt
        elif lt in _RAW or lt in (LINKTYPE_IPV4, LINKTYPE_IPV6):
            nib = pkt[0] >> 4 if pkt else 0
            if lt == LINKTYPE_IPV4 or (lt != LINKTYPE_IPV6 and nib == 4):
                yield _ETH_V4 + pkt
            elif nib == 6 or lt == LINKTYPE_IPV6:
                yield _ETH_V6 + pkt
            else:
                yield "raw packet that is not IP"
        elif lt == LINKTYPE_LINUX_SLL and n >= 16:
            yield _MACS + pkt[14:16] + pkt[16:]
        elif lt == LINKTYPE_LINUX_SLL2 and n >= 20:
            yield _MACS + pkt[0:2] + pkt[20:]
        elif lt in (LINKTYPE_NULL, LINKTYPE_LOOP) and n >= 5:
            nib = pkt[4] >> 4
            yield (_ETH_V4 if nib == 4 else _ETH_V6) + pkt[4:] if nib in (4, 6) else "loopback packet that is not IP"
        else:
            yield f"link type {lt}"


def _vxlan_header(vni: int) -> bytes:
    return struct.pack("!II", 0x08000000, (vni & 0xFFFFFF) << 8)


def replay(path: str, host: str, port: int, *, vni: int = 1, rate: float | None = None, speed: float | None = None,
           stop: threading.Event | None = None, sndbuf: int = 4 << 20, mmsg: bool | None = None) -> ReplayStats:
    """Send the capture at `path` to host:port as VXLAN (see the module docstring). `rate`: packets
    per second; `speed`: a multiple of the capture's own pace (1 = as captured); neither: as fast as
    the socket takes them. `stop` ends it early. `mmsg`: send with sendmmsg (None: where available).

    Each batch of the capture is made into datagrams before any of it is sent; they then go out in
    bursts of up to 1024 per sendmmsg call, as many as are due (a burst waits for up to 64 due
    datagrams, never more than 1 ms), so the pace holds at rates a per-datagram loop cannot reach."""
    if rate is not None and speed is not None:
        raise UsageError("give --rate or --speed, not both")
    if (rate is not None and rate <= 0) or (speed is not None and speed <= 0):
        raise UsageError("--rate and --speed must be above 0")
    if not 0 <= vni < 1 << 24:
        raise UsageError(f"--vni {vni}: a VNI is 24 bits (0-16777215)")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--to {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(info[0], socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.connect(info[4])
    header = _vxlan_header(vni)
    stats = ReplayStats()
    use_mmsg = _mmsg.available() if mmsg is None else mmsg
    clock = time.perf_counter
    pacer = Pacer(rate=rate, speed=speed, stop=stop)
    try:
        for batch in read_capture(path):
            data: list[bytes] = []
            keep: list[int] = []
            for i, frame in enumerate(ethernet_frames(batch)):
                stats.packets += 1
                if isinstance(frame, str):
                    stats.skipped[frame] = stats.skipped.get(frame, 0) + 1
                    continue
                data.append(header + frame)
                keep.append(i)
            if not data:
                continue
            pacer.start()
            due = pacer.due(len(data), batch.ts_ns[keep] if keep else None)
            if not send_all(sock, data, due, stats, pacer, use_mmsg):
                break
    finally:
        stats.seconds = clock() - pacer.t0 if pacer.t0 >= 0 else 0.0
        sock.close()
    return stats


class Pacer:
    """When each datagram is due (perf_counter seconds): k/rate after the first, or the capture's own
    time between packets divided by `speed`; None for each: as fast as the socket takes them."""

    def __init__(self, rate: float | None = None, speed: float | None = None,
                 stop: threading.Event | None = None) -> None:
        self.rate, self.speed, self.stop = rate, speed, stop
        self.t0 = -1.0  # set at the first packet: opening the capture (and the kernels) is not sending time
        self.first_ts: int | None = None
        self.k = 0

    def start(self) -> None:
        if self.t0 < 0:
            self.t0 = time.perf_counter()

    def due(self, n: int, ts: np.ndarray | None) -> np.ndarray | None:
        k0, self.k = self.k, self.k + n
        if self.rate is not None:
            return self.t0 + np.arange(k0, k0 + n, dtype=np.float64) / self.rate
        if self.speed is not None and ts is not None and len(ts):
            if self.first_ts is None:
                self.first_ts = int(ts[0])
            return self.t0 + np.maximum(0, ts.astype(np.int64) - self.first_ts) / 1e9 / self.speed
        return None

    def wait(self, seconds: float) -> bool:
        """Sleep; False when stopped meanwhile."""
        if self.stop is None:
            time.sleep(seconds)
            return True
        return not self.stop.wait(seconds)

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


BURST = 64  # datagrams a paced burst waits for ...
BURST_WAIT = 0.001  # ... at most this long after the first is due


def send_all(sock: socket.socket, data: list[bytes], due: np.ndarray | None, stats: ReplayStats, pacer: Pacer,
             use_mmsg: bool) -> bool:
    """Send `data` on the connected `sock`, datagram i not before due[i]; False when stopped."""
    ring = _mmsg.SendRing(data) if use_mmsg else None
    lens = np.fromiter(map(len, data), np.int64, len(data))
    clock = time.perf_counter
    fd = sock.fileno()
    n, i = len(data), 0
    while i < n:
        if pacer.stopped:
            return False
        upto = n
        if due is not None:
            now = clock()
            upto = int(np.searchsorted(due, now, "right"))
            if upto - i < BURST and upto < n:  # wait for a burst, not past BURST_WAIT after the first due
                wake = min(float(due[min(i + BURST - 1, n - 1)]), float(due[i]) + BURST_WAIT) - now
                if wake > 0.0001:
                    if not pacer.wait(wake):
                        return False
                    continue
            if upto <= i:
                continue
        if ring is not None:
            sent = ring.send(fd, i, upto - i)
            err = -sent if sent < 0 else 0
            sent = max(sent, 0)
        else:
            sent, err = _send_each(sock, data, i, upto)
        if sent:
            stats.sent += sent
            stats.sent_bytes += int(lens[i:i + sent].sum())
            i += sent
        if err == errno.ECONNREFUSED:  # an earlier datagram was refused; this one was not sent: again
            stats.refused += 1
        elif err in (errno.EAGAIN, errno.ENOBUFS, errno.EINTR):  # the device queue is full: wait, retry
            time.sleep(0.0001)
        elif err:
            raise OSError(err, os.strerror(err))
    return True


def _send_each(sock: socket.socket, data: list[bytes], i: int, upto: int) -> tuple[int, int]:
    """The fallback of sendmmsg: (datagrams sent from i, the errno that stopped it or 0)."""
    send = sock.send
    k = i
    try:
        while k < upto:
            send(data[k])
            k += 1
    except OSError as exc:
        return k - i, exc.errno or errno.EIO
    return k - i, 0
