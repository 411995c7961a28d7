"""Test helper: hand-built pcap / pcapng bytes (tests only).

scapy writes ordinary pcap and simple pcapng files; these builders cover what it cannot:
big-endian files, nanosecond pcap, pcapng with several sections and interfaces, if_tsresol and
if_tsoffset options, Simple and obsolete Packet Blocks, unknown blocks. Packets are raw frame bytes
(`bytes(scapy_packet)` or anything else).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# link types
ETHERNET = 1
RAW = 101


def pcap_bytes(
    records: Iterable[tuple[int, bytes] | tuple[int, bytes, int]],
    *,
    linktype: int = ETHERNET,
    order: str = "<",
    nanos: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """A classic pcap file. records: (timestamp in ns, frame[, original length])."""
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    div = 1 if nanos else 1000
    for rec in records:
        ts, data = rec[0], rec[1]
        wire = rec[2] if len(rec) > 2 else len(data)  # type: ignore[misc]
        sec, frac = divmod(ts, 1_000_000_000)
        out.append(struct.pack(order + "IIII", sec, frac // div, len(data), wire) + data)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def options(opts: Sequence[tuple[int, bytes]], order: str) -> bytes:
    if not opts:
        return b""
    out = b"".join(struct.pack(order + "HH", code, len(v)) + _pad4(v) for code, v in opts)
    return out + struct.pack(order + "HH", 0, 0)


def block(btype: int, body: bytes, order: str) -> bytes:
    body = _pad4(body)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def shb(order: str = "<", opts: Sequence[tuple[int, bytes]] = ()) -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options(opts, order)
    return block(0x0A0D0D0A, body, order)


def idb(
    linktype: int,
    order: str = "<",
    *,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    snaplen: int = 0,
    extra: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    opts = [(2, b"eth0")] + list(extra)  # if_name first: the parser must walk past it
    if tsresol is not None:
        opts.append((9, bytes([tsresol])))
    if tsoffset is not None:
        opts.append((14, struct.pack(order + "q", tsoffset)))
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options(opts, order), order)


def epb(
    ifid: int,
    ticks: int,
    data: bytes,
    order: str = "<",
    *,
    wire: int | None = None,
    opts: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    wire = len(data) if wire is None else wire
    body = struct.pack(order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    return block(6, body + _pad4(data) + options(opts, order), order)


def spb(data: bytes, order: str = "<", *, wire: int | None = None) -> bytes:
    wire = len(data) if wire is None else wire
    return block(3, struct.pack(order + "I", wire) + _pad4(data), order)


def opb(ifid: int, ticks: int, data: bytes, order: str = "<", *, wire: int | None = None) -> bytes:
    """Obsolete Packet Block (type 2): 16-bit interface id and drops count."""
    wire = len(data) if wire is None else wire
    body = struct.pack(order + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    return block(2, body + _pad4(data), order)


def unknown_block(btype: int = 0x0BADCAFE, size: int = 20, order: str = "<") -> bytes:
    return block(btype, bytes(range(size % 256)) * (size // 256) + bytes(size % 256), order)


@dataclass
class Section:
    """One pcapng section, built up block by block."""

    order: str = "<"
    blocks: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blocks.append(shb(self.order))

    def interface(self, linktype: int, **kw: object) -> Section:
        self.blocks.append(idb(linktype, self.order, **kw))  # type: ignore[arg-type]
        return self

    def packet(self, ifid: int, ticks: int, data: bytes, **kw: object) -> Section:
        self.blocks.append(epb(ifid, ticks, data, self.order, **kw))  # type: ignore[arg-type]
        return self

    def raw(self, b: bytes) -> Section:
        self.blocks.append(b)
        return self

    def build(self) -> bytes:
        return b"".join(self.blocks)
