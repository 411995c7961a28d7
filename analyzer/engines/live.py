"""The live engine: a mirror socket's batches through the same decode, flow table, dissection and
policy as a capture, written window by window (`intransit listen`).

One flow table lives for the whole run, so a flow that spans windows is never split: it is written
once, in the window it ends in (idle/active timeout, TCP close, eviction at --max-flows, or shutdown),
or in the next when it was still waiting for its dissection at the close (`LiveRun._defer`).
Each window has its own `Collector` (the dissectors' per-run state, e.g. the credentials HMAC key, is
shared by all windows) and its own policy stage (`analyzer.policy.stage.PolicyStage`, zones from
--vpc/--zones), as the streamed audit (`analyzer.auditor.audit_stream`) has: flows are dissected as
they end, and every chunk of ended flows (16k) is judged and written as it is made, each frame through
its sink (`analyzer.report.FrameWriter`) to a temporary file. A window's close is only the last chunk,
the certificates (one row per distinct certificate), the renames and the stats file (written last:
its presence says the window's files are all there): a window's file is complete or absent. The
streamed files hold the flows (and findings, tls, ...) in the order they were made (flows: the order
they ended); sort by (ts_start, uid) for the frame's order. Memory is bounded by --max-flows (live
flows) and by one chunk, not by a window's ended flows.

Two steps run here, on the decoded columns, that a capture file does not need:
- de-duplication (`Deduplicator`): when both ends of a conversation are mirrored to one target,
  each packet arrives twice, from two vantages (outer source address, VNI, GWLB endpoint). A packet
  whose inner identity (addresses, protocol, ports, IP length and id, TCP seq/ack/flags, payload
  length and its first 16 bytes; not the TTL, not the checksums) was seen from another vantage
  within `window_ns` is dropped and counted. The same identity from the same vantage is a real
  retransmission and kept.
- truncation (`mark_truncated`): AWS cuts a mirrored packet to the session's PacketLength, or to the
  target's MTU; the outer datagram is then complete but the inner IP packet is shorter than its
  header says. Such packets are marked `truncated` (and counted by their header length), as a
  snaplen-cut packet of a capture is. Inner checksums are never verified (checksum offload makes
  them wrong on the wire of the mirrored host), so a bad one changes nothing.

Counters (one line per window in `stats-<window>.jsonl`): every datagram read is exactly one of
filtered (not from --allow), queue-dropped (read after the shutdown drain's deadline), duplicate,
or analysed; the kernel's own drops (socket buffer full) are reported beside them.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer._gc import YOUNG_THRESHOLD
from analyzer.config import memory_shares
from analyzer.decode import ANOMALY_NAMES, DecodedBatch, decode, is_one_of
from analyzer.decode import _kernel as D
from analyzer.dissect.base import Facts
from analyzer.engines import _dedup as K
from analyzer.flows.table import EndedFlows, FlowTable, record_limit
from analyzer.pipeline import Collector, Options, Plan
from analyzer.sources.batch import LINKTYPE_RAW, PacketBatch

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.policy.stage import PolicyStage
    from analyzer.sources.mirror import MirrorSource

__all__ = ["Deduplicator", "LiveCounters", "LiveRun", "PcapRotator", "mark_truncated", "parse_duration",
           "parse_size", "policy_judge"]

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One splitmix64 step of `v` into `h` (uint64 arrays; wraps by design)."""
    with np.errstate(over="ignore"):
        x = (h ^ v.astype(np.uint64)) * _M1
        x ^= x >> np.uint64(30)
        x *= _M2
        x ^= x >> np.uint64(27)
        x *= _M3
        x ^= x >> np.uint64(31)
    return x


def _weights(k: int, seed: int) -> np.ndarray:
    """k fixed odd 64-bit multipliers (splitmix64 of 1..k): one per field of a hashed row."""
    w = _mix(np.full(k, seed, np.uint64), np.arange(1, k + 1, dtype=np.uint64))
    return w | np.uint64(1)


_ID_W = _weights(K.N_ID_WEIGHTS, 0x1D)
_VANTAGE_W = _weights(K.N_VANTAGE_WEIGHTS, 0x7A)
_MIN_SLOTS = 1 << 12
PENDING_CHUNKS = 64  # chunks of ended flows waiting for dissection at most (LiveRun._defer)
# The share of the receive queue in use from which dissection that cannot wait any more (the waiting
# flows at their bound) is shed instead of done (LiveRun._add). Behind for long, the
# queue settles at about this share; what is left must hold the longest burst of work that cannot be
# shed: a chunk of 16k flows judged and written (~0.5 s of CPU, 75k datagrams at 150k/s, of the default
# queue's ~96k). At a quarter, 987 datagrams of 8.96M were still dropped in a 60 s run at 150k/s.
SHED_BACKLOG = 0.125
# The most wall time a batch's turn spends dissecting waiting flows (LiveRun._work); forced work past it
# is shed whatever the queue's share says (LiveRun._add). The queue holds what the receive thread has
# taken from the socket, and while the analysis thread runs a long dissection the receive thread seldom
# gets the interpreter: the socket fills unseen. A 120 s run had turns with 0.87 s of dissection.
FORCED_TURN_S = 0.1
# The longest a window's close waits, past the window's end, for quiet moments (LiveRun._ready); at
# most a quarter of the window
CLOSE_GRACE_S = 10.0
# A quiet moment, when waiting flows are dissected (LiveRun._work): at most this share of the receive
# queue in use (two of the default 32 batches, ~40 ms at 150k datagrams/s); not an empty queue: at ~95%
# of a core the queue is seldom empty.
QUIET_BACKLOG = 1 / 16
# A staged fold of FLOW_ROWS_PER_FRAME flows (Collector.advance: its Arrow columns, the policy's judging,
# the files, ~0.13 s of CPU each at 16k) takes a step only while at most this share of the receive queue
# is in use. Each step adds up to ~0.2 of the queue; a fold taken as the chunk filled, whatever the
# queue held, took it to 0.84-0.97 in a slow period, and the socket overflowed. The fold cannot be
# shed but it can wait: until the next chunk fills (~5 s at 150k datagrams/s of new flows), when it
# is finished at once.
FOLD_BACKLOG = 1 / 4


class Deduplicator:
    """Drops the second copy of a packet mirrored from two vantages within `window_ns`: a packet
    whose inner identity was first seen from another vantage (outer source address, VNI, GWLB
    endpoint) that recently. The first copy of each identity of the window is kept in a hash table
    (`analyzer.engines._dedup`), emptied of what is older than the window as it fills."""

    __slots__ = ("_shift", "_table", "_used", "duplicates", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.duplicates = 0
        self._empty(_MIN_SLOTS)
        self._used = np.zeros(1, np.int64)

    def _empty(self, slots: int) -> None:
        self._table = np.zeros((slots, 3), np.int64)  # time, identity, vantage per slot (K.T_*)
        self._table[:, K.T_TIME] = K.EMPTY
        self._shift = 64 - (slots.bit_length() - 1)

    def _room(self, n: int, now: int) -> None:
        """At most half the slots taken after n more: drop what is older than the window, and
        size the table for twice what is left (at least 4x, so that rebuilds stay rare)."""
        if 2 * (int(self._used[0]) + n) <= len(self._table):
            return
        old = self._table
        fresh = int(np.count_nonzero(old[:, K.T_TIME] >= now - self.window_ns))
        slots = max(_MIN_SLOTS, 1 << (4 * (fresh + n) - 1).bit_length())
        self._empty(slots)
        self._used[0] = K.rebuild(old, self._table, self._shift, now - self.window_ns)

    def keep(self, d: DecodedBatch) -> np.ndarray:
        """A mask of the packets to analyse (True) in `d`; duplicates are counted."""
        n = len(d.cols)
        keep = np.ones(n, np.bool_)
        if self.window_ns <= 0 or n == 0:
            return keep
        ts = d.batch.ts_ns
        self._room(n, int(ts.min()))
        buf, ts = np.ascontiguousarray(d.batch.buf), np.ascontiguousarray(ts, np.int64)
        self.duplicates += int(K.dedup(d.cols, d.ucols, buf, ts, self.window_ns, _ID_W, _VANTAGE_W, self._table,
                                       self._shift, self._used, keep))
        return keep


def mark_truncated(d: DecodedBatch) -> int:
    """Mark packets whose inner IP packet is shorter than its header says (PacketLength / MTU
    truncation of a mirror session) as truncated, as decode does for those in VXLAN/GENEVE
    (`analyzer.decode.mark_inner_truncation`), here for any datagram (one that is not a tunnel
    too); returns how many packets of the batch are truncated."""
    c = d.cols
    if not len(c):
        return 0
    trunc, anom, proto = c[:, D.C_TRUNC], c[:, D.C_ANOM], c[:, D.C_PROTO]
    l4 = is_one_of(proto, (6, 17, 136)) | (c[:, D.C_FRAG] == 2)
    short_payload = (anom == D.A_NONE) & (c[:, D.C_PLCAP] < c[:, D.C_PLLEN]) & (c[:, D.C_STATUS] == D.ST_OK) & l4
    cut_header = is_one_of(anom, (D.A_L4_TRUNC, D.A_IP_TRUNC, D.A_IP6_EXT_TRUNC))
    mark = (short_payload | cut_header) & (trunc == 0)
    if mark.any():
        c[mark, D.C_TRUNC] = 1
    return int(trunc.sum())


def _subset(d: DecodedBatch, keep: np.ndarray) -> DecodedBatch:
    b = d.batch
    sub = replace(b, offset=b.offset[keep], caplen=b.caplen[keep], wirelen=b.wirelen[keep], ts_ns=b.ts_ns[keep],
                  linktype=b.linktype[keep], problems=[])
    return DecodedBatch(sub, np.ascontiguousarray(d.cols[keep]), np.ascontiguousarray(d.ucols[keep]))


@dataclass(slots=True)
class LiveCounters:
    """Datagram accounting; `received = filtered + dropped_queue + duplicates + analysed`, and
    analysed packets are decapsulated, not_tunnel (no VXLAN/GENEVE header) or malformed; the
    decapsulated ones whose inner frame is IP are counted in the flows' packets."""

    received: int = 0
    filtered: int = 0
    dropped_queue: int = 0
    dropped_kernel: int = 0
    duplicates: int = 0
    analysed: int = 0
    decapsulated: int = 0
    inner_not_ip: int = 0  # decapsulated, but the inner frame is not IP (ARP, LLDP, ...): in no flow
    not_tunnel: int = 0
    malformed: int = 0
    truncated: int = 0
    flows: int = 0
    evicted: int = 0
    shed: int = 0  # ended flows counted without their dissection: the analysis was behind (LiveRun._add)

    def minus(self, earlier: LiveCounters) -> LiveCounters:
        return LiveCounters(*(getattr(self, k) - getattr(earlier, k) for k in self.__slots__))

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """'60s', '5m', '1h', '500ms' or a number of seconds -> seconds (ValueError when not)."""
    t = text.strip().lower()
    num = t.rstrip("smh")
    unit = t[len(num):]
    if unit not in UNITS:
        raise ValueError(f"{text!r} is not a duration (e.g. 60s, 5m, 1h)")
    try:
        value = float(num) * UNITS[unit]
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (e.g. 60s, 5m, 1h)") from None
    if not 0 < value <= 86400 * 7:
        raise ValueError(f"{text!r}: a duration above 0 and at most a week")
    return value


def parse_size(text: str) -> int:
    """'100M', '1G', '512k' or a number of bytes -> bytes (ValueError when not)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMG" else t
    try:
        value = int(float(num) * mult)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (e.g. 100M, 1G)") from None
    if value < 4096:
        raise ValueError(f"{text!r}: a size of at least 4k (e.g. 100M, 1G)")
    return value


def _stamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y%m%dT%H%M%SZ")


class PcapRotator:
    """Writes the received datagrams (with their synthesised outer headers, link type RAW) as pcap
    files in `directory`, a new file every `rotate` bytes; a file is written under a temporary name
    and renamed when full or at the end, so every `mirror-*.pcap` is complete. Reading them back
    with `intransit flows` gives the same flows (the decoder sees what it saw live)."""

    def __init__(self, directory: str, rotate: int) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory, self.rotate = directory, rotate
        self._fh: Any = None
        self._path = ""
        self._size = 0
        self._seq = 0
        self.files: list[str] = []

    def _open(self, ns: int) -> None:
        # a sequence number after the time, so that the names sort in the order the files were written
        while True:
            path = os.path.join(self.directory, f"mirror-{_stamp(ns)}-{self._seq:06d}.pcap")
            self._seq += 1
            if not (os.path.exists(path) or os.path.exists(path + ".tmp")):
                break
        self._path = path
        self._fh = open(path + ".tmp", "wb")  # noqa: SIM115 - closed in _close
        import struct

        self._fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535 + 48, LINKTYPE_RAW))  # ns pcap
        self._size = 24

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            os.replace(self._path + ".tmp", self._path)
            self.files.append(self._path)
            self._fh = None

    def write(self, b: PacketBatch) -> None:
        n = len(b)
        if not n:
            return
        if self._fh is None:
            self._open(int(b.ts_ns[0]))
        caplen = b.caplen.astype(np.int64)
        rec = 16 + caplen
        ends = np.cumsum(rec)
        starts = ends - rec
        out = np.empty(int(ends[-1]), np.uint8)
        hdr = np.empty((n, 4), "<u4")
        hdr[:, 0] = b.ts_ns // 1_000_000_000
        hdr[:, 1] = b.ts_ns % 1_000_000_000
        hdr[:, 2] = caplen
        hdr[:, 3] = b.wirelen
        out[starts[:, None] + np.arange(16)] = hdr.view(np.uint8).reshape(n, 16)
        # every packet's bytes in one gather: source index = packet offset + position within it
        total = int(caplen.sum())
        within = np.arange(total) - np.repeat(np.cumsum(caplen) - caplen, caplen)
        dst = np.repeat(starts + 16, caplen) + within
        out[dst] = b.buf[np.repeat(b.offset.astype(np.int64), caplen) + within]
        self._fh.write(out.tobytes())
        self._size += len(out)
        if self._size >= self.rotate:
            self._close()

    def close(self) -> None:
        self._close()


@dataclass(slots=True)
class Window:
    """A closed window: its time span, frames, counters and the summary line. `frames` are those kept
    in memory: every frame when the run writes no files (out_dir None), else those not streamed to
    their files (certs, sources)."""

    index: int
    start_ns: int
    end_ns: int
    frames: dict[str, pd.DataFrame]
    counters: LiveCounters
    totals: LiveCounters
    files: list[str]
    summary: str


class _Count:
    """A collector stage that only counts each window's flows, encrypted and cleartext, for the stats
    and the summary line (the flows themselves go to their file chunk by chunk)."""

    name = "live-count"
    columns: tuple[Any, ...] = ()
    frames: tuple[Any, ...] = ()

    def __init__(self) -> None:
        self.flows = self.encrypted = self.cleartext = 0

    def on_flows(self, chunk: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, list[dict[str, Any]]]]:
        self.flows += len(chunk["uid"])
        enc = chunk.get("encrypted")
        if enc is not None:
            self.encrypted += enc.true_count
            self.cleartext += enc.false_count
        return {}, {}

    def finish(self) -> Mapping[str, list[dict[str, object]]]:
        return {}


@dataclass(slots=True)
class _Open:
    """The window being filled: its collector, its stages and the sinks its frames stream to."""

    collector: Collector
    count: _Count
    policy: Any
    stamp: str
    sinks: dict[str, Any]

    def abort(self) -> None:
        for sink in self.sinks.values():
            sink.abort()


class LiveRun:
    """Runs a `MirrorSource` through the pipeline, window by window (see the module docstring).

    `judge(findings_sink, horizon_s)` -> a policy stage for one window (`policy_judge`), or None to
    skip the policy; `on_window(window)` is called after each window's files are written. `out_dir`
    None keeps the frames in the Window only (tests)."""

    def __init__(self, source: MirrorSource, options: Options, *, window: float = 60.0, out_dir: str | None = None,
                 fmt: str = "parquet", dedup_window: float = 0.05, judge: Callable[..., Any] | None = None,
                 on_window: Callable[[Window], None] | None = None, pcap: PcapRotator | None = None,
                 frames: Sequence[str] = ("flows", "tls", "certs", "credentials", "anomalies"),
                 shed: bool = True) -> None:
        self.source = source
        self.shed = shed
        dec = replace(options.decode, vxlan_ports=tuple(dict.fromkeys((*options.decode.vxlan_ports,
                                                                       *source.vxlan_ports))),
                      geneve_ports=tuple(dict.fromkeys((*options.decode.geneve_ports, *source.geneve_ports))))
        self.options = replace(options, decode=dec)
        self.window_ns = int(window * 1e9)
        self.out_dir, self.fmt = out_dir, fmt
        self.judge, self.on_window, self.pcap = judge, on_window, pcap
        self.dedup = Deduplicator(int(dedup_window * 1e9))
        schemas = Plan.make(self.options).schemas
        self.frames = tuple(f for f in frames if f in schemas)
        # only the frames written are built (the policy stage is handed the rows it reads whatever)
        self.options = replace(self.options, output=replace(self.options.output, frames=tuple(
            f for f in self.frames if f not in ("anomalies", "sources"))))
        flow_options = self.options.flows
        if not self.options.dissect.enabled:
            flow_options = replace(flow_options, collect_payload=False)
        # The records at their limit from the start: growing them (a copy of every record, and the
        # new pages faulted in at once) took 0.4 s at 65k -> 131k flows, one batch's worth of the receive
        # queue, while a long-running listener would hold them soon anyway. np.zeros maps them untouched:
        # a record's pages become resident as it is first used, lowest ids first.
        self.table = FlowTable(flow_options, capacity=record_limit(flow_options))
        # the ftp-data-unprotected link's memory, as the streamed audit sets it: no control flow ending
        # later can have started before
        self.horizon_s = float(flow_options.active_timeout) + float(flow_options.idle_timeout_tcp) + 300.0
        # Ended flows waiting for their dissection (see _defer): at most the memory budget's in-flight
        # share of payload bytes and PENDING_CHUNKS chunks
        self._pending: deque[EndedFlows] = deque()
        self._pending_bytes = 0
        self._pending_flows = 0
        self._pending_limit = memory_shares(flow_options.memory_budget).in_flight
        self.deferred_peak = 0  # the most ended flows ever waiting at once (for the status and benchmarks)
        self.totals = LiveCounters()
        self._last = LiveCounters()
        self._dissection: Any = None
        self._anomalies: dict[str, int] = {}
        self._last_targets: dict[str, int] = {}
        self._last_calls = 0
        self.windows = 0
        self._file_seq = 0
        self.close_grace_ns = int(min(CLOSE_GRACE_S, window / 4) * 1e9)
        self._quiet_steps = 0  # the steps of the open window's close done at quiet moments (_ready)
        self._turn_t0 = time.perf_counter()  # when the analysis of the current batch began (FORCED_TURN_S)
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)

    def _open(self, start: int) -> _Open:
        """A window's collector, policy stage and (with out_dir) the sinks of its frames, whose files
        are written under temporary names until the close."""
        from analyzer.report import FrameWriter

        stamp = self._stamp(start) if self.out_dir is not None else ""
        sinks: dict[str, Any] = {}
        policy = None
        count = _Count()
        try:
            if self.judge is not None and "flows" in self.frames:
                from analyzer.policy import FINDINGS

                if self.out_dir is not None:
                    sinks["findings"] = FrameWriter(self.fmt, self._path("findings", stamp), dict(FINDINGS))
                policy = self.judge(sinks.get("findings"), self.horizon_s)
            plan = Plan.make(self.options, stages=[s for s in (policy, count) if s is not None])
            if self.out_dir is not None:
                for name in self.frames:
                    if plan.streamable(name) and name in plan.wanted:
                        sinks[name] = FrameWriter(self.fmt, self._path(name, stamp), plan.schemas[name])
            collector = Collector(self.options, plan, {n: s for n, s in sinks.items() if n != "findings"},
                                  staged=True)
        except BaseException:
            for sink in sinks.values():
                sink.abort()
            raise
        if self._dissection is None:
            self._dissection = collector.dissection
        else:  # one set of dissector instances for the run (the credentials key, caches)
            collector.dissection = self._dissection
        self._quiet_steps = 0
        self._folded = False  # whether this turn took a staged fold's step (_windows)
        return _Open(collector, count, policy, stamp, sinks)

    def run(self) -> Iterator[Window]:
        """Analyse until the source ends (stop()); yields each window as it closes; the last one
        holds every flow still open at the end."""
        # The collector paced as for a batch run (analyzer._gc): what exists now (imports, the policy)
        # is frozen out of the full collections, which otherwise rescan it every ~10M allocations.
        threshold, freeze = gc.get_threshold(), gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        gc.set_threshold(max(YOUNG_THRESHOLD, threshold[0]), *threshold[1:])
        start = time.time_ns()
        current = self._current = self._open(start)
        try:
            yield from self._windows(current, start)
        except BaseException:
            self._current.abort()
            raise
        finally:
            gc.set_threshold(*threshold)
            if freeze:
                gc.unfreeze()

    def _windows(self, current: _Open, start: int) -> Iterator[Window]:
        src, tot = self.source, self.totals
        window_end = start + self.window_ns
        last_expire = start
        dec = self.options.decode
        for batch in src.batches():
            self._turn_t0 = time.perf_counter()
            collector = current.collector
            if len(batch):
                if self.pcap is not None:
                    self.pcap.write(batch)
                decoded = decode(batch, dec)
                tot.truncated += mark_truncated(decoded)
                keep = self.dedup.keep(decoded)
                if not keep.all():
                    decoded = _subset(decoded, keep)
                self._count(decoded)
                for ended in self.table.feed(decoded):
                    self._defer(ended, collector)
            now = time.time_ns()
            if now - last_expire >= 1_000_000_000:  # idle timeouts run on the wall clock too
                last_expire = now
                # (a stream's batches have had the table scanned by `feed`, on their receive times, within
                # the last second: a second scan of every live flow would find almost nothing more)
                if now - self.table.last_expire_ns >= 1_000_000_000:
                    for ended in self.table.expire_iter(now):
                        self._defer(ended, collector)
                self._status(now)
            # a chunk of 16k flows is judged and written a step at a time (Collector.advance), while at
            # most FOLD_BACKLOG of the receive queue is in use; before the dissection of waiting flows
            self._folded = bool(collector.folds_staged) and src.backlog() <= FOLD_BACKLOG
            if self._folded:
                collector.advance()
            self._work(collector)
            if now >= window_end and self._ready(current, now - window_end):
                # (the ended flows still waiting for their dissection go to the next window: dissecting
                # them all here was the close's largest burst, up to PENDING_CHUNKS chunks at once)
                closed = self._close(current, start, now, final=False)
                current = self._current = self._open(now)
                yield closed
                # the windows keep to their schedule (a close waits for a quiet moment: the next one
                # is that much shorter), unless one was more than a window late
                start, window_end = now, window_end + self.window_ns
                if window_end <= now:
                    window_end = now + self.window_ns
        for ended in self.table.flush_iter():
            self._defer(ended, current.collector)
        self._work(current.collector, everything=True)
        yield self._close(current, start, time.time_ns(), final=True)

    def _ready(self, current: _Open, late: int) -> bool:
        """Whether the window, `late` ns past its end, closes now. A close is a burst of work that cannot
        be shed: the window's last gathered flows judged and written (up to FLOW_ROWS_PER_FRAME of
        them, ~0.4 s of CPU at 16k), its files' buffered rows written, the findings of expired
        suppressions, the next window's files opened. Begun on a busy receive queue (a slow period,
        a burst of ended flows), it overflowed the socket: 38k and 41k datagrams lost at 150k/s, all
        right after a close. So for up to `close_grace_ns` the close goes a step at a time, each
        in a turn of its own with at most FOLD_BACKLOG of the receive queue in use: the gathered
        flows are staged as a fold (no work) and take their steps as any fold does (`_windows`);
        then the other frames' rows; the files' flush; then the rest. Past the grace it closes at
        once. Flows dissected while it waits belong to this window."""
        if late >= self.close_grace_ns:
            return True
        collector = current.collector
        step = self._quiet_steps
        if step == 0:
            collector.stage_fold()
            self._quiet_steps = 1
            return False
        if collector.folds_staged or self._folded or self.source.backlog() > FOLD_BACKLOG:
            return False  # (a fold's step ran in this turn, or the queue is busy: not now)
        self._quiet_steps += 1
        if step == 1:
            collector.fold()  # (the other frames' rows: the flows are folded already)
        elif step == 2:
            for sink in current.sinks.values():  # (FrameWriters, made by _open)
                sink.flush()
        return step >= 3

    def _defer(self, ended: EndedFlows, collector: Collector) -> None:
        """Queue a chunk of ended flows for dissection. The flow table ends flows in bursts (its
        idle scan, once a second, ends every flow closed meanwhile: thousands at 150k datagrams/s,
        over a second of dissection), and a batch that dissected them all before the next one was
        taken held the receive thread's queue full that long: the socket then overflowed while the
        core, on average, kept up. The chunks wait here instead and are dissected between batches
        (`_work`) while little of the receive queue is in use; beyond the memory budget's in-flight
        share (or PENDING_CHUNKS chunks) the oldest go at once (`_add`, forced), so what waits stays
        bounded. Chunks still waiting when a window closes go to the next window (to the collector
        open when they are dissected), not all at once into the closing one."""
        self._pending.append(ended)
        self._pending_bytes += ended.payload_bytes
        self._pending_flows += len(ended)
        self.deferred_peak = max(self.deferred_peak, self._pending_flows)
        while self._pending and (self._pending_bytes > self._pending_limit or len(self._pending) > PENDING_CHUNKS):
            self._add_oldest(collector, forced=True)

    def _work(self, collector: Collector, everything: bool = False) -> None:
        """Dissect waiting chunks, oldest first, until none waits or (unless `everything`: the
        shutdown) the receive thread has more than QUIET_BACKLOG of its queue waiting: those
        batches come first (decoding and folding a batch into the flow table costs a small part of what
        dissecting its flows does). Not only with an empty queue: at ~95% of a core it seldom is, and
        the waiting chunks then reach their bound sooner (beyond it they are dissected or shed at once).
        At most FORCED_TURN_S of a batch's turn: the queue's share cannot see the socket fill while
        the receive thread waits for the interpreter."""
        src = self.source
        while self._pending and (everything or (src.backlog() <= QUIET_BACKLOG and not self._turn_spent())):
            self._add_oldest(collector, forced=everything)

    def _turn_spent(self) -> bool:
        """Whether this batch's turn has run FORCED_TURN_S already."""
        return time.perf_counter() - self._turn_t0 > FORCED_TURN_S

    def _add_oldest(self, collector: Collector, forced: bool = False) -> None:
        ended = self._pending.popleft()
        self._pending_bytes -= ended.payload_bytes
        self._pending_flows -= len(ended)
        self._add(ended, collector, forced)

    def _add(self, ended: EndedFlows, collector: Collector, forced: bool) -> None:
        """A chunk of ended flows into the window: dissected, unless the work cannot wait (`forced`)
        while the receive queue is more than SHED_BACKLOG full, or after FORCED_TURN_S of this batch's
        turn (not at the shutdown: nothing arrives any more). Then the chunk is shed: its flows
        are counted and judged like any other (addresses, ports, bytes, TCP states, zones), without
        their dissection: `undecided_reason` "shed", and the `shed` counter. The alternative, dissecting
        while the queue fills, lets the socket overflow, and the datagrams the kernel drops then
        damage the flows of every conversation in flight (a gap, a lost hello) instead of leaving
        a counted few undissected. Suricata's exception policies make the same trade when a limit
        is hit ("bypass": the flow is still logged, its content no longer inspected). `shed=False`
        (`listen --no-shed`) always dissects."""
        if forced and self.shed and ended.payloads and (
                self.source.backlog() > SHED_BACKLOG or (not self.source.stopping and self._turn_spent())):
            collector.add(ended, dissected=[(fp, Facts(flow={"undecided_reason": "shed"})) for fp in ended.payloads])
            self.totals.shed += len(ended.payloads)
        else:
            collector.add(ended)

    def _status(self, now: int) -> None:
        """`status.json` in out_dir, rewritten every second and at each window: the counters so far and the receive
        queue's depth, for a monitor (or live_bench) that cannot wait for the window's stats."""
        if self.out_dir is None:
            return
        src, tot = self.source, self.totals
        sc = src.counters
        counters = {**tot.as_dict(), "received": sc.received, "filtered": sc.filtered,
                    "dropped_queue": sc.dropped_queue, "dropped_kernel": src.kernel_drops(),
                    "duplicates": self.dedup.duplicates}
        status = {"time": _iso(now), "time_ns": now, "counters": counters, "queued_datagrams": src.in_queue,
                  "queue_peak_batches": src.queue_peak, "queue_full_events": src.queue_full_events,
                  "receive_priority": src.receive_priority, "live_flows": self.table.live_flows,
                  "flows_awaiting_dissection": self._pending_flows,
                  "flows_awaiting_dissection_peak": self.deferred_peak}
        path = os.path.join(self.out_dir, "status.json")
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(json.dumps(status) + "\n")
        os.replace(path + ".tmp", path)

    def _count(self, d: DecodedBatch) -> None:
        c, tot = d.cols, self.totals
        n = len(c)
        tot.analysed += n
        tun = (c[:, D.C_TUN] & (D.T_VXLAN | D.T_GENEVE)) != 0
        bad = c[:, D.C_STATUS] == D.ST_BAD
        tot.decapsulated += int(tun.sum())
        tot.inner_not_ip += int((tun & (c[:, D.C_STATUS] == D.ST_NOT_IP)).sum())
        tot.malformed += int((bad & ~tun).sum())
        tot.not_tunnel += int((~tun & ~bad).sum())
        anoms = c[:, D.C_ANOM]
        if anoms.any():
            codes, counts = np.unique(anoms[anoms > 0], return_counts=True)
            for code, cnt in zip(codes.tolist(), counts.tolist(), strict=True):
                kind = ANOMALY_NAMES.get(code, str(code))
                self._anomalies[kind] = self._anomalies.get(kind, 0) + cnt

    def _close(self, current: _Open, start: int, end: int, final: bool) -> Window:
        src, tot, collector = self.source, self.totals, current.collector
        sc = src.counters
        tot.received, tot.filtered, tot.dropped_queue = sc.received, sc.filtered, sc.dropped_queue
        tot.dropped_kernel = src.kernel_drops()
        tot.duplicates = self.dedup.duplicates
        tot.evicted = self.table.evicted
        name = src.name
        for kind, cnt in self._anomalies.items():
            collector.anomaly(source=name, layer="decode", kind=kind, detail=f"{cnt} packets", count=cnt)
        self._anomalies = {}
        for kind, cnt, detail in self.table.memory_events:  # the memory budget's decisions
            collector.anomaly(source=name, layer="flow", kind=kind, count=cnt, detail=detail)
        self.table.memory_events.clear()
        evicted = tot.evicted - self._last.evicted
        if evicted:
            collector.anomaly(source=name, layer="flow", kind="flows_evicted", count=evicted,
                              detail=f"{evicted} flows ended early: more than max_flows="
                                     f"{self.options.flows.max_flows} live")
        this = tot.minus(self._last)
        # the last chunk of flows is judged and goes to its sink here; the policy's finish() adds the
        # findings of expired suppressions
        analysis = collector.finish([{"source": name, "packets": this.analysed, "status": "ok", "problem": None,
                                      "offset": None}], {"packets": this.analysed})
        frames = {f: analysis[f] for f in self.frames if f not in current.sinks}
        frames["sources"] = analysis.sources
        policy, count = current.policy, current.count
        if policy is not None and "findings" not in current.sinks:
            frames["findings"] = policy.findings()
        this.flows = count.flows
        tot.flows += this.flows
        self._last = replace(tot)
        index = self.windows
        self.windows += 1
        # datagrams per mirror target address (the destination each was sent to: IP_PKTINFO), this window
        targets = {a: n - self._last_targets.get(a, 0) for a, n in src.targets.items()
                   if n - self._last_targets.get(a, 0)}
        self._last_targets = dict(src.targets)
        calls, self._last_calls = src.counters.syscalls - self._last_calls, src.counters.syscalls
        stats = {"window": index, "start": _iso(start), "end": _iso(end), "final": final,
                 "source": name, "rcvbuf_granted": src.granted_rcvbuf, "kernel_drop_counter": src.drop_counter,
                 "receiver": src.receiver, "receive_thread": src.threaded, "receive_calls": calls,
                 "receive_priority": src.receive_priority,
                 "queue_peak_batches": src.queue_peak, "queue_full_events": src.queue_full_events,
                 "targets": targets,
                 "live_flows": self.table.live_flows, "window_counters": this.as_dict(),
                 "total_counters": tot.as_dict()}
        files = self._write(current, frames, stats) if self.out_dir is not None else []
        self._status(end)
        severities: Counter[str] = Counter()
        if policy is not None:
            for (_, sev, _), n in policy.tally.findings.items():
                severities[sev] += n
        window = Window(index, start, end, frames, this, replace(tot), files,
                        summary_line(index, stats, encrypted=count.encrypted, cleartext=count.cleartext,
                                     severities=severities))
        if self.on_window is not None:
            self.on_window(window)
        return window

    def _stamp(self, start: int) -> str:
        """The window's name: its start time, then its number, so that names sort in window order
        and two windows that start in the same second (short windows; a restart) never share one."""
        assert self.out_dir is not None
        while True:
            stamp = f"{_stamp(start)}-{self._file_seq:06d}"
            self._file_seq += 1
            if not os.path.exists(os.path.join(self.out_dir, f"stats-{stamp}.jsonl")):
                return stamp

    def _path(self, name: str, stamp: str) -> str:
        assert self.out_dir is not None
        return os.path.join(self.out_dir, f"{name}-{stamp}.{'parquet' if self.fmt == 'parquet' else 'jsonl'}")

    def _write(self, current: _Open, frames: Mapping[str, pd.DataFrame], stats: dict[str, Any]) -> list[str]:
        """The streamed frames' files are renamed from their temporary names (each sink's close), the
        frames kept in memory (certs) are written via a temporary name and a rename; the stats file
        last (its presence says the window's files are all there)."""
        from analyzer.report import write_frame

        assert self.out_dir is not None
        stamp = current.stamp
        written = []
        try:
            for name, df in frames.items():
                if name == "sources":
                    continue
                path = self._path(name, stamp)
                tmp = os.path.join(self.out_dir, f".{os.path.basename(path)}.tmp")
                try:
                    write_frame(df, self.fmt, tmp)
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                written.append(path)
            while current.sinks:
                name, sink = current.sinks.popitem()
                sink.close()
                written.append(self._path(name, stamp))
        except BaseException:
            current.abort()
            raise
        path = os.path.join(self.out_dir, f"stats-{stamp}.jsonl")
        tmp = os.path.join(self.out_dir, f".stats-{stamp}.jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:  # written last: its presence says the window is complete
            fh.write(json.dumps(stats) + "\n")
        os.replace(tmp, path)
        written.append(path)
        return written


def policy_judge(vpc: Sequence[str] = (), zones: str | None = None, profile: str | None = None,
                 aws_ip_ranges: str | None = None, suppressions: str | None = None) -> Callable[..., PolicyStage]:
    """A `judge` for LiveRun: `judge(findings_sink, horizon_s)` makes a window's policy stage
    (`analyzer.policy.stage.PolicyStage`, as the streamed audit has), with the zones built once (--vpc,
    --zones, the AWS ranges) and the profile and suppressions checked now (a bad one fails early)."""
    from analyzer.policy import build_zones, evaluate
    from analyzer.policy.stage import PolicyStage
    from analyzer.schema import empty_frame

    zone_map = build_zones(vpc=list(vpc), zones=zones, aws_ip_ranges=aws_ip_ranges)

    def judge(findings_sink: Any = None, horizon_s: float | None = None) -> PolicyStage:
        return PolicyStage(zones=zone_map, profile=profile, suppressions=suppressions, findings_sink=findings_sink,
                           horizon_s=horizon_s)

    judge()  # a bad profile or suppressions file fails now
    # the rules' first run (imports) now rather than in the first window
    evaluate(empty_frame(dict(_empty_flows_schema())), None, None, zones=zone_map, profile=profile,
             suppressions=suppressions)
    return judge


def _empty_flows_schema() -> dict[str, str]:
    from analyzer.dissect import declarations, flow_schema

    return dict(flow_schema(declarations()))


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary_line(index: int, stats: Mapping[str, Any], *, encrypted: int = 0, cleartext: int = 0,
                 severities: Mapping[str, int] | None = None) -> str:
    """The one-line rolling summary of a window (the caller makes it printable): its counters, its flows
    encrypted and cleartext, and its findings by severity."""
    w = stats["window_counters"]
    sev_counts = {s: n for s, n in (severities or {}).items() if n}
    sev = ""
    if sev_counts:
        sev = " (" + ", ".join(f"{s} {sev_counts[s]}" for s in ("critical", "high", "medium", "low", "info")
                               if s in sev_counts) + ")"
    dup_rate = w["duplicates"] / w["received"] if w["received"] else 0.0
    shed = f", {w['shed']} not dissected: the analysis was behind" if w.get("shed") else ""
    nf = sum(sev_counts.values())
    targets = stats.get("targets") or {}
    names = sorted(targets, key=lambda a: -targets[a])
    to = f" to {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}" if names else ""
    return (f"window {index} {stats['start'][11:19]}-{stats['end'][11:19]}: {w['received']} datagrams{to} "
            f"({w['analysed']} analysed, {w['duplicates']} duplicates {dup_rate:.1%}, {w['filtered']} filtered, "
            f"{w['dropped_kernel']} kernel drops, {w['dropped_queue']} queue drops); {w['flows']} flows "
            f"({encrypted} encrypted, {cleartext} cleartext{shed}), {stats['live_flows']} open; {nf} findings{sev}")


def live_main(*, bind: str, ports: Sequence[int], geneve_ports: Sequence[int], allow: Sequence[str],
              vpc: Sequence[str], zones: str | None, aws_ip_ranges: str | None, profile: str | None,
              suppressions: str | None, window: str, out_dir: str, fmt: str, pcap_out: str | None, rotate: str,
              rcvbuf: str, dedup_window: str, max_flows: int, payload_budget: int, no_dissect: bool,
              idle_timeout: float, say: Callable[[str], None], queue_size: str = "256M", shed: bool = True,
              memory_budget: int | None = None) -> int:
    """`intransit listen`: the source, the policy and the signals, then windows until SIGTERM/SIGINT.
    Returns the exit code (0 once the last window is written)."""
    import signal
    import sys

    from analyzer.errors import UsageError
    from analyzer.sources.mirror import MirrorSource

    try:
        window_s = parse_duration(window)
        dedup_s = 0.0 if dedup_window.strip() in ("0", "0s", "0ms") else parse_duration(dedup_window)
        rotate_b = parse_size(rotate)
        rcvbuf_b = parse_size(rcvbuf)
        queue_b = parse_size(queue_size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options = Options().with_values(max_flows=max_flows, payload_budget=payload_budget, dissect=not no_dissect,
                                    idle_timeout_tcp=idle_timeout, idle_timeout_udp=idle_timeout * 60 / 300,
                                    **({} if memory_budget is None else {"memory_budget": memory_budget}))
    judge = policy_judge(vpc, zones, profile, aws_ip_ranges, suppressions)  # a bad profile or zones file: now
    source = MirrorSource(bind=bind, ports=ports, geneve_ports=geneve_ports, allow=allow, rcvbuf=rcvbuf_b,
                          queue_bytes=queue_b)
    # The receive thread waits for the GIL at most this long after its select() returns while the
    # analysis runs Python (5 ms by default): the socket buffer only has to hold that much traffic.
    sys.setswitchinterval(0.001)
    pcap = PcapRotator(pcap_out, rotate_b) if pcap_out else None
    signals = 0

    def on_signal(signum: int, frame: object) -> None:
        nonlocal signals
        if signum == signal.SIGINT:
            signals += 1
            if signals > 1:  # a second Ctrl-C: give up the drain
                raise KeyboardInterrupt
        source.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    ports_text = ", ".join([*(f"{p} (vxlan)" for p in source.vxlan_ports),
                            *(f"{p} (geneve)" for p in source.geneve_ports)])
    run = LiveRun(source, options, window=window_s, out_dir=out_dir, fmt=fmt, dedup_window=dedup_s, judge=judge,
                  pcap=pcap, on_window=lambda w: say(w.summary), shed=shed)
    flow_options = run.options.flows
    priority_text = (f", {source.priority} nice steps above the analysis where permitted"
                     if source.threaded and source.priority else "")
    say(f"listen: udp {bind} port {ports_text}; receive buffer {source.granted_rcvbuf} bytes granted "
        f"(asked {rcvbuf_b}); kernel drops read from {source.drop_counter}; receiving with {source.receiver}"
        f"{f' on its own thread, queue {queue_b} bytes' if source.threaded else ''}"
        f"{priority_text}; "
        f"memory budget {flow_options.memory_budget} bytes ({run.table.record_limit} live flows at most, "
        f"{run.table.POOL.shape[0]} payload pages of {run.table.page} bytes); "
        f"windows of {window_s:g} s to {out_dir}")
    try:
        for _ in run.run():
            pass
    finally:
        if pcap is not None:
            pcap.close()
        source.close()
        for s, h in previous.items():
            signal.signal(s, h)
    t = run.totals
    say(f"listen: stopped; {t.received} datagrams received = {t.analysed} analysed + {t.duplicates} duplicates + "
        f"{t.filtered} filtered + {t.dropped_queue} queue drops; {t.dropped_kernel} dropped by the kernel; "
        f"{t.flows} flows in {run.windows} windows"
        + (f" ({t.shed} not dissected: the analysis was behind)" if t.shed else ""))
    return 0
