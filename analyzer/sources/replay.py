"""Replay a capture as an AWS VPC Traffic Mirroring stream: each packet becomes one VXLAN datagram
(UDP to HOST:PORT, an 8-byte VXLAN header with the VNI, then the packet as an Ethernet frame), sent
packet for packet in capture order, paced by a fixed rate or by the capture's own timestamps.

Packets of other link types get an Ethernet header made for them (raw IPv4/IPv6, Linux cooked
SLL/SLL2, BSD loopback); link types with no Ethernet equivalent (802.11, NFLOG, PPP) are skipped
and counted. For tests, demos and load tests of `intransit listen` (and of any mirror target).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from analyzer.errors import UsageError
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

__all__ = ["ReplayStats", "ethernet_frames", "parse_target", "replay"]

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
           stop: threading.Event | None = None, sndbuf: int = 4 << 20) -> ReplayStats:
    """Send the capture at `path` to host:port as VXLAN (see the module docstring). `rate`: packets
    per second; `speed`: a multiple of the capture's own pace (1 = as captured); neither: as fast as
    the socket takes them. `stop` ends it early."""
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
    send = sock.send
    clock = time.perf_counter
    t0 = -1.0  # set at the first packet: opening the capture (and the kernels) is not sending time
    first_ts: int | None = None
    k = 0
    try:
        for batch in read_capture(path):
            ts = batch.ts_ns
            for i, frame in enumerate(ethernet_frames(batch)):
                stats.packets += 1
                if isinstance(frame, str):
                    stats.skipped[frame] = stats.skipped.get(frame, 0) + 1
                    continue
                if t0 < 0:
                    t0 = clock()
                if rate is not None or speed is not None:
                    if rate is not None:
                        due = t0 + k / rate
                    else:
                        t = int(ts[i])
                        if first_ts is None:
                            first_ts = t
                        due = t0 + max(0, t - first_ts) / 1e9 / speed  # type: ignore[operator]
                    ahead = due - clock()
                    if ahead > 0.0005:  # sleep only when well ahead: a sleep costs ~60 us here
                        if stop is None:
                            time.sleep(ahead)
                        elif stop.wait(ahead):
                            return stats
                if stop is not None and stop.is_set():
                    return stats
                data = header + frame
                while True:
                    try:
                        send(data)
                    except ConnectionRefusedError:  # an earlier datagram was refused; this one was not sent
                        stats.refused += 1
                        continue
                    except BlockingIOError:
                        time.sleep(0.0001)
                        continue
                    except OSError as exc:
                        if exc.errno == 105:  # ENOBUFS: the device queue is full; wait and retry
                            time.sleep(0.0001)
                            continue
                        raise
                    break
                k += 1
                stats.sent += 1
                stats.sent_bytes += len(data)
    finally:
        stats.seconds = clock() - t0 if t0 >= 0 else 0.0
        sock.close()
    return stats
