"""Test helper: hand-built pcap / pcapng bytes (tests only).

scapy writes ordinary pcap and simple pcapng files; these builders cover what it cannot:
big-endian files, nanosecond pcap, pcapng with several sections and interfaces, if_tsresol and
if_tsoffset options, Simple and obsolete Packet Blocks, unknown blocks. Packets are raw frame bytes
(`bytes(scapy_packet)` or anything else).
"""

from __future__ import annotations

import itertools
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
    opts = [(2, b"eth0"), *extra]  # if_name first: the parser must walk past it
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
    return block(btype, bytes((i * 7) & 0xFF for i in range(size)), order)


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


# ----------------------------------------------------------------------------- scapy conveniences
MAC_A = "02:00:00:00:00:01"
MAC_B = "02:00:00:00:00:02"


def eth(**fields):  # type: ignore[no-untyped-def]
    """An Ethernet header with fixed addresses (scapy would otherwise look them up: slow, noisy)."""
    from scapy.layers.l2 import Ether

    return Ether(src=MAC_A, dst=MAC_B, **fields)


def write_packets(path, packets, times=None, *, start: float = 1_700_000_000.0, step: float = 0.01,  # type: ignore[no-untyped-def]
                  linktype: int | None = None):
    """Write scapy packets with wrpcap; times (seconds) default to start + i * step."""
    from scapy.utils import wrpcap

    for i, p in enumerate(packets):
        p.time = times[i] if times is not None else start + i * step
    if linktype is None:
        wrpcap(str(path), packets)
    else:
        wrpcap(str(path), packets, linktype=linktype)
    return path


def batch_of(frames: Sequence[bytes], linktype: int | Sequence[int] = ETHERNET, *,
             wirelen: Sequence[int] | None = None, ts: Sequence[int] | None = None):  # type: ignore[no-untyped-def]
    """A PacketBatch holding `frames` back to back (no file involved)."""
    import numpy as np

    from analyzer.sources.batch import PacketBatch

    n = len(frames)
    buf = np.frombuffer(b"".join(frames), np.uint8).copy()
    lens = np.array([len(f) for f in frames], np.int32)
    off = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if n else np.zeros(0, np.int64)
    lts = np.full(n, linktype, np.int16) if isinstance(linktype, int) else np.array(linktype, np.int16)
    return PacketBatch(
        source="test", buf=buf, offset=off, caplen=lens,
        wirelen=np.array(wirelen, np.int32) if wirelen is not None else lens.copy(),
        ts_ns=np.array(ts, np.int64) if ts is not None else np.arange(n, dtype=np.int64) * 1_000_000,
        linktype=lts,
    )


def decoded_rows(frames: Sequence[bytes], linktype: int | Sequence[int] = ETHERNET, **kw: object):  # type: ignore[no-untyped-def]
    """decode() + decoded_frame() of raw frames: one row per packet."""
    from analyzer.decode import DecodeOptions, decode, decoded_frame

    wirelen = kw.pop("wirelen", None)
    opts = DecodeOptions(**kw) if kw else None  # type: ignore[arg-type]
    return decoded_frame(decode(batch_of(frames, linktype, wirelen=wirelen), opts))  # type: ignore[arg-type]


def table_run(path, **options):  # type: ignore[no-untyped-def]
    """Read a capture through decode into a FlowTable: (flows DataFrame, {uid: FlowPayload})."""
    import pandas as pd

    from analyzer.decode import decode
    from analyzer.flows.table import FlowOptions, FlowTable
    from analyzer.sources.readers import read_capture

    table = FlowTable(FlowOptions(**options))
    ended = []
    for batch in read_capture(str(path)):
        ended += table.update(decode(batch))
    ended += table.flush()
    frames = [pd.DataFrame(e.columns) for e in ended if len(e)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(df):
        df = df.sort_values(["ts_start", "uid"], kind="stable", ignore_index=True)
    payloads = {p.uid: p for e in ended for p in e.payloads}
    return df, payloads


def tcp_session(client: bytes, server: bytes, *, dport: int, sport: int = 40000, cli: str = "10.0.0.1",
                srv: str = "10.0.0.2") -> list:  # type: ignore[type-arg]
    """Scapy packets of one complete TCP session: handshake, the client's bytes, the server's, FINs."""
    from scapy.layers.inet import IP, TCP

    c, s = 1000, 5000

    def pkt(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, ack: int, data: bytes = b""):  # type: ignore[no-untyped-def]
        return eth() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack) / data

    out = [pkt(cli, srv, sport, dport, "S", c, 0), pkt(srv, cli, dport, sport, "SA", s, c + 1),
           pkt(cli, srv, sport, dport, "A", c + 1, s + 1)]
    if client:
        out.append(pkt(cli, srv, sport, dport, "PA", c + 1, s + 1, client))
    if server:
        out.append(pkt(srv, cli, dport, sport, "PA", s + 1, c + 1 + len(client), server))
    cf, sf = c + 1 + len(client), s + 1 + len(server)
    out += [pkt(cli, srv, sport, dport, "FA", cf, sf), pkt(srv, cli, dport, sport, "FA", sf, cf + 1),
            pkt(cli, srv, sport, dport, "A", cf + 1, sf + 1)]
    return out
def pcap_records(path) -> tuple[bytes, list[bytes]]:  # type: ignore[no-untyped-def]
    """(file header, raw records with their 16-byte headers) of a classic pcap."""
    from pathlib import Path

    data = Path(path).read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, pos = [], 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from(order + "I", data, pos + 8)[0]
        out.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return data[:24], out


def write_rotated(path, out_dir, cuts: Sequence[int]) -> list:  # type: ignore[no-untyped-def]
    """Cut classic pcap `path` into rotated files before the packets numbered in `cuts` (as a
    capture rotated at those packets: each file has the header); returns the paths in order."""
    from pathlib import Path

    header, records = pcap_records(path)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(records))), len(records)]
    paths = []
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        p = Path(out_dir) / f"{Path(path).stem}.{k:03d}.pcap"
        p.write_bytes(header + b"".join(records[a:b]))
        paths.append(p)
    return paths
