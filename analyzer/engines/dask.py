"""The Dask engine: the captures are partitioned and analysed on a Dask cluster, with the serial answer.

Partitions: one per capture file, and a large classic pcap is cut into byte ranges at record
boundaries, a large pcapng at Enhanced Packet Blocks, each range carrying the Section Header and
Interface Description Blocks in force there (the blocks are walked once, with the reader's own
compiled walker). Compressed captures and captures with a link type the decoder does not know are
one partition each.

Results come back as Arrow IPC streams, through a spool directory on the driver's host when the
worker sees it (mapped by the driver, no copy), else as the task's result (`Spool`, `pack`).

Why the answer is exactly the serial engine's (`SerialEngine`: every packet through one table):

1. A flow table's flows of one key (5-tuple, protocol, tunnel) depend only on that key's packets,
   the capture clock and the table's size, as long as time goes forwards: idle, active and
   close-delay ends are decided at the key's next packet (the kernel judges the close delay as the
   expiry scan does, so when scans run does not matter), the client/server orientation, TCP state,
   reassembly and payload prefix are per flow, and the uid is made from the Community ID, the
   first packet's time and the tunnel.
2. Pass 1 (parallel): every partition runs the normal flow table and dissection on its packets
   from an empty table and returns its ended flows (columns and facts, no payload) with a hash of
   each flow's key and its first/last packet times.
3. A key's packets in partition k continue an earlier flow only if its first packet in k comes no
   later than the idle timeout after its last packet in the partitions before (otherwise the serial
   table ends that flow at this packet and starts afresh, exactly as the partition did). The driver
   finds those keys ("boundary keys") from the pass-1 times alone; for each, the partitions that
   are chained that way form a segment.
4. Pass 2: the partitions of a segment are read again in parallel and give back only the packets
   of their boundary keys; one task feeds them, in order, through one flow table and dissects the
   flows: those are the serial flows of these keys. Their pass-1 flows are dropped.
5. The driver feeds every kept flow and its facts to the collector (`Collector.add(dissected=)`),
   which builds the frames as in a serial run (rows of Dedup frames keep the earliest flow's row).

Where (1) does not hold the engine does not guess: time going backwards in or between partitions,
IP fragments split from their first fragment by partitioning (the fragment table is shared), or
more distinct keys than --max-flows (the table could evict) -> the whole run is repeated by the
serial engine in the driver (exact, not faster; `DaskEngine.notes` says why). Sources that are
not files (standard input, a mirror socket) are read by the serial engine too.

Outputs that stay distributed (`DaskEngine(output="dataframe")`: dask.dataframe collections;
`output=Dataset(path)`: a Parquet dataset written by the workers, by date and vantage): the results
stay on the workers and only their summaries come to the driver (engines.dask_output).

Memory per worker: one flow table (bounded by max_flows and the payload budget) and the ended
flows of its partition (columns and facts, no payloads). A lost worker's tasks are re-run by the
scheduler (the tasks are pure functions of the partition).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer._gc import paced_gc
from analyzer.errors import CaptureError, UsageError
from analyzer.sources.base import CaptureFile, SkippedPath
from analyzer.sources.batch import SUPPORTED_LINKTYPES, PacketBatch, Problem

if TYPE_CHECKING:
    from analyzer.flows.table import EndedFlows, FlowTable
    from analyzer.pipeline import Analysis, Collector, Options, Plan
    from analyzer.sources.base import Source

__all__ = ["DaskEngine", "Partition", "partition_sources"]

# A capture is cut when it is larger than this and than 1.5 x its share of the work.
MIN_PARTITION_BYTES = 64 << 20
_WALK_CHUNK = 8 << 20  # bytes of record headers walked at once when cutting a pcap
# The local cluster's workers without the statistical profiler (a sample every 10 ms: measured here
# as ~0.4 CPU-s per worker per 200k-packet partition pair on a contended 2-core machine) and with a
# slower event-loop health tick, system monitor and memory monitor (idle worker CPU measured 6.4 ->
# 2.6 ms per second; the memory limits still hold, checked each second instead of each 100 ms): the
# tasks are long and CPU-bound; the dashboard still works. The nanny's MALLOC_TRIM_THRESHOLD_=65536
# is left out of the workers' environment: it turns glibc's every large allocation (numpy batches,
# the flow table's pools) into a fresh mmap, faulted in page by page, where the serial engine's
# process reuses freed memory (glibc's default, which it keeps).
QUIET_WORKERS: dict[str, object] = {
    "distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s", "distributed.worker.memory.monitor-interval": "1s",
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
}
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": False, b"\xa1\xb2\xc3\xd4": True, b"\x4d\x3c\xb2\xa1": False,
               b"\xa1\xb2\x3c\x4d": True}  # magic -> big-endian (swap)


# ------------------------------------------------------------------------------------------ partitions
@dataclass(frozen=True, slots=True)
class Partition:
    """Some packets of one capture: the whole file, or the records or blocks [start, end) of an
    uncompressed pcap or pcapng."""

    index: int  # reading order of the whole run
    source: int  # index of its capture among the run's sources
    path: str
    start: int | None = None  # byte range (None: the whole file, read as the serial engine reads it)
    end: int | None = None
    first_index: int = 0  # packets of the file before `start`
    header: bytes = b""  # given to a range's reader before its bytes: the pcap file header, or the
    # pcapng Section Header and Interface Description Blocks in force at `start`
    pcapng: bool = False

    @property
    def is_range(self) -> bool:
        return self.start is not None


def partition_sources(sources: Sequence[Source], workers: int, min_bytes: int = MIN_PARTITION_BYTES,
                      pieces: int | None = None) -> list[Partition]:
    """Partitions of the CaptureFile sources, in reading order. An uncompressed pcap or pcapng is
    cut into byte ranges when it is larger than `min_bytes` and than 1.5 x an equal share of the
    run (total / (2 x workers)); `pieces` forces a number of ranges per pcap (tests)."""
    files = [(i, s) for i, s in enumerate(sources) if isinstance(s, CaptureFile)]
    sizes = {i: _size(s.path) for i, s in files}
    total = sum(sizes.values())
    share = max(min_bytes, total // max(1, 2 * workers))
    out: list[Partition] = []
    for i, s in files:
        n = pieces if pieces is not None else (sizes[i] // share if sizes[i] > 1.5 * share else 1)
        kind = _kind(s.path) if n > 1 else None
        if kind == "pcap":
            cuts = _pcap_cuts(s.path, n)
            if cuts:
                header, bounds = cuts
                for start, end, first in bounds:
                    out.append(Partition(len(out), i, s.path, start, end, first, header))
                continue
        elif kind == "pcapng":
            ng = _pcapng_cuts(s.path, n)
            if ng:
                for start, end, first, header in ng:
                    out.append(Partition(len(out), i, s.path, start, end, first, header, pcapng=True))
                continue
        out.append(Partition(len(out), i, s.path))
    return out


def _kind(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        return None
    return "pcap" if magic in PCAP_MAGICS else "pcapng" if magic == b"\x0a\x0d\x0d\x0a" else None


def _size(path: str) -> int:
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return st.st_size if os.path.isfile(path) else 0


def _pcap_cuts(path: str, pieces: int) -> tuple[bytes, list[tuple[int, int, int]]] | None:
    """(header, [(start, end, packets before start)]): `pieces` byte ranges of nearly equal size,
    cut at record starts found by walking every record header from the first. None when the file
    is not a plain classic pcap of a known link type (it is read whole). A damaged record ends the
    walk: the last range runs to the end of the file, so its reader meets the damage as the serial
    reader does."""
    from analyzer.sources import _walk
    from analyzer.sources.readers import MAX_RECORD

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with f:
        header = f.read(24)
        if len(header) < 24 or header[:4] not in PCAP_MAGICS:
            return None
        swap = PCAP_MAGICS[header[:4]]
        snaplen, linktype = struct.unpack((">" if swap else "<") + "II", header[16:24])
        size = os.fstat(f.fileno()).st_size
        if (linktype & 0xFFFF) not in SUPPORTED_LINKTYPES or size <= 24:
            return None
        max_caplen = min(max(snaplen, 262144), MAX_RECORD)
        targets = [24 + (size - 24) * k // pieces for k in range(1, pieces)]
        rows = 1 << 16
        off = np.empty(rows, np.int64)
        cap, wire = np.empty(rows, np.int32), np.empty(rows, np.int32)
        sec, frac = np.empty(rows, np.uint32), np.empty(rows, np.uint32)
        aux = np.zeros(2, np.int64)
        base, seen, t = 24, 0, 0  # file offset of buf[0], records walked, next target
        buf = np.zeros(0, np.uint8)
        pos = 0
        cuts: list[tuple[int, int]] = []  # (record start, packets before it)
        while t < len(targets):
            n, pos, status = _walk.walk_pcap(buf, pos, len(buf), swap, max_caplen, off, cap, wire, sec, frac, aux)
            starts = base + off[:n] - 16
            while t < len(targets) and n and starts[-1] >= targets[t]:
                k = int(np.searchsorted(starts, targets[t]))
                cuts.append((int(starts[k]), seen + k))
                t += 1
            seen += n
            if status == _walk.NEED_MORE:
                more = f.read(max(_WALK_CHUNK, 16 + int(MAX_RECORD)) if len(buf) - pos >= 16 else _WALK_CHUNK)
                if not more:
                    break  # end of file (a truncated last record is the last range's to report)
                buf = np.concatenate([buf[pos:], np.frombuffer(more, np.uint8)])
                base += pos
                pos = 0
            elif status != _walk.FULL:
                break  # damage: the rest of the file is the last range
    cuts = [c for j, c in enumerate(cuts) if j == 0 or c[0] > cuts[j - 1][0]]
    if not cuts:
        return None
    begins = [(24, 0), *cuts]
    bounds = [(b, begins[j + 1][0] if j + 1 < len(begins) else size, first) for j, (b, first) in enumerate(begins)]
    return header, bounds


def _pcapng_cuts(path: str, pieces: int) -> list[tuple[int, int, int, bytes]] | None:
    """[(start, end, packets before start, header)]: `pieces` byte ranges of a pcapng file of nearly
    equal size. The first runs from the file's start; each other starts at an Enhanced Packet Block
    with a time (a Simple Packet Block takes its time from the packet before it, which another
    range would not have) on a described interface, and its header is the Section Header Block and
    the Interface Description Blocks of that section before it (interface ids are per section, and
    only the linktype, resolution and offset of an interface reach the packets). The blocks are
    walked with the reader's compiled walker; control blocks are read here. None (read whole) when
    the file is damaged before a cut was found, or an interface has a link type the decoder does
    not know (each range would report it again)."""
    from analyzer.sources import _walk
    from analyzer.sources.readers import MAX_RECORD, _linktype16, _parse_idb, _ticks_to_ns

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        targets = [size * k // pieces for k in range(1, pieces)]
        rows = 1 << 16
        off = np.empty(rows, np.int64)
        cap, wire = np.empty(rows, np.int32), np.empty(rows, np.int32)
        tshi, tslo, ifid = np.empty(rows, np.uint32), np.empty(rows, np.uint32), np.empty(rows, np.uint32)
        aux = np.zeros(2, np.int64)
        buf = np.zeros(0, np.uint8)
        base, pos, seen, t = 0, 0, 0, 0
        swap, order = False, "<"
        shb = b""
        idbs: list[bytes] = []
        # Decryption Secrets Blocks seen so far (the walker stops at them too): every later range carries
        # them, so the TLS 1.3 / QUIC handshakes of its packets are decrypted as in a serial run
        dsbs: list[bytes] = []
        described: list[tuple[int, int, int, int]] = []
        cuts: list[tuple[int, int, bytes]] = []
        while t < len(targets):
            n, pos, status = _walk.walk_pcapng(buf, pos, len(buf), swap, MAX_RECORD, off, cap, wire, tshi, tslo,
                                               ifid, aux)
            starts = base + off[:n] - 28  # an EPB's block (the candidates; others are skipped below)
            while t < len(targets) and n and starts[-1] >= targets[t]:
                k = int(np.searchsorted(starts, targets[t]))
                while k < n:
                    at = int(off[k]) - 28
                    if (at >= 0 and struct.unpack_from(order + "I", buf.data, at)[0] == 6
                            and int(ifid[k]) < len(described) and not (tshi[k] == tslo[k] == 0xFFFFFFFF)):
                        _, _, res, tsoff = described[int(ifid[k])]
                        raw = np.array([(int(tshi[k]) << 32) | int(tslo[k])], np.uint64)
                        if _ticks_to_ns(raw, res, tsoff)[1] is None:
                            break
                    k += 1
                if k >= n:
                    break  # no packet to cut at in these rows: the next ones
                cuts.append((int(starts[k]), seen + k, shb + b"".join(idbs) + b"".join(dsbs)))
                while t < len(targets) and targets[t] <= starts[k]:
                    t += 1
            seen += n
            if status == _walk.CONTROL:
                if len(buf) - pos < 12:
                    status = _walk.NEED_MORE
                else:
                    btype = struct.unpack_from("<I", buf.data, pos)[0]
                    if btype == 0x0A0D0D0A:
                        bom = bytes(buf[pos + 8 : pos + 12])
                        if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                            break
                        swap = bom == b"\x1a\x2b\x3c\x4d"
                        order = ">" if swap else "<"
                    blen = struct.unpack_from(order + "I", buf.data, pos + 4)[0]
                    if blen < 12 or blen % 4 or blen > MAX_RECORD:
                        break
                    if pos + blen > len(buf):
                        status = _walk.NEED_MORE
                    else:
                        block = bytes(buf[pos : pos + blen])
                        if btype == 0x0A0D0D0A:
                            shb, idbs, described = block, [], []
                        elif btype == 0x0000000A:
                            dsbs.append(block)
                        else:
                            if len(block) < 20:
                                break
                            lt, snap, res, tsoff = _parse_idb(block[8:-4], order)
                            if _linktype16(lt) not in SUPPORTED_LINKTYPES:
                                return None
                            idbs.append(block)
                            described.append((lt, snap, res, tsoff))
                        pos += blen
                        continue
            if status == _walk.NEED_MORE:
                more = f.read(_WALK_CHUNK)
                if not more:
                    break
                buf = np.concatenate([buf[pos:], np.frombuffer(more, np.uint8)])
                base += pos
                pos = 0
            elif status != _walk.FULL:
                break  # damage: the rest of the file is the last range
    cuts = [c for j, c in enumerate(cuts) if c[0] > 0 and (j == 0 or c[0] > cuts[j - 1][0])]
    if not cuts:
        return None
    begins = [(0, 0, b""), *cuts]
    return [(b, begins[j + 1][0] if j + 1 < len(begins) else size, first, header)
            for j, (b, first, header) in enumerate(begins)]


class _Range:
    """A raw stream of a pcap's header followed by its bytes [start, end): a range reads as a pcap."""

    def __init__(self, path: str, header: bytes, start: int, end: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._f.seek(start)
        self._head = header
        self._left = end - start

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        got = self._f.readinto(memoryview(b)[:n])
        self._left -= got or 0
        return got or 0

    def close(self) -> None:
        self._f.close()


def _batches(part: Partition, name: str) -> Iterator[PacketBatch]:
    """The packet batches of a partition: a whole file as the serial engine reads it, a range with
    the same reader started at its first record (offsets in problems are file offsets)."""
    if not part.is_range:
        yield from CaptureFile(part.path).batches()
        return
    from analyzer.sources.readers import _ChunkReader, read_pcap, read_pcapng

    assert part.start is not None and part.end is not None
    stream = _Range(part.path, part.header, part.start, part.end)
    try:
        reader = _ChunkReader(stream, name)
        reader.base = part.start - len(part.header)  # the header stands in front of the range
        reader.refill(0)
        batches = read_pcapng(reader, name) if part.pcapng else read_pcap(reader, name, part.header)
        for batch in batches:
            batch.first_index += part.first_index
            yield batch
    finally:
        stream.close()


# ------------------------------------------------------------------------------------------ flow keys
_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    h = h ^ (v + _GOLD + (h << np.uint64(6)) + (h >> np.uint64(2)))
    h = (h ^ (h >> np.uint64(31))) * _M1
    return (h ^ (h >> np.uint64(29))) * _M2


def key_hash(ahi: np.ndarray, alo: np.ndarray, bhi: np.ndarray, blo: np.ndarray, pa: np.ndarray, pb: np.ndarray,
             proto: np.ndarray, vni: np.ndarray, tun: np.ndarray, gwep: np.ndarray) -> np.ndarray:
    """A 64-bit hash of flow keys as the flow table keys flows (canonical addresses and ports,
    protocol, VNI, tunnel kind, GWLB endpoint); the low byte is the protocol. Two keys sharing a
    hash are only treated alike (both re-run at a boundary), never merged: a collision costs work,
    not exactness."""
    u = np.uint64
    h = np.full(len(ahi), u(0x243F6A8885A308D3), u)
    for v in (ahi, alo, bhi, blo):
        h = _mix(h, np.asarray(v, u))
    ports = (np.asarray(pa, np.int64) << 24) | (np.asarray(pb, np.int64) << 8) | (np.asarray(proto, np.int64) & 0xFF)
    h = _mix(h, ports.astype(u))
    tunnel = ((np.asarray(vni, np.int64) + 1) & 0xFFFFFFFF) | ((np.asarray(tun, np.int64) & 3) << 32)
    h = _mix(h, tunnel.astype(u))
    h = _mix(h, np.asarray(gwep, u))
    return (h & ~u(0xFF)) | (np.asarray(proto, np.int64) & 0xFF).astype(u)


def _flow_hashes(R: np.ndarray, RU: np.ndarray) -> np.ndarray:
    from analyzer.flows import _kernel as K

    return key_hash(RU[:, K.RU_AHI], RU[:, K.RU_ALO], RU[:, K.RU_BHI], RU[:, K.RU_BLO], R[:, K.R_PORTA],
                    R[:, K.R_PORTB], R[:, K.R_PROTO], R[:, K.R_VNI], R[:, K.R_TUNBITS], RU[:, K.RU_GWEP])


def packet_hashes(cols: np.ndarray, ucols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hash, is a flow packet) of decoded packets, as `_flow_hashes` hashes their flows. Later IP
    fragments take their ports from the flow table's fragment table: never asked here (a run with
    such fragments in several partitions is read serially)."""
    from analyzer.decode import _kernel as D

    proto = cols[:, D.C_PROTO]
    sport, dport = cols[:, D.C_SPORT].copy(), cols[:, D.C_DPORT].copy()
    portless = (proto == 1) | (proto == 58) | (proto == 50)
    sport[portless] = 0
    dport[portless] = 0
    shi, slo, dhi, dlo = ucols[:, D.U_SHI], ucols[:, D.U_SLO], ucols[:, D.U_DHI], ucols[:, D.U_DLO]
    s_first = (shi < dhi) | ((shi == dhi) & ((slo < dlo) | ((slo == dlo) & (sport <= dport))))
    h = key_hash(np.where(s_first, shi, dhi), np.where(s_first, slo, dlo), np.where(s_first, dhi, shi),
                 np.where(s_first, dlo, slo), np.where(s_first, sport, dport), np.where(s_first, dport, sport),
                 proto, cols[:, D.C_VNI], cols[:, D.C_TUN], ucols[:, D.U_GWEP])
    is_flow = (cols[:, D.C_STATUS] != D.ST_NOT_IP) & (cols[:, D.C_IPVER] != 0)
    return h, is_flow


def _keyed_table(options: Any) -> FlowTable:
    """A FlowTable whose exports also carry each flow's key hash (column `_key`, dropped before the
    collector sees the columns)."""
    from analyzer.flows import _kernel as K
    from analyzer.flows.table import FlowTable

    class KeyedTable(FlowTable):
        def _export(self) -> EndedFlows:
            idx = self.ENDED[: int(self.G[K.G_NENDED])]
            keys = _flow_hashes(self.R[idx], self.RU[idx])
            ended = super()._export()
            ended.columns["_key"] = keys
            return ended

    return KeyedTable(options)


# ------------------------------------------------------------------------------------------ worker side
@dataclass(slots=True)
class PartResult:
    """What a partition's first pass (or the boundary task) gives back to the driver: its frames as
    Arrow chunks made on the worker (the flows with a `_key` column, the key hash as int64), the
    rows of Dedup frames per flow (merged in the driver), and what the sources frame needs."""

    index: int
    packets: int = 0
    not_ip: int = 0
    evicted: int = 0
    problems: list[Problem] = field(default_factory=list)
    error: CaptureError | None = None
    decode_anomalies: dict[str, int] = field(default_factory=dict)
    flow_chunks: list[dict[str, Any]] = field(default_factory=list)
    frames: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    packed: Packed | None = None  # flow_chunks and frames as Arrow IPC, on their way to the driver
    # FTP control flows' announcements, in the order made: (control uid, its start and end ns, the
    # ftp_data rows' host, port, protected): the data links are made again in the driver, across partitions
    announcements: list[tuple[str, int, int, list[tuple[object, object, bool]]]] = field(default_factory=list)
    merges: list[tuple[str, float, str, list[dict[str, object]]]] = field(default_factory=list)
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # per flow
    first: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # its first packet, ns
    last: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # its last packet, ns
    first_ts: int | None = None  # the partition's first packet's time (capture order), ns
    max_ts: int | None = None
    forwards: bool = True  # no packet earlier than one before it
    later_fragments: bool = False  # IP fragments after the first (ports from the fragment table)
    cpu: float = 0.0  # CPU seconds of the task's thread (the engine's accounting: `last_run`)


# ------------------------------------------------------------------------------------------ results as Arrow IPC
@dataclass(frozen=True, slots=True)
class Spool:
    """A directory of the driver's host where workers that can see it leave their results as Arrow
    IPC files, which the driver maps into memory: no copy through the Dask comms (measured here:
    ~0.45 CPU-s of the driver and ~0.3 of the workers per 80 MB of results sent as task results,
    against ~0.02 to write and map them). A worker knows it shares the directory when it sees the
    `token` file, whose random name only the driver knows; on another host (or when writing fails)
    the same IPC bytes travel as the task's result instead."""

    path: str
    token: str

    @staticmethod
    def make(base: str | None) -> Spool:
        import tempfile

        root = base or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)  # memory, not disk
        path = tempfile.mkdtemp(prefix="intransit-dask-", dir=root)
        token = f".driver-{os.urandom(8).hex()}"
        with open(os.path.join(path, token), "wb"):
            pass
        return Spool(path, token)

    def visible(self) -> bool:
        return os.path.exists(os.path.join(self.path, self.token))


@dataclass(slots=True)
class Packed:
    """A partition's frames as a sequence of Arrow IPC streams (one per chunk), in a spool file or
    in `data`; `index` is (frame, offset, length) of each stream ("flows": the flow chunks)."""

    index: list[tuple[str, int, int]]
    path: str | None = None
    data: Any = None  # a pyarrow Buffer, sent out of band by Dask's pickling


def _write_streams(sink: Any, chunks: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, int, int]]:
    import pyarrow as pa

    index = []
    for frame, chunk in chunks:
        start = sink.tell()
        batch = pa.RecordBatch.from_arrays(list(chunk.values()), names=list(chunk))
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        index.append((frame, start, sink.tell() - start))
    return index


def pack(result: PartResult, spool: Spool | None) -> PartResult:
    """The result's chunks into Arrow IPC (a spool file when the driver's spool is visible here)."""
    import pyarrow as pa

    chunks = [("flows", c) for c in result.flow_chunks]
    chunks += [(frame, c) for frame, cs in result.frames.items() for c in cs]
    result.flow_chunks, result.frames = [], {}
    if spool is not None and spool.visible():
        path = os.path.join(spool.path, f"part-{result.index}-{os.urandom(6).hex()}.arrows")
        try:
            with pa.OSFile(path, "wb") as f:
                result.packed = Packed(_write_streams(f, chunks), path=path)
            return result
        except OSError:  # the spool went away (the driver ended) or is full: in-band then
            with _suppress_oserror():
                os.unlink(path)
    out = pa.BufferOutputStream()
    index = _write_streams(out, chunks)
    result.packed = Packed(index, data=out.getvalue())
    return result


def unpack(result: PartResult) -> PartResult:
    """The driver's side of `pack`: the chunks as Arrow columns over the mapped file (no copy);
    the file is unlinked at once (the mapping keeps its pages until the columns are freed)."""
    import pyarrow as pa

    packed, result.packed = result.packed, None
    if packed is None:
        return result
    if packed.path is not None:
        with pa.memory_map(packed.path) as f:
            data = f.read_buffer()
        with _suppress_oserror():
            os.unlink(packed.path)
    else:
        data = packed.data
    for frame, start, length in packed.index:
        batch = pa.ipc.open_stream(data.slice(start, length)).read_next_batch()
        chunk = dict(zip(batch.schema.names, batch.columns, strict=True))
        if frame == "flows":
            result.flow_chunks.append(chunk)
        else:
            result.frames.setdefault(frame, []).append(chunk)
    return result


def _suppress_oserror() -> Any:
    from contextlib import suppress

    return suppress(OSError)


_READY = threading.Lock()
_KERNELS: list[str] = []


def prepare_worker() -> str:
    """Find (or build) the ahead-of-time compiled kernels in this process, once: the first task on
    a fresh worker would otherwise pay numba's compilation (`analyzer.warm_up`)."""
    with _READY:
        if not _KERNELS:
            from analyzer import _native
            from analyzer._warm import warm_up

            _KERNELS.append("aot" if _native._find_aot() is not None else warm_up())
        return _KERNELS[0]


def _flow_options(options: Options) -> Any:
    flow_options = options.flows
    if not options.dissect.enabled:
        flow_options = replace(flow_options, collect_payload=False)
    return flow_options


class _Worker:
    """A partition's flow table and collector. The collector is the pipeline's, with the flows
    schema plus `_key` (always built: the driver needs every flow's key and uid to drop the flows a
    boundary re-run replaces), no stages (they run in the driver, on the kept flows), and the rows
    of Dedup frames kept per flow instead of merged."""

    def __init__(self, options: Options, plan: Plan, key: bytes | None, index: int) -> None:
        from analyzer.pipeline import Collector, Plan

        flows = {**plan.schemas["flows"], "_key": "Int64"}
        # the frames the driver's stages read (Plan.fed) are made here too, even where the run keeps
        # none of them: the driver feeds their rows to the stages (DaskEngine._take)
        local = Plan(plan.dissectors, (), {**plan.schemas, "flows": flows}, plan.specs,
                     plan.wanted | plan.fed | {"flows"},
                     groups=plan.groups)  # the driver's stages read those columns of the workers' facts
        merges: list[tuple[str, float, str, list[dict[str, object]]]] = []

        class PartCollector(Collector):
            def _merge(self, spec: Any, fp: Any, rows: list[dict[str, object]]) -> None:
                merges.append((spec.name, fp.ts_start, fp.uid, rows))

        self.out = PartResult(index, merges=merges)
        self.table = _keyed_table(_flow_options(options))
        self.collector = PartCollector(options, local, key=key)
        link = self.collector.ftp_link
        if link is not None:
            said = self.out.announcements
            announce = link.announce

            def recorded(control_uid: str, start_ns: int, end_ns: int,
                         rows: list[dict[str, object]]) -> list[dict[str, object]]:
                said.append((control_uid, start_ns, end_ns,
                             [(r.get("host"), r.get("port"), bool(r.get("protected"))) for r in rows]))
                return announce(control_uid, start_ns, end_ns, rows)

            link.announce = recorded  # type: ignore[method-assign]
        self.keys: list[np.ndarray] = []
        self.first: list[np.ndarray] = []
        self.last: list[np.ndarray] = []

    def fold(self, decoded: Any) -> None:
        for ended in self.table.feed(decoded):
            self._add(ended)

    def _add(self, ended: EndedFlows) -> None:
        cols = ended.columns
        keys = cols["_key"]
        cols["_key"] = keys.view(np.int64)
        self.keys.append(keys)
        self.first.append(np.asarray(cols["ts_start"], np.int64))
        self.last.append(np.asarray(cols["ts_end"], np.int64))
        self.collector.add(ended)

    def finish(self, start_order: bool = False) -> PartResult:
        """The partition's result; `start_order`: its flows as one chunk in the order the driver's
        output wants (FRAME_ORDER: ts_start, uid), sorted here, in parallel with the other
        partitions, instead of in the driver's sequential tail (see `in_start_order`)."""
        for ended in self.table.flush_iter():
            self._add(ended)
        c, out = self.collector, self.out
        c._fold_flows()
        for frame in list(c.rows):
            c._fold(frame)
        out.flow_chunks, out.frames = in_start_order(c.flow_chunks) if start_order else c.flow_chunks, c.frames
        if self.keys:
            out.keys, out.first, out.last = (np.concatenate(a) for a in (self.keys, self.first, self.last))
        out.not_ip = int(self.table.G[7])
        # flows the memory budget ended or cut count too: the serial table might not have done the same
        out.evicted = self.table.evicted + self.table.memory_evicted + (self.table.budget_lowered_to > 0)
        return out


def in_start_order(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flow chunks as one chunk sorted by FRAME_ORDER (stably, as the output sorts). Partitions are
    read in time order, so when no flow is re-run across a boundary the driver's output receives
    every partition's flows already in order, and its sort has nothing left to move
    (report.stream.SortedSink: an ordered input is passed on without sorting or merging)."""
    if not chunks:
        return chunks
    import pyarrow as pa

    from analyzer.pipeline import FRAME_ORDER
    from analyzer.report.stream import _array, _sorted

    names = list(chunks[0])
    table = pa.concat_tables([pa.Table.from_arrays([c[n] for n in names], names=names) for c in chunks])
    table = _sorted(table, FRAME_ORDER["flows"])
    return [{n: _array(table.column(n)) for n in names}]


# the collector paced as analyze() paces it for the serial engine: without, CPython's default thresholds
# rescan the heap ~700 times per million packets (callgrind, bench_200k: +45M of 3.16G instructions)
@paced_gc
def run_partition(part: Partition, name: str, options: Options, plan: Plan, key: bytes | None,
                  spool: Spool | None = None, keep: bool = False) -> PartResult:
    """Pass 1 of one partition: read, decode, flow table from empty, dissect, frames as Arrow chunks
    (packed for the driver; `keep`: left as they are, the result staying on the worker: `summary`)."""
    from analyzer.decode import ANOMALY_NAMES, decode
    from analyzer.decode import _kernel as D

    prepare_worker()
    cpu = time.thread_time()
    work = _Worker(options, plan, key, part.index)
    out = work.out
    try:
        for batch in _batches(part, name):
            out.problems.extend(batch.problems)
            if batch.secrets:  # pcapng Decryption Secrets Blocks: before the packets they decrypt
                work.collector.add_secrets(name, batch.secrets)
            if options.strict and any(p.fatal_in_strict for p in batch.problems):
                break
            if not len(batch):
                continue
            out.packets += len(batch)
            ts = batch.ts_ns
            running = np.maximum.accumulate(ts)
            if out.first_ts is None:
                out.first_ts = int(ts[0])
            elif int(ts.min()) < (out.max_ts or 0):
                out.forwards = False
            if bool((ts < running).any()):
                out.forwards = False
            out.max_ts = max(out.max_ts or int(running[-1]), int(running[-1]))
            decoded = decode(batch, options.decode)
            if (decoded.cols[:, D.C_FRAG] == 2).any():
                out.later_fragments = True
            anoms = decoded.cols[:, 1]
            if anoms.any():
                codes, counts = np.unique(anoms[anoms > 0], return_counts=True)
                for code, cnt in zip(codes.tolist(), counts.tolist(), strict=True):
                    kind = ANOMALY_NAMES.get(int(code), str(code))
                    out.decode_anomalies[kind] = out.decode_anomalies.get(kind, 0) + int(cnt)
            work.fold(decoded)
    except CaptureError as exc:
        out.error = exc
    done = work.finish() if keep else pack(work.finish(start_order=True), spool)
    done.cpu = time.thread_time() - cpu
    return done


def summary(result: PartResult) -> PartResult:
    """What the driver needs of a result kept on a worker: everything but its frames (flow keys and
    times, problems, counts, FTP announcements)."""
    return replace(result, flow_chunks=[], frames={}, merges=[])


@paced_gc
def boundary_packets(part: Partition, name: str, options: Options, wanted: np.ndarray) -> list[PacketBatch]:
    """Pass 2 of one partition: its packets of the keys `wanted` (sorted hashes), as small batches
    of the raw packets (decoded again where they are folded in)."""
    from analyzer.decode import decode

    prepare_worker()
    out: list[PacketBatch] = []
    secrets: list[bytes] = []
    try:
        for batch in _batches(part, name):
            secrets.extend(batch.secrets)  # the DSBs (kept in memory only, as in pass 1)
            if not len(batch):
                continue
            decoded = decode(batch, options.decode)
            h, is_flow = packet_hashes(decoded.cols, decoded.ucols)
            pick = np.flatnonzero(is_flow & _isin_sorted(h, wanted))
            if len(pick):
                out.append(_subset(batch, pick))
    except CaptureError:
        pass  # pass 1 saw the same error and reported it; the packets before it are here
    if secrets:  # ahead of the packets: a boundary flow's TLS 1.3 handshake is decrypted as in pass 1
        carrier = PacketBatch.empty(name)
        carrier.secrets = secrets
        out.insert(0, carrier)
    return out


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if not len(sorted_set):
        return np.zeros(len(values), np.bool_)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def _subset(batch: PacketBatch, pick: np.ndarray) -> PacketBatch:
    """The picked packets of a batch, with their bytes copied into a buffer of their own."""
    caplen = batch.caplen[pick]
    offset = batch.offset[pick]
    ends = np.cumsum(caplen.astype(np.int64))
    starts = ends - caplen
    buf = np.empty(int(ends[-1]) if len(ends) else 0, np.uint8)
    for s, o, n in zip(starts.tolist(), offset.tolist(), caplen.tolist(), strict=True):
        buf[s : s + n] = batch.buf[o : o + n]
    return PacketBatch(batch.source, buf, starts, caplen, batch.wirelen[pick], batch.ts_ns[pick],
                       batch.linktype[pick], batch.first_index)


@paced_gc
def run_boundary(parts: Sequence[list[PacketBatch]], options: Options, plan: Plan, key: bytes | None,
                 spool: Spool | None = None, keep: bool = False) -> PartResult:
    """The boundary keys' packets of every partition, in reading order, through one flow table."""
    from analyzer.decode import decode

    prepare_worker()
    work = _Worker(options, plan, key, -1)
    for batches in parts:
        for batch in batches:
            if batch.secrets:
                work.collector.add_secrets(batch.source, batch.secrets)
            if len(batch):
                work.fold(decode(batch, options.decode))
    return work.finish() if keep else pack(work.finish(start_order=True), spool)


# ------------------------------------------------------------------------------------------ driver side
def boundary_keys(results: Sequence[PartResult], options: Options) -> dict[int, np.ndarray]:
    """Partition index -> sorted key hashes whose flows there must be re-run with other partitions.

    For each key and partition: the first packet's time (the earliest flow start there: never later
    than the first packet) and the last (the latest flow end). A key's packets in partition k start
    afresh in the serial table when the first comes more than its idle timeout after the latest
    before k; otherwise k joins the segment of the partition before; segments of two or more
    partitions are re-run. In numpy over the sorted (key, partition) pairs; only keys seen in two
    partitions or more are looked at further (a few, against all the run's flows)."""
    have = [r for r in results if len(r.keys)]
    if not have:
        return {}
    key = np.concatenate([r.keys for r in have])
    part = np.concatenate([np.full(len(r.keys), r.index, np.int64) for r in have])
    first = np.concatenate([r.first for r in have])
    last = np.concatenate([r.last for r in have])
    order = np.lexsort((part, key))
    key, part, first, last = key[order], part[order], first[order], last[order]
    # one row per (key, partition): its earliest first and latest last packet
    new = np.ones(len(key), np.bool_)
    new[1:] = (key[1:] != key[:-1]) | (part[1:] != part[:-1])
    starts = np.flatnonzero(new)
    key, part = key[starts], part[starts]
    first, last = np.minimum.reduceat(first, starts), np.maximum.reduceat(last, starts)
    # keys in two partitions or more
    same = key[1:] == key[:-1]
    multi = np.zeros(len(key), np.bool_)
    multi[1:] |= same
    multi[:-1] |= same
    if not multi.any():
        return {}
    key, part, first, last = key[multi], part[multi], first[multi], last[multi]
    head = np.ones(len(key), np.bool_)
    head[1:] = key[1:] != key[:-1]
    group_start = np.flatnonzero(head)
    pos = np.arange(len(key)) - np.repeat(group_start, np.diff(np.append(group_start, len(key))))
    before = last.copy()  # the latest last packet of the key up to this partition (a cummax per key)
    for j in range(1, int(pos.max()) + 1):
        at = np.flatnonzero(pos == j)
        before[at] = np.maximum(before[at - 1], last[at])
    f = options.flows
    proto = (key & np.uint64(0xFF)).astype(np.int64)
    limit = np.where(proto == 6, f.idle_timeout_tcp, np.where(proto == 17, f.idle_timeout_udp, f.idle_timeout_other))
    limit_ns = (limit * 1e9).astype(np.int64)
    joined = np.zeros(len(key), np.bool_)  # continues the segment of the key's previous partition
    joined[1:] = ~head[1:] & (first[1:] - before[:-1] <= limit_ns[1:])
    rerun = joined.copy()
    rerun[:-1] |= joined[1:]  # a segment's first partition too
    parts, keys = part[rerun], key[rerun]
    return {int(p): np.sort(keys[parts == p]) for p in np.unique(parts).tolist()}


def serial_obstacle(results: Sequence[PartResult], options: Options) -> str | None:
    """Why the pass-1 results cannot be made the serial answer by re-running boundary keys, or None."""
    if len(results) < 2:
        return None
    clock: int | None = None
    for r in results:
        if r.first_ts is None:
            continue
        if not r.forwards or (clock is not None and r.first_ts < clock):
            return "time goes backwards in or between partitions"
        clock = r.max_ts
        if r.later_fragments:
            return "IP fragments in a run of several partitions (the fragment table is shared)"
        if r.evicted:
            return (f"flows ended early in a partition (more than max_flows={options.flows.max_flows} live, "
                    "or the memory budget)")
    from analyzer.flows.table import record_limit

    keys = np.unique(np.concatenate([r.keys for r in results]))
    limit = record_limit(options.flows)
    if len(keys) >= limit:
        return (f"{len(keys)} distinct flow keys, {limit} live flows at most (max_flows and the memory "
                "budget): the serial table could evict")
    return None


class _TaskProgress:
    """The progress display follows the tasks: when a partition's task ends, its bytes (as stored)
    and packets count, and its capture when it was the capture's last partition."""

    def __init__(self, parts: Sequence[Partition], names: dict[int, str], meter: Any) -> None:
        self.meter, self.names = meter, names
        self.left: dict[int, int] = {}
        for p in parts:
            self.left[p.source] = self.left.get(p.source, 0) + 1

    def done(self, part: Partition, result: PartResult) -> None:
        if self.meter is None:
            return
        self.left[part.source] -= 1
        size = part.end - part.start if part.end is not None and part.start is not None else _size(part.path)
        if part.is_range and part.first_index == 0:
            size += len(part.header)  # the file header is the first range's
        self.meter.finished(self.names[part.source], size, result.packets, self.left[part.source] == 0)


# ------------------------------------------------------------------------------------------ engine
class DaskEngine:
    """Runs an analysis on a Dask cluster with the serial engine's answer (see the module docstring).

    `DaskEngine(client)` uses a `distributed.Client`; `DaskEngine(scheduler="tcp://host:8786")`
    connects to a scheduler for the run; `DaskEngine(workers=N)` (or nothing) starts a LocalCluster
    of N worker processes x 1 thread for the run and closes it after. `on_notice(text)` hears what a
    user should know (the local cluster's dashboard address, a serial fallback); `notes` keeps it.
    `pieces` cuts every uncompressed pcap and pcapng into that many byte ranges (tests); `processes=False` runs a
    local cluster's workers as threads of this process (tests). `spool`: the directory where workers
    on this host leave their results for the driver to map (`Spool`; default /dev/shm, else the
    temporary directory), False to send every result through Dask.

    `output`: where the frames go. None (default): back to the driver, as an `Analysis` of pandas
    frames. "dataframe": they stay on the workers; `analyze()` returns a `DistributedAnalysis`
    whose `.dask[name]` are `dask.dataframe` collections (needs `client`: the collections live as
    long as it does). A `Dataset(path, partition_by=("date", "vantage"))`: the workers write a
    Parquet dataset, Hive-partitioned (engines.dask_output).
    """

    def __init__(self, client: Any = None, scheduler: str | None = None, workers: int | None = None, *,
                 on_notice: Callable[[str], None] | None = None, pieces: int | None = None,
                 processes: bool = True, min_partition_bytes: int = MIN_PARTITION_BYTES,
                 spool: str | bool | None = None, output: Any = None) -> None:
        from analyzer.engines.dask_output import Dataset

        if client is not None and scheduler is not None:
            raise UsageError("give a Dask client or a scheduler address, not both")
        if workers is not None and workers < 1:
            raise UsageError(f"workers must be at least 1, not {workers}")
        if output not in (None, "dataframe") and not isinstance(output, Dataset):
            raise UsageError(f"output is None, 'dataframe' or a Dataset, not {output!r}")
        if output == "dataframe" and client is None:
            raise UsageError("output='dataframe' needs a client: the collections live on its cluster after the run")
        self.output = output
        self.client, self.scheduler, self.workers = client, scheduler, workers
        self.on_notice = on_notice
        self.pieces, self.processes, self.min_partition_bytes = pieces, processes, min_partition_bytes
        self.spool = spool
        self.tasks_done_cpu = 0.0
        self.notes: list[str] = []
        self.last_run: dict[str, object] = {}
        # (what, wall time.time(), driver CPU time.process_time()) of the last run's steps, for a timeline
        # of the driver beside the workers' task stream (bench/dask_timeline.py)
        self.marks: list[tuple[str, float, float]] = []

    def _mark(self, what: str) -> None:
        self.marks.append((what, time.time(), time.process_time()))

    def _notice(self, text: str) -> None:
        self.notes.append(text)
        if self.on_notice is not None:
            self.on_notice(text)

    def run(self, sources: Sequence[Source], options: Options, collector: Collector,
            on_problem: Callable[[Problem], None]) -> Analysis:
        from analyzer.engines.progress import unmetered
        from analyzer.engines.serial import SerialEngine

        self.marks = []
        self._mark("run")
        if self.output is not None:
            from analyzer.engines.dask_output import check_output

            check_output(self.output, collector)
        if not all(isinstance(s, SkippedPath) or (isinstance(s, CaptureFile) and s.path != "-")
                   for s in unmetered(sources)[0]):
            self._notice("dask engine: sources other than capture files are read by the serial engine")
            if self.output is None:
                return SerialEngine().run(sources, options, collector, on_problem)
            from analyzer.engines.dask_output import local_output, locally

            analysis = SerialEngine().run(sources, options, locally(self.output, collector), on_problem)

            with self._connect() as client:
                return local_output(self, client, analysis, collector.plan)
        with self._connect() as client:
            return self._run(client, list(sources), options, collector, on_problem)

    def _connect(self) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def connected() -> Iterator[Any]:
            import dask
            from distributed import Client, LocalCluster

            if self.client is not None:
                yield self.client
                return
            if self.scheduler is not None:
                with Client(self.scheduler) as client:
                    yield client
                return
            n = self.workers or os.cpu_count() or 1
            # silence_logs: the workers' own logging (a heartbeat racing the shutdown logs a
            # traceback at ERROR) stays out of the user's terminal; what matters comes back as
            # results, problems and notes
            with dask.config.set(QUIET_WORKERS), LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=self.processes, silence_logs=logging.CRITICAL,
                    dashboard_address=":0") as cluster, Client(cluster) as client:
                if self.processes:
                    self._notice(f"dask dashboard: {cluster.dashboard_link}")
                yield client

        return connected()

    def _run(self, client: Any, sources: list[Source], options: Options, collector: Collector,
             on_problem: Callable[[Problem], None]) -> Analysis:
        from distributed import as_completed

        from analyzer.dissect.credentials import run_key
        from analyzer.engines.progress import unmetered

        self._mark("connected")
        t0 = time.perf_counter()
        keep = self.output is not None  # results stay on the workers (engines.dask_output)
        metered, (sources, meter) = sources, unmetered(sources)
        workers = max(1, len(client.scheduler_info().get("workers", {})) or (self.workers or 1))
        parts = partition_sources(sources, workers, self.min_partition_bytes, self.pieces)
        key = run_key(collector.context) if collector.dissection is not None else None
        names = {i: s.name for i, s in enumerate(sources)}
        plan = replace(collector.plan, stages=())  # stages run in the driver, on the merged flows
        spool = (Spool.make(self.spool if isinstance(self.spool, str) else None)
                 if self.spool is not False and not keep else None)
        kept: dict[int, Any] = {}  # keep: partition index -> the future of its result, on its worker
        kept_boundary: Any = None
        try:
            futures = {client.submit(run_partition, p, names[p.source], options, plan, key, spool, keep, pure=False,
                                     key=f"intransit-part-{p.index}-{os.urandom(4).hex()}"): p for p in parts}
            if keep:  # the driver gets the summaries; the frames stay where they were made
                kept = {p.index: f for f, p in futures.items()}
                futures = {client.submit(summary, f, pure=False): p for f, p in futures.items()}
            self._mark("submitted")
            got: dict[int, PartResult] = {}
            progress = _TaskProgress(parts, names, meter)
            spooled = 0
            for future in as_completed(futures):
                part = futures[future]
                result = future.result()
                spooled += result.packed is not None and result.packed.path is not None
                got[part.index] = result = unpack(result)
                self._mark(f"result {part.index}")
                future.release()
                progress.done(part, result)
            del futures
            results = [got[p.index] for p in parts]
            t_pass1 = time.perf_counter()
            self.tasks_done_cpu = time.process_time()  # the driver's sequential tail starts (bench/dask_cpu.py)
            obstacle = serial_obstacle(results, options)
            self.last_run = {"partitions": len(parts), "workers": workers, "pass1_s": round(t_pass1 - t0, 3),
                             "tasks_cpu_s": round(sum(r.cpu for r in results), 3), "spooled": spooled}
            if obstacle is not None:
                from analyzer.engines.serial import SerialEngine

                self._notice(f"dask engine: read by one serial table instead ({obstacle})")
                self.last_run["fallback"] = obstacle
                if meter is not None:  # the progress starts again with the serial reading
                    meter.files_done = meter.packets = meter.bytes_before = 0
                kept.clear()
                if not keep:
                    return SerialEngine().run(metered, options, collector, on_problem)
                from analyzer.engines.dask_output import local_output, locally

                analysis = SerialEngine().run(metered, options, locally(self.output, collector), on_problem)
                return local_output(self, client, analysis, collector.plan)
            rerun = boundary_keys(results, options)
            self.last_run["boundary_keys"] = int(sum(len(v) for v in rerun.values()))
            boundary: PartResult | None = None
            if rerun:
                picked = [client.submit(boundary_packets, parts[i], names[parts[i].source], options, rerun[i],
                                        pure=False) for i in sorted(rerun)]
                done = client.submit(run_boundary, picked, options, plan, key, spool, keep, pure=False)
                if keep:
                    kept_boundary = done
                    boundary = client.submit(summary, done, pure=False).result()
                else:
                    boundary = unpack(done.result())
        finally:
            if spool is not None:
                import shutil

                shutil.rmtree(spool.path, ignore_errors=True)
        t_pass2 = time.perf_counter()
        self._mark("pass 2 done")
        self.last_run["pass2_s"] = round(t_pass2 - t_pass1, 3)
        if keep:
            from analyzer.engines.dask_output import deliver

            rows, stats = self._sources(sources, parts, results, options, collector, on_problem)
            analysis = deliver(self, client, collector, rows, stats, kept, kept_boundary, results, boundary, rerun)
            self._mark("delivered")
            self.last_run["collect_s"] = round(time.perf_counter() - t_pass2, 3)
            return analysis
        analysis = self._collect(sources, parts, results, boundary, rerun, options, collector, on_problem)
        self._mark("collected")
        self.last_run["collect_s"] = round(time.perf_counter() - t_pass2, 3)
        return analysis

    def _collect(self, sources: list[Source], parts: list[Partition], results: list[PartResult],
                 boundary: PartResult | None, rerun: dict[int, np.ndarray], options: Options,
                 collector: Collector, on_problem: Callable[[Problem], None]) -> Analysis:
        """Sources rows, problems and anomalies as the serial engine makes them; the kept flows."""
        rows, stats = self._sources(sources, parts, results, options, collector, on_problem)
        gone: set[str] = set()
        for r in results:
            gone |= self._take(collector, r, rerun.get(r.index))
        if boundary is not None:
            self._take(collector, boundary, None)
        if collector.ftp_link is not None and len(results) > 1:
            said = [a for r in results for a in r.announcements if a[0] not in gone]
            _relink_ftp(collector, said + (boundary.announcements if boundary is not None else []))
        return collector.finish(rows, stats)

    @staticmethod
    def _sources(sources: list[Source], parts: list[Partition], results: list[PartResult], options: Options,
                 collector: Collector, on_problem: Callable[[Problem], None]
                 ) -> tuple[list[dict[str, object]], dict[str, object]]:
        """The sources rows and the run's stats; problems and source/decode anomalies said as the
        serial engine says them (CaptureError when nothing at all could be read)."""
        strict = options.strict
        by_source: dict[int, list[PartResult]] = {}
        for part, r in zip(parts, results, strict=True):
            by_source.setdefault(part.source, []).append(r)
        readable = [s for s in sources if not isinstance(s, SkippedPath)]
        rows: list[dict[str, object]] = []
        errors: list[CaptureError] = []
        total = 0
        decode_counts: dict[tuple[str, str], int] = {}
        for i, source in enumerate(sources):
            name = source.name
            if isinstance(source, SkippedPath):
                p = source.skipped.problem()
                if strict and p.fatal_in_strict:
                    raise CaptureError(p.source, None, f"{p.detail} (strict: any skipped path is an error)")
                on_problem(p)
                collector.anomaly(source=p.source, layer="source", kind=p.kind, detail=p.detail, offset=None,
                                  count=1)
                rows.append({"source": p.source, "packets": 0, "status": source.skipped.status,
                             "problem": p.detail, "offset": None})
                continue
            packets = 0
            status, problem, offset = "ok", None, None
            for r in by_source.get(i, []):
                for p in r.problems:
                    if strict and p.fatal_in_strict:
                        from analyzer.sources.readers import strict_detail

                        raise CaptureError(p.source, p.offset, strict_detail(p))
                    status, problem, offset = "partial", p.detail, p.offset
                    collector.anomaly(source=name, layer="source", kind=p.kind, detail=p.detail, offset=p.offset,
                                      count=1)
                    on_problem(p)
                packets += r.packets
                for kind, cnt in r.decode_anomalies.items():
                    decode_counts[(name, kind)] = decode_counts.get((name, kind), 0) + cnt
                exc = r.error
                if exc is not None:
                    if strict:
                        raise exc
                    errors.append(exc)
                    if len(readable) > 1:
                        on_problem(Problem(source=name, offset=exc.offset, kind="unreadable", detail=exc.message))
                    status, problem, offset = "failed" if packets == 0 else "partial", exc.message, exc.offset
                    collector.anomaly(source=name, layer="source", kind="unreadable", detail=exc.message,
                                      offset=exc.offset, count=1)
            total += packets
            rows.append({"source": name, "packets": packets, "status": status, "problem": problem,
                         "offset": offset})
        for (name, kind), cnt in decode_counts.items():
            collector.anomaly(source=name, layer="decode", kind=kind, detail=f"{cnt} packets", count=cnt)
        if total == 0 and errors:
            if len(errors) == 1:
                raise errors[0]
            raise CaptureError(errors[0].path, errors[0].offset,
                               f"{errors[0].message} (and {len(errors) - 1} more unreadable captures)")
        stats: dict[str, object] = {"packets": total, "packets_not_ip": sum(r.not_ip for r in results),
                                    "files": len(readable)}
        return rows, stats

    @staticmethod
    def _take(collector: Collector, result: PartResult, dropped: np.ndarray | None) -> set[str]:
        """A partition's chunks into the collector, without the flows of the keys in `dropped`
        (re-run across partitions) nor their rows; returns the uids of the flows left out."""
        from analyzer.dissect import FlowPayload

        kept = kept_chunks(result, dropped)
        wanted, feeds = collector.wanted, collector.feeds
        # the rows first: a stage has seen a flow's rows (certs, credentials, ...) before its flow
        # chunk, as in a serial run (Collector._rows); a frame made only for the stages is not kept
        for frame, chunks in kept.frames.items():
            for chunk in chunks:
                if feeds.get(frame):
                    feed_rows(feeds[frame], frame, chunk)
                if frame in wanted:
                    collector.add_frame_chunk(frame, chunk)
        for frame, ts, uid, rows in kept.merges:
            for stage in feeds.get(frame, ()):
                stage.on_rows(frame, uid, rows)
            if frame in wanted:
                collector._merge(collector.plan.specs[frame], FlowPayload(uid, "", "", "", 0, 0, ts), rows)
        if "flows" in wanted:
            for chunk in kept.flows:
                collector.add_flow_chunk(chunk)
        return kept.gone


def feed_rows(stages: Sequence[Any], frame: str, chunk: Mapping[str, Any]) -> None:
    """A row frame's Arrow chunk, made on a worker, to the stages that read the frame: per flow, in
    the order the rows were made, as dict rows (`Stage.on_rows`, as the serial collector hands them)."""
    import pyarrow as pa

    by_flow: dict[str, list[dict[str, object]]] = {}
    for row in pa.table(dict(chunk)).to_pylist():
        by_flow.setdefault(str(row["uid"]), []).append(row)
    for uid, rows in by_flow.items():
        for stage in stages:
            stage.on_rows(frame, uid, rows)


@dataclass(slots=True)
class Kept:
    """What a partition's result keeps once the flows of its boundary keys are dropped (`kept_chunks`)."""

    flows: list[dict[str, Any]]  # Arrow chunks of the flows schema (no `_key`)
    frames: dict[str, list[dict[str, Any]]]  # Arrow chunks of row frames
    merges: list[tuple[str, float, str, list[dict[str, object]]]]  # rows of Dedup frames per flow
    gone: set[str]  # uids of the flows left out


def kept_chunks(result: PartResult, dropped: np.ndarray | None) -> Kept:
    """A partition's chunks without the flows of the keys in `dropped` (sorted key hashes: re-run
    across partitions) and without those flows' rows. Pure (the result is not changed): the driver
    runs it on results sent to it, a worker on the results it keeps (engines.dask_output), and a
    retried task sees the same input."""
    import pyarrow as pa
    import pyarrow.compute as pc

    drop = np.sort(dropped.view(np.int64)) if dropped is not None and len(dropped) else None
    gone: set[str] = set()
    flows = []
    for chunk in result.flow_chunks:
        keys = chunk["_key"]
        chunk = {name: col for name, col in chunk.items() if name != "_key"}
        if drop is not None:
            hit = _isin_sorted(keys.to_numpy(zero_copy_only=False), drop)
            if hit.any():
                gone.update(chunk["uid"].filter(pa.array(hit)).to_pylist())
                keep = pa.array(~hit)
                chunk = {name: col.filter(keep) for name, col in chunk.items()}
        if len(chunk["uid"]):
            flows.append(chunk)
    lost = pa.array(sorted(gone), pa.string()) if gone else None
    frames: dict[str, list[dict[str, Any]]] = {}
    for frame, chunks in result.frames.items():
        for chunk in chunks:
            if lost is not None:
                chunk = {name: col.filter(pc.invert(pc.is_in(chunk["uid"], value_set=lost)).fill_null(True))
                         for name, col in chunk.items()}
            if len(chunk["uid"]):
                frames.setdefault(frame, []).append(chunk)
    merges = [m for m in result.merges if m[2] not in gone]
    return Kept(flows, frames, merges, gone)


FTP_COLUMNS = ("uid", "server_ip", "server_port", "transport", "ts_start", "ts_end")  # what link_ftp reads


def ftp_columns(chunks: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The FTP_COLUMNS of Arrow flow chunks as numpy arrays (times as int64 ns, null as 0)."""
    import pyarrow as pa

    cols = {name: np.concatenate([c[name].to_numpy(zero_copy_only=False) for c in chunks]) if chunks else
            np.zeros(0, object) for name in FTP_COLUMNS[:4]}
    for name in FTP_COLUMNS[4:]:
        cols[name] = (np.concatenate([c[name].view(pa.int64()).fill_null(0).to_numpy() for c in chunks])
                      if chunks else np.zeros(0, np.int64))
    return cols


def _relink_ftp(collector: Collector, announcements: list[tuple[str, int, int, list[tuple[object, object, bool]]]]
                ) -> None:
    """FTP data channels linked across partitions, in the driver: `link_ftp` over every kept flow;
    the link's final announcements stay in the collector, whose `finish` sets `ftp_control_uid`
    (and the data flows' protection) on every chunk of flows, as at the end of a serial in-memory run."""
    said = sorted(announcements, key=lambda a: (a[2], a[0]))
    if not said:
        return
    link, data_uids = link_ftp(said, ftp_columns(collector.flow_chunks))
    collector.ftp_link = link
    frame_chunks = collector.frames.get("ftp_data", [])
    dtype = collector.plan.schemas["ftp_data"]["data_uid"]
    frame_chunks[:] = [with_data_uids(chunk, data_uids, dtype) for chunk in frame_chunks]


def link_ftp(said: list[tuple[str, int, int, list[tuple[object, object, bool]]]], cols: dict[str, np.ndarray]
             ) -> tuple[Any, dict[tuple[str, object, object], list[object]]]:
    """FTP data channels linked across partitions (analyzer.dissect.ftp_link): each partition
    linked the data flows it saw to the announcements it saw, and a control flow re-run across a
    boundary was dissected apart from the data flows of other partitions. Here the run's kept
    announcements (`said`, sorted by control flow end, then uid) are replayed in the order the
    serial table ends their control flows, each after the flows (`cols`: FTP_COLUMNS of the kept
    flows, or of those a data channel could be) that ended before it, through one FtpDataLink.
    Returns the link (its final announcements set the data flows' columns: FtpDataLink.apply) and
    the `data_uid`s of the ftp_data rows of each (control uid, host, port), in the order made."""
    from analyzer.dissect.ftp_link import FtpDataLink

    order = np.lexsort((cols["uid"], cols["ts_end"]))
    ends = cols["ts_end"][order]
    link = FtpDataLink()
    fed = 0
    data_uids: dict[tuple[str, object, object], list[object]] = {}
    for control_uid, start, end, rows in said:
        upto = int(np.searchsorted(ends, end, side="left"))
        if upto > fed:  # the flows that ended before this control flow
            at = order[fed:upto]
            link.ended({name: col[at] for name, col in cols.items()})
            fed = upto
        dict_rows: list[dict[str, object]] = [{"host": h, "port": p, "protected": pr} for h, p, pr in rows]
        for (h, p, _), row in zip(rows, link.announce(control_uid, start, end, dict_rows), strict=True):
            data_uids.setdefault((control_uid, h, p), []).append(row.get("data_uid"))
    return link, data_uids


def with_data_uids(chunk: dict[str, Any], data_uids: dict[tuple[str, object, object], list[object]],
                   dtype: str) -> dict[str, Any]:
    """An ftp_data chunk whose `data_uid`s are those `link_ftp` gave its rows (the k-th row of a
    (control uid, host, port) gets the k-th; a control flow's rows are all in one chunk)."""
    from analyzer import schema

    uids, hosts, ports = (chunk[c].to_pylist() for c in ("uid", "host", "port"))
    taken: dict[tuple[str, object, object], int] = {}
    values = []
    for key in zip(uids, hosts, ports, strict=True):
        got = data_uids.get(key, [])
        i = taken.get(key, 0)
        taken[key] = i + 1
        values.append(got[i] if i < len(got) else None)
    return {**chunk, "data_uid": schema.arrow_column(values, dtype)}
