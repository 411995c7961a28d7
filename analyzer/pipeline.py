"""The serial engine: captures -> batches -> decode -> flow table -> dissectors -> frames."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from analyzer import schema
from analyzer._gc import paced_gc
from analyzer.decode import ANOMALY_NAMES, DecodeOptions, decode
from analyzer.dissect import Facts, FlowPayload, registered
from analyzer.dissect.base import Dissector
from analyzer.errors import CaptureError, UsageError
from analyzer.flows.table import EndedFlows, FlowOptions, FlowTable
from analyzer.sources.batch import Problem
from analyzer.sources.readers import display_path, read_capture
from analyzer.sources.scan import as_path_list, scan_paths

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True)
class Options:
    """Every analysis option, with its default. The CLI exposes these one to one."""

    payload_budget: int = 64 * 1024
    dissect: bool = True
    # a TLS stream's prefix ends after the records the TLS dissector reads (FlowOptions.tls_trim)
    tls_trim: bool = True
    idle_timeout_tcp: float = 300.0
    idle_timeout_udp: float = 60.0
    active_timeout: float = 3600.0
    max_flows: int = 1 << 18
    vxlan_ports: tuple[int, ...] = (4789,)
    geneve_ports: tuple[int, ...] = (6081,)
    ja4x: bool = False
    strict: bool = False
    # The frames to build: the others come back empty (with their schema). Dissection runs in full
    # either way (the flows frame's TLS columns need it); what is saved is keeping and converting
    # the rows nobody reads: `intransit flows` asks for ("flows",), `intransit tls` for ("tls",).
    # .anomalies and .sources are always built.
    frames: tuple[str, ...] = ("flows", "tls", "certs", "cert_links")

    @staticmethod
    def from_kwargs(**kwargs: object) -> Options:
        known = set(Options.__dataclass_fields__)
        unknown = set(kwargs) - known
        if unknown:
            raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        opts = Options(**kwargs)  # type: ignore[arg-type]
        if opts.max_flows < 16:
            raise UsageError("max_flows must be at least 16")
        if opts.payload_budget < 0:
            raise UsageError("payload_budget must be >= 0")
        if opts.idle_timeout_tcp <= 0 or opts.idle_timeout_udp <= 0 or opts.active_timeout <= 0:
            raise UsageError("timeouts must be positive")
        for p in (*opts.vxlan_ports, *opts.geneve_ports):
            if not 0 < int(p) < 65536:
                raise UsageError(f"port {p} is out of range")
        if isinstance(opts.frames, str):
            raise UsageError("frames must be a sequence of frame names, not a string")
        unknown_frames = set(opts.frames) - set(OPTIONAL_FRAMES)
        if unknown_frames:
            raise UsageError(f"unknown frame(s): {', '.join(sorted(unknown_frames))}; "
                             f"known: {', '.join(OPTIONAL_FRAMES)}")
        return replace(opts, frames=tuple(opts.frames))


OPTIONAL_FRAMES = ("flows", "tls", "certs", "cert_links")
# Frames that can go to a FrameSink chunk by chunk (.certs cannot: a certificate's session count is
# final only at the end). Their chunks come in the frame's own order, except .flows.
STREAMABLE_FRAMES = ("flows", "tls", "cert_links", "anomalies")
# The row order of frames whose chunks do not come in it: .flows chunks come in the order flows
# ended; a sink that wants the frame's order sorts by these columns, stably (report.SortedSink).
FRAME_ORDER: dict[str, tuple[str, ...]] = {"flows": ("ts_start", "uid")}


class FrameSink(Protocol):
    """Takes a frame chunk by chunk instead of the frame being kept in memory: analyze(sinks=...).

    Every chunk is a DataFrame with the frame's declared schema (analyzer.schema.ALL[name]: columns and
    dtypes); put together in the order given, the chunks are the frame the analysis would return
    (for .flows: before its sort by FRAME_ORDER). A sink that also has `write_table(table)` gets each
    chunk as an Arrow table of `schema.arrow_schema(...)` instead, with no pandas conversion (the
    package's own sinks do: the CLI's streaming output never imports pandas). analyze() only calls
    write() or write_table(); whoever made the sink closes it once every chunk is in, so one sink can
    take the chunks of several analyses (rotated captures) or of a long-running one.
    Implementations: analyzer.report.FrameWriter (appends to a file) and analyzer.report.SortedSink
    (external merge sort, then another sink).
    """

    def write(self, chunk: pd.DataFrame) -> None: ...
    def close(self) -> None: ...


_FRAMES = ("flows", "tls", "certs", "cert_links", "anomalies", "sources")


class Analysis:
    """The result of one analysis: pandas frames with declared schemas (see analyzer.schema).

    Each frame is made from the collected Arrow columns when it is first read (then kept): a caller
    that reads one frame pays for no other (the CLI's streaming commands read none). A frame given
    to the constructor is used as it is."""

    __slots__ = ("_builders", "_frames", "stats")

    def __init__(self, flows: pd.DataFrame | None = None, tls: pd.DataFrame | None = None,
                 certs: pd.DataFrame | None = None, cert_links: pd.DataFrame | None = None,
                 anomalies: pd.DataFrame | None = None, sources: pd.DataFrame | None = None,
                 stats: dict[str, object] | None = None, *,
                 builders: Mapping[str, Callable[[], pd.DataFrame]] | None = None) -> None:
        given = dict(flows=flows, tls=tls, certs=certs, cert_links=cert_links, anomalies=anomalies, sources=sources)
        self._frames: dict[str, pd.DataFrame] = {k: v for k, v in given.items() if v is not None}
        self._builders = {k: v for k, v in (builders or {}).items() if k not in self._frames}
        missing = set(_FRAMES) - set(self._frames) - set(self._builders)
        if missing:
            raise TypeError(f"Analysis lacks frame(s): {', '.join(sorted(missing))}")
        self.stats: dict[str, object] = stats if stats is not None else {}

    def _get(self, name: str) -> pd.DataFrame:
        frame = self._frames.get(name)
        if frame is None:
            frame = self._frames[name] = self._builders.pop(name)()
        return frame

    @property
    def flows(self) -> pd.DataFrame:
        return self._get("flows")

    @property
    def tls(self) -> pd.DataFrame:
        return self._get("tls")

    @property
    def certs(self) -> pd.DataFrame:
        return self._get("certs")

    @property
    def cert_links(self) -> pd.DataFrame:
        return self._get("cert_links")

    @property
    def anomalies(self) -> pd.DataFrame:
        return self._get("anomalies")

    @property
    def sources(self) -> pd.DataFrame:
        """One row per capture: packets read, problems, status."""
        return self._get("sources")

    def __repr__(self) -> str:
        return (f"<Analysis {len(self.flows)} flows, {len(self.tls)} TLS sessions, "
                f"{len(self.certs)} certificates, {len(self.anomalies)} anomalies>")


SOURCES_SCHEMA = {
    "source": "string", "packets": "Int64", "status": "string", "problem": "string", "offset": "Int64",
}  # fmt: skip


class _Dissection:
    """Chooses a dissector per flow (port hint first, then content probes) and gathers facts."""

    def __init__(self, options: Options) -> None:
        self.dissectors: list[Dissector] = []
        # Without a tls/certs/cert_links frame to fill, the TLS dissector makes only the flow columns.
        tls_rows = bool({"tls", "certs", "cert_links"} & set(options.frames))
        for d in registered():
            if d.name == "tls" and (options.ja4x or not tls_rows):
                from analyzer.dissect.tls import TLSDissector

                d = TLSDissector(ja4x=options.ja4x, rows=tls_rows)
            self.dissectors.append(d)
        self.tls = next((d for d in self.dissectors if d.name == "tls"), None)
        self.by_port: dict[tuple[str, int], list[Dissector]] = {}
        self._orders: dict[tuple[str, int], tuple[Dissector, ...]] = {}
        for d in self.dissectors:
            for t in d.transports:
                for p in d.ports:
                    self.by_port.setdefault((t, p), []).append(d)

    def run(self, fp: FlowPayload) -> Facts | None:
        facts = self._first_claim(fp)
        if facts is None and fp.transport == "tcp" and self.tls is not None:
            facts = self._tls_after_cleartext(fp)
        return facts

    def _tls_after_cleartext(self, fp: FlowPayload) -> Facts | None:
        """TLS that begins after a cleartext exchange on the same flow: STARTTLS (SMTP, IMAP, POP3,
        FTP AUTH, XMPP, LDAP), SOCKS, PostgreSQL/MySQL SSL requests. Found by content: a ClientHello
        record in the client's bytes answered by a ServerHello (or alert) record from the server.
        Until protocol dissectors hand over explicitly, this keeps such sessions from looking
        unencrypted."""
        from analyzer.dissect.tls import find_tls_start

        start = find_tls_start(fp.to_server.data, fp.to_client.data)
        if start is None or start[1] is None:  # the server never switched: not an upgrade
            return None
        facts = self.tls.dissect_from(fp, start[0], start[1])  # type: ignore[union-attr]
        facts.flow["tls_upgraded"] = True
        return facts

    def _order(self, transport: str, port: int) -> tuple[Dissector, ...]:
        """The dissectors to try on a flow: those hinted by its server port first, then the rest
        (those of the transport only; memoised: at most one entry per transport and port)."""
        key = (transport, port)
        order = self._orders.get(key)
        if order is None:
            hinted = self.by_port.get(key, [])
            order = tuple(d for d in (*hinted, *(x for x in self.dissectors if x not in hinted))
                          if transport in d.transports)
            self._orders[key] = order
        return order

    def _first_claim(self, fp: FlowPayload) -> Facts | None:
        for d in self._order(fp.transport, fp.server_port):
            try:
                if not d.probe(fp):
                    continue
                return d.dissect(fp)
            except Exception as exc:  # a dissector bug must not lose the run's results
                facts = Facts()
                facts.anomaly("dissector_error", f"{d.name}: {type(exc).__name__}: {exc}")
                return facts
        return None


ROWS_PER_CHUNK = 4096
FLOW_ROWS_PER_FRAME = 16384  # ended flows gathered before their columns become a compact frame
_NA_WHEN_NEGATIVE = ("client_port", "server_port", "vni", "vlan")  # -1: not applicable


def _flow_frame(chunks: list[tuple[dict[str, Any], int]]) -> dict[str, pa.Array]:
    """Arrow columns (schema.FLOWS) from several ended-flow column chunks, each converted once."""
    n = sum(k for _, k in chunks)
    names = {name for chunk, _ in chunks for name in chunk}
    columns: dict[str, Any] = {}
    for name in names:
        parts = [chunk.get(name) for chunk, _ in chunks]
        arrays = [p for p in parts if isinstance(p, np.ndarray) and p.dtype != object]
        if len(arrays) == len(parts):
            col: Any = np.concatenate(arrays)
            if name in _NA_WHEN_NEGATIVE and col.dtype.kind in "iu":
                col = np.where(col >= 0, col, np.nan)
        else:
            col = []
            for part, (_, k) in zip(parts, chunks, strict=True):
                col.extend([None] * k if part is None else part)
        columns[name] = col
    return schema.arrow_columns(columns, schema.FLOWS, n)


def _write_chunk(sink: FrameSink, columns: Mapping[str, pa.Array], frame_schema: schema.Schema) -> None:
    """One chunk to a sink: as an Arrow table when it takes those (see FrameSink), else as a frame."""
    write_table = getattr(sink, "write_table", None)
    if callable(write_table):
        arrow_schema = schema.arrow_schema(frame_schema)
        write_table(pa.Table.from_arrays([columns[name] for name in frame_schema], schema=arrow_schema))
    else:
        sink.write(schema.frame_from_arrow(columns, frame_schema))


class Collector:
    """Accumulates ended-flow chunks and facts into frames (also used by live mode later)."""

    def __init__(self, options: Options, sinks: Mapping[str, FrameSink] | None = None) -> None:
        self.options = options
        self.sinks = dict(sinks or {})  # frames handed over chunk by chunk instead of kept
        self.flow_chunks: list[dict[str, pa.Array]] = []  # Arrow columns of 16k flows each
        self.pending_flows: list[tuple[dict[str, Any], int]] = []
        self.pending_rows = 0
        self.rows: dict[str, list[dict[str, object]]] = {"tls": [], "certs": [], "cert_links": [],
                                                         "anomalies": []}
        self.dissection = _Dissection(options) if options.dissect else None
        self.seen_certs: dict[str, dict[str, object]] = {}
        self.frames: dict[str, list[dict[str, pa.Array]]] = {}  # Arrow column chunks of row frames
        self.wanted = frozenset((*options.frames, "anomalies"))

    def add(self, ended: EndedFlows) -> None:
        if not len(ended):
            return
        cols = ended.columns
        extra: dict[str, np.ndarray] = {}
        if self.dissection is not None and ended.payloads:
            pos = {uid: i for i, uid in enumerate(cols["uid"])}
            n = len(ended)
            # The flow columns of each dissector's facts, grouped by their key tuple (a dissector
            # sets the same keys on every flow), are transposed in C below, not key by key here.
            by_keys: dict[tuple[str, ...], tuple[list[int], list[tuple[object, ...]]]] = {}
            run = self.dissection.run
            for fp in ended.payloads:
                facts = run(fp)
                if facts is None:
                    continue
                flow = facts.flow
                if flow:
                    keys = tuple(flow)
                    group = by_keys.get(keys)
                    if group is None:
                        group = by_keys[keys] = ([], [])
                    group[0].append(pos[fp.uid])
                    group[1].append(tuple(flow.values()))
                if facts.rows:
                    self._rows(fp, facts)
            for keys, (where, values) in by_keys.items():
                at = np.array(where, np.int64)
                for k, column in zip(keys, zip(*values, strict=True), strict=True):
                    col = extra.get(k)
                    if col is None:
                        col = extra[k] = np.full(n, None, object)
                    col[at] = np.fromiter(column, object, len(column))
        # Every FLOW_ROWS_PER_FRAME flows, the columns become Arrow arrays of the declared types and
        # their Python objects are freed: memory does not pile up until the
        # end, and the per-column conversion cost is paid per 16k flows, not per small export.
        if "flows" not in self.wanted:
            return
        self.pending_flows.append(({**cols, **extra}, len(ended)))
        self.pending_rows += len(ended)
        if self.pending_rows >= FLOW_ROWS_PER_FRAME:
            self._fold_flows()

    def _fold_flows(self) -> None:
        if self.pending_flows:
            chunk = _flow_frame(self.pending_flows)
            self.pending_flows, self.pending_rows = [], 0
            sink = self.sinks.get("flows")
            if sink is None:
                self.flow_chunks.append(chunk)
            else:  # flow-end order, as the chunks are kept; the sink sorts if it wants to
                _write_chunk(sink, chunk, schema.FLOWS)

    def _rows(self, fp: FlowPayload, facts: Facts) -> None:
        wanted = self.wanted
        for frame, rows in facts.rows.items():
            if frame not in wanted:
                continue
            if frame == "certs":
                for row in rows:
                    sha = str(row.get("sha256"))
                    seen = self.seen_certs.get(sha)
                    if seen is None:
                        row = dict(row)
                        row.setdefault("first_seen_uid", fp.uid)
                        row["sessions"] = 1
                        self.seen_certs[sha] = row
                    else:
                        seen["sessions"] = int(seen.get("sessions") or 0) + 1  # type: ignore[call-overload]
                continue
            target = self.rows.setdefault(frame, [])
            if len(target) >= ROWS_PER_CHUNK:  # dict rows are ~10x larger than frame rows
                self._fold(frame)
                target = self.rows[frame]
            for row in rows:
                if "uid" not in row:
                    row = {**row, "uid": fp.uid}
                if frame == "anomalies":
                    row = {"layer": "dissect", "ts": fp.ts_start, **row}
                target.append(row)

    def _fold(self, frame: str) -> None:
        rows = self.rows.get(frame)
        if rows:
            chunk = schema.arrow_from_rows(rows, schema.ALL[frame])
            self.rows[frame] = []
            sink = self.sinks.get(frame)
            if sink is None:
                self.frames.setdefault(frame, []).append(chunk)
            else:
                _write_chunk(sink, chunk, schema.ALL[frame])

    def _frame(self, frame: str) -> pd.DataFrame:
        self._fold(frame)
        parts = self.frames.pop(frame, [])
        frame_schema = schema.ALL[frame]
        if not parts:
            return schema.empty_frame(frame_schema)
        return schema.frame_from_arrow({name: pa.chunked_array([p[name] for p in parts], schema.arrow_type(dtype))
                                        for name, dtype in frame_schema.items()}, frame_schema)

    def _flows(self) -> pd.DataFrame:
        """The flows frame in time order (uid breaks ties; a chunk's flows are in the order they ended).

        Built one column at a time, each column's chunks freed as it is assembled: the peak is the
        chunks plus one column, not two copies of the whole frame (concatenate, then sort)."""
        from analyzer._pandas import pd

        self._fold_flows()
        chunks, self.flow_chunks = self.flow_chunks, []
        if not chunks:
            return schema.empty_frame(schema.FLOWS)
        ts = np.concatenate([c["ts_start"].view(pa.int64()).fill_null(schema._NAT).to_numpy() for c in chunks])
        uid = np.concatenate([c["uid"].to_numpy(zero_copy_only=False) for c in chunks])
        order = np.lexsort((uid, ts))
        del ts, uid
        out: dict[str, Any] = {}
        for name, dtype in schema.FLOWS.items():
            col = pa.chunked_array([c.pop(name) for c in chunks], schema.arrow_type(dtype))
            out[name] = schema.pandas_array(col.take(order), dtype)
            del col
        return pd.DataFrame(out, copy=False)

    def anomaly(self, **row: object) -> None:
        self.rows["anomalies"].append(row)

    def finish(self, sources: list[dict[str, object]], stats: dict[str, object]) -> Analysis:
        """The analysis; each frame is made when first read (Analysis). What is still to fold is
        folded now, so the collected state is Arrow columns and a few rows, not the dict rows."""
        self._fold_flows()
        for frame in ("tls", "cert_links", "anomalies"):
            self._fold(frame)
        certs = list(self.seen_certs.values())
        return Analysis(stats=stats, builders={
            "flows": self._flows,
            "tls": lambda: self._frame("tls"),
            "certs": lambda: schema.frame_from_rows(certs, schema.CERTS),
            "cert_links": lambda: self._frame("cert_links"),
            "anomalies": lambda: self._frame("anomalies"),
            "sources": lambda: schema.frame_from_rows(sources, SOURCES_SCHEMA),
        })


@paced_gc
def analyze(paths: str | Iterable[str], *, on_problem: Callable[[Problem], None] | None = None,
            sinks: Mapping[str, FrameSink] | None = None, **options: object) -> Analysis:
    """Read captures (files, directories, globs, '-' for stdin) and return the frames.

    Options (see `Options`): payload_budget, dissect, idle_timeout_tcp, idle_timeout_udp,
    active_timeout, max_flows, vxlan_ports, geneve_ports, ja4x, strict, frames. Captures are read in order into one
    flow table, so flows spanning rotated files are merged. Unreadable captures raise
    `CaptureError` when nothing at all could be read (or always with strict=True); otherwise they
    become rows of `.sources` and `.anomalies` and a warning. Paths a directory scan passes over
    (see `analyzer.sources.scan`) are said the same way, and the same capture given twice is read
    once (status `duplicate` in `.sources`); with strict=True any skip but a duplicate is fatal.

    `sinks` maps frame names (STREAMABLE_FRAMES) to FrameSinks: those frames go to their sink chunk by
    chunk as the analysis runs, so memory does not grow with their rows, and come back empty (with
    their schema). The caller closes the sinks afterwards (or aborts them when this raises).
    """
    opts = Options.from_kwargs(**options)
    if sinks is not None and not isinstance(sinks, Mapping):
        raise UsageError("sinks must map frame names to FrameSinks, e.g. {'flows': sink}")
    sinks = dict(sinks or {})
    for name, sink in sinks.items():
        if not callable(getattr(sink, "write", None)):
            raise UsageError(f"the sink for {name!r} has no write(chunk) method")
        if name not in STREAMABLE_FRAMES:
            raise UsageError(f"frame {name!r} cannot go to a sink; these can: {', '.join(STREAMABLE_FRAMES)}")
        if name != "anomalies" and name not in opts.frames:
            raise UsageError(f"a sink is given for {name!r} but frames={opts.frames!r} does not build it")
    path_list = as_path_list(paths)  # bytes and PathLike too (bytes used to be iterated)
    scan = scan_paths(path_list)  # what it skips (and why) is reported below
    files = scan.files
    if not files:
        skipped = "".join(f"; skipped {s.name}: {s.detail}" for s in scan.skipped[:3])
        raise CaptureError(", ".join(map(display_path, path_list)) or "(no path)", None,
                           "no capture files found" + skipped)
    table = FlowTable(FlowOptions(
        idle_timeout_tcp=opts.idle_timeout_tcp, idle_timeout_udp=opts.idle_timeout_udp,
        active_timeout=opts.active_timeout, payload_budget=opts.payload_budget, max_flows=opts.max_flows,
        collect_payload=opts.dissect, tls_trim=opts.tls_trim,
    ))
    dec = DecodeOptions(vxlan_ports=tuple(opts.vxlan_ports), geneve_ports=tuple(opts.geneve_ports))
    collector = Collector(opts, sinks)
    sources: list[dict[str, object]] = []
    total_packets = 0
    errors: list[CaptureError] = []
    anomaly_counts: dict[tuple[str, str], int] = {}
    def report(p: Problem) -> None:
        if on_problem:
            on_problem(p)
        else:
            where = f" at byte {p.offset}" if p.offset is not None else ""
            warnings.warn(f"{p.source}{where}: {p.detail}", stacklevel=3)

    for skip in scan.skipped:  # never silently: a warning, an anomalies row, a sources row
        p = skip.problem()
        if opts.strict and p.fatal_in_strict:
            raise CaptureError(p.source, None, f"{p.detail} (strict: any skipped path is an error)")
        report(p)
        collector.anomaly(source=p.source, layer="source", kind=p.kind, detail=p.detail, offset=None, count=1)
        sources.append({"source": p.source, "packets": 0, "status": skip.status, "problem": p.detail,
                        "offset": None})
    for path in files:
        name = "<stdin>" if path == "-" else display_path(path)  # a name that is not UTF-8: escaped
        packets = 0
        status, problem, offset = "ok", None, None
        try:
            for batch in read_capture(path):
                for p in batch.problems:
                    if opts.strict and p.fatal_in_strict:
                        raise CaptureError(p.source, p.offset, p.detail)
                    status, problem, offset = "partial", p.detail, p.offset
                    collector.anomaly(source=name, layer="source", kind=p.kind, detail=p.detail, offset=p.offset,
                                      count=1)
                    report(p)
                if not len(batch):
                    continue
                packets += len(batch)
                decoded = decode(batch, dec)
                anoms = decoded.cols[:, 1]
                if anoms.any():
                    codes, counts = np.unique(anoms[anoms > 0], return_counts=True)
                    for code, cnt in zip(codes, counts, strict=True):
                        key = (name, ANOMALY_NAMES.get(int(code), str(code)))
                        anomaly_counts[key] = anomaly_counts.get(key, 0) + int(cnt)
                for ended in table.update(decoded):
                    collector.add(ended)
        except CaptureError as exc:
            if opts.strict:
                raise
            errors.append(exc)
            if len(files) > 1:  # alone, it is raised below; among others, say so and go on
                report(Problem(source=name, offset=exc.offset, kind="unreadable", detail=exc.message))
            status, problem, offset = "failed" if packets == 0 else "partial", exc.message, exc.offset
            collector.anomaly(source=name, layer="source", kind="unreadable", detail=exc.message,
                              offset=exc.offset, count=1)
        total_packets += packets
        sources.append({"source": name, "packets": packets, "status": status, "problem": problem,
                        "offset": offset})
    for ended in table.flush():
        collector.add(ended)
    if table.evicted:
        collector.anomaly(source=display_path(files[-1]), layer="flow", kind="flows_evicted", count=table.evicted,
                          detail=f"{table.evicted} flows ended early: more than max_flows={opts.max_flows} live")
    for (path, kind), cnt in anomaly_counts.items():
        collector.anomaly(source=path, layer="decode", kind=kind, detail=f"{cnt} packets", count=cnt)
    if total_packets == 0 and errors:
        if len(errors) == 1:
            raise errors[0]
        raise CaptureError(errors[0].path, errors[0].offset,
                           f"{errors[0].message} (and {len(errors) - 1} more unreadable captures)")
    stats: dict[str, object] = {"packets": total_packets, "packets_not_ip": int(table.G[7]), "files": len(files)}
    return collector.finish(sources, stats)
